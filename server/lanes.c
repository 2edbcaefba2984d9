/* Helper threads for the write lanes (see lanes.h). One mutex and two condition
 * variables: start bumps a generation number and wakes the helpers; each helper whose
 * lane is active runs it and counts itself done; wait waits for the count. A commit takes
 * milliseconds, the hand-over microseconds: no spinning. */
#include "lanes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "../engine/common.h"

typedef struct {
    struct seq_lanes *l;
    uint32_t idx;
    pthread_t thread;
    int started;
} helper;

struct seq_lanes {
    uint32_t n;
    seq_lane_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    uint64_t gen;     /* bumped by every start: the helpers' signal to look at active */
    uint32_t pending; /* active lanes of the current run not finished yet */
    int stop;
    uint8_t active[SEQ_LANES_MAX];
    helper h[SEQ_LANES_MAX];
};

static void *helper_main(void *p)
{
    helper *h = p;
    seq_lanes *l = h->l;
    uint64_t seen = 0;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->gen == seen) pthread_cond_wait(&l->work, &l->mu);
        if (l->stop) break;
        seen = l->gen;
        if (!l->active[h->idx]) continue;
        pthread_mutex_unlock(&l->mu);
        l->fn(l->arg, h->idx);
        pthread_mutex_lock(&l->mu);
        if (--l->pending == 0) pthread_cond_signal(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int seq_lanes_new(uint32_t n, seq_lane_fn fn, void *arg, seq_lanes **out)
{
    *out = NULL;
    if (n < 1 || n > SEQ_LANES_MAX || !fn) return SEQ_EINVAL;
    seq_lanes *l = calloc(1, sizeof *l);
    if (!l) return SEQ_EINTERNAL;
    l->n = n;
    l->fn = fn;
    l->arg = arg;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    for (uint32_t i = 0; i < n; i++) {
        helper *h = &l->h[i];
        h->l = l;
        h->idx = i;
        if (pthread_create(&h->thread, NULL, helper_main, h)) {
            seq_lanes_free(l);
            return SEQ_EINTERNAL;
        }
        h->started = 1;
        char name[16];
        snprintf(name, sizeof name, "seqd-lane%u", i);
        pthread_setname_np(h->thread, name);
    }
    *out = l;
    return SEQ_OK;
}

void seq_lanes_free(seq_lanes *l)
{
    if (!l) return;
    seq_lanes_wait(l); /* a helper leaves only between runs */
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (uint32_t i = 0; i < l->n; i++)
        if (l->h[i].started) pthread_join(l->h[i].thread, NULL);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

uint32_t seq_lanes_count(const seq_lanes *l) { return l->n; }

void seq_lanes_wait(seq_lanes *l)
{
    pthread_mutex_lock(&l->mu);
    while (l->pending) pthread_cond_wait(&l->done, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

void seq_lanes_start(seq_lanes *l, const uint8_t *active)
{
    seq_lanes_wait(l); /* at most one run in flight */
    uint32_t lanes = 0;
    pthread_mutex_lock(&l->mu);
    for (uint32_t i = 0; i < l->n && i < SEQ_LANES_MAX; i++) {
        l->active[i] = active[i] != 0;
        lanes += l->active[i];
    }
    if (lanes) {
        l->pending = lanes;
        l->gen++;
        pthread_cond_broadcast(&l->work);
    }
    pthread_mutex_unlock(&l->mu);
}

void seq_lanes_run(seq_lanes *l, const uint8_t *active)
{
    seq_lanes_start(l, active);
    seq_lanes_wait(l);
}
