/* A latency histogram for the benchmark tools: 1 µs buckets up to 10 s (above: the last
 * bucket), percentiles by a cumulative walk. Header-only; not part of seqd. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HIST_N 10000000

typedef struct {
    uint32_t *b;
    uint64_t n, max_us;
} hist;

static inline int hist_init(hist *h)
{
    h->n = h->max_us = 0;
    h->b = calloc(HIST_N, sizeof *h->b);
    return h->b ? 0 : -1;
}

static inline void hist_add(hist *h, uint64_t us)
{
    if (us > h->max_us) h->max_us = us;
    h->b[us < HIST_N ? us : HIST_N - 1]++;
    h->n++;
}

/* Empties h for reuse. Only the buckets up to max_us were touched: clearing all HIST_N
 * (40 MB) stalled a load generator's loop for ~20 ms. */
static inline void hist_reset(hist *h)
{
    size_t used = h->max_us < HIST_N ? (size_t)h->max_us + 1 : HIST_N;
    memset(h->b, 0, used * sizeof *h->b);
    h->n = h->max_us = 0;
}

/* Value (µs) at quantile q in [0, 1]. */
static inline uint64_t hist_q(const hist *h, double q)
{
    uint64_t want = (uint64_t)(q * (double)h->n), acc = 0;
    for (uint64_t i = 0; i < HIST_N; i++)
        if ((acc += h->b[i]) > want) return i;
    return h->max_us;
}

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
