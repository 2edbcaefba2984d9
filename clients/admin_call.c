/* The calls of seqctl that change what readers see (load, rollback): one unary call
 * with the admin token as `authorization: Bearer <token>` metadata (the token file's
 * first line), and a non-OK status printed as `error: CODE: message`. */
#include <stdio.h>
#include <string.h>

#include "h2client.h"
#include "seqctl.h"

/* "Bearer <first line of the file>" into buf. */
static int read_token(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    char tok[512];
    if (!f) return -1;
    int ok = fgets(tok, sizeof tok, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    tok[strcspn(tok, "\r\n")] = '\0';
    snprintf(buf, len, "Bearer %s", tok);
    return 0;
}

int seqc_admin_call(const seqc_ctx *ctx, const char *method, const char *token_file,
                    const uint8_t *req, size_t len, seq_buf *body)
{
    char auth[600], err[512], path[128];
    seqc_header hdr = {"authorization", auth};
    seqc_grpc_result res;
    if (token_file && read_token(token_file, auth, sizeof auth) < 0)
        return seqc_fail("%s: cannot read the token", token_file);
    snprintf(path, sizeof path, "/seqd.v1.SequenceService/%s", method);
    if (seqc_grpc_unary(ctx->server, path, req, len, &hdr, token_file ? 1 : 0, 600000, &res, err,
                        sizeof err) != 0)
        return seqc_fail("UNAVAILABLE: %s", err);
    if (res.status != 0) {
        seq_buf_free(&res.body);
        return seqc_fail("%s: %s", seqc_grpc_code_name(res.status), res.message);
    }
    *body = res.body;
    return SEQC_EXIT_OK;
}
