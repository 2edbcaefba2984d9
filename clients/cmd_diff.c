/* seqctl diff: how far the two paths disagree (PRODUCT.md "Shadow diff"). For each user,
 * the STREAM_ONLY and BATCH_ONLY answers over [since, until) (each cut to max_length by
 * the server first) are compared by event_id, within the committed coverage only (from
 * /status: outside coverage there is no batch to disagree with). Users go in chunks of
 * BatchGetSequences (two entries per user), sized so that a response stays well under
 * the message limit; progress on stderr for long runs. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2client.h"
#include "seqctl.h"
#include "seqd/v1/seqd.pb-c.h"
#include "timearg.h"
#include "userlist.h"

#define MAX_USERS 10000000 /* a list expanding past this is refused */
#define TOP 10

typedef struct {
    uint64_t *v;
    size_t n;
} user_list;

typedef struct {
    uint64_t user, only_batch, only_stream, different;
} user_diff;

typedef struct {
    const char *sequence;
    int64_t since, until;
    int have_since, have_until, json;
    user_list users;
    /* from /status */
    uint32_t max_length;
    int64_t (*cov)[2];
    size_t n_cov;
    /* counts */
    uint64_t n_users, both, only_batch, only_stream, different, full_views;
    user_diff top[TOP];
    size_t n_top;
} diff_run;

/* "1-1000,42" (userlist.h). 0 or the usage exit code. */
static int parse_users(const char *text, user_list *l)
{
    char err[128];
    if (seqc_parse_users(text, MAX_USERS, &l->v, &l->n, err, sizeof err) < 0)
        return seqc_usage_error("--users: %s", err);
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    seq_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (seq_buf_append(&b, chunk, n) < 0) break;
    fclose(f);
    if (seq_buf_append(&b, "", 1) < 0) {
        seq_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

static int parse_diff(int argc, char **argv, diff_run *d)
{
    const char *users = NULL;
    char err[256];
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (strcmp(argv[i], "--json") == 0) {
            d->json = 1;
            continue;
        }
        if ((r = seqc_opt(argc, argv, &i, "sequence", &v)) == 1) d->sequence = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "users", &v)) == 1) users = v;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "since", &v)) == 1)
            r = seqc_parse_time(v, seq_now_ms(), &d->since, err, sizeof err) == 0
                    ? (d->have_since = 1)
                    : -2;
        else if (r == 0 && (r = seqc_opt(argc, argv, &i, "until", &v)) == 1)
            r = seqc_parse_time(v, seq_now_ms(), &d->until, err, sizeof err) == 0
                    ? (d->have_until = 1)
                    : -2;
        else if (r == 0) return seqc_usage_error("diff: unexpected argument %s", argv[i]);
        if (r == -1) return seqc_usage_error("%s needs a value", argv[i]);
        if (r == -2) return seqc_usage_error("--since/--until: %s", err);
    }
    if (!d->sequence || !d->have_since || !d->have_until || !users)
        return seqc_usage_error("diff needs --sequence, --since, --until and --users");
    if (d->since >= d->until)
        return seqc_usage_error("diff: the window [%" PRId64 ", %" PRId64 ") is empty", d->since,
                                d->until);
    if (users[0] != '@') return parse_users(users, &d->users);
    char *text = read_file(users + 1);
    if (!text) return seqc_usage_error("--users: cannot read %s", users + 1);
    int rc = parse_users(text, &d->users);
    free(text);
    return rc;
}

/* max_length and the committed coverage of the sequence, from /status. */
static int load_status(const seqc_ctx *ctx, diff_run *d)
{
    char err[256];
    json_t *st = seqc_fetch_status(ctx, err, sizeof err);
    if (!st) return seqc_fail("cannot read /status from the admin port: %s", err);
    json_t *def = seqc_status_sequence_def(st, d->sequence), *seq = NULL, *x;
    size_t i;
    json_array_foreach(json_object_get(st, "sequences"), i, x) {
        const char *n = json_string_value(json_object_get(x, "name"));
        if (n && strcmp(n, d->sequence) == 0) seq = x;
    }
    int rc = SEQC_EXIT_OK;
    if (!def || !seq) {
        rc = seqc_fail("NOT_FOUND: unknown sequence '%s'", d->sequence);
        goto out;
    }
    d->max_length = (uint32_t)json_integer_value(json_object_get(def, "max_length"));
    json_t *cov = json_object_get(seq, "coverage");
    d->n_cov = json_array_size(cov);
    d->cov = calloc(d->n_cov ? d->n_cov : 1, sizeof *d->cov);
    if (!d->cov) {
        rc = seqc_fail("out of memory");
        goto out;
    }
    json_array_foreach(cov, i, x) {
        d->cov[i][0] = json_integer_value(json_object_get(x, "start_ms"));
        d->cov[i][1] = json_integer_value(json_object_get(x, "end_ms"));
    }
out:
    json_decref(st);
    return rc;
}

static int covered(const diff_run *d, int64_t t)
{
    for (size_t i = 0; i < d->n_cov; i++)
        if (t >= d->cov[i][0] && t < d->cov[i][1]) return 1;
    return 0;
}

/* Event indexes of a response that count (inside the coverage), sorted by id. */
typedef struct {
    const Seqd__V1__GetSequenceResponse *r;
    size_t *idx, n;
} side;

static const Seqd__V1__GetSequenceResponse *sort_ctx;

static int cmp_id(const void *a, const void *b)
{
    return strcmp(sort_ctx->event_ids[*(const size_t *)a], sort_ctx->event_ids[*(const size_t *)b]);
}

static int make_side(const diff_run *d, const Seqd__V1__GetSequenceResponse *r, side *s)
{
    s->r = r;
    s->n = 0;
    s->idx = malloc(sizeof *s->idx * (r->n_timestamps_ms + 1));
    if (!s->idx || r->n_event_ids != r->n_timestamps_ms) return -1;
    for (size_t i = 0; i < r->n_timestamps_ms; i++)
        if (covered(d, r->timestamps_ms[i])) s->idx[s->n++] = i;
    sort_ctx = r;
    qsort(s->idx, s->n, sizeof *s->idx, cmp_id);
    return 0;
}

static int same_event(const Seqd__V1__GetSequenceResponse *a, size_t i,
                      const Seqd__V1__GetSequenceResponse *b, size_t j)
{
    if (a->timestamps_ms[i] != b->timestamps_ms[j]) return 0;
    if (i >= a->n_item_ids || j >= b->n_item_ids || a->item_ids[i] != b->item_ids[j]) return 0;
    if (i >= a->n_event_types || j >= b->n_event_types || a->event_types[i] != b->event_types[j])
        return 0;
    for (size_t c = 0; c < a->n_columns && c < b->n_columns; c++) {
        double x = i < a->columns[c]->n_values ? a->columns[c]->values[i] : NAN;
        double y = j < b->columns[c]->n_values ? b->columns[c]->values[j] : NAN;
        if (!(x == y || (isnan(x) && isnan(y)))) return 0;
    }
    return 1;
}

static void note_top(diff_run *d, const user_diff *u)
{
    uint64_t w = u->only_batch + u->only_stream + u->different;
    if (!w) return;
    size_t k = d->n_top < TOP ? d->n_top++ : TOP - 1;
    if (k == TOP - 1 && d->n_top == TOP) {
        const user_diff *l = &d->top[TOP - 1];
        if (l->only_batch + l->only_stream + l->different >= w) return;
    }
    d->top[k] = *u;
    for (; k > 0; k--) { /* keep the list sorted, most first */
        const user_diff *p = &d->top[k - 1];
        if (p->only_batch + p->only_stream + p->different >= w) break;
        user_diff t = d->top[k];
        d->top[k] = d->top[k - 1];
        d->top[k - 1] = t;
    }
}

static int compare_user(diff_run *d, const Seqd__V1__GetSequenceResponse *st,
                        const Seqd__V1__GetSequenceResponse *bt)
{
    side a, b;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
    int rc = make_side(d, st, &a) < 0 || make_side(d, bt, &b) < 0 ? -1 : 0;
    user_diff u = {st->user_id, 0, 0, 0};
    size_t i = 0, j = 0;
    while (rc == 0 && (i < a.n || j < b.n)) {
        int c = i == a.n ? 1 : j == b.n ? -1 : strcmp(st->event_ids[a.idx[i]], bt->event_ids[b.idx[j]]);
        if (c < 0) u.only_stream++, i++;
        else if (c > 0) u.only_batch++, j++;
        else {
            d->both++;
            u.different += !same_event(st, a.idx[i], bt, b.idx[j]);
            i++, j++;
        }
    }
    d->full_views += (d->max_length && st->n_timestamps_ms >= d->max_length) +
                     (d->max_length && bt->n_timestamps_ms >= d->max_length);
    d->only_batch += u.only_batch, d->only_stream += u.only_stream, d->different += u.different;
    d->n_users++;
    note_top(d, &u);
    free(a.idx);
    free(b.idx);
    return rc;
}

/* One BatchGetSequences call for users[from, to): two entries per user. */
static int diff_chunk(const seqc_ctx *ctx, diff_run *d, size_t from, size_t to)
{
    size_t n = 2 * (to - from);
    Seqd__V1__GetSequenceRequest *e = calloc(n, sizeof *e);
    Seqd__V1__GetSequenceRequest **ep = calloc(n, sizeof *ep);
    Seqd__V1__BatchGetSequencesRequest req = SEQD__V1__BATCH_GET_SEQUENCES_REQUEST__INIT;
    uint8_t *buf = NULL;
    seqc_grpc_result res = {0};
    char err[256];
    int rc = SEQC_EXIT_FAIL;
    if (!e || !ep) {
        rc = seqc_fail("out of memory");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        seqd__v1__get_sequence_request__init(&e[k]);
        e[k].user_id = d->users.v[from + k / 2];
        e[k].sequence = (char *)d->sequence;
        e[k].since_ms = d->since, e[k].until_ms = d->until;
        e[k].view = k % 2 ? SEQD__V1__VIEW__BATCH_ONLY : SEQD__V1__VIEW__STREAM_ONLY;
        e[k].include_event_ids = 1;
        ep[k] = &e[k];
    }
    req.requests = ep, req.n_requests = n;
    size_t len = seqd__v1__batch_get_sequences_request__get_packed_size(&req);
    if (!(buf = malloc(len ? len : 1))) {
        rc = seqc_fail("out of memory");
        goto out;
    }
    seqd__v1__batch_get_sequences_request__pack(&req, buf);
    if (seqc_grpc_unary(ctx->server, "/seqd.v1.SequenceService/BatchGetSequences", buf, len,
                        NULL, 0, 120000, &res, err, sizeof err) != 0) {
        rc = seqc_fail("UNAVAILABLE: %s", err);
        goto out;
    }
    if (res.status != 0) {
        rc = seqc_fail("%s: %s", seqc_grpc_code_name(res.status), res.message);
        goto out;
    }
    Seqd__V1__BatchGetSequencesResponse *r =
        seqd__v1__batch_get_sequences_response__unpack(NULL, res.body.len, res.body.data);
    if (!r || r->n_responses != n) {
        rc = seqc_fail("the server's response does not decode as BatchGetSequencesResponse");
    } else {
        rc = SEQC_EXIT_OK;
        for (size_t k = 0; k < n && rc == SEQC_EXIT_OK; k += 2)
            if (compare_user(d, r->responses[k], r->responses[k + 1]) < 0)
                rc = seqc_fail("out of memory, or a response without event ids");
    }
    if (r) seqd__v1__batch_get_sequences_response__free_unpacked(r, NULL);
out:
    seq_buf_free(&res.body);
    free(buf);
    free(e);
    free(ep);
    return rc;
}

static double agreement(const diff_run *d)
{
    uint64_t all = d->both + d->only_batch + d->only_stream;
    return all ? (double)(d->both - d->different) / (double)all : 1.0;
}

static void print_report(const diff_run *d)
{
    if (d->json) {
        json_t *top = json_array();
        for (size_t i = 0; i < d->n_top; i++)
            json_array_append_new(top, json_pack("{s:o,s:I,s:I,s:I}", "user",
                                                 seqc_json_u64(d->top[i].user), "only_batch",
                                                 (json_int_t)d->top[i].only_batch, "only_stream",
                                                 (json_int_t)d->top[i].only_stream, "different",
                                                 (json_int_t)d->top[i].different));
        json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:o}", "sequence",
                              d->sequence, "since_ms", (json_int_t)d->since, "until_ms",
                              (json_int_t)d->until, "users", (json_int_t)d->n_users, "both",
                              (json_int_t)d->both, "only_batch", (json_int_t)d->only_batch,
                              "only_stream", (json_int_t)d->only_stream, "different",
                              (json_int_t)d->different, "agreement", agreement(d),
                              "full_views", (json_int_t)d->full_views, "top", top);
        json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(o);
        return;
    }
    printf("diff of %s over [%" PRId64 ", %" PRId64 "), inside the committed coverage\n",
           d->sequence, d->since, d->until);
    printf("  users compared   %" PRIu64 "\n", d->n_users);
    printf("  in both          %" PRIu64 "\n", d->both);
    printf("  only in batch    %" PRIu64 "   (late events and corrections only the batch has)\n",
           d->only_batch);
    printf("  only in stream   %" PRIu64 "   (events the batch does not have)\n", d->only_stream);
    printf("  in both, differ  %" PRIu64 "   (time, item, type or a column)\n", d->different);
    printf("  agreement        %.4f\n", agreement(d));
    if (d->n_top) {
        printf("users that differ most:\n  %20s  %10s  %11s  %9s\n", "user", "only_batch",
               "only_stream", "different");
        for (size_t i = 0; i < d->n_top; i++)
            printf("  %20" PRIu64 "  %10" PRIu64 "  %11" PRIu64 "  %9" PRIu64 "\n", d->top[i].user,
                   d->top[i].only_batch, d->top[i].only_stream, d->top[i].different);
    }
}

int seqc_cmd_diff(const seqc_ctx *ctx, int argc, char **argv)
{
    diff_run d = {0};
    int rc = parse_diff(argc, argv, &d);
    if (rc == 0) rc = load_status(ctx, &d);
    /* two views of up to max_length events of ~100 bytes each per user: ~2 MB a call */
    size_t per = d.max_length ? (size_t)(2u << 20) / (2 * (size_t)d.max_length * 100) : 256;
    if (per < 1) per = 1;
    if (per > 256) per = 256;
    for (size_t from = 0, reported = 0; rc == 0 && from < d.users.n; from += per) {
        size_t to = from + per < d.users.n ? from + per : d.users.n;
        rc = diff_chunk(ctx, &d, from, to);
        if (d.users.n > per && (to - reported >= 10000 || to == d.users.n)) {
            fprintf(stderr, "diff: %zu/%zu users\n", to, d.users.n);
            reported = to;
        }
    }
    if (rc == 0 && d.full_views)
        fprintf(stderr,
                "warning: %" PRIu64 " view(s) came back full (max_length %u): older events in "
                "the window were cut before the comparison\n",
                d.full_views, d.max_length);
    if (rc == 0) print_report(&d);
    free(d.users.v);
    free(d.cov);
    return rc;
}
