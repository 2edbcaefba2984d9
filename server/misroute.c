/* Misrouted events (see misroute.h). The copies go out through one producer with explicit
 * partitions; the consumer flushes it before each commit that holds a misrouted message.
 * "Once per origin" on the owner: several replica groups (and a retried batch, or a
 * replay after a crash) may each re-produce one origin, so the owner remembers, per
 * origin, where the copy it applied arrived; another copy of the same origin is skipped
 * (the same copy again, a retried batch, is applied again: its earlier attempt was not
 * committed). The memory is a bounded table (ORIGINS slots, the oldest overwritten) that
 * starts empty at each start: a duplicate copy arriving after a restart, or more than
 * ORIGINS origins later, is applied again. It carries the same event as the first, so
 * this only matters if a correction of that event_id was applied in between. */
#include "misroute.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"
#include "../engine/partition.h"
#include "kafkaconf.h"

#define ORIGINS 65536 /* remembered origins (a power of two) */
#define PROBE 8
#define ORIGIN_HEADER "seqd-origin"

typedef struct {
    int64_t origin_off, copy_off; /* copy_off -1: free slot */
    int32_t origin_part, copy_part;
} origin_slot;

struct seq_misroute {
    rd_kafka_t *rk;
    char *topic;
    seq_misroute_stats stats;
    /* consumer thread only */
    uint64_t pend_misrouted, pend_dups, delivered, failed;
    char first_error[200];
    origin_slot *origins;
    uint32_t next_victim;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    seq_misroute *mr = opaque;
    if (!m->err) {
        mr->delivered++;
        return;
    }
    if (!mr->failed++) snprintf(mr->first_error, sizeof mr->first_error, "%s", rd_kafka_err2str(m->err));
}

int seq_misroute_new(const char *brokers, const char *topic, const seq_kafkaconf *kc,
                     seq_misroute **out, char *err, size_t errlen)
{
    char e[256];
    seq_misroute *mr = calloc(1, sizeof *mr);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!mr || !conf || !(mr->topic = strdup(topic)) ||
        !(mr->origins = malloc(ORIGINS * sizeof *mr->origins))) {
        seq_errf(err, errlen, "misroute: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < ORIGINS; i++) mr->origins[i].copy_off = -1;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e) ||
        rd_kafka_conf_set(conf, "linger.ms", "1", e, sizeof e) ||
        /* idempotence keeps copies in order and single per partition across retries */
        rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e) ||
        /* a flush waits at most this long for a copy (then the batch is retried) */
        rd_kafka_conf_set(conf, "message.timeout.ms", "10000", e, sizeof e) ||
        rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e)) {
        seq_errf(err, errlen, "misroute producer: %s", e);
        goto fail;
    }
    if (seq_kafkaconf_apply(kc, conf, err, errlen)) goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, mr);
    if (!(mr->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e))) {
        seq_errf(err, errlen, "misroute producer: %s", e);
        goto fail;
    }
    *out = mr;
    return SEQ_OK;
fail:
    if (conf && (!mr || !mr->rk)) rd_kafka_conf_destroy(conf);
    seq_misroute_free(mr);
    return SEQ_EINVAL;
}

void seq_misroute_free(seq_misroute *mr)
{
    if (!mr) return;
    if (mr->rk) {
        rd_kafka_flush(mr->rk, 2000);
        rd_kafka_destroy(mr->rk);
    }
    free(mr->origins);
    free(mr->topic);
    free(mr);
}

seq_misroute_stats *seq_misroute_get_stats(seq_misroute *mr) { return &mr->stats; }

/* "P:OFFSET" into its numbers; 0 or -1 when malformed. */
static int parse_origin(const char *v, size_t n, int32_t *part, int64_t *off)
{
    char buf[48];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    char *end;
    long p = strtol(buf, &end, 10);
    if (end == buf || *end != ':' || p < 0 || p > INT32_MAX) return -1;
    char *s = end + 1;
    long long o = strtoll(s, &end, 10);
    if (end == s || *end || o < 0) return -1;
    *part = (int32_t)p;
    *off = o;
    return 0;
}

static uint32_t origin_hash(int32_t part, int64_t off)
{
    uint64_t h = ((uint64_t)(uint32_t)part << 40) ^ (uint64_t)off;
    h *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 40) & (ORIGINS - 1);
}

/* 1 when another copy of this origin was applied here already; else remembers this copy
 * as the one applied and returns 0. */
static int origin_seen(seq_misroute *mr, int32_t opart, int64_t ooff, int32_t cpart, int64_t coff)
{
    uint32_t h = origin_hash(opart, ooff);
    for (uint32_t i = 0; i < PROBE; i++) {
        origin_slot *s = &mr->origins[(h + i) & (ORIGINS - 1)];
        if (s->copy_off < 0) {
            *s = (origin_slot){ooff, coff, opart, cpart};
            return 0;
        }
        if (s->origin_part == opart && s->origin_off == ooff)
            return !(s->copy_part == cpart && s->copy_off == coff);
    }
    /* full run: overwrite one of its slots, round robin */
    mr->origins[(h + mr->next_victim++ % PROBE) & (ORIGINS - 1)] = (origin_slot){ooff, coff, opart, cpart};
    return 0;
}

static int header(const rd_kafka_message_t *m, const char **v, size_t *n)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    if (rd_kafka_message_headers(m, &hdrs) || !hdrs) return 0;
    if (rd_kafka_header_get_last(hdrs, ORIGIN_HEADER, &val, n) || !val) return 0;
    *v = val;
    return 1;
}

static int produce_copy(seq_misroute *mr, const rd_kafka_message_t *m, uint64_t user_id,
                        int32_t to, const char *origin, size_t origin_len)
{
    char key[24];
    int klen = snprintf(key, sizeof key, "%" PRIu64, user_id);
    for (int tries = 0; tries < 100; tries++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            mr->rk, RD_KAFKA_V_TOPIC(mr->topic), RD_KAFKA_V_PARTITION(to),
            RD_KAFKA_V_KEY(key, (size_t)klen), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_HEADER(ORIGIN_HEADER, origin, (ssize_t)origin_len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return SEQ_OK;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(mr->rk, 10);
    }
    return SEQ_EUNAVAILABLE;
}

int seq_misroute_check(seq_misroute *mr, const rd_kafka_message_t *m, uint64_t user_id,
                       uint32_t n_partitions)
{
    const char *ov = NULL;
    size_t on = 0;
    int has_origin = header(m, &ov, &on);
    int32_t owner = (int32_t)seq_partition_of_user(user_id, n_partitions);
    if (owner != m->partition) {
        char origin[48];
        size_t olen = on;
        if (!has_origin) { /* first hop: name where it arrived */
            olen = (size_t)snprintf(origin, sizeof origin, "%" PRId32 ":%" PRId64, m->partition, m->offset);
            ov = origin;
        }
        mr->pend_misrouted += !has_origin;
        return produce_copy(mr, m, user_id, owner, ov, olen) ? SEQ_EUNAVAILABLE : SEQ_ROUTE_SENT;
    }
    int32_t opart;
    int64_t ooff;
    if (!has_origin || parse_origin(ov, on, &opart, &ooff)) return SEQ_ROUTE_APPLY;
    if (!origin_seen(mr, opart, ooff, m->partition, m->offset)) return SEQ_ROUTE_APPLY;
    mr->pend_dups++;
    return SEQ_ROUTE_DUP;
}

int seq_misroute_flush(seq_misroute *mr, const _Atomic int *stop, char *err, size_t errlen)
{
    int rc = SEQ_OK;
    /* Until nothing is queued or in flight (copies of an earlier, failed attempt too), in
     * short slices, so that a stop is not held up by brokers that do not answer. */
    while (rd_kafka_outq_len(mr->rk) > 0 && !atomic_load(stop)) rd_kafka_flush(mr->rk, 100);
    if (mr->failed || rd_kafka_outq_len(mr->rk) > 0) {
        seq_errf(err, errlen, "re-producing misrouted events: %s",
                 mr->failed ? mr->first_error : "stopped before delivery");
        rc = SEQ_EUNAVAILABLE;
        /* what is still queued is dropped: the batch is retried, copies and all */
        rd_kafka_purge(mr->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(mr->rk, 0);
    } else {
        atomic_fetch_add_explicit(&mr->stats.misrouted, mr->pend_misrouted, memory_order_relaxed);
        atomic_fetch_add_explicit(&mr->stats.reproduced, mr->delivered, memory_order_relaxed);
        atomic_fetch_add_explicit(&mr->stats.duplicates, mr->pend_dups, memory_order_relaxed);
    }
    seq_misroute_discard(mr);
    return rc;
}

void seq_misroute_discard(seq_misroute *mr)
{
    mr->pend_misrouted = mr->pend_dups = mr->delivered = mr->failed = 0;
    mr->first_error[0] = '\0';
}
