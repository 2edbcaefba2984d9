/* Partitioned batches: part naming, partition lists and batch.json (see batch_parts.h).
 * Shared by the builder (batch_build.c), the loader (batch_verify.c) and seqctl build. */
#include "batch_parts.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/common.h"

void seq_parts_dir_name(char *out, size_t outlen, uint32_t part)
{
    snprintf(out, outlen, "partition-%05" PRIu32, part);
}

/* A decimal partition number at *s, below P; advances *s. */
static int parse_part(const char **s, uint32_t partitions, uint32_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p++ - '0');
        if (v >= partitions) return -1;
    }
    *s = p;
    *out = (uint32_t)v;
    return 0;
}

int seq_parts_parse_list(const char *list, uint32_t partitions, uint8_t *sel, char *err,
                         size_t errlen)
{
    const char *s = list;
    memset(sel, 0, partitions);
    for (;;) {
        uint32_t lo, hi;
        if (parse_part(&s, partitions, &lo) < 0) goto bad;
        hi = lo;
        if (*s == '-') {
            s++;
            if (parse_part(&s, partitions, &hi) < 0 || hi < lo) goto bad;
        }
        for (uint32_t p = lo; p <= hi; p++) sel[p] = 1;
        if (*s == '\0') return SEQ_OK;
        if (*s++ != ',') goto bad;
    }
bad:
    seq_errf(err, errlen,
             "partition list '%s': expected partitions below %" PRIu32
             " and ranges like 0-3,7 (at offset %zu)",
             list, partitions, (size_t)(s - list));
    return SEQ_EINVAL;
}

int seq_batch_desc_same(const seq_batch_desc *a, const seq_batch_desc *b)
{
    return strcmp(a->sequence, b->sequence) == 0 && a->start_ms == b->start_ms &&
           a->end_ms == b->end_ms && a->generation == b->generation &&
           strcmp(a->fingerprint, b->fingerprint) == 0 && a->partitions == b->partitions;
}

static int desc_from_json(json_t *o, seq_batch_desc *d, char *err, size_t errlen)
{
    const char *fmt, *seq, *fp;
    json_int_t s, e, g, p;
    json_t *parts;
    json_error_t je;
    memset(d, 0, sizeof *d);
    if (json_unpack_ex(o, &je, 0, "{s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:o}", "format", &fmt,
                       "sequence", &seq, "start_ms", &s, "end_ms", &e, "generation", &g,
                       "fingerprint", &fp, "partitions", &p, "parts", &parts) < 0) {
        seq_errf(err, errlen, SEQ_BATCH_DESC ": %s", je.text);
        return SEQ_EINVAL;
    }
    if (strcmp(fmt, SEQ_BATCH_DESC_FORMAT) != 0 || strlen(seq) >= sizeof d->sequence ||
        strlen(fp) != 16 || p < 1 || p > SEQ_PARTS_MAX || !json_is_array(parts) ||
        json_array_size(parts) != (size_t)p) {
        seq_errf(err, errlen, SEQ_BATCH_DESC ": not a seqd partitioned batch description");
        return SEQ_EINVAL;
    }
    for (size_t i = 0; i < (size_t)p; i++) {
        char want[32];
        const char *name = json_string_value(json_array_get(parts, i));
        seq_parts_dir_name(want, sizeof want, (uint32_t)i);
        if (!name || strcmp(name, want) != 0) {
            seq_errf(err, errlen, SEQ_BATCH_DESC ": parts[%zu] is not %s", i, want);
            return SEQ_EINVAL;
        }
    }
    snprintf(d->sequence, sizeof d->sequence, "%s", seq);
    snprintf(d->fingerprint, sizeof d->fingerprint, "%s", fp);
    d->start_ms = s;
    d->end_ms = e;
    d->generation = (uint64_t)g;
    d->partitions = (uint32_t)p;
    return SEQ_OK;
}

int seq_batch_desc_parse(const char *text, size_t len, seq_batch_desc *d, char *err,
                         size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        seq_errf(err, errlen, SEQ_BATCH_DESC ": %s", je.text);
        return SEQ_EINVAL;
    }
    int rc = desc_from_json(o, d, err, errlen);
    json_decref(o);
    return rc;
}

int seq_batch_desc_read(const char *dir, seq_batch_desc *d, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" SEQ_BATCH_DESC, dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        seq_errf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? SEQ_ENOTFOUND : SEQ_EINTERNAL;
    }
    char buf[1 << 16]; /* a description of SEQ_PARTS_MAX parts is ~1.3 MB: read in full */
    seq_buf text = {0};
    size_t n;
    int rc = SEQ_OK;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (seq_buf_append(&text, buf, n) < 0) rc = SEQ_EINTERNAL;
    if (ferror(f)) rc = SEQ_EINTERNAL;
    fclose(f);
    if (rc == SEQ_OK) {
        char perr[300];
        rc = seq_batch_desc_parse((const char *)text.data, text.len, d, perr, sizeof perr);
        if (rc != SEQ_OK) seq_errf(err, errlen, "%s/%s", dir, perr);
    } else {
        seq_errf(err, errlen, "%s: read error", path);
    }
    seq_buf_free(&text);
    return rc;
}

int seq_batch_desc_write(const char *dir, const seq_batch_desc *d, char *err, size_t errlen)
{
    seq_batch_desc there;
    char rerr[300];
    int rc = seq_batch_desc_read(dir, &there, rerr, sizeof rerr);
    if (rc == SEQ_OK && seq_batch_desc_same(&there, d)) return SEQ_OK;
    if (rc != SEQ_ENOTFOUND) {
        if (rc == SEQ_OK)
            seq_errf(err, errlen,
                     "%s/" SEQ_BATCH_DESC " describes another batch (sequence '%s' [%lld, %lld) "
                     "generation %" PRIu64 ", %" PRIu32 " partitions, definition %s): build "
                     "into another directory",
                     dir, there.sequence, (long long)there.start_ms, (long long)there.end_ms,
                     there.generation, there.partitions, there.fingerprint);
        else
            seq_errf(err, errlen, "%s", rerr);
        return rc == SEQ_OK ? SEQ_EINVAL : rc;
    }
    json_t *parts = json_array();
    for (uint32_t i = 0; parts && i < d->partitions; i++) {
        char name[32];
        seq_parts_dir_name(name, sizeof name, i);
        json_array_append_new(parts, json_string(name));
    }
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:o}", "format",
                          SEQ_BATCH_DESC_FORMAT, "sequence", d->sequence, "start_ms",
                          (json_int_t)d->start_ms, "end_ms", (json_int_t)d->end_ms,
                          "generation", (json_int_t)d->generation, "fingerprint",
                          d->fingerprint, "partitions", (json_int_t)d->partitions, "parts",
                          parts);
    if (!o) return SEQ_EINTERNAL;
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/" SEQ_BATCH_DESC, dir);
    snprintf(tmp, sizeof tmp, "%s/.batch.json.XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd >= 0) (void)fchmod(fd, 0644); /* mkstemp's 0600 would hide it from the server */
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    rc = f && json_dumpf(o, f, JSON_INDENT(1)) == 0 ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    else if (!f && fd >= 0) close(fd);
    json_decref(o);
    if (rc < 0 || rename(tmp, path) < 0) {
        if (fd >= 0) unlink(tmp);
        seq_errf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}
