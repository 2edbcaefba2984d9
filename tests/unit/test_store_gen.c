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
        /* newest segment first: one list in read order across generations */
        CHECK(memcmp(bt[0].id, "g11", 3) == 0 && bt[0].gen == 11);
        CHECK(memcmp(bt[1].id, "b2", 2) == 0 && bt[1].gen == 10);
        CHECK(memcmp(bt[2].id, "b1", 2) == 0 && bt[2].gen == 10);
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

/* One batch bucket blob of gen holding n records (ids[i] at times[i], newest first). */
static void put_bucket(seq_store *st, uint64_t gen, uint64_t user, const int64_t *times,
                       const char *const *ids, size_t n)
{
    seq_rec r[8];
    for (size_t i = 0; i < n; i++)
        r[i] = (seq_rec){.time_ms = times[i], .item_id = 1, .id = ids[i],
                         .id_len = (uint32_t)strlen(ids[i])};
    seq_buf blob = {0};
    CHECK(seq_blob_build(&blob, r, n) == SEQ_OK);
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_batch(k, 0, gen, user, seq_bucket_of(times[0], HOUR));
    fx_put_raw(st, k, kl, blob.data, blob.len);
    seq_buf_free(&blob);
}

/* The merge's answer for user under p, as ids joined by ','; *nb: batch records read. */
static void answer(seq_store_reader *r, const seq_merge_params *read_p,
                   const seq_merge_params *p, uint64_t user, char *ids, size_t idlen,
                   uint32_t *nb)
{
    const seq_rec *s, *bt, *out[100];
    uint32_t ns;
    char err[256];
    CHECK(seq_store_read(r, read_p, user, &s, &ns, &bt, nb, err, sizeof err) == SEQ_OK);
    seq_merge_scratch *sc = seq_merge_scratch_new();
    uint32_t n = seq_merge_run(p, s, ns, bt, *nb, out, sc);
    seq_merge_scratch_free(sc);
    size_t len = 0;
    ids[0] = 0;
    for (uint32_t i = 0; i < n && len + out[i]->id_len + 2 < idlen; i++) {
        memcpy(ids + len, out[i]->id, out[i]->id_len);
        len += out[i]->id_len;
        ids[len++] = ',';
        ids[len] = 0;
    }
}

/* The reader stops decoding older generations once the newest fills max_events; the
 * answer is the one over all records: a stream id that an older generation shows in
 * history stays hidden, and stream copies that may replace recent batch records make it
 * decode everything. */
static void early_stop(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    int64_t now_end = (NOW / HOUR + 1) * HOUR;
    seq_cov_seg cov[2] = {{S, S + 2 * HOUR, 10}, {S + 2 * HOUR, now_end, 11}};
    int64_t t11[] = {S + 2 * HOUR + 30, S + 2 * HOUR + 20, S + 2 * HOUR + 10};
    const char *id11[] = {"x3", "x2", "x1"};
    int64_t t10a[] = {S + HOUR + 10, S + HOUR + 5}, t10b[] = {S + 10};
    const char *id10a[] = {"b2", "x1"}, *id10b[] = {"b1"};
    int64_t tr[] = {NOW - 10 * 60000};
    const char *idr[] = {"r1"};
    for (uint64_t user = 7; user <= 8; user++) {
        put_bucket(st, 11, user, t11, id11, 3);
        put_bucket(st, 10, user, t10a, id10a, 2);
        put_bucket(st, 10, user, t10b, id10b, 1);
    }
    put_bucket(st, 11, 8, tr, idr, 1); /* user 8: a recent batch record */
    put_bucket(st, 11, 9, t11, id11, 3); /* user 9: older history loaded later (gen 12) */
    put_bucket(st, 12, 9, t10a, id10a, 2);
    seq_store_bump_epoch(st);
    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 7, NOW - 30 * 60000, "b1", 0, 0) == SEQ_OK); /* hidden: batch history */
    CHECK(fx_add(b, d, 7, NOW - 20 * 60000, "new", 0, 0) == SEQ_OK);
    CHECK(fx_add(b, d, 8, NOW - 30 * 60000, "b1", 0, 0) == SEQ_OK);
    /* replaces the batch's r1, at a time before all coverage */
    CHECK(fx_add(b, d, 8, S - 3 * HOUR, "r1", 0, 0) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params all = fx_params(d, NOW);
    all.cov = cov;
    all.n_cov = 2;
    char want[256], got[256];
    uint32_t nb;
    /* user 7: gen 11 fills max_events 2; of gen 10 only b1 (a stream id) is read */
    seq_merge_params p = all;
    p.max_events = 2;
    answer(r, &all, &p, 7, want, sizeof want, &nb);
    CHECK_EQ_INT(nb, 6);
    answer(r, &p, &p, 7, got, sizeof got, &nb);
    CHECK(strcmp(got, want) == 0 && strcmp(got, "new,x3,") == 0);
    CHECK_EQ_INT(nb, 4);
    /* user 8: the stream's r1 may replace the batch's: gen 11's 4 records may not fill
     * max_events 4 (they do not), so gen 10 is read in full */
    p.max_events = 4;
    answer(r, &all, &p, 8, want, sizeof want, &nb);
    answer(r, &p, &p, 8, got, sizeof got, &nb);
    CHECK(strcmp(got, want) == 0 && strcmp(got, "x3,x2,x1,b2,") == 0);
    CHECK_EQ_INT(nb, 7);
    /* user 9: gen 12's x1 outranks gen 11's, so nothing older is set aside */
    seq_cov_seg cov9[2] = {{S, S + 2 * HOUR, 12}, {S + 2 * HOUR, now_end, 11}};
    all.cov = p.cov = cov9;
    p.max_events = 3;
    answer(r, &all, &p, 9, want, sizeof want, &nb);
    answer(r, &p, &p, 9, got, sizeof got, &nb);
    CHECK(strcmp(got, want) == 0 && strcmp(got, "x3,x2,b2,") == 0);
    seq_store_reader_free(r);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
}

int main(void)
{
    NOW = seq_now_ms();
    S = (NOW / HOUR - 10) * HOUR;
    fx_mkdir();
    RUN(views_and_batch_reads);
    RUN(early_stop);
    fx_rmdir();
    return seq_t_done();
}
