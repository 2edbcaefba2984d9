/* Fork-join helper threads for the stream consumer's write lanes (consumer.c): the
 * consumer thread fills one store batch per lane, then seq_lanes_run commits them at once,
 * lane 0 on the calling thread and every other lane on a helper thread of its own, and
 * returns once all are done. RocksDB inserts concurrent writes into the memtable in
 * parallel, so the commits (most of a stream event's cost: bench/NOTES.md, "Session 6")
 * use the second core. Nothing here knows about Kafka or storage: fn does the work.
 *
 * seq_lanes_run is called by one thread at a time (the consumer's). What fn(arg, i)
 * writes is visible to the caller when seq_lanes_run returns, and what the caller wrote
 * before the call is visible to fn (a mutex hands the work over both ways). */
#ifndef SEQ_LANES_H
#define SEQ_LANES_H

#include <stdint.h>

#define SEQ_LANES_MAX 8

typedef struct seq_lanes seq_lanes;
typedef void (*seq_lane_fn)(void *arg, uint32_t lane);

/* n lanes (1..SEQ_LANES_MAX): n - 1 helper threads, named "seqd-laneI" (top -H, the
 * bench's CPU per thread). SEQ_OK, SEQ_EINVAL (n out of range) or SEQ_EINTERNAL (no
 * thread). */
int seq_lanes_new(uint32_t n, seq_lane_fn fn, void *arg, seq_lanes **out);
/* Stops and joins the helpers. NULL is fine. */
void seq_lanes_free(seq_lanes *l);
uint32_t seq_lanes_count(const seq_lanes *l);

/* Runs fn(arg, i) for every lane i with active[i] != 0, at the same time, and returns
 * when every one has returned. */
void seq_lanes_run(seq_lanes *l, const uint8_t *active);

#endif
