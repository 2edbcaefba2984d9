/* The web console (see console.h): routing under /ui, the sample ring, the JSON endpoints.
 * Data path: admin thread -> seq_console_handle -> (consumer snapshot | store view |
 * metrics sums | seq_service_get) -> jansson -> the reply. */
#include "console.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqd/v1/seqd.pb-c.h"
#include "../engine/merge.h"
#include "console_query.h"

#define RING (3600000 / SEQ_CONSOLE_SAMPLE_MS) /* one hour */
#define CHART_PARTS 64 /* partitions charted one by one; more are in the totals only */
#define MAX_PARTS 1024

typedef struct {
    int64_t t_ms;
    double ingest_per_s, reads_per_s, errors_per_s; /* over the interval before t */
    double p50_ms, p99_ms;                           /* reads in that interval; NaN: none */
    int64_t lag_total;
    uint32_t n_parts; /* charted: min(partitions, CHART_PARTS) */
    int64_t lag[CHART_PARTS];
    float age_s[CHART_PARTS];
} sample;

struct seq_console {
    seq_console_ctx ctx;
    sample *ring;
    size_t n; /* samples ever taken */
    /* the previous sample's cumulative counts, for rates and latency over the interval */
    int64_t prev_t_ms;
    uint64_t prev_ingest, prev_reads, prev_errors;
    uint64_t prev_buckets[SEQ_METRICS_N_BUCKETS];
    seq_consumer_part parts[MAX_PARTS]; /* scratch for snapshots */
    seq_service_load_note notes[SEQ_SERVICE_LOADS]; /* scratch for the load history */
};

/* The read methods: the latency and reads/s the console shows are theirs. */
static const char *const READ_METHODS[] = {"GetSequence", "BatchGetSequences", NULL};

seq_console *seq_console_new(const seq_console_ctx *ctx)
{
    seq_console *c = calloc(1, sizeof *c);
    if (!c || !(c->ring = calloc(RING, sizeof *c->ring))) {
        free(c);
        return NULL;
    }
    c->ctx = *ctx;
    return c;
}

void seq_console_free(seq_console *c)
{
    if (!c) return;
    free(c->ring);
    free(c);
}

/* ---- the sample ring ---- */

static uint64_t non_ok(const uint64_t codes[SEQ_METRICS_N_CODES])
{
    uint64_t n = 0;
    for (int k = 1; k < SEQ_METRICS_N_CODES; k++) n += codes[k];
    return n;
}

static uint64_t total(const uint64_t *v, size_t n)
{
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++) t += v[i];
    return t;
}

/* Quantile q of the calls counted in per-bucket counts b (histogram_quantile's linear
 * interpolation inside the bucket), in ms; NaN when there are none. The +Inf bucket
 * answers its lower bound. */
static double quantile_ms(const uint64_t b[SEQ_METRICS_N_BUCKETS], double q)
{
    uint64_t n = total(b, SEQ_METRICS_N_BUCKETS);
    if (n == 0) return NAN;
    double rank = q * (double)n, cum = 0, lo = 0;
    for (size_t i = 0; i < SEQ_METRICS_N_BUCKETS; i++) {
        double hi = seq_metrics_bucket_bound(i);
        if (cum + (double)b[i] >= rank && b[i] > 0) {
            if (isinf(hi)) return lo * 1000.0;
            return (lo + (hi - lo) * (rank - cum) / (double)b[i]) * 1000.0;
        }
        cum += (double)b[i];
        lo = hi;
    }
    return lo * 1000.0;
}

static uint64_t ingested(seq_console *c)
{
    seq_consumer_stats *st = seq_consumer_get_stats(c->ctx.consumer);
    return atomic_load_explicit(&st->applied, memory_order_relaxed) +
           atomic_load_explicit(&st->filtered, memory_order_relaxed) +
           atomic_load_explicit(&st->skipped_unknown_type, memory_order_relaxed) +
           atomic_load_explicit(&st->malformed, memory_order_relaxed) +
           atomic_load_explicit(&st->future, memory_order_relaxed);
}

void seq_console_sample(seq_console *c)
{
    int64_t now = seq_now_ms();
    uint64_t codes[SEQ_METRICS_N_CODES], buckets[SEQ_METRICS_N_BUCKETS], all[SEQ_METRICS_N_CODES];
    uint64_t dummy[SEQ_METRICS_N_BUCKETS];
    seq_metrics_sum(c->ctx.metrics, READ_METHODS, codes, buckets);
    seq_metrics_sum(c->ctx.metrics, NULL, all, dummy);
    uint64_t ingest = ingested(c), reads = total(codes, SEQ_METRICS_N_CODES), errors = non_ok(all);
    sample *s = &c->ring[c->n % RING];
    memset(s, 0, sizeof *s);
    s->t_ms = now;
    double dt = (double)(now - c->prev_t_ms) / 1000.0;
    int first = c->n == 0 || dt <= 0;
    s->ingest_per_s = first ? 0 : (double)(ingest - c->prev_ingest) / dt;
    s->reads_per_s = first ? 0 : (double)(reads - c->prev_reads) / dt;
    s->errors_per_s = first ? 0 : (double)(errors - c->prev_errors) / dt;
    uint64_t delta[SEQ_METRICS_N_BUCKETS];
    for (size_t i = 0; i < SEQ_METRICS_N_BUCKETS; i++)
        delta[i] = first ? buckets[i] : buckets[i] - c->prev_buckets[i];
    s->p50_ms = quantile_ms(delta, 0.5);
    s->p99_ms = quantile_ms(delta, 0.99);
    uint32_t np = seq_consumer_partitions(c->ctx.consumer, c->parts, MAX_PARTS);
    for (uint32_t p = 0; p < np && p < MAX_PARTS; p++) {
        const seq_consumer_part *cp = &c->parts[p];
        int64_t lag = cp->high_offset > cp->next_offset ? cp->high_offset - cp->next_offset : 0;
        s->lag_total += lag;
        if (p < CHART_PARTS) {
            s->lag[p] = lag;
            s->age_s[p] = (float)(now - cp->progress_ms) / 1000.0f;
            s->n_parts = p + 1;
        }
    }
    c->n++;
    c->prev_t_ms = now;
    c->prev_ingest = ingest, c->prev_reads = reads, c->prev_errors = errors;
    memcpy(c->prev_buckets, buckets, sizeof buckets);
}

/* ---- JSON helpers ---- */

/* A number, or null for NaN (JSON has no NaN), rounded to 3 decimals. */
static json_t *num(double v)
{
    return isnan(v) || isinf(v) ? json_null() : json_real(round(v * 1000.0) / 1000.0);
}

static int reply_json(seq_console_reply *r, int status, json_t *root)
{
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    r->status = status;
    r->ctype = "application/json";
    r->cache = "no-store";
    int rc = text ? seq_buf_append(&r->body, text, strlen(text)) : -1;
    free(text);
    return rc ? SEQ_EINTERNAL : SEQ_OK;
}

static int reply_error(seq_console_reply *r, int status, const char *msg)
{
    return reply_json(r, status, json_pack("{s:s}", "error", msg));
}

/* ---- /ui/api/overview ---- */

static json_t *overview_series(seq_console *c)
{
    size_t have = c->n < RING ? c->n : RING, first = c->n - have;
    json_t *t = json_array(), *ingest = json_array(), *reads = json_array(), *errs = json_array(),
           *p50 = json_array(), *p99 = json_array(), *lag = json_object(), *age = json_object();
    uint32_t np = have ? c->ring[(c->n - 1) % RING].n_parts : 0;
    json_t *lags[CHART_PARTS], *ages[CHART_PARTS];
    for (uint32_t p = 0; p < np; p++) {
        char key[16];
        snprintf(key, sizeof key, "%u", p);
        json_object_set_new(lag, key, lags[p] = json_array());
        json_object_set_new(age, key, ages[p] = json_array());
    }
    for (size_t i = first; i < c->n; i++) {
        const sample *s = &c->ring[i % RING];
        json_array_append_new(t, json_integer(s->t_ms));
        json_array_append_new(ingest, num(s->ingest_per_s));
        json_array_append_new(reads, num(s->reads_per_s));
        json_array_append_new(errs, num(s->errors_per_s));
        json_array_append_new(p50, num(s->p50_ms));
        json_array_append_new(p99, num(s->p99_ms));
        for (uint32_t p = 0; p < np; p++) {
            json_array_append_new(lags[p], p < s->n_parts ? json_integer(s->lag[p]) : json_null());
            json_array_append_new(ages[p], p < s->n_parts ? num(s->age_s[p]) : json_null());
        }
    }
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "t_ms", t, "ingest_per_s", ingest,
                     "reads_per_s", reads, "errors_per_s", errs, "p50_ms", p50, "p99_ms", p99,
                     "lag", lag, "age_s", age);
}

static json_t *overview_partitions(seq_console *c, int64_t now)
{
    json_t *arr = json_array();
    uint32_t np = seq_consumer_partitions(c->ctx.consumer, c->parts, MAX_PARTS);
    for (uint32_t p = 0; p < np && p < MAX_PARTS; p++) {
        const seq_consumer_part *cp = &c->parts[p];
        int64_t lag = cp->high_offset > cp->next_offset ? cp->high_offset - cp->next_offset : 0;
        json_array_append_new(arr, json_pack("{s:i,s:I,s:I,s:I,s:I,s:o}", "partition", (int)cp->partition,
                                             "next_offset", (json_int_t)cp->next_offset,
                                             "high_offset", (json_int_t)cp->high_offset,
                                             "lag", (json_int_t)lag,
                                             "watermark_ms", (json_int_t)cp->watermark_ms,
                                             "age_s", num((double)(now - cp->progress_ms) / 1000.0)));
    }
    return arr;
}

static json_t *overview_errors(seq_console *c)
{
    uint64_t codes[SEQ_METRICS_N_CODES], buckets[SEQ_METRICS_N_BUCKETS];
    seq_metrics_sum(c->ctx.metrics, NULL, codes, buckets);
    json_t *o = json_object();
    for (int k = 1; k < SEQ_METRICS_N_CODES; k++)
        if (codes[k]) json_object_set_new(o, seq_metrics_code_name(k), json_integer((json_int_t)codes[k]));
    return o;
}

static int api_overview(seq_console *c, seq_console_reply *r)
{
    int64_t now = seq_now_ms();
    char why[400] = "";
    int ready = seq_consumer_ready(c->ctx.consumer, why, sizeof why);
    seq_consumer_stats *st = seq_consumer_get_stats(c->ctx.consumer);
#define LD(f) (json_int_t) atomic_load_explicit(&st->f, memory_order_relaxed)
    json_t *counts = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "applied", LD(applied),
                               "malformed", LD(malformed), "future", LD(future),
                               "filtered", LD(filtered), "skipped_unknown_type", LD(skipped_unknown_type),
                               "late_batch_owned", LD(late_batch_owned),
                               "damaged", (json_int_t)seq_store_corrupt_count(c->ctx.store));
    json_t *root = json_pack("{s:I,s:b,s:s,s:I,s:I,s:i,s:o,s:o,s:o,s:o}", "now_ms", (json_int_t)now,
                             "ready", ready, "not_ready", ready ? "" : why,
                             "stream_watermark_ms",
                             (json_int_t)atomic_load_explicit(c->ctx.stream_watermark, memory_order_relaxed),
                             "lag", LD(lag), "interval_ms", SEQ_CONSOLE_SAMPLE_MS,
                             "partitions", overview_partitions(c, now), "counts", counts,
                             "errors", overview_errors(c), "series", overview_series(c));
#undef LD
    return reply_json(r, 200, root);
}

/* ---- /ui/api/batches ---- */

static json_t *batches_loads(seq_console *c)
{
    seq_service_load_note *notes = c->notes;
    size_t n = seq_service_loads(c->ctx.service, notes, SEQ_SERVICE_LOADS);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const seq_service_load_note *l = &notes[i];
        json_array_append_new(arr, json_pack("{s:I,s:i,s:s,s:I,s:I,s:I,s:b,s:s,s:i,s:I,s:I,s:s}",
            "done_ms", (json_int_t)l->done_ms, "duration_ms", (int)l->duration_ms,
            "sequence", l->sequence, "start_ms", (json_int_t)l->start_ms,
            "end_ms", (json_int_t)l->end_ms, "generation", (json_int_t)l->generation,
            "ok", l->status == SEQ_OK, "code", l->status == SEQ_OK ? "OK" : seq_metrics_code_name(l->status),
            "files", (int)l->files, "users", (json_int_t)l->users, "events", (json_int_t)l->events,
            "message", l->message));
    }
    return arr;
}

static int api_batches(seq_console *c, seq_console_reply *r)
{
    const seq_def *def = c->ctx.def;
    int64_t now = seq_now_ms(), cut = now - def->horizon_ms;
    json_t *seqs = json_array();
    const seq_store_view *v = seq_store_view_acquire(c->ctx.store);
    for (uint32_t i = 0; i < def->n_seqs; i++) {
        const seq_sequence *q = &def->seqs[i];
        const seq_store_seqstate *s = seq_store_view_seq(v, q->id);
        json_t *cov = json_array(), *types = json_array();
        for (uint32_t k = 0; s && k < s->n_cov; k++)
            json_array_append_new(cov, json_pack("{s:I,s:I,s:I}", "start_ms", (json_int_t)s->cov[k].start_ms,
                                                 "end_ms", (json_int_t)s->cov[k].end_ms,
                                                 "generation", (json_int_t)s->cov[k].gen));
        for (uint32_t k = 0; k < q->n_types; k++) json_array_append_new(types, json_string(q->event_types[k]));
        int64_t gap = seq_merge_gap_ms(s ? s->cov : NULL, s ? s->n_cov : 0, now - q->retention_ms, cut);
        json_array_append_new(seqs, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o,s:o}", "name", q->name,
            "retention_ms", (json_int_t)q->retention_ms, "floor_ms", (json_int_t)(now - q->retention_ms),
            "generation", (json_int_t)(s ? s->generation : 0),
            "watermark_ms", (json_int_t)(s ? s->watermark_ms : 0), "gap_ms", (json_int_t)gap,
            "coverage", cov, "event_types", types));
    }
    seq_store_view_release(c->ctx.store, v);
    return reply_json(r, 200, json_pack("{s:I,s:I,s:I,s:o,s:o}", "now_ms", (json_int_t)now,
                                        "horizon_ms", (json_int_t)def->horizon_ms, "cut_ms", (json_int_t)cut,
                                        "sequences", seqs, "loads", batches_loads(c)));
}

/* ---- /ui/api/sequence ---- */

static json_t *sequence_events(const seq_sequence *q, const Seqd__V1__GetSequenceResponse *resp)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < resp->n_timestamps_ms; i++) {
        uint32_t ti = i < resp->n_event_types ? resp->event_types[i] : 0;
        json_t *cols = json_array();
        for (size_t k = 0; k < resp->n_columns; k++)
            json_array_append_new(cols, i < resp->columns[k]->n_values ? num(resp->columns[k]->values[i]) : json_null());
        json_t *e = json_pack("{s:I,s:s,s:I,s:o}", "time_ms", (json_int_t)resp->timestamps_ms[i],
                              "type", ti < q->n_types ? q->event_types[ti] : "?",
                              "item", (json_int_t)(i < resp->n_item_ids ? resp->item_ids[i] : 0),
                              "columns", cols);
        /* provenance, once the read path fills it (issue 13): source and generation */
        if (i < resp->n_sources)
            json_object_set_new(e, "source", json_string(resp->sources[i] ? "batch" : "stream"));
        if (i < resp->n_generations)
            json_object_set_new(e, "generation", json_integer((json_int_t)resp->generations[i]));
        json_array_append_new(arr, e);
    }
    return arr;
}

static int api_sequence(seq_console *c, const char *query, seq_console_reply *r)
{
    seq_cq q;
    char msg[512];
    if (seq_cq_parse(query ? query : "", query ? strlen(query) : 0, &q, msg, sizeof msg))
        return reply_error(r, 400, msg);
    if (!q.has_user || !q.has_sequence)
        return reply_error(r, 400, !q.has_user ? "user: missing (e.g. ?user=42&sequence=NAME)"
                                               : "sequence: missing (e.g. ?user=42&sequence=NAME)");
    const seq_sequence *seq = seq_def_find(c->ctx.def, q.sequence, strlen(q.sequence));
    if (!seq) {
        snprintf(msg, sizeof msg, "sequence: '%s' is not a sequence of the definition", q.sequence);
        return reply_error(r, 400, msg);
    }
    Seqd__V1__GetSequenceRequest req = SEQD__V1__GET_SEQUENCE_REQUEST__INIT;
    req.user_id = q.user;
    req.sequence = q.sequence;
    req.max_events = q.limit;
    req.include_provenance = 1;
    req.view = (Seqd__V1__View)q.view;
    req.as_of_ms = q.as_of_ms;
    uint8_t reqbuf[512];
    size_t len = seqd__v1__get_sequence_request__pack(&req, reqbuf);
    seq_buf out = {0};
    int rc = seq_service_get(c->ctx.service, reqbuf, len, &out, msg, sizeof msg);
    if (rc) {
        seq_buf_free(&out);
        return reply_error(r, rc == SEQ_EINVAL || rc == SEQ_ENOTFOUND || rc == SEQ_EPRECONDITION ? 400 : 500, msg);
    }
    Seqd__V1__GetSequenceResponse *resp = seqd__v1__get_sequence_response__unpack(NULL, out.len, out.data);
    seq_buf_free(&out);
    if (!resp) return reply_error(r, 500, "the read's response does not decode");
    json_t *cols = json_array();
    for (uint32_t k = 0; k < seq->n_columns; k++) json_array_append_new(cols, json_string(seq->columns[k].name));
    json_t *root = json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:b}",
        "user", (json_int_t)resp->user_id, "sequence", seq->name,
        "view", q.view == SEQ_CQ_MERGED ? "merged" : q.view == SEQ_CQ_STREAM_ONLY ? "stream_only" : "batch_only",
        "count", (json_int_t)resp->n_timestamps_ms,
        "stream_watermark_ms", (json_int_t)resp->stream_watermark_ms,
        "batch_watermark_ms", (json_int_t)resp->batch_watermark_ms,
        "batch_generation", (json_int_t)resp->batch_generation,
        "completeness_gap_ms", (json_int_t)resp->completeness_gap_ms,
        "as_of_ms", (json_int_t)resp->as_of_ms,
        "columns", cols, "events", sequence_events(seq, resp),
        "provenance", resp->n_sources > 0);
    seqd__v1__get_sequence_response__free_unpacked(resp, NULL);
    return reply_json(r, 200, root);
}

/* ---- /ui/api/cluster ---- */

static int api_cluster(seq_console *c, seq_console_reply *r)
{
    char *text = c->ctx.cluster_json ? c->ctx.cluster_json(c->ctx.cluster_ctx) : NULL;
    json_t *map = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return reply_json(r, 200, map ? json_pack("{s:b,s:o}", "cluster", 1, "map", map)
                                  : json_pack("{s:b}", "cluster", 0));
}

/* ---- pages and assets ---- */

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    if (strcmp(dot, ".js") == 0) return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
    if (strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
    if (strcmp(dot, ".txt") == 0) return "text/plain; charset=utf-8";
    if (strcmp(dot, ".svg") == 0) return "image/svg+xml";
    return "application/octet-stream";
}

static int reply_asset(seq_console_reply *r, const char *name)
{
    for (size_t i = 0; i < seq_console_n_assets; i++) {
        const seq_console_asset *a = &seq_console_assets[i];
        if (strcmp(a->path, name) != 0) continue;
        r->status = 200;
        r->ctype = content_type(a->path);
        r->cache = "no-cache"; /* revalidated: a new seqd may carry new assets */
        return seq_buf_append(&r->body, a->data, a->len) ? SEQ_EINTERNAL : SEQ_OK;
    }
    r->status = 404;
    r->ctype = "text/plain; charset=utf-8";
    r->cache = "no-store";
    static const char nf[] = "not found; the console is at /ui\n";
    return seq_buf_append(&r->body, nf, sizeof nf - 1) ? SEQ_EINTERNAL : SEQ_OK;
}

/* The pages share one document; app.js renders the one its path names. */
static const char *const PAGES[] = {"/ui", "/ui/", "/ui/batches", "/ui/inspect", "/ui/cluster"};

int seq_console_handle(seq_console *c, const char *path, const char *query,
                       seq_console_reply *r)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < sizeof PAGES / sizeof PAGES[0]; i++)
        if (strcmp(path, PAGES[i]) == 0) return reply_asset(r, "index.html");
    if (strcmp(path, "/ui/api/overview") == 0) return api_overview(c, r);
    if (strcmp(path, "/ui/api/batches") == 0) return api_batches(c, r);
    if (strcmp(path, "/ui/api/sequence") == 0) return api_sequence(c, query, r);
    if (strcmp(path, "/ui/api/cluster") == 0) return api_cluster(c, r);
    if (strncmp(path, "/ui/assets/", 11) == 0 && strcmp(path + 4, "index.html") != 0)
        return reply_asset(r, path + 4);
    return reply_asset(r, ""); /* 404 */
}
