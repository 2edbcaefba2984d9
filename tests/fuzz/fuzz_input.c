/* libFuzzer entry for the batch builder's input readers (engine/input.c): JSON Lines and
 * length-delimited protobuf framing, each record then decoded as the builder does.
 * Input: byte 0 picks the format (even: JSONL, odd: protobuf); the rest is the file.
 * Every record returned must lie inside the input, records must advance, and a framing
 * error must end the input. Seeds: tests/fuzz/corpus_input/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "engine/event.h"
#include "engine/input.h"

static const char DEF[] =
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":86400000,\"sequences\":["
    "{\"name\":\"e\",\"event_types\":[\"click\",\"view\"],\"max_length\":100,"
    "\"retention_ms\":7200000,\"columns\":[\"dwell_ms\"]}]}";

static seq_def *def;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!def && seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) != SEQ_OK) abort();
    if (size < 1) return 0;
    seq_format fmt = data[0] & 1 ? SEQ_FORMAT_PROTOBUF : SEQ_FORMAT_JSON;
    const uint8_t *file = data + 1, *end = data + size;
    seq_input in;
    seq_input_init(&in, fmt, file, size - 1);
    const uint8_t *rec, *last = file;
    size_t len;
    uint64_t prev_no = 0;
    int got;
    while ((got = seq_input_next(&in, &rec, &len, err, sizeof err)) == 1) {
        if (rec < last || rec > end || len > (size_t)(end - rec)) abort();
        if (in.record_no <= prev_no) abort();
        prev_no = in.record_no;
        last = rec + len;
        seq_event ev;
        if (fmt == SEQ_FORMAT_PROTOBUF) seq_event_decode_pb(def, rec, len, &ev, err, sizeof err);
        else seq_event_decode_json(def, (const char *)rec, len, &ev, err, sizeof err);
    }
    if (got == -1 && seq_input_next(&in, &rec, &len, err, sizeof err) == 1) abort();
    return 0;
}
