/* What travels with a batch partition and what a load checks: manifest.json (written by the builder, read by the loader) and file fingerprints.
 * Shared by storage/batch_build.c and the loader. */
#ifndef SEQ_BATCH_FILE_H
#define SEQ_BATCH_FILE_H

#include <jansson.h>
#include <stdint.h>

#include "../engine/common.h"
#include "../engine/def.h"
#include "keys.h"

#define SEQ_BATCH_MANIFEST "manifest.json"
#define SEQ_BATCH_FORMAT "seqd-batch-1"
#define SEQ_BATCH_KEY_LEN SEQ_KEY_BATCH_LEN /* keys are storage/keys.h's seq_key_batch */
#define SEQ_BATCH_MARKER_LEN 13

/* The partition marker: 'b' be32 seq be64 gen, 13 bytes, sorting before every user key of
 * the generation, so a reader's seek to (seq, gen, user) never lands on it; its value is a
 * JSON summary (sequence, range, generation, fingerprint). The first SST of a build starts
 * with it, so an empty partition is still one loadable file. */
size_t seq_batch_marker_key(uint8_t *k, uint32_t seq, uint64_t gen);

/* A file's fingerprint: "xxh3_64" in the manifest (XXH3 64-bit, seed 0, xxhash's; what
 * builds write since session 7: ~10x faster than the byte loop of FNV-1a, which was 16 %
 * of a cluster load's CPU, bench/NOTES.md) or "fnv1a64" (FNV-1a 64: batches built
 * before, still loadable). A load checks each file with its manifest entry's. */
typedef enum { SEQ_BATCH_HASH_FNV1A64 = 0, SEQ_BATCH_HASH_XXH3 = 1 } seq_batch_hash_alg;

typedef struct {
    char name[64];
    uint64_t size, hash; /* of the file's bytes, by hash_alg */
    seq_batch_hash_alg hash_alg;
    uint64_t users, events;
    uint8_t first_key[SEQ_BATCH_KEY_LEN], last_key[SEQ_BATCH_KEY_LEN];
    uint32_t first_key_len, last_key_len;
} seq_batch_file_info;

typedef struct {
    char sequence[256];
    int64_t start_ms, end_ms;
    uint64_t generation, users, events;
    json_t *files;      /* array of file objects (seq_batch_file_to_json); borrowed */
    seq_def *def;       /* the builder's definition, when read; owned by the manifest */
    char fingerprint[17];
    uint32_t partitions; /* 0: not partitioned; else P of a partitioned batch (batch_parts.h) */
    uint32_t partition;  /* this part's partition, < partitions */
} seq_batch_manifest;

int seq_batch_file_hash(const char *path, seq_batch_hash_alg alg, uint64_t *size,
                        uint64_t *hash, char *err, size_t errlen);
/* Copies path to `copy` (created or truncated, then synced) and fingerprints the bytes
 * in the same read, so a load verifies and ingests exactly the bytes it hashed, in a
 * file nobody else writes. On failure `copy` is removed. NOT_FOUND when path is absent. */
int seq_batch_file_stage(const char *path, const char *copy, seq_batch_hash_alg alg,
                         uint64_t *size, uint64_t *hash, char *err, size_t errlen);
/* A manifest's file entry: the hash under "xxh3_64" or "fnv1a64" by f->hash_alg. */
json_t *seq_batch_file_to_json(const seq_batch_file_info *f);
/* SEQ_OK, or SEQ_EINVAL: not an entry with every field, or with both hashes or none. */
int seq_batch_file_from_json(json_t *o, seq_batch_file_info *f, char *err, size_t errlen);

int seq_batch_manifest_write(const char *dir, const seq_batch_manifest *m, const seq_def *def,
                             char *err, size_t errlen);
/* Parses manifest text (name: what messages call it). Same ownership as _read. */
int seq_batch_manifest_parse(const char *text, size_t len, const char *name,
                             seq_batch_manifest *m, char *err, size_t errlen);
/* Reads dir/manifest.json. On success m->files is a new reference and m->def a parsed
 * definition: release both with seq_batch_manifest_clear. */
int seq_batch_manifest_read(const char *dir, seq_batch_manifest *m, char *err, size_t errlen);
void seq_batch_manifest_clear(seq_batch_manifest *m);

#endif
