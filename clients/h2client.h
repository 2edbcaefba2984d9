/* A tiny blocking gRPC client: one unary call over HTTP/2 cleartext (h2c, prior
 * knowledge) on a plain socket, using nghttp2's client session. Used by seqctl's get
 * and load commands; not meant for high throughput (one connection per call). */
#ifndef SEQC_H2CLIENT_H
#define SEQC_H2CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

typedef struct {
    int status;          /* grpc-status; -1 when the server sent none */
    char message[1024];  /* grpc-message, percent-decoded */
    char served_by[128]; /* the seqd-served-by trailer (the node that read storage), "" if none */
    seq_buf body;        /* the response message without its 5-byte prefix; caller frees */
} seqc_grpc_result;

typedef struct {
    const char *name, *value;
} seqc_header;

/* One unary call to `path` (e.g. "/seqd.v1.SequenceService/GetSequence") at
 * HOST:PORT. `headers` (n_headers entries) are extra metadata. timeout_ms > 0 is sent
 * as grpc-timeout and also bounds the socket wait. Returns SEQ_OK when a gRPC status
 * arrived (look at res->status), SEQ_EUNAVAILABLE when the server could not be reached
 * or broke the connection, with a message in err. The caller frees res->body. */
int seqc_grpc_unary(const char *hostport, const char *path, const uint8_t *req, size_t len,
                    const seqc_header *headers, size_t n_headers, int timeout_ms,
                    seqc_grpc_result *res, char *err, size_t errlen);

/* "OK", "INVALID_ARGUMENT", ... ; "UNKNOWN" for numbers out of range. */
const char *seqc_grpc_code_name(int code);

/* Opens a TCP connection to HOST:PORT (blocking). Returns the fd or -1 with err set.
 * Shared with the HTTP/1.1 client. */
int seqc_connect(const char *hostport, int timeout_ms, char *err, size_t errlen);

#endif
