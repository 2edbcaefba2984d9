/* Batch keys, manifest and file fingerprints (see batch_file.h). */
#include "batch_file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t seq_batch_marker_key(uint8_t *k, uint32_t seq, uint64_t gen)
{
    return seq_key_batch_prefix(k, seq, gen, 0) - 8;
}

int seq_batch_file_hash(const char *path, uint64_t *size, uint64_t *hash, char *err,
                        size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        seq_errf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? SEQ_ENOTFOUND : SEQ_EINTERNAL;
    }
    uint64_t h = 14695981039346656037ULL, n = 0; /* FNV-1a 64 offset basis */
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++) h = (h ^ buf[i]) * 1099511628211ULL;
        n += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        seq_errf(err, errlen, "%s: read error", path);
        return SEQ_EINTERNAL;
    }
    *size = n;
    *hash = h;
    return SEQ_OK;
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
                     (json_int_t)f->size, "fnv1a64", h, "users", (json_int_t)f->users,
                     "events", (json_int_t)f->events, "first_key", fk, "last_key", lk);
}

int seq_batch_file_from_json(json_t *o, seq_batch_file_info *f, char *err, size_t errlen)
{
    const char *name, *h, *fk, *lk;
    json_int_t size, users, events;
    json_error_t je;
    memset(f, 0, sizeof *f);
    if (json_unpack_ex(o, &je, 0, "{s:s, s:I, s:s, s:I, s:I, s:s, s:s}", "name", &name, "size",
                       &size, "fnv1a64", &h, "users", &users, "events", &events, "first_key",
                       &fk, "last_key", &lk) < 0 ||
        strlen(name) >= sizeof f->name || size < 0 || users < 0 || events < 0 ||
        unhex(f->first_key, sizeof f->first_key, fk, &f->first_key_len) < 0 ||
        unhex(f->last_key, sizeof f->last_key, lk, &f->last_key_len) < 0 ||
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
        strlen(seq) >= sizeof m->sequence || strlen(fp) >= sizeof m->fingerprint) {
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
