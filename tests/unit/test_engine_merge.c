/* The merge policy with a pinned clock: every rule of PRODUCT.md "Semantics" 1-5 and the
 * "Details", then a randomized comparison against a literal reference implementation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/blob.h"
#include "engine/merge.h"
#include "testlib.h"

/* now = 1,000,000; horizon 100,000 -> C = 900,000; retention 500,000 -> floor 500,000 */
#define NOW 1000000
#define HORIZON 100000
#define CUT (NOW - HORIZON)
#define FLOOR 500000

typedef struct {
    int64_t t;
    const char *id;
    uint32_t type;
    uint64_t gen; /* 0: stream */
} R;

static char *types[] = {"click", "save", "view"};
static seq_sequence seq = {.name = "s", .event_types = types, .n_types = 3, .max_length = 100,
                           .retention_ms = NOW - FLOOR};
static seq_merge_scratch *scratch;

static seq_merge_params params(const seq_cov_seg *cov, uint32_t n_cov)
{
    seq_merge_params p = {.now_ms = NOW, .horizon_ms = HORIZON, .seq = &seq, .cov = cov,
                          .n_cov = n_cov};
    return p;
}

static void to_recs(const R *in, uint32_t n, seq_rec *out)
{
    for (uint32_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].time_ms = in[i].t;
        out[i].id = in[i].id;
        out[i].id_len = (uint32_t)strlen(in[i].id);
        out[i].type_idx = in[i].type;
        out[i].gen = in[i].gen;
        out[i].item_id = (uint64_t)in[i].t;
    }
}

static int cmp_rec(const void *a, const void *b)
{
    return seq_rec_cmp(a, b);
}

/* Runs the merge; returns the answer as "id@t id@t ..." (with `prov`, each record's
 * provenance too: "id@t/s" for the stream, "id@t/gN" for generation N). The stream is
 * sorted first (its contract), the batch is passed in the order given. */
static const char *run_text(const seq_merge_params *p, const R *st, uint32_t ns, const R *bt,
                            uint32_t nb, int prov)
{
    static char buf[4096];
    seq_rec s[64], b[64];
    const seq_rec *out[256];
    to_recs(st, ns, s);
    to_recs(bt, nb, b);
    qsort(s, ns, sizeof s[0], cmp_rec);
    uint32_t n = seq_merge_run(p, s, ns, b, nb, out, scratch);
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%.*s@%lld", i ? " " : "",
                                (int)out[i]->id_len, out[i]->id, (long long)out[i]->time_ms);
        if (!prov) continue;
        len += (size_t)(out[i]->gen ? snprintf(buf + len, sizeof buf - len, "/g%llu",
                                               (unsigned long long)out[i]->gen)
                                    : snprintf(buf + len, sizeof buf - len, "/s"));
    }
    return buf;
}

static const char *merge(const seq_merge_params *p, const R *st, uint32_t ns, const R *bt,
                         uint32_t nb)
{
    return run_text(p, st, ns, bt, nb, 0);
}

static const char *merge_prov(const seq_merge_params *p, const R *st, uint32_t ns, const R *bt,
                              uint32_t nb)
{
    return run_text(p, st, ns, bt, nb, 1);
}

#define EXPECT(got, want)                                                                  \
    do {                                                                                   \
        const char *_g = (got);                                                            \
        if (strcmp(_g, want) != 0) {                                                       \
            fprintf(stderr, "%s:%d: got  '%s'\n%*swant '%s'\n", __FILE__, __LINE__, _g,     \
                    (int)strlen(__FILE__) + 6, "", want);                                  \
            seq_t_fail++;                                                                  \
        } else {                                                                           \
            seq_t_pass++;                                                                  \
        }                                                                                  \
    } while (0)
#define N(a) ((uint32_t)(sizeof a / sizeof a[0]))

static void test_stream_only_and_retention(void)
{
    seq_merge_params p = params(NULL, 0);
    R st[] = {{FLOOR, "floor", 0, 0}, {FLOOR - 1, "old", 0, 0}, {999000, "b", 0, 0},
              {999000, "a", 0, 0}, {999000, "c", 0, 0}, {600000, "hist", 1, 0}};
    EXPECT(merge(&p, st, N(st), NULL, 0), "c@999000 b@999000 a@999000 hist@600000 floor@500000");
    /* batch records without coverage are not shown */
    R bt[] = {{800000, "bx", 0, 7}};
    EXPECT(merge(&p, st, N(st), bt, N(bt)),
           "c@999000 b@999000 a@999000 hist@600000 floor@500000");
    /* batch retention: same floor */
    seq_cov_seg cov[] = {{400000, 600000, 7}};
    p = params(cov, 1);
    R bt2[] = {{FLOOR, "bfloor", 0, 7}, {FLOOR - 1, "bold", 0, 7}};
    EXPECT(merge(&p, NULL, 0, bt2, N(bt2)), "bfloor@500000");
}

static void test_edge_at_cut(void)
{
    seq_cov_seg cov[] = {{800000, 950000, 5}};
    seq_merge_params p = params(cov, 1);
    /* stream at C-1 is covered history (hidden); at C it is recent (shown) */
    R st[] = {{CUT - 1, "s_hist", 0, 0}, {CUT, "s_c", 0, 0}, {960000, "s_new", 0, 0}};
    R bt[] = {{CUT - 1, "b_hist", 0, 5}, {CUT, "b_c", 0, 5}, {940000, "b_recent", 0, 5}};
    EXPECT(merge(&p, st, N(st), bt, N(bt)),
           "s_new@960000 b_recent@940000 s_c@900000 b_c@900000 b_hist@899999");
    /* one id in both sources: a batch copy at C is recent (the stream's copy wins), at
     * C-1 it is history (the batch's wins); with few stream records and with more */
    R st2[] = {{960000, "dup_at_c", 0, 0}, {955000, "dup_before_c_long", 0, 0}};
    R bt2[] = {{CUT, "dup_at_c", 0, 5}, {CUT - 1, "dup_before_c_long", 0, 5}};
    EXPECT(merge(&p, st2, N(st2), bt2, N(bt2)), "dup_at_c@960000 dup_before_c_long@899999");
    R st3[20], bt3[2];
    static char fill[18][8];
    memcpy(st3, st2, sizeof st2);
    memcpy(bt3, bt2, sizeof bt2);
    for (int i = 0; i < 18; i++) {
        snprintf(fill[i], sizeof fill[i], "f%d", i);
        st3[2 + i] = (R){970000 + i, fill[i], 0, 0};
    }
    seq.max_length = 2;
    EXPECT(merge(&p, st3, N(st3), bt3, N(bt3)), "f17@970017 f16@970016");
    p.since_ms = 899000, p.until_ms = 965000; /* the two of interest */
    seq.max_length = 100;
    EXPECT(merge(&p, st3, N(st3), bt3, N(bt3)), "dup_at_c@960000 dup_before_c_long@899999");
    p = params(cov, 1);
    CHECK(!seq_merge_stream_visible(&p, CUT - 1));
    CHECK(seq_merge_stream_visible(&p, CUT));
    CHECK(seq_merge_stream_visible(&p, 799999));
    CHECK(seq_merge_stream_visible(&p, FLOOR));
    CHECK(!seq_merge_stream_visible(&p, FLOOR - 1));
}

static void test_coverage_ends_inside_horizon(void)
{
    /* coverage reaches past C: the part after C is still recent, stream shown there */
    seq_cov_seg cov[] = {{800000, 920000, 5}};
    seq_merge_params p = params(cov, 1);
    R st[] = {{910000, "s_in_cov_recent", 0, 0}, {890000, "s_in_cov_hist", 0, 0},
              {790000, "s_before_cov", 0, 0}};
    R bt[] = {{915000, "b_recent", 0, 5}, {850000, "b_hist", 0, 5}};
    EXPECT(merge(&p, st, N(st), bt, N(bt)),
           "b_recent@915000 s_in_cov_recent@910000 b_hist@850000 s_before_cov@790000");
    /* coverage ending before C: the gap [end, C) is the stream's */
    seq_cov_seg cov2[] = {{700000, 800000, 5}};
    p = params(cov2, 1);
    R st2[] = {{850000, "s_gap", 0, 0}, {750000, "s_cov", 0, 0}};
    R bt2[] = {{750000, "b_cov", 0, 5}, {850000, "b_outside", 0, 5}};
    EXPECT(merge(&p, st2, N(st2), bt2, N(bt2)), "s_gap@850000 b_cov@750000");
}

static void test_two_generations(void)
{
    seq_cov_seg cov[] = {{700000, 800000, 3}, {800000, 900000, 4}};
    seq_merge_params p = params(cov, 2);
    CHECK_EQ_INT(seq_merge_owner(&p, 699999), 0);
    CHECK_EQ_INT(seq_merge_owner(&p, 700000), 3);
    CHECK_EQ_INT(seq_merge_owner(&p, 799999), 3);
    CHECK_EQ_INT(seq_merge_owner(&p, 800000), 4);
    CHECK_EQ_INT(seq_merge_owner(&p, 899999), 4);
    CHECK_EQ_INT(seq_merge_owner(&p, 900000), 0);
    R bt[] = {{750000, "g3_own", 0, 3},   {850000, "g3_foreign", 0, 3},
              {850001, "g4_own", 0, 4},   {750001, "g4_foreign", 0, 4},
              {760000, "dup", 0, 3},      {860000, "dup", 0, 4},
              {870000, "dup2", 0, 4},     {770000, "dup2", 0, 3}};
    EXPECT(merge(&p, NULL, 0, bt, N(bt)), "dup2@870000 dup@860000 g4_own@850001 g3_own@750000");
    /* the same with a stream present (the general path) */
    R st[] = {{950000, "s", 0, 0}, {780000, "s_cov", 0, 0}};
    EXPECT(merge(&p, st, N(st), bt, N(bt)),
           "s@950000 dup2@870000 dup@860000 g4_own@850001 g3_own@750000");
}

static void test_user_absent_from_batch(void)
{
    seq_cov_seg cov[] = {{700000, 900000, 5}};
    seq_merge_params p = params(cov, 1);
    R st[] = {{950000, "recent", 0, 0}, {800000, "covered", 0, 0}, {650000, "uncovered", 0, 0}};
    EXPECT(merge(&p, st, N(st), NULL, 0), "recent@950000 uncovered@650000");
    /* batch records of another generation than the owner: the user is absent too */
    R bt[] = {{800000, "stale", 0, 4}};
    EXPECT(merge(&p, st, N(st), bt, N(bt)), "recent@950000 uncovered@650000");
}

static void test_duplicates_across_paths(void)
{
    seq_cov_seg cov[] = {{800000, 950000, 5}}; /* reaches into the recent range */
    seq_merge_params p = params(cov, 1);
    /* X: batch in history, stream recent -> batch's copy only.
     * Y: both recent -> stream's copy.
     * Z: stream in uncovered history, batch in covered history -> batch's.
     * W: stream in uncovered history, batch recent -> stream's. */
    R st[] = {{950000, "X", 0, 0}, {930000, "Y", 1, 0}, {650000, "Z", 0, 0}, {640000, "W", 2, 0}};
    R bt[] = {{850000, "X", 0, 5}, {920000, "Y", 0, 5}, {860000, "Z", 0, 5}, {910000, "W", 0, 5}};
    EXPECT(merge(&p, st, N(st), bt, N(bt)), "Y@930000 Z@860000 X@850000 W@640000");
    /* the batch record beaten by the stream does not shadow anything else */
    R bt2[] = {{920000, "Y", 0, 5}};
    R st2[] = {{930000, "Y", 1, 0}};
    EXPECT(merge(&p, st2, 1, bt2, 1), "Y@930000");
}

static void test_order_of_cuts(void)
{
    seq.max_length = 5;
    seq_merge_params p = params(NULL, 0);
    R st[] = {{990000, "e9", 0, 0}, {980000, "e8", 1, 0}, {970000, "e7", 0, 0},
              {960000, "e6", 1, 0}, {950000, "e5", 0, 0}, {940000, "e4", 1, 0},
              {930000, "e3", 1, 0}};
    EXPECT(merge(&p, st, N(st), NULL, 0), "e9@990000 e8@980000 e7@970000 e6@960000 e5@950000");
    /* the window selects from the sequence: e4, e3 are beyond max_length */
    p.since_ms = 930000;
    p.until_ms = 980000; /* exclusive: e8 out */
    EXPECT(merge(&p, st, N(st), NULL, 0), "e7@970000 e6@960000 e5@950000");
    /* then max_events keeps the newest of what is left */
    p.max_events = 2;
    EXPECT(merge(&p, st, N(st), NULL, 0), "e7@970000 e6@960000");
    /* type filter: type 1 only, from the sequence (e4, e3 stay out) */
    p = params(NULL, 0);
    p.type_mask = 2;
    EXPECT(merge(&p, st, N(st), NULL, 0), "e8@980000 e6@960000");
    p.max_events = 1;
    EXPECT(merge(&p, st, N(st), NULL, 0), "e8@980000");
    /* max_events alone */
    p = params(NULL, 0);
    p.max_events = 3;
    EXPECT(merge(&p, st, N(st), NULL, 0), "e9@990000 e8@980000 e7@970000");
    p.max_events = 50; /* above max_length: max_length rules */
    EXPECT(merge(&p, st, N(st), NULL, 0), "e9@990000 e8@980000 e7@970000 e6@960000 e5@950000");
    /* since == until: empty; since inclusive */
    p = params(NULL, 0);
    p.since_ms = p.until_ms = 970000;
    EXPECT(merge(&p, st, N(st), NULL, 0), "");
    p.until_ms = 0;
    EXPECT(merge(&p, st, N(st), NULL, 0), "e9@990000 e8@980000 e7@970000");
    /* the same cuts on the general path (a batch present) */
    seq_cov_seg cov[] = {{800000, 900000, 5}};
    R bt[] = {{850000, "b", 0, 5}};
    p = params(cov, 1);
    p.since_ms = 930000;
    p.until_ms = 980000;
    p.max_events = 2;
    EXPECT(merge(&p, st, N(st), bt, N(bt)), "e7@970000 e6@960000");
    seq.max_length = 100;
}

static void test_equal_times_and_order(void)
{
    seq_cov_seg cov[] = {{800000, 960000, 5}};
    seq_merge_params p = params(cov, 1);
    R st[] = {{950000, "m", 0, 0}, {950000, "a", 0, 0}};
    /* batch unsorted, equal times interleaved with the stream's: id descending */
    R bt[] = {{950000, "b", 0, 5}, {810000, "h1", 0, 5}, {950000, "z", 0, 5}, {890000, "h2", 0, 5}};
    EXPECT(merge(&p, st, N(st), bt, N(bt)), "z@950000 m@950000 b@950000 a@950000 h2@890000 h1@810000");
}

static void test_need_and_stop(void)
{
    seq_merge_params p = params(NULL, 0);
    CHECK_EQ_INT(seq_merge_need(&p), 100);
    p.max_events = 10;
    CHECK_EQ_INT(seq_merge_need(&p), 10);
    p.max_events = 1000;
    CHECK_EQ_INT(seq_merge_need(&p), 100);
    p.max_events = 10;
    p.type_mask = 1;
    CHECK_EQ_INT(seq_merge_need(&p), 100);
    p.type_mask = 0;
    p.until_ms = 5;
    CHECK_EQ_INT(seq_merge_need(&p), 100);
    p.until_ms = 0;
    CHECK_EQ_INT(seq_merge_stop_before(&p), FLOOR);
    p.since_ms = 700000;
    CHECK_EQ_INT(seq_merge_stop_before(&p), 700000);
    CHECK_EQ_INT(seq_merge_need(&p), 100);
    p.since_ms = 100;
    CHECK_EQ_INT(seq_merge_stop_before(&p), FLOOR);
}

/* Provenance in every case the merge has: stream in the recent range and in uncovered
 * history, batch in covered history, batch in the recent range deduplicated against the
 * stream (either copy winning), and several generations over adjacent ranges, on the
 * hot one-generation walk and on the general path. */
static void test_provenance(void)
{
    seq_cov_seg cov[] = {{700000, 800000, 3}, {800000, 950000, 4}};
    seq_merge_params p = params(cov, 2);
    R st[] = {{990000, "recent", 0, 0}, {940000, "dupR", 0, 0}, {850000, "dupH", 0, 0},
              {820000, "hidden", 0, 0}, {650000, "uncov", 0, 0}};
    R bt[] = {{945000, "b_recent", 0, 4}, {930000, "dupR", 0, 4}, {860000, "dupH", 0, 4},
              {850000, "g4", 0, 4}, {750000, "g3", 0, 3}, {760000, "g4_foreign", 0, 4}};
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)),
           "recent@990000/s b_recent@945000/g4 dupR@940000/s dupH@860000/g4 g4@850000/g4 "
           "g3@750000/g3 uncov@650000/s");
    /* batch only, one generation, in read order (the hot walk) */
    seq_cov_seg one[] = {{700000, 950000, 9}};
    p = params(one, 1);
    R b1[] = {{940000, "x", 0, 9}, {800000, "y", 0, 9}};
    EXPECT(merge_prov(&p, NULL, 0, b1, N(b1)), "x@940000/g9 y@800000/g9");
    /* a few stream records against one generation (paired from the stream's side) */
    R s1[] = {{960000, "x", 0, 0}, {650000, "z", 0, 0}};
    EXPECT(merge_prov(&p, s1, N(s1), b1, N(b1)), "x@960000/s y@800000/g9 z@650000/s");
}

/* STREAM: the stream's records as if no batch were committed (covered history too),
 * deduplicated among themselves, with every cut. BATCH: the batch's over the whole
 * coverage (recent range too, no stream copy winning), with every cut. */
static void test_views(void)
{
    seq_cov_seg cov[] = {{700000, 800000, 3}, {800000, 950000, 4}};
    seq_merge_params p = params(cov, 2);
    R st[] = {{990000, "recent", 0, 0}, {940000, "dupR", 0, 0}, {850000, "dupH", 0, 0},
              {820000, "hidden", 1, 0}, {650000, "uncov", 0, 0}, {FLOOR - 1, "old", 0, 0}};
    R bt[] = {{945000, "b_recent", 0, 4}, {930000, "dupR", 1, 4}, {860000, "dupH", 0, 4},
              {750000, "g3", 0, 3}, {760000, "g4_foreign", 0, 4}, {FLOOR, "b_floor", 0, 3}};
    p.view = SEQ_VIEW_STREAM;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)),
           "recent@990000/s dupR@940000/s dupH@850000/s hidden@820000/s uncov@650000/s");
    CHECK(seq_merge_stream_visible(&p, 820000)); /* covered history is the stream's here */
    CHECK(!seq_merge_stream_visible(&p, FLOOR - 1));
    p.view = SEQ_VIEW_BATCH;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)),
           "b_recent@945000/g4 dupR@930000/g4 dupH@860000/g4 g3@750000/g3");
    CHECK(merge_prov(&p, NULL, 0, bt, N(bt))[0] == 'b'); /* the same without a stream */
    /* with every cut: max_length, window, types, max_events */
    seq.max_length = 3;
    p.view = SEQ_VIEW_STREAM;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)), "recent@990000/s dupR@940000/s dupH@850000/s");
    p.view = SEQ_VIEW_BATCH;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)),
           "b_recent@945000/g4 dupR@930000/g4 dupH@860000/g4");
    seq.max_length = 100;
    p.type_mask = 2, p.view = SEQ_VIEW_STREAM;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)), "hidden@820000/s");
    p.view = SEQ_VIEW_BATCH;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)), "dupR@930000/g4");
    p.type_mask = 0, p.since_ms = 700000, p.until_ms = 940000, p.max_events = 2;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)), "dupR@930000/g4 dupH@860000/g4");
    p.view = SEQ_VIEW_STREAM;
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)), "dupH@850000/s hidden@820000/s");
    p.view = SEQ_VIEW_BATCH, p.since_ms = p.until_ms = 0, p.max_events = 0;
    p.n_cov = 0; /* no batch committed: empty */
    EXPECT(merge_prov(&p, st, N(st), bt, N(bt)), "");
}

static int64_t gap_of(const seq_merge_params *p)
{
    return seq_merge_gap_ms(p->cov, p->n_cov, p->now_ms - p->seq->retention_ms,
                            p->now_ms - p->horizon_ms);
}

/* The part of [floor, C) = [500000, 900000) that no segment covers. */
static void test_completeness_gap(void)
{
    seq_merge_params p = params(NULL, 0);
    CHECK_EQ_INT(gap_of(&p), CUT - FLOOR); /* before any load: retention - horizon */
    seq_cov_seg a[] = {{400000, 600000, 1}, {600000, 650000, 2}, {700000, 950000, 3}};
    p = params(a, 3); /* [500000,650000) and [700000,900000) covered: 50000 left */
    CHECK_EQ_INT(gap_of(&p), 50000);
    seq_cov_seg all[] = {{FLOOR, CUT, 1}};
    p = params(all, 1);
    CHECK_EQ_INT(gap_of(&p), 0);
    seq_cov_seg edge[] = {{FLOOR + 1, CUT - 1, 1}}; /* exact to the millisecond */
    p = params(edge, 1);
    CHECK_EQ_INT(gap_of(&p), 2);
    seq_cov_seg recent[] = {{CUT, NOW, 1}, {100, 200, 2}}; /* outside [floor, C) */
    p = params(recent, 2);
    CHECK_EQ_INT(gap_of(&p), CUT - FLOOR);
    seq.retention_ms = HORIZON; /* no history at all: nothing to be incomplete */
    p = params(NULL, 0);
    CHECK_EQ_INT(gap_of(&p), 0);
    seq.retention_ms = NOW - FLOOR;
}

/* ---------- randomized comparison with a literal reference ---------- */

static int in_win(const seq_merge_params *p, const seq_rec *r)
{
    if (p->since_ms && r->time_ms < p->since_ms) return 0;
    if (p->until_ms && r->time_ms >= p->until_ms) return 0;
    return !p->type_mask || (p->type_mask >> r->type_idx & 1);
}

static int same_id(const seq_rec *a, const seq_rec *b)
{
    return a->id_len == b->id_len && memcmp(a->id, b->id, a->id_len) == 0;
}

/* O(n^2), straight from the rules in merge.h / the brief. */
static uint32_t reference(const seq_merge_params *p, const seq_rec *s, uint32_t ns,
                          const seq_rec *b, uint32_t nb, const seq_rec **out)
{
    if (p->view != SEQ_VIEW_MERGED) { /* a view: the merge of one source alone */
        seq_merge_params q = *p;
        q.view = SEQ_VIEW_MERGED;
        if (p->view == SEQ_VIEW_STREAM) q.n_cov = 0;
        return reference(&q, p->view == SEQ_VIEW_BATCH ? NULL : s,
                         p->view == SEQ_VIEW_BATCH ? 0 : ns, b,
                         p->view == SEQ_VIEW_STREAM ? 0 : nb, out);
    }
    int64_t C = p->now_ms - p->horizon_ms, fl = p->now_ms - p->seq->retention_ms;
    const seq_rec *all[192];
    uint32_t n = 0;
    int keepb[64] = {0};
    for (uint32_t i = 0; i < nb; i++) {
        keepb[i] = b[i].time_ms >= fl && seq_merge_owner(p, b[i].time_ms) == b[i].gen;
    }
    for (uint32_t i = 0; i < nb; i++) /* higher generation wins */
        for (uint32_t j = 0; j < nb; j++)
            if (keepb[i] && keepb[j] && i != j && same_id(&b[i], &b[j]) &&
                (b[j].gen > b[i].gen || (b[j].gen == b[i].gen && j < i)))
                keepb[i] = 0;
    int keeps[128];
    for (uint32_t i = 0; i < ns; i++) {
        keeps[i] = s[i].time_ms >= fl &&
                   !(s[i].time_ms < C && seq_merge_owner(p, s[i].time_ms) != 0);
        for (uint32_t j = 0; j < nb; j++)
            if (keeps[i] && keepb[j] && same_id(&s[i], &b[j]) && b[j].time_ms < C) keeps[i] = 0;
    }
    for (uint32_t j = 0; j < nb; j++)
        for (uint32_t i = 0; i < ns; i++)
            if (keepb[j] && keeps[i] && same_id(&s[i], &b[j]) && b[j].time_ms >= C) keepb[j] = 0;
    for (uint32_t i = 0; i < ns; i++)
        if (keeps[i]) all[n++] = &s[i];
    for (uint32_t j = 0; j < nb; j++)
        if (keepb[j]) all[n++] = &b[j];
    for (uint32_t i = 1; i < n; i++) /* insertion sort, newest first */
        for (uint32_t k = i; k > 0 && seq_rec_cmp(all[k - 1], all[k]) > 0; k--) {
            const seq_rec *t = all[k];
            all[k] = all[k - 1];
            all[k - 1] = t;
        }
    if (n > p->seq->max_length) n = p->seq->max_length;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (in_win(p, all[i])) out[m++] = all[i];
    if (p->max_events && m > p->max_events) m = p->max_events;
    return m;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* A time on a 5,000 grid, sometimes 1 ms before a grid point (C - 1, floor - 1, ...). */
static int64_t rtime(void)
{
    return 400000 + 5000 * (int64_t)rnd(130) - (rnd(4) == 0);
}

static void random_case(void)
{
    static char ids[100][24];
    seq_rec s[100], b[64];
    const seq_rec *o1[128], *o2[128];
    /* time grid in units of 10,000 around C and the floor; few ids so they collide */
    seq_cov_seg cov[3];
    uint32_t n_cov = 0;
    int64_t at = 400000 + 10000 * (int64_t)rnd(50);
    for (int k = 0; k < 3 && rnd(4); k++) {
        int64_t len = 10000 * (1 + rnd(25));
        cov[n_cov] = (seq_cov_seg){at, at + len, 1 + rnd(4)};
        at += len + 10000 * rnd(2);
        n_cov++;
    }
    seq_merge_params p = params(cov, n_cov);
    seq.max_length = 1 + rnd(30);
    if (rnd(2)) p.max_events = rnd(20);
    if (rnd(3) == 0) p.since_ms = 400000 + 10000 * rnd(60);
    if (rnd(3) == 0) p.until_ms = p.since_ms + 10000 * rnd(30);
    if (rnd(3) == 0) p.type_mask = 1 + rnd(7);
    if (rnd(4) == 0) p.view = rnd(2) ? SEQ_VIEW_STREAM : SEQ_VIEW_BATCH;
    /* a third of the cases: the hot read (one generation, newest first; half of them
     * with stream records too) */
    int one_gen = rnd(3) == 0;
    uint64_t gen1 = 1 + rnd(4);
    /* now and then more stream records than the merge pairs from the stream's side */
    uint32_t ns = one_gen && rnd(2) ? 0 : rnd(rnd(8) ? 40 : 100), nb = rnd(3) ? rnd(60) : 0;
    /* short ids, or long ones alike in their first 8 bytes (hashed and compared in
     * 8-byte words) */
    const char *fmt = rnd(3) ? "i%u" : "long-event-%u";
    for (uint32_t i = 0; i < ns; i++) { /* unique ids in the stream */
        snprintf(ids[i], sizeof ids[i], fmt, i * 3 + rnd(3));
        s[i] = (seq_rec){.time_ms = rtime(), .id = ids[i],
                         .id_len = (uint32_t)strlen(ids[i]), .type_idx = rnd(3)};
        for (uint32_t j = 0; j < i; j++)
            if (same_id(&s[i], &s[j])) s[i].id = "", s[i].id_len = 0; /* marks for removal */
    }
    uint32_t w = 0; /* drop the duplicates */
    for (uint32_t i = 0; i < ns; i++)
        if (s[i].id_len) s[w++] = s[i];
    ns = w;
    qsort(s, ns, sizeof s[0], cmp_rec);
    static char bids[64][24];
    uint32_t nbb = 0;
    for (uint32_t i = 0; i < nb; i++) {
        snprintf(bids[i], sizeof bids[i], fmt, rnd(130));
        seq_rec r = {.time_ms = rtime(), .id = bids[i],
                     .id_len = (uint32_t)strlen(bids[i]), .type_idx = rnd(3),
                     .gen = one_gen ? gen1 : 1 + rnd(4)};
        int dup = 0; /* ids unique within one generation */
        for (uint32_t j = 0; j < nbb; j++)
            if (b[j].gen == r.gen && same_id(&b[j], &r)) dup = 1;
        if (!dup) b[nbb++] = r;
    }
    /* in read order as the reader hands it over (several generations too), else shuffled */
    if (one_gen ? rnd(4) : rnd(2)) qsort(b, nbb, sizeof b[0], cmp_rec);
    uint32_t n1 = seq_merge_run(&p, s, ns, b, nbb, o1, scratch);
    uint32_t n2 = reference(&p, s, ns, b, nbb, o2);
    int same = n1 == n2;
    for (uint32_t i = 0; same && i < n1; i++) same = o1[i] == o2[i];
    if (!same) {
        fprintf(stderr, "random case differs: got %u want %u (ns %u nb %u cov %u)\n", n1, n2, ns,
                nbb, n_cov);
    }
    CHECK(same);
    /* ids unique in every answer */
    for (uint32_t i = 0; i < n1; i++)
        for (uint32_t j = 0; j < i; j++) CHECK(!same_id(o1[i], o1[j]));
}

static void test_random(void)
{
    int before = seq_t_fail;
    for (int i = 0; i < 20000 && seq_t_fail - before < 5; i++) random_case();
    seq.max_length = 100;
}

/* The completeness gap: [lo, hi) minus the coverage, clipped at both ends. */
static void test_gap(void)
{
    seq_cov_seg cov[] = {{100, 200, 1}, {300, 400, 2}, {450, 1000, 3}};
    CHECK_EQ_INT(seq_merge_gap_ms(NULL, 0, 0, 500), 500);       /* nothing loaded */
    CHECK_EQ_INT(seq_merge_gap_ms(cov, 3, 0, 500), 500 - 100 - 100 - 50);
    CHECK_EQ_INT(seq_merge_gap_ms(cov, 3, 150, 350), 200 - 50 - 50); /* clipped segments */
    CHECK_EQ_INT(seq_merge_gap_ms(cov, 3, 460, 900), 0);        /* fully covered */
    CHECK_EQ_INT(seq_merge_gap_ms(cov, 3, 200, 300), 100);      /* touching ends only */
    CHECK_EQ_INT(seq_merge_gap_ms(cov, 3, 500, 500), 0);        /* empty range */
    CHECK_EQ_INT(seq_merge_gap_ms(cov, 3, 600, 100), 0);        /* retention shorter than H */
}

int main(void)
{
    scratch = seq_merge_scratch_new();
    RUN(test_stream_only_and_retention);
    RUN(test_edge_at_cut);
    RUN(test_coverage_ends_inside_horizon);
    RUN(test_two_generations);
    RUN(test_user_absent_from_batch);
    RUN(test_duplicates_across_paths);
    RUN(test_order_of_cuts);
    RUN(test_equal_times_and_order);
    RUN(test_need_and_stop);
    RUN(test_provenance);
    RUN(test_views);
    RUN(test_completeness_gap);
    RUN(test_random);
    RUN(test_gap);
    seq_merge_scratch_free(scratch);
    return seq_t_done();
}
