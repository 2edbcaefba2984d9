/* seqctl rollback: undoes the loads in effect above a generation (RollbackBatch; without
 * --to, the newest load) and prints the sequence's committed generation after it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqctl.h"
#include "seqd/v1/seqd.pb-c.h"

int seqc_cmd_rollback(const seqc_ctx *ctx, int argc, char **argv)
{
    Seqd__V1__RollbackBatchRequest req = SEQD__V1__ROLLBACK_BATCH_REQUEST__INIT;
    const char *token_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = seqc_opt(argc, argv, &i, "sequence", &v)) == 1) req.sequence = (char *)v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "token-file", &v)) == 1) token_file = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "to", &v)) == 1) {
            if (seqc_parse_u64(v, &req.generation) < 0)
                return seqc_usage_error("--to: not a generation: '%s'", v);
        } else if (r == 0) {
            return seqc_usage_error("rollback: unexpected argument %s", argv[i]);
        }
        if (r < 0) return seqc_usage_error("%s needs a value", argv[i]);
    }
    if (!*req.sequence) return seqc_usage_error("rollback needs --sequence");
    uint8_t buf[512];
    if (seqd__v1__rollback_batch_request__get_packed_size(&req) > sizeof buf)
        return seqc_usage_error("--sequence: too long");
    size_t len = seqd__v1__rollback_batch_request__pack(&req, buf);
    seq_buf body = {0};
    int rc = seqc_admin_call(ctx, "RollbackBatch", token_file, buf, len, &body);
    if (rc != SEQC_EXIT_OK) return rc;
    Seqd__V1__RollbackBatchResponse *r =
        seqd__v1__rollback_batch_response__unpack(NULL, body.len, body.data);
    if (!r) {
        rc = seqc_fail("the server's response does not decode as RollbackBatchResponse");
    } else {
        printf("%s: committed generation now %" PRIu64 "%s\n", req.sequence, r->generation,
               r->generation ? "" : " (no load in effect)");
        seqd__v1__rollback_batch_response__free_unpacked(r, NULL);
    }
    seq_buf_free(&body);
    return rc;
}
