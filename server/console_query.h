/* Query strings of the console's JSON endpoints (/ui/api/...): user ids, sequence names,
 * views and as-of times arrive from a browser's address bar, so the parser is strict and
 * total (any byte string in, a filled struct or a message out; fuzzed by
 * tests/fuzz/fuzz_ui_query.c). It checks the form of each value; whether a sequence
 * exists is the read path's question. */
#ifndef SEQ_CONSOLE_QUERY_H
#define SEQ_CONSOLE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#define SEQ_CQ_NAME_MAX 128 /* bytes of a sequence name, NUL included */

typedef enum { SEQ_CQ_MERGED = 0, SEQ_CQ_STREAM_ONLY = 1, SEQ_CQ_BATCH_ONLY = 2 } seq_cq_view;

typedef struct {
    int has_user, has_sequence;
    uint64_t user;                  /* user=DIGITS (decimal, fits uint64) */
    char sequence[SEQ_CQ_NAME_MAX]; /* sequence=NAME (printable ASCII, no spaces) */
    seq_cq_view view;               /* view=merged|stream_only|batch_only (default merged) */
    int64_t as_of_ms;               /* as_of=MS (>= 0; 0 = now) */
    uint32_t limit;                 /* limit=N (1..100000; 0 = not given) */
} seq_cq;

/* Parses query (len bytes, no leading '?'; may be empty): '&'-separated key=value pairs,
 * percent-decoded ('+' is a space). Unknown keys are ignored (a deep link may carry
 * more); a known key twice, an empty or malformed value, a bad %-escape: SEQ_EINVAL with
 * a message naming the key. SEQ_OK otherwise. */
int seq_cq_parse(const char *query, size_t len, seq_cq *out, char *err, size_t errlen);

#endif
