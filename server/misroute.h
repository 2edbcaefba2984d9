/* Misrouted events (PRODUCT.md, "A cluster of nodes"): an event that arrives on another
 * partition than its user's (a producer with another partitioner than Kafka's murmur2)
 * is re-produced by the consumer that read it to its user's partition, keyed by the user
 * id, with the header `seqd-origin: P:OFFSET` naming where it arrived; the user's owner
 * applies it from there, once per origin (origins.h: a copy at or below the highest
 * origin offset applied from P is skipped, a rule that needs this module's producer to
 * write each owner partition's copies in order and without gaps). Sits inside the
 * stream consumer's data path: consumer.c asks seq_misroute_check for every decoded
 * message and flushes the copies (seq_misroute_flush) before it commits the batch, so
 * that the offset on the partition the event arrived on is stored only once its copy is
 * delivered.
 *
 * One instance per consumer, used by the consumer thread only (the counters are read by
 * any thread). */
#ifndef SEQ_MISROUTE_H
#define SEQ_MISROUTE_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct seq_kafkaconf;
struct seq_origins;
typedef struct seq_misroute seq_misroute;

typedef struct {
    _Atomic uint64_t misrouted;  /* events that arrived on another partition than their user's */
    _Atomic uint64_t reproduced; /* copies delivered to the user's partition */
    _Atomic uint64_t duplicates; /* copies at or below the highest applied origin, skipped */
} seq_misroute_stats;

/* A producer on brokers/topic with the --kafka-config properties (kc must outlive mr: a
 * producer stopped by a fatal error is made anew with them). SEQ_OK or an error with a
 * message. */
int seq_misroute_new(const char *brokers, const char *topic, const struct seq_kafkaconf *kc,
                     seq_misroute **out, char *err, size_t errlen);
void seq_misroute_free(seq_misroute *mr);
seq_misroute_stats *seq_misroute_get_stats(seq_misroute *mr);

enum {
    SEQ_ROUTE_APPLY = 0, /* on its user's partition, not a copy or a copy above the highest
                          * origin applied: apply it */
    SEQ_ROUTE_SENT = 1,  /* misrouted: a copy is on its way to the user's partition; skip */
    SEQ_ROUTE_DUP = 2,   /* a copy at or below the highest origin applied: skip */
};
/* Decides what to do with message m of a topic of n_partitions whose event belongs to
 * user_id; o holds the origins applied on m's partition (a copy applied is recorded in
 * the batch's state there: seq_origins_admit). Misrouted: queues the copy
 * (SEQ_ROUTE_SENT; an enqueue failure is SEQ_EUNAVAILABLE so that the batch is retried);
 * SEQ_EINTERNAL when out of memory. Counts are kept pending until seq_misroute_flush. */
int seq_misroute_check(seq_misroute *mr, struct seq_origins *o, const rd_kafka_message_t *m,
                       uint64_t user_id, uint32_t n_partitions);
/* Waits until every copy queued since the last flush is delivered or failed, for at most
 * 10 s, or until *stop is set, and publishes the pending counts. SEQ_OK, or
 * SEQ_EUNAVAILABLE with a message when a copy failed or is still undelivered: what is
 * still queued or in flight is dropped, and the caller must not commit the batch (it is
 * retried, and the copies produced again: the owner skips those it applied). */
int seq_misroute_flush(seq_misroute *mr, const _Atomic int *stop, char *err, size_t errlen);
/* Forgets the counts of a batch that will be retried (its messages come again); makes a
 * new producer if this one stopped on a fatal error. */
void seq_misroute_discard(seq_misroute *mr);

#endif
