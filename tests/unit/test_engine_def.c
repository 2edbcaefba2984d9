/* Definition parsing, validation messages (each names its path), lookups, compatibility
 * and fingerprint. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "testlib.h"

#define GOOD                                                                                   \
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":86400000,\"max_future_ms\":300000,"       \
    "\"sequences\":[{\"name\":\"engagements\",\"event_types\":[\"click\",\"save\",\"view\"],"  \
    "\"max_length\":1000,\"retention_ms\":7776000000,"                                         \
    "\"columns\":[\"dwell_ms\",{\"name\":\"position\",\"default\":-1}],"                       \
    "\"filters\":[{\"attribute\":\"dwell_ms\",\"op\":\">=\",\"value\":500,"                    \
    "\"event_types\":[\"view\"]}]},"                                                           \
    "{\"name\":\"buys\",\"event_types\":[\"buy\"],\"max_length\":10,\"retention_ms\":3600000," \
    "\"filters\":[{\"attribute\":\"price\",\"op\":\">\",\"value\":0}]}]}"

static seq_def *parse(const char *js, char *err, size_t errlen)
{
    seq_def *d = NULL;
    err[0] = '\0';
    int rc = seq_def_parse(js, strlen(js), &d, err, errlen);
    if (rc != SEQ_OK) CHECK(d == NULL);
    return d;
}

static void test_good(void)
{
    char err[256];
    seq_def *d = parse(GOOD, err, sizeof err);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(d->bucket_ms, 3600000);
    CHECK_EQ_INT(d->horizon_ms, 86400000);
    CHECK_EQ_INT(d->max_future_ms, 300000);
    CHECK_EQ_INT(d->n_seqs, 2);
    const seq_sequence *s = seq_def_find(d, "engagements", 11);
    CHECK(s == &d->seqs[0]);
    CHECK(seq_def_find(d, "engagementsX", 11) == s); /* len-bounded */
    CHECK(seq_def_find(d, "engage", 6) == NULL);
    CHECK(seq_def_find(d, "buys", 4) == &d->seqs[1]);
    CHECK_EQ_INT(d->seqs[1].id, 1);
    CHECK_EQ_INT(s->n_types, 3);
    CHECK_EQ_INT(seq_def_type_index(s, "view", 4), 2);
    CHECK_EQ_INT(seq_def_type_index(s, "vie", 3), -1);
    /* a NUL inside the looked-up name never matches (and never reads past the name) */
    CHECK_EQ_INT(seq_def_type_index(s, "save\0", 5), -1);
    CHECK(seq_def_find(d, "buys\0", 5) == NULL);
    CHECK_EQ_INT(seq_def_attr_index(d, "price\0x", 7), -1);
    CHECK_EQ_INT(s->max_length, 1000);
    CHECK_EQ_INT(s->retention_ms, 7776000000LL);
    CHECK_EQ_INT(s->n_columns, 2);
    CHECK(strcmp(s->columns[0].name, "dwell_ms") == 0);
    CHECK(isnan(s->columns[0].dflt));
    CHECK(s->columns[1].dflt == -1.0);
    CHECK_EQ_INT(s->n_filters, 1);
    CHECK_EQ_INT(s->filters[0].op, SEQ_OP_GE);
    CHECK(s->filters[0].value == 500.0);
    CHECK_EQ_INT(s->filters[0].type_mask, 4);
    CHECK(d->seqs[1].filters[0].type_mask == ~(uint64_t)0);
    /* attrs: distinct over columns and filters, shared by index */
    CHECK_EQ_INT(d->n_attrs, 3);
    CHECK_EQ_INT(seq_def_attr_index(d, "dwell_ms", 8), (int)s->columns[0].attr);
    CHECK_EQ_INT(s->filters[0].attr, s->columns[0].attr);
    CHECK_EQ_INT(seq_def_attr_index(d, "price", 5), (int)d->seqs[1].filters[0].attr);
    CHECK_EQ_INT(seq_def_attr_index(d, "nope", 4), -1);
    CHECK(d->json && strchr(d->json, ' ') == NULL);
    CHECK(strstr(d->json, "\"bucket_ms\":3600000") != NULL);
    /* the stored json parses back to the same definition */
    seq_def *d2 = parse(d->json, err, sizeof err);
    CHECK(d2 && d2->fingerprint == d->fingerprint);
    seq_def_free(d2);
    seq_def_free(d);
}

static void test_default_max_future(void)
{
    char err[256];
    seq_def *d = parse("{\"bucket_ms\":10,\"freshness_horizon_ms\":20,\"sequences\":[{\"name\":"
                       "\"s\",\"event_types\":[\"a\"],\"max_length\":1,\"retention_ms\":30}]}",
                       err, sizeof err);
    CHECK(d && d->max_future_ms == 300000);
    CHECK(d && d->n_attrs == 0 && d->seqs[0].n_columns == 0 && d->seqs[0].n_filters == 0);
    seq_def_free(d);
}

/* Replaces the first `from` in GOOD by `to` and expects a refusal mentioning `want`. */
static void expect_bad(const char *from, const char *to, const char *want)
{
    char js[4096], err[256];
    const char *at = strstr(GOOD, from);
    if (!at) {
        fprintf(stderr, "bad test: %s not in GOOD\n", from);
        CHECK(0);
        return;
    }
    snprintf(js, sizeof js, "%.*s%s%s", (int)(at - GOOD), GOOD, to, at + strlen(from));
    seq_def *d = NULL;
    int rc = seq_def_parse(js, strlen(js), &d, err, sizeof err);
    CHECK_EQ_INT(rc, SEQ_EINVAL);
    CHECK(d == NULL);
    if (!strstr(err, want)) {
        fprintf(stderr, "  want '%s' got '%s'\n", want, err);
        CHECK(0);
    }
    seq_def_free(d);
}

static void test_bad(void)
{
    expect_bad("\"max_length\":1000", "\"max_length\":0", "sequences[0].max_length: must be > 0");
    expect_bad("\"max_length\":10,", "\"max_length\":-1,", "sequences[1].max_length: must be > 0");
    expect_bad("\"max_length\":1000", "\"max_length\":\"5\"",
               "sequences[0].max_length: must be an integer");
    expect_bad("\"max_length\":1000,", "", "sequences[0].max_length: missing");
    expect_bad("{\"bucket_ms\":3600000,", "{\"bukket_ms\":1,\"bucket_ms\":3600000,",
               "bukket_ms: unknown key");
    expect_bad("\"bucket_ms\":3600000,", "", "bucket_ms: missing");
    expect_bad("\"bucket_ms\":3600000", "\"bucket_ms\":0", "bucket_ms: must be > 0");
    expect_bad("\"bucket_ms\":3600000", "\"bucket_ms\":1.5", "bucket_ms: must be an integer");
    expect_bad("\"freshness_horizon_ms\":86400000,", "", "freshness_horizon_ms: missing");
    expect_bad("86400000", "86400001", "freshness_horizon_ms: must be > 0 and a multiple");
    expect_bad("86400000", "0", "freshness_horizon_ms: must be > 0");
    expect_bad("\"max_future_ms\":300000", "\"max_future_ms\":-1", "max_future_ms: must be >= 0");
    expect_bad("\"sequences\":[{\"name\":\"engagements\"", "\"sequencez\":[{\"name\":\"engagements\"",
               "sequencez: unknown key");
    expect_bad("7776000000", "7776000001", "sequences[0].retention_ms: must be > 0 and a multiple");
    expect_bad("\"retention_ms\":3600000", "\"retention_ms\":0", "sequences[1].retention_ms");
    expect_bad("\"retention_ms\":3600000,", "", "sequences[1].retention_ms: missing");
    expect_bad("\"max_length\":10,", "\"max_length\":10,\"colour\":1,", "sequences[1].colour: unknown key");
    expect_bad("\"name\":\"buys\"", "\"name\":\"\"", "sequences[1].name: must not be empty");
    expect_bad("\"name\":\"buys\"", "\"name\":\"engagements\"",
               "sequences[1].name: duplicate sequence 'engagements'");
    expect_bad("\"name\":\"buys\",", "", "sequences[1].name: missing");
    expect_bad("\"name\":\"buys\"", "\"name\":7", "sequences[1].name: must be a string");
    expect_bad("[\"buy\"]", "[]", "sequences[1].event_types: must be a non-empty array");
    expect_bad("[\"buy\"]", "[\"buy\",\"\"]", "sequences[1].event_types[1]: must not be empty");
    expect_bad("[\"buy\"]", "[\"buy\",\"buy\"]", "sequences[1].event_types[1]: duplicate type 'buy'");
    expect_bad("[\"buy\"]", "[\"buy\",3]", "sequences[1].event_types[1]: must be a string");
    expect_bad("\"event_types\":[\"buy\"],", "", "sequences[1].event_types: missing");
    expect_bad("[\"buy\"]",
               "[\"a234567890123456789012345678901234567890123456789012345678901234\"]",
               "sequences[1].event_types[0]: longer than 63 bytes");
    expect_bad("\"dwell_ms\",{", "\"dwell_ms\",\"dwell_ms\",{",
               "sequences[0].columns[1]: duplicate column 'dwell_ms'");
    expect_bad("\"dwell_ms\",{", "{\"name\":\"dwell_ms\"},\"position\",{",
               "sequences[0].columns[2]: duplicate column 'position'");
    expect_bad("\"dwell_ms\",{", "5,{", "sequences[0].columns[0]: must be a string or");
    expect_bad("\"default\":-1", "\"default\":\"x\"", "sequences[0].columns[1].default: must be a number");
    expect_bad("\"default\":-1", "\"default\":-1,\"dflt\":2", "sequences[0].columns[1].dflt: unknown key");
    expect_bad("{\"name\":\"position\",", "{", "sequences[0].columns[1].name: missing");
    expect_bad("\"op\":\">=\"", "\"op\":\"=>\"", "sequences[0].filters[0].op: must be one of");
    expect_bad("\"op\":\">=\",", "", "sequences[0].filters[0].op: missing");
    expect_bad("\"value\":500", "\"value\":\"500\"", "sequences[0].filters[0].value: must be a number");
    expect_bad("\"value\":500,", "", "sequences[0].filters[0].value: missing");
    expect_bad("\"attribute\":\"dwell_ms\",", "", "sequences[0].filters[0].attribute: missing");
    expect_bad("\"event_types\":[\"view\"]}", "\"event_types\":[\"buy\"]}",
               "sequences[0].filters[0].event_types[0]: type 'buy' is not declared");
    expect_bad("\"event_types\":[\"view\"]}", "\"event_types\":[]}",
               "sequences[0].filters[0].event_types: must be a non-empty array");
    expect_bad("\"value\":500,", "\"value\":500,\"when\":1,", "sequences[0].filters[0].when: unknown key");
    expect_bad("\"value\":0}", "\"value\":0},7", "sequences[1].filters[1]: must be an object");
    expect_bad("\"sequences\":[", "\"sequences\":[7,", "sequences[0]: must be an object");
    expect_bad("{\"bucket_ms\"", "[{\"bucket_ms\"", "invalid JSON");
    expect_bad("\"bucket_ms\":3600000", "\"bucket_ms\":3600000,\"bucket_ms\":1", "invalid JSON");
}

static void test_bad_whole(void)
{
    char err[256];
    CHECK(parse("[]", err, sizeof err) == NULL && strstr(err, "must be a JSON object"));
    CHECK(parse("{\"bucket_ms\":1,\"freshness_horizon_ms\":1,\"sequences\":[]}", err, sizeof err) ==
              NULL &&
          strstr(err, "sequences: must be a non-empty array"));
    CHECK(parse("{\"bucket_ms\":1,\"freshness_horizon_ms\":1}", err, sizeof err) == NULL &&
          strstr(err, "sequences: missing"));
}

/* Builds a definition with one sequence of 65 types / 33 columns / 65 attributes. */
static void test_limits(void)
{
    char js[8192], err[256];
    int n = snprintf(js, sizeof js, "{\"bucket_ms\":1,\"freshness_horizon_ms\":1,\"sequences\":"
                                    "[{\"name\":\"s\",\"max_length\":1,\"retention_ms\":1,"
                                    "\"event_types\":[");
    for (int i = 0; i < 65; i++) n += snprintf(js + n, sizeof js - n, "%s\"t%d\"", i ? "," : "", i);
    snprintf(js + n, sizeof js - n, "]}]}");
    CHECK(parse(js, err, sizeof err) == NULL && strstr(err, "sequences[0].event_types: more than 64"));

    n = snprintf(js, sizeof js, "{\"bucket_ms\":1,\"freshness_horizon_ms\":1,\"sequences\":"
                                "[{\"name\":\"s\",\"max_length\":1,\"retention_ms\":1,"
                                "\"event_types\":[\"a\"],\"columns\":[");
    for (int i = 0; i < 33; i++) n += snprintf(js + n, sizeof js - n, "%s\"c%d\"", i ? "," : "", i);
    snprintf(js + n, sizeof js - n, "]}]}");
    CHECK(parse(js, err, sizeof err) == NULL && strstr(err, "sequences[0].columns: more than 32"));

    /* 2 sequences x 32 columns + 1 filter attribute = 65 distinct attributes */
    n = snprintf(js, sizeof js, "{\"bucket_ms\":1,\"freshness_horizon_ms\":1,\"sequences\":[");
    for (int s = 0; s < 2; s++) {
        n += snprintf(js + n, sizeof js - n,
                      "%s{\"name\":\"s%d\",\"max_length\":1,\"retention_ms\":1,"
                      "\"event_types\":[\"a\"],\"columns\":[", s ? "," : "", s);
        for (int i = 0; i < 32; i++)
            n += snprintf(js + n, sizeof js - n, "%s\"c%d_%d\"", i ? "," : "", s, i);
        n += snprintf(js + n, sizeof js - n, "]%s}",
                      s ? ",\"filters\":[{\"attribute\":\"x\",\"op\":\"<\",\"value\":1}]" : "");
    }
    snprintf(js + n, sizeof js - n, "]}");
    CHECK(parse(js, err, sizeof err) == NULL &&
          strstr(err, "sequences[1].filters[0].attribute: too many distinct attributes"));
}

static seq_def *mk(const char *seqs, long long bucket, long long horizon)
{
    char js[2048], err[256];
    snprintf(js, sizeof js, "{\"bucket_ms\":%lld,\"freshness_horizon_ms\":%lld,\"sequences\":[%s]}",
             bucket, horizon, seqs);
    seq_def *d = parse(js, err, sizeof err);
    if (!d) fprintf(stderr, "mk: %s\n", err);
    return d;
}

#define SEQ_A "{\"name\":\"a\",\"event_types\":[\"click\",\"save\"],\"max_length\":5,\"retention_ms\":60000,\"columns\":[\"x\",\"y\"]}"
#define SEQ_A2 "{\"name\":\"a\",\"event_types\":[\"click\",\"save\",\"view\"],\"max_length\":9,\"retention_ms\":120000,\"columns\":[\"x\",\"y\",\"z\"],\"filters\":[{\"attribute\":\"x\",\"op\":\"<\",\"value\":1}]}"
#define SEQ_A_RE "{\"name\":\"a\",\"event_types\":[\"save\",\"click\"],\"max_length\":5,\"retention_ms\":60000,\"columns\":[\"x\",\"y\"]}"
#define SEQ_A_COL "{\"name\":\"a\",\"event_types\":[\"click\",\"save\"],\"max_length\":5,\"retention_ms\":60000,\"columns\":[\"x\"]}"
#define SEQ_B "{\"name\":\"b\",\"event_types\":[\"buy\"],\"max_length\":5,\"retention_ms\":60000}"

static void expect_compat(const seq_def *prev, const seq_def *next, int want_rc, const char *want)
{
    char err[256] = "";
    int rc = seq_def_check_compat(prev, next, err, sizeof err);
    CHECK_EQ_INT(rc, want_rc);
    if (want && !strstr(err, want)) {
        fprintf(stderr, "  want '%s' got '%s'\n", want, err);
        CHECK(0);
    }
}

static void test_compat(void)
{
    seq_def *base = mk(SEQ_A "," SEQ_B, 60000, 120000);
    seq_def *grown = mk(SEQ_A2 "," SEQ_B ",{\"name\":\"c\",\"event_types\":[\"x\"],\"max_length\":1,\"retention_ms\":60000}",
                        60000, 120000);
    seq_def *bucket = mk(SEQ_A "," SEQ_B, 30000, 120000);
    seq_def *horizon = mk(SEQ_A "," SEQ_B, 60000, 180000);
    seq_def *removed = mk(SEQ_A, 60000, 120000);
    seq_def *moved = mk(SEQ_B "," SEQ_A, 60000, 120000);
    seq_def *retyped = mk(SEQ_A_RE "," SEQ_B, 60000, 120000);
    seq_def *col = mk(SEQ_A_COL "," SEQ_B, 60000, 120000);
    expect_compat(base, base, SEQ_OK, NULL);
    expect_compat(base, grown, SEQ_OK, NULL);
    expect_compat(grown, base, SEQ_EPRECONDITION, "sequences[0].event_types: 'view' removed or reordered");
    expect_compat(base, bucket, SEQ_EPRECONDITION, "bucket_ms changed from 60000 to 30000");
    expect_compat(base, horizon, SEQ_EPRECONDITION, "freshness_horizon_ms changed from 120000 to 180000");
    expect_compat(base, removed, SEQ_EPRECONDITION, "sequence 'b' removed");
    expect_compat(base, moved, SEQ_EPRECONDITION, "sequence 'a' moved from position 0 to 1");
    expect_compat(base, retyped, SEQ_EPRECONDITION, "sequences[0].event_types: 'click' removed or reordered");
    expect_compat(base, col, SEQ_EPRECONDITION, "sequences[0].columns: 'y' removed or reordered");

    /* fingerprint: changes with compatibility-relevant parts only */
    CHECK(base->fingerprint != grown->fingerprint);
    CHECK(base->fingerprint != bucket->fingerprint);
    CHECK(base->fingerprint != retyped->fingerprint);
    CHECK(base->fingerprint != col->fingerprint);
    seq_def *lengths = mk("{\"name\":\"a\",\"event_types\":[\"click\",\"save\"],\"max_length\":50,"
                          "\"retention_ms\":600000,\"columns\":[\"x\",{\"name\":\"y\",\"default\":3}]},"
                          SEQ_B, 60000, 120000);
    CHECK(lengths && lengths->fingerprint == base->fingerprint);

    /* per sequence: the builder's definition against the server's */
    char err[256] = "";
    CHECK_EQ_INT(seq_def_check_seq_compat(base, grown, "a", err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_def_check_seq_compat(base, removed, "a", err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_def_check_seq_compat(base, removed, "b", err, sizeof err), SEQ_ENOTFOUND);
    CHECK_EQ_INT(seq_def_check_seq_compat(removed, base, "b", err, sizeof err), SEQ_EPRECONDITION);
    CHECK_EQ_INT(seq_def_check_seq_compat(grown, base, "a", err, sizeof err), SEQ_EPRECONDITION);
    CHECK(strstr(err, "'view' removed or reordered") != NULL);
    CHECK_EQ_INT(seq_def_check_seq_compat(base, moved, "a", err, sizeof err), SEQ_EPRECONDITION);
    CHECK_EQ_INT(seq_def_check_seq_compat(base, bucket, "a", err, sizeof err), SEQ_EPRECONDITION);
    CHECK(strstr(err, "bucket_ms changed") != NULL);
    seq_def *ds[] = {base, grown, bucket, horizon, removed, moved, retyped, col, lengths};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) seq_def_free(ds[i]);
}

static void test_load_file(void)
{
    char path[] = "/tmp/seq_def_testXXXXXX", err[512];
    seq_def *d = NULL;
    FILE *f = fdopen(mkstemp(path), "w");
    fputs(GOOD, f);
    fclose(f);
    CHECK_EQ_INT(seq_def_load_file(path, &d, err, sizeof err), SEQ_OK);
    CHECK(d && d->n_seqs == 2);
    seq_def_free(d);
    remove(path);
    CHECK_EQ_INT(seq_def_load_file(path, &d, err, sizeof err), SEQ_ENOTFOUND);
    CHECK(d == NULL && strstr(err, path) != NULL);
}

int main(void)
{
    RUN(test_good);
    RUN(test_default_max_future);
    RUN(test_bad);
    RUN(test_bad_whole);
    RUN(test_limits);
    RUN(test_compat);
    RUN(test_load_file);
    return seq_t_done();
}
