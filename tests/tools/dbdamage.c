/* dbdamage: damages stored stream data of a stopped seqd on purpose, for the integration
 * tests of issue 10 (fail safe on bad stored data). Opens the data dir with the store's
 * own options (definition compatible, layout as stored) and overwrites every stream bucket
 * of one user in one sequence with bytes that do not decode.
 *   dbdamage DATA_DIR DEFINITION.json SEQUENCE USER   prints the number of buckets hit */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: dbdamage DATA_DIR DEFINITION.json SEQUENCE USER\n");
        return 2;
    }
    seq_def *def = NULL;
    seq_store *st = NULL;
    char err[512];
    if (seq_def_load_file(argv[2], &def, err, sizeof err) != SEQ_OK ||
        seq_store_open(argv[1], def, 16, &st, err, sizeof err) != SEQ_OK) {
        fprintf(stderr, "dbdamage: %s\n", err);
        return 1;
    }
    const seq_sequence *seq = NULL;
    for (uint32_t i = 0; i < def->n_seqs; i++)
        if (strcmp(def->seqs[i].name, argv[3]) == 0) seq = &def->seqs[i];
    uint64_t user = strtoull(argv[4], NULL, 10);
    if (!seq) {
        fprintf(stderr, "dbdamage: no sequence %s\n", argv[3]);
        return 1;
    }
    uint8_t pre[SEQ_KEY_MAX];
    size_t pl = seq_key_user_prefix(pre, SEQ_K_STREAM, seq_store_part_of(st, user), seq->id, user);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(seq_store_db(st), ro);
    int hit = 0;
    static const char junk[] = "\x02\x00\x00\x00\x07\x00\x00\x00damaged";
    for (rocksdb_iter_seek(it, (const char *)pre, pl); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < pl || memcmp(k, pre, pl) != 0) break;
        char *e = NULL;
        rocksdb_put(seq_store_db(st), wo, k, kl, junk, sizeof junk - 1, &e);
        if (e) {
            fprintf(stderr, "dbdamage: %s\n", e);
            return 1;
        }
        hit++;
    }
    rocksdb_iter_destroy(it);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_readoptions_destroy(ro);
    seq_store_close(st);
    seq_def_free(def);
    printf("%d\n", hit);
    return 0;
}
