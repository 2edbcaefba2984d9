/* The write lanes' helper threads (server/lanes.h): every active lane runs once per run,
 * each on a thread of its own (never the caller's), at the same time (a lane that waits
 * for all others to start would hang otherwise); inactive lanes do not run; what a lane
 * wrote is seen by the caller after the wait; start returns while the lanes still run
 * (the consumer's pipeline); a run with no lane returns at once; bad counts are refused. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "engine/common.h"
#include "server/lanes.h"
#include "testlib.h"

typedef struct {
    int runs[SEQ_LANES_MAX];        /* plain ints: the run's hand-over orders them */
    pthread_t who[SEQ_LANES_MAX];
    _Atomic uint32_t started;       /* lanes of the current run that have started */
    uint32_t wait_for;              /* a lane returns only once this many have started */
    _Atomic int timeouts;           /* lanes that gave up waiting: the lanes ran one by one */
} ctx;

static void lane_fn(void *arg, uint32_t i)
{
    ctx *x = arg;
    x->runs[i]++;
    x->who[i] = pthread_self();
    atomic_fetch_add(&x->started, 1);
    /* all lanes at once: each waits (bounded) until every active lane has started */
    for (int spins = 0; atomic_load(&x->started) < x->wait_for; spins++) {
        if (spins == 20000) { /* 2 s */
            atomic_fetch_add(&x->timeouts, 1);
            return;
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

static void test_all_lanes_run_at_once(void)
{
    ctx x = {0};
    seq_lanes *l;
    CHECK_EQ_INT(seq_lanes_new(4, lane_fn, &x, &l), SEQ_OK);
    CHECK_EQ_INT(seq_lanes_count(l), 4);
    uint8_t all[SEQ_LANES_MAX] = {1, 1, 1, 1};
    for (int r = 0; r < 50; r++) {
        atomic_store(&x.started, 0);
        x.wait_for = 4;
        seq_lanes_run(l, all);
        CHECK_EQ_INT(atomic_load(&x.started), 4); /* every lane had started */
    }
    CHECK_EQ_INT(atomic_load(&x.timeouts), 0);
    for (uint32_t i = 0; i < 4; i++) CHECK_EQ_INT(x.runs[i], 50);
    for (uint32_t i = 0; i < 4; i++) {
        CHECK(!pthread_equal(x.who[i], pthread_self()));
        for (uint32_t j = 0; j < i; j++) CHECK(!pthread_equal(x.who[i], x.who[j]));
    }
    seq_lanes_free(l);
}

static void test_inactive_lanes_do_not_run(void)
{
    ctx x = {0};
    seq_lanes *l;
    CHECK_EQ_INT(seq_lanes_new(3, lane_fn, &x, &l), SEQ_OK);
    uint8_t some[SEQ_LANES_MAX] = {0, 1, 0};
    x.wait_for = 1;
    seq_lanes_run(l, some);
    CHECK_EQ_INT(x.runs[0], 0);
    CHECK_EQ_INT(x.runs[1], 1);
    CHECK_EQ_INT(x.runs[2], 0);
    uint8_t first[SEQ_LANES_MAX] = {1, 0, 0};
    atomic_store(&x.started, 0);
    seq_lanes_run(l, first);
    CHECK_EQ_INT(x.runs[0], 1);
    CHECK_EQ_INT(x.runs[1], 1);
    uint8_t none[SEQ_LANES_MAX] = {0};
    seq_lanes_run(l, none);
    CHECK_EQ_INT(x.runs[0] + x.runs[1] + x.runs[2], 2);
    /* a helper skipped by one run runs in the next */
    uint8_t last[SEQ_LANES_MAX] = {0, 0, 1};
    atomic_store(&x.started, 0);
    seq_lanes_run(l, last);
    CHECK_EQ_INT(x.runs[2], 1);
    seq_lanes_free(l);
}

static void test_one_lane_and_bad_counts(void)
{
    ctx x = {0};
    seq_lanes *l;
    CHECK_EQ_INT(seq_lanes_new(1, lane_fn, &x, &l), SEQ_OK);
    uint8_t all[SEQ_LANES_MAX] = {1, 1};
    x.wait_for = 1;
    seq_lanes_run(l, all); /* lane 1 does not exist: only lane 0 runs */
    CHECK_EQ_INT(x.runs[0], 1);
    CHECK_EQ_INT(x.runs[1], 0);
    seq_lanes_free(l);
    CHECK_EQ_INT(seq_lanes_new(0, lane_fn, &x, &l), SEQ_EINVAL);
    CHECK(l == NULL);
    CHECK_EQ_INT(seq_lanes_new(SEQ_LANES_MAX + 1, lane_fn, &x, &l), SEQ_EINVAL);
    CHECK_EQ_INT(seq_lanes_new(2, NULL, &x, &l), SEQ_EINVAL);
    seq_lanes_free(NULL);
}

/* start returns while the lanes run: here a lane that waits for the caller to go on
 * after start; the wait then sees what it wrote */
static _Atomic int go_on;
static int wrote;

static void blocked_fn(void *arg, uint32_t i)
{
    (void)arg;
    (void)i;
    for (int spins = 0; !atomic_load(&go_on) && spins < 20000; spins++) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    wrote = atomic_load(&go_on) ? 7 : -1;
}

static void test_start_returns_before_the_lanes_finish(void)
{
    seq_lanes *l;
    CHECK_EQ_INT(seq_lanes_new(2, blocked_fn, NULL, &l), SEQ_OK);
    uint8_t one[SEQ_LANES_MAX] = {0, 1};
    for (int r = 0; r < 20; r++) {
        atomic_store(&go_on, 0);
        wrote = 0;
        seq_lanes_start(l, one);
        atomic_store(&go_on, 1); /* the lane waits for this: start did not wait for it */
        seq_lanes_wait(l);
        CHECK_EQ_INT(wrote, 7);
        seq_lanes_wait(l); /* nothing in flight: returns at once */
    }
    atomic_store(&go_on, 0);
    seq_lanes_start(l, one);
    atomic_store(&go_on, 1);
    seq_lanes_free(l); /* waits for the run in flight */
    CHECK_EQ_INT(wrote, 7);
}

int main(void)
{
    RUN(test_all_lanes_run_at_once);
    RUN(test_inactive_lanes_do_not_run);
    RUN(test_one_lane_and_bad_counts);
    RUN(test_start_returns_before_the_lanes_finish);
    return seq_t_done();
}
