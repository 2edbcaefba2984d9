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
        return SEQ_OK;
    }
    if (len < HDR || p[0] != 1) return SEQ_EINVAL;
    uint32_t n;
    memcpy(&n, p + 4, 4);
    it->p = p + HDR;
    it->end = p + len;
    it->left = n;
    return SEQ_OK;
}

uint32_t seq_blob_count(const void *blob, size_t len)
{
    uint32_t n = 0;
    if (len >= HDR) memcpy(&n, (const uint8_t *)blob + 4, 4);
    return n;
}

static int put_header(seq_buf *out)
{
    static const uint8_t hdr[HDR] = {1, 0, 0, 0, 0, 0, 0, 0};
    out->len = 0;
    return seq_buf_append(out, hdr, HDR);
}

static int put_rec(seq_buf *out, const seq_rec *r)
{
    if (r->id_len > 255 || r->n_cols > 255 || r->type_idx > 0xffff) return -1;
    uint8_t f[FIXED];
    uint16_t t = (uint16_t)r->type_idx;
    memcpy(f, &r->time_ms, 8);
    memcpy(f + 8, &r->item_id, 8);
    memcpy(f + 16, &t, 2);
    f[18] = (uint8_t)r->id_len;
    f[19] = (uint8_t)r->n_cols;
    if (seq_buf_append(out, f, FIXED) < 0 || seq_buf_append(out, r->id, r->id_len) < 0 ||
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

int seq_blob_upsert(seq_buf *out, const void *old, size_t oldlen, const seq_rec *rec)
{
    seq_blob_iter it;
    seq_rec r;
    int placed = 0, rc;
    if (seq_blob_iter_init(&it, old, oldlen) != SEQ_OK) return SEQ_EINVAL;
    if (put_header(out) < 0) return SEQ_EINTERNAL;
    while ((rc = seq_blob_iter_next(&it, &r)) == 1) {
        if (same_id(&r, rec->id, rec->id_len)) continue;
        if (!placed && seq_rec_cmp(rec, &r) < 0) {
            if (put_rec(out, rec) < 0) return SEQ_EINTERNAL;
            placed = 1;
        }
        if (put_rec(out, &r) < 0) return SEQ_EINTERNAL;
    }
    if (rc < 0) return SEQ_EINVAL;
    if (!placed && put_rec(out, rec) < 0) return SEQ_EINTERNAL;
    return SEQ_OK;
}

int seq_blob_remove(seq_buf *out, const void *old, size_t oldlen, const char *id,
                    uint32_t id_len, int *found)
{
    seq_blob_iter it;
    seq_rec r;
    int rc;
    *found = 0;
    if (seq_blob_iter_init(&it, old, oldlen) != SEQ_OK) return SEQ_EINVAL;
    if (put_header(out) < 0) return SEQ_EINTERNAL;
    while ((rc = seq_blob_iter_next(&it, &r)) == 1) {
        if (same_id(&r, id, id_len)) {
            *found = 1;
            continue;
        }
        if (put_rec(out, &r) < 0) return SEQ_EINTERNAL;
    }
    return rc < 0 ? SEQ_EINVAL : SEQ_OK;
}

int seq_blob_build(seq_buf *out, const seq_rec *recs, size_t n)
{
    if (put_header(out) < 0) return SEQ_EINTERNAL;
    for (size_t i = 0; i < n; i++)
        if (put_rec(out, &recs[i]) < 0) return SEQ_EINTERNAL;
    return SEQ_OK;
}
