/* Stream writes: the consumer's batch of applied events, committed with the Kafka
 * offsets that produced them in one synced RocksDB write (PRODUCT.md rule 7).
 *
 * Every touched key (a bucket blob 's', an id index entry 'i') lives in a pending map:
 * read from RocksDB on first touch, then changed in memory, so that many events of one
 * bucket cost one read and one write. After a commit the map is kept as a write-through
 * cache (its values are now what RocksDB holds) until it grows past CACHE_BYTES.
 * This is only correct while no other writer changes the same users' stream keys: use
 * one batch per consumer, and route a user's events to one consumer. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define CACHE_BYTES ((size_t)64 << 20)

typedef struct {
    uint32_t hash;
    uint32_t koff; /* the key's bytes are keys.data + koff */
    uint16_t klen;
    uint8_t in_db; /* RocksDB holds the key: an emptied value must be deleted */
    uint8_t dirty; /* changed since the last commit: listed in dirty[] */
    seq_buf val;   /* 's': blob, 'i': be64 time; len 0 = absent */
} pend;

/* What an entry costs besides its value: the entry, its table slot and dirty slot (the
 * table is kept at most half full), its key. Counted so that CACHE_BYTES bounds memory. */
#define ENT_OVERHEAD (sizeof(pend) + 3 * sizeof(uint32_t))

struct seq_store_batch {
    seq_store *st;
    rocksdb_writebatch_t *wb; /* offsets and malformed records, added as they come */
    pend *ent;
    uint32_t n_ent, n_init, cap_ent; /* entries [0, n_init) own an initialised val */
    uint32_t *tab;                   /* open addressing: entry index + 1, 0 = empty */
    uint32_t tab_cap;                /* power of two, > 2 * n_ent */
    seq_buf keys;                    /* every entry's key bytes, appended on first touch */
    /* Entries changed since the last commit, so that a commit costs what the batch
     * changed, not what the cache holds (cap_ent slots: an entry is listed once). */
    uint32_t *dirty;
    uint32_t n_dirty;
    size_t bytes; /* sum of val capacities, for the cache bound */
    seq_buf tmp;
    uint64_t n_malformed;
};

static uint32_t hash_key(const uint8_t *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 16777619u;
    return h;
}

seq_store_batch *seq_store_batch_new(seq_store *st)
{
    seq_store_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->st = st;
    b->wb = rocksdb_writebatch_create();
    b->tab_cap = 1024;
    b->tab = calloc(b->tab_cap, sizeof *b->tab);
    if (!b->tab) {
        seq_store_batch_free(b);
        return NULL;
    }
    return b;
}

static void clear_map(seq_store_batch *b)
{
    b->n_ent = 0;
    b->n_dirty = 0;
    b->keys.len = 0;
    memset(b->tab, 0, sizeof *b->tab * b->tab_cap);
}

static const uint8_t *key_of(const seq_store_batch *b, const pend *e)
{
    return b->keys.data + e->koff;
}

/* Memory the map holds: values, entries and keys (compared with CACHE_BYTES). */
static size_t map_bytes(const seq_store_batch *b)
{
    return b->bytes + (size_t)b->n_ent * ENT_OVERHEAD + b->keys.len;
}

void seq_store_batch_free(seq_store_batch *b)
{
    if (!b) return;
    for (uint32_t i = 0; i < b->n_init; i++) seq_buf_free(&b->ent[i].val);
    free(b->ent);
    free(b->tab);
    free(b->dirty);
    seq_buf_free(&b->keys);
    seq_buf_free(&b->tmp);
    if (b->wb) rocksdb_writebatch_destroy(b->wb);
    free(b);
}

static void tab_insert(uint32_t *tab, uint32_t cap, uint32_t hash, uint32_t idx)
{
    uint32_t i = hash & (cap - 1);
    while (tab[i]) i = (i + 1) & (cap - 1);
    tab[i] = idx + 1;
}

static int grow(seq_store_batch *b)
{
    if (b->n_ent == b->cap_ent) {
        uint32_t cap = b->cap_ent ? b->cap_ent * 2 : 256;
        pend *e = realloc(b->ent, sizeof *e * cap);
        if (!e) return -1;
        b->ent = e;
        uint32_t *d = realloc(b->dirty, sizeof *d * cap);
        if (!d) return -1;
        b->dirty = d;
        b->cap_ent = cap;
    }
    if ((b->n_ent + 1) * 2 > b->tab_cap) {
        uint32_t cap = b->tab_cap * 2;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t) return -1;
        for (uint32_t i = 0; i < b->n_ent; i++) tab_insert(t, cap, b->ent[i].hash, i);
        free(b->tab);
        b->tab = t;
        b->tab_cap = cap;
    }
    return 0;
}

/* Index of the pending entry for key, loading it from RocksDB on first touch; -1 on
 * error. Indexes stay valid until the map is cleared (pointers do not: the array grows). */
static int64_t touch(seq_store_batch *b, const uint8_t *key, size_t klen, char *err,
                     size_t errlen)
{
    uint32_t h = hash_key(key, klen);
    for (uint32_t i = h & (b->tab_cap - 1); b->tab[i]; i = (i + 1) & (b->tab_cap - 1)) {
        pend *e = &b->ent[b->tab[i] - 1];
        if (e->hash == h && e->klen == klen && memcmp(key_of(b, e), key, klen) == 0)
            return b->tab[i] - 1;
    }
    char *val;
    size_t vl;
    if (seq_store_get_raw(b->st, key, klen, &val, &vl, err, errlen) != SEQ_OK) return -1;
    uint32_t koff = (uint32_t)b->keys.len;
    if (grow(b) < 0 || seq_buf_append(&b->keys, key, klen) < 0) goto oom;
    uint32_t idx = b->n_ent;
    pend *e = &b->ent[idx];
    if (idx == b->n_init) {
        memset(&e->val, 0, sizeof e->val);
        b->n_init++;
    }
    e->koff = koff;
    e->klen = (uint16_t)klen;
    e->hash = h;
    e->dirty = 0;
    e->in_db = val != NULL;
    e->val.len = 0;
    size_t cap0 = e->val.cap;
    if (val && seq_buf_append(&e->val, val, vl) < 0) goto oom;
    b->bytes += e->val.cap - cap0;
    rocksdb_free(val);
    b->n_ent++;
    tab_insert(b->tab, b->tab_cap, h, idx);
    return idx;
oom:
    rocksdb_free(val);
    seq_errf(err, errlen, "out of memory");
    return -1;
}

/* Replaces entry idx's value with b->tmp (swapping buffers: no copy). */
static void set_from_tmp(seq_store_batch *b, int64_t idx)
{
    pend *e = &b->ent[idx];
    seq_buf t = e->val;
    b->bytes += b->tmp.cap - t.cap;
    e->val = b->tmp;
    b->tmp = t;
    if (!e->dirty) b->dirty[b->n_dirty++] = (uint32_t)idx;
    e->dirty = 1;
}

/* When history keeps no replaced copy, they are dropped on the spot (INT64_MAX). */
static int64_t drop_before(const seq_store_batch *b, int64_t applied)
{
    int64_t h = b->st->history_ms;
    return h > 0 ? applied - h : INT64_MAX;
}

/* Marks id replaced in the bucket its indexed copy lives in, when that is not `bucket`. */
static int unlink_old(seq_store_batch *b, int64_t iidx, uint32_t seq, uint64_t user,
                      int64_t bucket, const seq_event *ev, int64_t applied, char *err,
                      size_t errlen)
{
    const pend *ie = &b->ent[iidx];
    if (ie->val.len != 8) return SEQ_OK;
    int64_t told = (int64_t)seq_get_be64(ie->val.data);
    int64_t ob = seq_bucket_of(told, b->st->def->bucket_ms);
    if (ob == bucket) return SEQ_OK; /* the upsert replaces it in place */
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_stream(k, seq, user, ob);
    int64_t sidx = touch(b, k, kl, err, errlen);
    if (sidx < 0) return SEQ_EINTERNAL;
    const pend *se = &b->ent[sidx];
    int found = 0;
    if (se->val.len == 0) return SEQ_OK;
    if (seq_blob_replace(&b->tmp, se->val.data, se->val.len, ev->id, ev->id_len, applied,
                         drop_before(b, applied), &found) != SEQ_OK) {
        seq_errf(err, errlen, "corrupt stream bucket (seq %u, user %llu)", seq,
                 (unsigned long long)user);
        return SEQ_EINTERNAL;
    }
    if (found) set_from_tmp(b, sidx);
    return SEQ_OK;
}

static int add_one(seq_store_batch *b, const seq_event *ev, const seq_exec_out *o,
                   int64_t applied, char *err, size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_index(k, o->seq_id, ev->user_id, ev->id, ev->id_len);
    int64_t iidx = touch(b, k, kl, err, errlen);
    if (iidx < 0) return SEQ_EINTERNAL;
    int rc = unlink_old(b, iidx, o->seq_id, ev->user_id, o->bucket, ev, applied, err, errlen);
    if (rc != SEQ_OK) return rc;

    kl = seq_key_stream(k, o->seq_id, ev->user_id, o->bucket);
    int64_t sidx = touch(b, k, kl, err, errlen);
    if (sidx < 0) return SEQ_EINTERNAL;
    seq_rec rec = {.time_ms = ev->time_ms, .item_id = ev->item_id, .type_idx = o->type_idx,
                   .id_len = ev->id_len, .id = ev->id, .n_cols = o->n_cols,
                   .cols = (const uint8_t *)o->cols, /* blob columns are LE doubles */
                   .applied_ms = applied};
    const pend *se = &b->ent[sidx];
    rc = seq_blob_upsert(&b->tmp, se->val.data, se->val.len, &rec, drop_before(b, applied));
    if (rc != SEQ_OK) {
        seq_errf(err, errlen, "stream bucket update failed (seq %u, user %llu)", o->seq_id,
                 (unsigned long long)ev->user_id);
        return rc;
    }
    set_from_tmp(b, sidx);

    uint8_t t[8];
    seq_put_be64(t, (uint64_t)ev->time_ms);
    b->tmp.len = 0;
    if (seq_buf_append(&b->tmp, t, 8) < 0) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    set_from_tmp(b, iidx);
    return SEQ_OK;
}

int seq_store_batch_add_event(seq_store_batch *b, const seq_event *ev, const seq_exec_out *outs,
                              uint32_t n, char *err, size_t errlen)
{
    int64_t applied = seq_now_ms(); /* one apply time for every sequence of the event */
    for (uint32_t i = 0; i < n; i++) {
        int rc = add_one(b, ev, &outs[i], applied, err, errlen);
        if (rc != SEQ_OK) return rc;
    }
    return SEQ_OK;
}

int seq_store_batch_add_malformed(seq_store_batch *b, int32_t partition, int64_t offset,
                                  const void *payload, size_t len, const char *reason)
{
    uint8_t k[SEQ_KEY_MAX], h[4];
    size_t kl = seq_key_malformed(k, partition, offset);
    size_t rl = reason ? strlen(reason) : 0;
    seq_put_be32(h, (uint32_t)rl);
    const char *parts[3] = {(const char *)h, reason ? reason : "", payload};
    size_t sizes[3] = {4, rl, len};
    const char *kp = (const char *)k;
    rocksdb_writebatch_putv(b->wb, 1, &kp, &kl, 3, parts, sizes);
    b->n_malformed++;
    return SEQ_OK;
}

void seq_store_batch_set_offset(seq_store_batch *b, int32_t partition, int64_t next_offset,
                                int64_t watermark_ms)
{
    uint8_t k[SEQ_KEY_MAX], v[16];
    size_t kl = seq_key_offset(k, partition);
    seq_put_be64(v, (uint64_t)next_offset);
    seq_put_be64(v + 8, (uint64_t)watermark_ms);
    rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 16);
}

static int is_empty(const seq_store_batch *b, const pend *e)
{
    if (e->val.len == 0) return 1;
    return key_of(b, e)[0] == SEQ_K_STREAM && seq_blob_count(e->val.data, e->val.len) == 0;
}

static int cmp_ent(const void *x, const void *y, void *arg)
{
    const seq_store_batch *m = arg;
    const pend *a = &m->ent[*(const uint32_t *)x], *b = &m->ent[*(const uint32_t *)y];
    int c = memcmp(key_of(m, a), key_of(m, b), a->klen < b->klen ? a->klen : b->klen);
    return c ? c : (int)a->klen - (int)b->klen;
}

/* Adds the dirty entries to the write batch in key order: RocksDB's memtable insert
 * keeps the previous insert's position (a splice), which saves the skiplist search when
 * the next key is adjacent (a user's keys of one batch). */
static void stage_entries(seq_store_batch *b)
{
    if (b->n_dirty > 1) qsort_r(b->dirty, b->n_dirty, sizeof *b->dirty, cmp_ent, b);
    for (uint32_t j = 0; j < b->n_dirty; j++) {
        const pend *e = &b->ent[b->dirty[j]];
        const char *k = (const char *)key_of(b, e);
        if (!is_empty(b, e))
            rocksdb_writebatch_put(b->wb, k, e->klen, (const char *)e->val.data, e->val.len);
        else if (e->in_db)
            rocksdb_writebatch_delete(b->wb, k, e->klen);
    }
}

/* After a successful write, readers must not be served what the record cache holds of
 * the stream buckets it changed (rcache.h). */
static void forget_written(seq_store_batch *b)
{
    if (!b->st->rcache) return;
    for (uint32_t j = 0; j < b->n_dirty; j++) {
        const uint8_t *k = key_of(b, &b->ent[b->dirty[j]]);
        if (k[0] == SEQ_K_STREAM)
            seq_rcache_forget(b->st->rcache, seq_get_be32(k + 1), seq_get_be64(k + 5));
    }
}

/* After a successful write the pending values are what RocksDB holds. */
static void mark_clean(seq_store_batch *b)
{
    for (uint32_t j = 0; j < b->n_dirty; j++) {
        pend *e = &b->ent[b->dirty[j]];
        if (is_empty(b, e)) e->val.len = 0;
        e->in_db = e->val.len != 0;
        e->dirty = 0;
    }
    b->n_dirty = 0;
}

static void reset(seq_store_batch *b, int keep_cache)
{
    rocksdb_writebatch_clear(b->wb);
    b->n_malformed = 0;
    if (!keep_cache || map_bytes(b) > CACHE_BYTES) {
        if (map_bytes(b) > CACHE_BYTES) { /* give back what an unusual batch grew to */
            for (uint32_t i = 0; i < b->n_init; i++) seq_buf_free(&b->ent[i].val);
            b->n_init = 0;
            b->bytes = 0;
            seq_buf_free(&b->keys);
        }
        clear_map(b);
    }
}

int seq_store_batch_commit(seq_store_batch *b, char *err, size_t errlen)
{
    seq_store *st = b->st;
    char *e = NULL;
    stage_entries(b);
    pthread_mutex_lock(&st->commit_mu);
    uint64_t count = atomic_load(&st->malformed) + b->n_malformed;
    if (b->n_malformed) {
        uint8_t k[SEQ_KEY_MAX], v[8];
        size_t kl = seq_key_meta(k, "malformed");
        seq_put_be64(v, count);
        rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 8);
    }
    rocksdb_write(st->db, st->wsync, b->wb, &e);
    if (!e) atomic_store(&st->malformed, count);
    pthread_mutex_unlock(&st->commit_mu);
    if (e) {
        seq_errf(err, errlen, "rocksdb write: %s", e);
        rocksdb_free(e);
        reset(b, 0); /* the caller resumes from the stored offsets */
        return SEQ_EINTERNAL;
    }
    forget_written(b);
    mark_clean(b);
    reset(b, 1);
    return SEQ_OK;
}
