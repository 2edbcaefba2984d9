/* Helpers shared by the storage unit tests: a temporary data directory, a definition,
 * events written through a stream batch, reads of one user's stream records, and raw
 * key probes. Header-only so that each test_store_*.c stays one executable. */
#ifndef STORE_FIXTURE_H
#define STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"
#include "testlib.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)

#define DEF_JSON \
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":3600000,\"sequences\":[" \
    "{\"name\":\"eng\",\"event_types\":[\"click\",\"view\"],\"max_length\":100," \
    "\"retention_ms\":172800000,\"columns\":[\"dwell_ms\"]}]}"

static char fx_dir[64];
/* --history-ms of the stores fx_open opens: 0 (no replaced copies kept, nothing kept past
 * retention) unless a test keeps history. */
static int64_t fx_history_ms;

static inline void fx_mkdir(void)
{
    snprintf(fx_dir, sizeof fx_dir, "/tmp/seqd-store-XXXXXX");
    if (!mkdtemp(fx_dir)) { perror("mkdtemp"); exit(2); }
}

static inline void fx_rmdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fx_dir);
}

static inline seq_def *fx_def(const char *json)
{
    seq_def *d = NULL;
    char err[256];
    if (seq_def_parse(json, strlen(json), &d, err, sizeof err) != SEQ_OK) {
        fprintf(stderr, "def: %s\n", err);
        exit(2);
    }
    return d;
}

static inline seq_store *fx_open(const seq_def *d)
{
    seq_store *st = NULL;
    char err[256];
    seq_store_config cfg = {16, fx_history_ms};
    int rc = seq_store_open_cfg(fx_dir, d, &cfg, &st, err, sizeof err);
    if (rc != SEQ_OK) fprintf(stderr, "open: %s\n", err);
    return st;
}

/* Adds one event of sequence 0 (type index type, column dwell) to the batch. */
static inline int fx_add(seq_store_batch *b, const seq_def *d, uint64_t user, int64_t t,
                  const char *id, uint32_t type, double dwell)
{
    seq_event ev;
    memset(&ev, 0, sizeof ev);
    ev.user_id = user;
    ev.time_ms = t;
    ev.item_id = (uint64_t)t / 1000;
    snprintf(ev.id, sizeof ev.id, "%s", id);
    ev.id_len = (uint32_t)strlen(id);
    seq_exec_out o = {.seq_id = 0, .type_idx = type, .n_cols = 1,
                      .bucket = seq_bucket_of(t, d->bucket_ms)};
    o.cols[0] = dwell;
    char err[256];
    int rc = seq_store_batch_add_event(b, &ev, &o, 1, err, sizeof err);
    if (rc != SEQ_OK) fprintf(stderr, "add: %s\n", err);
    return rc;
}

static inline int fx_commit(seq_store_batch *b)
{
    char err[256];
    int rc = seq_store_batch_commit(b, err, sizeof err);
    if (rc != SEQ_OK) fprintf(stderr, "commit: %s\n", err);
    return rc;
}

static inline seq_merge_params fx_params(const seq_def *d, int64_t now)
{
    seq_merge_params p = {.now_ms = now, .horizon_ms = d->horizon_ms, .seq = &d->seqs[0]};
    return p;
}

/* Stream records of user at `now`; their ids concatenated with ',' into ids. */
static inline uint32_t fx_read(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                        const seq_rec **out, char *ids, size_t idlen)
{
    const seq_rec *s, *bt;
    uint32_t ns = 0, nb = 0;
    char err[256];
    if (seq_store_read(r, p, user, &s, &ns, &bt, &nb, err, sizeof err) != SEQ_OK) {
        fprintf(stderr, "read: %s\n", err);
        return 0;
    }
    size_t n = 0;
    ids[0] = 0;
    for (uint32_t i = 0; i < ns && n + s[i].id_len + 2 < idlen; i++) {
        if (i) ids[n++] = ',';
        memcpy(ids + n, s[i].id, s[i].id_len);
        n += s[i].id_len;
        ids[n] = 0;
    }
    if (out) *out = s;
    return ns;
}

/* Does RocksDB hold this key? */
static inline int fx_has(seq_store *st, const uint8_t *k, size_t kl)
{
    char *v;
    size_t vl;
    if (seq_store_get_raw(st, k, kl, &v, &vl, NULL, 0) != SEQ_OK) return -1;
    rocksdb_free(v);
    return v != NULL;
}

/* Compacts everything twice: stream buckets are merge operands, which the first
 * compaction folds into values and only the next one filters (RocksDB's compaction
 * filter sees values, not operands). */
static inline void fx_compact(seq_store *st)
{
    rocksdb_compact_range(seq_store_db(st), NULL, 0, NULL, 0);
    rocksdb_compact_range(seq_store_db(st), NULL, 0, NULL, 0);
}

/* Writes a key straight into RocksDB, around the store's own write paths. */
static inline void fx_put_raw(seq_store *st, const uint8_t *k, size_t kl, const void *v,
                              size_t vl)
{
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_put(seq_store_db(st), wo, (const char *)k, kl, v, vl, &e);
    CHECK(e == NULL);
    rocksdb_free(e);
    rocksdb_writeoptions_destroy(wo);
}

static inline int fx_has_stream(seq_store *st, uint64_t user, int64_t t)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_stream(k, seq_store_part_of(st, user), 0, user,
                               seq_bucket_of(t, st->def->bucket_ms));
    return fx_has(st, k, kl);
}

/* The records of user's stream bucket holding t, replaced copies included (at most max);
 * the blob is copied into *keep (caller frees with seq_buf_free). */
static inline uint32_t fx_bucket_recs(seq_store *st, uint64_t user, int64_t t, seq_rec *out,
                                      uint32_t max, seq_buf *keep)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_stream(k, seq_store_part_of(st, user), 0, user,
                               seq_bucket_of(t, st->def->bucket_ms)), vl;
    char *v;
    uint32_t n = 0;
    keep->len = 0;
    if (seq_store_get_raw(st, k, kl, &v, &vl, NULL, 0) != SEQ_OK || !v) return 0;
    CHECK(seq_buf_append(keep, v, vl) == 0);
    rocksdb_free(v);
    seq_blob_iter it;
    if (seq_blob_iter_init(&it, keep->data, keep->len) != SEQ_OK) return 0;
    while (n < max && seq_blob_iter_next(&it, &out[n]) == 1) n++;
    return n;
}

static inline int fx_has_index(seq_store *st, uint64_t user, const char *id)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_index(k, seq_store_part_of(st, user), 0, user, id, (uint32_t)strlen(id));
    return fx_has(st, k, kl);
}

#endif
