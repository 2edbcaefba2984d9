/* The read path's early stop against reading everything (issue 10, item 4): thousands of
 * random histories (stream events with corrections, batch generations with random
 * coverage, ids shared between the paths), each read with random requests (max_events,
 * windows, types, views) by a normal reader and by an exhaustive one
 * (seq_store_reader_set_exhaustive), both through the same merge: the answers must be
 * identical. The normal reader stops where engine/merge.h says it may
 * (seq_merge_stream_stop) and sets older batch buckets aside; any rule it gets wrong
 * (e.g. forgetting that batch records in covered history may hide stream records, the
 * `+ hist` of seq_merge_stream_stop) shows up as a shorter or different answer.
 * The normal and the exhaustive reader go through the record cache; a third reader reads
 * RocksDB only (seq_store_reader_uncached). Each history then changes once (more stream
 * events, a generation loaded or undone) and is asked again, some requests as of an
 * earlier time: so an entry that a miss refreshes from an outdated one (rcache.h: the
 * generations it still names, its stream part when no write came) must answer as
 * RocksDB does, and an entry gathered for now must not answer an as-of read that needs
 * older buckets. */
#include "store_fixture.h"

#define DIFF_DEF \
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":10800000,\"sequences\":[" \
    "{\"name\":\"s\",\"event_types\":[\"a\",\"b\",\"c\"],\"max_length\":4," \
    "\"retention_ms\":86400000,\"columns\":[\"v\"]}]}"
#define HISTORIES 1500
#define QUERIES 6
#define IDS 12

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

typedef struct {
    int64_t t;
    uint64_t gen;
    char id[16];
    uint32_t type;
} ans;

static uint32_t answer(seq_store_reader *r, seq_merge_scratch *ms, const seq_merge_params *p,
                       uint64_t user, ans *out)
{
    const seq_rec *s, *b, *res[8];
    uint32_t ns, nb;
    char err[256];
    if (seq_store_read(r, p, user, &s, &ns, &b, &nb, err, sizeof err) != SEQ_OK) {
        fprintf(stderr, "read: %s\n", err);
        return UINT32_MAX;
    }
    uint32_t n = seq_merge_run(p, s, ns, b, nb, res, ms);
    for (uint32_t i = 0; i < n; i++) {
        out[i].t = res[i]->time_ms;
        out[i].gen = res[i]->gen;
        out[i].type = res[i]->type_idx;
        snprintf(out[i].id, sizeof out[i].id, "%.*s", (int)res[i]->id_len, res[i]->id);
    }
    return n;
}

/* Batch records of one generation for user, spread over [lo, hi), one blob per bucket. */
static void put_batch(seq_store *st, uint32_t user, uint64_t gen, int64_t lo, int64_t hi)
{
    uint32_t n = rnd(10);
    seq_rec recs[10];
    char ids[10][8];
    int64_t t[10];
    for (uint32_t i = 0; i < n; i++) t[i] = lo + (int64_t)rnd((uint32_t)((hi - lo) / 1000)) * 1000;
    /* newest first, so that each bucket's run is in read order */
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = i + 1; j < n; j++)
            if (t[j] > t[i]) {
                int64_t x = t[i];
                t[i] = t[j];
                t[j] = x;
            }
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        snprintf(ids[k], sizeof ids[k], "i%u", rnd(IDS));
        int dup = 0;
        for (uint32_t j = 0; j < k; j++) dup |= strcmp(ids[j], ids[k]) == 0;
        if (dup) continue;
        recs[k] = (seq_rec){.time_ms = t[i], .item_id = 1, .type_idx = rnd(3),
                            .id_len = (uint32_t)strlen(ids[k]), .id = ids[k]};
        k++;
    }
    /* ids unique within a bucket and ordered (time, then id descending) */
    for (uint32_t i = 0; i < k;) {
        int64_t b = seq_bucket_of(recs[i].time_ms, HOUR);
        uint32_t j = i;
        while (j < k && seq_bucket_of(recs[j].time_ms, HOUR) == b) j++;
        for (uint32_t x = i; x < j; x++)
            for (uint32_t y = x + 1; y < j; y++)
                if (seq_rec_cmp(&recs[y], &recs[x]) < 0) {
                    seq_rec tmp = recs[x];
                    recs[x] = recs[y];
                    recs[y] = tmp;
                }
        seq_buf blob = {0};
        CHECK(seq_blob_build(&blob, recs + i, j - i) == SEQ_OK);
        uint8_t key[SEQ_KEY_MAX];
        size_t kl = seq_key_batch(key, 0, gen, user, b);
        fx_put_raw(st, key, kl, blob.data, blob.len);
        seq_buf_free(&blob);
        i = j;
    }
}

/* n stream events of user (ids among IDS: corrections), over the last 30 h and a little
 * ahead, committed */
static void add_stream(seq_store_batch *wb, const seq_def *d, uint32_t user, int64_t base,
                       uint32_t n, uint32_t *seqno)
{
    for (uint32_t i = 0; i < n; i++) {
        char id[8];
        snprintf(id, sizeof id, "i%u", rnd(IDS));
        int64_t t = base + (int64_t)rnd(31 * 3600) * 1000;
        CHECK(fx_add(wb, d, user, t, id, rnd(3), (*seqno)++) == SEQ_OK);
    }
    CHECK(fx_commit(wb) == SEQ_OK);
}

static int same_answers(const ans *a, uint32_t na, const ans *b, uint32_t nb)
{
    int same = na == nb && na != UINT32_MAX;
    for (uint32_t i = 0; same && i < na; i++)
        same = a[i].t == b[i].t && a[i].gen == b[i].gen && a[i].type == b[i].type &&
               strcmp(a[i].id, b[i].id) == 0;
    return same;
}

static void differential(void)
{
    seq_def *d = fx_def(DIFF_DEF);
    seq_store *st = fx_open(d);
    seq_store_batch *wb = seq_store_batch_new(st);
    seq_store_reader *early = seq_store_reader_new(st), *all = seq_store_reader_new(st);
    seq_store_reader *raw = seq_store_reader_new(st);
    seq_store_reader_set_exhaustive(all, 1);
    seq_store_reader_uncached(raw);
    seq_merge_scratch *ms = seq_merge_scratch_new();
    int64_t now = seq_now_ms(), base = (now / HOUR - 30) * HOUR; /* 30 h: past retention */
    uint64_t gen = 0;
    uint32_t compared = 0, nonempty = 0;
    for (uint32_t h = 0; h < HISTORIES; h++) {
        uint32_t user = 1000 + h;
        /* coverage: up to 3 bucket-aligned segments, generations rising or not */
        seq_cov_seg cov[4];
        uint32_t n_cov = rnd(4);
        int64_t at = base + (int64_t)rnd(6) * HOUR;
        for (uint32_t i = 0; i < n_cov; i++) {
            cov[i].start_ms = at;
            cov[i].end_ms = at + (int64_t)(1 + rnd(10)) * HOUR;
            cov[i].gen = ++gen;
            at = cov[i].end_ms + (int64_t)rnd(3) * HOUR;
        }
        if (n_cov > 1 && rnd(2)) cov[0].gen = gen + 1, gen++; /* an older range, newer gen */
        for (uint32_t i = 0; i < n_cov; i++) /* records inside and around the segment */
            put_batch(st, user, cov[i].gen, cov[i].start_ms - HOUR, cov[i].end_ms + HOUR);
        /* stream: events with corrections, over the last 30 h and a little ahead */
        uint32_t seqno = 0;
        add_stream(wb, d, user, base, rnd(25), &seqno);
        for (int round = 0; round < 2; round++) {
            if (round == 1) { /* the history changes, the cache holds its entry */
                uint32_t what = rnd(4);
                if (what == 0 || what == 2) add_stream(wb, d, user, base, 1 + rnd(5), &seqno);
                if ((what == 1 || what == 2) && n_cov < 4) { /* a load after the last */
                    cov[n_cov] = (seq_cov_seg){at, at + (int64_t)(1 + rnd(6)) * HOUR, ++gen};
                    put_batch(st, user, gen, at - HOUR, cov[n_cov].end_ms + HOUR);
                    if (rnd(2)) seq_store_prepare_entries(st, 0, gen); /* as a load does */
                    n_cov++;
                }
                if (what == 3 && n_cov) n_cov--; /* the last load undone */
            }
            seq_store_seqstate s = {gen, n_cov ? cov[n_cov - 1].end_ms : 0, cov, n_cov, NULL};
            CHECK(seq_store_view_install(st, 0, &s) == SEQ_OK);
            for (uint32_t q = 0; q < QUERIES; q++) {
                seq_merge_params p = {.now_ms = now, .horizon_ms = d->horizon_ms,
                                      .seq = &d->seqs[0], .cov = cov, .n_cov = n_cov,
                                      .view = (seq_view)rnd(3)};
                if (!rnd(4)) p.now_ms = p.as_of_ms = now - (int64_t)(1 + rnd(8)) * HOUR;
                if (rnd(2)) p.max_events = 1 + rnd(4);
                if (!rnd(3)) p.since_ms = base + (int64_t)rnd(30) * HOUR;
                if (!rnd(3)) p.until_ms = base + (int64_t)(10 + rnd(22)) * HOUR;
                if (p.since_ms && p.until_ms && p.since_ms > p.until_ms) p.until_ms = 0;
                if (!rnd(3)) p.type_mask = 1 + rnd(7);
                ans a[8], b[8], c[8];
                uint32_t na = answer(early, ms, &p, user, a), nb = answer(all, ms, &p, user, b);
                uint32_t nc = answer(raw, ms, &p, user, c);
                int same = same_answers(a, na, b, nb) && same_answers(a, na, c, nc);
                if (!same) {
                    fprintf(stderr,
                            "history %u round %d query %u (view %d, max %u, as of %lld h ago): "
                            "early %u records, all %u, uncached %u\n",
                            h, round, q, p.view, p.max_events,
                            (long long)((now - p.now_ms) / HOUR), na, nb, nc);
                    CHECK(same);
                    goto out;
                }
                compared++;
                nonempty += na > 0;
            }
        }
    }
    /* one commit for every user (more than store_batch.c writes through: the entries are
     * outdated instead), then each user asked again */
    for (uint32_t h = 0; h < HISTORIES; h++) {
        char id[8];
        snprintf(id, sizeof id, "i%u", rnd(IDS));
        CHECK(fx_add(wb, d, 1000 + h, base + (int64_t)rnd(31 * 3600) * 1000, id, rnd(3), h) == SEQ_OK);
    }
    CHECK(fx_commit(wb) == SEQ_OK);
    for (uint32_t h = 0; h < HISTORIES; h++) {
        seq_merge_params p = {.now_ms = now, .horizon_ms = d->horizon_ms, .seq = &d->seqs[0],
                              .view = SEQ_VIEW_STREAM};
        ans a[8], c[8];
        uint32_t na = answer(early, ms, &p, 1000 + h, a), nc = answer(raw, ms, &p, 1000 + h, c);
        if (!same_answers(a, na, c, nc)) {
            fprintf(stderr, "after the commit of every user: user %u: cached %u records, uncached %u\n",
                    1000 + h, na, nc);
            CHECK(0);
            goto out;
        }
        compared++;
    }
out:
    fprintf(stderr, "   %u answers compared, %u non-empty\n", compared, nonempty);
    CHECK(nonempty > compared / 2); /* the histories are not vacuous */
    seq_merge_scratch_free(ms);
    seq_store_reader_free(early);
    seq_store_reader_free(all);
    seq_store_reader_free(raw);
    seq_store_batch_free(wb);
    seq_store_close(st);
    seq_def_free(d);
}

/* A load prepares the cached entries of the users its generation holds before its switch
 * (store_int.h, seq_store_prepare_entries): the read after the switch finds the
 * generation in the outdated entry and reads nothing from RocksDB, and answers as RocksDB
 * does; a user not cached, or one the generation does not hold, is left alone. */
static void prepared_load(void)
{
    seq_def *d = fx_def(DIFF_DEF);
    seq_store *st = fx_open(d);
    seq_store_reader *r = seq_store_reader_new(st), *raw = seq_store_reader_new(st);
    seq_store_reader_uncached(raw);
    seq_merge_scratch *ms = seq_merge_scratch_new();
    int64_t now = seq_now_ms(), base = (now / HOUR - 20) * HOUR;
    seq_store_rcache_stats s0, s1;
    uint32_t prepared = 0, checked = 0;
    for (uint32_t round = 0; round < 40; round++) { /* two users and two generations each */
        uint32_t user = 7000 + round, absent = 9000 + round; /* absent: not in g2 */
        uint64_t g1 = 2 * round + 1, g2 = g1 + 1;
        seq_cov_seg cov[2] = {{base, base + 4 * HOUR, g1}, {base + 4 * HOUR, base + 9 * HOUR, g2}};
        put_batch(st, user, g1, cov[0].start_ms, cov[0].end_ms);
        put_batch(st, absent, g1, cov[0].start_ms, cov[0].end_ms);
        seq_store_seqstate one = {g1, cov[0].end_ms, cov, 1, NULL};
        CHECK(seq_store_view_install(st, 0, &one) == SEQ_OK);
        seq_merge_params p = {.now_ms = now, .horizon_ms = d->horizon_ms, .seq = &d->seqs[0],
                              .cov = cov, .n_cov = 1, .view = (seq_view)(round % 3)};
        ans a[8], c[8];
        CHECK(answer(r, ms, &p, user, a) != UINT32_MAX); /* cached under g1 */
        CHECK(answer(r, ms, &p, absent, a) != UINT32_MAX);
        put_batch(st, user, g2, cov[1].start_ms - HOUR, cov[1].end_ms + HOUR);
        put_batch(st, 99, g2, cov[1].start_ms, cov[1].end_ms); /* a user never read */
        size_t n = seq_store_prepare_entries(st, 0, g2);
        /* this round's two users, and the users of the rounds before (absent from g2) */
        CHECK(n == 2 * (round + 1));
        prepared += (uint32_t)n;
        seq_store_seqstate two = {g2, cov[1].end_ms, cov, 2, NULL};
        CHECK(seq_store_view_install(st, 0, &two) == SEQ_OK);
        p.n_cov = 2;
        for (int k = 0; k < 2; k++) {
            uint32_t u = k ? absent : user;
            seq_store_record_cache_stats(st, &s0);
            uint32_t na = answer(r, ms, &p, u, a), nc = answer(raw, ms, &p, u, c);
            seq_store_record_cache_stats(st, &s1);
            CHECK(same_answers(a, na, c, nc));
            /* prepared, with g2's buckets or g2's empty mark: served from the entry alone */
            CHECK_EQ_INT((int)(s1.local - s0.local), 1);
            checked += na > 0;
        }
    }
    CHECK(prepared > 40);
    CHECK(checked > 40);
    seq_merge_scratch_free(ms);
    seq_store_reader_free(r);
    seq_store_reader_free(raw);
    seq_store_close(st);
    seq_def_free(d);
}

/* Users next to each other in RocksDB (the same partition and sequence, ids one apart):
 * a read of one, cached or not, stops at its own keys. Two guards make it so, the reader's
 * prefix_same_as_start iteration and cur_bucket's prefix check (store_read.c), so breaking
 * either alone leaves this green; the differential test could not see it at all, both of
 * its readers share the cursor. */
static void neighbours_apart(void)
{
    seq_def *d = fx_def(DIFF_DEF);
    seq_store *st = fx_open(d);
    seq_store_batch *wb = seq_store_batch_new(st);
    seq_store_reader *r = seq_store_reader_new(st), *raw = seq_store_reader_new(st);
    seq_store_reader_uncached(raw);
    int64_t now = seq_now_ms();
    seq_merge_params p = fx_params(d, now);
    p.view = SEQ_VIEW_STREAM;
    for (uint32_t k = 0; k < 3; k++) { /* users 6000-6002, one event each */
        char id[8];
        snprintf(id, sizeof id, "n%u", k);
        CHECK(fx_add(wb, d, 6000 + k, now - (int64_t)(1 + k) * 60000,
                     id, 0, k) == SEQ_OK);
    }
    CHECK(fx_commit(wb) == SEQ_OK);
    char ids[64];
    CHECK_EQ_INT((int)fx_read(raw, &p, 6001, NULL, ids, sizeof ids), 1);
    CHECK(strcmp(ids, "n1") == 0);
    CHECK_EQ_INT((int)fx_read(r, &p, 6001, NULL, ids, sizeof ids), 1);
    CHECK(strcmp(ids, "n1") == 0);
    seq_store_reader_free(r);
    seq_store_reader_free(raw);
    seq_store_batch_free(wb);
    seq_store_close(st);
    seq_def_free(d);
}

/* A small stream commit folds itself into the cached entries of the users it writes
 * (store_batch.c write_through): their next read is a hit, answering as RocksDB does. */
static void written_through(void)
{
    seq_def *d = fx_def(DIFF_DEF);
    seq_store *st = fx_open(d);
    seq_store_batch *wb = seq_store_batch_new(st);
    seq_store_reader *r = seq_store_reader_new(st), *raw = seq_store_reader_new(st);
    seq_store_reader_uncached(raw);
    seq_merge_scratch *ms = seq_merge_scratch_new();
    int64_t now = seq_now_ms();
    seq_store_rcache_stats s0, s1;
    seq_merge_params p = {.now_ms = now, .horizon_ms = d->horizon_ms, .seq = &d->seqs[0],
                          .view = SEQ_VIEW_STREAM};
    ans a[8], c[8];
    for (uint32_t k = 0; k < 20; k++) {
        uint32_t user = 8000 + k % 4, seqno = k;
        char id[8];
        snprintf(id, sizeof id, "w%u", k);
        CHECK(fx_add(wb, d, user, now - (int64_t)(1 + k) * 60000, id, k % 3, seqno) == SEQ_OK);
        CHECK(fx_commit(wb) == SEQ_OK);
        seq_store_record_cache_stats(st, &s0);
        uint32_t na = answer(r, ms, &p, user, a);
        seq_store_record_cache_stats(st, &s1);
        uint32_t nc = answer(raw, ms, &p, user, c);
        CHECK(same_answers(a, na, c, nc));
        /* from the second write of a user on, its entry was cached and written through */
        if (k >= 4) CHECK_EQ_INT((int)(s1.hits - s0.hits), 1);
    }
    seq_store_record_cache_stats(st, &s1);
    CHECK(s1.writes >= 16);
    seq_merge_scratch_free(ms);
    seq_store_reader_free(r);
    seq_store_reader_free(raw);
    seq_store_batch_free(wb);
    seq_store_close(st);
    seq_def_free(d);
}

int main(void)
{
    fx_mkdir();
    RUN(written_through);
    RUN(neighbours_apart);
    RUN(prepared_load);
    RUN(differential);
    fx_rmdir();
    return seq_t_done();
}
