/* Partitioned batches (seqctl build --partitions P): one batch split into P parts by
 * Kafka's murmur2 of the user id (engine/partition.h), so that each node of a cluster
 * loads only the partitions it holds and several builders can each write some parts.
 *
 * Layout of a partitioned batch directory OUT:
 *   OUT/batch.json                     what tells a loader the batch is whole: format,
 *                                      sequence, start_ms, end_ms, generation, fingerprint
 *                                      (the builder's definition), partitions (P), parts
 *                                      (the P part directory names, in partition order)
 *   OUT/partition-NNNNN/manifest.json  the part's own manifest (batch_file.h), with
 *                                      "partitions": P and "partition": N added
 *   OUT/partition-NNNNN/part-*.sst     the part's files; an empty partition is one file
 *                                      holding only the partition marker
 * Every builder writing into OUT writes the same batch.json (and refuses to build when
 * one describing another batch is there). A load (batch_verify.c) takes the files of all
 * parts and checks that they make the batch batch.json describes. */
#ifndef SEQ_BATCH_PARTS_H
#define SEQ_BATCH_PARTS_H

#include <stddef.h>
#include <stdint.h>

#define SEQ_BATCH_DESC "batch.json"
#define SEQ_BATCH_DESC_FORMAT "seqd-batch-parts-1"
#define SEQ_PARTS_MAX 65536 /* partitions of a batch; the builder keeps a part in 16 bits */

typedef struct {
    char sequence[256];
    int64_t start_ms, end_ms;
    uint64_t generation;
    char fingerprint[17]; /* 16 lowercase hex digits */
    uint32_t partitions;
} seq_batch_desc;

/* "partition-NNNNN" (at least five digits) into out. */
void seq_parts_dir_name(char *out, size_t outlen, uint32_t part);

/* Parses LIST (comma-separated partitions and inclusive ranges: "0-3,7") for a batch of
 * P partitions into sel[0..P) (1 = selected). SEQ_EINVAL with a message on a malformed
 * list, a partition >= P or an empty range. */
int seq_parts_parse_list(const char *list, uint32_t partitions, uint8_t *sel, char *err,
                         size_t errlen);

/* batch.json text <-> desc. parse: SEQ_EINVAL with a message on anything but a
 * well-formed description (P in 1..SEQ_PARTS_MAX, parts named as seq_parts_dir_name in
 * order). */
int seq_batch_desc_parse(const char *text, size_t len, seq_batch_desc *d, char *err,
                         size_t errlen);
/* Reads dir/batch.json: SEQ_ENOTFOUND when absent, SEQ_EINVAL when malformed. */
int seq_batch_desc_read(const char *dir, seq_batch_desc *d, char *err, size_t errlen);
/* Writes dir/batch.json unless an identical one is there (atomically: a unique temporary
 * file renamed, so builders racing on a shared directory leave one whole file). SEQ_EINVAL
 * when the one there describes another batch; SEQ_EINTERNAL on I/O errors. */
int seq_batch_desc_write(const char *dir, const seq_batch_desc *d, char *err, size_t errlen);
/* 1 when a and b describe the same batch. */
int seq_batch_desc_same(const seq_batch_desc *a, const seq_batch_desc *b);

#endif
