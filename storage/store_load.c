/* Batch loads and rollbacks: verify (batch_verify.c) copies of the SST files staged in
 * the data dir, ingest those copies by moving them (a hard link, no second copy), then
 * commit the new generation through the load history (store_history.c: one synced write
 * of 'm' "gen" and 'm' "hist", one swap of the in-memory view). Ingested keys carry their
 * generation, so until the commit no reader looks at them: the switch-over is the view
 * swap, whatever the load's size, and a crash before the commit leaves only keys the
 * history does not know, which seq_store_batch_gc removes at the next start. A rollback
 * is the same commit with loads marked undone. Replaced loads keep their data as
 * --keep-generations and --history-ms say; the rest is deleted once no reader holds the
 * view that still showed it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "batch_file.h"
#include "store_int.h"

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER; /* one load at a time */

const char *seq_load_timing_rel(char buf[24], int64_t from, int64_t to)
{
    if (!to) return "-";
    snprintf(buf, 24, "+%" PRId64, to - from);
    return buf;
}

void seq_load_timing_format(const seq_load_timing *t, int64_t from, char *out, size_t len)
{
    char a[24], b[24], c[24], d[24], e[24];
    snprintf(out, len, "started %s, staged %" PRId64 " ms, verified %s, counted %s, ingested %s, "
             "switched %s ms", seq_load_timing_rel(a, from, t->started), t->stage_ms,
             seq_load_timing_rel(b, from, t->verified), seq_load_timing_rel(c, from, t->counted),
             seq_load_timing_rel(d, from, t->ingested), seq_load_timing_rel(e, from, t->committed));
}

/* Crash hook for tests: SEQD_CRASH_AT=load-after-verify|load-after-ingest|load-after-commit|
 * rollback-before-commit|rollback-after-commit makes the process SIGKILL itself at that
 * point of a load or rollback (a real kill: no cleanup, no
 * flush), so that crash tests hit exact moments instead of racing a timer. Read once. */
static const char *crash_at;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;

static void crash_init(void) { crash_at = getenv("SEQD_CRASH_AT"); }

void seq_store_crash_point(const char *where)
{
    pthread_once(&crash_once, crash_init);
    if (crash_at && strcmp(crash_at, where) == 0) raise(SIGKILL);
}

/* Ingested files hold one generation each, so dropping the files inside its key range
 * reclaims nearly all of it at once, without a compaction reading hundreds of MB while
 * readers run; the range tombstone and compaction then clear what is left (keys a
 * compaction merged with others). No reader needs the data: it is outside every view. */
void seq_store_delete_gen(seq_store *st, uint32_t seq, uint64_t gen)
{
    uint8_t a[SEQ_KEY_MAX], b[SEQ_KEY_MAX];
    size_t al = seq_batch_marker_key(a, seq, gen); /* 'b' seq gen: all of the generation */
    size_t bl = seq_batch_marker_key(b, seq, gen + 1);
    char *e = NULL;
    uint8_t last[SEQ_KEY_MAX]; /* the largest key of the generation (the range is inclusive) */
    memcpy(last, a, al);
    memset(last + al, 0xff, SEQ_KEY_BATCH_LEN - al);
    rocksdb_delete_file_in_range(st->db, (const char *)a, al, (const char *)last,
                                 SEQ_KEY_BATCH_LEN, &e);
    if (e) { /* the tombstone below still reclaims it */
        free(e);
        e = NULL;
    }
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range(wb, (const char *)a, al, (const char *)b, bl);
    rocksdb_write(st->db, st->wsync, wb, &e);
    rocksdb_writebatch_destroy(wb);
    if (e) free(e); /* left for the next start's gc */
    else rocksdb_compact_range(st->db, (const char *)a, al, (const char *)b, bl);
}

/* The record of the load in effect with generation gen, or NULL. */
static const seq_load_rec *in_effect(const seq_store_seqstate *cur, uint64_t gen)
{
    uint32_t n;
    const seq_load_rec *l = seq_hist_loads(cur->hist, &n);
    for (uint32_t i = 0; i < n; i++)
        if (l[i].gen == gen && !l[i].undone_ms) return &l[i];
    return NULL;
}

/* PRODUCT.md "Details", generations: above every generation ever committed (undone ones
 * included) is applied; the committed one (the newest in effect) with the same range is
 * a no-op (-1, res = its counts); anything else FAILED_PRECONDITION. */
static int check_generation(const seq_store_seqstate *cur, const seq_load_req *req,
                            seq_load_result *res, char *err, size_t errlen)
{
    uint64_t max = seq_hist_max_gen(cur->hist);
    if (req->generation > max) return SEQ_OK;
    const seq_load_rec *l = cur->generation ? in_effect(cur, cur->generation) : NULL;
    if (l && req->generation == l->gen) {
        if (l->start_ms == req->start_ms && l->end_ms == req->end_ms) {
            *res = (seq_load_result){l->gen, (uint32_t)l->files, l->users, l->events, 0, 0};
            return -1; /* the same load again: a no-op */
        }
        seq_errf(err, errlen,
                 "generation %" PRIu64 " is already committed with range [%lld, %lld)",
                 req->generation, (long long)l->start_ms, (long long)l->end_ms);
    } else if (req->generation < cur->generation) {
        seq_errf(err, errlen, "generation %" PRIu64 " is older than the committed %" PRIu64,
                 req->generation, cur->generation);
    } else {
        seq_errf(err, errlen,
                 "generation %" PRIu64 " is not above %" PRIu64 ", the highest ever committed "
                 "for this sequence (rolled-back ones included)",
                 req->generation, max);
    }
    return SEQ_EPRECONDITION;
}

/* A fill (a node that acquired a partition, server/loads.h) adds a part's data to a load
 * of the history whose data is kept; anything else has nothing to fill. */
static int check_fill(const seq_store_seqstate *cur, const seq_load_req *req, char *err,
                      size_t errlen)
{
    uint32_t n;
    const seq_load_rec *l = seq_hist_loads(cur->hist, &n);
    for (uint32_t i = 0; i < n; i++)
        if (l[i].gen == req->generation && l[i].start_ms == req->start_ms &&
            l[i].end_ms == req->end_ms && seq_store_gen_kept(cur, req->generation))
            return SEQ_OK;
    seq_errf(err, errlen, "generation %" PRIu64 " is not a load whose data is kept",
             req->generation);
    return SEQ_EPRECONDITION;
}

/* The history's records with one more appended (malloc'd; NULL on OOM). */
static seq_load_rec *with_load(const seq_store_seqstate *cur, const seq_load_rec *add,
                               uint32_t *n)
{
    const seq_load_rec *l = seq_hist_loads(cur->hist, n);
    seq_load_rec *out = malloc(sizeof *out * (*n + 1));
    if (!out) return NULL;
    if (*n) memcpy(out, l, sizeof *out * *n);
    out[(*n)++] = *add;
    return out;
}

/* The staged copies are ours (batch_verify.c made them; the batch job keeps its own
 * files), so RocksDB moves them in instead of copying hundreds of MB a second time while
 * readers run; where a move is not possible it copies, and the copies left are removed.
 *
 * One file per ingestion: the parts of a partitioned batch overlap in key order (users
 * of every partition interleave), and files ingested together that overlap all go to L0,
 * where a compaction then rewrites the whole batch (decompress, merge, compress, write)
 * right after the switch-over: 1.5-2x the CPU of the load itself, on every node
 * (bench/NOTES.md, "Session 7 — cluster load"). Ingested one at a time, each goes to the
 * lowest level where it overlaps nothing: the first to the bottom, the next one level
 * up, and so on; only past the number of levels do files land in L0. A read of a user
 * then probes one prefix bloom per level holding a part (the same as the L0 files before
 * their compaction, now for good). Readers see none of it before the commit either way
 * (the keys carry the generation), and a crash between two ingestions leaves keys the
 * history does not know, removed at the next start (seq_store_batch_gc). */
static int ingest(seq_store *st, char **paths, size_t n, char *err, size_t errlen)
{
    char *e = NULL;
    rocksdb_ingestexternalfileoptions_t *o = rocksdb_ingestexternalfileoptions_create();
    rocksdb_ingestexternalfileoptions_set_move_files(o, 1);
    rocksdb_ingestexternalfileoptions_set_snapshot_consistency(o, 1);
    rocksdb_ingestexternalfileoptions_set_allow_global_seqno(o, 1);
    rocksdb_ingestexternalfileoptions_set_allow_blocking_flush(o, 1);
    for (size_t i = 0; i < n && !e; i++)
        rocksdb_ingest_external_file(st->db, (const char *const *)paths + i, 1, o, &e);
    rocksdb_ingestexternalfileoptions_destroy(o);
    for (size_t i = 0; i < n; i++) unlink(paths[i]); /* gone already when moved */
    if (e) {
        seq_errf(err, errlen, "ingest: %s", e);
        free(e);
        return SEQ_EINTERNAL;
    }
    seq_store_bump_epoch(st);
    return SEQ_OK;
}

/* A load prepares the record cache when it holds at least 1/PREPARE_SHARE as many entries
 * as the load has users (bench/NOTES.md, "Session 12"). */
#define PREPARE_SHARE 8

static int load_locked(seq_store *st, const char *batch_root, const seq_load_req *req,
                       seq_load_result *res, char *err, size_t errlen)
{
    const seq_sequence *s = seq_def_find(st->def, req->sequence, strlen(req->sequence));
    if (!s) {
        seq_errf(err, errlen, "unknown sequence '%s'", req->sequence);
        return SEQ_ENOTFOUND;
    }
    const seq_store_view *old = seq_store_view_acquire(st);
    const seq_store_seqstate *cur = seq_store_view_seq(old, s->id);
    char **paths = NULL;
    seq_load_rec *loads = NULL;
    size_t prepared = 0;
    int rc = req->fill ? check_fill(cur, req, err, errlen)
                       : check_generation(cur, req, res, err, errlen);
    if (rc == -1) { /* the committed load again: a no-op, but its paths still answer */
        rc = seq_batch_check_paths(batch_root, req, err, errlen);
        goto out;
    }
    if (rc != SEQ_OK) goto out;
    if (mkdir(st->stage_dir, 0755) != 0 && errno != EEXIST) {
        seq_errf(err, errlen, "%s: %s", st->stage_dir, strerror(errno));
        rc = SEQ_EINTERNAL;
        goto out;
    }
    /* a dry run ingests nothing: its checks read the files in place, no copy is written */
    rc = seq_batch_verify(st->def, batch_root, req->dry_run ? NULL : st->stage_dir, req, &paths,
                          res, err, errlen);
    if (rc == SEQ_OK && req->timing) req->timing->verified = seq_now_ms();
    if (rc == SEQ_OK && !req->fill) seq_store_crash_point("load-after-verify");
    /* a fill adds data to a committed load: nothing changes for readers */
    if (rc == SEQ_OK && !req->fill && !req->no_impact)
        rc = seq_store_load_impact(st, s, cur, req, paths, seq_now_ms(), res, err, errlen);
    if (rc == SEQ_OK && req->timing) req->timing->counted = seq_now_ms();
    /* verified and counted: change nothing (its paths are the batch's own files) */
    if (req->dry_run) goto out;
    if (rc == SEQ_OK && res->files) rc = ingest(st, paths, res->files, err, errlen);
    else if (paths)
        for (size_t i = 0; i < req->n_paths && paths[i]; i++) unlink(paths[i]); /* staged */
    if (rc != SEQ_OK) goto out;
    if (req->timing) req->timing->ingested = seq_now_ms();
    if (req->fill) { /* data added to a committed generation: nothing to commit, but the
                        coverage did not change, so cached entries must go (rcache.h) */
        seq_rcache_clear(st->rcache);
        goto out;
    }
    seq_store_crash_point("load-after-ingest");
    /* the readers' cached entries get the generation now, so that the switch does not
     * send each of them to RocksDB (store_int.h); undone below if it is not switched in.
     * The pass reads the whole generation (~10 µs a user, a refresh's seek ~50-85), so it
     * pays only when the cache holds a fair share of the users the load brings. */
    seq_rcache_stats cs;
    seq_rcache_get_stats(st->rcache, &cs);
    if (cs.entries && cs.entries * PREPARE_SHARE >= res->users)
        prepared = seq_store_prepare_entries(st, s->id, req->generation);
    seq_load_rec add = {req->generation, req->start_ms, req->end_ms, res->files, res->users,
                        res->events, seq_now_ms(), 0, 0, 0};
    uint32_t n;
    if (!(loads = with_load(cur, &add, &n))) {
        seq_errf(err, errlen, "out of memory");
        rc = SEQ_EINTERNAL;
        goto out;
    }
    rc = seq_store_hist_commit(st, s->id, loads, n, req->generation, add.committed_ms, old,
                               req->loads_next, "load-after-commit", err, errlen);
    if (rc == SEQ_OK && req->timing) req->timing->committed = seq_now_ms();
out:
    if (rc != SEQ_OK && prepared) seq_rcache_clear(st->rcache); /* a retry may differ */
    if (paths)
        for (size_t i = 0; i < req->n_paths; i++) free(paths[i]);
    free(paths);
    free(loads);
    seq_store_view_release(st, old);
    return rc;
}

/* A load is seconds of CPU (checksums, hashing, copying the files) that nobody waits on
 * at the millisecond scale, while readers are: on a 2-core machine it ran at the readers'
 * priority and their p99 grew 40x (bench/NOTES.md). So the loading thread runs at a
 * low priority (nice 10, per thread on Linux: about a tenth of a core against two busy
 * workers; at nice 19 a load under sustained reads took minutes) and gets back its own
 * nice afterwards;
 * raising it back needs CAP_SYS_NICE or RLIMIT_NICE, so without those the thread stays
 * low, which is why callers run loads on a thread of their own (server/service.c). */
static int lower_priority(void)
{
    pid_t tid = gettid();
    errno = 0;
    int old = getpriority(PRIO_PROCESS, (id_t)tid);
    if (old == -1 && errno) return 0;
    (void)setpriority(PRIO_PROCESS, (id_t)tid, 10); /* on failure the load just runs as is */
    return old;
}

static void restore_priority(int old)
{
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), old); /* best effort: see above */
}

int seq_store_load_batch(seq_store *st, const char *batch_root, const seq_load_req *req,
                         seq_load_result *res, char *err, size_t errlen)
{
    pthread_mutex_lock(&load_mu);
    int old_nice = lower_priority();
    if (req->timing) req->timing->started = seq_now_ms();
    int rc = load_locked(st, batch_root, req, res, err, errlen);
    restore_priority(old_nice);
    pthread_mutex_unlock(&load_mu);
    return rc;
}

static int rollback_locked(seq_store *st, const char *sequence, uint64_t to, int dry,
                           int64_t loads_next, uint64_t *gen, uint64_t *from, char *err,
                           size_t errlen)
{
    const seq_sequence *s = seq_def_find(st->def, sequence, strlen(sequence));
    if (!s) {
        seq_errf(err, errlen, "unknown sequence '%s'", sequence);
        return SEQ_ENOTFOUND;
    }
    const seq_store_view *old = seq_store_view_acquire(st);
    const seq_store_seqstate *cur = seq_store_view_seq(old, s->id);
    uint32_t n;
    const seq_load_rec *l = seq_hist_loads(cur->hist, &n);
    seq_load_rec *loads = malloc(sizeof *loads * (n ? n : 1));
    int64_t now = seq_now_ms();
    char why[256];
    int rc = SEQ_EINTERNAL;
    if (!loads) {
        seq_errf(err, errlen, "out of memory");
        goto out;
    }
    if (n) memcpy(loads, l, sizeof *loads * n);
    if (from) *from = cur->generation;
    rc = seq_hist_rollback(loads, n, to, now, gen, why, sizeof why);
    if (rc == 1) { /* already the newest load in effect */
        rc = dry ? 1 : SEQ_OK;
        goto out;
    }
    if (rc != SEQ_OK) {
        seq_errf(err, errlen, "rollback of '%s': %s", sequence, why);
        goto out;
    }
    if (dry) goto out;
    seq_store_crash_point("rollback-before-commit");
    rc = seq_store_hist_commit(st, s->id, loads, n, seq_hist_max_gen(cur->hist), now, old,
                               loads_next, "rollback-after-commit", err, errlen);
out:
    free(loads);
    seq_store_view_release(st, old);
    return rc;
}

int seq_store_rollback_batch(seq_store *st, const char *sequence, uint64_t to, uint64_t *gen,
                             char *err, size_t errlen)
{
    pthread_mutex_lock(&load_mu);
    int rc = rollback_locked(st, sequence, to, 0, 0, gen, NULL, err, errlen);
    pthread_mutex_unlock(&load_mu);
    return rc;
}

int seq_store_rollback_ex(seq_store *st, const char *sequence, uint64_t to, int dry,
                          int64_t loads_next, uint64_t *gen, uint64_t *from, char *err,
                          size_t errlen)
{
    pthread_mutex_lock(&load_mu);
    int rc = rollback_locked(st, sequence, to, dry, loads_next, gen, from, err, errlen);
    pthread_mutex_unlock(&load_mu);
    return rc;
}

int seq_store_batch_sweep(seq_store *st, int64_t now, char *err, size_t errlen)
{
    int rc = SEQ_OK;
    pthread_mutex_lock(&load_mu);
    for (uint32_t i = 0; i < st->def->n_seqs && rc == SEQ_OK; i++) {
        uint32_t seq = st->def->seqs[i].id, n;
        const seq_store_view *old = seq_store_view_acquire(st);
        const seq_store_seqstate *cur = seq_store_view_seq(old, seq);
        const seq_load_rec *l = seq_hist_loads(cur->hist, &n);
        seq_load_rec *loads = n ? malloc(sizeof *loads * n) : NULL;
        if (n && !loads) {
            seq_errf(err, errlen, "out of memory");
            rc = SEQ_EINTERNAL;
        } else if (n) {
            memcpy(loads, l, sizeof *loads * n);
            if (seq_hist_reclaim(loads, n, now, st->keep_generations, st->history_ms) > 0)
                rc = seq_store_hist_commit(st, seq, loads, n, seq_hist_max_gen(cur->hist), now,
                                           old, 0, "sweep-after-commit", err, errlen);
        }
        free(loads);
        seq_store_view_release(st, old);
    }
    pthread_mutex_unlock(&load_mu);
    if (rc == SEQ_OK) rc = seq_store_newest_trim(st, now, err, errlen);
    return rc;
}

/* Removes the staged copies a load killed before ingestion left behind. */
static void clear_stage(seq_store *st)
{
    DIR *d = opendir(st->stage_dir);
    struct dirent *de;
    if (!d) return; /* none yet */
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

/* Deletes every batch generation the load history does not keep: what a crash between
 * ingestion and commit, or before the reclaimed loads' data was deleted, left behind;
 * and staged copies. */
int seq_store_batch_gc(seq_store *st, char *err, size_t errlen)
{
    clear_stage(st);
    const seq_store_view *v = seq_store_view_acquire(st);
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    uint8_t k[SEQ_KEY_MAX];
    for (uint32_t seq = 0; seq < st->def->n_seqs; seq++) {
        const seq_store_seqstate *s = seq_store_view_seq(v, seq);
        uint64_t gen = 0;
        for (;;) {
            size_t kl = seq_batch_marker_key(k, seq, gen);
            rocksdb_iter_seek(it, (const char *)k, kl);
            if (!rocksdb_iter_valid(it)) break;
            size_t fl;
            const char *found = rocksdb_iter_key(it, &fl);
            if (fl < SEQ_BATCH_MARKER_LEN || found[0] != 'b' ||
                seq_get_be32((const uint8_t *)found + 1) != seq)
                break;
            uint64_t fg = seq_get_be64((const uint8_t *)found + 5);
            if (!seq_store_gen_kept(s, fg)) seq_store_delete_gen(st, seq, fg);
            if (fg == UINT64_MAX) break;
            gen = fg + 1;
        }
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    seq_store_view_release(st, v);
    if (e) {
        seq_errf(err, errlen, "batch gc: %s", e);
        free(e);
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}
