/* seqctl load: asks the server to ingest SST files built by `seqctl build` (LoadBatch).
 * The paths are read by the server, so they are made absolute here. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2client.h"
#include "seqctl.h"
#include "seqd/v1/seqd.pb-c.h"

typedef struct {
    Seqd__V1__LoadBatchRequest req;
    const char *token_file;
    int have_start, have_end, have_gen;
} load_args;

static int parse_load(int argc, char **argv, load_args *a)
{
    a->req.sst_paths = calloc((size_t)argc, sizeof *a->req.sst_paths);
    if (!a->req.sst_paths) return seqc_usage_error("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (strcmp(argv[i], "--dry-run") == 0) {
            a->req.dry_run = 1;
            continue;
        }
        if ((r = seqc_opt(argc, argv, &i, "sequence", &v)) == 1) a->req.sequence = (char *)v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "token-file", &v)) == 1) a->token_file = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "start-ms", &v)) == 1)
            r = seqc_parse_i64(v, &a->req.start_ms) == 0 ? (a->have_start = 1) : -2;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "end-ms", &v)) == 1)
            r = seqc_parse_i64(v, &a->req.end_ms) == 0 ? (a->have_end = 1) : -2;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "generation", &v)) == 1)
            r = seqc_parse_u64(v, &a->req.generation) == 0 ? (a->have_gen = 1) : -2;
        else if (r == 0 && strncmp(argv[i], "--", 2) == 0)
            return seqc_usage_error("load: unknown option %s", argv[i]);
        else if (r == 0) {
            char *abs = realpath(argv[i], NULL);
            a->req.sst_paths[a->req.n_sst_paths++] = abs ? abs : strdup(argv[i]);
        }
        if (r == -1) return seqc_usage_error("%s needs a value", argv[i]);
        if (r == -2) return seqc_usage_error("%s: not a number", argv[i]);
    }
    if (!a->req.sequence || !a->have_start || !a->have_end || !a->have_gen)
        return seqc_usage_error("load needs --sequence, --start-ms, --end-ms and --generation");
    if (a->req.n_sst_paths == 0) return seqc_usage_error("load: no SST files");
    return 0;
}

/* The sequence's committed generation before the call (a repeated load is an OK no-op
 * that changes nothing: seqctl says so); 0 when it cannot be asked. */
static uint64_t committed_before(const seqc_ctx *ctx, const char *sequence)
{
    Seqd__V1__GetSequenceRequest q = SEQD__V1__GET_SEQUENCE_REQUEST__INIT;
    q.user_id = 1, q.sequence = (char *)sequence, q.max_events = 1;
    uint8_t buf[512];
    if (seqd__v1__get_sequence_request__get_packed_size(&q) > sizeof buf) return 0;
    size_t len = seqd__v1__get_sequence_request__pack(&q, buf);
    seqc_grpc_result res;
    char err[256];
    uint64_t gen = 0;
    if (seqc_grpc_unary(ctx->server, "/seqd.v1.SequenceService/GetSequence", buf, len, NULL, 0,
                        30000, &res, err, sizeof err) != 0)
        return 0;
    Seqd__V1__GetSequenceResponse *r =
        res.status == 0 ? seqd__v1__get_sequence_response__unpack(NULL, res.body.len, res.body.data)
                        : NULL;
    if (r) gen = r->batch_generation;
    if (r) seqd__v1__get_sequence_response__free_unpacked(r, NULL);
    seq_buf_free(&res.body);
    return gen;
}

static void print_result(const load_args *a, const Seqd__V1__LoadBatchResponse *r, uint64_t before)
{
    if (a->req.dry_run) {
        printf("dry run: generation %" PRIu64 " would load %" PRIu32 " files, %" PRIu64
               " users, %" PRIu64 " events; in [start, min(end, now - horizon)) it would empty %"
               PRIu64 " users and hide %" PRIu64 " stream events; nothing changed\n",
               r->generation, r->files, r->users, r->events, r->users_emptied,
               r->stream_events_hidden);
    } else if (before && before == r->generation) {
        printf("generation %" PRIu64 " is already committed with this range: nothing changed (%"
               PRIu32 " files, %" PRIu64 " users, %" PRIu64 " events)\n",
               r->generation, r->files, r->users, r->events);
    } else {
        printf("loaded generation %" PRIu64 ": %" PRIu32 " files, %" PRIu64 " users, %" PRIu64
               " events; emptied %" PRIu64 " users, hid %" PRIu64 " stream events\n",
               r->generation, r->files, r->users, r->events, r->users_emptied,
               r->stream_events_hidden);
    }
}

static int call_load(const seqc_ctx *ctx, const load_args *a)
{
    size_t len = seqd__v1__load_batch_request__get_packed_size(&a->req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return seqc_fail("out of memory");
    seqd__v1__load_batch_request__pack(&a->req, buf);
    uint64_t before = committed_before(ctx, a->req.sequence);
    seq_buf body = {0};
    int rc = seqc_admin_call(ctx, "LoadBatch", a->token_file, buf, len, &body);
    free(buf);
    if (rc != SEQC_EXIT_OK) return rc;
    Seqd__V1__LoadBatchResponse *r = seqd__v1__load_batch_response__unpack(NULL, body.len, body.data);
    if (!r) rc = seqc_fail("the server's response does not decode as LoadBatchResponse");
    else print_result(a, r, before);
    if (r) seqd__v1__load_batch_response__free_unpacked(r, NULL);
    seq_buf_free(&body);
    return rc;
}

int seqc_cmd_load(const seqc_ctx *ctx, int argc, char **argv)
{
    load_args a = {.req = SEQD__V1__LOAD_BATCH_REQUEST__INIT};
    int rc = parse_load(argc, argv, &a);
    if (rc == 0) rc = call_load(ctx, &a);
    for (size_t i = 0; i < a.req.n_sst_paths; i++) free(a.req.sst_paths[i]);
    free(a.req.sst_paths);
    return rc;
}
