/* Routing of reads (see route.h). Everything here runs on the gRPC worker that read the
 * request: a forwarded call is held (seq_grpc_call_hold), its forward's callback runs on
 * the same loop (forward.h) and finishes it. The request bytes are only scanned (field 1
 * of GetSequenceRequest, the entries of BatchGetSequencesRequest) and passed on as they
 * are; the service validates them wherever they are read. */
#include "route.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/partition.h"
#include "forward.h"

#define MAX_TRIES 8
#define PATH_GET "/seqd.v1.SequenceService/GetSequence"
#define PATH_BATCH "/seqd.v1.SequenceService/BatchGetSequences"
#define PATH_MAP "/seqd.v1.ClusterService/GetClusterMap"

struct seq_route {
    seq_service *svc;
    _Atomic(seq_cluster *) cluster;
    seq_grpc_method *methods;
    const char **names;
    size_t n;
    seq_grpc_method svc_get, svc_batch; /* the service's own handlers */
    seq_route_stats stats;
};

/* ---- protobuf scanning ---- */

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int s = 0; s < 64 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The next field: its number, wire type, varint value or length-delimited slice. 1 when
 * a field was read, 0 at the end, -1 when malformed. */
static int next_field(const uint8_t **p, const uint8_t *end, uint32_t *field, uint64_t *val,
                      const uint8_t **slice, size_t *slen)
{
    if (*p >= end) return 0;
    uint64_t tag, n;
    if (get_varint(p, end, &tag)) return -1;
    *field = (uint32_t)(tag >> 3);
    switch (tag & 7) {
    case 0: return get_varint(p, end, val) ? -1 : 1;
    case 1: if (end - *p < 8) return -1; *p += 8; return 1;
    case 5: if (end - *p < 4) return -1; *p += 4; return 1;
    case 2:
        if (get_varint(p, end, &n) || n > (uint64_t)(end - *p)) return -1;
        *slice = *p;
        *slen = (size_t)n;
        *p += n;
        return 1;
    default: return -1;
    }
}

/* user_id (field 1) of an encoded GetSequenceRequest; 0 when absent or malformed (then
 * the request is read here, and the service says what is wrong with it). */
static uint64_t user_of(const uint8_t *msg, size_t len)
{
    const uint8_t *p = msg, *end = msg + len, *sl;
    uint32_t f;
    uint64_t v, uid = 0;
    size_t sn;
    int rc;
    while ((rc = next_field(&p, end, &f, &v, &sl, &sn)) == 1)
        if (f == 1) uid = v;
    return rc < 0 ? 0 : uid;
}

static int put_entry(seq_buf *b, const uint8_t *e, size_t n)
{
    uint8_t hdr[11];
    size_t h = 0;
    hdr[h++] = 0x0a;
    for (uint64_t x = n; ; x >>= 7) {
        hdr[h++] = (uint8_t)(x & 0x7f) | (x >= 0x80 ? 0x80 : 0);
        if (x < 0x80) break;
    }
    return seq_buf_append(b, hdr, h) || seq_buf_append(b, e, n) ? -1 : 0;
}

/* ---- where a user is read ---- */

/* -1: read here; else the partition to forward to. A partition this node holds but is
 * still filling (acquired in a rebalance) is read at a caught-up replica when there is
 * one, here otherwise (online and stale: the watermark says how far behind). One it holds
 * caught up *with a gap* (its stream starts later than reads need) is read at a replica
 * caught up without one when there is one, here otherwise. A call that arrived forwarded
 * is read here whenever the partition is held. */
static int64_t remote_partition(seq_route *r, uint64_t uid, int was_forwarded)
{
    seq_cluster *cl = atomic_load_explicit(&r->cluster, memory_order_acquire);
    uint32_t np = cl ? seq_cluster_partitions(cl) : 0;
    if (!np || !uid) return -1;
    uint32_t p = seq_partition_of_user(uid, np);
    if (seq_cluster_caught_up(cl, p))
        return !was_forwarded && seq_cluster_gap(cl, p) && seq_cluster_caught_up_elsewhere(cl, p, 1)
                   ? (int64_t)p : -1;
    if (seq_cluster_holds(cl, p))
        return !was_forwarded && seq_cluster_caught_up_elsewhere(cl, p, 0) ? (int64_t)p : -1;
    return (int64_t)p;
}

static int forwarded(seq_grpc_call *call)
{
    const char *h = seq_grpc_call_header(call, "seqd-forwarded");
    return h && strcmp(h, "1") == 0;
}

static void refuse_forwarded(seq_route *r, seq_grpc_call *call, int64_t p)
{
    char m[200];
    seq_cluster *cl = atomic_load(&r->cluster);
    snprintf(m, sizeof m, "partition %lld is not held by node %s (a forwarded call is not forwarded again)",
             (long long)p, cl ? seq_cluster_self(cl) : "?");
    atomic_fetch_add_explicit(&r->stats.refused, 1, memory_order_relaxed);
    seq_grpc_finish(call, SEQ_EUNAVAILABLE, m);
}

/* ---- forwarding jobs: one request to the holders of one partition, in turn ---- */

typedef struct batch batch;

typedef struct {
    seq_route *r;
    struct event_base *base;
    seq_grpc_call *call; /* a whole GetSequence; NULL for a part of a batch */
    batch *parent;
    const char *path;
    seq_buf req;
    uint64_t deadline;
    int64_t partition;
    int n, next;
    /* the outcome */
    int status;
    char msg[300], served_by[128];
    seq_buf resp; /* a batch part's answer (a whole call's goes to the call's reply) */
    char addrs[][SEQ_CLUSTER_ADDR]; /* n: the holders in the order to try */
} job;

static void job_try(job *j);
static void batch_part_done(job *j);

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* dst = the answer in src: taken as it is (swapped: src gets dst's empty buffer) when dst
 * is empty, as a whole call's reply and a part's resp are; else appended. 0, or -1 (out
 * of memory). */
static int take_answer(seq_buf *dst, seq_buf *src)
{
    if (dst->len) return seq_buf_append(dst, src->data, src->len);
    seq_buf t = *dst;
    *dst = *src;
    *src = t;
    return 0;
}

static int retryable(int status)
{
    return status == SEQ_EUNAVAILABLE || status == SEQ_EDATALOSS || status == SEQ_EPRECONDITION;
}

static void job_free(job *j)
{
    seq_buf_free(&j->req);
    seq_buf_free(&j->resp);
    free(j);
}

static void job_end(job *j)
{
    if (j->parent) {
        batch_part_done(j);
        return;
    }
    if (j->served_by[0]) seq_grpc_call_set_served_by(j->call, j->served_by);
    seq_grpc_finish(j->call, j->status, j->status ? j->msg : NULL);
    job_free(j);
}

static void job_done(void *ctx, int status, const char *msg, seq_buf *resp, const char *served_by)
{
    job *j = ctx;
    j->status = status;
    seq_str_copy(j->msg, sizeof j->msg, msg);
    seq_str_copy(j->served_by, sizeof j->served_by, served_by);
    int again = retryable(status) || (status == SEQ_EDEADLINE && (!j->deadline || mono_ns() < j->deadline));
    if (again && j->next < j->n) {
        atomic_fetch_add_explicit(&j->r->stats.forward_retries, 1, memory_order_relaxed);
        job_try(j);
        return;
    }
    /* the answer's bytes are taken, not copied: a whole call's straight into its reply, a
     * part's into the part (bench/NOTES.md, "Session 7") */
    seq_buf *out = j->parent ? &j->resp : seq_grpc_call_reply(j->call);
    if (status == SEQ_OK && take_answer(out, resp)) {
        j->status = SEQ_EINTERNAL;
        snprintf(j->msg, sizeof j->msg, "out of memory");
    }
    if (status == SEQ_EUNAVAILABLE && j->n > 1) {
        char m[sizeof j->msg];
        snprintf(m, sizeof m, "partition %lld: no holder answered (%d tried; last: %.200s)",
                 (long long)j->partition, j->n, j->msg);
        memcpy(j->msg, m, sizeof m);
    }
    job_end(j);
}

/* A try that is not the last gets half of the time left, so that a peer that swallows
 * packets (no reset, no answer) still leaves time for the next replica. */
static uint64_t try_deadline(const job *j)
{
    uint64_t now = mono_ns(), end = j->deadline ? j->deadline : now + 30000000000ull;
    if (j->next >= j->n || end <= now) return end;
    return now + (end - now) / 2;
}

static void job_try(job *j)
{
    uint64_t until = try_deadline(j);
    const char *addr = j->addrs[j->next++];
    atomic_fetch_add_explicit(&j->r->stats.forwarded, 1, memory_order_relaxed);
    if (seq_fwd_call(j->base, addr, j->path, j->req.data, j->req.len, until, job_done, j)) {
        j->status = SEQ_EINTERNAL;
        snprintf(j->msg, sizeof j->msg, "forwarding to %s: out of memory", addr);
        job_end(j);
    }
}

/* A job for partition p, or NULL with status/msg set (no holder, out of memory). */
static job *job_new(seq_route *r, seq_grpc_call *call, const char *path, int64_t p, int *status,
                    char *msg, size_t msglen)
{
    seq_cluster *cl = atomic_load(&r->cluster);
    char addrs[MAX_TRIES][SEQ_CLUSTER_ADDR];
    int n = seq_cluster_route(cl, (uint32_t)p, addrs, MAX_TRIES);
    if (!n) {
        *status = SEQ_EUNAVAILABLE;
        seq_errf(msg, msglen, "partition %lld: no node of the cluster holds it", (long long)p);
        return NULL;
    }
    /* sized for its holders: with one to three, small enough for malloc's per-thread cache */
    job *j = calloc(1, sizeof *j + (size_t)n * SEQ_CLUSTER_ADDR);
    if (!j) {
        *status = SEQ_EINTERNAL;
        seq_errf(msg, msglen, "out of memory");
        return NULL;
    }
    j->r = r;
    j->base = seq_grpc_call_base(call);
    j->path = path;
    j->partition = p;
    j->deadline = seq_grpc_call_deadline_ns(call);
    j->n = n;
    memcpy(j->addrs, addrs, (size_t)n * SEQ_CLUSTER_ADDR);
    return j;
}

/* ---- GetSequence ---- */

static void h_get(void *ctx, seq_grpc_call *call, const uint8_t *msg, size_t len)
{
    seq_route *r = ctx;
    int64_t p = remote_partition(r, user_of(msg, len), forwarded(call));
    if (p < 0) {
        r->svc_get.fn(r->svc_get.ctx, call, msg, len);
        return;
    }
    if (forwarded(call)) {
        refuse_forwarded(r, call, p);
        return;
    }
    int status;
    char m[200];
    job *j = job_new(r, call, PATH_GET, p, &status, m, sizeof m);
    if (!j || seq_buf_append(&j->req, msg, len)) {
        if (j) job_free(j);
        seq_grpc_finish(call, j ? SEQ_EINTERNAL : status, j ? "out of memory" : m);
        return;
    }
    j->call = call;
    seq_grpc_call_hold(call);
    job_try(j);
}

/* ---- BatchGetSequences: parts by partition, in parallel ---- */

typedef struct {
    int64_t partition; /* -1: read here */
    uint32_t *idx;     /* the entries' positions in the request */
    size_t n;
    seq_buf resp;      /* its BatchGetSequencesResponse */
    int status;
    char msg[300], served_by[128];
} part;

struct batch {
    seq_route *r;
    seq_grpc_call *call;
    part *parts;
    size_t n_parts, n_entries, pending;
};

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n_parts; i++) {
        free(b->parts[i].idx);
        seq_buf_free(&b->parts[i].resp);
    }
    free(b->parts);
    free(b);
}

/* "requests[k]: ..." of a part names k within the part: rename it to the request's. */
static void remap_index(const part *pt, const char *msg, char *out, size_t outlen)
{
    unsigned long k;
    int used = 0;
    if (sscanf(msg, "requests[%lu]: %n", &k, &used) == 1 && used > 0 && k < pt->n)
        snprintf(out, outlen, "requests[%u]: %s", pt->idx[k], msg + used);
    else
        snprintf(out, outlen, "%s", msg);
}

/* Every part is in: the response in request order, or the first failed part's error. */
static void batch_finish(batch *b)
{
    char m[400], served[512] = "";
    const uint8_t **ent = calloc(b->n_entries ? b->n_entries : 1, sizeof *ent);
    size_t *elen = calloc(b->n_entries ? b->n_entries : 1, sizeof *elen);
    int status = ent && elen ? SEQ_OK : SEQ_EINTERNAL;
    snprintf(m, sizeof m, "out of memory");
    for (size_t i = 0; i < b->n_parts && status == SEQ_OK; i++) {
        part *pt = &b->parts[i];
        if (pt->status) {
            status = pt->status;
            remap_index(pt, pt->msg, m, sizeof m);
            break;
        }
        const uint8_t *p = pt->resp.data, *end = p + pt->resp.len, *sl;
        uint32_t f;
        uint64_t v;
        size_t sn, k = 0;
        int rc;
        while ((rc = next_field(&p, end, &f, &v, &sl, &sn)) == 1)
            if (f == 1 && k < pt->n) {
                ent[pt->idx[k]] = sl;
                elen[pt->idx[k]] = sn;
                k++;
            }
        if (rc < 0 || k != pt->n) {
            status = SEQ_EUNAVAILABLE;
            snprintf(m, sizeof m, "partition %lld: the holder's answer has %zu of %zu entries",
                     (long long)pt->partition, k, pt->n);
        }
        if (pt->served_by[0] && !strstr(served, pt->served_by)) /* distinct ids */
            snprintf(served + strlen(served), sizeof served - strlen(served), "%s%s",
                     served[0] ? "," : "", pt->served_by);
    }
    seq_buf *out = seq_grpc_call_reply(b->call);
    for (size_t i = 0; i < b->n_entries && status == SEQ_OK; i++)
        if (put_entry(out, ent[i], elen[i])) {
            status = SEQ_EINTERNAL;
            snprintf(m, sizeof m, "out of memory");
        }
    if (served[0]) seq_grpc_call_set_served_by(b->call, served);
    seq_grpc_finish(b->call, status, status ? m : NULL);
    free(ent);
    free(elen);
    batch_free(b);
}

static void batch_part_done(job *j)
{
    batch *b = j->parent;
    part *pt = NULL;
    for (size_t i = 0; i < b->n_parts; i++)
        if (b->parts[i].partition == j->partition) pt = &b->parts[i];
    pt->status = j->status;
    snprintf(pt->msg, sizeof pt->msg, "%s", j->msg);
    snprintf(pt->served_by, sizeof pt->served_by, "%s", j->served_by);
    seq_buf_free(&pt->resp);
    pt->resp = j->resp;
    j->resp = (seq_buf){0};
    job_free(j);
    if (--b->pending == 0) batch_finish(b);
}

static part *part_for(batch *b, int64_t p)
{
    for (size_t i = 0; i < b->n_parts; i++)
        if (b->parts[i].partition == p) return &b->parts[i];
    part *pt = &b->parts[b->n_parts++];
    memset(pt, 0, sizeof *pt);
    pt->partition = p;
    pt->idx = malloc(b->n_entries * sizeof *pt->idx);
    return pt->idx ? pt : NULL;
}

/* Splits the request's entries by partition; 0, or -1 (malformed: read here). */
static int split(seq_route *r, batch *b, const uint8_t *msg, size_t len, seq_buf *reqs,
                 int was_forwarded)
{
    const uint8_t *p = msg, *end = msg + len, *sl;
    uint32_t f;
    uint64_t v;
    size_t sn;
    int rc;
    while ((rc = next_field(&p, end, &f, &v, &sl, &sn)) == 1)
        if (f == 1) b->n_entries++;
    if (rc < 0 || !b->n_entries) return -1;
    if (!(b->parts = calloc(b->n_entries, sizeof *b->parts))) return -1;
    p = msg;
    uint32_t i = 0;
    while (next_field(&p, end, &f, &v, &sl, &sn) == 1) {
        if (f != 1) continue;
        part *pt = part_for(b, remote_partition(r, user_of(sl, sn), was_forwarded));
        if (!pt || put_entry(&reqs[pt - b->parts], sl, sn)) return -1;
        pt->idx[pt->n++] = i++;
    }
    return 0;
}

static void h_batch(void *ctx, seq_grpc_call *call, const uint8_t *msg, size_t len)
{
    seq_route *r = ctx;
    batch *b = calloc(1, sizeof *b);
    seq_buf *reqs = NULL;
    if (!b || !atomic_load(&r->cluster)) goto local;
    b->r = r;
    b->call = call;
    size_t max_parts = 0;
    {
        const uint8_t *p = msg, *end = msg + len, *sl;
        uint32_t f;
        uint64_t v;
        size_t sn;
        while (next_field(&p, end, &f, &v, &sl, &sn) == 1) max_parts += f == 1;
    }
    if (!(reqs = calloc(max_parts ? max_parts : 1, sizeof *reqs)) || split(r, b, msg, len, reqs, forwarded(call)))
        goto local;
    if (b->n_parts == 1 && b->parts[0].partition < 0) goto local; /* all here */
    for (size_t i = 0; i < b->n_parts; i++)
        if (b->parts[i].partition >= 0 && forwarded(call)) {
            int64_t p = b->parts[i].partition;
            for (size_t k = 0; k < b->n_parts; k++) seq_buf_free(&reqs[k]);
            free(reqs);
            batch_free(b);
            refuse_forwarded(r, call, p);
            return;
        }
    /* the local part first (synchronously), then the remote ones in parallel */
    seq_grpc_call_hold(call);
    b->pending = b->n_parts + 1; /* +1: this function's own reference */
    for (size_t i = 0; i < b->n_parts; i++) {
        part *pt = &b->parts[i];
        if (pt->partition < 0) {
            char m[300];
            pt->status = seq_service_batch_get(r->svc, reqs[i].data, reqs[i].len, &pt->resp, m, sizeof m);
            if (pt->status) snprintf(pt->msg, sizeof pt->msg, "%s", m);
            seq_cluster *cl = atomic_load(&r->cluster);
            snprintf(pt->served_by, sizeof pt->served_by, "%s", seq_cluster_self(cl));
            b->pending--;
            continue;
        }
        int status;
        char m[200];
        job *j = job_new(r, call, PATH_BATCH, pt->partition, &status, m, sizeof m);
        if (!j) {
            pt->status = status;
            snprintf(pt->msg, sizeof pt->msg, "%s", m);
            b->pending--;
            continue;
        }
        j->parent = b;
        j->req = reqs[i];
        reqs[i] = (seq_buf){0};
        job_try(j);
    }
    for (size_t k = 0; k < b->n_parts; k++) seq_buf_free(&reqs[k]);
    free(reqs);
    if (--b->pending == 0) batch_finish(b);
    return;
local:
    if (b) {
        for (size_t k = 0; reqs && k < b->n_parts; k++) seq_buf_free(&reqs[k]);
        batch_free(b);
    }
    free(reqs);
    r->svc_batch.fn(r->svc_batch.ctx, call, msg, len);
}

/* ---- ClusterService/GetClusterMap ---- */

static void h_map(void *ctx, seq_grpc_call *call, const uint8_t *msg, size_t len)
{
    (void)msg, (void)len; /* GetClusterMapRequest has no fields */
    seq_route *r = ctx;
    seq_cluster *cl = atomic_load(&r->cluster);
    if (!cl) {
        seq_grpc_finish(call, SEQ_EUNAVAILABLE, "the cluster map is not running yet");
        return;
    }
    int rc = seq_cluster_encode(cl, seq_grpc_call_reply(call));
    seq_grpc_finish(call, rc, rc ? "out of memory" : NULL);
}

/* ---- the table ---- */

int seq_route_new(seq_service *svc, seq_route **out, char *err, size_t errlen)
{
    size_t n;
    const seq_grpc_method *m = seq_service_methods(svc, &n);
    const char *const *names = seq_service_method_names();
    seq_route *r = calloc(1, sizeof *r);
    if (!r || !(r->methods = calloc(n, sizeof *r->methods)) ||
        !(r->names = calloc(n, sizeof *r->names))) {
        seq_route_free(r);
        seq_errf(err, errlen, "route: out of memory");
        return SEQ_EINTERNAL;
    }
    r->svc = svc;
    for (size_t i = 0; i < n; i++) {
        r->methods[i] = m[i];
        r->names[i] = names[i];
        if (strcmp(m[i].path, PATH_GET) == 0) {
            r->svc_get = m[i];
            r->methods[i] = (seq_grpc_method){m[i].path, h_get, r, NULL};
        } else if (strcmp(m[i].path, PATH_BATCH) == 0) {
            r->svc_batch = m[i];
            r->methods[i] = (seq_grpc_method){m[i].path, h_batch, r, NULL};
        } else if (strcmp(m[i].path, PATH_MAP) == 0) {
            r->methods[i] = (seq_grpc_method){m[i].path, h_map, r, NULL};
        }
    }
    r->n = n;
    if (!r->svc_get.fn || !r->svc_batch.fn) {
        seq_route_free(r);
        seq_errf(err, errlen, "route: the service lacks GetSequence or BatchGetSequences");
        return SEQ_EINTERNAL;
    }
    *out = r;
    return SEQ_OK;
}

void seq_route_free(seq_route *r)
{
    if (!r) return;
    free(r->methods);
    free(r->names);
    free(r);
}

const seq_grpc_method *seq_route_methods(seq_route *r, size_t *n)
{
    *n = r->n;
    return r->methods;
}

const char *const *seq_route_method_names(seq_route *r) { return r->names; }

void seq_route_set_cluster(seq_route *r, seq_cluster *c)
{
    atomic_store_explicit(&r->cluster, c, memory_order_release);
}

seq_route_stats *seq_route_get_stats(seq_route *r) { return &r->stats; }
