/* The gRPC service without the transport: the hand-written response encoder checked by
 * decoding with protobuf-c, request validation (codes and messages), and reads through a
 * real store. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/event.h"
#include "engine/exec.h"
#include "grpc/health/v1/health.pb-c.h"
#include "seqd/v1/seqd.pb-c.h"
#include "server/service.h"
#include "storage/store.h"
#include "testlib.h"

static void put_f64(uint8_t *p, double v) { memcpy(p, &v, 8); } /* little-endian host */

static void test_encoder(void)
{
    seq_column cols[2] = {{"dwell_ms", 0, NAN}, {"position", 1, -1}};
    char *types[] = {"click", "save"};
    seq_sequence seq = {.name = "engagements", .event_types = types, .n_types = 2,
                        .max_length = 10, .columns = cols, .n_columns = 2};
    uint8_t c0[16], c1[8];
    put_f64(c0, 1200.5), put_f64(c0 + 8, 3);
    put_f64(c1, 80);
    seq_rec r[3] = {
        {.time_ms = 1764000000123, .item_id = UINT64_MAX, .type_idx = 1, .n_cols = 2, .cols = c0},
        {.time_ms = 5, .item_id = 7, .type_idx = 0, .n_cols = 1, .cols = c1}, /* no position */
        {.time_ms = -2, .item_id = 0, .type_idx = 1, .n_cols = 0, .cols = NULL},
    };
    r[1].gen = 1764000000000, r[2].gen = 3; /* r[0] is a stream record */
    const seq_rec *recs[3] = {&r[0], &r[1], &r[2]};
    seq_service_resp in = {42, &seq, recs, 3, 1764000000000, 1763000000000, 99, 1, 0, 86400000,
                           1764000000999};
    seq_buf out = {0};
    CHECK_EQ_INT(seq_service_resp_encode(&out, &in), SEQ_OK);
    Seqd__V1__GetSequenceResponse *m = seqd__v1__get_sequence_response__unpack(NULL, out.len, out.data);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_EQ_INT(m->user_id, 42);
    CHECK(strcmp(m->sequence, "engagements") == 0);
    CHECK_EQ_INT(m->n_timestamps_ms, 3);
    CHECK_EQ_INT(m->timestamps_ms[0], 1764000000123);
    CHECK_EQ_INT(m->timestamps_ms[2], -2);
    CHECK_EQ_INT(m->n_item_ids, 3);
    CHECK(m->item_ids[0] == UINT64_MAX);
    CHECK_EQ_INT(m->item_ids[1], 7);
    CHECK_EQ_INT(m->n_event_types, 3);
    CHECK_EQ_INT(m->event_types[0], 1);
    CHECK_EQ_INT(m->event_types[1], 0);
    CHECK_EQ_INT(m->n_columns, 2);
    CHECK(strcmp(m->columns[0]->name, "dwell_ms") == 0);
    CHECK_EQ_INT(m->columns[0]->n_values, 3);
    CHECK(m->columns[0]->values[0] == 1200.5);
    CHECK(m->columns[0]->values[1] == 80);
    CHECK(isnan(m->columns[0]->values[2])); /* default NaN */
    CHECK(strcmp(m->columns[1]->name, "position") == 0);
    CHECK(m->columns[1]->values[0] == 3);
    CHECK(m->columns[1]->values[1] == -1); /* default -1 */
    CHECK(m->columns[1]->values[2] == -1);
    CHECK_EQ_INT(m->stream_watermark_ms, 1764000000000);
    CHECK_EQ_INT(m->batch_watermark_ms, 1763000000000);
    CHECK_EQ_INT(m->batch_generation, 99);
    CHECK_EQ_INT(m->n_sources, 3);
    CHECK_EQ_INT(m->n_generations, 3);
    if (m->n_sources == 3 && m->n_generations == 3) {
        CHECK_EQ_INT(m->sources[0], 0);
        CHECK_EQ_INT(m->sources[1], 1);
        CHECK_EQ_INT(m->sources[2], 1);
        CHECK_EQ_INT(m->generations[0], 0);
        CHECK_EQ_INT(m->generations[1], 1764000000000);
        CHECK_EQ_INT(m->generations[2], 3);
    }
    CHECK_EQ_INT(m->completeness_gap_ms, 86400000);
    CHECK_EQ_INT(m->as_of_ms, 1764000000999);
    seqd__v1__get_sequence_response__free_unpacked(m, NULL);

    /* Without provenance: no sources, no generations, nothing else changes. */
    in.provenance = 0;
    out.len = 0;
    CHECK_EQ_INT(seq_service_resp_encode(&out, &in), SEQ_OK);
    m = seqd__v1__get_sequence_response__unpack(NULL, out.len, out.data);
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ_INT(m->n_sources + m->n_generations, 0);
        CHECK_EQ_INT(m->n_timestamps_ms, 3);
        CHECK_EQ_INT(m->completeness_gap_ms, 86400000);
        seqd__v1__get_sequence_response__free_unpacked(m, NULL);
    }

    /* Empty: zero scalars and empty arrays are omitted; column names stay. */
    seq_service_resp empty = {0, &seq, recs, 0, 0, 0, 0, 1, 1, 0, 0};
    out.len = 0;
    CHECK_EQ_INT(seq_service_resp_encode(&out, &empty), SEQ_OK);
    m = seqd__v1__get_sequence_response__unpack(NULL, out.len, out.data);
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ_INT(m->n_timestamps_ms + m->n_item_ids + m->n_event_types, 0);
        CHECK_EQ_INT(m->n_columns, 2);
        CHECK_EQ_INT(m->columns[1]->n_values, 0);
        CHECK(strcmp(m->sequence, "engagements") == 0);
        seqd__v1__get_sequence_response__free_unpacked(m, NULL);
    }
    CHECK_EQ_INT(out.len, (2 + 11) + 2 * (2 + 2 + 8)); /* sequence + two name-only columns */
    seq_buf_free(&out);
}

/* The encoder writes each length before knowing it exactly (one pass, see ld_open in
 * service.c): its bytes must still be the canonical encoding, i.e. exactly what
 * protobuf-c packs, at every size where a length varint changes width. */
static void check_canonical(const seq_sequence *seq, const seq_service_resp *in)
{
    uint32_t n = in->n;
    int64_t *ts = calloc(n + 1, sizeof *ts);
    uint64_t *items = calloc(n + 1, sizeof *items);
    uint32_t *types = calloc(n + 1, sizeof *types), *sources = calloc(n + 1, sizeof *sources);
    uint64_t *gens = calloc(n + 1, sizeof *gens);
    char **ids = calloc(n + 1, sizeof *ids);
    double *vals = calloc(2 * (size_t)n + 1, sizeof *vals);
    Seqd__V1__Column col[2] = {SEQD__V1__COLUMN__INIT, SEQD__V1__COLUMN__INIT};
    Seqd__V1__Column *cols[2] = {&col[0], &col[1]};
    Seqd__V1__GetSequenceResponse m = SEQD__V1__GET_SEQUENCE_RESPONSE__INIT;
    for (uint32_t i = 0; i < n; i++) {
        ts[i] = in->recs[i]->time_ms, items[i] = in->recs[i]->item_id;
        types[i] = in->recs[i]->type_idx;
        sources[i] = in->recs[i]->gen != 0, gens[i] = in->recs[i]->gen;
        ids[i] = strndup(in->recs[i]->id ? in->recs[i]->id : "", in->recs[i]->id_len);
        for (uint32_t c = 0; c < 2; c++)
            vals[c * n + i] = seq_rec_col(in->recs[i], c, seq->columns[c].dflt);
    }
    for (uint32_t c = 0; c < 2; c++)
        col[c].name = (char *)seq->columns[c].name, col[c].n_values = n, col[c].values = vals + c * n;
    m.user_id = in->user_id, m.sequence = (char *)seq->name;
    m.n_timestamps_ms = m.n_item_ids = m.n_event_types = n;
    m.timestamps_ms = ts, m.item_ids = items, m.event_types = types;
    m.n_columns = 2, m.columns = cols;
    m.stream_watermark_ms = in->stream_watermark_ms, m.batch_watermark_ms = in->batch_watermark_ms;
    m.batch_generation = in->batch_generation;
    if (in->provenance) {
        m.n_sources = m.n_generations = n;
        m.sources = sources, m.generations = gens;
    }
    m.completeness_gap_ms = in->completeness_gap_ms, m.as_of_ms = in->as_of_ms;
    if (in->event_ids) m.n_event_ids = n, m.event_ids = ids;
    size_t want = seqd__v1__get_sequence_response__get_packed_size(&m);
    uint8_t *ref = malloc(want);
    seqd__v1__get_sequence_response__pack(&m, ref);
    seq_buf out = {0};
    CHECK_EQ_INT(seq_service_resp_encode(&out, in), SEQ_OK);
    CHECK_EQ_INT(out.len, want);
    CHECK(out.len == want && memcmp(out.data, ref, want) == 0);
    seq_buf_free(&out);
    for (uint32_t i = 0; i < n; i++) free(ids[i]);
    free(ref), free(ts), free(items), free(types), free(vals), free(sources), free(gens), free(ids);
}

static void test_encoder_canonical(void)
{
    seq_column cols[2] = {{"dwell_ms", 0, NAN}, {"position", 1, -1}};
    char *tnames[] = {"click", "save", "view"};
    seq_sequence seq = {.name = "engagements", .event_types = tnames, .n_types = 3,
                        .max_length = 2000, .columns = cols, .n_columns = 2};
    enum { MAXN = 1700 };
    seq_rec *r = calloc(MAXN, sizeof *r);
    const seq_rec **recs = calloc(MAXN, sizeof *recs);
    uint8_t c0[16];
    memcpy(c0, &(double){1200.5}, 8), memcpy(c0 + 8, &(double){3}, 8);
    static char idpool[256];
    for (int i = 0; i < 255; i++) idpool[i] = (char)('a' + i % 26);
    uint64_t x = 88172645463325252ull; /* xorshift: values of every varint width */
    for (uint32_t i = 0; i < MAXN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        r[i] = (seq_rec){.time_ms = i % 7 == 3 ? -(int64_t)(x >> 40) : (int64_t)(x >> (i % 23)),
                         .item_id = x >> (i % 64),
                         /* from 51 records on, one type index needs 2 varint bytes */
                         .type_idx = i == 50 ? 300 : (uint32_t)(x % 3),
                         .n_cols = (uint32_t)(i % 3), .cols = c0,
                         /* generations of every varint width, and stream records (0) */
                         .gen = i % 4 == 1 ? 0 : x >> (i % 61),
                         /* ids of 0 to 39 bytes, and some past 127 (a 2-byte length) */
                         .id = idpool + i % 50, .id_len = i % 97 == 5 ? 200 : i % 40};
        recs[i] = &r[i];
    }
    static const uint32_t sizes[] = {0, 1, 2, 12, 13, 14, 20, 25, 26, 27, 100, 127, 128, 129,
                                     400, 1638, 1639, 1700};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        seq_service_resp in = {k % 2 ? 0 : 42 + k, &seq, recs, sizes[k], k % 3 ? 1764000000000 : 0,
                               1763000000000, k, k % 2 == 0, k % 3 == 1,
                               k % 5 ? (int64_t)k * 3600000 : 0,
                               k % 4 ? 1764000000000 + (int64_t)k : 0};
        check_canonical(&seq, &in);
    }
    /* answers are newest first: times of one varint width (2, 6 and 8 bytes) go out
     * fixed-width; 9 bytes and a width change between the ends do not. Columns: every
     * record with both, or one record without the second (its default). */
    static const int64_t newest[] = {16383, 1764000000000, (1LL << 56) - 1, (1LL << 56) + 500,
                                     (1LL << 42) + 50};
    for (size_t k = 0; k < sizeof newest / sizeof newest[0]; k++) {
        for (uint32_t i = 0; i < 129; i++)
            r[i].time_ms = newest[k] - i, r[i].type_idx = i % 3, r[i].n_cols = k % 2 || i != 5 ? 2 : 1;
        seq_service_resp in = {42, &seq, recs, 129, 0, 0, 1, (int)(k % 2), 0, 0, 0};
        check_canonical(&seq, &in);
    }
    free(r);
    free(recs);
}

/* ---- through a real store ---- */

static const char DEF[] =
    "{\"bucket_ms\":3600000,\"freshness_horizon_ms\":86400000,\"sequences\":["
    "{\"name\":\"engagements\",\"event_types\":[\"click\",\"save\",\"view\"],\"max_length\":100,"
    "\"retention_ms\":7776000000,\"columns\":[\"dwell_ms\",{\"name\":\"position\",\"default\":-1}]}]}";

typedef struct {
    seq_def *def;
    seq_store *st;
    seq_service *svc;
    char dir[64];
    _Atomic int64_t wm;
} fixture;

static void add_event(fixture *f, seq_store_batch *b, const char *json)
{
    seq_event ev;
    seq_exec_out outs[SEQ_MAX_SEQUENCES];
    uint32_t n;
    char err[256];
    CHECK_EQ_INT(seq_event_decode_json(f->def, json, strlen(json), &ev, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_exec_apply(f->def, &ev, -1, outs, &n), SEQ_EXEC_KEPT);
    CHECK_EQ_INT(seq_store_batch_add_event(b, &ev, outs, n, err, sizeof err), SEQ_OK);
}

static int setup(fixture *f)
{
    char err[256];
    memset(f, 0, sizeof *f);
    strcpy(f->dir, "/tmp/seqd-test-service-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (seq_def_parse(DEF, strlen(DEF), &f->def, err, sizeof err)) {
        fprintf(stderr, "def: %s\n", err);
        return -1;
    }
    if (seq_store_open(f->dir, f->def, 8, &f->st, err, sizeof err)) {
        fprintf(stderr, "store: %s\n", err);
        return -1;
    }
    int64_t now = seq_now_ms();
    char ev[3][256];
    for (int i = 0; i < 3; i++)
        snprintf(ev[i], sizeof ev[i],
                 "{\"user_id\":42,\"event_time_ms\":%lld,\"event_type\":\"%s\",\"item_id\":%d,"
                 "\"event_id\":\"e%d\",\"attributes\":{\"dwell_ms\":%d}}",
                 (long long)(now - 60000 * (3 - i)), i == 1 ? "save" : "click", 100 + i, i, 10 * i);
    seq_store_batch *b = seq_store_batch_new(f->st);
    for (int i = 0; i < 3; i++) add_event(f, b, ev[i]);
    CHECK_EQ_INT(seq_store_batch_commit(b, err, sizeof err), SEQ_OK);
    seq_store_batch_free(b);
    f->wm = now - 1000;
    seq_service_config sc = {f->def, f->st, &f->wm, "/tmp", NULL, NULL, NULL, NULL};
    return seq_service_new(&sc, &f->svc, err, sizeof err);
}

static void teardown(fixture *f)
{
    char cmd[128];
    seq_service_free(f->svc);
    seq_store_close(f->st);
    seq_def_free(f->def);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", f->dir);
}

/* Packs a request, calls GetSequence; returns the status, the decoded response in *resp. */
static int call_get(fixture *f, const Seqd__V1__GetSequenceRequest *req,
                    Seqd__V1__GetSequenceResponse **resp, char *msg, size_t msglen)
{
    uint8_t buf[1024];
    size_t len = seqd__v1__get_sequence_request__pack(req, buf);
    seq_buf out = {0};
    int rc = seq_service_get(f->svc, buf, len, &out, msg, msglen);
    *resp = rc ? NULL : seqd__v1__get_sequence_response__unpack(NULL, out.len, out.data);
    seq_buf_free(&out);
    return rc;
}

static void test_get(fixture *f)
{
    Seqd__V1__GetSequenceRequest req = SEQD__V1__GET_SEQUENCE_REQUEST__INIT;
    Seqd__V1__GetSequenceResponse *r;
    char msg[256];
    req.user_id = 42;
    req.sequence = "engagements";
    CHECK_EQ_INT(call_get(f, &req, &r, msg, sizeof msg), SEQ_OK);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_EQ_INT(r->n_item_ids, 3);
    if (r->n_item_ids == 3) {
        CHECK_EQ_INT(r->item_ids[0], 102); /* newest first */
        CHECK_EQ_INT(r->item_ids[2], 100);
        CHECK_EQ_INT(r->event_types[1], 1); /* save */
        CHECK(r->timestamps_ms[0] > r->timestamps_ms[1]);
        CHECK(r->columns[0]->values[0] == 20);
        CHECK(r->columns[1]->values[0] == -1);
    }
    CHECK_EQ_INT(r->stream_watermark_ms, f->wm);
    CHECK_EQ_INT(r->batch_generation, 0);
    CHECK_EQ_INT(r->n_sources + r->n_generations, 0); /* not asked */
    seqd__v1__get_sequence_response__free_unpacked(r, NULL);

    req.include_provenance = 1; /* stream records: source 0, generation 0 */
    for (int view = 0; view < 3; view++) {
        req.view = (Seqd__V1__View)view;
        CHECK_EQ_INT(call_get(f, &req, &r, msg, sizeof msg), SEQ_OK);
        if (!r) continue;
        CHECK_EQ_INT(r->n_item_ids, view == 2 ? 0 : 3); /* no batch: BATCH_ONLY is empty */
        CHECK_EQ_INT(r->n_sources, r->n_item_ids);
        CHECK_EQ_INT(r->n_generations, r->n_item_ids);
        for (size_t i = 0; i < r->n_sources && i < r->n_generations; i++)
            CHECK(r->sources[i] == 0 && r->generations[i] == 0);
        seqd__v1__get_sequence_response__free_unpacked(r, NULL);
    }
    req.view = 0, req.include_provenance = 0;

    char *types[] = {"save"};
    req.event_types = types, req.n_event_types = 1;
    CHECK_EQ_INT(call_get(f, &req, &r, msg, sizeof msg), SEQ_OK);
    if (r) {
        CHECK_EQ_INT(r->n_item_ids, 1);
        seqd__v1__get_sequence_response__free_unpacked(r, NULL);
    }
    req.n_event_types = 0;
    req.user_id = 43; /* no events: OK and empty */
    CHECK_EQ_INT(call_get(f, &req, &r, msg, sizeof msg), SEQ_OK);
    if (r) {
        CHECK_EQ_INT(r->n_item_ids, 0);
        CHECK_EQ_INT(r->user_id, 43);
        seqd__v1__get_sequence_response__free_unpacked(r, NULL);
    }
}

static void expect(fixture *f, const Seqd__V1__GetSequenceRequest *req, int code, const char *text)
{
    Seqd__V1__GetSequenceResponse *r;
    char msg[256] = "";
    CHECK_EQ_INT(call_get(f, req, &r, msg, sizeof msg), code);
    if (strcmp(msg, text) != 0) fprintf(stderr, "got '%s', want '%s'\n", msg, text);
    CHECK(strcmp(msg, text) == 0);
}

static void test_get_errors(fixture *f)
{
    Seqd__V1__GetSequenceRequest req = SEQD__V1__GET_SEQUENCE_REQUEST__INIT;
    req.user_id = 1;
    expect(f, &req, SEQ_EINVAL, "sequence: must not be empty");
    req.sequence = "nope";
    expect(f, &req, SEQ_ENOTFOUND, "unknown sequence 'nope'");
    req.sequence = "engagements";
    req.since_ms = 20, req.until_ms = 10;
    expect(f, &req, SEQ_EINVAL, "since_ms (20) > until_ms (10)");
    req.since_ms = 10;
    char *types[] = {"click", "buy"};
    req.event_types = types, req.n_event_types = 2;
    expect(f, &req, SEQ_EINVAL, "event_types: 'buy' is not a type of sequence 'engagements'");
    req.n_event_types = 0;
    req.user_id = 0; /* protobuf's "not set" */
    expect(f, &req, SEQ_EINVAL, "user_id: required");
    req.user_id = 1;
    req.view = (Seqd__V1__View)3;
    expect(f, &req, SEQ_EINVAL, "view: 3 is not a View (MERGED 0, STREAM_ONLY 1, BATCH_ONLY 2)");
    req.view = (Seqd__V1__View)-1;
    expect(f, &req, SEQ_EINVAL, "view: -1 is not a View (MERGED 0, STREAM_ONLY 1, BATCH_ONLY 2)");
    req.view = SEQD__V1__VIEW__BATCH_ONLY;
    req.as_of_ms = -5;
    expect(f, &req, SEQ_EINVAL, "as_of_ms: -5 is negative (0 = now)");
    req.as_of_ms = seq_now_ms() + 60000;
    Seqd__V1__GetSequenceResponse *r;
    char msg[256] = "";
    CHECK_EQ_INT(call_get(f, &req, &r, msg, sizeof msg), SEQ_EINVAL);
    CHECK(strncmp(msg, "as_of_ms: ", 10) == 0 && strstr(msg, "is in the future"));
    req.as_of_ms = 0;
    /* no batch: the gap is retention - horizon (89 days); -1 requires 0 */
    req.max_completeness_gap_ms = -1;
    expect(f, &req, SEQ_EPRECONDITION,
           "completeness gap 7689600000 ms exceeds max_completeness_gap_ms -1; committed batch "
           "coverage of 'engagements': none");
    req.max_completeness_gap_ms = 7689600000 - 1;
    CHECK_EQ_INT(call_get(f, &req, &r, msg, sizeof msg), SEQ_EPRECONDITION);
    req.max_completeness_gap_ms = 7689600000;
    req.since_ms = req.until_ms = 0;
    CHECK_EQ_INT(call_get(f, &req, &r, msg, sizeof msg), SEQ_OK);
    if (r) {
        CHECK_EQ_INT(r->completeness_gap_ms, 7689600000);
        CHECK_EQ_INT(r->n_item_ids, 0); /* BATCH_ONLY, and no batch */
        CHECK(r->as_of_ms > 1764000000000 && r->as_of_ms <= seq_now_ms());
        seqd__v1__get_sequence_response__free_unpacked(r, NULL);
    }

    static const uint8_t junk[] = {0x0a, 0x05, 'a'}; /* truncated field */
    seq_buf out = {0};
    CHECK_EQ_INT(seq_service_get(f->svc, junk, sizeof junk, &out, msg, sizeof msg), SEQ_EINVAL);
    CHECK(strcmp(msg, "request does not decode as seqd.v1.GetSequenceRequest") == 0);
    seq_buf_free(&out);
}

static void test_batch_get(fixture *f)
{
    Seqd__V1__GetSequenceRequest a = SEQD__V1__GET_SEQUENCE_REQUEST__INIT, b = a, c = a;
    a.user_id = 42, a.sequence = "engagements", a.max_events = 2;
    b.user_id = 7, b.sequence = "engagements";
    c.user_id = 42, c.sequence = "other";
    Seqd__V1__GetSequenceRequest *reqs[3] = {&a, &b, &c};
    Seqd__V1__BatchGetSequencesRequest breq = SEQD__V1__BATCH_GET_SEQUENCES_REQUEST__INIT;
    breq.requests = reqs, breq.n_requests = 2;
    uint8_t buf[1024];
    seq_buf out = {0};
    char msg[256];
    size_t len = seqd__v1__batch_get_sequences_request__pack(&breq, buf);
    CHECK_EQ_INT(seq_service_batch_get(f->svc, buf, len, &out, msg, sizeof msg), SEQ_OK);
    Seqd__V1__BatchGetSequencesResponse *r =
        seqd__v1__batch_get_sequences_response__unpack(NULL, out.len, out.data);
    CHECK(r != NULL);
    if (r) {
        CHECK_EQ_INT(r->n_responses, 2);
        if (r->n_responses == 2) {
            CHECK_EQ_INT(r->responses[0]->n_item_ids, 2); /* max_events */
            CHECK_EQ_INT(r->responses[0]->user_id, 42);
            CHECK_EQ_INT(r->responses[1]->user_id, 7);
            CHECK_EQ_INT(r->responses[1]->n_item_ids, 0);
        }
        /* canonical: protobuf-c packs the decoded message back to the same bytes */
        uint8_t again[1024];
        size_t n = seqd__v1__batch_get_sequences_response__get_packed_size(r);
        CHECK_EQ_INT(n, out.len);
        CHECK(n == out.len && n <= sizeof again &&
              seqd__v1__batch_get_sequences_response__pack(r, again) == n &&
              memcmp(again, out.data, n) == 0);
        seqd__v1__batch_get_sequences_response__free_unpacked(r, NULL);
    }
    breq.n_requests = 3; /* an invalid entry fails the whole call, named by index */
    len = seqd__v1__batch_get_sequences_request__pack(&breq, buf);
    out.len = 0;
    CHECK_EQ_INT(seq_service_batch_get(f->svc, buf, len, &out, msg, sizeof msg), SEQ_ENOTFOUND);
    CHECK(strcmp(msg, "requests[2]: unknown sequence 'other'") == 0);
    c.sequence = "engagements", c.user_id = 0;
    len = seqd__v1__batch_get_sequences_request__pack(&breq, buf);
    out.len = 0;
    CHECK_EQ_INT(seq_service_batch_get(f->svc, buf, len, &out, msg, sizeof msg), SEQ_EINVAL);
    CHECK(strcmp(msg, "requests[2]: user_id: required") == 0);
    c.user_id = 42, c.max_completeness_gap_ms = -1; /* refused at read time, still named */
    len = seqd__v1__batch_get_sequences_request__pack(&breq, buf);
    out.len = 0;
    CHECK_EQ_INT(seq_service_batch_get(f->svc, buf, len, &out, msg, sizeof msg), SEQ_EPRECONDITION);
    CHECK(strncmp(msg, "requests[2]: completeness gap ", 30) == 0);
    seq_buf_free(&out);
}

static void test_health(fixture *f)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    const char *names[] = {"", "seqd.v1.SequenceService", "x.Y"};
    for (int i = 0; i < 3; i++) {
        uint8_t buf[64];
        char msg[256];
        seq_buf out = {0};
        req.service = (char *)names[i];
        size_t len = grpc__health__v1__health_check_request__pack(&req, buf);
        int rc = seq_service_health(f->svc, buf, len, &out, msg, sizeof msg);
        if (i < 2) {
            CHECK_EQ_INT(rc, SEQ_OK);
            Grpc__Health__V1__HealthCheckResponse *r =
                grpc__health__v1__health_check_response__unpack(NULL, out.len, out.data);
            CHECK(r && r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
            if (r) grpc__health__v1__health_check_response__free_unpacked(r, NULL);
        } else {
            CHECK_EQ_INT(rc, SEQ_ENOTFOUND);
        }
        seq_buf_free(&out);
    }
}

static void test_with_store(void)
{
    fixture f;
    int ok = setup(&f) == 0;
    CHECK(ok);
    if (!ok) return;
    test_get(&f);
    test_get_errors(&f);
    test_batch_get(&f);
    test_health(&f);
    teardown(&f);
}

int main(void)
{
    RUN(test_encoder);
    RUN(test_encoder_canonical);
    RUN(test_with_store);
    return seq_t_done();
}
