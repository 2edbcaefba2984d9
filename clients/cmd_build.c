/* seqctl build: builds one batch (sequence, [start, end), generation) from JSON Lines,
 * length-delimited protobuf or Avro container event files into SST files and a manifest, or, with
 * --partitions P, into one part per Kafka partition (some of them with --only-partitions),
 * through the same decoders and executor as the server's stream path (storage/batch.h).
 * Progress and the report go to stderr; a one-line JSON summary to stdout. */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "engine/def.h"
#include "seqctl.h"
#include "storage/batch.h"
#include "storage/batch_parts.h"

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
            "%llu duplicate ids, %llu of other builders' partitions; %u sorted run(s) "
            "spilled; %u part(s)\n",
            (unsigned long long)r->records, (unsigned long long)r->events,
            (unsigned long long)r->users, out, r->files, (unsigned long long)r->malformed,
            (unsigned long long)r->out_of_range, (unsigned long long)r->unknown_type,
            (unsigned long long)r->filtered, (unsigned long long)r->duplicates,
            (unsigned long long)r->other_partitions, r->runs, r->parts);
    for (uint32_t i = 0; i < r->n_notes; i++) fprintf(stderr, "  %s\n", r->notes[i]);
    printf("{\"records\":%llu,\"events\":%llu,\"users\":%llu,\"files\":%u,\"malformed\":%llu,"
           "\"out_of_range\":%llu,\"unknown_type\":%llu,\"filtered\":%llu,\"duplicates\":%llu,"
           "\"spilled_runs\":%u,\"parts\":%u,\"other_partitions\":%llu}\n",
           (unsigned long long)r->records, (unsigned long long)r->events,
           (unsigned long long)r->users, r->files, (unsigned long long)r->malformed,
           (unsigned long long)r->out_of_range, (unsigned long long)r->unknown_type,
           (unsigned long long)r->filtered, (unsigned long long)r->duplicates, r->runs,
           r->parts, (unsigned long long)r->other_partitions);
}

typedef struct {
    const char *def_path, *sequence, *out, *format, *only;
    int64_t start, end;
    uint64_t gen, mem_mb, partitions;
    int have_start, have_end, have_gen, have_parts;
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
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "partitions", &v)) == 1)
            r = seqc_parse_u64(v, &a->partitions) == 0 ? (a->have_parts = 1) : -2;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "only-partitions", &v)) == 1)
            a->only = v;
        if (r == -1) return seqc_usage_error("%s needs a value", argv[i]);
        if (r == -2) return seqc_usage_error("%s: not a number", argv[i]);
        if (r == 0) return seqc_usage_error("build: unknown option %s", argv[i]);
    }
    if (!a->def_path || !a->sequence || !a->out || !a->have_start || !a->have_end ||
        !a->have_gen)
        return seqc_usage_error("build needs --definition, --sequence, --start-ms, --end-ms, "
                                "--generation and --out");
    if (strcmp(a->format, "jsonl") != 0 && strcmp(a->format, "pb") != 0 &&
        strcmp(a->format, "avro") != 0)
        return seqc_usage_error("build: --format is jsonl, pb or avro");
    if ((a->have_parts && (a->partitions < 1 || a->partitions > SEQ_PARTS_MAX)) ||
        (a->only && !a->have_parts))
        return seqc_usage_error("build: --partitions is 1..%d; --only-partitions needs it",
                                SEQ_PARTS_MAX);
    if (i >= argc) return seqc_usage_error("build: no input files");
    *first_input = i;
    return SEQC_EXIT_OK;
}

static int set_partitions(seq_build *b, const build_args *a)
{
    char err[512];
    uint8_t *sel = NULL;
    int rc = SEQC_EXIT_FAIL;
    if (a->only) {
        if (!(sel = malloc(a->partitions))) return seqc_fail("out of memory");
        if (seq_parts_parse_list(a->only, (uint32_t)a->partitions, sel, err, sizeof err)) {
            rc = seqc_usage_error("build: --only-partitions: %s", err);
            goto out;
        }
    }
    if (seq_build_set_partitions(b, (uint32_t)a->partitions, sel, err, sizeof err) != SEQ_OK) {
        seqc_fail("%s", err);
        goto out;
    }
    rc = SEQC_EXIT_OK;
out:
    free(sel);
    return rc;
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
    if (a.partitions && (rc = set_partitions(b, &a)) != SEQC_EXIT_OK) goto out;
    rc = SEQC_EXIT_FAIL;
    seq_format fmt = strcmp(a.format, "pb") == 0     ? SEQ_FORMAT_PROTOBUF
                     : strcmp(a.format, "avro") == 0 ? SEQ_FORMAT_AVRO
                                                     : SEQ_FORMAT_JSON;
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
