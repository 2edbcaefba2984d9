/* libFuzzer entry: cluster map records (server/cluster_record.c) come from a Kafka topic
 * anyone with produce rights writes: any bytes are refused or parsed without crashing or
 * leaking, a parsed record formats to text that parses back to the same record, and its
 * impact counts (seq_cluster_record_impact) are read without crashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "server/cluster_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seq_cluster_record r, again;
    if (seq_cluster_parse_record(data, size, &r) != SEQ_OK) return 0;
    char *text = seq_cluster_format_record(&r);
    if (!text) abort();
    if (seq_cluster_parse_record(text, strlen(text), &again) != SEQ_OK) abort();
    if (strcmp(r.id, again.id) || r.n_parts != again.n_parts || memcmp(r.held, again.held, sizeof r.held) ||
        memcmp(r.caught, again.caught, sizeof r.caught) || r.heartbeat_ms != again.heartbeat_ms ||
        memcmp(r.gap_from, again.gap_from, sizeof r.gap_from))
        abort();
    /* the impact counts of any offset, over partitions up to the limit */
    uint8_t seen[SEQ_CLUSTER_RECORD_MAX_PARTS] = {0};
    uint64_t emptied = 0, hidden = 0;
    for (int64_t at = 0; at < 3; at++)
        seq_cluster_record_impact(&r, at, SEQ_CLUSTER_RECORD_MAX_PARTS, seen, &emptied, &hidden);
    if (!r.impact != !again.impact) abort();
    seq_cluster_record_clear(&again);
    seq_cluster_record_clear(&r);
    free(text);
    return 0;
}
