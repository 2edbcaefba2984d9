/* Admin HTTP server (see admin.h): evhttp on a dedicated thread so that scrapes and
 * probes never share an event loop with gRPC workers. /status is built with jansson from
 * the config, the consumer's partition snapshot, the store's committed view and counts. */
#include "admin.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cluster.h"
#include "loads.h"

#define MAX_PARTS 1024

struct seq_admin {
    seq_admin_ctx ctx;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev; /* activated from the stopping thread */
    struct event *sample_ev; /* the console's sampler */
    pthread_t thread;
    int thread_started;
    char address[300];
    _Atomic(seq_cluster *) cluster;
    _Atomic(seq_loads *) loads; /* cluster-wide loads: /status lists what they need */
};

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  const void *body, size_t len);
static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text);

void seq_admin_set_cluster(seq_admin *a, seq_cluster *c) { atomic_store(&a->cluster, c); }

void seq_admin_set_loads(seq_admin *a, seq_loads *l) { atomic_store(&a->loads, l); }

/* GET /cluster: the cluster map as JSON (server/cluster.h). */
static void on_cluster(seq_admin *a, struct evhttp_request *req)
{
    seq_cluster *c = atomic_load(&a->cluster);
    char *text = c ? seq_cluster_json(c) : NULL;
    if (text) reply(req, 200, "OK", "application/json", text, strlen(text));
    else reply_text(req, 503, "Service Unavailable", c ? "cannot build the map\n" : "the cluster map is not running yet\n");
    free(text);
}

int seq_admin_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return SEQ_EINVAL;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (*h == '[' && hl >= 2 && h[hl - 1] == ']') { /* [v6]:port */
        h++;
        hl -= 2;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (hl == 0 || hl >= hostlen || colon[1] == '\0' || *end || p < 0 || p > 65535)
        return SEQ_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return SEQ_OK;
}

/* ---- responses ---- */

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  const void *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    reply(req, code, reason, "text/plain; charset=utf-8", text, strlen(text));
}

static void on_metrics(seq_admin *a, struct evhttp_request *req)
{
    seq_buf out = {0};
    if (seq_metrics_render(a->ctx.metrics, &out)) reply_text(req, 500, "Internal Server Error", "out of memory\n");
    else reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    seq_buf_free(&out);
}

/* Ready: storage open (it is, for the server's whole life), the brokers reachable, stream
 * writes succeeding and the stream caught up (seq_consumer_ready says which is missing). */
static void on_readyz(seq_admin *a, struct evhttp_request *req)
{
    char why[400], text[440];
    if (seq_consumer_ready(a->ctx.consumer, why, sizeof why)) {
        reply_text(req, 200, "OK", "ready\n");
        return;
    }
    snprintf(text, sizeof text, "not ready: %s\n", why);
    reply_text(req, 503, "Service Unavailable", text);
}

/* ---- /status ---- */

static json_t *status_stream(seq_admin *a)
{
    seq_consumer_stats *st = seq_consumer_get_stats(a->ctx.consumer);
    static _Thread_local seq_consumer_part parts[MAX_PARTS];
    uint32_t n = seq_consumer_partitions(a->ctx.consumer, parts, MAX_PARTS);
    json_t *arr = json_array();
    for (uint32_t i = 0; i < n && i < MAX_PARTS; i++)
        json_array_append_new(arr, json_pack("{s:i,s:I,s:I,s:I,s:I,s:b,s:b,s:I,s:I}", "partition", (int)parts[i].partition,
                                             "next_offset", (json_int_t)parts[i].next_offset,
                                             "high_offset", (json_int_t)parts[i].high_offset,
                                             "watermark_ms", (json_int_t)parts[i].watermark_ms,
                                             "progress_ms", (json_int_t)parts[i].progress_ms,
                                             "held", parts[i].held, "caught_up", parts[i].caught_up,
                                             "log_from_ms", (json_int_t)parts[i].log_from_ms,
                                             "gap_from_ms", (json_int_t)parts[i].gap_from_ms));
    /* caught_up is /readyz's answer (one truth): offsets at the end say nothing while the
     * brokers are unreachable or store writes fail; not_ready says why. */
    char why[400] = "";
    int ready = seq_consumer_ready(a->ctx.consumer, why, sizeof why);
    return json_pack("{s:I,s:b,s:s,s:I,s:o}", "watermark_ms",
                     (json_int_t)atomic_load_explicit(a->ctx.stream_watermark, memory_order_relaxed),
                     "caught_up", ready, "not_ready", ready ? "" : why,
                     "lag", (json_int_t)atomic_load_explicit(&st->lag, memory_order_relaxed),
                     "partitions", arr);
}

static json_t *status_sequences(seq_admin *a)
{
    const seq_def *def = a->ctx.def;
    json_t *arr = json_array();
    const seq_store_view *v = seq_store_view_acquire(a->ctx.store);
    for (uint32_t i = 0; i < def->n_seqs; i++) {
        const seq_store_seqstate *s = seq_store_view_seq(v, def->seqs[i].id);
        json_t *cov = json_array();
        for (uint32_t c = 0; s && c < s->n_cov; c++)
            json_array_append_new(cov, json_pack("{s:I,s:I,s:I}", "start_ms", (json_int_t)s->cov[c].start_ms,
                                                 "end_ms", (json_int_t)s->cov[c].end_ms,
                                                 "generation", (json_int_t)s->cov[c].gen));
        json_array_append_new(arr, json_pack("{s:s,s:I,s:I,s:o,s:o}", "name", def->seqs[i].name,
                                             "batch_generation", (json_int_t)(s ? s->generation : 0),
                                             "batch_watermark_ms", (json_int_t)(s ? s->watermark_ms : 0),
                                             "coverage", cov, "loads", seq_console_loads_json(s)));
    }
    seq_store_view_release(a->ctx.store, v);
    return arr;
}

static json_t *status_counts(seq_admin *a)
{
    seq_consumer_stats *st = seq_consumer_get_stats(a->ctx.consumer);
    seq_misroute_stats *ms = seq_consumer_misroute_stats(a->ctx.consumer);
#define LD(s, f) (json_int_t) atomic_load_explicit(&(s)->f, memory_order_relaxed)
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "events_applied", LD(st, applied),
                     "malformed", LD(st, malformed), "future", LD(st, future),
                     "skipped_unknown_type", LD(st, skipped_unknown_type), "filtered",
                     LD(st, filtered), "late_batch_owned", LD(st, late_batch_owned),
                     "misrouted", LD(ms, misrouted), "misrouted_copies", LD(ms, reproduced),
                     "misrouted_duplicates", LD(ms, duplicates));
#undef LD
}

static void corrupt_entry(void *ctx, uint64_t id, const char *what, const char *reason,
                          size_t bytes)
{
    json_array_append_new(ctx, json_pack("{s:I,s:s,s:s,s:I}", "id", (json_int_t)id, "what", what,
                                         "reason", reason, "bytes", (json_int_t)bytes));
}

/* Damaged stored data kept aside (storage/store.h): the count and the first reports. */
static json_t *status_corrupt(seq_admin *a)
{
    json_t *arr = json_array();
    seq_store_list_corrupt(a->ctx.store, 100, corrupt_entry, arr);
    return json_pack("{s:I,s:o}", "count", (json_int_t)seq_store_corrupt_count(a->ctx.store),
                     "kept", arr);
}

static void on_status(seq_admin *a, struct evhttp_request *req)
{
    const seq_config *c = a->ctx.config;
    json_t *def = json_loads(a->ctx.def->json ? a->ctx.def->json : "{}", 0, NULL);
    json_t *root = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:o,s:o,s:o,s:o,s:o}",
                             "grpc", a->ctx.grpc_address, "admin", a->address,
                             "brokers", seq_consumer_brokers(a->ctx.consumer), "topic", c->topic,
                             "group", c->group,
                             "event_format", seq_event_format_name(c->event_format),
                             "embedded_kafka", seq_consumer_embedded(a->ctx.consumer),
                             "definition", def ? def : json_object(), "stream", status_stream(a),
                             "sequences", status_sequences(a), "counts", status_counts(a),
                             "storage_corrupt", status_corrupt(a));
    seq_loads *l = atomic_load(&a->loads);
    if (root && l) json_object_set_new(root, "loads", seq_loads_status(l));
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text) reply(req, 200, "OK", "application/json", text, strlen(text));
    else reply_text(req, 500, "Internal Server Error", "cannot build the status\n");
    free(text);
    json_decref(root);
}

static void on_console(seq_admin *a, struct evhttp_request *req, const char *path)
{
    seq_console_reply r;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (seq_console_handle(a->ctx.console, path, query, &r)) {
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
    } else {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Cache-Control", r.cache);
        /* closed networks: nothing but this origin, and no framing by other sites */
        evhttp_add_header(h, "Content-Security-Policy",
                          "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        reply(req, r.status, r.status == 200 ? "OK" : r.status == 400 ? "Bad Request" : "Not Found",
              r.ctype, r.body.data, r.body.len);
    }
    seq_buf_free(&r.body);
}

/* ---- /malformed: the messages kept aside ---- */

static void base64(const uint8_t *p, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (; n >= 3; p += 3, n -= 3) {
        *out++ = tab[p[0] >> 2];
        *out++ = tab[(p[0] & 3) << 4 | p[1] >> 4];
        *out++ = tab[(p[1] & 15) << 2 | p[2] >> 6];
        *out++ = tab[p[2] & 63];
    }
    if (n) {
        *out++ = tab[p[0] >> 2];
        *out++ = tab[(p[0] & 3) << 4 | (n > 1 ? p[1] >> 4 : 0)];
        *out++ = n > 1 ? tab[(p[1] & 15) << 2] : '=';
        *out++ = '=';
    }
    *out = 0;
}

/* Printable ASCII as is, other bytes as \xNN, up to max input bytes (JSON strings must
 * be valid UTF-8, and a reason may quote the message). */
static void escape_bytes(const uint8_t *p, size_t n, size_t max, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && i < max; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            *out++ = (char)p[i];
        } else {
            *out++ = '\\', *out++ = 'x', *out++ = hex[p[i] >> 4], *out++ = hex[p[i] & 15];
        }
    }
    *out = 0;
}

#define PREVIEW_BYTES 120

static void add_malformed(void *ctx, int32_t partition, int64_t offset, const char *reason,
                          const void *payload, size_t len)
{
    char *b64 = malloc(len / 3 * 4 + 5), why[1024], preview[PREVIEW_BYTES * 4 + 1];
    if (!b64) return;
    base64(payload, len, b64);
    escape_bytes((const uint8_t *)reason, strlen(reason), (sizeof why - 1) / 4, why);
    escape_bytes(payload, len, PREVIEW_BYTES, preview);
    json_array_append_new(ctx, json_pack("{s:i, s:I, s:s, s:I, s:s, s:s}", "partition",
                                         (int)partition, "offset", (json_int_t)offset,
                                         "reason", why, "value_len", (json_int_t)len,
                                         "value_preview", preview, "value_base64", b64));
    free(b64);
}

/* GET /malformed?limit=N (1..1000, default 20): the malformed messages kept aside, oldest
 * (by partition, offset) first, with the total count. */
static void on_malformed(seq_admin *a, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq q = {0};
    long limit = 20;
    if (query && evhttp_parse_query_str(query, &q) != 0) {
        reply_text(req, 400, "Bad Request", "malformed query string\n");
        return;
    }
    const char *v = evhttp_find_header(&q, "limit");
    if (v) {
        char *end;
        limit = strtol(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || limit < 1 || limit > 1000) {
            evhttp_clear_headers(&q);
            reply_text(req, 400, "Bad Request", "limit: want a count from 1 to 1000\n");
            return;
        }
    }
    evhttp_clear_headers(&q);
    json_t *list = json_array();
    if (list) seq_store_list_malformed(a->ctx.store, (uint32_t)limit, add_malformed, list);
    json_t *root = list ? json_pack("{s:I, s:o}", "count",
                                    (json_int_t)seq_store_malformed_count(a->ctx.store),
                                    "messages", list)
                        : NULL;
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text) reply(req, 200, "OK", "application/json", text, strlen(text));
    else reply_text(req, 500, "Internal Server Error", "cannot list the malformed messages\n");
    free(text);
    json_decref(root);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    seq_admin *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path) path = "/";
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        reply_text(req, 405, "Method Not Allowed", "only GET\n");
        return;
    }
    if (strcmp(path, "/metrics") == 0) on_metrics(a, req);
    else if (strcmp(path, "/healthz") == 0) reply_text(req, 200, "OK", "ok\n");
    else if (strcmp(path, "/readyz") == 0) on_readyz(a, req);
    else if (strcmp(path, "/status") == 0) on_status(a, req);
    else if (strcmp(path, "/malformed") == 0) on_malformed(a, req);
    else if (strcmp(path, "/cluster") == 0) on_cluster(a, req);
    else if (a->ctx.console && strncmp(path, "/ui", 3) == 0 && (path[3] == '\0' || path[3] == '/'))
        on_console(a, req, path);
    else reply_text(req, 404, "Not Found",
                    "not found; try /ui /metrics /healthz /readyz /status /malformed /cluster\n");
}

/* ---- lifecycle ---- */

/* A loopbreak issued from another thread before the loop starts would be lost (the loop
 * clears the flag on entry); an activated event is not. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    event_base_loopbreak(((seq_admin *)arg)->base);
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    seq_console_sample(((seq_admin *)arg)->ctx.console);
}

static void *run(void *arg)
{
    seq_admin *a = arg;
    event_base_dispatch(a->base);
    return NULL;
}

static int bind_listener(seq_admin *a, char *err, size_t errlen)
{
    char host[256];
    int port;
    const char *listen = a->ctx.config->admin_listen;
    if (seq_admin_split_hostport(listen, host, sizeof host, &port)) {
        seq_errf(err, errlen, "--admin-listen: '%s' is not HOST:PORT", listen);
        return SEQ_EINVAL;
    }
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(a->http, host, (uint16_t)port);
    if (!bs) {
        seq_errf(err, errlen, "--admin-listen %s: cannot bind", listen);
        return SEQ_EUNAVAILABLE;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    getsockname(evconnlistener_get_fd(evhttp_bound_socket_get_listener(bs)), (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(a->address, sizeof a->address, "[%s]:%d", ip, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(a->address, sizeof a->address, "%s:%d", ip, ntohs(s4->sin_port));
    }
    return SEQ_OK;
}

int seq_admin_start(const seq_admin_ctx *ctx, seq_admin **out, char *err, size_t errlen)
{
    evthread_use_pthreads(); /* loopbreak from the main thread needs a notifiable base */
    seq_admin *a = calloc(1, sizeof *a);
    int rc = SEQ_EINTERNAL;
    if (!a) return rc;
    a->ctx = *ctx;
    if (!(a->base = event_base_new()) || !(a->http = evhttp_new(a->base)) ||
        !(a->stop_ev = event_new(a->base, -1, EV_PERSIST, on_stop, a)) || event_add(a->stop_ev, NULL)) {
        seq_errf(err, errlen, "admin: cannot create the event loop");
        goto fail;
    }
    if (ctx->console) {
        struct timeval every = {SEQ_CONSOLE_SAMPLE_MS / 1000, (SEQ_CONSOLE_SAMPLE_MS % 1000) * 1000};
        seq_console_sample(ctx->console); /* the first point, before the loop runs */
        if (!(a->sample_ev = event_new(a->base, -1, EV_PERSIST, on_sample, a)) ||
            event_add(a->sample_ev, &every)) {
            seq_errf(err, errlen, "admin: cannot create the console's timer");
            goto fail;
        }
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_gencb(a->http, on_request, a);
    if ((rc = bind_listener(a, err, errlen))) goto fail;
    if (pthread_create(&a->thread, NULL, run, a)) {
        rc = SEQ_EINTERNAL;
        seq_errf(err, errlen, "admin: cannot start its thread");
        goto fail;
    }
    a->thread_started = 1;
    *out = a;
    return SEQ_OK;
fail:
    seq_admin_stop(a);
    return rc;
}

const char *seq_admin_address(const seq_admin *a) { return a->address; }

void seq_admin_stop(seq_admin *a)
{
    if (!a) return;
    if (a->thread_started) {
        event_active(a->stop_ev, EV_READ, 0);
        pthread_join(a->thread, NULL);
    }
    if (a->stop_ev) event_free(a->stop_ev);
    if (a->sample_ev) event_free(a->sample_ev);
    if (a->http) evhttp_free(a->http);
    if (a->base) event_base_free(a->base);
    free(a);
}
