/* Query-string parsing for the console (see console_query.h). Works on a bounded copy of
 * each value: nothing longer than VALUE_MAX is ever decoded. */
#include "console_query.h"

#include <stdio.h>
#include <string.h>

#include "../engine/common.h"

#define VALUE_MAX 256

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (NUL-terminated); returns the length or -1. A decoded
 * NUL is refused: the values are C strings afterwards. */
static long decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') c = ' ';
        else if (c == '%') {
            int h, l;
            if (i + 2 >= n || (h = hexval(s[i + 1])) < 0 || (l = hexval(s[i + 2])) < 0) return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Decimal digits only, no sign or spaces, no overflow past max. */
static int parse_uint(const char *v, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    if (!*v) return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9') return -1;
        unsigned d = (unsigned)(*v - '0');
        if (x > (max - d) / 10) return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static int set_value(seq_cq *q, const char *key, const char *v, char *err, size_t errlen)
{
    uint64_t x;
    if (strcmp(key, "user") == 0) {
        if (parse_uint(v, UINT64_MAX, &x)) goto bad_number;
        q->user = x;
        return SEQ_OK;
    }
    if (strcmp(key, "sequence") == 0) {
        size_t n = strlen(v);
        if (n == 0 || n >= SEQ_CQ_NAME_MAX) {
            seq_errf(err, errlen, "sequence: must be 1 to %d bytes", SEQ_CQ_NAME_MAX - 1);
            return SEQ_EINVAL;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f) {
                seq_errf(err, errlen, "sequence: byte %zu is not a printable ASCII character", i);
                return SEQ_EINVAL;
            }
        memcpy(q->sequence, v, n + 1);
        return SEQ_OK;
    }
    if (strcmp(key, "view") == 0) {
        static const char *const names[] = {"merged", "stream_only", "batch_only"};
        for (int i = 0; i < 3; i++)
            if (strcmp(v, names[i]) == 0) {
                q->view = (seq_cq_view)i;
                return SEQ_OK;
            }
        seq_errf(err, errlen, "view: '%.40s' is not merged, stream_only or batch_only", v);
        return SEQ_EINVAL;
    }
    if (strcmp(key, "as_of") == 0) {
        if (parse_uint(v, INT64_MAX, &x)) goto bad_number;
        q->as_of_ms = (int64_t)x;
        return SEQ_OK;
    }
    /* limit */
    if (parse_uint(v, 100000, &x) || x == 0) {
        seq_errf(err, errlen, "limit: '%.40s' is not a number from 1 to 100000", v);
        return SEQ_EINVAL;
    }
    q->limit = (uint32_t)x;
    return SEQ_OK;
bad_number:
    seq_errf(err, errlen, "%s: '%.40s' is not a decimal number in range", key, v);
    return SEQ_EINVAL;
}

static const char *const KEYS[] = {"user", "sequence", "view", "as_of", "limit"};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

int seq_cq_parse(const char *query, size_t len, seq_cq *q, char *err, size_t errlen)
{
    memset(q, 0, sizeof *q);
    unsigned seen = 0;
    char key[32], value[VALUE_MAX];
    for (size_t pos = 0; pos < len;) {
        const char *pair = query + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t plen = amp ? (size_t)(amp - pair) : len - pos;
        pos += plen + 1;
        if (plen == 0) continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        if (decode(pair, klen, key, sizeof key) < 0) continue; /* not a key of ours */
        size_t k = 0;
        while (k < N_KEYS && strcmp(key, KEYS[k]) != 0) k++;
        if (k == N_KEYS) continue;
        if (seen & (1u << k)) {
            seq_errf(err, errlen, "%s: given twice", key);
            return SEQ_EINVAL;
        }
        seen |= 1u << k;
        const char *v = eq ? eq + 1 : pair + plen;
        size_t vlen = eq ? plen - klen - 1 : 0;
        if (decode(v, vlen, value, sizeof value) < 0) { /* bounded by value's size */
            seq_errf(err, errlen, "%s: bad %%-escape or longer than %d bytes", key, VALUE_MAX - 1);
            return SEQ_EINVAL;
        }
        int rc = set_value(q, key, value, err, errlen);
        if (rc) return rc;
    }
    q->has_user = (seen & 1u) != 0;
    q->has_sequence = (seen & 2u) != 0;
    return SEQ_OK;
}
