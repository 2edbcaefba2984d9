/* Load verification (see seq_batch_verify in batch.h): the gate between files on disk
 * and ingestion. Nothing here writes but the staged copies (stage_dir), removed again
 * when a check fails; a load that fails here changes nothing. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/blob.h"
#include "batch.h"
#include "batch_file.h"
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

static int check_manifest(const seq_def *def, const seq_load_req *req, const char *dir,
                          seq_batch_manifest *m, char *err, size_t errlen)
{
    char merr[300];
    int rc = seq_batch_manifest_read(dir, m, merr, sizeof merr);
    if (rc != SEQ_OK) {
        seq_errf(err, errlen, "%s", merr);
        return SEQ_EINVAL;
    }
    if (strcmp(m->sequence, req->sequence) != 0 || m->start_ms != req->start_ms ||
        m->end_ms != req->end_ms || m->generation != req->generation) {
        seq_errf(err, errlen,
                 "%s/" SEQ_BATCH_MANIFEST ": built for sequence '%s' [%lld, %lld) generation "
                 "%llu, not what the request says",
                 dir, m->sequence, (long long)m->start_ms, (long long)m->end_ms,
                 (unsigned long long)m->generation);
        return SEQ_EINVAL;
    }
    if (json_array_size(m->files) != req->n_paths) {
        seq_errf(err, errlen, "%s/" SEQ_BATCH_MANIFEST ": lists %zu files, the request %zu", dir,
                 json_array_size(m->files), req->n_paths);
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
                      seq_batch_file_info *fi, char *err, size_t errlen)
{
    const char *base = strrchr(path, '/') + 1;
    size_t i;
    json_t *o;
    json_array_foreach(m->files, i, o) {
        if (seq_batch_file_from_json(o, fi, err, errlen) != SEQ_OK) return SEQ_EINVAL;
        if (strcmp(fi->name, base) != 0) continue;
        uint64_t size, hash;
        int rc = seq_batch_file_stage(path, staged, &size, &hash, err, errlen);
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

static int check_files(const seq_def *def, const seq_sequence *s, const seq_load_req *req,
                       char **paths, char **staged, seq_load_result *res, char *err,
                       size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", paths[0]);
    *strrchr(dir, '/') = '\0';
    for (size_t i = 1; i < req->n_paths; i++) {
        size_t n = strlen(dir);
        if (strncmp(paths[i], dir, n) != 0 || strchr(paths[i] + n + 1, '/')) {
            seq_errf(err, errlen, "%s: all files of a load must be in one directory", req->paths[i]);
            return SEQ_EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(paths[i], paths[j]) == 0) {
                seq_errf(err, errlen, "%s: listed twice", req->paths[i]);
                return SEQ_EINVAL;
            }
    }
    seq_batch_manifest m;
    int rc = check_manifest(def, req, dir, &m, err, errlen);
    if (rc != SEQ_OK) {
        seq_batch_manifest_clear(&m); /* a manifest read but refused still holds its parts */
        return rc;
    }
    for (size_t i = 0; i < req->n_paths && rc == SEQ_OK; i++) {
        seq_batch_file_info fi;
        rc = check_file(&m, paths[i], staged[i], &fi, err, errlen);
        if (rc != SEQ_OK) break;
        scan_ctx c = {.name = paths[i], .seq = s, .def = def, .req = req, .err = err,
                      .errlen = errlen};
        char serr[400];
        int got = seq_sst_scan(staged[i], on_entry, &c, serr, sizeof serr);
        if (got == -1) scan_error(err, errlen, paths[i], staged[i], serr);
        if (got) rc = SEQ_EINVAL;
        else if (c.users != fi.users || c.events != fi.events) rc = bad(&c, "counts differ from its manifest");
        res->users += c.users;
        res->events += c.events;
    }
    if (rc == SEQ_OK && (res->users != m.users || res->events != m.events)) {
        seq_errf(err, errlen, "%s/" SEQ_BATCH_MANIFEST ": totals differ from the files", dir);
        rc = SEQ_EINVAL;
    }
    seq_batch_manifest_clear(&m);
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
    if (rc == SEQ_OK && !(staged = staged_names(stage_dir, req->n_paths)))
        rc = SEQ_EINTERNAL;
    if (rc == SEQ_OK) rc = check_files(def, s, req, paths, staged, res, err, errlen);
    if (rc != SEQ_OK) {
        free_paths(paths, req->n_paths, 0);
        free_paths(staged, req->n_paths, 1);
        return rc;
    }
    res->generation = req->generation;
    res->files = (uint32_t)req->n_paths;
    free_paths(paths, req->n_paths, 0);
    *resolved = staged;
    return SEQ_OK;
}
