/* Cluster-wide loads and rollbacks (see loads.h). The thread keeps every record of the
 * operations' topic in memory (one per load or rollback: small), read from the log's
 * start at every start, because a partition acquired later needs the paths of every
 * load its history keeps; it applies those at or past the stored position, in order.
 * The receiver's side (seq_loads_load, seq_loads_rollback) runs on a job thread of the
 * service: one operation at a time per node (ops_mu), so that what it verified against is
 * what the log holds when it writes. */
#include "loads.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../storage/batch_file.h"
#include "../storage/batch_parts.h"
#include "cluster.h"
#include "kafkaconf.h"
#include "loads_record.h"
#include "log.h"

#define POLL_MS 200
#define RETRY_MS 1000            /* an apply or fill that failed for a passing reason */
#define DEFAULT_WAIT_MS 60000    /* a call without a deadline waits this long for the nodes */
#define MAX_PARTS 1024           /* = SEQ_CLUSTER_MAX_PARTS */
#define IMPACT_KEPT 4            /* operations whose impact counts the map record carries */
/* A dry run's record expires this long after its receiver's answer was due: the margin
 * covers wall clocks that differ between nodes (a node skipping a dry run its receiver
 * still waits for would leave that receiver without its partitions' counts). */
#define DRY_RUN_GRACE_MS 60000

typedef struct {
    int64_t offset;
    int64_t seen_ms;    /* when this node read it (wall clock, for the timeline line) */
    seq_loads_record r; /* op 0: a record that did not parse (skipped, still counted) */
    int rc;             /* the local apply's outcome, once applied */
    uint64_t gen;       /* a rollback's generation in effect after it */
    char msg[256];
    /* a load's or dry run's impact counts here, per partition it held: n_imp entries of
     * {partition, users_emptied, stream_events_hidden} (malloc'd; NULL: none) */
    uint64_t (*imp)[3];
    uint32_t n_imp;
} op;

struct seq_loads {
    seq_loads_config cfg;
    char topic[300];
    rd_kafka_t *prod, *cons;
    rd_kafka_queue_t *queue;
    pthread_t thread;
    int thread_started;
    _Atomic int stop;
    _Atomic(struct seq_cluster *) cluster;
    pthread_mutex_t mu; /* ops, n_ops; cv: applied advanced */
    pthread_cond_t cv;
    op *ops;
    size_t n_ops, cap;
    _Atomic int64_t applied;
    _Atomic uint8_t filled[MAX_PARTS];
    /* the thread's: per partition, the offset below which every load's part of it is
     * here (stored as 'm' "filled"): a fill starts there, so a restart ingests nothing
     * again */
    int64_t filled_to[MAX_PARTS];
    _Atomic uint64_t fill_files; /* files ingested by fills since the start */
    _Atomic int filling;
    pthread_mutex_t ops_mu; /* one receiver operation at a time */
};

void seq_loads_topic_name(const char *topic, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s.seqd-loads", topic);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) { nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL); }

/* ---- Kafka clients ---- */

static void quiet_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk, (void)err, (void)reason, (void)opaque; /* the consumer reports broker health */
}

/* Delivery of the receiver's record: its offset, or the error. */
typedef struct {
    _Atomic int done;
    int64_t offset;
    rd_kafka_resp_err_t err;
} delivery;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    delivery *d = m->_private;
    if (!d) return;
    d->offset = m->offset;
    d->err = m->err;
    atomic_store(&d->done, 1);
}

static rd_kafka_t *make_client(seq_loads *l, rd_kafka_type_t type, char *err, size_t errlen)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", seq_consumer_brokers(l->cfg.consumer), e,
                          sizeof e) ||
        rd_kafka_conf_set(conf, "log_level", "2", e, sizeof e) ||
        (type == RD_KAFKA_PRODUCER &&
         (rd_kafka_conf_set(conf, "linger.ms", "0", e, sizeof e) ||
          rd_kafka_conf_set(conf, "acks", "all", e, sizeof e) ||
          rd_kafka_conf_set(conf, "message.timeout.ms", "10000", e, sizeof e))) ||
        (type == RD_KAFKA_CONSUMER &&
         (rd_kafka_conf_set(conf, "group.id", "seqd-loads-reader", e, sizeof e) ||
          rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e) ||
          rd_kafka_conf_set(conf, "fetch.wait.max.ms", "100", e, sizeof e) ||
          rd_kafka_conf_set(conf, "enable.partition.eof", "false", e, sizeof e)))) {
        seq_errf(err, errlen, "loads client: %s", e);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (seq_kafkaconf_apply(l->cfg.kafka_conf, conf, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, quiet_error);
    if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof e);
    if (!rk) {
        seq_errf(err, errlen, "loads client: %s", e);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* ---- the applying thread ---- */

/* The partitions this node holds now into held[0..MAX_PARTS); returns the topic's P. */
static uint32_t held_now(seq_loads *l, uint8_t *held)
{
    static _Thread_local seq_consumer_part parts[MAX_PARTS];
    uint32_t n = seq_consumer_partitions(l->cfg.consumer, parts, MAX_PARTS);
    if (n > MAX_PARTS) n = MAX_PARTS;
    memset(held, 0, MAX_PARTS);
    for (uint32_t p = 0; p < n; p++) held[p] = (uint8_t)parts[p].held;
    return n;
}

/* A load record as a store request (paths point into the record). */
static seq_load_req load_req(const seq_loads_record *r, const uint8_t *only, int64_t next,
                             int fill)
{
    return (seq_load_req){.sequence = r->sequence, .start_ms = r->start_ms,
                          .end_ms = r->end_ms, .generation = r->generation,
                          .paths = (const char *const *)r->paths, .n_paths = r->n_paths,
                          .partitions = r->partitions, .only_parts = only,
                          .loads_next = next, .fill = fill, .verified = r->sums};
}

/* Errors that may pass (a file not yet visible on the shared mount, a disk error):
 * retried. Others are the operation's own (FAILED_PRECONDITION: another load of the
 * generation came first): every node refuses it the same way, so it is skipped. */
static int passing(int rc)
{
    return rc == SEQ_EINTERNAL || rc == SEQ_ENOTFOUND || rc == SEQ_EPERM;
}

/* The outcome of applying one operation (written into its op under mu). */
typedef struct {
    int rc;
    uint64_t gen;
    char msg[256];
    uint64_t (*imp)[3]; /* see op */
    uint32_t n_imp;
} applied_as;

/* The impact counts of the held partitions (by_part: 2 per partition) as op entries. */
static void keep_impact(applied_as *a, const uint64_t *by_part, const uint8_t *held,
                        uint32_t np)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < np; p++) n += held[p] != 0;
    if (!n || !(a->imp = malloc(sizeof *a->imp * n))) return; /* OOM: not reported */
    for (uint32_t p = 0; p < np; p++)
        if (held[p]) {
            a->imp[a->n_imp][0] = p;
            a->imp[a->n_imp][1] = by_part[2 * p];
            a->imp[a->n_imp][2] = by_part[2 * p + 1];
            a->n_imp++;
        }
}

/* Applies a rollback record: the same rollback the receiver checked, committed with the
 * log position `next`; a->gen the generation in effect after it. SEQ_OK also for the
 * no-op (the newest is no longer the one it undoes, or is in effect already). */
static int apply_rollback(seq_loads *l, const seq_loads_record *r, int64_t next, applied_as *a)
{
    uint64_t to = r->generation;
    if (to == 0) { /* "the newest": only where the newest is still the one verified */
        const seq_sequence *s = seq_def_find(l->cfg.def, r->sequence, strlen(r->sequence));
        const seq_store_view *v = seq_store_view_acquire(l->cfg.store);
        const seq_store_seqstate *cur = s ? seq_store_view_seq(v, s->id) : NULL;
        uint64_t now_gen = cur ? cur->generation : 0;
        seq_store_view_release(l->cfg.store, v);
        if (now_gen != r->from) {
            a->gen = now_gen;
            return SEQ_OK; /* a no-op: the newest is no longer the one it undoes */
        }
    }
    int rc = seq_store_rollback_ex(l->cfg.store, r->sequence, to, 0, next, &a->gen, NULL, a->msg,
                                   sizeof a->msg);
    return rc == 1 ? SEQ_OK : rc;
}

/* The receiver of a load waits on every node's map record (wait_nodes): publish it as
 * soon as the applied offset or the filling state changes, not at the next second (a
 * cluster load answered ~1 s after its last node switched: bench/NOTES.md). */
static void publish_soon(seq_loads *l)
{
    struct seq_cluster *c = atomic_load(&l->cluster);
    if (c) seq_cluster_publish_soon(c);
}

/* Every partition of the topic's np held here (where an unpartitioned batch loads)? */
static int holds_all(const uint8_t *held, uint32_t np)
{
    uint32_t p = 0;
    while (p < np && held[p]) p++;
    return np > 0 && p == np;
}

/* Where a load's or dry run's time went on this node, in ms after its receiver wrote the
 * record (r.at_ms, the receiver's wall clock: on one machine exact, across machines up to
 * their skew): when this node read it, then its steps (seq_load_timing_format).
 * bench/build-dist.sh prints these per node. */
static void log_timeline(const op *o, const seq_load_timing *t)
{
    char steps[256];
    seq_load_timing_format(t, o->r.at_ms, steps, sizeof steps);
    char seen[24];
    seq_log(SEQ_LOG_INFO, "loads: timeline of offset %" PRId64 " (written at %" PRId64
            " ms): seen %s, %s", o->offset, o->r.at_ms,
            seq_load_timing_rel(seen, o->r.at_ms, o->seen_ms), steps);
}

/* Applies one operation; 0 done (applied, a no-op or refused for good), 1 skipped with
 * nothing written (an expired dry run), -1 retry later. */
static int apply_op(seq_loads *l, const op *o, const uint8_t *held, uint32_t np_topic,
                    applied_as *a)
{
    const seq_loads_record *r = &o->r;
    int64_t next = o->offset + 1;
    const char *what = r->op == SEQ_LOADS_OP_ROLLBACK ? "rollback" : "load";
    int rc = SEQ_OK;
    memset(a, 0, sizeof *a);
    if (r->op == SEQ_LOADS_OP_DRY_RUN && seq_now_ms() > r->expires_ms) {
        /* no one waits for it any more (its receiver answered): skipped without reading
         * a file and without a write, so that the dry runs a log holds cost a node that
         * reads them again (a restart before its next write, a new node) nothing */
        seq_errf(a->msg, sizeof a->msg, "expired: its receiver answered before %" PRId64,
                 r->expires_ms);
        a->rc = SEQ_EUNAVAILABLE;
        seq_log(SEQ_LOG_INFO, "loads: dry run of %s at offset %" PRId64 " skipped: %s",
                r->sequence, o->offset, a->msg);
        return 1;
    }
    if (!r->op) {
        rc = SEQ_EINVAL;
        seq_errf(a->msg, sizeof a->msg, "not an operation record");
    } else if (!seq_def_find(l->cfg.def, r->sequence, strlen(r->sequence))) {
        rc = SEQ_ENOTFOUND; /* for good: this node's definition has no such sequence */
        /* seq_errf: the name may fill the message (gcc -O0 -Werror=format-truncation) */
        seq_errf(a->msg, sizeof a->msg, "unknown sequence '%s'", r->sequence);
    } else if (r->op == SEQ_LOADS_OP_LOAD || r->op == SEQ_LOADS_OP_DRY_RUN) {
        /* counted per partition held, for the receiver's answer (loads.h) */
        static _Thread_local uint64_t by_part[2 * MAX_PARTS];
        int dry = r->op == SEQ_LOADS_OP_DRY_RUN, whole = r->partitions == 0;
        /* an unpartitioned batch (partitions 0) is loaded whole, where every partition is
         * held; its impact still counted per partition of the topic */
        uint32_t np = whole ? np_topic : r->partitions <= MAX_PARTS ? r->partitions : 0;
        seq_load_req req = load_req(r, whole ? NULL : held, next, 0);
        seq_load_result res;
        seq_load_timing t = {0};
        memset(by_part, 0, sizeof by_part);
        req.partitions = np;
        req.impact_by_part = np ? by_part : NULL;
        req.dry_run = dry;
        req.timing = &t;
        if (whole && !holds_all(held, np_topic)) {
            rc = SEQ_EPRECONDITION; /* for good: the receiver refuses it where this is so */
            seq_errf(a->msg, sizeof a->msg, "a batch built without --partitions loads only "
                     "where every partition is held, and this node holds only some");
        } else {
            rc = seq_store_load_batch(l->cfg.store, l->cfg.batch_root, &req, &res, a->msg,
                                      sizeof a->msg);
        }
        if (rc == SEQ_OK) a->gen = r->generation;
        if (rc == SEQ_OK && np) keep_impact(a, by_part, held, np);
        if (rc == SEQ_OK) log_timeline(o, &t); /* (a retried one would log it each time) */
        /* a dry run is not retried: its caller waits on every node */
        if (passing(rc) && !dry) goto retry;
        if (dry) what = "dry run";
    } else {
        rc = apply_rollback(l, r, next, a);
        if (rc == SEQ_EINTERNAL) goto retry;
    }
    char e[256];
    /* a commit wrote the position with it; a no-op or a refusal writes it alone */
    if (seq_store_set_loads_next(l->cfg.store, next, e, sizeof e) != SEQ_OK) {
        seq_log(SEQ_LOG_WARN, "loads: storing the position: %s; retrying", e);
        return -1;
    }
    a->rc = rc;
    if (rc)
        seq_log(SEQ_LOG_WARN, "loads: %s of %s at offset %" PRId64 " refused here: %s: %s", what,
                r->sequence, o->offset, seq_log_code_name(rc), a->msg);
    else if (r->op == SEQ_LOADS_OP_DRY_RUN) /* checked and counted; nothing changed */
        seq_log(SEQ_LOG_INFO, "loads: dry run of %s generation %" PRIu64 " (offset %" PRId64
                ") checked here, nothing changed", r->sequence, r->generation, o->offset);
    else
        seq_log(SEQ_LOG_INFO, "loads: applied %s of %s (offset %" PRId64 "): generation %" PRIu64
                " in effect", what, r->sequence, o->offset, a->gen);
    return 0;
retry:
    seq_log(SEQ_LOG_WARN, "loads: %s of %s generation %" PRIu64 " (offset %" PRId64 "): %s: %s; "
            "retrying", what, r->sequence, r->generation, o->offset, seq_log_code_name(rc), a->msg);
    return -1;
}

/* Stores filled_to (a failure only makes the next fill start earlier). */
static void store_filled(seq_loads *l, uint32_t np)
{
    char e[256];
    if (seq_store_set_loads_filled(l->cfg.store, l->filled_to, np, e, sizeof e) != SEQ_OK)
        seq_log(SEQ_LOG_WARN, "loads: storing the filled positions: %s", e);
}

/* After the operation below `next` is applied: the partitions filled before it are
 * filled up to it (a load ingested their parts; other operations add no data). */
static void advance_filled(seq_loads *l, const uint8_t *held, uint32_t np, int64_t next)
{
    int changed = 0;
    for (uint32_t p = 0; p < np; p++)
        if (held[p] && atomic_load(&l->filled[p]) && l->filled_to[p] < next)
            l->filled_to[p] = next, changed = 1;
    if (changed) store_filled(l, np);
}

/* Fills the held partitions that lack a kept load's part: every applied load record, in
 * order, ingested for those partitions only (a load whose data is no longer kept is
 * skipped: check_fill). Re-ingesting a part already there writes the same keys again, so
 * a fill after a restart is safe. */
static void fill(seq_loads *l, const uint8_t *held, uint32_t np, int64_t applied)
{
    uint8_t want[MAX_PARTS] = {0};
    int any = 0;
    for (uint32_t p = 0; p < np; p++)
        if (held[p] && !atomic_load(&l->filled[p])) want[p] = 1, any = 1;
    if (!any) {
        atomic_store(&l->filling, 0);
        return;
    }
    atomic_store(&l->filling, 1);
    int ok = 1;
    for (size_t i = 0; ok && !atomic_load(&l->stop); i++) {
        pthread_mutex_lock(&l->mu);
        op *o = i < l->n_ops && l->ops[i].offset < applied ? &l->ops[i] : NULL;
        pthread_mutex_unlock(&l->mu); /* ops only grow, and entries never move but by realloc
                                         on this thread */
        if (!o) break;
        int whole = o->r.partitions == 0; /* unpartitioned: all of it, where all is held */
        if (o->r.op != SEQ_LOADS_OP_LOAD || (o->r.partitions != np && !whole)) continue;
        uint8_t need[MAX_PARTS] = {0}; /* what is not here from before (filled_to) */
        int needed = 0;
        for (uint32_t p = 0; p < np; p++)
            if (want[p] && l->filled_to[p] <= o->offset) need[p] = 1, needed = 1;
        if (!needed || (whole && !holds_all(held, np))) continue;
        seq_load_req req = load_req(&o->r, whole ? NULL : need, 0, 1);
        seq_load_result res;
        char e[256];
        if (!seq_def_find(l->cfg.def, o->r.sequence, strlen(o->r.sequence))) continue;
        int rc = seq_store_load_batch(l->cfg.store, l->cfg.batch_root, &req, &res, e, sizeof e);
        if (rc != SEQ_OK && rc != SEQ_EPRECONDITION) { /* precondition: its data is not kept */
            seq_log(SEQ_LOG_WARN, "loads: filling from %s generation %" PRIu64 ": %s: %s; retrying",
                    o->r.sequence, o->r.generation, seq_log_code_name(rc), e);
            ok = 0;
        } else if (rc == SEQ_OK) {
            atomic_fetch_add(&l->fill_files, res.files);
            seq_log(SEQ_LOG_INFO, "loads: filled %u files of %s generation %" PRIu64,
                    res.files, o->r.sequence, o->r.generation);
        }
    }
    if (!ok || atomic_load(&l->stop)) return;
    for (uint32_t p = 0; p < np; p++)
        if (want[p]) atomic_store(&l->filled[p], 1), l->filled_to[p] = applied;
    store_filled(l, np);
    atomic_store(&l->filling, 0);
    publish_soon(l);
}

/* A dry run's paths and sums once it is applied: only its outcome and counts are read
 * after that (fills and /status read loads only), so that the dry runs of a long-lived
 * node's log keep a few bytes each in memory. Under mu. */
static void forget_paths(seq_loads_record *r)
{
    for (size_t i = 0; i < r->n_paths; i++) free(r->paths[i]);
    free(r->paths);
    free(r->sums);
    r->paths = NULL, r->sums = NULL, r->n_paths = 0;
}

static void read_some(seq_loads *l)
{
    rd_kafka_message_t *msgs[64];
    /* the first record as soon as it is here, then whatever else is queued: a batch call
     * waits out its whole timeout unless the batch fills (rd_kafka_consume_batch_queue),
     * which put up to POLL_MS between a commit and each node's apply (bench/NOTES.md,
     * "Session 8 — cluster load") */
    ssize_t n = rd_kafka_consume_batch_queue(l->queue, POLL_MS, msgs, 1), more;
    if (n == 1 && (more = rd_kafka_consume_batch_queue(l->queue, 0, msgs + 1, 63)) > 0) n += more;
    for (ssize_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = msgs[i];
        if (!m->err) {
            op o = {.offset = m->offset, .seen_ms = seq_now_ms()};
            if (!m->payload || seq_loads_parse_record(m->payload, m->len, &o.r) != SEQ_OK)
                seq_log(SEQ_LOG_WARN, "loads: the record at offset %" PRId64 " is not an "
                        "operation: skipped", m->offset);
            pthread_mutex_lock(&l->mu);
            if (l->n_ops == l->cap) {
                size_t cap = l->cap ? 2 * l->cap : 16;
                op *p = realloc(l->ops, cap * sizeof *p);
                if (p) l->ops = p, l->cap = cap;
            }
            if (l->n_ops < l->cap) l->ops[l->n_ops++] = o;
            else seq_loads_record_clear(&o.r); /* OOM: read again after a restart */
            pthread_mutex_unlock(&l->mu);
        }
        rd_kafka_message_destroy(msgs[i]);
    }
}

/* The log's end when the thread started (-1 until a broker answered): no partition is
 * reported filled before every operation up to it is applied, so that a node coming back
 * never reports caught up from a partial read of the log. */
static int64_t log_end_at_start(seq_loads *l)
{
    int64_t lo = 0, hi = 0;
    return rd_kafka_query_watermark_offsets(l->cons, l->topic, 0, &lo, &hi, 1000) ? -1 : hi;
}

static void *run(void *arg)
{
    seq_loads *l = arg;
    uint8_t held[MAX_PARTS];
    int64_t retry_at = 0, start_end = -1;
    atomic_store(&l->filling, 1); /* until the log read at start is applied and filled */
    while (!atomic_load(&l->stop)) {
        if (start_end < 0) start_end = log_end_at_start(l);
        read_some(l);
        uint32_t np = held_now(l, held);
        for (uint32_t p = 0; p < MAX_PARTS; p++)
            if (p >= np || !held[p]) atomic_store(&l->filled[p], 0); /* needs a fill again */
        if (mono_ms() < retry_at) continue;
        int again = 0;
        for (size_t i = 0; !again && !atomic_load(&l->stop); i++) {
            pthread_mutex_lock(&l->mu);
            op *o = i < l->n_ops ? &l->ops[i] : NULL;
            int64_t applied = atomic_load(&l->applied);
            pthread_mutex_unlock(&l->mu);
            if (!o) break;
            if (o->offset < applied) continue;
            applied_as a;
            int done = apply_op(l, o, held, np, &a);
            again = done < 0;
            if (again) free(a.imp);
            else if (done == 0) advance_filled(l, held, np, o->offset + 1);
            if (!again) {
                pthread_mutex_lock(&l->mu);
                o->rc = a.rc, o->gen = a.gen;
                memcpy(o->msg, a.msg, sizeof o->msg);
                o->imp = a.imp, o->n_imp = a.n_imp;
                if (o->r.op == SEQ_LOADS_OP_DRY_RUN) forget_paths(&o->r);
                atomic_store(&l->applied, o->offset + 1);
                pthread_cond_broadcast(&l->cv);
                pthread_mutex_unlock(&l->mu);
                publish_soon(l);
            }
        }
        if (!again && start_end >= 0 && atomic_load(&l->applied) >= start_end)
            fill(l, held, np, atomic_load(&l->applied));
        if (again || atomic_load(&l->filling)) retry_at = mono_ms() + RETRY_MS;
    }
    return NULL;
}

/* ---- lifecycle ---- */

int seq_loads_start(const seq_loads_config *cfg, seq_loads **out, char *err, size_t errlen)
{
    seq_loads *l = calloc(1, sizeof *l);
    if (!l) {
        seq_errf(err, errlen, "loads: out of memory");
        return SEQ_EINTERNAL;
    }
    l->cfg = *cfg;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pthread_mutex_init(&l->ops_mu, NULL);
    seq_loads_topic_name(cfg->topic, l->topic, sizeof l->topic);
    atomic_store(&l->applied, seq_store_loads_next(cfg->store));
    seq_store_loads_filled(cfg->store, l->filled_to, MAX_PARTS);
    int rc = SEQ_EINTERNAL;
    if (!(l->prod = make_client(l, RD_KAFKA_PRODUCER, err, errlen)) ||
        !(l->cons = make_client(l, RD_KAFKA_CONSUMER, err, errlen)))
        goto fail;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, l->topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(l->cons, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    if (e || !(l->queue = rd_kafka_queue_get_consumer(l->cons))) {
        seq_errf(err, errlen, "loads reader: %s", rd_kafka_err2str(e));
        goto fail;
    }
    if (pthread_create(&l->thread, NULL, run, l)) {
        seq_errf(err, errlen, "loads: cannot start its thread");
        goto fail;
    }
    l->thread_started = 1;
    *out = l;
    return SEQ_OK;
fail:
    seq_loads_stop(l);
    return rc;
}

void seq_loads_stop(seq_loads *l)
{
    if (!l) return;
    atomic_store(&l->stop, 1);
    if (l->thread_started) pthread_join(l->thread, NULL);
    if (l->queue) rd_kafka_queue_destroy(l->queue);
    if (l->cons) {
        rd_kafka_consumer_close(l->cons);
        rd_kafka_destroy(l->cons);
    }
    if (l->prod) {
        rd_kafka_flush(l->prod, 1000);
        rd_kafka_destroy(l->prod);
    }
    for (size_t i = 0; i < l->n_ops; i++) {
        seq_loads_record_clear(&l->ops[i].r);
        free(l->ops[i].imp);
    }
    free(l->ops);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->ops_mu);
    free(l);
}

void seq_loads_set_cluster(seq_loads *l, struct seq_cluster *c) { atomic_store(&l->cluster, c); }

int64_t seq_loads_applied(const seq_loads *l)
{
    return atomic_load(&((seq_loads *)l)->applied);
}

int seq_loads_filled(const seq_loads *l, uint32_t p)
{
    return p < MAX_PARTS && atomic_load(&((seq_loads *)l)->filled[p]);
}

int seq_loads_filling(const seq_loads *l) { return atomic_load(&((seq_loads *)l)->filling); }

/* The batch directory of a load: its first path without the part directory and file. */
static json_t *batch_dir(const seq_loads_record *r)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", r->paths[0]);
    for (int up = 0; up < (r->partitions ? 2 : 1); up++) {
        char *slash = strrchr(d, '/');
        if (slash) *slash = '\0';
        else snprintf(d, sizeof d, ".");
    }
    return json_string(d);
}

json_t *seq_loads_status(seq_loads *l)
{
    json_t *needs = json_array();
    const seq_store_view *v = seq_store_view_acquire(l->cfg.store);
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; needs && i < l->n_ops; i++) {
        const seq_loads_record *r = &l->ops[i].r;
        const seq_sequence *s = r->op == SEQ_LOADS_OP_LOAD
                                    ? seq_def_find(l->cfg.def, r->sequence, strlen(r->sequence))
                                    : NULL;
        const seq_store_seqstate *st = s ? seq_store_view_seq(v, s->id) : NULL;
        if (!st || !seq_store_gen_kept(st, r->generation) ||
            l->ops[i].offset >= atomic_load(&l->applied))
            continue;
        json_array_append_new(needs, json_pack("{s:s,s:I,s:o}", "sequence", r->sequence,
                                               "generation", (json_int_t)r->generation,
                                               "batch_dir", batch_dir(r)));
    }
    pthread_mutex_unlock(&l->mu);
    seq_store_view_release(l->cfg.store, v);
    return json_pack("{s:s,s:I,s:b,s:I,s:o}", "topic", l->topic, "applied",
                     (json_int_t)seq_loads_applied(l), "filling", seq_loads_filling(l),
                     "filled_files", (json_int_t)atomic_load(&l->fill_files), "needs",
                     needs ? needs : json_array());
}

/* The newest loads' and dry runs' impact counts for the map record; read after
 * seq_loads_applied, so that the record holding a position holds the counts below it. */
json_t *seq_loads_impact(seq_loads *l)
{
    json_t *a = json_array();
    pthread_mutex_lock(&l->mu);
    for (size_t i = l->n_ops, kept = 0; a && i-- > 0 && kept < IMPACT_KEPT;) {
        const op *o = &l->ops[i];
        if (!o->imp || o->offset >= atomic_load(&l->applied)) continue;
        json_t *parts = json_array();
        for (uint32_t k = 0; parts && k < o->n_imp; k++)
            json_array_append_new(parts, json_pack("[I,I,I]", (json_int_t)o->imp[k][0],
                                                   (json_int_t)o->imp[k][1],
                                                   (json_int_t)o->imp[k][2]));
        json_array_insert_new(a, 0, json_pack("{s:I,s:o}", "at", (json_int_t)o->offset,
                                              "parts", parts ? parts : json_array()));
        kept++;
    }
    pthread_mutex_unlock(&l->mu);
    return a;
}

/* ---- the receiver ---- */

/* When the receiver must answer: a little before the caller's deadline, so that the
 * answer (UNAVAILABLE naming the pending nodes) arrives instead of DEADLINE_EXCEEDED. */
static int64_t answer_by(uint64_t deadline_ns)
{
    int64_t now = mono_ms();
    if (!deadline_ns) return now + DEFAULT_WAIT_MS;
    int64_t d = (int64_t)(deadline_ns / 1000000), left = d - now;
    return now + (left > 2000 ? left - 1000 : left * 3 / 4);
}

/* Waits until this node has applied everything below `next`; 0 or -1 at `until`. */
static int wait_applied(seq_loads *l, int64_t next, int64_t until)
{
    pthread_mutex_lock(&l->mu);
    while (atomic_load(&l->applied) < next && mono_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    int ok = atomic_load(&l->applied) >= next;
    pthread_mutex_unlock(&l->mu);
    return ok ? 0 : -1;
}

/* Applies what the log holds so far here first, so that the receiver verifies against
 * the state every operation before its own leaves. */
static int catch_up(seq_loads *l, int64_t until, char *msg, size_t msglen)
{
    int64_t lo = 0, hi = 0, left = until - mono_ms();
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
        l->prod, l->topic, 0, &lo, &hi, (int)(left > 5000 ? 5000 : left > 0 ? left : 1));
    if (e) {
        seq_errf(msg, msglen, "%s: %s", l->topic, rd_kafka_err2str(e));
        return SEQ_EUNAVAILABLE;
    }
    if (wait_applied(l, hi, until)) {
        seq_errf(msg, msglen, "this node has not applied %s up to offset %" PRId64
                 " yet (it is at %" PRId64 ")", l->topic, hi, seq_loads_applied(l));
        return SEQ_EUNAVAILABLE;
    }
    return SEQ_OK;
}

/* Writes the record and returns its offset (the commit), or -1 with a message. */
static int64_t commit(seq_loads *l, seq_loads_record *r, int64_t until, char *msg, size_t msglen)
{
    snprintf(r->node, sizeof r->node, "%s", l->cfg.node_id);
    r->at_ms = seq_now_ms();
    char *text = seq_loads_format_record(r);
    delivery d = {.offset = -1};
    if (!text) {
        seq_errf(msg, msglen, "out of memory");
        return -1;
    }
    rd_kafka_resp_err_t e = rd_kafka_producev(
        l->prod, RD_KAFKA_V_TOPIC(l->topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(r->sequence, strlen(r->sequence)), RD_KAFKA_V_VALUE(text, strlen(text)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    free(text);
    if (e) {
        seq_errf(msg, msglen, "%s: %s", l->topic, rd_kafka_err2str(e));
        return -1;
    }
    /* the delivery report comes within message.timeout.ms whatever happens: d must
     * outlive it, so wait for it past `until` if need be */
    while (!atomic_load(&d.done)) rd_kafka_poll(l->prod, 100);
    (void)until;
    if (d.err) {
        seq_errf(msg, msglen, "%s: %s (not committed)", l->topic, rd_kafka_err2str(d.err));
        return -1;
    }
    return d.offset;
}

/* The local outcome of the operation at offset o (applied already). */
static int outcome(seq_loads *l, int64_t o, uint64_t *gen, char *msg, size_t msglen)
{
    int rc = SEQ_EINTERNAL;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n_ops; i++)
        if (l->ops[i].offset == o) {
            rc = l->ops[i].rc;
            if (gen) *gen = l->ops[i].gen;
            if (rc) seq_errf(msg, msglen, "%s", l->ops[i].msg);
            break;
        }
    pthread_mutex_unlock(&l->mu);
    if (rc == SEQ_EINTERNAL && !msg[0]) seq_errf(msg, msglen, "operation at offset %" PRId64 " not found", o);
    return rc;
}

/* Waits until every node of the map has applied everything below `next`. */
static int wait_nodes(seq_loads *l, int64_t next, int64_t until, char *msg, size_t msglen)
{
    char pending[512] = "";
    for (;;) {
        struct seq_cluster *c = atomic_load(&l->cluster);
        if (c && seq_cluster_pending(c, next, pending, sizeof pending) == 0) return SEQ_OK;
        if (mono_ms() >= until) break;
        sleep_ms(20); /* reads the map under its read lock: cheap */
    }
    seq_errf(msg, msglen, "committed; pending on %s", pending[0] ? pending : "the cluster map");
    return SEQ_EUNAVAILABLE;
}

/* resolved: batch_root/path (or path, absolute); the batch directory holding its part. */
static int partitioned(const char *root, const char *path)
{
    char buf[PATH_MAX], real[PATH_MAX];
    if (path[0] == '/') snprintf(buf, sizeof buf, "%s", path);
    else snprintf(buf, sizeof buf, "%s/%s", root, path);
    if (!realpath(buf, real)) return 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(real, '/');
        if (!slash || slash == real) return 0;
        *slash = '\0';
    }
    seq_batch_desc d;
    char e[64];
    return seq_batch_desc_read(real, &d, e, sizeof e) == SEQ_OK;
}

/* The committed load again: its counts over the whole batch, from its parts' manifests
 * (the history here holds those of this node's parts only). The paths were checked. */
static void whole_counts(const char *root, const seq_load_req *req, seq_load_result *res)
{
    char **dirs = calloc(req->n_paths, sizeof *dirs);
    size_t n = 0;
    res->users = res->events = 0;
    res->files = (uint32_t)req->n_paths;
    for (size_t i = 0; dirs && i < req->n_paths; i++) {
        char buf[PATH_MAX], real[PATH_MAX];
        if (req->paths[i][0] == '/') snprintf(buf, sizeof buf, "%s", req->paths[i]);
        else snprintf(buf, sizeof buf, "%s/%s", root, req->paths[i]);
        char *slash = realpath(buf, real) ? strrchr(real, '/') : NULL;
        if (!slash) continue;
        *slash = '\0';
        size_t k = 0;
        while (k < n && strcmp(dirs[k], real) != 0) k++;
        if (k < n || !(dirs[n] = strdup(real))) continue;
        seq_batch_manifest m;
        char e[256];
        if (seq_batch_manifest_read(dirs[n++], &m, e, sizeof e) == SEQ_OK) {
            res->users += m.users;
            res->events += m.events;
            seq_batch_manifest_clear(&m);
        }
    }
    for (size_t k = 0; k < n; k++) free(dirs[k]);
    free(dirs);
}

/* An unpartitioned batch (PRODUCT.md: it "loads only where nodes hold every partition (a
 * single node, or a group of one)"): SEQ_OK when every node of the map holds all np
 * partitions or none, else SEQ_EPRECONDITION naming those that hold only some. */
static int whole_here(seq_loads *l, uint32_t np, char *msg, size_t msglen)
{
    char names[256] = "";
    struct seq_cluster *c = atomic_load(&l->cluster);
    if (!c) {
        seq_errf(msg, msglen, "the cluster map is not read yet: try again");
        return SEQ_EUNAVAILABLE;
    }
    if (seq_cluster_partial(c, np, names, sizeof names) == 0) return SEQ_OK;
    seq_errf(msg, msglen, "a batch built without --partitions loads only where every node "
             "holds every partition (a single node, or groups of one), and %s hold only "
             "some: build it with --partitions %u (seqctl build), one part per partition",
             names, np);
    return SEQ_EPRECONDITION;
}

static uint64_t committed_gen(seq_loads *l, const char *sequence)
{
    const seq_sequence *s = seq_def_find(l->cfg.def, sequence, strlen(sequence));
    const seq_store_view *v = seq_store_view_acquire(l->cfg.store);
    const seq_store_seqstate *cur = s ? seq_store_view_seq(v, s->id) : NULL;
    uint64_t g = cur ? cur->generation : 0;
    seq_store_view_release(l->cfg.store, v);
    return g;
}

/* The answer's impact counts, summed over one holder of each of the np partitions (every
 * node applied the operation at o). A partition that no holder counted (each refused it
 * where the receiver did not: a dry run is never retried, so a file that a node's mount
 * does not show yet refuses it there; or a count not kept) would make the sum silently
 * short: SEQ_EUNAVAILABLE naming those partitions instead. */
static int sum_impact(seq_loads *l, int64_t o, uint32_t np, int dry, seq_load_result *res,
                      char *msg, size_t msglen)
{
    char missing[256];
    struct seq_cluster *c = atomic_load(&l->cluster);
    if (!c) { /* wait_nodes answered from the map: not reached */
        seq_errf(msg, msglen, "the cluster map is not read yet: try again");
        return SEQ_EUNAVAILABLE;
    }
    if (seq_cluster_impact(c, o, np, &res->users_emptied, &res->stream_events_hidden, missing,
                           sizeof missing) == np)
        return SEQ_OK;
    seq_errf(msg, msglen, "%sno holder of partitions %s counted the %s's impact (each "
             "refused it, e.g. a file its mount of the batch root does not show yet: see its "
             "log): users_emptied and stream_events_hidden would be short",
             dry ? "" : "committed; ", missing, dry ? "dry run" : "load");
    return SEQ_EUNAVAILABLE;
}

/* The receiver's side of a cluster load's timeline (wall clock ms, 0 = not reached). */
typedef struct {
    int64_t call, caught_up, written, here, all, offset;
    const seq_load_timing *verify;
} recv_timeline;

/* Where the receiver's time went, in ms after the call reached this node: applied what
 * the log held before (catch_up), checked every part in place (of which read and hashed:
 * staged), wrote the record (the commit), applied it here, saw every holder apply it;
 * bench/build-dist.sh prints it with each node's (log_timeline). */
static void log_recv_timeline(const seq_load_req *req, const recv_timeline *t, int rc)
{
    int64_t c = t->call;
    char a[24], v[24], w[24], h[24], all[24];
    seq_log(SEQ_LOG_INFO, "%s: timeline of %s generation %" PRIu64 " (call at %" PRId64
            " ms): caught up %s, verified %s (staged %" PRId64 " ms), written %s (offset %"
            PRId64 "), applied here %s, every node %s, answered +%" PRId64 " ms: %s",
            req->dry_run ? "dry run" : "load", req->sequence, req->generation, c,
            seq_load_timing_rel(a, c, t->caught_up), seq_load_timing_rel(v, c, t->verify->verified),
            t->verify->stage_ms, seq_load_timing_rel(w, c, t->written), t->offset,
            seq_load_timing_rel(h, c, t->here), seq_load_timing_rel(all, c, t->all),
            seq_now_ms() - c, seq_log_code_name(rc));
}

int seq_loads_load(seq_loads *l, const seq_load_req *req, uint64_t deadline_ns,
                   seq_load_result *res, char *msg, size_t msglen)
{
    int64_t until = answer_by(deadline_ns);
    seq_load_req dry = *req;
    dry.dry_run = 1;
    dry.no_impact = 1; /* each node counts it for the partitions it holds */
    dry.only_parts = NULL;
    dry.partitions = seq_consumer_partitions(l->cfg.consumer, NULL, 0);
    /* what each file was when verified, for the record: a node whose copy has the same
     * bytes does not scan it entry by entry again (batch.h, verified) */
    uint64_t *sums = calloc(2 * req->n_paths, sizeof *sums);
    if (!sums) {
        seq_errf(msg, msglen, "out of memory");
        return SEQ_EINTERNAL;
    }
    dry.sums_out = sums;
    seq_load_timing vt = {0}; /* the receiver's check of every part */
    recv_timeline tl = {.call = seq_now_ms(), .offset = -1, .verify = &vt};
    dry.timing = &vt;
    pthread_mutex_lock(&l->ops_mu);
    int rc = catch_up(l, until, msg, msglen);
    tl.caught_up = seq_now_ms();
    /* the committed generation again: a no-op once every node has it too */
    int again = rc == SEQ_OK && req->sequence && committed_gen(l, req->sequence) == req->generation &&
                req->generation;
    if (rc == SEQ_OK)
        rc = seq_store_load_batch(l->cfg.store, l->cfg.batch_root, &dry, res, msg, msglen);
    int whole = rc == SEQ_OK && !partitioned(l->cfg.batch_root, req->paths[0]);
    if (whole) rc = whole_here(l, dry.partitions, msg, msglen);
    if (rc != SEQ_OK) goto out;
    if (again) {
        whole_counts(l->cfg.batch_root, req, res);
        res->users_emptied = res->stream_events_hidden = 0;
        if (!req->dry_run) rc = wait_nodes(l, seq_loads_applied(l), until, msg, msglen);
        goto out;
    }
    /* a load, or a dry run: every node verifies its partitions' parts and counts what the
     * load changes (would change) there; the answer sums one holder of each partition */
    seq_loads_record r = {.op = req->dry_run ? SEQ_LOADS_OP_DRY_RUN : SEQ_LOADS_OP_LOAD,
                          .expires_ms = seq_now_ms() + (until - mono_ms()) + DRY_RUN_GRACE_MS,
                          .generation = req->generation,
                          .start_ms = req->start_ms, .end_ms = req->end_ms,
                          .partitions = whole ? 0 : dry.partitions,
                          .paths = (char **)req->paths,
                          .n_paths = req->n_paths, .sums = sums};
    snprintf(r.sequence, sizeof r.sequence, "%s", req->sequence);
    int64_t o = commit(l, &r, until, msg, msglen);
    if (o < 0) {
        rc = SEQ_EUNAVAILABLE;
        goto out;
    }
    tl.written = seq_now_ms(), tl.offset = o;
    seq_log(SEQ_LOG_INFO, "%s: %s generation %" PRIu64 " committed to %s at offset %" PRId64,
            req->dry_run ? "dry run" : "load", req->sequence, req->generation, l->topic, o);
    if (wait_applied(l, o + 1, until)) {
        rc = wait_nodes(l, o + 1, mono_ms(), msg, msglen); /* names this node among others */
        goto out;
    }
    tl.here = seq_now_ms();
    if ((rc = outcome(l, o, NULL, msg, msglen)) == SEQ_OK) rc = wait_nodes(l, o + 1, until, msg, msglen);
    if (rc == SEQ_OK) tl.all = seq_now_ms();
    if (rc == SEQ_OK) rc = sum_impact(l, o, dry.partitions, req->dry_run, res, msg, msglen);
out:
    pthread_mutex_unlock(&l->ops_mu);
    free(sums);
    if (tl.offset >= 0) log_recv_timeline(req, &tl, rc);
    return rc;
}

int seq_loads_rollback(seq_loads *l, const char *sequence, uint64_t to, uint64_t deadline_ns,
                       uint64_t *gen, char *msg, size_t msglen)
{
    int64_t until = answer_by(deadline_ns);
    uint64_t from = 0;
    pthread_mutex_lock(&l->ops_mu);
    int rc = catch_up(l, until, msg, msglen);
    if (rc == SEQ_OK)
        rc = seq_store_rollback_ex(l->cfg.store, sequence, to, 1, 0, gen, &from, msg, msglen);
    if (rc == 1) { /* the newest in effect already: a no-op once every node has it */
        rc = wait_nodes(l, seq_loads_applied(l), until, msg, msglen);
        goto out;
    }
    if (rc != SEQ_OK) goto out;
    seq_loads_record r = {.op = SEQ_LOADS_OP_ROLLBACK, .generation = to, .from = from, .to = *gen};
    snprintf(r.sequence, sizeof r.sequence, "%s", sequence);
    int64_t o = commit(l, &r, until, msg, msglen);
    if (o < 0) {
        rc = SEQ_EUNAVAILABLE;
        goto out;
    }
    seq_log(SEQ_LOG_INFO, "rollback: %s to %" PRIu64 " committed to %s at offset %" PRId64,
            sequence, to, l->topic, o);
    if (wait_applied(l, o + 1, until)) {
        rc = wait_nodes(l, o + 1, mono_ms(), msg, msglen);
        goto out;
    }
    if ((rc = outcome(l, o, gen, msg, msglen)) == SEQ_OK) rc = wait_nodes(l, o + 1, until, msg, msglen);
out:
    pthread_mutex_unlock(&l->ops_mu);
    return rc;
}
