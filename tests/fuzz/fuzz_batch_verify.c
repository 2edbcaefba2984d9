/* libFuzzer entry for the verification of a load (storage/batch_verify.c): a partition
 * directory (manifest.json + one SST file, made once by the real builder) whose manifest
 * or SST bytes the fuzzer replaces, then seq_batch_verify as LoadBatch runs it.
 * Input: byte 0 picks what the rest is:
 *   even: the manifest.json text (the SST stays the builder's);
 *   odd:  the SST file's bytes; the builder's manifest is patched to the new size and
 *         xxh3 hash, so the fuzzer gets past the fingerprint check into the SST reader
 *         and the per-entry checks (keys, blobs, range, generation); with bit 1 set too,
 *         the request says these bytes were verified whole (seq_load_req.verified, a
 *         cluster record's sums), so only their structure and first and last keys are
 *         read (seq_sst_bounds).
 * A verify that succeeds must report the files it was given. Seeds: corpus_batch_verify/,
 * written by running the target once with SEQD_FUZZ_SEEDS=DIR (the fixture's own bytes). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/def.h"
#include "storage/batch.h"
#include "storage/batch_file.h"

#define HOUR 3600000LL
#define START (480000 * HOUR) /* a fixed, bucket-aligned range in 2024 */
#define END (START + 4 * HOUR)
#define GEN 7

static const char DEF[] =
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":3600000,\"sequences\":["
    "{\"name\":\"eng\",\"event_types\":[\"click\",\"view\"],\"max_length\":50,"
    "\"retention_ms\":172800000,\"columns\":[\"dwell_ms\"]}]}";

static seq_def *def;
static char root[64], part[128], stage[128], sst_name[64];
static char *manifest; /* the builder's manifest.json */

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) abort();
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    char *s = calloc(1, 1 << 20);
    size_t n = s ? fread(s, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!n) abort();
    return s;
}

/* Builds the fixture: 40 events of 5 users in [START, END) through seq_build. */
static void setup(void)
{
    char err[256], path[256], line[256];
    snprintf(root, sizeof root, "/tmp/seqd-fuzz-verify-XXXXXX");
    if (!mkdtemp(root) || seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err)) abort();
    snprintf(path, sizeof path, "%s/in.jsonl", root);
    FILE *f = fopen(path, "w");
    if (!f) abort();
    for (int i = 0; i < 40; i++) {
        snprintf(line, sizeof line,
                 "{\"user_id\":%d,\"event_time_ms\":%lld,\"event_type\":\"%s\",\"item_id\":%d,"
                 "\"attributes\":{\"dwell_ms\":%d}}\n",
                 1 + i % 5, (long long)(START + i * (HOUR / 10)), i % 2 ? "view" : "click", i,
                 i * 10);
        fputs(line, f);
    }
    fclose(f);
    snprintf(part, sizeof part, "%s/part", root);
    snprintf(stage, sizeof stage, "%s/stage", root); /* outside the batch root's part */
    if (mkdir(stage, 0755) != 0) abort();
    seq_build *b = NULL;
    seq_build_report rep;
    if (seq_build_new(def, "eng", START, END, GEN, part, 0, &b, err, sizeof err) ||
        seq_build_add_file(b, path, SEQ_FORMAT_JSON, NULL, err, sizeof err) ||
        seq_build_finish(b, &rep, err, sizeof err) || rep.files != 1)
        abort();
    seq_build_free(b);
    snprintf(path, sizeof path, "%s/%s", part, SEQ_BATCH_MANIFEST);
    manifest = read_text(path);
    json_t *m = json_loads(manifest, 0, NULL);
    const char *name = json_string_value(json_object_get(json_array_get(json_object_get(m, "files"), 0), "name"));
    if (!name) abort();
    snprintf(sst_name, sizeof sst_name, "%s", name);
    json_decref(m);
}

/* The builder's manifest with file 0's size and hash set to those of the file now on disk. */
static void patch_manifest(const char *sst_path, const char *manifest_path)
{
    char err[256], h[17];
    uint64_t size, hash;
    if (seq_batch_file_hash(sst_path, SEQ_BATCH_HASH_XXH3, &size, &hash, err, sizeof err))
        abort();
    snprintf(h, sizeof h, "%016" PRIx64, hash);
    json_t *m = json_loads(manifest, 0, NULL);
    json_t *f0 = json_array_get(json_object_get(m, "files"), 0);
    json_object_set_new(f0, "size", json_integer((json_int_t)size));
    json_object_del(f0, "fnv1a64");
    json_object_set_new(f0, "xxh3_64", json_string(h));
    if (json_dump_file(m, manifest_path, 0) != 0) abort();
    json_decref(m);
}

static void dump_one(const char *dir, const char *name, uint8_t mode, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf = malloc(n + 1);
    if (!buf) abort();
    buf[0] = mode;
    memcpy(buf + 1, p, n);
    write_file(path, buf, n + 1);
    free(buf);
}

static void dump_seeds(const char *dir, const char *sst, size_t sst_len)
{
    dump_one(dir, "manifest", 0, manifest, strlen(manifest));
    dump_one(dir, "sst", 1, sst, sst_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *sst; /* the builder's SST bytes, restored before each run */
    static size_t sst_len;
    char err[512], sst_path[256], man_path[256];
    if (!def) setup();
    snprintf(sst_path, sizeof sst_path, "%s/%s", part, sst_name);
    snprintf(man_path, sizeof man_path, "%s/%s", part, SEQ_BATCH_MANIFEST);
    if (!sst) {
        FILE *f = fopen(sst_path, "rb");
        if (!f || !(sst = malloc(1 << 22))) abort();
        sst_len = fread(sst, 1, 1 << 22, f);
        fclose(f);
    }
    const char *seeds = getenv("SEQD_FUZZ_SEEDS");
    if (seeds) dump_seeds(seeds, sst, sst_len);
    if (size < 1) return 0;
    if (data[0] & 1) {
        write_file(sst_path, data + 1, size - 1);
        patch_manifest(sst_path, man_path);
    } else {
        write_file(sst_path, sst, sst_len);
        write_file(man_path, data + 1, size - 1);
    }
    char rel[128];
    snprintf(rel, sizeof rel, "part/%s", sst_name);
    const char *paths[] = {rel};
    seq_load_req req = {.sequence = "eng", .start_ms = START, .end_ms = END, .generation = GEN,
                        .paths = paths, .n_paths = 1};
    uint64_t sums[2];
    if ((data[0] & 3) == 3) { /* as a cluster record says the receiver verified these bytes:
                                 only the SST's structure and key bounds are read */
        if (seq_batch_file_hash(sst_path, SEQ_BATCH_HASH_XXH3, &sums[0], &sums[1], err,
                                sizeof err))
            abort();
        req.verified = sums;
    }
    char **resolved = NULL;
    seq_load_result res;
    int rc = seq_batch_verify(def, root, stage, &req, &resolved, &res, err, sizeof err);
    if (getenv("SEQD_FUZZ_VERBOSE")) fprintf(stderr, "verify: %d %s\n", rc, rc ? err : "ok");
    char staged[192];
    snprintf(staged, sizeof staged, "%s/0.sst", stage);
    if (rc != SEQ_OK && access(staged, F_OK) == 0) abort(); /* a refused load leaves no copy */
    if (rc == SEQ_OK) {
        if (res.files != 1 || res.generation != GEN || !resolved || !resolved[0]) abort();
        if (strcmp(resolved[0], staged) != 0 || unlink(staged) != 0) abort();
        free(resolved[0]);
        free(resolved);
    }
    return 0;
}
