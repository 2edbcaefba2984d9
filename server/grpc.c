/* gRPC transport: HTTP/2 cleartext (prior knowledge) over libevent + nghttp2.
 *
 * Data path: socket -> recv into the worker's read buffer -> nghttp2_session_mem_recv
 * -> callbacks build a seq_grpc_call per stream, feed DATA to seq_frame (grpc_frame.c)
 * -> on END_STREAM the method's handler runs on this worker thread -> seq_grpc_finish
 * submits the response -> after all bytes of one read are processed, one flush:
 * nghttp2_session_mem_send into the connection's output buffer -> send().
 *
 * Threads: N workers, each with its own event_base and SO_REUSEPORT listener; a
 * connection lives and dies on one worker, the one with the fewest connections when it
 * was accepted (balance_accepted). The cross-thread entries are seq_grpc_finish of a
 * held call, which queues the call on its worker, and an accepted socket handed to
 * another worker; both go through the worker's mutex and a persistent user event, and
 * the worker submits the response or opens the connection. Because of that, call
 * reference counts are touched by the worker thread only.
 *
 * Ownership: the worker owns its connections; a connection owns its nghttp2 session.
 * A call has one reference per live stream and one while held by the application;
 * at zero it goes back to the worker's pool (buffers kept, bounded). */
#include "grpc.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "grpc_frame.h"
#include "grpc_internal.h"
#include "ngmem.h"

#define OUT_HIGH (1u << 20)       /* pending output above which a connection stops reading */
#define READ_CHUNK 65536
#define MAX_STREAMS 256           /* defaults of the configurable limits (grpc.h) */
#define MAX_HEADER_LIST 16384
#define MAX_CONNS 4096
#define WINDOW (1 << 20)          /* stream and connection receive windows */
#define HDR_BYTES 4096            /* stored request headers per call */
#define HDR_MAX 32
#define POOL_MAX 1024             /* pooled call objects per worker */
#define KEEP_BUF_MAX (256u << 10) /* larger buffers are freed, not pooled */
#define MSG_MAX 512               /* grpc-message kept from the application */
#define STOP_GRACE_S 5
#define DEFAULT_MAX_MSG (4u << 20)
#define DEFAULT_IDLE_MS 300000u
#define STREAM_OUT_HIGH (256u << 10) /* a streaming call's unsent responses above which
                                        its request bytes are left unread */

typedef struct worker worker;
typedef struct conn conn;

enum { CALL_RECV, CALL_HANDLER, CALL_HELD, CALL_DONE };

struct seq_grpc_call {
    worker *w;
    conn *conn;                 /* NULL once the stream closed or the connection died */
    seq_grpc_call *prev, *next; /* conn's call list; next is also the pool link */
    seq_grpc_call *qnext;       /* completion queue link */
    struct event *timer;        /* deadline of a held call; made once, kept in the pool */
    seq_frame frame;
    seq_buf reply; /* unary: the response message; streaming: framed responses queued */
    seq_buf in;    /* streaming: request bytes received, not yet decoded */
    /* ---- per request, reset by call_reset ---- */
    int32_t stream_id;
    int refs;
    int method; /* index in cfg.methods, -1 unknown */
    int state;
    int responded;     /* a response was submitted: later events are ignored */
    int done_reported; /* on_done called */
    int timer_on;      /* timer added (a held call with a deadline) */
    int is_post, ct_ok;
    /* streaming calls (methods with stream_fn) */
    int streaming;
    int headers_sent; /* response HEADERS with the data provider submitted */
    int deferred;     /* the data provider said DEFERRED: resume it on new output */
    int half_closed;  /* the client's END_STREAM arrived */
    int ending;       /* end status decided: trailers follow the queued responses */
    int stalled;      /* input left undecoded because the queue is above STREAM_OUT_HIGH */
    int end_status;
    size_t in_off;    /* decoded bytes at the front of `in` */
    uint64_t start_ns, deadline_ns;
    size_t sent;   /* bytes of prefix + reply framed by nghttp2 (data_read_cb) */
    size_t copied; /* ... and written to the connection's output (send_data_cb) */
    uint8_t prefix[5];
    int fin_status; /* set by seq_grpc_finish of a held call */
    char served_by[128]; /* seqd-served-by trailer set by the handler; "" = the server's */
    uint16_t nhdr, hdr_used;
    uint32_t hdr_list; /* header list size so far, counted as RFC 7540 6.5.2 does */
    /* ---- per request, not reset: only read where written (nhdr, hdr_used, held) ---- */
    struct {
        uint16_t name, value;
    } hdr[HDR_MAX];
    char fin_msg[MSG_MAX];  /* set by seq_grpc_finish of a held call */
    char hdrbuf[HDR_BYTES]; /* name\0value\0 pairs */
};

struct conn {
    worker *w;
    int fd;
    nghttp2_session *sess;
    struct event *rev, *wev;
    seq_buf out;
    size_t out_off;
    uint64_t last_ns;
    seq_grpc_call *calls;
    seq_grpc_call *last_call; /* the call stream_call found last, or NULL */
    int read_paused, writing, closing, dirty; /* writing: wev is added */
    unsigned nstreams; /* streams with a call: what MAX_CONCURRENT_STREAMS bounds */
    unsigned nstalled; /* streaming calls with call->stalled set */
    conn *prev, *next, *dnext;
};

/* Sockets one worker may hold for another at once; a busy accept loop opens the rest
 * itself. */
#define HANDOFF_MAX 64

struct worker {
    seq_grpc_server *srv;
    int idx;
    struct event_base *base;
    int lfd;
    struct event *accept_ev, *wake_ev, *stop_ev, *tick_ev;
    pthread_t th;
    int started, stopping;
    pthread_mutex_t mu; /* guards the completion queue and the handed-in sockets */
    seq_grpc_call *q_head, *q_tail;
    int in_fds[HANDOFF_MAX]; /* accepted by another worker for this one (balance_accepted) */
    int n_in, closed_in;     /* closed_in: stopping, takes no more */
    atomic_int load;         /* its connections plus the sockets handed to it, for the others */
    char name[16];           /* its thread's name; the kernel's limit */
    conn *conns, *dirty;
    int nconns;
    seq_grpc_call *pool;
    int npool;
    seq_ngmem *mem; /* nghttp2's blocks of this worker's sessions */
    uint8_t rbuf[READ_CHUNK];
};

struct seq_grpc_server {
    seq_grpc_config cfg;
    size_t max_msg;
    uint64_t idle_ns;
    unsigned max_conns, max_streams, max_header;
    atomic_uint nconns; /* open connections of all workers */
    int nworkers;
    worker *workers;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    char addr[128];
    atomic_int stopped;
};

#define NV(n, v)                                                                           \
    {                                                                                      \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,                      \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                   \
    }
static const nghttp2_nv ok_headers[] = {NV(":status", "200"),
                                        NV("content-type", "application/grpc")};
static const nghttp2_nv ok_trailers[] = {NV("grpc-status", "0")};
static const char *const status_str[] = {"0", "1", "2",  "3",  "4",  "5",  "6",  "7", "8",
                                         "9", "10", "11", "12", "13", "14", "15", "16"};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timeval tv_of_ns(uint64_t ns)
{
    struct timeval tv = {(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000)};
    return tv;
}

/* ------------------------------------------------------------------ helpers */

int seq_grpc_parse_timeout(const char *v, size_t n, uint64_t *ns)
{
    if (n < 2 || n > 9) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    uint64_t mult;
    switch (v[n - 1]) {
    case 'H': mult = 3600000000000ull; break;
    case 'M': mult = 60000000000ull; break;
    case 'S': mult = 1000000000ull; break;
    case 'm': mult = 1000000ull; break;
    case 'u': mult = 1000ull; break;
    case 'n': mult = 1ull; break;
    default: return -1;
    }
    /* 99999999 hours overflows 64 bits: saturate at ~146 years. */
    *ns = x > (UINT64_MAX / 4) / mult ? UINT64_MAX / 4 : x * mult;
    return 0;
}

size_t seq_grpc_pct_encode(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (outlen == 0) return 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
        size_t need = plain ? 1 : 3;
        if (o + need >= outlen) break;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    return o;
}

/* ------------------------------------------------------------------ calls */

static void call_deadline_cb(evutil_socket_t fd, short what, void *arg);

static void call_reset(seq_grpc_call *c)
{
    size_t off = offsetof(seq_grpc_call, stream_id);
    memset((char *)c + off, 0, offsetof(seq_grpc_call, hdr) - off);
    c->method = -1;
    seq_frame_reset(&c->frame);
    c->reply.len = 0;
    c->in.len = 0;
}

static void call_destroy(seq_grpc_call *c)
{
    if (c->timer) event_free(c->timer);
    seq_frame_free(&c->frame);
    seq_buf_free(&c->reply);
    seq_buf_free(&c->in);
    free(c);
}

static seq_grpc_call *call_new(worker *w)
{
    seq_grpc_call *c = w->pool;
    if (c) {
        w->pool = c->next;
        w->npool--;
    } else {
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        c->w = w;
        seq_frame_init(&c->frame, w->srv->max_msg);
        c->timer = evtimer_new(w->base, call_deadline_cb, c);
        if (!c->timer) {
            call_destroy(c);
            return NULL;
        }
    }
    c->conn = NULL;
    c->prev = c->next = c->qnext = NULL;
    call_reset(c);
    return c;
}

/* evtimer_del takes the base's lock even for a timer that was never added, and only
 * held calls with a deadline add one. */
static void call_timer_stop(seq_grpc_call *c)
{
    if (!c->timer_on) return;
    c->timer_on = 0;
    evtimer_del(c->timer);
}

static void call_unref(seq_grpc_call *c)
{
    if (--c->refs > 0) return;
    worker *w = c->w;
    call_timer_stop(c);
    if (c->frame.msg.cap > KEEP_BUF_MAX) seq_buf_free(&c->frame.msg);
    if (c->reply.cap > KEEP_BUF_MAX) seq_buf_free(&c->reply);
    if (c->in.cap > KEEP_BUF_MAX) seq_buf_free(&c->in);
    if (w->npool >= POOL_MAX) {
        call_destroy(c);
        return;
    }
    c->next = w->pool;
    w->pool = c;
    w->npool++;
}

static void call_report(seq_grpc_call *c, int status)
{
    if (c->done_reported) return;
    c->done_reported = 1;
    const seq_grpc_config *cfg = &c->w->srv->cfg;
    if (cfg->on_done) cfg->on_done(cfg->done_ctx, c->method, status, now_ns() - c->start_ns);
}

/* Unlinks the call from its stream and connection (stream closed or connection gone). */
static void call_detach(seq_grpc_call *c)
{
    conn *cn = c->conn;
    if (!cn) return;
    if (!c->responded) call_report(c, SEQ_ECANCELLED);
    cn->nstreams--;
    if (c->stalled) cn->nstalled--;
    c->stalled = 0;
    if (cn->last_call == c) cn->last_call = NULL;
    if (c->prev) c->prev->next = c->next;
    else cn->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->conn = NULL;
    call_timer_stop(c);
    call_unref(c);
}

static void store_header(seq_grpc_call *c, const uint8_t *name, size_t nlen,
                         const uint8_t *value, size_t vlen)
{
    if (c->nhdr >= HDR_MAX || c->hdr_used + nlen + vlen + 2 > HDR_BYTES) return;
    char *p = c->hdrbuf + c->hdr_used;
    memcpy(p, name, nlen);
    p[nlen] = 0;
    memcpy(p + nlen + 1, value, vlen);
    p[nlen + 1 + vlen] = 0;
    c->hdr[c->nhdr].name = c->hdr_used;
    c->hdr[c->nhdr].value = (uint16_t)(c->hdr_used + nlen + 1);
    c->nhdr++;
    c->hdr_used = (uint16_t)(c->hdr_used + nlen + vlen + 2);
}

const char *seq_grpc_call_header(seq_grpc_call *c, const char *name)
{
    for (unsigned i = 0; i < c->nhdr; i++)
        if (strcmp(c->hdrbuf + c->hdr[i].name, name) == 0) return c->hdrbuf + c->hdr[i].value;
    return NULL;
}

uint64_t seq_grpc_call_deadline_ns(seq_grpc_call *c) { return c->deadline_ns; }
int seq_grpc_call_worker(seq_grpc_call *c) { return c->w->idx; }
seq_buf *seq_grpc_call_reply(seq_grpc_call *c) { return &c->reply; }
struct event_base *seq_grpc_call_base(seq_grpc_call *c) { return c->w->base; }
void seq_grpc_call_set_served_by(seq_grpc_call *c, const char *v)
{
    seq_str_copy(c->served_by, sizeof c->served_by, v ? v : "");
}

/* ------------------------------------------------------------------ responses */

/* Frames prefix + reply without copying them into nghttp2 (NGHTTP2_DATA_FLAG_NO_COPY:
 * send_data_cb writes each frame straight into the connection's output), then submits
 * the trailers (nghttp2 wants them submitted from here, after the last byte, so they
 * cannot overtake the DATA). */
/* The seqd-served-by trailer of a call into nv (value copied by nghttp2); 0 or 1 entries. */
static size_t served_by_nv(const seq_grpc_call *c, nghttp2_nv *nv)
{
    const char *v = c->served_by[0] ? c->served_by : c->w->srv->cfg.served_by;
    if (!v || !*v) return 0;
    *nv = (nghttp2_nv)NV("seqd-served-by", "");
    nv->value = (uint8_t *)v;
    nv->valuelen = strlen(v);
    nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
    return 1;
}

static ssize_t data_read_cb(nghttp2_session *sess, int32_t sid, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)buf;
    (void)ud;
    seq_grpc_call *c = src->ptr;
    size_t total = 5 + c->reply.len, n = total - c->sent < length ? total - c->sent : length;
    c->sent += n;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (c->sent == total) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[2] = {ok_trailers[0]};
        size_t ntr = 1 + served_by_nv(c, &tr[1]);
        if (nghttp2_submit_trailer(sess, sid, tr, ntr) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
    }
    return (ssize_t)n;
}

/* Appends one DATA frame: nghttp2's 9-byte header, then the next `length` bytes of
 * prefix + reply (no padding: no padding callback is set). */
static int send_data_cb(nghttp2_session *sess, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *ud)
{
    (void)sess;
    (void)frame;
    conn *cn = ud;
    seq_grpc_call *c = src->ptr;
    if (seq_buf_reserve(&cn->out, 9 + length)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    uint8_t *p = cn->out.data + cn->out.len;
    memcpy(p, framehd, 9);
    p += 9;
    if (c->streaming) { /* the queue holds framed messages: copy, drop what is sent */
        memcpy(p, c->reply.data + c->copied, length);
        c->copied += length;
        cn->out.len += 9 + length;
        if (c->copied == c->reply.len) c->reply.len = c->sent = c->copied = 0;
        return 0;
    }
    size_t k = c->copied < 5 ? 5 - c->copied : 0; /* prefix bytes still due */
    if (k > length) k = length;
    if (k) memcpy(p, c->prefix + c->copied, k);
    if (length > k) memcpy(p + k, c->reply.data + (c->copied + k - 5), length - k);
    c->copied += length;
    cn->out.len += 9 + length;
    return 0;
}

/* grpc-status and, when msg is not empty, grpc-message (percent-encoded into enc, of
 * MSG_MAX * 3 bytes) into nv[0..1]. Returns the number of fields. */
static size_t status_fields(nghttp2_nv *nv, int status, const char *msg, char *enc)
{
    const nghttp2_nv fields[2] = {NV("grpc-status", ""), NV("grpc-message", "")};
    nv[0] = fields[0];
    nv[1] = fields[1];
    if (status < 0 || status > 16) status = SEQ_EINTERNAL;
    nv[0].value = (uint8_t *)status_str[status];
    nv[0].valuelen = strlen(status_str[status]);
    if (!msg || !*msg) return 1;
    nv[1].value = (uint8_t *)enc;
    nv[1].valuelen = seq_grpc_pct_encode(msg, enc, MSG_MAX * 3);
    nv[1].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME; /* nghttp2 copies the value */
    return 2;
}

static void respond_error(seq_grpc_call *c, int status, const char *msg)
{
    char enc[MSG_MAX * 3];
    nghttp2_nv nv[5] = {ok_headers[0], ok_headers[1]};
    size_t n = 2 + status_fields(nv + 2, status, msg, enc);
    n += served_by_nv(c, &nv[n]);
    call_report(c, status);
    nghttp2_submit_response(c->conn->sess, c->stream_id, nv, n, NULL);
}

/* Submits the call's one response. Only on the worker thread, with the stream alive. */
static void respond(seq_grpc_call *c, int status, const char *msg)
{
    if (c->responded || !c->conn) return;
    c->responded = 1;
    size_t max = c->w->srv->max_msg;
    if (status == SEQ_OK && c->reply.len > max) {
        char m[160];
        snprintf(m, sizeof m, "response message of %zu bytes exceeds the limit of %zu bytes",
                 c->reply.len, max);
        respond_error(c, SEQ_ERESOURCE, m);
        return;
    }
    if (status != SEQ_OK) {
        respond_error(c, status, msg);
        return;
    }
    c->prefix[0] = 0;
    seq_put_be32(c->prefix + 1, (uint32_t)c->reply.len);
    c->sent = c->copied = 0;
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = data_read_cb};
    call_report(c, SEQ_OK);
    nghttp2_submit_response(c->conn->sess, c->stream_id, ok_headers, 2, &prd);
}

static void respond_http(seq_grpc_call *c, const char *code)
{
    nghttp2_nv nv[1] = {NV(":status", "")};
    nv[0].value = (uint8_t *)code;
    nv[0].valuelen = strlen(code);
    c->responded = 1;
    call_report(c, SEQ_EINVAL);
    nghttp2_submit_response(c->conn->sess, c->stream_id, nv, 1, NULL);
}

/* ------------------------------------------------------------------ requests */

static int lookup_method(const seq_grpc_config *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->n_methods; i++)
        if (strcmp(cfg->methods[i].path, path) == 0) return (int)i;
    return -1;
}

/* End of request headers: refuse what cannot be a gRPC call of ours. */
static void request_headers_done(seq_grpc_call *c)
{
    if (!c->is_post) {
        respond_http(c, "405");
        return;
    }
    if (!c->ct_ok) {
        respond_http(c, "415");
        return;
    }
    const char *path = seq_grpc_call_header(c, ":path");
    c->method = path ? lookup_method(&c->w->srv->cfg, path) : -1;
    if (c->method < 0) {
        char m[300];
        snprintf(m, sizeof m, "unknown method %.256s", path ? path : "(none)");
        respond(c, SEQ_EUNIMPLEMENTED, m);
        return;
    }
    c->streaming = c->w->srv->cfg.methods[c->method].stream_fn != NULL;
}

static void request_end(seq_grpc_call *c)
{
    char err[200];
    if (c->responded || c->state != CALL_RECV) return;
    int rv = seq_frame_end(&c->frame, err, sizeof err);
    if (rv != SEQ_OK) {
        respond(c, rv, err);
        return;
    }
    if (c->frame.extra) {
        respond(c, SEQ_EINVAL, "more than one request message in a unary call");
        return;
    }
    if (c->deadline_ns && now_ns() >= c->deadline_ns) {
        respond(c, SEQ_EDEADLINE, "deadline exceeded before the call started");
        return;
    }
    const seq_grpc_method *m = &c->w->srv->cfg.methods[c->method];
    c->state = CALL_HANDLER;
    m->fn(m->ctx, c, c->frame.msg.data ? c->frame.msg.data : (const uint8_t *)"", c->frame.msg.len);
    if (c->state == CALL_HANDLER) {
        respond(c, SEQ_EINTERNAL, "handler returned without finishing the call");
        c->state = CALL_DONE;
    }
}

void seq_grpc_call_hold(seq_grpc_call *c)
{
    if (c->state != CALL_HANDLER) return;
    c->state = CALL_HELD;
    c->refs++;
    if (c->deadline_ns) {
        uint64_t now = now_ns();
        struct timeval tv = tv_of_ns(c->deadline_ns > now ? c->deadline_ns - now : 0);
        c->timer_on = evtimer_add(c->timer, &tv) == 0;
    }
}

static void worker_wake(worker *w, seq_grpc_call *c)
{
    pthread_mutex_lock(&w->mu);
    if (w->q_tail) w->q_tail->qnext = c;
    else w->q_head = c;
    w->q_tail = c;
    pthread_mutex_unlock(&w->mu);
    event_active(w->wake_ev, EV_READ, 0);
}

void seq_grpc_finish(seq_grpc_call *c, int status, const char *msg)
{
    if (c->state == CALL_HELD) {
        /* Any thread: hand the result to the worker, which owns the session. */
        c->fin_status = status;
        seq_str_copy(c->fin_msg, sizeof c->fin_msg, msg ? msg : "");
        c->qnext = NULL;
        worker_wake(c->w, c);
        return;
    }
    if (c->state != CALL_HANDLER) return;
    respond(c, status, msg);
    c->state = CALL_DONE;
}

/* ------------------------------------------------------------------ streaming calls */

/* A streaming call's data provider: the queued framed responses (send_data_cb copies
 * them), DEFERRED while the queue is empty and the call goes on; once the call is
 * ending and the queue is drained, EOF and the trailers with the end status. */
static ssize_t stream_read_cb(nghttp2_session *sess, int32_t sid, uint8_t *buf, size_t length,
                              uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)buf;
    (void)ud;
    seq_grpc_call *c = src->ptr;
    size_t avail = c->reply.len - c->sent, n = avail < length ? avail : length;
    if (n == 0 && !c->ending) {
        c->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    c->sent += n;
    if (n) *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (c->ending && c->sent == c->reply.len) {
        char enc[MSG_MAX * 3];
        nghttp2_nv nv[3];
        size_t k = status_fields(nv, c->end_status, c->fin_msg, enc);
        k += served_by_nv(c, &nv[k]);
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(sess, sid, nv, k) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
    }
    return (ssize_t)n;
}

/* New output or the end of the call: let the data provider run again. */
static int stream_kick(seq_grpc_call *c)
{
    if (!c->headers_sent) {
        nghttp2_data_provider prd = {.source.ptr = c, .read_callback = stream_read_cb};
        c->headers_sent = 1;
        return nghttp2_submit_response(c->conn->sess, c->stream_id, ok_headers, 2, &prd);
    }
    if (!c->deferred) return 0;
    c->deferred = 0;
    return nghttp2_session_resume_data(c->conn->sess, c->stream_id);
}

/* Decides how the call ends: after the queued responses, trailers with status (and
 * msg); an error before any response is a trailers-only response. */
static void stream_end(seq_grpc_call *c, int status, const char *msg)
{
    if (c->responded || !c->conn) return;
    if (!c->headers_sent && status != SEQ_OK) {
        respond(c, status, msg);
        return;
    }
    c->responded = 1;
    c->ending = 1;
    c->end_status = status;
    snprintf(c->fin_msg, sizeof c->fin_msg, "%s", status == SEQ_OK || !msg ? "" : msg);
    call_report(c, status);
    stream_kick(c);
}

int seq_grpc_stream_send(seq_grpc_call *c, const uint8_t *msg, size_t len)
{
    if (!c->streaming || c->responded || !c->conn) return SEQ_EINVAL;
    if (len > c->w->srv->max_msg || seq_buf_reserve(&c->reply, 5 + len) < 0) return SEQ_ERESOURCE;
    uint8_t *p = c->reply.data + c->reply.len;
    p[0] = 0;
    seq_put_be32(p + 1, (uint32_t)len);
    if (len) memcpy(p + 5, msg, len);
    c->reply.len += 5 + len;
    return stream_kick(c) == 0 ? SEQ_OK : SEQ_ERESOURCE;
}

static size_t stream_backlog(const seq_grpc_call *c) { return c->reply.len - c->copied; }

/* Decodes and handles the call's buffered request messages while its queue of
 * responses is below STREAM_OUT_HIGH; the bytes it decodes are handed back to the
 * stream's flow-control window (nghttp2_session_consume_stream), so a peer that does not
 * read its responses soon stops being able to send. Ends the call on a bad message, a
 * handler error, an expired deadline, or the client's half-close once all is handled. */
static void stream_pump(seq_grpc_call *c)
{
    conn *cn = c->conn;
    const seq_grpc_method *m = &c->w->srv->cfg.methods[c->method];
    char err[200];
    while (!c->responded && c->in_off < c->in.len) {
        if (stream_backlog(c) >= STREAM_OUT_HIGH) {
            if (!c->stalled) cn->nstalled++;
            c->stalled = 1;
            break;
        }
        size_t used;
        int rv = seq_frame_feed_upto(&c->frame, c->in.data + c->in_off, c->in.len - c->in_off,
                                     &used, err, sizeof err);
        c->in_off += used;
        nghttp2_session_consume_stream(cn->sess, c->stream_id, used);
        if (rv != SEQ_OK) {
            stream_end(c, rv, err);
            break;
        }
        if (!c->frame.complete) break;
        if (c->deadline_ns && now_ns() >= c->deadline_ns) {
            stream_end(c, SEQ_EDEADLINE, "deadline exceeded");
            break;
        }
        err[0] = 0;
        rv = m->stream_fn(m->ctx, c, c->frame.msg.data ? c->frame.msg.data : (const uint8_t *)"",
                          c->frame.msg.len, err, sizeof err);
        seq_frame_reset(&c->frame);
        if (rv != SEQ_OK) stream_end(c, rv, err);
    }
    if (c->in_off == c->in.len || c->responded) {
        /* all decoded (or the call is over: whatever is left is dropped) */
        if (c->responded && c->in_off < c->in.len)
            nghttp2_session_consume_stream(cn->sess, c->stream_id, c->in.len - c->in_off);
        c->in.len = c->in_off = 0;
    }
    if (c->half_closed && !c->responded && c->in_off == c->in.len) {
        if (c->frame.have_prefix > 0 && seq_frame_end(&c->frame, err, sizeof err) != SEQ_OK)
            stream_end(c, SEQ_EINTERNAL, err);
        else
            stream_end(c, SEQ_OK, NULL);
    }
}

/* A chunk of a streaming call's request body. The connection window gets it back at
 * once; the stream's only as the bytes are decoded (stream_pump). */
static void stream_data(seq_grpc_call *c, const uint8_t *data, size_t len)
{
    conn *cn = c->conn;
    nghttp2_session_consume_connection(cn->sess, len);
    if (c->responded) {
        nghttp2_session_consume_stream(cn->sess, c->stream_id, len);
        return;
    }
    if (c->in_off > 0 && c->in_off >= c->in.len / 2) { /* compact */
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (seq_buf_append(&c->in, data, len) < 0) {
        nghttp2_session_consume_stream(cn->sess, c->stream_id, len);
        stream_end(c, SEQ_ERESOURCE, "out of memory for the request stream");
        return;
    }
    if (!c->stalled) stream_pump(c);
}

/* Streaming calls whose queue drained below STREAM_OUT_HIGH go on decoding. Returns
 * whether any did. */
static int conn_pump_stalled(conn *cn)
{
    int any = 0;
    for (seq_grpc_call *c = cn->calls, *next; c && cn->nstalled; c = next) {
        next = c->next;
        if (!c->stalled || stream_backlog(c) >= STREAM_OUT_HIGH) continue;
        c->stalled = 0;
        cn->nstalled--;
        any = 1;
        stream_pump(c);
    }
    return any;
}

/* ------------------------------------------------------------------ nghttp2 callbacks */

/* The call of stream sid. A request's callbacks come in a row (HEADERS, its header
 * fields, DATA, END_STREAM, close), so the last call found is checked first: cheaper
 * than nghttp2's stream lookup. call_detach clears it. */
static seq_grpc_call *stream_call(conn *cn, int32_t sid)
{
    seq_grpc_call *c = cn->last_call;
    if (c && c->stream_id == sid) return c;
    c = nghttp2_session_get_stream_user_data(cn->sess, sid);
    if (c) cn->last_call = c;
    return c;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    conn *cn = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (cn->nstreams >= cn->w->srv->max_streams) {
        /* RFC 9113 5.1.2: refuse the excess stream (the client may retry it), keep the
         * connection; nghttp2 also resets it and skips its header block. */
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    seq_grpc_call *c = call_new(cn->w);
    if (!c) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    c->conn = cn;
    c->stream_id = f->hd.stream_id;
    c->refs = 1; /* the stream's reference, dropped in on_stream_close */
    cn->nstreams++;
    c->start_ns = cn->last_ns; /* when the bytes being parsed were read: no clock call */
    c->next = cn->calls;
    if (cn->calls) cn->calls->prev = c;
    cn->calls = c;
    cn->last_call = c;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, c);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)s;
    (void)flags;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    seq_grpc_call *c = stream_call(ud, f->hd.stream_id);
    if (!c) return 0;
    /* Over the limit: nghttp2 resets this stream and skips the rest of its header block;
     * the connection and its other streams go on. */
    c->hdr_list += (uint32_t)(nlen + vlen + 32);
    if (c->hdr_list > c->w->srv->max_header) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (nlen == 7 && memcmp(name, ":method", 7) == 0) {
        c->is_post = vlen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (nlen == 12 && memcmp(name, "content-type", 12) == 0) {
        c->ct_ok = vlen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                   (vlen == 16 || value[16] == '+' || value[16] == ';');
    } else if (nlen == 12 && memcmp(name, "grpc-timeout", 12) == 0) {
        uint64_t ns;
        /* A malformed timeout is ignored rather than failing the call. The deadline
         * counts from the call's start (the read that carried it): no clock read. */
        if (seq_grpc_parse_timeout((const char *)value, vlen, &ns) == 0)
            c->deadline_ns = ns > UINT64_MAX - c->start_ns ? UINT64_MAX : c->start_ns + ns;
    }
    store_header(c, name, nlen, value, vlen);
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    seq_grpc_call *c = stream_call(ud, f->hd.stream_id);
    if (!c) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        request_headers_done(c);
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    if (!c->streaming) {
        request_end(c);
    } else if (!c->half_closed) {
        c->half_closed = 1;
        if (!c->stalled) stream_pump(c);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    seq_grpc_call *c = stream_call(ud, sid);
    if (c && c->streaming) {
        stream_data(c, data, len);
        return 0;
    }
    /* Unary: the bytes are buffered or dropped right here, so the windows get them back
     * at once (the session does not update windows by itself: make_callbacks). */
    nghttp2_session_consume(s, sid, len);
    /* After an early answer the rest of the body is dropped unbuffered. */
    if (!c || c->responded || c->state != CALL_RECV) return 0;
    char err[200];
    int rv = seq_frame_feed(&c->frame, data, len, err, sizeof err);
    if (rv != SEQ_OK) respond(c, rv, err);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    (void)s;
    (void)code;
    seq_grpc_call *c = stream_call(ud, sid);
    if (c) call_detach(c);
    return 0;
}

static int make_callbacks(seq_grpc_server *srv)
{
    if (nghttp2_session_callbacks_new(&srv->cbs) != 0) return -1;
    nghttp2_session_callbacks *cb = srv->cbs;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
    if (nghttp2_option_new(&srv->opt) != 0) return -1;
    /* Refuse peers that announce a huge header table, so memory stays bounded. */
    nghttp2_option_set_max_deflate_dynamic_table_size(srv->opt, 4096);
    /* nghttp2 keeps closed streams (for RFC 7540 priorities) up to the local
     * MAX_CONCURRENT_STREAMS, which it believes unlimited (conn_send_settings): a
     * connection would keep every stream it ever had until it closes. */
    nghttp2_option_set_no_closed_streams(srv->opt, 1);
    /* Window updates are the transport's: a streaming call gives its stream's window
     * back only as it decodes (stream_pump), unary calls at once (on_data_chunk). */
    nghttp2_option_set_no_auto_window_update(srv->opt, 1);
    return 0;
}

/* ------------------------------------------------------------------ connections */

static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);

static void conn_close(conn *c)
{
    worker *w = c->w;
    while (c->calls) {
        seq_grpc_call *call = c->calls;
        nghttp2_session_set_stream_user_data(c->sess, call->stream_id, NULL);
        call_detach(call);
    }
    nghttp2_session_del(c->sess);
    event_free(c->rev);
    event_free(c->wev);
    close(c->fd);
    seq_buf_free(&c->out);
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->nconns--;
    atomic_fetch_sub(&w->load, 1);
    atomic_fetch_sub(&w->srv->nconns, 1);
    free(c);
    if (w->stopping && w->nconns == 0) event_base_loopbreak(w->base);
}

static size_t conn_pending(const conn *c) { return c->out.len - c->out_off; }

/* Moves nghttp2's output to the socket, as far as the socket and OUT_HIGH allow, and
 * sets read/write interest. Returns -1 when the connection was closed. */
static int conn_flush(conn *c)
{
    for (;;) {
        if (c->nstalled) conn_pump_stalled(c);
        while (conn_pending(c) < OUT_HIGH) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(c->sess, &d);
            if (n < 0 || seq_buf_append(&c->out, d, (size_t)n) < 0) goto fail;
            if (n == 0) break;
        }
        size_t pend = conn_pending(c);
        if (pend == 0) {
            /* the queues drained: stalled streaming calls may go on */
            if (c->nstalled && conn_pump_stalled(c)) continue;
            break;
        }
        ssize_t k = send(c->fd, c->out.data + c->out_off, pend, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            goto fail;
        }
        c->out_off += (size_t)k;
        if (c->out_off == c->out.len) c->out_off = c->out.len = 0;
        if ((size_t)k < pend) break; /* socket full */
    }
    if (c->out_off > 0 && c->out_off >= c->out.len / 2) { /* compact */
        memmove(c->out.data, c->out.data + c->out_off, conn_pending(c));
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    if (conn_pending(c) == 0 && c->out.cap > KEEP_BUF_MAX) seq_buf_free(&c->out);
    /* Interest is changed only when it changes: event_add and event_del take the base's
     * lock each time, even for an event already in the wanted state. */
    int want_write = conn_pending(c) > 0;
    if (want_write && !c->writing) c->writing = event_add(c->wev, NULL) == 0;
    if (!want_write && c->writing) {
        event_del(c->wev);
        c->writing = 0;
    }
    int want_pause = c->closing || conn_pending(c) >= OUT_HIGH;
    if (want_pause && !c->read_paused) event_del(c->rev);
    if (!want_pause && c->read_paused) event_add(c->rev, NULL);
    c->read_paused = want_pause;
    if (conn_pending(c) == 0 &&
        (c->closing || (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess))))
        goto fail;
    return 0;
fail:
    conn_close(c);
    return -1;
}

/* Feeds received bytes to the session. A fatal session error (bad preface, flood,
 * protocol error) queues a GOAWAY and marks the connection to close after it. */
static void conn_input(conn *c, const uint8_t *p, size_t n)
{
    c->last_ns = now_ns();
    if (c->closing) return;
    ssize_t rv = nghttp2_session_mem_recv(c->sess, p, n);
    if (rv < 0) {
        /* Queue a GOAWAY (when the session still can) and close once it is written. */
        nghttp2_session_terminate_session(c->sess, NGHTTP2_PROTOCOL_ERROR);
        c->closing = 1;
    }
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn *c = arg;
    ssize_t n = recv(fd, c->w->rbuf, READ_CHUNK, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    conn_input(c, c->w->rbuf, (size_t)n);
    conn_flush(c);
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    c->last_ns = now_ns();
    conn_flush(c);
}

/* The server's SETTINGS. MAX_CONCURRENT_STREAMS is advertised to the peer but enforced by
 * on_begin_headers (an excess stream gets RST_STREAM(REFUSED_STREAM), the connection goes
 * on, RFC 9113 5.1.2), not by nghttp2 1.52, which turns an excess stream into a connection
 * error once the setting is acknowledged. So nghttp2 is handed ENABLE_PUSH=0 in that
 * entry's place (meaningless from a server) and keeps its unlimited default, and the entry
 * is rewritten in the serialized frame, the first bytes the connection sends. */
static int conn_send_settings(conn *c)
{
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->w->srv->max_header},
    };
    const uint8_t *d;
    if (nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
        return -1;
    ssize_t n = nghttp2_session_mem_send(c->sess, &d);
    if (n < 9 + 6 || d[3] != NGHTTP2_SETTINGS || seq_buf_append(&c->out, d, (size_t)n) < 0)
        return -1;
    uint8_t *e = c->out.data + 9; /* first entry: be16 id, be32 value */
    if (e[0] != 0 || e[1] != NGHTTP2_SETTINGS_ENABLE_PUSH) return -1;
    e[1] = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
    seq_put_be32(e + 2, c->w->srv->max_streams);
    return 0;
}

static conn *conn_new(worker *w, int fd)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->w = w;
    c->fd = fd;
    c->last_ns = now_ns();
    if (nghttp2_session_server_new3(&c->sess, w->srv->cbs, c, w->srv->opt, seq_ngmem_get(w->mem)) != 0) {
        free(c);
        return NULL;
    }
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
    if (!c->rev || !c->wev ||
        conn_send_settings(c) != 0 ||
        nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, WINDOW) != 0 ||
        event_add(c->rev, NULL) != 0)
        goto fail;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    atomic_fetch_add(&w->load, 1);
    atomic_fetch_add(&w->srv->nconns, 1);
    return c;
fail:
    if (c->rev) event_free(c->rev);
    if (c->wev) event_free(c->wev);
    nghttp2_session_del(c->sess);
    seq_buf_free(&c->out);
    free(c);
    return NULL;
}

static void conn_mark_dirty(conn *c)
{
    if (c->dirty) return;
    c->dirty = 1;
    c->dnext = c->w->dirty;
    c->w->dirty = c;
}

static void worker_flush_dirty(worker *w)
{
    while (w->dirty) {
        conn *c = w->dirty;
        w->dirty = c->dnext;
        c->dirty = 0;
        conn_flush(c);
    }
}

static void conn_goaway(conn *c)
{
    nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->sess), NGHTTP2_NO_ERROR,
                          NULL, 0);
}

/* ------------------------------------------------------------------ worker events */

static void call_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    seq_grpc_call *c = arg;
    if (!c->conn || c->responded) return;
    respond(c, SEQ_EDEADLINE, "deadline exceeded");
    conn_flush(c->conn);
}

static void conn_open(worker *w, int fd);

/* Sockets other workers handed to this one (balance_accepted), and completions of held
 * calls, queued by seq_grpc_finish from any thread. */
static void worker_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    int in[HANDOFF_MAX];
    pthread_mutex_lock(&w->mu);
    seq_grpc_call *c = w->q_head;
    w->q_head = w->q_tail = NULL;
    int n_in = w->n_in;
    memcpy(in, w->in_fds, sizeof in[0] * (size_t)n_in);
    w->n_in = 0;
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < n_in; i++) {
        atomic_fetch_sub(&w->load, 1); /* the handover's reservation; conn_new counts it again */
        if (w->stopping) close(in[i]);
        else conn_open(w, in[i]);
    }
    while (c) {
        seq_grpc_call *next = c->qnext;
        call_timer_stop(c);
        if (c->conn && !c->responded) {
            respond(c, c->fin_status, c->fin_msg);
            conn_mark_dirty(c->conn);
        }
        c->state = CALL_DONE;
        call_unref(c); /* the hold's reference */
        c = next;
    }
    worker_flush_dirty(w);
}

/* Opens a connection on w for an accepted socket. Over the limit it is closed at once,
 * so a flood of sockets costs no session. */
static void conn_open(worker *w, int fd)
{
    conn *c = atomic_load(&w->srv->nconns) < w->srv->max_conns ? conn_new(w, fd) : NULL;
    if (!c) {
        close(fd);
        return;
    }
    conn_flush(c);
}

/* Hands fd to the worker with the fewest connections when that is not w, and says so.
 * The kernel spreads connections over the workers' SO_REUSEPORT listeners by a hash of
 * their addresses, which leaves a few long-lived connections unevenly spread (16 over
 * 2 workers: 10/6 or worse almost one time in two), and then one worker's calls queue
 * while the other has time: the read tail of bench/NOTES.md, "Session 10 — read tail".
 * The target is reserved (its load counted) before it is told, so that a burst of
 * accepts spreads too. */
static int balance_accepted(worker *w, int fd)
{
    seq_grpc_server *s = w->srv;
    worker *t = w;
    int least = atomic_load(&w->load);
    for (int i = 0; i < s->nworkers; i++) {
        int l = atomic_load(&s->workers[i].load);
        if (l < least) least = l, t = &s->workers[i];
    }
    if (t == w) return 0;
    int handed = 0;
    pthread_mutex_lock(&t->mu);
    if (!t->closed_in && t->n_in < HANDOFF_MAX) {
        t->in_fds[t->n_in++] = fd;
        atomic_fetch_add(&t->load, 1);
        handed = 1;
    }
    pthread_mutex_unlock(&t->mu);
    if (handed) event_active(t->wake_ev, EV_READ, 0);
    return handed;
}

static void worker_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    worker *w = arg;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!balance_accepted(w, fd)) conn_open(w, fd);
    }
}

/* A call held by the server (a long LoadBatch) is not idleness; a stream waiting for the
 * peer's request bytes is (a slowloris is closed all the same). */
static int conn_waits_on_us(const conn *c)
{
    for (const seq_grpc_call *call = c->calls; call; call = call->next)
        if (call->state == CALL_HELD) return 1;
    return 0;
}

static void worker_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    uint64_t now = now_ns();
    for (conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (now - c->last_ns < w->srv->idle_ns || conn_waits_on_us(c)) continue;
        if (c->closing) { /* its GOAWAY never drained: the peer does not read */
            conn_close(c);
            continue;
        }
        conn_goaway(c);
        c->closing = 1;
        c->last_ns = now;
        conn_flush(c); /* closes it once the GOAWAY is written */
    }
}

static void worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker *w = arg;
    w->stopping = 1;
    pthread_mutex_lock(&w->mu);
    w->closed_in = 1; /* the sockets already handed in are closed by worker_on_wake */
    pthread_mutex_unlock(&w->mu);
    if (w->accept_ev) event_del(w->accept_ev);
    if (w->lfd >= 0) close(w->lfd);
    w->lfd = -1;
    for (conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        conn_goaway(c);
        conn_flush(c);
    }
    if (w->nconns == 0) {
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = {STOP_GRACE_S, 0};
    event_base_loopexit(w->base, &tv);
}

static int worker_init(worker *w, seq_grpc_server *srv, int idx)
{
    w->srv = srv;
    w->idx = idx;
    snprintf(w->name, sizeof w->name, "seqd-grpc%d", idx % 100000);
    w->lfd = -1;
    pthread_mutex_init(&w->mu, NULL);
    if (!(w->mem = seq_ngmem_new())) return -1;
    w->base = event_base_new();
    if (!w->base) return -1;
    w->wake_ev = event_new(w->base, -1, EV_PERSIST, worker_on_wake, w);
    w->stop_ev = event_new(w->base, -1, 0, worker_on_stop, w);
    w->tick_ev = event_new(w->base, -1, EV_PERSIST, worker_on_tick, w);
    if (!w->wake_ev || !w->stop_ev || !w->tick_ev) return -1;
    /* The persistent user event must be added for event_active from other threads to
     * count it as pending work that keeps the loop alive. */
    if (event_add(w->wake_ev, NULL) != 0) return -1;
    uint64_t tick = srv->idle_ns / 4;
    if (tick > 1000000000u) tick = 1000000000u;
    if (tick < 10000000u) tick = 10000000u;
    struct timeval tv = tv_of_ns(tick);
    return event_add(w->tick_ev, &tv);
}

/* Frees everything the worker owns; its thread has ended (or never ran). */
static void worker_free(worker *w)
{
    while (w->conns) conn_close(w->conns);
    w->stopping = 1; /* sockets handed in after the loop ended are closed, not opened */
    worker_on_wake(-1, 0, w); /* completions that came after the loop ended */
    while (w->pool) {
        seq_grpc_call *c = w->pool;
        w->pool = c->next;
        call_destroy(c);
    }
    seq_ngmem_free(w->mem); /* after the sessions: conn_close deleted them */
    if (w->accept_ev) event_free(w->accept_ev);
    if (w->wake_ev) event_free(w->wake_ev);
    if (w->stop_ev) event_free(w->stop_ev);
    if (w->tick_ev) event_free(w->tick_ev);
    if (w->lfd >= 0) close(w->lfd);
    if (w->base) event_base_free(w->base);
    pthread_mutex_destroy(&w->mu);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    event_base_dispatch(w->base);
    /* Grace period over or all connections gone: whatever is left is cut. */
    while (w->conns) conn_close(w->conns);
    return NULL;
}

/* ------------------------------------------------------------------ listeners */

static int split_listen(const char *listen, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= hl || strlen(colon + 1) >= pl || !colon[1])
        return -1;
    const char *h = listen;
    size_t n = (size_t)(colon - listen);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    memcpy(host, h, n);
    host[n] = 0;
    strcpy(port, colon + 1);
    return 0;
}

static int bind_listener(const char *host, const char *port, int *port_out, char *err,
                         size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
    if (rc != 0) {
        seq_errf(err, errlen, "grpc listen %s:%s: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) goto fail;
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    return fd;
fail:
    seq_errf(err, errlen, "grpc listen %s:%s: %s", host, port, strerror(errno));
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    return -1;
}

/* ------------------------------------------------------------------ server */

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static void evthread_setup(void) { evthread_use_pthreads(); }

static int server_init(seq_grpc_server *s, const seq_grpc_config *cfg)
{
    s->cfg = *cfg;
    s->max_msg = cfg->max_message_bytes ? cfg->max_message_bytes : DEFAULT_MAX_MSG;
    s->idle_ns = (uint64_t)(cfg->idle_timeout_ms ? cfg->idle_timeout_ms : DEFAULT_IDLE_MS) *
                 1000000u;
    s->max_conns = cfg->max_connections ? cfg->max_connections : MAX_CONNS;
    s->max_streams = cfg->max_concurrent_streams ? cfg->max_concurrent_streams : MAX_STREAMS;
    s->max_header = cfg->max_header_bytes ? cfg->max_header_bytes : MAX_HEADER_LIST;
    return make_callbacks(s);
}

static void server_free_parts(seq_grpc_server *s)
{
    for (int i = 0; s->workers && i < s->nworkers; i++) worker_free(&s->workers[i]);
    free(s->workers);
    if (s->cbs) nghttp2_session_callbacks_del(s->cbs);
    if (s->opt) nghttp2_option_del(s->opt);
}

static int server_listen(seq_grpc_server *s, char *err, size_t errlen)
{
    char host[100], port[16];
    if (!s->cfg.listen || split_listen(s->cfg.listen, host, sizeof host, port, sizeof port) < 0) {
        seq_errf(err, errlen, "grpc listen address %s: want HOST:PORT",
                 s->cfg.listen ? s->cfg.listen : "(null)");
        return -1;
    }
    int bound = 0;
    for (int i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        w->lfd = bind_listener(host, port, &bound, err, errlen);
        if (w->lfd < 0) return -1;
        snprintf(port, sizeof port, "%d", bound); /* port 0: the others take the same */
        w->accept_ev = event_new(w->base, w->lfd, EV_READ | EV_PERSIST, worker_on_accept, w);
        if (!w->accept_ev || event_add(w->accept_ev, NULL) != 0) {
            seq_errf(err, errlen, "grpc: cannot watch the listener");
            return -1;
        }
    }
    int v6 = strchr(host, ':') != NULL;
    snprintf(s->addr, sizeof s->addr, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", bound);
    return 0;
}

int seq_grpc_start(const seq_grpc_config *cfg, seq_grpc_server **out, char *err, size_t errlen)
{
    pthread_once(&evthread_once, evthread_setup);
    seq_grpc_server *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->nworkers = cfg->threads > 0 ? cfg->threads : 1;
    s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
    if (!s->workers || server_init(s, cfg) != 0) goto oom;
    for (int i = 0; i < s->nworkers; i++)
        if (worker_init(&s->workers[i], s, i) != 0) goto oom;
    if (server_listen(s, err, errlen) != 0) goto fail;
    for (int i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->workers[i].th, NULL, worker_main, &s->workers[i]) != 0) {
            seq_errf(err, errlen, "grpc: cannot start worker thread");
            goto fail;
        }
        s->workers[i].started = 1;
        /* shown by top -H, perf, /proc/PID/task/N/comm and /metrics */
        pthread_setname_np(s->workers[i].th, s->workers[i].name);
    }
    *out = s;
    return SEQ_OK;
oom:
    seq_errf(err, errlen, "grpc: out of memory");
fail:
    if (s) {
        seq_grpc_stop(s);
        seq_grpc_free(s);
    }
    return SEQ_EINTERNAL;
}

int seq_grpc_worker_load(const seq_grpc_server *s, size_t i, const char **name, int *conns)
{
    if (i >= (size_t)s->nworkers) return 0;
    *name = s->workers[i].name;
    *conns = atomic_load(&s->workers[i].load);
    return 1;
}

const char *seq_grpc_address(const seq_grpc_server *s) { return s->addr; }

void seq_grpc_stop(seq_grpc_server *s)
{
    if (atomic_exchange(&s->stopped, 1)) return;
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].started) event_active(s->workers[i].stop_ev, EV_READ, 0);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].started) pthread_join(s->workers[i].th, NULL);
}

void seq_grpc_free(seq_grpc_server *s)
{
    if (!s) return;
    seq_grpc_stop(s);
    server_free_parts(s);
    free(s);
}

/* ------------------------------------------------------------------ fuzzing */

static void drain_fd(int fd)
{
    char buf[65536];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

void seq_grpc_fuzz_session(const seq_grpc_config *cfg, const uint8_t *data, size_t len,
                           size_t chunk)
{
    pthread_once(&evthread_once, evthread_setup);
    seq_grpc_server s;
    memset(&s, 0, sizeof s);
    worker *w = calloc(1, sizeof *w);
    int sv[2] = {-1, -1};
    if (!w || server_init(&s, cfg) != 0 || worker_init(w, &s, 0) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        goto done;
    conn *c = conn_new(w, sv[0]);
    if (!c) goto done;
    sv[0] = -1; /* the connection owns it now */
    if (chunk == 0) chunk = len ? len : 1;
    for (size_t off = 0; off < len && w->nconns > 0; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        conn_input(c, data + off, n);
        if (conn_flush(c) < 0) break;
        drain_fd(sv[1]);
        event_base_loop(w->base, EVLOOP_NONBLOCK); /* held-call completions */
        drain_fd(sv[1]);
    }
done:
    if (w) {
        worker_free(w);
        free(w);
    }
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (s.cbs) nghttp2_session_callbacks_del(s.cbs);
    if (s.opt) nghttp2_option_del(s.opt);
}
