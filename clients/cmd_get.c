/* seqctl get: one GetSequence call, printed as a table (or one JSON object). Type
 * names come from the definition in the server's /status; without it, indices. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2client.h"
#include "numfmt.h"
#include "seqctl.h"
#include "timearg.h"
#include "seqd/v1/seqd.pb-c.h"

typedef struct {
    Seqd__V1__GetSequenceRequest req;
    char *types_buf;   /* the --types argument, split in place; owned */
    char **types;      /* points into types_buf; owned */
    int json;
} get_args;

static int split_types(get_args *a, const char *list)
{
    a->types_buf = strdup(list);
    size_t n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    a->types = calloc(n, sizeof *a->types);
    if (!a->types_buf || !a->types) return -1;
    char *save = NULL;
    for (char *t = strtok_r(a->types_buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        a->types[a->req.n_event_types++] = t;
    a->req.event_types = a->types;
    return 0;
}

/* Options of get; returns 0 or the usage exit code. */
static int parse_get(int argc, char **argv, get_args *a)
{
    int npos = 0;
    char err[256];
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        uint64_t u;
        if (strcmp(argv[i], "--json") == 0) { a->json = 1; continue; }
        if (strcmp(argv[i], "--provenance") == 0) { a->req.include_provenance = 1; continue; }
        if ((r = seqc_opt(argc, argv, &i, "max", &v)) == 1) {
            if (seqc_parse_u64(v, &u) < 0 || u > UINT32_MAX)
                return seqc_usage_error("--max: not a count: '%s'", v);
            a->req.max_events = (uint32_t)u;
        } else if (r == 0 && (r = seqc_opt(argc, argv, &i, "since", &v)) == 1) {
            if (seqc_parse_time(v, seq_now_ms(), &a->req.since_ms, err, sizeof err) < 0)
                return seqc_usage_error("--since: %s", err);
        } else if (r == 0 && (r = seqc_opt(argc, argv, &i, "until", &v)) == 1) {
            if (seqc_parse_time(v, seq_now_ms(), &a->req.until_ms, err, sizeof err) < 0)
                return seqc_usage_error("--until: %s", err);
        } else if (r == 0 && (r = seqc_opt(argc, argv, &i, "as-of", &v)) == 1) {
            if (seqc_parse_time(v, seq_now_ms(), &a->req.as_of_ms, err, sizeof err) < 0)
                return seqc_usage_error("--as-of: %s", err);
            if (a->req.as_of_ms <= 0)
                return seqc_usage_error("--as-of: %s is not after the epoch", v);
        } else if (r == 0 && (r = seqc_opt(argc, argv, &i, "view", &v)) == 1) {
            if (strcmp(v, "merged") == 0) a->req.view = SEQD__V1__VIEW__MERGED;
            else if (strcmp(v, "stream") == 0) a->req.view = SEQD__V1__VIEW__STREAM_ONLY;
            else if (strcmp(v, "batch") == 0) a->req.view = SEQD__V1__VIEW__BATCH_ONLY;
            else return seqc_usage_error("--view: merged, stream or batch, got '%s'", v);
        } else if (r == 0 && (r = seqc_opt(argc, argv, &i, "types", &v)) == 1) {
            if (split_types(a, v) < 0) return seqc_usage_error("out of memory");
        } else if (r == 0 && strncmp(argv[i], "--", 2) == 0) {
            return seqc_usage_error("get: unknown option %s", argv[i]);
        } else if (r == 0) {
            if (npos == 0 && seqc_parse_u64(argv[i], &a->req.user_id) < 0)
                return seqc_usage_error("get: USER must be a decimal user id, got '%s'", argv[i]);
            if (npos == 1) a->req.sequence = argv[i];
            if (npos > 1) return seqc_usage_error("get: unexpected argument '%s'", argv[i]);
            npos++;
        }
        if (r < 0) return seqc_usage_error("%s needs a value", argv[i]);
    }
    if (npos != 2) return seqc_usage_error("get needs USER and SEQUENCE");
    return 0;
}

/* Type index to name via the definition; "#N" when unknown. */
static const char *type_name(json_t *seqdef, uint32_t idx, char *buf, size_t len)
{
    const char *n = json_string_value(json_array_get(json_object_get(seqdef, "event_types"), idx));
    if (n) return n;
    snprintf(buf, len, "#%" PRIu32, idx);
    return buf;
}

static size_t n_events(const Seqd__V1__GetSequenceResponse *r)
{
    return r->n_timestamps_ms;
}

/* Array entry i, or a neutral value when the server sent a short array. */
static uint64_t item_at(const Seqd__V1__GetSequenceResponse *r, size_t i)
{
    return i < r->n_item_ids ? r->item_ids[i] : 0;
}

static uint32_t type_at(const Seqd__V1__GetSequenceResponse *r, size_t i)
{
    return i < r->n_event_types ? r->event_types[i] : 0;
}

static double col_at(const Seqd__V1__Column *c, size_t i)
{
    return i < c->n_values ? c->values[i] : NAN;
}

/* Provenance of event i: "stream" or "batch gN" ("?" when the server sent none). */
static const char *source_at(const Seqd__V1__GetSequenceResponse *r, size_t i, char *buf,
                             size_t len)
{
    if (i >= r->n_sources) return "?";
    if (r->sources[i] == 0) return "stream";
    snprintf(buf, len, "batch g%" PRIu64, i < r->n_generations ? r->generations[i] : 0);
    return buf;
}

static void print_table(const Seqd__V1__GetSequenceResponse *r, json_t *seqdef, int prov,
                        const char *served_by)
{
    char tbuf[40], nbuf[16], sbuf[40], vbuf[40];
    printf("user %" PRIu64 "  sequence %s  events %zu\n", r->user_id, r->sequence, n_events(r));
    printf("%-24s  %-12s  %20s", "time", "type", "item_id");
    for (size_t c = 0; c < r->n_columns; c++) printf("  %12s", r->columns[c]->name);
    if (prov) printf("  %s", "source");
    putchar('\n');
    for (size_t i = 0; i < n_events(r); i++) {
        seqc_format_time(r->timestamps_ms[i], tbuf, sizeof tbuf);
        printf("%-24s  %-12s  %20" PRIu64, tbuf, type_name(seqdef, type_at(r, i), nbuf, sizeof nbuf),
               item_at(r, i));
        for (size_t c = 0; c < r->n_columns; c++)
            printf("  %12s", seqc_format_double(col_at(r->columns[c], i), vbuf, sizeof vbuf));
        if (prov) printf("  %s", source_at(r, i, sbuf, sizeof sbuf));
        putchar('\n');
    }
    seqc_format_time(r->stream_watermark_ms, tbuf, sizeof tbuf);
    printf("stream_watermark_ms %" PRId64 " (%s)\n", r->stream_watermark_ms,
           r->stream_watermark_ms ? tbuf : "none");
    seqc_format_time(r->batch_watermark_ms, tbuf, sizeof tbuf);
    printf("batch_watermark_ms  %" PRId64 " (%s)  batch_generation %" PRIu64 "\n",
           r->batch_watermark_ms, r->batch_watermark_ms ? tbuf : "none", r->batch_generation);
    seqc_format_time(r->as_of_ms, tbuf, sizeof tbuf);
    printf("completeness_gap_ms %" PRId64 " (%.1f h)  as_of_ms %" PRId64 " (%s)\n",
           r->completeness_gap_ms, (double)r->completeness_gap_ms / 3600000.0, r->as_of_ms, tbuf);
    /* the node that read storage (in a cluster, the holder a forwarded call went to) */
    if (served_by[0]) printf("served_by %s\n", served_by);
}

static json_t *event_json(const Seqd__V1__GetSequenceResponse *r, size_t i, json_t *seqdef,
                          int prov)
{
    char tbuf[40], nbuf[16];
    seqc_format_time(r->timestamps_ms[i], tbuf, sizeof tbuf);
    json_t *cols = json_object();
    for (size_t c = 0; c < r->n_columns; c++) {
        double v = col_at(r->columns[c], i);
        /* JSON has no NaN: a column without a value and without a default is null */
        json_object_set_new(cols, r->columns[c]->name, isfinite(v) ? json_real(v) : json_null());
    }
    json_t *e = json_pack("{s:I, s:s, s:s, s:i, s:o}", "time_ms", (json_int_t)r->timestamps_ms[i],
                          "time", tbuf, "type", type_name(seqdef, type_at(r, i), nbuf, sizeof nbuf),
                          "type_index", (int)type_at(r, i), "item_id", seqc_json_u64(item_at(r, i)));
    /* --json asks for the ids (include_event_ids); a server without them sends none */
    if (i < r->n_event_ids) json_object_set_new(e, "event_id", json_string(r->event_ids[i]));
    json_object_set_new(e, "columns", cols);
    if (prov && i < r->n_sources && i < r->n_generations) {
        json_object_set_new(e, "source", json_string(r->sources[i] ? "batch" : "stream"));
        json_object_set_new(e, "generation", seqc_json_u64(r->generations[i]));
    }
    return e;
}

static void print_json(const Seqd__V1__GetSequenceResponse *r, json_t *seqdef, int prov,
                       const char *served_by)
{
    json_t *events = json_array();
    for (size_t i = 0; i < n_events(r); i++)
        json_array_append_new(events, event_json(r, i, seqdef, prov));
    json_t *doc = json_pack("{s:o, s:s, s:o, s:I, s:I, s:o, s:I, s:I}", "user_id",
                            seqc_json_u64(r->user_id), "sequence", r->sequence, "events", events,
                            "stream_watermark_ms", (json_int_t)r->stream_watermark_ms,
                            "batch_watermark_ms", (json_int_t)r->batch_watermark_ms,
                            "batch_generation", seqc_json_u64(r->batch_generation),
                            "completeness_gap_ms", (json_int_t)r->completeness_gap_ms,
                            "as_of_ms", (json_int_t)r->as_of_ms);
    if (served_by[0]) json_object_set_new(doc, "served_by", json_string(served_by));
    seqc_json_print(doc, stdout);
    putchar('\n');
    json_decref(doc);
}

/* Calls GetSequence; prints the result. Returns the exit code. */
static int call_and_print(const seqc_ctx *ctx, const get_args *a)
{
    int ret = SEQC_EXIT_FAIL;
    char err[512];
    seqc_grpc_result res;
    size_t len = seqd__v1__get_sequence_request__get_packed_size(&a->req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return seqc_fail("out of memory");
    seqd__v1__get_sequence_request__pack(&a->req, buf);
    int rc = seqc_grpc_unary(ctx->server, "/seqd.v1.SequenceService/GetSequence", buf, len,
                             NULL, 0, 30000, &res, err, sizeof err);
    free(buf);
    if (rc != 0) return seqc_fail("UNAVAILABLE: %s", err);
    if (res.status != 0) {
        seqc_fail("%s: %s", seqc_grpc_code_name(res.status), res.message);
        goto out;
    }
    Seqd__V1__GetSequenceResponse *r =
        seqd__v1__get_sequence_response__unpack(NULL, res.body.len, res.body.data);
    if (!r) {
        seqc_fail("the server's response does not decode as GetSequenceResponse");
        goto out;
    }
    /* type names are a nicety: without the admin port, indices are printed */
    json_t *status = seqc_fetch_status(ctx, NULL, 0);
    json_t *seqdef = seqc_status_sequence_def(status, r->sequence);
    int prov = a->req.include_provenance;
    if (a->json) print_json(r, seqdef, prov, res.served_by);
    else print_table(r, seqdef, prov, res.served_by);
    json_decref(status);
    seqd__v1__get_sequence_response__free_unpacked(r, NULL);
    ret = SEQC_EXIT_OK;
out:
    seq_buf_free(&res.body);
    return ret;
}

int seqc_cmd_get(const seqc_ctx *ctx, int argc, char **argv)
{
    get_args a = {.req = SEQD__V1__GET_SEQUENCE_REQUEST__INIT};
    int ret = parse_get(argc, argv, &a);
    a.req.include_event_ids = a.json;
    if (ret == 0) ret = call_and_print(ctx, &a);
    free(a.types);
    free(a.types_buf);
    return ret;
}
