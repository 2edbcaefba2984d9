/* h2c: see h2c.h. Output goes through nghttp2_session_mem_send into a buffer that is
 * written as far as the socket accepts; input is fed straight to mem_recv. Per-call
 * state is pooled, so a steady load does not allocate. */
#include "h2c.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

typedef struct call {
    struct call *next; /* free list */
    uint64_t tag;
    int status;
    const uint8_t *msg;
    size_t len, off;
    uint8_t *body;
    size_t blen, bcap;
} call;

struct h2c {
    int fd;
    nghttp2_session *s;
    h2c_done_fn done;
    void *ctx;
    int inflight;
    call *pool;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    char authority[128];
};

static ssize_t data_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s, (void)sid, (void)ud;
    call *k = src->ptr;
    size_t n = k->len - k->off < length ? k->len - k->off : length;
    memcpy(buf, k->msg + k->off, n);
    k->off += n;
    if (k->off == k->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags, (void)ud;
    call *k = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!k || nlen != 11 || memcmp(name, "grpc-status", 11) != 0) return 0;
    int v = 0;
    for (size_t i = 0; i < vlen; i++) v = v * 10 + (value[i] - '0');
    k->status = v;
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d, size_t n,
                   void *ud)
{
    (void)flags, (void)ud;
    call *k = nghttp2_session_get_stream_user_data(s, sid);
    if (!k) return 0;
    if (k->blen + n > k->bcap) {
        size_t cap = k->bcap ? k->bcap : 4096;
        while (cap < k->blen + n) cap *= 2;
        uint8_t *b = realloc(k->body, cap);
        if (!b) return NGHTTP2_ERR_CALLBACK_FAILURE;
        k->body = b, k->bcap = cap;
    }
    memcpy(k->body + k->blen, d, n);
    k->blen += n;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    (void)code;
    h2c *c = ud;
    call *k = nghttp2_session_get_stream_user_data(s, sid);
    if (!k) return 0;
    c->inflight--;
    c->done(c->ctx, c, k->tag, k->status, k->body, k->blen);
    k->next = c->pool;
    c->pool = k;
    return 0;
}

static int dial(const char *hostport, char *err, size_t errlen)
{
    char host[100];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host) {
        snprintf(err, errlen, "%s: want HOST:PORT", hostport);
        return -1;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
        snprintf(err, errlen, "%s: cannot resolve", hostport);
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        snprintf(err, errlen, "connect %s: %s", hostport, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

h2c *h2c_connect(const char *hostport, h2c_done_fn done, void *ctx, char *err, size_t errlen)
{
    h2c *c = calloc(1, sizeof *c);
    nghttp2_session_callbacks *cb = NULL;
    if (!c) goto fail;
    c->done = done, c->ctx = ctx;
    snprintf(c->authority, sizeof c->authority, "%s", hostport);
    if ((c->fd = dial(hostport, err, errlen)) < 0) goto fail;
    if (nghttp2_session_callbacks_new(&cb) != 0) goto fail;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    int rv = nghttp2_session_client_new(&c->s, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) goto fail;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    if (h2c_io(c) < 0) goto fail;
    return c;
fail:
    if (c && c->fd > 0 && !*err) snprintf(err, errlen, "%s: session setup failed", hostport);
    h2c_free(c);
    return NULL;
}

void h2c_free(h2c *c)
{
    if (!c) return;
    if (c->s) nghttp2_session_del(c->s);
    if (c->fd > 0) close(c->fd);
    while (c->pool) {
        call *k = c->pool;
        c->pool = k->next;
        free(k->body);
        free(k);
    }
    free(c->out);
    free(c);
}

int h2c_fd(const h2c *c) { return c->fd; }
int h2c_inflight(const h2c *c) { return c->inflight; }
int h2c_want_write(const h2c *c) { return c->out_off < c->out_len; }

#define NVS(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE}

int h2c_submit(h2c *c, const char *path, const uint8_t *msg, size_t len, uint64_t tag)
{
    call *k = c->pool;
    if (k) c->pool = k->next;
    else if (!(k = calloc(1, sizeof *k))) return -1;
    k->tag = tag, k->status = -1, k->msg = msg, k->len = len, k->off = 0, k->blen = 0;
    nghttp2_nv nv[] = {NVS(":method", "POST"), NVS(":scheme", "http"), NVS(":path", ""),
                       NVS(":authority", ""), NVS("content-type", "application/grpc"),
                       NVS("te", "trailers")};
    nv[2].value = (uint8_t *)path, nv[2].valuelen = strlen(path);
    nv[3].value = (uint8_t *)c->authority, nv[3].valuelen = strlen(c->authority);
    nghttp2_data_provider prd = {.source.ptr = k, .read_callback = data_cb};
    if (nghttp2_submit_request(c->s, NULL, nv, 6, &prd, k) < 0) {
        k->next = c->pool;
        c->pool = k;
        return -1;
    }
    c->inflight++;
    return 0;
}

/* Gathers every frame the session has into one buffer, then sends it: mem_send returns
 * a frame at a time, and a send() per frame made the client's kernel time the bottleneck
 * of open-loop runs (two sends per call on loopback). */
static int flush_out(h2c *c)
{
    if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    while (c->out_len < (1u << 20)) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->s, &d);
        if (n < 0) return -1;
        if (n == 0) break;
        if (c->out_len + (size_t)n > c->out_cap) {
            size_t cap = 2 * (c->out_len + (size_t)n);
            uint8_t *o = realloc(c->out, cap);
            if (!o) return -1;
            c->out = o, c->out_cap = cap;
        }
        memcpy(c->out + c->out_len, d, (size_t)n);
        c->out_len += (size_t)n;
    }
    while (c->out_off < c->out_len) {
        ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        c->out_off += (size_t)k;
    }
    return 0;
}

int h2c_flush(h2c *c) { return flush_out(c); }

int h2c_io(h2c *c)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            return -1;
        }
        if (nghttp2_session_mem_recv(c->s, buf, (size_t)n) < 0) return -1;
        if ((size_t)n < sizeof buf) break;
    }
    return flush_out(c);
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) *p++ = (uint8_t)(v | 0x80), v >>= 7;
    *p++ = (uint8_t)v;
    return p;
}

size_t h2c_get_request(uint8_t *out, uint64_t user, const char *seq, uint32_t max_events)
{
    uint8_t *p = out + 5, *start = p;
    size_t sl = strlen(seq);
    if (user) p = put_varint(put_varint(p, 0x08), user);
    *p++ = 0x12;
    p = put_varint(p, sl);
    memcpy(p, seq, sl);
    p += sl;
    if (max_events) p = put_varint(put_varint(p, 0x18), max_events);
    size_t n = (size_t)(p - start);
    out[0] = 0;
    out[1] = (uint8_t)(n >> 24), out[2] = (uint8_t)(n >> 16), out[3] = (uint8_t)(n >> 8),
    out[4] = (uint8_t)n;
    return n + 5;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int s = 0; *p < end && s < 64; s += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

uint64_t h2c_pb_first_varint(const uint8_t *msg, size_t len, uint32_t field)
{
    const uint8_t *p = msg, *end = msg + len;
    uint64_t key, v;
    while (p < end && get_varint(&p, end, &key) == 0) {
        uint32_t wt = key & 7;
        if (wt == 0) {
            if (get_varint(&p, end, &v) < 0) return 0;
            if ((key >> 3) == field) return v;
        } else if (wt == 1) {
            p += 8;
        } else if (wt == 5) {
            p += 4;
        } else if (wt == 2) {
            if (get_varint(&p, end, &v) < 0 || v > (uint64_t)(end - p)) return 0;
            if ((key >> 3) == field) {
                const uint8_t *q = p;
                return get_varint(&q, p + v, &v) == 0 ? v : 0;
            }
            p += v;
        } else {
            return 0;
        }
    }
    return 0;
}
