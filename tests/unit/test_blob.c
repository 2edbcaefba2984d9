/* Bucket blob codec: ordering, upsert replacing by id (the replaced copy dropped or kept
 * with its replace time), replace, expiry, corrupt input. */
#include <math.h>
#include <string.h>

#include "engine/blob.h"
#include "testlib.h"

static seq_rec mk(int64_t t, const char *id, const double *cols, uint32_t nc)
{
    seq_rec r = {.time_ms = t, .item_id = (uint64_t)t * 10, .type_idx = 1,
                 .id_len = (uint32_t)strlen(id), .id = id, .n_cols = nc,
                 .cols = (const uint8_t *)cols};
    return r;
}

#define NOKEEP INT64_MAX /* drop_before that keeps no replaced copy */

static void order_and_replace(void)
{
    seq_buf a = {0}, b = {0};
    double c1[2] = {1.5, 2.5};
    seq_rec r1 = mk(100, "a", c1, 2), r2 = mk(200, "b", NULL, 0), r3 = mk(100, "c", NULL, 0);
    CHECK(seq_blob_upsert(&a, NULL, 0, &r1, NOKEEP) == SEQ_OK);
    CHECK(seq_blob_upsert(&b, a.data, a.len, &r2, NOKEEP) == SEQ_OK);
    CHECK(seq_blob_upsert(&a, b.data, b.len, &r3, NOKEEP) == SEQ_OK);
    CHECK_EQ_INT(seq_blob_count(a.data, a.len), 3);
    seq_blob_iter it;
    seq_rec r;
    CHECK(seq_blob_iter_init(&it, a.data, a.len) == SEQ_OK);
    const char *want[] = {"b", "c", "a"};
    for (int i = 0; i < 3; i++) {
        CHECK(seq_blob_iter_next(&it, &r) == 1);
        CHECK(r.id_len == 1 && r.id[0] == want[i][0]);
    }
    CHECK(seq_blob_iter_next(&it, &r) == 0);
    /* replace "b" with a copy at an older time: it moves */
    seq_rec r2b = mk(50, "b", NULL, 0);
    CHECK(seq_blob_upsert(&b, a.data, a.len, &r2b, NOKEEP) == SEQ_OK);
    CHECK_EQ_INT(seq_blob_count(b.data, b.len), 3);
    seq_blob_iter_init(&it, b.data, b.len);
    seq_blob_iter_next(&it, &r);
    CHECK(r.id[0] == 'c');
    seq_blob_iter_next(&it, &r);
    CHECK(r.id[0] == 'a' && seq_rec_col(&r, 1, 0) == 2.5 && isnan(seq_rec_col(&r, 2, NAN)));
    seq_blob_iter_next(&it, &r);
    CHECK(r.id[0] == 'b' && r.time_ms == 50);
    int found = 0;
    CHECK(seq_blob_replace(&a, b.data, b.len, "c", 1, 5, NOKEEP, &found) == SEQ_OK && found);
    CHECK_EQ_INT(seq_blob_count(a.data, a.len), 2);
    CHECK(seq_blob_replace(&b, a.data, a.len, "c", 1, 5, NOKEEP, &found) == SEQ_OK && !found);
    seq_buf_free(&a);
    seq_buf_free(&b);
}

/* With history kept, a correction leaves the replaced copy beside the new one, stamped
 * with the new copy's apply time; expiry drops it once below drop_before. */
static void replaced_copies_kept(void)
{
    seq_buf a = {0}, b = {0};
    seq_rec r1 = mk(100, "a", NULL, 0), r2 = mk(100, "a", NULL, 0), r3 = mk(50, "a", NULL, 0);
    r1.applied_ms = 1000;
    r2.applied_ms = 2000;
    r2.item_id = 7;
    r3.applied_ms = 3000;
    CHECK(seq_blob_upsert(&a, NULL, 0, &r1, 0) == SEQ_OK);
    CHECK(seq_blob_upsert(&b, a.data, a.len, &r2, 0) == SEQ_OK); /* same time, same id */
    CHECK(seq_blob_upsert(&a, b.data, b.len, &r3, 0) == SEQ_OK); /* moved to an older time */
    CHECK_EQ_INT(seq_blob_count(a.data, a.len), 3);
    seq_blob_iter it;
    seq_rec r;
    CHECK(seq_blob_iter_init(&it, a.data, a.len) == SEQ_OK);
    /* newest first; the newer copy of (100, "a") before the older one */
    CHECK(seq_blob_iter_next(&it, &r) == 1);
    CHECK(r.time_ms == 100 && r.item_id == 7 && r.applied_ms == 2000 && r.replaced_ms == 3000);
    CHECK(!seq_rec_live_at(&r, 0) && seq_rec_live_at(&r, 2500) && !seq_rec_live_at(&r, 1500));
    CHECK(seq_blob_iter_next(&it, &r) == 1);
    CHECK(r.time_ms == 100 && r.applied_ms == 1000 && r.replaced_ms == 2000);
    CHECK(seq_rec_live_at(&r, 1000) && !seq_rec_live_at(&r, 2000));
    CHECK(seq_blob_iter_next(&it, &r) == 1);
    CHECK(r.time_ms == 50 && r.applied_ms == 3000 && r.replaced_ms == 0 && seq_rec_live_at(&r, 0));
    CHECK(seq_blob_iter_next(&it, &r) == 0);
    CHECK(seq_blob_oldest_replaced(a.data, a.len) == 2000);
    uint32_t dropped;
    CHECK(seq_blob_expire(&b, a.data, a.len, 2500, &dropped) == SEQ_OK && dropped == 1);
    CHECK_EQ_INT(seq_blob_count(b.data, b.len), 2);
    CHECK(seq_blob_oldest_replaced(b.data, b.len) == 3000);
    CHECK(seq_blob_expire(&a, b.data, b.len, 2500, &dropped) == SEQ_OK && dropped == 0);
    /* replace marks only the live copy */
    int found;
    CHECK(seq_blob_replace(&b, a.data, a.len, "a", 1, 4000, 0, &found) == SEQ_OK && found);
    CHECK(seq_blob_oldest_replaced(b.data, b.len) == 3000);
    CHECK(seq_blob_iter_init(&it, b.data, b.len) == SEQ_OK);
    while (seq_blob_iter_next(&it, &r) == 1) CHECK(r.replaced_ms != 0);
    /* a batch blob (version 1) reads as applied 0, live */
    CHECK(seq_blob_build(&a, &r1, 1) == SEQ_OK && seq_blob_iter_init(&it, a.data, a.len) == 0);
    CHECK(seq_blob_iter_next(&it, &r) == 1 && r.applied_ms == 0 && r.replaced_ms == 0);
    CHECK(seq_blob_oldest_replaced(a.data, a.len) == INT64_MAX);
    seq_buf_free(&a);
    seq_buf_free(&b);
}

static void corrupt(void)
{
    seq_buf a = {0}, b = {0};
    seq_rec r1 = mk(100, "abc", NULL, 0);
    seq_blob_upsert(&a, NULL, 0, &r1, NOKEEP);
    for (size_t cut = 1; cut < a.len; cut++) {
        seq_blob_iter it;
        seq_rec r;
        int rc = seq_blob_iter_init(&it, a.data, cut);
        if (rc == SEQ_OK) rc = seq_blob_iter_next(&it, &r);
        CHECK(rc != 1 || cut >= a.len); /* never a record from a truncated blob */
        CHECK(seq_blob_upsert(&b, a.data, cut, &r1, NOKEEP) == SEQ_EINVAL);
    }
    seq_buf_free(&a);
    seq_buf_free(&b);
}

int main(void)
{
    RUN(order_and_replace);
    RUN(replaced_copies_kept);
    RUN(corrupt);
    return seq_t_done();
}
