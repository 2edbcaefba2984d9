/* A tiny blocking HTTP/1.1 GET client, enough for seqd's admin port (/status,
 * /metrics). Used by seqctl to discover brokers, topic and the definition. */
#ifndef SEQC_HTTP1_H
#define SEQC_HTTP1_H

#include <stddef.h>

#include "engine/common.h"

/* GET http://HOST:PORT/path. On SEQ_OK, *http_status is set and `body` holds the body
 * (NUL-terminated; caller frees with seq_buf_free). SEQ_EUNAVAILABLE when unreachable
 * or the reply is not HTTP. */
int seqc_http_get(const char *hostport, const char *path, int timeout_ms, int *http_status,
                  seq_buf *body, char *err, size_t errlen);

#endif
