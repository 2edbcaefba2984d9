/* An in-memory filter of the event ids stored on the stream path, so that applying an event
 * needs no RocksDB read (issue 10): "definitely new" for nearly every event, "maybe seen"
 * for the copies of an id already stored (redeliveries, corrections) and a small share of
 * false positives, which the writer then looks up ('i' key, store_batch.c). No false
 * negatives: every id added is reported as maybe seen for the filter's lifetime.
 *
 * A scalable blocked Bloom filter: layers of 512-bit blocks, 16 bits and 7 probes per id
 * (well under 1 % false positives per layer); when the newest layer holds its capacity a
 * layer four times as large is added, and a query asks every layer (their false-positive
 * rates add up: few, large layers). About 2-3 bytes per id. Ids are never removed (an id whose data
 * retention dropped costs only a possible false positive). Built at open from the stored
 * 'i' keys (store.c). Pure; not thread-safe (one writer). */
#ifndef SEQ_IDFILTER_H
#define SEQ_IDFILTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct seq_idfilter seq_idfilter;

/* expected: the number of ids to size the first layer for (at least 65536 are). NULL on
 * OOM. */
seq_idfilter *seq_idfilter_new(uint64_t expected);
void seq_idfilter_free(seq_idfilter *f);

/* 0 on success, -1 on OOM (then the id may read as new: callers treat OOM as fatal for
 * the write, which is retried). */
int seq_idfilter_add(seq_idfilter *f, uint64_t hash);
/* 0: never added. 1: maybe added. */
int seq_idfilter_maybe(const seq_idfilter *f, uint64_t hash);

/* Ids added and bytes held, for /metrics. */
uint64_t seq_idfilter_count(const seq_idfilter *f);
size_t seq_idfilter_bytes(const seq_idfilter *f);

/* The hash the filter is keyed by: one user's id in one sequence. */
uint64_t seq_idfilter_hash(uint32_t seq, uint64_t user, const char *id, uint32_t id_len);

#endif
