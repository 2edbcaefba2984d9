/* Load verification (see seq_batch_verify in batch.h): the gate between files on disk
 * and ingestion. Nothing here writes but the staged copies (stage_dir), removed again
 * when a check fails; a load that fails here changes nothing. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/blob.h"
#include "../engine/partition.h"
#include "batch.h"
#include "batch_file.h"
#include "batch_parts.h"
#include "sst_reader.h"

static int under_root(const char *root, const char *path)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return 1;
    return strncmp(path, root, n) == 0 && path[n] == '/';
}

/* Resolves one requested path; SEQ_OK with out filled, or an error naming the path. */
static int resolve(const char *root, const char *path, char out[PATH_MAX], char *err,
                   size_t errlen)
{
    char joined[PATH_MAX * 2];
    if (path[0] == '/') snprintf(joined, sizeof joined, "%s", path);
    else snprintf(joined, sizeof joined, "%s/%s", root, path);
    if (realpath(joined, out)) {
        if (!under_root(root, out)) goto denied;
        return SEQ_OK;
    }
    if (errno != ENOENT && errno != ENOTDIR) goto denied;
    /* Missing (the file, or directories on its way): NOT_FOUND only if the nearest
     * existing ancestor is inside the root and no ".." follows it, so that probing
     * outside the root learns nothing. */
    char dir[PATH_MAX * 2], rdir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", joined);
    for (char *slash; (slash = strrchr(dir, '/'));) {
        if (strcmp(slash + 1, "..") == 0) break;
        *slash = '\0';
        if (realpath(dir[0] ? dir : "/", rdir)) {
            if (!under_root(root, rdir) && strcmp(root, rdir) != 0) break;
            seq_errf(err, errlen, "%s: no such file", path);
            return SEQ_ENOTFOUND;
        }
        if (errno != ENOENT && errno != ENOTDIR) break;
    }
denied:
    seq_errf(err, errlen, "%s: outside the batch root", path);
    return SEQ_EPERM;
}

typedef struct {
    const char *name;
    const seq_sequence *seq; /* the server's */
    const seq_def *def;
    const seq_load_req *req;
    uint32_t partitions, partition; /* a part's: every user must be of its partition */
    uint64_t users, events, last_user;
    int have_user;
    char *err;
    size_t errlen;
} scan_ctx;

static int bad(scan_ctx *c, const char *what)
{
    seq_errf(c->err, c->errlen, "%s: %s", c->name, what);
    return SEQ_EINVAL;
}

static int check_blob(scan_ctx *c, int64_t bucket, const char *val, size_t vlen)
{
    seq_blob_iter it;
    seq_rec r, prev;
    int got, n = 0;
    int64_t lo = bucket * c->def->bucket_ms, hi = lo + c->def->bucket_ms;
    if (seq_blob_iter_init(&it, val, vlen) != SEQ_OK) return bad(c, "corrupt bucket blob");
    while ((got = seq_blob_iter_next(&it, &r)) == 1) {
        if (r.time_ms < lo || r.time_ms >= hi) return bad(c, "event time outside its bucket");
        if (r.type_idx >= c->seq->n_types) return bad(c, "event type index out of range");
        if (r.n_cols > c->seq->n_columns) return bad(c, "more columns than the sequence has");
        if (r.id_len == 0) return bad(c, "event without an id");
        if (n && seq_rec_cmp(&prev, &r) >= 0) return bad(c, "bucket blob out of order");
        prev = r;
        n++;
    }
    if (got < 0 || n == 0) return bad(c, "corrupt bucket blob");
    c->events += (uint64_t)n;
    return SEQ_OK;
}

static int on_entry(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    scan_ctx *c = ctx;
    seq_key k;
    uint8_t marker[SEQ_KEY_MAX];
    size_t ml = seq_batch_marker_key(marker, c->seq->id, c->req->generation);
    if (klen == ml && memcmp(key, marker, ml) == 0) return SEQ_OK;
    if (seq_key_parse(key, klen, &k) != 0 || k.kind != SEQ_K_BATCH)
        return bad(c, "key is not a seqd batch key (foreign file)");
    if (k.seq != c->seq->id) return bad(c, "key of another sequence");
    if (k.gen != c->req->generation) return bad(c, "key of another generation");
    uint64_t user = k.user;
    int64_t bucket = k.bucket;
    if (bucket < c->req->start_ms / c->def->bucket_ms ||
        bucket >= c->req->end_ms / c->def->bucket_ms)
        return bad(c, "key outside the requested range");
    if (c->partitions && (!c->have_user || user != c->last_user) &&
        seq_partition_of_user(user, c->partitions) != c->partition)
        return bad(c, "a user of another partition (not the part its manifest says)");
    if (!c->have_user || user != c->last_user) c->users++;
    c->have_user = 1;
    c->last_user = user;
    return check_blob(c, bucket, val, vlen);
}

static int check_request(const seq_def *def, const seq_load_req *req, const seq_sequence **s,
                         char *err, size_t errlen)
{
    *s = seq_def_find(def, req->sequence, strlen(req->sequence));
    if (!*s) {
        seq_errf(err, errlen, "unknown sequence '%s'", req->sequence);
        return SEQ_ENOTFOUND;
    }
    if (req->start_ms >= req->end_ms || req->start_ms % def->bucket_ms ||
        req->end_ms % def->bucket_ms) {
        seq_errf(err, errlen, "range [%lld, %lld) must be non-empty and aligned to bucket_ms",
                 (long long)req->start_ms, (long long)req->end_ms);
        return SEQ_EINVAL;
    }
    if (req->generation == 0) {
        seq_errf(err, errlen, "generation must be > 0");
        return SEQ_EINVAL;
    }
    if (req->n_paths == 0) {
        seq_errf(err, errlen, "sst_paths is empty");
        return SEQ_EINVAL;
    }
    return SEQ_OK;
}

static int read_manifest(const char *dir, seq_batch_manifest *m, char *err, size_t errlen)
{
    char merr[300];
    if (seq_batch_manifest_read(dir, m, merr, sizeof merr) == SEQ_OK) return SEQ_OK;
    seq_errf(err, errlen, "%s", merr);
    return SEQ_EINVAL;
}

/* The manifest of dir (read) against the request and the server's definition. */
static int check_manifest(const seq_def *def, const seq_load_req *req, const char *dir,
                          seq_batch_manifest *m, char *err, size_t errlen)
{
    char merr[300];
    if (strcmp(m->sequence, req->sequence) != 0 || m->start_ms != req->start_ms ||
        m->end_ms != req->end_ms || m->generation != req->generation) {
        seq_errf(err, errlen,
                 "%s/" SEQ_BATCH_MANIFEST ": built for sequence '%s' [%lld, %lld) generation "
                 "%llu, not what the request says",
                 dir, m->sequence, (long long)m->start_ms, (long long)m->end_ms,
                 (unsigned long long)m->generation);
        return SEQ_EINVAL;
    }
    if (seq_def_check_seq_compat(m->def, def, req->sequence, merr, sizeof merr) != SEQ_OK) {
        seq_errf(err, errlen, "%s/" SEQ_BATCH_MANIFEST ": built from an incompatible definition: %s",
                 dir, merr);
        return SEQ_EPRECONDITION;
    }
    return SEQ_OK;
}

/* The manifest entry of one file, checked against the bytes of its staged copy (made in
 * the same read as the hash). */
static int check_file(seq_batch_manifest *m, const char *path, const char *staged,
                      int in_place, int64_t *stage_ms, seq_batch_file_info *fi, char *err,
                      size_t errlen)
{
    const char *base = strrchr(path, '/') + 1;
    size_t i;
    json_t *o;
    json_array_foreach(m->files, i, o) {
        if (seq_batch_file_from_json(o, fi, err, errlen) != SEQ_OK) return SEQ_EINVAL;
        if (strcmp(fi->name, base) != 0) continue;
        uint64_t size, hash;
        int64_t t0 = stage_ms ? seq_now_ms() : 0;
        int rc = in_place
                     ? seq_batch_file_hash(path, fi->hash_alg, &size, &hash, err, errlen)
                     : seq_batch_file_stage(path, staged, fi->hash_alg, &size, &hash, err,
                                            errlen);
        if (stage_ms) *stage_ms += seq_now_ms() - t0;
        if (rc != SEQ_OK) return rc;
        if (size != fi->size || hash != fi->hash) {
            seq_errf(err, errlen, "%s: contents differ from its manifest (corrupt or foreign file)",
                     path);
            return SEQ_EINVAL;
        }
        return SEQ_OK;
    }
    seq_errf(err, errlen, "%s: not listed in its manifest (foreign file)", path);
    return SEQ_EINVAL;
}

/* seq_sst_scan's message names the file it read, the staged copy: the caller knows the
 * file by the name it asked for. */
static void scan_error(char *err, size_t errlen, const char *path, const char *scanned,
                       const char *serr)
{
    size_t n = strlen(scanned);
    if (strncmp(serr, scanned, n) == 0) seq_errf(err, errlen, "%s%s", path, serr + n);
    else seq_errf(err, errlen, "%s", serr);
}

/* A file verified whole elsewhere (seq_load_req.verified): its first and last keys are
 * keys of this sequence and generation (the marker, or batch keys under it), so every
 * key between them is too. 0, -1 with serr (not a readable SST), or SEQ_EINVAL. */
static int within_generation(scan_ctx *c, const char *path, char *serr, size_t serrlen)
{
    char first[SEQ_KEY_MAX], last[SEQ_KEY_MAX];
    size_t fl, ll;
    uint8_t marker[SEQ_KEY_MAX];
    size_t ml = seq_batch_marker_key(marker, c->seq->id, c->req->generation);
    if (seq_sst_bounds(path, first, sizeof first, &fl, last, &ll, serr, serrlen))
        return -1;
    if (fl < ml || ll < ml || fl > sizeof first || ll > sizeof last ||
        memcmp(first, marker, ml) != 0 || memcmp(last, marker, ml) != 0)
        return bad(c, "keys outside its sequence and generation");
    return 0;
}

/* The files of one directory, paths[idx[0..n)], against its manifest m (already checked
 * against the request): exactly its files, each with its size, hash and counts, every
 * entry well-formed (and, in a part, of its partition). Staged copies as it goes. */
static int check_dir(const seq_def *def, const seq_sequence *s, const seq_load_req *req,
                     const char *dir, seq_batch_manifest *m, char **paths, char **staged,
                     int in_place, const size_t *idx, size_t n, int64_t *stage_ms,
                     seq_load_result *res, char *err, size_t errlen)
{
    if (json_array_size(m->files) != n) {
        seq_errf(err, errlen, "%s/" SEQ_BATCH_MANIFEST ": lists %zu files, the request %zu", dir,
                 json_array_size(m->files), n);
        return SEQ_EINVAL;
    }
    int rc = SEQ_OK;
    uint64_t users = 0, events = 0;
    for (size_t k = 0; k < n && rc == SEQ_OK; k++) {
        size_t i = idx[k];
        seq_batch_file_info fi;
        rc = check_file(m, paths[i], staged[i], in_place, stage_ms, &fi, err, errlen);
        if (rc != SEQ_OK) break;
        if (req->sums_out) req->sums_out[2 * i] = fi.size, req->sums_out[2 * i + 1] = fi.hash;
        scan_ctx c = {.name = paths[i], .seq = s, .def = def, .req = req, .err = err,
                      .errlen = errlen, .partitions = m->partitions,
                      .partition = m->partition};
        char serr[400];
        int got;
        if (req->verified && req->verified[2 * i] == fi.size &&
            req->verified[2 * i + 1] == fi.hash) { /* these very bytes were checked whole */
            got = within_generation(&c, staged[i], serr, sizeof serr);
            c.users = fi.users, c.events = fi.events;
        } else {
            got = seq_sst_scan(staged[i], on_entry, &c, serr, sizeof serr);
        }
        if (got == -1) scan_error(err, errlen, paths[i], staged[i], serr);
        if (got) rc = SEQ_EINVAL;
        else if (c.users != fi.users || c.events != fi.events) rc = bad(&c, "counts differ from its manifest");
        users += c.users;
        events += c.events;
    }
    if (rc == SEQ_OK && (users != m->users || events != m->events)) {
        seq_errf(err, errlen, "%s/" SEQ_BATCH_MANIFEST ": totals differ from the files", dir);
        rc = SEQ_EINVAL;
    }
    res->users += users;
    res->events += events;
    return rc;
}

/* dirname of path into out (paths are resolved: absolute, with a '/'). */
static void dir_of(const char *path, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s", path);
    *strrchr(out, '/') = '\0';
}

/* ---- partitioned batches (batch_parts.h): the parts' files, several directories ---- */

/* A part's manifest against the batch's description: FAILED_PRECONDITION when it belongs
 * to another batch (P, sequence, range, generation, definition). */
static int part_agrees(const seq_batch_desc *d, const char *dir, const seq_batch_manifest *m,
                       char *err, size_t errlen)
{
    if (m->partitions == d->partitions && strcmp(m->sequence, d->sequence) == 0 &&
        m->start_ms == d->start_ms && m->end_ms == d->end_ms &&
        m->generation == d->generation && strcmp(m->fingerprint, d->fingerprint) == 0)
        return SEQ_OK;
    seq_errf(err, errlen,
             "%s/" SEQ_BATCH_MANIFEST ": parts disagree: this part is of sequence '%s' "
             "[%lld, %lld) generation %llu, %u partitions, definition %s; the batch's "
             SEQ_BATCH_DESC " says '%s' [%lld, %lld) generation %llu, %u partitions, "
             "definition %s",
             dir, m->sequence, (long long)m->start_ms, (long long)m->end_ms,
             (unsigned long long)m->generation, m->partitions, m->fingerprint, d->sequence,
             (long long)d->start_ms, (long long)d->end_ms, (unsigned long long)d->generation,
             d->partitions, d->fingerprint);
    return SEQ_EPRECONDITION;
}

/* Which part directories the paths name (sorted, distinct) and which directory each path
 * is in; all must be directories of batch_dir. */
static int part_dirs(const char *batch_dir, const seq_load_req *req, char **paths,
                     char ***dirs, size_t *n_dirs, size_t *dir_of_path, char *err,
                     size_t errlen)
{
    size_t n = 0, bl = strlen(batch_dir);
    char **d = calloc(req->n_paths, sizeof *d);
    if (!d) return SEQ_EINTERNAL;
    *dirs = d;
    for (size_t i = 0; i < req->n_paths; i++) {
        char dir[PATH_MAX];
        dir_of(paths[i], dir);
        if (strncmp(dir, batch_dir, bl) != 0 || dir[bl] != '/' || strchr(dir + bl + 1, '/')) {
            seq_errf(err, errlen, "%s: all parts of a load must be in one batch directory (%s)",
                     req->paths[i], batch_dir);
            *n_dirs = n;
            return SEQ_EINVAL;
        }
        size_t k = 0;
        while (k < n && strcmp(d[k], dir) != 0) k++;
        if (k == n && !(d[n++] = strdup(dir))) {
            *n_dirs = n - 1;
            return SEQ_EINTERNAL;
        }
        dir_of_path[i] = k;
    }
    *n_dirs = n;
    return SEQ_OK;
}

/* Every part once, all of one batch, before any file is read: FAILED_PRECONDITION when
 * a part is missing or twice, parts disagree, or P is not the topic's. */
static int parts_whole(const seq_def *def, const seq_load_req *req, const seq_batch_desc *d,
                       char **dirs, size_t n_dirs, char *err, size_t errlen)
{
    uint8_t *seen = calloc(d->partitions, 1);
    int rc = seen ? SEQ_OK : SEQ_EINTERNAL;
    if (rc == SEQ_OK && req->partitions && req->partitions != d->partitions) {
        seq_errf(err, errlen, "the batch has %u partitions, the topic %u: build it with "
                 "--partitions %u", d->partitions, req->partitions, req->partitions);
        rc = SEQ_EPRECONDITION;
    }
    for (size_t k = 0; k < n_dirs && rc == SEQ_OK; k++) {
        seq_batch_manifest m;
        rc = read_manifest(dirs[k], &m, err, errlen);
        if (rc == SEQ_OK && !m.partitions) {
            seq_errf(err, errlen, "%s/" SEQ_BATCH_MANIFEST ": not a part of a partitioned batch",
                     dirs[k]);
            rc = SEQ_EINVAL;
        }
        if (rc == SEQ_OK) rc = part_agrees(d, dirs[k], &m, err, errlen);
        if (rc == SEQ_OK && seen[m.partition]++) {
            seq_errf(err, errlen, "%s: partition %u is given twice", dirs[k], m.partition);
            rc = SEQ_EPRECONDITION;
        }
        if (rc == SEQ_OK) rc = check_manifest(def, req, dirs[k], &m, err, errlen);
        seq_batch_manifest_clear(&m);
    }
    for (uint32_t p = 0; p < d->partitions && rc == SEQ_OK; p++)
        if (!seen[p]) {
            char name[32];
            seq_parts_dir_name(name, sizeof name, p);
            seq_errf(err, errlen, "the batch is not whole: part %s (partition %u of %u) is "
                     "missing from the request", name, p, d->partitions);
            rc = SEQ_EPRECONDITION;
        }
    free(seen);
    return rc;
}

/* The parts' checks, each part on its own (its manifest, its files, its counts: distinct
 * entries of paths, staged and sums_out), so that two threads can share them. */
typedef struct {
    const seq_def *def;
    const seq_sequence *s;
    const seq_load_req *req;
    char **paths, **staged, **dirs;
    int in_place;
    size_t n_dirs;
    const size_t *dir_of_path;
    _Atomic size_t next; /* the next part to take */
    _Atomic int failed;  /* a part failed: the parts left are not checked */
    struct part_out {
        int rc; /* -1: not checked */
        char err[512];
        uint64_t users, events;
        int64_t stage_ms;
    } *out;
} parts_job;

static void check_part(parts_job *j, size_t k)
{
    struct part_out *o = &j->out[k];
    size_t n_paths = j->req->n_paths, n = 0, *idx = malloc(sizeof *idx * n_paths);
    seq_load_result res = {0};
    seq_batch_manifest m;
    if (!idx) {
        o->rc = SEQ_EINTERNAL;
        seq_errf(o->err, sizeof o->err, "out of memory");
        return;
    }
    for (size_t i = 0; i < n_paths; i++)
        if (j->dir_of_path[i] == k) idx[n++] = i;
    int rc = read_manifest(j->dirs[k], &m, o->err, sizeof o->err);
    if (rc == SEQ_OK && j->req->only_parts && !j->req->only_parts[m.partition]) {
        /* a part this node does not hold: nothing of it is read or staged */
        for (size_t x = 0; x < n; x++) {
            free(j->staged[idx[x]]);
            j->staged[idx[x]] = NULL;
        }
    } else if (rc == SEQ_OK) {
        rc = check_dir(j->def, j->s, j->req, j->dirs[k], &m, j->paths, j->staged, j->in_place,
                       idx, n, &o->stage_ms, &res, o->err, sizeof o->err);
    }
    seq_batch_manifest_clear(&m);
    free(idx);
    o->users = res.users, o->events = res.events;
    o->rc = rc;
}

static void *parts_worker(void *arg)
{
    parts_job *j = arg;
    size_t k;
    while (!atomic_load(&j->failed) && (k = atomic_fetch_add(&j->next, 1)) < j->n_dirs) {
        check_part(j, k);
        if (j->out[k].rc != SEQ_OK) atomic_store(&j->failed, 1);
    }
    return NULL;
}

/* Checks every part: SEQ_OK with the counts added to res, or the error of the first part
 * (in the batch's order) that failed. In place (the receiver of a cluster load checks the
 * whole batch before any node applies it: the serial part of a cluster load, while the
 * other nodes wait; bench/NOTES.md "Session 8 — cluster load") on this thread and one
 * more; a load that stages runs on one (its copies' writeback sets its pace, and readers
 * share the cores: store_load.c lower_priority). */
static int check_each_part(parts_job *j, seq_load_result *res, char *err, size_t errlen)
{
    int rc = SEQ_OK;
    pthread_t helper;
    if (!(j->out = calloc(j->n_dirs ? j->n_dirs : 1, sizeof *j->out))) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    for (size_t k = 0; k < j->n_dirs; k++) j->out[k].rc = -1;
    int two = j->in_place && j->n_dirs > 1 && pthread_create(&helper, NULL, parts_worker, j) == 0;
    parts_worker(j);
    if (two) pthread_join(helper, NULL);
    for (size_t k = 0; k < j->n_dirs; k++) {
        const struct part_out *o = &j->out[k];
        if (j->req->timing) j->req->timing->stage_ms += o->stage_ms;
        if (rc == SEQ_OK && o->rc > 0) {
            rc = o->rc;
            seq_errf(err, errlen, "%s", o->err);
        } else if (o->rc == SEQ_OK) {
            res->users += o->users;
            res->events += o->events;
        }
    }
    free(j->out);
    return rc;
}

static int check_parts(const seq_def *def, const seq_sequence *s, const seq_load_req *req,
                       const char *dir0, char **paths, char **staged, int in_place,
                       seq_load_result *res, char *err, size_t errlen)
{
    char batch_dir[PATH_MAX];
    char **dirs = NULL;
    size_t n_dirs = 0, *dir_of_path = calloc(req->n_paths, sizeof *dir_of_path);
    seq_batch_desc d;
    int rc = dir_of_path ? SEQ_OK : SEQ_EINTERNAL;
    dir_of(dir0, batch_dir);
    if (rc == SEQ_OK && (rc = seq_batch_desc_read(batch_dir, &d, err, errlen)) == SEQ_ENOTFOUND)
        rc = SEQ_EPRECONDITION; /* parts without what says the batch is whole */
    else if (rc == SEQ_EINTERNAL) rc = SEQ_EINVAL;
    if (rc == SEQ_OK)
        rc = part_dirs(batch_dir, req, paths, &dirs, &n_dirs, dir_of_path, err, errlen);
    if (rc == SEQ_OK) rc = parts_whole(def, req, &d, dirs, n_dirs, err, errlen);
    if (rc == SEQ_OK) {
        parts_job j = {.def = def, .s = s, .req = req, .paths = paths, .staged = staged,
                       .dirs = dirs, .in_place = in_place, .n_dirs = n_dirs,
                       .dir_of_path = dir_of_path};
        rc = check_each_part(&j, res, err, errlen);
    }
    for (size_t k = 0; dirs && k < n_dirs; k++) free(dirs[k]);
    free(dirs);
    free(dir_of_path);
    return rc;
}

/* One directory with one manifest (an unpartitioned batch, as before partitions), or
 * the parts of a partitioned batch (a part's manifest says so). */
static int check_files(const seq_def *def, const seq_sequence *s, const seq_load_req *req,
                       char **paths, char **staged, int in_place, seq_load_result *res,
                       char *err, size_t errlen)
{
    char dir[PATH_MAX];
    dir_of(paths[0], dir);
    for (size_t i = 1; i < req->n_paths; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(paths[i], paths[j]) == 0) {
                seq_errf(err, errlen, "%s: listed twice", req->paths[i]);
                return SEQ_EINVAL;
            }
    seq_batch_manifest m;
    int rc = read_manifest(dir, &m, err, errlen);
    if (rc == SEQ_OK && m.partitions) {
        seq_batch_manifest_clear(&m);
        return check_parts(def, s, req, dir, paths, staged, in_place, res, err, errlen);
    }
    size_t *idx = calloc(req->n_paths, sizeof *idx);
    if (rc == SEQ_OK && !idx) rc = SEQ_EINTERNAL;
    for (size_t i = 0; i < req->n_paths && rc == SEQ_OK; i++) {
        size_t n = strlen(dir);
        if (strncmp(paths[i], dir, n) != 0 || strchr(paths[i] + n + 1, '/')) {
            seq_errf(err, errlen, "%s: all files of a load must be in one directory", req->paths[i]);
            rc = SEQ_EINVAL;
        }
        idx[i] = i;
    }
    if (rc == SEQ_OK) rc = check_manifest(def, req, dir, &m, err, errlen);
    if (rc == SEQ_OK)
        rc = check_dir(def, s, req, dir, &m, paths, staged, in_place, idx, req->n_paths,
                       req->timing ? &req->timing->stage_ms : NULL, res, err, errlen);
    seq_batch_manifest_clear(&m); /* a manifest read but refused still holds its parts */
    free(idx);
    return rc;
}

static void free_paths(char **p, size_t n, int unlink_them)
{
    for (size_t i = 0; p && i < n; i++) {
        if (unlink_them && p[i]) unlink(p[i]);
        free(p[i]);
    }
    free(p);
}

/* stage_dir/<i>.sst for each requested file: one load runs at a time (store_load.c). */
static char **staged_names(const char *stage_dir, size_t n)
{
    char **p = calloc(n, sizeof *p);
    for (size_t i = 0; p && i < n; i++) {
        char buf[PATH_MAX];
        snprintf(buf, sizeof buf, "%s/%zu.sst", stage_dir, i);
        if (!(p[i] = strdup(buf))) {
            free_paths(p, n, 0);
            return NULL;
        }
    }
    return p;
}

/* Copies of the resolved paths (a verification in place). */
static char **same_paths(char **paths, size_t n)
{
    char **p = calloc(n, sizeof *p);
    for (size_t i = 0; p && i < n; i++)
        if (!(p[i] = strdup(paths[i]))) {
            free_paths(p, n, 0);
            return NULL;
        }
    return p;
}

int seq_batch_check_paths(const char *batch_root, const seq_load_req *req, char *err,
                          size_t errlen)
{
    char root[PATH_MAX], buf[PATH_MAX];
    if (!realpath(batch_root, root)) {
        seq_errf(err, errlen, "batch root %s: %s", batch_root, strerror(errno));
        return SEQ_EINTERNAL;
    }
    int rc = SEQ_OK;
    for (size_t i = 0; i < req->n_paths && rc == SEQ_OK; i++)
        rc = resolve(root, req->paths[i], buf, err, errlen);
    return rc;
}

int seq_batch_verify(const seq_def *def, const char *batch_root, const char *stage_dir,
                     const seq_load_req *req, char ***resolved, seq_load_result *res, char *err,
                     size_t errlen)
{
    const seq_sequence *s;
    char root[PATH_MAX];
    memset(res, 0, sizeof *res);
    int rc = check_request(def, req, &s, err, errlen);
    if (rc != SEQ_OK) return rc;
    if (!realpath(batch_root, root)) {
        seq_errf(err, errlen, "batch root %s: %s", batch_root, strerror(errno));
        return SEQ_EINTERNAL;
    }
    char **paths = calloc(req->n_paths, sizeof *paths), **staged = NULL;
    if (!paths) return SEQ_EINTERNAL;
    for (size_t i = 0; i < req->n_paths && rc == SEQ_OK; i++) {
        char buf[PATH_MAX];
        rc = resolve(root, req->paths[i], buf, err, errlen);
        if (rc == SEQ_OK && !(paths[i] = strdup(buf))) rc = SEQ_EINTERNAL;
    }
    int in_place = stage_dir == NULL; /* the checks read the files themselves */
    if (rc == SEQ_OK && !(staged = in_place ? same_paths(paths, req->n_paths)
                                            : staged_names(stage_dir, req->n_paths)))
        rc = SEQ_EINTERNAL;
    if (rc == SEQ_OK) rc = check_files(def, s, req, paths, staged, in_place, res, err, errlen);
    if (rc != SEQ_OK) {
        free_paths(paths, req->n_paths, 0);
        free_paths(staged, req->n_paths, !in_place);
        return rc;
    }
    res->generation = req->generation;
    size_t kept = 0; /* the selected parts' copies first (only_parts dropped the others) */
    for (size_t i = 0; i < req->n_paths; i++)
        if (staged[i]) staged[kept++] = staged[i];
    for (size_t i = kept; i < req->n_paths; i++) staged[i] = NULL;
    res->files = (uint32_t)kept;
    free_paths(paths, req->n_paths, 0);
    *resolved = staged;
    return SEQ_OK;
}
