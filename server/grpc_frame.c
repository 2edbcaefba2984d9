/* gRPC message framing: reassembles the one request message of a unary call (or each
 * request message of a streaming call, one at a time) from the DATA chunks nghttp2
 * hands the transport (grpc.c). The 5-byte prefix is checked as soon
 * as it is complete, so an oversized or compressed message is refused before any of its
 * body is buffered. Pure code, no I/O; fuzzed by tests/fuzz/fuzz_grpc_frame.c. */
#include "grpc_frame.h"

#include <string.h>

void seq_frame_init(seq_frame *f, size_t max_len)
{
    memset(f, 0, sizeof *f);
    f->max_len = max_len;
}

void seq_frame_free(seq_frame *f) { seq_buf_free(&f->msg); }

void seq_frame_reset(seq_frame *f)
{
    f->have_prefix = 0;
    f->msg_len = 0;
    f->msg.len = 0;
    f->complete = 0;
    f->extra = 0;
}

/* Validates a complete prefix. Called again on every later feed of a frame that
 * already failed, so a caller that keeps feeding after an error never buffers. */
static int frame_check_prefix(seq_frame *f, char *err, size_t errlen)
{
    uint8_t flag = f->prefix[0];
    if (flag & ~1u) {
        seq_errf(err, errlen, "unknown message flags 0x%02x", flag);
        return SEQ_EINVAL;
    }
    if (flag & 1u) {
        seq_errf(err, errlen, "compressed message without a negotiated grpc-encoding");
        return SEQ_EINVAL;
    }
    uint32_t len = seq_get_be32(f->prefix + 1);
    if (len > f->max_len) {
        seq_errf(err, errlen, "request message of %u bytes exceeds the limit of %zu bytes",
                 len, f->max_len);
        return SEQ_ERESOURCE;
    }
    f->msg_len = len;
    return SEQ_OK;
}

static int frame_prefix_done(seq_frame *f, char *err, size_t errlen)
{
    int rv = frame_check_prefix(f, err, errlen);
    if (rv != SEQ_OK) return rv;
    if (seq_buf_reserve(&f->msg, f->msg_len) < 0) {
        seq_errf(err, errlen, "out of memory for a %u-byte message", f->msg_len);
        return SEQ_ERESOURCE;
    }
    if (f->msg_len == 0) f->complete = 1;
    return SEQ_OK;
}

int seq_frame_feed_upto(seq_frame *f, const uint8_t *p, size_t n, size_t *used, char *err,
                        size_t errlen)
{
    const uint8_t *start = p;
    *used = 0;
    if (f->have_prefix == 5 && !f->complete) {
        int rv = frame_check_prefix(f, err, errlen);
        if (rv != SEQ_OK) return rv;
    }
    while (n > 0 && !f->complete) {
        if (f->have_prefix < 5) {
            size_t k = 5 - f->have_prefix;
            if (k > n) k = n;
            memcpy(f->prefix + f->have_prefix, p, k);
            f->have_prefix += (uint32_t)k;
            p += k;
            n -= k;
            *used = (size_t)(p - start);
            if (f->have_prefix == 5) {
                int rv = frame_prefix_done(f, err, errlen);
                if (rv != SEQ_OK) return rv;
            }
            continue;
        }
        size_t k = f->msg_len - f->msg.len;
        if (k > n) k = n;
        memcpy(f->msg.data + f->msg.len, p, k); /* reserved in frame_prefix_done */
        f->msg.len += k;
        p += k;
        n -= k;
        *used = (size_t)(p - start);
        if (f->msg.len == f->msg_len) f->complete = 1;
    }
    return SEQ_OK;
}

int seq_frame_feed(seq_frame *f, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    size_t used;
    int rv = seq_frame_feed_upto(f, p, n, &used, err, errlen);
    if (rv == SEQ_OK && used < n) f->extra = 1;
    return rv;
}

int seq_frame_end(const seq_frame *f, char *err, size_t errlen)
{
    if (f->complete) return SEQ_OK;
    if (f->have_prefix == 0) {
        seq_errf(err, errlen, "no request message");
        return SEQ_EINVAL;
    }
    if (f->have_prefix < 5)
        seq_errf(err, errlen, "truncated message: %u of 5 prefix bytes", f->have_prefix);
    else
        seq_errf(err, errlen, "truncated message: %zu of %u bytes", f->msg.len, f->msg_len);
    return SEQ_EINTERNAL;
}
