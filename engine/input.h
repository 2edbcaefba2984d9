/* Batch input framing: splits a batch builder's input file (already in memory) into
 * event records: JSON Lines (one object per line; blank lines skipped) or
 * length-delimited protobuf (each message preceded by its length as a varint, as
 * protobuf's writeDelimitedTo does). Pure; the records then go through
 * seq_event_decode_json / seq_event_decode_pb like the stream's messages. */
#ifndef SEQ_INPUT_H
#define SEQ_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

/* The framing follows from the events' format (engine/ingest.h): SEQ_FORMAT_JSON is JSON
 * Lines, SEQ_FORMAT_PROTOBUF (and CONFLUENT_PROTOBUF) length-delimited records. */
typedef struct {
    const uint8_t *p, *end;
    seq_format fmt;
    uint64_t record_no; /* 1-based number of the record last returned (line number for JSONL) */
} seq_input;

void seq_input_init(seq_input *in, seq_format fmt, const void *data, size_t len);
/* 1: rec and len give the next record; 0: end of input; -1: framing error (a truncated or
 * oversized varint length, or a length past the end): the rest of the input is unusable,
 * and err says where. */
int seq_input_next(seq_input *in, const uint8_t **rec, size_t *len, char *err, size_t errlen);

#endif
