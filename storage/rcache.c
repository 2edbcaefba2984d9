/* Record cache (see rcache.h): a sharded hash table with one LRU list and one mutex per
 * shard. Readers on every gRPC worker and the consumer's forgets meet only on the shard
 * of the user concerned; a lookup holds the lock for a hash probe and a reference
 * count increment: readers use the entry's memory in place, after the unlock. */
#include "rcache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64
#define ENTRY_OVERHEAD 64 /* entry header + bucket slot, counted against the capacity */

/* data is immutable once in the table. refs: the table's reference (until it drops the
 * entry) plus one per reader holding it. stream_stale: a stream write came after the
 * entry was made (set by forget, read under the shard's lock only). */
typedef struct seq_rcache_entry {
    atomic_uint refs;
    struct seq_rcache_entry *hnext;       /* hash chain */
    struct seq_rcache_entry *prev, *next; /* LRU, most recent at head */
    uint64_t user, cov_sig;
    uint32_t seq;
    uint32_t len;
    uint8_t stream_stale;
    uint8_t data[];
} entry;

static void unref(entry *e)
{
    /* acq_rel: the freeing thread must see every other holder's reads as done */
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) free(e);
}

typedef struct {
    pthread_mutex_t mu;
    entry **tab;
    uint32_t nbuckets, n;
    entry *head, *tail;
    size_t bytes, cap;
    uint64_t version;
    uint64_t hits, misses, stale, written, prepared;
} shard;

struct seq_rcache {
    shard s[SHARDS];
};

static uint64_t mix(uint32_t seq, uint64_t user)
{
    uint64_t h = user * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seq << 32 | seq);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static shard *shard_of(seq_rcache *c, uint64_t h) { return &c->s[h % SHARDS]; }
static entry **slot_of(shard *s, uint64_t h) { return &s->tab[(h / SHARDS) & (s->nbuckets - 1)]; }

seq_rcache *seq_rcache_new(size_t capacity_bytes)
{
    if (!capacity_bytes) return NULL;
    seq_rcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->s[i];
        pthread_mutex_init(&s->mu, NULL);
        s->cap = capacity_bytes / SHARDS;
        if (s->cap < 8 * 2 * ENTRY_OVERHEAD) s->cap = 8 * 2 * ENTRY_OVERHEAD;
        s->nbuckets = 256;
        if (!(s->tab = calloc(s->nbuckets, sizeof *s->tab))) {
            seq_rcache_free(c);
            return NULL;
        }
    }
    return c;
}

void seq_rcache_free(seq_rcache *c)
{
    if (!c) return;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->s[i];
        for (entry *e = s->head, *next; e; e = next) {
            next = e->next;
            unref(e);
        }
        free(s->tab);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

uint64_t seq_rcache_cov_sig(const seq_cov_seg *cov, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n; /* FNV-1a over the segments' fields */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t f[3] = {(uint64_t)cov[i].start_ms, (uint64_t)cov[i].end_ms, cov[i].gen};
        for (int j = 0; j < 3; j++) {
            h ^= f[j];
            h *= 0x100000001b3ull;
            h ^= h >> 31;
        }
    }
    return h;
}

/* ---- shard internals; the shard's lock is held ---- */

static entry **find(shard *s, uint64_t h, uint32_t seq, uint64_t user)
{
    entry **p = slot_of(s, h);
    while (*p && ((*p)->user != user || (*p)->seq != seq)) p = &(*p)->hnext;
    return p;
}

static void lru_unlink(shard *s, entry *e)
{
    if (e->prev) e->prev->next = e->next;
    else s->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else s->tail = e->prev;
}

static void lru_push(shard *s, entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e;
    else s->tail = e;
    s->head = e;
}

static void drop(shard *s, entry **p)
{
    entry *e = *p;
    *p = e->hnext;
    lru_unlink(s, e);
    s->bytes -= e->len + ENTRY_OVERHEAD;
    s->n--;
    unref(e); /* a reader holding it frees it on release */
}

static void evict_to(shard *s, size_t room)
{
    while (s->tail && s->bytes + room > s->cap) {
        entry *t = s->tail;
        drop(s, find(s, mix(t->seq, t->user), t->seq, t->user));
    }
}

/* Doubles the table when it holds more entries than buckets; on OOM it stays as it is. */
static void grow(shard *s)
{
    if (s->n < s->nbuckets) return;
    uint32_t nb = s->nbuckets * 2;
    entry **tab = calloc(nb, sizeof *tab);
    if (!tab) return;
    for (uint32_t i = 0; i < s->nbuckets; i++)
        for (entry *e = s->tab[i], *next; e; e = next) {
            next = e->hnext;
            entry **slot = &tab[(mix(e->seq, e->user) / SHARDS) & (nb - 1)];
            e->hnext = *slot;
            *slot = e;
        }
    free(s->tab);
    s->tab = tab;
    s->nbuckets = nb;
}

/* ---- API ---- */

size_t seq_rcache_max_entry(const seq_rcache *c) { return c->s[0].cap / 8 - ENTRY_OVERHEAD; }

int seq_rcache_get_stale(seq_rcache *c, uint32_t seq, uint64_t user, uint64_t cov_sig,
                         const seq_rcache_entry **out, uint64_t *version,
                         const seq_rcache_entry **stale, int *stream_ok)
{
    uint64_t h = mix(seq, user);
    shard *s = shard_of(c, h);
    int hit = 0;
    if (stale) *stale = NULL;
    pthread_mutex_lock(&s->mu);
    *version = s->version;
    entry *e = *find(s, h, seq, user);
    if (e && ((e->cov_sig == cov_sig && !e->stream_stale) || stale)) {
        /* relaxed: the table's reference keeps it alive while the lock is held */
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        lru_unlink(s, e);
        lru_push(s, e);
        hit = e->cov_sig == cov_sig && !e->stream_stale;
        if (hit) {
            *out = e;
        } else {
            *stale = e;
            *stream_ok = !e->stream_stale;
            s->stale++;
        }
    }
    if (hit) s->hits++;
    else s->misses++;
    pthread_mutex_unlock(&s->mu);
    return hit;
}

int seq_rcache_get(seq_rcache *c, uint32_t seq, uint64_t user, uint64_t cov_sig,
                   const seq_rcache_entry **e, uint64_t *version)
{
    return seq_rcache_get_stale(c, seq, user, cov_sig, e, version, NULL, NULL);
}

const uint8_t *seq_rcache_entry_data(const seq_rcache_entry *e, size_t *len)
{
    *len = e->len;
    return e->data;
}

void seq_rcache_release(const seq_rcache_entry *e)
{
    if (e) unref((entry *)e);
}

/* A new entry holding a copy of data (NULL: out of memory). */
static entry *entry_new(uint32_t seq, uint64_t user, uint64_t cov_sig, const void *data, size_t len)
{
    entry *e = malloc(sizeof *e + len);
    if (!e) return NULL;
    if (len) memcpy(e->data, data, len); /* an absent user is an empty entry: data may be NULL */
    e->user = user;
    e->seq = seq;
    e->cov_sig = cov_sig;
    e->len = (uint32_t)len;
    e->stream_stale = 0;
    atomic_init(&e->refs, 1); /* the table's */
    return e;
}

/* Puts e in the table in place of *p (the slot find gave for its user, NULL or the entry
 * it replaces), making room first. */
static void insert(shard *s, uint64_t h, entry **p, entry *e)
{
    if (*p) drop(s, p);
    evict_to(s, e->len + ENTRY_OVERHEAD);
    grow(s);
    p = slot_of(s, h);
    e->hnext = *p;
    *p = e;
    lru_push(s, e);
    s->bytes += e->len + ENTRY_OVERHEAD;
    s->n++;
}

void seq_rcache_put(seq_rcache *c, uint32_t seq, uint64_t user, uint64_t cov_sig,
                    uint64_t version, const void *data, size_t len)
{
    uint64_t h = mix(seq, user);
    shard *s = shard_of(c, h);
    if (len > seq_rcache_max_entry(c) || len > UINT32_MAX) return;
    entry *e = entry_new(seq, user, cov_sig, data, len);
    if (!e) return;
    pthread_mutex_lock(&s->mu);
    if (s->version != version) { /* written meanwhile: what was read may be stale */
        pthread_mutex_unlock(&s->mu);
        free(e);
        return;
    }
    insert(s, h, find(s, h, seq, user), e);
    pthread_mutex_unlock(&s->mu);
}

void seq_rcache_clear(seq_rcache *c)
{
    if (!c) return;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->s[i];
        pthread_mutex_lock(&s->mu);
        evict_to(s, s->cap + 1); /* room for more than the capacity: drops every entry */
        s->version++;
        pthread_mutex_unlock(&s->mu);
    }
}

const seq_rcache_entry *seq_rcache_peek(seq_rcache *c, uint32_t seq, uint64_t user)
{
    uint64_t h = mix(seq, user);
    shard *s = shard_of(c, h);
    pthread_mutex_lock(&s->mu);
    entry *e = *find(s, h, seq, user);
    if (e && e->stream_stale) e = NULL;
    if (e) atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
    return e;
}

void seq_rcache_write(seq_rcache *c, uint32_t seq, uint64_t user, const seq_rcache_entry *was,
                      const void *data, size_t len)
{
    uint64_t h = mix(seq, user);
    shard *s = shard_of(c, h);
    entry *n = NULL;
    if (was && data && len <= seq_rcache_max_entry(c)) /* was->cov_sig: immutable */
        n = entry_new(seq, user, was->cov_sig, data, len);
    pthread_mutex_lock(&s->mu);
    entry **p = find(s, h, seq, user);
    if (n && *p == was && !(*p)->stream_stale) {
        insert(s, h, p, n);
        s->written++;
        n = NULL;
    } else if (*p) {
        (*p)->stream_stale = 1; /* replaced meanwhile, or no data: as forget */
    }
    s->version++; /* a read of RocksDB from before the write must not be put */
    pthread_mutex_unlock(&s->mu);
    free(n);
}

int seq_rcache_swap(seq_rcache *c, uint32_t seq, uint64_t user, const seq_rcache_entry *was,
                    const void *data, size_t len)
{
    uint64_t h = mix(seq, user);
    shard *s = shard_of(c, h);
    if (!was || len > seq_rcache_max_entry(c)) return 0;
    entry *n = entry_new(seq, user, was->cov_sig, data, len); /* was->cov_sig: immutable */
    int done = 0;
    if (!n) return 0;
    pthread_mutex_lock(&s->mu);
    entry **p = find(s, h, seq, user);
    if (*p == was) {
        n->stream_stale = (*p)->stream_stale; /* a write since the peek: still outdated */
        insert(s, h, p, n);
        s->prepared++;
        done = 1;
        n = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    free(n);
    return done;
}

long seq_rcache_users(seq_rcache *c, uint32_t seq, uint64_t **out)
{
    size_t n = 0, cap = 0;
    uint64_t *v = NULL;
    *out = NULL;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->s[i];
        pthread_mutex_lock(&s->mu);
        if (n + s->n > cap) { /* room for every entry of the shard: one lock hold each */
            size_t nc = (n + s->n) * 2;
            uint64_t *nv = realloc(v, nc * sizeof *v);
            if (!nv) {
                pthread_mutex_unlock(&s->mu);
                free(v);
                return -1;
            }
            v = nv;
            cap = nc;
        }
        for (entry *e = s->head; e; e = e->next)
            if (e->seq == seq && !e->stream_stale) v[n++] = e->user;
        assert(n <= cap);
        pthread_mutex_unlock(&s->mu);
    }
    if (!n) free(v);
    else *out = v;
    return (long)n;
}

void seq_rcache_forget(seq_rcache *c, uint32_t seq, uint64_t user)
{
    uint64_t h = mix(seq, user);
    shard *s = shard_of(c, h);
    pthread_mutex_lock(&s->mu);
    entry *e = *find(s, h, seq, user);
    if (e) e->stream_stale = 1; /* kept: its batch part still serves (get_stale) */
    s->version++;
    pthread_mutex_unlock(&s->mu);
}

void seq_rcache_get_stats(seq_rcache *c, seq_rcache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c) return;
    for (int i = 0; i < SHARDS; i++) {
        shard *s = &c->s[i];
        pthread_mutex_lock(&s->mu);
        out->hits += s->hits;
        out->misses += s->misses;
        out->stale += s->stale;
        out->written += s->written;
        out->prepared += s->prepared;
        out->entries += s->n;
        out->bytes += s->bytes;
        out->capacity += s->cap;
        pthread_mutex_unlock(&s->mu);
    }
}
