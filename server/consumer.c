/* Kafka consumer thread (see consumer.h). Data path: Kafka message -> seq_ingest (decode,
 * time check, executor: engine/ingest.h, the batch builder's step too) ->
 * seq_store_batch_add_event (blind writes: storage/store_batch.c) into the store batch
 * of the message's write lane (partition p -> lane p % lanes). The messages taken from
 * Kafka (up to BATCH_MAX at a time, BATCH_WAIT_MS) are held until committed; a commit
 * set (wset: one store batch per lane) takes the next held messages, as many as
 * BATCH_BUDGET_MS of work allows, and its lanes' batches are committed to RocksDB at
 * once, each on its lane's thread (server/lanes.h; RocksDB inserts concurrent writes
 * into the memtable in parallel), each in one write together with the next offset and
 * watermark of every partition of its lane that it touched (and the misrouted origins
 * applied on it: origins.h). A user's events all arrive on one partition (misrouted ones
 * are re-produced there, misroute.h), so they are in one lane, in order; the id filter and
 * the misroute state stay on this thread, which fills every batch.
 *
 * Pipelined (pump): there are two sets; this thread fills one while the lanes commit the
 * other, at most one commit in flight, so that decoding and executing the next messages
 * use a core while the commits use the other (they alternated before, each waiting for
 * the other: bench/NOTES.md, "Session 10 — pipelined ingest"). The set being
 * filled builds on the state the set in flight will leave (pending): its offsets follow
 * the in-flight set's, and an id's previous copy is looked for in the in-flight set's
 * batch of the same lane before RocksDB (seq_store_batch_set_prior), since that write may
 * not be visible yet. So a set is committed only after the set before it committed whole:
 * its commit starts once the in-flight one has finished and succeeded; if that one failed,
 * the filled set is dropped with it and both are retried. A set that stages misrouted
 * origins commits alone (origins.h keeps one batch's changes), and so does the set in
 * flight when a partition drop waits (run_drops). The rebalance callback finishes the set
 * in flight before the assignment changes (settle_flight).
 *
 * Offsets live only in RocksDB (never committed to Kafka), so a crash at any point
 * resumes exactly where the stored data ends, per partition: a lane's write holds its
 * partitions' data and offsets, whatever the other lanes' writes did. A failed commit
 * (disk full, a RocksDB write error) is retried with the same messages (still held) on
 * fresh store batches, with a growing pause, until it succeeds; the partitions of lanes
 * whose write succeeded meanwhile are committed, and their messages are skipped by the
 * retry (below their committed next offset): offsets never advance past unwritten data,
 * nothing is half-applied or applied twice, counts and offsets are published only after
 * success (per set: its tallies and the pending state it left, snap). A stop waits for
 * the commit in flight (a few ms) and drops what was not committed.
 *
 * No call on this thread may block for long, whatever the brokers do, so that a stop
 * always finishes within seconds: the thread never uses librdkafka's synchronous offset
 * queries (rd_kafka_query_watermark_offsets waits for a broker well past its timeout
 * when the broker is down); high watermarks come from fetch responses instead, and a
 * stored offset past the log's end is reset by librdkafka (auto.offset.reset).
 *
 * Broker health: librdkafka's error callback (__TRANSPORT, __ALL_BROKERS_DOWN, ...,
 * served by rd_kafka_poll on this thread) triggers a metadata probe of the topic with a
 * short timeout, repeated every PROBE_EVERY_MS until one succeeds; /readyz reports the
 * brokers down meanwhile. */
#include "consumer.h"
#include "wmhist.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "../engine/event.h"
#include "../engine/exec.h"
#include "../engine/ingest.h"
#include "../engine/merge.h"
#include "kafkaconf.h"
#include "lanes.h"
#include "log.h"
#include "misroute.h"
#include "origins.h"

#define BATCH_MAX 10000
#define HELD_MAX (2 * BATCH_MAX) /* messages taken and not committed: two sets' worth */
/* How long a gather waits for more messages after the first one. librdkafka's batch call
 * waits out the whole timeout unless BATCH_MAX messages are queued, so this is added to
 * every message's produce-to-visible time whenever the consumer keeps up; under a
 * backlog the queue holds BATCH_MAX and the call returns at once, so it buys nothing
 * there either. 1 ms, not 5: the commit that follows (memtable inserts, a synced write:
 * a few ms at 50k events/s) lets the next batch gather meanwhile anyway; 5 ms cost
 * 4-32 ms of p50 in bench/visible.sh runs, alternating (bench/NOTES.md, "Session 7 —
 * write path"). */
#define BATCH_WAIT_MS 1
/* Work per commit: a message becomes visible only when its commit does, so a big batch
 * under backlog (10000 messages are ~100 ms of work) would hold back its first messages
 * that long; a commit costs well under a ms (one synced write), so committing every
 * BATCH_BUDGET_MS keeps the batching gain and bounds what it adds to visibility. */
#define BATCH_BUDGET_MS 20
#define BUDGET_CHECK_EVERY 64 /* messages between clock reads */
/* Messages a commit takes before the budget may cut it: the budget is wall time, and a
 * thread starved of CPU must not fall into commits of a few messages each, where the
 * per-commit cost (a synced write, ~0.3 ms) would dominate. */
#define BUDGET_MIN_MESSAGES 1024
#define IDLE_WAIT_MS 100
#define RETRY_SLEEP_MS 500
#define RETRY_MAX_MS 5000      /* longest pause between retries of a failed commit */
#define METADATA_TIMEOUT_MS 1000 /* bounds how long a stop can wait for a metadata call */
#define PROBE_EVERY_MS 1000
#define MALFORMED_LOG_MS 10000

typedef struct {
    int64_t next, high, wm;
    int held;   /* assigned to this node (always, outside a consumer group) */
    int filled; /* consumed to the log's end once since it was taken on: caught up (a latch,
                 * so that reads are not sent elsewhere whenever a few messages wait) */
    int64_t progress_ms; /* see seq_consumer_part */
    /* The log-start check (PRODUCT.md "A node that acquires a partition"): the offset
     * the first message read since the partition was taken on should have (its stored
     * next offset, 0 with nothing stored); -1 once checked, or not checked (the
     * embedded cluster, whose log is new at every start). */
    int64_t expect;
    /* When the log had lost messages before expect: the timestamp of the oldest one left,
     * from which this node holds the partition's stream (persisted: 'm' "gap"); 0 when
     * the log reached back. Whether that is a gap depends on the batches in effect and
     * on retention, so it is judged when reported (gap_cover). */
    int64_t log_from_ms;
} part_state;

typedef struct {
    uint64_t applied, malformed, future, skipped, filtered, late;
} tallies;

/* A write lane's part of a commit set: its store batch and what its messages counted,
 * consumer-thread state that the lane's commit (lane_commit, on the lane's thread) reads
 * and sets. */
typedef struct {
    seq_store_batch *batch;
    tallies t;
    int rc; /* the commit's result */
    char err[256];
} lane;

/* A commit set: a store batch per lane, filled from consecutive held messages by the
 * consumer thread (fill_set), then committed by the lanes (launch, finish_flight). There
 * are two: one fills while the other commits. */
typedef struct {
    lane lanes[SEQ_LANES_MAX];
    uint8_t active[SEQ_LANES_MAX]; /* lanes with something to write */
    part_state *snap; /* pending as its messages left it: published once it committed */
    uint8_t *touched; /* partitions its messages touched */
    size_t n_msgs;    /* held messages it covers (the in-flight set: the first ones) */
    int64_t stamp;    /* wall time of its fill's end: when its watermark took effect */
    int origins;      /* it stages misrouted origins (origins.h): it commits alone */
} wset;

struct seq_consumer {
    seq_consumer_config cfg;
    char *brokers;
    rd_kafka_t *mock_rk; /* owns the embedded cluster; destroyed last */
    rd_kafka_mock_cluster_t *mock;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    seq_misroute *misroute; /* re-produces events that arrived on another partition */
    seq_origins *origins;   /* the misrouted copies applied per held partition */
    pthread_t thread;
    int thread_started;
    _Atomic int stop;
    _Atomic int join; /* group mode: main allows the subscription (seq_consumer_join) */
    seq_consumer_stats stats;
    int64_t probe_at_ms; /* consumer thread: next broker probe, 0 = none due */

    pthread_mutex_t mu; /* guards parts/n_parts against the admin's snapshots */
    /* seq_consumer_on_assignment: told after every change of what this node holds */
    pthread_mutex_t hook_mu;
    seq_consumer_assign_fn hook;
    void *hook_ctx;
    part_state *parts;  /* indexed by partition id */
    uint32_t n_parts;
    int assigned;        /* the first assignment (possibly empty) arrived */
    char store_err[256]; /* the last failed commit's message */

    /* consumer-thread only */
    seq_lanes *pool; /* the lanes' threads, which commit the sets */
    wset sets[2];
    int flight;      /* the set being committed, -1: none */
    wset *cur;       /* the set being filled (lane_batch_of) */
    uint32_t n_lanes;
    /* Messages taken from Kafka and not committed yet, in order: the in-flight set's
     * (the first sets[flight].n_msgs), then those not filled yet. Held until their commit
     * succeeded: a failed commit is retried with them. */
    rd_kafka_message_t **held, **inbox;
    size_t n_held;
    int failed;     /* a commit or fill failed: pause (retry_pause), then retry from held[0] */
    int retry_pause; /* ms before the next retry; 0: no failure since the last commit */
    /* Per partition: the next offset a lane's successful write stored while another
     * lane's failed; the retry skips messages below it. -1: none (no retry pending).
     * Forgotten once the messages held at the failure are committed (retry_left). */
    int64_t *retry_next;
    size_t retry_left;
    /* Test hook (tests/integration/test_lanes.py): SEQD_FAIL_LANE="L:N" fails lane L's
     * next N commits as a failed RocksDB write would (nothing written), while the other
     * lanes' succeed. fail_left is used by lane L's thread only. */
    uint32_t fail_lane;
    int fail_left;
    /* Test hook (tests/integration/test_cluster_misrouted.py): SEQD_KILL_AFTER_COPIES=1
     * kills the process (SIGKILL) as soon as a batch's misrouted copies are delivered,
     * before the commit that would store the offsets of their origins: a crash in the
     * window where a restart re-produces them. */
    int kill_after_copies;
    _Atomic uint8_t *drop_req; /* partitions whose data the cluster map says to drop */
    part_state *pending; /* parts as they will be once the sets filled so far commit */
    int64_t commit_ms; /* wall time of the last commit: when its watermark took effect */
    seq_log_limit malformed_log; /* a line per MALFORMED_LOG_MS at most */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

/* Sleeps ms in short slices; returns early (1) once a stop was requested. */
static int pause_unless_stopped(seq_consumer *c, int ms)
{
    for (int slept = 0; slept < ms; slept += 50) {
        if (atomic_load(&c->stop)) return 1;
        sleep_ms(50);
    }
    return atomic_load(&c->stop);
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof e) == RD_KAFKA_CONF_OK) return SEQ_OK;
    seq_errf(err, errlen, "kafka config %s=%s: %s", k, v, e);
    return SEQ_EINVAL;
}

/* ---- embedded cluster ---- */

static int start_mock(seq_consumer *c, char *err, size_t errlen)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "log_level", "3", err, errlen)) goto fail_conf;
    c->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!c->mock_rk) {
        seq_errf(err, errlen, "embedded kafka: %s", e);
        goto fail_conf;
    }
    c->mock = rd_kafka_mock_cluster_new(c->mock_rk, 1);
    if (!c->mock) {
        seq_errf(err, errlen, "embedded kafka: cannot create the mock cluster");
        return SEQ_EINTERNAL;
    }
    int parts = c->cfg.embedded_partitions > 0 ? c->cfg.embedded_partitions : 8;
    rd_kafka_resp_err_t rerr = rd_kafka_mock_topic_create(c->mock, c->cfg.topic, parts, 1);
    char map_topic[300]; /* the cluster map's (server/cluster.h) */
    snprintf(map_topic, sizeof map_topic, "%s.seqd-cluster", c->cfg.topic);
    if (!rerr) rerr = rd_kafka_mock_topic_create(c->mock, map_topic, 1, 1);
    snprintf(map_topic, sizeof map_topic, "%s.seqd-loads", c->cfg.topic); /* server/loads.h */
    if (!rerr) rerr = rd_kafka_mock_topic_create(c->mock, map_topic, 1, 1);
    if (rerr) {
        seq_errf(err, errlen, "embedded kafka: topic %s: %s", c->cfg.topic, rd_kafka_err2str(rerr));
        return SEQ_EINTERNAL;
    }
    c->brokers = strdup(rd_kafka_mock_cluster_bootstraps(c->mock));
    return c->brokers ? SEQ_OK : SEQ_EINTERNAL;
fail_conf:
    if (!c->mock_rk) rd_kafka_conf_destroy(conf);
    return SEQ_EINTERNAL;
}

/* ---- the consumer handle ---- */

/* Runs on the consumer thread (from rd_kafka_poll). Connection-level errors only start
 * probes: whether the brokers are really gone is what the probe finds out. */
static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    seq_consumer *c = opaque;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        atomic_store_explicit(&c->stats.brokers_down, 1, memory_order_relaxed);
        /* fall through */
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
        if (!c->probe_at_ms) c->probe_at_ms = seq_now_ms();
        break;
    default:
        fprintf(stderr, "seqd: kafka: %s: %s\n", rd_kafka_err2name(err), reason);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque);
static void settle_flight(seq_consumer *c);

/* Replica groups (PRODUCT.md, "A cluster of nodes"): the group's members split the
 * partitions as Kafka assigns them, incrementally (cooperative-sticky: a rebalance moves
 * only the partitions that change hands); --instance-id makes the membership static,
 * with a 10 s session timeout (--kafka-config may set another). */
static int group_conf(seq_consumer *c, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    if (conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, errlen) ||
        conf_set(conf, "session.timeout.ms", "10000", err, errlen) ||
        conf_set(conf, "heartbeat.interval.ms", "1000", err, errlen) ||
        (c->cfg.instance_id && conf_set(conf, "group.instance.id", c->cfg.instance_id, err, errlen)))
        return SEQ_EINVAL;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    return SEQ_OK;
}

static int make_consumer(seq_consumer *c, char *err, size_t errlen)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", c->brokers, err, errlen) ||
        conf_set(conf, "group.id", c->cfg.group, err, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        conf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
        conf_set(conf, "enable.partition.eof", "false", err, errlen) ||
        /* Fetch throughput and latency (bench/NOTES.md, "Streaming ingest"): bigger
         * fetches per partition and a deeper prefetch queue keep the thread busy under
         * load; a short broker wait bounds produce-to-visible when the log is idle.
         * The prefetch queue is bounded in messages too: each queued message costs a few
         * hundred bytes besides its payload and pins its fetch buffer, so 1M of them cost
         * ~300 MiB of RSS. 200k (~60 MiB at most): with 20k the fetcher, which tops the
         * queue up only once it is below the bound, left the consumer waiting for
         * messages half of the time with a full log behind it (bench/NOTES.md,
         * "Session 6"), although 20k are 80 ms of work at the ingest bar.
         * A short error backoff: a consumer behind a log that drops its oldest data
         * (retention; the bench's mock broker keeps ~1 s of a fast producer) gets
         * OFFSET_OUT_OF_RANGE, resets to the log's start and refetches; with the default
         * 500 ms backoff that start was gone again by the refetch, and the consumer stood
         * still for seconds at a time (bench/NOTES.md, "Streaming ingest, session 3"). */
        conf_set(conf, "fetch.wait.max.ms", "10", err, errlen) ||
        conf_set(conf, "fetch.error.backoff.ms", "10", err, errlen) ||
        conf_set(conf, "max.partition.fetch.bytes", "1048576", err, errlen) ||
        conf_set(conf, "queued.min.messages", "200000", err, errlen) ||
        conf_set(conf, "queued.max.messages.kbytes", "32768", err, errlen) ||
        conf_set(conf, "log_level", "4", err, errlen) ||
        (c->cfg.group_mode && group_conf(c, conf, err, errlen)) ||
        seq_kafkaconf_apply(c->cfg.kafka_conf, conf, err, errlen))
        goto fail;
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!c->rk) {
        seq_errf(err, errlen, "kafka consumer: %s", e);
        goto fail;
    }
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    return c->queue ? SEQ_OK : SEQ_EINTERNAL;
fail:
    if (!c->rk) rd_kafka_conf_destroy(conf);
    return SEQ_EINVAL;
}

/* ---- assignment ---- */

/* Partition count of the topic: 0 while it does not exist (yet), -1 when no broker
 * answered within METADATA_TIMEOUT_MS (which also settles the broker health). */
static int topic_partitions(seq_consumer *c)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, c->cfg.topic, NULL);
    if (!rkt) return 0;
    int n = -1;
    if (rd_kafka_metadata(c->rk, 0, rkt, &md, METADATA_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        n = 0;
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    atomic_store_explicit(&c->stats.brokers_down, n < 0, memory_order_relaxed);
    return n;
}

/* A due broker probe (see the top of the file): settles brokers_down, and repeats every
 * PROBE_EVERY_MS while no broker answers. */
static void probe_brokers(seq_consumer *c)
{
    int64_t now = seq_now_ms();
    if (!c->probe_at_ms || now < c->probe_at_ms) return;
    int down = topic_partitions(c) < 0;
    c->probe_at_ms = down ? now + PROBE_EVERY_MS : 0;
}

/* Where partition p starts: the stored next offset, or the beginning when none. A stored
 * offset past the log's end (a real log that lost data) gets OFFSET_OUT_OF_RANGE from
 * the broker and librdkafka restarts at the earliest offset (auto.offset.reset), so we
 * neither skip nor wait for offsets that will never come. The embedded cluster is
 * created empty at every start while the store keeps the previous run's offsets: those
 * name messages that are gone, so its partitions start at the beginning (assign_all
 * says so once; *stale gets the largest offset dropped) instead of earning a warning
 * each and reporting next offsets past the new log's end. The high watermark is unknown
 * (-1) until the first fetch response. */
static int64_t start_offset(seq_consumer *c, int32_t p, part_state *ps, int64_t *stale)
{
    int64_t next = 0, wm = 0;
    int stored = seq_store_get_offset(c->cfg.store, p, &next, &wm) == SEQ_OK;
    ps->wm = stored ? wm : 0;
    ps->high = -1;
    ps->progress_ms = seq_now_ms();
    if (!stored && !c->mock) {
        /* nothing stored for p: this node begins holding it now, and cannot answer an
         * as-of read for an earlier time (PRODUCT.md "As of T"; another replica can) */
        char err[160];
        if (seq_store_set_held_since(c->cfg.store, (uint32_t)p, ps->progress_ms, err, sizeof err))
            seq_log(SEQ_LOG_WARN, "partition %d: held-since time not stored: %s", (int)p, err);
    }
    if (c->mock && stored) {
        if (next > *stale) *stale = next;
        stored = 0;
    }
    ps->next = stored ? next : 0;
    ps->expect = c->mock ? -1 : ps->next;
    ps->log_from_ms = 0;
    if (stored) {
        int rc = seq_store_get_log_from(c->cfg.store, p, &ps->log_from_ms);
        if (rc != SEQ_OK) {
            /* unknown start: claim no more than what this run sees (a gap until now)
             * rather than a whole log, which would hide a real gap */
            ps->log_from_ms = ps->progress_ms;
            seq_log(SEQ_LOG_WARN, "partition %d: stored stream start %s: its stream is "
                    "reported as held from now", (int)p,
                    rc == SEQ_EDATALOSS ? "damaged (kept aside)" : "unreadable");
        }
    }
    return stored ? next : RD_KAFKA_OFFSET_BEGINNING;
}

static int alloc_parts(seq_consumer *c, uint32_t n)
{
    c->parts = calloc(n, sizeof *c->parts);
    c->pending = calloc(n, sizeof *c->pending);
    c->drop_req = calloc(n, sizeof *c->drop_req);
    c->retry_next = malloc(n * sizeof *c->retry_next);
    c->origins = seq_origins_new(n);
    if (!c->parts || !c->pending || !c->drop_req || !c->retry_next || !c->origins)
        return SEQ_EINTERNAL;
    for (int i = 0; i < 2; i++) {
        c->sets[i].snap = calloc(n, sizeof *c->sets[i].snap);
        c->sets[i].touched = calloc(n, 1);
        if (!c->sets[i].snap || !c->sets[i].touched) return SEQ_EINTERNAL;
    }
    for (uint32_t p = 0; p < n; p++) c->retry_next[p] = -1;
    return SEQ_OK;
}

/* Waits for the topic and sizes the partition state; SEQ_ECANCELLED on stop. */
static int wait_topic(seq_consumer *c)
{
    int n, warned = 0;
    while ((n = topic_partitions(c)) <= 0) {
        if (!warned++) fprintf(stderr, "seqd: kafka: waiting for topic %s\n", c->cfg.topic);
        rd_kafka_poll(c->rk, 0); /* serves the error callback; bounds the main queue */
        if (pause_unless_stopped(c, RETRY_SLEEP_MS)) return SEQ_ECANCELLED;
    }
    if (alloc_parts(c, (uint32_t)n)) return SEQ_EINTERNAL;
    /* the stream layout keys data by the user's partition: fixed before the first write */
    char perr[256];
    if (seq_store_set_partitions(c->cfg.store, (uint32_t)n, perr, sizeof perr) != SEQ_OK)
        seq_log(SEQ_LOG_WARN, "consumer: %s", perr);
    pthread_mutex_lock(&c->mu);
    c->n_parts = (uint32_t)n;
    pthread_mutex_unlock(&c->mu);
    return SEQ_OK;
}

/* The misrouted copies applied on each partition taken on, as stored with its offsets
 * (origins.h), known before its first message is applied. The embedded cluster's log is
 * new at every start: the origin offsets stored by an earlier run name messages that are
 * gone, so its partitions start with none. */
static void take_origins(seq_consumer *c, const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        int32_t p = list->elems[i].partition;
        char err[256];
        if (p < 0 || (uint32_t)p >= c->n_parts) continue;
        if (c->mock)
            seq_origins_forget(c->origins, (uint32_t)p);
        else if (seq_origins_load(c->origins, c->cfg.store, (uint32_t)p, err, sizeof err))
            seq_log(SEQ_LOG_WARN, "consumer: %s: a late copy of a misrouted event may be "
                    "applied again", err);
    }
}

/* Takes partitions on: each resumes where the data stored with it ends. Consumer thread
 * (directly, or from the rebalance callback inside a poll). */
static void take_partitions(seq_consumer *c, rd_kafka_topic_partition_list_t *list)
{
    int resumed = 0;
    int64_t stale = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < list->cnt; i++) {
        int32_t p = list->elems[i].partition;
        if (p < 0 || (uint32_t)p >= c->n_parts) continue;
        part_state ps = {0};
        list->elems[i].offset = start_offset(c, p, &ps, &stale);
        resumed += list->elems[i].offset != RD_KAFKA_OFFSET_BEGINNING;
        ps.held = 1;
        c->parts[p] = c->pending[p] = ps;
    }
    pthread_mutex_unlock(&c->mu);
    take_origins(c, list);
    if (stale > 0)
        seq_log(SEQ_LOG_INFO, "kafka: the embedded cluster's log starts empty at every start: "
                "its partitions are read from offset 0 (the previous run's log, up to offset "
                "%lld, is gone; its events are in the store)", (long long)stale);
    seq_log(SEQ_LOG_INFO, "kafka: assigned %d partitions of %s at %s (%d resume from stored "
            "offsets, %d from the beginning)", list->cnt, c->cfg.topic, c->brokers, resumed,
            list->cnt - resumed);
}

static void drop_partitions(seq_consumer *c, const rd_kafka_topic_partition_list_t *list)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < list->cnt; i++) {
        int32_t p = list->elems[i].partition;
        if (p >= 0 && (uint32_t)p < c->n_parts) c->parts[p].held = c->pending[p].held = 0;
    }
    pthread_mutex_unlock(&c->mu);
}

/* What this node holds changed (consumer thread, after take_partitions or
 * drop_partitions): the hook (the cluster map) learns it before anything else can see the
 * assignment as arrived, so that the node never routes by a held set older than it
 * (seq_consumer_wait_assigned returns only after the hook ran). */
static void assignment_changed(seq_consumer *c, int assigned)
{
    pthread_mutex_lock(&c->hook_mu);
    if (c->hook) c->hook(c->hook_ctx);
    pthread_mutex_unlock(&c->hook_mu);
    if (!assigned) return;
    pthread_mutex_lock(&c->mu);
    c->assigned = 1;
    pthread_mutex_unlock(&c->mu);
}

/* Served by rd_kafka_consume_batch_queue on the consumer thread (take_messages), with no
 * set filled; a set in flight is finished first (settle_flight), so that what this node
 * holds changes on committed state, and a partition taken on reads the offset its last
 * write stored. The held messages may still include some of a revoked partition; they
 * are applied (the node keeps a revoked partition's data until its new holder is caught
 * up; run_drops waits for them). */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    seq_consumer *c = opaque;
    rd_kafka_error_t *e = NULL;
    settle_flight(c); /* what this node holds changes on committed state only */
    /* one line per rebalance: which partitions came or went (operators see a group's
     * movements in the log, issue 12) */
    char list[512];
    size_t n = 0;
    list[0] = 0;
    for (int i = 0; i < parts->cnt && n < sizeof list - 16; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", i ? "," : "",
                              (int)parts->elems[i].partition);
    seq_log(SEQ_LOG_INFO, "kafka: rebalance in group %s: %s %d partitions of %s: %s",
            c->cfg.group ? c->cfg.group : "", err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                                                  ? "assigned" : "revoked",
            parts->cnt, c->cfg.topic, parts->cnt ? list : "none");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        take_partitions(c, parts);
        e = rd_kafka_incremental_assign(rk, parts);
    } else {
        drop_partitions(c, parts);
        e = rd_kafka_incremental_unassign(rk, parts);
    }
    if (e) {
        seq_log(SEQ_LOG_ERROR, "kafka: rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    assignment_changed(c, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS);
}

/* Outside a group: every partition, assigned by this node itself. */
static int assign_all(seq_consumer *c)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)c->n_parts);
    if (!list) return SEQ_EINTERNAL;
    for (uint32_t p = 0; p < c->n_parts; p++)
        rd_kafka_topic_partition_list_add(list, c->cfg.topic, (int32_t)p);
    take_partitions(c, list);
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    assignment_changed(c, 1);
    if (e) fprintf(stderr, "seqd: kafka: assign: %s\n", rd_kafka_err2str(e));
    return e ? SEQ_EINTERNAL : SEQ_OK;
}

static int subscribe(seq_consumer *c)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    if (!list) return SEQ_EINTERNAL;
    rd_kafka_topic_partition_list_add(list, c->cfg.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) fprintf(stderr, "seqd: kafka: subscribe: %s\n", rd_kafka_err2str(e));
    return e ? SEQ_EINTERNAL : SEQ_OK;
}

static int start_assignment(seq_consumer *c)
{
    int rc = wait_topic(c);
    if (rc) return rc;
    if (!c->cfg.group_mode) return assign_all(c);
    while (!atomic_load(&c->join))
        if (pause_unless_stopped(c, 50)) return SEQ_ECANCELLED;
    return subscribe(c);
}

/* ---- processing ---- */

/* Is the event beyond the horizon inside committed batch coverage of a sequence that
 * keeps it? Such an event is still stored (the stream's data stays complete) but reads
 * never show it (rule 1), so it is counted. */
static int late_batch_owned(const seq_consumer *c, const seq_store_view *v, int64_t now,
                            const seq_event *ev, const seq_exec_out *outs, uint32_t n)
{
    const seq_def *def = c->cfg.def;
    if (ev->time_ms >= seq_merge_cutoff(now, def->horizon_ms)) return 0;
    for (uint32_t i = 0; i < n; i++) {
        const seq_store_seqstate *s = seq_store_view_seq(v, outs[i].seq_id);
        if (!s || s->n_cov == 0) continue;
        seq_merge_params p = {.now_ms = now, .horizon_ms = def->horizon_ms,
                              .seq = &def->seqs[outs[i].seq_id], .cov = s->cov, .n_cov = s->n_cov};
        if (seq_merge_owner(&p, ev->time_ms)) return 1;
    }
    return 0;
}

/* Keeps the message aside in its lane's batch (seqctl reads them back) and counts it in
 * *count. */
static void keep_malformed(seq_consumer *c, seq_store_batch *b, const rd_kafka_message_t *m,
                           const char *why, uint64_t *count)
{
    seq_store_batch_add_malformed(b, m->partition, m->offset, m->payload, m->len, why);
    (*count)++;
    seq_log_limited(&c->malformed_log, MALFORMED_LOG_MS, SEQ_LOG_WARN,
                    "kafka: malformed message kept aside: %s [%d] offset %lld: %s "
                    "(seqctl malformed lists them)",
                    c->cfg.topic, (int)m->partition, (long long)m->offset, why);
}

/* One message into its lane's store batch. SEQ_OK, or a store error that fails the
 * commit. */
static int handle_message(seq_consumer *c, const seq_store_view *v, int64_t now,
                          const rd_kafka_message_t *m, lane *ln, int64_t *wm)
{
    tallies *t = &ln->t;
    const seq_def *def = c->cfg.def;
    seq_event ev;
    seq_exec_out outs[SEQ_MAX_SEQUENCES];
    uint32_t n = 0;
    char why[256];
    seq_ingest_result ir = seq_ingest(def, c->cfg.format, m->payload, m->len, now, -1, &ev, outs,
                                      &n, why, sizeof why);
    if (ir != SEQ_INGEST_MALFORMED) {
        /* an event of another partition's user goes there, whatever this node would do
         * with it (misroute.h) */
        int route = seq_misroute_check(c->misroute, c->origins, m, ev.user_id, c->n_parts);
        if (route == SEQ_ROUTE_SENT || route == SEQ_ROUTE_DUP) return SEQ_OK;
        if (route != SEQ_ROUTE_APPLY) return route;
    }
    switch (ir) {
    case SEQ_INGEST_MALFORMED: keep_malformed(c, ln->batch, m, why, &t->malformed); return SEQ_OK;
    case SEQ_INGEST_FUTURE: /* a clock, not a codec, issue */
        keep_malformed(c, ln->batch, m, why, &t->future);
        return SEQ_OK;
    case SEQ_INGEST_UNKNOWN_TYPE: t->skipped++; return SEQ_OK;
    case SEQ_INGEST_FILTERED: t->filtered++; return SEQ_OK;
    case SEQ_INGEST_KEPT: break;
    }
    int rc;
    t->late += (uint64_t)late_batch_owned(c, v, now, &ev, outs, n);
    rc = seq_store_batch_add_event(ln->batch, &ev, outs, n, why, sizeof why);
    if (rc == SEQ_EINVAL) { /* the event itself is unstorable: retrying cannot help */
        keep_malformed(c, ln->batch, m, why, &t->malformed);
        return SEQ_OK;
    }
    if (rc) {
        fprintf(stderr, "seqd: consumer: store: %s\n", why);
        return rc;
    }
    t->applied++;
    if (ev.time_ms > *wm) *wm = ev.time_ms;
    return SEQ_OK;
}

/* SEQ_ERESOURCE with a message while the data dir has less than min_free_bytes free: the
 * commit then waits like a failed one, before RocksDB's WAL runs out of space (see
 * config.h). */
static int check_free_space(const seq_consumer *c, char *err, size_t errlen)
{
    struct statvfs fs;
    if (!c->cfg.min_free_bytes || !c->cfg.data_dir || statvfs(c->cfg.data_dir, &fs) != 0)
        return SEQ_OK;
    uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize;
    if (avail >= c->cfg.min_free_bytes) return SEQ_OK;
    seq_errf(err, errlen, "disk nearly full: %llu MiB free under %s, below --min-free-mb %llu",
             (unsigned long long)(avail >> 20), c->cfg.data_dir,
             (unsigned long long)(c->cfg.min_free_bytes >> 20));
    return SEQ_ERESOURCE;
}

static void add_tallies(seq_consumer *c, const tallies *t)
{
    seq_consumer_stats *s = &c->stats;
    atomic_fetch_add_explicit(&s->applied, t->applied, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->malformed, t->malformed, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->future, t->future, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->skipped_unknown_type, t->skipped, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->filtered, t->filtered, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->late_batch_owned, t->late, memory_order_relaxed);
}

/* The newest applied event time over all partitions. */
static int64_t newest_wm(const part_state *ps, uint32_t n)
{
    int64_t newest = 0;
    for (uint32_t p = 0; p < n; p++)
        if (ps[p].wm > newest) newest = ps[p].wm;
    return newest;
}

/* The log-start check, at the first message read since a partition was taken on: the
 * log lost messages this node needed (retention, or a DeleteRecords, before it read
 * them) when its start (the low watermark of the fetch responses) is past where the
 * partition's stored data ends (expect; 0 when nothing is stored). The first message's
 * offset alone does not say it: offsets below it may hold no data (transaction markers,
 * records compaction removed). A first message at expect proves the log reached back;
 * an unknown log start (a broker older than Fetch v5) counts as past expect. From then
 * on this node holds the partition's stream from that message's timestamp (the
 * producer's CreateTime or the broker's LogAppendTime; every lost message was appended
 * before it), recorded in the same commit as the message. */
static void check_log_start(seq_consumer *c, const rd_kafka_message_t *m, part_state *ps)
{
    int64_t lo = -1, hi;
    if (m->offset > ps->expect &&
        (rd_kafka_get_watermark_offsets(c->rk, c->cfg.topic, m->partition, &lo, &hi) ||
         lo < 0 || lo > ps->expect)) {
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        ps->log_from_ms = ts > 0 ? ts : seq_now_ms();
        seq_log(SEQ_LOG_WARN, "partition %d: the Kafka log starts at offset %lld (its first "
                "message left: %lld), not at %lld: messages before it are gone; this node "
                "holds the partition's stream from %lld (ms) on", (int)m->partition,
                (long long)lo, (long long)m->offset, (long long)ps->expect,
                (long long)ps->log_from_ms);
    }
    ps->expect = -1;
}

static uint32_t lane_of(const seq_consumer *c, uint32_t p) { return p % c->n_lanes; }

/* The store batch that writes partition q's events and offset in the set being filled
 * (seq_origins_stage). */
static seq_store_batch *lane_batch_of(void *ctx, uint32_t q)
{
    seq_consumer *c = ctx;
    return c->cur->lanes[lane_of(c, q)].batch;
}

/* The as-of series (wmhist.h) survives restarts: a change of the newest applied event
 * time goes into set s's write of the lane whose partition holds the new newest, which
 * does not depend on what the other lanes write (a crash may keep one lane's write and
 * not another's: the stored series never names a time whose events were lost). Compared
 * with the published newest: while another set is in flight, a change it made is
 * written again (the same key and value). */
static void note_newest(seq_consumer *c, wset *s, int64_t stamp)
{
    uint32_t top = 0;
    for (uint32_t p = 1; p < c->n_parts; p++)
        if (c->pending[p].wm > c->pending[top].wm) top = p;
    int64_t newest = c->n_parts ? c->pending[top].wm : 0;
    if (newest != newest_wm(c->parts, c->n_parts))
        seq_store_batch_set_newest(s->lanes[lane_of(c, top)].batch, stamp, newest);
}

/* Runs on lane i's thread (seq_lanes_start): writes the in-flight set's batch of lane i. */
static void lane_commit(void *arg, uint32_t i)
{
    seq_consumer *c = arg;
    lane *ln = &c->sets[c->flight].lanes[i];
    if (i == c->fail_lane && c->fail_left > 0) { /* the test hook: the batch is renewed */
        c->fail_left--;
        ln->rc = SEQ_EINTERNAL;
        snprintf(ln->err, sizeof ln->err, "rocksdb write: failed on purpose (SEQD_FAIL_LANE)");
        return;
    }
    ln->rc = seq_store_batch_commit(ln->batch, ln->err, sizeof ln->err);
}

/* After a commit of set s in which lane i's write succeeded and another's failed: lane
 * i's partitions are committed (published as such, their counts added), and the retry
 * skips their messages below the offsets stored. */
static void keep_lane(seq_consumer *c, const wset *s, uint32_t i)
{
    uint32_t kept = 0;
    pthread_mutex_lock(&c->mu);
    for (uint32_t p = i; p < c->n_parts; p += c->n_lanes) {
        if (!s->touched[p]) continue;
        c->parts[p] = s->snap[p];
        c->retry_next[p] = s->snap[p].next;
        seq_origins_committed(c->origins, p);
        kept++;
    }
    pthread_mutex_unlock(&c->mu);
    add_tallies(c, &s->lanes[i].t);
    seq_log(SEQ_LOG_INFO, "consumer: write lane %u stored %u partitions while another lane's "
            "write failed: they are committed, the retry skips their messages", i, kept);
}

/* Fills set s with the first messages of msgs (n > 0): each into a fresh view of pending
 * state and its lane's store batch, as many as BATCH_BUDGET_MS of work allows (at least
 * one; *used says how many), then the offsets, origins and newest time that go with
 * them; the misrouted copies among them are delivered before it returns (their origins'
 * offsets are stored only after that). prior: the set in flight, or NULL; its batches
 * are the prior of s's (seq_store_batch_set_prior). SEQ_OK, or an error: s must not be
 * committed (reset_to_committed). */
static int fill_set(seq_consumer *c, wset *s, const wset *prior, rd_kafka_message_t **msgs,
                    size_t n, size_t *used, char *err, size_t errlen)
{
    int rc = check_free_space(c, err, errlen);
    if (rc) return rc;
    int64_t now = seq_now_ms();
    const seq_store_view *v = seq_store_view_acquire(c->cfg.store);
    c->cur = s;
    memset(s->touched, 0, c->n_parts);
    for (uint32_t l = 0; l < c->n_lanes; l++) {
        s->lanes[l].t = (tallies){0};
        seq_store_batch_set_prior(s->lanes[l].batch, prior ? prior->lanes[l].batch : NULL);
    }
    size_t i = 0;
    for (; i < n && !rc; i++) {
        if (i >= BUDGET_MIN_MESSAGES && i % BUDGET_CHECK_EVERY == 0 &&
            seq_now_ms() - now >= BATCH_BUDGET_MS)
            break;
        const rd_kafka_message_t *m = msgs[i];
        if (m->err) {
            fprintf(stderr, "seqd: kafka: %s\n", rd_kafka_message_errstr(m));
            continue;
        }
        if (m->partition < 0 || (uint32_t)m->partition >= c->n_parts) continue;
        if (m->offset < c->retry_next[m->partition]) continue; /* stored by a lane's write */
        part_state *ps = &c->pending[m->partition];
        if (ps->expect >= 0) check_log_start(c, m, ps);
        rc = handle_message(c, v, now, m, &s->lanes[lane_of(c, (uint32_t)m->partition)], &ps->wm);
        ps->next = m->offset + 1;
        ps->progress_ms = now;
        s->touched[m->partition] = 1;
    }
    *used = s->n_msgs = i;
    seq_store_view_release(c->cfg.store, v);
    memset(s->active, 0, sizeof s->active);
    for (uint32_t p = 0; p < c->n_parts && !rc; p++) {
        if (!s->touched[p]) continue;
        lane *ln = &s->lanes[lane_of(c, p)];
        seq_store_batch_set_offset(ln->batch, (int32_t)p, c->pending[p].next, c->pending[p].wm);
        /* with the offsets past it: a restart resumes there and must still know */
        if (c->pending[p].log_from_ms != c->parts[p].log_from_ms)
            seq_store_batch_set_log_from(ln->batch, (int32_t)p, c->pending[p].log_from_ms);
        s->active[lane_of(c, p)] = 1;
    }
    if (rc) seq_errf(err, errlen, "adding events to the store batch failed");
    /* the misrouted copies applied, in the write of their partition's offset; a set in
     * flight has none (see pump), so every pair changed is this set's */
    s->origins = seq_origins_pending(c->origins) > 0;
    if (!rc) seq_origins_stage(c->origins, lane_batch_of, c);
    /* the offsets of misrouted events are stored only once their copies are delivered */
    seq_misroute_stats *ms = seq_misroute_get_stats(c->misroute);
    uint64_t copies = atomic_load_explicit(&ms->reproduced, memory_order_relaxed);
    if (!rc) rc = seq_misroute_flush(c->misroute, &c->stop, err, errlen);
    if (rc) return rc;
    if (c->kill_after_copies && atomic_load_explicit(&ms->reproduced, memory_order_relaxed) > copies)
        raise(SIGKILL);
    s->stamp = seq_now_ms();
    note_newest(c, s, s->stamp);
    memcpy(s->snap, c->pending, c->n_parts * sizeof *c->pending);
    return SEQ_OK;
}

/* The stream watermark of PRODUCT.md: the lowest watermark among partitions with
 * unconsumed messages, or the newest applied event time when all are caught up. A
 * partition whose high watermark is not known yet (no fetch response since the
 * assignment) is left out of the watermark and the lag, as nothing says it is behind,
 * but the stream is not caught up (/readyz) until every partition's is known. */
static void publish(seq_consumer *c)
{
    int64_t lowest = INT64_MAX, newest = 0, lag = 0;
    int behind = 0, unknown = 0;
    for (uint32_t p = 0; p < c->n_parts; p++) {
        const part_state *ps = &c->parts[p];
        if (!ps->held) continue; /* another node's: not ours to be behind on */
        if (ps->wm > newest) newest = ps->wm;
        if (ps->high < 0) {
            unknown = 1;
        } else if (ps->next < ps->high) {
            behind = 1;
            lag += ps->high - ps->next;
            if (ps->wm < lowest) lowest = ps->wm;
        }
    }
    atomic_store_explicit(c->cfg.stream_watermark, behind ? lowest : newest, memory_order_relaxed);
    /* for as-of reads, stamped like the stored series (note_newest): a change comes
     * from the last commit */
    seq_wmhist_note(c->cfg.wmhist, c->commit_ms ? c->commit_ms : seq_now_ms(), newest);
    atomic_store_explicit(&c->stats.lag, lag, memory_order_relaxed);
    atomic_store_explicit(&c->stats.caught_up, !behind && !unknown, memory_order_relaxed);
}

/* A log emptied past where a partition's data ends (every message expired, or deleted:
 * low watermark = high watermark > expect) has no message for check_log_start: the
 * partition resumes at the log's end, held from now on (the lost messages' times are
 * unknown; all came before now), both stored in one commit. Without this its next
 * offset would stay below the log's end and it would never be caught up. */
static void settle_empty_log(seq_consumer *c, uint32_t p, int64_t lo, int64_t now, int *any)
{
    part_state *ps = &c->pending[p];
    ps->log_from_ms = now;
    seq_log(SEQ_LOG_WARN, "partition %u: the Kafka log is empty from offset %lld on, not from "
            "%lld: messages before it are gone; this node holds the partition's stream from "
            "%lld (ms) on", p, (long long)lo, (long long)ps->expect, (long long)now);
    ps->next = lo;
    ps->expect = -1;
    /* lane 0's batch for every such partition: a write of its own, before any events */
    seq_store_batch_set_offset(c->sets[0].lanes[0].batch, (int32_t)p, ps->next, ps->wm);
    seq_store_batch_set_log_from(c->sets[0].lanes[0].batch, (int32_t)p, now);
    *any = 1;
}

static int renew_batches(seq_consumer *c);

/* High watermarks from the last fetch responses. */
static void refresh_highs(seq_consumer *c)
{
    for (uint32_t p = 0; p < c->n_parts; p++) {
        int64_t lo, hi;
        part_state *ps = &c->pending[p];
        if (!ps->held || rd_kafka_get_watermark_offsets(c->rk, c->cfg.topic, (int32_t)p, &lo, &hi) != 0 || hi < 0)
            continue;
        ps->high = hi;
    }
}

/* Partitions whose log emptied past where their data ends (settle_empty_log). Runs when
 * every message taken is committed (nothing held, nothing in flight: the sets' store
 * batches are empty), and only while the consumer's queue is empty: a fetch response
 * that carried messages came before the one that showed the log empty (one fetch at a
 * time per broker), and its messages went into that queue, so a partition none of whose
 * messages was applied and none is queued got none from the log: they were gone when it
 * was fetched. */
static void settle_empty_logs(seq_consumer *c)
{
    int any = 0;
    int64_t now = seq_now_ms();
    if (atomic_load(&c->stop) || rd_kafka_queue_length(c->queue) > 0) return;
    for (uint32_t p = 0; p < c->n_parts; p++) {
        int64_t lo, hi;
        part_state *ps = &c->pending[p];
        if (!ps->held || ps->expect < 0 ||
            rd_kafka_get_watermark_offsets(c->rk, c->cfg.topic, (int32_t)p, &lo, &hi) != 0)
            continue;
        if (lo > ps->expect && lo == hi) settle_empty_log(c, p, lo, now, &any);
    }
    char err[256];
    if (any && seq_store_batch_commit(c->sets[0].lanes[0].batch, err, sizeof err) != SEQ_OK) {
        seq_log(SEQ_LOG_WARN, "consumer: storing a log start failed (retried): %s", err);
        while (renew_batches(c)) /* out of memory: wait */
            if (pause_unless_stopped(c, RETRY_SLEEP_MS)) return;
        pthread_mutex_lock(&c->mu);
        memcpy(c->pending, c->parts, c->n_parts * sizeof *c->parts);
        pthread_mutex_unlock(&c->mu);
    }
}

/* Fresh store batches for every lane of both sets (after a failed commit: a batch may
 * hold half of a message's writes). SEQ_OK or SEQ_EINTERNAL (out of memory). */
static int renew_batches(seq_consumer *c)
{
    for (int i = 0; i < 2; i++)
        for (uint32_t l = 0; l < c->n_lanes; l++) {
            lane *ln = &c->sets[i].lanes[l];
            seq_store_batch_free(ln->batch);
            if (!(ln->batch = seq_store_batch_new(c->cfg.store))) return SEQ_EINTERNAL;
        }
    return SEQ_OK;
}

/* Makes st (the pending state as a commit left it) the published one (offsets,
 * watermarks, lag). A partition consumed to its known end counts as progressing (a quiet
 * one is not stale), unless the brokers are down: its end is then unknown and its age
 * grows. The marks go into pending too, from which a later set's state is copied. */
static void publish_state(seq_consumer *c, part_state *st)
{
    int64_t now = seq_now_ms();
    int down = atomic_load_explicit(&c->stats.brokers_down, memory_order_relaxed);
    for (uint32_t p = 0; p < c->n_parts; p++) {
        part_state *ps = &st[p], *pend = &c->pending[p];
        if (ps->high < 0 || ps->next < ps->high) continue;
        if (!down) ps->progress_ms = now;
        if (ps->progress_ms > pend->progress_ms) pend->progress_ms = ps->progress_ms;
        if (ps->held) ps->filled = 1;
        if (pend->held) pend->filled |= ps->filled;
    }
    pthread_mutex_lock(&c->mu);
    memcpy(c->parts, st, c->n_parts * sizeof *c->parts);
    pthread_mutex_unlock(&c->mu);
    publish(c);
}

/* With nothing filled and nothing in flight, pending is the committed state. */
static void publish_committed(seq_consumer *c) { publish_state(c, c->pending); }

/* Destroys the first n held messages (committed). */
static void release_held(seq_consumer *c, size_t n)
{
    for (size_t i = 0; i < n; i++) rd_kafka_message_destroy(c->held[i]);
    c->n_held -= n;
    memmove(c->held, c->held + n, c->n_held * sizeof *c->held);
}

/* After a failed commit or fill: back to the committed state (parts, with what
 * keep_lane kept), on fresh batches; the retry starts from the first held message after a
 * pause (retry_wait). Meanwhile store_failing makes /readyz report the error. */
static void reset_to_committed(seq_consumer *c, const char *err)
{
    if (!c->retry_pause) /* the first failure of a streak; later ones only count */
        fprintf(stderr, "seqd: consumer: commit failed (%s); retrying the same messages\n", err);
    atomic_fetch_add_explicit(&c->stats.store_errors, 1, memory_order_relaxed);
    seq_misroute_discard(c->misroute); /* the retry counts its messages again */
    seq_origins_discard(c->origins);    /* and decides its copies again */
    atomic_store_explicit(&c->stats.store_failing, 1, memory_order_relaxed);
    pthread_mutex_lock(&c->mu);
    memcpy(c->pending, c->parts, c->n_parts * sizeof *c->parts);
    snprintf(c->store_err, sizeof c->store_err, "%s", err);
    pthread_mutex_unlock(&c->mu);
    c->retry_left = c->n_held; /* retry_next holds until these are committed */
    c->failed = 1;
    while (renew_batches(c)) /* out of memory: wait, the messages are still held */
        if (pause_unless_stopped(c, RETRY_SLEEP_MS)) return;
}

/* The pause before a retry, doubling up to RETRY_MAX_MS over a streak of failures; 1 on
 * stop. */
static int retry_wait(seq_consumer *c)
{
    c->retry_pause = !c->retry_pause ? 100
                     : c->retry_pause * 2 < RETRY_MAX_MS ? c->retry_pause * 2 : RETRY_MAX_MS;
    rd_kafka_poll(c->rk, 0);
    probe_brokers(c);
    if (pause_unless_stopped(c, c->retry_pause)) return 1;
    c->failed = 0;
    return 0;
}

/* Waits for the set in flight, if any, and settles it. Committed: its counts and state
 * are published and its messages released (SEQ_OK). Failed: the lanes whose write
 * succeeded are kept, everything else goes back to the committed state, the set filled
 * meanwhile included (SEQ_EINTERNAL; reset_to_committed). */
static int finish_flight(seq_consumer *c)
{
    if (c->flight < 0) return SEQ_OK;
    wset *s = &c->sets[c->flight];
    seq_lanes_wait(c->pool);
    c->flight = -1;
    const char *err = NULL;
    for (uint32_t l = 0; l < c->n_lanes; l++)
        if (s->active[l] && s->lanes[l].rc && !err) err = s->lanes[l].err;
    if (err) {
        /* the pairs of a set filled meanwhile (s had none: pump) must not become
         * committed with a kept lane's partitions */
        if (!s->origins) seq_origins_discard(c->origins);
        for (uint32_t l = 0; l < c->n_lanes; l++)
            if (s->active[l] && !s->lanes[l].rc) keep_lane(c, s, l);
        reset_to_committed(c, err);
        return SEQ_EINTERNAL;
    }
    for (uint32_t l = 0; l < c->n_lanes; l++) add_tallies(c, &s->lanes[l].t);
    if (s->origins) seq_origins_committed(c->origins, -1);
    c->commit_ms = s->stamp;
    c->retry_pause = 0;
    atomic_store_explicit(&c->stats.store_failing, 0, memory_order_relaxed);
    publish_state(c, s->snap);
    release_held(c, s->n_msgs);
    if (c->retry_left) {
        /* no message held at the failure can come again: what lanes kept is forgotten */
        c->retry_left = s->n_msgs < c->retry_left ? c->retry_left - s->n_msgs : 0;
        if (!c->retry_left)
            for (uint32_t p = 0; p < c->n_parts; p++) c->retry_next[p] = -1;
    }
    return SEQ_OK;
}

/* A drop (seq_consumer_drop_partition) is waiting for run_drops, which runs with nothing
 * in flight. */
static int drops_requested(seq_consumer *c)
{
    for (uint32_t p = 0; p < c->n_parts; p++)
        if (atomic_load_explicit(&c->drop_req[p], memory_order_relaxed)) return 1;
    return 0;
}

/* The pipeline's step: fills the free set from the held messages not filled yet while
 * the set in flight commits, then waits for that commit and, when both succeeded,
 * starts the new set's. A set that stages misrouted origins commits alone (origins.h
 * keeps one batch's changes: the next set is filled after its commit), and so does the
 * set in flight when a drop is waiting (run_drops needs nothing in flight). */
static void pump(seq_consumer *c)
{
    size_t start = c->flight >= 0 ? c->sets[c->flight].n_msgs : 0, used = 0;
    size_t n = c->n_held - start;
    if (n > BATCH_MAX) n = BATCH_MAX;
    int fill = n > 0 && (c->flight < 0 || (!c->sets[c->flight].origins && !drops_requested(c)));
    int s = c->flight == 0 ? 1 : 0;
    char err[256] = "a store error";
    int rc = fill ? fill_set(c, &c->sets[s], c->flight >= 0 ? &c->sets[c->flight] : NULL,
                             c->held + start, n, &used, err, sizeof err)
                  : SEQ_OK;
    if (finish_flight(c) != SEQ_OK || !fill) return; /* a failed flight reset the fill too */
    if (rc) {
        reset_to_committed(c, err);
        return;
    }
    c->flight = s;
    seq_lanes_start(c->pool, c->sets[s].active);
}

/* The rebalance callback (inside take_messages) acts on the committed state: the set in
 * flight is finished first (a failure resets it, and the loop retries). */
static void settle_flight(seq_consumer *c) { (void)finish_flight(c); }

/* Takes what librdkafka has queued into the held messages, as many as fit: waits up to
 * wait_ms for a first one, then BATCH_WAIT_MS for more (not when wait_ms is 0: a commit or
 * held messages are waiting for this thread). Into inbox first: the rebalance callback,
 * served inside, may release held messages. */
static void take_messages(seq_consumer *c, int wait_ms)
{
    size_t room = HELD_MAX - c->n_held;
    if (room > BATCH_MAX) room = BATCH_MAX;
    if (!room) return;
    ssize_t n = rd_kafka_consume_batch_queue(c->queue, wait_ms, c->inbox, 1);
    if (n <= 0) return;
    ssize_t more = room > 1 ? rd_kafka_consume_batch_queue(c->queue, wait_ms ? BATCH_WAIT_MS : 0,
                                                           c->inbox + 1, room - 1)
                            : 0;
    if (more > 0) n += more;
    memcpy(c->held + c->n_held, c->inbox, (size_t)n * sizeof *c->inbox);
    c->n_held += (size_t)n;
}

/* A held message (not committed yet) of partition p. */
static int holds_messages_of(const seq_consumer *c, uint32_t p)
{
    for (size_t i = 0; i < c->n_held; i++)
        if (c->held[i]->partition == (int32_t)p) return 1;
    return 0;
}

/* Requested drops (seq_consumer_drop_partition) of partitions this node does not hold:
 * here, with nothing in flight, so that a drop never races with the partition being taken
 * on again (take_partitions reads its stored offset, which the drop deletes), nor with a
 * write of its data; a partition with messages still held (taken before its revocation,
 * and applied: see on_rebalance) waits for their commit. */
static void run_drops(seq_consumer *c)
{
    for (uint32_t p = 0; p < c->n_parts; p++) {
        if (!atomic_load(&c->drop_req[p]) || c->pending[p].held || holds_messages_of(c, p))
            continue;
        if (!atomic_exchange(&c->drop_req[p], 0)) continue;
        char err[256];
        if (seq_store_drop_partition(c->cfg.store, p, err, sizeof err) == SEQ_OK) {
            /* its stored log start went with it: a later holding checks the log afresh */
            pthread_mutex_lock(&c->mu);
            c->parts[p].log_from_ms = c->pending[p].log_from_ms = 0;
            pthread_mutex_unlock(&c->mu);
            seq_origins_forget(c->origins, p); /* its stored origins went too */
            atomic_fetch_add_explicit(&c->stats.partitions_dropped, 1, memory_order_relaxed);
            seq_log(SEQ_LOG_INFO, "consumer: dropped the stream data of partition %u (its new "
                    "holder is caught up)", p);
        } else {
            seq_log(SEQ_LOG_WARN, "consumer: dropping partition %u: %s", p, err);
        }
    }
}

static void *run(void *arg)
{
    seq_consumer *c = arg;
    pthread_setname_np(pthread_self(), "seqd-consumer"); /* beside seqd-laneI (lanes.h) */
    c->held = malloc(HELD_MAX * sizeof *c->held);
    c->inbox = malloc(BATCH_MAX * sizeof *c->inbox);
    if (!c->held || !c->inbox || start_assignment(c) != SEQ_OK) goto out;
    publish(c);
    while (!atomic_load(&c->stop)) {
        if (c->failed && retry_wait(c)) break;
        size_t unfilled = c->n_held - (c->flight >= 0 ? c->sets[c->flight].n_msgs : 0);
        take_messages(c, c->flight >= 0 || unfilled ? 0 : IDLE_WAIT_MS);
        rd_kafka_poll(c->rk, 0);
        probe_brokers(c);
        refresh_highs(c);
        if (c->failed) continue; /* a commit finished by the rebalance callback failed */
        pump(c);
        if (c->flight >= 0 || c->failed) continue;
        /* between commits */
        if (!c->n_held) settle_empty_logs(c);
        publish_committed(c);
        run_drops(c);
        /* damaged data a read or a compaction reported is kept aside (store.h); a commit
         * does it too, this covers an idle stream */
        seq_store_keep_corrupt(c->cfg.store, NULL, 0);
    }
    /* a stop: the commit in flight is waited for (its write is kept or not as a whole,
     * like any; a restart resumes where the stored offsets say) */
    finish_flight(c);
out:
    if (c->held) release_held(c, c->n_held);
    free(c->held);
    free(c->inbox);
    return NULL;
}

/* ---- lifecycle ---- */

int seq_consumer_start(const seq_consumer_config *cfg, seq_consumer **out, char *err,
                       size_t errlen)
{
    seq_consumer *c = calloc(1, sizeof *c);
    if (!c) return SEQ_EINTERNAL;
    c->cfg = *cfg;
    c->flight = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->hook_mu, NULL);
    int rc = cfg->brokers ? ((c->brokers = strdup(cfg->brokers)) ? SEQ_OK : SEQ_EINTERNAL)
                          : start_mock(c, err, errlen);
    if (rc) goto fail;
    if ((rc = make_consumer(c, err, errlen))) goto fail;
    if ((rc = seq_misroute_new(c->brokers, cfg->topic, cfg->kafka_conf, &c->misroute, err, errlen)))
        goto fail;
    if (cfg->lanes > SEQ_LANES_MAX) { /* before n_lanes: the cleanup walks lanes[n_lanes] */
        rc = SEQ_EINVAL;
        seq_errf(err, errlen, "consumer: %d write lanes, at most %d", cfg->lanes, SEQ_LANES_MAX);
        goto fail;
    }
    c->n_lanes = cfg->lanes < 1 ? 1 : (uint32_t)cfg->lanes;
    if (renew_batches(c)) {
        rc = SEQ_EINTERNAL;
        seq_errf(err, errlen, "consumer: out of memory");
        goto fail;
    }
    const char *fail = getenv("SEQD_FAIL_LANE");
    if (fail && sscanf(fail, "%u:%d", &c->fail_lane, &c->fail_left) != 2) c->fail_left = 0;
    const char *kill_copies = getenv("SEQD_KILL_AFTER_COPIES");
    c->kill_after_copies = kill_copies && strcmp(kill_copies, "1") == 0;
    if (seq_lanes_new(c->n_lanes, lane_commit, c, &c->pool)) {
        rc = SEQ_EINTERNAL;
        seq_errf(err, errlen, "consumer: cannot start the write lanes' threads");
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, run, c)) {
        rc = SEQ_EINTERNAL;
        seq_errf(err, errlen, "consumer: cannot start its thread");
        goto fail;
    }
    c->thread_started = 1;
    *out = c;
    return SEQ_OK;
fail:
    seq_consumer_stop(c);
    return rc;
}

void seq_consumer_stop(seq_consumer *c)
{
    if (!c) return;
    atomic_store(&c->stop, 1);
    if (c->thread_started) pthread_join(c->thread, NULL);
    if (c->queue) rd_kafka_queue_destroy(c->queue);
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    seq_lanes_free(c->pool); /* after the consumer thread, the only caller of the lanes */
    for (int i = 0; i < 2; i++) {
        for (uint32_t l = 0; l < c->n_lanes; l++) seq_store_batch_free(c->sets[i].lanes[l].batch);
        free(c->sets[i].snap);
        free(c->sets[i].touched);
    }
    seq_misroute_free(c->misroute); /* before the embedded cluster it produces to */
    if (c->mock) rd_kafka_mock_cluster_destroy(c->mock);
    if (c->mock_rk) rd_kafka_destroy(c->mock_rk);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->hook_mu);
    free(c->parts);
    free(c->pending);
    free(c->retry_next);
    seq_origins_free(c->origins);
    free((void *)c->drop_req);
    free(c->brokers);
    free(c);
}

int seq_consumer_wait_assigned(seq_consumer *c, int timeout_ms)
{
    for (int waited = 0;; waited += 10) {
        pthread_mutex_lock(&c->mu);
        int assigned = c->assigned;
        pthread_mutex_unlock(&c->mu);
        if (assigned) return 1;
        if (waited >= timeout_ms) return 0;
        sleep_ms(10);
    }
}

int seq_consumer_ready(seq_consumer *c, char *why, size_t whylen)
{
    seq_consumer_stats *st = &c->stats;
    char store_err[sizeof c->store_err];
    pthread_mutex_lock(&c->mu);
    int assigned = c->assigned;
    memcpy(store_err, c->store_err, sizeof store_err);
    pthread_mutex_unlock(&c->mu);
    if (atomic_load_explicit(&st->brokers_down, memory_order_relaxed))
        seq_errf(why, whylen, "kafka brokers %s unreachable", c->brokers);
    else if (!assigned)
        seq_errf(why, whylen, "stream partitions not assigned yet");
    else if (atomic_load_explicit(&st->store_failing, memory_order_relaxed))
        seq_errf(why, whylen, "store writes failing (retrying): %s", store_err);
    else if (!atomic_load_explicit(&st->caught_up, memory_order_relaxed))
        seq_errf(why, whylen, "stream not caught up (lag %lld messages)",
                 (long long)atomic_load_explicit(&st->lag, memory_order_relaxed));
    else
        return 1;
    return 0;
}

void seq_consumer_join(seq_consumer *c) { atomic_store(&c->join, 1); }

void seq_consumer_on_assignment(seq_consumer *c, seq_consumer_assign_fn fn, void *ctx)
{
    pthread_mutex_lock(&c->hook_mu);
    c->hook = fn;
    c->hook_ctx = ctx;
    pthread_mutex_unlock(&c->hook_mu);
}

void seq_consumer_drop_partition(seq_consumer *c, uint32_t p)
{
    pthread_mutex_lock(&c->mu);
    if (p < c->n_parts && !c->parts[p].held) atomic_store(&c->drop_req[p], 1);
    pthread_mutex_unlock(&c->mu);
}

const char *seq_consumer_brokers(const seq_consumer *c) { return c->brokers; }
int seq_consumer_embedded(const seq_consumer *c) { return c->mock != NULL; }
seq_consumer_stats *seq_consumer_get_stats(seq_consumer *c) { return &c->stats; }
seq_misroute_stats *seq_consumer_misroute_stats(seq_consumer *c) { return seq_misroute_get_stats(c->misroute); }

int64_t seq_consumer_gap_cover(const seq_consumer *c, int64_t now)
{
    const seq_def *def = c->cfg.def;
    int64_t cover = INT64_MAX;
    const seq_store_view *v = seq_store_view_acquire(c->cfg.store);
    for (uint32_t i = 0; i < def->n_seqs; i++) {
        const seq_store_seqstate *s = seq_store_view_seq(v, def->seqs[i].id);
        int64_t reach = now - def->seqs[i].retention_ms;
        if (s && s->generation && s->watermark_ms > reach) reach = s->watermark_ms;
        if (reach < cover) cover = reach;
    }
    seq_store_view_release(c->cfg.store, v);
    return cover;
}

uint32_t seq_consumer_partitions(seq_consumer *c, seq_consumer_part *out, uint32_t max)
{
    pthread_mutex_lock(&c->mu);
    uint32_t n = c->n_parts;
    int any_short = 0;
    for (uint32_t p = 0; p < n && p < max; p++) {
        const part_state *ps = &c->parts[p];
        out[p] = (seq_consumer_part){(int32_t)p, ps->next, ps->high, ps->wm, ps->progress_ms,
                                     ps->held, ps->held && ps->filled, ps->log_from_ms, 0};
        any_short |= ps->held && ps->log_from_ms > 0;
    }
    pthread_mutex_unlock(&c->mu);
    if (!any_short) return n;
    int64_t cover = seq_consumer_gap_cover(c, seq_now_ms());
    for (uint32_t p = 0; p < n && p < max; p++)
        if (out[p].held && out[p].log_from_ms > cover) out[p].gap_from_ms = out[p].log_from_ms;
    return n;
}
