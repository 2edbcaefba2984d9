/* Bucket blob codec (see blob.h for the layout). Pure: no I/O. */
#include "blob.h"

#include <stdlib.h>
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

int seq_blob_damaged(const void *blob, size_t len)
{
    return len >= HDR && (((const uint8_t *)blob)[1] & SEQ_BLOB_DAMAGED) != 0;
}

int seq_blob_op_add(seq_buf *out, const seq_rec *rec)
{
    /* an operand is a one-record version-2 blob body behind its tag: put_rec needs the
     * header's version byte and count, which are then cut off */
    if (put_header(out, 2) < 0 || put_rec(out, rec) < 0) return SEQ_EINTERNAL;
    out->data[HDR - 1] = 'A';
    memmove(out->data, out->data + HDR - 1, out->len - (HDR - 1));
    out->len -= HDR - 1;
    return SEQ_OK;
}

int seq_blob_op_replace(seq_buf *out, const char *id, uint32_t id_len, int64_t at)
{
    uint8_t h[9] = {'R'};
    if (id_len > 255) return SEQ_EINTERNAL;
    memcpy(h + 1, &at, 8);
    out->len = 0;
    if (seq_buf_append(out, h, 9) < 0 || seq_buf_append(out, id, id_len) < 0)
        return SEQ_EINTERNAL;
    return SEQ_OK;
}

/* ---- fold ---- */

typedef struct {
    seq_rec r;
    /* among equal (time, id, applied): higher first. Operands count up from ORD_OPS (the
     * later one first), base records down from it (their order kept, so that folding a
     * fold's output again changes nothing) */
    uint32_t ord;
} frec;
#define ORD_OPS 0x80000000u

typedef struct {
    frec *v;
    uint32_t n, cap;
    uint32_t *slot; /* id -> index + 1 of its newest copy; open addressing */
    uint32_t mask;
} fold_state;

static uint32_t id_hash(const char *id, uint32_t len)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) h = (h ^ (uint8_t)id[i]) * 16777619u;
    return h;
}

static int same_id(const seq_rec *r, const char *id, uint32_t len)
{
    return r->id_len == len && memcmp(r->id, id, len) == 0;
}

/* The slot of id: the one holding its newest copy, or the empty one where it would go. */
static uint32_t *find_slot(fold_state *f, const char *id, uint32_t len)
{
    for (uint32_t i = id_hash(id, len) & f->mask;; i = (i + 1) & f->mask) {
        uint32_t *s = &f->slot[i];
        if (!*s || same_id(&f->v[*s - 1].r, id, len)) return s;
    }
}

/* Marks the live copy of id replaced at `at` (at least 1: 0 means live). */
static void mark_replaced(fold_state *f, const char *id, uint32_t len, int64_t at)
{
    uint32_t *s = find_slot(f, id, len);
    if (*s && f->v[*s - 1].r.replaced_ms == 0) f->v[*s - 1].r.replaced_ms = at > 0 ? at : 1;
}

static int push(fold_state *f, const seq_rec *r, uint32_t ord)
{
    if (f->n == f->cap) return -1; /* sized up front */
    f->v[f->n] = (frec){*r, ord};
    uint32_t *s = find_slot(f, r->id, r->id_len);
    if (!*s || r->replaced_ms == 0) *s = f->n + 1; /* the live copy is the one to find */
    f->n++;
    return 0;
}

/* Decodes one 'A' operand's record; 0 on success. */
static int op_record(const uint8_t *p, size_t len, seq_rec *r)
{
    seq_blob_iter it = {p + 1, p + len, 1, SEQ_BLOB_REC_FIXED2};
    return len > 1 && seq_blob_iter_next(&it, r) == 1 && it.p == it.end ? 0 : -1;
}

static int frec_cmp(const void *x, const void *y)
{
    const frec *a = x, *b = y;
    int c = seq_rec_cmp(&a->r, &b->r);
    if (c) return c;
    if (a->r.applied_ms != b->r.applied_ms) return a->r.applied_ms > b->r.applied_ms ? -1 : 1;
    return a->ord > b->ord ? -1 : a->ord < b->ord;
}

int seq_blob_fold(seq_buf *out, const void *base, size_t baselen, const char *const *ops,
                  const size_t *lens, int n, int64_t drop_before, seq_blob_bad_fn bad,
                  void *ctx)
{
    fold_state f = {0};
    int damaged = seq_blob_damaged(base, baselen), rc = SEQ_EINTERNAL;
    seq_blob_iter it;
    seq_rec r;
    /* every record of base and ops fits: a record takes at least FIXED bytes */
    size_t cap = baselen / FIXED + (size_t)(n > 0 ? n : 0) + 1, slots = 16;
    while (slots < 2 * cap) slots *= 2;
    if (cap > UINT32_MAX / 4) return SEQ_EINTERNAL;
    f.cap = (uint32_t)cap;
    f.mask = (uint32_t)slots - 1;
    f.v = malloc(sizeof *f.v * cap);
    f.slot = calloc(slots, sizeof *f.slot);
    if (!f.v || !f.slot) goto out;

    int got = 0; /* 1 record, 0 end, -1 undecodable */
    if (baselen && seq_blob_iter_init(&it, base, baselen) != SEQ_OK) got = -1;
    else if (baselen)
        while ((got = seq_blob_iter_next(&it, &r)) == 1)
            if (push(&f, &r, ORD_OPS - 1 - f.n) < 0) goto out;
    if (got < 0) {
        damaged = 1;
        if (bad) bad(ctx, -1, base, baselen);
    }
    for (int i = 0; i < n; i++) {
        const uint8_t *p = (const uint8_t *)ops[i];
        int64_t at;
        if (lens[i] >= 1 && p[0] == 'A' && op_record(p, lens[i], &r) == 0) {
            mark_replaced(&f, r.id, r.id_len, r.applied_ms);
            r.replaced_ms = 0;
            if (push(&f, &r, ORD_OPS + (uint32_t)i) < 0) goto out;
        } else if (lens[i] >= 9 && lens[i] <= 9 + 255 && p[0] == 'R') {
            memcpy(&at, p + 1, 8);
            mark_replaced(&f, (const char *)p + 9, (uint32_t)(lens[i] - 9), at);
        } else {
            damaged = 1;
            if (bad) bad(ctx, i, p, lens[i]);
        }
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < f.n; i++)
        if (f.v[i].r.replaced_ms == 0 || f.v[i].r.replaced_ms >= drop_before) f.v[kept++] = f.v[i];
    qsort(f.v, kept, sizeof *f.v, frec_cmp);
    if (put_header(out, 2) < 0) goto out;
    if (damaged) out->data[1] |= SEQ_BLOB_DAMAGED;
    for (uint32_t i = 0; i < kept; i++)
        if (put_rec(out, &f.v[i].r) < 0) goto out;
    rc = SEQ_OK;
out:
    free(f.v);
    free(f.slot);
    return rc;
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
