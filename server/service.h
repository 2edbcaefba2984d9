/* The gRPC methods of seqd (seqd.v1.SequenceService, grpc.health.v1.Health and server
 * reflection, server/reflection.h) on top of
 * the transport (server/grpc.h): request decoding and validation, the read path
 * (view -> seq_store_read -> seq_merge_run) and the response encoder, which writes the
 * GetSequenceResponse wire format by hand straight into the call's reply buffer.
 * LoadBatch checks the token and hands the load to a thread of its own (storage/batch.h).
 * Per-thread state (store reader, merge scratch, request arena) is created on a worker's
 * first call and freed when that thread exits. */
#ifndef SEQ_SERVICE_H
#define SEQ_SERVICE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/blob.h"
#include "../engine/def.h"
#include "../storage/store.h"
#include "grpc.h"

typedef struct seq_service seq_service;

typedef struct {
    const seq_def *def;
    seq_store *store;
    const _Atomic int64_t *stream_watermark; /* published by the consumer; may be NULL */
    const char *batch_root;                  /* LoadBatch reads only below this */
    const char *admin_token;                 /* NULL: LoadBatch needs no token */
    struct seq_wmhist *wmhist;               /* stream watermark over time; may be NULL */
    /* The topic's partition count, which a partitioned batch's P must equal (0: unknown,
     * not checked); may be NULL. */
    uint32_t (*topic_partitions)(void *ctx);
    void *topic_partitions_ctx;
} seq_service_config;

/* On a cluster member, LoadBatch and RollbackBatch go cluster-wide through l
 * (server/loads.h) once this is called (before, they are local, as on a single node,
 * which never calls it). */
struct seq_loads;
void seq_service_set_loads(seq_service *s, struct seq_loads *l);

/* cfg's pointers must outlive the service. */
int seq_service_new(const seq_service_config *cfg, seq_service **out, char *err, size_t errlen);
/* Refuses new LoadBatch calls (UNAVAILABLE) and waits for running ones to finish their
 * calls: call before seq_grpc_stop, since loads finish calls from their own threads. */
void seq_service_drain(seq_service *s);
/* Call after every worker thread that used the service has exited (seq_grpc_stop). */
void seq_service_free(seq_service *s);

/* The method table for seq_grpc_config (owned by s) and, in the same order, short
 * method names for metric labels. */
const seq_grpc_method *seq_service_methods(seq_service *s, size_t *n);
const char *const *seq_service_method_names(void);

/* Load history for the console (/ui): the outcome of each of the last SEQ_SERVICE_LOADS
 * LoadBatch calls that reached the store (refused tokens and undecodable requests do not). */
#define SEQ_SERVICE_LOADS 32
typedef struct {
    int64_t done_ms;             /* wall clock when it finished */
    uint32_t duration_ms;
    char sequence[64];
    int64_t start_ms, end_ms;
    uint64_t generation;         /* as requested */
    int status;                  /* SEQ_OK or the error code it answered */
    uint32_t files;
    uint64_t users, events;
    char message[256];           /* the error message; empty on success */
} seq_service_load_note;
/* Copies up to max notes, newest first; returns how many. Thread-safe. */
size_t seq_service_loads(seq_service *s, seq_service_load_note *out, size_t max);

/* Transport-free handlers: the request message in, the response message appended to
 * out; SEQ_OK or a gRPC status with a message in msg. The transport handlers wrap them;
 * tests call them directly. */
int seq_service_get(seq_service *s, const uint8_t *req, size_t len, seq_buf *out, char *msg,
                    size_t msglen);
int seq_service_batch_get(seq_service *s, const uint8_t *req, size_t len, seq_buf *out,
                          char *msg, size_t msglen);
int seq_service_definition(seq_service *s, const uint8_t *req, size_t len, seq_buf *out,
                           char *msg, size_t msglen);
int seq_service_no_cluster_map(seq_service *s, const uint8_t *req, size_t len, seq_buf *out,
                               char *msg, size_t msglen);
int seq_service_health(seq_service *s, const uint8_t *req, size_t len, seq_buf *out, char *msg,
                       size_t msglen);

/* ---- the response encoder ---- */
typedef struct {
    uint64_t user_id;
    const seq_sequence *seq;    /* name and columns (defaults) */
    const seq_rec *const *recs; /* newest first */
    uint32_t n;
    int64_t stream_watermark_ms, batch_watermark_ms;
    uint64_t batch_generation;
    int provenance;              /* write sources and generations (recs[i]->gen) */
    int event_ids;               /* write event_ids (field 14) */
    int64_t completeness_gap_ms; /* PRODUCT.md "Completeness gap" */
    int64_t as_of_ms;            /* the time the answer is as of */
} seq_service_resp;

/* Appends the encoded GetSequenceResponse to out. SEQ_OK or SEQ_EINTERNAL (OOM). */
int seq_service_resp_encode(seq_buf *out, const seq_service_resp *r);

#endif
