/* Forwarded calls (see forward.h): per worker thread, a pool of peer connections (a
 * non-blocking socket and an nghttp2 client session each), found by address. A call is
 * one stream: HEADERS (+ seqd-forwarded, grpc-timeout), DATA (the 5-byte prefix and the
 * message), END_STREAM; the response's DATA is gathered, its trailers read, and the
 * stream's close completes the call. A deadline timer per call resets its stream. A
 * connection that fails or closes fails its calls with SEQ_EUNAVAILABLE and leaves the
 * pool; the next call to that peer connects again.
 *
 * Cost (bench/NOTES.md, "Session 6 — forwarding CPU"): the socket is driven here as
 * grpc.c drives its connections, not through a bufferevent: one recv into the thread's
 * large read buffer per readable event (a bufferevent reads 16 KB at a time, each after an
 * ioctl(FIONREAD), and copies into its evbuffer), and nghttp2's output is sent at once at
 * the end of a pass, write interest registered only while the socket is full (a
 * bufferevent adds and removes it with epoll_ctl around every write). Request objects,
 * with their timer and buffer, are kept per thread and reused. */
#include "forward.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../engine/common.h"
#include "ngmem.h"

#define MAX_RESP (64u << 20) /* a peer's response above this is refused */
#define NO_DEADLINE_NS (30ull * 1000000000ull) /* forwarded calls without a deadline get one */
#define READ_BUF (256u << 10) /* per thread: one recv takes what several peer writes sent */
#define OUT_HIGH (1u << 20)   /* unsent output above which nghttp2 is not asked for more */
#define REQ_KEEP 256          /* request objects kept per thread for reuse */
#define KEEP_BUF_MAX (256u << 10) /* larger buffers are freed, not kept */

typedef struct peer peer;
typedef struct pool pool;

typedef struct fwd_req {
    pool *pl;
    peer *pr;
    int32_t sid;
    struct fwd_req *prev, *next; /* the peer's requests; next is also the free list link */
    seq_fwd_done_fn cb;
    void *ctx;
    struct event *timer; /* made once, kept with the object */
    seq_buf body; /* request prefix + message while sending, then the response message */
    size_t sent;
    uint8_t pfx[5]; /* the response's gRPC message prefix, kept out of body */
    size_t pfx_got, data_len; /* prefix bytes received; response DATA bytes in all */
    int http_status, grpc_status, have_status, timer_on;
    char msg[256], served_by[128];
} fwd_req;

struct peer {
    pool *pl;
    char addr[128];
    int fd;
    struct event *rev, *wev; /* read: always; write: while connecting or the socket is full */
    struct event *flush_ev;  /* sends what was submitted, once per loop pass */
    nghttp2_session *sess;
    seq_buf out; /* nghttp2's output not yet sent, from out_off */
    size_t out_off;
    int connected, dead, writing;
    fwd_req *reqs;
    peer *next;
};

struct pool {
    struct event_base *base;
    peer *peers;
    fwd_req *free; /* reusable request objects */
    size_t nfree;
    uint8_t *rbuf; /* READ_BUF bytes */
    seq_ngmem *mem; /* nghttp2's blocks of this thread's client sessions */
};

static pthread_key_t pool_key;
static _Thread_local int dying; /* the thread's pool is being freed: no new calls */
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void peer_kill(peer *pr, const char *why);
static void on_deadline(evutil_socket_t fd, short what, void *arg);

static void req_destroy(fwd_req *r)
{
    if (r->timer) event_free(r->timer);
    seq_buf_free(&r->body);
    free(r);
}

static void pool_free(void *p)
{
    pool *pl = p;
    if (!pl) return;
    dying = 1;
    pthread_setspecific(pool_key, pl); /* peer_kill looks the pool up */
    while (pl->peers) peer_kill(pl->peers, "the server is stopping");
    pthread_setspecific(pool_key, NULL);
    while (pl->free) {
        fwd_req *r = pl->free;
        pl->free = r->next;
        req_destroy(r);
    }
    seq_ngmem_free(pl->mem); /* after the sessions: peer_kill deleted them */
    free(pl->rbuf);
    free(pl);
}

static void make_key(void) { pthread_key_create(&pool_key, pool_free); }

static pool *pool_get(struct event_base *base)
{
    pthread_once(&pool_once, make_key);
    pool *pl = pthread_getspecific(pool_key);
    if (!pl) {
        if (!(pl = calloc(1, sizeof *pl))) return NULL;
        if (!(pl->rbuf = malloc(READ_BUF)) || !(pl->mem = seq_ngmem_new())) {
            free(pl->rbuf);
            free(pl);
            return NULL;
        }
        pl->base = base;
        pthread_setspecific(pool_key, pl);
    }
    return pl;
}

void seq_fwd_thread_free(void)
{
    pthread_once(&pool_once, make_key);
    pool_free(pthread_getspecific(pool_key));
    pthread_setspecific(pool_key, NULL);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- completing requests ---- */

static void req_unlink(fwd_req *r)
{
    peer *pr = r->pr;
    if (!pr) return;
    if (r->prev) r->prev->next = r->next;
    else pr->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->pr = NULL;
}

static void req_link(peer *pr, fwd_req *r)
{
    r->pr = pr;
    r->prev = NULL;
    r->next = pr->reqs;
    if (pr->reqs) pr->reqs->prev = r;
    pr->reqs = r;
}

/* A request object of the thread's pool (its timer made once), cleared. */
static fwd_req *req_get(pool *pl)
{
    fwd_req *r = pl->free;
    if (r) {
        pl->free = r->next;
        pl->nfree--;
    } else {
        if (!(r = calloc(1, sizeof *r))) return NULL;
        if (!(r->timer = evtimer_new(pl->base, on_deadline, r))) {
            free(r);
            return NULL;
        }
    }
    struct event *timer = r->timer;
    seq_buf body = r->body;
    body.len = 0;
    /* the strings are cleared by their first byte: they are always written whole */
    r->pl = pl;
    r->pr = NULL;
    r->sid = 0;
    r->prev = r->next = NULL;
    r->cb = NULL;
    r->ctx = NULL;
    r->timer = timer;
    r->body = body;
    r->sent = r->pfx_got = r->data_len = 0;
    r->http_status = r->grpc_status = r->have_status = r->timer_on = 0;
    r->msg[0] = r->served_by[0] = '\0';
    return r;
}

static void req_free(fwd_req *r)
{
    pool *pl = r->pl;
    if (r->timer_on) evtimer_del(r->timer);
    r->timer_on = 0;
    if (dying || pl->nfree >= REQ_KEEP) {
        req_destroy(r);
        return;
    }
    if (r->body.cap > KEEP_BUF_MAX) seq_buf_free(&r->body);
    r->next = pl->free;
    pl->free = r;
    pl->nfree++;
}

/* Calls the callback once and frees r (already unlinked from its peer). */
static void req_finish(fwd_req *r, int status, const char *msg)
{
    seq_buf *resp = NULL;
    if (status == SEQ_OK) {
        /* one gRPC message: flag 0, be32 length, the bytes (in body) */
        if (r->pfx_got < 5 || r->pfx[0] != 0 || seq_get_be32(r->pfx + 1) != r->body.len) {
            status = SEQ_EUNAVAILABLE;
            msg = "the peer's response is not one uncompressed gRPC message";
        } else {
            resp = &r->body;
        }
    }
    r->cb(r->ctx, status, msg ? msg : "", resp, r->served_by);
    req_free(r);
}

/* The stream ended: the outcome from :status, grpc-status and the body. */
static void req_closed(fwd_req *r, uint32_t code)
{
    if (r->have_status) {
        req_unlink(r);
        req_finish(r, r->grpc_status, r->msg);
        return;
    }
    char m[300];
    snprintf(m, sizeof m, "peer %s: %s", r->pr ? r->pr->addr : "",
             code ? "stream reset" : r->http_status != 200 ? "not a gRPC answer" : "no grpc-status");
    req_unlink(r);
    req_finish(r, SEQ_EUNAVAILABLE, m);
}

/* Deferred failure: callbacks never run inside seq_fwd_call. */
typedef struct {
    fwd_req *r;
    char msg[300];
} deferred;

static void run_deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    deferred *d = arg;
    req_finish(d->r, SEQ_EUNAVAILABLE, d->msg);
    free(d);
}

static int fail_later(struct event_base *base, fwd_req *r, const char *msg)
{
    deferred *d = malloc(sizeof *d);
    if (!d) return SEQ_EINTERNAL;
    d->r = r;
    snprintf(d->msg, sizeof d->msg, "%s", msg);
    if (event_base_once(base, -1, EV_TIMEOUT, run_deferred, d, &(struct timeval){0, 0})) {
        free(d);
        return SEQ_EINTERNAL;
    }
    return SEQ_OK;
}

/* The connection is gone: every request on it fails, the peer leaves the pool. */
static void peer_kill(peer *pr, const char *why)
{
    pool *pl = pr->pl;
    for (peer **pp = &pl->peers; *pp; pp = &(*pp)->next)
        if (*pp == pr) {
            *pp = pr->next;
            break;
        }
    pr->dead = 1;
    fwd_req *list = pr->reqs;
    pr->reqs = NULL;
    if (pr->sess) nghttp2_session_del(pr->sess);
    if (pr->rev) event_free(pr->rev);
    if (pr->wev) event_free(pr->wev);
    if (pr->flush_ev) event_free(pr->flush_ev);
    if (pr->fd >= 0) close(pr->fd);
    seq_buf_free(&pr->out);
    char m[300];
    snprintf(m, sizeof m, "peer %s: %s", pr->addr, why);
    while (list) {
        fwd_req *r = list;
        list = r->next;
        r->pr = NULL;
        r->prev = r->next = NULL;
        req_finish(r, SEQ_EUNAVAILABLE, m);
    }
    free(pr);
}

/* ---- nghttp2 client callbacks ---- */

static fwd_req *stream_req(nghttp2_session *s, int32_t sid)
{
    return nghttp2_session_get_stream_user_data(s, sid);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags, (void)ud;
    fwd_req *r = stream_req(s, f->hd.stream_id);
    if (!r) return 0;
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        r->http_status = vlen == 3 ? atoi((const char *)value) : 0;
    } else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        char b[8] = "";
        memcpy(b, value, vlen < 7 ? vlen : 7);
        char *end;
        long st = strtol(b, &end, 10);
        if (vlen && !*end && st >= 0 && st <= 16) {
            r->grpc_status = (int)st;
            r->have_status = 1;
        }
    } else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        /* percent-decoded */
        size_t o = 0;
        for (size_t i = 0; i < vlen && o + 1 < sizeof r->msg; i++) {
            unsigned x;
            if (value[i] == '%' && i + 2 < vlen && sscanf((const char *)value + i + 1, "%2x", &x) == 1) {
                r->msg[o++] = (char)x;
                i += 2;
            } else {
                r->msg[o++] = (char)value[i];
            }
        }
        r->msg[o] = '\0';
    } else if (nlen == 14 && memcmp(name, "seqd-served-by", 14) == 0) {
        size_t n = vlen < sizeof r->served_by - 1 ? vlen : sizeof r->served_by - 1;
        memcpy(r->served_by, value, n);
        r->served_by[n] = '\0';
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                   void *ud)
{
    (void)flags, (void)ud;
    fwd_req *r = stream_req(s, sid);
    if (!r) return 0;
    if (r->data_len + len > MAX_RESP) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
        return 0;
    }
    r->data_len += len;
    /* the 5-byte prefix apart, so that body holds the message alone: the caller can take
     * it as it is (route.c swaps it into the call's reply, no copy) */
    size_t k = r->pfx_got < 5 ? 5 - r->pfx_got : 0;
    if (k > len) k = len;
    memcpy(r->pfx + r->pfx_got, data, k);
    r->pfx_got += k;
    if (len > k && seq_buf_append(&r->body, data + k, len - k))
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
    return 0;
}

static int on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    (void)ud;
    fwd_req *r = stream_req(s, sid);
    if (!r) return 0;
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    req_closed(r, code);
    return 0;
}

static ssize_t req_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s, (void)sid, (void)ud;
    fwd_req *r = src->ptr;
    size_t n = r->body.len - r->sent < length ? r->body.len - r->sent : length;
    memcpy(buf, r->body.data + r->sent, n);
    r->sent += n;
    if (r->sent == r->body.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        r->body.len = 0; /* from here on it gathers the response */
        r->sent = 0;
    }
    return (ssize_t)n;
}

static nghttp2_session_callbacks *cbs;
static void make_callbacks(void)
{
    if (nghttp2_session_callbacks_new(&cbs)) return;
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
}

static nghttp2_session_callbacks *callbacks(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_callbacks);
    return cbs;
}

/* ---- the connection ---- */

static size_t out_pending(const peer *pr) { return pr->out.len - pr->out_off; }

/* Moves nghttp2's output to the socket as far as it takes it, and asks for a write event
 * only while something is left. 0, or -1 when the peer was killed (pr is freed). */
static int peer_flush(peer *pr)
{
    for (;;) {
        /* gathered even while connecting: nghttp2 completes a stream reset at its deadline
         * (on_deadline) only inside mem_send, so a peer whose connect hangs (a host that
         * drops SYNs) must not hold the call past its deadline; the bytes wait in out */
        while (out_pending(pr) < OUT_HIGH) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(pr->sess, &d);
            if (n < 0 || seq_buf_append(&pr->out, d, (size_t)n)) {
                peer_kill(pr, "session error");
                return -1;
            }
            if (n == 0) break;
        }
        if (!pr->connected) return 0; /* the connect's write event sends them */
        size_t pend = out_pending(pr);
        if (!pend) break;
        ssize_t k = send(pr->fd, pr->out.data + pr->out_off, pend, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            peer_kill(pr, errno == EPIPE || errno == ECONNRESET ? "closed the connection" : "connection failed");
            return -1;
        }
        pr->out_off += (size_t)k;
        if (pr->out_off == pr->out.len) pr->out_off = pr->out.len = 0;
        if ((size_t)k < pend) break; /* socket full */
    }
    if (pr->out_off > 0) { /* compact what the socket did not take */
        memmove(pr->out.data, pr->out.data + pr->out_off, out_pending(pr));
        pr->out.len -= pr->out_off;
        pr->out_off = 0;
    }
    if (!out_pending(pr) && pr->out.cap > KEEP_BUF_MAX) seq_buf_free(&pr->out);
    int want_write = out_pending(pr) > 0;
    if (want_write && !pr->writing) pr->writing = event_add(pr->wev, NULL) == 0;
    if (!want_write && pr->writing) {
        event_del(pr->wev);
        pr->writing = 0;
    }
    return 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    peer_flush(arg);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    peer *pr = arg;
    uint8_t *buf = pr->pl->rbuf;
    ssize_t n = recv(fd, buf, READ_BUF, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        peer_kill(pr, n == 0 || errno == ECONNRESET ? "closed the connection" : "connection failed");
        return;
    }
    /* the callbacks complete calls (and may start others: never on a dead peer, and never
     * killing this one, which is still in the pool) */
    if (nghttp2_session_mem_recv(pr->sess, buf, (size_t)n) < 0) {
        peer_kill(pr, "sent something that is not HTTP/2");
        return;
    }
    /* what the session wants to send (and requests submitted earlier in this pass) goes
     * with the requests the rest of the pass submits: one send per peer and pass */
    event_active(pr->flush_ev, EV_TIMEOUT, 0);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    peer *pr = arg;
    if (!pr->connected) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
            peer_kill(pr, "connection failed");
            return;
        }
        pr->connected = 1;
    }
    peer_flush(pr);
}

static int split_addr(const char *addr, struct sockaddr_storage *ss, int *sl)
{
    char host[128], port[16];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host || strlen(colon + 1) >= sizeof port) return -1;
    size_t hl = (size_t)(colon - addr);
    const char *h = addr;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) || !ai) return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sl = (int)ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static peer *peer_get(pool *pl, const char *addr)
{
    for (peer *pr = pl->peers; pr; pr = pr->next)
        if (strcmp(pr->addr, addr) == 0) return pr;
    struct sockaddr_storage ss;
    int sl;
    nghttp2_session_callbacks *cbs = callbacks();
    if (!cbs || strlen(addr) >= sizeof pl->peers->addr || split_addr(addr, &ss, &sl)) return NULL;
    peer *pr = calloc(1, sizeof *pr);
    if (!pr) return NULL;
    pr->pl = pl;
    snprintf(pr->addr, sizeof pr->addr, "%s", addr);
    pr->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    if (pr->fd < 0 ||
        !(pr->rev = event_new(pl->base, pr->fd, EV_READ | EV_PERSIST, on_read, pr)) ||
        !(pr->wev = event_new(pl->base, pr->fd, EV_WRITE | EV_PERSIST, on_write, pr)) ||
        !(pr->flush_ev = event_new(pl->base, -1, 0, on_flush, pr)) ||
        nghttp2_session_client_new3(&pr->sess, cbs, pr, NULL, seq_ngmem_get(pl->mem)) ||
        nghttp2_submit_settings(pr->sess, NGHTTP2_FLAG_NONE, iv, 1) ||
        nghttp2_session_set_local_window_size(pr->sess, NGHTTP2_FLAG_NONE, 0, 1 << 26)) {
        if (pr->sess) nghttp2_session_del(pr->sess);
        if (pr->rev) event_free(pr->rev);
        if (pr->wev) event_free(pr->wev);
        if (pr->flush_ev) event_free(pr->flush_ev);
        if (pr->fd >= 0) close(pr->fd);
        free(pr);
        return NULL;
    }
    int one = 1;
    setsockopt(pr->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pr->next = pl->peers;
    pl->peers = pr;
    int rc = connect(pr->fd, (struct sockaddr *)&ss, (socklen_t)sl);
    if (rc != 0 && errno != EINPROGRESS) {
        /* refused at once: the failure is reported from the loop, like a late one */
        pr->dead = 1;
        return pr;
    }
    pr->connected = rc == 0;
    event_add(pr->rev, NULL);
    if (!pr->connected) pr->writing = event_add(pr->wev, NULL) == 0; /* the connect's end */
    return pr;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    fwd_req *r = arg;
    peer *pr = r->pr;
    r->timer_on = 0;
    if (!pr) return;
    /* the stream's close callback completes the call */
    nghttp2_submit_rst_stream(pr->sess, NGHTTP2_FLAG_NONE, r->sid, NGHTTP2_CANCEL);
    snprintf(r->msg, sizeof r->msg, "deadline exceeded waiting for %s", pr->addr);
    r->grpc_status = SEQ_EDEADLINE;
    r->have_status = 1;
    event_active(pr->flush_ev, EV_TIMEOUT, 0);
}

/* grpc-timeout for the remaining time: the largest unit that keeps 8 digits (by hand: one
 * per call, where snprintf showed in the profile). out: at least 10 bytes. */
static void timeout_header(uint64_t left_ns, char *out)
{
    uint64_t us = left_ns / 1000, v = us ? us : 1;
    char unit = 'u';
    if (us >= 100000000ull) {
        v = us / 1000 < 100000000ull ? us / 1000 : 99999999ull;
        unit = 'm';
    }
    char d[8];
    int n = 0;
    do d[n++] = (char)('0' + v % 10); while ((v /= 10) && n < 8);
    for (int i = 0; i < n; i++) out[i] = d[n - 1 - i];
    out[n] = unit;
    out[n + 1] = '\0';
}

int seq_fwd_call(struct event_base *base, const char *addr, const char *path,
                 const uint8_t *req, size_t len, uint64_t deadline_ns, seq_fwd_done_fn cb,
                 void *ctx)
{
    if (dying) return SEQ_EINTERNAL;
    pool *pl = pool_get(base);
    fwd_req *r = pl ? req_get(pl) : NULL;
    if (!r) return SEQ_EINTERNAL;
    r->cb = cb;
    r->ctx = ctx;
    uint8_t prefix[5] = {0};
    seq_put_be32(prefix + 1, (uint32_t)len);
    uint64_t now = now_ns();
    if (!deadline_ns) deadline_ns = now + NO_DEADLINE_NS;
    if (seq_buf_append(&r->body, prefix, 5) || seq_buf_append(&r->body, req, len)) {
        req_free(r);
        return SEQ_EINTERNAL;
    }
    char m[300];
    const char *fail = NULL;
    peer *pr = NULL;
    if (deadline_ns <= now) {
        fail = "deadline exceeded before forwarding";
    } else if (!(pr = peer_get(pl, addr)) || pr->dead) {
        snprintf(m, sizeof m, "peer %s: cannot connect", addr);
        if (pr) peer_kill(pr, "cannot connect"); /* no requests yet: nothing is called back */
        fail = m;
    }
    if (!fail) {
        char tmo[16];
        timeout_header(deadline_ns - now, tmo);
        /* Literal names and values, and the peer's address (it lives as long as the
         * session), outlive the HEADERS frame: nghttp2 need not copy them; the path and
         * grpc-timeout are copied (one block for both). grpc-timeout differs in every
         * call: kept out of the HPACK tables, where each call would insert a new entry
         * on both sides and push the constant ones out. */
        const uint8_t nc = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
        const nghttp2_nv hdrs[] = {
            {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, nc},
            {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, nc},
            {(uint8_t *)":authority", (uint8_t *)pr->addr, 10, strlen(pr->addr), nc},
            {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), NGHTTP2_NV_FLAG_NO_COPY_NAME},
            {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, nc},
            {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, nc},
            {(uint8_t *)"grpc-timeout", (uint8_t *)tmo, 12, strlen(tmo), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_INDEX},
            {(uint8_t *)"seqd-forwarded", (uint8_t *)"1", 14, 1, nc},
        };
        nghttp2_data_provider prd = {.source.ptr = r, .read_callback = req_read_cb};
        int32_t sid = nghttp2_submit_request(pr->sess, NULL, hdrs, sizeof hdrs / sizeof hdrs[0], &prd, r);
        if (sid < 0) {
            snprintf(m, sizeof m, "peer %s: %s", addr, nghttp2_strerror(sid));
            fail = m;
        } else {
            r->sid = sid;
        }
    }
    if (fail) {
        if (fail_later(base, r, fail)) {
            req_free(r);
            return SEQ_EINTERNAL;
        }
        return SEQ_OK;
    }
    req_link(pr, r);
    struct timeval tv = {(time_t)((deadline_ns - now) / 1000000000u),
                         (suseconds_t)((deadline_ns - now) % 1000000000u / 1000)};
    r->timer_on = evtimer_add(r->timer, &tv) == 0;
    event_active(pr->flush_ev, EV_TIMEOUT, 0); /* connecting: gathered, sent at the connect */
    return SEQ_OK;
}
