/* The highest origin offset applied per (owner partition, origin partition) (see
 * origins.h). Dense per Q (an array over origin partitions, allocated when Q first needs
 * one): a producer with another partitioner spreads every partition's events over all the
 * others, so a Q that gets copies gets them from nearly every P. The pairs a batch
 * changed are listed once each, so that staging, committing and discarding touch only
 * them. */
#include "origins.h"

#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"

typedef struct {
    int64_t *stored; /* per origin partition: as stored (-1: nothing); NULL: all -1 */
    int64_t *cur;    /* the same with the batch's copies */
} qstate;

typedef struct {
    uint32_t q, p;
} pair;

struct seq_origins {
    uint32_t n;
    qstate *qs;
    pair *changed; /* pairs whose cur differs from stored, each once */
    size_t n_changed, cap;
};

seq_origins *seq_origins_new(uint32_t n_parts)
{
    seq_origins *o = calloc(1, sizeof *o);
    if (!o || !(o->qs = calloc(n_parts ? n_parts : 1, sizeof *o->qs))) {
        free(o);
        return NULL;
    }
    o->n = n_parts;
    return o;
}

static void free_q(qstate *s)
{
    free(s->stored);
    free(s->cur);
    s->stored = s->cur = NULL;
}

void seq_origins_free(seq_origins *o)
{
    if (!o) return;
    for (uint32_t q = 0; q < o->n; q++) free_q(&o->qs[q]);
    free(o->qs);
    free(o->changed);
    free(o);
}

/* q's arrays, allocated (all -1) when missing; NULL when out of memory. */
static qstate *need_q(seq_origins *o, uint32_t q)
{
    qstate *s = &o->qs[q];
    if (s->stored) return s;
    s->stored = malloc(o->n * sizeof *s->stored);
    s->cur = malloc(o->n * sizeof *s->cur);
    if (!s->stored || !s->cur) {
        free_q(s);
        return NULL;
    }
    for (uint32_t p = 0; p < o->n; p++) s->stored[p] = s->cur[p] = -1;
    return s;
}

/* Removes q's pairs from the changed list (q's state is being replaced). */
static void unlist_q(seq_origins *o, uint32_t q)
{
    size_t w = 0;
    for (size_t i = 0; i < o->n_changed; i++)
        if (o->changed[i].q != q) o->changed[w++] = o->changed[i];
    o->n_changed = w;
}

void seq_origins_forget(seq_origins *o, uint32_t q)
{
    if (q >= o->n) return;
    unlist_q(o, q);
    free_q(&o->qs[q]);
}

int seq_origins_load(seq_origins *o, seq_store *st, uint32_t q, char *err, size_t errlen)
{
    if (q >= o->n) return SEQ_OK;
    seq_origins_forget(o, q);
    qstate *s = need_q(o, q);
    if (!s) {
        seq_errf(err, errlen, "misrouted origins of partition %u: out of memory", q);
        return SEQ_EINTERNAL;
    }
    int rc = seq_store_get_origins(st, q, s->stored, o->n);
    int any = 0;
    for (uint32_t p = 0; p < o->n; p++) any |= (s->cur[p] = s->stored[p]) >= 0;
    if (!any) free_q(s); /* nothing stored: no memory until a copy comes */
    if (rc != SEQ_OK)
        seq_errf(err, errlen, "stored misrouted origins of partition %u %s", q,
                 rc == SEQ_EDATALOSS ? "damaged (kept aside)" : "unreadable");
    return rc;
}

int seq_origins_admit(seq_origins *o, uint32_t q, uint32_t p, int64_t off)
{
    if (q >= o->n || p >= o->n) return 0;
    qstate *s = need_q(o, q);
    if (!s) return -1;
    if (off <= s->cur[p]) return 1;
    if (s->cur[p] == s->stored[p]) { /* the batch's first change of this pair */
        if (o->n_changed == o->cap) {
            size_t cap = o->cap ? 2 * o->cap : 64;
            pair *c = realloc(o->changed, cap * sizeof *c);
            if (!c) return -1;
            o->changed = c;
            o->cap = cap;
        }
        o->changed[o->n_changed++] = (pair){q, p};
    }
    s->cur[p] = off;
    return 0;
}

void seq_origins_stage(seq_origins *o, seq_origins_batch_fn batch_of, void *ctx)
{
    for (size_t i = 0; i < o->n_changed; i++) {
        pair c = o->changed[i];
        seq_store_batch_set_origin(batch_of(ctx, c.q), c.q, c.p, o->qs[c.q].cur[c.p]);
    }
}

void seq_origins_committed(seq_origins *o, int64_t q)
{
    for (size_t i = 0; i < o->n_changed; i++) {
        pair c = o->changed[i];
        if (q < 0 || c.q == (uint64_t)q) o->qs[c.q].stored[c.p] = o->qs[c.q].cur[c.p];
    }
    if (q < 0) o->n_changed = 0;
}

void seq_origins_discard(seq_origins *o)
{
    for (size_t i = 0; i < o->n_changed; i++) {
        pair c = o->changed[i];
        o->qs[c.q].cur[c.p] = o->qs[c.q].stored[c.p];
    }
    o->n_changed = 0;
}

size_t seq_origins_pending(const seq_origins *o) { return o->n_changed; }

int64_t seq_origins_highest(const seq_origins *o, uint32_t q, uint32_t p)
{
    if (q >= o->n || p >= o->n || !o->qs[q].cur) return -1;
    return o->qs[q].cur[p];
}
