/* Storage key and value encodings (the layout described in store.h), kept apart from
 * RocksDB so that the writer, the reader, the compaction filter and the batch builder
 * agree byte for byte, and so that the parser can be fuzzed. Pure: no I/O.
 *
 * Numbers are big-endian. A bucket B is stored as ~(B ^ 2^63): flipping the sign bit
 * makes signed order unsigned, inverting makes a forward scan go newest bucket first.
 * Stream keys ('s', 'i') start with kind and be32 partition (the user's Kafka partition,
 * engine/partition.h, under the store's layout partition count): one partition's stream
 * data is two key ranges, dropped with two range deletes (store.h).
 *
 * Values (all big-endian):
 *   'm' "def"            definition JSON (compact), as served last
 *   'm' "off" be32 part  be64 next_offset, be64 watermark_ms            (16 bytes)
 *   'm' "malformed"      be64 count                                      (8 bytes)
 *   'm' "orig" be32 q be32 p   be64 the highest origin offset on partition p of the
 *                        misrouted copies applied on partition q         (8 bytes)
 *   'm' "gen" be32 seq   be64 generation, be64 watermark_ms, be32 n_cov, then n_cov x
 *                        (be64 start_ms, be64 end_ms, be64 gen)          (20 + 24 n)
 *   'm' "hist" be32 seq  the load history (engine/history.h): be32 version 1, be32 n,
 *                        be64 max_gen, be64 start_ms, then n x (be64 gen, start_ms,
 *                        end_ms, files, users, events, committed_ms, undone_ms,
 *                        replaced_ms, reclaimed_ms)                      (24 + 80 n)
 *   'm' "wmh" be64 sec   be64 ms, be64 newest_ms: the stream watermark series of as-of
 *                        reads, the last change of the newest applied event time within
 *                        second sec (at wall time ms)                    (16 bytes)
 *   's' ...              bucket blob (engine/blob.h)
 *   'i' ...              be64 time_ms                                    (8 bytes)
 *   'b' ...              bucket blob
 *   'x' be32 part, be64 offset (sign bit flipped)   be32 reason_len, reason, payload
 * RocksDB prefix (seq_key_prefix_len): the first 17 bytes of 's' and 'i' keys (kind part
 * seq user), the first 13 of 'x' keys, the first 21 of 'b' bucket keys ('b' seq gen user);
 * shorter keys ('m', the 13-byte batch marker) are their own prefix. Every prefix is exactly one user's data of one source, so
 * a seek for a user is answered by the prefix bloom filters when the user is absent. */
#ifndef SEQ_KEYS_H
#define SEQ_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/history.h"
#include "../engine/merge.h"

#define SEQ_KEY_PREFIX 13       /* the prefix of 'x' keys; shorter keys are their own */
#define SEQ_KEY_USER_PREFIX 17  /* 's' and 'i' keys: kind, partition, seq, user */
#define SEQ_KEY_MAX (SEQ_KEY_USER_PREFIX + 255) /* longest key: 'i' with a 255-byte id */
#define SEQ_KEY_STREAM_LEN 25
#define SEQ_KEY_BATCH_LEN 29
#define SEQ_KEY_BATCH_PREFIX 21 /* 'b' seq gen user: the prefix of 'b' bucket keys */
#define SEQ_KEY_PART_LEN 5      /* kind, partition: the start of one partition's range */

enum { SEQ_K_META = 'm', SEQ_K_STREAM = 's', SEQ_K_INDEX = 'i', SEQ_K_BATCH = 'b',
       SEQ_K_MALFORMED = 'x', SEQ_K_CORRUPT = 'c' };

/* Each returns the key length written to k (k must hold SEQ_KEY_MAX bytes). `part` is the
 * user's Kafka partition under the store's layout partition count (store.h), so that one
 * partition's stream data is one key range ('s'/'i' part ...). */
size_t seq_key_stream(uint8_t *k, uint32_t part, uint32_t seq, uint64_t user, int64_t bucket);
size_t seq_key_user_prefix(uint8_t *k, uint8_t kind, uint32_t part, uint32_t seq,
                           uint64_t user); /* 's' or 'i': SEQ_KEY_USER_PREFIX */
size_t seq_key_index(uint8_t *k, uint32_t part, uint32_t seq, uint64_t user, const char *id,
                     uint32_t id_len);
/* kind ('s' or 'i'), be32 part: every key of that partition starts with these 5 bytes. */
size_t seq_key_part(uint8_t *k, uint8_t kind, uint32_t part);
size_t seq_key_batch(uint8_t *k, uint32_t seq, uint64_t gen, uint64_t user, int64_t bucket);
size_t seq_key_batch_prefix(uint8_t *k, uint32_t seq, uint64_t gen, uint64_t user); /* 21 */
size_t seq_key_malformed(uint8_t *k, int32_t partition, int64_t offset);
size_t seq_key_offset(uint8_t *k, int32_t partition);
size_t seq_key_held(uint8_t *k, uint32_t partition); /* 'm' "held" be32 partition */
size_t seq_key_gap(uint8_t *k, int32_t partition);   /* 'm' "gap" be32 partition */
/* 'm' "orig" be32 owner partition q, be32 origin partition p (SEQ_KEY_ORIGIN_LEN bytes);
 * seq_key_origins writes its first SEQ_KEY_ORIGIN_LEN - 4 bytes, q's key range. */
size_t seq_key_origin(uint8_t *k, uint32_t q, uint32_t p);
size_t seq_key_origins(uint8_t *k, uint32_t q);
#define SEQ_KEY_ORIGIN_LEN 13
size_t seq_key_gen(uint8_t *k, uint32_t seq);
size_t seq_key_hist(uint8_t *k, uint32_t seq); /* 'm' "hist" be32 seq */
/* 'm' "wmh" be64 second (negative seconds clamp to 0): SEQ_KEY_WMH_LEN bytes, sorted by
 * time, so the stream watermark series is one key range in time order. */
size_t seq_key_wmh(uint8_t *k, int64_t second);
#define SEQ_KEY_WMH_LEN 12
size_t seq_key_meta(uint8_t *k, const char *name); /* 'm' name (name < 64 bytes) */

/* Length of the RocksDB prefix of a key (see the top of this file); never more than len. */
size_t seq_key_prefix_len(const char *key, size_t len);

uint64_t seq_key_bucket_enc(int64_t bucket);
int64_t seq_key_bucket_dec(uint64_t enc);

/* A parsed key; fields not used by the kind are zero. */
typedef struct {
    uint8_t kind;
    uint32_t seq;
    uint64_t user, gen;
    int64_t bucket;
    int32_t partition; /* 'x': the Kafka partition; 's', 'i': the layout partition */
    int64_t offset;
    const char *id; /* 'i': points into the key */
    uint32_t id_len;
} seq_key;

/* 0 and *out filled for a well-formed 's', 'i', 'b' or 'x' key; -1 for anything else
 * (including every 'm' key: meta keys are looked up by name, never parsed). */
int seq_key_parse(const void *key, size_t len, seq_key *out);

/* [start, end) of a bucket, saturating instead of overflowing for absurd buckets. */
int64_t seq_bucket_start(int64_t bucket, int64_t bucket_ms);
int64_t seq_bucket_end(int64_t bucket, int64_t bucket_ms);
int64_t seq_bucket_of(int64_t time_ms, int64_t bucket_ms); /* floor division */

/* Committed batch state of one sequence ('m' "gen" value). encode: out is reset.
 * decode: *cov is malloc'd (caller frees; NULL when n_cov == 0); -1 if malformed. */
int seq_genval_encode(seq_buf *out, uint64_t gen, int64_t watermark_ms, const seq_cov_seg *cov,
                      uint32_t n_cov);
int seq_genval_decode(const void *val, size_t len, uint64_t *gen, int64_t *watermark_ms,
                      seq_cov_seg **cov, uint32_t *n_cov);

/* The load history of one sequence ('m' "hist" value). encode: out is reset. decode:
 * *loads is malloc'd (caller frees; NULL when n == 0); -1 if malformed. */
int seq_histval_encode(seq_buf *out, uint64_t max_gen, int64_t start_ms, const seq_load_rec *l,
                       uint32_t n);
int seq_histval_decode(const void *val, size_t len, uint64_t *max_gen, int64_t *start_ms,
                       seq_load_rec **loads, uint32_t *n_loads);

#endif
