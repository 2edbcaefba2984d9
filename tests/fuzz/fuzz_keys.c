/* Fuzz target for the storage key parser and the batch-state and load-history decoders
 * (storage/keys.c), which read bytes from disk and from ingested SST files. A parsed key
 * or value must re-encode to the same bytes; decoding must never read out of bounds.
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_keys.c \
 *         storage/keys.c engine/common.c engine/history.c -o fuzz_keys && ./fuzz_keys -max_total_time=30 */
#include <stdlib.h>
#include <string.h>

#include "storage/keys.h"

static void check_key(const uint8_t *data, size_t size)
{
    seq_key k;
    uint8_t re[SEQ_KEY_MAX];
    size_t n = 0;
    if (seq_key_parse(data, size, &k) != 0) return;
    switch (k.kind) {
    case SEQ_K_STREAM:
        n = seq_key_stream(re, (uint32_t)k.partition, k.seq, k.user, k.bucket);
        break;
    case SEQ_K_BATCH: n = seq_key_batch(re, k.seq, k.gen, k.user, k.bucket); break;
    case SEQ_K_INDEX:
        n = seq_key_index(re, (uint32_t)k.partition, k.seq, k.user, k.id, k.id_len);
        break;
    case SEQ_K_MALFORMED: n = seq_key_malformed(re, k.partition, k.offset); break;
    default: abort();
    }
    if (n != size || memcmp(re, data, size) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_key(data, size);
    uint64_t gen;
    int64_t wm;
    seq_cov_seg *cov;
    uint32_t n;
    if (seq_genval_decode(data, size, &gen, &wm, &cov, &n) == 0) {
        seq_buf out = {0};
        if (seq_genval_encode(&out, gen, wm, cov, n) != 0 || out.len != size ||
            memcmp(out.data, data, size) != 0)
            abort();
        seq_buf_free(&out);
        free(cov);
    }
    uint64_t max_gen;
    int64_t start;
    seq_load_rec *loads;
    if (seq_histval_decode(data, size, &max_gen, &start, &loads, &n) == 0) {
        seq_buf out = {0};
        if (seq_histval_encode(&out, max_gen, start, loads, n) != 0 || out.len != size ||
            memcmp(out.data, data, size) != 0)
            abort();
        seq_buf_free(&out);
        free(loads);
    }
    return 0;
}
