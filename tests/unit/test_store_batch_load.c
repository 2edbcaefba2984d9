/* Batch loads against a real store: generation rules, verification failures that change
 * nothing, coverage splitting, reclaim of replaced generations, gc after a crash; a
 * cluster node's apply (server/loads.h): only the parts it holds, the applied position in
 * the commit's write, a fill of a committed generation, a dry rollback. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/partition.h"
#include "storage/batch.h"
#include "storage/batch_file.h"
#include "storage/store.h"
#include "storage/store_int.h"
#include "testlib.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static const char *DEF =
    "{\"bucket_ms\": 3600000, \"freshness_horizon_ms\": 86400000, \"sequences\": [{"
    "\"name\": \"eng\", \"event_types\": [\"click\", \"view\"], \"max_length\": 100,"
    "\"retention_ms\": 8640000000, \"columns\": [\"dwell_ms\"]}]}";

#define H 3600000LL
#define T0 (1764000000000LL / H * H - 40 * 24 * H)

static char root[64];
static seq_def *def;

static void build(const char *name, uint64_t gen, int64_t start, int64_t end, int users,
                  int64_t t)
{
    char dir[256], in[300], err[256];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(in, sizeof in, "%s/%s.jsonl", root, name);
    FILE *f = fopen(in, "w");
    for (int u = 1; u <= users; u++)
        fprintf(f, "{\"user_id\": %d, \"event_time_ms\": %lld, \"event_type\": \"click\", "
                   "\"item_id\": %llu, \"event_id\": \"g%llu-u%d\"}\n",
                u, (long long)t, (unsigned long long)gen, (unsigned long long)gen, u);
    fclose(f);
    seq_build *b = NULL;
    CHECK(seq_build_new(def, "eng", start, end, gen, dir, 0, &b, err, sizeof err) == SEQ_OK);
    CHECK(seq_build_add_file(b, in, SEQ_FORMAT_JSON, NULL, err, sizeof err) == SEQ_OK);
    CHECK(seq_build_finish(b, NULL, err, sizeof err) == SEQ_OK);
    seq_build_free(b);
}

static int load(seq_store *st, const char *path, uint64_t gen, int64_t start, int64_t end,
                seq_load_result *res, char *err)
{
    const char *paths[1] = {path};
    seq_load_req req = {.sequence = "eng", .start_ms = start, .end_ms = end,
                        .generation = gen, .paths = paths, .n_paths = 1};
    return seq_store_load_batch(st, root, &req, res, err, 256);
}

/* The item ids user u sees from the batch, at a `now` where everything is history. */
static int read_items(seq_store *st, uint64_t user, uint64_t *items, int max)
{
    const seq_store_view *v = seq_store_view_acquire(st);
    const seq_store_seqstate *s = seq_store_view_seq(v, 0);
    seq_merge_params p = {.now_ms = T0 + 30 * 24 * H, .horizon_ms = 24 * H, .seq = &def->seqs[0],
                          .cov = s->cov, .n_cov = s->n_cov};
    seq_store_reader *r = seq_store_reader_new(st);
    seq_merge_scratch *sc = seq_merge_scratch_new();
    const seq_rec *sr, *br, *out[100];
    uint32_t ns, nb;
    char err[256];
    int n = -1;
    if (seq_store_read(r, &p, user, &sr, &ns, &br, &nb, err, sizeof err) == SEQ_OK) {
        n = (int)seq_merge_run(&p, sr, ns, br, nb, out, sc);
        for (int i = 0; i < n && i < max; i++) items[i] = out[i]->item_id;
    }
    seq_merge_scratch_free(sc);
    seq_store_reader_free(r);
    seq_store_view_release(st, v);
    return n;
}

static uint64_t committed_gen(seq_store *st)
{
    const seq_store_view *v = seq_store_view_acquire(st);
    uint64_t g = seq_store_view_seq(v, 0)->generation;
    seq_store_view_release(st, v);
    return g;
}

static int count_gen_keys(seq_store *st, uint64_t gen)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->rscan);
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_batch_prefix(k, 0, gen, 0) - 8;
    int n = 0;
    for (rocksdb_iter_seek(it, (const char *)k, kl); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t fl;
        const char *fk = rocksdb_iter_key(it, &fl);
        if (fl < kl || memcmp(fk, k, kl) != 0) break;
        n++;
    }
    rocksdb_iter_destroy(it);
    return n;
}

/* 1 when the store's staging directory holds a file (a load's verified copy), else 0. */
static int staged_left(const char *dbdir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/load-staging 2>/dev/null)\"", dbdir);
    return system(cmd) == 0 ? 0 : 1;
}

static uint64_t file_hash(const char *path)
{
    char err[256];
    uint64_t size = 0, hash = 0;
    CHECK_EQ_INT(seq_batch_file_hash(path, SEQ_BATCH_HASH_XXH3, &size, &hash, err, sizeof err),
                 SEQ_OK);
    return hash ^ size;
}

/* A staged copy is byte for byte the source, fingerprinted in the same read. */
static void stage(void)
{
    char err[256], src[300], dst[300];
    uint64_t size, hash, size2, hash2;
    build("s1", 1, T0, T0 + 24 * H, 50, T0 + 2 * H);
    snprintf(src, sizeof src, "%s/s1/part-00000.sst", root);
    snprintf(dst, sizeof dst, "%s/s1-copy.sst", root);
    for (int alg = SEQ_BATCH_HASH_FNV1A64; alg <= SEQ_BATCH_HASH_XXH3; alg++) {
        CHECK_EQ_INT(seq_batch_file_stage(src, dst, alg, &size, &hash, err, sizeof err), SEQ_OK);
        CHECK_EQ_INT(seq_batch_file_hash(src, alg, &size2, &hash2, err, sizeof err), SEQ_OK);
        CHECK(size == size2 && hash == hash2 && size > 0);
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", src, dst);
    CHECK(system(cmd) == 0);
    /* a missing source: NOT_FOUND, and no copy left behind */
    snprintf(src, sizeof src, "%s/s1/missing.sst", root);
    CHECK_EQ_INT(seq_batch_file_stage(src, dst, SEQ_BATCH_HASH_XXH3, &size, &hash, err,
                                      sizeof err),
                 SEQ_ENOTFOUND);
    /* a copy that cannot be written: an error, the source untouched */
    snprintf(src, sizeof src, "%s/s1/part-00000.sst", root);
    snprintf(dst, sizeof dst, "%s/no-such-dir/copy.sst", root);
    CHECK_EQ_INT(seq_batch_file_stage(src, dst, SEQ_BATCH_HASH_XXH3, &size, &hash, err,
                                      sizeof err),
                 SEQ_EINTERNAL);
    CHECK(strstr(err, "no-such-dir") != NULL);
}

/* The file fingerprints: published vectors (the empty input; FNV-1a 64 of "a"), and a
 * file longer than hash_fd's 1 MiB chunk hashed as one buffer by xxhash itself, so the
 * chunked update gives XXH3 of the whole file (a chunk hashed twice or skipped fails). */
static void hashes(void)
{
    char err[256], path[300];
    uint64_t size, hash;
    snprintf(path, sizeof path, "%s/hash-input", root);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fclose(f);
    CHECK_EQ_INT(seq_batch_file_hash(path, SEQ_BATCH_HASH_XXH3, &size, &hash, err, sizeof err),
                 SEQ_OK);
    CHECK(size == 0 && hash == 0x2D06800538D394C2ULL);
    f = fopen(path, "wb");
    fputc('a', f);
    fclose(f);
    CHECK_EQ_INT(seq_batch_file_hash(path, SEQ_BATCH_HASH_FNV1A64, &size, &hash, err,
                                     sizeof err),
                 SEQ_OK);
    CHECK(size == 1 && hash == 0xaf63dc4c8601ec8cULL);
    size_t n = (5u << 20) / 2 + 12345;
    uint8_t *buf = malloc(n);
    CHECK(buf != NULL);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 2654435761u >> 13);
    f = fopen(path, "wb");
    CHECK(fwrite(buf, 1, n, f) == n);
    fclose(f);
    CHECK_EQ_INT(seq_batch_file_hash(path, SEQ_BATCH_HASH_XXH3, &size, &hash, err, sizeof err),
                 SEQ_OK);
    CHECK(size == n && hash == XXH3_64bits(buf, n));
    free(buf);
    unlink(path);
}

static void loads(void)
{
    char err[256] = "", dbdir[128], p1[300], p2[300], p3[300];
    seq_store *st = NULL;
    seq_load_result res;
    uint64_t items[10];
    snprintf(dbdir, sizeof dbdir, "%s/db", root);
    seq_store_config nohist = {64, 0}; /* --history-ms 0: only --keep-generations keeps */
    CHECK(seq_store_open_cfg(dbdir, def, &nohist, &st, err, sizeof err) == SEQ_OK);
    build("p5", 5, T0, T0 + 48 * H, 3, T0 + 10 * H);
    build("p6", 6, T0 + 24 * H, T0 + 48 * H, 2, T0 + 30 * H);
    build("p7", 7, T0, T0 + 48 * H, 1, T0 + 5 * H);
    snprintf(p1, sizeof p1, "%s/p5/part-00000.sst", root);
    snprintf(p2, sizeof p2, "%s/p6/part-00000.sst", root);
    snprintf(p3, sizeof p3, "%s/p7/part-00000.sst", root);

    uint64_t h1 = file_hash(p1);
    CHECK_EQ_INT(load(st, p1, 5, T0, T0 + 48 * H, &res, err), SEQ_OK);
    CHECK(res.generation == 5 && res.files == 1 && res.users == 3 && res.events == 3);
    /* the batch job keeps its file as it was; the verified copy went into the store */
    CHECK(file_hash(p1) == h1);
    CHECK_EQ_INT(staged_left(dbdir), 0);
    CHECK_EQ_INT(committed_gen(st), 5);
    CHECK_EQ_INT(read_items(st, 2, items, 10), 1);
    CHECK_EQ_INT(items[0], 5);
    /* the same load again: OK, committed counts */
    memset(&res, 0, sizeof res);
    CHECK_EQ_INT(load(st, p1, 5, T0, T0 + 48 * H, &res, err), SEQ_OK);
    CHECK(res.generation == 5 && res.users == 3 && res.events == 3);
    /* same generation, other range; older generation */
    CHECK_EQ_INT(load(st, p1, 5, T0, T0 + 24 * H, &res, err), SEQ_EPRECONDITION);
    CHECK_EQ_INT(load(st, p1, 4, T0, T0 + 48 * H, &res, err), SEQ_EPRECONDITION);
    /* confinement and missing files */
    CHECK_EQ_INT(load(st, "/etc/passwd", 6, T0, T0 + 48 * H, &res, err), SEQ_EPERM);
    CHECK_EQ_INT(load(st, "../../etc/passwd", 6, T0, T0 + 48 * H, &res, err), SEQ_EPERM);
    CHECK_EQ_INT(load(st, "p6/missing.sst", 6, T0 + 24 * H, T0 + 48 * H, &res, err), SEQ_ENOTFOUND);
    /* a file of another build under a manifest that does not list it */
    CHECK_EQ_INT(load(st, p1, 6, T0 + 24 * H, T0 + 48 * H, &res, err), SEQ_EINVAL);
    /* corrupt the p6 file: refused, nothing changes */
    char cp[1400];
    snprintf(cp, sizeof cp, "cp %s %s.bak && printf 'XX' | dd of=%s bs=1 seek=100 conv=notrunc 2>/dev/null",
             p2, p2, p2);
    CHECK(system(cp) == 0);
    CHECK_EQ_INT(load(st, p2, 6, T0 + 24 * H, T0 + 48 * H, &res, err), SEQ_EINVAL);
    CHECK(strstr(err, "p6/part-00000.sst") != NULL);
    CHECK_EQ_INT(committed_gen(st), 5);
    CHECK_EQ_INT(staged_left(dbdir), 0); /* a refused load leaves no copy */
    snprintf(cp, sizeof cp, "mv %s.bak %s", p2, p2);
    CHECK(system(cp) == 0);
    /* gen 6 over the second day: user 3 keeps gen 5's first-day event */
    CHECK_EQ_INT(load(st, p2, 6, T0 + 24 * H, T0 + 48 * H, &res, err), SEQ_OK);
    CHECK_EQ_INT(read_items(st, 3, items, 10), 1);
    CHECK_EQ_INT(items[0], 5);
    CHECK_EQ_INT(read_items(st, 1, items, 10), 2);
    CHECK(items[0] == 6 && items[1] == 5);
    CHECK_EQ_INT(count_gen_keys(st, 5), 4); /* 3 users + the partition marker */
    /* gen 7 over both days replaces 5 and 6 entirely: with --keep-generations 0 (and no
     * history kept) both are reclaimed at once (the default keeps the last two) */
    seq_store_set_keep_generations(st, 0);
    CHECK_EQ_INT(load(st, p3, 7, T0, T0 + 48 * H, &res, err), SEQ_OK);
    CHECK_EQ_INT(read_items(st, 3, items, 10), 0);
    CHECK_EQ_INT(read_items(st, 1, items, 10), 1);
    CHECK_EQ_INT(count_gen_keys(st, 5), 0);
    CHECK_EQ_INT(count_gen_keys(st, 6), 0);
    /* an empty partition (gen 8, second day) is loadable and hides what was there */
    char p4[300];
    build("p8", 8, T0 + 24 * H, T0 + 48 * H, 0, T0 + 30 * H);
    snprintf(p4, sizeof p4, "%s/p8/part-00000.sst", root);
    CHECK_EQ_INT(load(st, p4, 8, T0 + 24 * H, T0 + 48 * H, &res, err), SEQ_OK);
    CHECK(res.users == 0 && res.events == 0 && res.files == 1);
    CHECK_EQ_INT(committed_gen(st), 8);
    CHECK_EQ_INT(read_items(st, 1, items, 10), 1);
    CHECK_EQ_INT(items[0], 7);
    seq_store_close(st);
    /* a copy staged by a load killed before ingestion goes at the next open */
    char left[300];
    snprintf(left, sizeof left, "%s/load-staging/0.sst", dbdir);
    FILE *f = fopen(left, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    CHECK_EQ_INT(staged_left(dbdir), 1);
    /* reopen: the committed state survives */
    CHECK(seq_store_open(dbdir, def, 64, &st, err, sizeof err) == SEQ_OK);
    CHECK_EQ_INT(committed_gen(st), 8);
    CHECK_EQ_INT(staged_left(dbdir), 0);
    CHECK_EQ_INT(read_items(st, 1, items, 10), 1);
    CHECK_EQ_INT(items[0], 7);
    CHECK_EQ_INT(seq_store_batch_gc(st, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(count_gen_keys(st, 7), 2);
    seq_store_close(st);
}

/* --history-ms alone (keep 0): a replaced load keeps its data until it was replaced
 * that long ago, then the sweep reclaims it (time alone, no load needed). */
static void sweep(void)
{
    char err[256] = "", dbdir[128], p1[300], p2[300];
    seq_store *st = NULL;
    seq_load_result res;
    snprintf(dbdir, sizeof dbdir, "%s/db-sweep", root);
    seq_store_config cfg = {64, 60000};
    CHECK(seq_store_open_cfg(dbdir, def, &cfg, &st, err, sizeof err) == SEQ_OK);
    if (!st) return;
    seq_store_set_keep_generations(st, 0);
    build("s20", 20, T0, T0 + 24 * H, 2, T0 + 5 * H);
    build("s21", 21, T0, T0 + 24 * H, 1, T0 + 6 * H);
    snprintf(p1, sizeof p1, "%s/s20/part-00000.sst", root);
    snprintf(p2, sizeof p2, "%s/s21/part-00000.sst", root);
    CHECK_EQ_INT(load(st, p1, 20, T0, T0 + 24 * H, &res, err), SEQ_OK);
    CHECK_EQ_INT(load(st, p2, 21, T0, T0 + 24 * H, &res, err), SEQ_OK);
    CHECK_EQ_INT(count_gen_keys(st, 20), 3); /* replaced a moment ago: kept */
    int64_t now = seq_now_ms();
    CHECK_EQ_INT(seq_store_batch_sweep(st, now, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(count_gen_keys(st, 20), 3);
    CHECK_EQ_INT(seq_store_batch_sweep(st, now + 61000, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(count_gen_keys(st, 20), 0); /* a minute later: reclaimed */
    CHECK_EQ_INT(count_gen_keys(st, 21), 2);
    CHECK_EQ_INT(committed_gen(st), 21);
    CHECK_EQ_INT(seq_store_start_sweeper(st, 10), SEQ_OK); /* runs, then stops at close */
    seq_store_close(st);
}

/* The SST files of every part of partitioned batch dir (4 parts, one file each here). */
static size_t part_paths(const char *dir, char paths[4][600])
{
    size_t n = 0;
    for (int p = 0; p < 4; p++) {
        char d[280];
        snprintf(d, sizeof d, "%s/partition-%05d", dir, p);
        DIR *dh = opendir(d);
        struct dirent *de;
        while (dh && (de = readdir(dh)))
            if (strstr(de->d_name, ".sst") && n < 4) snprintf(paths[n++], 600, "%s/%s", d, de->d_name);
        if (dh) closedir(dh);
    }
    return n;
}

/* How many live SST files of the store hold only keys of generation gen of sequence
 * seq, each at its own level below L0; -1 when one of them is in L0 or two share a level. */
static int gen_files_below_l0(seq_store *st, uint32_t seq, uint64_t gen)
{
    uint8_t m[SEQ_KEY_MAX];
    size_t ml = seq_batch_marker_key(m, seq, gen);
    const rocksdb_livefiles_t *lf = rocksdb_livefiles(st->db);
    int n = 0, levels = 0;
    for (int i = 0; lf && i < rocksdb_livefiles_count(lf); i++) {
        size_t sl, ll;
        const char *a = rocksdb_livefiles_smallestkey(lf, i, &sl);
        const char *z = rocksdb_livefiles_largestkey(lf, i, &ll);
        if (sl < ml || ll < ml || memcmp(a, m, ml) != 0 || memcmp(z, m, ml) != 0) continue;
        int lv = rocksdb_livefiles_level(lf, i);
        if (lv == 0 || (levels & (1 << lv))) n = -1000;
        levels |= 1 << lv;
        n++;
    }
    rocksdb_livefiles_destroy(lf);
    return n < 0 ? -1 : n;
}

/* 20 users built as generation gen in 4 parts under root/name; their files into paths. */
static void build_parts(const char *name, uint64_t gen, char paths[4][600])
{
    char err[256] = "", dir[200], in[220];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(in, sizeof in, "%s/%s.jsonl", root, name);
    FILE *f = fopen(in, "w");
    for (int u = 1; u <= 20; u++)
        fprintf(f, "{\"user_id\": %d, \"event_time_ms\": %lld, \"event_type\": \"click\", "
                   "\"item_id\": %d, \"event_id\": \"c-u%d\"}\n", u, (long long)(T0 + 2 * H),
                (int)gen, u);
    fclose(f);
    seq_build *b = NULL;
    CHECK(seq_build_new(def, "eng", T0, T0 + 24 * H, gen, dir, 0, &b, err, sizeof err) == SEQ_OK);
    CHECK(seq_build_set_partitions(b, 4, NULL, err, sizeof err) == SEQ_OK);
    CHECK(seq_build_add_file(b, in, SEQ_FORMAT_JSON, NULL, err, sizeof err) == SEQ_OK);
    CHECK(seq_build_finish(b, NULL, err, sizeof err) == SEQ_OK);
    seq_build_free(b);
    CHECK_EQ_INT(part_paths(dir, paths), 4);
}

static void cluster_apply(void)
{
    char err[256] = "", dbdir[128], paths[4][600], paths4[4][600];
    const char *pp[4];
    seq_store *st = NULL;
    seq_load_result res;
    uint64_t items[10], gen = 0, from = 0;
    snprintf(dbdir, sizeof dbdir, "%s/db-cluster", root);
    CHECK(seq_store_open(dbdir, def, 64, &st, err, sizeof err) == SEQ_OK);
    if (!st) return;
    CHECK_EQ_INT(seq_store_loads_next(st), 0);
    build_parts("cp", 3, paths);
    for (int i = 0; i < 4; i++) pp[i] = paths[i];
    uint64_t u0 = 0, u1 = 0, in0 = 0; /* a user of partition 0, one of partition 1 */
    for (uint64_t u = 20; u >= 1; u--) {
        uint32_t p = seq_partition_of_user(u, 4);
        if (p == 0) u0 = u, in0++;
        if (p == 1) u1 = u;
    }
    CHECK(u0 && u1);
    /* this node holds partition 0 only: that part is ingested, the position written */
    uint8_t only0[4] = {1, 0, 0, 0}, only1[4] = {0, 1, 0, 0};
    seq_load_req req = {.sequence = "eng", .start_ms = T0, .end_ms = T0 + 24 * H,
                        .generation = 3, .paths = pp, .n_paths = 4, .partitions = 4,
                        .only_parts = only0, .loads_next = 5};
    CHECK_EQ_INT(seq_store_load_batch(st, root, &req, &res, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(res.files, 1);
    CHECK_EQ_INT(res.users, in0);
    CHECK_EQ_INT(committed_gen(st), 3);
    CHECK_EQ_INT(seq_store_loads_next(st), 5);
    CHECK_EQ_INT(read_items(st, u0, items, 10), 1);
    CHECK_EQ_INT(read_items(st, u1, items, 10), 0);
    /* partition 1 acquired later: a fill adds its part to generation 3, no commit; the
     * whole batch is still checked (a part missing from the request is refused) */
    req.only_parts = only1, req.loads_next = 0, req.fill = 1, req.n_paths = 3;
    CHECK_EQ_INT(seq_store_load_batch(st, root, &req, &res, err, sizeof err), SEQ_EPRECONDITION);
    CHECK(strstr(err, "not whole") != NULL);
    CHECK_EQ_INT(read_items(st, u1, items, 10), 0);
    req.n_paths = 4;
    CHECK_EQ_INT(seq_store_load_batch(st, root, &req, &res, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(res.files, 1);
    CHECK_EQ_INT(read_items(st, u1, items, 10), 1);
    CHECK_EQ_INT(items[0], 3);
    CHECK_EQ_INT(read_items(st, u0, items, 10), 1);
    CHECK_EQ_INT(seq_store_loads_next(st), 5);
    /* nothing to fill for a generation the history does not have */
    req.generation = 9;
    CHECK_EQ_INT(seq_store_load_batch(st, root, &req, &res, err, sizeof err), SEQ_EPRECONDITION);
    /* a dry rollback changes nothing and says what it would do */
    CHECK_EQ_INT(seq_store_rollback_ex(st, "eng", 0, 1, 0, &gen, &from, err, sizeof err), SEQ_OK);
    CHECK(gen == 0 && from == 3);
    CHECK_EQ_INT(committed_gen(st), 3);
    CHECK_EQ_INT(seq_store_rollback_ex(st, "eng", 3, 1, 0, &gen, &from, err, sizeof err), 1);
    /* the real one writes the position with its commit */
    CHECK_EQ_INT(seq_store_rollback_ex(st, "eng", 0, 0, 7, &gen, NULL, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(committed_gen(st), 0);
    /* a node that holds every partition ingests the 4 parts (they overlap in key order:
     * each starts with the marker key, and users interleave): each part stays the file
     * it was, at a level of its own below L0. Ingested together they went to L0, where a
     * compaction merged them (store_load.c ingest). */
    build_parts("cp4", 4, paths4);
    const char *pp4[4] = {paths4[0], paths4[1], paths4[2], paths4[3]};
    seq_load_req all = {.sequence = "eng", .start_ms = T0, .end_ms = T0 + 24 * H,
                        .generation = 4, .paths = pp4, .n_paths = 4, .partitions = 4};
    CHECK_EQ_INT(seq_store_load_batch(st, root, &all, &res, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(res.files, 4);
    CHECK_EQ_INT(gen_files_below_l0(st, def->seqs[0].id, 4), 4);
    CHECK_EQ_INT(committed_gen(st), 4);
    seq_store_close(st);
    CHECK(seq_store_open(dbdir, def, 64, &st, err, sizeof err) == SEQ_OK);
    if (!st) return;
    CHECK_EQ_INT(seq_store_loads_next(st), 7);
    CHECK_EQ_INT(seq_store_set_loads_next(st, 9, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_store_loads_next(st), 9);
    seq_store_close(st);
}

int main(void)
{
    char err[256];
    snprintf(root, sizeof root, "/tmp/seqd-load-XXXXXX");
    if (!mkdtemp(root)) return 1;
    if (seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) != SEQ_OK) return 1;
    RUN(hashes);
    RUN(stage);
    RUN(loads);
    RUN(sweep);
    RUN(cluster_apply);
    seq_def_free(def);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) return 1;
    return seq_t_done();
}
