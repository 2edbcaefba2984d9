/* Bucket blob codec (see blob.h for the layout). Pure: no I/O. */
#include "blob.h"

#include <string.h>

#define HDR 8
#define FIXED SEQ_BLOB_REC_FIXED

double seq_rec_col(const seq_rec *r, uint32_t i, double dflt)
{
    if (i >= r->n_cols) return dflt;
    double d;
    memcpy(&d, r->cols + (size_t)i * 8, 8);
    return d;
}

int seq_rec_cmp(const seq_rec *a, const seq_rec *b)
{
    if (a->time_ms != b->time_ms) return a->time_ms > b->time_ms ? -1 : 1;
    uint32_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(a->id, b->id, n);
    if (c == 0 && a->id_len != b->id_len) c = a->id_len < b->id_len ? -1 : 1;
    return -c; /* larger id first */
}

int seq_blob_iter_init(seq_blob_iter *it, const void *blob, size_t len)
{
    const uint8_t *p = blob;
    if (len == 0) {
        it->p = it->end = NULL;
        it->left = 0;
        it->fixed = FIXED;
        return SEQ_OK;
    }
    if (len < HDR || (p[0] != 1 && p[0] != 2)) return SEQ_EINVAL;
    uint32_t n;
    memcpy(&n, p + 4, 4);
    it->p = p + HDR;
    it->end = p + len;
    it->left = n;
    it->fixed = p[0] == 2 ? SEQ_BLOB_REC_FIXED2 : FIXED;
    return SEQ_OK;
}

uint32_t seq_blob_count(const void *blob, size_t len)
{
    uint32_t n = 0;
    if (len >= HDR) memcpy(&n, (const uint8_t *)blob + 4, 4);
    return n;
}

static int put_header(seq_buf *out, uint8_t version)
{
    const uint8_t hdr[HDR] = {version, 0, 0, 0, 0, 0, 0, 0};
    out->len = 0;
    return seq_buf_append(out, hdr, HDR);
}

/* Appends r in the blob's version (the header's first byte). */
static int put_rec(seq_buf *out, const seq_rec *r)
{
    if (r->id_len > 255 || r->n_cols > 255 || r->type_idx > 0xffff) return -1;
    uint8_t f[SEQ_BLOB_REC_FIXED2];
    size_t fixed = out->data[0] == 2 ? SEQ_BLOB_REC_FIXED2 : FIXED;
    uint16_t t = (uint16_t)r->type_idx;
    memcpy(f, &r->time_ms, 8);
    memcpy(f + 8, &r->item_id, 8);
    memcpy(f + 16, &t, 2);
    f[18] = (uint8_t)r->id_len;
    f[19] = (uint8_t)r->n_cols;
    memcpy(f + 20, &r->applied_ms, 8);
    memcpy(f + 28, &r->replaced_ms, 8);
    if (seq_buf_append(out, f, fixed) < 0 || seq_buf_append(out, r->id, r->id_len) < 0 ||
        seq_buf_append(out, r->cols, (size_t)r->n_cols * 8) < 0)
        return -1;
    uint32_t n;
    memcpy(&n, out->data + 4, 4);
    n++;
    memcpy(out->data + 4, &n, 4);
    return 0;
}

static int same_id(const seq_rec *r, const char *id, uint32_t len)
{
    return r->id_len == len && memcmp(r->id, id, len) == 0;
}

/* The one rewrite of a stream blob behind upsert, replace and expire: copies old into a
 * version-2 out, marking the live copy of `id` (if id) replaced at `at`, dropping replaced
 * copies below drop_before, and inserting `ins` (if set) before the first record it does
 * not sort after (so a new copy goes before an older copy with the same time and id). */
static int rewrite(seq_buf *out, const void *old, size_t oldlen, const seq_rec *ins,
                   const char *id, uint32_t id_len, int64_t at, int64_t drop_before,
                   int *marked, uint32_t *dropped)
{
    seq_blob_iter it;
    seq_rec r;
    int placed = ins == NULL, rc;
    if (at < 1) at = 1; /* 0 means live */
    if (seq_blob_iter_init(&it, old, oldlen) != SEQ_OK) return SEQ_EINVAL;
    if (put_header(out, 2) < 0) return SEQ_EINTERNAL;
    while ((rc = seq_blob_iter_next(&it, &r)) == 1) {
        if (id && r.replaced_ms == 0 && same_id(&r, id, id_len)) {
            r.replaced_ms = at;
            if (marked) *marked = 1;
        }
        if (r.replaced_ms != 0 && r.replaced_ms < drop_before) {
            if (dropped) (*dropped)++;
            continue;
        }
        if (!placed && seq_rec_cmp(ins, &r) <= 0) {
            if (put_rec(out, ins) < 0) return SEQ_EINTERNAL;
            placed = 1;
        }
        if (put_rec(out, &r) < 0) return SEQ_EINTERNAL;
    }
    if (rc < 0) return SEQ_EINVAL;
    if (!placed && put_rec(out, ins) < 0) return SEQ_EINTERNAL;
    return SEQ_OK;
}

int seq_blob_upsert(seq_buf *out, const void *old, size_t oldlen, const seq_rec *rec,
                    int64_t drop_before)
{
    return rewrite(out, old, oldlen, rec, rec->id, rec->id_len, rec->applied_ms, drop_before,
                   NULL, NULL);
}

int seq_blob_replace(seq_buf *out, const void *old, size_t oldlen, const char *id,
                     uint32_t id_len, int64_t replaced_ms, int64_t drop_before, int *found)
{
    *found = 0;
    return rewrite(out, old, oldlen, NULL, id, id_len, replaced_ms, drop_before, found, NULL);
}

int seq_blob_expire(seq_buf *out, const void *old, size_t oldlen, int64_t drop_before,
                    uint32_t *dropped)
{
    *dropped = 0;
    return rewrite(out, old, oldlen, NULL, NULL, 0, 0, drop_before, NULL, dropped);
}

int64_t seq_blob_oldest_replaced(const void *blob, size_t len)
{
    seq_blob_iter it;
    seq_rec r;
    int64_t oldest = INT64_MAX;
    if (seq_blob_iter_init(&it, blob, len) != SEQ_OK || it.fixed != SEQ_BLOB_REC_FIXED2)
        return oldest;
    while (seq_blob_iter_next(&it, &r) == 1)
        if (r.replaced_ms != 0 && r.replaced_ms < oldest) oldest = r.replaced_ms;
    return oldest;
}

int seq_blob_build(seq_buf *out, const seq_rec *recs, size_t n)
{
    if (put_header(out, 1) < 0) return SEQ_EINTERNAL;
    for (size_t i = 0; i < n; i++)
        if (put_rec(out, &recs[i]) < 0) return SEQ_EINTERNAL;
    return SEQ_OK;
}
