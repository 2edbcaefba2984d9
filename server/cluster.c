/* The cluster map (see cluster.h). One thread: it reads `<topic>.seqd-cluster` from ~15 s
 * back (every live node published within that), refreshes this node's own entry from
 * the consumer and the store every REFRESH_MS, publishes it every PUBLISH_MS, and drops
 * entries silent for SEQ_CLUSTER_SILENT_MS. Records are JSON objects (one per heartbeat,
 * keyed by node id; a null value is a node's leave); a record that does not parse is
 * ignored (seq_cluster_parse_record, fuzzed). Entries are guarded by a rwlock: the admin
 * thread and the gRPC workers read, the cluster thread writes. */
#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "seqd/v1/seqd.pb-c.h"
#include "cluster_record.h"
#include "kafkaconf.h"
#include "loads.h"

#define REFRESH_MS 200
#define TICK_MS 50 /* the thread's longest wait for the map's records */
#define PUBLISH_MS 1000
#define LOOKBACK_MS 15000    /* where the reader starts: before every live node's last record */
/* A new node reads the map this long before it publishes: every live node published
 * within it, so a live node with the same id (a twin) is seen, and this node fences
 * itself (seq_cluster_fenced) instead of overwriting the twin's entry. */
#define TWIN_WINDOW_MS 2500
#define PROBE_TIMEOUT_MS 3000 /* a loaded twin's admin thread may be slow to answer */

typedef struct {
    seq_cluster_record r;
    int64_t seen_ms; /* our clock when its last record arrived */
    int self;
} node;

struct seq_cluster {
    seq_cluster_config cfg;
    char map_topic[300];
    char grpc[128], admin[128]; /* copies: the admin server is stopped before the map */
    char incarnation[24]; /* this process: tells a restarted node from a live twin */
    rd_kafka_t *prod, *cons;
    rd_kafka_queue_t *queue;
    pthread_t thread;
    int thread_started;
    _Atomic int stop;
    _Atomic int publish_soon; /* seq_cluster_publish_soon: publish at the next refresh */
    _Atomic uint32_t n_parts;
    /* This node's own partitions, as the router reads them: 1 held, 2 held and caught
     * up, 3 caught up with a gap. Stored from a snapshot of the consumer's under self_mu
     * (held_from_consumer), by the map's thread every REFRESH_MS and by the consumer's
     * thread at every assignment change: the later snapshot is always the one left. */
    _Atomic uint8_t held[SEQ_CLUSTER_MAX_PARTS];
    pthread_mutex_t self_mu;
    pthread_rwlock_t lock; /* nodes, n_nodes, updated_ms */
    node *nodes;
    int n_nodes;
    int64_t updated_ms;
    int warned_twin;
    int64_t quiet_until;  /* cluster thread: no publishing before (mono ms) */
    _Atomic int fenced;   /* a live twin was found: this node must stop */
    _Atomic(seq_loads *) loads; /* cluster-wide loads (loads.h); NULL: not published */
    _Atomic int window_done; /* the first TWIN_WINDOW_MS are over, their twins probed */
    char fence_msg[640];  /* written before fenced is set */
    seq_cluster_record twin; /* cluster thread: a twin's record to probe (id "" = none) */
};

void seq_cluster_topic_name(const char *topic, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s.seqd-cluster", topic);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Kafka clients ---- */

static void quiet_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk, (void)err, (void)reason, (void)opaque; /* the consumer reports broker health */
}

static rd_kafka_t *make_client(seq_cluster *c, rd_kafka_type_t type, char *err, size_t errlen)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *brokers = seq_consumer_brokers(c->cfg.consumer);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, e, sizeof e) ||
        rd_kafka_conf_set(conf, "log_level", "2", e, sizeof e) ||
        (type == RD_KAFKA_PRODUCER && (rd_kafka_conf_set(conf, "linger.ms", "0", e, sizeof e) ||
                                       rd_kafka_conf_set(conf, "message.timeout.ms", "5000", e, sizeof e))) ||
        (type == RD_KAFKA_CONSUMER && (rd_kafka_conf_set(conf, "group.id", "seqd-cluster-reader", e, sizeof e) ||
                                       rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e) ||
                                       rd_kafka_conf_set(conf, "fetch.wait.max.ms", "100", e, sizeof e) ||
                                       rd_kafka_conf_set(conf, "enable.partition.eof", "false", e, sizeof e)))) {
        seq_errf(err, errlen, "cluster map client: %s", e);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (seq_kafkaconf_apply(c->cfg.kafka_conf, conf, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, quiet_error);
    rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof e);
    if (!rk) {
        seq_errf(err, errlen, "cluster map client: %s", e);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Partition count and replication factor of a topic: 1 found, 0 missing, -1 no answer. */
static int topic_info(rd_kafka_t *rk, const char *topic, int *parts, int *replicas)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt) return -1;
    int found = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        found = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                md->topics[0].partition_cnt > 0;
        if (found) {
            *parts = md->topics[0].partition_cnt;
            *replicas = md->topics[0].partitions[0].replica_cnt;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return found;
}

/* With a real broker, the map's topic and the loads' are created when missing (one
 * partition, the event topic's replication factor; the map's compacted, the loads' kept
 * for ever: rollbacks and a partition's new holder read it back), as Kafka Streams
 * creates its internal topics; where the broker refuses, the start fails saying how to
 * create it. */
static int ensure_topic(seq_cluster *c, const char *topic, const char *what, const char *key,
                        const char *val, char *err, size_t errlen)
{
    int parts = 0, rf = 1, ev_parts = 0;
    int found = topic_info(c->prod, topic, &parts, &rf);
    if (found != 0) return SEQ_OK; /* there, or no broker answers yet: the thread retries */
    if (topic_info(c->prod, c->cfg.topic, &ev_parts, &rf) != 1) rf = 1;
    char e[256] = "";
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, rf, e, sizeof e);
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->prod);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(c->prod, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev = NULL;
    int ok = 0;
    if (nt && q && o) {
        rd_kafka_NewTopic_set_config(nt, key, val);
        rd_kafka_AdminOptions_set_request_timeout(o, 5000, NULL, 0);
        rd_kafka_CreateTopics(c->prod, &nt, 1, o, q);
        ev = rd_kafka_queue_poll(q, 6000);
        const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        if (!ev) snprintf(e, sizeof e, "no answer from the brokers");
        else if (rd_kafka_event_error(ev)) snprintf(e, sizeof e, "%s", rd_kafka_event_error_string(ev));
        else if (n == 1 && rd_kafka_topic_result_error(tr[0]) &&
                 rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            snprintf(e, sizeof e, "%s", rd_kafka_topic_result_error_string(tr[0]));
        else ok = 1;
    }
    if (ev) rd_kafka_event_destroy(ev);
    if (o) rd_kafka_AdminOptions_destroy(o);
    if (q) rd_kafka_queue_destroy(q);
    if (nt) rd_kafka_NewTopic_destroy(nt);
    if (ok) return SEQ_OK;
    seq_errf(err, errlen,
             "%s topic %s does not exist and cannot be created (%s); create it: "
             "kafka-topics.sh --create --topic %s --partitions 1 --replication-factor %d "
             "--config %s=%s",
             what, topic, e, topic, rf, key, val);
    return SEQ_EPRECONDITION;
}

/* Starts the reader LOOKBACK_MS back (the log's start when older, or no broker answers). */
static int start_reader(seq_cluster *c, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->map_topic, 0)->offset = seq_now_ms() - LOOKBACK_MS;
    if (rd_kafka_offsets_for_times(c->cons, l, 2000) || l->elems[0].err || l->elems[0].offset < 0)
        l->elems[0].offset = l->elems[0].offset == -1 && !l->elems[0].err ? RD_KAFKA_OFFSET_END
                                                                          : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(c->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        seq_errf(err, errlen, "cluster map reader: %s", rd_kafka_err2str(e));
        return SEQ_EINTERNAL;
    }
    return (c->queue = rd_kafka_queue_get_consumer(c->cons)) ? SEQ_OK : SEQ_EINTERNAL;
}

static int twin_alive(const char *admin, const char *id, const char *incarnation);
static int bit(const uint8_t *bits, uint32_t p);

/* ---- entries ---- */

static node *find(seq_cluster *c, const char *id)
{
    for (int i = 0; i < c->n_nodes; i++)
        if (strcmp(c->nodes[i].r.id, id) == 0) return &c->nodes[i];
    return NULL;
}

/* Entries stay sorted by id, so that routing tries the holders of a pass in one order on
 * every node (seq_cluster_route). The slot vacated at the end is zeroed: it would
 * otherwise keep a bitwise copy of the last entry (its caught-up bits, its record's
 * pointers), which goes stale when that entry is next replaced; every slot from n_nodes
 * on is a zeroed one (insert zeroes the slot it fills). */
static void remove_at(seq_cluster *c, int i)
{
    seq_cluster_record_clear(&c->nodes[i].r);
    memmove(&c->nodes[i], &c->nodes[i + 1], (size_t)(c->n_nodes - i - 1) * sizeof *c->nodes);
    c->n_nodes--;
    memset(&c->nodes[c->n_nodes], 0, sizeof c->nodes[c->n_nodes]);
}

/* A zeroed entry for id at its sorted place; NULL when the map is full. */
static node *insert(seq_cluster *c, const char *id)
{
    if (c->n_nodes >= SEQ_CLUSTER_MAX_NODES) return NULL;
    int i = 0;
    while (i < c->n_nodes && strcmp(c->nodes[i].r.id, id) < 0) i++;
    memmove(&c->nodes[i + 1], &c->nodes[i], (size_t)(c->n_nodes - i) * sizeof *c->nodes);
    c->n_nodes++;
    memset(&c->nodes[i], 0, sizeof c->nodes[i]);
    snprintf(c->nodes[i].r.id, sizeof c->nodes[i].r.id, "%s", id);
    return &c->nodes[i];
}

/* A fresh record of this node's id from another process (write lock held). While this
 * node is new (it has not published yet), it is kept for the thread to probe after the
 * lock is released (check_twin); later, it is only reported. */
static void twin_seen(seq_cluster *c, const seq_cluster_record *r, int64_t now)
{
    if (now < c->quiet_until) {
        c->twin = *r;
        c->twin.generations = NULL;
        return;
    }
    if (!c->warned_twin++)
        fprintf(stderr, "seqd: cluster: another node publishes with this node's id %s (grpc %s)\n",
                r->id, r->grpc);
}

/* A twin that still answers as itself (its admin port's /cluster) fences this node; a
 * record of a dead predecessor (a restart after a crash) is ignored. */
static void check_twin(seq_cluster *c)
{
    seq_cluster_record *r = &c->twin;
    if (!r->id[0] || atomic_load(&c->fenced)) return;
    if (twin_alive(r->admin, r->id, r->incarnation) || twin_alive(r->admin, r->id, r->incarnation)) {
        snprintf(c->fence_msg, sizeof c->fence_msg,
                 "another live node already uses the id %s (grpc %s, admin %s, group %s): "
                 "give this node another --instance-id", r->id, r->grpc, r->admin, r->group);
        atomic_store(&c->fenced, 1);
    }
    r->id[0] = '\0';
}

/* A record of another node (write lock held). Records of our own id from another
 * incarnation are a twin: warned about once (the start refused a live one). */
static void apply_record(seq_cluster *c, seq_cluster_record *r, int64_t now)
{
    if (strcmp(r->id, c->cfg.node_id) == 0) {
        if (strcmp(r->incarnation, c->incarnation) != 0 && seq_now_ms() - r->heartbeat_ms < SEQ_CLUSTER_SILENT_MS)
            twin_seen(c, r, now);
        seq_cluster_record_clear(r);
        return;
    }
    /* age by the publisher's clock: records read back at start may be old already */
    int64_t age = seq_now_ms() - r->heartbeat_ms;
    if (age < 0) age = 0;
    node *n = find(c, r->id);
    if (age > SEQ_CLUSTER_SILENT_MS) {
        seq_cluster_record_clear(r);
        return;
    }
    if (!n && !(n = insert(c, r->id))) {
        seq_cluster_record_clear(r);
        return;
    } else if (r->heartbeat_ms < n->r.heartbeat_ms && strcmp(r->incarnation, n->r.incarnation) == 0) {
        seq_cluster_record_clear(r); /* an older record of the same process (read back) */
        return;
    }
    seq_cluster_record_clear(&n->r);
    n->r = *r;
    n->seen_ms = now - age;
    memset(r, 0, sizeof *r);
}

static void on_message(seq_cluster *c, const rd_kafka_message_t *m, int64_t now)
{
    if (m->err || !m->key || m->key_len == 0 || m->key_len >= sizeof c->nodes[0].r.id) return;
    char id[sizeof c->nodes[0].r.id];
    memcpy(id, m->key, m->key_len);
    id[m->key_len] = '\0';
    pthread_rwlock_wrlock(&c->lock);
    if (!m->payload) { /* a leave */
        node *n = find(c, id);
        if (n && !n->self) remove_at(c, (int)(n - c->nodes));
    } else {
        seq_cluster_record r;
        if (seq_cluster_parse_record(m->payload, m->len, &r) == SEQ_OK && strcmp(r.id, id) == 0)
            apply_record(c, &r, now);
        else if (r.id[0]) seq_cluster_record_clear(&r);
    }
    c->updated_ms = now;
    pthread_rwlock_unlock(&c->lock);
}

static void expire(seq_cluster *c, int64_t now)
{
    pthread_rwlock_wrlock(&c->lock);
    for (int i = c->n_nodes - 1; i >= 0; i--)
        if (!c->nodes[i].self && now - c->nodes[i].seen_ms > SEQ_CLUSTER_SILENT_MS) {
            remove_at(c, i);
            c->updated_ms = now;
        }
    pthread_rwlock_unlock(&c->lock);
}

/* caught up also means filled from the committed batches (PRODUCT.md "A node that
 * acquires a partition") where loads are cluster-wide */
static int part_caught(const seq_consumer_part *pt, seq_loads *loads, uint32_t p)
{
    return pt->caught_up && (!loads || seq_loads_filled(loads, p));
}

/* The consumer's partitions into parts (up to SEQ_CLUSTER_MAX_PARTS; returns how many)
 * and into held[] and n_parts, under self_mu so that a snapshot taken earlier is never
 * stored after a later one. */
static uint32_t held_from_consumer(seq_cluster *c, seq_consumer_part *parts, seq_loads *loads)
{
    pthread_mutex_lock(&c->self_mu);
    uint32_t n = seq_consumer_partitions(c->cfg.consumer, parts, SEQ_CLUSTER_MAX_PARTS);
    if (n > SEQ_CLUSTER_MAX_PARTS) n = SEQ_CLUSTER_MAX_PARTS;
    for (uint32_t p = 0; p < n; p++) {
        int caught = parts[p].held && part_caught(&parts[p], loads, p);
        atomic_store_explicit(&c->held[p],
                              (uint8_t)(parts[p].held + caught + (caught && parts[p].gap_from_ms > 0)),
                              memory_order_relaxed);
    }
    atomic_store_explicit(&c->n_parts, n, memory_order_release);
    pthread_mutex_unlock(&c->self_mu);
    return n;
}

/* The consumer's hook (seq_consumer_on_assignment), on its thread: this node's router
 * follows the new assignment at once, and its record goes out now rather than at the
 * next second (a record taken before the assignment says it holds nothing: other nodes
 * would find no holder meanwhile). */
static void on_assignment(void *ctx)
{
    seq_cluster *c = ctx;
    static _Thread_local seq_consumer_part parts[SEQ_CLUSTER_MAX_PARTS];
    held_from_consumer(c, parts, atomic_load(&c->loads));
    atomic_store(&c->publish_soon, 1);
    if (c->queue) rd_kafka_queue_yield(c->queue); /* the map's thread refreshes and publishes */
}

/* This node's entry from the consumer's partitions, readiness and the committed view. */
static void refresh_self(seq_cluster *c, int64_t now)
{
    static _Thread_local seq_consumer_part parts[SEQ_CLUSTER_MAX_PARTS];
    seq_loads *loads = atomic_load(&c->loads);
    uint32_t n = held_from_consumer(c, parts, loads);
    seq_cluster_record r = {0};
    snprintf(r.id, sizeof r.id, "%s", c->cfg.node_id);
    snprintf(r.group, sizeof r.group, "%s", c->cfg.group);
    snprintf(r.grpc, sizeof r.grpc, "%s", c->cfg.grpc);
    snprintf(r.admin, sizeof r.admin, "%s", c->cfg.admin);
    snprintf(r.incarnation, sizeof r.incarnation, "%s", c->incarnation);
    snprintf(r.fingerprint, sizeof r.fingerprint, "%016" PRIx64, c->cfg.def->fingerprint);
    r.n_parts = n;
    /* applied position before the fill state: a node never claims a fill it has not done
     * for a load it has not applied */
    r.loads = loads ? seq_loads_applied(loads) : -1;
    r.filling = loads ? seq_loads_filling(loads) : 0;
    json_t *impact = loads ? seq_loads_impact(loads) : NULL;
    r.impact = impact ? json_dumps(impact, JSON_COMPACT) : NULL;
    json_decref(impact);
    for (uint32_t p = 0; p < n; p++) {
        if (parts[p].held) r.held[p / 8] |= (uint8_t)(1u << (p % 8));
        if (part_caught(&parts[p], loads, p)) r.caught[p / 8] |= (uint8_t)(1u << (p % 8));
        r.gap_from[p] = parts[p].gap_from_ms;
    }
    char why[200];
    r.ready = seq_consumer_ready(c->cfg.consumer, why, sizeof why);
    r.heartbeat_ms = seq_now_ms(); /* wall clock: other nodes compare it with theirs */
    json_t *gens = json_object();
    const seq_store_view *v = seq_store_view_acquire(c->cfg.store);
    for (uint32_t i = 0; i < c->cfg.def->n_seqs; i++) {
        const seq_store_seqstate *s = seq_store_view_seq(v, c->cfg.def->seqs[i].id);
        json_object_set_new(gens, c->cfg.def->seqs[i].name, json_integer(s ? (json_int_t)s->generation : 0));
    }
    seq_store_view_release(c->cfg.store, v);
    r.generations = json_dumps(gens, JSON_COMPACT);
    json_decref(gens);
    pthread_rwlock_wrlock(&c->lock);
    node *me = find(c, c->cfg.node_id);
    if (!me) me = insert(c, c->cfg.node_id);
    if (me) {
        seq_cluster_record_clear(&me->r);
        me->r = r;
        me->self = 1;
        me->seen_ms = now;
    } else {
        seq_cluster_record_clear(&r);
    }
    c->updated_ms = now;
    pthread_rwlock_unlock(&c->lock);
}

static void publish(seq_cluster *c, int leave)
{
    char *text = NULL;
    if (!leave) {
        pthread_rwlock_rdlock(&c->lock);
        node *me = find(c, c->cfg.node_id);
        text = me ? seq_cluster_format_record(&me->r) : NULL;
        pthread_rwlock_unlock(&c->lock);
        if (!text) return;
    }
    rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC(c->map_topic), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_KEY(c->cfg.node_id, strlen(c->cfg.node_id)),
                      RD_KAFKA_V_VALUE(text, text ? strlen(text) : 0),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    free(text);
    rd_kafka_poll(c->prod, 0);
}

static void read_some(seq_cluster *c, int timeout_ms)
{
    rd_kafka_message_t *msgs[256];
    /* the first record as soon as it is here (a batch call waits out its timeout unless
     * the batch fills: a receiver waiting on the nodes' records saw them up to
     * REFRESH_MS late), then whatever else is queued */
    ssize_t n = rd_kafka_consume_batch_queue(c->queue, timeout_ms, msgs, 1), more;
    if (n == 1 && (more = rd_kafka_consume_batch_queue(c->queue, 0, msgs + 1, 255)) > 0) n += more;
    int64_t now = mono_ms();
    for (ssize_t i = 0; i < n; i++) {
        on_message(c, msgs[i], now);
        rd_kafka_message_destroy(msgs[i]);
    }
}

/* A partition this node no longer holds keeps its data (the only copy of stream history
 * older than the Kafka log) until its new holder in this node's group reports it caught
 * up; then the consumer drops it (seq_consumer_drop_partition). Only where the store's
 * layout has the topic's partition count, so that a layout partition is a Kafka one. */
static void drop_handed_over(seq_cluster *c)
{
    uint32_t np = seq_cluster_partitions(c);
    if (!np || np != seq_store_partitions(c->cfg.store)) return;
    uint8_t ready[SEQ_CLUSTER_MAX_PARTS] = {0};
    pthread_rwlock_rdlock(&c->lock);
    for (int i = 0; i < c->n_nodes; i++) {
        const node *x = &c->nodes[i];
        if (x->self || strcmp(x->r.group, c->cfg.group) != 0) continue;
        for (uint32_t p = 0; p < np && p < x->r.n_parts; p++) ready[p] |= bit(x->r.caught, p);
    }
    pthread_rwlock_unlock(&c->lock);
    for (uint32_t p = 0; p < np; p++) {
        int64_t next, wm;
        if (ready[p] && !seq_cluster_holds(c, p) &&
            seq_store_get_offset(c->cfg.store, (int32_t)p, &next, &wm) == SEQ_OK)
            seq_consumer_drop_partition(c->cfg.consumer, p);
    }
}

static void *run(void *arg)
{
    seq_cluster *c = arg;
    int64_t next_pub = 0, next_drop = 0, next_refresh = 0;
    while (!atomic_load(&c->stop)) {
        /* TICK_MS, not REFRESH_MS: a publish_soon set meanwhile (a load applied, which a
         * receiver waits on) goes out within it */
        read_some(c, TICK_MS);
        check_twin(c);
        int64_t now = mono_ms();
        int soon = atomic_exchange(&c->publish_soon, 0);
        if (now >= c->quiet_until) atomic_store(&c->window_done, 1);
        if (soon || now >= next_refresh || now >= next_pub) {
            refresh_self(c, now);
            next_refresh = now + REFRESH_MS;
        }
        if ((now >= next_pub || soon) && now >= c->quiet_until && !atomic_load(&c->fenced)) {
            publish(c, 0);
            next_pub = now + PUBLISH_MS;
        }
        if (now >= next_drop) {
            drop_handed_over(c);
            next_drop = now + 2 * PUBLISH_MS;
        }
        expire(c, now);
    }
    return NULL;
}

/* ---- a live twin ---- */

/* GET /cluster on a node's admin address: 1 when it answers as a live node with this id
 * and that incarnation, 0 otherwise (nothing listens, another process, no answer). */
static int twin_alive(const char *admin, const char *id, const char *incarnation)
{
    char host[256], port[16];
    const char *colon = strrchr(admin, ':');
    if (!colon || (size_t)(colon - admin) >= sizeof host || strlen(colon + 1) >= sizeof port) return 0;
    memcpy(host, admin, (size_t)(colon - admin));
    host[colon - admin] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) || !ai) return 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), alive = 0;
    struct timeval tv = {PROBE_TIMEOUT_MS / 1000, (PROBE_TIMEOUT_MS % 1000) * 1000};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        const char req[] = "GET /cluster HTTP/1.0\r\n\r\n";
        char buf[65536];
        size_t got = 0;
        ssize_t k;
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1))
            while (got < sizeof buf - 1 && (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)k;
        buf[got] = '\0';
        char *body = strstr(buf, "\r\n\r\n");
        json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
        const char *self = json_string_value(json_object_get(j, "self"));
        const char *inc = json_string_value(json_object_get(j, "incarnation"));
        alive = self && inc && strcmp(self, id) == 0 && strcmp(inc, incarnation) == 0;
        json_decref(j);
    }
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return alive;
}

/* ---- lifecycle ---- */

int seq_cluster_start(const seq_cluster_config *cfg, seq_cluster **out, char *err, size_t errlen)
{
    seq_cluster *c = calloc(1, sizeof *c);
    if (!c || !(c->nodes = calloc(SEQ_CLUSTER_MAX_NODES, sizeof *c->nodes))) {
        free(c);
        seq_errf(err, errlen, "cluster: out of memory");
        return SEQ_EINTERNAL;
    }
    c->cfg = *cfg;
    snprintf(c->grpc, sizeof c->grpc, "%s", cfg->grpc);
    snprintf(c->admin, sizeof c->admin, "%s", cfg->admin);
    c->cfg.grpc = c->grpc;
    c->cfg.admin = c->admin;
    pthread_rwlock_init(&c->lock, NULL);
    pthread_mutex_init(&c->self_mu, NULL);
    seq_cluster_topic_name(cfg->topic, c->map_topic, sizeof c->map_topic);
    unsigned char r[8] = {0};
    FILE *u = fopen("/dev/urandom", "r");
    if (!u || fread(r, 1, sizeof r, u) != sizeof r) memcpy(r, &(int64_t){mono_ms() ^ getpid()}, 8);
    if (u) fclose(u);
    for (int i = 0; i < 8; i++) snprintf(c->incarnation + 2 * i, 3, "%02x", r[i]);
    int rc = SEQ_EINTERNAL;
    if (!(c->prod = make_client(c, RD_KAFKA_PRODUCER, err, errlen)) ||
        !(c->cons = make_client(c, RD_KAFKA_CONSUMER, err, errlen)))
        goto fail;
    char loads_topic[300];
    seq_loads_topic_name(cfg->topic, loads_topic, sizeof loads_topic);
    if ((rc = ensure_topic(c, c->map_topic, "the cluster map's", "cleanup.policy", "compact", err,
                           errlen)) ||
        (rc = ensure_topic(c, loads_topic, "the cluster-wide loads'", "retention.ms", "-1", err,
                           errlen)) ||
        (rc = start_reader(c, err, errlen)))
        goto fail;
    c->quiet_until = mono_ms() + TWIN_WINDOW_MS;
    seq_consumer_on_assignment(c->cfg.consumer, on_assignment, c); /* before the first refresh */
    refresh_self(c, mono_ms());
    if (pthread_create(&c->thread, NULL, run, c)) {
        seq_errf(err, errlen, "cluster: cannot start its thread");
        rc = SEQ_EINTERNAL;
        goto fail;
    }
    c->thread_started = 1;
    *out = c;
    return SEQ_OK;
fail:
    seq_cluster_stop(c);
    return rc;
}

void seq_cluster_stop(seq_cluster *c)
{
    if (!c) return;
    seq_consumer_on_assignment(c->cfg.consumer, NULL, NULL); /* no call of on_assignment after */
    atomic_store(&c->stop, 1);
    if (c->thread_started) {
        pthread_join(c->thread, NULL);
        if (!atomic_load(&c->fenced)) publish(c, 1); /* the leave: the others drop this node at once */
        rd_kafka_flush(c->prod, 1000);
    }
    if (c->queue) rd_kafka_queue_destroy(c->queue);
    if (c->cons) {
        rd_kafka_consumer_close(c->cons);
        rd_kafka_destroy(c->cons);
    }
    if (c->prod) rd_kafka_destroy(c->prod);
    for (int i = 0; i < c->n_nodes; i++) seq_cluster_record_clear(&c->nodes[i].r);
    free(c->nodes);
    pthread_rwlock_destroy(&c->lock);
    pthread_mutex_destroy(&c->self_mu);
    free(c);
}

/* ---- readers ---- */

/* Appends ", id" (or "id" first) to a node list that the caller's message quotes; a list
 * longer than len is cut there (snprintf's truncation), the count still counts every node. */
static void add_name(char *names, size_t len, size_t *at, int n, const char *id)
{
    if (*at >= len) return;
    int w = snprintf(names + *at, len - *at, "%s%s", n ? ", " : "", id);
    *at += w > 0 ? (size_t)w : 0;
}

void seq_cluster_set_loads(seq_cluster *c, seq_loads *l) { atomic_store(&c->loads, l); }

int seq_cluster_pending(seq_cluster *c, int64_t next, char *names, size_t len)
{
    int n = 0;
    size_t at = 0;
    if (len) names[0] = '\0';
    pthread_rwlock_rdlock(&c->lock);
    for (int i = 0; i < c->n_nodes; i++) {
        const seq_cluster_record *r = &c->nodes[i].r;
        int holds = 0;
        for (uint32_t p = 0; p < r->n_parts && !holds; p++) holds = bit(r->held, p);
        /* r->loads < 0: not a member, never applies the cluster's loads (cluster.h) */
        if (!holds || r->loads < 0 || (r->loads >= next && !r->filling)) continue;
        add_name(names, len, &at, n++, r->id);
    }
    pthread_rwlock_unlock(&c->lock);
    return n;
}

uint32_t seq_cluster_impact(seq_cluster *c, int64_t at, uint32_t np, uint64_t *emptied,
                            uint64_t *hidden, char *missing, size_t len)
{
    uint8_t seen[SEQ_CLUSTER_MAX_PARTS] = {0};
    uint32_t n = 0;
    size_t w = 0;
    int n_missing = 0;
    if (np > SEQ_CLUSTER_MAX_PARTS) np = SEQ_CLUSTER_MAX_PARTS;
    *emptied = *hidden = 0;
    if (len) missing[0] = '\0';
    pthread_rwlock_rdlock(&c->lock);
    for (int i = 0; i < c->n_nodes; i++)
        seq_cluster_record_impact(&c->nodes[i].r, at, np, seen, emptied, hidden);
    pthread_rwlock_unlock(&c->lock);
    for (uint32_t p = 0; p < np; p++) {
        char num[16];
        n += seen[p];
        if (seen[p]) continue;
        snprintf(num, sizeof num, "%u", p);
        add_name(missing, len, &w, n_missing++, num);
    }
    return n;
}

int seq_cluster_partial(seq_cluster *c, uint32_t np, char *names, size_t len)
{
    int n = 0;
    size_t at = 0;
    if (len) names[0] = '\0';
    pthread_rwlock_rdlock(&c->lock);
    for (int i = 0; i < c->n_nodes; i++) {
        const seq_cluster_record *r = &c->nodes[i].r;
        uint32_t held = 0;
        for (uint32_t p = 0; p < r->n_parts; p++) held += bit(r->held, p);
        if (held == 0 || (held == np && r->n_parts == np)) continue;
        add_name(names, len, &at, n++, r->id);
    }
    pthread_rwlock_unlock(&c->lock);
    return n;
}

const char *seq_cluster_self(const seq_cluster *c) { return c->cfg.node_id; }

void seq_cluster_publish_soon(seq_cluster *c) { atomic_store(&c->publish_soon, 1); }

const char *seq_cluster_wait_window(seq_cluster *c)
{
    for (int waited = 0; waited < 30000 && !atomic_load(&c->window_done) && !atomic_load(&c->fenced);
         waited += 50)
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    return seq_cluster_fenced(c);
}

const char *seq_cluster_fenced(seq_cluster *c)
{
    return atomic_load(&c->fenced) ? c->fence_msg : NULL;
}

uint32_t seq_cluster_partitions(const seq_cluster *c)
{
    return atomic_load_explicit(&((seq_cluster *)c)->n_parts, memory_order_acquire);
}

int seq_cluster_holds(const seq_cluster *c, uint32_t p)
{
    return p < SEQ_CLUSTER_MAX_PARTS &&
           atomic_load_explicit(&((seq_cluster *)c)->held[p], memory_order_relaxed);
}

static int bit(const uint8_t *bits, uint32_t p) { return (bits[p / 8] >> (p % 8)) & 1; }

static uint8_t own(const seq_cluster *c, uint32_t p)
{
    return p < SEQ_CLUSTER_MAX_PARTS
               ? atomic_load_explicit(&((seq_cluster *)c)->held[p], memory_order_relaxed)
               : 0;
}

int seq_cluster_caught_up(const seq_cluster *c, uint32_t p) { return own(c, p) >= 2; }

int seq_cluster_gap(const seq_cluster *c, uint32_t p) { return own(c, p) == 3; }

/* How good a holder of p a node's record makes it, best 0: caught up without a gap,
 * caught up with one (its stream starts later than reads need: PRODUCT.md "caught up
 * with a gap"), still filling; 3: not a holder. */
static int rank(const node *x, uint32_t p)
{
    if (p >= x->r.n_parts || !bit(x->r.held, p) || !x->r.grpc[0]) return 3;
    if (!bit(x->r.caught, p)) return 2;
    return x->r.gap_from[p] > 0;
}

int seq_cluster_caught_up_elsewhere(seq_cluster *c, uint32_t p, int without_gap)
{
    int found = 0;
    pthread_rwlock_rdlock(&c->lock);
    for (int i = 0; i < c->n_nodes && !found; i++)
        found = !c->nodes[i].self && rank(&c->nodes[i], p) <= (without_gap ? 0 : 1);
    pthread_rwlock_unlock(&c->lock);
    return found;
}

int seq_cluster_route(seq_cluster *c, uint32_t p, char (*addrs)[SEQ_CLUSTER_ADDR], int max)
{
    if (p >= SEQ_CLUSTER_MAX_PARTS) return 0;
    int n = 0;
    pthread_rwlock_rdlock(&c->lock);
    /* six passes from best to worst: by rank (caught up without a gap, with one,
     * filling), in each this node's group first */
    for (int pass = 0; pass < 6 && n < max; pass++) {
        int want_rank = pass / 2, want_ours = pass % 2 == 0;
        for (int i = 0; i < c->n_nodes && n < max; i++) {
            const node *x = &c->nodes[i];
            if (x->self || rank(x, p) != want_rank) continue;
            if ((strcmp(x->r.group, c->cfg.group) == 0) != want_ours) continue;
            snprintf(addrs[n++], SEQ_CLUSTER_ADDR, "%s", x->r.grpc);
        }
    }
    pthread_rwlock_unlock(&c->lock);
    /* a holder that forwards (it is filling, or has a gap) is its own last resort: the
     * call comes back marked forwarded and is read here, rather than failing when the
     * better replicas do not answer (one still in the map for SEQ_CLUSTER_SILENT_MS
     * after it died) */
    if (n < max && n > 0 && seq_cluster_holds(c, p))
        snprintf(addrs[n++], SEQ_CLUSTER_ADDR, "%s", c->cfg.grpc);
    return n;
}

static int cmp_nodes(const void *a, const void *b)
{
    const node *x = a, *y = b;
    int g = strcmp(x->r.group, y->r.group);
    return g ? g : strcmp(x->r.id, y->r.id);
}

/* A sorted copy of the entries' records (read lock held by the caller). */
static node *sorted_nodes(seq_cluster *c)
{
    node *v = malloc((size_t)(c->n_nodes ? c->n_nodes : 1) * sizeof *v);
    if (!v) return NULL;
    memcpy(v, c->nodes, (size_t)c->n_nodes * sizeof *v);
    qsort(v, (size_t)c->n_nodes, sizeof *v, cmp_nodes);
    return v;
}

char *seq_cluster_json(seq_cluster *c)
{
    pthread_rwlock_rdlock(&c->lock);
    node *v = sorted_nodes(c);
    json_t *arr = json_array();
    int64_t now = mono_ms();
    for (int i = 0; v && i < c->n_nodes; i++) {
        json_t *o = seq_cluster_record_json(&v[i].r);
        json_object_set_new(o, "age_ms", json_integer(now - v[i].seen_ms));
        json_object_set_new(o, "self", json_boolean(v[i].self));
        json_array_append_new(arr, o);
    }
    int64_t updated = seq_now_ms() - (now - c->updated_ms);
    pthread_rwlock_unlock(&c->lock);
    free(v);
    json_t *root = json_pack("{s:s,s:s,s:s,s:i,s:s,s:o,s:I}", "self", c->cfg.node_id,
                             "incarnation", c->incarnation, "topic", c->cfg.topic, "partitions",
                             (int)seq_cluster_partitions(c), "partitioner", "murmur2", "nodes", arr,
                             "updated_ms", (json_int_t)updated);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static uint32_t *bits_list(const uint8_t *bits, uint32_t n, size_t *count)
{
    uint32_t *out = malloc((n ? n : 1) * sizeof *out);
    *count = 0;
    for (uint32_t p = 0; out && p < n; p++)
        if (bit(bits, p)) out[(*count)++] = p;
    return out;
}

/* The record's gaps as the Node's parallel arrays (both malloc'd). */
static uint32_t *gap_list(const seq_cluster_record *r, size_t *n, int64_t **from, size_t *n_from)
{
    uint32_t *parts = malloc((r->n_parts ? r->n_parts : 1) * sizeof *parts);
    *from = malloc((r->n_parts ? r->n_parts : 1) * sizeof **from);
    *n = *n_from = 0;
    for (uint32_t p = 0; parts && *from && p < r->n_parts; p++)
        if (r->gap_from[p] > 0) parts[*n] = p, (*from)[(*n)++] = r->gap_from[p];
    *n_from = *n;
    return parts;
}

int seq_cluster_encode(seq_cluster *c, seq_buf *out)
{
    pthread_rwlock_rdlock(&c->lock);
    node *v = sorted_nodes(c);
    int n = c->n_nodes, rc = SEQ_EINTERNAL;
    int64_t updated = seq_now_ms() - (mono_ms() - c->updated_ms);
    pthread_rwlock_unlock(&c->lock);
    Seqd__V1__Node *nodes = calloc((size_t)(n ? n : 1), sizeof *nodes);
    Seqd__V1__Node **ptrs = calloc((size_t)(n ? n : 1), sizeof *ptrs);
    if (!v || !nodes || !ptrs) goto out;
    for (int i = 0; i < n; i++) {
        Seqd__V1__Node *x = &nodes[i];
        seqd__v1__node__init(x);
        x->id = v[i].r.id, x->group = v[i].r.group, x->grpc = v[i].r.grpc, x->admin = v[i].r.admin;
        x->partitions = bits_list(v[i].r.held, v[i].r.n_parts, &x->n_partitions);
        x->caught_up = bits_list(v[i].r.caught, v[i].r.n_parts, &x->n_caught_up);
        x->ready = v[i].r.ready;
        x->gap_partitions = gap_list(&v[i].r, &x->n_gap_partitions, &x->gap_from_ms, &x->n_gap_from_ms);
        x->heartbeat_ms = v[i].r.heartbeat_ms;
        ptrs[i] = x;
    }
    Seqd__V1__ClusterMap m = SEQD__V1__CLUSTER_MAP__INIT;
    m.topic = (char *)c->cfg.topic;
    m.partitions = seq_cluster_partitions(c);
    m.partitioner = "murmur2";
    m.n_nodes = (size_t)n;
    m.nodes = ptrs;
    m.updated_ms = updated;
    size_t len = seqd__v1__cluster_map__get_packed_size(&m);
    if (!seq_buf_reserve(out, len)) {
        out->len += seqd__v1__cluster_map__pack(&m, out->data + out->len);
        rc = SEQ_OK;
    }
    for (int i = 0; i < n; i++) {
        free(nodes[i].partitions);
        free(nodes[i].caught_up);
        free(nodes[i].gap_partitions);
        free(nodes[i].gap_from_ms);
    }
out:
    free(nodes);
    free(ptrs);
    free(v);
    return rc;
}
