/* Event decoding: the first step of both data paths. A Kafka message value (stream) or
 * one batch input record (builder) becomes a seq_event, with attributes resolved to the
 * definition's attribute indexes. Protobuf is decoded by hand (one flat message; the
 * builder needs ~1M events/s, protobuf-c's unpack allocates per message); JSON goes
 * through jansson (convenience format, not the fast path). */
#include "event.h"

#include <jansson.h>
#include <string.h>

#include "common.h"

/* ---------- shared finishing steps ---------- */

static int set_type(seq_event *ev, const char *p, size_t n, char *err, size_t errlen)
{
    if (n > SEQ_TYPE_MAX) {
        seq_errf(err, errlen, "event_type: longer than %d bytes", SEQ_TYPE_MAX);
        return SEQ_EINVAL;
    }
    /* types and ids are C strings past this point (definition lookup, keys, JSON): a NUL
     * inside would make "click\0x" match "click" (a fuzz finding, Avro strings) */
    if (memchr(p, '\0', n)) {
        seq_errf(err, errlen, "event_type: contains a NUL byte");
        return SEQ_EINVAL;
    }
    memcpy(ev->type, p, n);
    ev->type[n] = '\0';
    ev->type_len = (uint32_t)n;
    return SEQ_OK;
}

static int set_id(seq_event *ev, const char *p, size_t n, char *err, size_t errlen)
{
    if (n > SEQ_ID_MAX) {
        seq_errf(err, errlen, "event_id: longer than %d bytes", SEQ_ID_MAX);
        return SEQ_EINVAL;
    }
    if (memchr(p, '\0', n)) {
        seq_errf(err, errlen, "event_id: contains a NUL byte");
        return SEQ_EINVAL;
    }
    memcpy(ev->id, p, n);
    ev->id[n] = '\0';
    ev->id_len = (uint32_t)n;
    return SEQ_OK;
}

static void set_attr(const seq_def *def, seq_event *ev, const char *name, size_t n, double v)
{
    int i = seq_def_attr_index(def, name, n);
    if (i < 0) return; /* not used by any column or filter */
    ev->attr_present |= (uint64_t)1 << i;
    ev->attr[i] = v;
}

/* Required fields present; derive the id when none was given. */
static int finish(seq_event *ev, char *err, size_t errlen)
{
    if (ev->user_id == 0) {
        seq_errf(err, errlen, "user_id: missing");
        return SEQ_EINVAL;
    }
    if (ev->time_ms == 0) {
        seq_errf(err, errlen, "event_time_ms: missing");
        return SEQ_EINVAL;
    }
    if (ev->type_len == 0) {
        seq_errf(err, errlen, "event_type: missing");
        return SEQ_EINVAL;
    }
    if (ev->id_len == 0) seq_event_derive_id(ev);
    return SEQ_OK;
}

static void reset(seq_event *ev)
{
    ev->user_id = 0;
    ev->time_ms = 0;
    ev->item_id = 0;
    ev->type[0] = '\0';
    ev->type_len = 0;
    ev->id[0] = '\0';
    ev->id_len = 0;
    ev->attr_present = 0; /* attr[] is only read where present: not cleared */
}

/* ---------- protobuf wire format ---------- */

typedef struct {
    const uint8_t *p, *end;
} pb_reader;

/* 0, or -1 when truncated or longer than 10 bytes. */
static inline int pb_varint(pb_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int pb_len(pb_reader *r, const uint8_t **data, size_t *n)
{
    uint64_t len;
    if (pb_varint(r, &len) < 0 || len > (uint64_t)(r->end - r->p)) return -1;
    *data = r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

/* Skips the value of an unknown field. Groups (wire types 3, 4) are not proto3. */
static int pb_skip(pb_reader *r, uint32_t wt)
{
    uint64_t v;
    const uint8_t *d;
    size_t n;
    switch (wt) {
    case 0: return pb_varint(r, &v);
    case 1: n = 8; break;
    case 5: n = 4; break;
    case 2: return pb_len(r, &d, &n);
    default: return -1;
    }
    if ((size_t)(r->end - r->p) < n) return -1;
    r->p += n;
    return 0;
}

/* Reads a tag; *field 0 at the end of input. */
static int pb_tag(pb_reader *r, uint32_t *field, uint32_t *wt)
{
    uint64_t tag;
    *field = 0;
    if (r->p == r->end) return 0;
    if (pb_varint(r, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return -1;
    *field = (uint32_t)(tag >> 3);
    *wt = (uint32_t)(tag & 7);
    return 0;
}

/* One map<string,double> entry: key 1, value 2; either may be absent (defaults). */
static int pb_attr(const seq_def *def, seq_event *ev, const uint8_t *d, size_t n)
{
    pb_reader r = {d, d + n};
    const uint8_t *key = (const uint8_t *)"";
    size_t klen = 0;
    double val = 0;
    uint32_t f, wt;
    for (;;) {
        if (pb_tag(&r, &f, &wt) < 0) return -1;
        if (f == 0) break;
        if (f == 1 && wt == 2) {
            if (pb_len(&r, &key, &klen) < 0) return -1;
        } else if (f == 2 && wt == 1) {
            if (r.end - r.p < 8) return -1;
            memcpy(&val, r.p, 8); /* little-endian host */
            r.p += 8;
        } else if (f <= 2 || pb_skip(&r, wt) < 0) {
            return -1;
        }
    }
    set_attr(def, ev, (const char *)key, klen, val);
    return 0;
}

static const char *const pb_names[] = {"", "user_id", "event_time_ms", "event_type", "item_id",
                                       "event_id", "attributes"};
static const uint8_t pb_wire[] = {0, 0, 0, 2, 0, 2, 2};

/* One known field (1..6) with the right wire type. */
static int pb_field(const seq_def *def, pb_reader *r, uint32_t f, seq_event *ev, char *err,
                    size_t errlen)
{
    uint64_t v = 0;
    const uint8_t *d = NULL;
    size_t n = 0;
    if (pb_wire[f] == 0 ? pb_varint(r, &v) < 0 : pb_len(r, &d, &n) < 0) {
        seq_errf(err, errlen, "%s: truncated", pb_names[f]);
        return SEQ_EINVAL;
    }
    switch (f) {
    case 1: ev->user_id = v; return SEQ_OK;
    case 2: ev->time_ms = (int64_t)v; return SEQ_OK;
    case 3: return set_type(ev, (const char *)d, n, err, errlen);
    case 4: ev->item_id = v; return SEQ_OK;
    case 5: return set_id(ev, (const char *)d, n, err, errlen);
    default:
        if (pb_attr(def, ev, d, n) == 0) return SEQ_OK;
        seq_errf(err, errlen, "attributes: malformed map entry");
        return SEQ_EINVAL;
    }
}

int seq_event_decode_pb(const seq_def *def, const uint8_t *buf, size_t len, seq_event *ev,
                        char *err, size_t errlen)
{
    pb_reader r = {buf, buf + len};
    uint32_t f, wt;
    reset(ev);
    for (;;) {
        if (pb_tag(&r, &f, &wt) < 0) {
            seq_errf(err, errlen, "protobuf: bad tag at byte %zu", (size_t)(r.p - buf));
            return SEQ_EINVAL;
        }
        if (f == 0) break;
        if (f > 6) {
            if (pb_skip(&r, wt) < 0) {
                seq_errf(err, errlen, "protobuf: bad unknown field %u", f);
                return SEQ_EINVAL;
            }
            continue;
        }
        if (wt != pb_wire[f]) {
            seq_errf(err, errlen, "%s: wrong wire type %u", pb_names[f], wt);
            return SEQ_EINVAL;
        }
        int rc = pb_field(def, &r, f, ev, err, errlen);
        if (rc != SEQ_OK) return rc;
    }
    return finish(ev, err, errlen);
}

/* ---------- Confluent framing ---------- */

/* A zigzag varint of at most 5 bytes (Confluent writes int32 values). */
static int zigzag32(pb_reader *r, int64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -2;
}

int seq_event_unframe_confluent(const uint8_t *buf, size_t len, size_t *payload_off, char *err,
                                size_t errlen)
{
    if (len == 0 || buf[0] != 0) {
        seq_errf(err, errlen, "confluent: %s", len ? "no magic byte 0" : "empty value");
        return SEQ_EINVAL;
    }
    if (len < 6) {
        seq_errf(err, errlen, "confluent: truncated header (%zu of at least 6 bytes)", len);
        return SEQ_EINVAL;
    }
    pb_reader r = {buf + 5, buf + len};
    int64_t count, idx;
    int rc = zigzag32(&r, &count);
    if (rc == 0 && count < 0) rc = -3;
    /* each index takes at least one byte: a count above what is left is truncated */
    if (rc == 0 && count > r.end - r.p) rc = -1;
    for (int64_t i = 0; rc == 0 && i < count; i++) rc = zigzag32(&r, &idx);
    if (rc != 0) {
        seq_errf(err, errlen, "confluent: %s message indexes",
                 rc == -1 ? "truncated" : rc == -2 ? "over-long varint in" : "negative count of");
        return SEQ_EINVAL;
    }
    *payload_off = (size_t)(r.p - buf);
    return SEQ_OK;
}

int seq_event_decode_confluent_pb(const seq_def *def, const uint8_t *buf, size_t len,
                                  seq_event *ev, char *err, size_t errlen)
{
    size_t off;
    int rc = seq_event_unframe_confluent(buf, len, &off, err, errlen);
    return rc ? rc : seq_event_decode_pb(def, buf + off, len - off, ev, err, errlen);
}

/* ---------- JSON ---------- */

/* Full uint64 range from decimal digits only; -1 on garbage or overflow. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* An id: integer >= 0 or a decimal string. Absent (or null) leaves *out at 0. */
static int json_id(json_t *obj, const char *key, uint64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return SEQ_OK;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return SEQ_OK;
    }
    if (json_is_string(v) && parse_u64(json_string_value(v), json_string_length(v), out) == 0)
        return SEQ_OK;
    seq_errf(err, errlen, "%s: must be an integer >= 0 or a decimal string within uint64", key);
    return SEQ_EINVAL;
}

static int json_strfield(json_t *obj, const char *key, json_t **out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return SEQ_OK;
    if (!json_is_string(v)) {
        seq_errf(err, errlen, "%s: must be a string", key);
        return SEQ_EINVAL;
    }
    *out = v;
    return SEQ_OK;
}

static int json_attrs(const seq_def *def, json_t *obj, seq_event *ev, char *err, size_t errlen)
{
    json_t *a = json_object_get(obj, "attributes"), *v;
    const char *key;
    if (!a || json_is_null(a)) return SEQ_OK;
    if (!json_is_object(a)) {
        seq_errf(err, errlen, "attributes: must be an object");
        return SEQ_EINVAL;
    }
    json_object_foreach(a, key, v) {
        if (!json_is_number(v)) {
            seq_errf(err, errlen, "attributes.%s: must be a number", key);
            return SEQ_EINVAL;
        }
        set_attr(def, ev, key, strlen(key), json_number_value(v));
    }
    return SEQ_OK;
}

static int json_fields(const seq_def *def, json_t *obj, seq_event *ev, char *err, size_t errlen)
{
    json_t *t, *id, *tm = json_object_get(obj, "event_time_ms");
    int rc;
    if ((rc = json_id(obj, "user_id", &ev->user_id, err, errlen)) != SEQ_OK) return rc;
    if ((rc = json_id(obj, "item_id", &ev->item_id, err, errlen)) != SEQ_OK) return rc;
    if (tm && !json_is_null(tm)) {
        if (!json_is_integer(tm)) {
            seq_errf(err, errlen, "event_time_ms: must be an integer");
            return SEQ_EINVAL;
        }
        ev->time_ms = json_integer_value(tm);
    }
    if ((rc = json_strfield(obj, "event_type", &t, err, errlen)) != SEQ_OK) return rc;
    if (t && (rc = set_type(ev, json_string_value(t), json_string_length(t), err, errlen)))
        return rc;
    if ((rc = json_strfield(obj, "event_id", &id, err, errlen)) != SEQ_OK) return rc;
    if (id && (rc = set_id(ev, json_string_value(id), json_string_length(id), err, errlen)))
        return rc;
    return json_attrs(def, obj, ev, err, errlen);
}

int seq_event_decode_json(const seq_def *def, const char *buf, size_t len, seq_event *ev,
                          char *err, size_t errlen)
{
    json_error_t jerr;
    reset(ev);
    json_t *obj = json_loadb(buf, len, 0, &jerr);
    if (!obj) {
        seq_errf(err, errlen, "json: %s (column %d)", jerr.text, jerr.column);
        return SEQ_EINVAL;
    }
    int rc = SEQ_EINVAL;
    if (!json_is_object(obj))
        seq_errf(err, errlen, "json: event must be an object");
    else if ((rc = json_fields(def, obj, ev, err, errlen)) == SEQ_OK)
        rc = finish(ev, err, errlen);
    json_decref(obj);
    return rc;
}

/* ---------- derived id and clock check ---------- */

/* Writes v in decimal at p; returns the length. */
static size_t put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

static size_t put_i64(char *p, int64_t v)
{
    if (v >= 0) return put_u64(p, (uint64_t)v);
    p[0] = '-';
    return 1 + put_u64(p + 1, (uint64_t)0 - (uint64_t)v);
}

void seq_event_derive_id(seq_event *ev)
{
    static const char hex[] = "0123456789abcdef";
    char text[24 + 1 + 21 + 1 + SEQ_TYPE_MAX + 1 + 24];
    size_t n = put_u64(text, ev->user_id);
    text[n++] = ':';
    n += put_i64(text + n, ev->time_ms);
    text[n++] = ':';
    memcpy(text + n, ev->type, ev->type_len);
    n += ev->type_len;
    text[n++] = ':';
    n += put_u64(text + n, ev->item_id);
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)text[i];
        h *= 1099511628211ull;
    }
    ev->id[0] = 'd';
    for (int i = 0; i < 16; i++) ev->id[1 + i] = hex[(h >> (60 - 4 * i)) & 0xf];
    ev->id[17] = '\0';
    ev->id_len = 17;
}

int seq_event_check_time(const seq_def *def, const seq_event *ev, int64_t now_ms, char *err,
                         size_t errlen)
{
    /* unsigned difference: no overflow for extreme times */
    if (ev->time_ms > now_ms &&
        (uint64_t)ev->time_ms - (uint64_t)now_ms > (uint64_t)def->max_future_ms) {
        seq_errf(err, errlen, "event_time_ms: %lld is more than max_future_ms (%lld) ahead of now (%lld)",
                 (long long)ev->time_ms, (long long)def->max_future_ms, (long long)now_ms);
        return SEQ_EINVAL;
    }
    return SEQ_OK;
}

/* ---------- the same steps for decoders outside this file (engine/input_avro.c) ---------- */

void seq_event_reset(seq_event *ev) { reset(ev); }

int seq_event_set_type(seq_event *ev, const char *p, size_t n, char *err, size_t errlen)
{
    return set_type(ev, p, n, err, errlen);
}

int seq_event_set_id(seq_event *ev, const char *p, size_t n, char *err, size_t errlen)
{
    return set_id(ev, p, n, err, errlen);
}

void seq_event_set_attr(const seq_def *def, seq_event *ev, const char *name, size_t n, double v)
{
    set_attr(def, ev, name, n, v);
}

int seq_event_finish(seq_event *ev, char *err, size_t errlen) { return finish(ev, err, errlen); }

int seq_event_parse_id(const char *s, size_t n, uint64_t *out) { return parse_u64(s, n, out); }
