/* seqctl build: builds one batch partition (sequence, [start, end), generation) from
 * JSON Lines or length-delimited protobuf event files into SST files and a manifest,
 * through the same decoders and executor as the server's stream path (storage/batch.h).
 * Progress and the report go to stderr; a one-line JSON summary to stdout. */
#include <stdio.h>
#include <string.h>

#include "engine/def.h"
#include "seqctl.h"
#include "storage/batch.h"

static void progress(const seq_build_report *r)
{
    fprintf(stderr, "build: %llu records read, %llu kept\n", (unsigned long long)r->records,
            (unsigned long long)r->kept);
}

static void print_report(const seq_build_report *r, const char *out)
{
    fprintf(stderr,
            "build: %llu records: %llu events for %llu users written to %s in %u file(s); "
            "skipped: %llu malformed, %llu out of range, %llu unknown type, %llu filtered, "
            "%llu duplicate ids; %u sorted run(s) spilled\n",
            (unsigned long long)r->records, (unsigned long long)r->events,
            (unsigned long long)r->users, out, r->files, (unsigned long long)r->malformed,
            (unsigned long long)r->out_of_range, (unsigned long long)r->unknown_type,
            (unsigned long long)r->filtered, (unsigned long long)r->duplicates, r->runs);
    for (uint32_t i = 0; i < r->n_notes; i++) fprintf(stderr, "  %s\n", r->notes[i]);
    printf("{\"records\":%llu,\"events\":%llu,\"users\":%llu,\"files\":%u,\"malformed\":%llu,"
           "\"out_of_range\":%llu,\"unknown_type\":%llu,\"filtered\":%llu,\"duplicates\":%llu,"
           "\"spilled_runs\":%u}\n",
           (unsigned long long)r->records, (unsigned long long)r->events,
           (unsigned long long)r->users, r->files, (unsigned long long)r->malformed,
           (unsigned long long)r->out_of_range, (unsigned long long)r->unknown_type,
           (unsigned long long)r->filtered, (unsigned long long)r->duplicates, r->runs);
}

typedef struct {
    const char *def_path, *sequence, *out, *format;
    int64_t start, end;
    uint64_t gen, mem_mb;
    int have_start, have_end, have_gen;
} build_args;

static int parse_args(int argc, char **argv, build_args *a, int *first_input)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *v;
        int r;
        if ((r = seqc_opt(argc, argv, &i, "definition", &v)) == 1) a->def_path = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "sequence", &v)) == 1) a->sequence = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "out", &v)) == 1) a->out = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "format", &v)) == 1) a->format = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "start-ms", &v)) == 1)
            r = seqc_parse_i64(v, &a->start) == 0 ? (a->have_start = 1) : -2;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "end-ms", &v)) == 1)
            r = seqc_parse_i64(v, &a->end) == 0 ? (a->have_end = 1) : -2;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "generation", &v)) == 1)
            r = seqc_parse_u64(v, &a->gen) == 0 ? (a->have_gen = 1) : -2;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "memory-mb", &v)) == 1)
            r = seqc_parse_u64(v, &a->mem_mb) == 0 ? 1 : -2;
        if (r == -1) return seqc_usage_error("%s needs a value", argv[i]);
        if (r == -2) return seqc_usage_error("%s: not a number", argv[i]);
        if (r == 0) return seqc_usage_error("build: unknown option %s", argv[i]);
    }
    if (!a->def_path || !a->sequence || !a->out || !a->have_start || !a->have_end ||
        !a->have_gen)
        return seqc_usage_error("build needs --definition, --sequence, --start-ms, --end-ms, "
                                "--generation and --out");
    if (strcmp(a->format, "jsonl") != 0 && strcmp(a->format, "pb") != 0)
        return seqc_usage_error("build: --format is jsonl or pb");
    if (i >= argc) return seqc_usage_error("build: no input files");
    *first_input = i;
    return SEQC_EXIT_OK;
}

int seqc_cmd_build(const seqc_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    build_args a = {.format = "jsonl"};
    int first = 0, rc = parse_args(argc, argv, &a, &first);
    if (rc != SEQC_EXIT_OK) return rc;
    char err[512];
    seq_def *def = NULL;
    seq_build *b = NULL;
    seq_build_report rep;
    if (seq_def_load_file(a.def_path, &def, err, sizeof err) != SEQ_OK)
        return seqc_fail("%s", err);
    rc = SEQC_EXIT_FAIL;
    if (seq_build_new(def, a.sequence, a.start, a.end, a.gen, a.out,
                      (size_t)a.mem_mb << 20, &b, err, sizeof err) != SEQ_OK) {
        seqc_fail("%s", err);
        goto out;
    }
    seq_format fmt = strcmp(a.format, "pb") == 0 ? SEQ_FORMAT_PROTOBUF : SEQ_FORMAT_JSON;
    for (int i = first; i < argc; i++) {
        if (seq_build_add_file(b, argv[i], fmt, progress, err, sizeof err) != SEQ_OK) {
            seqc_fail("%s", err);
            goto out;
        }
    }
    if (seq_build_finish(b, &rep, err, sizeof err) != SEQ_OK) {
        seqc_fail("%s", err);
        goto out;
    }
    print_report(&rep, a.out);
    rc = SEQC_EXIT_OK;
out:
    seq_build_free(b);
    seq_def_free(def);
    return rc;
}
