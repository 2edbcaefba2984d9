/* Bucket blobs: the stored form of one (user, sequence, bucket) slice, shared by the
 * stream path, the batch builder and the read path. A blob holds records sorted newest
 * first (time descending, then event_id bytewise descending, then applied_ms descending).
 * Among the records with replaced_ms == 0 (the live ones) ids are unique; a stream blob
 * may also hold copies a correction replaced (same id, replaced_ms != 0), kept for as-of
 * reads (PRODUCT.md "As of T") until they are older than --history-ms.
 *
 * Layout (little-endian): header u8 version, u8[3] zero, u32 count; then per record
 *   version 1 (batch blobs, stream blobs written before apply times were kept):
 *     i64 time_ms, u64 item_id, u16 type_idx, u8 id_len, u8 n_cols, id bytes, n_cols f64
 *   version 2 (stream blobs): the same with i64 applied_ms, i64 replaced_ms after n_cols.
 * Each record carries its own n_cols, so columns appended to the definition later read
 * as their default for older records. A version-1 record reads as applied_ms 0 (unknown)
 * and replaced_ms 0 (live). */
#ifndef SEQ_BLOB_H
#define SEQ_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

/* A record view. Pointers point into a blob (or, when building, into caller memory). */
typedef struct {
    int64_t time_ms;
    uint64_t item_id;
    uint32_t type_idx;
    uint32_t id_len;
    const char *id;
    uint32_t n_cols;
    const uint8_t *cols; /* n_cols doubles, unaligned, little-endian */
    uint64_t gen;        /* batch generation the record came from; 0 for the stream */
    /* Stream records: the server's wall clock (ms) when the consumer applied this copy
     * (stored, so it survives restarts and replays); 0 for batch records and for stream
     * records stored before apply times were kept. */
    int64_t applied_ms;
    /* 0: the live copy. Otherwise the wall clock (ms) at which a later copy of the same
     * event_id (a correction or a redelivered duplicate) replaced this one: the copy is
     * kept only so that an as-of read before that time sees it, never shown by a normal
     * read, and dropped once replaced_ms < now - history_ms. */
    int64_t replaced_ms;
} seq_rec;

/* Is r part of the answer as of time as_of (0 = now)? A copy counts from its apply time
 * until a later copy replaced it. Batch records (applied 0, never replaced) always do. */
static inline int seq_rec_live_at(const seq_rec *r, int64_t as_of)
{
    if (as_of == 0) return r->replaced_ms == 0;
    return r->applied_ms <= as_of && (r->replaced_ms == 0 || r->replaced_ms > as_of);
}

/* Column i of r, or dflt when the record has fewer columns. */
double seq_rec_col(const seq_rec *r, uint32_t i, double dflt);

/* Read order: < 0 when a comes before b (newer; equal times: larger id first). */
int seq_rec_cmp(const seq_rec *a, const seq_rec *b);

typedef struct {
    const uint8_t *p, *end;
    uint32_t left;
    uint32_t fixed; /* fixed bytes per record: SEQ_BLOB_REC_FIXED or SEQ_BLOB_REC_FIXED2 */
} seq_blob_iter;

/* SEQ_OK or SEQ_EINVAL (bad header, unknown version). */
int seq_blob_iter_init(seq_blob_iter *it, const void *blob, size_t len);
#define SEQ_BLOB_REC_FIXED 20  /* v1: time 8 + item 8 + type 2 + id_len 1 + n_cols 1 */
#define SEQ_BLOB_REC_FIXED2 36 /* v2: v1 + applied_ms 8 + replaced_ms 8 */

/* 1: *r filled (gen 0); 0: end; -1: corrupt blob. Inline: the read path
 * decodes every record of a user's buckets per request. */
static inline int seq_blob_iter_next(seq_blob_iter *it, seq_rec *r)
{
    if (it->left == 0) return it->p == it->end ? 0 : -1;
    size_t fixed = it->fixed;
    if ((size_t)(it->end - it->p) < fixed) return -1;
    const uint8_t *p = it->p;
    uint16_t t;
    memcpy(&r->time_ms, p, 8);
    memcpy(&r->item_id, p + 8, 8);
    memcpy(&t, p + 16, 2);
    r->type_idx = t;
    r->id_len = p[18];
    r->n_cols = p[19];
    size_t need = fixed + r->id_len + (size_t)r->n_cols * 8;
    if ((size_t)(it->end - p) < need) return -1;
    if (fixed == SEQ_BLOB_REC_FIXED2) {
        memcpy(&r->applied_ms, p + 20, 8);
        memcpy(&r->replaced_ms, p + 28, 8);
    } else {
        r->applied_ms = r->replaced_ms = 0;
    }
    r->id = (const char *)p + fixed;
    r->cols = p + fixed + r->id_len;
    r->gen = 0;
    it->p = p + need;
    it->left--;
    return 1;
}
/* A cheap 6-bit hash of an id, for 64-bit sets of a few ids (the read path pairs a few
 * stream ids with many batch ids through one: a clear bit rules a batch id out). */
static inline unsigned seq_id_bit(const char *id, uint32_t len)
{
    return (len ? (uint8_t)id[0] * 7u + (uint8_t)id[len - 1] + len * 13u : 0u) & 63;
}

/* Number of records a valid blob holds (from its header). */
uint32_t seq_blob_count(const void *blob, size_t len);

/* ---- stream blobs (version 2): written only by folding merge operands ----
 * The consumer never reads a bucket to change it: each change is a RocksDB merge operand
 * of the bucket's key, and storage's merge operator folds operands into the blob when a
 * read or a compaction meets them (storage/store_merge.c). An operand is
 *   'A' + one version-2 record: a new copy; the live copy of its id in the bucket, if
 *        any, is marked replaced at the new copy's applied_ms;
 *   'R' + i64 at + id bytes: the id moved to another bucket; its live copy here is
 *        marked replaced at `at`.
 * Header byte 1, bit 0 (SEQ_BLOB_DAMAGED): part of what was folded into this blob could
 * not be decoded (damaged stored data): reads of it answer DATA_LOSS. */
#define SEQ_BLOB_DAMAGED 1

/* out is reset, then receives the operand. SEQ_OK or SEQ_EINTERNAL (OOM, id > 255). */
int seq_blob_op_add(seq_buf *out, const seq_rec *rec);
int seq_blob_op_replace(seq_buf *out, const char *id, uint32_t id_len, int64_t at);

/* Called for each part a fold could not decode: index -1 the base, else the operand. */
typedef void (*seq_blob_bad_fn)(void *ctx, int index, const void *bytes, size_t len);

/* out is reset, then receives base (NULL/0: none; version 1 or 2) with the n operands
 * applied oldest first, as a version-2 blob in read order (a newer copy of an id before
 * an older one with the same time), without the replaced copies whose replaced_ms is
 * below drop_before (now - history_ms; INT64_MAX keeps none). Never fails on bad input:
 * an undecodable base (what decoded of it is kept) or operand is reported to bad (may be
 * NULL) and the output is marked SEQ_BLOB_DAMAGED, as it is when base was. SEQ_OK, or
 * SEQ_EINTERNAL (out of memory). n = 0 just drops expired copies. */
int seq_blob_fold(seq_buf *out, const void *base, size_t baselen, const char *const *ops,
                  const size_t *lens, int n, int64_t drop_before, seq_blob_bad_fn bad,
                  void *ctx);
/* Is the blob marked damaged (see above)? */
int seq_blob_damaged(const void *blob, size_t len);

/* Smallest replaced_ms of a replaced copy in a valid blob, INT64_MAX when none (so that a
 * compaction rewrites a blob only when a copy expired). */
int64_t seq_blob_oldest_replaced(const void *blob, size_t len);

/* Batch blobs (version 1): out is reset, then receives a blob of recs, which must already
 * be sorted in read order with unique ids. */
int seq_blob_build(seq_buf *out, const seq_rec *recs, size_t n);

#endif
