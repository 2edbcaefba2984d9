/* Storage: the stream buckets' merge operator and damaged data kept aside.
 *
 * The consumer writes every change of a stream bucket as a RocksDB merge operand
 * (engine/blob.h, "merge operands"); RocksDB calls full_merge when a read or a compaction
 * meets a bucket's operands, and it folds them with seq_blob_fold. The operator never
 * fails on bad data (a failed merge puts RocksDB in a background-error state that stops
 * every write): what does not decode is left out, the result is marked damaged (reads of
 * it answer DATA_LOSS), and the bytes are reported to seq_store_note_corrupt.
 *
 * Damaged data (from the merge operator, or met by a read) is counted and kept aside: the
 * report is held in memory and written under a 'c' key by the next stream commit, or by
 * seq_store_keep_corrupt (the consumer calls it when idle). The same bytes of the same key
 * are reported once per process (a small set of recent reports), since every read of an
 * unmerged bucket meets them again until a compaction folds them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define PENDING_MAX 256 /* reports held before the next commit; more are only counted */

/* ---- the merge operator ---- */

typedef struct {
    seq_store *st;
    const char *key;
    size_t klen;
} merge_ctx;

static void on_bad(void *ctx, int index, const void *bytes, size_t len)
{
    merge_ctx *m = ctx;
    seq_store_note_corrupt(m->st, m->key, m->klen, bytes, len,
                           index < 0 ? "undecodable stream bucket" : "undecodable merge operand");
}

int64_t seq_store_drop_before(const seq_store *st, int64_t now)
{
    return st->history_ms > 0 ? now - st->history_ms : INT64_MAX;
}

static char *full_merge(void *state, const char *key, size_t klen, const char *base,
                        size_t baselen, const char *const *ops, const size_t *lens, int n,
                        unsigned char *success, size_t *outlen)
{
    seq_store *st = state;
    merge_ctx ctx = {st, key, klen};
    seq_buf out = {0};
    if (seq_blob_fold(&out, base, base ? baselen : 0, ops, lens, n,
                      seq_store_drop_before(st, seq_now_ms()), on_bad, &ctx) != SEQ_OK) {
        /* out of memory: the only failure left; RocksDB reports it */
        seq_buf_free(&out);
        *success = 0;
        return NULL;
    }
    *success = 1;
    *outlen = out.len;
    return (char *)out.data;
}

/* Operands stay apart until a full merge: folding needs the base's records anyway. */
static char *partial_merge(void *state, const char *key, size_t klen, const char *const *ops,
                           const size_t *lens, int n, unsigned char *success, size_t *outlen)
{
    (void)state, (void)key, (void)klen, (void)ops, (void)lens, (void)n;
    *success = 0;
    *outlen = 0;
    return NULL;
}

static void delete_value(void *state, const char *v, size_t len)
{
    (void)state, (void)len;
    free((void *)v);
}

static void merge_state_free(void *state) { (void)state; /* the store outlives its options */ }

static const char *merge_name(void *state)
{
    (void)state;
    return "seqd.stream.v1";
}

rocksdb_mergeoperator_t *seq_store_merge_operator(seq_store *st)
{
    return rocksdb_mergeoperator_create(st, merge_state_free, full_merge, partial_merge,
                                        delete_value, merge_name);
}

/* ---- damaged data kept aside ---- */

struct seq_corrupt_item {
    struct seq_corrupt_item *next;
    size_t klen, vlen;
    char reason[64];
    uint8_t data[]; /* key, then the bytes */
};

static uint64_t report_hash(const void *key, size_t klen, const void *val, size_t vlen)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < klen; i++) h = (h ^ ((const uint8_t *)key)[i]) * UINT64_C(1099511628211);
    h = (h ^ 0xff) * UINT64_C(1099511628211);
    for (size_t i = 0; i < vlen; i++) h = (h ^ ((const uint8_t *)val)[i]) * UINT64_C(1099511628211);
    return h | 1; /* 0 marks an empty slot */
}

void seq_store_note_corrupt(seq_store *st, const void *key, size_t klen, const void *val,
                            size_t vlen, const char *reason)
{
    uint64_t h = report_hash(key, klen, val, vlen);
    pthread_mutex_lock(&st->corrupt_mu);
    for (uint32_t i = 0; i < SEQ_CORRUPT_SEEN; i++)
        if (st->corrupt_seen[i] == h) {
            pthread_mutex_unlock(&st->corrupt_mu);
            return;
        }
    st->corrupt_seen[st->corrupt_seen_next++ % SEQ_CORRUPT_SEEN] = h;
    atomic_fetch_add(&st->corrupt_total, 1);
    struct seq_corrupt_item *it = NULL;
    if (st->n_corrupt_pending < PENDING_MAX) it = malloc(sizeof *it + klen + vlen);
    if (it) {
        it->next = NULL;
        it->klen = klen;
        it->vlen = vlen;
        snprintf(it->reason, sizeof it->reason, "%s", reason);
        memcpy(it->data, key, klen);
        if (vlen) memcpy(it->data + klen, val, vlen);
        *st->corrupt_tail = it;
        st->corrupt_tail = &it->next;
        st->n_corrupt_pending++;
    }
    pthread_mutex_unlock(&st->corrupt_mu);
}

struct seq_corrupt_item *seq_store_corrupt_take(seq_store *st, rocksdb_writebatch_t *wb)
{
    pthread_mutex_lock(&st->corrupt_mu);
    struct seq_corrupt_item *list = st->corrupt_head;
    st->corrupt_head = NULL;
    st->corrupt_tail = &st->corrupt_head;
    st->n_corrupt_pending = 0;
    for (struct seq_corrupt_item *it = list; it; it = it->next) {
        uint8_t k[9] = {SEQ_K_CORRUPT}, h2[2], h4[4];
        seq_put_be64(k + 1, st->corrupt_next_id++);
        seq_put_be32(h4, (uint32_t)strlen(it->reason));
        h2[0] = (uint8_t)(it->klen >> 8);
        h2[1] = (uint8_t)it->klen;
        const char *parts[5] = {(const char *)h2, (const char *)it->data, (const char *)h4,
                                it->reason, (const char *)it->data + it->klen};
        size_t sizes[5] = {2, it->klen, 4, strlen(it->reason), it->vlen};
        const char *kp = (const char *)k;
        size_t kl = sizeof k;
        rocksdb_writebatch_putv(wb, 1, &kp, &kl, 5, parts, sizes);
    }
    if (list) {
        uint8_t k[SEQ_KEY_MAX], v[8];
        size_t kl = seq_key_meta(k, "corrupt");
        seq_put_be64(v, st->corrupt_next_id);
        rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)v, 8);
    }
    pthread_mutex_unlock(&st->corrupt_mu);
    return list;
}

void seq_store_corrupt_done(seq_store *st, struct seq_corrupt_item *list, int written)
{
    if (!list) return;
    if (!written) { /* put them back in front, to be written by the next commit */
        pthread_mutex_lock(&st->corrupt_mu);
        struct seq_corrupt_item **end = &list;
        uint32_t n = 0;
        while (*end) end = &(*end)->next, n++;
        *end = st->corrupt_head;
        if (!st->corrupt_head) st->corrupt_tail = end;
        st->corrupt_head = list;
        st->n_corrupt_pending += n;
        pthread_mutex_unlock(&st->corrupt_mu);
        return;
    }
    while (list) {
        struct seq_corrupt_item *next = list->next;
        free(list);
        list = next;
    }
}

void seq_store_corrupt_free(seq_store *st)
{
    seq_store_corrupt_done(st, st->corrupt_head, 1);
    st->corrupt_head = NULL;
}

int seq_store_keep_corrupt(seq_store *st, char *err, size_t errlen)
{
    if (!atomic_load(&st->n_corrupt_pending)) return SEQ_OK;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    pthread_mutex_lock(&st->commit_mu); /* corrupt_next_id order with the commits */
    struct seq_corrupt_item *list = seq_store_corrupt_take(st, wb);
    char *e = NULL;
    if (list) rocksdb_write(st->db, st->wsync, wb, &e);
    pthread_mutex_unlock(&st->commit_mu);
    seq_store_corrupt_done(st, list, e == NULL);
    rocksdb_writebatch_destroy(wb);
    if (!e) return SEQ_OK;
    seq_errf(err, errlen, "rocksdb write: %s", e);
    rocksdb_free(e);
    return SEQ_EINTERNAL;
}

uint64_t seq_store_corrupt_count(seq_store *st) { return atomic_load(&st->corrupt_total); }

/* "stream bucket of user U, sequence S, partition P, bucket at T" and the like. */
static void describe_key(const seq_store *st, const uint8_t *k, size_t kl, char *out, size_t n)
{
    seq_key key;
    if (seq_key_parse(k, kl, &key) != 0) {
        snprintf(out, n, "key of %zu bytes, kind '%c'", kl, kl && k[0] >= 32 && k[0] < 127 ? k[0] : '?');
        return;
    }
    const char *seq = "?";
    for (uint32_t i = 0; i < st->def->n_seqs; i++)
        if (st->def->seqs[i].id == key.seq) seq = st->def->seqs[i].name;
    switch (key.kind) {
    case SEQ_K_STREAM:
        snprintf(out, n, "stream bucket of user %llu, sequence %s, bucket start %lld ms",
                 (unsigned long long)key.user, seq,
                 (long long)seq_bucket_start(key.bucket, st->def->bucket_ms));
        break;
    case SEQ_K_BATCH:
        snprintf(out, n, "batch bucket of user %llu, sequence %s, generation %llu, bucket start %lld ms",
                 (unsigned long long)key.user, seq, (unsigned long long)key.gen,
                 (long long)seq_bucket_start(key.bucket, st->def->bucket_ms));
        break;
    case SEQ_K_INDEX:
        snprintf(out, n, "event id index of user %llu, sequence %s, id %.*s",
                 (unsigned long long)key.user, seq, (int)key.id_len, key.id);
        break;
    default:
        snprintf(out, n, "key kind '%c'", key.kind);
    }
}

void seq_store_list_corrupt(seq_store *st, uint32_t limit, seq_store_corrupt_fn fn, void *ctx)
{
    const char start = SEQ_K_CORRUPT;
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    uint32_t n = 0;
    for (rocksdb_iter_seek(it, &start, 1); n < limit && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl == 0 || k[0] != SEQ_K_CORRUPT) break;
        if (kl != 9 || vl < 2) continue;
        size_t okl = (size_t)v[0] << 8 | v[1];
        if (vl < 2 + okl + 4) continue;
        uint32_t rl = seq_get_be32(v + 2 + okl);
        if (rl > vl - 6 - okl) continue;
        char what[256], reason[128];
        describe_key(st, v + 2, okl, what, sizeof what);
        snprintf(reason, sizeof reason, "%.*s", (int)rl, (const char *)v + 6 + okl);
        fn(ctx, seq_get_be64((const uint8_t *)k + 1), what, reason, vl - 6 - okl - rl);
        n++;
    }
    rocksdb_iter_destroy(it);
}
