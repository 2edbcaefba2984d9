/* The merge policy: the last step of the read path. Given one user's stream records and
 * batch records for one sequence, the coverage map and `now`, it decides exactly what a
 * GetSequence returns (PRODUCT.md "Semantics" 1-5, "Details"). Pure: the clock is a
 * parameter, so tests pin it.
 *
 * Order of decisions, with C = now - horizon and floor = now - retention:
 *   0. records older than floor are out before anything else (so the answer does not
 *      depend on how far back the reader happened to read);
 *   1. a batch record counts only where its own generation owns its time; an id in two
 *      generations keeps the higher generation's copy;
 *   2. a stream record in covered history (t < C, owner != 0) is out, and so is one whose
 *      id the batch shows in covered history;
 *   3. a batch record at t >= C is out when the stream kept the same id;
 *   4. newest first, cut to max_length; then since/until and types; then max_events.
 * The common read (stream only, or nothing to dedup) never touches the hash table; the
 * hot one (batch only, one generation, handed newest first) is a single walk. */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

struct seq_merge_scratch {
    const seq_rec **bk; /* kept batch records; NULL once the stream's copy wins */
    uint32_t bk_cap;
    const seq_rec **sk; /* kept stream records, newest first */
    uint32_t sk_cap;
    uint64_t *slots;    /* id hash table: (hash hi 32 << 32) | (bk index + 1); 0 empty */
    uint32_t slot_alloc; /* allocated slots */
    uint32_t slot_cap;   /* slots in use by the current call (a power of two) */
    uint32_t beaten;     /* batch copies the stream's won over (NULLs in bk) this call */
};

seq_merge_scratch *seq_merge_scratch_new(void)
{
    return calloc(1, sizeof(seq_merge_scratch));
}

void seq_merge_scratch_free(seq_merge_scratch *s)
{
    if (!s) return;
    free(s->bk);
    free(s->sk);
    free(s->slots);
    free(s);
}

/* Grows *arr to hold n pointers; 0 or -1 on OOM. Never shrinks: steady state is malloc-free. */
static int grow_ptrs(const seq_rec ***arr, uint32_t *cap, uint32_t n)
{
    if (n <= *cap) return 0;
    uint32_t c = *cap ? *cap : 64;
    while (c < n) c *= 2;
    const seq_rec **p = realloc((void *)*arr, (size_t)c * sizeof *p);
    if (!p) return -1;
    *arr = p;
    *cap = c;
    return 0;
}

/* ---------- time rules ---------- */

uint64_t seq_merge_owner(const seq_merge_params *p, int64_t t)
{
    uint32_t lo = 0, hi = p->n_cov; /* first segment with start > t */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (p->cov[mid].start_ms <= t) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return 0;
    const seq_cov_seg *g = &p->cov[lo - 1];
    return t < g->end_ms ? g->gen : 0;
}

int64_t seq_merge_gap_ms(const seq_cov_seg *cov, uint32_t n, int64_t lo, int64_t hi)
{
    if (hi <= lo) return 0;
    int64_t gap = hi - lo;
    for (uint32_t i = 0; i < n; i++) {
        int64_t a = cov[i].start_ms > lo ? cov[i].start_ms : lo;
        int64_t b = cov[i].end_ms < hi ? cov[i].end_ms : hi;
        if (b > a) gap -= b - a;
    }
    return gap;
}

/* The owner of times visited in decreasing order (a batch handed in read order): a
 * cursor over the coverage instead of a binary search per record. Kept in the caller's
 * locals: the stores of kept records may alias it for the compiler otherwise. */
typedef struct {
    const seq_cov_seg *cov;
    uint32_t seg;       /* cov[seg - 1]: the last segment starting at or before t */
    int64_t start, end; /* that segment's; start > every time: not positioned yet */
    uint64_t gen;
} owner_walk;

static inline owner_walk owner_walk_start(const seq_merge_params *p)
{
    owner_walk w = {p->cov, p->n_cov, INT64_MAX, 0, 0};
    return w;
}

/* Owner of t, no greater than the previous t asked; 0 when none. */
static inline uint64_t owner_walk_at(owner_walk *w, int64_t t)
{
    if (w->start > t) {
        while (w->seg && w->cov[w->seg - 1].start_ms > t) w->seg--;
        if (!w->seg) { /* before all coverage: owned by nobody, nor anything older */
            w->start = INT64_MIN, w->end = INT64_MIN, w->gen = 0;
            return 0;
        }
        const seq_cov_seg *g = &w->cov[w->seg - 1];
        w->start = g->start_ms, w->end = g->end_ms, w->gen = g->gen;
    }
    return t < w->end ? w->gen : 0;
}

static inline int64_t floor_ms(const seq_merge_params *p)
{
    return p->now_ms - p->seq->retention_ms;
}

/* Stream record at t hidden because the batch owns that history? */
static inline int batch_owned(const seq_merge_params *p, int64_t cut, int64_t t)
{
    return p->n_cov && t < cut && seq_merge_owner(p, t) != 0;
}

int seq_merge_stream_visible(const seq_merge_params *p, int64_t t)
{
    if (p->view == SEQ_VIEW_STREAM) return t >= floor_ms(p);
    return t >= floor_ms(p) && !batch_owned(p, seq_merge_cutoff(p->now_ms, p->horizon_ms), t);
}

uint32_t seq_merge_need(const seq_merge_params *p)
{
    uint32_t len = p->seq->max_length;
    if (p->since_ms || p->until_ms || p->type_mask) return len;
    return p->max_events && p->max_events < len ? p->max_events : len;
}

int64_t seq_merge_stop_before(const seq_merge_params *p)
{
    int64_t f = floor_ms(p);
    return p->since_ms > f ? p->since_ms : f;
}

int64_t seq_merge_cutoff(int64_t now_ms, int64_t horizon_ms) { return now_ms - horizon_ms; }

void seq_merge_stream_stop(const seq_merge_params *p, uint32_t hist, int recent_batch,
                           uint32_t *need, int64_t *stop_before)
{
    if (recent_batch) {
        *need = UINT32_MAX;
        *stop_before = floor_ms(p);
        return;
    }
    uint64_t n = (uint64_t)seq_merge_need(p) + hist;
    *need = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    *stop_before = seq_merge_stop_before(p);
}

/* ---------- the cuts (step 4), fed records newest first ---------- */

typedef struct {
    const seq_merge_params *p;
    const seq_rec **out;
    uint32_t seen, n;
} cutter;

/* 1 when nothing further can be selected. */
static inline int cut_push(cutter *c, const seq_rec *r)
{
    const seq_merge_params *p = c->p;
    if (++c->seen > p->seq->max_length) return 1;
    if (p->since_ms && r->time_ms < p->since_ms) return 1; /* the rest is older still */
    if (p->until_ms && r->time_ms >= p->until_ms) return 0;
    if (p->type_mask && (r->type_idx >= 64 || !(p->type_mask >> r->type_idx & 1))) return 0;
    c->out[c->n++] = r;
    return p->max_events && c->n >= p->max_events;
}

/* No since/until/type filter: the cuts keep the first seq_merge_need() records, so the
 * walks below copy pointers without weighing each one. */
static inline int unfiltered(const seq_merge_params *p)
{
    return !p->since_ms && !p->until_ms && !p->type_mask;
}

/* Stream only (no batch record to weigh): one pass, no copies. */
static uint32_t run_stream_only(const seq_merge_params *p, const seq_rec *stream, uint32_t ns,
                                const seq_rec **out)
{
    cutter c = {p, out, 0, 0};
    int64_t fl = floor_ms(p), cut = seq_merge_cutoff(p->now_ms, p->horizon_ms);
    for (uint32_t i = 0; i < ns; i++) {
        const seq_rec *r = &stream[i];
        if (r->time_ms < fl) break;
        if (batch_owned(p, cut, r->time_ms)) continue;
        if (cut_push(&c, r)) break;
    }
    return c.n;
}

/* ---------- id hash table over the kept batch records ---------- */

/* 64x64->128 multiply, folded: one multiply per word mixes well enough for a table. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Ids are short (derived ones are 17 bytes): a few 8-byte loads, the last one
 * overlapping, so no byte loop. Latency matters more than throughput here. */
static inline uint64_t id_hash(const char *id, uint32_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w = 0;
    if (n >= 8) {
        const char *last = id + n - 8;
        for (; id < last; id += 8) {
            memcpy(&w, id, 8);
            h = mum(h ^ w, 0xa0761d6478bd642full);
        }
        memcpy(&w, last, 8);
    } else {
        for (uint32_t i = 0; i < n; i++) w |= (uint64_t)(uint8_t)id[i] << (8 * i);
    }
    return mum(h ^ w, 0xe7037ed1a0b428dbull);
}

static inline int id_eq(const char *a, const char *b, uint32_t n)
{
    uint64_t x, y;
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    while (n--)
        if (*a++ != *b++) return 0;
    return 1;
}

static int table_reset(seq_merge_scratch *s, uint32_t n)
{
    uint32_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (cap > s->slot_alloc) {
        uint64_t *t = realloc(s->slots, (size_t)cap * sizeof *t);
        if (!t) return -1;
        s->slots = t;
        s->slot_alloc = cap;
    }
    memset(s->slots, 0, (size_t)cap * sizeof *s->slots);
    s->slot_cap = cap;
    return 0;
}

#define TAG_MASK 0xffffffff00000000ull
#define LINEAR_DEDUP_MAX 512 /* stream x batch records up to which a scan beats hashing */

/* Slot holding id (its value non-zero) or the empty slot where it would go; *tag
 * receives the hash bits a new slot value carries. */
static inline uint64_t *table_find(seq_merge_scratch *s, const char *id, uint32_t len,
                                   uint64_t *tag)
{
    uint64_t h = id_hash(id, len);
    uint32_t mask = s->slot_cap - 1;
    *tag = h & TAG_MASK;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        uint64_t v = s->slots[i];
        if (v == 0) return &s->slots[i];
        if ((v & TAG_MASK) != *tag) continue;
        const seq_rec *r = s->bk[(uint32_t)v - 1];
        if (r && r->id_len == len && id_eq(r->id, id, len)) return &s->slots[i];
    }
}

/* Indexes the n kept batch records by id (one generation: ids are unique). */
static int table_index(seq_merge_scratch *s, uint32_t n)
{
    if (table_reset(s, n) < 0) return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t tag, *slot = table_find(s, s->bk[i]->id, s->bk[i]->id_len, &tag);
        if (*slot == 0) *slot = tag | (i + 1);
    }
    return 0;
}

/* ---------- general path ---------- */

/* Step 0 and 1: batch records that count, deduplicated across generations. Returns the
 * count, -1 on OOM. `table` says whether ids were indexed (needed for any dedup). */
static int64_t keep_batch(const seq_merge_params *p, const seq_rec *batch, uint32_t nb,
                          int table, int ordered, seq_merge_scratch *s)
{
    int64_t fl = floor_ms(p);
    uint32_t n = 0;
    if (grow_ptrs(&s->bk, &s->bk_cap, nb) < 0) return -1;
    if (table && table_reset(s, nb) < 0) return -1;
    owner_walk w = owner_walk_start(p);
    for (uint32_t i = 0; i < nb; i++) {
        const seq_rec *r = &batch[i];
        if (r->time_ms < fl) {
            if (ordered) break; /* the rest is older still */
            continue;
        }
        uint64_t owner = ordered ? owner_walk_at(&w, r->time_ms) : seq_merge_owner(p, r->time_ms);
        if (owner != r->gen) continue;
        if (!table) {
            s->bk[n++] = r;
            continue;
        }
        uint64_t tag;
        uint64_t *slot = table_find(s, r->id, r->id_len, &tag);
        if (*slot == 0) {
            *slot = tag | (n + 1);
            s->bk[n++] = r;
        } else if (s->bk[(uint32_t)*slot - 1]->gen < r->gen) {
            s->bk[(uint32_t)*slot - 1] = r; /* the newer generation's copy */
        }
    }
    return n;
}

/* The kept batch record with the stream record's id: through the table when ids were
 * indexed, else (few stream records, one generation) by a scan of the kept ones, which
 * costs less than hashing every batch id. NULL when none. */
static const seq_rec **batch_copy(seq_merge_scratch *s, uint32_t nbk, int table, const seq_rec *r)
{
    if (table) {
        uint64_t tag;
        uint64_t *slot = table_find(s, r->id, r->id_len, &tag);
        return *slot ? &s->bk[(uint32_t)*slot - 1] : NULL;
    }
    for (uint32_t i = 0; i < nbk; i++) {
        const seq_rec *b = s->bk[i];
        if (b && b->id_len == r->id_len && id_eq(b->id, r->id, r->id_len)) return &s->bk[i];
    }
    return NULL;
}

/* How many kept stream records keep_stream may stop at. Those past the first
 * seq_merge_need() cannot reach the answer (older than that many kept ones) and matter
 * otherwise only by beating a batch copy at t >= C: none when every kept batch record
 * is older than C. UINT32_MAX: no stop. */
static uint32_t stream_stop(const seq_merge_params *p, uint32_t ns, uint32_t nbk,
                            const seq_merge_scratch *s)
{
    uint32_t need = seq_merge_need(p);
    if (ns <= need) return UINT32_MAX;
    int64_t cut = seq_merge_cutoff(p->now_ms, p->horizon_ms);
    for (uint32_t i = 0; i < nbk; i++)
        if (s->bk[i]->time_ms >= cut) return UINT32_MAX;
    return need;
}

/* Step 0 and 2 for the stream, and step 3 (marks batch copies the stream beats). */
static int64_t keep_stream(const seq_merge_params *p, const seq_rec *stream, uint32_t ns,
                           uint32_t nbk, int table, seq_merge_scratch *s)
{
    int64_t fl = floor_ms(p), cut = seq_merge_cutoff(p->now_ms, p->horizon_ms);
    uint32_t n = 0, stop = stream_stop(p, ns, nbk, s);
    if (grow_ptrs(&s->sk, &s->sk_cap, ns) < 0) return -1;
    for (uint32_t i = 0; i < ns && n < stop; i++) {
        const seq_rec *r = &stream[i];
        if (r->time_ms < fl) break;
        if (batch_owned(p, cut, r->time_ms)) continue;
        const seq_rec **b = nbk ? batch_copy(s, nbk, table, r) : NULL;
        if (b && *b) {
            if ((*b)->time_ms < cut) continue; /* the batch shows it in history */
            *b = NULL;                         /* recent: the stream's copy wins */
            s->beaten++;
        }
        s->sk[n++] = r;
    }
    return n;
}

#define FEW_STREAM 64 /* stream records up to which keep_stream_few pairs ids */

/* Steps 0, 2 and 3 for a few stream records against one generation: ids are paired from
 * the stream's side, a 64-bit set of a cheap hash of each visible id, so a batch id is
 * glanced at (one bit) instead of hashed into a table. */
static int64_t keep_stream_few(const seq_merge_params *p, const seq_rec *stream, uint32_t ns,
                               uint32_t nbk, seq_merge_scratch *s)
{
    int64_t fl = floor_ms(p), cut = seq_merge_cutoff(p->now_ms, p->horizon_ms);
    uint64_t vis = 0, hidden = 0, mask = 0; /* bit i: stream[i]; mask: seq_id_bit */
    for (uint32_t i = 0; i < ns; i++) {
        const seq_rec *r = &stream[i];
        if (r->time_ms < fl) break;
        if (batch_owned(p, cut, r->time_ms)) continue;
        vis |= 1ull << i;
        mask |= 1ull << seq_id_bit(r->id, r->id_len);
    }
    for (uint32_t k = 0; k < nbk; k++) {
        const seq_rec *b = s->bk[k];
        if (!(mask >> seq_id_bit(b->id, b->id_len) & 1)) continue;
        for (uint64_t v = vis; v; v &= v - 1) {
            const seq_rec *r = &stream[__builtin_ctzll(v)];
            if (r->id_len != b->id_len || !id_eq(r->id, b->id, b->id_len)) continue;
            if (b->time_ms < cut) {
                hidden |= v & -v; /* the batch shows it in history */
            } else {
                s->bk[k] = NULL; /* recent: the stream's copy wins */
                s->beaten++;
            }
            break;
        }
    }
    if (grow_ptrs(&s->sk, &s->sk_cap, ns) < 0) return -1;
    uint32_t n = 0;
    for (uint64_t v = vis & ~hidden; v; v &= v - 1) s->sk[n++] = &stream[__builtin_ctzll(v)];
    return n;
}

/* Newer first in read order (seq_rec_cmp < 0), with the common case (different times)
 * decided inline. */
static inline int before(const seq_rec *a, const seq_rec *b)
{
    if (a->time_ms != b->time_ms) return a->time_ms > b->time_ms;
    return seq_rec_cmp(a, b) < 0;
}

static int cmp_ptr(const void *a, const void *b)
{
    return seq_rec_cmp(*(const seq_rec *const *)a, *(const seq_rec *const *)b);
}

/* Drops the NULLs and sorts newest first; returns the new count. */
static uint32_t compact_sort(const seq_rec **v, uint32_t n)
{
    uint32_t m = 0;
    int sorted = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (!v[i]) continue;
        if (m && before(v[i], v[m - 1])) sorted = 0;
        v[m++] = v[i];
    }
    if (!sorted) qsort((void *)v, m, sizeof *v, cmp_ptr);
    return m;
}

/* Step 4 over two sorted lists. */
static uint32_t merge_cut(const seq_merge_params *p, const seq_rec **a, uint32_t na,
                          const seq_rec **b, uint32_t nb, const seq_rec **out)
{
    cutter c = {p, out, 0, 0};
    uint32_t i = 0, j = 0, plain = unfiltered(p), need = seq_merge_need(p);
    while (i < na || j < nb) {
        if (plain && (i == na || j == nb)) { /* one list left: the rest of it, in order */
            const seq_rec **rest = i == na ? b + j : a + i;
            uint32_t k = i == na ? nb - j : na - i;
            if (k > need - c.n) k = need - c.n;
            memcpy((void *)(out + c.n), (const void *)rest, (size_t)k * sizeof *out);
            return c.n + k;
        }
        const seq_rec *r;
        if (j == nb || (i < na && !before(b[j], a[i]))) r = a[i++];
        else r = b[j++];
        if (plain) {
            if (c.n == need) break;
            out[c.n++] = r;
        } else if (cut_push(&c, r)) {
            break;
        }
    }
    return c.n;
}


/* How the batch was handed: in read order (the reader's way), and of one generation
 * (ids then unique). One pass. */
enum { IN_ORDER = 1, ONE_GEN = 2 };

static int batch_shape(const seq_rec *batch, uint32_t nb)
{
    /* the common case in one short loop: one generation, times strictly decreasing */
    uint32_t i = 1;
    uint64_t gen = batch[0].gen;
    for (int64_t prev = batch[0].time_ms; i < nb; prev = batch[i++].time_ms)
        if (batch[i].gen != gen || batch[i].time_ms >= prev) break;
    if (i >= nb) return IN_ORDER | ONE_GEN;
    /* the records before i passed both checks: each goes on from there until it fails */
    int ordered = 1, one_gen = 1;
    for (uint32_t j = i; j < nb && ordered; j++) ordered = before(&batch[j - 1], &batch[j]);
    for (uint32_t j = i; j < nb && one_gen; j++) one_gen = batch[j].gen == gen;
    return (ordered ? IN_ORDER : 0) | (one_gen ? ONE_GEN : 0);
}

/* One generation in read order: steps 0 and 1 in one walk. Nothing to dedup, nothing
 * to sort; the owner comes from a cursor over the coverage (times only decrease), once
 * per run of records inside one segment of the generation, and the run is taken whole.
 * Returns the count, -1 on OOM. */
static int64_t keep_one_gen(const seq_merge_params *p, const seq_rec *batch, uint32_t nb,
                            uint32_t max, seq_merge_scratch *s)
{
    int64_t fl = floor_ms(p);
    uint32_t n = 0, i = 0;
    if (grow_ptrs(&s->bk, &s->bk_cap, nb) < 0) return -1;
    const seq_rec **bk = s->bk;
    owner_walk w = owner_walk_start(p);
    uint64_t gen = nb ? batch[0].gen : 0;
    while (i < nb && n < max) {
        int64_t t = batch[i].time_ms;
        if (t < fl) break;
        uint64_t owner = owner_walk_at(&w, t);
        if (!w.seg) break; /* before all coverage: nothing older is owned either */
        if (owner != gen) {
            i++;
            continue;
        }
        /* t < the segment's end, so is every later time: owned down to its start */
        int64_t lo = w.start > fl ? w.start : fl;
        for (; i < nb && n < max && batch[i].time_ms >= lo; i++) bk[n++] = &batch[i];
    }
    return n;
}

/* Batch only, one generation, in read order: the kept records are the answer's order. */
static uint32_t run_one_gen(const seq_merge_params *p, uint32_t nbk, const seq_merge_scratch *s,
                            const seq_rec **out)
{
    if (unfiltered(p)) { /* keep_one_gen stopped at seq_merge_need() */
        memcpy((void *)out, (const void *)s->bk, (size_t)nbk * sizeof *out);
        return nbk;
    }
    cutter c = {p, out, 0, 0};
    for (uint32_t i = 0; i < nbk; i++)
        if (cut_push(&c, s->bk[i])) break;
    return c.n;
}

/* Drops the NULLs (batch copies the stream beat), keeping the order. */
static uint32_t compact(const seq_rec **v, uint32_t n)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (v[i]) v[m++] = v[i];
    return m;
}

uint32_t seq_merge_run(const seq_merge_params *p, const seq_rec *stream, uint32_t ns,
                       const seq_rec *batch, uint32_t nb, const seq_rec **out,
                       seq_merge_scratch *s)
{
    if (p->view == SEQ_VIEW_STREAM) { /* as if no batch were committed */
        seq_merge_params q = *p;
        q.cov = NULL, q.n_cov = 0;
        return run_stream_only(&q, stream, ns, out);
    }
    if (p->view == SEQ_VIEW_BATCH) ns = 0; /* the batch's records over all their coverage */
    if (nb == 0 || p->n_cov == 0) return run_stream_only(p, stream, ns, out);
    /* the reader hands the batch over in read order; one generation is the common case */
    int shape = batch_shape(batch, nb), one = shape == (IN_ORDER | ONE_GEN);
    /* Ids matter only when two sources could hold the same one; a few stream records
     * against one generation are paired from the stream's side, or by a scan when both
     * sides are small, instead of through an id table. */
    int few = one && ns <= FEW_STREAM;
    int table = !few && ((uint64_t)ns * nb > LINEAR_DEDUP_MAX || !(shape & ONE_GEN));
    /* Batch only and unfiltered: the records past the answer's count are never looked at.
     * With stream records every kept one counts (its id may hide a stream copy). */
    uint32_t max = ns == 0 && unfiltered(p) ? seq_merge_need(p) : UINT32_MAX;
    int64_t nbk = one ? keep_one_gen(p, batch, nb, max, s)
                      : keep_batch(p, batch, nb, table, shape & IN_ORDER, s);
    if (nbk < 0) return 0; /* OOM: an empty answer rather than a wrong one */
    if (one && table && table_index(s, (uint32_t)nbk) < 0) return 0;
    if (ns == 0 && one) return run_one_gen(p, (uint32_t)nbk, s, out);
    if (nbk == 0) return run_stream_only(p, stream, ns, out);
    s->beaten = 0;
    int64_t nsk = few ? keep_stream_few(p, stream, ns, (uint32_t)nbk, s)
                      : keep_stream(p, stream, ns, (uint32_t)nbk, table, s);
    if (nsk < 0) return 0;
    /* several generations: a newer generation's copy takes the older one's place */
    uint32_t m = !one ? compact_sort(s->bk, (uint32_t)nbk)
                 : s->beaten ? compact(s->bk, (uint32_t)nbk) : (uint32_t)nbk;
    return merge_cut(p, s->sk, (uint32_t)nsk, s->bk, m, out);
}
