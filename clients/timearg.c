/* seqctl's time arguments: ms, ISO-8601 UTC or relative to now (timearg.h). The
 * calendar arithmetic is days-from-civil (proleptic Gregorian), so no time zone or
 * libc locale can change a result. */
#include "timearg.h"

#include <stdio.h>
#include <string.h>

#include "engine/common.h"

static const char forms[] = "want " SEQC_TIME_FORMS;

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Exactly n digits at *p into *v; advances *p. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        x = x * 10 + (c - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

static int parse_iso(const char *s, int64_t *out)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec)) return -1;
            if (*p == '.') {
                p++;
                int nd = 0;
                ms = 0;
                for (; *p >= '0' && *p <= '9'; p++, nd++)
                    if (nd < 3) ms = ms * 10 + (*p - '0');
                if (nd == 0) return -1;
                for (; nd < 3; nd++) ms *= 10;
            }
        }
    }
    if (*p == 'Z' || *p == 'z') p++;
    else if (strcmp(p, "+00:00") == 0 || strcmp(p, "+0000") == 0) p += strlen(p);
    if (*p) return -1;
    if (mo < 1 || mo > 12 || d < 1 ||
        (unsigned)d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || h > 23 || mi > 59 || sec > 59)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *out = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + ms;
    return 0;
}

/* "-<N><unit>": ms s m h d w. */
static int parse_relative(const char *s, int64_t now_ms, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1},          {"s", 1000},        {"m", 60000},
                 {"h", 3600000},     {"d", 86400000},    {"w", 604800000}};
    const char *p = s + 1;
    int64_t n = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (INT64_MAX - 9) / 10) return -1;
        n = n * 10 + (*p - '0');
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].unit) != 0) continue;
        if (n > INT64_MAX / units[i].ms) return -1;
        int64_t d = n * units[i].ms;
        if (now_ms < INT64_MIN + d) return -1;
        *out = now_ms - d;
        return 0;
    }
    return -1;
}

static int parse_ms(const char *s, int64_t *out)
{
    const char *p = s + (*s == '-');
    if (!*p) return -1;
    int64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v > (INT64_MAX - (*p - '0')) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    *out = *s == '-' ? -v : v;
    return 0;
}

int seqc_parse_time(const char *s, int64_t now_ms, int64_t *out_ms, char *err, size_t errlen)
{
    int64_t v;
    int ok;
    if (!s || !*s) ok = -1;
    else if (strcmp(s, "now") == 0) ok = (v = now_ms, 0);
    else if (parse_ms(s, &v) == 0) ok = 0;
    else if (s[0] == '-') ok = parse_relative(s, now_ms, &v);
    else ok = parse_iso(s, &v);
    if (ok != 0) {
        seq_errf(err, errlen, "not a time: '%s' (%s)", s ? s : "", forms);
        return -1;
    }
    *out_ms = v;
    return 0;
}
