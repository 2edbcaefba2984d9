/* The read path: gathers one user's stream and batch records of one sequence for the
 * merge (engine/merge.h). Hot path: one seek per source into bucket blobs stored newest
 * first; no allocation in steady state.
 *
 * Each reader keeps one RocksDB iterator and reuses it while the database has not
 * changed (same latest sequence number and store epoch); otherwise it recreates it, so
 * a read never misses a committed write. Values are copied into the reader's arena
 * because an iterator's value is invalidated by Next; the records returned point there. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define CHUNK ((size_t)64 << 10)

/* A chunked arena: chunks are never moved (records point into them) and are kept across
 * reads, so steady state does not allocate. */
typedef struct {
    uint8_t *data;
    size_t cap;
} chunk;

typedef struct {
    chunk *c;
    uint32_t n, cur;
    size_t used;
} arena;

struct seq_store_reader {
    seq_store *st;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    uint64_t it_seqno, it_epoch;
    arena a;
    seq_rec *srec, *brec;
    uint32_t scap, bcap;
};

static void *arena_alloc(arena *a, size_t n)
{
    while (a->cur < a->n) {
        chunk *c = &a->c[a->cur];
        if (c->cap - a->used >= n) {
            void *p = c->data + a->used;
            a->used += n;
            return p;
        }
        a->cur++;
        a->used = 0;
    }
    chunk *nc = realloc(a->c, sizeof *nc * (a->n + 1));
    if (!nc) return NULL;
    a->c = nc;
    size_t cap = n > CHUNK ? n : CHUNK;
    nc[a->n].data = malloc(cap);
    if (!nc[a->n].data) return NULL;
    nc[a->n].cap = cap;
    a->cur = a->n++;
    a->used = n;
    return nc[a->cur].data;
}

static void arena_reset(arena *a)
{
    a->cur = 0;
    a->used = 0;
}

static void arena_free(arena *a)
{
    for (uint32_t i = 0; i < a->n; i++) free(a->c[i].data);
    free(a->c);
}

seq_store_reader *seq_store_reader_new(seq_store *st)
{
    seq_store_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->st = st;
    r->ro = rocksdb_readoptions_create();
    /* the prefix (one user's data of one source, keys.h) bounds every scan here */
    rocksdb_readoptions_set_prefix_same_as_start(r->ro, 1);
    return r;
}

void seq_store_reader_free(seq_store_reader *r)
{
    if (!r) return;
    if (r->it) rocksdb_iter_destroy(r->it);
    rocksdb_readoptions_destroy(r->ro);
    arena_free(&r->a);
    free(r->srec);
    free(r->brec);
    free(r);
}

static void fresh_iter(seq_store_reader *r)
{
    uint64_t epoch = atomic_load(&r->st->epoch);
    uint64_t seqno = rocksdb_get_latest_sequence_number(r->st->db);
    if (r->it && seqno == r->it_seqno && epoch == r->it_epoch) return;
    if (r->it) rocksdb_iter_destroy(r->it);
    r->it = rocksdb_create_iterator(r->st->db, r->ro);
    r->it_seqno = seqno;
    r->it_epoch = epoch;
}

/* Room for `more` records after the first n (grow-only: steady state does not allocate). */
static int reserve(seq_rec **arr, uint32_t *cap, uint32_t n, uint32_t more)
{
    if (n + (uint64_t)more <= *cap) return 0;
    uint64_t c = *cap ? *cap : 256;
    while (c < n + (uint64_t)more) c *= 2;
    if (c > UINT32_MAX) return -1;
    seq_rec *a = realloc(*arr, sizeof *a * c);
    if (!a) return -1;
    *arr = a;
    *cap = (uint32_t)c;
    return 0;
}

/* Current iterator entry if its key has `prefix` and the given length: the bucket. */
static int bucket_here(rocksdb_iterator_t *it, const uint8_t *prefix, size_t plen, size_t klen,
                       int64_t *bucket)
{
    if (!rocksdb_iter_valid(it)) return 0;
    size_t kl;
    const char *k = rocksdb_iter_key(it, &kl);
    if (kl != klen || memcmp(k, prefix, plen) != 0) return 0;
    *bucket = seq_key_bucket_dec(seq_get_be64((const uint8_t *)k + klen - 8));
    return 1;
}

/* Copies the current value into the arena, makes room for its records in *arr and
 * starts iterating them. */
static int open_blob(seq_store_reader *r, seq_blob_iter *bi, seq_rec **arr, uint32_t *cap,
                     uint32_t n, char *err, size_t errlen)
{
    size_t vl;
    const char *v = rocksdb_iter_value(r->it, &vl);
    uint32_t count = seq_blob_count(v, vl);
    if (count > vl / 20) { /* a record takes at least 20 bytes */
        seq_errf(err, errlen, "corrupt bucket blob");
        return SEQ_EINTERNAL;
    }
    void *copy = arena_alloc(&r->a, vl ? vl : 1);
    if (!copy || reserve(arr, cap, n, count) < 0) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    memcpy(copy, v, vl);
    if (seq_blob_iter_init(bi, copy, vl) != SEQ_OK) {
        seq_errf(err, errlen, "corrupt bucket blob");
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

static int iter_status(seq_store_reader *r, char *err, size_t errlen)
{
    char *e = NULL;
    rocksdb_iter_get_error(r->it, &e);
    if (!e) return SEQ_OK;
    seq_errf(err, errlen, "rocksdb read: %s", e);
    rocksdb_free(e);
    return SEQ_EINTERNAL;
}

/* Stream records newest first, keeping those the merge could show, until enough: `extra`
 * more than the merge needs, since that many may still be dropped as ids the batch shows
 * in covered history. With `all`, down to retention: a stream copy of an id anywhere
 * hides the batch's copy at t >= C, so every stream id matters. */
static int read_stream(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                       uint32_t extra, int all, uint32_t *ns, char *err, size_t errlen)
{
    uint8_t pre[SEQ_KEY_MAX];
    size_t pl = seq_key_user_prefix(pre, SEQ_K_STREAM, p->seq->id, user);
    uint32_t need = all ? UINT32_MAX : seq_merge_need(p) + extra;
    int64_t stop = all ? p->now_ms - p->seq->retention_ms : seq_merge_stop_before(p), bucket;
    int64_t bms = r->st->def->bucket_ms;
    rocksdb_iter_seek(r->it, (const char *)pre, pl);
    for (; bucket_here(r->it, pre, pl, SEQ_KEY_STREAM_LEN, &bucket); rocksdb_iter_next(r->it)) {
        if (seq_bucket_end(bucket, bms) <= stop) break;
        seq_blob_iter bi;
        uint32_t n = *ns;
        int rc = open_blob(r, &bi, &r->srec, &r->scap, n, err, errlen);
        if (rc != SEQ_OK) return rc;
        /* decoded in place; the blob's header count bounds how many fit */
        while (bi.left && (rc = seq_blob_iter_next(&bi, &r->srec[n])) == 1)
            n += seq_merge_stream_visible(p, r->srec[n].time_ms) != 0;
        *ns = n; /* only visible records were kept */
        if (rc < 0) {
            seq_errf(err, errlen, "corrupt stream bucket of user %llu", (unsigned long long)user);
            return SEQ_EINTERNAL;
        }
        if (n >= need) break;
    }
    return iter_status(r, err, errlen);
}

/* Does generation gen own any part of [start, end)? */
static int gen_owns(const seq_merge_params *p, uint64_t gen, int64_t start, int64_t end)
{
    for (uint32_t i = 0; i < p->n_cov; i++)
        if (p->cov[i].gen == gen && p->cov[i].start_ms < end && start < p->cov[i].end_ms)
            return 1;
    return 0;
}

/* All records of one generation in the buckets it owns, within retention. */
static int read_gen(seq_store_reader *r, const seq_merge_params *p, uint64_t user, uint64_t gen,
                    uint32_t *nb, char *err, size_t errlen)
{
    uint8_t pre[SEQ_KEY_MAX];
    size_t pl = seq_key_batch_prefix(pre, p->seq->id, gen, user);
    int64_t bms = r->st->def->bucket_ms, bucket;
    int64_t floor = p->now_ms - p->seq->retention_ms;
    rocksdb_iter_seek(r->it, (const char *)pre, pl);
    for (; bucket_here(r->it, pre, pl, SEQ_KEY_BATCH_LEN, &bucket); rocksdb_iter_next(r->it)) {
        int64_t start = seq_bucket_start(bucket, bms), end = seq_bucket_end(bucket, bms);
        if (end <= floor) break;
        if (!gen_owns(p, gen, start, end)) continue;
        seq_blob_iter bi;
        int rc = open_blob(r, &bi, &r->brec, &r->bcap, *nb, err, errlen);
        if (rc != SEQ_OK) return rc;
        while (bi.left && (rc = seq_blob_iter_next(&bi, &r->brec[*nb])) == 1)
            r->brec[(*nb)++].gen = gen;
        if (rc < 0) {
            seq_errf(err, errlen, "corrupt batch bucket of user %llu", (unsigned long long)user);
            return SEQ_EINTERNAL;
        }
    }
    return iter_status(r, err, errlen);
}

static int gen_seen_before(const seq_merge_params *p, uint32_t i)
{
    for (uint32_t j = 0; j < i; j++)
        if (p->cov[j].gen == p->cov[i].gen) return 1;
    return 0;
}

int seq_store_read(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                   const seq_rec **stream, uint32_t *ns, const seq_rec **batch, uint32_t *nb,
                   char *err, size_t errlen)
{
    int rc;
    *ns = *nb = 0;
    arena_reset(&r->a);
    fresh_iter(r);
    for (uint32_t i = 0; i < p->n_cov; i++) {
        if (gen_seen_before(p, i)) continue;
        if ((rc = read_gen(r, p, user, p->cov[i].gen, nb, err, errlen)) != SEQ_OK) return rc;
    }
    uint32_t hist = 0;
    int64_t cut = p->now_ms - p->horizon_ms;
    for (uint32_t i = 0; i < *nb; i++) hist += r->brec[i].time_ms < cut;
    int recent_batch = hist < *nb;
    if ((rc = read_stream(r, p, user, hist, recent_batch, ns, err, errlen)) != SEQ_OK) return rc;
    *stream = r->srec;
    *batch = r->brec;
    return SEQ_OK;
}
