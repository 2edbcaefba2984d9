/* Cluster map records (see cluster_record.h): jansson both ways. */
#include "cluster_record.h"

#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"

static int copy_str(json_t *o, const char *key, char *out, size_t outlen, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        out[0] = '\0';
        return required ? -1 : 0;
    }
    const char *s = json_string_value(v);
    if (!s || strlen(s) >= outlen) return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int read_bits(json_t *o, const char *key, uint32_t n_parts, uint8_t *bits)
{
    json_t *a = json_object_get(o, key), *v;
    size_t i;
    if (!json_is_array(a)) return -1;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v)) return -1;
        json_int_t p = json_integer_value(v);
        if (p < 0 || p >= (json_int_t)n_parts) return -1;
        bits[p / 8] |= (uint8_t)(1u << (p % 8));
    }
    return 0;
}

/* "gaps": [{"partition": p < n_parts, "stream_from_ms": > 0}, ...]; absent = none. */
static int read_gaps(json_t *o, uint32_t n_parts, int64_t *gap_from)
{
    json_t *a = json_object_get(o, "gaps"), *v;
    size_t i;
    if (!a) return 0;
    if (!json_is_array(a)) return -1;
    json_array_foreach(a, i, v) {
        json_t *p = json_object_get(v, "partition"), *from = json_object_get(v, "stream_from_ms");
        if (!json_is_integer(p) || !json_is_integer(from) || json_integer_value(p) < 0 ||
            json_integer_value(p) >= (json_int_t)n_parts || json_integer_value(from) <= 0)
            return -1;
        gap_from[json_integer_value(p)] = json_integer_value(from);
    }
    return 0;
}

int seq_cluster_parse_record(const void *data, size_t len, seq_cluster_record *r)
{
    memset(r, 0, sizeof *r);
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *np = json_object_get(o, "n_partitions"), *hb = json_object_get(o, "heartbeat_ms");
    json_t *gens = json_object_get(o, "generations"), *ready = json_object_get(o, "ready");
    json_t *loads = json_object_get(o, "loads"), *filling = json_object_get(o, "filling");
    json_t *impact = json_object_get(o, "impact");
    int ok = json_is_object(o) && json_integer_value(json_object_get(o, "v")) == 1 &&
             json_is_integer(np) && json_integer_value(np) >= 0 &&
             json_integer_value(np) <= SEQ_CLUSTER_RECORD_MAX_PARTS && json_is_integer(hb) &&
             (!ready || json_is_boolean(ready)) && (!gens || json_is_object(gens)) &&
             (!loads || (json_is_integer(loads) && json_integer_value(loads) >= 0)) &&
             (!filling || json_is_boolean(filling)) && (!impact || json_is_array(impact));
    if (ok) {
        r->loads = loads ? json_integer_value(loads) : -1;
        r->filling = json_is_true(filling);
        r->n_parts = (uint32_t)json_integer_value(np);
        r->heartbeat_ms = json_integer_value(hb);
        r->ready = json_is_true(ready);
        ok = !copy_str(o, "id", r->id, sizeof r->id, 1) && r->id[0] &&
             !copy_str(o, "group", r->group, sizeof r->group, 1) &&
             !copy_str(o, "grpc", r->grpc, sizeof r->grpc, 1) &&
             !copy_str(o, "admin", r->admin, sizeof r->admin, 0) &&
             !copy_str(o, "incarnation", r->incarnation, sizeof r->incarnation, 0) &&
             !copy_str(o, "fingerprint", r->fingerprint, sizeof r->fingerprint, 0) &&
             !read_bits(o, "partitions", r->n_parts, r->held) &&
             !read_bits(o, "caught_up", r->n_parts, r->caught) &&
             !read_gaps(o, r->n_parts, r->gap_from);
    }
    if (ok && gens) ok = (r->generations = json_dumps(gens, JSON_COMPACT)) != NULL;
    if (ok && impact) ok = (r->impact = json_dumps(impact, JSON_COMPACT)) != NULL;
    json_decref(o);
    if (ok) return SEQ_OK;
    seq_cluster_record_clear(r);
    return SEQ_EINVAL;
}

static json_t *bits_json(const uint8_t *bits, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t p = 0; p < n; p++)
        if ((bits[p / 8] >> (p % 8)) & 1) json_array_append_new(a, json_integer(p));
    return a;
}

json_t *seq_cluster_record_json(const seq_cluster_record *r)
{
    json_t *gens = r->generations ? json_loads(r->generations, 0, NULL) : NULL;
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:o,s:o,s:b,s:I,s:o}", "v", 1, "id", r->id,
                     "group", r->group, "grpc", r->grpc, "admin", r->admin, "incarnation",
                     r->incarnation, "fingerprint", r->fingerprint, "n_partitions", (int)r->n_parts,
                     "partitions", bits_json(r->held, r->n_parts), "caught_up",
                     bits_json(r->caught, r->n_parts), "ready", r->ready, "heartbeat_ms",
                     (json_int_t)r->heartbeat_ms, "generations", gens ? gens : json_object());
    json_t *gaps = json_array();
    for (uint32_t p = 0; p < r->n_parts && p < SEQ_CLUSTER_RECORD_MAX_PARTS; p++)
        if (r->gap_from[p] > 0)
            json_array_append_new(gaps, json_pack("{s:i,s:I}", "partition", (int)p, "stream_from_ms",
                                                  (json_int_t)r->gap_from[p]));
    if (o) json_object_set_new(o, "gaps", gaps);
    else json_decref(gaps);
    if (o && r->loads >= 0) {
        json_object_set_new(o, "loads", json_integer((json_int_t)r->loads));
        json_object_set_new(o, "filling", json_boolean(r->filling));
    }
    json_t *impact = o && r->impact ? json_loads(r->impact, 0, NULL) : NULL;
    if (impact) json_object_set_new(o, "impact", impact);
    return o;
}

char *seq_cluster_format_record(const seq_cluster_record *r)
{
    json_t *o = seq_cluster_record_json(r);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

void seq_cluster_record_impact(const seq_cluster_record *r, int64_t at, uint32_t np,
                               uint8_t *seen, uint64_t *emptied, uint64_t *hidden)
{
    json_t *a = r->impact ? json_loads(r->impact, 0, NULL) : NULL, *e, *part;
    size_t i, k;
    json_array_foreach(a, i, e) {
        json_t *o = json_object_get(e, "at");
        if (!json_is_integer(o) || json_integer_value(o) != at) continue;
        json_array_foreach(json_object_get(e, "parts"), k, part) {
            json_t *p = json_array_get(part, 0), *u = json_array_get(part, 1),
                   *h = json_array_get(part, 2);
            if (!json_is_integer(p) || !json_is_integer(u) || !json_is_integer(h) ||
                json_integer_value(p) < 0 || json_integer_value(p) >= (json_int_t)np ||
                json_integer_value(u) < 0 || json_integer_value(h) < 0 ||
                seen[json_integer_value(p)])
                continue;
            seen[json_integer_value(p)] = 1;
            *emptied += (uint64_t)json_integer_value(u);
            *hidden += (uint64_t)json_integer_value(h);
        }
    }
    json_decref(a);
}

void seq_cluster_record_clear(seq_cluster_record *r)
{
    free(r->generations);
    free(r->impact);
    memset(r, 0, sizeof *r);
}
