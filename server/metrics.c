/* Prometheus metrics registry (see metrics.h). The gRPC statistics are sharded per
 * thread: each thread that finishes calls picks a shard once, and its adds touch only
 * that shard's cache lines, so two workers never bounce a line on the hot path. Scrapes
 * sum the shards. */
#include "metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_FNS 64
#define N_SHARDS 8
#define N_CODES 17 /* gRPC status codes 0..16 */

/* Histogram upper bounds, in seconds and in ns (observation compares ns). */
static const double BOUNDS_S[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                  0.01,    0.025,  0.05,    0.1,    0.25,  1.0};
#define N_BOUNDS (sizeof BOUNDS_S / sizeof BOUNDS_S[0])
static const uint64_t BOUNDS_NS[N_BOUNDS] = {50000,    100000,   250000,   500000,   1000000,
                                             2500000,  5000000,  10000000, 25000000, 50000000,
                                             100000000, 250000000, 1000000000};

typedef struct {
    _Atomic uint64_t codes[N_CODES];
    _Atomic uint64_t buckets[N_BOUNDS + 1]; /* per bucket, not cumulative; last = +Inf */
    _Atomic uint64_t sum_ns;
} method_stats;

typedef struct {
    const char *name, *help;
    seq_metric_type type;
    seq_metric_fn fn;
    void *ctx;
    const char *label;          /* a labeled family when set: samples come from family */
    seq_metric_family_fn family;
} fn_entry;

struct seq_metrics {
    const char *const *methods;
    size_t n_methods;  /* slots = n_methods + 1: the last is "unknown" */
    size_t shard_size; /* bytes per shard, a multiple of the cache line */
    method_stats *shards;
    fn_entry fns[MAX_FNS];
    size_t n_fns;
};

static const char *const CODE_NAMES[N_CODES] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};

const char *seq_metrics_code_name(int status)
{
    return status >= 0 && status < N_CODES ? CODE_NAMES[status] : "UNKNOWN";
}

seq_metrics *seq_metrics_new(const char *const *method_names, size_t n_methods)
{
    seq_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->methods = method_names;
    m->n_methods = n_methods;
    m->shard_size = ((n_methods + 1) * sizeof(method_stats) + 63) & ~(size_t)63;
    m->shards = aligned_alloc(64, m->shard_size * N_SHARDS);
    if (!m->shards) {
        free(m);
        return NULL;
    }
    memset(m->shards, 0, m->shard_size * N_SHARDS);
    return m;
}

void seq_metrics_free(seq_metrics *m)
{
    if (!m) return;
    free(m->shards);
    free(m);
}

int seq_metrics_add_fn(seq_metrics *m, const char *name, const char *help, seq_metric_type type,
                       seq_metric_fn fn, void *ctx)
{
    if (m->n_fns == MAX_FNS) return SEQ_ERESOURCE;
    m->fns[m->n_fns++] = (fn_entry){name, help, type, fn, ctx, NULL, NULL};
    return SEQ_OK;
}

int seq_metrics_add_family(seq_metrics *m, const char *name, const char *help,
                           seq_metric_type type, const char *label, seq_metric_family_fn fn,
                           void *ctx)
{
    if (m->n_fns == MAX_FNS) return SEQ_ERESOURCE;
    m->fns[m->n_fns++] = (fn_entry){name, help, type, NULL, ctx, label, fn};
    return SEQ_OK;
}

/* ---- the default process series, from /proc/self (Linux only, as seqd is) ---- */

/* Fields of /proc/self/stat used here (proc(5) numbering): 14 utime, 15 stime, 22
 * starttime (clock ticks after boot), 23 vsize (bytes), 24 rss (pages). The command name
 * (field 2) may hold spaces and parentheses: parsing starts after its last ')'. */
typedef struct {
    unsigned long long utime, stime, starttime, vsize;
    long long rss;
} proc_stat;

static int read_proc_stat(proc_stat *ps)
{
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return SEQ_EINTERNAL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    /* after ")": 3 state, 4..13 skipped, 14 utime 15 stime, 16..21 skipped, 22..24 */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
                     &ps->utime, &ps->stime, &ps->starttime, &ps->vsize, &ps->rss) != 5)
        return SEQ_EINTERNAL;
    return SEQ_OK;
}

static double proc_cpu_seconds(void *ctx)
{
    (void)ctx;
    proc_stat ps;
    if (read_proc_stat(&ps)) return NAN;
    return (double)(ps.utime + ps.stime) / (double)sysconf(_SC_CLK_TCK);
}

static double proc_rss_bytes(void *ctx)
{
    (void)ctx;
    proc_stat ps;
    return read_proc_stat(&ps) ? NAN : (double)ps.rss * (double)sysconf(_SC_PAGESIZE);
}

static double proc_vsize_bytes(void *ctx)
{
    (void)ctx;
    proc_stat ps;
    return read_proc_stat(&ps) ? NAN : (double)ps.vsize;
}

/* Boot time (the btime line of /proc/stat) plus the process's start in ticks after it. */
static double proc_start_time(void *ctx)
{
    (void)ctx;
    proc_stat ps;
    char line[256];
    long long btime = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f || read_proc_stat(&ps)) {
        if (f) fclose(f);
        return NAN;
    }
    while (btime < 0 && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &btime) != 1) btime = -1;
    fclose(f);
    return btime < 0 ? NAN : (double)btime + (double)ps.starttime / (double)sysconf(_SC_CLK_TCK);
}

static double proc_open_fds(void *ctx)
{
    (void)ctx;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return NAN;
    double n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static double proc_max_fds(void *ctx)
{
    (void)ctx;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return NAN;
    return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

static int build_info(void *ctx, size_t i, const char **label, double *v)
{
    if (i > 0) return 0;
    *label = ctx;
    *v = 1;
    return 1;
}

int seq_metrics_add_process(seq_metrics *m, const char *version)
{
    int rc = seq_metrics_add_fn(m, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                                SEQ_METRIC_COUNTER, proc_cpu_seconds, NULL);
    if (!rc) rc = seq_metrics_add_fn(m, "process_resident_memory_bytes", "Resident memory size in bytes.",
                                     SEQ_METRIC_GAUGE, proc_rss_bytes, NULL);
    if (!rc) rc = seq_metrics_add_fn(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                     SEQ_METRIC_GAUGE, proc_vsize_bytes, NULL);
    if (!rc) rc = seq_metrics_add_fn(m, "process_open_fds", "Number of open file descriptors.",
                                     SEQ_METRIC_GAUGE, proc_open_fds, NULL);
    if (!rc) rc = seq_metrics_add_fn(m, "process_max_fds", "Maximum number of open file descriptors.",
                                     SEQ_METRIC_GAUGE, proc_max_fds, NULL);
    if (!rc) rc = seq_metrics_add_fn(m, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                                     SEQ_METRIC_GAUGE, proc_start_time, NULL);
    if (!rc) rc = seq_metrics_add_family(m, "seqd_build_info", "1, labeled with the version of this seqd.",
                                         SEQ_METRIC_GAUGE, "version", build_info, (void *)version);
    return rc;
}

static method_stats *stats_at(seq_metrics *m, unsigned shard, size_t method)
{
    return (method_stats *)((char *)m->shards + shard * m->shard_size) + method;
}

static unsigned my_shard(void)
{
    static _Atomic unsigned next;
    static _Thread_local unsigned shard_plus1;
    if (!shard_plus1) shard_plus1 = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % N_SHARDS + 1;
    return shard_plus1 - 1;
}

void seq_metrics_grpc_done(void *ctx, int method_index, int status, uint64_t elapsed_ns)
{
    seq_metrics *m = ctx;
    size_t mi = method_index >= 0 && (size_t)method_index < m->n_methods ? (size_t)method_index
                                                                           : m->n_methods;
    method_stats *s = stats_at(m, my_shard(), mi);
    size_t b = 0;
    while (b < N_BOUNDS && elapsed_ns > BOUNDS_NS[b]) b++;
    int code = status >= 0 && status < N_CODES ? status : 2;
    atomic_fetch_add_explicit(&s->codes[code], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns, elapsed_ns, memory_order_relaxed);
}

/* ---- rendering ---- */

static int appendf(seq_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(seq_buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return SEQ_EINTERNAL;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    return seq_buf_append(out, line, (size_t)n) ? SEQ_EINTERNAL : SEQ_OK;
}

/* Prometheus spells the special values NaN, +Inf, -Inf. */
static const char *fmt_value(double v, char *buf, size_t len)
{
    if (isnan(v)) return "NaN";
    if (isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    snprintf(buf, len, "%.17g", v);
    return buf;
}

static int header(seq_buf *out, const char *name, const char *help, const char *type)
{
    return appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *method_label(const seq_metrics *m, size_t mi)
{
    return mi < m->n_methods ? m->methods[mi] : "unknown";
}

/* Sums one method's statistics over the shards. */
static void sum_method(seq_metrics *m, size_t mi, uint64_t codes[N_CODES],
                       uint64_t buckets[N_BOUNDS + 1], uint64_t *sum_ns)
{
    memset(codes, 0, N_CODES * sizeof codes[0]);
    memset(buckets, 0, (N_BOUNDS + 1) * sizeof buckets[0]);
    *sum_ns = 0;
    for (unsigned sh = 0; sh < N_SHARDS; sh++) {
        method_stats *s = stats_at(m, sh, mi);
        for (int c = 0; c < N_CODES; c++)
            codes[c] += atomic_load_explicit(&s->codes[c], memory_order_relaxed);
        for (size_t b = 0; b <= N_BOUNDS; b++)
            buckets[b] += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
        *sum_ns += atomic_load_explicit(&s->sum_ns, memory_order_relaxed);
    }
}

_Static_assert(N_CODES == SEQ_METRICS_N_CODES && N_BOUNDS + 1 == SEQ_METRICS_N_BUCKETS,
               "metrics.h's sizes");

static int named(const char *const *methods, const char *name)
{
    if (!methods) return 1;
    for (; *methods; methods++)
        if (strcmp(*methods, name) == 0) return 1;
    return 0;
}

void seq_metrics_sum(seq_metrics *m, const char *const *methods,
                     uint64_t codes[SEQ_METRICS_N_CODES], uint64_t buckets[SEQ_METRICS_N_BUCKETS])
{
    uint64_t c[N_CODES], b[N_BOUNDS + 1], sum_ns;
    memset(codes, 0, N_CODES * sizeof codes[0]);
    memset(buckets, 0, (N_BOUNDS + 1) * sizeof buckets[0]);
    for (size_t mi = 0; mi <= m->n_methods; mi++) {
        if (!named(methods, method_label(m, mi))) continue;
        sum_method(m, mi, c, b, &sum_ns);
        for (int k = 0; k < N_CODES; k++) codes[k] += c[k];
        for (size_t k = 0; k <= N_BOUNDS; k++) buckets[k] += b[k];
    }
}

double seq_metrics_bucket_bound(size_t i) { return i < N_BOUNDS ? BOUNDS_S[i] : INFINITY; }

static int render_grpc(seq_metrics *m, seq_buf *out)
{
    size_t n = m->n_methods + 1;
    uint64_t codes[N_CODES], buckets[N_BOUNDS + 1], sum_ns;
    int rc = header(out, "seqd_grpc_requests_total", "gRPC calls finished, by method and status code.",
                    "counter");
    for (size_t mi = 0; mi < n && !rc; mi++) {
        sum_method(m, mi, codes, buckets, &sum_ns);
        for (int c = 0; c < N_CODES && !rc; c++) {
            /* Known methods always show code OK so the series exist from the start. */
            if (codes[c] == 0 && !(c == 0 && mi < m->n_methods)) continue;
            rc = appendf(out, "seqd_grpc_requests_total{method=\"%s\",code=\"%s\"} %llu\n",
                         method_label(m, mi), CODE_NAMES[c], (unsigned long long)codes[c]);
        }
    }
    if (!rc) rc = header(out, "seqd_grpc_request_duration_seconds",
                         "Time from a gRPC request's arrival to its end, by method.", "histogram");
    for (size_t mi = 0; mi < n && !rc; mi++) {
        sum_method(m, mi, codes, buckets, &sum_ns);
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_BOUNDS; b++) cum += buckets[b];
        if (cum == 0 && mi == m->n_methods) continue; /* no unknown-method calls */
        const char *ml = method_label(m, mi);
        cum = 0;
        for (size_t b = 0; b <= N_BOUNDS && !rc; b++) {
            cum += buckets[b];
            char le[32];
            if (b < N_BOUNDS) snprintf(le, sizeof le, "%g", BOUNDS_S[b]);
            else snprintf(le, sizeof le, "+Inf");
            rc = appendf(out, "seqd_grpc_request_duration_seconds_bucket{method=\"%s\",le=\"%s\"} %llu\n",
                         ml, le, (unsigned long long)cum);
        }
        if (!rc) rc = appendf(out, "seqd_grpc_request_duration_seconds_sum{method=\"%s\"} %.9f\n", ml,
                              (double)sum_ns / 1e9);
        if (!rc) rc = appendf(out, "seqd_grpc_request_duration_seconds_count{method=\"%s\"} %llu\n", ml,
                              (unsigned long long)cum);
    }
    return rc;
}

int seq_metrics_render(seq_metrics *m, seq_buf *out)
{
    int rc = SEQ_OK;
    for (size_t i = 0; i < m->n_fns && !rc; i++) {
        const fn_entry *e = &m->fns[i];
        char vb[64];
        rc = header(out, e->name, e->help, e->type == SEQ_METRIC_COUNTER ? "counter" : "gauge");
        if (!rc && !e->family)
            rc = appendf(out, "%s %s\n", e->name, fmt_value(e->fn(e->ctx), vb, sizeof vb));
        const char *lv;
        double v;
        for (size_t j = 0; !rc && e->family && e->family(e->ctx, j, &lv, &v); j++)
            rc = appendf(out, "%s{%s=\"%s\"} %s\n", e->name, e->label, lv,
                         fmt_value(v, vb, sizeof vb));
    }
    if (!rc) rc = render_grpc(m, out);
    return rc;
}
