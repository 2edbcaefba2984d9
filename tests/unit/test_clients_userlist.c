/* seqctl's user lists (clients/userlist.h): ids, ranges, separators, and every refusal. */
#include <stdlib.h>
#include <string.h>

#include "clients/userlist.h"
#include "testlib.h"

static int parse(const char *text, uint64_t **v, size_t *n, char *err)
{
    return seqc_parse_users(text, 1000, v, n, err, 128);
}

static void test_accepted(void)
{
    uint64_t *v;
    size_t n;
    char err[128];
    CHECK_EQ_INT(parse("1-3,42\n7 8\t9\r\n", &v, &n, err), 0);
    CHECK_EQ_INT(n, 7);
    if (n == 7) CHECK(v[0] == 1 && v[2] == 3 && v[3] == 42 && v[6] == 9);
    free(v);
    CHECK_EQ_INT(parse("18446744073709551615", &v, &n, err), 0); /* the largest id */
    CHECK(n == 1 && v[0] == UINT64_MAX);
    free(v);
    CHECK_EQ_INT(parse("5-5", &v, &n, err), 0);
    CHECK(n == 1 && v[0] == 5);
    free(v);
}

static void test_refused(void)
{
    uint64_t *v;
    size_t n;
    char err[128];
    static const struct {
        const char *in, *msg;
    } bad[] = {{"", "the user list is empty"}, {" ,\n", "the user list is empty"},
               {"0", "user id 0 is not a user"}, {"5-2", "bad range at '5-2'"},
               {"x", "not a user id at 'x'"}, {"-3", "not a user id at '-3'"},
               {"3x", "unexpected 'x' at '3x'"}, {"1-", "bad range at '1-'"},
               {"18446744073709551616", "not a user id at '18446744073709551616'"},
               {"1-1001", "more than 1000 users"}, {"1-600,700-1200", "more than 1000 users"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse(bad[i].in, &v, &n, err), -1);
        if (strcmp(err, bad[i].msg) != 0) fprintf(stderr, "'%s': got '%s'\n", bad[i].in, err);
        CHECK(strcmp(err, bad[i].msg) == 0);
    }
}

int main(void)
{
    RUN(test_accepted);
    RUN(test_refused);
    return seq_t_done();
}
