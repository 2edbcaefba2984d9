/* Which misrouted copies a partition's owner applies (PRODUCT.md "A cluster of nodes":
 * applied once per origin). A copy of a misrouted event (misroute.h) carries
 * `seqd-origin: P:OFFSET`; several replica groups, retried batches and replays after a
 * crash may each re-produce one origin. The rule: per (owner partition Q, origin
 * partition P), the highest origin offset applied on Q; a copy at or below it is skipped,
 * a copy above it applied (and raises it). It is exact because each re-producer writes
 * P's copies for Q in P's offset order without gaps (misroute.c: idempotent, gapless,
 * no per-message timeout), so a copy at or below the highest applied was applied
 * before, from whichever group or attempt delivered it first; and because the state is
 * stored in the same atomic write as Q's events and offsets (rule 7: store.h
 * seq_store_batch_set_origin), a restart resumes Q with the state that its stored offset
 * was reached with, and decides every later copy the same way.
 *
 * In memory per Q: the stored values (a cache of what RocksDB holds) and the values with
 * the batch being applied; a commit makes the second the first (seq_origins_committed),
 * a failed one drops the batch's (seq_origins_discard). Q's state is loaded when the
 * node takes Q on (seq_origins_load), before Q's first message is applied, and goes with
 * a dropped partition (seq_store_drop_partition range-deletes it; seq_origins_forget):
 * a later holder that fills Q from the log rebuilds it from the copies it replays. Memory:
 * 16 bytes per (Q, P) pair for the Qs that saw a copy or had state stored (a 1024-
 * partition topic whose partitions all receive misrouted copies: 16 MiB).
 *
 * One instance per consumer; consumer thread only. */
#ifndef SEQ_ORIGINS_H
#define SEQ_ORIGINS_H

#include <stddef.h>
#include <stdint.h>

#include "../storage/store.h"

typedef struct seq_origins seq_origins;

/* For a topic of n_parts partitions; NULL when out of memory. */
seq_origins *seq_origins_new(uint32_t n_parts);
void seq_origins_free(seq_origins *o);

/* Q taken on: its state becomes what st stores for it (nothing: every copy applies).
 * Between batches only. SEQ_OK, or the store's error (seq_store_get_origins: a damaged
 * or unreadable value, message in err) with what could be read loaded; SEQ_EINTERNAL
 * when out of memory. */
int seq_origins_load(seq_origins *o, seq_store *st, uint32_t q, char *err, size_t errlen);
/* Q's state dropped (its partition dropped, or its log new: the embedded cluster).
 * Between batches only. */
void seq_origins_forget(seq_origins *o, uint32_t q);

/* A copy of origin (p, off) arrives on q: 0 = apply it (recorded in the batch's state),
 * 1 = a copy at or below the highest applied: skip it. An origin that names no partition
 * of the topic (p >= n_parts), or a q outside it, is applied and not recorded. -1 when
 * out of memory (the batch must fail and be retried). */
int seq_origins_admit(seq_origins *o, uint32_t q, uint32_t p, int64_t off);

/* Puts the batch's changed pairs into the store batch of their Q (batch_of(ctx, q): the
 * batch that also writes q's events and offset). */
typedef seq_store_batch *(*seq_origins_batch_fn)(void *ctx, uint32_t q);
void seq_origins_stage(seq_origins *o, seq_origins_batch_fn batch_of, void *ctx);
/* The write that held q's staged pairs succeeded (q < 0: every Q's). */
void seq_origins_committed(seq_origins *o, int64_t q);
/* Drops what the batch changed and was not committed (the batch is retried). */
void seq_origins_discard(seq_origins *o);

/* How many (Q, P) pairs the batch changed (not committed or discarded yet). */
size_t seq_origins_pending(const seq_origins *o);
/* The highest origin offset applied on q from p, with the batch's copies (-1: none). */
int64_t seq_origins_highest(const seq_origins *o, uint32_t q, uint32_t p);

#endif
