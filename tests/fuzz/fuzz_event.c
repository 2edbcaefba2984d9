/* libFuzzer entry: the event decoders (protobuf, JSON, Confluent-framed protobuf) and the
 * executor on arbitrary bytes. Accepted
 * events must satisfy the decoder's guarantees (required fields set, lengths in range,
 * NUL-terminated), and the executor must stay within its output bounds.
 * Build: clang -fsanitize=fuzzer,address -I. -Ibuild/gen tests/fuzz/fuzz_event.c
 *        engine/def.c engine/event.c engine/exec.c engine/common.c -ljansson -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "engine/event.h"
#include "engine/exec.h"

static const char DEF[] =
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":86400000,\"sequences\":["
    "{\"name\":\"e\",\"event_types\":[\"click\",\"save\",\"view\"],\"max_length\":100,"
    "\"retention_ms\":7200000,\"columns\":[\"dwell_ms\",{\"name\":\"pos\",\"default\":-1}],"
    "\"filters\":[{\"attribute\":\"dwell_ms\",\"op\":\">=\",\"value\":500,\"event_types\":[\"view\"]}]},"
    "{\"name\":\"b\",\"event_types\":[\"buy\",\"click\"],\"max_length\":10,\"retention_ms\":3600000}]}";

static seq_def *def;

static void check(const seq_event *ev)
{
    seq_exec_out out[SEQ_MAX_SEQUENCES];
    uint32_t n = 0;
    if (ev->user_id == 0 || ev->time_ms == 0 || ev->type_len == 0) abort();
    if (ev->type_len > SEQ_TYPE_MAX || ev->type_len != strlen(ev->type)) abort();
    if (ev->id_len == 0 || ev->id_len > SEQ_ID_MAX || ev->id_len != strlen(ev->id)) abort();
    if (ev->attr_present >> def->n_attrs) abort();
    seq_exec_apply(def, ev, -1, out, &n);
    if (n > def->n_seqs) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    seq_event ev;
    if (!def && seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) != SEQ_OK) abort();
    if (seq_event_decode_pb(def, data, size, &ev, err, sizeof err) == SEQ_OK) check(&ev);
    if (seq_event_decode_json(def, (const char *)data, size, &ev, err, sizeof err) == SEQ_OK)
        check(&ev);
    /* Confluent framing (seeds confluent_*: framed Events); an accepted header leaves the
     * payload inside the input. */
    if (seq_event_decode_confluent_pb(def, data, size, &ev, err, sizeof err) == SEQ_OK)
        check(&ev);
    size_t off;
    if (seq_event_unframe_confluent(data, size, &off, err, sizeof err) == SEQ_OK &&
        (off < 6 || off > size))
        abort();
    return 0;
}
