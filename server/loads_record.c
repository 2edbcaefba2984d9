/* `<topic>.seqd-loads` records (see loads_record.h): jansson both ways. */
#include "loads_record.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"

/* A string of at most outlen - 1 bytes and no NUL (jansson allows "\u0000"). */
static int get_str(json_t *o, const char *key, char *out, size_t outlen)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) != strlen(s) || strlen(s) >= outlen) return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

/* A non-negative integer. */
static int get_int(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = json_integer_value(v);
    return 0;
}

static int get_paths(json_t *o, seq_loads_record *r)
{
    json_t *a = json_object_get(o, "paths"), *v;
    size_t i, n = json_array_size(a);
    if (!json_is_array(a) || n == 0 || n > SEQ_LOADS_MAX_PATHS) return -1;
    if (!(r->paths = calloc(n, sizeof *r->paths))) return -1;
    json_array_foreach(a, i, v) {
        const char *s = json_string_value(v);
        if (!s || !*s || json_string_length(v) != strlen(s) || !(r->paths[i] = strdup(s)))
            return -1;
        r->n_paths = i + 1;
    }
    return 0;
}

/* "sums" (optional): one [size, "16 hex digits"] per path. */
static int get_sums(json_t *o, seq_loads_record *r)
{
    json_t *a = json_object_get(o, "sums"), *v;
    size_t i;
    if (!a) return 0;
    if (!json_is_array(a) || json_array_size(a) != r->n_paths) return -1;
    if (!(r->sums = calloc(2 * r->n_paths, sizeof *r->sums))) return -1;
    json_array_foreach(a, i, v) {
        json_t *size = json_array_get(v, 0);
        const char *h = json_string_value(json_array_get(v, 1));
        char *end;
        if (json_array_size(v) != 2 || !json_is_integer(size) || json_integer_value(size) < 0 ||
            !h || strlen(h) != 16 || strspn(h, "0123456789abcdef") != 16)
            return -1;
        r->sums[2 * i] = (uint64_t)json_integer_value(size);
        r->sums[2 * i + 1] = strtoull(h, &end, 16);
    }
    return 0;
}

int seq_loads_parse_record(const void *data, size_t len, seq_loads_record *r)
{
    memset(r, 0, sizeof *r);
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const char *op = json_string_value(json_object_get(o, "op"));
    int64_t at, gen, a, b, p;
    int ok = json_is_object(o) && json_integer_value(json_object_get(o, "v")) == 1 && op &&
             !get_str(o, "sequence", r->sequence, sizeof r->sequence) && r->sequence[0] &&
             !get_str(o, "node", r->node, sizeof r->node) && !get_int(o, "at_ms", &at) &&
             !get_int(o, "generation", &gen);
    if (ok) {
        r->at_ms = at;
        r->generation = (uint64_t)gen;
    }
    int dry = ok && strcmp(op, "dry_run") == 0;
    if (ok && (dry || strcmp(op, "load") == 0)) {
        r->op = dry ? SEQ_LOADS_OP_DRY_RUN : SEQ_LOADS_OP_LOAD;
        ok = !get_int(o, "start_ms", &a) && !get_int(o, "end_ms", &b) && a < b &&
             !get_int(o, "partitions", &p) && p <= UINT32_MAX && gen > 0 && !get_paths(o, r) &&
             !get_sums(o, r);
        if (ok) r->start_ms = a, r->end_ms = b, r->partitions = (uint32_t)p;
        /* optional (older receivers): expires a fixed time after it was written */
        if (ok && dry && json_object_get(o, "expires_ms")) ok = !get_int(o, "expires_ms", &at);
        else if (ok && dry) /* (no overflow: at_ms is anything Kafka brought) */
            at = r->at_ms > INT64_MAX - SEQ_LOADS_DRY_RUN_TTL_MS ? INT64_MAX
                                                                 : r->at_ms + SEQ_LOADS_DRY_RUN_TTL_MS;
        if (ok && dry) r->expires_ms = at;
    } else if (ok && strcmp(op, "rollback") == 0) {
        r->op = SEQ_LOADS_OP_ROLLBACK;
        ok = !get_int(o, "from", &a) && !get_int(o, "to", &b);
        if (ok) r->from = (uint64_t)a, r->to = (uint64_t)b;
    } else {
        ok = 0;
    }
    json_decref(o);
    if (ok) return SEQ_OK;
    seq_loads_record_clear(r);
    return SEQ_EINVAL;
}

char *seq_loads_format_record(const seq_loads_record *r)
{
    int load = r->op == SEQ_LOADS_OP_LOAD || r->op == SEQ_LOADS_OP_DRY_RUN;
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:I,s:I}", "v", 1, "op",
                          r->op == SEQ_LOADS_OP_LOAD      ? "load"
                          : r->op == SEQ_LOADS_OP_DRY_RUN ? "dry_run"
                                                          : "rollback",
                          "sequence",
                          r->sequence, "node", r->node, "at_ms", (json_int_t)r->at_ms,
                          "generation", (json_int_t)r->generation);
    int bad = !o;
    if (!bad && load) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < r->n_paths; i++)
            bad |= json_array_append_new(a, json_string(r->paths[i])) != 0;
        bad |= !a || json_object_set_new(o, "paths", a) != 0 ||
               json_object_set_new(o, "start_ms", json_integer(r->start_ms)) != 0 ||
               json_object_set_new(o, "end_ms", json_integer(r->end_ms)) != 0 ||
               json_object_set_new(o, "partitions", json_integer(r->partitions)) != 0;
        json_t *sums = r->sums ? json_array() : NULL;
        for (size_t i = 0; sums && i < r->n_paths; i++) {
            char h[17];
            snprintf(h, sizeof h, "%016" PRIx64, r->sums[2 * i + 1]);
            bad |= json_array_append_new(sums, json_pack("[I,s]", (json_int_t)r->sums[2 * i],
                                                         h)) != 0;
        }
        if (r->sums) bad |= !sums || json_object_set_new(o, "sums", sums) != 0;
        if (r->op == SEQ_LOADS_OP_DRY_RUN)
            bad |= json_object_set_new(o, "expires_ms", json_integer(r->expires_ms)) != 0;
    } else if (!bad) {
        bad |= json_object_set_new(o, "from", json_integer((json_int_t)r->from)) != 0 ||
               json_object_set_new(o, "to", json_integer((json_int_t)r->to)) != 0;
    }
    char *text = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

void seq_loads_record_clear(seq_loads_record *r)
{
    for (size_t i = 0; r->paths && i < r->n_paths; i++) free(r->paths[i]);
    free(r->paths);
    free(r->sums);
    memset(r, 0, sizeof *r);
}
