/* Fuzz target for the bucket blob fold (engine/blob.c), which RocksDB's merge operator
 * runs on stored bytes: a base blob and merge operands that may be damaged. The fold must
 * never fail on bad input or read out of bounds; its output must decode whole, and
 * folding it again with nothing must give the same bytes.
 * Input: u8 n_ops, then the base and the operands, each preceded by a u16 length. */
#include <stdlib.h>
#include <string.h>

#include "engine/blob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int n = data[0] % 8;
    const char *parts[9];
    size_t lens[9];
    size_t off = 1;
    int got = 0;
    for (; got <= n && off + 2 <= size; got++) {
        size_t l = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (l > size - off) l = size - off;
        /* each part in its own allocation, so that ASan sees reads past it */
        char *p = malloc(l ? l : 1);
        memcpy(p, data + off, l);
        parts[got] = p;
        lens[got] = l;
        off += l;
    }
    if (got == 0) return 0;
    seq_buf out = {0}, again = {0};
    int64_t drop = (int64_t)(data[0] >> 3) * 1000;
    if (seq_blob_fold(&out, parts[0], lens[0], parts + 1, lens + 1, got - 1, drop, NULL, NULL) !=
        SEQ_OK)
        abort(); /* only OOM may fail */
    seq_blob_iter it;
    seq_rec r;
    int rc;
    if (seq_blob_iter_init(&it, out.data, out.len) != SEQ_OK) abort();
    while ((rc = seq_blob_iter_next(&it, &r)) == 1) {}
    if (rc != 0) abort();
    if (seq_blob_fold(&again, out.data, out.len, NULL, NULL, 0, drop, NULL, NULL) != SEQ_OK ||
        again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
        abort();
    seq_buf_free(&out);
    seq_buf_free(&again);
    for (int i = 0; i < got; i++) free((void *)parts[i]);
    return 0;
}
