/* Blocking unary gRPC client over h2c (see h2client.h). The session is driven by hand:
 * nghttp2 produces bytes (send callback writes them to the socket), we read from the
 * socket and feed nghttp2 until our one stream closes. */
#include "h2client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *seqc_grpc_code_name(int code)
{
    if (code < 0 || code >= (int)(sizeof code_names / sizeof code_names[0])) return "UNKNOWN";
    return code_names[code];
}

static int split_hostport(const char *hostport, char *host, size_t hostlen, char *port,
                          size_t portlen)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || !colon[1]) return -1;
    const char *h = hostport;
    size_t hl = (size_t)(colon - hostport);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { h++; hl -= 2; } /* [::1]:port */
    if (hl >= hostlen || strlen(colon + 1) >= portlen) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static void set_timeouts(int fd, int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int seqc_connect(const char *hostport, int timeout_ms, char *err, size_t errlen)
{
    char host[256], port[16];
    if (split_hostport(hostport, host, sizeof host, port, sizeof port) < 0) {
        seq_errf(err, errlen, "bad address '%s' (want HOST:PORT)", hostport);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        seq_errf(err, errlen, "%s: %s", hostport, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) { saved = errno; continue; }
        set_timeouts(fd, timeout_ms);
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0) break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        seq_errf(err, errlen, "connect %s: %s", hostport, strerror(saved));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ---- the one-call session ---- */

typedef struct {
    int fd;
    int32_t stream_id;
    const uint8_t *req; /* the framed request (prefix + message) */
    size_t req_len, req_off;
    int closed;         /* our stream closed */
    int http_status;
    seq_buf data;       /* raw DATA bytes: prefix + message */
    seqc_grpc_result *res;
} call_state;

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)s; (void)flags;
    call_state *cs = user;
    ssize_t n;
    do n = send(cs->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static ssize_t read_req(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                        uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)s; (void)sid; (void)src;
    call_state *cs = user;
    size_t n = cs->req_len - cs->req_off;
    if (n > len) n = len;
    memcpy(buf, cs->req + cs->req_off, n);
    cs->req_off += n;
    if (cs->req_off == cs->req_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* grpc-message is percent-encoded. */
static void percent_decode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 &&
            (lo = hexval(in[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = (char)in[i];
        }
    }
    out[o] = '\0';
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)s; (void)flags;
    call_state *cs = user;
    if (f->hd.stream_id != cs->stream_id) return 0;
    char v[32];
    if (namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen < sizeof v) {
        memcpy(v, value, valuelen);
        v[valuelen] = '\0';
        cs->http_status = atoi(v);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0 && valuelen < sizeof v) {
        memcpy(v, value, valuelen);
        v[valuelen] = '\0';
        cs->res->status = atoi(v);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        percent_decode(value, valuelen, cs->res->message, sizeof cs->res->message);
    } else if (namelen == 14 && memcmp(name, "seqd-served-by", 14) == 0) {
        size_t n = valuelen < sizeof cs->res->served_by - 1 ? valuelen : sizeof cs->res->served_by - 1;
        memcpy(cs->res->served_by, value, n);
        cs->res->served_by[n] = '\0';
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                   size_t len, void *user)
{
    (void)s; (void)flags;
    call_state *cs = user;
    if (sid != cs->stream_id) return 0;
    if (seq_buf_append(&cs->data, data, len) < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *user)
{
    (void)s;
    call_state *cs = user;
    if (sid != cs->stream_id) return 0;
    cs->closed = 1;
    if (error_code != NGHTTP2_NO_ERROR && cs->res->status < 0)
        snprintf(cs->res->message, sizeof cs->res->message, "stream reset: %s",
                 nghttp2_http2_strerror(error_code));
    return 0;
}

static nghttp2_session *new_session(call_state *cs)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session *s = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0) return NULL;
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    if (nghttp2_session_client_new(&s, cb, cs) != 0) s = NULL;
    nghttp2_session_callbacks_del(cb);
    return s;
}

#define MAKE_NV(n, v) \
    { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

static int submit_call(nghttp2_session *s, call_state *cs, const char *authority,
                       const char *path, const seqc_header *hdrs, size_t n_hdrs,
                       int timeout_ms)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%dm", timeout_ms);
    size_t n = 0, cap = 7 + n_hdrs;
    nghttp2_nv *nv = calloc(cap, sizeof *nv);
    if (!nv) return -1;
    nghttp2_nv fixed[] = {
        MAKE_NV(":method", "POST"), MAKE_NV(":scheme", "http"),
        MAKE_NV(":authority", authority), MAKE_NV(":path", path),
        MAKE_NV("content-type", "application/grpc"), MAKE_NV("te", "trailers"),
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) nv[n++] = fixed[i];
    if (timeout_ms > 0) nv[n++] = (nghttp2_nv)MAKE_NV("grpc-timeout", timeout);
    for (size_t i = 0; i < n_hdrs; i++)
        nv[n++] = (nghttp2_nv)MAKE_NV(hdrs[i].name, hdrs[i].value);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_data_provider dp = {.read_callback = read_req};
    int rc = nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1);
    if (rc == 0) rc = cs->stream_id = nghttp2_submit_request(s, NULL, nv, n, &dp, cs);
    free(nv);
    return rc < 0 ? -1 : 0;
}

/* Pumps the session until our stream has closed. */
static int pump(nghttp2_session *s, call_state *cs, char *err, size_t errlen)
{
    uint8_t buf[16384];
    while (!cs->closed) {
        int rc = nghttp2_session_send(s);
        if (rc != 0) {
            seq_errf(err, errlen, "send: %s", nghttp2_strerror(rc));
            return -1;
        }
        if (cs->closed) break;
        ssize_t n = recv(cs->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            seq_errf(err, errlen, "recv: %s", errno == EAGAIN ? "timed out" : strerror(errno));
            return -1;
        }
        if (n == 0) {
            seq_errf(err, errlen, "connection closed by the server");
            return -1;
        }
        ssize_t used = nghttp2_session_mem_recv(s, buf, (size_t)n);
        if (used < 0) {
            seq_errf(err, errlen, "protocol error: %s", nghttp2_strerror((int)used));
            return -1;
        }
    }
    return 0;
}

/* Strips the 5-byte prefix of the (single) response message into res->body. */
static int unframe(call_state *cs, char *err, size_t errlen)
{
    if (cs->data.len == 0) return 0;
    if (cs->data.len < 5) {
        seq_errf(err, errlen, "truncated response message prefix");
        return -1;
    }
    uint32_t mlen = seq_get_be32(cs->data.data + 1);
    if (cs->data.data[0] != 0 || mlen > cs->data.len - 5) {
        seq_errf(err, errlen, "bad response framing (flag %u, length %u of %zu bytes)",
                 cs->data.data[0], mlen, cs->data.len - 5);
        return -1;
    }
    return seq_buf_append(&cs->res->body, cs->data.data + 5, mlen) < 0 ? -1 : 0;
}

int seqc_grpc_unary(const char *hostport, const char *path, const uint8_t *req, size_t len,
                    const seqc_header *headers, size_t n_headers, int timeout_ms,
                    seqc_grpc_result *res, char *err, size_t errlen)
{
    int ret = SEQ_EUNAVAILABLE;
    nghttp2_session *s = NULL;
    call_state cs = {.fd = -1, .res = res};
    memset(res, 0, sizeof *res);
    res->status = -1;
    uint8_t *framed = malloc(len + 5);
    if (!framed) {
        seq_errf(err, errlen, "out of memory");
        return SEQ_EINTERNAL;
    }
    framed[0] = 0;
    seq_put_be32(framed + 1, (uint32_t)len);
    if (len) memcpy(framed + 5, req, len);
    cs.req = framed;
    cs.req_len = len + 5;
    /* the socket wait outlasts the deadline so the server's DEADLINE_EXCEEDED arrives */
    cs.fd = seqc_connect(hostport, timeout_ms > 0 ? timeout_ms + 5000 : 60000, err, errlen);
    if (cs.fd < 0) goto fail;
    if (!(s = new_session(&cs)) ||
        submit_call(s, &cs, hostport, path, headers, n_headers, timeout_ms) < 0) {
        seq_errf(err, errlen, "cannot set up the HTTP/2 session");
        goto fail;
    }
    if (pump(s, &cs, err, errlen) < 0 || unframe(&cs, err, errlen) < 0) goto fail;
    if (res->status < 0) {
        seq_errf(err, errlen, "no grpc-status from the server (HTTP %d)%s%s", cs.http_status,
                 res->message[0] ? ": " : "", res->message);
        goto fail;
    }
    ret = SEQ_OK;
fail:
    if (s) nghttp2_session_del(s);
    if (cs.fd >= 0) close(cs.fd);
    seq_buf_free(&cs.data);
    free(framed);
    if (ret != SEQ_OK) seq_buf_free(&res->body);
    return ret;
}
