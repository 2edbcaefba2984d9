/* --kafka-config FILE (see kafkaconf.h): parsed once in main before any Kafka client
 * exists; each property is tried on a scratch rd_kafka_conf_t at parse time, so that a
 * property librdkafka does not know, or a value it refuses, stops the start with the
 * file's line, not a later client. */
#include "kafkaconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"

#define MAX_FILE_BYTES (1u << 20)

typedef struct {
    char *key, *value;
} prop;

struct seq_kafkaconf {
    prop *props;
    size_t n, cap;
};

/* Properties seqd sets itself, from its flags or its design: a file must not change them
 * behind seqd's back (a group.id that is not --group, a partitioner that is not Kafka's
 * murmur2, auto-commit that would commit offsets past unstored data). */
static const char *const RESERVED[][2] = {
    {"group.id", "use --group"},
    {"group.instance.id", "use --instance-id"},
    {"partitioner", "seqd produces with murmur2_random, Kafka's default"},
    {"enable.auto.commit", "seqd stores its offsets with its data"},
    {"bootstrap.servers", "use --brokers"},
    {"metadata.broker.list", "use --brokers"},
};

static const char *reserved_hint(const char *key)
{
    for (size_t i = 0; i < sizeof RESERVED / sizeof RESERVED[0]; i++)
        if (strcmp(key, RESERVED[i][0]) == 0) return RESERVED[i][1];
    return NULL;
}

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
    *end = '\0';
    return s;
}

static int add_prop(seq_kafkaconf *kc, const char *k, const char *v)
{
    if (kc->n == kc->cap) {
        size_t cap = kc->cap ? kc->cap * 2 : 8;
        prop *p = realloc(kc->props, cap * sizeof *p);
        if (!p) return SEQ_EINTERNAL;
        kc->props = p;
        kc->cap = cap;
    }
    prop *p = &kc->props[kc->n];
    p->key = strdup(k);
    p->value = strdup(v);
    if (!p->key || !p->value) {
        free(p->key);
        free(p->value);
        return SEQ_EINTERNAL;
    }
    kc->n++;
    return SEQ_OK;
}

/* One line (NUL-terminated, modifiable). */
static int parse_line(seq_kafkaconf *kc, rd_kafka_conf_t *probe, char *line, const char *origin,
                      int lineno, char *err, size_t errlen)
{
    char *s = trim(line, line + strlen(line));
    if (!*s || *s == '#') return SEQ_OK;
    char *eq = strchr(s, '=');
    if (!eq) {
        seq_errf(err, errlen, "%s:%d: '%.80s' is not key=value", origin, lineno, s);
        return SEQ_EINVAL;
    }
    char *key = trim(s, eq), *val = trim(eq + 1, eq + 1 + strlen(eq + 1));
    if (!*key) {
        seq_errf(err, errlen, "%s:%d: empty property name", origin, lineno);
        return SEQ_EINVAL;
    }
    const char *hint = reserved_hint(key);
    if (hint) {
        seq_errf(err, errlen, "%s:%d: %.100s is set by seqd itself (%s)", origin, lineno, key, hint);
        return SEQ_EINVAL;
    }
    char e[256];
    if (rd_kafka_conf_set(probe, key, val, e, sizeof e) != RD_KAFKA_CONF_OK) {
        seq_errf(err, errlen, "%s:%d: %.100s: %s", origin, lineno, key, e);
        return SEQ_EINVAL;
    }
    return add_prop(kc, key, val);
}

int seq_kafkaconf_parse(const char *text, size_t len, const char *origin, seq_kafkaconf **out,
                        char *err, size_t errlen)
{
    seq_kafkaconf *kc = calloc(1, sizeof *kc);
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    char *copy = malloc(len + 1);
    int rc = SEQ_EINTERNAL;
    if (!kc || !probe || !copy) {
        seq_errf(err, errlen, "out of memory");
        goto fail;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (memchr(copy, '\0', len)) {
        seq_errf(err, errlen, "%s: contains a NUL byte", origin);
        rc = SEQ_EINVAL;
        goto fail;
    }
    int lineno = 1;
    for (char *line = copy; line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if ((rc = parse_line(kc, probe, line, origin, lineno, err, errlen))) {
            if (rc == SEQ_EINTERNAL) seq_errf(err, errlen, "out of memory");
            goto fail;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(copy);
    rd_kafka_conf_destroy(probe);
    *out = kc;
    return SEQ_OK;
fail:
    free(copy);
    if (probe) rd_kafka_conf_destroy(probe);
    seq_kafkaconf_free(kc);
    return rc;
}

int seq_kafkaconf_load(const char *path, seq_kafkaconf **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        seq_errf(err, errlen, "--kafka-config %s: %s", path, strerror(errno));
        return SEQ_EINVAL;
    }
    char *buf = malloc(MAX_FILE_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    int rc;
    if (!buf) {
        seq_errf(err, errlen, "out of memory");
        rc = SEQ_EINTERNAL;
    } else if (bad || n > MAX_FILE_BYTES) {
        seq_errf(err, errlen, "--kafka-config %s: %s", path, bad ? "read error" : "larger than 1 MiB");
        rc = SEQ_EINVAL;
    } else {
        rc = seq_kafkaconf_parse(buf, n, path, out, err, errlen);
    }
    free(buf);
    return rc;
}

int seq_kafkaconf_apply(const seq_kafkaconf *kc, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    char e[256];
    for (size_t i = 0; kc && i < kc->n; i++)
        if (rd_kafka_conf_set(conf, kc->props[i].key, kc->props[i].value, e, sizeof e) != RD_KAFKA_CONF_OK) {
            seq_errf(err, errlen, "--kafka-config %s: %s", kc->props[i].key, e);
            return SEQ_EINVAL;
        }
    return SEQ_OK;
}

size_t seq_kafkaconf_count(const seq_kafkaconf *kc) { return kc ? kc->n : 0; }

void seq_kafkaconf_free(seq_kafkaconf *kc)
{
    if (!kc) return;
    for (size_t i = 0; i < kc->n; i++) {
        free(kc->props[i].key);
        free(kc->props[i].value);
    }
    free(kc->props);
    free(kc);
}
