/* Cluster-wide loads and rollbacks (PRODUCT.md "Batches in a cluster"). On a cluster
 * member, a LoadBatch or RollbackBatch sent to any node is verified by that node (the
 * receiver) against its store, then written as one record to `<topic>.seqd-loads` (one
 * partition, keeping every operation; server/loads_record.h): that record is the commit.
 * Every node reads the topic from the position it stored with its last applied
 * operation ('m' "loads", written in the same synced write as the operation's commit, so
 * a crash never applies one twice or skips one) and applies each operation in order:
 * a load ingests the parts of the partitions the node holds, as one generation (counting
 * first what it changes there, for the receiver's answer; a file whose bytes are those
 * the receiver verified, by the record's sums, is not scanned entry by entry again:
 * storage/batch.h, seq_load_req.verified); a dry run verifies and counts
 * the same, changing nothing; a rollback undoes loads as on a single node. A node that holds a partition it has not
 * filled yet (it acquired it, or it just started) ingests that partition's part of every
 * load whose data its history keeps, before it reports the partition caught up
 * (seq_loads_filled; the cluster map publishes it). The receiver waits, within the
 * call's deadline, until every member of the map that holds a partition has applied the
 * record (each publishes "loads applied up to offset X" in its cluster map record; a
 * single node on the same topic publishes none and is not waited for: seq_cluster_pending),
 * and otherwise answers UNAVAILABLE "committed; pending on NODES".
 *
 * One thread reads and applies (loads run at low priority, storage/store_load.c); the
 * receiver's calls run on the service's job threads. A single node (not in a group)
 * does not use this module: its loads stay local, as before. */
#ifndef SEQ_LOADS_H
#define SEQ_LOADS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/def.h"
#include "../storage/batch.h"
#include "../storage/store.h"
#include "consumer.h"

typedef struct seq_loads seq_loads;
struct seq_cluster;
struct seq_kafkaconf;

typedef struct {
    const char *node_id;
    const char *topic;      /* the event topic; the operations' is topic + ".seqd-loads" */
    const char *batch_root; /* shared by the nodes */
    const seq_def *def;
    seq_store *store;
    seq_consumer *consumer; /* brokers, held partitions, the topic's partition count */
    const struct seq_kafkaconf *kafka_conf;
} seq_loads_config;

/* The operations' topic for an event topic, into out. */
void seq_loads_topic_name(const char *topic, char *out, size_t outlen);

/* Starts the reading thread (the topic must exist: seq_cluster_start creates it).
 * SEQ_OK or SEQ_EINTERNAL with a message. */
int seq_loads_start(const seq_loads_config *cfg, seq_loads **out, char *err, size_t errlen);
/* Stops the thread (an apply under way finishes first) and frees l. NULL is fine. */
void seq_loads_stop(seq_loads *l);
/* The map the receiver waits on (set once it runs). */
void seq_loads_set_cluster(seq_loads *l, struct seq_cluster *c);

/* The next offset to apply: every operation below it is applied (or refused). */
int64_t seq_loads_applied(const seq_loads *l);
/* 1 when this node holds partition p and has every kept load's part of it. */
int seq_loads_filled(const seq_loads *l, uint32_t p);
/* 1 while a held partition is not filled yet. */
int seq_loads_filling(const seq_loads *l);

/* For /status (new reference): {"topic", "applied", "filling", "filled_files" (files
 * ingested by fills since this process started: 0 after a restart with the data dir),
 * "needs": [{"sequence", "generation", "batch_dir"}]}: the batch directories (as the loads named them, under
 * the batch root) of every load whose data this node's history keeps, which a partition
 * it acquires would be filled from: they must stay on the shared root. Admin thread. */
json_t *seq_loads_status(seq_loads *l);

/* For this node's cluster map record (new reference, NULL on OOM): the impact counts of
 * the newest loads and dry runs it applied, per partition it held then:
 * [{"at": offset, "parts": [[p, users_emptied, stream_events_hidden], ...]}, ...].
 * Call after seq_loads_applied: the counts of every operation below it are there. */
json_t *seq_loads_impact(seq_loads *l);

/* LoadBatch on a cluster member. deadline_ns: absolute CLOCK_MONOTONIC, 0 = none (a
 * default applies). SEQ_OK with res: users, events, files summed over the parts (the
 * receiver verifies them all); users_emptied and stream_events_hidden summed over one
 * holder of each partition (each node counts its partitions' as it applies the record,
 * seq_loads_impact, seq_cluster_impact). A dry run is written to the log as a dry_run
 * record that every node verifies and counts for its partitions, changing nothing, and
 * answered the same way; its record expires a minute after the answer was due, and a node
 * that reads it later (a restart, a new node) skips it without reading a file
 * (loads_record.h "expires_ms"). The verification's errors (storage/batch.h) with nothing written;
 * SEQ_EPRECONDITION for a batch that is not partitioned; SEQ_EUNAVAILABLE "committed;
 * pending on NODES" past the deadline (the record is written), or without a broker, or
 * naming the partitions whose impact no holder counted (every holder refused it where the
 * receiver did not, e.g. a file its mount does not show yet: a dry run is not retried),
 * instead of counts that would be short. */
int seq_loads_load(seq_loads *l, const seq_load_req *req, uint64_t deadline_ns,
                   seq_load_result *res, char *msg, size_t msglen);
/* RollbackBatch on a cluster member: as seq_store_rollback_batch, then as above. */
int seq_loads_rollback(seq_loads *l, const char *sequence, uint64_t to, uint64_t deadline_ns,
                       uint64_t *gen, char *msg, size_t msglen);

#endif
