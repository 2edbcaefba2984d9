/* seqfeed: the streaming-path load for bench/run. Produces seqd.v1.Event messages into
 * Kafka (keyed by user id, as seqctl produce does), at --rps events/s (0 = as fast as the
 * producer goes), for random users among --users, with event_time = now.
 * With --probe-target, it also measures produce-to-visible latency: every --probe-ms it
 * produces a probe event for --probe-user whose item_id is the probe's number, and a
 * poller asks seqd for that user's newest event (GetSequence max_events 1) back to back;
 * a probe is visible once the newest item_id reaches its number. Prints key=value. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2c.h"
#include "hist.h"

#define MAX_PROBES 1000000
#define DRAIN_S 30 /* longest wait for the last probes once the feed stops */

typedef struct {
    const char *brokers, *topic, *target, *seq;
    double rps, secs;
    uint64_t users, probe_user;
    int probe_ms;
    const char *linger; /* the producer's linger.ms (librdkafka's default is 5) */
} opts;

typedef struct {
    uint64_t *sent_ns; /* probe k -> send time */
    uint64_t n_sent, n_seen;
    hist h;
    int busy;
} probes;

static uint8_t *varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) *p++ = (uint8_t)(v | 0x80), v >>= 7;
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *str_field(uint8_t *p, uint8_t tag, const char *s)
{
    size_t n = strlen(s);
    *p++ = tag;
    p = varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* seqd.v1.Event with dwell_ms 1000 (passes the view filter). */
static size_t encode_event(uint8_t *m, uint64_t user, int64_t t, uint64_t item, const char *id)
{
    static const uint8_t dwell[] = {0x32, 0x13, 0x0a, 0x08, 'd', 'w', 'e', 'l', 'l', '_', 'm', 's',
                                    0x11, 0, 0, 0, 0, 0, 0x40, 0x8f, 0x40};
    uint8_t *p = m;
    p = varint(varint(p, 0x08), user);
    p = varint(varint(p, 0x10), (uint64_t)t);
    p = str_field(p, 0x1a, "click");
    p = varint(varint(p, 0x20), item);
    p = str_field(p, 0x2a, id);
    memcpy(p, dwell, sizeof dwell);
    return (size_t)(p - m) + sizeof dwell;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int produce(rd_kafka_t *rk, rd_kafka_topic_t *t, uint64_t user, uint64_t item, const char *id)
{
    uint8_t m[256];
    char key[24];
    size_t n = encode_event(m, user, wall_ms(), item, id);
    int kl = snprintf(key, sizeof key, "%" PRIu64, user);
    while (rd_kafka_produce(t, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m, n, key, (size_t)kl,
                            NULL) != 0) {
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) return -1;
        rd_kafka_poll(rk, 1);
    }
    return 0;
}

static void on_probe(void *ctx, h2c *c, uint64_t tag, int st, const uint8_t *body, size_t len)
{
    (void)c, (void)tag;
    probes *p = ctx;
    p->busy = 0;
    if (st != 0 || len <= 5) return;
    uint64_t newest = h2c_pb_first_varint(body + 5, len - 5, 4), now = mono_ns();
    for (; p->n_seen < p->n_sent && p->n_seen + 1 <= newest; p->n_seen++)
        hist_add(&p->h, (now - p->sent_ns[p->n_seen]) / 1000);
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.topic = "seqd.events", .seq = "engagements", .secs = 10, .users = 1000000,
                .probe_user = 999999999999ull, .probe_ms = 5, .linger = "5"};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--brokers")) o->brokers = v;
        else if (!strcmp(k, "--topic")) o->topic = v;
        else if (!strcmp(k, "--rps")) o->rps = atof(v);
        else if (!strcmp(k, "-D")) o->secs = atof(v);
        else if (!strcmp(k, "--users")) o->users = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--probe-target")) o->target = v;
        else if (!strcmp(k, "--probe-user")) o->probe_user = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--probe-ms")) o->probe_ms = atoi(v);
        else if (!strcmp(k, "--linger-ms")) o->linger = v;
        else return -1;
    }
    return o->brokers && o->users && o->probe_ms > 0 ? 0 : -1;
}

/* Keyed by user id and partitioned as seqd expects (Kafka's murmur2, as seqctl produce and
 * Java clients do): with librdkafka's default (CRC32) nearly every event would be
 * misrouted, and seqd would re-produce it to its user's partition and consume it twice
 * (README, "Misrouted events"): the feed would measure that path, not ingest. */
static rd_kafka_t *producer(const opts *o, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, err, errlen) ||
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, errlen) ||
        rd_kafka_conf_set(conf, "linger.ms", o->linger, err, errlen) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
}

/* Runs the feed; returns events produced, or -1. */
/* The poller's request; static because a call may still be sending it when feed() ends. */
static uint8_t req[128];
static size_t rl;

/* Keeps one GetSequence of the probe user in flight and serves the poller's socket. */
static int poll_step(h2c *poller, probes *pr)
{
    if (!pr->busy && h2c_submit(poller, "/seqd.v1.SequenceService/GetSequence", req, rl, 0) == 0)
        pr->busy = 1;
    return h2c_io(poller);
}

static int64_t feed(const opts *o, rd_kafka_t *rk, rd_kafka_topic_t *t, h2c *poller, probes *pr)
{
    uint64_t t0 = mono_ns(), end = t0 + (uint64_t)(o->secs * 1e9), next_probe = t0, n = 0;
    uint64_t rng = 88172645463325252ull;
    char id[32];
    for (uint64_t now = t0; now < end; now = mono_ns()) {
        uint64_t due = o->rps > 0 ? (uint64_t)((double)(now - t0) * o->rps / 1e9) : n + 1000;
        for (; n < due; n++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            snprintf(id, sizeof id, "f%" PRIu64 "-%" PRIu64, t0, n);
            if (produce(rk, t, 1 + rng % o->users, rng % 100000000, id) < 0) return -1;
        }
        if (poller && now >= next_probe && pr->n_sent < MAX_PROBES) {
            snprintf(id, sizeof id, "p%012" PRIu64, pr->n_sent + 1);
            pr->sent_ns[pr->n_sent] = mono_ns();
            if (produce(rk, t, o->probe_user, pr->n_sent + 1, id) < 0) return -1;
            pr->n_sent++;
            next_probe = now + (uint64_t)o->probe_ms * 1000000u;
        }
        if (poller && poll_step(poller, pr) < 0) return -1;
        rd_kafka_poll(rk, 0);
        if (o->rps > 0) {
            struct pollfd pf = {poller ? h2c_fd(poller) : -1, POLLIN, 0};
            struct timespec ts = {0, 200000};
            ppoll(&pf, 1, &ts, NULL);
        }
    }
    rd_kafka_flush(rk, 10000);
    return (int64_t)n;
}

int main(int argc, char **argv)
{
    opts o;
    char err[512] = "";
    probes pr = {0};
    if (parse(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: seqfeed --brokers LIST [--topic T] [--rps R] [-D SECS] [--users N]\n"
                        "               [--probe-target H:P --probe-user U --probe-ms MS]\n");
        return 2;
    }
    rd_kafka_t *rk = producer(&o, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "seqfeed: %s\n", err);
        return 1;
    }
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, o.topic, NULL);
    h2c *poller = NULL;
    int rc = 1;
    if (o.target) {
        pr.sent_ns = calloc(MAX_PROBES, sizeof *pr.sent_ns);
        if (!pr.sent_ns || hist_init(&pr.h) < 0) goto out;
        if (!(poller = h2c_connect(o.target, on_probe, &pr, err, sizeof err))) {
            fprintf(stderr, "seqfeed: %s\n", err);
            goto out;
        }
    }
    rl = h2c_get_request(req, o.probe_user, o.seq, 1);
    uint64_t t0 = mono_ns();
    int64_t n = feed(&o, rk, t, poller, &pr);
    double secs = (double)(mono_ns() - t0) / 1e9;
    if (n < 0) {
        fprintf(stderr, "seqfeed: produce failed: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
        goto out;
    }
    /* Probes not yet visible when the feed stops are waited for (up to DRAIN_S), so the
     * slowest ones count in the percentiles instead of being left out. */
    for (uint64_t until = mono_ns() + DRAIN_S * 1000000000ull;
         poller && pr.n_seen < pr.n_sent && mono_ns() < until;) {
        if (poll_step(poller, &pr) < 0) break;
        struct pollfd pf = {h2c_fd(poller), POLLIN, 0};
        struct timespec ts = {0, 1000000};
        ppoll(&pf, 1, &ts, NULL);
    }
    printf("produced=%" PRId64 " secs=%.2f rate=%.0f", n, secs, (double)n / secs);
    if (poller)
        printf(" probes=%" PRIu64 " visible=%" PRIu64 " p50_ms=%.2f p99_ms=%.2f max_ms=%.2f", pr.n_sent,
               pr.n_seen, hist_q(&pr.h, 0.5) / 1e3, hist_q(&pr.h, 0.99) / 1e3, pr.h.max_us / 1e3);
    printf("\n");
    rc = 0;
out:
    h2c_free(poller);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    free(pr.sent_ns);
    free(pr.h.b);
    return rc;
}
