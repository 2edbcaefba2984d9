/* Prometheus metrics: a small registry rendered as text exposition format at scrape
 * time (admin /metrics). Two kinds of entries:
 *   - values read by callback at scrape time (counters or gauges), so that the modules
 *     that own the numbers (consumer, store) need not know about metrics;
 *   - the gRPC request counter and duration histogram, fed by the transport's on_done
 *     on the hot path: relaxed atomic adds into per-thread shards, no locks.
 * Registration happens before serving starts (not thread-safe); observation and rendering
 * are thread-safe. */
#ifndef SEQ_METRICS_H
#define SEQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"

typedef struct seq_metrics seq_metrics;

typedef enum { SEQ_METRIC_COUNTER, SEQ_METRIC_GAUGE } seq_metric_type;
typedef double (*seq_metric_fn)(void *ctx);

/* method_names: label values of the gRPC methods, in the transport's table order (an
 * unknown path is rendered as method="unknown"). The array must outlive the registry. */
seq_metrics *seq_metrics_new(const char *const *method_names, size_t n_methods);
void seq_metrics_free(seq_metrics *m);

/* name must carry its unit / _total suffix; name and help must outlive the registry.
 * SEQ_OK, or SEQ_ERESOURCE when the registry is full. */
int seq_metrics_add_fn(seq_metrics *m, const char *name, const char *help, seq_metric_type type,
                       seq_metric_fn fn, void *ctx);

/* A labeled family: fn(ctx, i, &label_value, &value) gives sample i and returns 1, or 0
 * past the last one. Label values are plain names (sequence names), not escaped. */
typedef int (*seq_metric_family_fn)(void *ctx, size_t i, const char **label_value,
                                    double *value);
int seq_metrics_add_family(seq_metrics *m, const char *name, const char *help,
                           seq_metric_type type, const char *label, seq_metric_family_fn fn,
                           void *ctx);

/* The series every Prometheus client library exports by default (process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
 * process_max_fds, process_start_time_seconds, read from /proc/self at scrape time) and
 * seqd_build_info{version} = 1. version must outlive the registry. SEQ_OK or SEQ_ERESOURCE. */
int seq_metrics_add_process(seq_metrics *m, const char *version);

/* For the console: the gRPC statistics summed over the methods named in methods
 * (NULL-terminated label names; NULL = every method): calls per status code (index =
 * code) and per duration bucket (not cumulative; the last is +Inf). Bucket i's upper
 * bound in seconds: seq_metrics_bucket_bound(i) (+Inf for the last). */
#define SEQ_METRICS_N_CODES 17
#define SEQ_METRICS_N_BUCKETS 14
void seq_metrics_sum(seq_metrics *m, const char *const *methods,
                     uint64_t codes[SEQ_METRICS_N_CODES], uint64_t buckets[SEQ_METRICS_N_BUCKETS]);
double seq_metrics_bucket_bound(size_t i);

/* One finished gRPC call: method index (-1 unknown), gRPC status, duration. Matches
 * seq_grpc_done_fn, so it can be passed as on_done with the registry as ctx. */
void seq_metrics_grpc_done(void *m, int method_index, int status, uint64_t elapsed_ns);

/* Appends the whole exposition (text format 0.0.4) to out. SEQ_OK or SEQ_EINTERNAL (OOM). */
int seq_metrics_render(seq_metrics *m, seq_buf *out);

/* Name of a gRPC status code ("OK", "INVALID_ARGUMENT", ...); "UNKNOWN" when out of range. */
const char *seq_metrics_code_name(int status);

#endif
