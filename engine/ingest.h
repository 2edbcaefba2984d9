/* The one ingest step both paths run on each event (issue 10, item 5): decode in the
 * configured format, check the clock (max_future_ms), run the executor. The stream
 * consumer calls it per Kafka message (server/consumer.c), the batch builder per input
 * record (storage/batch_build.c): the two paths agree by construction on what an event
 * is and what each sequence keeps of it. Pure: the clock is a parameter. */
#ifndef SEQ_INGEST_H
#define SEQ_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "def.h"
#include "event.h"
#include "exec.h"

/* How events are encoded, on both paths: a Kafka message's value (--event-format), a
 * batch input file's records (seqctl build --format; the framing of a file, JSON Lines
 * or length-delimited, follows from it: engine/input.h). */
typedef enum {
    SEQ_FORMAT_PROTOBUF = 0,           /* seqd.v1.Event */
    SEQ_FORMAT_JSON = 1,               /* the same event as one JSON object */
    SEQ_FORMAT_CONFLUENT_PROTOBUF = 2, /* Confluent's wire format around a seqd.v1.Event */
    SEQ_FORMAT_AVRO = 3, /* batch files only: an Avro container file, whose records
                          * engine/input_avro.h decodes; not a format of one message */
} seq_format;

typedef enum {
    SEQ_INGEST_KEPT = 0,         /* at least one sequence keeps it: outs[0..*n) */
    SEQ_INGEST_MALFORMED = 1,    /* did not decode: why says */
    SEQ_INGEST_FUTURE = 2,       /* decoded, but more than max_future_ms ahead: malformed
                                  * too (PRODUCT.md), counted apart by the consumer */
    SEQ_INGEST_FILTERED = 3,     /* a sequence declares the type; filters dropped it */
    SEQ_INGEST_UNKNOWN_TYPE = 4, /* no sequence (only_seq: not that one) declares it */
} seq_ingest_result;

/* Decodes buf as fmt into *ev, checks it against now_ms, and runs the executor (only_seq
 * >= 0: that sequence only); outs must have room for def->n_seqs entries. */
seq_ingest_result seq_ingest(const seq_def *def, seq_format fmt, const void *buf, size_t len,
                             int64_t now_ms, int only_seq, seq_event *ev, seq_exec_out *outs,
                             uint32_t *n, char *why, size_t whylen);
/* The same step after the decoding, for an event a reader decoded itself (the Avro batch
 * input, engine/input_avro.h): the clock check and the executor. seq_ingest is the
 * decoding followed by this. Never SEQ_INGEST_MALFORMED. */
seq_ingest_result seq_ingest_event(const seq_def *def, const seq_event *ev, int64_t now_ms,
                                   int only_seq, seq_exec_out *outs, uint32_t *n, char *why,
                                   size_t whylen);

#endif
