/* Batch input framing (see input.h). */
#include "input.h"

#include <string.h>

#include "common.h"

#define SEQ_INPUT_MAX_RECORD (64u << 20)

void seq_input_init(seq_input *in, seq_format fmt, const void *data, size_t len)
{
    in->p = data;
    in->end = in->p + len;
    in->fmt = fmt;
    in->record_no = 0;
}

static int next_line(seq_input *in, const uint8_t **rec, size_t *len)
{
    while (in->p < in->end) {
        const uint8_t *nl = memchr(in->p, '\n', (size_t)(in->end - in->p));
        const uint8_t *stop = nl ? nl : in->end;
        const uint8_t *s = in->p;
        in->p = nl ? nl + 1 : in->end;
        in->record_no++;
        size_t n = (size_t)(stop - s);
        if (n && s[n - 1] == '\r') n--;
        size_t i = 0;
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i == n) continue; /* blank line */
        *rec = s;
        *len = n;
        return 1;
    }
    return 0;
}

static int next_delimited(seq_input *in, const uint8_t **rec, size_t *len, char *err,
                          size_t errlen)
{
    if (in->p >= in->end) return 0;
    uint64_t n = 0;
    int shift = 0;
    const uint8_t *p = in->p;
    for (;;) {
        if (p >= in->end || shift > 35) {
            seq_errf(err, errlen, "record %llu: truncated or oversized length prefix",
                     (unsigned long long)in->record_no + 1);
            return -1;
        }
        n |= (uint64_t)(*p & 0x7f) << shift;
        shift += 7;
        if (!(*p++ & 0x80)) break;
    }
    in->record_no++;
    if (n > SEQ_INPUT_MAX_RECORD || n > (uint64_t)(in->end - p)) {
        seq_errf(err, errlen, "record %llu: length %llu runs past the end of the input",
                 (unsigned long long)in->record_no, (unsigned long long)n);
        return -1;
    }
    *rec = p;
    *len = (size_t)n;
    in->p = p + n;
    return 1;
}

int seq_input_next(seq_input *in, const uint8_t **rec, size_t *len, char *err, size_t errlen)
{
    if (in->fmt == SEQ_FORMAT_JSON) return next_line(in, rec, len);
    return next_delimited(in, rec, len, err, errlen);
}
