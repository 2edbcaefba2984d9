/* libFuzzer entry: the --kafka-config parser (server/kafkaconf.c) refuses or accepts any
 * bytes without crashing or leaking; whatever it accepted applies to a fresh librdkafka
 * configuration (every property was already tried on one while parsing). */
#include <stdint.h>
#include <stdlib.h>

#include "engine/common.h"
#include "server/kafkaconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    seq_kafkaconf *kc = NULL;
    if (seq_kafkaconf_parse((const char *)data, size, "fuzz", &kc, err, sizeof err) != SEQ_OK) return 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (seq_kafkaconf_apply(kc, conf, err, sizeof err) != SEQ_OK) abort();
    rd_kafka_conf_destroy(conf);
    seq_kafkaconf_free(kc);
    return 0;
}
