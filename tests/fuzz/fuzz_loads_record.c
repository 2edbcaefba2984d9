/* libFuzzer entry: `<topic>.seqd-loads` records (server/loads_record.c) come from a Kafka
 * topic anyone with produce rights writes: any bytes are refused or parsed without
 * crashing or leaking, and a parsed record formats to text that parses back to the same
 * record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "server/loads_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seq_loads_record r, again;
    if (seq_loads_parse_record(data, size, &r) != SEQ_OK) return 0;
    char *text = seq_loads_format_record(&r);
    if (!text) abort();
    if (seq_loads_parse_record(text, strlen(text), &again) != SEQ_OK) abort();
    if (r.op != again.op || strcmp(r.sequence, again.sequence) || strcmp(r.node, again.node) ||
        r.generation != again.generation || r.at_ms != again.at_ms ||
        r.start_ms != again.start_ms || r.end_ms != again.end_ms ||
        r.partitions != again.partitions || r.n_paths != again.n_paths || r.from != again.from ||
        r.to != again.to)
        abort();
    for (size_t i = 0; i < r.n_paths; i++)
        if (strcmp(r.paths[i], again.paths[i])) abort();
    seq_loads_record_clear(&again);
    seq_loads_record_clear(&r);
    free(text);
    return 0;
}
