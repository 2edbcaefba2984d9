/* ThreadSanitizer shim (TSan builds only, linked into seqd and seqctl): routes C11
 * <threads.h> calls to the pthread functions TSan intercepts. librdkafka starts its
 * threads with thrd_create, and glibc implements that by calling its internal
 * pthread_create directly, past TSan's interceptor (GCC 12's TSan has none for the C11
 * API): TSan then knows nothing of those threads and crashes in its allocator on their
 * first malloc. Defined in the executable, these definitions interpose glibc's for every
 * shared library. Mutexes and condition variables go the same way so that TSan sees
 * librdkafka's locking (its remaining reports are suppressed in scripts/tsan.supp). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct {
    thrd_start_t fn;
    void *arg;
} start_args;

static void *trampoline(void *p)
{
    start_args a = *(start_args *)p;
    free(p);
    return (void *)(intptr_t)a.fn(a.arg);
}

static int result(int e)
{
    return e == 0 ? thrd_success : e == ENOMEM ? thrd_nomem : e == ETIMEDOUT ? thrd_timedout
                                                           : e == EBUSY ? thrd_busy : thrd_error;
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    start_args *a = malloc(sizeof *a);
    if (!a) return thrd_nomem;
    *a = (start_args){fn, arg};
    int e = pthread_create(thr, NULL, trampoline, a);
    if (e) free(a);
    return result(e);
}

int thrd_join(thrd_t thr, int *res)
{
    void *r;
    int e = pthread_join(thr, &r);
    if (!e && res) *res = (int)(intptr_t)r;
    return result(e);
}

int thrd_detach(thrd_t thr) { return result(pthread_detach(thr)); }

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    if (type & mtx_recursive) pthread_mutexattr_settype(&at, PTHREAD_MUTEX_RECURSIVE);
    int e = pthread_mutex_init((pthread_mutex_t *)m, &at);
    pthread_mutexattr_destroy(&at);
    return result(e);
}

int mtx_lock(mtx_t *m) { return result(pthread_mutex_lock((pthread_mutex_t *)m)); }
int mtx_trylock(mtx_t *m) { return result(pthread_mutex_trylock((pthread_mutex_t *)m)); }
int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts)
{
    return result(pthread_mutex_timedlock((pthread_mutex_t *)m, ts));
}
int mtx_unlock(mtx_t *m) { return result(pthread_mutex_unlock((pthread_mutex_t *)m)); }
void mtx_destroy(mtx_t *m) { pthread_mutex_destroy((pthread_mutex_t *)m); }

int cnd_init(cnd_t *c) { return result(pthread_cond_init((pthread_cond_t *)c, NULL)); }
int cnd_signal(cnd_t *c) { return result(pthread_cond_signal((pthread_cond_t *)c)); }
int cnd_broadcast(cnd_t *c) { return result(pthread_cond_broadcast((pthread_cond_t *)c)); }
int cnd_wait(cnd_t *c, mtx_t *m)
{
    return result(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}
int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
    return result(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}
void cnd_destroy(cnd_t *c) { pthread_cond_destroy((pthread_cond_t *)c); }
