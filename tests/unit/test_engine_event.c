/* Event decoding (protobuf by hand, cross-checked against protobuf-c's encoder; JSON),
 * id derivation and the clock check. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "engine/event.h"
#include "seqd/v1/seqd.pb-c.h"
#include "testlib.h"

static const char DEF[] =
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":86400000,\"sequences\":[{\"name\":\"e\","
    "\"event_types\":[\"click\",\"view\"],\"max_length\":10,\"retention_ms\":7200000,"
    "\"columns\":[\"dwell_ms\",\"pos\"]}]}";

static seq_def *def;
static seq_event ev;
static char err[256];

static int dwell, pos;

/* protobuf-c encoding of an Event; returns the length in buf. */
static size_t encode(uint64_t user, int64_t t, const char *type, uint64_t item, const char *id,
                     const char *k1, double v1, uint8_t *buf)
{
    Seqd__V1__Event e = SEQD__V1__EVENT__INIT;
    Seqd__V1__Event__AttributesEntry a = SEQD__V1__EVENT__ATTRIBUTES_ENTRY__INIT;
    Seqd__V1__Event__AttributesEntry *ap[1] = {&a};
    e.user_id = user;
    e.event_time_ms = t;
    e.event_type = (char *)type;
    e.item_id = item;
    e.event_id = (char *)id;
    if (k1) {
        a.key = (char *)k1;
        a.value = v1;
        e.n_attributes = 1;
        e.attributes = ap;
    }
    return seqd__v1__event__pack(&e, buf);
}

static int decode_pb(const uint8_t *b, size_t n)
{
    err[0] = '\0';
    return seq_event_decode_pb(def, b, n, &ev, err, sizeof err);
}

static int decode_json(const char *s)
{
    err[0] = '\0';
    return seq_event_decode_json(def, s, strlen(s), &ev, err, sizeof err);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static void test_derive_id(void)
{
    char want[32];
    snprintf(want, sizeof want, "d%016llx", (unsigned long long)fnv1a("42:1764000000000:click:7"));
    memset(&ev, 0, sizeof ev);
    ev.user_id = 42;
    ev.time_ms = 1764000000000LL;
    strcpy(ev.type, "click");
    ev.type_len = 5;
    ev.item_id = 7;
    seq_event_derive_id(&ev);
    CHECK(strcmp(ev.id, want) == 0);
    CHECK_EQ_INT(ev.id_len, 17);
    /* negative time and the extreme uint64 */
    ev.time_ms = -5;
    ev.user_id = UINT64_MAX;
    seq_event_derive_id(&ev);
    snprintf(want, sizeof want, "d%016llx",
             (unsigned long long)fnv1a("18446744073709551615:-5:click:7"));
    CHECK(strcmp(ev.id, want) == 0);
}

static void test_pb_roundtrip(void)
{
    uint8_t buf[512];
    size_t n = encode(42, 1764000000000LL, "click", 7, "e-1", "dwell_ms", 1200.5, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_OK);
    CHECK(ev.user_id == 42 && ev.time_ms == 1764000000000LL && ev.item_id == 7);
    CHECK(strcmp(ev.type, "click") == 0 && ev.type_len == 5);
    CHECK(strcmp(ev.id, "e-1") == 0 && ev.id_len == 3);
    CHECK(ev.attr_present == (1ull << dwell));
    CHECK(ev.attr[dwell] == 1200.5);

    /* no id: derived, same as derive_id on the same fields */
    n = encode(42, 1764000000000LL, "click", 7, "", "other", 1, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_OK);
    char want[32];
    snprintf(want, sizeof want, "d%016llx", (unsigned long long)fnv1a("42:1764000000000:click:7"));
    CHECK(strcmp(ev.id, want) == 0);
    CHECK(ev.attr_present == 0); /* attribute unknown to the definition: ignored */

    /* negative time (10-byte varint), big ids */
    n = encode(UINT64_MAX, -1000, "view", UINT64_MAX, "x", NULL, 0, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_OK);
    CHECK(ev.user_id == UINT64_MAX && ev.time_ms == -1000 && ev.item_id == UINT64_MAX);
}

static void test_pb_missing(void)
{
    uint8_t buf[512];
    size_t n = encode(0, 5, "click", 1, "a", NULL, 0, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_EINVAL);
    CHECK(strstr(err, "user_id: missing") != NULL);
    n = encode(1, 0, "click", 1, "a", NULL, 0, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_EINVAL);
    CHECK(strstr(err, "event_time_ms: missing") != NULL);
    n = encode(1, 5, "", 1, "a", NULL, 0, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_EINVAL);
    CHECK(strstr(err, "event_type: missing") != NULL);
    CHECK_EQ_INT(decode_pb(buf, 0), SEQ_EINVAL); /* empty message */
    char longt[80];
    memset(longt, 'a', 64);
    longt[64] = '\0';
    n = encode(1, 5, longt, 1, "a", NULL, 0, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_EINVAL);
    CHECK(strstr(err, "event_type: longer than 63") != NULL);
    longt[63] = '\0';
    n = encode(1, 5, longt, 1, "a", NULL, 0, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_OK);
    char longid[200];
    memset(longid, 'i', 128);
    longid[128] = '\0';
    n = encode(1, 5, "click", 1, longid, NULL, 0, buf);
    CHECK_EQ_INT(decode_pb(buf, n), SEQ_EINVAL);
    CHECK(strstr(err, "event_id: longer than 127") != NULL);
    /* a NUL inside a type or an id (protobuf strings and JSON's \u0000 can carry one):
     * refused, or "click\0x" would pass as "click" */
    const uint8_t nul_type[] = {0x08, 0x01, 0x10, 0x05, 0x1a, 0x07, 'c', 'l', 'i', 'c', 'k', 0, 'x'};
    CHECK_EQ_INT(decode_pb(nul_type, sizeof nul_type), SEQ_EINVAL);
    CHECK(strstr(err, "event_type: contains a NUL byte") != NULL);
    uint8_t nul_id[64];
    n = encode(1, 5, "click", 1, NULL, NULL, 0, nul_id);
    const uint8_t id_field[] = {(5 << 3) | 2, 0x03, 'a', 0, 'b'};
    memcpy(nul_id + n, id_field, sizeof id_field);
    CHECK_EQ_INT(decode_pb(nul_id, n + sizeof id_field), SEQ_EINVAL);
    CHECK(strstr(err, "event_id: contains a NUL byte") != NULL);
    CHECK_EQ_INT(decode_json("{\"user_id\":1,\"event_time_ms\":5,\"event_type\":\"click\","
                             "\"event_id\":\"a\\u0000b\"}"),
                 SEQ_EINVAL); /* jansson refuses \u0000 itself */
}

static void test_pb_wire(void)
{
    /* user_id=1, time=2, type="click", then unknown fields of every wire type */
    const uint8_t base[] = {0x08, 0x01, 0x10, 0x02, 0x1a, 0x05, 'c', 'l', 'i', 'c', 'k'};
    uint8_t b[64];
    memcpy(b, base, sizeof base);
    const uint8_t unknown[] = {0x38, 0x96, 0x01,                   /* 7 varint */
                               0x41, 1, 2, 3, 4, 5, 6, 7, 8,       /* 8 fixed64 */
                               0x4a, 0x02, 'h', 'i',               /* 9 len */
                               0x55, 1, 2, 3, 4,                   /* 10 fixed32 */
                               0x80, 0x01, 0x05};                  /* 16 varint (2-byte tag) */
    memcpy(b + sizeof base, unknown, sizeof unknown);
    CHECK_EQ_INT(decode_pb(b, sizeof base + sizeof unknown), SEQ_OK);
    CHECK(ev.user_id == 1 && ev.time_ms == 2);

    /* repeated scalar: last wins */
    const uint8_t twice[] = {0x08, 0x01, 0x10, 0x02, 0x1a, 0x01, 'x', 0x08, 0x09, 0x1a, 0x04, 'v', 'i', 'e', 'w'};
    CHECK_EQ_INT(decode_pb(twice, sizeof twice), SEQ_OK);
    CHECK(ev.user_id == 9 && strcmp(ev.type, "view") == 0);

    /* wrong wire type for a known field */
    const uint8_t wrong[] = {0x09, 1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x02, 0x1a, 0x01, 'x'};
    CHECK_EQ_INT(decode_pb(wrong, sizeof wrong), SEQ_EINVAL);
    CHECK(strstr(err, "user_id: wrong wire type") != NULL);
    const uint8_t wrong2[] = {0x08, 0x01, 0x10, 0x02, 0x18, 0x01};
    CHECK_EQ_INT(decode_pb(wrong2, sizeof wrong2), SEQ_EINVAL);
    CHECK(strstr(err, "event_type: wrong wire type") != NULL);

    /* truncations at every length of a valid message must fail cleanly */
    uint8_t full[256];
    size_t n = encode(42, 1764000000000LL, "click", 7, "e-1", "dwell_ms", 3, full);
    for (size_t k = 1; k < n; k++) {
        int rc = decode_pb(full, k);
        /* a prefix can be a valid shorter message only at field boundaries with all
         * required fields present: the attributes come last, so any cut inside them fails */
        if (k > n - 20) CHECK_EQ_INT(rc, SEQ_EINVAL);
    }
    /* field number 0, group wire types, overlong varint */
    const uint8_t zero[] = {0x00, 0x01};
    CHECK_EQ_INT(decode_pb(zero, sizeof zero), SEQ_EINVAL);
    const uint8_t group[] = {0x08, 0x01, 0x10, 0x02, 0x1a, 0x01, 'x', 0x3b, 0x3c};
    CHECK_EQ_INT(decode_pb(group, sizeof group), SEQ_EINVAL);
    const uint8_t longv[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_EQ_INT(decode_pb(longv, sizeof longv), SEQ_EINVAL);
    const uint8_t biglen[] = {0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x'};
    CHECK_EQ_INT(decode_pb(biglen, sizeof biglen), SEQ_EINVAL);
}

static void test_pb_attrs(void)
{
    /* map entries: value before key, repeated key (last wins), missing value (0),
     * entry with an unknown field, and a bad value wire type */
    const uint8_t b[] = {0x08, 0x01, 0x10, 0x02, 0x1a, 0x01, 'x',
                         0x32, 0x0e, 0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x0a, 0x03, 'p', 'o', 's',
                         0x32, 0x10, 0x0a, 0x08, 'd', 'w', 'e', 'l', 'l', '_', 'm', 's', 0x18, 0x05,
                         0x10, 0x03}; /* last two bytes: field 2 as varint -> wrong */
    CHECK_EQ_INT(decode_pb(b, sizeof b - 2), SEQ_EINVAL); /* length 0x10 overruns */
    uint8_t c[sizeof b];
    memcpy(c, b, sizeof b);
    c[24] = 0x0c; /* second entry: key + unknown varint field 3 */
    CHECK_EQ_INT(decode_pb(c, sizeof c - 2), SEQ_OK);
    CHECK(ev.attr_present == ((1ull << pos) | (1ull << dwell)));
    CHECK(ev.attr[pos] == 1.0);
    CHECK(ev.attr[dwell] == 0.0);
    c[24] = 0x0e; /* include the varint value 2: wrong wire type for value */
    CHECK_EQ_INT(decode_pb(c, sizeof c), SEQ_EINVAL);
    CHECK(strstr(err, "attributes") != NULL);
}

static void test_json(void)
{
    CHECK_EQ_INT(decode_json("{\"user_id\": 42, \"event_time_ms\": 1764000000000, \"event_type\": "
                             "\"click\", \"item_id\": 7, \"event_id\": \"e-1\", \"attributes\": "
                             "{\"dwell_ms\": 1200, \"pos\": 2.5, \"zzz\": 1}, \"extra\": [1]}"),
                 SEQ_OK);
    CHECK(ev.user_id == 42 && ev.time_ms == 1764000000000LL && ev.item_id == 7);
    CHECK(strcmp(ev.type, "click") == 0 && strcmp(ev.id, "e-1") == 0);
    CHECK(ev.attr_present == ((1ull << pos) | (1ull << dwell)));
    CHECK(ev.attr[dwell] == 1200 && ev.attr[pos] == 2.5);

    /* a repeated key keeps its last value (top level and attributes) */
    CHECK_EQ_INT(decode_json("{\"user_id\":1,\"user_id\":2,\"event_time_ms\":5,\"event_type\":"
                             "\"x\",\"attributes\":{\"pos\":1,\"pos\":4}}"),
                 SEQ_OK);
    CHECK(ev.user_id == 2 && ev.attr[pos] == 4);

    /* string ids over 2^53, derived id identical to the protobuf path */
    CHECK_EQ_INT(decode_json("{\"user_id\":\"18446744073709551615\",\"event_time_ms\":5,"
                             "\"event_type\":\"view\",\"item_id\":\"9007199254740993\"}"),
                 SEQ_OK);
    CHECK(ev.user_id == UINT64_MAX && ev.item_id == 9007199254740993ull);
    char want[32];
    snprintf(want, sizeof want, "d%016llx",
             (unsigned long long)fnv1a("18446744073709551615:5:view:9007199254740993"));
    CHECK(strcmp(ev.id, want) == 0);

    static const struct {
        const char *js, *msg;
    } bad[] = {
        {"{\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: missing"},
        {"{\"user_id\":0,\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: missing"},
        {"{\"user_id\":1,\"event_type\":\"x\"}", "event_time_ms: missing"},
        {"{\"user_id\":1,\"event_time_ms\":5}", "event_type: missing"},
        {"{\"user_id\":1,\"event_time_ms\":5,\"event_type\":\"\"}", "event_type: missing"},
        {"{\"user_id\":-1,\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: must be"},
        {"{\"user_id\":\"18446744073709551616\",\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: must be"},
        {"{\"user_id\":\"12a\",\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: must be"},
        {"{\"user_id\":\"-3\",\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: must be"},
        {"{\"user_id\":\"\",\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: must be"},
        {"{\"user_id\":1.5,\"event_time_ms\":5,\"event_type\":\"x\"}", "user_id: must be"},
        {"{\"user_id\":1,\"item_id\":true,\"event_time_ms\":5,\"event_type\":\"x\"}", "item_id: must be"},
        {"{\"user_id\":1,\"event_time_ms\":\"5\",\"event_type\":\"x\"}", "event_time_ms: must be an integer"},
        {"{\"user_id\":1,\"event_time_ms\":5.5,\"event_type\":\"x\"}", "event_time_ms: must be an integer"},
        {"{\"user_id\":1,\"event_time_ms\":5,\"event_type\":3}", "event_type: must be a string"},
        {"{\"user_id\":1,\"event_time_ms\":5,\"event_type\":\"x\",\"event_id\":4}", "event_id: must be a string"},
        {"{\"user_id\":1,\"event_time_ms\":5,\"event_type\":\"x\",\"attributes\":[]}", "attributes: must be an object"},
        {"{\"user_id\":1,\"event_time_ms\":5,\"event_type\":\"x\",\"attributes\":{\"pos\":\"1\"}}", "attributes.pos: must be a number"},
        {"{\"user_id\":1,\"event_time_ms\":5,\"event_type\":\"x\",\"attributes\":{\"pos\":null}}", "attributes.pos: must be a number"},
        {"[1]", "must be an object"},
        {"{\"user_id\":1,", "json:"},
        {"", "json:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = decode_json(bad[i].js);
        CHECK_EQ_INT(rc, SEQ_EINVAL);
        if (!strstr(err, bad[i].msg)) {
            fprintf(stderr, "  %s: want '%s' got '%s'\n", bad[i].js, bad[i].msg, err);
            CHECK(0);
        }
    }
}

/* Confluent framing: header + the Event encoded by encode(). */
static int decode_framed(const uint8_t *hdr, size_t hlen, size_t body_len_cut)
{
    uint8_t buf[600];
    memcpy(buf, hdr, hlen);
    size_t n = encode(42, 1764000000000LL, "click", 7, "e-1", "dwell_ms", 1200.5, buf + hlen);
    err[0] = '\0';
    memset(&ev, 0, sizeof ev);
    return seq_event_decode_confluent_pb(def, buf, hlen + n - body_len_cut, &ev, err, sizeof err);
}

static void test_confluent(void)
{
    /* magic 0, schema id 1, indexes [0] as the single byte 0 */
    static const uint8_t plain[] = {0, 0, 0, 0, 1, 0};
    CHECK_EQ_INT(decode_framed(plain, sizeof plain, 0), SEQ_OK);
    CHECK(ev.user_id == 42 && ev.item_id == 7 && strcmp(ev.id, "e-1") == 0);
    CHECK(ev.attr[dwell] == 1200.5);
    /* explicit indexes: count 1 [0] (zigzag 2, 0); count 2 [1, 3] (4, 2, 6); the schema id
     * and indexes are not checked */
    static const uint8_t one[] = {0, 0xff, 0xff, 0xff, 0xff, 2, 0};
    CHECK_EQ_INT(decode_framed(one, sizeof one, 0), SEQ_OK);
    CHECK(ev.user_id == 42);
    static const uint8_t two[] = {0, 0, 0, 0, 9, 4, 2, 6};
    CHECK_EQ_INT(decode_framed(two, sizeof two, 0), SEQ_OK);
    CHECK(ev.user_id == 42);
    /* a 5-byte varint index (the int32 maximum) is fine */
    static const uint8_t big[] = {0, 0, 0, 0, 1, 2, 0xfe, 0xff, 0xff, 0xff, 0x0f};
    CHECK_EQ_INT(decode_framed(big, sizeof big, 0), SEQ_OK);
    CHECK(ev.user_id == 42);

    /* malformed: wrong magic, truncated header, truncated or bad indexes */
    static const uint8_t magic[] = {1, 0, 0, 0, 1, 0};
    CHECK_EQ_INT(decode_framed(magic, sizeof magic, 0), SEQ_EINVAL);
    CHECK(strstr(err, "magic") != NULL);
    size_t off = 0;
    static const uint8_t shorthdr[] = {0, 0, 0, 1};
    CHECK_EQ_INT(seq_event_unframe_confluent(shorthdr, sizeof shorthdr, &off, err, sizeof err),
                 SEQ_EINVAL);
    CHECK(strstr(err, "truncated header") != NULL);
    static const uint8_t noidx[] = {0, 0, 0, 0, 1};
    CHECK_EQ_INT(seq_event_unframe_confluent(noidx, sizeof noidx, &off, err, sizeof err),
                 SEQ_EINVAL);
    CHECK_EQ_INT(seq_event_unframe_confluent(noidx, 0, &off, err, sizeof err), SEQ_EINVAL);
    static const uint8_t cut[] = {0, 0, 0, 0, 1, 4, 2}; /* count 2, one index */
    CHECK_EQ_INT(seq_event_unframe_confluent(cut, sizeof cut, &off, err, sizeof err), SEQ_EINVAL);
    CHECK(strstr(err, "truncated message indexes") != NULL);
    static const uint8_t cutvar[] = {0, 0, 0, 0, 1, 2, 0x80}; /* index varint cut */
    CHECK_EQ_INT(seq_event_unframe_confluent(cutvar, sizeof cutvar, &off, err, sizeof err),
                 SEQ_EINVAL);
    static const uint8_t neg[] = {0, 0, 0, 0, 1, 1}; /* zigzag 1 = -1 */
    CHECK_EQ_INT(seq_event_unframe_confluent(neg, sizeof neg, &off, err, sizeof err), SEQ_EINVAL);
    CHECK(strstr(err, "negative") != NULL);
    static const uint8_t longv[] = {0, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0};
    CHECK_EQ_INT(seq_event_unframe_confluent(longv, sizeof longv, &off, err, sizeof err),
                 SEQ_EINVAL);
    CHECK(strstr(err, "over-long") != NULL);
    /* a huge count with few bytes left is truncated, not a long loop */
    static const uint8_t huge[] = {0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0};
    CHECK_EQ_INT(seq_event_unframe_confluent(huge, sizeof huge, &off, err, sizeof err),
                 SEQ_EINVAL);
    /* the header alone, then a cut Event: the Event decoder's error */
    CHECK_EQ_INT(seq_event_unframe_confluent(plain, sizeof plain, &off, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(off, 6);
    CHECK_EQ_INT(decode_framed(plain, sizeof plain, 3), SEQ_EINVAL);
    /* a plain (unframed) Event is not a framed one: its first byte is a tag, not 0 */
    uint8_t buf[512];
    size_t n = encode(42, 1764000000000LL, "click", 7, "e-1", NULL, 0, buf);
    CHECK_EQ_INT(seq_event_decode_confluent_pb(def, buf, n, &ev, err, sizeof err), SEQ_EINVAL);
}

static void test_check_time(void)
{
    ev.time_ms = 1000000 + 300000;
    CHECK_EQ_INT(seq_event_check_time(def, &ev, 1000000, err, sizeof err), SEQ_OK);
    ev.time_ms++;
    CHECK_EQ_INT(seq_event_check_time(def, &ev, 1000000, err, sizeof err), SEQ_EINVAL);
    CHECK(strstr(err, "max_future_ms") != NULL);
    ev.time_ms = INT64_MAX;
    CHECK_EQ_INT(seq_event_check_time(def, &ev, INT64_MIN + 1, err, sizeof err), SEQ_EINVAL);
    ev.time_ms = INT64_MIN;
    CHECK_EQ_INT(seq_event_check_time(def, &ev, 1000000, err, sizeof err), SEQ_OK);
}

int main(void)
{
    if (seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) != SEQ_OK) {
        fprintf(stderr, "def: %s\n", err);
        return 1;
    }
    dwell = seq_def_attr_index(def, "dwell_ms", 8);
    pos = seq_def_attr_index(def, "pos", 3);
    RUN(test_derive_id);
    RUN(test_pb_roundtrip);
    RUN(test_pb_missing);
    RUN(test_pb_wire);
    RUN(test_pb_attrs);
    RUN(test_json);
    RUN(test_check_time);
    RUN(test_confluent);
    seq_def_free(def);
    return seq_t_done();
}
