/* Storage key and value encodings: see keys.h. */
#include "keys.h"

#include <stdlib.h>
#include <string.h>

#define SIGN64 (UINT64_C(1) << 63)
#define SIGN32 (UINT32_C(1) << 31)

uint64_t seq_key_bucket_enc(int64_t bucket) { return ~((uint64_t)bucket ^ SIGN64); }
int64_t seq_key_bucket_dec(uint64_t enc) { return (int64_t)(~enc ^ SIGN64); }

size_t seq_key_prefix_len(const char *key, size_t len)
{
    if (len >= SEQ_KEY_BATCH_PREFIX && key[0] == SEQ_K_BATCH) return SEQ_KEY_BATCH_PREFIX;
    if (len >= SEQ_KEY_USER_PREFIX && (key[0] == SEQ_K_STREAM || key[0] == SEQ_K_INDEX))
        return SEQ_KEY_USER_PREFIX;
    return len < SEQ_KEY_PREFIX ? len : SEQ_KEY_PREFIX;
}

static size_t head(uint8_t *k, uint8_t kind, uint32_t seq, uint64_t x)
{
    k[0] = kind;
    seq_put_be32(k + 1, seq);
    seq_put_be64(k + 5, x);
    return SEQ_KEY_PREFIX;
}

size_t seq_key_part(uint8_t *k, uint8_t kind, uint32_t part)
{
    k[0] = kind;
    seq_put_be32(k + 1, part);
    return SEQ_KEY_PART_LEN;
}

size_t seq_key_user_prefix(uint8_t *k, uint8_t kind, uint32_t part, uint32_t seq, uint64_t user)
{
    seq_key_part(k, kind, part);
    seq_put_be32(k + 5, seq);
    seq_put_be64(k + 9, user);
    return SEQ_KEY_USER_PREFIX;
}

size_t seq_key_stream(uint8_t *k, uint32_t part, uint32_t seq, uint64_t user, int64_t bucket)
{
    seq_key_user_prefix(k, SEQ_K_STREAM, part, seq, user);
    seq_put_be64(k + SEQ_KEY_USER_PREFIX, seq_key_bucket_enc(bucket));
    return SEQ_KEY_STREAM_LEN;
}

size_t seq_key_index(uint8_t *k, uint32_t part, uint32_t seq, uint64_t user, const char *id,
                     uint32_t id_len)
{
    if (id_len > 255) id_len = 255;
    seq_key_user_prefix(k, SEQ_K_INDEX, part, seq, user);
    memcpy(k + SEQ_KEY_USER_PREFIX, id, id_len);
    return SEQ_KEY_USER_PREFIX + (size_t)id_len;
}

size_t seq_key_batch_prefix(uint8_t *k, uint32_t seq, uint64_t gen, uint64_t user)
{
    head(k, SEQ_K_BATCH, seq, gen);
    seq_put_be64(k + 13, user);
    return SEQ_KEY_BATCH_PREFIX;
}

size_t seq_key_batch(uint8_t *k, uint32_t seq, uint64_t gen, uint64_t user, int64_t bucket)
{
    seq_key_batch_prefix(k, seq, gen, user);
    seq_put_be64(k + 21, seq_key_bucket_enc(bucket));
    return SEQ_KEY_BATCH_LEN;
}

size_t seq_key_malformed(uint8_t *k, int32_t partition, int64_t offset)
{
    k[0] = SEQ_K_MALFORMED;
    seq_put_be32(k + 1, (uint32_t)partition ^ SIGN32);
    seq_put_be64(k + 5, (uint64_t)offset ^ SIGN64);
    return 13;
}

size_t seq_key_meta(uint8_t *k, const char *name)
{
    size_t n = strlen(name);
    if (n > 63) n = 63;
    k[0] = SEQ_K_META;
    memcpy(k + 1, name, n);
    return 1 + n;
}

size_t seq_key_offset(uint8_t *k, int32_t partition)
{
    size_t n = seq_key_meta(k, "off");
    seq_put_be32(k + n, (uint32_t)partition);
    return n + 4;
}

size_t seq_key_held(uint8_t *k, uint32_t partition)
{
    size_t n = seq_key_meta(k, "held");
    seq_put_be32(k + n, partition);
    return n + 4;
}

size_t seq_key_gap(uint8_t *k, int32_t partition)
{
    size_t n = seq_key_meta(k, "gap");
    seq_put_be32(k + n, (uint32_t)partition);
    return n + 4;
}

size_t seq_key_origins(uint8_t *k, uint32_t q)
{
    size_t n = seq_key_meta(k, "orig");
    seq_put_be32(k + n, q);
    return n + 4;
}

size_t seq_key_origin(uint8_t *k, uint32_t q, uint32_t p)
{
    size_t n = seq_key_origins(k, q);
    seq_put_be32(k + n, p);
    return n + 4;
}

size_t seq_key_gen(uint8_t *k, uint32_t seq)
{
    size_t n = seq_key_meta(k, "gen");
    seq_put_be32(k + n, seq);
    return n + 4;
}

size_t seq_key_hist(uint8_t *k, uint32_t seq)
{
    size_t n = seq_key_meta(k, "hist");
    seq_put_be32(k + n, seq);
    return n + 4;
}

size_t seq_key_wmh(uint8_t *k, int64_t second)
{
    size_t n = seq_key_meta(k, "wmh");
    seq_put_be64(k + n, (uint64_t)(second < 0 ? 0 : second));
    return n + 8;
}

int seq_key_parse(const void *key, size_t len, seq_key *out)
{
    const uint8_t *k = key;
    memset(out, 0, sizeof *out);
    if (len < SEQ_KEY_PREFIX) return -1;
    out->kind = k[0];
    switch (k[0]) {
    case SEQ_K_STREAM:
    case SEQ_K_INDEX:
        if (k[0] == SEQ_K_STREAM ? len != SEQ_KEY_STREAM_LEN
                                 : len < SEQ_KEY_USER_PREFIX || len > SEQ_KEY_MAX)
            return -1;
        out->partition = (int32_t)seq_get_be32(k + 1);
        out->seq = seq_get_be32(k + 5);
        out->user = seq_get_be64(k + 9);
        if (k[0] == SEQ_K_STREAM) {
            out->bucket = seq_key_bucket_dec(seq_get_be64(k + SEQ_KEY_USER_PREFIX));
        } else {
            out->id = (const char *)k + SEQ_KEY_USER_PREFIX;
            out->id_len = (uint32_t)(len - SEQ_KEY_USER_PREFIX);
        }
        return 0;
    case SEQ_K_BATCH:
        if (len != SEQ_KEY_BATCH_LEN) return -1;
        out->seq = seq_get_be32(k + 1);
        out->gen = seq_get_be64(k + 5);
        out->user = seq_get_be64(k + 13);
        out->bucket = seq_key_bucket_dec(seq_get_be64(k + 21));
        return 0;
    case SEQ_K_MALFORMED:
        if (len != 13) return -1;
        out->partition = (int32_t)(seq_get_be32(k + 1) ^ SIGN32);
        out->offset = (int64_t)(seq_get_be64(k + 5) ^ SIGN64);
        return 0;
    default:
        out->kind = 0;
        return -1;
    }
}

int64_t seq_bucket_start(int64_t bucket, int64_t bucket_ms)
{
    int64_t r;
    if (__builtin_mul_overflow(bucket, bucket_ms, &r)) return bucket < 0 ? INT64_MIN : INT64_MAX;
    return r;
}

int64_t seq_bucket_end(int64_t bucket, int64_t bucket_ms)
{
    int64_t s = seq_bucket_start(bucket, bucket_ms), r;
    if (__builtin_add_overflow(s, bucket_ms, &r)) return INT64_MAX;
    return r;
}

int64_t seq_bucket_of(int64_t time_ms, int64_t bucket_ms)
{
    int64_t q = time_ms / bucket_ms;
    if (time_ms % bucket_ms != 0 && time_ms < 0) q--;
    return q;
}

int seq_genval_encode(seq_buf *out, uint64_t gen, int64_t watermark_ms, const seq_cov_seg *cov,
                      uint32_t n_cov)
{
    uint8_t b[24];
    out->len = 0;
    seq_put_be64(b, gen);
    seq_put_be64(b + 8, (uint64_t)watermark_ms);
    seq_put_be32(b + 16, n_cov);
    if (seq_buf_append(out, b, 20) < 0) return -1;
    for (uint32_t i = 0; i < n_cov; i++) {
        seq_put_be64(b, (uint64_t)cov[i].start_ms);
        seq_put_be64(b + 8, (uint64_t)cov[i].end_ms);
        seq_put_be64(b + 16, cov[i].gen);
        if (seq_buf_append(out, b, 24) < 0) return -1;
    }
    return 0;
}

int seq_genval_decode(const void *val, size_t len, uint64_t *gen, int64_t *watermark_ms,
                      seq_cov_seg **cov, uint32_t *n_cov)
{
    const uint8_t *p = val;
    *cov = NULL;
    *n_cov = 0;
    if (len < 20) return -1;
    uint32_t n = seq_get_be32(p + 16);
    if ((len - 20) / 24 != n || (len - 20) % 24 != 0) return -1;
    *gen = seq_get_be64(p);
    *watermark_ms = (int64_t)seq_get_be64(p + 8);
    if (n == 0) return 0;
    seq_cov_seg *c = malloc(sizeof *c * n);
    if (!c) return -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = p + 20 + (size_t)i * 24;
        c[i].start_ms = (int64_t)seq_get_be64(q);
        c[i].end_ms = (int64_t)seq_get_be64(q + 8);
        c[i].gen = seq_get_be64(q + 16);
    }
    *cov = c;
    *n_cov = n;
    return 0;
}

/* ---- 'm' "hist": the load history (engine/history.h) ---- */

#define HIST_HDR 24 /* be32 version, be32 n, be64 max_gen, be64 start_ms */
#define HIST_REC 80 /* ten be64 fields */

int seq_histval_encode(seq_buf *out, uint64_t max_gen, int64_t start_ms, const seq_load_rec *l,
                       uint32_t n)
{
    uint8_t b[HIST_REC];
    out->len = 0;
    seq_put_be32(b, 1);
    seq_put_be32(b + 4, n);
    seq_put_be64(b + 8, max_gen);
    seq_put_be64(b + 16, (uint64_t)start_ms);
    if (seq_buf_append(out, b, HIST_HDR) < 0) return -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t f[10] = {l[i].gen, (uint64_t)l[i].start_ms, (uint64_t)l[i].end_ms,
                                l[i].files, l[i].users, l[i].events,
                                (uint64_t)l[i].committed_ms, (uint64_t)l[i].undone_ms,
                                (uint64_t)l[i].replaced_ms, (uint64_t)l[i].reclaimed_ms};
        for (int j = 0; j < 10; j++) seq_put_be64(b + 8 * j, f[j]);
        if (seq_buf_append(out, b, HIST_REC) < 0) return -1;
    }
    return 0;
}

int seq_histval_decode(const void *val, size_t len, uint64_t *max_gen, int64_t *start_ms,
                       seq_load_rec **loads, uint32_t *n_loads)
{
    const uint8_t *p = val;
    *loads = NULL;
    *n_loads = 0;
    if (len < HIST_HDR || seq_get_be32(p) != 1) return -1;
    uint32_t n = seq_get_be32(p + 4);
    if ((len - HIST_HDR) % HIST_REC != 0 || (len - HIST_HDR) / HIST_REC != n) return -1;
    *max_gen = seq_get_be64(p + 8);
    *start_ms = (int64_t)seq_get_be64(p + 16);
    if (n == 0) return 0;
    seq_load_rec *l = malloc(sizeof *l * n);
    if (!l) return -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = p + HIST_HDR + (size_t)i * HIST_REC;
        uint64_t f[10];
        for (int j = 0; j < 10; j++) f[j] = seq_get_be64(q + 8 * j);
        l[i] = (seq_load_rec){f[0], (int64_t)f[1], (int64_t)f[2], f[3], f[4], f[5],
                              (int64_t)f[6], (int64_t)f[7], (int64_t)f[8], (int64_t)f[9]};
    }
    *loads = l;
    *n_loads = n;
    return 0;
}
