/* libFuzzer entry for the gRPC message framing decoder (server/grpc_frame.c).
 * Input: byte 0 picks max_len, byte 1 the chunk size; the rest is fed chunk by chunk.
 * Build: clang -g -fsanitize=fuzzer,address -I. tests/fuzz/fuzz_grpc_frame.c \
 *        server/grpc_frame.c engine/common.c -o fuzz_grpc_frame */
#include <stdlib.h>

#include "server/grpc_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t max_len = (size_t)data[0] * 16;
    size_t chunk = data[1] ? data[1] : 1;
    data += 2;
    size -= 2;
    seq_frame f;
    seq_frame_init(&f, max_len);
    char err[128];
    int rv = SEQ_OK;
    for (size_t off = 0; off < size && rv == SEQ_OK; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        rv = seq_frame_feed(&f, data + off, n, err, sizeof err);
        if (f.msg.len > f.msg_len || f.msg_len > max_len) abort();
        if (f.complete && f.msg.len != f.msg_len) abort();
    }
    if (rv == SEQ_OK) {
        int end = seq_frame_end(&f, err, sizeof err);
        if ((end == SEQ_OK) != (f.complete != 0)) abort();
    }
    seq_frame_free(&f);
    return 0;
}
