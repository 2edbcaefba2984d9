/* Batch keys, manifest and file fingerprints (see batch_file.h). */
#include "batch_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL /* header only: the streaming loop inlined, nothing to link */
#include <xxhash.h>

size_t seq_batch_marker_key(uint8_t *k, uint32_t seq, uint64_t gen)
{
    return seq_key_batch_prefix(k, seq, gen, 0) - 8;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno != EINTR) return -1;
        if (k > 0) p += k, n -= (size_t)k;
    }
    return 0;
}

/* Starts the writeback of the chunk just written and waits for the one before it, so a
 * copy holds at most two chunks dirty and its IO leaves in steady small steps, issued
 * by the (low priority) loading thread, instead of hundreds of MB at the final sync
 * (a shorter load: bench/NOTES.md, "Reads during a 10x LoadBatch"). Failures show at
 * the fdatasync. */
static void write_behind(int fd, off_t off, off_t len, off_t chunk)
{
    (void)sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE);
    if (off >= chunk)
        (void)sync_file_range(fd, off - chunk, chunk,
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER);
}

/* The fingerprint (alg) of everything read from `in`, written on to `out` as it goes when
 * out >= 0: one read of the file serves both the fingerprint and the copy. */
static int hash_fd(int in, int out, seq_batch_hash_alg alg, uint64_t *size, uint64_t *hash)
{
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    uint64_t h = 14695981039346656037ULL, n = 0; /* FNV-1a 64 offset basis */
    XXH3_state_t *x = alg == SEQ_BATCH_HASH_XXH3 ? XXH3_createState() : NULL;
    ssize_t got;
    if (!buf || (alg == SEQ_BATCH_HASH_XXH3 && (!x || XXH3_64bits_reset(x) != XXH_OK)))
        goto fail;
    while ((got = read(in, buf, CHUNK)) != 0) {
        if (got < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        if (x) (void)XXH3_64bits_update(x, buf, (size_t)got); /* fails only on NULL input */
        else
            for (ssize_t i = 0; i < got; i++) h = (h ^ buf[i]) * 1099511628211ULL;
        if (out >= 0 && write_all(out, buf, (size_t)got)) goto fail;
        if (out >= 0) write_behind(out, (off_t)n, (off_t)got, CHUNK);
        n += (uint64_t)got;
    }
    free(buf);
    *size = n;
    *hash = x ? XXH3_64bits_digest(x) : h;
    XXH3_freeState(x);
    return 0;
fail:
    free(buf);
    XXH3_freeState(x);
    return -1;
}

/* The fd of the file to fingerprint, or -1 with *rc and err set. */
static int open_source(const char *path, int *rc, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *rc = errno == ENOENT ? SEQ_ENOTFOUND : SEQ_EINTERNAL;
        seq_errf(err, errlen, "%s: %s", path, strerror(errno));
    }
    return fd;
}

int seq_batch_file_hash(const char *path, seq_batch_hash_alg alg, uint64_t *size,
                        uint64_t *hash, char *err, size_t errlen)
{
    int rc, fd = open_source(path, &rc, err, errlen);
    if (fd < 0) return rc;
    int bad = hash_fd(fd, -1, alg, size, hash);
    close(fd);
    if (bad) {
        seq_errf(err, errlen, "%s: read error", path);
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

int seq_batch_file_stage(const char *path, const char *copy, seq_batch_hash_alg alg,
                         uint64_t *size, uint64_t *hash, char *err, size_t errlen)
{
    int rc, in = open_source(path, &rc, err, errlen);
    if (in < 0) return rc;
    int out = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int bad = out < 0 || hash_fd(in, out, alg, size, hash) || fdatasync(out);
    if (bad) seq_errf(err, errlen, "staging %s as %s: %s", path, copy, strerror(errno));
    if (out >= 0 && close(out) && !bad) {
        seq_errf(err, errlen, "staging %s as %s: %s", path, copy, strerror(errno));
        bad = 1;
    }
    close(in);
    if (bad) unlink(copy);
    return bad ? SEQ_EINTERNAL : SEQ_OK;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static int unhex(uint8_t *out, size_t cap, const char *s, uint32_t *n)
{
    size_t len = strlen(s);
    if (len % 2 || len / 2 > cap) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    *n = (uint32_t)(len / 2);
    return 0;
}

json_t *seq_batch_file_to_json(const seq_batch_file_info *f)
{
    char fk[2 * SEQ_BATCH_KEY_LEN + 1] = "", lk[2 * SEQ_BATCH_KEY_LEN + 1] = "", h[17];
    hex(fk, f->first_key, f->first_key_len);
    hex(lk, f->last_key, f->last_key_len);
    snprintf(h, sizeof h, "%016" PRIx64, f->hash);
    return json_pack("{s:s, s:I, s:s, s:I, s:I, s:s, s:s}", "name", f->name, "size",
                     (json_int_t)f->size,
                     f->hash_alg == SEQ_BATCH_HASH_XXH3 ? "xxh3_64" : "fnv1a64", h, "users",
                     (json_int_t)f->users,
                     "events", (json_int_t)f->events, "first_key", fk, "last_key", lk);
}

int seq_batch_file_from_json(json_t *o, seq_batch_file_info *f, char *err, size_t errlen)
{
    const char *name, *fk, *lk;
    json_int_t size, users, events;
    json_error_t je;
    memset(f, 0, sizeof *f);
    /* one of the two hashes: a batch built before xxh3 has fnv1a64 (batch_file.h) */
    json_t *xxh = json_object_get(o, "xxh3_64"), *fnv = json_object_get(o, "fnv1a64");
    const char *h = json_string_value(xxh ? xxh : fnv);
    f->hash_alg = xxh ? SEQ_BATCH_HASH_XXH3 : SEQ_BATCH_HASH_FNV1A64;
    if (!h || (xxh && fnv)) {
        seq_errf(err, errlen, "manifest: bad file entry: %s",
                 xxh && fnv ? "both xxh3_64 and fnv1a64" : "no hash (xxh3_64 or fnv1a64)");
        return SEQ_EINVAL;
    }
    if (json_unpack_ex(o, &je, 0, "{s:s, s:I, s:I, s:I, s:s, s:s}", "name", &name, "size",
                       &size, "users", &users, "events", &events, "first_key",
                       &fk, "last_key", &lk) < 0 ||
        strlen(name) >= sizeof f->name || size < 0 || users < 0 || events < 0 ||
        unhex(f->first_key, sizeof f->first_key, fk, &f->first_key_len) < 0 ||
        unhex(f->last_key, sizeof f->last_key, lk, &f->last_key_len) < 0 ||
        strlen(h) != 16 || strspn(h, "0123456789abcdef") != 16 ||
        sscanf(h, "%16" SCNx64, &f->hash) != 1) {
        seq_errf(err, errlen, "manifest: bad file entry: %s", je.text[0] ? je.text : "bad value");
        return SEQ_EINVAL;
    }
    snprintf(f->name, sizeof f->name, "%s", name);
    f->size = (uint64_t)size;
    f->users = (uint64_t)users;
    f->events = (uint64_t)events;
    return SEQ_OK;
}

int seq_batch_manifest_write(const char *dir, const seq_batch_manifest *m, const seq_def *def,
                             char *err, size_t errlen)
{
    json_error_t je;
    json_t *d = json_loads(def->json, 0, &je);
    char fp[17], path[4200], tmp[4300];
    snprintf(fp, sizeof fp, "%016" PRIx64, def->fingerprint);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:O}", "format",
                          SEQ_BATCH_FORMAT, "sequence", m->sequence, "start_ms",
                          (json_int_t)m->start_ms, "end_ms", (json_int_t)m->end_ms,
                          "generation", (json_int_t)m->generation, "users",
                          (json_int_t)m->users, "events", (json_int_t)m->events, "definition",
                          d ? d : json_null(), "fingerprint", fp, "files", m->files);
    if (o && m->partitions &&
        json_object_update_new(o, json_pack("{s:I, s:I}", "partitions", (json_int_t)m->partitions,
                                        "partition", (json_int_t)m->partition)) < 0) {
        json_decref(o);
        o = NULL;
    }
    if (!o) return SEQ_EINTERNAL;
    snprintf(path, sizeof path, "%s/" SEQ_BATCH_MANIFEST, dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(o, tmp, JSON_INDENT(1));
    json_decref(o);
    if (rc < 0 || rename(tmp, path) < 0) {
        seq_errf(err, errlen, "%s: cannot write", path);
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

/* The optional "partitions" and "partition" of a part's manifest (batch_parts.h). */
static int manifest_part(json_t *o, seq_batch_manifest *m)
{
    json_t *p = json_object_get(o, "partitions"), *i = json_object_get(o, "partition");
    if (!p && !i) return 0;
    if (!json_is_integer(p) || !json_is_integer(i) || json_integer_value(p) < 1 ||
        json_integer_value(p) > 65536 || json_integer_value(i) < 0 ||
        json_integer_value(i) >= json_integer_value(p))
        return -1;
    m->partitions = (uint32_t)json_integer_value(p);
    m->partition = (uint32_t)json_integer_value(i);
    return 0;
}

static int manifest_from_json(json_t *o, const char *path, seq_batch_manifest *m, char *err,
                              size_t errlen);

int seq_batch_manifest_read(const char *dir, seq_batch_manifest *m, char *err, size_t errlen)
{
    char path[4200];
    json_error_t je;
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/" SEQ_BATCH_MANIFEST, dir);
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        seq_errf(err, errlen, "%s: %s", path, je.text);
        return SEQ_EINVAL;
    }
    return manifest_from_json(o, path, m, err, errlen);
}

int seq_batch_manifest_parse(const char *text, size_t len, const char *name,
                             seq_batch_manifest *m, char *err, size_t errlen)
{
    json_error_t je;
    memset(m, 0, sizeof *m);
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        seq_errf(err, errlen, "%s: %s", name, je.text);
        return SEQ_EINVAL;
    }
    return manifest_from_json(o, name, m, err, errlen);
}

/* Takes o's reference. */
static int manifest_from_json(json_t *o, const char *path, seq_batch_manifest *m, char *err,
                              size_t errlen)
{
    json_error_t je;
    const char *fmt, *seq, *fp;
    json_int_t s, e, g, u, n;
    json_t *def, *files;
    int rc = SEQ_EINVAL;
    if (json_unpack_ex(o, &je, 0, "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:o}",
                       "format", &fmt, "sequence", &seq, "start_ms", &s, "end_ms", &e,
                       "generation", &g, "users", &u, "events", &n, "definition", &def,
                       "fingerprint", &fp, "files", &files) < 0) {
        seq_errf(err, errlen, "%s: %s", path, je.text);
        goto out;
    }
    if (strcmp(fmt, SEQ_BATCH_FORMAT) != 0 || !json_is_array(files) ||
        strlen(seq) >= sizeof m->sequence || strlen(fp) >= sizeof m->fingerprint ||
        manifest_part(o, m) < 0) {
        seq_errf(err, errlen, "%s: not a seqd batch manifest", path);
        goto out;
    }
    char *text = json_dumps(def, JSON_COMPACT);
    char derr[256];
    rc = text ? seq_def_parse(text, strlen(text), &m->def, derr, sizeof derr) : SEQ_EINTERNAL;
    free(text);
    if (rc != SEQ_OK) {
        seq_errf(err, errlen, "%s: definition: %s", path, derr);
        rc = SEQ_EINVAL;
        goto out;
    }
    snprintf(m->sequence, sizeof m->sequence, "%s", seq);
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s", fp);
    m->start_ms = s;
    m->end_ms = e;
    m->generation = (uint64_t)g;
    m->users = (uint64_t)u;
    m->events = (uint64_t)n;
    m->files = json_incref(files);
    rc = SEQ_OK;
out:
    json_decref(o);
    return rc;
}

void seq_batch_manifest_clear(seq_batch_manifest *m)
{
    json_decref(m->files);
    seq_def_free(m->def);
    m->files = NULL;
    m->def = NULL;
}
