/* The load history of each sequence in storage (engine/history.h for the rules): read at
 * open ('m' "hist", migrated from 'm' "gen" for data dirs from before it existed),
 * committed by loads and rollbacks in one synced write together with the current
 * coverage ('m' "gen"), installed in the view readers acquire (so a rollback is atomic
 * for readers like a load), and the data of loads it lets go deleted once no reader can
 * still look at it. Sits beside store_load.c: loads and rollbacks both end here. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

#define RECLAIMED_RECORDS_MAX 64 /* reclaimed loads remembered (for messages) past history */

static int put_batch(seq_store *st, rocksdb_writebatch_t *wb, char *err, size_t errlen)
{
    char *e = NULL;
    rocksdb_write(st->db, st->wsync, wb, &e);
    if (!e) return SEQ_OK;
    seq_errf(err, errlen, "commit: %s", e);
    rocksdb_free(e);
    return SEQ_EINTERNAL;
}

int seq_store_born(seq_store *st, char *err, size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX], v[8];
    size_t kl = seq_key_meta(k, "born"), vl;
    char *val;
    int rc = seq_store_get_raw(st, k, kl, &val, &vl, err, errlen);
    if (rc != SEQ_OK) return rc;
    if (val && vl == 8) {
        st->born_ms = (int64_t)seq_get_be64((const uint8_t *)val);
        rocksdb_free(val);
        return SEQ_OK;
    }
    rocksdb_free(val);
    st->born_ms = seq_now_ms(); /* a new data dir, or one from before as-of reads */
    seq_put_be64(v, (uint64_t)st->born_ms);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)v, 8);
    rc = put_batch(st, wb, err, errlen);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* Fills out from h (the current state; cov copied) and hands h over. */
static int install_state(seq_hist *h, seq_store_seqstate *out)
{
    seq_hist_state cur;
    seq_hist_current(h, &cur);
    seq_cov_seg *c = NULL;
    if (cur.n_cov && !(c = malloc(sizeof *c * cur.n_cov))) return SEQ_EINTERNAL;
    if (cur.n_cov) memcpy(c, cur.cov, sizeof *c * cur.n_cov);
    *out = (seq_store_seqstate){cur.generation, cur.watermark_ms, c, cur.n_cov, h};
    return SEQ_OK;
}

/* Both keys of a committed state, in one write batch. */
static int write_state(seq_store *st, uint32_t seq, const seq_hist *h, int64_t loads_next,
                       char *err, size_t errlen)
{
    seq_hist_state cur;
    seq_hist_current(h, &cur);
    uint32_t n;
    const seq_load_rec *l = seq_hist_loads(h, &n);
    seq_buf gv = {0}, hv = {0};
    uint8_t k[SEQ_KEY_MAX];
    int rc = SEQ_EINTERNAL;
    if (seq_genval_encode(&gv, cur.generation, cur.watermark_ms, cur.cov, cur.n_cov) == 0 &&
        seq_histval_encode(&hv, seq_hist_max_gen(h), seq_hist_start(h), l, n) == 0) {
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        size_t kl = seq_key_gen(k, seq);
        rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)gv.data, gv.len);
        kl = seq_key_hist(k, seq);
        rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)hv.data, hv.len);
        if (loads_next > 0) {
            uint8_t v[8];
            seq_put_be64(v, (uint64_t)loads_next);
            kl = seq_key_meta(k, "loads");
            rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)v, sizeof v);
        }
        rc = put_batch(st, wb, err, errlen);
        rocksdb_writebatch_destroy(wb);
    } else {
        seq_errf(err, errlen, "out of memory");
    }
    seq_buf_free(&gv);
    seq_buf_free(&hv);
    return rc;
}

/* A data dir from before the history: one load per generation the coverage shows, its
 * range the hull of its segments (exact: within a load's range every time belongs to it
 * or to a newer load, so the hulls rebuild the same coverage), committed at time 0, the
 * newest with the counts of 'm' "load". As-of reads start at the migration. */
static int migrate(seq_store *st, uint32_t seq, const char *gval, size_t glen,
                   seq_load_rec **loads, uint32_t *n, uint64_t *max_gen, char *err,
                   size_t errlen)
{
    uint64_t gen;
    int64_t wm;
    seq_cov_seg *cov;
    uint32_t nc;
    if (seq_genval_decode(gval, glen, &gen, &wm, &cov, &nc) < 0) {
        seq_errf(err, errlen, "stored batch state of sequence %u is corrupt", seq);
        return SEQ_EDATALOSS;
    }
    seq_load_rec *l = calloc(nc ? nc : 1, sizeof *l);
    uint32_t m = 0;
    if (!l) {
        free(cov);
        return SEQ_EINTERNAL;
    }
    for (uint32_t i = 0; i < nc; i++) {
        uint32_t j = 0;
        while (j < m && l[j].gen != cov[i].gen) j++;
        if (j == m) l[m++] = (seq_load_rec){.gen = cov[i].gen, .start_ms = cov[i].start_ms,
                                            .end_ms = cov[i].end_ms};
        if (cov[i].start_ms < l[j].start_ms) l[j].start_ms = cov[i].start_ms;
        if (cov[i].end_ms > l[j].end_ms) l[j].end_ms = cov[i].end_ms;
    }
    free(cov);
    for (uint32_t i = 1; i < m; i++) /* commit order is generation order */
        for (uint32_t j = i; j > 0 && l[j - 1].gen > l[j].gen; j--) {
            seq_load_rec t = l[j];
            l[j] = l[j - 1];
            l[j - 1] = t;
        }
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_meta(k, "load");
    seq_put_be32(k + kl, seq);
    char *v;
    size_t vl;
    int rc = seq_store_get_raw(st, k, kl + 4, &v, &vl, err, errlen);
    if (rc == SEQ_OK && v && vl == 48 && m && seq_get_be64((const uint8_t *)v) == l[m - 1].gen) {
        l[m - 1].files = seq_get_be64((const uint8_t *)v + 24);
        l[m - 1].users = seq_get_be64((const uint8_t *)v + 32);
        l[m - 1].events = seq_get_be64((const uint8_t *)v + 40);
    }
    rocksdb_free(v);
    *loads = l;
    *n = m;
    *max_gen = gen;
    return rc;
}

int seq_store_hist_open(seq_store *st, uint32_t seq, seq_store_seqstate *out, char *err,
                        size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX];
    char *v = NULL;
    size_t vl;
    seq_load_rec *loads = NULL;
    uint32_t n = 0;
    uint64_t max_gen = 0;
    int64_t start = st->born_ms;
    int migrated = 0;
    int rc = seq_store_get_raw(st, k, seq_key_hist(k, seq), &v, &vl, err, errlen);
    if (rc == SEQ_OK && v) {
        if (seq_histval_decode(v, vl, &max_gen, &start, &loads, &n) < 0) {
            seq_errf(err, errlen, "stored load history of sequence %u is corrupt", seq);
            rc = SEQ_EDATALOSS;
        }
    } else if (rc == SEQ_OK) {
        rc = seq_store_get_raw(st, k, seq_key_gen(k, seq), &v, &vl, err, errlen);
        if (rc == SEQ_OK && v) {
            rc = migrate(st, seq, v, vl, &loads, &n, &max_gen, err, errlen);
            start = seq_now_ms();
            migrated = 1;
        }
    }
    rocksdb_free(v);
    seq_hist *h = NULL;
    if (rc == SEQ_OK && !(h = seq_hist_new(loads, n, max_gen, start))) rc = SEQ_EINTERNAL;
    if (rc == SEQ_OK && migrated) rc = write_state(st, seq, h, 0, err, errlen);
    if (rc == SEQ_OK) rc = install_state(h, out);
    if (rc != SEQ_OK) seq_hist_free(h);
    free(loads);
    return rc;
}

int seq_store_gen_kept(const seq_store_seqstate *s, uint64_t gen)
{
    uint32_t n;
    const seq_load_rec *l = seq_hist_loads(s->hist, &n);
    for (uint32_t i = 0; i < n; i++)
        if (l[i].gen == gen) return l[i].reclaimed_ms == 0;
    return 0;
}

/* Forgets the oldest reclaimed loads past RECLAIMED_RECORDS_MAX once they are older than
 * the history (nothing can ask about them then but a message). */
static uint32_t prune(seq_load_rec *l, uint32_t n, int64_t now, int64_t history_ms)
{
    uint32_t reclaimed = 0;
    for (uint32_t i = 0; i < n; i++) reclaimed += l[i].reclaimed_ms != 0;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) { /* commit order: the oldest first */
        int old = l[i].reclaimed_ms && l[i].replaced_ms < now - history_ms;
        if (old && reclaimed > RECLAIMED_RECORDS_MAX) {
            reclaimed--;
            continue;
        }
        l[m++] = l[i];
    }
    return m;
}

/* Waits (bounded) until only the caller's reference holds `old`, then deletes the data
 * of the loads reclaimed at `now`. A stuck reader: the next start's gc deletes it. */
static void delete_reclaimed(seq_store *st, const seq_store_view *old, uint32_t seq,
                             const seq_load_rec *l, uint32_t n, int64_t now)
{
    uint32_t any = 0;
    for (uint32_t i = 0; i < n; i++) any += l[i].reclaimed_ms == now;
    if (!any) return;
    const struct seq_store_view *v = old;
    for (int i = 0; i < 10000 && atomic_load(&v->refs) > 1; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&v->refs) > 1) return;
    for (uint32_t i = 0; i < n; i++)
        if (l[i].reclaimed_ms == now) seq_store_delete_gen(st, seq, l[i].gen);
}

int seq_store_hist_commit(seq_store *st, uint32_t seq, seq_load_rec *loads, uint32_t n,
                          uint64_t max_gen, int64_t now, const seq_store_view *old,
                          int64_t loads_next, const char *crash_after, char *err,
                          size_t errlen)
{
    const seq_store_seqstate *cur = seq_store_view_seq(old, seq);
    int64_t start = cur->hist ? seq_hist_start(cur->hist) : st->born_ms;
    if (seq_hist_mark_replaced(loads, n, now) != SEQ_OK) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    seq_hist_reclaim(loads, n, now, st->keep_generations, st->history_ms);
    n = prune(loads, n, now, st->history_ms);
    seq_hist *h = seq_hist_new(loads, n, max_gen, start);
    seq_store_seqstate ns;
    int rc = SEQ_OK;
    if (!h) {
        seq_errf(err, errlen, "out of memory");
        rc = SEQ_EINTERNAL;
    }
    if (rc == SEQ_OK) rc = write_state(st, seq, h, loads_next, err, errlen);
    if (rc == SEQ_OK) seq_store_crash_point(crash_after); /* durable, not yet installed */
    if (rc == SEQ_OK && (rc = install_state(h, &ns)) == SEQ_OK) {
        h = NULL; /* ns owns it now */
        if ((rc = seq_store_view_install(st, seq, &ns)) != SEQ_OK)
            seq_errf(err, errlen, "out of memory"); /* the write stands: next start has it */
        free((void *)ns.cov);
        seq_hist_free((seq_hist *)ns.hist); /* the view holds its own reference */
    }
    seq_hist_free(h);
    if (rc == SEQ_OK) delete_reclaimed(st, old, seq, loads, n, now);
    return rc;
}

void seq_store_set_keep_generations(seq_store *st, uint32_t n) { st->keep_generations = n; }

int64_t seq_store_loads_next(seq_store *st)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_meta(k, "loads"), vl;
    char *val = NULL, err[128];
    int64_t next = 0;
    if (seq_store_get_raw(st, k, kl, &val, &vl, err, sizeof err) == SEQ_OK && val && vl == 8)
        next = (int64_t)seq_get_be64((const uint8_t *)val);
    rocksdb_free(val);
    return next;
}

int seq_store_set_loads_next(seq_store *st, int64_t next, char *err, size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX], v[8];
    size_t kl = seq_key_meta(k, "loads");
    seq_put_be64(v, (uint64_t)next);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)v, sizeof v);
    int rc = put_batch(st, wb, err, errlen);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

uint32_t seq_store_loads_filled(seq_store *st, int64_t *to, uint32_t max)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_meta(k, "filled"), vl = 0;
    char *val = NULL, err[128];
    uint32_t n = 0;
    memset(to, 0, sizeof *to * max);
    if (seq_store_get_raw(st, k, kl, &val, &vl, err, sizeof err) == SEQ_OK && val &&
        vl % 8 == 0)
        for (n = 0; n < max && n < vl / 8; n++)
            to[n] = (int64_t)seq_get_be64((const uint8_t *)val + 8 * n);
    rocksdb_free(val);
    return n;
}

int seq_store_set_loads_filled(seq_store *st, const int64_t *to, uint32_t n, char *err,
                               size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_meta(k, "filled");
    uint8_t *v = malloc(8 * (size_t)(n ? n : 1));
    if (!v) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    for (uint32_t p = 0; p < n; p++) seq_put_be64(v + 8 * p, (uint64_t)to[p]);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)v, 8 * (size_t)n);
    int rc = put_batch(st, wb, err, errlen);
    rocksdb_writebatch_destroy(wb);
    free(v);
    return rc;
}

int64_t seq_store_born_ms(const seq_store *st) { return st->born_ms; }

/* ---- the sweeper: time alone lets replaced loads go (--history-ms) ---- */

struct seq_store_sweeper {
    seq_store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t period_ms;
    int stop;
};

static void *sweeper_main(void *arg)
{
    struct seq_store_sweeper *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += w->period_ms / 1000;
        ts.tv_nsec += (w->period_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT || w->stop) continue;
        pthread_mutex_unlock(&w->mu);
        char err[256];
        if (seq_store_batch_sweep(w->st, seq_now_ms(), err, sizeof err) != SEQ_OK)
            fprintf(stderr, "seqd: reclaiming replaced batch data: %s\n", err);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int seq_store_start_sweeper(seq_store *st, int64_t period_ms)
{
    struct seq_store_sweeper *w = calloc(1, sizeof *w);
    if (!w) return SEQ_EINTERNAL;
    *w = (struct seq_store_sweeper){.st = st, .period_ms = period_ms > 0 ? period_ms : 60000};
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, sweeper_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return SEQ_EINTERNAL;
    }
    st->sweeper = w;
    return SEQ_OK;
}

void seq_store_stop_sweeper(seq_store *st)
{
    struct seq_store_sweeper *w = st->sweeper;
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    st->sweeper = NULL;
}
