/* Bucket blob codec: ordering, upsert replacing by id, removal, corrupt input. */
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

static void order_and_replace(void)
{
    seq_buf a = {0}, b = {0};
    double c1[2] = {1.5, 2.5};
    seq_rec r1 = mk(100, "a", c1, 2), r2 = mk(200, "b", NULL, 0), r3 = mk(100, "c", NULL, 0);
    CHECK(seq_blob_upsert(&a, NULL, 0, &r1) == SEQ_OK);
    CHECK(seq_blob_upsert(&b, a.data, a.len, &r2) == SEQ_OK);
    CHECK(seq_blob_upsert(&a, b.data, b.len, &r3) == SEQ_OK);
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
    CHECK(seq_blob_upsert(&b, a.data, a.len, &r2b) == SEQ_OK);
    CHECK_EQ_INT(seq_blob_count(b.data, b.len), 3);
    seq_blob_iter_init(&it, b.data, b.len);
    seq_blob_iter_next(&it, &r);
    CHECK(r.id[0] == 'c');
    seq_blob_iter_next(&it, &r);
    CHECK(r.id[0] == 'a' && seq_rec_col(&r, 1, 0) == 2.5 && isnan(seq_rec_col(&r, 2, NAN)));
    seq_blob_iter_next(&it, &r);
    CHECK(r.id[0] == 'b' && r.time_ms == 50);
    int found = 0;
    CHECK(seq_blob_remove(&a, b.data, b.len, "c", 1, &found) == SEQ_OK && found);
    CHECK_EQ_INT(seq_blob_count(a.data, a.len), 2);
    seq_buf_free(&a);
    seq_buf_free(&b);
}

static void corrupt(void)
{
    seq_buf a = {0}, b = {0};
    seq_rec r1 = mk(100, "abc", NULL, 0);
    seq_blob_upsert(&a, NULL, 0, &r1);
    for (size_t cut = 1; cut < a.len; cut++) {
        seq_blob_iter it;
        seq_rec r;
        int rc = seq_blob_iter_init(&it, a.data, cut);
        if (rc == SEQ_OK) rc = seq_blob_iter_next(&it, &r);
        CHECK(rc != 1 || cut >= a.len); /* never a record from a truncated blob */
        CHECK(seq_blob_upsert(&b, a.data, cut, &r1) == SEQ_EINVAL);
    }
    seq_buf_free(&a);
    seq_buf_free(&b);
}

int main(void)
{
    RUN(order_and_replace);
    RUN(corrupt);
    return seq_t_done();
}
