/* The read path: gathers one user's stream and batch records of one sequence for the
 * merge (engine/merge.h). Hot path: one seek per source into bucket blobs stored newest
 * first; no allocation in steady state.
 *
 * Each reader keeps one RocksDB iterator and reuses it while the database has not
 * changed (same latest sequence number and store epoch); otherwise it recreates it, so
 * a read never misses a committed write. Values are copied into the reader's arena
 * because an iterator's value is invalidated by Next; the records returned point there,
 * or into the record cache's entry, which the reader holds until its next read. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "batch_file.h"
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
    seq_buf ent; /* the user's entry as gathered on a cache miss (rcache.h) */
    const seq_rcache_entry *held; /* the cache's entry the last read's records point into */
    seq_rec *srec, *brec;
    uint32_t scap, bcap;
    struct pend_blob *pend; /* batch buckets set aside (read_batch) */
    int exhaustive;         /* read everything within retention (tests) */
    uint32_t npend, pcap;
    int uncached; /* reads RocksDB only (seq_store_reader_uncached) */
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

void seq_store_reader_uncached(seq_store_reader *r) { r->uncached = 1; }

void seq_store_reader_free(seq_store_reader *r)
{
    if (!r) return;
    if (r->it) rocksdb_iter_destroy(r->it);
    seq_rcache_release(r->held);
    rocksdb_readoptions_destroy(r->ro);
    arena_free(&r->a);
    seq_buf_free(&r->ent);
    free(r->srec);
    free(r->brec);
    free(r->pend);
    free(r);
}

void seq_store_reader_set_exhaustive(seq_store_reader *r, int on) { r->exhaustive = on; }

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

/* ---- bucket cursors: the same reads over RocksDB or over a gathered entry ----
 * An entry (the record cache's unit, rcache.h) is one user's bucket blobs of one sequence:
 * segments of SEG_HDR bytes {u8 kind ('s' or 'b'), 3 pad, u32 len, u64 gen, i64 bucket}
 * followed by the blob, padded to 8; per source, buckets newest first, as RocksDB orders
 * them. */
#define SEG_HDR 24
#define PAD8(n) (((n) + 7) & ~(size_t)7)

typedef struct {
    seq_store_reader *r;
    const uint8_t *base, *end; /* entry mode: the entry; NULL: iterator mode */
    const uint8_t *seg;        /* entry mode: the current segment */
    uint8_t kind;
    uint64_t gen;
    uint8_t pre[SEQ_KEY_MAX];
    size_t pl, klen;
} cursor;

static uint32_t seg_len(const uint8_t *g)
{
    uint32_t v;
    memcpy(&v, g + 4, 4);
    return v;
}

static uint64_t seg_u64(const uint8_t *g, size_t off)
{
    uint64_t v;
    memcpy(&v, g + off, 8);
    return v;
}

static uint64_t seg_gen(const uint8_t *g) { return seg_u64(g, 8); }
static const uint8_t *seg_next(const uint8_t *g) { return g + SEG_HDR + PAD8(seg_len(g)); }

static int seg_here(const cursor *c)
{
    return c->seg < c->end && c->seg[0] == c->kind && seg_gen(c->seg) == c->gen;
}

/* Positions c on the newest bucket of one source: the stream ('s', gen 0) or one batch
 * generation ('b', gen). */
static void cur_seek(cursor *c, uint8_t kind, const seq_merge_params *p, uint64_t user,
                     uint64_t gen)
{
    c->kind = kind;
    c->gen = gen;
    if (c->base) {
        c->seg = c->base;
        while (c->seg < c->end && !seg_here(c)) c->seg = seg_next(c->seg);
        return;
    }
    if (kind == SEQ_K_STREAM) {
        c->pl = seq_key_user_prefix(c->pre, SEQ_K_STREAM, seq_store_part_of(c->r->st, user),
                                    p->seq->id, user);
        c->klen = SEQ_KEY_STREAM_LEN;
    } else {
        c->pl = seq_key_batch_prefix(c->pre, p->seq->id, gen, user);
        c->klen = SEQ_KEY_BATCH_LEN;
    }
    rocksdb_iter_seek(c->r->it, (const char *)c->pre, c->pl);
}

/* The current bucket, if any left in the source. */
static int cur_bucket(const cursor *c, int64_t *bucket)
{
    if (c->base) {
        if (!seg_here(c)) return 0;
        *bucket = (int64_t)seg_u64(c->seg, 16);
        return 1;
    }
    rocksdb_iterator_t *it = c->r->it;
    if (!rocksdb_iter_valid(it)) return 0;
    size_t kl;
    const char *k = rocksdb_iter_key(it, &kl);
    if (kl != c->klen || memcmp(k, c->pre, c->pl) != 0) return 0;
    *bucket = seq_key_bucket_dec(seq_get_be64((const uint8_t *)k + kl - 8));
    return 1;
}

static void cur_next(cursor *c)
{
    if (c->base) c->seg = seg_next(c->seg);
    else rocksdb_iter_next(c->r->it);
}

/* The current blob, stable until the end of the read: an entry is, an iterator's value
 * is copied into the arena (Next invalidates it). */
static const void *cur_value(cursor *c, size_t *vl)
{
    if (c->base) {
        *vl = seg_len(c->seg);
        return c->seg + SEG_HDR;
    }
    const char *v = rocksdb_iter_value(c->r->it, vl);
    void *copy = arena_alloc(&c->r->a, *vl ? *vl : 1);
    if (copy) memcpy(copy, v, *vl);
    return copy;
}

/* Which bucket blob a read is decoding, to name it when it is damaged. */
typedef struct {
    uint8_t kind; /* 's' or 'b' */
    uint64_t gen;
    int64_t bucket;
} blob_at;

/* A damaged bucket (it does not decode, or a fold marked it): DATA_LOSS naming the user
 * and sequence; the bytes are reported to be kept aside (store_merge.c). */
static int damaged(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                   const blob_at *at, const void *v, size_t vl, char *err, size_t errlen)
{
    seq_store *st = r->st;
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = at->kind == SEQ_K_STREAM
                    ? seq_key_stream(k, seq_store_part_of(st, user), p->seq->id, user, at->bucket)
                    : seq_key_batch(k, p->seq->id, at->gen, user, at->bucket);
    int folded = seq_blob_damaged(v, vl); /* already reported by the merge operator */
    if (!folded) seq_store_note_corrupt(st, k, kl, v, vl, "undecodable bucket met by a read");
    seq_errf(err, errlen,
             "stored %s data of user %llu, sequence %s is damaged (bucket starting at %lld ms%s); "
             "it is kept aside for inspection (/status)",
             at->kind == SEQ_K_STREAM ? "stream" : "batch", (unsigned long long)user,
             p->seq->name, (long long)seq_bucket_start(at->bucket, st->def->bucket_ms),
             folded ? ", part of it could not be decoded" : "");
    return SEQ_EDATALOSS;
}

/* Starts iterating blob v, with room for its records in *arr after the first n. A NULL v
 * is cur_value's failed copy. */
static int open_blob(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                     const blob_at *at, const void *v, size_t vl, seq_blob_iter *bi,
                     seq_rec **arr, uint32_t *cap, uint32_t n, char *err, size_t errlen)
{
    if (!v) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    uint32_t count = seq_blob_count(v, vl);
    if (count > vl / 20 || seq_blob_damaged(v, vl) || seq_blob_iter_init(bi, v, vl) != SEQ_OK)
        return damaged(r, p, user, at, v, vl, err, errlen); /* a record takes >= 20 bytes */
    if (reserve(arr, cap, n, count) < 0) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

/* RocksDB's own checks (a block checksum) failing is damaged data too: DATA_LOSS. */
static int iter_status(seq_store_reader *r, const seq_merge_params *p, uint64_t user, char *err,
                       size_t errlen)
{
    char *e = NULL;
    rocksdb_iter_get_error(r->it, &e);
    if (!e) return SEQ_OK;
    int loss = strncmp(e, "Corruption", 10) == 0;
    seq_errf(err, errlen, "%s of user %llu, sequence %s: rocksdb: %s",
             loss ? "stored data damaged" : "storage read failed", (unsigned long long)user,
             p->seq->name, e);
    rocksdb_free(e);
    return loss ? SEQ_EDATALOSS : SEQ_EINTERNAL;
}

static int cur_status(cursor *c, const seq_merge_params *p, uint64_t user, char *err,
                      size_t errlen)
{
    return c->base ? SEQ_OK : iter_status(c->r, p, user, err, errlen);
}

/* Stream records newest first, keeping those the merge could show, until the merge says
 * enough (seq_merge_stream_stop: `hist` batch records in history gathered, `recent_batch`
 * one at t >= C), or down to retention for an exhaustive reader. */
static int read_stream(cursor *c, const seq_merge_params *p, uint64_t user, uint32_t hist,
                       int recent_batch, uint32_t *ns, char *err, size_t errlen)
{
    seq_store_reader *r = c->r;
    uint32_t need;
    int64_t stop, bucket;
    seq_merge_stream_stop(p, hist, recent_batch || r->exhaustive, &need, &stop);
    int64_t bms = r->st->def->bucket_ms;
    for (cur_seek(c, SEQ_K_STREAM, p, user, 0); cur_bucket(c, &bucket); cur_next(c)) {
        if (seq_bucket_end(bucket, bms) <= stop) break;
        seq_blob_iter bi;
        uint32_t n = *ns;
        size_t vl;
        const void *v = cur_value(c, &vl);
        blob_at at = {SEQ_K_STREAM, 0, bucket};
        int rc = open_blob(r, p, user, &at, v, vl, &bi, &r->srec, &r->scap, n, err, errlen);
        if (rc != SEQ_OK) return rc;
        /* decoded in place; the blob's header count bounds how many fit. Copies a
         * correction replaced are kept for as-of reads only (blob.h) */
        while (bi.left && (rc = seq_blob_iter_next(&bi, &r->srec[n])) == 1)
            n += seq_merge_stream_visible(p, r->srec[n].time_ms) != 0 &&
                 seq_rec_live_at(&r->srec[n], p->as_of_ms);
        *ns = n; /* only visible records were kept */
        if (rc < 0) return damaged(r, p, user, &at, v, vl, err, errlen);
        if (n >= need) break;
    }
    return cur_status(c, p, user, err, errlen);
}

/* ---- batch records, newest first across generations ----
 * The coverage is walked newest segment first, each segment read from the buckets its
 * generation holds inside it (loads keep segments bucket-aligned), so the merge receives
 * one list in read order: a single walk when one generation answers.
 *
 * Early stop. Once the decoded records are all of the newest segment's generation `top`,
 * number at least seq_merge_need() and every older segment belongs to a generation
 * <= top, the older buckets cannot change the answer but through ids (merge.h): their
 * records are older than `need` records no older copy outranks. Only buckets wholly
 * before C are set aside (so the counts the stream read depends on stay exact); once the
 * stream's records are known, settle_pending() decodes from them just the records whose
 * id a stream record carries (a batch copy in history hides the stream's), or all of
 * them when stream copies could drop too many decoded ones (at t >= C the stream wins). */
#define PEND_SCAN_MAX 32 /* stream records up to which set-aside buckets are scanned by id */

/* A set-aside bucket: its blob (entry or arena) stays valid until the read ends. */
typedef struct pend_blob {
    const void *v;
    size_t vl;
    uint64_t gen;
    int64_t bucket;
} pend_blob;

/* The stream's ids at a glance: a 64-bit set of a cheap hash of each, then a scan. */
typedef struct {
    const seq_rec *s;
    uint32_t n;
    uint64_t mask;
} id_set;

static id_set id_set_of(const seq_rec *s, uint32_t n)
{
    id_set ids = {s, n, 0};
    for (uint32_t i = 0; i < n; i++) ids.mask |= 1ull << seq_id_bit(s[i].id, s[i].id_len);
    return ids;
}

static inline int id_set_has(const id_set *ids, const char *id, uint32_t len)
{
    if (!(ids->mask >> seq_id_bit(id, len) & 1)) return 0;
    for (uint32_t i = 0; i < ids->n; i++)
        if (ids->s[i].id_len == len && memcmp(ids->s[i].id, id, len) == 0) return 1;
    return 0;
}

/* Appends blob v's records (generation gen) to r->brec, only those whose id is in ids
 * when ids is set; *hist counts the records before cut. */
static int decode_batch(seq_store_reader *r, const seq_merge_params *p, const void *v, size_t vl,
                        uint64_t gen, int64_t bucket, int64_t cut, const id_set *ids,
                        uint64_t user, uint32_t *nb, uint32_t *hist, char *err, size_t errlen)
{
    seq_blob_iter bi;
    blob_at at = {SEQ_K_BATCH, gen, bucket};
    int rc = open_blob(r, p, user, &at, v, vl, &bi, &r->brec, &r->bcap, *nb, err, errlen);
    if (rc != SEQ_OK) return rc;
    /* counts in locals: through the pointers, every record's stores would reload them */
    seq_rec *rec = r->brec;
    uint32_t n = *nb, h = *hist;
    while (bi.left && (rc = seq_blob_iter_next(&bi, &rec[n])) == 1) {
        h += rec[n].time_ms < cut;
        rec[n].gen = gen;
        n += !ids || id_set_has(ids, rec[n].id, rec[n].id_len);
    }
    *nb = n;
    *hist = h;
    return rc < 0 ? damaged(r, p, user, &at, v, vl, err, errlen) : SEQ_OK;
}

/* Sets blob v aside; *hist counts its records (all before C). */
static int pend_add(seq_store_reader *r, const void *v, size_t vl, uint64_t gen, int64_t bucket,
                    uint32_t *hist, char *err, size_t errlen)
{
    if (v && r->npend == r->pcap) {
        uint32_t c = r->pcap ? 2 * r->pcap : 16;
        pend_blob *p = realloc(r->pend, sizeof *p * c);
        if (p) r->pend = p, r->pcap = c;
    }
    if (!v || r->npend == r->pcap) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    r->pend[r->npend++] = (pend_blob){v, vl, gen, bucket};
    *hist += seq_blob_count(v, vl);
    return SEQ_OK;
}

/* How many of the oldest segments belong to generations <= top. */
static uint32_t settled_below(const seq_merge_params *p, uint64_t top)
{
    uint32_t i = 0;
    while (i < p->n_cov && p->cov[i].gen <= top) i++;
    return i;
}

/* The batch records within retention, in read order, the older ones possibly set aside
 * (see above); *hist counts those before C, set-aside ones included. */
static int read_batch(cursor *c, const seq_merge_params *p, uint64_t user, uint32_t *nb,
                      uint32_t *hist, char *err, size_t errlen)
{
    seq_store_reader *r = c->r;
    int64_t bms = r->st->def->bucket_ms, bucket;
    int64_t floor = p->now_ms - p->seq->retention_ms;
    int64_t cut = seq_merge_cutoff(p->now_ms, p->horizon_ms);
    uint32_t need = seq_merge_need(p);
    uint64_t top = p->cov[p->n_cov - 1].gen;
    uint32_t settled = settled_below(p, top);
    int mixed = 0; /* a record of another generation than top was decoded */
    for (uint32_t i = p->n_cov; i-- > 0 && p->cov[i].end_ms > floor;) {
        const seq_cov_seg *g = &p->cov[i];
        for (cur_seek(c, SEQ_K_BATCH, p, user, g->gen); cur_bucket(c, &bucket); cur_next(c)) {
            int64_t start = seq_bucket_start(bucket, bms), end = seq_bucket_end(bucket, bms);
            if (start >= g->end_ms) continue; /* a newer segment's */
            if (end <= g->start_ms || end <= floor) break;
            size_t vl;
            const void *v = cur_value(c, &vl);
            int rc;
            if (!r->exhaustive && !mixed && i < settled && *nb >= need && end <= cut) {
                rc = pend_add(r, v, vl, g->gen, bucket, hist, err, errlen);
            } else {
                mixed |= g->gen != top;
                rc = decode_batch(r, p, v, vl, g->gen, bucket, cut, NULL, user, nb, hist, err,
                                  errlen);
            }
            if (rc != SEQ_OK) return rc;
        }
        int rc = cur_status(c, p, user, err, errlen);
        if (rc != SEQ_OK) return rc;
    }
    return SEQ_OK;
}

/* After the stream read: what the set-aside buckets still contribute (see above). */
static int settle_pending(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                          uint32_t ns, uint32_t *nb, char *err, size_t errlen)
{
    if (r->npend == 0 || ns == 0) return SEQ_OK;
    id_set ids = id_set_of(r->srec, ns);
    int all = ns > PEND_SCAN_MAX;
    if (!all) {
        /* decoded records at t >= C (a prefix: newest first) that a stream copy may drop */
        int64_t cut = seq_merge_cutoff(p->now_ms, p->horizon_ms);
        uint32_t drop = 0;
        for (uint32_t i = 0; i < *nb && r->brec[i].time_ms >= cut; i++)
            drop += id_set_has(&ids, r->brec[i].id, r->brec[i].id_len);
        all = *nb - drop < seq_merge_need(p);
    }
    uint32_t hist = 0;
    for (uint32_t k = 0; k < r->npend; k++) {
        const pend_blob *b = &r->pend[k];
        int rc = decode_batch(r, p, b->v, b->vl, b->gen, b->bucket, 0, all ? NULL : &ids, user,
                              nb, &hist, err, errlen);
        if (rc != SEQ_OK) return rc;
    }
    return SEQ_OK;
}

static int gen_seen_before(const seq_merge_params *p, uint32_t i)
{
    for (uint32_t j = 0; j < i; j++)
        if (p->cov[j].gen == p->cov[i].gen) return 1;
    return 0;
}

/* ---- gathering an entry from RocksDB (a cache miss) ----
 * Besides the bucket segments, an entry holds bookkeeping segments of no data, which the
 * cursors pass over (their kinds are neither 's' nor 'b'): first SEG_FLOOR, whose bucket
 * field is the retention floor (ms) the entry was gathered down to, then one SEG_GEN per
 * generation gathered, before that generation's buckets (it may have none for the
 * user). They let a miss that finds an outdated entry (rcache.h) keep the generations
 * it gathered and, when no stream write came since, its stream part; and they keep a
 * read whose floor is older (an as-of read) from an entry gathered down to a newer one. */
#define SEG_FLOOR 'f'
#define SEG_GEN 'g'
static_assert(SEG_FLOOR != SEQ_K_STREAM && SEG_FLOOR != SEQ_K_BATCH && SEG_GEN != SEQ_K_STREAM &&
                  SEG_GEN != SEQ_K_BATCH,
              "bookkeeping segments must not look like bucket segments");

static int seg_append(seq_buf *ent, uint8_t kind, uint64_t gen, int64_t bucket, const void *v,
                      size_t vl)
{
    uint8_t hdr[SEG_HDR] = {kind};
    uint32_t l = (uint32_t)vl;
    memcpy(hdr + 4, &l, 4);
    memcpy(hdr + 8, &gen, 8);
    memcpy(hdr + 16, &bucket, 8);
    static const uint8_t zero[8];
    if (seq_buf_append(ent, hdr, SEG_HDR) < 0 || seq_buf_append(ent, v, vl) < 0 ||
        seq_buf_append(ent, zero, PAD8(vl) - vl) < 0)
        return -1;
    return 0;
}

/* The retention floor an entry was gathered down to (its first segment). */
static int64_t entry_floor(const uint8_t *e, size_t len)
{
    assert(len >= SEG_HDR && e[0] == SEG_FLOOR);
    (void)len;
    return (int64_t)seg_u64(e, 16);
}

/* Whether an entry gathered generation gen. */
static int entry_has_gen(const uint8_t *e, const uint8_t *end, uint64_t gen)
{
    for (const uint8_t *g = e; g < end; g = seg_next(g))
        if (g[0] == SEG_GEN && seg_gen(g) == gen) return 1;
    return 0;
}

/* Copies an older entry's buckets of one source (kind, gen) within retention. Returns 1
 * when the entry grew past max, as gather_source. */
static int copy_source(seq_buf *ent, const uint8_t *e, const uint8_t *end, uint8_t kind,
                       uint64_t gen, int64_t floor, int64_t bms, size_t max)
{
    for (const uint8_t *g = e; g < end; g = seg_next(g)) {
        if (g[0] != kind || seg_gen(g) != gen) continue;
        int64_t bucket = (int64_t)seg_u64(g, 16);
        if (seq_bucket_end(bucket, bms) <= floor) continue;
        if (seg_append(ent, kind, gen, bucket, g + SEG_HDR, seg_len(g)) < 0) return -1;
        if (ent->len > max) return 1;
    }
    return 0;
}

/* Appends every bucket of one source within retention. Returns 1 when the entry grew
 * past max (not worth caching: the caller reads straight from RocksDB instead). */
static int gather_source(cursor *c, uint8_t kind, const seq_merge_params *p, uint64_t user,
                         uint64_t gen, size_t max)
{
    int64_t bms = c->r->st->def->bucket_ms, bucket;
    int64_t floor = p->now_ms - p->seq->retention_ms;
    for (cur_seek(c, kind, p, user, gen); cur_bucket(c, &bucket); cur_next(c)) {
        if (seq_bucket_end(bucket, bms) <= floor) break;
        size_t vl;
        const char *v = rocksdb_iter_value(c->r->it, &vl);
        if (vl > UINT32_MAX || seg_append(&c->r->ent, kind, gen, bucket, v, vl) < 0) return -1;
        if (c->r->ent.len > max) return 1;
    }
    return 0;
}

/* gather_source with one iterator for the whole gather, made after the cache's version
 * was read (rcache.h) at the first source read from RocksDB. */
static int gather_db(cursor *c, uint8_t kind, const seq_merge_params *p, uint64_t user,
                     uint64_t gen, size_t max, int *read_db)
{
    if (!*read_db) fresh_iter(c->r);
    *read_db = 1;
    return gather_source(c, kind, p, user, gen, max);
}

/* Gathers user's entry into r->ent: from the older entry `old` (NULL: none) what is still
 * current (its generations that the coverage still names; its stream part if stream_ok),
 * the rest from RocksDB. 0: done, 1: too large, <0: minus a SEQ_ code (in err). */
static int gather(cursor *c, const seq_merge_params *p, uint64_t user, size_t max,
                  const uint8_t *old, size_t old_len, int stream_ok, char *err, size_t errlen)
{
    seq_store_reader *r = c->r;
    int64_t floor = p->now_ms - p->seq->retention_ms, bms = r->st->def->bucket_ms;
    const uint8_t *old_end = old ? old + old_len : NULL;
    int rc = 0, read_db = 0;
    r->ent.len = 0;
    if (old && entry_floor(old, old_len) > floor) old = NULL; /* gathered not deep enough */
    if (seg_append(&r->ent, SEG_FLOOR, 0, floor, "", 0) < 0) rc = -1;
    for (uint32_t i = 0; i < p->n_cov && rc == 0; i++) {
        uint64_t gen = p->cov[i].gen;
        if (gen_seen_before(p, i)) continue;
        if (seg_append(&r->ent, SEG_GEN, gen, 0, "", 0) < 0) rc = -1;
        else if (old && entry_has_gen(old, old_end, gen))
            rc = copy_source(&r->ent, old, old_end, SEQ_K_BATCH, gen, floor, bms, max);
        else
            rc = gather_db(c, SEQ_K_BATCH, p, user, gen, max, &read_db);
    }
    if (rc == 0 && old && stream_ok)
        rc = copy_source(&r->ent, old, old_end, SEQ_K_STREAM, 0, floor, bms, max);
    else if (rc == 0)
        rc = gather_db(c, SEQ_K_STREAM, p, user, 0, max, &read_db);
    if (rc < 0) {
        seq_errf(err, errlen, "out of memory");
        return -SEQ_EINTERNAL;
    }
    if (rc == 0 && read_db && (rc = iter_status(r, p, user, err, errlen)) != SEQ_OK) return -rc;
    if (rc == 0 && old && !read_db) /* all of it was in the outdated entry */
        atomic_fetch_add_explicit(&r->st->rc_local, 1, memory_order_relaxed);
    return rc;
}

/* Points c at user's entry: the cache's, held in place until the next read (no copy), or
 * gathered (from an outdated entry and RocksDB) into r->ent (and cached). Leaves c in
 * iterator mode when the user's data is too large for an entry. */
static int open_entry(cursor *c, const seq_merge_params *p, uint64_t user, char *err,
                      size_t errlen)
{
    seq_store_reader *r = c->r;
    seq_rcache *rc_ = r->st->rcache;
    uint64_t sig = seq_rcache_cov_sig(p->cov, p->n_cov), version;
    const seq_rcache_entry *old = NULL;
    const uint8_t *data;
    size_t len;
    int stream_ok = 0;
    int hit = seq_rcache_get_stale(rc_, p->seq->id, user, sig, &r->held, &version, &old, &stream_ok);
    if (hit) {
        data = seq_rcache_entry_data(r->held, &len);
        if (entry_floor(data, len) > p->now_ms - p->seq->retention_ms) { /* an as-of read's */
            old = r->held; /* gather reads it all again: gathered not deep enough */
            r->held = NULL;
            hit = 0;
        }
    }
    if (!hit) {
        size_t old_len = 0;
        const uint8_t *od = old ? seq_rcache_entry_data(old, &old_len) : NULL;
        int rc = gather(c, p, user, seq_rcache_max_entry(rc_), od, old_len, stream_ok, err, errlen);
        seq_rcache_release(old);
        if (rc == 1) fresh_iter(r); /* iterator mode reads everything from RocksDB */
        if (rc < 0) return -rc;
        if (rc == 1) return SEQ_OK;
        seq_rcache_put(rc_, p->seq->id, user, sig, version, r->ent.data, r->ent.len);
        data = r->ent.data;
        len = r->ent.len;
    }
    c->base = data;
    c->end = c->base + len;
    return SEQ_OK;
}

/* ---- write-through (store_batch.c, after a commit) ---- */

static void note_bad(void *ctx, int index, const void *bytes, size_t len)
{
    (void)index, (void)bytes, (void)len;
    *(int *)ctx = 1;
}

/* The next stream segment of an entry at or after g (NULL: none). */
static const uint8_t *next_stream(const uint8_t *g, const uint8_t *end)
{
    while (g < end && g[0] != SEQ_K_STREAM) g = seg_next(g);
    return g < end ? g : NULL;
}

/* The entry's segments but the stream's, as they are; then the stream's, newest first,
 * each written bucket folded (seq_blob_fold, as store_merge.c's full merge does) from the
 * entry's bucket (or nothing: the entry holds every bucket down to its floor) and the
 * operands. 0, or -1 (out of memory, or damaged data met). */
static int fold_entry(seq_store *st, const uint8_t *e, const uint8_t *end,
                      const seq_store_wbucket *bk, uint32_t nbk, const char *const *ops,
                      const size_t *lens, seq_buf *out)
{
    seq_buf blob = {0};
    int bad = 0, rc = 0;
    int64_t drop_before = seq_store_drop_before(st, seq_now_ms());
    for (const uint8_t *g = e; g < end && rc == 0; g = seg_next(g))
        if (g[0] != SEQ_K_STREAM)
            rc = seg_append(out, g[0], seg_gen(g), (int64_t)seg_u64(g, 16), g + SEG_HDR, seg_len(g));
    const uint8_t *g = next_stream(e, end);
    uint32_t j = 0;
    while (rc == 0 && !bad && (g || j < nbk)) {
        int64_t gb = g ? (int64_t)seg_u64(g, 16) : INT64_MIN;
        if (j < nbk && (!g || bk[j].bucket >= gb)) {
            assert(j == 0 || bk[j].bucket < bk[j - 1].bucket);
            const seq_store_wbucket *w = &bk[j++];
            const void *base = NULL;
            size_t bl = 0;
            if (g && w->bucket == gb) {
                base = g + SEG_HDR;
                bl = seg_len(g);
                g = next_stream(seg_next(g), end);
            }
            if (seq_blob_fold(&blob, base, bl, ops + w->first, lens + w->first, (int)w->n,
                              drop_before, note_bad, &bad) != SEQ_OK)
                rc = -1;
            else if (!bad)
                rc = seg_append(out, SEQ_K_STREAM, 0, w->bucket, blob.data, blob.len);
        } else {
            rc = seg_append(out, SEQ_K_STREAM, 0, gb, g + SEG_HDR, seg_len(g));
            g = next_stream(seg_next(g), end);
        }
    }
    seq_buf_free(&blob);
    return rc == 0 && !bad ? 0 : -1;
}

void seq_store_entry_write(seq_store *st, uint32_t seq, uint64_t user, const seq_store_wbucket *bk,
                           uint32_t nbk, const char *const *ops, const size_t *lens)
{
    seq_rcache *c = st->rcache;
    if (!c) return;
    const seq_rcache_entry *was = seq_rcache_peek(c, seq, user);
    seq_buf out = {0};
    int ok = 0;
    if (was) {
        size_t len;
        const uint8_t *e = seq_rcache_entry_data(was, &len);
        ok = fold_entry(st, e, e + len, bk, nbk, ops, lens, &out) == 0;
    }
    seq_rcache_write(c, seq, user, was, ok ? out.data : NULL, out.len);
    seq_rcache_release(was);
    seq_buf_free(&out);
}

/* ---- preparing cached entries for a load (store_load.c, before its switch) ---- */

/* Peeks user's entry and copies it into ent with the mark of generation gen appended,
 * ready for gen's buckets: the entry (a reference), or NULL when there is none to extend
 * (not cached; or it names gen already, which it cannot: the coverage does not name gen
 * yet, and a load that is not switched in drops the cache). */
static const seq_rcache_entry *prepare_begin(seq_rcache *c, uint32_t seq, uint64_t user,
                                             uint64_t gen, seq_buf *ent)
{
    size_t len;
    const seq_rcache_entry *was = seq_rcache_peek(c, seq, user);
    const uint8_t *d = was ? seq_rcache_entry_data(was, &len) : NULL;
    ent->len = 0;
    if (d && (entry_has_gen(d, d + len, gen) || seq_buf_append(ent, d, len) < 0 ||
              seg_append(ent, SEG_GEN, gen, 0, "", 0) < 0)) {
        seq_rcache_release(was);
        was = NULL;
    }
    return was;
}

/* Ends one user's run of the scan below: its entry, extended, replaces the one peeked. */
static void prepare_done(seq_store *st, uint32_t seq, uint64_t user,
                         const seq_rcache_entry **was, seq_buf *ent, size_t *n)
{
    if (*was) *n += (size_t)seq_rcache_swap(st->rcache, seq, user, *was, ent->data, ent->len);
    seq_rcache_release(*was);
    *was = NULL;
}

/* The cached users below `below` (or all the rest) that the scan passed without meeting a
 * key of theirs: gen holds nothing of them, so their entries get gen's mark alone. */
static void prepare_absent(seq_store *st, uint32_t seq, uint64_t gen, const uint64_t *cached,
                           size_t nc, size_t *ci, int all, uint64_t below, seq_buf *ent,
                           size_t *n)
{
    for (; *ci < nc && (all || cached[*ci] < below); (*ci)++) {
        const seq_rcache_entry *was = prepare_begin(st->rcache, seq, cached[*ci], gen, ent);
        prepare_done(st, seq, cached[*ci], &was, ent, n);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

size_t seq_store_prepare_entries(seq_store *st, uint32_t seq, uint64_t gen)
{
    seq_rcache *c = st->rcache;
    if (!c) return 0;
    uint8_t lo[SEQ_KEY_MAX], hi[SEQ_KEY_MAX];
    size_t ll = seq_batch_marker_key(lo, seq, gen), hl = seq_batch_marker_key(hi, seq, gen + 1);
    size_t max = seq_rcache_max_entry(c), n = 0, ci = 0;
    /* the users cached now, in key order: an entry made later is gathered under the
     * coverage that names gen, or refreshed from RocksDB */
    uint64_t *cached = NULL;
    long got = seq_rcache_users(c, seq, &cached);
    size_t nc = got > 0 ? (size_t)got : 0;
    if (nc) qsort(cached, nc, sizeof *cached, cmp_u64);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(ro, 1);
    rocksdb_readoptions_set_fill_cache(ro, 0); /* one pass: keep the readers' blocks */
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hl);
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, ro);
    const seq_rcache_entry *was = NULL;
    seq_buf ent = {0};
    uint64_t user = 0;
    int started = 0, unsure = 0;
    char *e = NULL;
    for (rocksdb_iter_seek(it, (const char *)lo, ll); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        seq_key key;
        if (kl != SEQ_KEY_BATCH_LEN || seq_key_parse(k, kl, &key) != 0 ||
            key.kind != SEQ_K_BATCH || key.gen != gen) {
            /* the generation's marker; anything else there and no user is known absent */
            if (kl != ll || memcmp(k, lo, ll) != 0) unsure = 1;
            continue;
        }
        if (!started || key.user != user) { /* a new user: the previous one is whole */
            prepare_done(st, seq, user, &was, &ent, &n);
            /* keys come in user order, so users below this one have none */
            if (!unsure) prepare_absent(st, seq, gen, cached, nc, &ci, 0, key.user, &ent, &n);
            while (ci < nc && cached[ci] <= key.user) ci++;
            started = 1;
            user = key.user;
            was = prepare_begin(c, seq, user, gen, &ent);
        }
        if (!was) continue; /* not cached: its first read gathers it */
        const char *v = rocksdb_iter_value(it, &vl);
        if (vl > UINT32_MAX || seg_append(&ent, SEQ_K_BATCH, gen, key.bucket, v, vl) < 0 ||
            ent.len > max) { /* too large for an entry: its next read decides */
            seq_rcache_release(was);
            was = NULL;
        }
    }
    rocksdb_iter_get_error(it, &e);
    if (e) { /* the run being read may be short of buckets: not swapped in */
        free(e);
        seq_rcache_release(was);
        was = NULL;
        unsure = 1; /* and the users after it are not known absent */
    }
    prepare_done(st, seq, user, &was, &ent, &n);
    if (!unsure) prepare_absent(st, seq, gen, cached, nc, &ci, 1, 0, &ent, &n);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    seq_buf_free(&ent);
    free(cached);
    return n;
}

int seq_store_read(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                   const seq_rec **stream, uint32_t *ns, const seq_rec **batch, uint32_t *nb,
                   char *err, size_t errlen)
{
    int rc;
    cursor c = {.r = r};
    *ns = *nb = 0;
    arena_reset(&r->a);
    seq_rcache_release(r->held); /* the previous read's records are done with */
    r->held = NULL;
    if (r->st->rcache && !r->uncached) {
        if ((rc = open_entry(&c, p, user, err, errlen)) != SEQ_OK) return rc;
    } else {
        fresh_iter(r);
    }
    uint32_t hist = 0;
    r->npend = 0;
    /* the views (merge.h) read one source each */
    if (p->n_cov && p->view != SEQ_VIEW_STREAM &&
        (rc = read_batch(&c, p, user, nb, &hist, err, errlen)) != SEQ_OK)
        return rc;
    /* any batch record at t >= C? The decoded ones are newest first, the set-aside ones older */
    int recent_batch = *nb && r->brec[0].time_ms >= seq_merge_cutoff(p->now_ms, p->horizon_ms);
    if (p->view != SEQ_VIEW_BATCH &&
        (rc = read_stream(&c, p, user, hist, recent_batch, ns, err, errlen)) != SEQ_OK)
        return rc;
    if ((rc = settle_pending(r, p, user, *ns, nb, err, errlen)) != SEQ_OK) return rc;
    *stream = r->srec;
    *batch = r->brec;
    return SEQ_OK;
}
