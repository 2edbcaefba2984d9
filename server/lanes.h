/* Helper threads for the stream consumer's write lanes (consumer.c): the consumer thread
 * fills one store batch per lane, then seq_lanes_start hands them to the lanes, one
 * helper thread per lane, which commit them at once, and returns at once: the consumer
 * fills the next batches meanwhile (the pipeline: consumer.c's top comment) and calls
 * seq_lanes_wait before it decides anything that depends on the commit. RocksDB inserts
 * concurrent writes into the memtable in parallel, so the commits (most of a stream
 * event's cost: bench/NOTES.md, "Session 6") and the next batch's decoding use both
 * cores. Nothing here knows about Kafka or storage: fn does the work.
 *
 * One thread (the consumer's) calls start, wait and run, and at most one run is in
 * flight: start after a start without a wait in between waits first. What the caller
 * wrote before start is visible to fn, and what fn(arg, i) writes is visible to the
 * caller once wait returns (a mutex hands the work over both ways). */
#ifndef SEQ_LANES_H
#define SEQ_LANES_H

#include <stdint.h>

#define SEQ_LANES_MAX 8

typedef struct seq_lanes seq_lanes;
typedef void (*seq_lane_fn)(void *arg, uint32_t lane);

/* n lanes (1..SEQ_LANES_MAX): n helper threads, named "seqd-laneI" (top -H, the bench's
 * CPU per thread). SEQ_OK, SEQ_EINVAL (n out of range) or SEQ_EINTERNAL (no thread). */
int seq_lanes_new(uint32_t n, seq_lane_fn fn, void *arg, seq_lanes **out);
/* Waits for a run in flight, then stops and joins the helpers. NULL is fine. */
void seq_lanes_free(seq_lanes *l);
uint32_t seq_lanes_count(const seq_lanes *l);

/* Starts fn(arg, i) for every lane i < n with active[i] != 0, each on its lane's thread,
 * all at the same time, and returns without waiting for them. */
void seq_lanes_start(seq_lanes *l, const uint8_t *active);
/* Returns once every lane of the last start has returned (at once with none in flight). */
void seq_lanes_wait(seq_lanes *l);
/* start, then wait. */
void seq_lanes_run(seq_lanes *l, const uint8_t *active);

#endif
