/* The merge policy: what one read returns, from the stream's records and the batch's
 * records of one user and sequence, at server time `now` (PRODUCT.md rules 1-5 and the
 * "Order of cuts"). Pure: takes `now` as an argument, so tests pin the clock.
 *
 *   C = now - horizon; floor = now - retention.
 *   - batch owns t < C inside committed coverage: exactly the batch's events there;
 *   - stream events elsewhere; batch events at t >= C too; duplicates by event_id:
 *     a batch copy shown in covered history wins everywhere, otherwise the stream's;
 *   - within retention, newest first, cut to max_length = the sequence;
 *   - then since/until and the type filter select, then max_events keeps the newest N. */
#ifndef SEQ_MERGE_H
#define SEQ_MERGE_H

#include <stdint.h>

#include "blob.h"
#include "def.h"

/* One owned slice of coverage: [start_ms, end_ms) belongs to generation gen. Segments
 * are bucket-aligned, sorted by start, non-overlapping. */
typedef struct {
    int64_t start_ms, end_ms;
    uint64_t gen;
} seq_cov_seg;

/* Which paths a read answers from (PRODUCT.md "Views"); the values are the API's enum. */
typedef enum { SEQ_VIEW_MERGED = 0, SEQ_VIEW_STREAM = 1, SEQ_VIEW_BATCH = 2 } seq_view;
#define SEQ_VIEW_MAX SEQ_VIEW_BATCH

typedef struct {
    int64_t now_ms;
    int64_t horizon_ms;
    const seq_sequence *seq;
    const seq_cov_seg *cov; /* may be NULL when n_cov == 0 */
    uint32_t n_cov;
    /* the request; 0 = not set */
    uint32_t max_events;
    int64_t since_ms; /* inclusive */
    int64_t until_ms; /* exclusive */
    uint64_t type_mask; /* bit i = seq->event_types[i]; 0 = all types */
    /* MERGED: rules 1-5. STREAM: the stream's records as if no batch were committed (cov
     * ignored). BATCH: the batch's records over their whole coverage (stream ignored).
     * Every cut of rule 5 applies in each. */
    seq_view view;
    /* 0: now. Otherwise an as-of read (now_ms is then that time too): stream copies count
     * as they stood then (blob.h seq_rec_live_at), the reader's concern. */
    int64_t as_of_ms;
} seq_merge_params;

/* C = now - horizon: times below it are history (the batch's where covered), at or
 * above it recent (PRODUCT.md "Semantics"). The one place the cutoff is computed: every
 * module asks here. */
int64_t seq_merge_cutoff(int64_t now_ms, int64_t horizon_ms);

/* Generation owning time t, 0 when t is in no coverage. */
uint64_t seq_merge_owner(const seq_merge_params *p, int64_t t);

/* Could a stream record at time t be shown (within retention, not batch-owned
 * history)? The reader uses it to count what it has gathered. */
int seq_merge_stream_visible(const seq_merge_params *p, int64_t t);

/* How many visible stream records (newest first) a reader must gather before it may
 * stop, and the time below which it may stop regardless (max of retention floor and
 * since_ms). Gathering more than this is harmless. */
uint32_t seq_merge_need(const seq_merge_params *p);
int64_t seq_merge_stop_before(const seq_merge_params *p);

/* When a reader may stop gathering stream records (newest first, counting those
 * seq_merge_stream_visible lets through), given what it gathered of the batch: `hist`
 * batch records at t < C, each of which may hide one stream record by id (a batch copy in
 * covered history wins everywhere), so one more is needed per such record; `recent_batch`
 * when it gathered a batch record at t >= C, which a stream copy of its id anywhere
 * within retention hides, so that every stream record within retention matters. *need:
 * visible stream records to gather (UINT32_MAX: all); *stop_before: records older than
 * this may be left unread. Gathering more is harmless. Storage's read path asks this
 * instead of deriving the rules (tests/unit/test_store_merge_diff.c holds it to a read
 * of everything). */
void seq_merge_stream_stop(const seq_merge_params *p, uint32_t hist, int recent_batch,
                           uint32_t *need, int64_t *stop_before);

/* Length of [lo, hi) that no segment of cov (sorted, disjoint) covers; 0 when hi <= lo.
 * The completeness gap of PRODUCT.md with lo = now - retention_ms, hi = now - H. */
int64_t seq_merge_gap_ms(const seq_cov_seg *cov, uint32_t n, int64_t lo, int64_t hi);

typedef struct seq_merge_scratch seq_merge_scratch; /* per thread; reused across calls */
seq_merge_scratch *seq_merge_scratch_new(void);
void seq_merge_scratch_free(seq_merge_scratch *s);

/* stream: newest first, ids unique (ignored in the BATCH view). batch: records of the
 * generations in p->cov (each with rec.gen set), newest first per generation or overall (any order is accepted);
 * records whose owner(t) != rec.gen are ignored; an id present in two generations keeps
 * the higher generation's copy. out must hold p->seq->max_length pointers; it receives
 * the answer, newest first. Returns the count. Pointers stay valid as long as the inputs.
 * Provenance: out[i]->gen is 0 for a stream record and the generation whose data it is
 * for a batch record (the merge never mixes them up: tests/unit/test_engine_merge.c). */
uint32_t seq_merge_run(const seq_merge_params *p, const seq_rec *stream, uint32_t ns,
                       const seq_rec *batch, uint32_t nb, const seq_rec **out,
                       seq_merge_scratch *s);

#endif
