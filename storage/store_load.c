/* Batch loads: verify (batch_verify.c) copies of the SST files staged in the data dir,
 * ingest those copies by moving them (a hard link, no second copy), then commit the new
 * generation with one synced write of its 'm' "gen" and 'm' "load" keys and one swap of
 * the in-memory view. Ingested keys carry their generation, so until the commit no reader
 * looks at them: the switch-over is the view swap, whatever the load's size, and a crash
 * before the commit leaves only unreferenced keys, which seq_store_batch_gc removes at
 * the next start. Generations that lose all coverage are deleted once no reader holds
 * the view that still showed them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
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

/* Crash hook for tests: SEQD_CRASH_AT=load-after-verify|load-after-ingest|load-after-commit
 * makes the process SIGKILL itself at that point of a load (a real kill: no cleanup, no
 * flush), so that crash tests hit exact moments instead of racing a timer. Read once. */
static const char *crash_at;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;

static void crash_init(void) { crash_at = getenv("SEQD_CRASH_AT"); }

static void crash_point(const char *where)
{
    pthread_once(&crash_once, crash_init);
    if (crash_at && strcmp(crash_at, where) == 0) raise(SIGKILL);
}

/* 'm' "load" be32 seq -> the committed load: be64 gen, start, end, files, users, events. */
typedef struct {
    uint64_t gen;
    int64_t start_ms, end_ms;
    uint64_t files, users, events;
} last_load;

static size_t load_key(uint8_t *k, uint32_t seq)
{
    size_t n = seq_key_meta(k, "load");
    seq_put_be32(k + n, seq);
    return n + 4;
}

static int read_last_load(seq_store *st, uint32_t seq, last_load *l, char *err, size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX];
    char *v = NULL;
    size_t vlen = 0;
    memset(l, 0, sizeof *l);
    int rc = seq_store_get_raw(st, k, load_key(k, seq), &v, &vlen, err, errlen);
    if (rc != SEQ_OK || !v) return rc;
    if (vlen == 48) {
        const uint8_t *p = (const uint8_t *)v;
        l->gen = seq_get_be64(p);
        l->start_ms = (int64_t)seq_get_be64(p + 8);
        l->end_ms = (int64_t)seq_get_be64(p + 16);
        l->files = seq_get_be64(p + 24);
        l->users = seq_get_be64(p + 32);
        l->events = seq_get_be64(p + 40);
    }
    rocksdb_free(v);
    return SEQ_OK;
}

/* New coverage: the old segments with [start, end) cut out, plus the new segment. */
static seq_cov_seg *cover(const seq_store_seqstate *old, int64_t start, int64_t end,
                          uint64_t gen, uint32_t *n_out)
{
    seq_cov_seg *c = malloc(sizeof *c * (old->n_cov * 2 + 1));
    uint32_t n = 0;
    if (!c) return NULL;
    for (uint32_t i = 0; i < old->n_cov; i++) {
        seq_cov_seg s = old->cov[i];
        if (s.start_ms < start) c[n++] = (seq_cov_seg){s.start_ms, s.end_ms < start ? s.end_ms : start, s.gen};
        if (s.end_ms > end) c[n++] = (seq_cov_seg){s.start_ms > end ? s.start_ms : end, s.end_ms, s.gen};
    }
    c[n++] = (seq_cov_seg){start, end, gen};
    for (uint32_t i = 1; i < n; i++) /* insertion sort: a handful of segments */
        for (uint32_t j = i; j > 0 && c[j - 1].start_ms > c[j].start_ms; j--) {
            seq_cov_seg t = c[j];
            c[j] = c[j - 1];
            c[j - 1] = t;
        }
    *n_out = n;
    return c;
}

static int gen_live(const seq_store_seqstate *s, uint64_t gen)
{
    for (uint32_t i = 0; i < s->n_cov; i++)
        if (s->cov[i].gen == gen) return 1;
    return 0;
}

static int commit(seq_store *st, uint32_t seq, const seq_store_seqstate *ns, const last_load *l,
                  char *err, size_t errlen)
{
    uint8_t k[SEQ_KEY_MAX], lv[48];
    seq_buf gv = {0};
    char *e = NULL;
    if (seq_genval_encode(&gv, ns->generation, ns->watermark_ms, ns->cov, ns->n_cov) != 0)
        return SEQ_EINTERNAL;
    seq_put_be64(lv, l->gen);
    seq_put_be64(lv + 8, (uint64_t)l->start_ms);
    seq_put_be64(lv + 16, (uint64_t)l->end_ms);
    seq_put_be64(lv + 24, l->files);
    seq_put_be64(lv + 32, l->users);
    seq_put_be64(lv + 40, l->events);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    size_t kl = seq_key_gen(k, seq);
    rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)gv.data, gv.len);
    kl = load_key(k, seq);
    rocksdb_writebatch_put(wb, (const char *)k, kl, (const char *)lv, sizeof lv);
    rocksdb_write(st->db, st->wsync, wb, &e);
    rocksdb_writebatch_destroy(wb);
    seq_buf_free(&gv);
    if (e) {
        seq_errf(err, errlen, "commit: %s", e);
        free(e);
        return SEQ_EINTERNAL;
    }
    return seq_store_view_install(st, seq, ns);
}

/* Ingested files hold one generation each, so dropping the files inside its key range
 * reclaims nearly all of it at once, without a compaction reading hundreds of MB while
 * readers run; the range tombstone and compaction then clear what is left (keys a
 * compaction merged with others). No reader needs the data: it is outside every view. */
static void delete_gen(seq_store *st, uint32_t seq, uint64_t gen)
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

/* Waits (bounded) until only our reference holds the old view, then deletes the
 * generations it showed that the new state no longer does. */
static void reclaim(seq_store *st, const seq_store_view *old, uint32_t seq,
                    const seq_store_seqstate *ns)
{
    const struct seq_store_view *v = old;
    for (int i = 0; i < 10000 && atomic_load(&v->refs) > 1; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&v->refs) > 1) return; /* a stuck reader: the next start's gc reclaims */
    const seq_store_seqstate *os = seq_store_view_seq(old, seq);
    for (uint32_t i = 0; i < os->n_cov; i++) {
        uint64_t g = os->cov[i].gen;
        int seen = 0;
        for (uint32_t j = 0; j < i; j++) seen |= os->cov[j].gen == g;
        if (!seen && !gen_live(ns, g)) delete_gen(st, seq, g);
    }
}

static int check_generation(const seq_store_seqstate *cur, const last_load *l,
                            const seq_load_req *req, seq_load_result *res, char *err,
                            size_t errlen)
{
    if (req->generation < cur->generation) {
        seq_errf(err, errlen, "generation %" PRIu64 " is older than the committed %" PRIu64,
                 req->generation, cur->generation);
        return SEQ_EPRECONDITION;
    }
    if (req->generation > cur->generation) return SEQ_OK;
    if (l->gen == req->generation && l->start_ms == req->start_ms && l->end_ms == req->end_ms) {
        *res = (seq_load_result){l->gen, (uint32_t)l->files, l->users, l->events};
        return -1; /* the same load again: a no-op */
    }
    seq_errf(err, errlen,
             "generation %" PRIu64 " is already committed with range [%lld, %lld)",
             req->generation, (long long)l->start_ms, (long long)l->end_ms);
    return SEQ_EPRECONDITION;
}

/* The staged copies are ours (batch_verify.c made them; the batch job keeps its own
 * files), so RocksDB moves them in instead of copying hundreds of MB a second time while
 * readers run; where a move is not possible it copies, and the copies left are removed. */
static int ingest(seq_store *st, char **paths, size_t n, char *err, size_t errlen)
{
    char *e = NULL;
    rocksdb_ingestexternalfileoptions_t *o = rocksdb_ingestexternalfileoptions_create();
    rocksdb_ingestexternalfileoptions_set_move_files(o, 1);
    rocksdb_ingestexternalfileoptions_set_snapshot_consistency(o, 1);
    rocksdb_ingestexternalfileoptions_set_allow_global_seqno(o, 1);
    rocksdb_ingestexternalfileoptions_set_allow_blocking_flush(o, 1);
    rocksdb_ingest_external_file(st->db, (const char *const *)paths, n, o, &e);
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
    last_load l;
    char **paths = NULL;
    seq_cov_seg *cov = NULL;
    int rc = read_last_load(st, s->id, &l, err, errlen);
    if (rc == SEQ_OK) rc = check_generation(cur, &l, req, res, err, errlen);
    if (rc == -1) rc = SEQ_OK, req = NULL; /* no-op */
    if (rc != SEQ_OK || !req) goto out;
    if (mkdir(st->stage_dir, 0755) != 0 && errno != EEXIST) {
        seq_errf(err, errlen, "%s: %s", st->stage_dir, strerror(errno));
        rc = SEQ_EINTERNAL;
        goto out;
    }
    rc = seq_batch_verify(st->def, batch_root, st->stage_dir, req, &paths, res, err, errlen);
    if (rc == SEQ_OK) crash_point("load-after-verify");
    if (rc == SEQ_OK) rc = ingest(st, paths, req->n_paths, err, errlen);
    if (rc != SEQ_OK) goto out;
    crash_point("load-after-ingest");
    seq_store_seqstate ns = {.generation = req->generation,
                             .watermark_ms = cur->watermark_ms > req->end_ms ? cur->watermark_ms
                                                                             : req->end_ms};
    if (!(cov = cover(cur, req->start_ms, req->end_ms, req->generation, &ns.n_cov))) {
        rc = SEQ_EINTERNAL;
        goto out;
    }
    ns.cov = cov;
    l = (last_load){req->generation, req->start_ms, req->end_ms, res->files, res->users,
                    res->events};
    rc = commit(st, s->id, &ns, &l, err, errlen);
    if (rc == SEQ_OK) crash_point("load-after-commit"); /* before reclaim: gc's to do */
    if (rc == SEQ_OK) reclaim(st, old, s->id, &ns);
out:
    if (paths)
        for (size_t i = 0; req && i < req->n_paths; i++) free(paths[i]);
    free(paths);
    free(cov);
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
    int rc = load_locked(st, batch_root, req, res, err, errlen);
    restore_priority(old_nice);
    pthread_mutex_unlock(&load_mu);
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

/* Deletes every batch generation that no committed coverage references: what a crash
 * between ingestion and commit, or before reclaim, left behind; and staged copies. */
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
            if (!gen_live(s, fg)) delete_gen(st, seq, fg);
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
