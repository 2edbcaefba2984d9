/* Avro batch input (see input_avro.h). avro-c reads the container (blocks, codecs, sync
 * markers) and decodes each datum by the file's writer schema into an avro_value_t. The
 * value here is not avro-c's generic one (hash tables, a copy of every field, ~0.4M
 * records/s) but an implementation of avro-c's value interface that writes straight into
 * the seq_event being filled: the fields it maps get slots, every other field is skipped
 * by avro-c without being built (a record child without an interface), so a record costs
 * only its strings. avro-c parses schemas without their logical types, so the one this
 * needs (event_time_ms in millis or micros) is read from the schema's JSON text in the
 * file header. */
#include "input_avro.h"

#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum { F_USER, F_TIME, F_TYPE, F_ITEM, F_ID, F_ATTRS, F_N };
static const char *const field_names[F_N] = {"user_id", "event_time_ms", "event_type",
                                             "item_id", "event_id", "attributes"};

/* Where one schema node of a mapped field writes: the field's own type, a union's
 * branch, the map of attributes or its values (and their branches). */
typedef struct slot {
    struct seq_avro_reader *r;
    int field;              /* F_* */
    int map_value;          /* a value of the attributes map */
    avro_schema_t schema;   /* this node's (borrowed from the reader's writer schema) */
    struct slot *branches;  /* a union's, n_branches of them */
    size_t n_branches;
    struct slot *values;    /* a map's values */
} slot;

struct seq_avro_reader {
    const seq_def *def;
    avro_file_reader_t file;
    avro_schema_t schema;      /* the writer schema (a reference of ours) */
    slot *fields;              /* per record field: NULL unless mapped */
    size_t n_fields;
    int time_micros;           /* event_time_ms is a timestamp-micros */
    uint64_t record_no;
    /* the record being read */
    seq_event *ev;
    const char *key;           /* the attributes map's current key */
    int bad;                   /* a field was malformed: msg says which */
    char msg[200];
};

/* ---- the schema's JSON from the container header (magic, metadata map, sync) ---- */

/* Avro's zigzag varint long at *p (< end); -1 when truncated or longer than 10 bytes. */
static int read_long(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end) return -1;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

/* Finds "avro.schema" in the header's metadata: 1 (found), 0 (header longer than
 * the n bytes given), -1 (not an Avro container header). */
static int header_schema(const uint8_t *p, size_t n, const uint8_t **schema, size_t *slen)
{
    const uint8_t *end = p + n;
    if (n < 4) return 0;
    if (memcmp(p, "Obj\x01", 4) != 0) return -1;
    p += 4;
    for (;;) {
        int64_t count, skip;
        if (read_long(&p, end, &count) < 0) return 0;
        if (count == 0) return -1; /* metadata over and no schema */
        if (count < 0) {
            if (count == INT64_MIN || read_long(&p, end, &skip) < 0) return count == INT64_MIN ? -1 : 0;
            count = -count;
        }
        for (int64_t i = 0; i < count; i++) {
            int64_t kl, vl;
            if (read_long(&p, end, &kl) < 0) return 0;
            if (kl < 0) return -1;
            if ((uint64_t)kl > (uint64_t)(end - p)) return 0;
            const uint8_t *key = p;
            p += kl;
            if (read_long(&p, end, &vl) < 0) return 0;
            if (vl < 0) return -1;
            if ((uint64_t)vl > (uint64_t)(end - p)) return 0;
            if (kl == 11 && memcmp(key, "avro.schema", 11) == 0) {
                *schema = p;
                *slen = (size_t)vl;
                return 1;
            }
            p += vl;
        }
    }
}

/* The logicalType of a field's type: the type itself or a union branch, when it is an
 * object; NULL when none. */
static const char *logical_type(json_t *type)
{
    if (json_is_object(type)) return json_string_value(json_object_get(type, "logicalType"));
    size_t i;
    json_t *b;
    if (json_is_array(type))
        json_array_foreach(type, i, b) {
            const char *lt = json_is_object(b) ? logical_type(b) : NULL;
            if (lt) return lt;
        }
    return NULL;
}

/* Reads the header from f (then rewound) and sets time_micros. The header's size is
 * bounded (16 MiB) so that a hostile file cannot make this read all of it. */
static int read_logical_types(seq_avro_reader *r, FILE *f, const char *name, char *err,
                              size_t errlen)
{
    enum { MAX_HEADER = 16 << 20 };
    seq_buf head = {0};
    const uint8_t *schema = NULL;
    size_t slen = 0, got;
    int found = 0, rc = SEQ_EINVAL;
    uint8_t chunk[1 << 14];
    while (found == 0 && head.len < MAX_HEADER && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (seq_buf_append(&head, chunk, got) < 0) {
            rc = SEQ_EINTERNAL;
            goto out;
        }
        found = header_schema(head.data, head.len, &schema, &slen);
    }
    if (found != 1) {
        seq_errf(err, errlen, "%s: not an Avro object container file (no readable header)", name);
        goto out;
    }
    json_error_t je;
    json_t *s = json_loadb((const char *)schema, slen, 0, &je), *fields = json_object_get(s, "fields"), *fo;
    size_t i;
    json_array_foreach(fields, i, fo) {
        const char *fname = json_string_value(json_object_get(fo, "name"));
        const char *lt = fname && strcmp(fname, "event_time_ms") == 0
                             ? logical_type(json_object_get(fo, "type"))
                             : NULL;
        if (lt && strcmp(lt, "timestamp-micros") == 0) r->time_micros = 1;
    }
    json_decref(s); /* a schema jansson cannot read, avro-c refuses below */
    rewind(f);
    rc = SEQ_OK;
out:
    seq_buf_free(&head);
    return rc;
}

/* ---- slots: the value interface avro-c's reader writes through ---- */

/* Not const: avro_value_t holds a non-const pointer; never written. */
static avro_value_iface_t slot_iface, record_iface;

/* The first problem of the record is the one reported. */
static void bad(seq_avro_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(seq_avro_reader *r, const char *fmt, ...)
{
    if (r->bad++) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

static avro_type_t slot_type(const avro_value_iface_t *i, const void *self)
{
    (void)i;
    return avro_typeof(((const slot *)self)->schema);
}

static avro_schema_t slot_schema(const avro_value_iface_t *i, const void *self)
{
    (void)i;
    return ((const slot *)self)->schema;
}

static int slot_branch(const avro_value_iface_t *i, void *self, int d, avro_value_t *branch)
{
    slot *s = self;
    (void)i;
    if (d < 0 || (size_t)d >= s->n_branches) {
        avro_set_error("union discriminant %d out of range", d);
        return EINVAL; /* damaged data: the reader stops */
    }
    branch->iface = &slot_iface;
    branch->self = &s->branches[d];
    return 0;
}

static int slot_null(const avro_value_iface_t *i, void *self)
{
    (void)i, (void)self;
    return 0; /* absent: finish() names a missing required field */
}

static int set_number(slot *s, int64_t v, double d)
{
    seq_avro_reader *r = s->r;
    if (s->map_value) {
        seq_event_set_attr(r->def, r->ev, r->key, strlen(r->key), d);
        return 0;
    }
    if (s->field == F_TIME) {
        /* micros: floor division, so a time just before 1970 stays before it */
        r->ev->time_ms = !r->time_micros ? v : v >= 0 ? v / 1000 : -((-(v + 1)) / 1000) - 1;
        return 0;
    }
    if (v < 0) {
        bad(r, "%s: negative (%lld)", field_names[s->field], (long long)v);
        return 0;
    }
    if (s->field == F_USER) r->ev->user_id = (uint64_t)v;
    else r->ev->item_id = (uint64_t)v;
    return 0;
}

static int slot_long(const avro_value_iface_t *i, void *self, int64_t v)
{
    (void)i;
    return set_number(self, v, (double)v);
}

static int slot_int(const avro_value_iface_t *i, void *self, int32_t v)
{
    (void)i;
    return set_number(self, v, v);
}

static int slot_double(const avro_value_iface_t *i, void *self, double v)
{
    (void)i;
    return set_number(self, 0, v); /* only map values are doubles (type_fits) */
}

static int slot_float(const avro_value_iface_t *i, void *self, float v)
{
    (void)i;
    return set_number(self, 0, v);
}

/* avro-c hands over the string it read (size counts a terminating NUL); we copy it out
 * and free it. */
static int slot_string(const avro_value_iface_t *i, void *self, avro_wrapped_buffer_t *buf)
{
    slot *s = self;
    seq_avro_reader *r = s->r;
    const char *p = buf->buf;
    size_t n = buf->size && p[buf->size - 1] == '\0' ? buf->size - 1 : buf->size;
    char msg[160];
    (void)i;
    if (s->field == F_USER || s->field == F_ITEM) {
        uint64_t v;
        if (seq_event_parse_id(p, n, &v) == 0) *(s->field == F_USER ? &r->ev->user_id : &r->ev->item_id) = v;
        else bad(r, "%s: not a decimal id within uint64", field_names[s->field]);
    } else if ((s->field == F_TYPE ? seq_event_set_type(r->ev, p, n, msg, sizeof msg)
                                   : seq_event_set_id(r->ev, p, n, msg, sizeof msg)) != SEQ_OK) {
        bad(r, "%s", msg);
    }
    avro_wrapped_buffer_free(buf);
    return 0;
}

static int slot_add(const avro_value_iface_t *i, void *self, const char *key, avro_value_t *child,
                    size_t *index, int *is_new)
{
    slot *s = self;
    (void)i;
    if (index) *index = 0;
    if (is_new) *is_new = 1;
    s->r->key = key; /* valid until the value is read (avro-c frees it after) */
    child->iface = &slot_iface;
    child->self = s->values;
    return 0;
}

/* The types type_fits lets through need only these; anything else is refused by avro-c
 * (a NULL method is EINVAL), which can only happen on a file the schema check passed
 * but whose data lies: a damaged file. */
static avro_value_iface_t slot_iface = {
    .get_type = slot_type, .get_schema = slot_schema, .set_branch = slot_branch,
    .set_null = slot_null, .set_long = slot_long, .set_int = slot_int,
    .set_double = slot_double, .set_float = slot_float, .give_string_len = slot_string,
    .add = slot_add};

/* The record: its fields are the slots; unmapped fields have no interface, and avro-c
 * skips their data without building anything. self is the reader. */
static int rec_reset(const avro_value_iface_t *i, void *self)
{
    seq_avro_reader *r = self;
    (void)i;
    seq_event_reset(r->ev);
    r->bad = 0;
    return 0;
}

static avro_type_t rec_type(const avro_value_iface_t *i, const void *self)
{
    (void)i, (void)self;
    return AVRO_RECORD;
}

static avro_schema_t rec_schema(const avro_value_iface_t *i, const void *self)
{
    (void)i;
    return ((const seq_avro_reader *)self)->schema;
}

static int rec_size(const avro_value_iface_t *i, const void *self, size_t *size)
{
    (void)i;
    *size = ((const seq_avro_reader *)self)->n_fields;
    return 0;
}

static int rec_field(const avro_value_iface_t *i, const void *self, size_t index,
                     avro_value_t *child, const char **name)
{
    const seq_avro_reader *r = self;
    (void)i;
    if (name) *name = NULL;
    child->self = index < r->n_fields && r->fields[index].r ? &r->fields[index] : NULL;
    child->iface = child->self ? &slot_iface : NULL;
    return 0;
}

static avro_value_iface_t record_iface = {
    .reset = rec_reset, .get_type = rec_type, .get_schema = rec_schema,
    .get_size = rec_size, .get_by_index = rec_field};

/* ---- field types: what each field's writer type may be ---- */

static int type_fits(int field, avro_schema_t t)
{
    switch (field) {
    case F_USER:
    case F_ITEM: return is_avro_int64(t) || is_avro_int32(t) || is_avro_string(t);
    case F_TIME: return is_avro_int64(t);
    case F_TYPE:
    case F_ID: return is_avro_string(t);
    default: return 0;
    }
}

/* Numbers a map of attributes may hold. */
static int value_fits(avro_schema_t t)
{
    return is_avro_double(t) || is_avro_float(t) || is_avro_int32(t) || is_avro_int64(t);
}

static void slot_free(slot *s)
{
    for (size_t i = 0; s->branches && i < s->n_branches; i++) slot_free(&s->branches[i]);
    free(s->branches);
    if (s->values) slot_free(s->values);
    free(s->values);
}

/* Builds the slot of schema node t for field f (map_value: inside the attributes map):
 * -1 when t cannot hold the field, -2 out of memory. A union's branches must each be
 * null or fit; a union inside a union does not occur (Avro forbids it). */
static int slot_init(slot *s, seq_avro_reader *r, int f, int map_value, avro_schema_t t)
{
    *s = (slot){.r = r, .field = f, .map_value = map_value, .schema = t};
    if (is_avro_union(t)) {
        s->n_branches = avro_schema_union_size(t);
        if (!(s->branches = calloc(s->n_branches ? s->n_branches : 1, sizeof *s->branches)))
            return -2;
        for (size_t i = 0; i < s->n_branches; i++) {
            avro_schema_t b = avro_schema_union_branch(t, (int)i);
            if (is_avro_null(b)) s->branches[i] = (slot){.r = r, .field = f, .schema = b};
            else if (is_avro_union(b)) return -1;
            else {
                int rc = slot_init(&s->branches[i], r, f, map_value, b);
                if (rc) return rc;
            }
        }
        return 0;
    }
    if (map_value) return value_fits(t) ? 0 : -1;
    if (f != F_ATTRS) return type_fits(f, t) ? 0 : -1;
    if (!is_avro_map(t)) return -1;
    if (!(s->values = calloc(1, sizeof *s->values))) return -2;
    return slot_init(s->values, r, f, 1, avro_schema_map_values(t));
}

static const char *const expected[F_N] = {
    "long, int or string", "long (or timestamp-millis / timestamp-micros)", "string",
    "long, int or string", "string", "map of double"};

static int map_fields(seq_avro_reader *r, const char *name, char *err, size_t errlen)
{
    if (!is_avro_record(r->schema)) {
        seq_errf(err, errlen, "%s: the writer schema is not a record", name);
        return SEQ_EINVAL;
    }
    r->n_fields = avro_schema_record_size(r->schema);
    if (!(r->fields = calloc(r->n_fields ? r->n_fields : 1, sizeof *r->fields)))
        return SEQ_EINTERNAL;
    for (size_t i = 0; i < r->n_fields; i++) {
        const char *fname = avro_schema_record_field_name(r->schema, (int)i);
        for (int f = 0; fname && f < F_N; f++) {
            if (strcmp(fname, field_names[f]) != 0) continue;
            int rc = slot_init(&r->fields[i], r, f, 0,
                               avro_schema_record_field_get_by_index(r->schema, (int)i));
            if (rc == -2) return SEQ_EINTERNAL;
            if (rc == -1) {
                seq_errf(err, errlen, "%s: field %s: its type cannot hold it (expected %s, "
                         "or a union of that with null)", name, fname, expected[f]);
                return SEQ_EINVAL;
            }
        }
    }
    return SEQ_OK;
}

/* avro-c allocates what a file's bytes claim (a block's size, a string's length) before
 * reading it; a damaged or hostile file could claim terabytes. Its allocations go
 * through this instead of realloc: one larger than SEQ_AVRO_MAX_ALLOC fails, which
 * avro-c reports as an error (a damaged file), and no real file needs more (Spark writes
 * blocks of ~64 KiB, Java's default; ids and types are short). Process-wide, set once. */
#define SEQ_AVRO_MAX_ALLOC ((size_t)64 << 20)

/* What avro-c holds (seq_avro_live_bytes), per thread: a reader allocates and frees on
 * the thread that reads it, and a locked add on every allocation cost ~4% of a build. */
static _Thread_local size_t live_bytes;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        if (ptr) live_bytes -= osize;
        free(ptr);
        return NULL;
    }
    void *p = nsize > SEQ_AVRO_MAX_ALLOC ? NULL : realloc(ptr, nsize);
    if (p) live_bytes += nsize - (ptr ? osize : 0);
    return p;
}

size_t seq_avro_live_bytes(void) { return live_bytes; }

/* avro-c 1.11.1 leaks on damaged files: avro_file_reader_fp, when the first block cannot
 * be read, frees neither its block reader, the writer schema nor the metadata it read;
 * a string or bytes value cut short by the end of its block is not freed (upstream's
 * later versions fix the first). A leak per damaged file, once, in a process that then
 * fails its build. Under LeakSanitizer (the ASan suite, the fuzz target) avro-c's
 * allocations inside those calls are not tracked; instead every avro-c allocation is
 * counted (capped_alloc), and the fuzz target checks that reading an undamaged file to
 * its end and closing it gives back all of them, so a leak of ours still shows. */
#if defined(__SANITIZE_ADDRESS__)
#define SEQ_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEQ_LSAN 1
#endif
#endif
#ifdef SEQ_LSAN
#include <sanitizer/lsan_interface.h>
static void lsan_off(void) { __lsan_disable(); }
static void lsan_on(void) { __lsan_enable(); }
#else
static void lsan_off(void) {}
static void lsan_on(void) {}
#endif

static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;
static void set_allocator(void) { avro_set_allocator(capped_alloc, NULL); }

static int open_fp(const seq_def *def, FILE *f, const char *name, seq_avro_reader **out,
                   char *err, size_t errlen)
{
    pthread_once(&alloc_once, set_allocator);
    seq_avro_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(f);
        return SEQ_EINTERNAL;
    }
    r->def = def;
    int rc = read_logical_types(r, f, name, err, errlen);
    if (rc != SEQ_OK) {
        fclose(f);
        free(r);
        return rc;
    }
    lsan_off();
    int bad_file = avro_file_reader_fp(f, name, 1, &r->file) != 0; /* it closes f either way */
    lsan_on();
    if (bad_file) {
        seq_errf(err, errlen, "%s: %s", name, avro_strerror());
        free(r);
        return SEQ_EINVAL;
    }
    r->schema = avro_file_reader_get_writer_schema(r->file);
    rc = map_fields(r, name, err, errlen);
    if (rc != SEQ_OK) {
        seq_avro_close(r);
        return rc;
    }
    *out = r;
    return SEQ_OK;
}

int seq_avro_open(const seq_def *def, const char *path, seq_avro_reader **out, char *err,
                  size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        seq_errf(err, errlen, "%s: %s", path, strerror(errno));
        return SEQ_ENOTFOUND;
    }
    return open_fp(def, f, path, out, err, errlen);
}

int seq_avro_open_mem(const seq_def *def, const void *data, size_t len, seq_avro_reader **out,
                      char *err, size_t errlen)
{
    FILE *f = len ? fmemopen((void *)data, len, "rb") : NULL;
    if (!f) {
        seq_errf(err, errlen, "avro input: empty");
        return SEQ_EINVAL;
    }
    return open_fp(def, f, "avro input", out, err, errlen);
}

/* ---- records ---- */

int seq_avro_next(seq_avro_reader *r, seq_event *ev, char *msg, size_t msglen)
{
    avro_value_t rec = {.iface = &record_iface, .self = r};
    r->ev = ev;
    lsan_off();
    int rc = avro_file_reader_read_value(r->file, &rec);
    lsan_on();
    if (rc == EOF) return 0;
    if (rc != 0) {
        seq_errf(msg, msglen, "after record %llu: damaged file: %s",
                 (unsigned long long)r->record_no, avro_strerror());
        return -1;
    }
    r->record_no++;
    if (r->bad) {
        seq_errf(msg, msglen, "%s", r->msg);
        return 2;
    }
    return seq_event_finish(ev, msg, msglen) == SEQ_OK ? 1 : 2;
}

uint64_t seq_avro_record_no(const seq_avro_reader *r) { return r->record_no; }

void seq_avro_close(seq_avro_reader *r)
{
    if (!r) return;
    for (size_t i = 0; r->fields && i < r->n_fields; i++) slot_free(&r->fields[i]);
    free(r->fields);
    if (r->schema) avro_schema_decref(r->schema);
    if (r->file) avro_file_reader_close(r->file);
    free(r);
}
