/* The console's query-string parser (server/console_query.c): what each key accepts,
 * what it refuses, and that the refusal names the key. */
#include <string.h>

#include "engine/common.h"
#include "server/console_query.h"
#include "testlib.h"

static int parse(const char *s, seq_cq *q, char *err)
{
    return seq_cq_parse(s, strlen(s), q, err, 256);
}

static void refused(const char *query, const char *needle)
{
    seq_cq q;
    char err[256] = "";
    CHECK_EQ_INT(parse(query, &q, err), SEQ_EINVAL);
    CHECK(strstr(err, needle) != NULL);
    if (!strstr(err, needle)) fprintf(stderr, "  query %s: message '%s'\n", query, err);
}

static void test_accepts(void)
{
    seq_cq q;
    char err[256];
    CHECK_EQ_INT(parse("user=42&sequence=engagements", &q, err), SEQ_OK);
    CHECK(q.has_user && q.has_sequence && q.user == 42 && strcmp(q.sequence, "engagements") == 0);
    CHECK(q.view == SEQ_CQ_MERGED && q.as_of_ms == 0 && q.limit == 0);
    CHECK_EQ_INT(parse("sequence=eng%61ge%2Dments&user=18446744073709551615&view=batch_only&as_of=1764000000000&limit=100000", &q, err), SEQ_OK);
    CHECK(strcmp(q.sequence, "engage-ments") == 0 && q.user == UINT64_MAX);
    CHECK(q.view == SEQ_CQ_BATCH_ONLY && q.as_of_ms == 1764000000000 && q.limit == 100000);
    CHECK_EQ_INT(parse("view=stream_only", &q, err), SEQ_OK);
    CHECK(q.view == SEQ_CQ_STREAM_ONLY && !q.has_user && !q.has_sequence);
    /* empty query, empty pairs, unknown keys (a deep link's extras) */
    CHECK_EQ_INT(parse("", &q, err), SEQ_OK);
    CHECK(!q.has_user);
    CHECK_EQ_INT(parse("&&utm=x&user=0&%zz=1&&", &q, err), SEQ_OK);
    CHECK(q.has_user && q.user == 0);
    /* the length is the bound, not a NUL */
    CHECK_EQ_INT(seq_cq_parse("user=12&junk", 7, &q, err, sizeof err), SEQ_OK);
    CHECK(q.user == 12);
    CHECK_EQ_INT(seq_cq_parse("sequence=a%4F", 12, &q, err, sizeof err), SEQ_EINVAL); /* %4 cut */
    /* every hex digit, both cases, 0 included */
    CHECK_EQ_INT(parse("sequence=%30%39%41%46%61%66%4f%4F%6a%6A", &q, err), SEQ_OK);
    CHECK(strcmp(q.sequence, "09AFafOOjj") == 0);
    CHECK_EQ_INT(parse("view=merged", &q, err), SEQ_OK);
    CHECK(q.view == SEQ_CQ_MERGED);
    /* names up to SEQ_CQ_NAME_MAX - 1 bytes */
    char name[300] = "sequence=";
    memset(name + 9, 'n', SEQ_CQ_NAME_MAX - 1);
    CHECK_EQ_INT(parse(name, &q, err), SEQ_OK);
    CHECK(strlen(q.sequence) == SEQ_CQ_NAME_MAX - 1);
    name[9 + SEQ_CQ_NAME_MAX - 1] = 'n';
    CHECK_EQ_INT(parse(name, &q, err), SEQ_EINVAL);
}

static void test_refuses(void)
{
    refused("user=", "user:");
    refused("user", "user:");
    refused("user=abc", "user: 'abc'");
    refused("user=-1", "user:");
    refused("user=+1", "user:");
    refused("user=1%20", "user:");
    refused("user=18446744073709551616", "user:"); /* 2^64 */
    refused("user=99999999999999999999", "user:");
    refused("user=1&user=1", "user: given twice");
    refused("sequence=", "sequence: must be 1 to");
    refused("sequence=a+b", "sequence: byte 1");
    refused("sequence=a%0Ab", "sequence: byte 1");
    refused("sequence=a%00b", "sequence: bad %-escape");
    refused("sequence=a%4", "sequence: bad %-escape");
    refused("sequence=a%", "sequence: bad %-escape");
    refused("sequence=%C3%A9", "sequence: byte 0");
    refused("view=MERGED", "view: 'MERGED'");
    refused("as_of=-5", "as_of:");
    refused("as_of=9223372036854775808", "as_of:"); /* past int64 */
    refused("limit=0", "limit:");
    refused("limit=100001", "limit:");
    char big[400] = "sequence=";
    memset(big + 9, 'x', 300);
    refused(big, "longer than");
}

int main(void)
{
    RUN(test_accepts);
    RUN(test_refuses);
    return seq_t_done();
}
