/* The stream watermark series for as-of reads (wmhist.h): every change of the last ten
 * minutes exactly (`fine`), older ones thinned to the last change of each second
 * (`coarse`), both rings of (ms, value) in time order under one mutex (the consumer notes
 * once per commit; as-of reads are rare). Memory: at most one entry per second of
 * --history-ms plus the changes of ten minutes. The series loaded at start
 * (seq_store_newest_series) arrives as notes in time order, already one per second. */
#include "wmhist.h"

#include <pthread.h>
#include <stdlib.h>

#define FINE_MS 600000 /* changes this recent are kept exactly */

typedef struct {
    int64_t ms, wm; /* from ms on, the newest applied event time was wm */
} entry;

typedef struct {
    entry *e;
    uint32_t cap, head, n;
} ring;

struct seq_wmhist {
    pthread_mutex_t mu;
    int64_t keep_ms;
    ring fine, coarse;
};

seq_wmhist *seq_wmhist_new(int64_t keep_ms)
{
    seq_wmhist *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    pthread_mutex_init(&h->mu, NULL);
    h->keep_ms = keep_ms;
    return h;
}

void seq_wmhist_free(seq_wmhist *h)
{
    if (!h) return;
    pthread_mutex_destroy(&h->mu);
    free(h->fine.e);
    free(h->coarse.e);
    free(h);
}

static entry *at(ring *r, uint32_t i) { return &r->e[(r->head + i) % r->cap]; }
static void pop(ring *r) { r->head = (r->head + 1) % r->cap, r->n--; }

/* Appends (the ring doubles, unrolled in order); an entry is dropped on OOM. */
static void push(ring *r, entry x)
{
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? 2 * r->cap : 64;
        entry *e = malloc(sizeof *e * cap);
        if (!e) return;
        for (uint32_t i = 0; i < r->n; i++) e[i] = *at(r, i);
        free(r->e);
        r->e = e, r->cap = cap, r->head = 0;
    }
    *at(r, r->n++) = x;
}

/* The last entry at or before t, or NULL. */
static const entry *last_at(ring *r, int64_t t)
{
    uint32_t lo = 0, hi = r->n; /* the first entry after t */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (at(r, mid)->ms <= t) lo = mid + 1;
        else hi = mid;
    }
    return lo ? at(r, lo - 1) : NULL;
}

void seq_wmhist_note(seq_wmhist *h, int64_t now_ms, int64_t wm)
{
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    ring *f = &h->fine, *c = &h->coarse;
    const entry *last = f->n ? at(f, f->n - 1) : c->n ? at(c, c->n - 1) : NULL;
    if (!last || last->wm != wm) push(f, (entry){now_ms, wm});
    /* thin what leaves the exact window: the last change of each second stays */
    while (f->n > 1 && at(f, 0)->ms < now_ms - FINE_MS) {
        entry x = *at(f, 0);
        pop(f);
        if (c->n && at(c, c->n - 1)->ms / 1000 == x.ms / 1000) *at(c, c->n - 1) = x;
        else push(c, x);
    }
    while (c->n > 1 && at(c, 1)->ms < now_ms - h->keep_ms) pop(c); /* past the history */
    pthread_mutex_unlock(&h->mu);
}

int64_t seq_wmhist_at(seq_wmhist *h, int64_t t)
{
    if (!h) return 0;
    pthread_mutex_lock(&h->mu);
    const entry *e = last_at(&h->fine, t);
    if (!e) e = last_at(&h->coarse, t);
    if (!e) e = h->coarse.n ? at(&h->coarse, 0) : h->fine.n ? at(&h->fine, 0) : NULL;
    int64_t wm = e ? e->wm : 0;
    pthread_mutex_unlock(&h->mu);
    return wm;
}
