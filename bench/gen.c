/* gen: synthetic batch input for bench/run: --users users x --events events each, of the
 * types and attributes of bench/definition.json (click/save/view, dwell_ms >= 500 so every
 * event passes the filter, position), spread over the --span-ms before --end-ms, as
 * length-delimited protobuf seqd.v1.Event (the builder's --format pb), JSON Lines, or an
 * Avro container file of proto/seqd/v1/event.avsc's records (--format avro, codec
 * --codec null|deflate|snappy, default snappy as Spark writes), through avro-c.
 * Deterministic: the same arguments give the same bytes. Not part of seqd.
 * --partitions P --only-partitions LIST (LIST as seqctl build's: 0-3,7) writes only the
 * users whose Kafka partition (engine/partition.c, the function seqd places users by) is
 * in LIST: the pre-partitioned share of one builder (bench/build-dist.sh). */
#include <avro.h>
#include "partition.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const TYPES[] = {"click", "save", "view"};

static uint8_t *varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) *p++ = (uint8_t)(v | 0x80), v >>= 7;
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *str_field(uint8_t *p, uint8_t tag, const char *s, size_t n)
{
    *p++ = tag;
    p = varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* map<string,double> entry: key 1, value 2 (fixed64). */
static uint8_t *attr(uint8_t *p, const char *name, double v)
{
    uint8_t e[64], *q = str_field(e, 0x0a, name, strlen(name));
    *q++ = 0x11;
    memcpy(q, &v, 8);
    q += 8;
    *p++ = 0x32;
    p = varint(p, (uint64_t)(q - e));
    memcpy(p, e, (size_t)(q - e));
    return p + (q - e);
}

typedef struct {
    uint64_t user, item;
    int64_t t;
    int type;
    char id[24];
    double dwell, pos;
} ev;

static void write_pb(FILE *f, const ev *e)
{
    uint8_t m[256], *p = m, hdr[10];
    p = varint(varint(p, 0x08), e->user);
    p = varint(varint(p, 0x10), (uint64_t)e->t);
    p = str_field(p, 0x1a, TYPES[e->type], strlen(TYPES[e->type]));
    p = varint(varint(p, 0x20), e->item);
    p = str_field(p, 0x2a, e->id, strlen(e->id));
    p = attr(p, "dwell_ms", e->dwell);
    p = attr(p, "position", e->pos);
    size_t hl = (size_t)(varint(hdr, (uint64_t)(p - m)) - hdr);
    fwrite(hdr, 1, hl, f);
    fwrite(m, 1, (size_t)(p - m), f);
}

static void write_json(FILE *f, const ev *e)
{
    fprintf(f,
            "{\"user_id\":%" PRIu64 ",\"event_time_ms\":%" PRId64 ",\"event_type\":\"%s\","
            "\"item_id\":%" PRIu64 ",\"event_id\":\"%s\",\"attributes\":{\"dwell_ms\":%.0f,"
            "\"position\":%.0f}}\n",
            e->user, e->t, TYPES[e->type], e->item, e->id, e->dwell, e->pos);
}

/* proto/seqd/v1/event.avsc, docs left out */
static const char AVSC[] =
    "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"seqd.v1\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":\"long\"},{\"name\":\"event_time_ms\",\"type\":\"long\"},"
    "{\"name\":\"event_type\",\"type\":\"string\"},"
    "{\"name\":\"item_id\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"event_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"attributes\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"double\"}],"
    "\"default\":null}]}";

typedef struct {
    avro_file_writer_t w;
    avro_value_iface_t *iface;
    avro_value_t rec;
} avro_out;

static int avro_open(avro_out *a, const char *path, const char *codec)
{
    avro_schema_t s;
    if (avro_schema_from_json_length(AVSC, sizeof AVSC - 1, &s) ||
        avro_file_writer_create_with_codec(path, s, &a->w, codec, 0) ||
        !(a->iface = avro_generic_class_from_schema(s)) ||
        avro_generic_value_new(a->iface, &a->rec)) {
        fprintf(stderr, "gen: %s: %s\n", path, avro_strerror());
        return -1;
    }
    avro_schema_decref(s);
    return 0;
}

/* Sets the union field idx to its non-null branch (1) and returns that branch. */
static avro_value_t branch(avro_value_t *rec, size_t idx)
{
    avro_value_t u, b;
    avro_value_get_by_index(rec, idx, &u, NULL);
    avro_value_set_branch(&u, 1, &b);
    return b;
}

static int write_avro(avro_out *a, const ev *e)
{
    avro_value_t f, m, v;
    avro_value_reset(&a->rec);
    avro_value_get_by_index(&a->rec, 0, &f, NULL);
    avro_value_set_long(&f, (int64_t)e->user);
    avro_value_get_by_index(&a->rec, 1, &f, NULL);
    avro_value_set_long(&f, e->t);
    avro_value_get_by_index(&a->rec, 2, &f, NULL);
    avro_value_set_string(&f, TYPES[e->type]);
    f = branch(&a->rec, 3);
    avro_value_set_long(&f, (int64_t)e->item);
    f = branch(&a->rec, 4);
    avro_value_set_string(&f, e->id);
    m = branch(&a->rec, 5);
    avro_value_add(&m, "dwell_ms", &v, NULL, NULL);
    avro_value_set_double(&v, e->dwell);
    avro_value_add(&m, "position", &v, NULL, NULL);
    avro_value_set_double(&v, e->pos);
    return avro_file_writer_append_value(a->w, &a->rec);
}

/* LIST of partitions (N, A-B, comma-separated) into sel[P]; -1 when malformed. */
static int parse_parts(const char *list, uint32_t p, uint8_t *sel)
{
    for (const char *q = list; *q;) {
        char *e;
        unsigned long a = strtoul(q, &e, 10), b = a;
        if (e == q) return -1;
        if (*e == '-') {
            q = e + 1;
            b = strtoul(q, &e, 10);
            if (e == q) return -1;
        }
        if (a > b || b >= p) return -1;
        for (unsigned long i = a; i <= b; i++) sel[i] = 1;
        if (*e == ',') e++;
        else if (*e) return -1;
        q = e;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    uint32_t parts = 0;
    static uint8_t sel[65536];
    const char *fmt = "pb", *out = NULL, *codec = "snappy";
    uint64_t users = 1000, first = 1, events = 100;
    int64_t end = 0, span = 3600000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--format")) fmt = v;
        else if (!strcmp(k, "--users")) users = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--first")) first = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--events")) events = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--end-ms")) end = strtoll(v, NULL, 10);
        else if (!strcmp(k, "--span-ms")) span = strtoll(v, NULL, 10);
        else if (!strcmp(k, "--out")) out = v;
        else if (!strcmp(k, "--codec")) codec = v;
        else if (!strcmp(k, "--partitions")) parts = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "--only-partitions")) only = v;
    }
    if (!!parts != !!only || parts > sizeof sel || (only && parse_parts(only, parts, sel) < 0)) {
        fprintf(stderr, "gen: --partitions P (1..65536) and --only-partitions LIST go together\n");
        return 2;
    }
    int pb = strcmp(fmt, "pb") == 0, av = strcmp(fmt, "avro") == 0;
    if (!out || end <= span || !events || (!pb && !av && strcmp(fmt, "jsonl") != 0)) {
        fprintf(stderr, "usage: gen --out FILE --end-ms T [--format pb|jsonl|avro] [--users N]\n"
                        "           [--first U] [--events E] [--span-ms S] [--codec C]\n"
                        "           [--partitions P --only-partitions LIST]\n");
        return 2;
    }
    avro_out a = {0};
    if (av && avro_open(&a, out, codec) < 0) return 1;
    FILE *f = av ? fopen("/dev/null", "wb") : fopen(out, "wb");
    if (!f) {
        perror(out);
        return 1;
    }
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    for (uint64_t u = first; u < first + users; u++) {
        if (parts && !sel[seq_partition_of_user(u, parts)]) continue;
        for (uint64_t k = 0; k < events; k++) {
            ev e = {.user = u, .type = (int)((u + k) % 3),
                    .item = (u * 2654435761u + k * 40503u) % 100000000u,
                    .t = end - 1 - (int64_t)((k * (uint64_t)span) / events) - (int64_t)(u % 997),
                    .dwell = (double)(500 + (u * 31 + k * 17) % 9000), .pos = (double)(k % 50)};
            snprintf(e.id, sizeof e.id, "%" PRIu64, k);
            if (av && write_avro(&a, &e)) {
                fprintf(stderr, "gen: %s: %s\n", out, avro_strerror());
                return 1;
            }
            if (pb) write_pb(f, &e);
            else if (!av) write_json(f, &e);
        }
    }
    if (av) {
        avro_value_decref(&a.rec);
        avro_value_iface_decref(a.iface);
        if (avro_file_writer_close(a.w)) {
            fprintf(stderr, "gen: %s: %s\n", out, avro_strerror());
            return 1;
        }
    }
    if (fclose(f) != 0) {
        perror(out);
        return 1;
    }
    return 0;
}
