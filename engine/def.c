/* The signal definition: JSON in, an immutable seq_def out. Read once at start by the
 * server and by the batch builder; every later stage (executor, storage, merge) takes
 * its meaning from the parsed form. Validation is strict (unknown keys refused) so that a
 * typo cannot silently change what is served; every refusal names the bad JSON path.
 * Also: the compatibility rule between the definition the data was served with and a
 * new one, and the fingerprint that lets a load recognise a batch's definition. */
#include "def.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_LENGTH_LIMIT 1000000u /* read path holds max_length pointers per request */
#define DEFAULT_MAX_FUTURE_MS 300000

typedef struct {
    char *err;
    size_t errlen;
} errbuf;

/* ---------- small JSON helpers; each returns 0 or -1 with the message written ---------- */

static int check_keys(json_t *obj, const char *path, const char *const *allowed, errbuf *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(key, *a) == 0) ok = 1;
        if (!ok) {
            seq_errf(e->err, e->errlen, "%s%s%s: unknown key", path, *path ? "." : "", key);
            return -1;
        }
    }
    return 0;
}

/* Integer member. Absent: *found = 0 (an error when required). */
static int get_int(json_t *obj, const char *path, const char *key, int required, int64_t *out,
                   errbuf *e)
{
    json_t *v = json_object_get(obj, key);
    const char *dot = *path ? "." : "";
    if (!v) {
        if (!required) return 1;
        seq_errf(e->err, e->errlen, "%s%s%s: missing", path, dot, key);
        return -1;
    }
    if (!json_is_integer(v)) {
        seq_errf(e->err, e->errlen, "%s%s%s: must be an integer", path, dot, key);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* A non-empty string without NUL bytes, at most maxlen bytes (0 = no limit). */
static int check_name(json_t *v, const char *path, size_t maxlen, errbuf *e)
{
    if (!json_is_string(v)) {
        seq_errf(e->err, e->errlen, "%s: must be a string", path);
        return -1;
    }
    size_t n = json_string_length(v);
    if (n == 0) {
        seq_errf(e->err, e->errlen, "%s: must not be empty", path);
        return -1;
    }
    if (strlen(json_string_value(v)) != n) {
        seq_errf(e->err, e->errlen, "%s: must not contain NUL", path);
        return -1;
    }
    if (maxlen && n > maxlen) {
        seq_errf(e->err, e->errlen, "%s: longer than %zu bytes", path, maxlen);
        return -1;
    }
    return 0;
}

static int xstrdup(const char *s, char **out, errbuf *e)
{
    *out = strdup(s);
    if (!*out) {
        seq_errf(e->err, e->errlen, "definition: out of memory");
        return -1;
    }
    return 0;
}

static void *xcalloc(size_t n, size_t sz, errbuf *e)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) seq_errf(e->err, e->errlen, "definition: out of memory");
    return p;
}

/* Index of attribute name in def->attrs, adding it when new. */
static int intern_attr(seq_def *def, const char *name, const char *path, uint32_t *idx, errbuf *e)
{
    for (uint32_t i = 0; i < def->n_attrs; i++)
        if (strcmp(def->attrs[i], name) == 0) {
            *idx = i;
            return 0;
        }
    if (def->n_attrs >= SEQ_MAX_ATTRS) {
        seq_errf(e->err, e->errlen, "%s: too many distinct attributes (max %d)", path,
                 SEQ_MAX_ATTRS);
        return -1;
    }
    if (xstrdup(name, &def->attrs[def->n_attrs], e) < 0) return -1;
    *idx = def->n_attrs++;
    return 0;
}

/* ---------- sequence parts ---------- */

static int parse_types(json_t *js, const char *path, seq_sequence *s, errbuf *e)
{
    char p[128];
    json_t *arr = json_object_get(js, "event_types");
    if (!arr) {
        seq_errf(e->err, e->errlen, "%s.event_types: missing", path);
        return -1;
    }
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (!json_is_array(arr) || n == 0) {
        seq_errf(e->err, e->errlen, "%s.event_types: must be a non-empty array", path);
        return -1;
    }
    if (n > SEQ_MAX_TYPES) {
        seq_errf(e->err, e->errlen, "%s.event_types: more than %d types", path, SEQ_MAX_TYPES);
        return -1;
    }
    if (!(s->event_types = xcalloc(n, sizeof(char *), e))) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        snprintf(p, sizeof p, "%s.event_types[%zu]", path, i);
        if (check_name(v, p, SEQ_TYPE_MAX, e) < 0) return -1;
        const char *t = json_string_value(v);
        if (seq_def_type_index(s, t, strlen(t)) >= 0) {
            seq_errf(e->err, e->errlen, "%s: duplicate type '%s'", p, t);
            return -1;
        }
        if (xstrdup(t, &s->event_types[s->n_types], e) < 0) return -1;
        s->n_types++;
    }
    return 0;
}

static int parse_column(seq_def *def, json_t *v, const char *p, seq_column *c, errbuf *e)
{
    static const char *const keys[] = {"name", "default", NULL};
    char q[160];
    json_t *name = v;
    c->dflt = NAN;
    if (json_is_object(v)) {
        if (check_keys(v, p, keys, e) < 0) return -1;
        name = json_object_get(v, "name");
        snprintf(q, sizeof q, "%s.name", p);
        if (!name) {
            seq_errf(e->err, e->errlen, "%s: missing", q);
            return -1;
        }
        if (check_name(name, q, 0, e) < 0) return -1;
        json_t *d = json_object_get(v, "default");
        if (d && !json_is_number(d)) {
            seq_errf(e->err, e->errlen, "%s.default: must be a number", p);
            return -1;
        }
        if (d) c->dflt = json_number_value(d);
    } else if (!json_is_string(v)) {
        seq_errf(e->err, e->errlen, "%s: must be a string or {\"name\", \"default\"}", p);
        return -1;
    } else if (check_name(v, p, 0, e) < 0) {
        return -1;
    }
    if (xstrdup(json_string_value(name), &c->name, e) < 0) return -1;
    return intern_attr(def, c->name, p, &c->attr, e);
}

static int parse_columns(seq_def *def, json_t *js, const char *path, seq_sequence *s, errbuf *e)
{
    char p[128];
    json_t *arr = json_object_get(js, "columns");
    if (!arr) return 0;
    if (!json_is_array(arr)) {
        seq_errf(e->err, e->errlen, "%s.columns: must be an array", path);
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n > SEQ_MAX_COLUMNS) {
        seq_errf(e->err, e->errlen, "%s.columns: more than %d columns", path, SEQ_MAX_COLUMNS);
        return -1;
    }
    if (!(s->columns = xcalloc(n, sizeof(seq_column), e))) return -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s.columns[%zu]", path, i);
        seq_column *c = &s->columns[i];
        int rc = parse_column(def, json_array_get(arr, i), p, c, e);
        if (c->name) s->n_columns++; /* so seq_def_free sees it even on failure */
        if (rc < 0) return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->columns[j].name, c->name) == 0) {
                seq_errf(e->err, e->errlen, "%s: duplicate column '%s'", p, c->name);
                return -1;
            }
    }
    return 0;
}

static int parse_op(json_t *v, const char *p, seq_op *op, errbuf *e)
{
    static const char *const ops[] = {"<", "<=", "==", "!=", ">=", ">"};
    static const seq_op codes[] = {SEQ_OP_LT, SEQ_OP_LE, SEQ_OP_EQ,
                                   SEQ_OP_NE, SEQ_OP_GE, SEQ_OP_GT};
    if (!v) {
        seq_errf(e->err, e->errlen, "%s.op: missing", p);
        return -1;
    }
    if (json_is_string(v))
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (strcmp(json_string_value(v), ops[i]) == 0) {
                *op = codes[i];
                return 0;
            }
    seq_errf(e->err, e->errlen, "%s.op: must be one of < <= == != >= >", p);
    return -1;
}

static int parse_filter_types(json_t *v, const char *p, const seq_sequence *s, uint64_t *mask,
                              errbuf *e)
{
    *mask = ~(uint64_t)0;
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        seq_errf(e->err, e->errlen, "%s.event_types: must be a non-empty array", p);
        return -1;
    }
    *mask = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *t = json_array_get(v, i);
        char q[176];
        snprintf(q, sizeof q, "%s.event_types[%zu]", p, i);
        if (check_name(t, q, 0, e) < 0) return -1;
        int idx = seq_def_type_index(s, json_string_value(t), json_string_length(t));
        if (idx < 0) {
            seq_errf(e->err, e->errlen, "%s: type '%s' is not declared by the sequence", q,
                     json_string_value(t));
            return -1;
        }
        *mask |= (uint64_t)1 << idx;
    }
    return 0;
}

static int parse_filter(seq_def *def, json_t *v, const char *p, const seq_sequence *s,
                        seq_filter *f, errbuf *e)
{
    static const char *const keys[] = {"attribute", "op", "value", "event_types", NULL};
    char q[160];
    if (!json_is_object(v)) {
        seq_errf(e->err, e->errlen, "%s: must be an object", p);
        return -1;
    }
    if (check_keys(v, p, keys, e) < 0) return -1;
    json_t *a = json_object_get(v, "attribute");
    snprintf(q, sizeof q, "%s.attribute", p);
    if (!a) {
        seq_errf(e->err, e->errlen, "%s: missing", q);
        return -1;
    }
    if (check_name(a, q, 0, e) < 0) return -1;
    if (parse_op(json_object_get(v, "op"), p, &f->op, e) < 0) return -1;
    json_t *val = json_object_get(v, "value");
    if (!val || !json_is_number(val)) {
        seq_errf(e->err, e->errlen, "%s.value: %s", p, val ? "must be a number" : "missing");
        return -1;
    }
    f->value = json_number_value(val);
    if (parse_filter_types(json_object_get(v, "event_types"), p, s, &f->type_mask, e) < 0)
        return -1;
    return intern_attr(def, json_string_value(a), q, &f->attr, e);
}

static int parse_filters(seq_def *def, json_t *js, const char *path, seq_sequence *s, errbuf *e)
{
    char p[128];
    json_t *arr = json_object_get(js, "filters");
    if (!arr) return 0;
    if (!json_is_array(arr)) {
        seq_errf(e->err, e->errlen, "%s.filters: must be an array", path);
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n > SEQ_MAX_ATTRS) {
        seq_errf(e->err, e->errlen, "%s.filters: more than %d filters", path, SEQ_MAX_ATTRS);
        return -1;
    }
    if (!(s->filters = xcalloc(n, sizeof(seq_filter), e))) return -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s.filters[%zu]", path, i);
        if (parse_filter(def, json_array_get(arr, i), p, s, &s->filters[i], e) < 0) return -1;
        s->n_filters++;
    }
    return 0;
}

static int parse_limits(json_t *js, const char *path, const seq_def *def, seq_sequence *s,
                        errbuf *e)
{
    int64_t v;
    if (get_int(js, path, "max_length", 1, &v, e) < 0) return -1;
    if (v <= 0 || v > MAX_LENGTH_LIMIT) {
        seq_errf(e->err, e->errlen, "%s.max_length: must be > 0%s", path,
                 v <= 0 ? "" : " and <= 1000000");
        return -1;
    }
    s->max_length = (uint32_t)v;
    if (get_int(js, path, "retention_ms", 1, &v, e) < 0) return -1;
    if (v <= 0 || v % def->bucket_ms != 0) {
        seq_errf(e->err, e->errlen, "%s.retention_ms: must be > 0 and a multiple of bucket_ms (%lld)",
                 path, (long long)def->bucket_ms);
        return -1;
    }
    s->retention_ms = v;
    return 0;
}

static int parse_sequence(seq_def *def, json_t *js, uint32_t i, errbuf *e)
{
    static const char *const keys[] = {"name",         "event_types", "max_length", "retention_ms",
                                       "columns",      "filters",     NULL};
    char path[64], p[96];
    seq_sequence *s = &def->seqs[i];
    s->id = i;
    snprintf(path, sizeof path, "sequences[%u]", i);
    if (!json_is_object(js)) {
        seq_errf(e->err, e->errlen, "%s: must be an object", path);
        return -1;
    }
    if (check_keys(js, path, keys, e) < 0) return -1;
    json_t *name = json_object_get(js, "name");
    snprintf(p, sizeof p, "%s.name", path);
    if (!name) {
        seq_errf(e->err, e->errlen, "%s: missing", p);
        return -1;
    }
    if (check_name(name, p, 255, e) < 0) return -1;
    const char *nm = json_string_value(name);
    if (seq_def_find(def, nm, strlen(nm))) {
        seq_errf(e->err, e->errlen, "%s: duplicate sequence '%s'", p, nm);
        return -1;
    }
    if (parse_types(js, path, s, e) < 0 || parse_limits(js, path, def, s, e) < 0 ||
        parse_columns(def, js, path, s, e) < 0 || parse_filters(def, js, path, s, e) < 0)
        return -1;
    /* named last: seq_def_find only sees complete sequences */
    return xstrdup(nm, &s->name, e);
}

static int parse_globals(seq_def *def, json_t *root, errbuf *e)
{
    static const char *const keys[] = {"bucket_ms", "freshness_horizon_ms", "max_future_ms",
                                       "sequences", NULL};
    if (!json_is_object(root)) {
        seq_errf(e->err, e->errlen, "definition: must be a JSON object");
        return -1;
    }
    if (check_keys(root, "", keys, e) < 0) return -1;
    if (get_int(root, "", "bucket_ms", 1, &def->bucket_ms, e) < 0) return -1;
    if (def->bucket_ms <= 0) {
        seq_errf(e->err, e->errlen, "bucket_ms: must be > 0");
        return -1;
    }
    if (get_int(root, "", "freshness_horizon_ms", 1, &def->horizon_ms, e) < 0) return -1;
    if (def->horizon_ms <= 0 || def->horizon_ms % def->bucket_ms != 0) {
        seq_errf(e->err, e->errlen,
                 "freshness_horizon_ms: must be > 0 and a multiple of bucket_ms (%lld)",
                 (long long)def->bucket_ms);
        return -1;
    }
    def->max_future_ms = DEFAULT_MAX_FUTURE_MS;
    if (get_int(root, "", "max_future_ms", 0, &def->max_future_ms, e) < 0) return -1;
    if (def->max_future_ms < 0) {
        seq_errf(e->err, e->errlen, "max_future_ms: must be >= 0");
        return -1;
    }
    return 0;
}

static int parse_sequences(seq_def *def, json_t *root, errbuf *e)
{
    json_t *arr = json_object_get(root, "sequences");
    if (!arr) {
        seq_errf(e->err, e->errlen, "sequences: missing");
        return -1;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        seq_errf(e->err, e->errlen, "sequences: must be a non-empty array");
        return -1;
    }
    size_t n = json_array_size(arr);
    if (n > SEQ_MAX_SEQUENCES) {
        seq_errf(e->err, e->errlen, "sequences: more than %d sequences", SEQ_MAX_SEQUENCES);
        return -1;
    }
    if (!(def->seqs = xcalloc(n, sizeof(seq_sequence), e))) return -1;
    if (!(def->attrs = xcalloc(SEQ_MAX_ATTRS, sizeof(char *), e))) return -1;
    for (size_t i = 0; i < n; i++) {
        def->n_seqs++; /* counted before parsing so seq_def_free frees partial parts */
        if (parse_sequence(def, json_array_get(arr, i), (uint32_t)i, e) < 0) return -1;
    }
    return 0;
}

/* ---------- fingerprint ---------- */

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Each part is length-prefixed so that names containing separators cannot collide. */
static uint64_t fnv_part(uint64_t h, const char *s)
{
    char len[24];
    int n = snprintf(len, sizeof len, "%zu:", strlen(s));
    h = fnv_bytes(h, len, (size_t)n);
    return fnv_bytes(h, s, strlen(s));
}

static uint64_t fingerprint(const seq_def *def)
{
    char num[64];
    uint64_t h = 14695981039346656037ull;
    snprintf(num, sizeof num, "%lld/%lld", (long long)def->bucket_ms, (long long)def->horizon_ms);
    h = fnv_part(h, num);
    for (uint32_t i = 0; i < def->n_seqs; i++) {
        const seq_sequence *s = &def->seqs[i];
        h = fnv_part(h, "S");
        h = fnv_part(h, s->name);
        for (uint32_t t = 0; t < s->n_types; t++) h = fnv_part(h, s->event_types[t]);
        h = fnv_part(h, "C");
        for (uint32_t c = 0; c < s->n_columns; c++) h = fnv_part(h, s->columns[c].name);
    }
    return h;
}

/* ---------- public API ---------- */

int seq_def_parse(const char *json, size_t len, seq_def **out, char *err, size_t errlen)
{
    errbuf e = {err, errlen};
    json_error_t jerr;
    seq_def *def = NULL;
    *out = NULL;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        seq_errf(err, errlen, "definition: invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return SEQ_EINVAL;
    }
    if (!(def = xcalloc(1, sizeof *def, &e))) goto fail;
    if (parse_globals(def, root, &e) < 0 || parse_sequences(def, root, &e) < 0) goto fail;
    if (!(def->json = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS))) {
        seq_errf(err, errlen, "definition: out of memory");
        goto fail;
    }
    def->fingerprint = fingerprint(def);
    json_decref(root);
    *out = def;
    return SEQ_OK;
fail:
    json_decref(root);
    seq_def_free(def);
    return SEQ_EINVAL;
}

int seq_def_load_file(const char *path, seq_def **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    seq_buf b = {0};
    char chunk[8192];
    size_t n;
    int rc = SEQ_EINVAL;
    if (!f) {
        seq_errf(err, errlen, "%s: cannot open", path);
        return SEQ_ENOTFOUND;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (seq_buf_append(&b, chunk, n) < 0) {
            seq_errf(err, errlen, "%s: out of memory", path);
            rc = SEQ_EINTERNAL;
            goto done;
        }
    if (ferror(f)) {
        seq_errf(err, errlen, "%s: read error", path);
        rc = SEQ_EINTERNAL;
        goto done;
    }
    char msg[512];
    rc = seq_def_parse((const char *)b.data, b.len, out, msg, sizeof msg);
    if (rc != SEQ_OK) seq_errf(err, errlen, "%s: %s", path, msg);
done:
    fclose(f);
    seq_buf_free(&b);
    return rc;
}

static void free_sequence(seq_sequence *s)
{
    free(s->name);
    for (uint32_t t = 0; t < s->n_types; t++) free(s->event_types[t]);
    free(s->event_types);
    for (uint32_t c = 0; c < s->n_columns; c++) free(s->columns[c].name);
    free(s->columns);
    free(s->filters);
}

void seq_def_free(seq_def *def)
{
    if (!def) return;
    for (uint32_t i = 0; i < def->n_seqs; i++) free_sequence(&def->seqs[i]);
    free(def->seqs);
    for (uint32_t i = 0; i < def->n_attrs; i++) free(def->attrs[i]);
    free(def->attrs);
    free(def->json);
    free(def);
}

/* name[0..len) equals the NUL-terminated s. A NUL inside name never matches (names
 * cannot hold one); checked first, so strncmp == 0 implies s has len bytes before s[len]. */
static int name_eq(const char *s, const char *name, size_t len)
{
    return memchr(name, '\0', len) == NULL && strncmp(s, name, len) == 0 && s[len] == '\0';
}

const seq_sequence *seq_def_find(const seq_def *def, const char *name, size_t len)
{
    for (uint32_t i = 0; i < def->n_seqs; i++)
        if (def->seqs[i].name && name_eq(def->seqs[i].name, name, len)) return &def->seqs[i];
    return NULL;
}

int seq_def_type_index(const seq_sequence *s, const char *type, size_t len)
{
    for (uint32_t i = 0; i < s->n_types; i++)
        if (name_eq(s->event_types[i], type, len)) return (int)i;
    return -1;
}

int seq_def_attr_index(const seq_def *def, const char *name, size_t len)
{
    for (uint32_t i = 0; i < def->n_attrs; i++)
        if (name_eq(def->attrs[i], name, len)) return (int)i;
    return -1;
}

/* ---------- compatibility ---------- */

static int check_globals(const seq_def *prev, const seq_def *next, char *err, size_t errlen)
{
    if (prev->bucket_ms != next->bucket_ms) {
        seq_errf(err, errlen, "bucket_ms changed from %lld to %lld", (long long)prev->bucket_ms,
                 (long long)next->bucket_ms);
        return SEQ_EPRECONDITION;
    }
    if (prev->horizon_ms != next->horizon_ms) {
        seq_errf(err, errlen, "freshness_horizon_ms changed from %lld to %lld",
                 (long long)prev->horizon_ms, (long long)next->horizon_ms);
        return SEQ_EPRECONDITION;
    }
    return SEQ_OK;
}

/* a's types and columns must be a prefix of b's. */
static int check_seq_parts(const seq_sequence *a, const seq_sequence *b, char *err, size_t errlen)
{
    for (uint32_t t = 0; t < a->n_types; t++)
        if (t >= b->n_types || strcmp(a->event_types[t], b->event_types[t]) != 0) {
            seq_errf(err, errlen, "sequences[%u].event_types: '%s' removed or reordered", b->id,
                     a->event_types[t]);
            return SEQ_EPRECONDITION;
        }
    for (uint32_t c = 0; c < a->n_columns; c++)
        if (c >= b->n_columns || strcmp(a->columns[c].name, b->columns[c].name) != 0) {
            seq_errf(err, errlen, "sequences[%u].columns: '%s' removed or reordered", b->id,
                     a->columns[c].name);
            return SEQ_EPRECONDITION;
        }
    return SEQ_OK;
}

/* prev's sequence s must sit at the same position of next. */
static int check_position(const seq_sequence *s, const seq_def *next, char *err, size_t errlen)
{
    const seq_sequence *n = seq_def_find(next, s->name, strlen(s->name));
    if (!n) {
        seq_errf(err, errlen, "sequence '%s' removed", s->name);
        return SEQ_EPRECONDITION;
    }
    if (n->id != s->id) {
        seq_errf(err, errlen, "sequence '%s' moved from position %u to %u", s->name, s->id, n->id);
        return SEQ_EPRECONDITION;
    }
    return SEQ_OK;
}

int seq_def_check_compat(const seq_def *prev, const seq_def *next, char *err, size_t errlen)
{
    int rc = check_globals(prev, next, err, errlen);
    for (uint32_t i = 0; rc == SEQ_OK && i < prev->n_seqs; i++) {
        rc = check_position(&prev->seqs[i], next, err, errlen);
        if (rc == SEQ_OK) rc = check_seq_parts(&prev->seqs[i], &next->seqs[i], err, errlen);
    }
    return rc;
}

int seq_def_check_seq_compat(const seq_def *built, const seq_def *cur, const char *name,
                             char *err, size_t errlen)
{
    const seq_sequence *c = seq_def_find(cur, name, strlen(name));
    const seq_sequence *b = seq_def_find(built, name, strlen(name));
    if (!c) {
        seq_errf(err, errlen, "sequence '%s' is not defined", name);
        return SEQ_ENOTFOUND;
    }
    if (!b) {
        seq_errf(err, errlen, "sequence '%s' is not in the batch's definition", name);
        return SEQ_EPRECONDITION;
    }
    int rc = check_globals(built, cur, err, errlen);
    if (rc != SEQ_OK) return rc;
    if (b->id != c->id) {
        seq_errf(err, errlen, "sequence '%s' is at position %u in the batch's definition, %u here",
                 name, b->id, c->id);
        return SEQ_EPRECONDITION;
    }
    return check_seq_parts(b, c, err, errlen);
}
