/* Blocking HTTP/1.1 GET (see http1.h): sends one request with Connection: close and
 * reads to EOF, so no keep-alive bookkeeping; a chunked body is de-chunked. */
#include "http1.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "h2client.h"

static int read_all(int fd, seq_buf *out, char *err, size_t errlen)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            seq_errf(err, errlen, "recv: %s", errno == EAGAIN ? "timed out" : strerror(errno));
            return -1;
        }
        if (n == 0) return 0;
        if (seq_buf_append(out, buf, (size_t)n) < 0) {
            seq_errf(err, errlen, "out of memory");
            return -1;
        }
    }
}

/* Decodes "hex-size\r\nbytes\r\n ... 0\r\n\r\n" into out. */
static int dechunk(const char *p, const char *end, seq_buf *out)
{
    while (p < end) {
        char *q;
        unsigned long n = strtoul(p, &q, 16);
        const char *eol = strstr(q, "\r\n");
        if (q == p || !eol || eol + 2 > end) return -1;
        p = eol + 2;
        if (n == 0) return 0;
        if ((size_t)(end - p) < n || seq_buf_append(out, p, n) < 0) return -1;
        p += n + 2;
    }
    return -1;
}

static int has_chunked(const char *head, size_t len)
{
    const char *end = head + len;
    for (const char *p = head; p < end;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol || eol > end) eol = end;
        if (eol - p > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0)
            for (const char *c = p + 18; c + 7 <= eol; c++)
                if (strncasecmp(c, "chunked", 7) == 0) return 1;
        p = eol + 2;
    }
    return 0;
}

int seqc_http_get(const char *hostport, const char *path, int timeout_ms, int *http_status,
                  seq_buf *body, char *err, size_t errlen)
{
    int ret = SEQ_EUNAVAILABLE;
    seq_buf raw = {0};
    char req[1024];
    int fd = seqc_connect(hostport, timeout_ms, err, errlen);
    if (fd < 0) return SEQ_EUNAVAILABLE;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, hostport);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        seq_errf(err, errlen, "send to %s failed", hostport);
        goto fail;
    }
    if (read_all(fd, &raw, err, errlen) < 0) goto fail;
    if (seq_buf_append(&raw, "", 1) < 0) goto fail; /* NUL for the string functions */
    const char *text = (const char *)raw.data;
    const char *sep = strstr(text, "\r\n\r\n");
    if (!sep || sscanf(text, "HTTP/1.%*d %d", http_status) != 1) {
        seq_errf(err, errlen, "%s: not an HTTP reply", hostport);
        goto fail;
    }
    const char *b = sep + 4, *end = text + raw.len - 1;
    int rc = has_chunked(text, (size_t)(sep - text)) ? dechunk(b, end, body)
                                                     : seq_buf_append(body, b, (size_t)(end - b));
    if (rc < 0 || seq_buf_append(body, "", 1) < 0) {
        seq_errf(err, errlen, "%s: bad HTTP body", hostport);
        goto fail;
    }
    body->len--; /* the NUL is a convenience, not content */
    ret = SEQ_OK;
fail:
    close(fd);
    seq_buf_free(&raw);
    if (ret != SEQ_OK) seq_buf_free(body);
    return ret;
}
