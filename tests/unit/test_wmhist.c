/* The stream watermark series of as-of reads (server/wmhist.h): exact for recent changes,
 * the last change of each second for older ones, dropped past the history; and its stored
 * copy (storage/store.h, seq_store_newest_*): written only by a commit, the last change of
 * each second, nothing with --history-ms 0, read back after a reopen into a series that
 * answers as before, and trimmed to the history by the sweep, keeping the value in force
 * at the oldest answerable time. */
#include "server/wmhist.h"
#include "store_fixture.h"
#include "storage/batch.h"

static void test_exact_recent(void)
{
    seq_wmhist *h = seq_wmhist_new(3600000);
    CHECK_EQ_INT(seq_wmhist_at(h, 1000), 0); /* nothing noted */
    seq_wmhist_note(h, 10000, 500);
    seq_wmhist_note(h, 10010, 500); /* unchanged: no entry */
    seq_wmhist_note(h, 10020, 700);
    seq_wmhist_note(h, 10020, 800); /* same ms: a second entry, the later wins */
    CHECK_EQ_INT(seq_wmhist_at(h, 9999), 500); /* before the first note: the first value */
    CHECK_EQ_INT(seq_wmhist_at(h, 10000), 500);
    CHECK_EQ_INT(seq_wmhist_at(h, 10019), 500);
    CHECK_EQ_INT(seq_wmhist_at(h, 10020), 800);
    CHECK_EQ_INT(seq_wmhist_at(h, 99999), 800);
    CHECK_EQ_INT(seq_wmhist_at(NULL, 5), 0);
    seq_wmhist_note(NULL, 1, 1); /* ignored */
    seq_wmhist_free(h);
}

static void test_thinned_and_dropped(void)
{
    seq_wmhist *h = seq_wmhist_new(3600000);
    seq_wmhist_note(h, 1000100, 1); /* second 1000 */
    seq_wmhist_note(h, 1000500, 2);
    seq_wmhist_note(h, 1001200, 3); /* second 1001 */
    seq_wmhist_note(h, 1700000, 4); /* 11+ minutes later: the first three are thinned */
    /* second 1000 keeps its last change (2 from .500): before it, the oldest kept value */
    CHECK_EQ_INT(seq_wmhist_at(h, 1000600), 2);
    CHECK_EQ_INT(seq_wmhist_at(h, 1000300), 2);
    CHECK_EQ_INT(seq_wmhist_at(h, 1001100), 2); /* 3 came at .200 of the next second */
    CHECK_EQ_INT(seq_wmhist_at(h, 1001300), 3);
    CHECK_EQ_INT(seq_wmhist_at(h, 1700000), 4);
    seq_wmhist_note(h, 1000100 + 3600000 + 700000, 5); /* past the hour: old ones dropped */
    CHECK(seq_wmhist_at(h, 1000600) >= 3);              /* the oldest kept stands for them */
    CHECK_EQ_INT(seq_wmhist_at(h, 1000100 + 3600000 + 700000), 5);
    seq_wmhist_free(h);
}

typedef struct {
    int n;
    int64_t ms[16], wm[16];
    seq_wmhist *h; /* also noted here when set (as seqd does at start) */
} samples;

static void on_sample(void *ctx, int64_t ms, int64_t wm)
{
    samples *s = ctx;
    if (s->n < 16) s->ms[s->n] = ms, s->wm[s->n] = wm;
    s->n++;
    seq_wmhist_note(s->h, ms, wm);
}

static void commit_newest(seq_store_batch *b, int64_t ms, int64_t wm)
{
    seq_store_batch_set_newest(b, ms, wm);
    CHECK(fx_commit(b) == SEQ_OK);
}

static samples stored(seq_store *st, seq_wmhist *h)
{
    samples s = {.h = h};
    CHECK_EQ_INT(seq_store_newest_series(st, on_sample, &s), s.n);
    return s;
}

static void test_persisted(void)
{
    fx_mkdir();
    fx_history_ms = DAY;
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    CHECK(st != NULL);
    int64_t s0 = (seq_now_ms() / 1000 - 100) * 1000; /* a second 100 s ago */
    seq_store_batch *b = seq_store_batch_new(st);
    commit_newest(b, s0 + 100, 500);
    commit_newest(b, s0 + 300, 600); /* same second: overwrites */
    seq_store_batch_set_offset(b, 0, 10, 700);
    commit_newest(b, s0 + 1200, 700); /* the next second, with the offsets */
    seq_store_batch_set_newest(b, s0 + 2500, 900);
    seq_store_batch_free(b); /* never committed: not stored */
    seq_store_close(st);

    st = fx_open(d); /* a restart */
    uint8_t k[SEQ_KEY_MAX];
    fx_put_raw(st, k, seq_key_wmh(k, s0 / 1000 + 5), "bad", 3); /* damaged: skipped */
    seq_wmhist *h = seq_wmhist_new(DAY);
    samples s = stored(st, h);
    CHECK_EQ_INT(s.n, 2);
    CHECK(s.ms[0] == s0 + 300 && s.wm[0] == 600);
    CHECK(s.ms[1] == s0 + 1200 && s.wm[1] == 700);
    CHECK_EQ_INT(seq_wmhist_at(h, s0 + 1000), 600);
    CHECK_EQ_INT(seq_wmhist_at(h, s0 + 1199), 600);
    CHECK_EQ_INT(seq_wmhist_at(h, s0 + 1200), 700);
    CHECK_EQ_INT(seq_wmhist_at(h, s0 + 99000), 700);
    seq_wmhist_free(h);
    seq_store_close(st);
    seq_def_free(d);
    fx_rmdir();
}

static void test_no_history(void)
{
    fx_mkdir();
    fx_history_ms = 0;
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    seq_store_batch *b = seq_store_batch_new(st);
    commit_newest(b, seq_now_ms(), 500); /* as-of reads are off: nothing kept */
    CHECK_EQ_INT(stored(st, NULL).n, 0);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
    fx_rmdir();
}

static void test_trimmed(void)
{
    fx_mkdir();
    fx_history_ms = DAY;
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    int64_t now = seq_now_ms();
    seq_store_batch *b = seq_store_batch_new(st);
    commit_newest(b, now - 3 * DAY, 1);
    commit_newest(b, now - 2 * DAY, 2);
    commit_newest(b, now - 3 * DAY / 2, 3); /* in force at now - DAY: stays */
    commit_newest(b, now - HOUR, 4);
    char err[256];
    CHECK(seq_store_batch_sweep(st, now, err, sizeof err) == SEQ_OK);
    samples s = stored(st, NULL);
    CHECK_EQ_INT(s.n, 2);
    CHECK(s.wm[0] == 3 && s.wm[1] == 4);
    CHECK(seq_store_batch_sweep(st, now, err, sizeof err) == SEQ_OK); /* nothing more */
    CHECK_EQ_INT(stored(st, NULL).n, 2);
    /* all older than the history: the newest of them stays */
    CHECK(seq_store_newest_trim(st, now + 2 * DAY, err, sizeof err) == SEQ_OK);
    s = stored(st, NULL);
    CHECK(s.n == 1 && s.wm[0] == 4);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
    fx_rmdir();
}

int main(void)
{
    RUN(test_exact_recent);
    RUN(test_thinned_and_dropped);
    RUN(test_persisted);
    RUN(test_no_history);
    RUN(test_trimmed);
    return seq_t_done();
}
