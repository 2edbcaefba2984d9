/* Batch builder: shared executor applied, dedup (last input copy wins), counts with
 * line numbers, SST contents in key order, manifest, spilled runs equal to in-memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/blob.h"
#include "storage/batch.h"
#include "storage/batch_file.h"
#include "storage/sst_reader.h"
#include "testlib.h"

static const char *DEF =
    "{\"bucket_ms\": 3600000, \"freshness_horizon_ms\": 86400000, \"sequences\": [{"
    "\"name\": \"eng\", \"event_types\": [\"click\", \"view\"], \"max_length\": 100,"
    "\"retention_ms\": 864000000, \"columns\": [\"dwell_ms\"],"
    "\"filters\": [{\"attribute\": \"dwell_ms\", \"op\": \">=\", \"value\": 500,"
    " \"event_types\": [\"view\"]}]}]}";

#define H 3600000LL
#define T0 (1764000000000LL / H * H)

typedef struct {
    int n, markers;
    uint64_t users[64];
    int64_t buckets[64];
    uint32_t counts[64];
    char ids[64][16];
} scan_out;

static int on_entry(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    scan_out *o = ctx;
    seq_key key;
    uint8_t marker[SEQ_KEY_MAX];
    size_t ml = seq_batch_marker_key(marker, 0, 5);
    if (kl == ml && memcmp(k, marker, ml) == 0) {
        o->markers++;
        return strstr(v, "\"generation\":5") && vl ? 0 : 9;
    }
    if (seq_key_parse(k, kl, &key) != 0 || key.kind != SEQ_K_BATCH) return 7;
    uint32_t seq = key.seq;
    uint64_t gen = key.gen, user = key.user;
    int64_t bucket = key.bucket;
    if (o->n >= 64 || gen != 5 || seq != 0) return 8;
    o->users[o->n] = user;
    o->buckets[o->n] = bucket;
    o->counts[o->n] = seq_blob_count(v, vl);
    seq_blob_iter it;
    seq_rec r;
    seq_blob_iter_init(&it, v, vl);
    if (seq_blob_iter_next(&it, &r) == 1)
        snprintf(o->ids[o->n], sizeof o->ids[0], "%.*s", (int)r.id_len, r.id);
    o->n++;
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void build_once(const char *dir, size_t mem_limit, scan_out *o, seq_build_report *rep)
{
    seq_def *def = NULL;
    char err[256] = "";
    CHECK(seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) == SEQ_OK);
    char in[512];
    snprintf(in, sizeof in, "%s.in.jsonl", dir);
    char text[4096];
    snprintf(text, sizeof text,
             "{\"user_id\": 2, \"event_time_ms\": %lld, \"event_type\": \"click\", \"item_id\": 1, \"event_id\": \"a\"}\n"
             "{\"user_id\": 1, \"event_time_ms\": %lld, \"event_type\": \"click\", \"item_id\": 2, \"event_id\": \"b\"}\n"
             "not json\n"
             "{\"user_id\": 1, \"event_time_ms\": %lld, \"event_type\": \"click\", \"item_id\": 3, \"event_id\": \"c\"}\n"
             "{\"user_id\": 1, \"event_time_ms\": %lld, \"event_type\": \"save\", \"item_id\": 3}\n"
             "{\"user_id\": 1, \"event_time_ms\": %lld, \"event_type\": \"view\", \"item_id\": 4, \"attributes\": {\"dwell_ms\": 10}}\n"
             "\n"
             "{\"user_id\": 1, \"event_time_ms\": %lld, \"event_type\": \"click\", \"item_id\": 5, \"event_id\": \"b\"}\n"
             "{\"user_id\": 1, \"event_time_ms\": %lld, \"event_type\": \"click\", \"item_id\": 6, \"event_id\": \"z\"}\n",
             T0 + 10, T0 + 20, T0 + H + 5, T0 + 30, T0 + 40, T0 + 2 * H + 1, T0 + 99 * H);
    write_file(in, text);
    seq_build *b = NULL;
    CHECK(seq_build_new(def, "eng", T0, T0 + 24 * H, 5, dir, mem_limit, &b, err, sizeof err) ==
          SEQ_OK);
    CHECK(seq_build_add_file(b, in, SEQ_FORMAT_JSON, NULL, err, sizeof err) == SEQ_OK);
    CHECK(seq_build_finish(b, rep, err, sizeof err) == SEQ_OK);
    if (err[0]) fprintf(stderr, "build: %s\n", err);
    seq_build_free(b);
    char sst[600];
    snprintf(sst, sizeof sst, "%s/part-00000.sst", dir);
    memset(o, 0, sizeof *o);
    CHECK(seq_sst_scan(sst, on_entry, o, err, sizeof err) == 0);
    seq_batch_manifest m;
    CHECK(seq_batch_manifest_read(dir, &m, err, sizeof err) == SEQ_OK);
    CHECK(strcmp(m.sequence, "eng") == 0 && m.generation == 5 && m.users == 2 && m.events == 3);
    CHECK(json_array_size(m.files) == 1);
    seq_batch_manifest_clear(&m);
    unlink(in);
    seq_def_free(def);
}

static void builds(void)
{
    char dir[] = "/tmp/seqd-build-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char d1[300], d2[300];
    snprintf(d1, sizeof d1, "%s/mem", dir);
    snprintf(d2, sizeof d2, "%s/spill", dir);
    scan_out a, b;
    seq_build_report ra, rb;
    build_once(d1, 0, &a, &ra);
    build_once(d2, 64, &b, &rb); /* 64 bytes: every record spills its own run */
    CHECK_EQ_INT(ra.records, 8);
    CHECK_EQ_INT(ra.malformed, 1);
    CHECK_EQ_INT(ra.unknown_type, 1);
    CHECK_EQ_INT(ra.filtered, 1);
    CHECK_EQ_INT(ra.out_of_range, 1);
    CHECK_EQ_INT(ra.duplicates, 1);
    CHECK_EQ_INT(ra.events, 3);
    CHECK_EQ_INT(ra.users, 2);
    CHECK(ra.n_notes >= 3 && strstr(ra.notes[0], ".in.jsonl:3:") != NULL);
    /* user 1: bucket T0+2H (b moved there, the last copy), bucket T0+H (c); user 2: a */
    CHECK_EQ_INT(a.n, 3);
    CHECK_EQ_INT(a.markers, 1);
    CHECK(a.users[0] == 1 && a.buckets[0] == T0 / H + 2 && strcmp(a.ids[0], "b") == 0);
    CHECK(a.users[1] == 1 && a.buckets[1] == T0 / H + 1 && strcmp(a.ids[1], "c") == 0);
    CHECK(a.users[2] == 2 && a.buckets[2] == T0 / H && a.counts[2] == 1);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK_EQ_INT(rb.events, 3);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void bad_args(void)
{
    seq_def *def = NULL;
    seq_build *b = NULL;
    char err[256];
    seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err);
    CHECK(seq_build_new(def, "nope", T0, T0 + H, 1, "/tmp/x", 0, &b, err, sizeof err) ==
          SEQ_ENOTFOUND);
    CHECK(seq_build_new(def, "eng", T0 + 1, T0 + H, 1, "/tmp/x", 0, &b, err, sizeof err) ==
          SEQ_EINVAL);
    CHECK(strstr(err, "aligned") != NULL);
    seq_def_free(def);
}

static int never(void *c, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)c, (void)k, (void)kl, (void)v, (void)vl;
    return 0;
}

static void corrupt_sst(void)
{
    char path[] = "/tmp/seqd-notsst-XXXXXX";
    int fd = mkstemp(path);
    CHECK(write(fd, "this is not an sst file at all, not even close........", 55) == 55);
    close(fd);
    char err[256] = "";
    CHECK(seq_sst_scan(path, never, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, path) != NULL);
    unlink(path);
}

int main(void)
{
    RUN(builds);
    RUN(bad_args);
    RUN(corrupt_sst);
    return seq_t_done();
}
