/* seqd command line: defaults, both option spellings, and the errors main turns into
 * exit code 2. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/config.h"
#include "testlib.h"
#include "engine/common.h"

static int parse(seq_config *c, char **argv, char *err, size_t errlen)
{
    int argc = 0;
    while (argv[argc]) argc++;
    return seq_config_parse(c, argc, argv, err, errlen);
}

static void test_defaults(void)
{
    seq_config c;
    char err[256] = "";
    char *argv[] = {"seqd", "--definition", "def.json", NULL};
    CHECK_EQ_INT(parse(&c, argv, err, sizeof err), SEQ_OK);
    CHECK(strcmp(c.definition, "def.json") == 0);
    CHECK(strcmp(c.data_dir, "./seqd-data") == 0);
    CHECK(strcmp(c.grpc_listen, "127.0.0.1:50051") == 0);
    CHECK(strcmp(c.admin_listen, "127.0.0.1:8080") == 0);
    CHECK(c.brokers == NULL);
    CHECK(strcmp(c.topic, "seqd.events") == 0);
    CHECK(strcmp(c.group, "seqd") == 0);
    CHECK_EQ_INT(c.group_given, 0);
    CHECK_EQ_INT(c.event_format, SEQ_FORMAT_PROTOBUF);
    CHECK_EQ_INT(c.threads, sysconf(_SC_NPROCESSORS_ONLN));
    CHECK_EQ_INT(c.cache_mb, 512);
    CHECK_EQ_INT(c.max_message_bytes, 4194304);
    CHECK(strcmp(c.batch_root, "./seqd-data/batch") == 0);
    CHECK(c.admin_token_file == NULL);
    CHECK_EQ_INT(c.help, 0);
    CHECK(c.history_ms == 604800000); /* 7 days */
    CHECK(c.keep_generations == 2);
    CHECK_EQ_INT(c.write_lanes, 2);
    seq_config_free(&c);
}

static void test_both_spellings(void)
{
    seq_config c;
    char err[256] = "";
    char *argv[] = {"seqd", "--definition=d.json", "--data-dir", "/tmp/x", "--grpc-listen=0.0.0.0:0",
                    "--admin-listen", "127.0.0.1:0", "--brokers=h1:9092,h2:9092", "--topic", "t",
                    "--group=g", "--event-format", "json", "--threads=3", "--cache-mb", "64",
                    "--max-message-bytes=65536", "--admin-token-file", "tok", "--idle-timeout-s=30",
                    "--max-connections=100", "--max-concurrent-streams", "8",
                    "--max-header-bytes=2048", "--history-ms", "0", "--keep-generations", "5",
                    "--write-lanes=8", NULL};
    CHECK_EQ_INT(parse(&c, argv, err, sizeof err), SEQ_OK);
    CHECK(strcmp(c.definition, "d.json") == 0);
    CHECK(strcmp(c.data_dir, "/tmp/x") == 0);
    CHECK(strcmp(c.grpc_listen, "0.0.0.0:0") == 0);
    CHECK(strcmp(c.admin_listen, "127.0.0.1:0") == 0);
    CHECK(c.brokers && strcmp(c.brokers, "h1:9092,h2:9092") == 0);
    CHECK(strcmp(c.topic, "t") == 0);
    CHECK(strcmp(c.group, "g") == 0);
    CHECK_EQ_INT(c.group_given, 1);
    CHECK_EQ_INT(c.event_format, SEQ_FORMAT_JSON);
    CHECK_EQ_INT(c.threads, 3);
    CHECK_EQ_INT(c.cache_mb, 64);
    CHECK_EQ_INT(c.max_message_bytes, 65536);
    CHECK(strcmp(c.batch_root, "/tmp/x/batch") == 0); /* follows --data-dir */
    CHECK(strcmp(c.admin_token_file, "tok") == 0);
    CHECK_EQ_INT(c.idle_timeout_s, 30);
    CHECK_EQ_INT(c.max_connections, 100);
    CHECK_EQ_INT(c.max_concurrent_streams, 8);
    CHECK_EQ_INT(c.max_header_bytes, 2048);
    CHECK(c.history_ms == 0);
    CHECK(c.keep_generations == 5);
    CHECK_EQ_INT(c.write_lanes, 8);
    seq_config_free(&c);
}

static void test_batch_root(void)
{
    seq_config c;
    char err[256] = "";
    char *argv[] = {"seqd", "--batch-root", "/srv/b", "--definition", "d", NULL};
    CHECK_EQ_INT(parse(&c, argv, err, sizeof err), SEQ_OK);
    CHECK(strcmp(c.batch_root, "/srv/b") == 0);
    seq_config_free(&c);
}

static void test_help(void)
{
    seq_config c;
    char err[256] = "";
    char *argv[] = {"seqd", "--help", NULL}; /* no --definition needed */
    CHECK_EQ_INT(parse(&c, argv, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(c.help, 1);
    seq_config_free(&c);
}

/* Each bad command line fails with a message naming the culprit. */
static void expect_error(char **argv, const char *needle)
{
    seq_config c;
    char err[256] = "";
    CHECK_EQ_INT(parse(&c, argv, err, sizeof err), SEQ_EINVAL);
    if (!strstr(err, needle)) fprintf(stderr, "message '%s' lacks '%s'\n", err, needle);
    CHECK(strstr(err, needle) != NULL);
}

static void test_errors(void)
{
    char *a1[] = {"seqd", NULL};
    expect_error(a1, "--definition");
    char *a2[] = {"seqd", "--definition", "d", "--bogus", "1", NULL};
    expect_error(a2, "--bogus");
    char *a3[] = {"seqd", "--definition", "d", "--threads", "0", NULL};
    expect_error(a3, "--threads");
    char *a4[] = {"seqd", "--definition", "d", "--threads=abc", NULL};
    expect_error(a4, "--threads");
    char *a5[] = {"seqd", "--definition", "d", "--event-format", "xml", NULL};
    expect_error(a5, "--event-format");
    char *a6[] = {"seqd", "--definition", "d", "--cache-mb", NULL};
    expect_error(a6, "--cache-mb needs a value");
    char *a7[] = {"seqd", "--definition", "d", "stray", NULL};
    expect_error(a7, "stray");
    char *a8[] = {"seqd", "--definition", "d", "--help=yes", NULL};
    expect_error(a8, "--help");
    char *a9[] = {"seqd", "--definition=", NULL};
    expect_error(a9, "--definition");
    char *a10[] = {"seqd", "--definition", "d", "--max-message-bytes", "99999999999999999999", NULL};
    expect_error(a10, "--max-message-bytes");
    char *a11[] = {"seqd", "--definition", "d", "--history-ms", "-1", NULL};
    expect_error(a11, "--history-ms");
    char *a12[] = {"seqd", "--definition", "d", "--keep-generations", "-1", NULL};
    expect_error(a12, "--keep-generations");
    char *a13[] = {"seqd", "--definition", "d", "--write-lanes", "0", NULL};
    expect_error(a13, "--write-lanes");
    char *a14[] = {"seqd", "--definition", "d", "--write-lanes", "9", NULL};
    expect_error(a14, "--write-lanes: '9' is not an integer in [1, 8]");
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_both_spellings);
    RUN(test_batch_root);
    RUN(test_help);
    RUN(test_errors);
    return seq_t_done();
}
