/* seqctl: the command-line client of seqd. This file holds main (global options and
 * dispatch) and the helpers every command shares; commands are in cmd_*.c. Talks to
 * seqd's gRPC port (h2client.c), its admin port (http1.c) and Kafka (librdkafka). */
#include "seqctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http1.h"
#include "timearg.h"

static const struct {
    const char *name;
    seqc_command_fn fn;
} commands[] = {
    {"get", seqc_cmd_get},
    {"produce", seqc_cmd_produce},
    {"status", seqc_cmd_status},
    {"broker", seqc_cmd_broker},
    {"build", seqc_cmd_build},
    {"load", seqc_cmd_load},
    {"cluster", seqc_cmd_cluster},
    {"rollback", seqc_cmd_rollback},
    {"diff", seqc_cmd_diff},
    {"malformed", seqc_cmd_malformed},
};

static const char usage_text[] =
    "usage: seqctl [--server HOST:PORT] [--admin HOST:PORT] COMMAND [ARGS]\n"
    "  get USER SEQUENCE [--max N] [--since T] [--until T] [--types a,b] [--as-of T]\n"
    "      [--view merged|stream|batch] [--provenance] [--json]\n"
    "  produce [--brokers LIST] [--topic T] [--format protobuf|json|confluent-protobuf] FILE|-\n"
    "  produce --sample N [--users U] [--brokers LIST] [--topic T] [--format F]\n"
    "  status [--json]\n"
    "  cluster [--json]\n"
    "  broker [--partitions N] [--topic T]\n"
    "  build --definition FILE --sequence S --start-ms A --end-ms B --generation G --out DIR\n"
    "        [--format jsonl|pb|avro] [--memory-mb N] [--partitions P [--only-partitions LIST]]\n"
    "        INPUT...\n"
    "  load --sequence S --start-ms A --end-ms B --generation G [--token-file F] [--dry-run]\n"
    "       SST...\n"
    "  rollback --sequence S [--to G] [--token-file F]\n"
    "  diff --sequence S --since T --until T --users LIST|@FILE [--json]\n"
    "  malformed [--limit N] [--json]\n"
    "defaults: --server 127.0.0.1:50051 --admin 127.0.0.1:8080\n"
    "'seqctl COMMAND --help' explains one command\n";

/* What `seqctl COMMAND --help` adds below the command's lines of usage_text. */
static const struct {
    const char *name, *text;
} command_notes[] = {
    {"get",
     "One GetSequence call, printed as a table (or one JSON object with --json).\n"
     "  --since T   start of the window, inclusive       T: " SEQC_TIME_FORMS "\n"
     "  --until T   end of the window, exclusive: the window is [since, until)\n"
     "  --types a,b only these event types     --max N  the newest N events of the window\n"
     "The window, --types and --max select from the cut sequence: the server first merges\n"
     "the stream and batch events, keeps those within retention and cuts the result to the\n"
     "definition's max_length (newest first), then selects. A window reaching further back\n"
     "than the cut shows nothing from before it, even when older events are stored.\n"
     "  --as-of T   the answer the server gave at T (within its --history-ms)\n"
     "  --view stream|batch  one path alone     --provenance  a source column\n"},
    {"produce",
     "Sends JSON Lines events (FILE, or - for stdin) to Kafka, keyed by user id, as protobuf\n"
     "seqd.v1.Event (default), the JSON object (--format json) or Confluent-framed protobuf\n"
     "(--format confluent-protobuf: magic byte 0, schema id 1, message index [0]).\n"
     "Brokers, topic and (for --sample) the definition come from the server's /status\n"
     "unless --brokers and --topic are given.\n"},
    {"status", "Summary of the server's /status (--json: the raw document).\n"},
    {"broker", "Runs the embedded (mock) Kafka cluster as its own process; prints brokers=LIST.\n"},
    {"build", "Builds a batch's SST files from JSON Lines, protobuf or Avro events.\n"
              "--memory-mb N (default 1024): past it, sorted runs are spilled beside the\n"
              "output and merged, so inputs larger than RAM build in bounded memory.\n"
              "--partitions P writes one part per Kafka partition of the users (murmur2),\n"
              "--only-partitions LIST (0-3,7) only those: several builders, one batch.\n"},
    {"load", "Calls LoadBatch with SST files the server reads under its --batch-root.\n"
             "  --dry-run  verify and count what the load would change; change nothing\n"},
    {"rollback", "Calls RollbackBatch: undoes the loads in effect above --to G (without\n"
                 "--to: the newest load in effect); prints the committed generation after.\n"},
    {"diff", "Compares the STREAM_ONLY and BATCH_ONLY answers of each user over [since,\n"
             "until) by event_id, inside the committed batch coverage. T: " SEQC_TIME_FORMS "\n"
             "LIST: ids and ranges (1-1000,42); @FILE: the same from a file.\n"},
    {"malformed",
     "The Kafka messages seqd kept aside as malformed (GET /malformed on the admin port),\n"
     "oldest first (by partition, offset): the reason and the start of each value\n"
     "(--json: the whole values, base64). --limit N: at most N (1..1000, default 20).\n"},
};

/* `seqctl COMMAND --help`: the command's lines of usage_text (its line and the
 * continuation lines below it), then its notes. */
static int command_help(const char *name)
{
    size_t n = strlen(name);
    int in = 0;
    fputs("usage: seqctl [--server HOST:PORT] [--admin HOST:PORT]\n", stdout);
    for (const char *p = strchr(usage_text, '\n') + 1; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p + 1) : strlen(p);
        if (strncmp(p, "  ", 2) == 0 && p[2] != ' ')
            in = strncmp(p + 2, name, n) == 0 && p[2 + n] == ' ';
        else if (strncmp(p, "  ", 2) != 0)
            in = 0;
        if (in) fwrite(p, 1, len, stdout);
        p += len;
    }
    for (size_t i = 0; i < sizeof command_notes / sizeof command_notes[0]; i++)
        if (strcmp(command_notes[i].name, name) == 0) fputs(command_notes[i].text, stdout);
    return SEQC_EXIT_OK;
}

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    }
    return 0;
}

int seqc_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("seqctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(run 'seqctl --help' for usage)\n", stderr);
    va_end(ap);
    return SEQC_EXIT_USAGE;
}

int seqc_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return SEQC_EXIT_FAIL;
}

int seqc_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0) return 0;
    if (a[2 + n] == '=') {
        *val = a + 3 + n;
        return 1;
    }
    if (a[2 + n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *val = argv[++*i];
    return 1;
}

int seqc_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int seqc_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

json_t *seqc_fetch_json(const seqc_ctx *ctx, const char *path, char *err, size_t errlen)
{
    seq_buf body = {0};
    int code = 0;
    char herr[256];
    if (seqc_http_get(ctx->admin, path, 10000, &code, &body, herr, sizeof herr) != 0) {
        seq_errf(err, errlen, "cannot read seqd %s at %s: %s", path, ctx->admin, herr);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = NULL;
    if (code != 200)
        seq_errf(err, errlen, "GET http://%s%s: HTTP %d", ctx->admin, path, code);
    else if (!(doc = json_loadb((const char *)body.data, body.len, 0, &jerr)) ||
             !json_is_object(doc)) {
        seq_errf(err, errlen, "GET http://%s%s: not a JSON object", ctx->admin, path);
        json_decref(doc);
        doc = NULL;
    }
    seq_buf_free(&body);
    return doc;
}

json_t *seqc_fetch_status(const seqc_ctx *ctx, char *err, size_t errlen)
{
    return seqc_fetch_json(ctx, "/status", err, errlen);
}

json_t *seqc_status_sequence_def(json_t *status, const char *name)
{
    json_t *seqs = json_object_get(json_object_get(status, "definition"), "sequences");
    size_t i;
    json_t *s;
    json_array_foreach(seqs, i, s) {
        const char *n = json_string_value(json_object_get(s, "name"));
        if (n && strcmp(n, name) == 0) return s;
    }
    return NULL;
}

json_t *seqc_json_u64(uint64_t v)
{
    if (v <= INT64_MAX) return json_integer((json_int_t)v);
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

void seqc_format_time(int64_t ms, char *buf, size_t len)
{
    /* floor division so that times before 1970 still print correctly */
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) { rem += 1000; sec--; }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, len, "%" PRId64 "ms", ms);
        return;
    }
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", date, (int)rem);
}

int main(int argc, char **argv)
{
    seqc_ctx ctx = {.server = "127.0.0.1:50051", .admin = "127.0.0.1:8080"};
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *v;
        int r;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return SEQC_EXIT_OK;
        }
        if ((r = seqc_opt(argc, argv, &i, "server", &v)) == 1) ctx.server = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "admin", &v)) == 1) ctx.admin = v;
        if (r < 0) return seqc_usage_error("%s needs a value", argv[i]);
        if (r == 0) return seqc_usage_error("unknown option %s", argv[i]);
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return SEQC_EXIT_USAGE;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return wants_help(argc - i, argv + i) ? command_help(commands[c].name)
                                                  : commands[c].fn(&ctx, argc - i, argv + i);
    return seqc_usage_error("unknown command '%s'", argv[i]);
}
