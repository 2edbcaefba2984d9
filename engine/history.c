/* The load history of a sequence and the states it implies over time (history.h): the
 * coverage of any moment recomputed from the loads in effect then, rollback planning,
 * which replaced loads' data may be reclaimed, and the table of states an as-of read
 * looks T up in. Pure; storage persists the records and installs the table. */
#include "history.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int seq_hist_in_effect(const seq_load_rec *l, int64_t at)
{
    return l->committed_ms <= at && (l->undone_ms == 0 || l->undone_ms > at);
}

/* Takes [s, e) from the segments c[0..m) (sorted, disjoint) and gives it to gen; c has
 * room for m + 2. The segments overlapping [s, e) are contiguous: the first may keep a
 * left remnant, the last a right one. Returns the new count. */
static uint32_t cov_apply(seq_cov_seg *c, uint32_t m, int64_t s, int64_t e, uint64_t gen)
{
    if (s >= e) return m;
    uint32_t lo = 0, hi;
    while (lo < m && c[lo].end_ms <= s) lo++;
    for (hi = lo; hi < m && c[hi].start_ms < e; hi++) {}
    seq_cov_seg mid[3];
    uint32_t k = 0;
    if (hi > lo && c[lo].start_ms < s) mid[k++] = (seq_cov_seg){c[lo].start_ms, s, c[lo].gen};
    mid[k++] = (seq_cov_seg){s, e, gen};
    if (hi > lo && c[hi - 1].end_ms > e) mid[k++] = (seq_cov_seg){e, c[hi - 1].end_ms, c[hi - 1].gen};
    memmove(c + lo + k, c + hi, (size_t)(m - hi) * sizeof *c);
    memcpy(c + lo, mid, (size_t)k * sizeof *c);
    return m - (hi - lo) + k;
}

int64_t seq_hist_cover(const seq_load_rec *loads, uint32_t n, int64_t at, seq_cov_seg *out,
                       uint64_t *gen, int64_t *wm)
{
    uint32_t m = 0;
    *gen = 0;
    *wm = 0;
    for (uint32_t i = 0; i < n; i++) {
        const seq_load_rec *l = &loads[i];
        if (!seq_hist_in_effect(l, at)) continue;
        m = cov_apply(out, m, l->start_ms, l->end_ms, l->gen);
        if (l->gen > *gen) *gen = l->gen;
        if (l->end_ms > *wm) *wm = l->end_ms;
    }
    return m;
}

static int owns(const seq_cov_seg *c, uint32_t m, uint64_t gen)
{
    for (uint32_t i = 0; i < m; i++)
        if (c[i].gen == gen) return 1;
    return 0;
}

/* The coverage now, malloc'd (room for 2 n + 1). NULL on OOM. */
static seq_cov_seg *cover_now(const seq_load_rec *loads, uint32_t n, uint32_t *m)
{
    seq_cov_seg *c = malloc(sizeof *c * (2 * (size_t)n + 1));
    uint64_t g;
    int64_t w;
    if (c) *m = (uint32_t)seq_hist_cover(loads, n, SEQ_HIST_NOW, c, &g, &w);
    return c;
}

int seq_hist_mark_replaced(seq_load_rec *loads, uint32_t n, int64_t now)
{
    uint32_t m;
    seq_cov_seg *c = cover_now(loads, n, &m);
    if (!c) return SEQ_EINTERNAL;
    for (uint32_t i = 0; i < n; i++) {
        if (owns(c, m, loads[i].gen)) loads[i].replaced_ms = 0;
        else if (!loads[i].replaced_ms) loads[i].replaced_ms = now;
    }
    free(c);
    return SEQ_OK;
}

uint32_t seq_hist_reclaim(seq_load_rec *loads, uint32_t n, int64_t now, uint32_t keep,
                          int64_t history_ms)
{
    uint32_t set = 0;
    for (uint32_t i = 0; i < n; i++) {
        seq_load_rec *l = &loads[i];
        if (!l->replaced_ms || l->reclaimed_ms) continue;
        if (history_ms > 0 && now - l->replaced_ms < history_ms) continue;
        uint32_t newer = 0; /* replaced loads ranked before this one */
        for (uint32_t j = 0; j < n; j++) {
            const seq_load_rec *o = &loads[j];
            newer += j != i && o->replaced_ms &&
                     (o->replaced_ms > l->replaced_ms ||
                      (o->replaced_ms == l->replaced_ms && o->gen > l->gen));
        }
        if (newer < keep) continue;
        l->reclaimed_ms = now;
        set++;
    }
    return set;
}

static const seq_load_rec *find_gen(const seq_load_rec *loads, uint32_t n, uint64_t gen)
{
    for (uint32_t i = 0; i < n; i++)
        if (loads[i].gen == gen) return &loads[i];
    return NULL;
}

int seq_hist_rollback(seq_load_rec *loads, uint32_t n, uint64_t to, int64_t now, uint64_t *gen,
                      char *err, size_t errlen)
{
    int64_t newest = -1, second = -1; /* the two newest loads in effect */
    for (uint32_t i = 0; i < n; i++)
        if (!loads[i].undone_ms) second = newest, newest = i;
    if (newest < 0) {
        seq_errf(err, errlen, "no load in effect to undo");
        return SEQ_EPRECONDITION;
    }
    if (to == 0) {
        to = second < 0 ? 0 : loads[second].gen;
    } else {
        const seq_load_rec *t = find_gen(loads, n, to);
        if (!t) {
            seq_errf(err, errlen, "generation %" PRIu64 " is not a committed load", to);
            return SEQ_EPRECONDITION;
        }
        if (t->undone_ms) {
            seq_errf(err, errlen, "generation %" PRIu64 " was undone (at %" PRId64 " ms)", to,
                     t->undone_ms);
            return SEQ_EPRECONDITION;
        }
        if (to == loads[newest].gen) {
            *gen = to;
            return 1; /* already the newest in effect */
        }
    }
    /* on a copy: what the remaining loads bring back must still have its data, else
     * nothing changes */
    seq_load_rec *after = malloc(sizeof *after * n);
    if (!after) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    memcpy(after, loads, sizeof *after * n);
    for (uint32_t i = 0; i < n; i++)
        if (!after[i].undone_ms && after[i].gen > to) after[i].undone_ms = now;
    uint32_t m;
    seq_cov_seg *c = cover_now(after, n, &m);
    int rc = c ? SEQ_OK : SEQ_EINTERNAL;
    if (!c) seq_errf(err, errlen, "out of memory");
    for (uint32_t i = 0; c && i < m && rc == SEQ_OK; i++) {
        const seq_load_rec *l = find_gen(after, n, c[i].gen);
        if (l && l->reclaimed_ms) {
            seq_errf(err, errlen,
                     "generation %" PRIu64 " would own [%" PRId64 ", %" PRId64 ") again but its "
                     "data was reclaimed at %" PRId64 " ms (--keep-generations, --history-ms)",
                     l->gen, c[i].start_ms, c[i].end_ms, l->reclaimed_ms);
            rc = SEQ_EPRECONDITION;
        }
    }
    if (rc == SEQ_OK) {
        memcpy(loads, after, sizeof *after * n);
        *gen = to;
    }
    free(c);
    free(after);
    return rc;
}

/* ---- the table of states ---- */

typedef struct {
    int64_t from_ms; /* holds from here to the next entry's from_ms */
    seq_hist_state st;
    int answerable;  /* every owner's data is still kept */
} epoch;

struct seq_hist {
    atomic_uint refs;
    uint64_t max_gen;
    int64_t start_ms, oldest_ms;
    seq_load_rec *loads;
    uint32_t n_loads;
    epoch *ep; /* ascending from_ms; ep[0] starts at INT64_MIN */
    uint32_t n_ep;
    seq_cov_seg *segs; /* every epoch's coverage */
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int answerable(const seq_hist *h, const seq_hist_state *s)
{
    for (uint32_t i = 0; i < s->n_cov; i++) {
        const seq_load_rec *l = find_gen(h->loads, h->n_loads, s->cov[i].gen);
        if (!l || l->reclaimed_ms) return 0;
    }
    return 1;
}

seq_hist *seq_hist_new(const seq_load_rec *loads, uint32_t n, uint64_t max_gen, int64_t start_ms)
{
    seq_hist *h = calloc(1, sizeof *h);
    int64_t *times = malloc(sizeof *times * (2 * (size_t)n + 1));
    if (!h || !times) goto fail;
    atomic_init(&h->refs, 1);
    h->max_gen = max_gen;
    h->start_ms = start_ms;
    h->n_loads = n;
    if (n && !(h->loads = malloc(sizeof *loads * n))) goto fail;
    if (n) memcpy(h->loads, loads, sizeof *loads * n);
    /* the moments the state changes: commits and undos */
    uint32_t nt = 0;
    for (uint32_t i = 0; i < n; i++) {
        times[nt++] = loads[i].committed_ms;
        if (loads[i].undone_ms) times[nt++] = loads[i].undone_ms;
    }
    qsort(times, nt, sizeof *times, cmp_i64);
    uint32_t u = 0;
    for (uint32_t i = 0; i < nt; i++)
        if (!u || times[i] != times[u - 1]) times[u++] = times[i];
    size_t per = 2 * (size_t)n + 1;
    h->ep = malloc(sizeof *h->ep * (u + 1));
    h->segs = malloc(sizeof *h->segs * per * (u + 1));
    if (!h->ep || !h->segs) goto fail;
    h->ep[0] = (epoch){INT64_MIN, {0, 0, h->segs, 0}, 1}; /* before any load */
    for (uint32_t i = 0; i < u; i++) {
        epoch *e = &h->ep[i + 1];
        seq_cov_seg *c = h->segs + per * (i + 1);
        e->from_ms = times[i];
        e->st.cov = c;
        e->st.n_cov = (uint32_t)seq_hist_cover(h->loads, n, times[i], c, &e->st.generation,
                                               &e->st.watermark_ms);
        e->answerable = answerable(h, &e->st);
    }
    h->n_ep = u + 1;
    h->oldest_ms = start_ms;
    for (uint32_t i = 0; i + 1 < h->n_ep; i++)
        if (!h->ep[i].answerable && h->ep[i + 1].from_ms > h->oldest_ms)
            h->oldest_ms = h->ep[i + 1].from_ms;
    free(times);
    return h;
fail:
    free(times);
    seq_hist_free(h);
    return NULL;
}

seq_hist *seq_hist_ref(seq_hist *h)
{
    if (h) atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    return h;
}

void seq_hist_free(seq_hist *h)
{
    if (!h || atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1) return;
    free(h->loads);
    free(h->ep);
    free(h->segs);
    free(h);
}

const seq_load_rec *seq_hist_loads(const seq_hist *h, uint32_t *n)
{
    *n = h ? h->n_loads : 0;
    return h ? h->loads : NULL;
}

uint64_t seq_hist_max_gen(const seq_hist *h) { return h ? h->max_gen : 0; }
int64_t seq_hist_start(const seq_hist *h) { return h ? h->start_ms : 0; }
int64_t seq_hist_oldest(const seq_hist *h) { return h ? h->oldest_ms : 0; }

int seq_hist_at(const seq_hist *h, int64_t t, seq_hist_state *out, int64_t *oldest)
{
    if (t < h->oldest_ms) {
        *oldest = h->oldest_ms;
        return SEQ_EPRECONDITION;
    }
    uint32_t lo = 1, hi = h->n_ep; /* the last epoch starting at or before t */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (h->ep[mid].from_ms <= t) lo = mid + 1;
        else hi = mid;
    }
    *out = h->ep[lo - 1].st;
    return SEQ_OK;
}

void seq_hist_current(const seq_hist *h, seq_hist_state *out) { *out = h->ep[h->n_ep - 1].st; }
