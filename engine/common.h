/* Shared basics for every seqd module: status codes, error-message buffers and a
 * growable byte buffer. Errors are return codes plus a message buffer the caller owns
 * (char *err, size_t errlen); a function that fails writes a one-line message there. */
#ifndef SEQ_COMMON_H
#define SEQ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Status codes. Values are the gRPC status numbers where one fits, so that the
 * transport can pass them through unchanged. */
enum {
    SEQ_OK = 0,
    SEQ_ECANCELLED = 1,
    SEQ_EINVAL = 3,          /* INVALID_ARGUMENT: malformed input */
    SEQ_EDEADLINE = 4,       /* DEADLINE_EXCEEDED */
    SEQ_ENOTFOUND = 5,       /* NOT_FOUND */
    SEQ_EPERM = 7,           /* PERMISSION_DENIED */
    SEQ_ERESOURCE = 8,       /* RESOURCE_EXHAUSTED */
    SEQ_EPRECONDITION = 9,   /* FAILED_PRECONDITION */
    SEQ_EUNIMPLEMENTED = 12, /* UNIMPLEMENTED */
    SEQ_EINTERNAL = 13,      /* INTERNAL: storage or system failure */
    SEQ_EUNAVAILABLE = 14,
    SEQ_EDATALOSS = 15,      /* DATA_LOSS: stored data is damaged (not the caller's input) */
    SEQ_EUNAUTHENTICATED = 16,
};

/* printf into an error buffer; a NULL buffer is allowed and ignored. */
void seq_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Growable byte buffer. Owner frees with seq_buf_free. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} seq_buf;

int seq_buf_reserve(seq_buf *b, size_t extra); /* 0, or -1 on OOM */
int seq_buf_append(seq_buf *b, const void *p, size_t n);
void seq_buf_free(seq_buf *b);

/* dst = src cut to n - 1 bytes (n > 0), always terminated: snprintf("%s") without the
 * format parsing, for copies on hot paths. */
void seq_str_copy(char *dst, size_t n, const char *src);

/* Little-endian / big-endian fixed-width helpers (unaligned-safe). */
static inline void seq_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint64_t seq_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}
static inline void seq_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t seq_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Wall clock in ms since the epoch (UTC). */
int64_t seq_now_ms(void);

#endif
