/* h2c: a minimal non-blocking HTTP/2 cleartext (prior knowledge) gRPC client connection
 * on nghttp2's client API, for the benchmark tools (seqload, seqfeed). One socket, many
 * concurrent unary calls; the caller drives it from its own poll() loop. Not part of
 * seqd: built by bench/run only. */
#ifndef BENCH_H2C_H
#define BENCH_H2C_H

#include <stddef.h>
#include <stdint.h>

typedef struct h2c h2c;

/* Called once per finished call. grpc_status -1: no grpc-status (HTTP error or reset).
 * body: the response DATA (gRPC prefix included), valid during the call only. */
typedef void (*h2c_done_fn)(void *ctx, h2c *c, uint64_t tag, int grpc_status,
                            const uint8_t *body, size_t len);

/* Connects to HOST:PORT (blocking connect, then non-blocking). NULL + err on failure. */
h2c *h2c_connect(const char *hostport, h2c_done_fn done, void *ctx, char *err, size_t errlen);
void h2c_free(h2c *c);
int h2c_fd(const h2c *c);
/* Starts a POST to path with body msg (already gRPC-framed); the bytes must stay valid
 * until the call finishes. 0, or -1 when the session refuses. */
int h2c_submit(h2c *c, const char *path, const uint8_t *msg, size_t len, uint64_t tag);
int h2c_inflight(const h2c *c);
/* Reads what the socket has and writes what the session has; -1 when the connection
 * is dead. */
int h2c_io(h2c *c);
/* Writes what the session has, without reading: after submitting, so that a loop over
 * many idle connections costs no recv() each. -1 when the connection is dead. */
int h2c_flush(h2c *c);
/* Does the connection have bytes waiting for the socket to accept them? */
int h2c_want_write(const h2c *c);

/* Writes a gRPC-framed seqd.v1.GetSequenceRequest into out (>= 64 + strlen(seq) bytes);
 * returns its length. */
size_t h2c_get_request(uint8_t *out, uint64_t user, const char *seq, uint32_t max_events);
/* Value of varint field `field` of a protobuf message, or the first value when the field
 * is packed (0 when absent). */
uint64_t h2c_pb_first_varint(const uint8_t *msg, size_t len, uint32_t field);

#endif
