/* Storage: opening RocksDB (cache sizing, bloom filters, retention compaction filter),
 * the stored definition, offsets, malformed messages, and the refcounted view of
 * committed batch state. Stream writes are in store_batch.c, reads in store_read.c.
 * Sits between the engine (pure) and the server/consumer: the only module that talks
 * to RocksDB. */
#include "store_int.h"
#include "batch.h"
#include "../engine/partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB ((size_t)1 << 20)

static const seq_store_seqstate empty_state;

/* ---- retention: compaction filter ---- */

static const seq_sequence *seq_by_id(const seq_def *def, uint32_t id)
{
    if (id < def->n_seqs && def->seqs[id].id == id) return &def->seqs[id];
    for (uint32_t i = 0; i < def->n_seqs; i++)
        if (def->seqs[i].id == id) return &def->seqs[i];
    return NULL;
}

/* One compaction's filter state: RocksDB copies a changed value and never frees it, so it
 * lives in `out` until the next key or the end of the compaction. The wall clock is read
 * once per FILTER_CLOCK_KEYS keys, not per key: ~35 ns a read on this VM, ~6 % of the
 * compaction thread (bench/NOTES.md, "Session 9 — sustained ingest"). It is read first
 * when the compaction starts, so it is never behind that; a key whose time comes during
 * a compaction is kept until the next one, as it would be a moment earlier. */
#define FILTER_CLOCK_KEYS 1024
typedef struct {
    const seq_store *st;
    seq_buf out;
    int64_t now;
    uint32_t keys;
} filter_state;

/* Drops replaced copies older than history from a stream bucket blob kept otherwise.
 * Returns 1 when the whole blob can go. */
static unsigned char expire_replaced(filter_state *fs, int64_t now, const char *val,
                                     size_t vlen, char **nv, size_t *nvlen,
                                     unsigned char *changed)
{
    int64_t drop_before = seq_store_drop_before(fs->st, now);
    /* an undecodable blob has no oldest copy: left as it is, for reads to report */
    if (seq_blob_oldest_replaced(val, vlen) >= drop_before) return 0;
    if (seq_blob_fold(&fs->out, val, vlen, NULL, NULL, 0, drop_before, NULL, NULL) != SEQ_OK)
        return 0;
    if (seq_blob_count(fs->out.data, fs->out.len) == 0 && !seq_blob_damaged(val, vlen))
        return 1;
    *nv = (char *)fs->out.data;
    *nvlen = fs->out.len;
    *changed = 1;
    return 0;
}

/* Drops what retention has made invisible for ever, keeping history_ms more for as-of
 * reads: stream buckets that end at or before now - retention - history (every time in
 * them is older) and index entries whose time is older; stream buckets left with no
 * record; and replaced copies replaced before now - history. RocksDB filters values, not
 * merge operands: a bucket's operands are filtered once a compaction has folded them.
 * Batch buckets, meta, malformed and damaged records are never touched here. */
static unsigned char retention_filter(void *state, int level, const char *key, size_t klen,
                                      const char *val, size_t vlen, char **nv, size_t *nvlen,
                                      unsigned char *changed)
{
    filter_state *fs = state;
    const seq_store *st = fs->st;
    const seq_def *def = st->def;
    seq_key k;
    (void)level;
    if (seq_key_parse(key, klen, &k) != 0) return 0;
    if (k.kind != SEQ_K_STREAM && k.kind != SEQ_K_INDEX) return 0;
    if (fs->keys++ % FILTER_CLOCK_KEYS == 0) fs->now = seq_now_ms();
    int64_t now = fs->now;
    const seq_sequence *s = seq_by_id(def, k.seq);
    int64_t floor = s && s->retention_ms > 0 ? now - s->retention_ms - st->history_ms : INT64_MIN;
    if (k.kind == SEQ_K_STREAM) {
        if (seq_bucket_end(k.bucket, def->bucket_ms) <= floor) return 1;
        /* a bucket whose every copy moved away or expired (folded to no record) */
        seq_blob_iter it;
        if (vlen == 8 && seq_blob_iter_init(&it, val, vlen) == SEQ_OK && it.left == 0 &&
            !seq_blob_damaged(val, vlen))
            return 1;
        return expire_replaced(fs, now, val, vlen, nv, nvlen, changed);
    }
    if (vlen != 8) return 0;
    return (int64_t)seq_get_be64((const uint8_t *)val) < floor;
}

static void retention_state_free(void *state)
{
    filter_state *fs = state;
    seq_buf_free(&fs->out);
    free(fs);
}

static const char *retention_name(void *state)
{
    (void)state;
    return "seqd.retention";
}

static rocksdb_compactionfilter_t *retention_create(void *state,
                                                    rocksdb_compactionfiltercontext_t *ctx)
{
    (void)ctx;
    filter_state *fs = calloc(1, sizeof *fs);
    if (!fs) return NULL; /* no filter for this compaction: nothing dropped, nothing lost */
    fs->st = state;
    return rocksdb_compactionfilter_create(fs, retention_state_free, retention_filter,
                                           retention_name);
}

static void retention_factory_free(void *state)
{
    (void)state; /* the store outlives its options */
}

/* ---- small RocksDB helpers ---- */

int seq_store_get_raw(seq_store *st, const uint8_t *key, size_t klen, char **val, size_t *vlen,
                      char *err, size_t errlen)
{
    char *e = NULL;
    *val = rocksdb_get(st->db, st->rget, (const char *)key, klen, vlen, &e);
    if (e) {
        seq_errf(err, errlen, "rocksdb get: %s", e);
        rocksdb_free(e);
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

static int put_sync(seq_store *st, const uint8_t *key, size_t klen, const void *val, size_t vlen,
                    char *err, size_t errlen)
{
    char *e = NULL;
    rocksdb_put(st->db, st->wsync, (const char *)key, klen, val, vlen, &e);
    if (e) {
        seq_errf(err, errlen, "rocksdb put: %s", e);
        rocksdb_free(e);
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

rocksdb_t *seq_store_db(seq_store *st) { return st->db; }

/* ---- views ---- */

static void view_free(struct seq_store_view *v)
{
    for (uint32_t i = 0; i < v->n; i++) {
        free((void *)v->st[i].cov);
        seq_hist_free((seq_hist *)v->st[i].hist);
    }
    free(v);
}

static struct seq_store_view *view_new(uint32_t n)
{
    struct seq_store_view *v = calloc(1, sizeof *v + sizeof(seq_store_seqstate) * n);
    if (!v) return NULL;
    atomic_init(&v->refs, 1);
    v->n = n;
    return v;
}

/* The history is immutable and shared between views (a reference each). */
static int state_copy(seq_store_seqstate *dst, const seq_store_seqstate *src)
{
    *dst = *src;
    dst->hist = seq_hist_ref((seq_hist *)src->hist);
    dst->cov = NULL;
    if (src->n_cov == 0) return 0;
    seq_cov_seg *c = malloc(sizeof *c * src->n_cov);
    if (!c) return -1;
    memcpy(c, src->cov, sizeof *c * src->n_cov);
    dst->cov = c;
    return 0;
}

const seq_store_view *seq_store_view_acquire(seq_store *st)
{
    pthread_mutex_lock(&st->view_mu);
    struct seq_store_view *v = st->view;
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&st->view_mu);
    return v;
}

void seq_store_view_release(seq_store *st, const seq_store_view *cv)
{
    (void)st;
    struct seq_store_view *v = (struct seq_store_view *)cv;
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) view_free(v);
}

const seq_store_seqstate *seq_store_view_seq(const seq_store_view *v, uint32_t seq_id)
{
    return seq_id < v->n ? &v->st[seq_id] : &empty_state;
}

int seq_store_view_install(seq_store *st, uint32_t seq_id, const seq_store_seqstate *s)
{
    const seq_store_view *old = seq_store_view_acquire(st);
    struct seq_store_view *v = view_new(old->n);
    int rc = SEQ_EINTERNAL;
    if (!v || seq_id >= old->n) goto fail;
    for (uint32_t i = 0; i < old->n; i++)
        if (state_copy(&v->st[i], i == seq_id ? s : &old->st[i]) < 0) goto fail;
    pthread_mutex_lock(&st->view_mu);
    struct seq_store_view *prev = st->view;
    st->view = v;
    pthread_mutex_unlock(&st->view_mu);
    v = NULL;
    seq_store_view_release(st, prev); /* the store's reference */
    seq_store_bump_epoch(st);
    rc = SEQ_OK;
fail:
    if (v) view_free(v);
    seq_store_view_release(st, old);
    return rc;
}

void seq_store_bump_epoch(seq_store *st) { atomic_fetch_add(&st->epoch, 1); }

/* Reads every sequence's committed state (its load history) into the initial view. */
static int load_view(seq_store *st, char *err, size_t errlen)
{
    struct seq_store_view *v = view_new(st->def->n_seqs);
    if (!v) return SEQ_EINTERNAL;
    st->keep_generations = SEQ_KEEP_GENERATIONS_DEFAULT; /* seq_store_set_keep_generations */
    int rc = seq_store_born(st, err, errlen);
    for (uint32_t i = 0; i < v->n && rc == SEQ_OK; i++)
        rc = seq_store_hist_open(st, st->def->seqs[i].id, &v->st[i], err, errlen);
    if (rc != SEQ_OK) {
        view_free(v);
        return rc;
    }
    st->view = v;
    return SEQ_OK;
}

/* ---- open / close ---- */

/* The key prefix of keys.h (one user's data of one source). Shorter keys are their own
 * prefix: RocksDB 7.8's prefix_same_as_start iteration transforms every key it steps on
 * without asking InDomain first. Renamed whenever the prefix changes: RocksDB then
 * ignores the prefix blooms of files written with the old one instead of trusting them. */
static char *prefix_transform(void *state, const char *key, size_t len, size_t *dst_len)
{
    (void)state;
    *dst_len = seq_key_prefix_len(key, len);
    return (char *)key;
}

static void prefix_free(void *state) { (void)state; }

static unsigned char prefix_in_domain(void *state, const char *key, size_t len)
{
    (void)state, (void)key, (void)len;
    return 1;
}

static const char *prefix_name(void *state)
{
    (void)state;
    return "seqd.prefix.v3"; /* v3: 17-byte prefix of 's'/'i' keys (partition first) */
}

/* What the files' format depends on (compression, prefix, filters): shared by the database
 * and the batch builder's SST writer, so that ingested files carry the prefix blooms a
 * read of an absent user needs. `cache` may be NULL (the writer has none). */
static void table_options(rocksdb_options_t *o, rocksdb_cache_t *cache)
{
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_options_set_prefix_extractor(
        o, rocksdb_slicetransform_create(NULL, prefix_free, prefix_transform, prefix_in_domain,
                                         prefix_in_domain, prefix_name));
    rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
    if (cache) rocksdb_block_based_options_set_block_cache(bbo, cache);
    /* whole keys stay in the filter too: the consumer's point lookups ('i', 'm') use them */
    rocksdb_block_based_options_set_filter_policy(bbo, rocksdb_filterpolicy_create_bloom_full(10));
    /* Partitioned filters and a two-level index (issue 10): with one filter block per
     * file, a file's multi-MB filter was read again whole from the file each time the
     * block cache had evicted it, for every lookup, once the data outgrew the cache
     * (ingest fell to 1.5k events/s). Now a lookup loads one 4 KiB partition; the
     * partitions' top-level index is pinned, and index and filter partitions are cached
     * with high priority. */
    rocksdb_block_based_options_set_partition_filters(bbo, 1);
    rocksdb_block_based_options_set_index_type(
        bbo, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_metadata_block_size(bbo, 4096);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(bbo, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(bbo, 1);
    rocksdb_block_based_options_set_pin_top_level_index_and_filter(bbo, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(bbo, 1);
    rocksdb_options_set_block_based_table_factory(o, bbo);
    rocksdb_block_based_options_destroy(bbo);
}

void seq_store_sst_options(struct rocksdb_options_t *o) { table_options(o, NULL); }

static void configure(seq_store *st, size_t cache_mb)
{
    if (cache_mb < 4) cache_mb = 4;
    /* A quarter for the two memtables, a quarter for RocksDB's block cache, half for the
     * record cache: a hot user's read is served from the record cache without touching
     * RocksDB (bench/NOTES.md, "Record cache"); the block cache serves the misses. */
    size_t wbuf = cache_mb * MB / 8;
    size_t cache_bytes = cache_mb * MB / 4;
    st->rcache = seq_rcache_new(cache_mb * MB / 2);
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, 1);
    rocksdb_options_set_write_buffer_size(st->opts, wbuf);
    rocksdb_options_set_max_write_buffer_number(st->opts, 2);
    rocksdb_options_set_max_background_jobs(st->opts, 2);
    /* Write amplification of the stream (helper wpath, bench/NOTES.md "Session 7 — write
     * path"; other compaction settings belong here too): stream keys are random users, so
     * every L0 file overlaps all of L1 and each L0 -> L1 compaction rewrites L1 whole.
     * Compacting 8 flushed memtables at a time instead of RocksDB's 4 halves how often L1
     * is rewritten per byte ingested: compaction CPU -32 % and -42 %, seqd CPU per event
     * -7 % and -17 % in two `bench/ingest-long.sh` runs, order swapped. A read checks up
     * to 8 L0 files' filters instead of 4 (pinned top-level index, cached partitions).
     * Then 16, not 8 (helper ingest, bench/NOTES.md "Session 9 — sustained ingest"): over
     * a 14.5M-event log (47 flushes of 64 MiB) L1 was still rewritten 5-6 times: 26-28 s
     * of compaction CPU, over a quarter of seqd's. At 16 it is rewritten twice: 14.5 s
     * (-45 to -48 % in three alternated pairs on one log; with the 16-file compaction left
     * pending at the end counted, still about -30 %), seqd's CPU per event -12 to -19 %.
     * A read checks up to 16 L0 files' filters (measured there). The write slowdown and
     * stop triggers move up with it: RocksDB's 20 and 36 would throttle the writes while
     * one 16-file compaction runs (~10 more flushes arrive meanwhile at full speed). */
    rocksdb_options_set_level0_file_num_compaction_trigger(st->opts, 16);
    rocksdb_options_set_level0_slowdown_writes_trigger(st->opts, 40);
    rocksdb_options_set_level0_stop_writes_trigger(st->opts, 56);
    /* The consumer looks up an id index key only when the id filter says "maybe seen"
     * (store_batch.c); a memtable bloom (prefix + whole key) answers those that are
     * absent without walking the skiplist. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->opts, 0.05);
    rocksdb_options_set_memtable_whole_key_filtering(st->opts, 1);
    st->cache = rocksdb_cache_create_lru(cache_bytes);
    table_options(st->opts, st->cache);
    /* stream buckets are written as merge operands, never read to be changed */
    rocksdb_options_set_merge_operator(st->opts, seq_store_merge_operator(st));

    /* a factory, so that each compaction's filter owns its buffer (and frees it) */
    rocksdb_options_set_compaction_filter_factory(
        st->opts, rocksdb_compactionfilterfactory_create(st, retention_factory_free,
                                                         retention_create, retention_name));

    /* Sync on commit: the consumer commits many events at once, so the fsync is
     * amortised, and offsets stored with the data must survive a power loss too. */
    st->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wsync, 1);
    /* The consumer's write lanes commit at once (server/lanes.h): RocksDB then inserts
     * their batches into the memtable in parallel (allow_concurrent_memtable_write, the
     * default, stated here because the lanes depend on it). A concurrent insert searches
     * the skiplist from its top unless the batch keeps its last position as a hint: the
     * batches hand their keys over in key order (store_batch.c), so it does. */
    rocksdb_options_set_allow_concurrent_memtable_write(st->opts, 1);
    rocksdb_writeoptions_set_memtable_insert_hint_per_batch(st->wsync, 1);
    st->rget = rocksdb_readoptions_create();
    st->rscan = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(st->rscan, 1);
}

/* Refuses a definition incompatible with the one stored, then stores the new one.
 * *had_def: a definition was stored (the data dir was served before). */
static int check_def(seq_store *st, int *had_def, char *err, size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_meta(k, "def"), vl;
    char *val;
    int rc = seq_store_get_raw(st, k, kl, &val, &vl, err, errlen);
    if (rc != SEQ_OK) return rc;
    *had_def = val != NULL;
    if (val) {
        seq_def *prev = NULL;
        char perr[256];
        rc = seq_def_parse(val, vl, &prev, perr, sizeof perr);
        rocksdb_free(val);
        if (rc != SEQ_OK) {
            seq_errf(err, errlen, "stored definition does not parse: %s", perr);
            return SEQ_EINTERNAL;
        }
        rc = seq_def_check_compat(prev, st->def, perr, sizeof perr);
        seq_def_free(prev);
        if (rc != SEQ_OK) {
            seq_errf(err, errlen, "definition incompatible with the stored data: %s (to get "
                     "back, serve the definition the data was last served with: `seqd "
                     "--check-definition FILE --data-dir DIR` prints it)", perr);
            return rc;
        }
    }
    const char *json = st->def->json ? st->def->json : "";
    return put_sync(st, k, kl, json, strlen(json), err, errlen);
}

/* A meta key holding a be64 (count) or be32; *out untouched when absent or malformed. */
static int load_meta_u64(seq_store *st, const char *name, uint64_t *out, char *err,
                         size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_meta(k, name), vl;
    char *val;
    int rc = seq_store_get_raw(st, k, kl, &val, &vl, err, errlen);
    if (rc == SEQ_OK && val && vl == 8) *out = seq_get_be64((uint8_t *)val);
    if (rc == SEQ_OK && val && vl == 4) *out = seq_get_be32((uint8_t *)val);
    rocksdb_free(val);
    return rc;
}

static int load_counts(seq_store *st, char *err, size_t errlen)
{
    uint64_t malformed = 0, corrupt = 0, parts = 0;
    int rc = load_meta_u64(st, "malformed", &malformed, err, errlen);
    if (!rc) rc = load_meta_u64(st, "corrupt", &corrupt, err, errlen);
    if (!rc) rc = load_meta_u64(st, "parts", &parts, err, errlen);
    atomic_store(&st->malformed, malformed);
    st->corrupt_next_id = corrupt;
    atomic_store(&st->corrupt_total, corrupt);
    atomic_store(&st->layout_parts, (uint32_t)parts);
    for (uint32_t p = 0; !rc && p < SEQ_STORE_HELD_MAX && p < parts; p++) {
        uint8_t k[SEQ_KEY_MAX];
        size_t kl = seq_key_held(k, p), vl;
        char *val;
        rc = seq_store_get_raw(st, k, kl, &val, &vl, err, errlen);
        atomic_store(&st->held_since[p], rc == SEQ_OK && val && vl == 8
                                             ? (int64_t)seq_get_be64((uint8_t *)val) : 0);
        rocksdb_free(val);
    }
    return rc;
}

/* The stream layout version ('m' "layout"): 2 = partition first in 's'/'i' keys, with
 * merge operands. A data dir served before (a definition stored, no layout key) holds
 * stream keys this version cannot read: refused rather than served as empty. */
#define LAYOUT_VERSION 2
static int check_layout(seq_store *st, int had_def, char *err, size_t errlen)
{
    uint64_t v = 0;
    int rc = load_meta_u64(st, "layout", &v, err, errlen);
    if (rc) return rc;
    if (v == LAYOUT_VERSION) return SEQ_OK;
    if (v != 0 || had_def) {
        seq_errf(err, errlen,
                 "the data dir holds stream data in storage layout %llu; this seqd reads "
                 "layout %d (stream keys by partition): start from an empty --data-dir "
                 "and let the stream replay from Kafka",
                 (unsigned long long)(v ? v : 1), LAYOUT_VERSION);
        return SEQ_EPRECONDITION;
    }
    uint8_t k[SEQ_KEY_MAX], val[8];
    size_t kl = seq_key_meta(k, "layout");
    seq_put_be64(val, LAYOUT_VERSION);
    return put_sync(st, k, kl, val, 8, err, errlen);
}

/* The id filter, from every stored 'i' key (one scan; keys only matter). */
static int build_id_filter(seq_store *st, char *err, size_t errlen)
{
    st->idf = seq_idfilter_new(0);
    if (!st->idf) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    const char start = SEQ_K_INDEX;
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    int rc = SEQ_OK;
    for (rocksdb_iter_seek(it, &start, 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        seq_key key;
        if (kl == 0 || k[0] != SEQ_K_INDEX) break;
        if (seq_key_parse(k, kl, &key) != 0) continue;
        if (seq_idfilter_add(st->idf, seq_idfilter_hash(key.seq, key.user, key.id,
                                                        key.id_len)) < 0) {
            seq_errf(err, errlen, "out of memory");
            rc = SEQ_EINTERNAL;
            break;
        }
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e && rc == SEQ_OK) {
        /* a damaged block of the index: serve anyway, with every id looked up (slower,
         * and an id in the damaged block reads as new: its copies may show twice) */
        fprintf(stderr, "seqd: store: reading the id index: %s; looking up every event id\n", e);
        uint8_t k = SEQ_K_INDEX;
        seq_store_note_corrupt(st, &k, 1, e, strlen(e), "id index unreadable at open");
        st->idf_partial = 1;
    }
    rocksdb_free(e);
    rocksdb_iter_destroy(it);
    seq_store_publish_idf(st);
    return rc;
}

int seq_store_open(const char *dir, const seq_def *def, size_t cache_mb, seq_store **out,
                   char *err, size_t errlen)
{
    seq_store_config cfg = {cache_mb, SEQ_HISTORY_MS_DEFAULT};
    return seq_store_open_cfg(dir, def, &cfg, out, err, errlen);
}

int64_t seq_store_history_ms(const seq_store *st) { return st->history_ms; }

int seq_store_open_cfg(const char *dir, const seq_def *def, const seq_store_config *cfg,
                       seq_store **out, char *err, size_t errlen)
{
    seq_store *st = calloc(1, sizeof *st);
    char *e = NULL;
    int rc = SEQ_EINTERNAL;
    *out = NULL;
    if (!st) return SEQ_EINTERNAL;
    st->def = def;
    st->history_ms = cfg->history_ms > 0 ? cfg->history_ms : 0;
    st->corrupt_tail = &st->corrupt_head;
    pthread_mutex_init(&st->commit_mu, NULL);
    pthread_mutex_init(&st->view_mu, NULL);
    pthread_mutex_init(&st->corrupt_mu, NULL);
    int had_def = 0;
    configure(st, cfg->cache_mb);
    if (!(st->stage_dir = malloc(strlen(dir) + sizeof "/load-staging"))) goto fail;
    strcpy(stpcpy(st->stage_dir, dir), "/load-staging");
    st->db = rocksdb_open(st->opts, dir, &e);
    if (e) {
        seq_errf(err, errlen, "open %s: %s", dir, e);
        rocksdb_free(e);
        goto fail;
    }
    if ((rc = check_def(st, &had_def, err, errlen)) != SEQ_OK) goto fail;
    if ((rc = check_layout(st, had_def, err, errlen)) != SEQ_OK) goto fail;
    if ((rc = load_counts(st, err, errlen)) != SEQ_OK) goto fail;
    if ((rc = build_id_filter(st, err, errlen)) != SEQ_OK) goto fail;
    if ((rc = load_view(st, err, errlen)) != SEQ_OK) goto fail;
    /* a load killed between ingestion and commit, or before reclaim, left batch keys no
     * committed state references: remove them before serving */
    if ((rc = seq_store_batch_gc(st, err, errlen)) != SEQ_OK) {
        /* a damaged SST block: reads that touch it answer DATA_LOSS; everyone else is
         * served (RocksDB's C API gives its status as text only) */
        if (!strstr(err, "Corruption")) goto fail;
        fprintf(stderr, "seqd: store: %s; serving, orphaned batch keys stay\n", err);
        uint8_t k = SEQ_K_BATCH;
        seq_store_note_corrupt(st, &k, 1, err, strlen(err), "batch gc could not scan");
        rc = SEQ_OK;
    }
    *out = st;
    return SEQ_OK;
fail:
    seq_store_close(st);
    return rc;
}

void seq_store_close(seq_store *st)
{
    if (!st) return;
    seq_store_stop_sweeper(st);
    if (st->db) rocksdb_close(st->db);
    if (st->view) seq_store_view_release(st, st->view);
    if (st->opts) rocksdb_options_destroy(st->opts);
    if (st->cache) rocksdb_cache_destroy(st->cache);
    seq_rcache_free(st->rcache);
    if (st->wsync) rocksdb_writeoptions_destroy(st->wsync);
    if (st->rget) rocksdb_readoptions_destroy(st->rget);
    if (st->rscan) rocksdb_readoptions_destroy(st->rscan);
    seq_idfilter_free(st->idf);
    seq_store_corrupt_free(st);
    pthread_mutex_destroy(&st->commit_mu);
    pthread_mutex_destroy(&st->view_mu);
    pthread_mutex_destroy(&st->corrupt_mu);
    free(st->stage_dir);
    free(st);
}

/* ---- stream layout: partitions ---- */

uint32_t seq_store_partitions(seq_store *st) { return atomic_load(&st->layout_parts); }

uint32_t seq_store_part_of(seq_store *st, uint64_t user)
{
    uint32_t p = atomic_load_explicit(&st->layout_parts, memory_order_relaxed);
    return p > 1 ? seq_partition_of_user(user, p) : 0;
}

int seq_store_set_partitions(seq_store *st, uint32_t p, char *err, size_t errlen)
{
    uint32_t cur = atomic_load(&st->layout_parts);
    if (cur == p) return SEQ_OK;
    if (cur != 0 || p == 0) {
        seq_errf(err, errlen,
                 "stream data is laid out for %u partitions, the topic has %u: reads and "
                 "writes go on with %u (dropping a partition's data no longer matches the "
                 "topic's partitions)", cur, p, cur);
        return SEQ_EPRECONDITION;
    }
    uint8_t k[SEQ_KEY_MAX], v[4];
    size_t kl = seq_key_meta(k, "parts");
    seq_put_be32(v, p);
    int rc = put_sync(st, k, kl, v, 4, err, errlen);
    if (rc == SEQ_OK) atomic_store(&st->layout_parts, p);
    return rc;
}

int seq_store_set_held_since(seq_store *st, uint32_t p, int64_t ms, char *err, size_t errlen)
{
    if (p >= SEQ_STORE_HELD_MAX) return SEQ_OK;
    uint8_t k[SEQ_KEY_MAX], v[8];
    size_t kl = seq_key_held(k, p);
    seq_put_be64(v, (uint64_t)ms);
    int rc = put_sync(st, k, kl, v, 8, err, errlen);
    if (rc == SEQ_OK) atomic_store(&st->held_since[p], ms);
    return rc;
}

int64_t seq_store_held_since(seq_store *st, uint32_t p)
{
    return p < SEQ_STORE_HELD_MAX ? atomic_load_explicit(&st->held_since[p], memory_order_relaxed)
                                  : 0;
}

int64_t seq_store_user_held_since(seq_store *st, uint64_t user)
{
    return seq_store_held_since(st, seq_store_part_of(st, user));
}

int seq_store_drop_partition(seq_store *st, uint32_t part, char *err, size_t errlen)
{
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    static const uint8_t kinds[2] = {SEQ_K_STREAM, SEQ_K_INDEX};
    for (int i = 0; i < 2; i++) {
        uint8_t a[SEQ_KEY_PART_LEN], b[SEQ_KEY_PART_LEN + 1];
        seq_key_part(a, kinds[i], part);
        size_t bl = part == UINT32_MAX ? 1 : seq_key_part(b, kinds[i], part + 1);
        if (part == UINT32_MAX) b[0] = (uint8_t)(kinds[i] + 1); /* past the last partition */
        rocksdb_writebatch_delete_range(wb, (const char *)a, sizeof a, (const char *)b, bl);
    }
    uint8_t k[SEQ_KEY_MAX], k2[SEQ_KEY_MAX];
    /* its misrouted origins: 'm' "orig" part .. 'm' "orig" part + 1 (part + 1 wraps to 0
     * only for UINT32_MAX, which no Kafka partition is) */
    size_t kl = seq_key_origins(k, part), kl2 = seq_key_origins(k2, part + 1);
    if (part != UINT32_MAX)
        rocksdb_writebatch_delete_range(wb, (const char *)k, kl, (const char *)k2, kl2);
    kl = seq_key_offset(k, (int32_t)part);
    rocksdb_writebatch_delete(wb, (const char *)k, kl);
    kl = seq_key_held(k, part);
    rocksdb_writebatch_delete(wb, (const char *)k, kl);
    kl = seq_key_gap(k, (int32_t)part);
    rocksdb_writebatch_delete(wb, (const char *)k, kl);
    char *e = NULL;
    rocksdb_write(st->db, st->wsync, wb, &e);
    rocksdb_writebatch_destroy(wb);
    if (e) {
        seq_errf(err, errlen, "rocksdb write: %s", e);
        rocksdb_free(e);
        return SEQ_EINTERNAL;
    }
    if (part < SEQ_STORE_HELD_MAX) atomic_store(&st->held_since[part], 0);
    seq_rcache_clear(st->rcache); /* cached entries of its users are gone with the data */
    seq_store_bump_epoch(st);
    return SEQ_OK;
}

void seq_store_publish_idf(seq_store *st)
{
    atomic_store_explicit(&st->idf_ids, seq_idfilter_count(st->idf), memory_order_relaxed);
    atomic_store_explicit(&st->idf_bytes, seq_idfilter_bytes(st->idf), memory_order_relaxed);
}

void seq_store_get_write_stats(seq_store *st, seq_store_write_stats *out)
{
    out->ids = atomic_load_explicit(&st->idf_ids, memory_order_relaxed);
    out->filter_bytes = atomic_load_explicit(&st->idf_bytes, memory_order_relaxed);
    out->id_lookups = atomic_load_explicit(&st->id_lookups, memory_order_relaxed);
}

/* ---- offsets, malformed ---- */

int seq_store_get_offset(seq_store *st, int32_t partition, int64_t *next_offset,
                         int64_t *watermark_ms)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_offset(k, partition), vl;
    char *val;
    if (seq_store_get_raw(st, k, kl, &val, &vl, NULL, 0) != SEQ_OK) return SEQ_EINTERNAL;
    if (!val) return SEQ_ENOTFOUND;
    int rc = SEQ_EINTERNAL;
    if (vl == 16) {
        *next_offset = (int64_t)seq_get_be64((uint8_t *)val);
        *watermark_ms = (int64_t)seq_get_be64((uint8_t *)val + 8);
        rc = SEQ_OK;
    }
    rocksdb_free(val);
    return rc;
}

int seq_store_get_origins(seq_store *st, uint32_t q, int64_t *highest, uint32_t n)
{
    for (uint32_t p = 0; p < n; p++) highest[p] = -1;
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_origins(k, q);
    int rc = SEQ_OK;
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    for (rocksdb_iter_seek(it, (const char *)k, kl); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t il, vl;
        const char *ik = rocksdb_iter_key(it, &il), *v = rocksdb_iter_value(it, &vl);
        if (il != SEQ_KEY_ORIGIN_LEN || memcmp(ik, k, kl) != 0) break; /* past q's range */
        uint32_t p = seq_get_be32((const uint8_t *)ik + kl);
        if (vl != 8) {
            seq_store_note_corrupt(st, ik, il, v, vl, "misrouted origin offset is not 8 bytes");
            rc = SEQ_EDATALOSS;
        } else if (p < n) {
            highest[p] = (int64_t)seq_get_be64((const uint8_t *)v);
        }
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    if (e) {
        rocksdb_free(e);
        for (uint32_t p = 0; p < n; p++) highest[p] = -1;
        return SEQ_EINTERNAL;
    }
    return rc;
}

int seq_store_get_log_from(seq_store *st, int32_t partition, int64_t *ms)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_gap(k, partition), vl;
    char *val = NULL;
    *ms = 0;
    if (seq_store_get_raw(st, k, kl, &val, &vl, NULL, 0) != SEQ_OK) return SEQ_EINTERNAL;
    if (!val) return SEQ_OK;
    int rc = SEQ_OK;
    if (vl == 8) {
        *ms = (int64_t)seq_get_be64((uint8_t *)val);
    } else {
        seq_store_note_corrupt(st, k, kl, val, vl, "stream log start is not 8 bytes");
        rc = SEQ_EDATALOSS;
    }
    rocksdb_free(val);
    return rc;
}

uint64_t seq_store_malformed_count(seq_store *st) { return atomic_load(&st->malformed); }

void seq_store_list_malformed(seq_store *st, uint32_t limit, seq_store_malformed_fn fn,
                              void *ctx)
{
    const char start = SEQ_K_MALFORMED;
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    uint32_t n = 0;
    for (rocksdb_iter_seek(it, &start, 1); n < limit && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl), *v = rocksdb_iter_value(it, &vl);
        seq_key key;
        if (kl == 0 || k[0] != SEQ_K_MALFORMED) break;
        if (seq_key_parse(k, kl, &key) != 0 || vl < 4) continue;
        uint32_t rl = seq_get_be32((const uint8_t *)v);
        if (rl > vl - 4) continue;
        char reason[512];
        size_t cl = rl < sizeof reason - 1 ? rl : sizeof reason - 1;
        memcpy(reason, v + 4, cl);
        reason[cl] = 0;
        fn(ctx, key.partition, key.offset, reason, v + 4 + rl, vl - 4 - rl);
        n++;
    }
    rocksdb_iter_destroy(it);
}

void seq_store_cache_usage(seq_store *st, uint64_t *usage, uint64_t *capacity)
{
    *usage = rocksdb_cache_get_usage(st->cache);
    *capacity = rocksdb_cache_get_capacity(st->cache);
}

void seq_store_record_cache_stats(seq_store *st, seq_store_rcache_stats *out)
{
    seq_rcache_stats s;
    seq_rcache_get_stats(st->rcache, &s);
    *out = (seq_store_rcache_stats){s.hits, s.misses, s.bytes, s.capacity, s.stale, s.written,
                                     s.prepared, atomic_load(&st->rc_local)};
}
