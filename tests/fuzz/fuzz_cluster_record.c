/* libFuzzer entry: cluster map records (server/cluster_record.c) come from a Kafka topic
 * anyone with produce rights writes: any bytes are refused or parsed without crashing or
 * leaking, and a parsed record formats to text that parses back to the same record. */
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
    seq_cluster_record_clear(&again);
    seq_cluster_record_clear(&r);
    free(text);
    return 0;
}
