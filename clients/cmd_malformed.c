/* seqctl malformed: the Kafka messages seqd kept aside as malformed (undecodable, bad
 * framing, too far in the future, ...), read from the admin port's GET /malformed: per
 * message its partition, offset, the reason and the start of its value; --json prints
 * the document (each value whole, in base64). */
#include <stdio.h>
#include <string.h>

#include "http1.h"
#include "seqctl.h"

int seqc_cmd_malformed(const seqc_ctx *ctx, int argc, char **argv)
{
    uint64_t limit = 20;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if ((r = seqc_opt(argc, argv, &i, "limit", &v)) == 1) {
            if (seqc_parse_u64(v, &limit) < 0 || limit < 1 || limit > 1000)
                return seqc_usage_error("--limit: want a count from 1 to 1000, got '%s'", v);
        } else {
            return seqc_usage_error(r < 0 ? "%s needs a value" : "malformed: unexpected '%s'",
                                    argv[i]);
        }
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/malformed?limit=%llu", (unsigned long long)limit);
    seq_buf body = {0};
    int code = 0, rc = SEQC_EXIT_FAIL;
    if (seqc_http_get(ctx->admin, path, 10000, &code, &body, err, sizeof err) != 0) {
        seq_buf_free(&body);
        return seqc_fail("cannot read %s from seqd's admin port %s: %s", path, ctx->admin, err);
    }
    json_error_t jerr;
    json_t *doc = code == 200 ? json_loadb((const char *)body.data, body.len, 0, &jerr) : NULL;
    json_t *msgs = json_object_get(doc, "messages");
    if (code != 200) {
        seqc_fail("GET http://%s%s: HTTP %d: %.*s", ctx->admin, path, code, (int)body.len,
                  body.data ? (const char *)body.data : "");
    } else if (!json_is_array(msgs)) {
        seqc_fail("GET http://%s%s: not the expected JSON document", ctx->admin, path);
    } else if (json) {
        fwrite(body.data, 1, body.len, stdout);
        putchar('\n');
        rc = SEQC_EXIT_OK;
    } else {
        printf("%lld malformed messages kept aside; the %zu oldest:\n",
               (long long)json_integer_value(json_object_get(doc, "count")), json_array_size(msgs));
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m) {
            printf("partition %lld offset %lld (%lld bytes): %s\n    %s\n",
                   (long long)json_integer_value(json_object_get(m, "partition")),
                   (long long)json_integer_value(json_object_get(m, "offset")),
                   (long long)json_integer_value(json_object_get(m, "value_len")),
                   json_string_value(json_object_get(m, "reason")),
                   json_string_value(json_object_get(m, "value_preview")));
        }
        rc = SEQC_EXIT_OK;
    }
    json_decref(doc);
    seq_buf_free(&body);
    return rc;
}
