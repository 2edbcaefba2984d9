/* The cluster map (PRODUCT.md, "A cluster of nodes"): every node publishes what it holds
 * (id, group, advertised gRPC and admin addresses, held and caught-up partitions,
 * readiness, definition fingerprint, committed generations, a heartbeat) once a second to
 * `<topic>.seqd-cluster` (one partition, keyed by node id), and reads everyone's. A node
 * silent for SEQ_CLUSTER_SILENT_MS, or that published its leave (a null record, on a clean
 * stop), is out of the map. Runs on a thread of its own; the gRPC workers ask it, per
 * forwarded call, which nodes hold a partition (seq_cluster_route), under a read lock.
 *
 * Data path: consumer state + store view -> this node's record -> Kafka -> every node's
 * map -> /cluster, ClusterService/GetClusterMap, and the routing of reads (route.c). */
#ifndef SEQ_CLUSTER_H
#define SEQ_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"
#include "../engine/def.h"
#include "../storage/store.h"
#include "consumer.h"

#define SEQ_CLUSTER_SILENT_MS 10000
#define SEQ_CLUSTER_MAX_NODES 256
#define SEQ_CLUSTER_MAX_PARTS 1024 /* = SEQ_CLUSTER_RECORD_MAX_PARTS */

typedef struct seq_cluster seq_cluster;

typedef struct {
    const char *node_id;
    const char *group;
    const char *topic;      /* the event topic; the map's is topic + ".seqd-cluster" */
    const char *grpc;       /* advertised gRPC HOST:PORT (copied) */
    const char *admin;      /* admin HOST:PORT as bound (copied) */
    const seq_def *def;     /* fingerprint, sequence names */
    seq_store *store;       /* committed generations */
    seq_consumer *consumer; /* held and caught-up partitions, readiness, brokers */
    const struct seq_kafkaconf *kafka_conf;
} seq_cluster_config;

/* The name of the map's topic for an event topic, into out. */
void seq_cluster_topic_name(const char *topic, char *out, size_t outlen);

/* Makes sure the map's topic and `<topic>.seqd-loads` exist (creating them, with a real
 * broker, when missing;
 * SEQ_EPRECONDITION saying how to create it when the broker refuses), then starts the
 * thread. Brokers that do not answer are not an error: the thread keeps trying. */
int seq_cluster_start(const seq_cluster_config *cfg, seq_cluster **out, char *err, size_t errlen);
/* Publishes the leave record (best effort), stops the thread, frees c. NULL is fine. */
void seq_cluster_stop(seq_cluster *c);

/* The map as JSON text (malloc'd, caller frees): the body of GET /cluster. */
char *seq_cluster_json(seq_cluster *c);
/* The map as an encoded seqd.v1.ClusterMap appended to out. SEQ_OK or SEQ_EINTERNAL. */
int seq_cluster_encode(seq_cluster *c, seq_buf *out);

/* NULL, or why this node must stop: in its first seconds it found another live node
 * publishing with its id (it then never publishes; main exits 2 with the message). */
const char *seq_cluster_fenced(seq_cluster *c);
/* Waits until the node's first seconds in the map are over (a twin would have shown up
 * and been probed); returns seq_cluster_fenced. Main calls it before the consumer joins
 * its group, so that a twin never takes the live node's static membership. */
const char *seq_cluster_wait_window(seq_cluster *c);
/* Publishes this node's record at the next refresh (within REFRESH_MS) instead of at the
 * next second: a change others wait for (a load applied: server/loads.c) reaches them
 * sooner. Any thread. */
void seq_cluster_publish_soon(seq_cluster *c);
/* This node's id. */
const char *seq_cluster_self(const seq_cluster *c);
/* The topic's partition count (0 while unknown). */
uint32_t seq_cluster_partitions(const seq_cluster *c);
/* 1 when this node holds partition p (as of the last refresh, every ~200 ms). */
int seq_cluster_holds(const seq_cluster *c, uint32_t p);

/* 1 when this node holds p and has consumed it to the log's end (with or without a
 * gap). This node's own partitions are its consumer's current assignment (updated at
 * every assignment change, seq_consumer_on_assignment), not its last published record. */
int seq_cluster_caught_up(const seq_cluster *c, uint32_t p);
/* 1 when this node holds p caught up *with a gap* (seq_consumer_part.gap_from_ms). */
int seq_cluster_gap(const seq_cluster *c, uint32_t p);
/* 1 when another node of the map holds p caught up; without_gap: caught up without a
 * gap (read lock). */
int seq_cluster_caught_up_elsewhere(seq_cluster *c, uint32_t p, int without_gap);
/* The cluster-wide loads (loads.h) this node publishes the progress of ("loads",
 * "filling") and gates its caught-up partitions on (held and filled). */
struct seq_loads;
void seq_cluster_set_loads(seq_cluster *c, struct seq_loads *l);
/* How many cluster members of the map that hold a partition have not applied every
 * operation of `<topic>.seqd-loads` below next (or are still filling a partition); their
 * ids, comma-separated, into names. Who is waited for: the holders of partitions in the
 * current map that are members (their record publishes a "loads" position). A node that
 * publishes none is a single node (no --group, --instance-id or --advertise, server/main.c
 * cluster_member) on the same broker and topic: it never applies the cluster's loads (its
 * own stay local), so waiting for it would wait forever. A member publishes its position
 * from before it holds any partition (main starts its loads before its consumer joins).
 * Read lock. */
int seq_cluster_pending(seq_cluster *c, int64_t next, char *names, size_t len);
/* How many nodes of the map hold some of the np partitions but not all of them (where
 * a batch built without --partitions cannot load); their ids, comma-separated, into
 * names. Read lock. */
int seq_cluster_partial(seq_cluster *c, uint32_t np, char *names, size_t len);
/* The impact counts of the load or dry run at offset `at` of `<topic>.seqd-loads`, summed
 * over one node of each of the np partitions (the first in the map whose record counts
 * it: replicas in other groups count the same users again): *emptied users_emptied,
 * *hidden stream_events_hidden. Returns how many partitions were counted; those no record
 * counts (every holder refused the operation, or no node held them), comma-separated,
 * into missing (len bytes, "..." when cut; "" when none). Read lock. */
uint32_t seq_cluster_impact(seq_cluster *c, int64_t at, uint32_t np, uint64_t *emptied,
                            uint64_t *hidden, char *missing, size_t len);

/* Other nodes that hold partition p, best first: caught up without a gap, caught up
 * with a gap, still filling, and in each this node's group before others; then, when
 * there is any and this node holds p itself, this node's own address (a call forwarded
 * back to itself is read here: the last resort of a holder that forwards because it is
 * filling or has a gap). Up to max advertised gRPC addresses copied into addrs[i] (each
 * SEQ_CLUSTER_ADDR bytes). Returns how many. */
#define SEQ_CLUSTER_ADDR 128
int seq_cluster_route(seq_cluster *c, uint32_t p, char (*addrs)[SEQ_CLUSTER_ADDR], int max);

#endif
