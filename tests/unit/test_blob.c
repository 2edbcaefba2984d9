/* Bucket blob codec: ordering; folding merge operands (a copy of an id replaces the live
 * one, kept with its replace time or dropped; a move marks the old bucket's copy);
 * expiry; undecodable bases and operands never fail a fold but mark it damaged; corrupt
 * input never yields a record. */
#include <math.h>
#include <string.h>

#include "engine/blob.h"
#include "testlib.h"

#define NOKEEP INT64_MAX /* drop_before that keeps no replaced copy */

static seq_rec mk(int64_t t, const char *id, const double *cols, uint32_t nc)
{
    seq_rec r = {.time_ms = t, .item_id = (uint64_t)t * 10, .type_idx = 1,
                 .id_len = (uint32_t)strlen(id), .id = id, .n_cols = nc,
                 .cols = (const uint8_t *)cols};
    return r;
}

/* Folds base with one operand per record of recs ('A'), into out. */
static int fold_adds(seq_buf *out, const seq_buf *base, const seq_rec *recs, int n,
                     int64_t drop_before)
{
    seq_buf ops[8] = {{0}};
    const char *p[8];
    size_t l[8];
    for (int i = 0; i < n; i++) {
        CHECK(seq_blob_op_add(&ops[i], &recs[i]) == SEQ_OK);
        p[i] = (const char *)ops[i].data;
        l[i] = ops[i].len;
    }
    int rc = seq_blob_fold(out, base ? base->data : NULL, base ? base->len : 0, p, l, n,
                           drop_before, NULL, NULL);
    for (int i = 0; i < n; i++) seq_buf_free(&ops[i]);
    return rc;
}

static void order_and_replace(void)
{
    seq_buf a = {0}, b = {0};
    double c1[2] = {1.5, 2.5};
    seq_rec r[3] = {mk(100, "a", c1, 2), mk(200, "b", NULL, 0), mk(100, "c", NULL, 0)};
    CHECK(fold_adds(&a, NULL, r, 1, NOKEEP) == SEQ_OK);
    CHECK(fold_adds(&b, &a, r + 1, 2, NOKEEP) == SEQ_OK); /* a base and two operands */
    CHECK_EQ_INT(seq_blob_count(b.data, b.len), 3);
    CHECK(!seq_blob_damaged(b.data, b.len));
    seq_blob_iter it;
    seq_rec x;
    CHECK(seq_blob_iter_init(&it, b.data, b.len) == SEQ_OK);
    const char *want[] = {"b", "c", "a"};
    for (int i = 0; i < 3; i++) {
        CHECK(seq_blob_iter_next(&it, &x) == 1);
        CHECK(x.id_len == 1 && x.id[0] == want[i][0]);
    }
    CHECK(seq_blob_iter_next(&it, &x) == 0);
    /* a new copy of "b" at an older time: it moves, the old copy goes (no history) */
    seq_rec r2b = mk(50, "b", NULL, 0);
    r2b.applied_ms = 7;
    CHECK(fold_adds(&a, &b, &r2b, 1, NOKEEP) == SEQ_OK);
    CHECK_EQ_INT(seq_blob_count(a.data, a.len), 3);
    seq_blob_iter_init(&it, a.data, a.len);
    seq_blob_iter_next(&it, &x);
    CHECK(x.id[0] == 'c');
    seq_blob_iter_next(&it, &x);
    CHECK(x.id[0] == 'a' && seq_rec_col(&x, 1, 0) == 2.5 && isnan(seq_rec_col(&x, 2, NAN)));
    seq_blob_iter_next(&it, &x);
    CHECK(x.id[0] == 'b' && x.time_ms == 50 && x.applied_ms == 7 && x.replaced_ms == 0);
    /* 'R': the id moved to another bucket; unknown ids change nothing */
    seq_buf op = {0};
    CHECK(seq_blob_op_replace(&op, "c", 1, 9) == SEQ_OK);
    const char *p = (const char *)op.data;
    size_t l = op.len;
    CHECK(seq_blob_fold(&b, a.data, a.len, &p, &l, 1, NOKEEP, NULL, NULL) == SEQ_OK);
    CHECK_EQ_INT(seq_blob_count(b.data, b.len), 2);
    CHECK(seq_blob_op_replace(&op, "zz", 2, 9) == SEQ_OK);
    p = (const char *)op.data;
    l = op.len;
    CHECK(seq_blob_fold(&a, b.data, b.len, &p, &l, 1, NOKEEP, NULL, NULL) == SEQ_OK);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    seq_buf_free(&op);
    seq_buf_free(&a);
    seq_buf_free(&b);
}

/* With history kept, a correction leaves the replaced copy beside the new one, stamped
 * with the new copy's apply time; a later fold drops it once below drop_before. */
static void replaced_copies_kept(void)
{
    seq_buf a = {0}, b = {0};
    seq_rec r[3] = {mk(100, "a", NULL, 0), mk(100, "a", NULL, 0), mk(50, "a", NULL, 0)};
    r[0].applied_ms = 1000;
    r[1].applied_ms = 2000;
    r[1].item_id = 7;
    r[2].applied_ms = 3000;
    CHECK(fold_adds(&a, NULL, r, 1, 0) == SEQ_OK);
    CHECK(fold_adds(&b, &a, r + 1, 2, 0) == SEQ_OK); /* same time and id, then moved older */
    CHECK_EQ_INT(seq_blob_count(b.data, b.len), 3);
    seq_blob_iter it;
    seq_rec x;
    CHECK(seq_blob_iter_init(&it, b.data, b.len) == SEQ_OK);
    /* newest first; the newer copy of (100, "a") before the older one */
    CHECK(seq_blob_iter_next(&it, &x) == 1);
    CHECK(x.time_ms == 100 && x.item_id == 7 && x.applied_ms == 2000 && x.replaced_ms == 3000);
    CHECK(!seq_rec_live_at(&x, 0) && seq_rec_live_at(&x, 2500) && !seq_rec_live_at(&x, 1500));
    CHECK(seq_blob_iter_next(&it, &x) == 1);
    CHECK(x.time_ms == 100 && x.applied_ms == 1000 && x.replaced_ms == 2000);
    CHECK(seq_rec_live_at(&x, 1000) && !seq_rec_live_at(&x, 2000));
    CHECK(seq_blob_iter_next(&it, &x) == 1);
    CHECK(x.time_ms == 50 && x.applied_ms == 3000 && x.replaced_ms == 0 && seq_rec_live_at(&x, 0));
    CHECK(seq_blob_iter_next(&it, &x) == 0);
    CHECK(seq_blob_oldest_replaced(b.data, b.len) == 2000);
    /* expiry: a fold without operands */
    CHECK(seq_blob_fold(&a, b.data, b.len, NULL, NULL, 0, 2500, NULL, NULL) == SEQ_OK);
    CHECK_EQ_INT(seq_blob_count(a.data, a.len), 2);
    CHECK(seq_blob_oldest_replaced(a.data, a.len) == 3000);
    /* two copies applied in the same ms: the later operand is the live one */
    seq_rec same[2] = {mk(10, "s", NULL, 0), mk(10, "s", NULL, 0)};
    same[0].applied_ms = same[1].applied_ms = 5;
    same[1].item_id = 99;
    CHECK(fold_adds(&a, NULL, same, 2, 0) == SEQ_OK);
    CHECK(seq_blob_iter_init(&it, a.data, a.len) == SEQ_OK);
    CHECK(seq_blob_iter_next(&it, &x) == 1 && x.item_id == 99 && x.replaced_ms == 0);
    CHECK(seq_blob_iter_next(&it, &x) == 1 && x.replaced_ms == 5);
    /* a batch blob (version 1) reads as applied 0, live */
    CHECK(seq_blob_build(&a, r, 1) == SEQ_OK && seq_blob_iter_init(&it, a.data, a.len) == 0);
    CHECK(seq_blob_iter_next(&it, &x) == 1 && x.applied_ms == 0 && x.replaced_ms == 0);
    CHECK(seq_blob_oldest_replaced(a.data, a.len) == INT64_MAX);
    seq_buf_free(&a);
    seq_buf_free(&b);
}

typedef struct {
    int calls, last;
} bad_seen;

static void on_bad(void *ctx, int index, const void *bytes, size_t len)
{
    bad_seen *b = ctx;
    (void)bytes, (void)len;
    b->calls++;
    b->last = index;
}

/* A fold never fails on bad input: what decodes is kept, the rest reported, the result
 * marked damaged, and the mark survives later folds. */
static void fold_damaged(void)
{
    seq_buf a = {0}, b = {0}, op = {0};
    seq_rec r = mk(100, "abc", NULL, 0);
    CHECK(seq_blob_op_add(&op, &r) == SEQ_OK);
    const char *ops[3] = {"Zjunk", (const char *)op.data, "A\x01"};
    size_t lens[3] = {5, op.len, 2};
    bad_seen seen = {0, 0};
    CHECK(seq_blob_fold(&a, NULL, 0, ops, lens, 3, NOKEEP, on_bad, &seen) == SEQ_OK);
    CHECK(seen.calls == 2 && seen.last == 2);
    CHECK(seq_blob_damaged(a.data, a.len) && seq_blob_count(a.data, a.len) == 1);
    /* a base cut short: the records before the cut are kept, the base reported */
    CHECK(seq_blob_fold(&b, a.data, a.len - 1, NULL, NULL, 0, NOKEEP, on_bad, &seen) == SEQ_OK);
    CHECK(seen.calls == 3 && seen.last == -1 && seq_blob_damaged(b.data, b.len));
    CHECK(seq_blob_fold(&b, "\x09garbage", 8, NULL, NULL, 0, NOKEEP, on_bad, &seen) == SEQ_OK);
    CHECK(seen.calls == 4 && seq_blob_damaged(b.data, b.len) && seq_blob_count(b.data, b.len) == 0);
    /* damaged stays damaged through a clean fold */
    CHECK(seq_blob_fold(&b, a.data, a.len, ops + 1, lens + 1, 1, NOKEEP, on_bad, &seen) == SEQ_OK);
    CHECK(seen.calls == 4 && seq_blob_damaged(b.data, b.len));
    seq_buf_free(&a);
    seq_buf_free(&b);
    seq_buf_free(&op);
}

static void corrupt(void)
{
    seq_buf a = {0};
    seq_rec r1 = mk(100, "abc", NULL, 0);
    CHECK(fold_adds(&a, NULL, &r1, 1, NOKEEP) == SEQ_OK);
    for (size_t cut = 1; cut < a.len; cut++) {
        seq_blob_iter it;
        seq_rec r;
        int rc = seq_blob_iter_init(&it, a.data, cut);
        if (rc == SEQ_OK) rc = seq_blob_iter_next(&it, &r);
        CHECK(rc != 1 || cut >= a.len); /* never a record from a truncated blob */
    }
    seq_buf_free(&a);
}

int main(void)
{
    RUN(order_and_replace);
    RUN(replaced_copies_kept);
    RUN(fold_damaged);
    RUN(corrupt);
    return seq_t_done();
}
