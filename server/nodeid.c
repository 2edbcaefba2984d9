/* Node ids (see nodeid.h). The generated id is "seqd-" and 12 hex digits from
 * /dev/urandom, written to <data-dir>/node-id through a temporary file and a rename, so
 * that a crash never leaves half an id. */
#include "nodeid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../engine/common.h"

#define MAX_ID 63

static int valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]) || !s[i])
            return 0;
    return 1;
}

static int read_id(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[128] = "";
    char *s = fgets(line, sizeof line, f);
    fclose(f);
    if (!s) return -1;
    line[strcspn(line, "\r\n")] = '\0';
    if (!valid_id(line)) return -1;
    snprintf(out, outlen, "%s", line);
    return 0;
}

static int generate_id(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    unsigned char r[6];
    FILE *u = fopen("/dev/urandom", "r");
    size_t got = u ? fread(r, 1, sizeof r, u) : 0;
    if (u) fclose(u);
    if (got != sizeof r) {
        seq_errf(err, errlen, "cannot read /dev/urandom for a node id");
        return SEQ_EINTERNAL;
    }
    snprintf(out, outlen, "seqd-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", out) < 0 || fflush(f) || fsync(fileno(f)) || fclose(f)) {
        if (f) fclose(f);
        seq_errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return SEQ_EINVAL;
    }
    if (rename(tmp, path)) {
        seq_errf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        return SEQ_EINVAL;
    }
    return SEQ_OK;
}

int seq_node_id(const char *data_dir, const char *explicit_id, char *out, size_t outlen,
                char *err, size_t errlen)
{
    if (explicit_id) {
        if (!valid_id(explicit_id)) {
            seq_errf(err, errlen, "--instance-id '%.80s': want 1-63 characters of A-Z a-z 0-9 . _ -",
                     explicit_id);
            return SEQ_EINVAL;
        }
        snprintf(out, outlen, "%s", explicit_id);
        return SEQ_OK;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/node-id", data_dir) >= (int)sizeof path) {
        seq_errf(err, errlen, "%s: path too long", data_dir);
        return SEQ_EINVAL;
    }
    if (read_id(path, out, outlen) == 0) return SEQ_OK;
    return generate_id(path, out, outlen, err, errlen);
}
