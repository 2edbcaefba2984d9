/* gRPC transport (server/grpc.c) end to end: a 2-worker server on 127.0.0.1:0 with a
 * few test methods, driven by a real gRPC client (grpcio) and raw HTTP/2 (python h2) in
 * tests/unit/grpc_transport_client.py, plus the transport's pure helpers.
 * `test_grpc_transport --serve` serves the echo method until SIGINT/SIGTERM (for h2load). */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "server/grpc.h"
#include "server/grpc_internal.h"
#include "tests/unit/testlib.h"

#define LIMIT 65536

enum { M_ECHO, M_FAIL, M_FAILUTF, M_BIG, M_AUTH, M_SLOW, M_STREAM, N_METHODS };
static atomic_int done_count[N_METHODS + 1][17]; /* [method + 1][status] */
static atomic_int slow_outstanding;

static void on_done(void *ctx, int method, int status, uint64_t ns)
{
    (void)ctx;
    (void)ns;
    if (method >= -1 && method < N_METHODS && status >= 0 && status <= 16)
        atomic_fetch_add(&done_count[method + 1][status], 1);
}

static void h_echo(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    seq_buf_append(seq_grpc_call_reply(c), m, n);
    seq_grpc_finish(c, SEQ_OK, NULL);
}

static void h_fail(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)m;
    (void)n;
    seq_grpc_finish(c, ctx ? SEQ_ENOTFOUND : SEQ_EINVAL, ctx ? ctx : "bad thing");
}

static void h_big(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    (void)m;
    (void)n;
    seq_buf *r = seq_grpc_call_reply(c);
    seq_buf_reserve(r, LIMIT + 1);
    memset(r->data, 'b', LIMIT + 1);
    r->len = LIMIT + 1;
    seq_grpc_finish(c, SEQ_OK, NULL);
}

static void h_auth(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    (void)m;
    (void)n;
    const char *a = seq_grpc_call_header(c, "authorization");
    if (a) seq_buf_append(seq_grpc_call_reply(c), a, strlen(a));
    seq_grpc_finish(c, a ? SEQ_OK : SEQ_EUNAUTHENTICATED, "no authorization");
}

typedef struct {
    seq_grpc_call *call;
    size_t n;
    uint8_t msg[];
} slow_job;

static void *slow_thread(void *arg)
{
    slow_job *j = arg;
    long ms = 50; /* or what a "sleep:MS" message asks */
    if (j->n > 6 && j->n < 16 && memcmp(j->msg, "sleep:", 6) == 0) {
        char num[16];
        memcpy(num, j->msg + 6, j->n - 6);
        num[j->n - 6] = 0;
        ms = atol(num);
    }
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000};
    nanosleep(&ts, NULL);
    seq_buf_append(seq_grpc_call_reply(j->call), j->msg, j->n);
    seq_grpc_finish(j->call, SEQ_OK, NULL);
    free(j);
    atomic_fetch_sub(&slow_outstanding, 1);
    return NULL;
}

/* Holds the call and finishes it 50 ms later (or as the message says) from its own thread. */
static void h_slow(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    slow_job *j = malloc(sizeof *j + n);
    pthread_t th;
    if (!j) {
        seq_grpc_finish(c, SEQ_EINTERNAL, "oom");
        return;
    }
    j->call = c;
    j->n = n;
    memcpy(j->msg, m, n);
    seq_grpc_call_hold(c);
    atomic_fetch_add(&slow_outstanding, 1);
    if (pthread_create(&th, NULL, slow_thread, j) != 0) {
        atomic_fetch_sub(&slow_outstanding, 1);
        free(j);
        seq_grpc_finish(c, SEQ_EINTERNAL, "no thread");
        return;
    }
    pthread_detach(th);
}

/* Bidirectional: each request echoed back ("twice:..." twice); "fail" ends the call
 * with INVALID_ARGUMENT after the responses so far. */
static int h_stream(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n, char *err,
                    size_t errlen)
{
    (void)ctx;
    if (n == 4 && memcmp(m, "fail", 4) == 0) {
        seq_errf(err, errlen, "bad stream message");
        return SEQ_EINVAL;
    }
    int times = n >= 6 && memcmp(m, "twice:", 6) == 0 ? 2 : 1;
    for (int i = 0; i < times; i++) {
        int rc = seq_grpc_stream_send(c, m, n);
        if (rc != SEQ_OK) return rc;
    }
    return SEQ_OK;
}

static const seq_grpc_method methods[N_METHODS] = {
    [M_ECHO] = {"/test.Echo/Echo", h_echo, NULL, NULL},
    [M_FAIL] = {"/test.Echo/Fail", h_fail, NULL, NULL},
    [M_FAILUTF] = {"/test.Echo/FailUtf", h_fail, "100% \xc3\xbcnicode\nline", NULL},
    [M_BIG] = {"/test.Echo/Big", h_big, NULL, NULL},
    [M_AUTH] = {"/test.Echo/Auth", h_auth, NULL, NULL},
    [M_SLOW] = {"/test.Echo/Slow", h_slow, NULL, NULL},
    [M_STREAM] = {.path = "/test.Echo/Stream", .stream_fn = h_stream},
};

static seq_grpc_server *start(const char *listen, int threads)
{
    seq_grpc_config cfg = {.listen = listen, .threads = threads, .max_message_bytes = LIMIT,
                           .methods = methods, .n_methods = N_METHODS, .on_done = on_done};
    seq_grpc_server *s = NULL;
    char err[256] = "";
    int rv = seq_grpc_start(&cfg, &s, err, sizeof err);
    if (rv != SEQ_OK) fprintf(stderr, "start: %s\n", err);
    return s;
}

static void test_helpers(void)
{
    uint64_t ns = 0;
    CHECK_EQ_INT(seq_grpc_parse_timeout("20m", 3, &ns), 0);
    CHECK(ns == 20000000ull);
    CHECK_EQ_INT(seq_grpc_parse_timeout("1H", 2, &ns), 0);
    CHECK(ns == 3600000000000ull);
    CHECK_EQ_INT(seq_grpc_parse_timeout("12345678n", 9, &ns), 0);
    CHECK(ns == 12345678ull);
    CHECK_EQ_INT(seq_grpc_parse_timeout("99999999H", 9, &ns), 0);
    CHECK(ns > 3600000000000ull); /* saturated, not wrapped */
    CHECK_EQ_INT(seq_grpc_parse_timeout("123456789S", 10, &ns), -1);
    CHECK_EQ_INT(seq_grpc_parse_timeout("S", 1, &ns), -1);
    CHECK_EQ_INT(seq_grpc_parse_timeout("1x", 2, &ns), -1);
    CHECK_EQ_INT(seq_grpc_parse_timeout("-1S", 3, &ns), -1);

    char out[32];
    seq_grpc_pct_encode("a%b\n\xc3\xbc", out, sizeof out);
    CHECK(strcmp(out, "a%25b%0A%C3%BC") == 0);
    seq_grpc_pct_encode("ab%", out, 5); /* never a partial %XX */
    CHECK(strcmp(out, "ab") == 0);
}

static void test_bad_listen(void)
{
    seq_grpc_config cfg = {.listen = "nonsense", .threads = 1, .methods = methods,
                           .n_methods = N_METHODS};
    seq_grpc_server *s = NULL;
    char err[256] = "";
    CHECK(seq_grpc_start(&cfg, &s, err, sizeof err) != SEQ_OK);
    CHECK(strstr(err, "nonsense") != NULL);
}

static void script_path(char *out, size_t n)
{
    const char *src = getenv("SEQD_SOURCE");
    if (src) {
        snprintf(out, n, "%s/tests/unit/grpc_transport_client.py", src);
        return;
    }
    snprintf(out, n, "%s", __FILE__);
    char *slash = strrchr(out, '/');
    snprintf(slash ? slash + 1 : out, n - (size_t)(slash ? slash + 1 - out : 0),
             "grpc_transport_client.py");
}

static FILE *run_client(seq_grpc_server *s, const char *mode)
{
    char script[1024], cmd[1400];
    script_path(script, sizeof script);
    const char *port = strrchr(seq_grpc_address(s), ':') + 1;
    snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/python3 %s %s %d %s 2>&1", script, port,
             LIMIT, mode);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    return p;
}

/* Asserts the client's exit code and its final "ALL OK". */
static void check_client(FILE *p)
{
    char out[16384] = "";
    if (!p) return;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    fprintf(stderr, "%s", out);
    CHECK_EQ_INT(rc, 0);
    CHECK(strstr(out, "ALL OK") != NULL);
}

static void test_against_grpcio(void)
{
    memset(done_count, 0, sizeof done_count);
    seq_grpc_server *s = start("127.0.0.1:0", 2);
    CHECK(s != NULL);
    if (!s) return;
    const char *addr = seq_grpc_address(s);
    CHECK(strncmp(addr, "127.0.0.1:", 10) == 0 && atoi(strrchr(addr, ':') + 1) > 0);
    check_client(run_client(s, "all"));
    while (atomic_load(&slow_outstanding) > 0) usleep(10000);
    seq_grpc_stop(s);
    seq_grpc_free(s);

    /* What the server itself reported through on_done. */
    CHECK(done_count[M_ECHO + 1][SEQ_OK] >= 150);
    CHECK(done_count[M_FAIL + 1][SEQ_EINVAL] >= 1);
    CHECK(done_count[0][SEQ_EUNIMPLEMENTED] >= 1);
    CHECK(done_count[M_SLOW + 1][SEQ_EDEADLINE] >= 1);
    CHECK(done_count[M_BIG + 1][SEQ_ERESOURCE] >= 1);
    CHECK(done_count[M_ECHO + 1][SEQ_ERESOURCE] >= 1);
    CHECK(done_count[M_ECHO + 1][SEQ_EINTERNAL] >= 1);
    CHECK(done_count[M_STREAM + 1][SEQ_OK] >= 4);
    CHECK(done_count[M_STREAM + 1][SEQ_EINVAL] >= 2);
}

/* seq_grpc_stop while a call is held: the call still completes, then the port closes. */
static void test_graceful_stop(void)
{
    seq_grpc_server *s = start("127.0.0.1:0", 2);
    CHECK(s != NULL);
    if (!s) return;
    FILE *p = run_client(s, "stop");
    /* Wait until the call is held (bounded only so a broken client cannot hang us). */
    for (int i = 0; i < 30000 && atomic_load(&slow_outstanding) == 0; i++) usleep(1000);
    CHECK(atomic_load(&slow_outstanding) > 0);
    seq_grpc_stop(s);
    check_client(p);
    while (atomic_load(&slow_outstanding) > 0) usleep(1000);
    seq_grpc_free(s);
}

/* An idle HTTP/2 connection gets a GOAWAY and is closed by the server. */
static void test_idle_timeout(void)
{
    seq_grpc_config cfg = {.listen = "127.0.0.1:0", .threads = 1, .methods = methods,
                           .n_methods = N_METHODS, .idle_timeout_ms = 100};
    seq_grpc_server *s = NULL;
    char err[256] = "";
    CHECK_EQ_INT(seq_grpc_start(&cfg, &s, err, sizeof err), SEQ_OK);
    if (!s) return;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(strrchr(seq_grpc_address(s), ':') + 1))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {20, 0}; /* a safety net only: a bug shows as a failed recv */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    CHECK(send(fd, preface, sizeof preface - 1, 0) == (ssize_t)(sizeof preface - 1));
    uint8_t in[4096];
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, in + got, sizeof in - got, 0)) > 0) got += (size_t)n;
    CHECK_EQ_INT(n, 0); /* orderly close, not a timeout */
    int goaway = 0;
    for (size_t off = 0; off + 9 <= got; off += 9 + ((size_t)in[off] << 16 | in[off + 1] << 8 | in[off + 2]))
        if (in[off + 3] == 7) goaway = 1;
    CHECK(goaway);
    close(fd);
    seq_grpc_free(s);
}

/* A call held longer than the idle timeout is not idleness: its connection stays. */
static void test_idle_spares_held_calls(void)
{
    seq_grpc_config cfg = {.listen = "127.0.0.1:0", .threads = 1, .max_message_bytes = LIMIT,
                           .methods = methods, .n_methods = N_METHODS, .idle_timeout_ms = 100};
    seq_grpc_server *s = NULL;
    char err[256] = "";
    CHECK_EQ_INT(seq_grpc_start(&cfg, &s, err, sizeof err), SEQ_OK);
    if (!s) return;
    check_client(run_client(s, "held"));
    while (atomic_load(&slow_outstanding) > 0) usleep(1000);
    seq_grpc_free(s);
}

/* ---- nghttp2's memory comes from the worker's size-class free lists (grpc.c): header
 * values of every class size, whole and cut into small reads (so nghttp2 grows its
 * buffers with realloc), must reach the handler intact. */

static atomic_int big_hdr_ok, big_hdr_bad;

/* The message is the length of the x-big header; its bytes are 'a' + i % 26. */
static void h_bighdr(void *ctx, seq_grpc_call *c, const uint8_t *m, size_t n)
{
    (void)ctx;
    char num[16] = "";
    memcpy(num, m, n < sizeof num - 1 ? n : sizeof num - 1);
    size_t want = (size_t)atol(num), i = 0;
    const char *v = seq_grpc_call_header(c, "x-big");
    if (v)
        for (; i < want && v[i] == (char)('a' + i % 26); i++) {
        }
    atomic_fetch_add(v && i == want && v[want] == 0 ? &big_hdr_ok : &big_hdr_bad, 1);
    seq_grpc_finish(c, SEQ_OK, NULL);
}

static size_t hpack_int(uint8_t *p, uint8_t first, unsigned prefix_bits, size_t v)
{
    size_t max = (1u << prefix_bits) - 1, o = 0;
    if (v < max) {
        p[o++] = (uint8_t)(first | v);
        return o;
    }
    p[o++] = (uint8_t)(first | max);
    for (v -= max; v >= 128; v >>= 7) p[o++] = (uint8_t)(0x80 | (v & 127));
    p[o++] = (uint8_t)v;
    return o;
}

/* A literal header with incremental indexing and a new name (no Huffman). */
static size_t hpack_lit(uint8_t *p, const char *name, const char *val, size_t vlen)
{
    size_t o = 0, nlen = strlen(name);
    p[o++] = 0x40;
    o += hpack_int(p + o, 0, 7, nlen);
    memcpy(p + o, name, nlen);
    o += nlen;
    o += hpack_int(p + o, 0, 7, vlen);
    memcpy(p + o, val, vlen);
    return o + vlen;
}

static size_t h2_frame(uint8_t *p, uint8_t type, uint8_t flags, uint32_t sid, size_t len)
{
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = flags;
    seq_put_be32(p + 5, sid);
    return 9 + len;
}

/* The HPACK block of a gRPC request's headers for path (POST, http, authority x). */
static size_t grpc_headers(uint8_t *h, const char *path)
{
    static const char ct[] = "application/grpc";
    size_t o = 0;
    h[o++] = 0x83; /* :method POST */
    h[o++] = 0x86; /* :scheme http */
    o += hpack_lit(h + o, ":path", path, strlen(path));
    o += hpack_lit(h + o, ":authority", "x", 1);
    o += hpack_lit(h + o, "content-type", ct, sizeof ct - 1);
    return o;
}

/* One request on stream sid carrying an x-big header of vlen bytes. */
static size_t bighdr_request(uint8_t *p, uint32_t sid, size_t vlen)
{
    char val[4096], num[16];
    for (size_t i = 0; i < vlen; i++) val[i] = (char)('a' + i % 26);
    uint8_t *h = p + 9;
    size_t o = grpc_headers(h, "/test.Echo/BigHdr");
    o += hpack_lit(h + o, "x-big", val, vlen);
    size_t n = h2_frame(p, 1 /* HEADERS */, 4 /* END_HEADERS */, sid, o);
    int len = snprintf(num, sizeof num, "%zu", vlen);
    uint8_t *d = p + n + 9;
    d[0] = 0;
    seq_put_be32(d + 1, (uint32_t)len);
    memcpy(d + 5, num, (size_t)len);
    return n + h2_frame(p + n, 0 /* DATA */, 1 /* END_STREAM */, sid, 5 + (size_t)len);
}

static void test_session_memory(void)
{
    static const seq_grpc_method m[] = {{"/test.Echo/BigHdr", h_bighdr, NULL, NULL}};
    static const size_t sizes[] = {1, 20, 100, 300, 700, 1500, 3000, 3900, 17, 2000};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    uint8_t *buf = malloc(NS * 4600 + 64);
    CHECK(buf != NULL);
    if (!buf) return;
    size_t n = sizeof preface - 1;
    memcpy(buf, preface, n);
    n += h2_frame(buf + n, 4 /* SETTINGS */, 0, 0, 0);
    for (unsigned i = 0; i < NS; i++) n += bighdr_request(buf + n, 1 + 2 * i, sizes[i]);
    seq_grpc_config cfg = {.threads = 1, .max_message_bytes = LIMIT, .methods = m,
                           .n_methods = 1};
    static const size_t chunks[] = {0, 7, 1000};
    for (unsigned k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        atomic_store(&big_hdr_ok, 0);
        atomic_store(&big_hdr_bad, 0);
        seq_grpc_fuzz_session(&cfg, buf, n, chunks[k]);
        CHECK_EQ_INT(atomic_load(&big_hdr_ok), NS);
        CHECK_EQ_INT(atomic_load(&big_hdr_bad), 0);
    }
    free(buf);
}

/* ---- one long-lived connection must not keep its closed streams: nghttp2 would retain
 * every one (~240 bytes) until the connection closes. The server runs in this process,
 * so the heap in use (mallinfo2, all arenas) tells. */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads frames until `want` HEADERS frames with END_STREAM (the trailers) have come. */
static int read_trailers(int fd, int want)
{
    static uint8_t buf[1 << 16];
    size_t have = 0;
    while (want > 0) {
        ssize_t k = recv(fd, buf + have, sizeof buf - have, 0);
        if (k <= 0) return -1;
        have += (size_t)k;
        size_t off = 0;
        while (have - off >= 9) {
            size_t len = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
            if (len + 9 > sizeof buf) return -1;
            if (have - off < 9 + len) break;
            if (buf[off + 3] == 1 && (buf[off + 4] & 1)) want--;
            off += 9 + len;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    return 0;
}

/* Sends `n` echo calls on streams *sid, *sid + 2, ... in one write, waits for them. */
static int echo_batch(int fd, uint32_t *sid, int n)
{
    uint8_t buf[200 * 128];
    size_t o = 0;
    for (int i = 0; i < n; i++, *sid += 2) {
        size_t hl = grpc_headers(buf + o + 9, "/test.Echo/Echo");
        o += h2_frame(buf + o, 1 /* HEADERS */, 4 /* END_HEADERS */, *sid, hl);
        uint8_t *d = buf + o + 9;
        memcpy(d, "\0\0\0\0\2hi", 7);
        o += h2_frame(buf + o, 0 /* DATA */, 1 /* END_STREAM */, *sid, 7);
    }
    return write_all(fd, buf, o) == 0 ? read_trailers(fd, n) : -1;
}

static void test_long_connection_memory(void)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    seq_grpc_server *s = start("127.0.0.1:0", 1);
    CHECK(s != NULL);
    if (!s) return;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(
                                 strrchr(seq_grpc_address(s), ':') + 1))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    uint8_t hello[64];
    size_t o = sizeof preface - 1;
    memcpy(hello, preface, o);
    o += h2_frame(hello + o, 4 /* SETTINGS */, 0, 0, 0);
    size_t w = h2_frame(hello + o, 8 /* WINDOW_UPDATE */, 0, 0, 4); /* replies never wait */
    seq_put_be32(hello + o + 9, 0x7fffffffu - 65535u);
    o += w;
    CHECK(write_all(fd, hello, o) == 0);
    uint32_t sid = 1;
    int ok = 1;
    for (int i = 0; i < 20 && ok; i++) ok = echo_batch(fd, &sid, 100) == 0; /* warm */
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < 200 && ok; i++) ok = echo_batch(fd, &sid, 100) == 0;
    size_t after = mallinfo2().uordblks;
    CHECK(ok);
    /* 20000 retained streams would be ~5 MB. */
    fprintf(stderr, "heap in use grew by %zd bytes over 20000 calls\n",
            (ssize_t)(after - before));
    CHECK(after < before + (1u << 20));
    close(fd);
    seq_grpc_free(s);
}

static int serve(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    const char *listen = getenv("GRPC_LISTEN");
    const char *thr = getenv("GRPC_THREADS");
    seq_grpc_server *s = start(listen ? listen : "127.0.0.1:0", thr ? atoi(thr) : 1);
    if (!s) return 1;
    printf("serving %s\n", seq_grpc_address(s));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    seq_grpc_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "--serve") == 0) return serve();
    RUN(test_helpers);
    RUN(test_bad_listen);
    RUN(test_session_memory);
    RUN(test_long_connection_memory);
    RUN(test_against_grpcio);
    RUN(test_graceful_stop);
    RUN(test_idle_timeout);
    RUN(test_idle_spares_held_calls);
    return seq_t_done();
}
