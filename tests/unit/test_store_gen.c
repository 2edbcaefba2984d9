/* Storage, batch side of reads: committed state in views (installed, persisted under
 * 'm' "gen" and read back at open), and batch records gathered per generation from the
 * buckets each generation owns, next to the stream records the merge could show. */
#include "store_fixture.h"

static int64_t NOW, S; /* S: a bucket boundary ten hours ago */

/* One batch bucket blob holding one record. */
static void put_batch(seq_store *st, uint64_t gen, uint64_t user, int64_t t, const char *id)
{
    seq_rec r = {.time_ms = t, .item_id = 1, .id = id, .id_len = (uint32_t)strlen(id)};
    seq_buf blob = {0};
    CHECK(seq_blob_build(&blob, &r, 1) == SEQ_OK);
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_batch(k, 0, gen, user, seq_bucket_of(t, HOUR));
    fx_put_raw(st, k, kl, blob.data, blob.len);
    seq_buf_free(&blob);
}

/* Gen 10 owns [S, S+2h), gen 11 owns [S+2h, S+3h). */
static seq_cov_seg cov_at(int i)
{
    seq_cov_seg c = {S + 2 * HOUR * i, S + (i == 0 ? 2 : 3) * HOUR, i == 0 ? 10 : 11};
    return c;
}

static void check_state(const seq_store_seqstate *s)
{
    CHECK(s->generation == 11 && s->watermark_ms == S + 3 * HOUR && s->n_cov == 2);
    if (s->n_cov == 2)
        CHECK(s->cov[0].gen == 10 && s->cov[1].start_ms == S + 2 * HOUR && s->cov[1].gen == 11);
}

static void views_and_batch_reads(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    seq_cov_seg cov[2] = {cov_at(0), cov_at(1)};
    seq_store_seqstate ns = {.generation = 11, .watermark_ms = S + 3 * HOUR, .cov = cov,
                             .n_cov = 2};
    const seq_store_view *before = seq_store_view_acquire(st);
    CHECK(seq_store_view_install(st, 0, &ns) == SEQ_OK);
    const seq_store_view *after = seq_store_view_acquire(st);
    CHECK(seq_store_view_seq(before, 0)->generation == 0); /* old readers keep their view */
    check_state(seq_store_view_seq(after, 0));
    CHECK(seq_store_view_install(st, 5, &ns) != SEQ_OK);
    seq_store_view_release(st, before);

    put_batch(st, 10, 5, S + 10, "b1");
    put_batch(st, 10, 5, S + HOUR + 10, "b2");
    put_batch(st, 10, 5, S - 5 * HOUR, "b0");           /* outside any coverage */
    put_batch(st, 10, 5, S + 2 * HOUR + 1, "stale10");  /* owned by gen 11 */
    put_batch(st, 11, 5, S + 2 * HOUR + 5, "g11");
    put_batch(st, 11, 6, S + 2 * HOUR + 5, "other");    /* another user */
    seq_store_bump_epoch(st);
    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 5, S + 20, "hidden", 0, 0) == SEQ_OK); /* batch-owned history */
    CHECK(fx_add(b, d, 5, NOW - 30 * 60000, "recent", 0, 0) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);

    const seq_store_seqstate *cs = seq_store_view_seq(after, 0);
    seq_merge_params p = fx_params(d, NOW);
    p.cov = cs->cov;
    p.n_cov = cs->n_cov;
    seq_store_reader *r = seq_store_reader_new(st);
    const seq_rec *s, *bt;
    uint32_t n_s, n_b;
    char err[256];
    CHECK(seq_store_read(r, &p, 5, &s, &n_s, &bt, &n_b, err, sizeof err) == SEQ_OK);
    CHECK_EQ_INT(n_s, 1);
    CHECK(n_s >= 1 && s[0].id_len == 6 && memcmp(s[0].id, "recent", 6) == 0);
    CHECK_EQ_INT(n_b, 3);
    if (n_b == 3) {
        CHECK(memcmp(bt[0].id, "b2", 2) == 0 && bt[0].gen == 10);
        CHECK(memcmp(bt[1].id, "b1", 2) == 0 && bt[1].gen == 10);
        CHECK(memcmp(bt[2].id, "g11", 3) == 0 && bt[2].gen == 11);
    }
    seq_store_view_release(st, after);
    seq_store_reader_free(r);
    seq_store_batch_free(b);

    /* the persisted form is read back at open */
    seq_buf v = {0};
    uint8_t k[SEQ_KEY_MAX];
    CHECK(seq_genval_encode(&v, 11, S + 3 * HOUR, cov, 2) == 0);
    fx_put_raw(st, k, seq_key_gen(k, 0), v.data, v.len);
    seq_buf_free(&v);
    seq_store_close(st);
    st = fx_open(d);
    const seq_store_view *re = seq_store_view_acquire(st);
    check_state(seq_store_view_seq(re, 0));
    seq_store_view_release(st, re);
    seq_store_close(st);
    seq_def_free(d);
}

int main(void)
{
    NOW = seq_now_ms();
    S = (NOW / HOUR - 10) * HOUR;
    fx_mkdir();
    RUN(views_and_batch_reads);
    fx_rmdir();
    return seq_t_done();
}
