/* The ingest step shared by the stream consumer and the batch builder: see ingest.h. */
#include "ingest.h"

#include "common.h"

seq_ingest_result seq_ingest(const seq_def *def, seq_format fmt, const void *buf, size_t len,
                             int64_t now_ms, int only_seq, seq_event *ev, seq_exec_out *outs,
                             uint32_t *n, char *why, size_t whylen)
{
    int rc;
    *n = 0;
    switch (fmt) {
    case SEQ_FORMAT_JSON: rc = seq_event_decode_json(def, buf, len, ev, why, whylen); break;
    case SEQ_FORMAT_CONFLUENT_PROTOBUF:
        rc = seq_event_decode_confluent_pb(def, buf, len, ev, why, whylen);
        break;
    case SEQ_FORMAT_AVRO: /* a container file of many records: engine/input_avro.h */
        seq_errf(why, whylen, "avro: not a format of one message");
        return SEQ_INGEST_MALFORMED;
    default: rc = seq_event_decode_pb(def, buf, len, ev, why, whylen); break;
    }
    if (rc != SEQ_OK) return SEQ_INGEST_MALFORMED;
    return seq_ingest_event(def, ev, now_ms, only_seq, outs, n, why, whylen);
}

seq_ingest_result seq_ingest_event(const seq_def *def, const seq_event *ev, int64_t now_ms,
                                   int only_seq, seq_exec_out *outs, uint32_t *n, char *why,
                                   size_t whylen)
{
    *n = 0;
    if (seq_event_check_time(def, ev, now_ms, why, whylen) != SEQ_OK) return SEQ_INGEST_FUTURE;
    switch (seq_exec_apply(def, ev, only_seq, outs, n)) {
    case SEQ_EXEC_UNKNOWN_TYPE: return SEQ_INGEST_UNKNOWN_TYPE;
    case SEQ_EXEC_FILTERED: return SEQ_INGEST_FILTERED;
    case SEQ_EXEC_KEPT: break;
    }
    return *n ? SEQ_INGEST_KEPT : SEQ_INGEST_UNKNOWN_TYPE;
}
