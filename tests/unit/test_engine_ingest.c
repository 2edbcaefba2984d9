/* The ingest step both paths share (engine/ingest.h): each outcome (kept, malformed,
 * too far ahead of the clock, filtered, unknown type, another sequence's type with
 * only_seq), and the same event in each format gives the same kept records. */
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "engine/ingest.h"
#include "testlib.h"

static const char DEF[] =
    "{\"bucket_ms\":1000,\"freshness_horizon_ms\":1000,\"sequences\":["
    "{\"name\":\"eng\",\"event_types\":[\"click\",\"view\"],\"max_length\":10,"
    "\"retention_ms\":10000,\"columns\":[\"dwell\"],"
    "\"filters\":[{\"attribute\":\"dwell\",\"op\":\">=\",\"value\":500,\"event_types\":[\"view\"]}]},"
    "{\"name\":\"other\",\"event_types\":[\"buy\"],\"max_length\":10,\"retention_ms\":10000}]}";

/* seqd.v1.Event {user_id 7, event_time_ms 2500, event_type "click", item_id 3,
 * event_id "e1", attributes {dwell: 9.0}} */
static const uint8_t PB[] = {0x08, 0x07, 0x10, 0xc4, 0x13, 0x1a, 0x05, 'c', 'l', 'i', 'c', 'k',
                             0x20, 0x03, 0x2a, 0x02, 'e', '1', 0x32, 0x10, 0x0a, 0x05, 'd', 'w',
                             'e', 'l', 'l', 0x11, 0, 0, 0, 0, 0, 0, 0x22, 0x40};

static seq_ingest_result run(const seq_def *d, seq_format f, const void *buf, size_t len,
                             int64_t now, int only, seq_exec_out *outs, uint32_t *n)
{
    seq_event ev;
    char why[256];
    return seq_ingest(d, f, buf, len, now, only, &ev, outs, n, why, sizeof why);
}

static void outcomes(void)
{
    seq_def *d = NULL;
    char err[256];
    CHECK(seq_def_parse(DEF, strlen(DEF), &d, err, sizeof err) == SEQ_OK);
    seq_exec_out a[2], b[2], c[2];
    uint32_t na, nb, nc;
    const char *js = "{\"user_id\":7,\"event_time_ms\":2500,\"event_type\":\"click\","
                     "\"item_id\":3,\"event_id\":\"e1\",\"attributes\":{\"dwell\":9}}";
    CHECK_EQ_INT(run(d, SEQ_FORMAT_JSON, js, strlen(js), 3000, -1, a, &na), SEQ_INGEST_KEPT);
    CHECK_EQ_INT(run(d, SEQ_FORMAT_PROTOBUF, PB, sizeof PB, 3000, -1, b, &nb), SEQ_INGEST_KEPT);
    uint8_t cf[6 + sizeof PB] = {0, 0, 0, 0, 1, 0}; /* magic, schema id 1, indexes [0] */
    memcpy(cf + 6, PB, sizeof PB);
    CHECK_EQ_INT(run(d, SEQ_FORMAT_CONFLUENT_PROTOBUF, cf, sizeof cf, 3000, -1, c, &nc),
                 SEQ_INGEST_KEPT);
    CHECK(na == 1 && nb == 1 && nc == 1);
    CHECK(a[0].seq_id == b[0].seq_id && a[0].bucket == b[0].bucket && a[0].bucket == 2);
    CHECK(a[0].cols[0] == 9.0 && b[0].cols[0] == 9.0 && c[0].cols[0] == 9.0);
    /* malformed: bytes, and a time beyond max_future_ms (default 300000) */
    CHECK_EQ_INT(run(d, SEQ_FORMAT_JSON, "{", 1, 3000, -1, a, &na), SEQ_INGEST_MALFORMED);
    CHECK_EQ_INT(run(d, SEQ_FORMAT_JSON, js, strlen(js), 2500 - 300001, -1, a, &na),
                 SEQ_INGEST_FUTURE);
    /* the framing of the other format is malformed too */
    CHECK_EQ_INT(run(d, SEQ_FORMAT_CONFLUENT_PROTOBUF, PB, sizeof PB, 3000, -1, a, &na),
                 SEQ_INGEST_MALFORMED);
    const char *view = "{\"user_id\":7,\"event_time_ms\":2500,\"event_type\":\"view\","
                       "\"attributes\":{\"dwell\":9}}";
    CHECK_EQ_INT(run(d, SEQ_FORMAT_JSON, view, strlen(view), 3000, -1, a, &na),
                 SEQ_INGEST_FILTERED);
    const char *nope = "{\"user_id\":7,\"event_time_ms\":2500,\"event_type\":\"nope\"}";
    CHECK_EQ_INT(run(d, SEQ_FORMAT_JSON, nope, strlen(nope), 3000, -1, a, &na),
                 SEQ_INGEST_UNKNOWN_TYPE);
    const char *buy = "{\"user_id\":7,\"event_time_ms\":2500,\"event_type\":\"buy\"}";
    CHECK_EQ_INT(run(d, SEQ_FORMAT_JSON, buy, strlen(buy), 3000, -1, a, &na), SEQ_INGEST_KEPT);
    CHECK_EQ_INT(run(d, SEQ_FORMAT_JSON, buy, strlen(buy), 3000, 0, a, &na),
                 SEQ_INGEST_UNKNOWN_TYPE); /* only sequence 0: not one of its types */
    seq_def_free(d);
}

int main(void)
{
    RUN(outcomes);
    return seq_t_done();
}
