/* seqctl broker: librdkafka's mock cluster as a process of its own, so that seqd can be
 * killed and restarted while the log survives (crash tests, demos). Not a store: the
 * mock keeps a bounded log per partition. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqctl.h"

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGUSR2);
}

/* Blocks until SIGTERM or SIGINT (blocked beforehand, so none is lost). Meanwhile SIGUSR1
 * takes the broker down (connections dropped, new ones refused) and SIGUSR2 brings it
 * back, so tests can play a broker outage with the log intact. */
static void wait_for_stop(rd_kafka_mock_cluster_t *mc)
{
    sigset_t set;
    int sig;
    stop_signals(&set);
    for (;;) {
        sigwait(&set, &sig);
        if (sig == SIGUSR1) rd_kafka_mock_broker_set_down(mc, 1);
        else if (sig == SIGUSR2) rd_kafka_mock_broker_set_up(mc, 1);
        else return;
        fprintf(stderr, "seqctl broker: broker %s\n", sig == SIGUSR1 ? "down" : "up");
    }
}

static int run_cluster(const char *topic, int partitions)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* the mock cluster needs a client instance to live in; it is never used to produce */
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return seqc_fail("cannot create the Kafka client: %s", errstr);
    }
    int ret = SEQC_EXIT_FAIL;
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (!mc) {
        seqc_fail("cannot create the mock cluster");
        goto out;
    }
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, partitions, 1);
    char map_topic[300]; /* seqd's cluster map (server/cluster.h): one partition */
    snprintf(map_topic, sizeof map_topic, "%s.seqd-cluster", topic);
    if (!e) e = rd_kafka_mock_topic_create(mc, map_topic, 1, 1);
    snprintf(map_topic, sizeof map_topic, "%s.seqd-loads", topic); /* cluster-wide loads */
    if (!e) e = rd_kafka_mock_topic_create(mc, map_topic, 1, 1);
    if (e) {
        seqc_fail("cannot create topic %s: %s", topic, rd_kafka_err2str(e));
        goto out;
    }
    printf("brokers=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    wait_for_stop(mc);
    ret = SEQC_EXIT_OK;
out:
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return ret;
}

int seqc_cmd_broker(const seqc_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    const char *topic = "seqd.events";
    int64_t partitions = 8;
    sigset_t set;
    stop_signals(&set);
    /* before librdkafka starts threads, so they inherit the mask and sigwait gets them */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = seqc_opt(argc, argv, &i, "partitions", &v);
        if (r == 1 && (seqc_parse_i64(v, &partitions) < 0 || partitions < 1 || partitions > 1000))
            return seqc_usage_error("--partitions: want 1..1000, got '%s'", v);
        if (r == 0 && (r = seqc_opt(argc, argv, &i, "topic", &v)) == 1) topic = v;
        if (r < 0) return seqc_usage_error("%s needs a value", argv[i]);
        if (r == 0) return seqc_usage_error("broker: unexpected argument '%s'", argv[i]);
    }
    return run_cluster(topic, (int)partitions);
}
