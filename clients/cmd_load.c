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

static int call_load(const seqc_ctx *ctx, const load_args *a)
{
    size_t len = seqd__v1__load_batch_request__get_packed_size(&a->req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return seqc_fail("out of memory");
    seqd__v1__load_batch_request__pack(&a->req, buf);
    seq_buf body = {0};
    int rc = seqc_admin_call(ctx, "LoadBatch", a->token_file, buf, len, &body);
    free(buf);
    if (rc != SEQC_EXIT_OK) return rc;
    Seqd__V1__LoadBatchResponse *r = seqd__v1__load_batch_response__unpack(NULL, body.len, body.data);
    if (!r)
        rc = seqc_fail("the server's response does not decode as LoadBatchResponse");
    else
        printf("loaded generation %" PRIu64 ": %" PRIu32 " files, %" PRIu64 " users, %" PRIu64
               " events\n", r->generation, r->files, r->users, r->events);
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
