/* seqd's gRPC methods (see service.h). Read path per GetSequence, all on the worker
 * thread that read the request: protobuf-c unpack into a per-thread arena -> validate
 * against the definition -> acquire the committed view -> seq_store_read with the
 * thread's reader -> seq_merge_run with the thread's scratch -> encode by hand into the
 * reply buffer -> release the view. No malloc per call once a thread is warm (the arena
 * falls back to malloc only for requests larger than it), no lock but the view's
 * refcount. */
#include "service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "seqd/v1/seqd.pb-c.h"
#include "../storage/batch.h"
#include "loads.h"
#include "log.h"
#include "reflection.h"
#include "wmhist.h"

#define ARENA_BYTES (64 * 1024)
#define SEQ_SERVICE_MSG 384     /* an error message of one request */
#define SEQ_AS_OF_AHEAD_MS 1000 /* as_of_ms up to this far ahead of the clock is "now" */

/* ---- per-thread state ---- */

typedef struct {
    uint64_t user;
    const seq_sequence *seq;
    uint32_t max_events;
    int64_t since_ms, until_ms;
    uint64_t type_mask;
    seq_view view;
    int provenance, event_ids;
    int64_t as_of_ms;    /* 0: now */
    int64_t max_gap_ms;  /* 0: no requirement; < 0: a gap of 0 */
} prepared;

typedef struct {
    seq_store_reader *reader;
    seq_merge_scratch *scratch;
    const seq_rec **out; /* merge output, max over the sequences' max_length */
    prepared *preps;     /* BatchGetSequences entries, grown as needed */
    size_t n_preps;
    ProtobufCAllocator alloc;
    uint8_t *arena;
    size_t arena_used;
} worker_state;

typedef int (*op_fn)(seq_service *s, const uint8_t *req, size_t len, seq_buf *out, char *msg,
                     size_t msglen);
typedef struct {
    seq_service *s;
    op_fn fn;
} binding;

#define N_METHODS 9
struct seq_service {
    seq_service_config cfg;
    uint32_t max_length;
    pthread_key_t key;
    binding bindings[N_METHODS];
    seq_grpc_method methods[N_METHODS];
    seq_reflection *reflection;
    /* LoadBatch and RollbackBatch run on threads of their own; shutdown waits for them. */
    pthread_mutex_t load_mu;
    pthread_cond_t load_cv;
    int loads, draining;
    _Atomic(struct seq_loads *) cluster_loads; /* cluster-wide loads (loads.h); NULL: local */
    seq_service_load_note notes[SEQ_SERVICE_LOADS]; /* a ring under load_mu */
    size_t n_notes;                                  /* ever written */
};

/* Bump allocation for protobuf-c; memory is reclaimed wholesale after each call. */
static void *arena_alloc(void *ctx, size_t n)
{
    worker_state *w = ctx;
    n = (n + 15) & ~(size_t)15;
    if (w->arena_used + n <= ARENA_BYTES) {
        void *p = w->arena + w->arena_used;
        w->arena_used += n;
        return p;
    }
    return malloc(n);
}

static void arena_free(void *ctx, void *p)
{
    worker_state *w = ctx;
    if ((uint8_t *)p >= w->arena && (uint8_t *)p < w->arena + ARENA_BYTES) return;
    free(p);
}

static void worker_free(void *p)
{
    worker_state *w = p;
    if (!w) return;
    if (w->reader) seq_store_reader_free(w->reader);
    if (w->scratch) seq_merge_scratch_free(w->scratch);
    free(w->out);
    free(w->preps);
    free(w->arena);
    free(w);
}

static worker_state *worker_get(seq_service *s)
{
    worker_state *w = pthread_getspecific(s->key);
    if (w) return w;
    if (!(w = calloc(1, sizeof *w))) return NULL;
    w->reader = seq_store_reader_new(s->cfg.store);
    w->scratch = seq_merge_scratch_new();
    w->out = malloc(((size_t)s->max_length + 1) * sizeof *w->out);
    w->arena = malloc(ARENA_BYTES);
    w->alloc = (ProtobufCAllocator){arena_alloc, arena_free, w};
    if (!w->reader || !w->scratch || !w->out || !w->arena || pthread_setspecific(s->key, w)) {
        worker_free(w);
        return NULL;
    }
    return w;
}

/* ---- the response encoder ---- */

static inline size_t varint_size(uint64_t v)
{
    return (size_t)(64 - __builtin_clzll(v | 1) + 6) / 7;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    if (v < 0x80) { /* type indexes, small ids */
        *p = (uint8_t)v;
        return p + 1;
    }
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the encoder copies little-endian doubles and words as they are: port put_column and put_varint_wide first"
#endif

/* v < 2^56 with its 7-bit groups spread to the bytes of a word (3 steps of halving). */
static inline uint64_t spread7(uint64_t v)
{
    uint64_t x = (v & 0xFFFFFFFull) | (v & 0xFFFFFFF0000000ull) << 4;     /* 28-bit halves */
    x = (x & 0x00003FFF00003FFFull) | (x & 0x0FFFC0000FFFC000ull) << 2;   /* 14-bit quarters */
    return (x & 0x007F007F007F007Full) | (x & 0x3F803F803F803F80ull) << 1; /* 7-bit bytes */
}

/* For the packed timestamps and item ids (6 and ~4 bytes as varints, where the byte loop
 * costs a branch per byte and mispredicts as the widths vary): a value below 2^56 goes
 * out as spread7's word in one 8-byte store. The bytes past the varint are scratch,
 * overwritten by what follows; they stay within the array's bound (10 bytes per value,
 * see TS_MAX) since a varint here takes at most 8 of them. */
static inline uint8_t *put_varint_wide(uint8_t *p, uint64_t v)
{
    if (v >> 56) return put_varint(p, v);
    uint64_t x = spread7(v);
    /* the varint ends at x's highest non-zero byte: 8 - lz / 8 bytes, each but the last
     * with its continuation bit */
    int lz = __builtin_clzll(x | 1);
    x |= 0x8080808080808080ull >> (lz & 56) >> 8;
    memcpy(p, &x, 8);
    return p + 8 - (lz >> 3);
}

/* Continuation bits of a w-byte varint (2 <= w <= 8) in spread7's word. */
static inline uint64_t cont_bits(size_t w) { return 0x8080808080808080ull >> (72 - 8 * w); }

/* A length-delimited field's size: tag (all ours fit in one byte) + length + payload. */
static inline size_t ld_size(size_t len) { return 1 + varint_size(len) + len; }

static size_t column_size(const char *name, uint32_t n)
{
    size_t s = ld_size(strlen(name));
    return n ? s + ld_size((size_t)n * 8) : s;
}

/* Upper bounds of the packed payloads: int64 and uint64 varints take up to 10 bytes,
 * uint32 up to 5. */
#define TS_MAX(n) ((size_t)(n) * 10)
#define ITEMS_MAX(n) ((size_t)(n) * 10)
#define TYPES_MAX(n) ((size_t)(n) * 5)

#define SOURCES_MAX(n) ((size_t)(n)) /* 0 or 1: one byte each */

/* An upper bound of the message's size, without walking the records. */
static size_t resp_bound(const seq_service_resp *r)
{
    size_t total = 11 + ld_size(strlen(r->seq->name)) + 5 * 11; /* + the six scalars */
    if (r->n) total += ld_size(TS_MAX(r->n)) + ld_size(ITEMS_MAX(r->n)) + ld_size(TYPES_MAX(r->n));
    if (r->n && r->provenance) total += ld_size(SOURCES_MAX(r->n)) + ld_size(ITEMS_MAX(r->n));
    if (r->event_ids) total += (size_t)r->n * (1 + 2 + 255); /* ids are at most 255 bytes */
    for (uint32_t c = 0; c < r->seq->n_columns; c++)
        total += ld_size(column_size(r->seq->columns[c].name, r->n));
    return total;
}

/* Length-delimited fields whose length is known only once the payload is written (the
 * packed varints, the message itself), in one pass: the length gets a slot sized for
 * the payload's upper bound `max`, and when the actual length needs fewer bytes, the
 * payload moves down so that the varint stays minimal (canonical protobuf). The bounds
 * are within a factor of 2-4 of the real size, so the slot is nearly always right and
 * the move rare. */
static inline uint8_t *ld_open(uint8_t *p, uint8_t tag, size_t max, uint8_t **slot)
{
    *p++ = tag;
    *slot = p;
    return p + varint_size(max);
}

static uint8_t *ld_close(uint8_t *slot, size_t max, uint8_t *end)
{
    size_t width = varint_size(max);
    uint8_t *payload = slot + width;
    size_t len = (size_t)(end - payload), w = varint_size(len);
    if (w < width) {
        memmove(slot + w, payload, len);
        end -= width - w;
    }
    put_varint(slot, len);
    return end;
}

static uint8_t *put_bytes_field(uint8_t *p, uint8_t tag, const void *b, size_t len)
{
    *p++ = tag;
    p = put_varint(p, len);
    memcpy(p, b, len);
    return p + len;
}

static uint8_t *put_column(uint8_t *p, const seq_service_resp *r, uint32_t c)
{
    const seq_column *col = &r->seq->columns[c];
    *p++ = 0x32; /* field 6, length-delimited */
    p = put_varint(p, column_size(col->name, r->n));
    p = put_bytes_field(p, 0x0a, col->name, strlen(col->name));
    if (!r->n) return p;
    *p++ = 0x12;
    p = put_varint(p, (size_t)r->n * 8);
    /* Blobs store columns as little-endian doubles, which is also protobuf's fixed64
     * wire form: copy the bytes (what seq_rec_col would decode, defaults included). */
    for (uint32_t i = 0; i < r->n; i++, p += 8) {
        const seq_rec *rec = r->recs[i];
        memcpy(p, c < rec->n_cols ? (const void *)(rec->cols + 8 * (size_t)c) : (const void *)&col->dflt, 8);
    }
    return p;
}

static uint8_t *put_scalar(uint8_t *p, uint8_t tag, uint64_t v)
{
    if (!v) return p; /* proto3: zero scalars are omitted */
    *p++ = tag;
    return put_varint(p, v);
}

/* The packed timestamps. The answer is newest first, so its first and last times bound
 * the others: when both take the same varint width w (timestamps in ms all take 6 bytes
 * for centuries), so does every time, and each goes out as spread7 | its continuation
 * bits, without measuring it. */
static uint8_t *put_times(uint8_t *p, const seq_service_resp *r)
{
    int64_t newest = r->recs[0]->time_ms, oldest = r->recs[r->n - 1]->time_ms;
    size_t w = varint_size((uint64_t)newest);
    if (oldest < 0 || w < 2 || w > 8 || varint_size((uint64_t)oldest) != w) {
        for (uint32_t i = 0; i < r->n; i++) p = put_varint_wide(p, (uint64_t)r->recs[i]->time_ms);
        return p;
    }
    uint64_t cont = cont_bits(w);
    for (uint32_t i = 0; i < r->n; i++, p += w) {
        uint64_t x = spread7((uint64_t)r->recs[i]->time_ms) | cont;
        memcpy(p, &x, 8); /* scratch past w bytes: within TS_MAX as in put_varint_wide */
    }
    return p;
}

/* The packed type indexes: one byte each while they are below 128 (any sequence with
 * fewer types); checked after the fact, rewritten as varints otherwise. */
static uint8_t *put_types(uint8_t *p, const seq_service_resp *r)
{
    uint32_t any = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        uint32_t t = r->recs[i]->type_idx;
        p[i] = (uint8_t)t;
        any |= t;
    }
    if (any < 0x80) return p + r->n;
    for (uint32_t i = 0; i < r->n; i++) p = put_varint(p, r->recs[i]->type_idx);
    return p;
}

/* The three packed arrays, each in one pass over the records. */
static uint8_t *put_packed(uint8_t *p, const seq_service_resp *r)
{
    uint8_t *slot;
    p = ld_open(p, 0x1a, TS_MAX(r->n), &slot);
    p = put_times(p, r);
    p = ld_close(slot, TS_MAX(r->n), p);
    p = ld_open(p, 0x22, ITEMS_MAX(r->n), &slot);
    for (uint32_t i = 0; i < r->n; i++) p = put_varint_wide(p, r->recs[i]->item_id);
    p = ld_close(slot, ITEMS_MAX(r->n), p);
    p = ld_open(p, 0x2a, TYPES_MAX(r->n), &slot);
    p = put_types(p, r);
    return ld_close(slot, TYPES_MAX(r->n), p);
}

/* Provenance (fields 10 and 11): per record its source (a generation is never 0 for a
 * batch record, so gen != 0 is the source) and its generation, each array in one pass. */
static uint8_t *put_provenance(uint8_t *p, const seq_service_resp *r)
{
    *p++ = 0x52;
    p = put_varint(p, r->n); /* one byte per source: the length is known */
    for (uint32_t i = 0; i < r->n; i++) p[i] = r->recs[i]->gen != 0;
    p += r->n;
    uint8_t *slot;
    p = ld_open(p, 0x5a, ITEMS_MAX(r->n), &slot);
    for (uint32_t i = 0; i < r->n; i++) p = put_varint_wide(p, r->recs[i]->gen);
    return ld_close(slot, ITEMS_MAX(r->n), p);
}

/* Writes the message; the buffer must hold resp_bound() bytes. Returns its end. */
static uint8_t *write_resp(uint8_t *p, const seq_service_resp *r)
{
    p = put_scalar(p, 0x08, r->user_id);
    p = put_bytes_field(p, 0x12, r->seq->name, strlen(r->seq->name));
    if (r->n) p = put_packed(p, r);
    for (uint32_t c = 0; c < r->seq->n_columns; c++) p = put_column(p, r, c);
    p = put_scalar(p, 0x38, (uint64_t)r->stream_watermark_ms);
    p = put_scalar(p, 0x40, (uint64_t)r->batch_watermark_ms);
    p = put_scalar(p, 0x48, r->batch_generation);
    if (r->n && r->provenance) p = put_provenance(p, r);
    p = put_scalar(p, 0x60, (uint64_t)r->completeness_gap_ms);
    p = put_scalar(p, 0x68, (uint64_t)r->as_of_ms);
    for (uint32_t i = 0; r->event_ids && i < r->n; i++)
        p = put_bytes_field(p, 0x72, r->recs[i]->id, r->recs[i]->id_len);
    return p;
}

/* Appends the response, as a field-1 entry of BatchGetSequencesResponse when
 * `as_field`. One pass over the records (see ld_open). */
static int encode(seq_buf *out, const seq_service_resp *r, int as_field)
{
    size_t bound = resp_bound(r);
    if (seq_buf_reserve(out, as_field ? ld_size(bound) : bound)) return SEQ_EINTERNAL;
    uint8_t *start = out->data + out->len, *slot = NULL, *p = start;
    if (as_field) p = ld_open(p, 0x0a, bound, &slot);
    p = write_resp(p, r);
    if (as_field) p = ld_close(slot, bound, p);
    out->len += (size_t)(p - start);
    return SEQ_OK;
}

int seq_service_resp_encode(seq_buf *out, const seq_service_resp *r)
{
    return encode(out, r, 0);
}

/* ---- validation ---- */

/* Checks the request against the definition and the clock `now`; fills p. */
static int prepare(const seq_service *s, const Seqd__V1__GetSequenceRequest *r, int64_t now,
                   prepared *p, char *msg, size_t msglen)
{
    const char *name = r->sequence ? r->sequence : "";
    if (!*name) {
        seq_errf(msg, msglen, "sequence: must not be empty");
        return SEQ_EINVAL;
    }
    const seq_sequence *seq = seq_def_find(s->cfg.def, name, strlen(name));
    if (!seq) {
        seq_errf(msg, msglen, "unknown sequence '%s'", name);
        return SEQ_ENOTFOUND;
    }
    if (r->user_id == 0) { /* protobuf's "not set": never a silently empty answer */
        seq_errf(msg, msglen, "user_id: required");
        return SEQ_EINVAL;
    }
    if ((uint32_t)r->view > SEQ_VIEW_MAX) {
        seq_errf(msg, msglen, "view: %d is not a View (MERGED 0, STREAM_ONLY 1, BATCH_ONLY 2)",
                 (int)r->view);
        return SEQ_EINVAL;
    }
    if (r->as_of_ms < 0) {
        seq_errf(msg, msglen, "as_of_ms: %lld is negative (0 = now)", (long long)r->as_of_ms);
        return SEQ_EINVAL;
    }
    if (r->as_of_ms > now + SEQ_AS_OF_AHEAD_MS) {
        seq_errf(msg, msglen, "as_of_ms: %lld is in the future (server clock %lld)",
                 (long long)r->as_of_ms, (long long)now);
        return SEQ_EINVAL;
    }
    if (r->since_ms && r->until_ms && r->since_ms > r->until_ms) {
        seq_errf(msg, msglen, "since_ms (%lld) > until_ms (%lld)", (long long)r->since_ms,
                 (long long)r->until_ms);
        return SEQ_EINVAL;
    }
    uint64_t mask = 0;
    for (size_t i = 0; i < r->n_event_types; i++) {
        const char *t = r->event_types[i];
        int idx = seq_def_type_index(seq, t, strlen(t));
        if (idx < 0) {
            seq_errf(msg, msglen, "event_types: '%s' is not a type of sequence '%s'", t, seq->name);
            return SEQ_EINVAL;
        }
        mask |= 1ull << idx;
    }
    *p = (prepared){r->user_id, seq, r->max_events, r->since_ms, r->until_ms, mask,
                    (seq_view)r->view, r->include_provenance, r->include_event_ids,
                    r->as_of_ms, r->max_completeness_gap_ms};
    return SEQ_OK;
}

/* ---- the read path ---- */

static int64_t stream_watermark(const seq_service *s)
{
    return s->cfg.stream_watermark
               ? atomic_load_explicit(s->cfg.stream_watermark, memory_order_relaxed)
               : 0;
}

static const seq_store_seqstate NO_BATCH = {0};

/* The committed coverage as ranges (adjacent segments joined), for messages: the first
 * few, then how many more. */
static void coverage_text(const seq_cov_seg *cov, uint32_t n_cov, char *buf, size_t len)
{
    size_t n = 0;
    uint32_t ranges = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < n_cov; i++) {
        int64_t a = cov[i].start_ms, b = cov[i].end_ms;
        while (i + 1 < n_cov && cov[i + 1].start_ms == b) b = cov[++i].end_ms;
        if (++ranges <= 3 && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s[%lld, %lld)", ranges > 1 ? " " : "",
                                  (long long)a, (long long)b);
    }
    if (ranges == 0) snprintf(buf, len, "none");
    else if (ranges > 3 && n < len) snprintf(buf + n, len - n, " and %u more", ranges - 3);
}

/* FAILED_PRECONDITION when the request requires more complete history than there is. */
static int check_gap(const prepared *q, const seq_cov_seg *cov, uint32_t n_cov, int64_t gap,
                     char *msg, size_t msglen)
{
    int64_t max = q->max_gap_ms < 0 ? 0 : q->max_gap_ms;
    if (!q->max_gap_ms || gap <= max) return SEQ_OK;
    char text[160];
    coverage_text(cov, n_cov, text, sizeof text);
    seq_errf(msg, msglen,
             "completeness gap %lld ms exceeds max_completeness_gap_ms %lld; committed batch "
             "coverage of '%s': %s",
             (long long)gap, (long long)q->max_gap_ms, q->seq->name, text);
    return SEQ_EPRECONDITION;
}

/* The state as committed at T and the stream watermark then (PRODUCT.md "As of T"), or
 * FAILED_PRECONDITION naming the oldest time this node answers exactly. */
static int state_as_of(seq_service *s, const seq_store_seqstate *st, uint64_t user, int64_t now,
                       int64_t t, seq_hist_state *out, int64_t *stream_wm, char *msg,
                       size_t msglen)
{
    int64_t keep = seq_store_history_ms(s->cfg.store);
    if (keep <= 0) {
        seq_errf(msg, msglen, "as_of_ms: as-of reads are off on this server (--history-ms 0)");
        return SEQ_EPRECONDITION;
    }
    int64_t oldest = now - keep, born = seq_store_born_ms(s->cfg.store), hist_oldest;
    if (born > oldest) oldest = born;
    /* a partition this node took on later (a rebalance) holds apply times from then on */
    int64_t held = seq_store_user_held_since(s->cfg.store, user);
    if (held > oldest) oldest = held;
    int rc = SEQ_OK;
    if (!st->hist) *out = (seq_hist_state){0, 0, NULL, 0};
    else if (seq_hist_at(st->hist, t, out, &hist_oldest) != SEQ_OK) rc = SEQ_EPRECONDITION;
    if (st->hist && seq_hist_oldest(st->hist) > oldest) oldest = seq_hist_oldest(st->hist);
    if (rc != SEQ_OK || t < oldest) {
        seq_errf(msg, msglen,
                 "as_of_ms: %lld is older than the oldest time this node answers exactly, "
                 "%lld (--history-ms %lld, reclaimed batch data, or when it began holding "
                 "the data)",
                 (long long)t, (long long)oldest, (long long)keep);
        return SEQ_EPRECONDITION;
    }
    *stream_wm = seq_wmhist_at(s->cfg.wmhist, t);
    return SEQ_OK;
}

/* Reads and encodes one prepared request against view v at time now. */
static int read_one(seq_service *s, worker_state *w, const seq_store_view *v, int64_t now,
                    const prepared *q, seq_buf *out, int as_field, char *msg, size_t msglen)
{
    const seq_store_seqstate *st = seq_store_view_seq(v, q->seq->id);
    if (!st) st = &NO_BATCH;
    seq_hist_state at = {st->generation, st->watermark_ms, st->cov, st->n_cov};
    int64_t t = now, swm = 0;
    int rc;
    if (q->as_of_ms) { /* within a second ahead of the clock: as of now */
        t = q->as_of_ms < now ? q->as_of_ms : now;
        if ((rc = state_as_of(s, st, q->user, now, t, &at, &swm, msg, msglen))) return rc;
    } else {
        swm = stream_watermark(s);
    }
    seq_merge_params mp = {.now_ms = t, .horizon_ms = s->cfg.def->horizon_ms, .seq = q->seq,
                           .cov = at.cov, .n_cov = at.n_cov, .max_events = q->max_events,
                           .since_ms = q->since_ms, .until_ms = q->until_ms,
                           .type_mask = q->type_mask, .view = q->view,
                           .as_of_ms = q->as_of_ms ? t : 0};
    int64_t gap = seq_merge_gap_ms(at.cov, at.n_cov, t - q->seq->retention_ms,
                                   seq_merge_cutoff(t, s->cfg.def->horizon_ms));
    if ((rc = check_gap(q, at.cov, at.n_cov, gap, msg, msglen))) return rc;
    const seq_rec *sr, *br;
    uint32_t ns, nb;
    rc = seq_store_read(w->reader, &mp, q->user, &sr, &ns, &br, &nb, msg, msglen);
    if (rc) return rc;
    uint32_t n = seq_merge_run(&mp, sr, ns, br, nb, w->out, w->scratch);
    seq_service_resp r = {q->user, q->seq, w->out, n, swm, at.watermark_ms, at.generation,
                          q->provenance, q->event_ids, gap, t};
    if (encode(out, &r, as_field)) {
        seq_errf(msg, msglen, "out of memory");
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

static void arena_reset(worker_state *w) { w->arena_used = 0; }

int seq_service_get(seq_service *s, const uint8_t *req, size_t len, seq_buf *out, char *msg,
                    size_t msglen)
{
    worker_state *w = worker_get(s);
    if (!w) {
        seq_errf(msg, msglen, "out of memory");
        return SEQ_EINTERNAL;
    }
    Seqd__V1__GetSequenceRequest *r = seqd__v1__get_sequence_request__unpack(&w->alloc, len, req);
    if (!r) {
        arena_reset(w);
        seq_errf(msg, msglen, "request does not decode as seqd.v1.GetSequenceRequest");
        return SEQ_EINVAL;
    }
    prepared q;
    int64_t now = seq_now_ms();
    int rc = prepare(s, r, now, &q, msg, msglen);
    if (!rc) {
        const seq_store_view *v = seq_store_view_acquire(s->cfg.store);
        rc = read_one(s, w, v, now, &q, out, 0, msg, msglen);
        seq_store_view_release(s->cfg.store, v);
    }
    seqd__v1__get_sequence_request__free_unpacked(r, &w->alloc);
    arena_reset(w);
    return rc;
}

static int grow_preps(worker_state *w, size_t n)
{
    if (n <= w->n_preps) return SEQ_OK;
    prepared *p = realloc(w->preps, n * sizeof *p);
    if (!p) return SEQ_EINTERNAL;
    w->preps = p;
    w->n_preps = n;
    return SEQ_OK;
}

/* Validates every entry before reading any, so that an invalid entry fails the call
 * whole, with its index. */
static int prepare_all(seq_service *s, worker_state *w, const Seqd__V1__BatchGetSequencesRequest *r,
                       int64_t now, char *msg, size_t msglen)
{
    if (grow_preps(w, r->n_requests)) {
        seq_errf(msg, msglen, "out of memory");
        return SEQ_EINTERNAL;
    }
    for (size_t i = 0; i < r->n_requests; i++) {
        char inner[SEQ_SERVICE_MSG];
        int rc = prepare(s, r->requests[i], now, &w->preps[i], inner, sizeof inner);
        if (rc) {
            seq_errf(msg, msglen, "requests[%zu]: %s", i, inner);
            return rc;
        }
    }
    return SEQ_OK;
}

int seq_service_batch_get(seq_service *s, const uint8_t *req, size_t len, seq_buf *out,
                          char *msg, size_t msglen)
{
    worker_state *w = worker_get(s);
    if (!w) {
        seq_errf(msg, msglen, "out of memory");
        return SEQ_EINTERNAL;
    }
    Seqd__V1__BatchGetSequencesRequest *r =
        seqd__v1__batch_get_sequences_request__unpack(&w->alloc, len, req);
    if (!r) {
        arena_reset(w);
        seq_errf(msg, msglen, "request does not decode as seqd.v1.BatchGetSequencesRequest");
        return SEQ_EINVAL;
    }
    int64_t now = seq_now_ms();
    int rc = prepare_all(s, w, r, now, msg, msglen);
    if (!rc) {
        const seq_store_view *v = seq_store_view_acquire(s->cfg.store);
        char inner[SEQ_SERVICE_MSG];
        for (size_t i = 0; i < r->n_requests && !rc; i++)
            if ((rc = read_one(s, w, v, now, &w->preps[i], out, 1, inner, sizeof inner)))
                seq_errf(msg, msglen, "requests[%zu]: %s", i, inner);
        seq_store_view_release(s->cfg.store, v);
    }
    seqd__v1__batch_get_sequences_request__free_unpacked(r, &w->alloc);
    arena_reset(w);
    return rc;
}

int seq_service_health(seq_service *s, const uint8_t *req, size_t len, seq_buf *out, char *msg,
                       size_t msglen)
{
    (void)s;
    Grpc__Health__V1__HealthCheckRequest *r =
        grpc__health__v1__health_check_request__unpack(NULL, len, req);
    if (!r) {
        seq_errf(msg, msglen, "request does not decode as grpc.health.v1.HealthCheckRequest");
        return SEQ_EINVAL;
    }
    const char *svc = r->service ? r->service : "";
    int rc = SEQ_OK;
    if (*svc && strcmp(svc, "seqd.v1.SequenceService") != 0) {
        seq_errf(msg, msglen, "unknown service '%s'", svc);
        rc = SEQ_ENOTFOUND;
    } else {
        /* The store is open for the service's whole life: always SERVING. */
        static const uint8_t serving[] = {0x08, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING};
        if (seq_buf_append(out, serving, sizeof serving)) rc = SEQ_EINTERNAL;
    }
    grpc__health__v1__health_check_request__free_unpacked(r, NULL);
    return rc;
}

/* The definition being served and its fingerprint as `seqctl build` records it
 * (storage/batch_build.c), so that a client maps type indexes and columns without the
 * admin port. The request has no fields; unknown ones are ignored as protobuf does. */
int seq_service_definition(seq_service *s, const uint8_t *req, size_t len, seq_buf *out,
                           char *msg, size_t msglen)
{
    Seqd__V1__GetDefinitionRequest *r = seqd__v1__get_definition_request__unpack(NULL, len, req);
    if (!r) {
        seq_errf(msg, msglen, "request does not decode as seqd.v1.GetDefinitionRequest");
        return SEQ_EINVAL;
    }
    seqd__v1__get_definition_request__free_unpacked(r, NULL);
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)s->cfg.def->fingerprint);
    Seqd__V1__GetDefinitionResponse resp = SEQD__V1__GET_DEFINITION_RESPONSE__INIT;
    resp.definition_json = s->cfg.def->json ? s->cfg.def->json : (char *)"{}";
    resp.fingerprint = fp;
    size_t n = seqd__v1__get_definition_response__get_packed_size(&resp);
    if (seq_buf_reserve(out, n)) {
        seq_errf(msg, msglen, "out of memory");
        return SEQ_EINTERNAL;
    }
    out->len += seqd__v1__get_definition_response__pack(&resp, out->data + out->len);
    return SEQ_OK;
}

/* ClusterService/GetClusterMap where no cluster map runs (server/route.c serves it once
 * the map does): listed here so that reflection lists the service. */
int seq_service_no_cluster_map(seq_service *s, const uint8_t *req, size_t len, seq_buf *out,
                               char *msg, size_t msglen)
{
    (void)s, (void)req, (void)len, (void)out;
    seq_errf(msg, msglen, "the cluster map is not running yet");
    return SEQ_EUNAVAILABLE;
}

/* ---- LoadBatch and RollbackBatch change what every reader sees: each needs the admin
 * token, and runs on a thread of its own (verification and ingestion take long; either
 * may wait for readers of the old state before deleting data), the call held meanwhile,
 * keeping the worker's other streams served. ---- */

typedef enum { JOB_LOAD, JOB_ROLLBACK } job_kind;

typedef struct {
    seq_service *s;
    seq_grpc_call *call;
    job_kind kind;
    void *req; /* the unpacked request (protobuf-c default allocator); freed by the job */
} admin_job;

static int encode_load_result(seq_buf *out, const seq_load_result *res)
{
    Seqd__V1__LoadBatchResponse r = SEQD__V1__LOAD_BATCH_RESPONSE__INIT;
    r.generation = res->generation, r.files = res->files, r.users = res->users, r.events = res->events;
    r.users_emptied = res->users_emptied, r.stream_events_hidden = res->stream_events_hidden;
    size_t n = seqd__v1__load_batch_response__get_packed_size(&r);
    if (seq_buf_reserve(out, n)) return SEQ_EINTERNAL;
    out->len += seqd__v1__load_batch_response__pack(&r, out->data + out->len);
    return SEQ_OK;
}

static void note_load(seq_service *s, const Seqd__V1__LoadBatchRequest *r, int64_t started,
                      int rc, const seq_load_result *res, const char *msg)
{
    seq_service_load_note n = {.done_ms = seq_now_ms(), .start_ms = r->start_ms,
                               .end_ms = r->end_ms, .generation = r->generation, .status = rc,
                               .files = res->files, .users = res->users, .events = res->events};
    n.duration_ms = (uint32_t)(n.done_ms - started);
    snprintf(n.sequence, sizeof n.sequence, "%.63s", r->sequence ? r->sequence : "");
    snprintf(n.message, sizeof n.message, "%.255s", rc ? msg : "");
    pthread_mutex_lock(&s->load_mu);
    s->notes[s->n_notes++ % SEQ_SERVICE_LOADS] = n;
    pthread_mutex_unlock(&s->load_mu);
}

size_t seq_service_loads(seq_service *s, seq_service_load_note *out, size_t max)
{
    pthread_mutex_lock(&s->load_mu);
    size_t have = s->n_notes < SEQ_SERVICE_LOADS ? s->n_notes : SEQ_SERVICE_LOADS, k = 0;
    for (; k < have && k < max; k++) out[k] = s->notes[(s->n_notes - 1 - k) % SEQ_SERVICE_LOADS];
    pthread_mutex_unlock(&s->load_mu);
    return k;
}

/* One line per load, committed or refused (operators grep "load"). */
static void log_load(const seq_load_req *lr, int rc, const char *msg, const seq_load_result *res)
{
    if (rc)
        seq_log(SEQ_LOG_WARN, "load refused: %s generation %llu [%lld, %lld): %s: %s",
                lr->sequence, (unsigned long long)lr->generation, (long long)lr->start_ms,
                (long long)lr->end_ms, seq_log_code_name(rc), msg);
    else
        seq_log(SEQ_LOG_INFO, "load: %s generation %llu [%lld, %lld) %s: %u files, "
                "%llu users, %llu events; empties %llu users, hides %llu stream events",
                lr->sequence, (unsigned long long)res->generation, (long long)lr->start_ms,
                (long long)lr->end_ms, lr->dry_run ? "verified (dry run)" : "committed",
                (unsigned)res->files, (unsigned long long)res->users,
                (unsigned long long)res->events, (unsigned long long)res->users_emptied,
                (unsigned long long)res->stream_events_hidden);
}

void seq_service_set_loads(seq_service *s, struct seq_loads *l)
{
    atomic_store(&s->cluster_loads, l);
}

static int run_load(seq_service *s, const Seqd__V1__LoadBatchRequest *r, seq_buf *out,
                    uint64_t deadline_ns, char *msg, size_t msglen)
{
    seq_load_req lr = {.sequence = r->sequence, .start_ms = r->start_ms, .end_ms = r->end_ms,
                       .generation = r->generation,
                       .paths = (const char *const *)r->sst_paths, .n_paths = r->n_sst_paths,
                       .dry_run = r->dry_run,
                       .partitions = s->cfg.topic_partitions
                                         ? s->cfg.topic_partitions(s->cfg.topic_partitions_ctx)
                                         : 0};
    seq_load_result res = {0};
    int64_t started = seq_now_ms();
    struct seq_loads *cl = atomic_load(&s->cluster_loads);
    int rc = SEQ_OK;
    if (cl) {
        rc = seq_loads_load(cl, &lr, deadline_ns, &res, msg, msglen);
    } else {
        seq_load_timing t = {0};
        char steps[256];
        lr.timing = &t;
        rc = seq_store_load_batch(s->cfg.store, s->cfg.batch_root, &lr, &res, msg, msglen);
        seq_load_timing_format(&t, started, steps, sizeof steps);
        /* a cluster load's (server/loads.c) side by side with this (bench/build-dist.sh) */
        seq_log(SEQ_LOG_INFO, "load: timeline (call at %" PRId64 " ms): %s", started, steps);
    }
    note_load(s, r, started, rc, &res, msg);
    log_load(&lr, rc, msg, &res);
    if (!rc && encode_load_result(out, &res)) {
        rc = SEQ_EINTERNAL;
        seq_errf(msg, msglen, "out of memory");
    }
    return rc;
}

static int run_rollback(seq_service *s, const Seqd__V1__RollbackBatchRequest *r, seq_buf *out,
                        uint64_t deadline_ns, char *msg, size_t msglen)
{
    if (!r->sequence || !*r->sequence) {
        seq_errf(msg, msglen, "sequence: must not be empty");
        return SEQ_EINVAL;
    }
    Seqd__V1__RollbackBatchResponse resp = SEQD__V1__ROLLBACK_BATCH_RESPONSE__INIT;
    struct seq_loads *cl = atomic_load(&s->cluster_loads);
    int rc = cl ? seq_loads_rollback(cl, r->sequence, r->generation, deadline_ns, &resp.generation,
                                     msg, msglen)
                : seq_store_rollback_batch(s->cfg.store, r->sequence, r->generation,
                                           &resp.generation, msg, msglen);
    if (rc) {
        seq_log(SEQ_LOG_WARN, "rollback refused: %s to %llu: %s: %s", r->sequence,
                (unsigned long long)r->generation, seq_log_code_name(rc), msg);
        return rc;
    }
    seq_log(SEQ_LOG_INFO, "rollback: %s to %llu: committed generation now %llu", r->sequence,
            (unsigned long long)r->generation, (unsigned long long)resp.generation);
    size_t n = seqd__v1__rollback_batch_response__get_packed_size(&resp);
    if (seq_buf_reserve(out, n ? n : 1)) {
        seq_errf(msg, msglen, "out of memory");
        return SEQ_EINTERNAL;
    }
    out->len += seqd__v1__rollback_batch_response__pack(&resp, out->data + out->len);
    return SEQ_OK;
}

static void free_request(job_kind kind, void *req)
{
    if (kind == JOB_LOAD) seqd__v1__load_batch_request__free_unpacked(req, NULL);
    else seqd__v1__rollback_batch_request__free_unpacked(req, NULL);
}

static void *job_thread(void *arg)
{
    admin_job *j = arg;
    seq_service *s = j->s;
    char msg[1024];
    seq_buf *out = seq_grpc_call_reply(j->call);
    uint64_t deadline = seq_grpc_call_deadline_ns(j->call);
    int rc = j->kind == JOB_LOAD ? run_load(s, j->req, out, deadline, msg, sizeof msg)
                                 : run_rollback(s, j->req, out, deadline, msg, sizeof msg);
    seq_grpc_finish(j->call, rc, rc ? msg : NULL);
    free_request(j->kind, j->req);
    free(j);
    pthread_mutex_lock(&s->load_mu);
    s->loads--;
    pthread_cond_broadcast(&s->load_cv);
    pthread_mutex_unlock(&s->load_mu);
    return NULL;
}

/* Constant time in the token's bytes, so a wrong guess learns nothing from timing. */
static int token_ok(const seq_service *s, seq_grpc_call *call)
{
    if (!s->cfg.admin_token) return 1;
    const char *h = seq_grpc_call_header(call, "authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    size_t n = strlen(s->cfg.admin_token);
    if (strlen(h) != n) return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(h[i] ^ s->cfg.admin_token[i]);
    return diff == 0;
}

static const char *const JOB_NAMES[] = {"LoadBatch", "RollbackBatch"};

/* Starts a job; SEQ_OK (the job finishes the call) or an error for the caller. */
static int start_job(seq_service *s, seq_grpc_call *call, job_kind kind, void *r, char *msg,
                     size_t msglen)
{
    admin_job *j = malloc(sizeof *j);
    pthread_attr_t attr;
    pthread_t t;
    int rc = SEQ_EUNAVAILABLE;
    pthread_mutex_lock(&s->load_mu);
    if (!j || s->draining) {
        seq_errf(msg, msglen, j ? "%s: the server is stopping" : "out of memory", JOB_NAMES[kind]);
        goto out;
    }
    *j = (admin_job){s, call, kind, r};
    seq_grpc_call_hold(call);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, job_thread, j) == 0) {
        s->loads++;
        rc = SEQ_OK;
    } else {
        seq_errf(msg, msglen, "%s: cannot start a thread", JOB_NAMES[kind]);
    }
    pthread_attr_destroy(&attr);
out:
    pthread_mutex_unlock(&s->load_mu);
    if (rc) free(j);
    return rc;
}

static void handle_job(seq_service *s, seq_grpc_call *call, job_kind kind, const uint8_t *req,
                       size_t len)
{
    char msg[256];
    if (!token_ok(s, call)) {
        seq_errf(msg, sizeof msg, "%s: missing or wrong authorization token", JOB_NAMES[kind]);
        seq_log(SEQ_LOG_WARN, "%s refused: UNAUTHENTICATED: missing or wrong token",
                kind == JOB_LOAD ? "load" : "rollback");
        seq_grpc_finish(call, SEQ_EUNAUTHENTICATED, msg);
        return;
    }
    void *r = kind == JOB_LOAD ? (void *)seqd__v1__load_batch_request__unpack(NULL, len, req)
                               : (void *)seqd__v1__rollback_batch_request__unpack(NULL, len, req);
    if (!r) {
        seq_errf(msg, sizeof msg, "request does not decode as seqd.v1.%sRequest", JOB_NAMES[kind]);
        seq_grpc_finish(call, SEQ_EINVAL, msg);
        return;
    }
    int rc = start_job(s, call, kind, r, msg, sizeof msg);
    if (rc) {
        free_request(kind, r);
        seq_grpc_finish(call, rc, msg);
    }
}

static void handle_load(void *ctx, seq_grpc_call *call, const uint8_t *req, size_t len)
{
    handle_job(ctx, call, JOB_LOAD, req, len);
}

static void handle_rollback(void *ctx, seq_grpc_call *call, const uint8_t *req, size_t len)
{
    handle_job(ctx, call, JOB_ROLLBACK, req, len);
}

void seq_service_drain(seq_service *s)
{
    pthread_mutex_lock(&s->load_mu);
    s->draining = 1;
    while (s->loads > 0) pthread_cond_wait(&s->load_cv, &s->load_mu);
    pthread_mutex_unlock(&s->load_mu);
}

/* ---- transport glue ---- */

static int deadline_passed(seq_grpc_call *call)
{
    uint64_t d = seq_grpc_call_deadline_ns(call);
    if (!d) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec >= d;
}

static void handle(void *ctx, seq_grpc_call *call, const uint8_t *req, size_t len)
{
    const binding *b = ctx;
    char msg[SEQ_SERVICE_MSG + 32];
    if (deadline_passed(call)) {
        seq_grpc_finish(call, SEQ_EDEADLINE, "deadline exceeded before the call was served");
        return;
    }
    int rc = b->fn(b->s, req, len, seq_grpc_call_reply(call), msg, sizeof msg);
    seq_grpc_finish(call, rc, rc ? msg : NULL);
}

static const char *const METHOD_PATHS[N_METHODS] = {
    "/seqd.v1.SequenceService/GetSequence", "/seqd.v1.SequenceService/BatchGetSequences",
    "/seqd.v1.SequenceService/LoadBatch", "/grpc.health.v1.Health/Check",
    "/seqd.v1.SequenceService/GetDefinition",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/seqd.v1.SequenceService/RollbackBatch", "/seqd.v1.ClusterService/GetClusterMap"};
static const char *const METHOD_NAMES[N_METHODS] = {"GetSequence", "BatchGetSequences",
                                                    "LoadBatch", "Check", "GetDefinition",
                                                    "ServerReflectionInfo",
                                                    "ServerReflectionInfoV1alpha",
                                                    "RollbackBatch", "GetClusterMap"};
/* NULL: the method has a handler of its own (METHOD_OWN; reflection's stream handler for
 * the paths under /grpc.reflection.). */
static const op_fn METHOD_FNS[N_METHODS] = {seq_service_get, seq_service_batch_get, NULL,
                                            seq_service_health, seq_service_definition,
                                            NULL, NULL, NULL, seq_service_no_cluster_map};
static const seq_grpc_handler_fn METHOD_OWN[N_METHODS] = {NULL, NULL, handle_load, NULL, NULL,
                                                       NULL, NULL, handle_rollback, NULL};

const char *const *seq_service_method_names(void) { return METHOD_NAMES; }

const seq_grpc_method *seq_service_methods(seq_service *s, size_t *n)
{
    *n = N_METHODS;
    return s->methods;
}

int seq_service_new(const seq_service_config *cfg, seq_service **out, char *err, size_t errlen)
{
    seq_service *s = calloc(1, sizeof *s);
    if (!s || pthread_key_create(&s->key, worker_free)) {
        free(s);
        seq_errf(err, errlen, "service: out of memory");
        return SEQ_EINTERNAL;
    }
    s->cfg = *cfg;
    pthread_mutex_init(&s->load_mu, NULL);
    pthread_cond_init(&s->load_cv, NULL);
    for (uint32_t i = 0; i < cfg->def->n_seqs; i++)
        if (cfg->def->seqs[i].max_length > s->max_length) s->max_length = cfg->def->seqs[i].max_length;
    if (seq_reflection_new(METHOD_PATHS, N_METHODS, &s->reflection, err, errlen)) {
        seq_service_free(s);
        return SEQ_EINTERNAL;
    }
    for (int i = 0; i < N_METHODS; i++) {
        s->bindings[i] = (binding){s, METHOD_FNS[i]};
        if (strncmp(METHOD_PATHS[i], "/grpc.reflection.", 17) == 0)
            s->methods[i] = (seq_grpc_method){.path = METHOD_PATHS[i], .ctx = s->reflection,
                                              .stream_fn = seq_reflection_stream};
        else if (METHOD_FNS[i])
            s->methods[i] = (seq_grpc_method){.path = METHOD_PATHS[i], .fn = handle,
                                              .ctx = &s->bindings[i]};
        else
            s->methods[i] = (seq_grpc_method){.path = METHOD_PATHS[i], .fn = METHOD_OWN[i],
                                              .ctx = s};
    }
    *out = s;
    return SEQ_OK;
}

void seq_service_free(seq_service *s)
{
    if (!s) return;
    /* Other threads freed theirs on exit; the caller's own state (tests) goes here. */
    worker_free(pthread_getspecific(s->key));
    pthread_setspecific(s->key, NULL);
    pthread_key_delete(s->key);
    seq_service_drain(s);
    pthread_mutex_destroy(&s->load_mu);
    pthread_cond_destroy(&s->load_cv);
    seq_reflection_free(s->reflection);
    free(s);
}
