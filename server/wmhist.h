/* The stream's newest applied event time over wall-clock time, for as-of reads
 * (PRODUCT.md "As of T": stream_watermark_ms is the newest event time applied by T). The
 * consumer notes the value after each commit, stamped with the commit's time; a reader
 * asks for the value at T. Kept in memory for --history-ms: exact for the last ten
 * minutes, then the last change of each second (so at most a second behind). The same
 * series is persisted with the data (the consumer puts the last change of each second in
 * its commit: seq_store_batch_set_newest, storage/store.h) and noted back in time order
 * at start (server/main.c), so times before a restart keep their answer at that
 * second's resolution. Before the oldest value noted (a data dir from before the series
 * was stored, or older than --history-ms) it is that oldest value. Thread-safe: one
 * writer, any readers. */
#ifndef SEQ_WMHIST_H
#define SEQ_WMHIST_H

#include <stdint.h>

typedef struct seq_wmhist seq_wmhist;

/* keep_ms: how far back answers are kept (entries older are dropped). NULL on OOM. */
seq_wmhist *seq_wmhist_new(int64_t keep_ms);
void seq_wmhist_free(seq_wmhist *h);

/* The newest applied event time is `wm` at wall time now_ms. h may be NULL (ignored). */
void seq_wmhist_note(seq_wmhist *h, int64_t now_ms, int64_t wm);

/* The newest applied event time as of t (0 when nothing was noted by then). */
int64_t seq_wmhist_at(seq_wmhist *h, int64_t t);

#endif
