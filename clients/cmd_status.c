/* seqctl status: the server's /status as a readable summary (or raw with --json).
 * Tolerant of missing fields: an older or newer server still prints what it has. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "seqctl.h"

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static json_int_t int_of(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void print_time(const char *label, json_int_t ms)
{
    char t[40];
    seqc_format_time((int64_t)ms, t, sizeof t);
    printf("%s %" JSON_INTEGER_FORMAT " (%s)", label, ms, ms ? t : "none");
}

static void print_stream(json_t *stream)
{
    printf("stream:   ");
    print_time("watermark_ms", int_of(stream, "watermark_ms"));
    /* caught_up is the server's /readyz answer; not_ready says why when it is no */
    const char *why = str_or(stream, "not_ready", "");
    printf("  lag %" JSON_INTEGER_FORMAT "  caught_up %s%s%s%s\n", int_of(stream, "lag"),
           json_is_true(json_object_get(stream, "caught_up")) ? "yes" : "no", *why ? " (" : "",
           why, *why ? ")" : "");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(stream, "partitions"), i, p) {
        printf("  partition %" JSON_INTEGER_FORMAT ": next_offset %" JSON_INTEGER_FORMAT
               " high_offset %" JSON_INTEGER_FORMAT " ",
               int_of(p, "partition"), int_of(p, "next_offset"), int_of(p, "high_offset"));
        print_time("watermark_ms", int_of(p, "watermark_ms"));
        putchar('\n');
    }
}

static void print_sequences(json_t *seqs)
{
    size_t i, j;
    json_t *s, *c;
    printf("sequences:\n");
    json_array_foreach(seqs, i, s) {
        printf("  %s: batch_generation %" JSON_INTEGER_FORMAT " ", str_or(s, "name", "?"),
               int_of(s, "batch_generation"));
        print_time("batch_watermark_ms", int_of(s, "batch_watermark_ms"));
        putchar('\n');
        json_array_foreach(json_object_get(s, "coverage"), j, c)
            printf("    coverage [%" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
                   ") generation %" JSON_INTEGER_FORMAT "\n",
                   int_of(c, "start_ms"), int_of(c, "end_ms"), int_of(c, "generation"));
    }
}

static void print_counts(json_t *counts)
{
    static const char *const keys[] = {"events_applied", "malformed", "future", "skipped_unknown_type",
                                       "filtered", "late_batch_owned"};
    printf("counts:  ");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        printf(" %s %" JSON_INTEGER_FORMAT, keys[i], int_of(counts, keys[i]));
    putchar('\n');
}

int seqc_cmd_status(const seqc_ctx *ctx, int argc, char **argv)
{
    int raw = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) raw = 1;
        else return seqc_usage_error("status: unexpected argument '%s'", argv[i]);
    }
    char err[512];
    json_t *st = seqc_fetch_status(ctx, err, sizeof err);
    if (!st) return seqc_fail("%s", err);
    if (raw) {
        json_dumpf(st, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        printf("grpc:      %s\nadmin:     %s\n", str_or(st, "grpc", "?"), str_or(st, "admin", "?"));
        printf("brokers:   %s%s\n", str_or(st, "brokers", "?"),
               json_is_true(json_object_get(st, "embedded_kafka")) ? " (embedded)" : "");
        printf("topic:     %s  group %s  format %s\n", str_or(st, "topic", "?"),
               str_or(st, "group", "?"), str_or(st, "event_format", "?"));
        print_stream(json_object_get(st, "stream"));
        print_sequences(json_object_get(st, "sequences"));
        print_counts(json_object_get(st, "counts"));
    }
    json_decref(st);
    return SEQC_EXIT_OK;
}
