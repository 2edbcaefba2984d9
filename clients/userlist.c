/* User lists (userlist.h): one pass over the text, ranges expanded as they come. */
#include "userlist.h"

#include <stdio.h>
#include <stdlib.h>

static int is_sep(char c) { return c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* A decimal id at *p (digits only, no overflow); 0 or -1. */
static int number(const char **p, uint64_t *v)
{
    const char *s = *p;
    *v = 0;
    if (!is_digit(*s)) return -1;
    for (; is_digit(*s); s++) {
        if (*v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
        *v = *v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    return 0;
}

int seqc_parse_users(const char *text, size_t max, uint64_t **out, size_t *n, char *err,
                     size_t errlen)
{
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    const char *p = text;
    for (;;) {
        while (is_sep(*p)) p++;
        if (!*p) break;
        const char *item = p;
        uint64_t a, b;
        if (number(&p, &a) < 0) {
            snprintf(err, errlen, "not a user id at '%.20s'", item);
            goto fail;
        }
        b = a;
        if (*p == '-') {
            p++;
            if (number(&p, &b) < 0 || b < a) {
                snprintf(err, errlen, "bad range at '%.20s'", item);
                goto fail;
            }
        }
        if (*p && !is_sep(*p)) {
            snprintf(err, errlen, "unexpected '%c' at '%.20s'", *p, item);
            goto fail;
        }
        if (a == 0) {
            snprintf(err, errlen, "user id 0 is not a user");
            goto fail;
        }
        if (b - a >= max || len + (b - a) >= max) {
            snprintf(err, errlen, "more than %zu users", max);
            goto fail;
        }
        size_t need = len + (size_t)(b - a) + 1;
        if (need > cap) {
            size_t c = cap ? cap : 256;
            while (c < need) c *= 2;
            uint64_t *nv = realloc(v, sizeof *nv * c);
            if (!nv) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            v = nv, cap = c;
        }
        for (uint64_t u = a;; u++) {
            v[len++] = u;
            if (u == b) break;
        }
    }
    if (len == 0) {
        snprintf(err, errlen, "the user list is empty");
        goto fail;
    }
    *out = v;
    *n = len;
    return 0;
fail:
    free(v);
    return -1;
}
