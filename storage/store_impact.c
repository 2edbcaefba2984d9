/* What a load changes for readers, counted before it commits (PRODUCT.md "Dry-run
 * loads"): in the MERGED view over [start, min(end, C)) at the time of the call, before
 * the cuts of rule 5, the users with events there before the load and none after
 * (users_emptied) and the stream events shown there before and not after
 * (stream_events_hidden). After the load that window is covered history of the new
 * generation (its range contains it, it is the newest, and every time in it is before
 * C), so it shows exactly the new batch's events and no stream event: the "after" side
 * is the set of users the staged files hold events for in the window, the "before" side
 * is each candidate user's merged answer restricted to the window. Candidates are the
 * users with a stream bucket or a batch bucket of a generation in effect overlapping
 * the window; when there are none (a first load, or history nobody wrote to), nothing
 * can change and the staged files are not read again. Runs on the load's thread, reading
 * RocksDB past the record cache. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/partition.h"
#include "batch.h"
#include "sst_reader.h"
#include "store_int.h"

typedef struct {
    uint64_t *v;
    size_t n, cap;
} users;

static int users_add(users *u, uint64_t user)
{
    if (u->n && u->v[u->n - 1] == user) return 0; /* keys come grouped by user */
    if (u->n == u->cap) {
        size_t c = u->cap ? 2 * u->cap : 1024;
        uint64_t *v = realloc(u->v, sizeof *v * c);
        if (!v) return -1;
        u->v = v;
        u->cap = c;
    }
    u->v[u->n++] = user;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void users_sort(users *u)
{
    if (u->n < 2) return; /* (and qsort must not see the NULL of an empty list) */
    qsort(u->v, u->n, sizeof *u->v, cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < u->n; i++)
        if (!m || u->v[i] != u->v[m - 1]) u->v[m++] = u->v[i];
    u->n = m;
}

static int users_has(const users *u, uint64_t user)
{
    return u->n && bsearch(&user, u->v, u->n, sizeof *u->v, cmp_u64) != NULL;
}

typedef struct {
    uint32_t seq;
    int64_t lo, hi, bucket_ms;
    users *out;
    int oom;
} scan_ctx;

/* A blob with a record in [lo, hi)? */
static int blob_in_window(const char *v, size_t vl, int64_t lo, int64_t hi)
{
    seq_blob_iter it;
    seq_rec r;
    if (seq_blob_iter_init(&it, v, vl) != SEQ_OK) return 0;
    while (seq_blob_iter_next(&it, &r) == 1)
        if (r.time_ms >= lo && r.time_ms < hi) return 1;
    return 0;
}

/* The staged files' users with an event in the window (their keys are verified). */
static int staged_entry(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    scan_ctx *c = ctx;
    seq_key k;
    if (seq_key_parse(key, klen, &k) != 0 || k.kind != SEQ_K_BATCH) return 0; /* the marker */
    if (seq_bucket_end(k.bucket, c->bucket_ms) <= c->lo || seq_bucket_start(k.bucket, c->bucket_ms) >= c->hi)
        return 0;
    if (blob_in_window(val, vlen, c->lo, c->hi) && users_add(c->out, k.user) < 0) c->oom = 1;
    return c->oom;
}

/* Moves it to the first key >= target: a few Nexts first (a user with a bucket or two,
 * the common case, is passed over cheaper than by a seek), then a seek. */
static void step_to(rocksdb_iterator_t *it, const uint8_t *target, size_t tl)
{
    for (int i = 0; i < 3; i++) {
        rocksdb_iter_next(it);
        if (!rocksdb_iter_valid(it)) return;
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        int c = memcmp(k, target, kl < tl ? kl : tl);
        if (c > 0 || (c == 0 && kl >= tl)) return;
    }
    rocksdb_iter_seek(it, (const char *)target, tl);
}

/* Moves to user's key of bucket `bucket` in the source of key k (its stream of k's
 * partition and sequence, or its batch generation), or past it: buckets come newest
 * first, so INT64_MAX is the user's first key. */
static void seek_user(rocksdb_iterator_t *it, const seq_key *k, uint32_t seq, uint64_t user,
                      int64_t bucket)
{
    uint8_t b[SEQ_KEY_MAX];
    size_t l = k->kind == SEQ_K_STREAM ? seq_key_stream(b, (uint32_t)k->partition, seq, user, bucket)
                                       : seq_key_batch(b, seq, k->gen, user, bucket);
    step_to(it, b, l);
}

/* Users with a bucket of one source (the prefix: 's' for the stream, whose keys hold
 * every partition and sequence, or 'b' seq gen) of sequence seq overlapping the
 * window. A skip scan: at most two seeks a user (to the window's newest bucket, then past
 * the user) instead of reading every bucket, so that a user's long history (and the
 * stream's merge operands, folded at every key the iterator stops at) is not read to
 * count it (bench/NOTES.md, "Session 13"). */
int seq_store_window_users(seq_store *st, const uint8_t *pre, size_t pl, uint32_t seq,
                           int64_t lo, int64_t hi, uint64_t **v, size_t *n, size_t *cap,
                           char *err, size_t errlen)
{
    assert(lo < hi && pl >= 1 && (pre[0] == SEQ_K_STREAM || pre[0] == SEQ_K_BATCH));
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    int rc = SEQ_OK;
    int64_t bms = st->def->bucket_ms;
    int64_t top = seq_bucket_of(hi - 1, bms); /* the window's newest bucket */
    users out = {*v, *n, *cap};
    rocksdb_iter_seek(it, (const char *)pre, pl);
    while (rocksdb_iter_valid(it)) {
        size_t kl;
        const char *key = rocksdb_iter_key(it, &kl);
        if (kl < pl || memcmp(key, pre, pl) != 0) break;
        seq_key k;
        if (seq_key_parse(key, kl, &k) != 0 || k.kind != pre[0]) { /* a marker */
            rocksdb_iter_next(it);
            continue;
        }
        if (k.seq != seq) { /* the stream of another sequence: skip it */
            assert(k.kind == SEQ_K_STREAM);
            if (k.seq < seq) {
                seek_user(it, &k, seq, 0, INT64_MAX);
            } else if ((uint32_t)k.partition == UINT32_MAX) {
                break;
            } else {
                uint8_t b[SEQ_KEY_MAX];
                size_t l = seq_key_part(b, SEQ_K_STREAM, (uint32_t)k.partition + 1);
                rocksdb_iter_seek(it, (const char *)b, l);
            }
            continue;
        }
        if (seq_bucket_start(k.bucket, bms) >= hi) { /* newer than the window */
            assert(k.bucket > top);
            seek_user(it, &k, seq, k.user, top);
            continue;
        }
        if (seq_bucket_end(k.bucket, bms) > lo && users_add(&out, k.user) < 0) {
            seq_errf(err, errlen, "out of memory");
            rc = SEQ_EINTERNAL;
            break;
        }
        /* the user's newest bucket not newer than the window decided: the next user */
        if (k.user == UINT64_MAX) {
            if (k.kind != SEQ_K_STREAM || (uint32_t)k.partition == UINT32_MAX) break;
            uint8_t b[SEQ_KEY_MAX];
            size_t l = seq_key_stream(b, (uint32_t)k.partition, seq + 1, 0, INT64_MAX);
            if (seq == UINT32_MAX) l = seq_key_part(b, SEQ_K_STREAM, (uint32_t)k.partition + 1);
            rocksdb_iter_seek(it, (const char *)b, l);
        } else {
            seek_user(it, &k, seq, k.user + 1, INT64_MAX);
        }
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e && rc == SEQ_OK) {
        seq_errf(err, errlen, "rocksdb scan: %s", e);
        rc = SEQ_EINTERNAL;
    }
    free(e);
    rocksdb_iter_destroy(it);
    *v = out.v;
    *n = out.n;
    *cap = out.cap;
    return rc;
}

static int candidates(seq_store *st, const uint8_t *pre, size_t pl, const scan_ctx *c,
                      users *out, char *err, size_t errlen)
{
    return seq_store_window_users(st, pre, pl, c->seq, c->lo, c->hi, &out->v, &out->n,
                                  &out->cap, err, errlen);
}

/* Keeps the users of the selected partitions: a node still holds other partitions' batch
 * data (a partition it gave up keeps it) and counts only what it loads. */
static void only_selected(users *u, const seq_load_req *req)
{
    size_t m = 0;
    for (size_t i = 0; i < u->n; i++)
        if (req->only_parts[seq_partition_of_user(u->v[i], req->partitions)]) u->v[m++] = u->v[i];
    u->n = m;
}

/* The users whose merged answer in the window may change: those with a stream bucket or
 * a bucket of a generation in effect overlapping it (sorted, distinct). */
static int all_candidates(seq_store *st, const seq_sequence *s, const seq_store_seqstate *cur,
                          const scan_ctx *c, const seq_load_req *req, users *cand, char *err,
                          size_t errlen)
{
    uint8_t pre[SEQ_KEY_MAX];
    pre[0] = SEQ_K_STREAM; /* every partition's stream keys: the sequence is filtered */
    int rc = candidates(st, pre, 1, c, cand, err, errlen);
    for (uint32_t i = 0; i < cur->n_cov && rc == SEQ_OK; i++) {
        /* a generation shows data only in its coverage: one that covers none of the
         * window has no candidate there (and one named twice is read once) */
        if (cur->cov[i].end_ms <= c->lo || cur->cov[i].start_ms >= c->hi) continue;
        int seen = 0;
        for (uint32_t j = 0; j < i; j++)
            seen |= cur->cov[j].gen == cur->cov[i].gen && cur->cov[j].end_ms > c->lo &&
                    cur->cov[j].start_ms < c->hi;
        if (seen) continue;
        pre[0] = SEQ_K_BATCH;
        seq_put_be32(pre + 1, s->id);
        seq_put_be64(pre + 5, cur->cov[i].gen);
        rc = candidates(st, pre, 13, c, cand, err, errlen);
    }
    users_sort(cand);
    if (req->only_parts && req->partitions) /* a cluster node counts the users of the partitions it loads */
        only_selected(cand, req);
    return rc;
}

static int before_side(seq_store *st, const seq_sequence *s, const seq_store_seqstate *cur,
                       const scan_ctx *c, int64_t now, const users *after, users cand,
                       const seq_load_req *req, seq_load_result *res, char *err,
                       size_t errlen)
{
    int rc = SEQ_OK;
    /* the whole merged answer in the window: no length or retention cut */
    seq_sequence whole = *s;
    whole.max_length = UINT32_MAX / 4;
    whole.retention_ms = INT64_MAX / 4;
    seq_merge_params p = {.now_ms = now, .horizon_ms = st->def->horizon_ms, .seq = &whole,
                          .cov = cur->cov, .n_cov = cur->n_cov, .since_ms = c->lo,
                          .until_ms = c->hi};
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_scratch *scratch = seq_merge_scratch_new();
    const seq_rec **out = NULL;
    size_t out_cap = 0;
    if (rc == SEQ_OK && (!r || !scratch)) {
        seq_errf(err, errlen, "out of memory");
        rc = SEQ_EINTERNAL;
    }
    if (r) seq_store_reader_uncached(r);
    for (size_t i = 0; i < cand.n && rc == SEQ_OK; i++) {
        const seq_rec *sr, *br;
        uint32_t ns, nb;
        if ((rc = seq_store_read(r, &p, cand.v[i], &sr, &ns, &br, &nb, err, errlen))) break;
        if (ns + (size_t)nb + 1 > out_cap) {
            const seq_rec **o = realloc((void *)out, sizeof *o * (ns + (size_t)nb + 1));
            if (!o) {
                seq_errf(err, errlen, "out of memory");
                rc = SEQ_EINTERNAL;
                break;
            }
            out = o;
            out_cap = ns + (size_t)nb + 1;
        }
        uint32_t n = seq_merge_run(&p, sr, ns, br, nb, out, scratch), streamed = 0;
        for (uint32_t j = 0; j < n; j++) streamed += out[j]->gen == 0;
        int emptied = n > 0 && !users_has(after, cand.v[i]);
        res->stream_events_hidden += streamed; /* all of the window's stream events go */
        res->users_emptied += (uint64_t)emptied;
        if (req->impact_by_part && req->partitions) {
            uint32_t part = seq_partition_of_user(cand.v[i], req->partitions);
            req->impact_by_part[2 * part] += (uint64_t)emptied;
            req->impact_by_part[2 * part + 1] += streamed;
        }
    }
    free((void *)out);
    seq_merge_scratch_free(scratch);
    seq_store_reader_free(r);
    free(cand.v);
    return rc;
}

int seq_store_load_impact(seq_store *st, const seq_sequence *s, const seq_store_seqstate *cur,
                          const seq_load_req *req, char *const *staged, int64_t now,
                          seq_load_result *res, char *err, size_t errlen)
{
    res->users_emptied = res->stream_events_hidden = 0;
    int64_t cut = seq_merge_cutoff(now, st->def->horizon_ms);
    scan_ctx c = {s->id, req->start_ms, req->end_ms < cut ? req->end_ms : cut,
                  st->def->bucket_ms, NULL, 0};
    if (c.hi <= c.lo) return SEQ_OK; /* all of the range is recent: nothing hidden */
    users after = {0}, cand = {0};
    c.out = &after;
    int rc = all_candidates(st, s, cur, &c, req, &cand, err, errlen);
    if (rc != SEQ_OK || cand.n == 0) { /* no user shows anything there now (a first load) */
        free(cand.v);
        return rc;
    }
    /* staged: the copies of the selected parts' files, then NULLs (batch.h) */
    for (size_t i = 0; i < req->n_paths && staged[i] && rc == SEQ_OK; i++) {
        if (seq_sst_scan(staged[i], staged_entry, &c, err, errlen) != 0 || c.oom) {
            if (c.oom) seq_errf(err, errlen, "out of memory");
            rc = SEQ_EINTERNAL;
        }
    }
    users_sort(&after);
    if (rc == SEQ_OK) rc = before_side(st, s, cur, &c, now, &after, cand, req, res, err, errlen);
    else free(cand.v);
    free(after.v);
    return rc;
}
