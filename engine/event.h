/* Event decoding: a Kafka message value or a batch input record (protobuf seqd.v1.Event,
 * the same framed by the Confluent serializer, or one JSON object) becomes a seq_event. Pure: no I/O, no allocation that outlives the
 * call. The stream consumer and the batch builder call exactly these functions. */
#ifndef SEQ_EVENT_H
#define SEQ_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "def.h"

typedef struct {
    uint64_t user_id;
    int64_t time_ms;
    uint64_t item_id;
    char type[SEQ_TYPE_MAX + 1]; /* NUL-terminated */
    uint32_t type_len;
    char id[SEQ_ID_MAX + 1]; /* NUL-terminated; derived when the input had none */
    uint32_t id_len;
    uint64_t attr_present;        /* bit i: def->attrs[i] was given */
    double attr[SEQ_MAX_ATTRS];   /* value of def->attrs[i] when present */
} seq_event;

/* Decode one event. Attributes not named by the definition are ignored; a repeated key
 * keeps its last value. A missing event_id is derived (seq_event_derive_id). Returns
 * SEQ_OK, or SEQ_EINVAL with a message: undecodable bytes, wrong field types, missing
 * (zero) user_id or event_time_ms, type or id too long. Does not check the clock:
 * see seq_event_check_time. */
int seq_event_decode_pb(const seq_def *def, const uint8_t *buf, size_t len, seq_event *ev,
                        char *err, size_t errlen);
int seq_event_decode_json(const seq_def *def, const char *buf, size_t len, seq_event *ev,
                          char *err, size_t errlen);

/* Confluent wire format (what the Confluent protobuf serializer writes): magic byte 0,
 * a 4-byte big-endian schema id, the message indexes (a zigzag-varint count, then that
 * many zigzag-varint indexes; a single 0 byte means [0]), then a protobuf seqd.v1.Event.
 * The schema id and the indexes are not checked. Sets *payload_off to the Event's first
 * byte. Returns SEQ_OK, or SEQ_EINVAL with a message: no magic byte, truncated header or
 * indexes, a negative count, a varint longer than 5 bytes (Confluent's are 32-bit). */
int seq_event_unframe_confluent(const uint8_t *buf, size_t len, size_t *payload_off, char *err,
                                size_t errlen);
/* seq_event_unframe_confluent, then seq_event_decode_pb of the payload. */
int seq_event_decode_confluent_pb(const seq_def *def, const uint8_t *buf, size_t len,
                                  seq_event *ev, char *err, size_t errlen);

/* The derived id: "d" followed by 16 lowercase hex digits of FNV-1a 64 over the text
 * "<user_id>:<event_time_ms>:<event_type>:<item_id>" (decimal numbers). */
void seq_event_derive_id(seq_event *ev);

/* The steps the decoders above share, for other decoders (engine/input_avro.c), so that
 * every input format fills a seq_event the same way: reset it; set the type and id
 * (SEQ_EINVAL when longer than SEQ_TYPE_MAX / SEQ_ID_MAX); set an attribute by name
 * (ignored unless the definition uses it; a repeated name keeps the last value); finish
 * (SEQ_EINVAL when user_id, event_time_ms or event_type is missing; derives a missing
 * id). parse_id: a decimal uint64 (digits only), 0 or -1. */
void seq_event_reset(seq_event *ev);
int seq_event_set_type(seq_event *ev, const char *p, size_t n, char *err, size_t errlen);
int seq_event_set_id(seq_event *ev, const char *p, size_t n, char *err, size_t errlen);
void seq_event_set_attr(const seq_def *def, seq_event *ev, const char *name, size_t n, double v);
int seq_event_finish(seq_event *ev, char *err, size_t errlen);
int seq_event_parse_id(const char *s, size_t n, uint64_t *out);

/* Events more than max_future_ms ahead of now_ms are malformed (SEQ_EINVAL). */
int seq_event_check_time(const seq_def *def, const seq_event *ev, int64_t now_ms, char *err,
                         size_t errlen);

#endif
