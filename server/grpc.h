/* gRPC over HTTP/2 cleartext (h2c, prior knowledge) on libevent + nghttp2: the
 * transport. Knows frames, streams, gRPC messages and status codes; knows nothing of
 * sequences or RocksDB. Each worker thread runs its own event_base with its own
 * SO_REUSEPORT listener on the same port; a request is handled on the thread that read
 * it, with no hand-off. */
#ifndef SEQ_GRPC_H
#define SEQ_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"

typedef struct seq_grpc_server seq_grpc_server;
typedef struct seq_grpc_call seq_grpc_call;

/* Called on the connection's worker thread when a whole request message has arrived.
 * The handler either finishes the call before returning (seq_grpc_finish), or keeps it
 * (seq_grpc_call_hold) and finishes it later from any thread. */
typedef void (*seq_grpc_handler_fn)(void *ctx, seq_grpc_call *call, const uint8_t *msg,
                                    size_t len);

/* A bidirectional streaming method: called on the connection's worker thread for each
 * request message as it completes, in order. It sends any number of response messages
 * with seq_grpc_stream_send and returns SEQ_OK to go on, or a status code (message in
 * err) that ends the call with that status. When the client half-closes, the call ends
 * with OK once every response is sent. While a call's unsent responses pile up (a peer
 * that does not read), its request bytes stay unread and its HTTP/2 window closes.
 * grpc-timeout is checked as each request message arrives (DEADLINE_EXCEEDED). */
typedef int (*seq_grpc_stream_fn)(void *ctx, seq_grpc_call *call, const uint8_t *msg,
                                  size_t len, char *err, size_t errlen);

typedef struct {
    const char *path; /* e.g. "/seqd.v1.SequenceService/GetSequence" */
    seq_grpc_handler_fn fn;
    void *ctx;
    seq_grpc_stream_fn stream_fn; /* set: a streaming method (fn unused) */
} seq_grpc_method;

/* Called once per finished call (any status), on the thread that finishes it; index is
 * the method's position in the table, -1 for an unknown path. */
typedef void (*seq_grpc_done_fn)(void *ctx, int method_index, int status, uint64_t elapsed_ns);

typedef struct {
    const char *listen; /* "HOST:PORT"; port 0 picks a free port */
    int threads;
    size_t max_message_bytes; /* requests and responses; 0 = 4 MiB */
    const seq_grpc_method *methods;
    size_t n_methods;
    seq_grpc_done_fn on_done; /* may be NULL */
    void *done_ctx;
    unsigned idle_timeout_ms; /* idle connections are closed after this; 0 = 300 s */
    /* Limits against hostile or runaway peers; 0 = the default in brackets. */
    unsigned max_connections;        /* open at once, whole server; more are closed at accept [4096] */
    unsigned max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS; excess refused [256] */
    unsigned max_header_bytes;       /* a request's header list (RFC 7540 size); over: RST_STREAM [16384] */
    /* Every response's trailers carry `seqd-served-by: <served_by>` (PRODUCT.md, "A cluster
     * of nodes") unless the handler set another value; NULL = no such trailer. */
    const char *served_by;
} seq_grpc_config;

/* Binds the listeners (so the port is known) and starts the worker threads.
 * The method table must outlive the server. */
int seq_grpc_start(const seq_grpc_config *cfg, seq_grpc_server **out, char *err, size_t errlen);
/* "HOST:PORT" actually bound. */
const char *seq_grpc_address(const seq_grpc_server *s);
/* Worker i's thread name ("seqd-grpcI", lives as long as s) and the connections it holds
 * or was handed, for /metrics; 0 past the last worker. Any thread. */
int seq_grpc_worker_load(const seq_grpc_server *s, size_t i, const char **name, int *conns);
/* Graceful stop: stop accepting, GOAWAY, finish in-flight calls (bounded wait), join. */
void seq_grpc_stop(seq_grpc_server *s);
void seq_grpc_free(seq_grpc_server *s);

/* ---- inside a handler ---- */
/* Request metadata (lowercase name), NUL-terminated, or NULL. Valid until finish. */
const char *seq_grpc_call_header(seq_grpc_call *c, const char *name);
/* Absolute deadline in CLOCK_MONOTONIC ns from grpc-timeout, 0 when none. */
uint64_t seq_grpc_call_deadline_ns(seq_grpc_call *c);
/* Worker thread index, 0..threads-1. */
int seq_grpc_call_worker(seq_grpc_call *c);
/* An empty buffer owned by the call: append the encoded response message to it (no
 * prefix; the transport frames it). */
seq_buf *seq_grpc_call_reply(seq_grpc_call *c);
/* Ends the call. status 0: the reply buffer is sent as the response message, then
 * trailers with grpc-status 0 (RESOURCE_EXHAUSTED instead if it exceeds the limit).
 * Otherwise no message: trailers-only with grpc-status and grpc-message (msg, percent-
 * encoded by the transport). After finish the call must not be touched. */
void seq_grpc_finish(seq_grpc_call *c, int status, const char *msg);
/* The worker's event loop, for work the handler starts on it (forwarded calls: an h2c
 * client on the same loop, server/forward.h). Only on the call's worker thread. */
struct event_base *seq_grpc_call_base(seq_grpc_call *c);
/* The seqd-served-by trailer value of this call (a forwarded answer names the node that
 * read storage); before finish. */
void seq_grpc_call_set_served_by(seq_grpc_call *c, const char *v);
/* Keep the call past the handler's return: finish it later (from any thread) with
 * seq_grpc_finish. If the client resets the stream meanwhile, finish still must be
 * called once, and it then just frees the call. */
void seq_grpc_call_hold(seq_grpc_call *c);

/* ---- inside a streaming method ---- */
/* Queues one response message (the transport frames it). SEQ_OK, or SEQ_ERESOURCE when
 * it exceeds max_message_bytes or memory runs out. */
int seq_grpc_stream_send(seq_grpc_call *c, const uint8_t *msg, size_t len);

#endif
