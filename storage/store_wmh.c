/* The stored stream watermark series of as-of reads (store.h, seq_store_newest_*): the
 * consumer's commits put one 'm' "wmh" be64 second sample per second that changed the
 * newest applied event time (store_batch.c, in the same write as the offsets); seqd reads
 * the series back at open into its in-memory series (server/wmhist.h), so that an as-of
 * read of a time before a restart reports the watermark of that time, not the first one
 * seen after the restart; the sweep bounds it to --history-ms. Cost: 28 bytes of key and
 * value per second with a change, at most ~17 MB for the 7-day default. */
#include <string.h>

#include "store_int.h"

/* A sample's (ms, newest) from its value; 0 when the value is damaged. */
static int sample(const char *v, size_t vl, int64_t *ms, int64_t *newest)
{
    if (vl != 16) return 0;
    *ms = (int64_t)seq_get_be64((const uint8_t *)v);
    *newest = (int64_t)seq_get_be64((const uint8_t *)v + 8);
    return 1;
}

/* An iterator on the first sample; the caller stops at the first key that is not one. */
static rocksdb_iterator_t *first_sample(seq_store *st)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_wmh(k, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    rocksdb_iter_seek(it, (const char *)k, kl);
    return it;
}

static int is_sample(rocksdb_iterator_t *it)
{
    uint8_t k[SEQ_KEY_MAX];
    seq_key_wmh(k, 0);
    size_t kl;
    const char *key = rocksdb_iter_key(it, &kl);
    return kl == SEQ_KEY_WMH_LEN && memcmp(key, k, SEQ_KEY_WMH_LEN - 8) == 0;
}

uint64_t seq_store_newest_series(seq_store *st, seq_store_newest_fn fn, void *ctx)
{
    uint64_t n = 0;
    rocksdb_iterator_t *it = first_sample(st);
    for (; rocksdb_iter_valid(it) && is_sample(it); rocksdb_iter_next(it)) {
        size_t vl;
        const char *v = rocksdb_iter_value(it, &vl);
        int64_t ms, newest;
        if (!sample(v, vl, &ms, &newest)) continue;
        fn(ctx, ms, newest);
        n++;
    }
    rocksdb_iter_destroy(it);
    return n;
}

int seq_store_newest_trim(seq_store *st, int64_t now, char *err, size_t errlen)
{
    int64_t bound = now - (st->history_ms > 0 ? st->history_ms : 0);
    uint8_t first[SEQ_KEY_MAX], keep[SEQ_KEY_MAX];
    size_t first_len = 0, keep_len = 0;
    rocksdb_iterator_t *it = first_sample(st);
    for (; rocksdb_iter_valid(it) && is_sample(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl), *v = rocksdb_iter_value(it, &vl);
        int64_t ms, newest;
        if (sample(v, vl, &ms, &newest) && ms >= bound) break; /* answerable from here on */
        if (!first_len) memcpy(first, k, first_len = kl);
        memcpy(keep, k, keep_len = kl); /* the newest before the bound so far */
    }
    rocksdb_iter_destroy(it);
    if (!keep_len || memcmp(first, keep, keep_len) == 0) return SEQ_OK; /* nothing to drop */
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range(wb, (const char *)first, first_len, (const char *)keep,
                                    keep_len); /* [first, keep): keep stays */
    char *e = NULL;
    rocksdb_write(st->db, st->wsync, wb, &e);
    rocksdb_writebatch_destroy(wb);
    if (e) {
        seq_errf(err, errlen, "rocksdb write (trimming the watermark series): %s", e);
        rocksdb_free(e);
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}
