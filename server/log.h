/* seqd's log: one line on stderr per event an operator should see, "seqd: LEVEL: what"
 * (loads and refused loads, partition assignment, malformed messages). Per-message events
 * go through a limiter so a stream of bad messages costs a line every few seconds, with
 * the count of the lines it held back. Thread-safe: each line is one stdio call. */
#ifndef SEQ_LOG_H
#define SEQ_LOG_H

#include <stdatomic.h>
#include <stdint.h>

typedef enum { SEQ_LOG_ERROR, SEQ_LOG_WARN, SEQ_LOG_INFO } seq_log_level;

void seq_log(seq_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* At most one line per every_ms; the lines held back meanwhile are counted and the next
 * line that passes ends with "(N similar lines suppressed)". Zero-initialise. */
typedef struct {
    _Atomic int64_t next_ms;
    atomic_uint_fast64_t held;
} seq_log_limit;

void seq_log_limited(seq_log_limit *lim, int64_t every_ms, seq_log_level level, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

/* "OK", "INVALID_ARGUMENT", ...: a SEQ_E* code's gRPC name, for log lines. */
const char *seq_log_code_name(int code);

#endif
