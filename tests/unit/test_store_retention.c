/* Storage, retention: the compaction filter drops stream buckets and id index entries
 * older than the sequence's retention and keeps live ones, batch buckets, meta and
 * malformed records. */
#include "store_fixture.h"

static void compaction_drops_expired(void)
{
    seq_def *d = fx_def(DEF_JSON); /* retention 2 days */
    seq_store *st = fx_open(d);
    int64_t now = seq_now_ms();
    int64_t old = now - 3 * DAY, mid = now - 2 * DAY - 10 * 60000, live = now - HOUR;
    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 1, old, "old", 0, 0) == SEQ_OK);
    CHECK(fx_add(b, d, 1, mid, "mid", 0, 0) == SEQ_OK);
    CHECK(fx_add(b, d, 1, live, "live", 0, 0) == SEQ_OK);
    CHECK(fx_add(b, d, 2, old, "old2", 0, 0) == SEQ_OK);
    seq_store_batch_add_malformed(b, 0, 1, "x", 1, "bad");
    seq_store_batch_set_offset(b, 0, 2, old);
    CHECK(fx_commit(b) == SEQ_OK);
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_batch(k, 0, 9, 1, seq_bucket_of(old, d->bucket_ms));
    fx_put_raw(st, k, kl, "", 0);
    CHECK(fx_has_stream(st, 1, old) == 1 && fx_has_index(st, 1, "old") == 1);

    fx_compact(st);

    CHECK(fx_has_stream(st, 1, old) == 0);
    CHECK(fx_has_index(st, 1, "old") == 0);
    CHECK(fx_has_stream(st, 2, old) == 0);
    CHECK(fx_has_index(st, 2, "old2") == 0);
    CHECK(fx_has_index(st, 1, "mid") == 0); /* its time is out, whatever its bucket */
    CHECK(fx_has_stream(st, 1, live) == 1);
    CHECK(fx_has_index(st, 1, "live") == 1);
    CHECK(fx_has(st, k, kl) == 1); /* batch buckets are never dropped here */
    int64_t off, wm;
    CHECK(seq_store_get_offset(st, 0, &off, &wm) == SEQ_OK && off == 2);
    CHECK_EQ_INT(seq_store_malformed_count(st), 1);
    kl = seq_key_malformed(k, 0, 1);
    CHECK(fx_has(st, k, kl) == 1);

    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_params p = fx_params(d, seq_now_ms());
    char ids[256];
    CHECK_EQ_INT(fx_read(r, &p, 1, NULL, ids, sizeof ids), 1);
    CHECK(strcmp(ids, "live") == 0);
    seq_store_reader_free(r);
    seq_store_batch_free(b);
    seq_store_close(st);
    /* the definition survived compaction: reopening with it works */
    st = fx_open(d);
    CHECK(st != NULL);
    seq_store_close(st);
    seq_def_free(d);
}

/* With --history-ms, stream data is kept for retention plus history (as-of reads look
 * that far back), and only then dropped. */
static void history_extends_retention(void)
{
    fx_history_ms = DAY;
    seq_def *d = fx_def(DEF_JSON); /* retention 2 days */
    seq_store *st = fx_open(d);
    int64_t now = seq_now_ms();
    int64_t kept = now - 2 * DAY - 2 * HOUR, gone = now - 3 * DAY - 2 * HOUR;
    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 3, kept, "kept", 0, 0) == SEQ_OK);
    CHECK(fx_add(b, d, 3, gone, "gone", 0, 0) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    fx_compact(st);
    CHECK(fx_has_stream(st, 3, kept) == 1 && fx_has_index(st, 3, "kept") == 1);
    CHECK(fx_has_stream(st, 3, gone) == 0 && fx_has_index(st, 3, "gone") == 0);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
    fx_history_ms = 0;
}

/* The filter reads the clock once per so many keys (store.c, FILTER_CLOCK_KEYS): the first
 * key of a compaction is judged by the clock too. Here it is the only event's index entry
 * (index keys sort before stream keys), expired. */
static void first_key_of_a_compaction(void)
{
    fx_rmdir(); /* a store of its own: nothing else in the compaction */
    fx_mkdir();
    seq_def *d = fx_def(DEF_JSON); /* retention 2 days */
    seq_store *st = fx_open(d);
    int64_t old = seq_now_ms() - 3 * DAY;
    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 5, old, "only", 0, 0) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK(fx_has_index(st, 5, "only") == 1 && fx_has_stream(st, 5, old) == 1);
    fx_compact(st);
    CHECK(fx_has_index(st, 5, "only") == 0);
    CHECK(fx_has_stream(st, 5, old) == 0);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
}

int main(void)
{
    fx_mkdir();
    RUN(compaction_drops_expired);
    RUN(history_extends_retention);
    RUN(first_key_of_a_compaction);
    fx_rmdir();
    return seq_t_done();
}
