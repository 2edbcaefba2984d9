/* The stream watermark series for as-of reads (wmhist.h): a growable ring of (second,
 * value) entries, newest last, under a mutex (the consumer notes once per commit; as-of
 * reads are rare). */
#include "wmhist.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    int64_t sec; /* wall-clock second (ms / 1000) of the last note it holds */
    int64_t wm;
} entry;

struct seq_wmhist {
    pthread_mutex_t mu;
    int64_t keep_s;
    entry *e; /* ring */
    uint32_t cap, head, n;
};

seq_wmhist *seq_wmhist_new(int64_t keep_ms)
{
    seq_wmhist *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    pthread_mutex_init(&h->mu, NULL);
    h->keep_s = keep_ms / 1000 + 2;
    return h;
}

void seq_wmhist_free(seq_wmhist *h)
{
    if (!h) return;
    pthread_mutex_destroy(&h->mu);
    free(h->e);
    free(h);
}

static entry *at(seq_wmhist *h, uint32_t i) { return &h->e[(h->head + i) % h->cap]; }

/* Room for one more entry (the ring doubles, unrolled in order). 0 or -1. */
static int grow(seq_wmhist *h)
{
    if (h->n < h->cap) return 0;
    uint32_t cap = h->cap ? 2 * h->cap : 64;
    entry *e = malloc(sizeof *e * cap);
    if (!e) return -1;
    for (uint32_t i = 0; i < h->n; i++) e[i] = *at(h, i);
    free(h->e);
    h->e = e;
    h->cap = cap;
    h->head = 0;
    return 0;
}

void seq_wmhist_note(seq_wmhist *h, int64_t now_ms, int64_t wm)
{
    if (!h) return;
    int64_t sec = now_ms / 1000;
    pthread_mutex_lock(&h->mu);
    entry *last = h->n ? at(h, h->n - 1) : NULL;
    if (last && last->sec >= sec) { /* the same second (or a clock step back): update it */
        last->wm = wm;
    } else if (!last || last->wm != wm) {
        while (h->n && at(h, 0)->sec < sec - h->keep_s) h->head = (h->head + 1) % h->cap, h->n--;
        if (grow(h) == 0) *at(h, h->n++) = (entry){sec, wm};
    }
    pthread_mutex_unlock(&h->mu);
}

int64_t seq_wmhist_at(seq_wmhist *h, int64_t t)
{
    if (!h) return 0;
    int64_t sec = t / 1000; /* entries of earlier seconds were final by t */
    pthread_mutex_lock(&h->mu);
    int64_t wm = h->n ? at(h, 0)->wm : 0;
    uint32_t lo = 0, hi = h->n; /* the first entry of second >= sec */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (at(h, mid)->sec < sec) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0) wm = at(h, lo - 1)->wm;
    pthread_mutex_unlock(&h->mu);
    return wm;
}
