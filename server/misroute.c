/* Misrouted events (see misroute.h). The copies go out through one producer with explicit
 * partitions; the consumer flushes it before each commit that holds a misrouted message.
 * "Once per origin" on the owner is origins.h's rule (skip a copy at or below the highest
 * origin offset applied from its origin partition), which holds only if this producer
 * writes the copies of one origin partition to one owner partition in the order they
 * were produced and without gaps: a copy written after an earlier one was lost would
 * make the owner skip the lost one's later copies (another group's, the retry's) as
 * applied. Hence the producer's settings (make_producer): idempotence (in order, once,
 * across retries and broker failovers), the gapless guarantee (a failure that would
 * leave a gap is fatal: the producer stops, and is made anew), and no per-message
 * timeout (librdkafka times out queued messages one by one and then sends the later
 * ones: "1, 4, 5" in its INTRODUCTION.md). A flush gives up after FLUSH_GIVE_UP_MS by
 * purging everything queued and in flight at once: what was written is a prefix of
 * what was produced (the broker accepts an idempotent producer's batches only in
 * sequence), and the batch's retry re-produces every copy of the batch from its first
 * one, at or below anything already written. */
#include "misroute.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"
#include "../engine/partition.h"
#include "kafkaconf.h"
#include "log.h"
#include "origins.h"

#define ORIGIN_HEADER "seqd-origin"
/* A flush waits this long for its copies, then gives up (the batch is retried). */
#define FLUSH_GIVE_UP_MS 10000

struct seq_misroute {
    rd_kafka_t *rk; /* NULL after a fatal error until make_producer succeeds again */
    char *brokers, *topic;
    const seq_kafkaconf *kc;
    seq_misroute_stats stats;
    /* consumer thread only */
    uint64_t pend_misrouted, pend_dups, delivered, failed;
    char first_error[200];
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

/* The producer (see the top of the file): seqd's settings for exactness are set after the
 * --kafka-config properties, which must not weaken them. */
static int make_producer(seq_misroute *mr, char *err, size_t errlen)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        seq_errf(err, errlen, "misroute: out of memory");
        return SEQ_EINTERNAL;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", mr->brokers, e, sizeof e) ||
        rd_kafka_conf_set(conf, "linger.ms", "1", e, sizeof e) ||
        rd_kafka_conf_set(conf, "log_level", "3", e, sizeof e)) {
        seq_errf(err, errlen, "misroute producer: %s", e);
        goto fail;
    }
    if (seq_kafkaconf_apply(mr->kc, conf, err, errlen)) goto fail;
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", e, sizeof e) ||
        rd_kafka_conf_set(conf, "enable.gapless.guarantee", "true", e, sizeof e) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "0", e, sizeof e)) { /* 0: none */
        seq_errf(err, errlen, "misroute producer: %s", e);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, mr);
    if (!(mr->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e))) {
        seq_errf(err, errlen, "misroute producer: %s", e);
        goto fail;
    }
    return SEQ_OK;
fail:
    rd_kafka_conf_destroy(conf);
    return SEQ_EINVAL;
}

int seq_misroute_new(const char *brokers, const char *topic, const seq_kafkaconf *kc,
                     seq_misroute **out, char *err, size_t errlen)
{
    seq_misroute *mr = calloc(1, sizeof *mr);
    if (!mr || !(mr->topic = strdup(topic)) || !(mr->brokers = strdup(brokers))) {
        seq_errf(err, errlen, "misroute: out of memory");
        seq_misroute_free(mr);
        return SEQ_EINTERNAL;
    }
    mr->kc = kc;
    int rc = make_producer(mr, err, errlen);
    if (rc) {
        seq_misroute_free(mr);
        return rc;
    }
    *out = mr;
    return SEQ_OK;
}

void seq_misroute_free(seq_misroute *mr)
{
    if (!mr) return;
    if (mr->rk) {
        rd_kafka_flush(mr->rk, 2000);
        rd_kafka_destroy(mr->rk);
    }
    free(mr->brokers);
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
    if (!mr->rk) return SEQ_EUNAVAILABLE; /* made anew by the next flush */
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

int seq_misroute_check(seq_misroute *mr, seq_origins *o, const rd_kafka_message_t *m,
                       uint64_t user_id, uint32_t n_partitions)
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
    int dup = seq_origins_admit(o, (uint32_t)m->partition, (uint32_t)opart, ooff);
    if (dup < 0) return SEQ_EINTERNAL;
    if (!dup) return SEQ_ROUTE_APPLY;
    mr->pend_dups++;
    return SEQ_ROUTE_DUP;
}

static void reset_counts(seq_misroute *mr)
{
    mr->pend_misrouted = mr->pend_dups = mr->delivered = mr->failed = 0;
    mr->first_error[0] = '\0';
}

/* Makes a new producer when there is none (a failed remake) or this one stopped on a
 * fatal error (the gapless guarantee's, or the idempotent producer's own): it would fail
 * every copy from then on. */
static void recover(seq_misroute *mr)
{
    char why[256];
    if (mr->rk) {
        if (rd_kafka_fatal_error(mr->rk, why, sizeof why) == RD_KAFKA_RESP_ERR_NO_ERROR) return;
        seq_log(SEQ_LOG_WARN, "misroute: the producer of misrouted copies stopped (%s): "
                "making a new one; the batch's copies are produced again", why);
        rd_kafka_destroy(mr->rk);
        mr->rk = NULL;
    }
    if (make_producer(mr, why, sizeof why))
        seq_log(SEQ_LOG_WARN, "misroute: %s (tried again with the batch)", why);
}

int seq_misroute_flush(seq_misroute *mr, const _Atomic int *stop, char *err, size_t errlen)
{
    int rc = SEQ_OK;
    /* Until nothing is queued or in flight (copies of an earlier, failed attempt too), in
     * short slices, so that a stop is not held up by brokers that do not answer. */
    int64_t give_up_at = seq_now_ms() + FLUSH_GIVE_UP_MS;
    while (mr->rk && rd_kafka_outq_len(mr->rk) > 0 && !atomic_load(stop) &&
           seq_now_ms() < give_up_at)
        rd_kafka_flush(mr->rk, 100);
    if (mr->failed || (mr->rk && rd_kafka_outq_len(mr->rk) > 0)) {
        seq_errf(err, errlen, "re-producing misrouted events: %s",
                 mr->failed ? mr->first_error
                 : atomic_load(stop) ? "stopped before delivery"
                                     : "not delivered within 10 s");
        rc = SEQ_EUNAVAILABLE;
        /* everything still queued or in flight is dropped at once (never one by one: see
         * the top of the file); the batch is retried, copies and all */
        if (mr->rk) {
            rd_kafka_purge(mr->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(mr->rk, 0);
        }
        recover(mr);
    } else {
        atomic_fetch_add_explicit(&mr->stats.misrouted, mr->pend_misrouted, memory_order_relaxed);
        atomic_fetch_add_explicit(&mr->stats.reproduced, mr->delivered, memory_order_relaxed);
        atomic_fetch_add_explicit(&mr->stats.duplicates, mr->pend_dups, memory_order_relaxed);
    }
    reset_counts(mr);
    return rc;
}

void seq_misroute_discard(seq_misroute *mr)
{
    reset_counts(mr);
    recover(mr); /* a copy may have failed to enqueue on a stopped producer */
}
