/* libFuzzer entry for a whole server connection: raw bytes from a hostile peer go
 * through nghttp2 and the transport's callbacks (server/grpc.c) on an in-memory
 * connection (seq_grpc_fuzz_session in server/grpc_internal.h).
 * Input: byte 0 picks the read chunk size; the rest is what the peer sends.
 * Seeds: tests/fuzz/corpus_h2/ (valid gRPC requests made with python h2).
 * Build: clang -g -fsanitize=fuzzer,address -D_GNU_SOURCE -I. tests/fuzz/fuzz_h2_session.c \
 *        server/grpc.c server/grpc_frame.c engine/common.c \
 *        $(pkg-config --cflags --libs libevent libevent_pthreads libnghttp2) -lpthread \
 *        -o fuzz_h2_session */
#include <string.h>

#include "server/grpc.h"
#include "server/grpc_internal.h"

static void h_echo(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    seq_buf_append(seq_grpc_call_reply(c), m, n);
    seq_grpc_finish(c, SEQ_OK, NULL);
}

static void h_fail(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    (void)m;
    (void)n;
    seq_grpc_finish(c, SEQ_EINVAL, "bad \xff thing %");
}

/* Held, then finished at once: goes through the worker's completion queue. */
static void h_held(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    seq_grpc_call_hold(c);
    seq_buf_append(seq_grpc_call_reply(c), m, n);
    seq_grpc_finish(c, SEQ_OK, NULL);
}

static void h_forget(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    (void)c;
    (void)m;
    (void)n; /* returns without finishing: the transport answers INTERNAL */
}

/* Streaming: echoes each message ("x..." ends the call with an error). */
static int h_stream(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n, char *err,
                    size_t errlen)
{
    (void)ctx;
    if (n && m[0] == 'x') {
        seq_errf(err, errlen, "bad");
        return SEQ_EINVAL;
    }
    return seq_grpc_stream_send(c, m, n);
}

static const seq_grpc_method methods[] = {
    {"/e.E/Echo", h_echo, NULL, NULL},
    {"/e.E/Fail", h_fail, NULL, NULL},
    {"/e.E/Held", h_held, NULL, NULL},
    {"/e.E/Forget", h_forget, NULL, NULL},
    {.path = "/e.E/Stream", .stream_fn = h_stream},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    seq_grpc_config cfg = {.threads = 1, .max_message_bytes = 4096, .methods = methods,
                           .n_methods = sizeof methods / sizeof methods[0]};
    size_t chunk = data[0] < 8 ? 0 : (size_t)data[0] * 4;
    seq_grpc_fuzz_session(&cfg, data + 1, size - 1, chunk);
    return 0;
}
