/* Storage keys: buckets sort newest first (negative times too), keys parse back to
 * what was encoded, junk keys are refused, and batch state round trips. */
#include <stdlib.h>
#include <string.h>

#include "storage/keys.h"
#include "testlib.h"

static void bucket_order(void)
{
    int64_t b[] = {INT64_MAX, 500000, 1, 0, -1, -7, INT64_MIN};
    for (size_t i = 0; i + 1 < sizeof b / sizeof b[0]; i++) {
        uint8_t k1[SEQ_KEY_MAX], k2[SEQ_KEY_MAX];
        seq_key_stream(k1, 5, 3, 9, b[i]);
        seq_key_stream(k2, 5, 3, 9, b[i + 1]);
        CHECK(memcmp(k1, k2, SEQ_KEY_STREAM_LEN) < 0); /* newer bucket first */
        CHECK(seq_key_bucket_dec(seq_key_bucket_enc(b[i])) == b[i]);
    }
    CHECK_EQ_INT(seq_bucket_of(-1, 10), -1);
    CHECK_EQ_INT(seq_bucket_of(-10, 10), -1);
    CHECK_EQ_INT(seq_bucket_of(9, 10), 0);
    CHECK(seq_bucket_end(INT64_MAX / 2, 10) == INT64_MAX);
}

static void parse_roundtrip(void)
{
    uint8_t k[SEQ_KEY_MAX];
    seq_key p;
    size_t n = seq_key_stream(k, 6, 2, 77, -5);
    CHECK(seq_key_parse(k, n, &p) == 0 && p.kind == 's' && p.seq == 2 && p.user == 77 &&
          p.bucket == -5 && p.partition == 6);
    n = seq_key_batch(k, 1, 123, 77, 42);
    CHECK(seq_key_parse(k, n, &p) == 0 && p.kind == 'b' && p.gen == 123 && p.user == 77 &&
          p.bucket == 42);
    n = seq_key_index(k, 6, 1, 77, "ev-1", 4);
    CHECK(seq_key_parse(k, n, &p) == 0 && p.kind == 'i' && p.id_len == 4 &&
          memcmp(p.id, "ev-1", 4) == 0 && p.partition == 6 && p.seq == 1 && p.user == 77);
    /* one partition's stream keys are one range: they start with kind + partition, and
     * sort after every key of the partitions below */
    uint8_t part[SEQ_KEY_MAX], k2[SEQ_KEY_MAX];
    CHECK(seq_key_part(part, 'i', 6) == SEQ_KEY_PART_LEN && memcmp(part, k, 5) == 0);
    seq_key_stream(k, 6, 0, 0, INT64_MAX);
    seq_key_stream(k2, 5, UINT32_MAX, UINT64_MAX, INT64_MIN);
    CHECK(memcmp(k2, k, SEQ_KEY_STREAM_LEN) < 0);
    n = seq_key_malformed(k, -2, -9);
    CHECK(seq_key_parse(k, n, &p) == 0 && p.partition == -2 && p.offset == -9);
    CHECK(seq_key_parse(k, n - 1, &p) < 0);
    n = seq_key_offset(k, 4);
    CHECK(seq_key_parse(k, n, &p) < 0);
    CHECK(seq_key_parse("s", 1, &p) < 0);
    /* a batch prefix is the start of every key of that user and generation */
    uint8_t pre[SEQ_KEY_MAX];
    size_t pl = seq_key_batch_prefix(pre, 1, 123, 77);
    CHECK(pl == 21);
    n = seq_key_batch(k, 1, 123, 77, -1);
    CHECK(memcmp(pre, k, pl) == 0);
}

/* The RocksDB prefix is one user's data of one source: a read seeks with exactly it. */
static void prefixes(void)
{
    uint8_t k[SEQ_KEY_MAX], pre[SEQ_KEY_MAX];
    size_t n = seq_key_batch(k, 1, 7, 77, 42), pl = seq_key_batch_prefix(pre, 1, 7, 77);
    CHECK(seq_key_prefix_len((const char *)k, n) == pl && seq_key_prefix_len((char *)pre, pl) == pl);
    n = seq_key_stream(k, 3, 1, 77, 42);
    CHECK(seq_key_prefix_len((const char *)k, n) == seq_key_user_prefix(pre, 's', 3, 1, 77));
    CHECK(memcmp(k, pre, SEQ_KEY_USER_PREFIX) == 0);
    n = seq_key_index(k, 3, 1, 77, "an-event-id-longer-than-8", 25);
    CHECK(seq_key_prefix_len((const char *)k, n) == SEQ_KEY_USER_PREFIX);
    n = seq_key_malformed(k, 3, 77);
    CHECK(seq_key_prefix_len((const char *)k, n) == SEQ_KEY_PREFIX);
    n = seq_key_meta(k, "gen"); /* short keys, and the 13-byte batch marker: themselves */
    CHECK(seq_key_prefix_len((const char *)k, n) == n);
    CHECK(seq_key_prefix_len("b0123456789ab", 13) == 13);
}

static void genval(void)
{
    seq_cov_seg c[2] = {{-100, 0, 4}, {0, 3600000, 5}}, *out = NULL;
    seq_buf v = {0};
    uint64_t g;
    int64_t wm;
    uint32_t n;
    CHECK(seq_genval_encode(&v, 5, 3600000, c, 2) == 0);
    CHECK(seq_genval_decode(v.data, v.len, &g, &wm, &out, &n) == 0);
    CHECK(g == 5 && wm == 3600000 && n == 2 && out && out[0].start_ms == -100 &&
          out[1].gen == 5);
    free(out);
    CHECK(seq_genval_decode(v.data, v.len - 1, &g, &wm, &out, &n) < 0);
    CHECK(seq_genval_encode(&v, 0, 0, NULL, 0) == 0);
    CHECK(seq_genval_decode(v.data, v.len, &g, &wm, &out, &n) == 0 && n == 0 && !out);
    seq_buf_free(&v);
}

int main(void)
{
    RUN(bucket_order);
    RUN(parse_roundtrip);
    RUN(prefixes);
    RUN(genval);
    return seq_t_done();
}
