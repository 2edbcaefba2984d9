/* libFuzzer entry for request decoding and validation (server/service.c): the bytes of a
 * gRPC request message go to GetSequence, BatchGetSequences or Health exactly as the
 * transport hands them over, against a store in a temporary directory that holds a few
 * users' events. Any status is fine; a crash, a leak, UB, or an OK answer that does not
 * decode as the response type is a bug.
 * Input: byte 0 picks the method (mod 3); the rest is the message.
 * Seeds: tests/fuzz/corpus_request/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "engine/event.h"
#include "engine/exec.h"
#include "grpc/health/v1/health.pb-c.h"
#include "seqd/v1/seqd.pb-c.h"
#include "server/service.h"
#include "storage/store.h"

static const char DEF[] =
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":3600000,\"sequences\":["
    "{\"name\":\"eng\",\"event_types\":[\"click\",\"view\"],\"max_length\":50,"
    "\"retention_ms\":172800000,\"columns\":[\"dwell_ms\",{\"name\":\"pos\",\"default\":-1}]},"
    "{\"name\":\"buys\",\"event_types\":[\"buy\"],\"max_length\":5,\"retention_ms\":86400000}]}";

static seq_def *def;
static seq_store *store;
static seq_service *svc;

/* A few events for users 1..3 in both sequences, spread over the last two days. */
static void seed(void)
{
    char err[256], json[256];
    seq_store_batch *b = seq_store_batch_new(store);
    if (!b) abort();
    int64_t now = seq_now_ms();
    static const char *types[] = {"click", "view", "buy"};
    for (int i = 0; i < 60; i++) {
        int n = snprintf(json, sizeof json,
                         "{\"user_id\":%d,\"event_time_ms\":%lld,\"event_type\":\"%s\","
                         "\"item_id\":%d,\"attributes\":{\"dwell_ms\":%d}}",
                         1 + i % 3, (long long)(now - (int64_t)i * 2400000), types[i % 3], i,
                         i * 100);
        seq_event ev;
        seq_exec_out outs[SEQ_MAX_SEQUENCES];
        uint32_t k = 0;
        if (seq_event_decode_json(def, json, (size_t)n, &ev, err, sizeof err)) abort();
        seq_exec_apply(def, &ev, -1, outs, &k);
        if (k && seq_store_batch_add_event(b, &ev, outs, k, err, sizeof err)) abort();
    }
    if (seq_store_batch_commit(b, err, sizeof err)) abort();
    seq_store_batch_free(b);
}

static void setup(void)
{
    char err[256], dir[] = "/tmp/seqd-fuzz-request-XXXXXX";
    if (!mkdtemp(dir) || seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) ||
        seq_store_open(dir, def, 8, &store, err, sizeof err))
        abort();
    seed();
    seq_service_config sc = {.def = def, .store = store, .batch_root = dir};
    if (seq_service_new(&sc, &svc, err, sizeof err)) abort();
}

static void check_ok(int method, const seq_buf *out)
{
    void *m = NULL;
    switch (method) {
    case 0: m = seqd__v1__get_sequence_response__unpack(NULL, out->len, out->data); break;
    case 1: m = seqd__v1__batch_get_sequences_response__unpack(NULL, out->len, out->data); break;
    default: m = grpc__health__v1__health_check_response__unpack(NULL, out->len, out->data);
    }
    if (!m && out->len) abort();
    if (m) protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!svc) setup();
    if (size < 1) return 0;
    int method = data[0] % 3;
    seq_buf out = {0};
    char msg[512];
    int rc;
    switch (method) {
    case 0: rc = seq_service_get(svc, data + 1, size - 1, &out, msg, sizeof msg); break;
    case 1: rc = seq_service_batch_get(svc, data + 1, size - 1, &out, msg, sizeof msg); break;
    default: rc = seq_service_health(svc, data + 1, size - 1, &out, msg, sizeof msg);
    }
    if (rc == SEQ_OK) check_ok(method, &out);
    else if (!memchr(msg, 0, sizeof msg)) abort();
    seq_buf_free(&out);
    return 0;
}
