/* --kafka-config: the key=value parser, refusals that name the line and property
 * (unknown to librdkafka, reserved by seqd, not key=value), and that apply hands every
 * property to a librdkafka configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "server/kafkaconf.h"
#include "testlib.h"

static int parse(const char *text, seq_kafkaconf **kc, char *err, size_t errlen)
{
    return seq_kafkaconf_parse(text, strlen(text), "k.conf", kc, err, errlen);
}

static void test_accepts_and_applies(void)
{
    seq_kafkaconf *kc = NULL;
    char err[256] = "";
    const char *text = "# TLS to the cluster\n\n  socket.timeout.ms = 12345 \r\n"
                       "client.id=seqd-test\nsecurity.protocol=plaintext\n";
    CHECK_EQ_INT(parse(text, &kc, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_kafkaconf_count(kc), 3);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK_EQ_INT(seq_kafkaconf_apply(kc, conf, err, sizeof err), SEQ_OK);
    char v[64];
    size_t n = sizeof v;
    CHECK(rd_kafka_conf_get(conf, "socket.timeout.ms", v, &n) == RD_KAFKA_CONF_OK && strcmp(v, "12345") == 0);
    n = sizeof v;
    CHECK(rd_kafka_conf_get(conf, "client.id", v, &n) == RD_KAFKA_CONF_OK && strcmp(v, "seqd-test") == 0);
    rd_kafka_conf_destroy(conf);
    seq_kafkaconf_free(kc);
    /* NULL applies nothing */
    conf = rd_kafka_conf_new();
    CHECK_EQ_INT(seq_kafkaconf_apply(NULL, conf, err, sizeof err), SEQ_OK);
    rd_kafka_conf_destroy(conf);
}

static void expect_refused(const char *text, const char *want)
{
    seq_kafkaconf *kc = NULL;
    char err[256] = "";
    CHECK_EQ_INT(parse(text, &kc, err, sizeof err), SEQ_EINVAL);
    CHECK(kc == NULL);
    if (!strstr(err, want)) fprintf(stderr, "message '%s' lacks '%s'\n", err, want);
    CHECK(strstr(err, want) != NULL);
}

static void test_refusals(void)
{
    expect_refused("client.id=a\nno.such.property=1\n", "k.conf:2: no.such.property");
    expect_refused("socket.timeout.ms=abc\n", "k.conf:1: socket.timeout.ms");
    expect_refused("just a line\n", "k.conf:1: 'just a line' is not key=value");
    expect_refused("=3\n", "k.conf:1: empty property name");
    expect_refused("group.id=other\n", "group.id is set by seqd itself (use --group)");
    expect_refused("group.instance.id=x\n", "use --instance-id");
    expect_refused("partitioner=consistent_random\n", "partitioner is set by seqd itself");
    expect_refused("enable.auto.commit=true\n", "enable.auto.commit is set by seqd itself");
    expect_refused("bootstrap.servers=h:9092\n", "use --brokers");
    { seq_kafkaconf *kc = NULL; char err[128] = ""; CHECK_EQ_INT(seq_kafkaconf_parse("a\0b=1", 5, "k.conf", &kc, err, sizeof err), SEQ_EINVAL); CHECK(strstr(err, "NUL") != NULL); }
}

static void test_load_file(void)
{
    seq_kafkaconf *kc = NULL;
    char err[256] = "", path[] = "/tmp/seqd-kconf-XXXXXX";
    CHECK_EQ_INT(seq_kafkaconf_load("/nonexistent/k.conf", &kc, err, sizeof err), SEQ_EINVAL);
    CHECK(strstr(err, "--kafka-config /nonexistent/k.conf: No such file") != NULL);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "client.id=x\n", 12) == 12);
    close(fd);
    CHECK_EQ_INT(seq_kafkaconf_load(path, &kc, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_kafkaconf_count(kc), 1);
    seq_kafkaconf_free(kc);
    unlink(path);
}

int main(void)
{
    RUN(test_accepts_and_applies);
    RUN(test_refusals);
    RUN(test_load_file);
    return seq_t_done();
}
