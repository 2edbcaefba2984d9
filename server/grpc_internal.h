/* Internals of the gRPC transport exposed for tests and fuzzers only; the server
 * itself uses grpc.h. */
#ifndef SEQ_GRPC_INTERNAL_H
#define SEQ_GRPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

/* Parses a grpc-timeout value (1-8 digits + one of H M S m u n) into nanoseconds.
 * Returns 0, or -1 when malformed. */
int seq_grpc_parse_timeout(const char *v, size_t n, uint64_t *ns);
/* Percent-encodes a grpc-message (bytes outside 0x20..0x7e and '%'); always
 * NUL-terminates, truncating on a character boundary of the encoding. Returns the length. */
size_t seq_grpc_pct_encode(const char *in, char *out, size_t outlen);
/* Runs one connection of a server that is not started, over a socketpair whose peer
 * is drained and discarded: `data` is fed to the HTTP/2 session in chunks of `chunk`
 * bytes (0 = all at once) as if read from the socket, completions queued by handlers
 * are run, then everything is freed. For the session fuzzer. */
void seq_grpc_fuzz_session(const seq_grpc_config *cfg, const uint8_t *data, size_t len,
                           size_t chunk);

#endif
