/* seqload: GetSequence load generator for bench/run, on nghttp2's client API (h2c.c).
 * Unlike h2load, which repeats one request body, every request asks for a random user
 * among --users, and every response's grpc-status is checked.
 *   closed loop (default): each of -c connections keeps -m calls in flight;
 *   open loop (--rps R):   calls start on a fixed schedule of R/s whatever the answers,
 *                          and latency is measured from the scheduled start, so a stall
 *                          is not hidden (no coordinated omission).
 * --sweep 1 asks every user of 1..--users once, in order, and stops when all answered (a
 * warm-up that leaves each user's entry in the record cache when it fits).
 * Prints one line of key=value results; with --every SECS also one line per interval of
 * SECS on stderr (interval=N requests= errors= p50_us= p99_us= p999_us= max_us=).
 * --write-request FILE writes the framed request
 * of --user for h2load -d instead.
 * For the cluster benchmarks (bench/cluster.sh, bench/build-dist.sh): --user-file FILE
 * draws the users from a list (one id per line: the users one node holds, say) instead of
 * 1..--users; --batch N sends BatchGetSequences of N such users per call (requests= counts
 * calls; users per second = rps x N); --track-gen also prints the wall-clock time
 * (CLOCK_REALTIME, µs) of the first answer that carried a new generation. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "h2c.h"
#include "hist.h"

#define MAX_CONNS 256
#define PATH "/seqd.v1.SequenceService/GetSequence"
#define BATCH_PATH "/seqd.v1.SequenceService/BatchGetSequences"
/* Request slots, cycled. A GetSequence call's slot is encoded afresh for a random user
 * just before the call (a pool of REQS requests encoded once asked the same 4096 users
 * all run long, and the same ones every run: a hot set the record cache held whole, not
 * a random mix over --users; bench/NOTES.md, "Session 10 — read tail"). A slot is reused
 * REQS calls later, long after its bytes were sent: at most REQS / 2 calls are in flight
 * (-c x -m). BatchGetSequences requests (100 users each) stay a pool encoded once. */
#define REQS 4096
#define MAX_BATCH 100
#define MAX_LIST 1000000
/* Open loop: calls that fall due within one tick leave in one write on one connection
 * (the next tick takes the next connection). One send() per call made the client, on
 * loopback, pay the kernel's TCP receive path of every request: a core at half the peak,
 * taken from the server's two. Latency still counts from each call's own due time, so
 * the tick's wait is in the figures, not hidden. */
#define TICK_NS 100000u

typedef struct {
    const char *target, *seq, *write_req, *user_file;
    int batch; /* --batch N: BatchGetSequences of N users per call; 0: GetSequence */
    uint64_t users, user;
    int conns, streams;
    double secs, warmup, rps, every;
    uint32_t max_events;
    int track, fixed;
    int sweep; /* --sweep 1: every user of 1..--users once, in order, then stop (a warm-up) */
    int provenance;     /* --provenance 1: include_provenance (issue 13's 1.2x bar) */
    int64_t as_of_ago;  /* --as-of-ago MS: as_of_ms = start time - MS (the 2x bar) */
} opts;

typedef struct {
    hist h;
    hist iv; /* --every: the current interval's, reset after each line */
    uint64_t every_ns, iv_end_ns, iv_errors;
    unsigned iv_no;
    uint64_t ok, errors, bytes, measure_from_ns;
    double secs; /* measured window */
    /* --track-gen: the batch_generation answers carry, to bound a load's switch-over */
    int track, seen;
    uint64_t gen_first, gen_last, old_start_max, new_end_min;
    uint64_t mono0, real0_us; /* the same instant on both clocks, for switch_unix_us */
} stats;

/* The switch-over happened after the newest start of a call that still saw the old
 * generation and before the first completion that saw the new one. */
static void track_gen(stats *s, uint64_t start, uint64_t end, const uint8_t *body, size_t len)
{
    uint64_t g = len > 5 ? h2c_pb_first_varint(body + 5, len - 5, 9) : 0;
    if (!s->seen) s->seen = 1, s->gen_first = g, s->gen_last = g;
    if (g == s->gen_first && start > s->old_start_max) s->old_start_max = start;
    if (g != s->gen_first && (!s->new_end_min || end < s->new_end_min)) s->new_end_min = end;
    if (g > s->gen_last) s->gen_last = g;
}

/* --every: one line on stderr per interval of completions (the soak's read p99 per
 * minute, issue 10), then the interval's histogram starts again. */
static void interval_line(stats *s, uint64_t now)
{
    while (now >= s->iv_end_ns) {
        fprintf(stderr, "interval=%u requests=%" PRIu64 " errors=%" PRIu64 " p50_us=%" PRIu64
                        " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64 "\n",
                s->iv_no++, s->iv.n, s->iv_errors, hist_q(&s->iv, 0.5), hist_q(&s->iv, 0.99),
                hist_q(&s->iv, 0.999), s->iv.max_us);
        hist_reset(&s->iv);
        s->iv_errors = 0;
        s->iv_end_ns += s->every_ns;
    }
}

static void on_done(void *ctx, h2c *c, uint64_t tag, int st, const uint8_t *body, size_t len)
{
    (void)c;
    stats *s = ctx;
    uint64_t now = mono_ns();
    if (tag < s->measure_from_ns) return; /* warm-up */
    if (s->every_ns) interval_line(s, now);
    if (s->track && st == 0) track_gen(s, tag, now, body, len);
    if (st != 0) {
        s->errors++;
        s->iv_errors++;
        return;
    }
    s->ok++;
    s->bytes += len;
    hist_add(&s->h, (now - tag) / 1000);
    if (s->every_ns) hist_add(&s->iv, (now - tag) / 1000);
}

static int parse(int argc, char **argv, opts *o)
{
    *o = (opts){.target = "127.0.0.1:50051", .seq = "engagements", .users = 1000000, .user = 1,
                .conns = 16, .streams = 32, .secs = 10, .warmup = 1, .max_events = 100};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--target")) o->target = v;
        else if (!strcmp(k, "--sequence")) o->seq = v;
        else if (!strcmp(k, "--users")) o->users = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--user")) o->user = strtoull(v, NULL, 10);
        else if (!strcmp(k, "-c")) o->conns = atoi(v);
        else if (!strcmp(k, "-m")) o->streams = atoi(v);
        else if (!strcmp(k, "-D")) o->secs = atof(v);
        else if (!strcmp(k, "--warmup")) o->warmup = atof(v);
        else if (!strcmp(k, "--rps")) o->rps = atof(v);
        else if (!strcmp(k, "--max")) o->max_events = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "--write-request")) o->write_req = v;
        else if (!strcmp(k, "--track-gen")) o->track = atoi(v);
        else if (!strcmp(k, "--fixed-user")) o->user = strtoull(v, NULL, 10), o->fixed = 1;
        else if (!strcmp(k, "--provenance")) o->provenance = atoi(v);
        else if (!strcmp(k, "--as-of-ago")) o->as_of_ago = strtoll(v, NULL, 10);
        else if (!strcmp(k, "--user-file")) o->user_file = v;
        else if (!strcmp(k, "--batch")) o->batch = atoi(v);
        else if (!strcmp(k, "--every")) o->every = atof(v);
        else if (!strcmp(k, "--sweep")) o->sweep = atoi(v);
        else return -1;
    }
    return o->conns > 0 && o->conns <= MAX_CONNS && o->streams > 0 && o->users > 0 && o->every >= 0 &&
                   (uint64_t)o->conns * (uint64_t)o->streams <= REQS / 2 &&
                   o->batch >= 0 && o->batch <= MAX_BATCH && !(o->batch && o->track) &&
                   !(o->sweep && (o->batch || o->fixed || o->user_file || o->rps > 0))
               ? 0
               : -1;
}

static int write_request(const opts *o)
{
    uint8_t buf[512];
    size_t n = h2c_get_request(buf, o->user, o->seq, o->max_events);
    FILE *f = fopen(o->write_req, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        perror(o->write_req);
        return 1;
    }
    return 0;
}

typedef struct {
    uint8_t b[64 + MAX_BATCH * 80]; /* a batch of MAX_BATCH requests of <= 80 bytes each */
    size_t n;
} req;

/* Appends a varint field to a framed request and fixes its length prefix. */
static void add_varint_field(req *r, uint8_t tag, uint64_t v)
{
    r->b[r->n++] = tag;
    while (v >= 0x80) r->b[r->n++] = (uint8_t)(v | 0x80), v >>= 7;
    r->b[r->n++] = (uint8_t)v;
    size_t m = r->n - 5;
    r->b[1] = (uint8_t)(m >> 24), r->b[2] = (uint8_t)(m >> 16), r->b[3] = (uint8_t)(m >> 8);
    r->b[4] = (uint8_t)m;
}

/* The history knobs: include_provenance (field 7), as_of_ms (field 9). */
static void add_history_fields(const opts *o, req *r, int64_t now_ms)
{
    if (o->provenance) add_varint_field(r, 0x38, 1);
    if (o->as_of_ago) add_varint_field(r, 0x48, (uint64_t)(now_ms - o->as_of_ago));
}

static volatile sig_atomic_t stop_now; /* SIGINT/SIGTERM: end the run early, still report */
static void on_signal(int sig) { (void)sig, stop_now = 1; }

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t pick_user(const opts *o, const uint64_t *list, size_t n)
{
    if (o->fixed) return o->user;
    return list ? list[rnd() % n] : 1 + rnd() % o->users;
}

typedef struct {
    const opts *o;
    req *reqs;
    const uint64_t *list; /* --user-file's ids, or NULL */
    size_t n_list;
    int64_t now_ms;
    unsigned next; /* the next GetSequence slot */
    uint64_t swept; /* --sweep: users asked so far */
} gen;

/* Starts one call on connection c: a fresh random user (GetSequence) or a random batch
 * of the pool; 0 or -1. */
static int start(h2c *c, gen *g, const char *path, uint64_t tag)
{
    req *r;
    if (g->o->batch) {
        r = &g->reqs[rnd() % REQS];
    } else {
        if (g->o->sweep && g->swept >= g->o->users) return -1; /* every user asked */
        uint64_t user = g->o->sweep ? ++g->swept : pick_user(g->o, g->list, g->n_list);
        r = &g->reqs[g->next++ % REQS];
        r->n = h2c_get_request(r->b, user, g->o->seq, g->o->max_events);
        add_history_fields(g->o, r, g->now_ms);
    }
    return h2c_submit(c, path, r->b, r->n, tag);
}

/* --user-file: the ids, one per line; NULL (and a message) when unreadable or empty. */
static uint64_t *read_users(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    uint64_t *u = f ? malloc(MAX_LIST * sizeof *u) : NULL;
    unsigned long long v;
    *n = 0;
    while (u && *n < MAX_LIST && fscanf(f, "%llu", &v) == 1) u[(*n)++] = v;
    if (f) fclose(f);
    if (!u || !*n) {
        fprintf(stderr, "seqload: %s: no user ids read\n", path);
        free(u);
        return NULL;
    }
    return u;
}

/* A framed BatchGetSequencesRequest of o->batch users: field 1, one GetSequenceRequest
 * each (h2c_get_request's message without its 5-byte prefix). */
static void batch_request(const opts *o, req *r, const uint64_t *list, size_t n)
{
    uint8_t one[128];
    r->n = 5;
    for (int i = 0; i < o->batch; i++) {
        size_t m = h2c_get_request(one, pick_user(o, list, n), o->seq, o->max_events) - 5;
        r->b[r->n++] = 0x0a;
        r->b[r->n++] = (uint8_t)m; /* < 128: one varint byte */
        memcpy(r->b + r->n, one + 5, m);
        r->n += m;
    }
    size_t m = r->n - 5;
    r->b[0] = 0;
    r->b[1] = (uint8_t)(m >> 24), r->b[2] = (uint8_t)(m >> 16), r->b[3] = (uint8_t)(m >> 8);
    r->b[4] = (uint8_t)m;
}

static int run(const opts *o, stats *s)
{
    static req reqs[REQS];
    h2c *cs[MAX_CONNS] = {0};
    struct pollfd pf[MAX_CONNS];
    char err[256] = "";
    int rc = 1;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t now_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    size_t n_list = 0;
    uint64_t *list = NULL;
    if (o->user_file && !(list = read_users(o->user_file, &n_list))) return 1;
    for (int i = 0; o->batch && i < REQS; i++) batch_request(o, &reqs[i], list, n_list);
    gen g = {o, reqs, list, n_list, now_ms, 0, 0};
    const char *path = o->batch ? BATCH_PATH : PATH;
    for (int i = 0; i < o->conns; i++)
        if (!(cs[i] = h2c_connect(o->target, on_done, s, err, sizeof err))) {
            fprintf(stderr, "seqload: %s\n", err);
            goto out;
        }
    uint64_t t0 = mono_ns(), end = t0 + (uint64_t)((o->warmup + o->secs) * 1e9);
    clock_gettime(CLOCK_REALTIME, &wall);
    s->mono0 = t0, s->real0_us = (uint64_t)wall.tv_sec * 1000000u + (uint64_t)wall.tv_nsec / 1000u;
    s->measure_from_ns = t0 + (uint64_t)(o->warmup * 1e9);
    s->every_ns = (uint64_t)(o->every * 1e9);
    s->iv_end_ns = s->measure_from_ns + s->every_ns;
    double gap = o->rps > 0 ? 1e9 / o->rps : 0;
    uint64_t sent = 0, last_tick = 0;
    int rr = 0, full = 0;
    for (uint64_t now = t0; now < end && !stop_now; now = mono_ns()) {
        if (o->sweep && g.swept >= o->users) { /* every user asked: done once all answered */
            int busy = 0;
            for (int i = 0; i < o->conns; i++) busy |= h2c_inflight(cs[i]) > 0;
            if (!busy) break;
        }
        if (gap > 0) { /* open loop: start every call that is due, on one connection */
            uint64_t sent0 = sent;
            full = 0;
            for (uint64_t due = t0 + (uint64_t)(sent * gap); due <= now;
                 due = t0 + (uint64_t)(sent * gap)) {
                int k = 0;
                while (k < o->conns && h2c_inflight(cs[rr]) >= o->streams) rr = (rr + 1) % o->conns, k++;
                if (k == o->conns) { /* all full: backlog, until an answer frees a stream */
                    full = 1;
                    break;
                }
                if (start(cs[rr], &g, path, due) < 0) break;
                sent++;
            }
            if (sent > sent0) rr = (rr + 1) % o->conns, last_tick = now;
        } else {
            for (int i = 0; i < o->conns; i++)
                while (h2c_inflight(cs[i]) < o->streams && start(cs[i], &g, path, mono_ns()) == 0) {
                }
        }
        /* only flush here: a recv() on each of -c idle connections per tick made the
         * client burn a core at half the peak, on the server's two */
        for (int i = 0; i < o->conns; i++) {
            pf[i] = (struct pollfd){h2c_fd(cs[i]), POLLIN, 0};
            if (h2c_flush(cs[i]) < 0) {
                fprintf(stderr, "seqload: connection %d lost\n", i);
                goto out;
            }
            if (h2c_want_write(cs[i])) pf[i].events |= POLLOUT;
        }
        /* open loop: sleep no later than the next call's start */
        uint64_t wait = 100000000, next = t0 + (uint64_t)(sent * gap), t = mono_ns();
        if (gap > 0 && next < last_tick + TICK_NS) next = last_tick + TICK_NS;
        if (gap > 0) wait = next > t ? next - t : 0;
        /* behind with every stream in flight: nothing can start before an answer comes
         * (ppoll wakes on it). A zero wait here spun the client on a core, taken from the
         * server's two, just when the server was behind (bench/NOTES.md, "Session 11") */
        if (full) wait = 100000000;
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        ppoll(pf, (nfds_t)o->conns, &ts, NULL);
        for (int i = 0; i < o->conns; i++)
            if (pf[i].revents && h2c_io(cs[i]) < 0) {
                fprintf(stderr, "seqload: connection %d lost\n", i);
                goto out;
            }
    }
    rc = 0;
out:
    s->secs = (double)(mono_ns() - s->measure_from_ns) / 1e9;
    for (int i = 0; i < o->conns; i++) h2c_free(cs[i]);
    free(list);
    return rc;
}

int main(int argc, char **argv)
{
    opts o;
    stats s = {0};
    if (parse(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: seqload [--target H:P] [--sequence S] [--users N] [-c C] [-m M]\n"
                        "               [-D SECS] [--warmup SECS] [--rps R] [--max N] [--track-gen 1]\n"
                        "               [--fixed-user U] [--user-file FILE] [--batch N] [--every SECS] [--sweep 1]\n"
                        "       seqload --write-request FILE --user U [--sequence S] [--max N]\n");
        return 2;
    }
    if (o.write_req) return write_request(&o);
    if (hist_init(&s.h) < 0 || (o.every > 0 && hist_init(&s.iv) < 0)) return 1;
    s.track = o.track;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = run(&o, &s);
    printf("requests=%" PRIu64 " errors=%" PRIu64 " rps=%.0f p50_us=%" PRIu64 " p99_us=%" PRIu64
           " p999_us=%" PRIu64 " max_us=%" PRIu64 " mean_body=%.0f\n",
           s.ok, s.errors, s.secs > 0 ? (double)s.ok / s.secs : 0.0, hist_q(&s.h, 0.5), hist_q(&s.h, 0.99),
           hist_q(&s.h, 0.999), s.h.max_us, s.ok ? (double)s.bytes / (double)s.ok : 0.0);
    if (s.track) {
        double w = s.new_end_min > s.old_start_max ? (double)(s.new_end_min - s.old_start_max) / 1e3 : 0;
        uint64_t at = s.new_end_min > s.mono0 ? s.real0_us + (s.new_end_min - s.mono0) / 1000 : 0;
        printf("gen_first=%" PRIu64 " gen_last=%" PRIu64 " switch_window_us=%.0f switch_unix_us=%" PRIu64
               "\n",
               s.gen_first, s.gen_last, s.gen_last != s.gen_first ? w : -1.0,
               s.gen_last != s.gen_first ? at : 0);
    }
    if (o.every > 0) interval_line(&s, s.iv_end_ns); /* the last, partial interval */
    free(s.h.b);
    free(s.iv.b);
    return rc || s.errors ? 1 : 0;
}
