/* Time arguments of seqctl's commands (get --since/--until, --as-of, ...): one parser so
 * that every command accepts the same forms. Pure; no I/O. Unit-tested in
 * tests/unit/test_clients.c. */
#ifndef SEQC_TIMEARG_H
#define SEQC_TIMEARG_H

#include <stddef.h>
#include <stdint.h>

/* Parses a point in time into ms since the epoch (UTC). Accepted forms:
 *   1764000000000                     ms since the epoch (an integer, may be negative)
 *   2025-11-24  2025-11-24T16:00  2025-11-24T16:00:05  2025-11-24T16:00:05.123
 *                                     ISO-8601 in UTC; a trailing Z or +00:00 is allowed,
 *                                     a space may replace the T
 *   -2h  -30m  -7d  -45s  -500ms  -1w relative to now_ms (the unit is required)
 *   now                               now_ms
 * Returns 0, or -1 with a message in err (which says the accepted forms). */
int seqc_parse_time(const char *s, int64_t now_ms, int64_t *out_ms, char *err, size_t errlen);

/* The accepted forms, for --help texts. */
#define SEQC_TIME_FORMS "ms since the epoch, ISO-8601 UTC (2025-11-24T16:00:00Z) or relative (-2h, -30m, -7d)"

#endif
