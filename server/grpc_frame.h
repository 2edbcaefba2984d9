/* gRPC message framing (the 5-byte prefix: flag, big-endian length), decoded
 * incrementally from DATA frames whose boundaries have nothing to do with message
 * boundaries. Pure; fuzzed on its own. */
#ifndef SEQ_GRPC_FRAME_H
#define SEQ_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"

typedef struct {
    uint8_t prefix[5];
    uint32_t have_prefix; /* bytes of prefix seen */
    uint32_t msg_len;
    seq_buf msg;          /* message bytes so far; owned, freed by seq_frame_free */
    size_t max_len;
    int complete;         /* one whole message received */
    int extra;            /* bytes came after the first complete message */
} seq_frame;

void seq_frame_init(seq_frame *f, size_t max_len);
void seq_frame_free(seq_frame *f);
/* Back to the initial state for the next call, keeping the message buffer's memory
 * (the transport pools frames). */
void seq_frame_reset(seq_frame *f);
/* Feeds bytes. Returns SEQ_OK, SEQ_ERESOURCE (declared length above max_len, found as
 * soon as the prefix is complete, before buffering), SEQ_EINVAL (compressed flag or
 * unknown flag bits), with a message in err. Unary calls take exactly one message:
 * bytes after it set `extra` (the caller answers INVALID_ARGUMENT... or ignores). */
int seq_frame_feed(seq_frame *f, const uint8_t *p, size_t n, char *err, size_t errlen);
/* Streaming calls: like seq_frame_feed, but stops at the end of the current message
 * (`complete` set) and says in *used how many of the n bytes it took; the caller handles
 * the message, seq_frame_reset()s and feeds the rest. Same return codes. */
int seq_frame_feed_upto(seq_frame *f, const uint8_t *p, size_t n, size_t *used, char *err,
                        size_t errlen);
/* At END_STREAM: SEQ_OK when exactly one complete message arrived; SEQ_EINTERNAL for a
 * truncated message (prefix promised more bytes than came); SEQ_EINVAL for no message. */
int seq_frame_end(const seq_frame *f, char *err, size_t errlen);

#endif
