/* Storage, stream path: events written through a batch read back newest first;
 * re-sent ids replace the earlier copy (same bucket, moved bucket, within one batch and
 * across batches); with history kept, the replaced copies stay stored with their apply and
 * replace times (never read by a normal read) and expire after history_ms; offsets are
 * atomic with the data; malformed records are kept and counted; everything survives a
 * reopen; an incompatible definition is refused. */
#include "store_fixture.h"

static int64_t T; /* start of a bucket three hours ago */

static void write_read(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    CHECK(st != NULL);
    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 7, T + 10, "a", 0, 1) == SEQ_OK);
    CHECK(fx_add(b, d, 7, T + 20, "b", 1, 2) == SEQ_OK);
    CHECK(fx_add(b, d, 7, T + HOUR + 5, "c", 0, 3) == SEQ_OK);
    CHECK(fx_add(b, d, 7, T + 20, "d", 0, 4) == SEQ_OK);
    CHECK(fx_add(b, d, 8, T + 20, "e", 0, 5) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);

    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params p = fx_params(d, seq_now_ms());
    char ids[256];
    const seq_rec *s;
    CHECK_EQ_INT(fx_read(r, &p, 7, &s, ids, sizeof ids), 4);
    CHECK(strcmp(ids, "c,d,b,a") == 0);
    CHECK(s[0].time_ms == T + HOUR + 5 && s[0].item_id == (uint64_t)(T + HOUR + 5) / 1000);
    CHECK(seq_rec_col(&s[0], 0, -1) == 3 && s[2].type_idx == 1 && s[2].gen == 0);
    CHECK_EQ_INT(fx_read(r, &p, 8, NULL, ids, sizeof ids), 1);
    CHECK_EQ_INT(fx_read(r, &p, 9, NULL, ids, sizeof ids), 0);

    /* a later commit is seen by the same reader (its cached iterator is refreshed) */
    CHECK(fx_add(b, d, 9, T + 1, "f", 0, 0) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(fx_read(r, &p, 9, NULL, ids, sizeof ids), 1);

    /* max_events without other cuts: the reader may stop after that many */
    p.max_events = 1;
    CHECK(fx_read(r, &p, 7, NULL, ids, sizeof ids) >= 1 && ids[0] == 'c');
    seq_store_reader_free(r);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
}

static void dedup(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    seq_store_batch *b = seq_store_batch_new(st);
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params p = fx_params(d, seq_now_ms());
    char ids[256];
    const seq_rec *s;
    /* within one batch: same bucket, then moved to another bucket */
    CHECK(fx_add(b, d, 20, T + 10, "x", 0, 1) == SEQ_OK);
    CHECK(fx_add(b, d, 20, T + 50, "x", 0, 2) == SEQ_OK);
    CHECK(fx_add(b, d, 20, T + 30, "y", 0, 1) == SEQ_OK);
    CHECK(fx_add(b, d, 20, T + 2 * HOUR, "y", 0, 7) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(fx_read(r, &p, 20, &s, ids, sizeof ids), 2);
    CHECK(strcmp(ids, "y,x") == 0);
    CHECK(s[0].time_ms == T + 2 * HOUR && seq_rec_col(&s[0], 0, 0) == 7);
    CHECK(s[1].time_ms == T + 50 && seq_rec_col(&s[1], 0, 0) == 2);

    /* across batches, with a fresh batch: x moves out of its bucket, which becomes empty
     * (and goes at compaction); y is re-sent in place */
    seq_store_batch *b2 = seq_store_batch_new(st);
    CHECK(fx_add(b2, d, 20, T + HOUR + 1, "x", 1, 3) == SEQ_OK);
    CHECK(fx_add(b2, d, 20, T + 2 * HOUR, "y", 0, 8) == SEQ_OK);
    CHECK(fx_commit(b2) == SEQ_OK);
    CHECK_EQ_INT(fx_read(r, &p, 20, &s, ids, sizeof ids), 2);
    CHECK(strcmp(ids, "y,x") == 0);
    CHECK(seq_rec_col(&s[0], 0, 0) == 8 && s[1].time_ms == T + HOUR + 1 && s[1].type_idx == 1);
    seq_rec rec[4];
    seq_buf keep = {0};
    CHECK_EQ_INT(fx_bucket_recs(st, 20, T, rec, 4, &keep), 0);
    CHECK_EQ_INT(fx_bucket_recs(st, 20, T + HOUR, rec, 4, &keep), 1);

    /* another batch after b2 wrote the same user */
    seq_store_batch_free(b);
    b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 20, T + 5, "z", 0, 0) == SEQ_OK);
    CHECK(fx_add(b, d, 20, T + 3 * HOUR - 1, "x", 0, 9) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(fx_read(r, &p, 20, &s, ids, sizeof ids), 3);
    CHECK(strcmp(ids, "x,y,z") == 0);
    CHECK_EQ_INT(fx_bucket_recs(st, 20, T + HOUR, rec, 4, &keep), 0);
    fx_compact(st);
    CHECK(fx_has_stream(st, 20, T + HOUR) == 0); /* emptied: gone at compaction */
    seq_buf_free(&keep);
    /* the same batch, reused after its commit, sees its own writes */
    CHECK(fx_add(b, d, 20, T + 6, "x", 0, 10) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(fx_read(r, &p, 20, &s, ids, sizeof ids), 3);
    CHECK(strcmp(ids, "y,x,z") == 0);
    seq_store_batch_free(b2);
    seq_store_batch_free(b);
    seq_store_reader_free(r);
    seq_store_close(st);
    seq_def_free(d);
}

/* With history kept: each copy carries its apply time; a correction marks the copy it
 * replaced (same bucket or another) with the new copy's apply time instead of deleting
 * it; reads show only live copies; both times survive a reopen; expired replaced copies
 * go at the next write of their bucket and at compaction. */
static void history_kept(void)
{
    fx_history_ms = DAY;
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    CHECK(seq_store_history_ms(st) == DAY);
    seq_store_batch *b = seq_store_batch_new(st);
    int64_t t0 = seq_now_ms();
    CHECK(fx_add(b, d, 40, T + 10, "h", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    int64_t t1 = seq_now_ms();
    CHECK(fx_add(b, d, 40, T + 20, "h", 0, 2) == SEQ_OK);        /* same bucket */
    CHECK(fx_add(b, d, 40, T + HOUR + 1, "h", 0, 3) == SEQ_OK);  /* moved, same batch */
    CHECK(fx_commit(b) == SEQ_OK);
    seq_store_batch_free(b);
    seq_store_close(st);
    st = fx_open(d); /* the times are stored */
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params p = fx_params(d, seq_now_ms());
    char ids[256];
    const seq_rec *s;
    CHECK_EQ_INT(fx_read(r, &p, 40, &s, ids, sizeof ids), 1);
    CHECK(s[0].time_ms == T + HOUR + 1 && seq_rec_col(&s[0], 0, 0) == 3);
    CHECK(s[0].applied_ms >= t1 && s[0].applied_ms <= seq_now_ms() && s[0].replaced_ms == 0);
    int64_t a3 = s[0].applied_ms;

    seq_rec rec[8];
    seq_buf keep = {0};
    CHECK_EQ_INT(fx_bucket_recs(st, 40, T, rec, 8, &keep), 2);
    CHECK(rec[0].time_ms == T + 20 && rec[0].applied_ms == a3 && rec[0].replaced_ms == a3);
    CHECK(rec[1].time_ms == T + 10 && rec[1].applied_ms >= t0 && rec[1].applied_ms <= t1);
    CHECK(rec[1].replaced_ms == a3); /* both copies were applied and replaced in one batch */
    seq_store_reader_free(r);
    seq_store_close(st);

    /* history of 1 ms: replaced copies expire at the next fold (a read or a compaction
     * meeting the bucket's operands) and at compaction */
    fx_history_ms = 1;
    st = fx_open(d);
    b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 41, T + 10, "e", 0, 1) == SEQ_OK);
    CHECK(fx_add(b, d, 41, T + HOUR, "e", 0, 2) == SEQ_OK); /* moves: T's copy replaced */
    CHECK(fx_commit(b) == SEQ_OK);
    int64_t w = seq_now_ms();
    while (seq_now_ms() < w + 3) {} /* until the replaced copy is older than 1 ms */
    CHECK_EQ_INT(fx_bucket_recs(st, 41, T, rec, 8, &keep), 0);
    CHECK(fx_add(b, d, 41, T + 11, "f", 0, 1) == SEQ_OK); /* a write to T's bucket */
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(fx_bucket_recs(st, 41, T, rec, 8, &keep), 1);
    CHECK(rec[0].id_len == 1 && rec[0].id[0] == 'f');
    fx_compact(st);
    CHECK(fx_has_stream(st, 40, T) == 0); /* every copy in it expired: the bucket went */
    CHECK(fx_has_stream(st, 40, T + HOUR) == 1);
    seq_buf_free(&keep);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
    fx_history_ms = 0;
}

/* Redelivery and corrections across memtable flushes, manual compactions and reopens
 * (which rebuild the id filter from the index): random copies of a few ids over four
 * buckets, each step committed then followed at random by nothing, a flush, a compaction
 * or a reopen; after each step the read shows exactly the last copy of every id, once. */
static void copies_across_flushes(void)
{
    seq_def *d = fx_def(DEF_JSON);
    fx_history_ms = DAY;
    seq_store *st = fx_open(d);
    seq_store_batch *b = seq_store_batch_new(st);
    seq_store_reader *r = seq_store_reader_new(st);
    enum { IDS = 6 };
    int64_t model_t[IDS] = {0};
    double model_v[IDS] = {0};
    uint32_t rng = 12345;
    for (int step = 0; step < 120; step++) {
        int copies = 1 + (int)((rng = rng * 1103515245u + 12345u) >> 16) % 3;
        for (int c = 0; c < copies; c++) {
            rng = rng * 1103515245u + 12345u;
            int id = (int)(rng >> 16) % IDS;
            rng = rng * 1103515245u + 12345u;
            int64_t t = T + (int64_t)((rng >> 16) % 4) * HOUR + (rng >> 8) % 1000;
            char name[8];
            snprintf(name, sizeof name, "id%d", id);
            CHECK(fx_add(b, d, 70, t, name, 0, step * 10 + c) == SEQ_OK);
            model_t[id] = t;
            model_v[id] = step * 10 + c;
        }
        CHECK(fx_commit(b) == SEQ_OK);
        rng = rng * 1103515245u + 12345u;
        switch ((rng >> 16) % 4) {
        case 1: {
            rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
            char *e = NULL;
            rocksdb_flush(seq_store_db(st), fo, &e);
            CHECK(e == NULL);
            rocksdb_flushoptions_destroy(fo);
            break;
        }
        case 2: fx_compact(st); break;
        case 3:
            seq_store_reader_free(r);
            seq_store_batch_free(b);
            seq_store_close(st);
            st = fx_open(d);
            b = seq_store_batch_new(st);
            r = seq_store_reader_new(st);
            break;
        }
        seq_merge_params p = fx_params(d, seq_now_ms());
        const seq_rec *s = NULL;
        char ids[512];
        uint32_t n = fx_read(r, &p, 70, &s, ids, sizeof ids), want = 0;
        for (int i = 0; i < IDS; i++) want += model_t[i] != 0;
        CHECK_EQ_INT(n, want);
        for (uint32_t i = 0; i < n; i++) {
            int id = s[i].id[2] - '0';
            CHECK(s[i].time_ms == model_t[id] && seq_rec_col(&s[i], 0, -1) == model_v[id]);
            for (uint32_t j = 0; j < i; j++)
                CHECK(s[j].id_len != s[i].id_len || memcmp(s[j].id, s[i].id, s[i].id_len));
        }
    }
    seq_store_reader_free(r);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
    fx_history_ms = 0;
}

/* the stored log start, which must read without error */
static int64_t log_from(seq_store *st, uint32_t p)
{
    int64_t ms = -1;
    CHECK(seq_store_get_log_from(st, (int32_t)p, &ms) == SEQ_OK);
    return ms;
}

/* The layout puts the user's partition first in stream keys: dropping one partition
 * removes exactly its users' stream data and offset, and the count stays as stored. */

static void drop_partition(void)
{
    fx_rmdir();
    fx_mkdir();
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    char err[256];
    CHECK(seq_store_set_partitions(st, 4, err, sizeof err) == SEQ_OK);
    CHECK(seq_store_set_partitions(st, 8, err, sizeof err) == SEQ_EPRECONDITION);
    CHECK(strstr(err, "4 partitions") != NULL && seq_store_partitions(st) == 4);
    seq_store_batch *b = seq_store_batch_new(st);
    uint64_t users[8];
    for (uint64_t u = 0; u < 8; u++) {
        users[u] = 100 + u;
        char id[8];
        snprintf(id, sizeof id, "p%llu", (unsigned long long)u);
        CHECK(fx_add(b, d, users[u], T + 1, id, 0, 1) == SEQ_OK);
    }
    uint32_t gone = seq_store_part_of(st, users[0]), other = (gone + 1) % 4;
    seq_store_batch_set_offset(b, (int32_t)gone, 9, T);
    /* log starts (caught up with a gap): in the commit's write, per partition, 0 deletes */
    CHECK(log_from(st, gone) == 0);
    seq_store_batch_set_log_from(b, (int32_t)gone, T + 3);
    seq_store_batch_set_log_from(b, (int32_t)other, T + 4);
    /* held-since times: per partition, kept across a reopen, forgotten with a drop */
    CHECK(seq_store_held_since(st, gone) == 0);
    CHECK(seq_store_set_held_since(st, gone, T + 5, err, sizeof err) == SEQ_OK);
    CHECK(seq_store_set_held_since(st, other, T + 7, err, sizeof err) == SEQ_OK);
    CHECK(seq_store_user_held_since(st, users[0]) == T + 5);
    CHECK(log_from(st, gone) == 0); /* not before the commit */
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK(log_from(st, gone) == T + 3);
    CHECK(log_from(st, other) == T + 4);
    seq_store_batch_set_log_from(b, (int32_t)other, 0);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK(log_from(st, other) == 0);
    seq_store_batch_set_log_from(b, (int32_t)other, T + 6);
    CHECK(fx_commit(b) == SEQ_OK);
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params p = fx_params(d, seq_now_ms());
    char ids[64];
    CHECK_EQ_INT(fx_read(r, &p, users[0], NULL, ids, sizeof ids), 1);
    CHECK(seq_store_drop_partition(st, gone, err, sizeof err) == SEQ_OK);
    uint32_t kept = 0, dropped = 0;
    for (int u = 0; u < 8; u++) {
        uint32_t n = fx_read(r, &p, users[u], NULL, ids, sizeof ids);
        int same = seq_store_part_of(st, users[u]) == gone;
        CHECK_EQ_INT(n, same ? 0 : 1);
        char id[8];
        snprintf(id, sizeof id, "p%d", u);
        CHECK_EQ_INT(fx_has_index(st, users[u], id), !same);
        kept += !same;
        dropped += same;
    }
    CHECK(dropped >= 1 && kept >= 1); /* 8 users over 4 partitions */
    int64_t off, wm;
    CHECK(seq_store_get_offset(st, (int32_t)gone, &off, &wm) == SEQ_ENOTFOUND);
    CHECK(seq_store_held_since(st, gone) == 0 && seq_store_held_since(st, other) == T + 7);
    CHECK(log_from(st, gone) == 0);
    CHECK(log_from(st, other) == T + 6);
    seq_store_reader_free(r);
    seq_store_batch_free(b);
    seq_store_close(st);
    st = fx_open(d);
    CHECK(seq_store_partitions(st) == 4);
    CHECK(seq_store_held_since(st, gone) == 0 && seq_store_held_since(st, other) == T + 7);
    CHECK(log_from(st, other) == T + 6); /* kept across a reopen */
    /* a damaged value is an error (kept aside, counted), never "the log reached back" */
    uint8_t k[SEQ_KEY_MAX];
    uint64_t corrupt = seq_store_corrupt_count(st);
    fx_put_raw(st, k, seq_key_gap(k, (int32_t)other), "bad", 3);
    int64_t ms = -1;
    CHECK(seq_store_get_log_from(st, (int32_t)other, &ms) == SEQ_EDATALOSS && ms == 0);
    CHECK(seq_store_corrupt_count(st) == corrupt + 1);
    seq_store_close(st);
    seq_def_free(d);
}

static void offsets_atomic(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params p = fx_params(d, seq_now_ms());
    char ids[256];
    int64_t off = 0, wm = 0;
    CHECK(seq_store_get_offset(st, 3, &off, &wm) == SEQ_ENOTFOUND);

    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 30, T + 1, "o1", 0, 0) == SEQ_OK);
    seq_store_batch_set_offset(b, 3, 100, T + 1);
    seq_store_batch_add_malformed(b, 3, 99, "junk", 4, "bad");
    seq_store_batch_free(b); /* never committed: nothing written */
    CHECK(seq_store_get_offset(st, 3, &off, &wm) == SEQ_ENOTFOUND);
    CHECK_EQ_INT(fx_read(r, &p, 30, NULL, ids, sizeof ids), 0);
    CHECK_EQ_INT(seq_store_malformed_count(st), 0);

    b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 30, T + 1, "o1", 0, 0) == SEQ_OK);
    seq_store_batch_set_offset(b, 3, 100, T + 1);
    seq_store_batch_set_offset(b, 3, 101, T + 2); /* the last setting wins */
    seq_store_batch_set_offset(b, -1, 5, -7);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK(seq_store_get_offset(st, 3, &off, &wm) == SEQ_OK && off == 101 && wm == T + 2);
    CHECK(seq_store_get_offset(st, -1, &off, &wm) == SEQ_OK && off == 5 && wm == -7);
    CHECK(seq_store_get_offset(st, 4, &off, &wm) == SEQ_ENOTFOUND);
    CHECK_EQ_INT(fx_read(r, &p, 30, NULL, ids, sizeof ids), 1);
    seq_store_batch_free(b);
    seq_store_reader_free(r);
    seq_store_close(st);
    seq_def_free(d);
}

typedef struct {
    int n;
    char seen[256];
} mal_ctx;

static void on_mal(void *ctx, int32_t part, int64_t off, const char *reason, const void *payload,
                   size_t len)
{
    mal_ctx *m = ctx;
    size_t n = strlen(m->seen);
    snprintf(m->seen + n, sizeof m->seen - n, "%d/%lld/%s/%.*s;", part, (long long)off, reason,
             (int)len, (const char *)payload);
    m->n++;
}

static void malformed(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    seq_store_batch *b = seq_store_batch_new(st);
    seq_store_batch_add_malformed(b, 1, 7, "\x01\x02", 2, "undecodable");
    seq_store_batch_add_malformed(b, 0, 9, "{}", 2, "missing user_id");
    CHECK(fx_commit(b) == SEQ_OK);
    seq_store_batch_add_malformed(b, 1, 8, "", 0, "");
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(seq_store_malformed_count(st), 3);
    mal_ctx m = {0};
    seq_store_list_malformed(st, 10, on_mal, &m);
    CHECK_EQ_INT(m.n, 3);
    CHECK(strcmp(m.seen, "0/9/missing user_id/{};1/7/undecodable/\x01\x02;1/8//;") == 0);
    mal_ctx one = {0};
    seq_store_list_malformed(st, 1, on_mal, &one);
    CHECK_EQ_INT(one.n, 1);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
}

/* Runs after the tests above, on the same directory. */
static void reopen(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    CHECK(st != NULL);
    if (!st) return;
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params p = fx_params(d, seq_now_ms());
    char ids[256];
    int64_t off, wm;
    CHECK_EQ_INT(fx_read(r, &p, 7, NULL, ids, sizeof ids), 4);
    CHECK(strcmp(ids, "c,d,b,a") == 0);
    CHECK_EQ_INT(seq_store_malformed_count(st), 3);
    CHECK(seq_store_get_offset(st, 3, &off, &wm) == SEQ_OK && off == 101);
    const seq_store_view *v = seq_store_view_acquire(st);
    CHECK(seq_store_view_seq(v, 0)->generation == 0 && seq_store_view_seq(v, 0)->n_cov == 0);
    CHECK(seq_store_view_seq(v, 40)->generation == 0);
    seq_store_view_release(st, v);
    uint64_t use, cap;
    seq_store_cache_usage(st, &use, &cap);
    CHECK(cap == 4u << 20 && use <= cap); /* a quarter of --cache-mb 16 */
    seq_store_reader_free(r);
    seq_store_close(st);
    seq_def_free(d);
}

static void compat(void)
{
    char err[256] = "";
    seq_store *st = NULL;
    /* a type removed: refused, and the data is left as it was */
    seq_def *bad = fx_def("{\"bucket_ms\":3600000,\"freshness_horizon_ms\":3600000,\"sequences\":["
                          "{\"name\":\"eng\",\"event_types\":[\"click\"],\"max_length\":100,"
                          "\"retention_ms\":172800000,\"columns\":[\"dwell_ms\"]}]}");
    CHECK(seq_store_open(fx_dir, bad, 16, &st, err, sizeof err) == SEQ_EPRECONDITION);
    CHECK(st == NULL && strlen(err) > 0);
    fprintf(stderr, "   (refusal: %s)\n", err);
    seq_def_free(bad);
    seq_def *bucket = fx_def("{\"bucket_ms\":7200000,\"freshness_horizon_ms\":7200000,"
                             "\"sequences\":[{\"name\":\"eng\",\"event_types\":[\"click\",\"view\"],"
                             "\"max_length\":100,\"retention_ms\":172800000,"
                             "\"columns\":[\"dwell_ms\"]}]}");
    CHECK(seq_store_open(fx_dir, bucket, 16, &st, err, sizeof err) == SEQ_EPRECONDITION);
    seq_def_free(bucket);
    /* compatible: a type, a column and a sequence appended; it becomes the stored one */
    seq_def *more = fx_def("{\"bucket_ms\":3600000,\"freshness_horizon_ms\":3600000,\"sequences\":["
                           "{\"name\":\"eng\",\"event_types\":[\"click\",\"view\",\"save\"],"
                           "\"max_length\":50,\"retention_ms\":172800000,"
                           "\"columns\":[\"dwell_ms\",\"pos\"]},"
                           "{\"name\":\"other\",\"event_types\":[\"save\"],\"max_length\":5,"
                           "\"retention_ms\":3600000}]}");
    st = fx_open(more);
    CHECK(st != NULL);
    seq_store_close(st);
    /* now the original (fewer types) is incompatible with what the data was served with */
    seq_def *orig = fx_def(DEF_JSON);
    CHECK(seq_store_open(fx_dir, orig, 16, &st, err, sizeof err) == SEQ_EPRECONDITION);
    seq_def_free(orig);
    seq_def_free(more);
}

int main(void)
{
    T = (seq_now_ms() / HOUR - 3) * HOUR;
    fx_mkdir();
    RUN(write_read);
    RUN(dedup);
    RUN(history_kept);
    RUN(copies_across_flushes);
    RUN(offsets_atomic);
    RUN(malformed);
    RUN(reopen);
    RUN(compat);
    RUN(drop_partition); /* last: it starts from an empty data dir */
    fx_rmdir();
    return seq_t_done();
}
