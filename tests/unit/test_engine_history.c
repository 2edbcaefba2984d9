/* The load history (engine/history.h): coverage recomputed from the loads in effect,
 * rollback rules (PRODUCT.md "Rollback"), what --keep-generations and --history-ms let
 * be reclaimed, and the states as of earlier times ("As of T"); the coverage is also
 * compared with a per-millisecond reference on random load sequences. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/history.h"
#include "testlib.h"

static seq_load_rec L(uint64_t gen, int64_t s, int64_t e, int64_t at)
{
    return (seq_load_rec){.gen = gen, .start_ms = s, .end_ms = e, .committed_ms = at};
}

/* "[s,e)gN ..." of the coverage at `at` */
static const char *cov_text(const seq_load_rec *l, uint32_t n, int64_t at)
{
    static char buf[512];
    seq_cov_seg c[64];
    uint64_t g;
    int64_t w;
    int64_t m = seq_hist_cover(l, n, at, c, &g, &w);
    size_t len = 0;
    buf[0] = 0;
    for (int64_t i = 0; i < m; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s[%lld,%lld)g%llu", i ? " " : "",
                                (long long)c[i].start_ms, (long long)c[i].end_ms,
                                (unsigned long long)c[i].gen);
    return buf;
}

#define EXPECT_STR(got, want)                                                              \
    do {                                                                                   \
        const char *_g = (got);                                                            \
        if (strcmp(_g, want) != 0) {                                                       \
            fprintf(stderr, "%s:%d: got '%s' want '%s'\n", __FILE__, __LINE__, _g, want);  \
            seq_t_fail++;                                                                  \
        } else {                                                                           \
            seq_t_pass++;                                                                  \
        }                                                                                  \
    } while (0)

static void test_cover(void)
{
    seq_load_rec l[] = {L(1, 0, 100, 10), L(2, 20, 40, 20), L(3, 30, 120, 30), L(4, 0, 10, 40)};
    EXPECT_STR(cov_text(l, 4, 9), "");
    EXPECT_STR(cov_text(l, 4, 10), "[0,100)g1");
    EXPECT_STR(cov_text(l, 4, 25), "[0,20)g1 [20,40)g2 [40,100)g1");
    EXPECT_STR(cov_text(l, 4, 35), "[0,20)g1 [20,30)g2 [30,120)g3");
    EXPECT_STR(cov_text(l, 4, SEQ_HIST_NOW), "[0,10)g4 [10,20)g1 [20,30)g2 [30,120)g3");
    l[2].undone_ms = 50; /* undone: gone from then on, still there before */
    EXPECT_STR(cov_text(l, 4, 45), "[0,10)g4 [10,20)g1 [20,30)g2 [30,120)g3");
    EXPECT_STR(cov_text(l, 4, 50), "[0,10)g4 [10,20)g1 [20,40)g2 [40,100)g1");
    EXPECT_STR(cov_text(l, 4, SEQ_HIST_NOW), "[0,10)g4 [10,20)g1 [20,40)g2 [40,100)g1");
    uint64_t g;
    int64_t w;
    seq_cov_seg c[16];
    seq_hist_cover(l, 4, SEQ_HIST_NOW, c, &g, &w);
    CHECK_EQ_INT(g, 4);
    CHECK_EQ_INT(w, 100); /* g3's end no longer counts */
    seq_hist_cover(l, 4, 35, c, &g, &w);
    CHECK_EQ_INT(w, 120);
}

/* Loads G1, G2, G3 over one range; PRODUCT.md's example: N = 2, history off. */
static void test_rollback_rules(void)
{
    char err[256];
    uint64_t gen;
    seq_load_rec l[4] = {L(1, 0, 100, 10), L(2, 0, 100, 20), L(3, 0, 100, 30)};
    uint32_t n = 3;
    CHECK_EQ_INT(seq_hist_mark_replaced(l, n, 30), SEQ_OK);
    CHECK_EQ_INT(l[0].replaced_ms, 30); /* marked when first seen owning nothing */
    CHECK_EQ_INT(seq_hist_reclaim(l, n, 30, 2, 0), 0);
    /* the newest load in effect: an OK no-op */
    CHECK_EQ_INT(seq_hist_rollback(l, n, 3, 40, &gen, err, sizeof err), 1);
    CHECK_EQ_INT(gen, 3);
    CHECK_EQ_INT(seq_hist_rollback(l, n, 7, 40, &gen, err, sizeof err), SEQ_EPRECONDITION);
    CHECK(strcmp(err, "generation 7 is not a committed load") == 0);
    seq_load_rec save[4];
    memcpy(save, l, sizeof save);
    /* rollback to G1 works (G2 and G3 undone) */
    CHECK_EQ_INT(seq_hist_rollback(l, n, 1, 40, &gen, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(gen, 1);
    CHECK(l[1].undone_ms == 40 && l[2].undone_ms == 40 && l[0].undone_ms == 0);
    EXPECT_STR(cov_text(l, n, SEQ_HIST_NOW), "[0,100)g1");
    CHECK_EQ_INT(seq_hist_rollback(l, n, 2, 41, &gen, err, sizeof err), SEQ_EPRECONDITION);
    CHECK(strcmp(err, "generation 2 was undone (at 40 ms)") == 0);
    /* 0 undoes the newest in effect; then nothing is left */
    CHECK_EQ_INT(seq_hist_rollback(l, n, 0, 42, &gen, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(gen, 0);
    EXPECT_STR(cov_text(l, n, SEQ_HIST_NOW), "");
    CHECK_EQ_INT(seq_hist_rollback(l, n, 0, 43, &gen, err, sizeof err), SEQ_EPRECONDITION);
    CHECK(strcmp(err, "no load in effect to undo") == 0);

    /* after G4, G1 is the third most recently replaced: reclaimed, rollback refused */
    memcpy(l, save, sizeof save);
    l[3] = L(4, 0, 100, 50);
    n = 4;
    seq_hist_mark_replaced(l, n, 50);
    CHECK_EQ_INT(l[2].replaced_ms, 50);
    CHECK_EQ_INT(seq_hist_reclaim(l, n, 50, 2, 0), 1);
    CHECK_EQ_INT(l[0].reclaimed_ms, 50);
    CHECK(!l[1].reclaimed_ms && !l[2].reclaimed_ms);
    memcpy(save, l, sizeof save);
    CHECK_EQ_INT(seq_hist_rollback(l, n, 1, 60, &gen, err, sizeof err), SEQ_EPRECONDITION);
    CHECK(strstr(err, "generation 1 would own [0, 100) again but its data was reclaimed") == err);
    CHECK(memcmp(save, l, sizeof save) == 0); /* nothing changed */
    CHECK_EQ_INT(seq_hist_rollback(l, n, 2, 60, &gen, err, sizeof err), SEQ_OK);
    /* undone loads are replaced loads too: G4 and G3 now the two most recent */
    seq_hist_mark_replaced(l, n, 60);
    CHECK(l[1].replaced_ms == 0 && l[3].replaced_ms == 60 && l[2].replaced_ms == 50);
    CHECK_EQ_INT(seq_hist_reclaim(l, n, 60, 2, 0), 0);
    CHECK_EQ_INT(seq_hist_reclaim(l, n, 60, 1, 0), 1); /* --keep-generations 1: G3 goes */
    CHECK_EQ_INT(l[2].reclaimed_ms, 60);
}

/* A load owning part of its range is in use: never replaced, never reclaimed; and
 * --history-ms keeps what was replaced less than that long ago. */
static void test_reclaim_partial_and_history(void)
{
    seq_load_rec l[3] = {L(1, 0, 100, 10), L(2, 0, 50, 20), L(3, 0, 100, 30)};
    seq_hist_mark_replaced(l, 2, 20);
    CHECK_EQ_INT(l[0].replaced_ms, 0);
    seq_hist_mark_replaced(l, 3, 30);
    CHECK(l[0].replaced_ms == 30 && l[1].replaced_ms == 30);
    CHECK_EQ_INT(seq_hist_reclaim(l, 3, 40, 0, 1000), 0); /* replaced 10 ms ago < 1000 */
    CHECK_EQ_INT(seq_hist_reclaim(l, 3, 1029, 0, 1000), 0);
    CHECK_EQ_INT(seq_hist_reclaim(l, 3, 1030, 1, 1000), 1); /* keep 1: the higher gen stays */
    CHECK(l[0].reclaimed_ms == 1030 && l[1].reclaimed_ms == 0);
}

/* States as of earlier times: loads and rollbacks after T undone. */
static void test_as_of(void)
{
    seq_load_rec l[3] = {L(10, 0, 100, 1000), L(20, 50, 150, 2000), L(30, 100, 200, 3000)};
    l[2].undone_ms = 4000; /* rolled back */
    seq_hist *h = seq_hist_new(l, 3, 30, 500);
    CHECK(h != NULL);
    if (!h) return;
    seq_hist_state s;
    int64_t oldest = 0;
    CHECK_EQ_INT(seq_hist_at(h, 499, &s, &oldest), SEQ_EPRECONDITION);
    CHECK_EQ_INT(oldest, 500);
    CHECK_EQ_INT(seq_hist_at(h, 999, &s, &oldest), SEQ_OK);
    CHECK(s.generation == 0 && s.n_cov == 0 && s.watermark_ms == 0);
    CHECK_EQ_INT(seq_hist_at(h, 1000, &s, &oldest), SEQ_OK);
    CHECK(s.generation == 10 && s.n_cov == 1 && s.watermark_ms == 100);
    CHECK_EQ_INT(seq_hist_at(h, 3500, &s, &oldest), SEQ_OK);
    CHECK(s.generation == 30 && s.n_cov == 3 && s.watermark_ms == 200);
    CHECK_EQ_INT(seq_hist_at(h, 3999, &s, &oldest), SEQ_OK);
    CHECK_EQ_INT(s.generation, 30);
    CHECK_EQ_INT(seq_hist_at(h, 4000, &s, &oldest), SEQ_OK); /* the rollback's instant */
    CHECK(s.generation == 20 && s.n_cov == 2 && s.watermark_ms == 150);
    CHECK(s.cov[1].start_ms == 50 && s.cov[1].end_ms == 150 && s.cov[1].gen == 20);
    CHECK_EQ_INT(seq_hist_at(h, SEQ_HIST_NOW, &s, &oldest), SEQ_OK);
    CHECK_EQ_INT(s.generation, 20);
    CHECK_EQ_INT(seq_hist_max_gen(h), 30);
    seq_hist_free(h);

    /* G1 reclaimed: no T while it owned coverage is answerable any more */
    seq_load_rec r[3] = {L(1, 0, 100, 1000), L(2, 0, 100, 2000), L(3, 0, 100, 3000)};
    seq_hist_mark_replaced(r, 2, 2000);
    seq_hist_mark_replaced(r, 3, 3000);
    r[0].reclaimed_ms = 3000;
    h = seq_hist_new(r, 3, 3, 0);
    CHECK_EQ_INT(seq_hist_at(h, 1500, &s, &oldest), SEQ_EPRECONDITION);
    CHECK_EQ_INT(oldest, 2000);
    CHECK_EQ_INT(seq_hist_oldest(h), 2000);
    CHECK_EQ_INT(seq_hist_at(h, 2000, &s, &oldest), SEQ_OK);
    CHECK_EQ_INT(s.generation, 2);
    seq_hist_free(h);
}

/* ---- random loads against a per-millisecond reference ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void random_case(void)
{
    enum { SPAN = 60, MAXL = 12 };
    seq_load_rec l[MAXL];
    uint32_t n = 1 + rnd(MAXL);
    for (uint32_t i = 0; i < n; i++) {
        int64_t s = rnd(SPAN), e = s + 1 + rnd(SPAN - (uint32_t)s);
        l[i] = L(i + 1, s, e, 10 * (int64_t)i);
        if (rnd(4) == 0) l[i].undone_ms = 10 * (int64_t)i + 1 + rnd(100);
    }
    int64_t at = rnd(4) ? (int64_t)rnd(150) : SEQ_HIST_NOW;
    seq_cov_seg c[2 * MAXL + 1];
    uint64_t g;
    int64_t w;
    int64_t m = seq_hist_cover(l, n, at, c, &g, &w);
    uint64_t want[SPAN + 1] = {0}, wg = 0;
    int64_t ww = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!seq_hist_in_effect(&l[i], at)) continue;
        for (int64_t t = l[i].start_ms; t < l[i].end_ms; t++) want[t] = l[i].gen;
        wg = l[i].gen;
        if (l[i].end_ms > ww) ww = l[i].end_ms;
    }
    uint64_t got[SPAN + 1] = {0};
    int ok = g == wg && w == ww;
    for (int64_t i = 0; i < m; i++) {
        ok &= c[i].start_ms < c[i].end_ms && (i == 0 || c[i - 1].end_ms <= c[i].start_ms);
        for (int64_t t = c[i].start_ms; t < c[i].end_ms && t <= SPAN; t++) got[t] = c[i].gen;
    }
    ok &= memcmp(got, want, sizeof got) == 0;
    if (!ok) fprintf(stderr, "random coverage differs (n %u at %lld)\n", n, (long long)at);
    CHECK(ok);
}

static void test_random(void)
{
    int before = seq_t_fail;
    for (int i = 0; i < 20000 && seq_t_fail - before < 5; i++) random_case();
}

int main(void)
{
    RUN(test_cover);
    RUN(test_rollback_rules);
    RUN(test_reclaim_partial_and_history);
    RUN(test_as_of);
    RUN(test_random);
    return seq_t_done();
}
