/* The streaming path: consumes the Kafka topic (or an embedded librdkafka mock cluster
 * when no brokers are given), decodes each message, runs the shared executor and writes
 * the kept events together with the partition offsets that produced them in atomic
 * store commits, one per write lane (a lane holds a share of the partitions; the lanes
 * commit at once, on threads of their own). Runs on its own thread; the service reads
 * the stream watermark it publishes, the admin server its per-partition state and
 * counts. */
#ifndef SEQ_CONSUMER_H
#define SEQ_CONSUMER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/def.h"
#include "../storage/store.h"
#include "config.h"
#include "misroute.h"

typedef struct seq_consumer seq_consumer;

/* Counts since the process started; updated only after the batch that produced them
 * committed. Readers load them relaxed. */
typedef struct {
    _Atomic uint64_t applied;              /* events kept by at least one sequence */
    _Atomic uint64_t malformed;            /* undecodable or unstorable */
    _Atomic uint64_t future;               /* decoded, but too far in the future (max_future_ms) */
    _Atomic uint64_t skipped_unknown_type; /* no sequence declares the type */
    _Atomic uint64_t filtered;             /* declared, but every keeping sequence filtered it */
    _Atomic uint64_t late_batch_owned;     /* stored, but in batch-owned history */
    _Atomic int64_t lag;                   /* messages not yet consumed, over all partitions */
    _Atomic int caught_up;                 /* assigned and no partition has unconsumed messages */
    _Atomic int brokers_down;              /* the last metadata probe found no usable broker */
    _Atomic int store_failing;             /* the last store commit failed (being retried) */
    _Atomic uint64_t store_errors;         /* failed store commits (each retried) */
    _Atomic uint64_t partitions_dropped;   /* revoked partitions whose stream data was dropped */
} seq_consumer_stats;

typedef struct {
    const char *brokers; /* NULL: start the embedded mock cluster */
    const char *topic;
    const char *group;
    seq_format format;
    int embedded_partitions; /* partitions of the embedded topic; 0 = 8 */
    const seq_def *def;
    seq_store *store;
    const char *data_dir;  /* the store's directory, for the free-space check */
    uint64_t min_free_bytes; /* commits wait while less is free there; 0 = no check */
    /* Where the stream watermark (PRODUCT.md) is published, in ms; owned by the caller,
     * read by the service on every response. */
    _Atomic int64_t *stream_watermark;
    const struct seq_kafkaconf *kafka_conf; /* --kafka-config properties; may be NULL */
    struct seq_wmhist *wmhist; /* notes the newest applied event time (wmhist.h); may be NULL */
    /* Consumer-group membership (replica groups): 0 = standalone, this node assigns every
     * partition itself; 1 = subscribe with `group` (cooperative-sticky) and hold what the
     * group assigns. instance_id: static membership (group.instance.id), NULL = dynamic. */
    int group_mode;
    const char *instance_id;
    /* Write lanes (--write-lanes, server/lanes.h): partition p's events are committed by
     * lane p % lanes, the lanes' commits at once; 0 = 1. */
    int lanes;
} seq_consumer_config;

typedef struct {
    int32_t partition;
    int64_t next_offset, high_offset, watermark_ms;
    /* Wall-clock ms when the partition last advanced or was seen consumed to its end:
     * now minus this is its watermark age, which grows on a stuck partition and stays
     * near 0 on a quiet one (its event-time watermark cannot tell the two apart). */
    int64_t progress_ms;
    int held;      /* this node holds it (its group assigned it here) */
    int caught_up; /* held, and consumed to the log's end once since this node took it */
    /* When the Kafka log had lost messages before this node read them (the log no longer
     * reached back to where the partition's stored data ends, or to its start): the
     * timestamp of the oldest message left, from which the node holds the partition's
     * stream; 0 when the log reached back. Persisted with the partition's data. */
    int64_t log_from_ms;
    /* PRODUCT.md "caught up with a gap": log_from_ms while it is later than what the
     * batches in effect and retention cover (seq_consumer_gap_cover); 0 = no gap. Held
     * partitions only. */
    int64_t gap_from_ms;
} seq_consumer_part;

/* Starts the embedded cluster if needed and the consumer thread. Once the topic exists
 * the thread assigns its partitions (standalone) or subscribes (group_mode); each
 * partition taken starts where the store's offsets for it say. */
int seq_consumer_start(const seq_consumer_config *cfg, seq_consumer **out, char *err,
                       size_t errlen);
/* Stops the thread (the last processed batch is committed), closes the Kafka consumer,
 * then the embedded cluster; frees c. */
void seq_consumer_stop(seq_consumer *c);

/* group_mode: the consumer subscribes only once this is called (main checks first that
 * no live node has this node's id: server/cluster.h). Standalone: no effect. */
void seq_consumer_join(seq_consumer *c);

/* fn(ctx) is called on the consumer thread after every change of the partitions this
 * node holds (an assignment or a revocation in its group, or a standalone node taking
 * every partition), before seq_consumer_wait_assigned sees the first one: the cluster
 * map (cluster.h) updates the node's own routing and publishes at once. fn must not call
 * back into the consumer but through seq_consumer_partitions. NULL unsets it; once this
 * returns, no call of the previous fn is running. Any thread. */
typedef void (*seq_consumer_assign_fn)(void *ctx);
void seq_consumer_on_assignment(seq_consumer *c, seq_consumer_assign_fn fn, void *ctx);

/* Asks the consumer thread to drop what the store holds of partition p (its stream data
 * and stored offset: seq_store_drop_partition), unless this node holds p by then. For the
 * cluster map, once p's new holder in this node's group is caught up. Any thread. */
void seq_consumer_drop_partition(seq_consumer *c, uint32_t p);

/* Waits until the first assignment arrived (1) or timeout_ms passed (0): main waits
 * so that the ready line comes with a complete /status. */
int seq_consumer_wait_assigned(seq_consumer *c, int timeout_ms);

/* 1 when the streaming path is healthy and caught up; else 0 and why (one line) in why:
 * partitions not assigned yet, brokers unreachable, store writes failing, or lag. */
int seq_consumer_ready(seq_consumer *c, char *why, size_t whylen);

/* The bootstrap list in use (the embedded cluster's when no brokers were given). */
const char *seq_consumer_brokers(const seq_consumer *c);
int seq_consumer_embedded(const seq_consumer *c);
seq_consumer_stats *seq_consumer_get_stats(seq_consumer *c);
/* Misrouted events and their copies (server/misroute.h). */
seq_misroute_stats *seq_consumer_misroute_stats(seq_consumer *c);
/* How far back the partitions' stream must reach for reads to miss nothing (ms): the
 * lowest, over the sequences, of the end of the newest batch range in effect or, where
 * that is older or there is none, now - retention_ms. Stream history before it is
 * either owned by a batch or beyond retention. INT64_MAX with no sequence. */
int64_t seq_consumer_gap_cover(const seq_consumer *c, int64_t now);
/* Copies up to max partitions' state (every partition of the topic, held or not);
 * returns how many the topic has (0 before it was found). Takes a mutex: for the admin server, not for the hot path. */
uint32_t seq_consumer_partitions(seq_consumer *c, seq_consumer_part *out, uint32_t max);

#endif
