/* seqctl's pure helpers: time arguments (clients/timearg.c) and shortest round-trip
 * number printing (clients/numfmt.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clients/numfmt.h"
#include "clients/timearg.h"
#include "testlib.h"

static const int64_t NOW = 1764000000000; /* 2025-11-24T16:00:00Z */

static int64_t t_ok(const char *s)
{
    int64_t v = -12345;
    char err[256];
    CHECK(seqc_parse_time(s, NOW, &v, err, sizeof err) == 0);
    return v;
}

static void t_bad(const char *s)
{
    int64_t v = 77;
    char err[256] = "";
    CHECK(seqc_parse_time(s, NOW, &v, err, sizeof err) == -1);
    CHECK(v == 77);
    CHECK(strstr(err, s) != NULL && strstr(err, "ISO-8601") != NULL);
}

static void test_ms(void)
{
    CHECK_EQ_INT(t_ok("1764000000000"), 1764000000000);
    CHECK_EQ_INT(t_ok("0"), 0);
    CHECK_EQ_INT(t_ok("-5"), -5); /* a bare integer is ms, even negative */
    CHECK_EQ_INT(t_ok("9223372036854775807"), INT64_MAX);
    t_bad("9223372036854775808");
    t_bad("");
    t_bad("12x");
    t_bad("-");
}

static void test_iso(void)
{
    CHECK_EQ_INT(t_ok("2025-11-24T16:00:00Z"), NOW);
    CHECK_EQ_INT(t_ok("2025-11-24T16:00:00.123Z"), NOW + 123);
    CHECK_EQ_INT(t_ok("2025-11-24T16:00:00.1"), NOW + 100);
    CHECK_EQ_INT(t_ok("2025-11-24T16:00:00.123456Z"), NOW + 123);
    CHECK_EQ_INT(t_ok("2025-11-24 16:00:00"), NOW);
    CHECK_EQ_INT(t_ok("2025-11-24T16:00"), NOW);
    CHECK_EQ_INT(t_ok("2025-11-24T16:00:00+00:00"), NOW);
    CHECK_EQ_INT(t_ok("2025-11-24"), NOW - 16 * 3600000LL);
    CHECK_EQ_INT(t_ok("1970-01-01T00:00:00Z"), 0);
    CHECK_EQ_INT(t_ok("1969-12-31T23:59:59Z"), -1000);
    CHECK_EQ_INT(t_ok("2024-02-29T00:00:00Z"), 1709164800000);
    CHECK_EQ_INT(t_ok("2000-03-01"), 951868800000);
    t_bad("2025-02-29");
    t_bad("2100-02-29");
    t_bad("2025-13-01");
    t_bad("2025-11-31");
    t_bad("2025-11-24T24:00");
    t_bad("2025-11-24T16:60");
    t_bad("2025-11-24T16:00:00+01:00"); /* UTC only */
    t_bad("2025-11-24T16:00:00.");
    t_bad("2025-11-24T16");
    t_bad("25-11-24");
    t_bad("2025-11-24Zjunk");
}

static void test_relative(void)
{
    CHECK_EQ_INT(t_ok("-2h"), NOW - 7200000);
    CHECK_EQ_INT(t_ok("-30m"), NOW - 1800000);
    CHECK_EQ_INT(t_ok("-7d"), NOW - 7 * 86400000LL);
    CHECK_EQ_INT(t_ok("-45s"), NOW - 45000);
    CHECK_EQ_INT(t_ok("-500ms"), NOW - 500);
    CHECK_EQ_INT(t_ok("-1w"), NOW - 604800000);
    CHECK_EQ_INT(t_ok("now"), NOW);
    t_bad("-2y");
    t_bad("-h");
    t_bad("2h");
    t_bad("-99999999999999999999d");
    t_bad("-9999999999999999d");
}

static void check_fmt(double v, const char *want)
{
    char buf[40];
    seqc_format_double(v, buf, sizeof buf);
    if (strcmp(buf, want) != 0) fprintf(stderr, "format %.17g: got %s, want %s\n", v, buf, want);
    CHECK(strcmp(buf, want) == 0);
}

static void test_format_double(void)
{
    check_fmt(19.99, "19.99");
    check_fmt(0.1, "0.1");
    check_fmt(0.1 + 0.2, "0.30000000000000004"); /* needs all 17 */
    check_fmt(1200, "1200");
    check_fmt(-1, "-1");
    check_fmt(1e300, "1e+300");
    check_fmt(NAN, "nan");
    check_fmt(-INFINITY, "-inf");
    check_fmt(5e-324, "4.94065645841247e-324"); /* the smallest subnormal: 15 digits suffice */
    /* every printed value reads back as itself */
    srand(7);
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        char buf[40];
        seqc_format_double(v, buf, sizeof buf);
        if (strtod(buf, NULL) != v) {
            CHECK(!"round trip");
            break;
        }
    }
}

static void test_json_print(void)
{
    json_t *doc = json_pack("{s:f, s:f, s:I, s:s, s:[f, n]}", "price", 19.99, "whole", 3.0,
                            "n", (json_int_t)-7, "s", "a\"b\n", "arr", 0.1);
    CHECK(doc != NULL);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(seqc_json_print(doc, f) == 0);
    fclose(f);
    CHECK(text && strcmp(text, "{\"price\":19.99,\"whole\":3.0,\"n\":-7,\"s\":\"a\\\"b\\n\","
                               "\"arr\":[0.1,null]}") == 0);
    if (text) fprintf(stderr, "%s\n", text);
    free(text);
    json_decref(doc);
}

int main(void)
{
    RUN(test_ms);
    RUN(test_iso);
    RUN(test_relative);
    RUN(test_format_double);
    RUN(test_json_print);
    return seq_t_done();
}
