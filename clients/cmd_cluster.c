/* seqctl cluster: the cluster map (GET /cluster on the admin port) as a table, one line
 * per node: id, group, advertised gRPC and admin addresses, held partitions (those not
 * caught up yet marked with '*'), readiness, seconds since its last heartbeat; then a line
 * per partition caught up *with a gap* (the Kafka log no longer reached back far enough
 * when its holder began reading it) saying from when the holder has its stream. --json
 * prints the document as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqctl.h"

/* "0-3,5,7*": ranges of held partitions; '*' after one that is not caught up. */
static void print_partitions(json_t *held, json_t *caught)
{
    size_t i, n = json_array_size(held);
    json_t *v;
    if (!n) {
        printf("-");
        return;
    }
    for (i = 0; i < n; i++) {
        json_int_t p = json_integer_value(json_array_get(held, i)), q = p;
        int all_caught = 1;
        size_t j = i;
        for (;; j++) {
            json_int_t x = json_integer_value(json_array_get(held, j));
            size_t k;
            int c = 0;
            json_array_foreach(caught, k, v) c |= json_integer_value(v) == x;
            all_caught &= c;
            q = x;
            if (j + 1 >= n || json_integer_value(json_array_get(held, j + 1)) != x + 1 || !c) break;
        }
        printf("%s%" JSON_INTEGER_FORMAT, i ? "," : "", p);
        if (q != p) printf("-%" JSON_INTEGER_FORMAT, q);
        if (!all_caught) putchar('*');
        i = j;
    }
}

/* "caught up with a gap: node n1 partition 3 holds the stream from 2026-...Z" lines. */
static void print_gaps(json_t *nodes)
{
    size_t i, j;
    json_t *n, *g;
    json_array_foreach(nodes, i, n) {
        json_array_foreach(json_object_get(n, "gaps"), j, g) {
            char when[40];
            seqc_format_time(json_integer_value(json_object_get(g, "stream_from_ms")), when, sizeof when);
            printf("caught up with a gap: node %s partition %" JSON_INTEGER_FORMAT
                   " holds the stream from %s (the Kafka log no longer reached back to the newest "
                   "batch's end or to retention)\n", json_string_value(json_object_get(n, "id")),
                   json_integer_value(json_object_get(g, "partition")), when);
        }
    }
}

int seqc_cmd_cluster(const seqc_ctx *ctx, int argc, char **argv)
{
    int raw = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) raw = 1;
        else return seqc_usage_error("cluster: unexpected argument '%s'", argv[i]);
    }
    char err[512];
    json_t *doc = seqc_fetch_json(ctx, "/cluster", err, sizeof err);
    if (!doc) return seqc_fail("%s", err);
    if (raw) {
        char *text = json_dumps(doc, JSON_INDENT(2));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(doc);
        return SEQC_EXIT_OK;
    }
    json_t *nodes = json_object_get(doc, "nodes"), *n;
    printf("topic %s, %" JSON_INTEGER_FORMAT " partitions (%s), %zu nodes, asked %s\n",
           json_string_value(json_object_get(doc, "topic")),
           json_integer_value(json_object_get(doc, "partitions")),
           json_string_value(json_object_get(doc, "partitioner")), json_array_size(nodes),
           json_string_value(json_object_get(doc, "self")));
    printf("%-20s %-12s %-22s %-22s %-6s %-6s %s\n", "NODE", "GROUP", "GRPC", "ADMIN", "READY",
           "AGE_S", "PARTITIONS (* = catching up)");
    size_t i;
    json_array_foreach(nodes, i, n) {
        printf("%-20s %-12s %-22s %-22s %-6s %-6.1f ", json_string_value(json_object_get(n, "id")),
               json_string_value(json_object_get(n, "group")),
               json_string_value(json_object_get(n, "grpc")),
               json_string_value(json_object_get(n, "admin")),
               json_is_true(json_object_get(n, "ready")) ? "yes" : "no",
               (double)json_integer_value(json_object_get(n, "age_ms")) / 1000.0);
        print_partitions(json_object_get(n, "partitions"), json_object_get(n, "caught_up"));
        putchar('\n');
    }
    print_gaps(nodes);
    json_decref(doc);
    return SEQC_EXIT_OK;
}
