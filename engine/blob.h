/* Bucket blobs: the stored form of one (user, sequence, bucket) slice, shared by the
 * stream path, the batch builder and the read path. A blob holds records sorted newest
 * first (time descending, then event_id bytewise descending), ids unique.
 *
 * Layout (little-endian): header u8 version=1, u8[3] zero, u32 count; then per record
 * i64 time_ms, u64 item_id, u16 type_idx, u8 id_len, u8 n_cols, id bytes, n_cols f64.
 * Each record carries its own n_cols, so columns appended to the definition later read
 * as their default for older records. */
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
} seq_rec;

/* Column i of r, or dflt when the record has fewer columns. */
double seq_rec_col(const seq_rec *r, uint32_t i, double dflt);

/* Read order: < 0 when a comes before b (newer; equal times: larger id first). */
int seq_rec_cmp(const seq_rec *a, const seq_rec *b);

typedef struct {
    const uint8_t *p, *end;
    uint32_t left;
} seq_blob_iter;

/* SEQ_OK or SEQ_EINVAL (bad header). */
int seq_blob_iter_init(seq_blob_iter *it, const void *blob, size_t len);
#define SEQ_BLOB_REC_FIXED 20 /* time 8 + item 8 + type 2 + id_len 1 + n_cols 1 */

/* 1: *r filled (gen 0); 0: end; -1: corrupt blob. Inline: the read path
 * decodes every record of a user's buckets per request. */
static inline int seq_blob_iter_next(seq_blob_iter *it, seq_rec *r)
{
    if (it->left == 0) return it->p == it->end ? 0 : -1;
    if ((size_t)(it->end - it->p) < SEQ_BLOB_REC_FIXED) return -1;
    const uint8_t *p = it->p;
    uint16_t t;
    memcpy(&r->time_ms, p, 8);
    memcpy(&r->item_id, p + 8, 8);
    memcpy(&t, p + 16, 2);
    r->type_idx = t;
    r->id_len = p[18];
    r->n_cols = p[19];
    size_t need = SEQ_BLOB_REC_FIXED + r->id_len + (size_t)r->n_cols * 8;
    if ((size_t)(it->end - p) < need) return -1;
    r->id = (const char *)p + SEQ_BLOB_REC_FIXED;
    r->cols = p + SEQ_BLOB_REC_FIXED + r->id_len;
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

/* out is reset, then receives: old with rec inserted at its place, replacing any record
 * with the same id. old may be NULL/0 (empty). SEQ_OK, SEQ_EINVAL (corrupt old),
 * SEQ_EINTERNAL (OOM). */
int seq_blob_upsert(seq_buf *out, const void *old, size_t oldlen, const seq_rec *rec);
/* out is reset, then receives old without the record with that id; *found says whether
 * there was one. */
int seq_blob_remove(seq_buf *out, const void *old, size_t oldlen, const char *id,
                    uint32_t id_len, int *found);
/* out is reset, then receives a blob of recs, which must already be sorted in read order
 * with unique ids. */
int seq_blob_build(seq_buf *out, const seq_rec *recs, size_t n);

#endif
