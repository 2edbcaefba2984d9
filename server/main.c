/* seqd's entry point: parses the command line, loads the definition, opens the store,
 * then starts the stream consumer, the gRPC transport with the service's methods and the
 * admin server; prints the ready line and waits for SIGTERM/SIGINT, then stops in the
 * reverse order of the data path (no new calls, in-flight calls finished, consumer
 * stopped after its last commit, store closed). Exit codes: 0 clean stop, 1 runtime
 * failure, 2 bad configuration (options, definition, incompatible data). */
#include <errno.h>
#include <event2/thread.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/def.h"
#include "../engine/merge.h"
#include "../storage/batch.h"
#include "../storage/store.h"
#include "admin.h"
#include "cluster.h"
#include "loads.h"
#include "config.h"
#include "consumer.h"
#include "defcheck.h"
#include "grpc.h"
#include "kafkaconf.h"
#include "metrics.h"
#include "nodeid.h"
#include "route.h"
#include "service.h"
#include "wmhist.h"

#define EXIT_CONFIG 2

typedef struct {
    seq_config cfg;
    seq_def *def;
    seq_store *store;
    seq_metrics *metrics;
    seq_consumer *consumer;
    seq_service *service;
    seq_route *route; /* the transport's method table: the service's, routed by the cluster map */
    seq_cluster *cluster;
    seq_loads *loads; /* cluster-wide loads and rollbacks: cluster members only */
    /* the console's view of the cluster map: set (admin thread reads it) once the map runs,
     * and only on a cluster member; NULL = the console's single-node page */
    _Atomic(seq_cluster *) console_cluster;
    seq_grpc_server *grpc;
    seq_admin *admin;
    seq_console *console;
    char *token;
    seq_kafkaconf *kafka_conf; /* --kafka-config, NULL without */
    char node_id[64];          /* --instance-id, or the id kept in the data dir */
    _Atomic int64_t stream_watermark;
    seq_wmhist *wmhist; /* the newest applied event time over time, for as-of reads */
    /* the per-partition series' snapshot, taken once per scrape (scrapes run on the admin
     * thread only) */
    seq_consumer_part scrape_parts[1024];
    uint32_t n_scrape_parts;
    char part_label[16];
} server;

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        seq_errf(err, errlen, "%s: path too long", path);
        return SEQ_EINVAL;
    }
    for (char *p = buf + 1;; p++) {
        int end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            seq_errf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
            return SEQ_EINVAL;
        }
        if (end) return SEQ_OK;
        *p = '/';
    }
}

/* The token is the file's first line, without surrounding whitespace. */
static int read_token(const char *path, char **out, char *err, size_t errlen)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    if (!f) {
        seq_errf(err, errlen, "--admin-token-file %s: %s", path, strerror(errno));
        return SEQ_EINVAL;
    }
    char *s = fgets(line, sizeof line, f);
    fclose(f);
    if (s) {
        while (*s == ' ' || *s == '\t') s++;
        size_t n = strlen(s);
        while (n && strchr(" \t\r\n", s[n - 1])) s[--n] = '\0';
    }
    if (!s || !*s) {
        seq_errf(err, errlen, "--admin-token-file %s: empty token", path);
        return SEQ_EINVAL;
    }
    return (*out = strdup(s)) ? SEQ_OK : SEQ_EINTERNAL;
}

/* ---- metrics wiring: values read at scrape time from their owners ---- */

static double read_u64(void *p) { return (double)atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed); }
static double read_ull(void *p) { return (double)atomic_load_explicit((_Atomic unsigned long long *)p, memory_order_relaxed); }
static double read_i64(void *p) { return (double)atomic_load_explicit((_Atomic int64_t *)p, memory_order_relaxed); }
static double read_int(void *p) { return atomic_load_explicit((_Atomic int *)p, memory_order_relaxed); }
static double read_wm_seconds(void *p) { return read_i64(p) / 1000.0; }
static double one(void *p) { (void)p; return 1; }
static double cache_usage(void *st)
{
    uint64_t u, c;
    seq_store_cache_usage(st, &u, &c);
    return (double)u;
}
static seq_store_rcache_stats rcache_stats(void *st)
{
    seq_store_rcache_stats r;
    seq_store_record_cache_stats(st, &r);
    return r;
}
static double rcache_hits(void *st) { return (double)rcache_stats(st).hits; }
static double rcache_misses(void *st) { return (double)rcache_stats(st).misses; }
static double rcache_refreshes(void *st) { return (double)rcache_stats(st).refreshes; }
static double rcache_writes(void *st) { return (double)rcache_stats(st).writes; }
static double rcache_prepared(void *st) { return (double)rcache_stats(st).prepared; }
static double rcache_local(void *st) { return (double)rcache_stats(st).local; }
static double rcache_bytes(void *st) { return (double)rcache_stats(st).bytes; }
static double storage_corrupt(void *st) { return (double)seq_store_corrupt_count(st); }
static seq_store_write_stats write_stats(void *st)
{
    seq_store_write_stats w;
    seq_store_get_write_stats(st, &w);
    return w;
}
static double id_filter_ids(void *st) { return (double)write_stats(st).ids; }
static double id_filter_bytes(void *st) { return (double)write_stats(st).filter_bytes; }
static double id_lookups(void *st) { return (double)write_stats(st).id_lookups; }
static double cache_capacity(void *st)
{
    uint64_t u, c;
    seq_store_cache_usage(st, &u, &c);
    return (double)c;
}

/* Per-sequence batch state, read from the committed view at scrape time: completeness,
 * reported apart from the stream's freshness (mixing the two masks both). */
enum { B_GENERATION, B_WATERMARK, B_GAP };

static int batch_sample(server *s, size_t i, const char **label, double *v, int what)
{
    if (i >= s->def->n_seqs) return 0;
    const seq_sequence *seq = &s->def->seqs[i];
    const seq_store_view *view = seq_store_view_acquire(s->store);
    const seq_store_seqstate *st = seq_store_view_seq(view, seq->id);
    int64_t now = seq_now_ms(), cut = seq_merge_cutoff(now, s->def->horizon_ms);
    *v = what == B_WATERMARK ? (double)st->watermark_ms / 1000.0
         : what == B_GAP ? (double)seq_merge_gap_ms(st->cov, st->n_cov, now - seq->retention_ms,
                                                    cut) / 1000.0
                         : (double)st->generation;
    seq_store_view_release(s->store, view);
    *label = seq->name;
    return 1;
}

static int batch_generation(void *s, size_t i, const char **label, double *v)
{
    return batch_sample(s, i, label, v, B_GENERATION);
}

static int batch_watermark(void *s, size_t i, const char **label, double *v)
{
    return batch_sample(s, i, label, v, B_WATERMARK);
}

static int batch_gap(void *s, size_t i, const char **label, double *v)
{
    return batch_sample(s, i, label, v, B_GAP);
}

/* ---- additions of issue 12: readiness, per-partition freshness, the default process
 * series (the completeness gap is batch_gap above) ---- */

/* One truth with /readyz and /status's caught_up: seq_consumer_ready. */
static double ready(void *c)
{
    char why[8];
    return seq_consumer_ready(c, why, sizeof why);
}

/* Partition i's state: a snapshot taken at i == 0 serves the rest of the family. */
static const seq_consumer_part *part_at(server *s, size_t i, const char **label)
{
    if (i == 0) s->n_scrape_parts = seq_consumer_partitions(s->consumer, s->scrape_parts, 1024);
    if (i >= s->n_scrape_parts || i >= 1024) return NULL;
    snprintf(s->part_label, sizeof s->part_label, "%d", (int)s->scrape_parts[i].partition);
    *label = s->part_label;
    return &s->scrape_parts[i];
}

static int part_lag(void *s, size_t i, const char **label, double *v)
{
    const seq_consumer_part *p = part_at(s, i, label);
    if (p) *v = p->high_offset < 0 || p->next_offset > p->high_offset ? 0 : (double)(p->high_offset - p->next_offset);
    return p != NULL;
}

static int part_age(void *s, size_t i, const char **label, double *v)
{
    const seq_consumer_part *p = part_at(s, i, label);
    if (p) *v = (double)(seq_now_ms() - p->progress_ms) / 1000.0;
    return p != NULL;
}

static int part_watermark(void *s, size_t i, const char **label, double *v)
{
    const seq_consumer_part *p = part_at(s, i, label);
    if (p) *v = (double)p->watermark_ms / 1000.0;
    return p != NULL;
}

/* Caught up with a gap (PRODUCT.md "A node that acquires a partition"): when the node
 * holds the partition's stream from, 0 when it holds it whole. */
static int part_stream_from(void *s, size_t i, const char **label, double *v)
{
    const seq_consumer_part *p = part_at(s, i, label);
    if (p) *v = (double)p->gap_from_ms / 1000.0;
    return p != NULL;
}

static double partitions_with_gap(void *consumer)
{
    static _Thread_local seq_consumer_part parts[1024];
    uint32_t n = seq_consumer_partitions(consumer, parts, 1024), gaps = 0;
    for (uint32_t p = 0; p < n && p < 1024; p++) gaps += parts[p].gap_from_ms > 0;
    return gaps;
}

static int worker_conns(void *s_, size_t i, const char **label, double *v)
{
    const server *s = s_;
    int n;
    if (!s->grpc || !seq_grpc_worker_load(s->grpc, i, label, &n)) return 0;
    *v = n;
    return 1;
}

static void register_console_metrics(server *s)
{
    seq_consumer_stats *cs = seq_consumer_get_stats(s->consumer);
    seq_metrics *m = s->metrics;
    seq_metrics_add_fn(m, "seqd_ready", "1 when /readyz answers 200 (brokers reachable, store writes succeed, stream caught up).",
                       SEQ_METRIC_GAUGE, ready, s->consumer);
    seq_metrics_add_fn(m, "seqd_events_future_total", "Stream events more than max_future_ms ahead of the clock (kept aside; not in malformed).",
                       SEQ_METRIC_COUNTER, read_u64, &cs->future);
    seq_metrics_add_family(m, "seqd_partition_lag_messages", "Messages of the partition not yet consumed.",
                           SEQ_METRIC_GAUGE, "partition", part_lag, s);
    seq_metrics_add_family(m, "seqd_partition_watermark_age_seconds", "Seconds since the partition last advanced or was consumed to its end: grows on a stuck partition, not on a quiet one.",
                           SEQ_METRIC_GAUGE, "partition", part_age, s);
    seq_metrics_add_family(m, "seqd_partition_watermark_seconds", "Event-time watermark of the partition (newest applied event time).",
                           SEQ_METRIC_GAUGE, "partition", part_watermark, s);
    seq_metrics_add_family(m, "seqd_partition_stream_from_seconds", "Caught up with a gap: the time from which this node holds the partition's stream (the Kafka log no longer reached back to the newest batch's end, or to retention, when it began reading the partition); 0 when it holds it whole.",
                           SEQ_METRIC_GAUGE, "partition", part_stream_from, s);
    seq_metrics_add_fn(m, "seqd_partitions_with_gap", "Held partitions caught up with a gap (seqd_partition_stream_from_seconds > 0).",
                       SEQ_METRIC_GAUGE, partitions_with_gap, s->consumer);
    seq_metrics_add_family(m, "seqd_grpc_worker_connections", "gRPC connections per worker thread (spread evenly at accept: the kernel's SO_REUSEPORT hash alone leaves them uneven).",
                           SEQ_METRIC_GAUGE, "worker", worker_conns, s);
    seq_metrics_add_process(m, SEQD_VERSION);
}

static void register_metrics(server *s)
{
    seq_consumer_stats *cs = seq_consumer_get_stats(s->consumer);
    seq_metrics *m = s->metrics;
    seq_metrics_add_fn(m, "seqd_up", "1 while seqd serves.", SEQ_METRIC_GAUGE, one, NULL);
    seq_metrics_add_fn(m, "seqd_events_applied_total", "Stream events kept by at least one sequence and stored.",
                       SEQ_METRIC_COUNTER, read_u64, &cs->applied);
    seq_metrics_add_fn(m, "seqd_events_malformed_total", "Stream messages that did not decode or were too far in the future (kept aside).",
                       SEQ_METRIC_COUNTER, read_u64, &cs->malformed);
    seq_metrics_add_fn(m, "seqd_events_skipped_unknown_type_total", "Stream events of a type no sequence declares.",
                       SEQ_METRIC_COUNTER, read_u64, &cs->skipped_unknown_type);
    seq_metrics_add_fn(m, "seqd_events_filtered_total", "Stream events every declaring sequence filtered out.",
                       SEQ_METRIC_COUNTER, read_u64, &cs->filtered);
    seq_metrics_add_fn(m, "seqd_events_late_batch_owned_total", "Stream events stored in batch-owned history (never shown).",
                       SEQ_METRIC_COUNTER, read_u64, &cs->late_batch_owned);
    seq_misroute_stats *ms = seq_consumer_misroute_stats(s->consumer);
    seq_metrics_add_fn(m, "seqd_events_misrouted_total", "Stream events that arrived on another partition than their user's (a producer not partitioning with Kafka's murmur2); each re-produced to its user's partition.",
                       SEQ_METRIC_COUNTER, read_u64, &ms->misrouted);
    seq_metrics_add_fn(m, "seqd_misrouted_copies_total", "Copies of misrouted events delivered to their user's partition (header seqd-origin).",
                       SEQ_METRIC_COUNTER, read_u64, &ms->reproduced);
    seq_metrics_add_fn(m, "seqd_misrouted_duplicates_total", "Copies of a misrouted event at or below the highest origin offset applied here from its origin partition (applied before), skipped.",
                       SEQ_METRIC_COUNTER, read_u64, &ms->duplicates);
    seq_metrics_add_fn(m, "seqd_partitions_dropped_total", "Partitions this node no longer holds whose stream data it dropped, once their new holder in its group was caught up.",
                       SEQ_METRIC_COUNTER, read_u64, &cs->partitions_dropped);
    seq_route_stats *rs = seq_route_get_stats(s->route);
    seq_metrics_add_fn(m, "seqd_forwarded_total", "Reads (or parts of a BatchGetSequences) forwarded to a node holding the user's partition, each try counted.",
                       SEQ_METRIC_COUNTER, read_ull, &rs->forwarded);
    seq_metrics_add_fn(m, "seqd_forward_retries_total", "Forwarded reads tried again on the next replica (UNAVAILABLE, DATA_LOSS, FAILED_PRECONDITION or no answer).",
                       SEQ_METRIC_COUNTER, read_ull, &rs->forward_retries);
    seq_metrics_add_fn(m, "seqd_forward_refused_total", "Forwarded reads refused here: the partition is not held by this node (never forwarded twice).",
                       SEQ_METRIC_COUNTER, read_ull, &rs->refused);
    seq_metrics_add_fn(m, "seqd_consumer_lag_messages", "Messages in the topic not yet consumed.",
                       SEQ_METRIC_GAUGE, read_i64, &cs->lag);
    seq_metrics_add_fn(m, "seqd_consumer_caught_up", "1 when every partition is consumed to its end.",
                       SEQ_METRIC_GAUGE, read_int, &cs->caught_up);
    seq_metrics_add_fn(m, "seqd_kafka_brokers_down", "1 while no Kafka broker answers the consumer's metadata probe.",
                       SEQ_METRIC_GAUGE, read_int, &cs->brokers_down);
    seq_metrics_add_fn(m, "seqd_store_write_failing", "1 while the consumer's store commits fail (being retried).",
                       SEQ_METRIC_GAUGE, read_int, &cs->store_failing);
    seq_metrics_add_fn(m, "seqd_store_write_errors_total", "Failed store commits of the consumer (each retried, nothing applied).",
                       SEQ_METRIC_COUNTER, read_u64, &cs->store_errors);
    seq_metrics_add_fn(m, "seqd_stream_watermark_seconds", "Stream watermark: event time up to which the stream is applied.",
                       SEQ_METRIC_GAUGE, read_wm_seconds, &s->stream_watermark);
    seq_metrics_add_fn(m, "seqd_rocksdb_block_cache_usage_bytes", "RocksDB block cache usage.",
                       SEQ_METRIC_GAUGE, cache_usage, s->store);
    seq_metrics_add_fn(m, "seqd_rocksdb_block_cache_capacity_bytes", "RocksDB block cache capacity.",
                       SEQ_METRIC_GAUGE, cache_capacity, s->store);
    seq_metrics_add_fn(m, "seqd_storage_corrupt_total", "Damaged stored data found (undecodable buckets or merge operands; kept aside, listed in /status).",
                       SEQ_METRIC_COUNTER, storage_corrupt, s->store);
    seq_metrics_add_fn(m, "seqd_stream_id_filter_ids", "Event ids in the stream path's in-memory id filter.",
                       SEQ_METRIC_GAUGE, id_filter_ids, s->store);
    seq_metrics_add_fn(m, "seqd_stream_id_filter_bytes", "Bytes held by the stream path's in-memory id filter.",
                       SEQ_METRIC_GAUGE, id_filter_bytes, s->store);
    seq_metrics_add_fn(m, "seqd_stream_id_lookups_total", "Id index lookups on the write path (ids the filter could not rule out: copies, corrections, false positives).",
                       SEQ_METRIC_COUNTER, id_lookups, s->store);
    seq_metrics_add_fn(m, "seqd_record_cache_hits_total", "Reads served from the record cache.",
                       SEQ_METRIC_COUNTER, rcache_hits, s->store);
    seq_metrics_add_fn(m, "seqd_record_cache_misses_total", "Reads that gathered the user's data from RocksDB.",
                       SEQ_METRIC_COUNTER, rcache_misses, s->store);
    seq_metrics_add_fn(m, "seqd_record_cache_refreshes_total", "Misses that kept the still-current part of an outdated entry (a load changed the coverage, or a stream write came) and read only the rest from RocksDB.",
                       SEQ_METRIC_COUNTER, rcache_refreshes, s->store);
    seq_metrics_add_fn(m, "seqd_record_cache_writes_total", "Cached entries that a stream commit updated in place (write-through) instead of outdating them.",
                       SEQ_METRIC_COUNTER, rcache_writes, s->store);
    seq_metrics_add_fn(m, "seqd_record_cache_prepared_total", "Cached entries that a load extended with its generation before switching it in, so that their next read needs no RocksDB seek.",
                       SEQ_METRIC_COUNTER, rcache_prepared, s->store);
    seq_metrics_add_fn(m, "seqd_record_cache_refreshes_local_total", "Refreshes that found everything they needed in the outdated entry (a load's prepared generation, generations already gathered, a current stream part) and read nothing from RocksDB.",
                       SEQ_METRIC_COUNTER, rcache_local, s->store);
    seq_metrics_add_fn(m, "seqd_record_cache_bytes", "Bytes held by the record cache (half of --cache-mb at most).",
                       SEQ_METRIC_GAUGE, rcache_bytes, s->store);
    seq_metrics_add_family(m, "seqd_batch_generation", "Newest committed batch generation per sequence (0: none).",
                           SEQ_METRIC_GAUGE, "sequence", batch_generation, s);
    seq_metrics_add_family(m, "seqd_batch_watermark_seconds", "End of the newest committed batch coverage per sequence.",
                           SEQ_METRIC_GAUGE, "sequence", batch_watermark, s);
    seq_metrics_add_family(m, "seqd_batch_completeness_gap_seconds",
                           "Length of [now - retention, now - horizon) no committed batch range covers, per sequence.",
                           SEQ_METRIC_GAUGE, "sequence", batch_gap, s);
    register_console_metrics(s);
}

/* ---- start and stop ---- */

/* Seconds to the transport's ms, saturating rather than wrapping. */
static unsigned idle_ms(int seconds)
{
    return seconds > 4000000 ? 4000000000u : (unsigned)seconds * 1000u;
}

/* A SIGTERM/SIGINT arrived (blocked, so pending) while starting. */
static int stop_requested(void)
{
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}

/* Waits up to 10 s for the partitions so that the ready line comes with a complete
 * /status, but not past a stop request: a stop always ends within seconds, brokers or
 * not. */
static void wait_assigned(server *s)
{
    for (int waited = 0; waited < 10000; waited += 100)
        if (seq_consumer_wait_assigned(s->consumer, 100) || stop_requested()) return;
    fprintf(stderr, "seqd: kafka: topic %s not assigned yet; serving meanwhile\n", s->cfg.topic);
}

/* One stored sample of the stream watermark series (seq_store_newest_series). */
static void note_newest(void *h, int64_t ms, int64_t newest)
{
    seq_wmhist_note(h, ms, newest);
}

/* Does this node join its group's consumer group? With --group, --instance-id or
 * --advertise it is a cluster member (README, "A cluster of nodes"; without --instance-id
 * its id is generated once and kept in the data dir, and its membership is dynamic: SIGTERM
 * leaves the group at once). With none of them it is a single node and assigns every
 * partition itself, as a node did before clusters: a restart then never waits for a group
 * rebalance (Kafka holds a vanished member's partitions until its session times out), and
 * a group of one would hold everything anyway. The embedded cluster is in-process: no one
 * else can join it. */
static int cluster_member(const seq_config *c)
{
    return c->brokers && (c->instance_id || c->advertise || c->group_given);
}

/* The console's Cluster page (server/console.h cluster_json hook): the map as /cluster
 * has it, on a cluster member once the map runs; NULL (single node) otherwise. */
static char *console_cluster_json(void *ctx)
{
    server *s = ctx;
    seq_cluster *c = atomic_load(&s->console_cluster);
    return c ? seq_cluster_json(c) : NULL;
}

/* Returns 0, or the exit code with a message in err. */
/* LoadBatch's check of a partitioned batch's P (0 until the partitions are known). */
static uint32_t topic_partitions(void *consumer)
{
    return seq_consumer_partitions(consumer, NULL, 0);
}

static int start(server *s, char *err, size_t errlen)
{
    int rc;
    if ((rc = seq_def_load_file(s->cfg.definition, &s->def, err, errlen))) return EXIT_CONFIG;
    if (make_dirs(s->cfg.data_dir, err, errlen) || make_dirs(s->cfg.batch_root, err, errlen))
        return EXIT_CONFIG;
    if (s->cfg.admin_token_file && read_token(s->cfg.admin_token_file, &s->token, err, errlen))
        return EXIT_CONFIG;
    if (s->cfg.kafka_config && seq_kafkaconf_load(s->cfg.kafka_config, &s->kafka_conf, err, errlen))
        return EXIT_CONFIG;
    if (seq_node_id(s->cfg.data_dir, s->cfg.instance_id, s->node_id, sizeof s->node_id, err, errlen))
        return EXIT_CONFIG;
    seq_store_config stc = {s->cfg.cache_mb, s->cfg.history_ms};
    rc = seq_store_open_cfg(s->cfg.data_dir, s->def, &stc, &s->store, err, errlen);
    if (rc) return rc == SEQ_EPRECONDITION || rc == SEQ_EINVAL ? EXIT_CONFIG : 1;
    seq_store_set_keep_generations(s->store, (uint32_t)s->cfg.keep_generations);
    /* replaced batch loads past --history-ms: reclaimed now, then once a minute */
    if (seq_store_batch_sweep(s->store, seq_now_ms(), err, errlen) != SEQ_OK ||
        seq_store_start_sweeper(s->store, 60000) != SEQ_OK)
        return 1;

    if (!(s->wmhist = seq_wmhist_new(s->cfg.history_ms))) {
        seq_errf(err, errlen, "out of memory");
        return 1;
    }
    /* as-of reads of times before this start: the series as the store kept it */
    seq_store_newest_series(s->store, note_newest, s->wmhist);
    seq_consumer_config cc = {s->cfg.brokers, s->cfg.topic, s->cfg.group, s->cfg.event_format, 8,
                              s->def, s->store, s->cfg.data_dir,
                              (uint64_t)s->cfg.min_free_mb << 20, &s->stream_watermark,
                              s->kafka_conf, s->wmhist, cluster_member(&s->cfg), s->cfg.instance_id,
                              s->cfg.write_lanes};
    if (seq_consumer_start(&cc, &s->consumer, err, errlen)) return 1;

    seq_service_config sc = {s->def, s->store, &s->stream_watermark, s->cfg.batch_root, s->token,
                             s->wmhist, topic_partitions, s->consumer};
    if (seq_service_new(&sc, &s->service, err, errlen)) return 1;
    if (seq_route_new(s->service, &s->route, err, errlen)) return 1;
    size_t n_methods;
    const seq_grpc_method *methods = seq_route_methods(s->route, &n_methods);
    if (!(s->metrics = seq_metrics_new(seq_route_method_names(s->route), n_methods))) {
        seq_errf(err, errlen, "out of memory");
        return 1;
    }
    register_metrics(s);

    seq_grpc_config gc = {.listen = s->cfg.grpc_listen, .threads = s->cfg.threads,
                          .max_message_bytes = s->cfg.max_message_bytes, .methods = methods,
                          .n_methods = n_methods, .on_done = seq_metrics_grpc_done,
                          .done_ctx = s->metrics,
                          .idle_timeout_ms = idle_ms(s->cfg.idle_timeout_s),
                          .max_connections = (unsigned)s->cfg.max_connections,
                          .max_concurrent_streams = (unsigned)s->cfg.max_concurrent_streams,
                          .max_header_bytes = (unsigned)s->cfg.max_header_bytes,
                          .served_by = s->node_id};
    if (seq_grpc_start(&gc, &s->grpc, err, errlen)) return 1;

    seq_console_ctx cc2 = {.def = s->def, .store = s->store, .consumer = s->consumer,
                           .metrics = s->metrics, .service = s->service,
                           .stream_watermark = &s->stream_watermark,
                           .cluster_json = console_cluster_json, .cluster_ctx = s};
    if (!(s->console = seq_console_new(&cc2))) {
        seq_errf(err, errlen, "out of memory");
        return 1;
    }
    seq_admin_ctx ac = {&s->cfg, seq_grpc_address(s->grpc), s->def, s->store, s->consumer,
                        s->metrics, &s->stream_watermark, s->console};
    if (seq_admin_start(&ac, &s->admin, err, errlen)) return 1;

    const char *advertised = s->cfg.advertise ? s->cfg.advertise : seq_grpc_address(s->grpc);
    seq_cluster_config kc = {s->node_id, s->cfg.group, s->cfg.topic, advertised,
                             seq_admin_address(s->admin), s->def, s->store, s->consumer,
                             s->kafka_conf};
    if ((rc = seq_cluster_start(&kc, &s->cluster, err, errlen)))
        return rc == SEQ_EPRECONDITION ? EXIT_CONFIG : 1;
    const char *fenced = cluster_member(&s->cfg) ? seq_cluster_wait_window(s->cluster) : NULL;
    if (fenced) {
        seq_errf(err, errlen, "%s", fenced);
        return EXIT_CONFIG;
    }
    if (cluster_member(&s->cfg)) { /* a LoadBatch to any node loads the whole cluster */
        seq_loads_config lc = {s->node_id, s->cfg.topic, s->cfg.batch_root, s->def, s->store,
                               s->consumer, s->kafka_conf};
        if (seq_loads_start(&lc, &s->loads, err, errlen)) return 1;
        seq_loads_set_cluster(s->loads, s->cluster);
        seq_cluster_set_loads(s->cluster, s->loads);
        seq_service_set_loads(s->service, s->loads);
        seq_admin_set_loads(s->admin, s->loads);
    }
    seq_consumer_join(s->consumer);
    wait_assigned(s);
    seq_admin_set_cluster(s->admin, s->cluster);
    /* Only a member routes: a single node holds every partition and reads everything
     * here. Its map record (held partitions) is refreshed once a second, so one taken
     * before the assignment would send its reads to "no node holds it" meanwhile. */
    if (cluster_member(&s->cfg)) {
        atomic_store(&s->console_cluster, s->cluster);
        seq_route_set_cluster(s->route, s->cluster);
    }
    return 0;
}

/* Reverse order: no new calls and in-flight ones done before the consumer's last commit
 * and the store's close. */
static void stop(server *s)
{
    if (s->service) seq_service_drain(s->service);
    if (s->grpc) seq_grpc_stop(s->grpc);
    if (s->admin) seq_admin_stop(s->admin);
    seq_cluster_stop(s->cluster); /* publishes the leave while the brokers are still known */
    seq_loads_stop(s->loads); /* after the drain and the map: nothing uses it any more */
    seq_console_free(s->console);
    seq_consumer_stop(s->consumer);
    if (s->grpc) seq_grpc_free(s->grpc);
    seq_route_free(s->route);
    seq_service_free(s->service);
    seq_metrics_free(s->metrics);
    if (s->store) seq_store_close(s->store);
    seq_wmhist_free(s->wmhist);
    seq_def_free(s->def);
    free(s->token);
    seq_kafkaconf_free(s->kafka_conf);
    seq_config_free(&s->cfg);
}

/* Resident bytes of this process, 0 if unknown. */
static uint64_t rss_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

#define TRIM_SLACK (256ull << 20) /* what seqd uses besides --cache-mb (buffers, queues) */

/* Waits for SIGTERM/SIGINT. Meanwhile, once a second, if the RSS is over what the caches
 * were given plus TRIM_SLACK, hands the pages glibc keeps free inside its arenas back to
 * the kernel: buffers of mixed lifetimes (memtable blocks, responses, fetched batches)
 * fragment the arenas under load, and the RSS grew to 4x the live heap (bench/NOTES.md,
 * "Memory"). Only then: a trim walks every free chunk under each arena's lock, ~9 ms on a
 * fragmented 3 GB heap, a stall the readers would see in their p99. */
static int wait_for_signal(size_t cache_mb, seq_cluster *cluster)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    const struct timespec tick = {1, 0};
    uint64_t budget = (uint64_t)cache_mb * (1ull << 20) + TRIM_SLACK;
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig > 0) return sig;
        if (cluster && seq_cluster_fenced(cluster)) return 0;
        if (rss_bytes() > budget) malloc_trim(0);
    }
}

int main(int argc, char **argv)
{
    static server s; /* static: large and zeroed */
    char err[1024];
    if (seq_config_parse(&s.cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_CONFIG;
    }
    if (s.cfg.help) {
        seq_config_usage(stdout);
        seq_config_free(&s.cfg);
        return 0;
    }
    if (s.cfg.check_definition) {
        int code = seq_defcheck_run(s.cfg.check_definition,
                                    s.cfg.data_dir_given ? s.cfg.data_dir : NULL, stdout);
        seq_config_free(&s.cfg);
        return code;
    }
    /* Block the stop signals before any thread exists, so every thread inherits the mask
     * and only sigwait below receives them. SIGPIPE: a vanished peer is an error return. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();

    int code = start(&s, err, sizeof err);
    if (code) {
        fprintf(stderr, "seqd: %s\n", err);
        stop(&s);
        return code;
    }
    printf("seqd ready grpc=%s admin=%s brokers=%s\n", seq_grpc_address(s.grpc),
           seq_admin_address(s.admin), seq_consumer_brokers(s.consumer));
    fflush(stdout);
    int sig = wait_for_signal(s.cfg.cache_mb, s.cluster);
    if (sig == 0) { /* fenced: another live node has this node's id */
        fprintf(stderr, "seqd: %s\n", seq_cluster_fenced(s.cluster));
        stop(&s);
        return EXIT_CONFIG;
    }
    fprintf(stderr, "seqd: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop(&s);
    return 0;
}
