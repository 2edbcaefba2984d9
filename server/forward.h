/* Forwarded gRPC calls (PRODUCT.md, "Any node answers any read"): an h2c client that runs
 * on the gRPC worker's own event loop (nghttp2 client sessions over libevent
 * bufferevents), one connection per peer and worker, shared by every call the worker
 * forwards there (HTTP/2 streams), so that a forwarded call costs no thread and no
 * connect once warm. Used by route.c only, on worker threads.
 *
 * Each call carries `seqd-forwarded: 1` and the remaining deadline as `grpc-timeout`; its
 * result (status, message, response bytes, the peer's seqd-served-by) comes back through
 * a callback on the same loop. A peer that cannot be reached, closes, or answers garbage
 * yields SEQ_EUNAVAILABLE naming it, so the caller tries the next replica. */
#ifndef SEQ_FORWARD_H
#define SEQ_FORWARD_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"

/* status: a gRPC status (SEQ_OK with resp the response message, NULL otherwise); msg: the
 * peer's grpc-message (or ours); served_by: the peer's seqd-served-by trailer ("" if none).
 * All pointers are valid during the callback only; the callback may take resp's bytes by
 * swapping *resp with a seq_buf of its own (any valid one: forward.c reuses or frees it),
 * which saves copying the answer. */
typedef void (*seq_fwd_done_fn)(void *ctx, int status, const char *msg, seq_buf *resp,
                                const char *served_by);

/* Starts a unary call of `path` with the request message req on peer `addr` (HOST:PORT),
 * on base (the calling worker's loop; the worker's connection pool is per thread).
 * deadline_ns: absolute CLOCK_MONOTONIC, 0 = none. The callback is always called exactly
 * once, later, from the loop (never from inside this call). SEQ_OK, or SEQ_EINTERNAL (out
 * of memory: no callback). */
int seq_fwd_call(struct event_base *base, const char *addr, const char *path,
                 const uint8_t *req, size_t len, uint64_t deadline_ns, seq_fwd_done_fn cb,
                 void *ctx);

/* Closes this thread's connections (their pending calls fail with SEQ_EUNAVAILABLE) and
 * frees its pool. Called when a worker's loop ends. */
void seq_fwd_thread_free(void);

#endif
