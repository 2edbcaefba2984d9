/* seqd's log lines (log.h). Level words are fixed ("error", "warn", "info") so that
 * operators can grep them; the limiter is lock-free (one compare-and-swap per line). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

#include "../engine/common.h"

static const char *const LEVELS[] = {"error", "warn", "info"};

static void vlog(seq_log_level level, uint64_t held, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    if (held)
        fprintf(stderr, "seqd: %s: %s (%llu similar lines suppressed)\n", LEVELS[level], line,
                (unsigned long long)held);
    else
        fprintf(stderr, "seqd: %s: %s\n", LEVELS[level], line);
}

void seq_log(seq_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, 0, fmt, ap);
    va_end(ap);
}

void seq_log_limited(seq_log_limit *lim, int64_t every_ms, seq_log_level level, const char *fmt,
                     ...)
{
    int64_t now = seq_now_ms(), due = atomic_load(&lim->next_ms);
    if (now < due || !atomic_compare_exchange_strong(&lim->next_ms, &due, now + every_ms)) {
        atomic_fetch_add(&lim->held, 1);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog(level, atomic_exchange(&lim->held, 0), fmt, ap);
    va_end(ap);
}

const char *seq_log_code_name(int code)
{
    static const char *const names[] = {
        "OK",           "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS",    "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",    "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",       "DATA_LOSS",
        "UNAUTHENTICATED"};
    return code >= 0 && code <= 16 ? names[code] : "UNKNOWN";
}
