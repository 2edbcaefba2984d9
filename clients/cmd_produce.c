/* seqctl produce: events into Kafka, the streaming path's input. Events come from a
 * JSON Lines file (or stdin) or are synthesised (--sample N) from the server's
 * definition; both sources yield JSON event objects that go through one encoder
 * (protobuf seqd.v1.Event, the same in Confluent framing, or the JSON object itself),
 * keyed by the user id. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "seqctl.h"
#include "seqd/v1/seqd.pb-c.h"

/* --format: the Kafka value written for each event. */
enum { FMT_PROTOBUF, FMT_JSON, FMT_CONFLUENT };

/* Confluent's framing of a protobuf value (engine/event.h): magic byte 0, schema id 1
 * (big-endian), message indexes [0] written as the single byte 0. */
static const uint8_t CONFLUENT_HEADER[6] = {0, 0, 0, 0, 1, 0};

typedef struct {
    const char *brokers, *topic, *file;
    int format; /* FMT_* */
    uint64_t sample, users;
    int sampling;
} produce_args;

typedef struct {
    rd_kafka_t *rk;
    const char *topic;
    uint64_t delivered, failed;
    char first_error[256];
} producer;

/* ---- JSON event -> Kafka key and value ---- */

static int json_u64(json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    return json_is_string(v) ? seqc_parse_u64(json_string_value(v), out) : -1;
}

/* Fills ev (whose attribute array the caller frees) from a JSON event object. */
static int event_from_json(json_t *o, Seqd__V1__Event *ev, char *err, size_t errlen)
{
    json_t *t = json_object_get(o, "event_time_ms"), *ty = json_object_get(o, "event_type");
    json_t *id = json_object_get(o, "event_id"), *attrs = json_object_get(o, "attributes");
    json_t *item = json_object_get(o, "item_id");
    if (!json_is_object(o)) return seq_errf(err, errlen, "not a JSON object"), -1;
    if (json_u64(json_object_get(o, "user_id"), &ev->user_id) < 0)
        return seq_errf(err, errlen, "user_id: want a number or a decimal string"), -1;
    if (!json_is_integer(t)) return seq_errf(err, errlen, "event_time_ms: want an integer"), -1;
    if (!json_is_string(ty)) return seq_errf(err, errlen, "event_type: want a string"), -1;
    if (item && json_u64(item, &ev->item_id) < 0)
        return seq_errf(err, errlen, "item_id: want a number or a decimal string"), -1;
    if (id && !json_is_string(id)) return seq_errf(err, errlen, "event_id: want a string"), -1;
    if (attrs && !json_is_object(attrs))
        return seq_errf(err, errlen, "attributes: want an object"), -1;
    ev->event_time_ms = json_integer_value(t);
    ev->event_type = (char *)json_string_value(ty);
    if (id) ev->event_id = (char *)json_string_value(id);
    size_t n = json_object_size(attrs);
    ev->attributes = n ? calloc(n, sizeof *ev->attributes) : NULL;
    if (n && !ev->attributes) return seq_errf(err, errlen, "out of memory"), -1;
    const char *k;
    json_t *v;
    json_object_foreach(attrs, k, v) {
        if (!json_is_number(v))
            return seq_errf(err, errlen, "attributes.%s: want a number", k), -1;
        Seqd__V1__Event__AttributesEntry *e = malloc(sizeof *e);
        if (!e) return seq_errf(err, errlen, "out of memory"), -1;
        seqd__v1__event__attributes_entry__init(e);
        e->key = (char *)k;
        e->value = json_number_value(v);
        ev->attributes[ev->n_attributes++] = e;
    }
    return 0;
}

static void event_free_attrs(Seqd__V1__Event *ev)
{
    for (size_t i = 0; i < ev->n_attributes; i++) free(ev->attributes[i]);
    free(ev->attributes);
}

/* The message value into *val (malloc'd, caller frees) and the key into key. */
static int encode(json_t *o, int format, char **val, size_t *vlen, char *key,
                  size_t keylen, char *err, size_t errlen)
{
    Seqd__V1__Event ev = SEQD__V1__EVENT__INIT;
    int rc = event_from_json(o, &ev, err, errlen);
    if (rc == 0) {
        snprintf(key, keylen, "%" PRIu64, ev.user_id);
        if (format == FMT_JSON) {
            *val = json_dumps(o, JSON_COMPACT);
            *vlen = *val ? strlen(*val) : 0;
        } else {
            size_t h = format == FMT_CONFLUENT ? sizeof CONFLUENT_HEADER : 0;
            *vlen = h + seqd__v1__event__get_packed_size(&ev);
            if ((*val = malloc(*vlen))) {
                memcpy(*val, CONFLUENT_HEADER, h);
                seqd__v1__event__pack(&ev, (uint8_t *)*val + h);
            }
        }
        if (!*val) rc = -1, seq_errf(err, errlen, "out of memory");
    }
    event_free_attrs(&ev);
    return rc;
}

/* ---- Kafka ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    producer *p = opaque;
    if (!m->err) {
        p->delivered++;
        return;
    }
    if (!p->failed++)
        snprintf(p->first_error, sizeof p->first_error, "%s", rd_kafka_err2str(m->err));
}

static int producer_open(producer *p, const char *brokers, const char *topic)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr) ||
        /* Kafka's default (Java) placement of keyed records, which seqd's partitioning
         * of users assumes (engine/partition.h); librdkafka's own default is CRC32. */
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "60000", errstr, sizeof errstr)) {
        rd_kafka_conf_destroy(conf);
        return seqc_fail("Kafka configuration: %s", errstr);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, p);
    p->topic = topic;
    if (!(p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr))) {
        rd_kafka_conf_destroy(conf);
        return seqc_fail("cannot create the Kafka producer: %s", errstr);
    }
    return 0;
}

static int producer_send(producer *p, const char *key, const char *val, size_t vlen)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(p->topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return seqc_fail("produce to %s: %s", p->topic, rd_kafka_err2str(e));
        rd_kafka_poll(p->rk, 100); /* local queue full: let deliveries drain */
    }
    rd_kafka_poll(p->rk, 0);
    return 0;
}

/* Flushes and reports; returns the exit code. */
static int producer_close(producer *p, uint64_t submitted, const char *brokers)
{
    rd_kafka_flush(p->rk, 120000);
    uint64_t lost = submitted - p->delivered - p->failed; /* still queued after the flush */
    rd_kafka_destroy(p->rk);
    printf("delivered %" PRIu64 " events to %s at %s\n", p->delivered, p->topic, brokers);
    if (p->failed || lost)
        return seqc_fail("%" PRIu64 " events not delivered%s%s", p->failed + lost,
                         p->failed ? ": " : " (flush timed out)", p->first_error);
    return SEQC_EXIT_OK;
}

static int send_event(producer *p, json_t *o, int format, char *err, size_t errlen)
{
    char key[24], *val = NULL;
    size_t vlen = 0;
    if (encode(o, format, &val, &vlen, key, sizeof key, err, errlen) < 0) return -1;
    int rc = producer_send(p, key, val, vlen);
    free(val);
    return rc ? -2 : 0;
}

/* ---- sources ---- */

/* JSON Lines: a bad line is reported and skipped; the exit code then says 1. */
static int produce_file(producer *p, const char *path, int format, uint64_t *sent,
                        int *bad)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) return seqc_fail("%s: cannot open", path);
    char *line = NULL, err[256];
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n) continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)n, 0, &jerr);
        int r = o ? send_event(p, o, format, err, sizeof err) : -1;
        if (!o) snprintf(err, sizeof err, "%s", jerr.text);
        if (r == -1) {
            fprintf(stderr, "error: %s:%zu: %s\n", path, lineno, err);
            *bad = 1;
        }
        if (r == -2) rc = SEQC_EXIT_FAIL;
        if (r == 0) (*sent)++;
        json_decref(o);
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

/* A value that passes a filter "attr op fv", varied by `spread` >= 0. */
static double passing_value(const char *op, double fv, double spread)
{
    if (strcmp(op, ">=") == 0) return fv + spread;
    if (strcmp(op, ">") == 0) return fv + 1 + spread;
    if (strcmp(op, "<=") == 0) return fv - spread;
    if (strcmp(op, "<") == 0) return fv - 1 - spread;
    if (strcmp(op, "==") == 0) return fv;
    return fv + 1 + spread; /* != */
}

static int filter_applies(json_t *filter, const char *type)
{
    json_t *types = json_object_get(filter, "event_types"), *t;
    size_t i;
    if (!types) return 1;
    json_array_foreach(types, i, t)
        if (json_string_value(t) && strcmp(json_string_value(t), type) == 0) return 1;
    return 0;
}

/* The attributes of sample event i of `type`: every column of every sequence gets a
 * value; where a filter on that attribute applies to the type, a passing one. */
static json_t *sample_attrs(json_t *def, const char *type, uint64_t i)
{
    json_t *attrs = json_object(), *s, *c, *f;
    size_t si, ci;
    json_array_foreach(json_object_get(def, "sequences"), si, s) {
        json_array_foreach(json_object_get(s, "columns"), ci, c) {
            const char *name = json_is_string(c) ? json_string_value(c)
                                                 : json_string_value(json_object_get(c, "name"));
            if (name) json_object_set_new(attrs, name, json_real((double)((i * 37 + ci) % 3000)));
        }
    }
    json_array_foreach(json_object_get(def, "sequences"), si, s) {
        json_array_foreach(json_object_get(s, "filters"), ci, f) {
            const char *name = json_string_value(json_object_get(f, "attribute"));
            const char *op = json_string_value(json_object_get(f, "op"));
            if (!name || !op || !filter_applies(f, type)) continue;
            double v = passing_value(op, json_number_value(json_object_get(f, "value")),
                                     (double)(i % 1000));
            json_object_set_new(attrs, name, json_real(v));
        }
    }
    return attrs;
}

/* Every event type any sequence declares, in first-seen order. New reference. */
static json_t *declared_types(json_t *def)
{
    json_t *types = json_array(), *s, *t, *u;
    size_t si, ti, ui;
    json_array_foreach(json_object_get(def, "sequences"), si, s) {
        json_array_foreach(json_object_get(s, "event_types"), ti, t) {
            int seen = 0;
            json_array_foreach(types, ui, u) seen |= json_equal(u, t);
            if (!seen) json_array_append(types, t);
        }
    }
    return types;
}

/* N deterministic events for users 1..U over the last hour, oldest first. */
static int produce_sample(producer *p, json_t *def, const produce_args *a, uint64_t *sent)
{
    json_t *types = declared_types(def);
    size_t nt = json_array_size(types);
    char err[256], id[32];
    int rc = 0;
    if (nt == 0) rc = seqc_fail("the server's definition declares no event types");
    int64_t now = seq_now_ms(), hour = 3600000;
    for (uint64_t i = 0; rc == 0 && i < a->sample; i++) {
        const char *type = json_string_value(json_array_get(types, i % nt));
        snprintf(id, sizeof id, "sample-%" PRIu64, i);
        json_t *o = json_pack("{s:I, s:I, s:s, s:I, s:s, s:o}", "user_id",
                              (json_int_t)(1 + i % a->users), "event_time_ms",
                              (json_int_t)(now - hour + (int64_t)(i * (uint64_t)hour / a->sample)),
                              "event_type", type, "item_id",
                              (json_int_t)(1 + (i * 2654435761u) % 100000), "event_id", id,
                              "attributes", sample_attrs(def, type, i));
        int r = send_event(p, o, a->format, err, sizeof err);
        if (r == -1) rc = seqc_fail("sample event %" PRIu64 ": %s", i, err);
        if (r == -2) rc = SEQC_EXIT_FAIL;
        if (r == 0) (*sent)++;
        json_decref(o);
    }
    json_decref(types);
    return rc;
}

/* ---- the command ---- */

static int parse_produce(int argc, char **argv, produce_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = seqc_opt(argc, argv, &i, "brokers", &v)) == 1) a->brokers = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "topic", &v)) == 1) a->topic = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "format", &v)) == 1) {
            if (strcmp(v, "protobuf") == 0) a->format = FMT_PROTOBUF;
            else if (strcmp(v, "json") == 0) a->format = FMT_JSON;
            else if (strcmp(v, "confluent-protobuf") == 0) a->format = FMT_CONFLUENT;
            else
                return seqc_usage_error("--format: want protobuf, json or confluent-protobuf, "
                                        "got '%s'", v);
        } else if (r == 0 && (r = seqc_opt(argc, argv, &i, "sample", &v)) == 1) {
            if (seqc_parse_u64(v, &a->sample) < 0 || a->sample == 0)
                return seqc_usage_error("--sample: want a count > 0, got '%s'", v);
            a->sampling = 1;
        } else if (r == 0 && (r = seqc_opt(argc, argv, &i, "users", &v)) == 1) {
            if (seqc_parse_u64(v, &a->users) < 0 || a->users == 0)
                return seqc_usage_error("--users: want a count > 0, got '%s'", v);
        } else if (r == 0 && strcmp(argv[i], "-") != 0 && strncmp(argv[i], "--", 2) == 0) {
            return seqc_usage_error("produce: unknown option %s", argv[i]);
        } else if (r == 0) {
            if (a->file) return seqc_usage_error("produce: one FILE only");
            a->file = argv[i];
        }
        if (r < 0) return seqc_usage_error("%s needs a value", argv[i]);
    }
    if (a->sampling == !!a->file) return seqc_usage_error("produce needs FILE, - or --sample N");
    return 0;
}

int seqc_cmd_produce(const seqc_ctx *ctx, int argc, char **argv)
{
    produce_args a = {.users = 1000};
    int rc = parse_produce(argc, argv, &a);
    if (rc) return rc;
    json_t *status = NULL;
    char err[512];
    if (!a.brokers || !a.topic || a.sampling) {
        if (!(status = seqc_fetch_status(ctx, err, sizeof err)))
            return seqc_fail("produce: %s%s%s not given, and the server's /status, where "
                             "they come from otherwise, is unreachable (%s)",
                             !a.brokers && !a.topic ? "--brokers and --topic"
                             : !a.brokers           ? "--brokers"
                             : !a.topic             ? "--topic"
                                                    : "",
                             a.sampling && (!a.brokers || !a.topic) ? " and " : "",
                             a.sampling ? "the definition (for --sample)" : "", err);
        if (!a.brokers) a.brokers = json_string_value(json_object_get(status, "brokers"));
        if (!a.topic) a.topic = json_string_value(json_object_get(status, "topic"));
        if (!a.brokers || !a.topic) {
            json_decref(status);
            return seqc_fail("the server's /status names no brokers or topic");
        }
    }
    producer p = {0};
    uint64_t sent = 0;
    int bad = 0;
    if ((rc = producer_open(&p, a.brokers, a.topic)) == 0) {
        rc = a.sampling ? produce_sample(&p, json_object_get(status, "definition"), &a, &sent)
                        : produce_file(&p, a.file, a.format, &sent, &bad);
        int crc = producer_close(&p, sent, a.brokers);
        if (rc == 0) rc = crc ? crc : bad ? SEQC_EXIT_FAIL : 0;
    }
    json_decref(status);
    return rc;
}
