/* --kafka-config FILE: librdkafka properties (`key=value` lines) that seqd applies to
 * every Kafka client it makes (the stream consumer, the misrouted re-producer, the
 * cluster map's producer and reader): TLS, SASL, timeouts of a real cluster. Read and
 * checked once at start (PRODUCT.md, "Command line"): a missing file, a malformed line,
 * a property librdkafka does not accept, or one that seqd sets itself is refused with a
 * message naming it. */
#ifndef SEQ_KAFKACONF_H
#define SEQ_KAFKACONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

typedef struct seq_kafkaconf seq_kafkaconf;

/* Parses text (len bytes, not NUL-terminated): one `key=value` per line, blank lines
 * and lines starting with '#' ignored, spaces around key and value trimmed. `origin`
 * names the source in messages ("FILE:LINE: ..."). SEQ_OK, SEQ_EINVAL (message in
 * err) or SEQ_EINTERNAL (out of memory). */
int seq_kafkaconf_parse(const char *text, size_t len, const char *origin, seq_kafkaconf **out,
                        char *err, size_t errlen);
/* Reads and parses path. SEQ_OK, SEQ_EINVAL (unreadable file, bad content) or
 * SEQ_EINTERNAL. */
int seq_kafkaconf_load(const char *path, seq_kafkaconf **out, char *err, size_t errlen);
/* Applies every property to conf (kc may be NULL: nothing to apply). SEQ_OK or
 * SEQ_EINVAL naming the property librdkafka refused. */
int seq_kafkaconf_apply(const seq_kafkaconf *kc, rd_kafka_conf_t *conf, char *err, size_t errlen);
/* Number of properties (for tests). */
size_t seq_kafkaconf_count(const seq_kafkaconf *kc);
void seq_kafkaconf_free(seq_kafkaconf *kc);

#endif
