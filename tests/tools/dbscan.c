/* dbscan: read-only views of what the batch path wrote, for the integration tests.
 *   dbscan DATA_DIR      a stopped seqd's data dir: one line "SEQ GEN KEYS" per batch
 *                        generation that still has keys (crash tests: what a killed load
 *                        left behind is removed at the next start by batch gc)
 *   dbscan --sst FILE    every entry of an SST file as "KEYHEX VALHEX", in key order
 *                        (two builds of one input compare equal by content, whatever
 *                        their file properties) */
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "storage/sst_reader.h"

static void print_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)p[i]);
}

static int print_entry(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)ctx;
    print_hex(key, klen);
    putchar(' ');
    print_hex(val, vlen);
    putchar('\n');
    return 0;
}

static int dump_sst(const char *path)
{
    char err[400];
    if (seq_sst_scan(path, print_entry, NULL, err, sizeof err) == 0) return 0;
    fprintf(stderr, "dbscan: %s\n", err);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--sst") == 0) return dump_sst(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: dbscan DATA_DIR | dbscan --sst FILE\n");
        return 2;
    }
    char *e = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_t *db = rocksdb_open_for_read_only(o, argv[1], 0, &e);
    if (e) {
        fprintf(stderr, "dbscan: %s: %s\n", argv[1], e);
        free(e);
        rocksdb_options_destroy(o);
        return 1;
    }
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(ro, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
    uint32_t cur_seq = 0;
    uint64_t cur_gen = 0, keys = 0;
    for (rocksdb_iter_seek(it, "b", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl < 13 || k[0] != 'b') break;
        uint32_t seq = seq_get_be32(k + 1);
        uint64_t gen = seq_get_be64(k + 5);
        if (keys && (seq != cur_seq || gen != cur_gen)) {
            printf("%u %llu %llu\n", cur_seq, (unsigned long long)cur_gen, (unsigned long long)keys);
            keys = 0;
        }
        cur_seq = seq, cur_gen = gen, keys++;
    }
    if (keys) printf("%u %llu %llu\n", cur_seq, (unsigned long long)cur_gen, (unsigned long long)keys);
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    if (e) {
        fprintf(stderr, "dbscan: %s\n", e);
        free(e);
        return 1;
    }
    return 0;
}
