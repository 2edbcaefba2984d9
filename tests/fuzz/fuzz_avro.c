/* libFuzzer entry for the Avro batch input reader (engine/input_avro.c over avro-c): the
 * input is a whole Avro object container file. Every record the reader returns must be a
 * valid event (user, time and type set, an id, attributes only where the definition has
 * them) and record numbers must grow by one; no input may crash the reader or make it
 * allocate without bound (avro-c's allocations are capped by the reader); a file read to
 * its end must leave nothing allocated (avro-c's own leaks on damaged files aside: see
 * input_avro.c).
 * Seeds: tests/fuzz/corpus_avro/ (files written by python3-avro: every codec, unions,
 * logical timestamps, string ids, extra fields, malformed records). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "engine/event.h"
#include "engine/input_avro.h"

static const char DEF[] =
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":86400000,\"sequences\":["
    "{\"name\":\"e\",\"event_types\":[\"click\",\"view\"],\"max_length\":100,"
    "\"retention_ms\":7200000,\"columns\":[\"dwell_ms\", \"position\"]}]}";

static seq_def *def;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!def && seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) != SEQ_OK) abort();
    seq_avro_reader *r;
    size_t before = seq_avro_live_bytes();
    if (seq_avro_open_mem(def, data, size, &r, err, sizeof err) != SEQ_OK) return 0;
    seq_event ev;
    uint64_t prev = 0;
    int got;
    while ((got = seq_avro_next(r, &ev, err, sizeof err)) > 0) {
        if (seq_avro_record_no(r) != prev + 1) abort();
        prev = seq_avro_record_no(r);
        if (got == 1 && (ev.user_id == 0 || ev.time_ms == 0 || ev.type_len == 0 ||
                         ev.id_len == 0 || ev.type_len != strlen(ev.type) ||
                         ev.id_len != strlen(ev.id) ||
                         (ev.attr_present >> def->n_attrs) != 0))
            abort();
    }
    seq_avro_close(r);
    /* read to its end, undamaged: avro-c must hold nothing more than before (a string our
     * value interface failed to free would stay counted) */
    if (got == 0 && seq_avro_live_bytes() != before) abort();
    return 0;
}
