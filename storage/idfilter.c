/* The stream path's in-memory id filter: see idfilter.h. */
#include "idfilter.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK_WORDS 8 /* 512 bits: one cache line */
#define PROBES 7
#define BITS_PER_ID 16
#define GROWTH 4 /* each new layer holds this many times the last: few layers to ask */
#define MIN_IDS 65536
#define MAX_LAYERS 40

typedef struct {
    uint64_t *words;
    uint64_t n_blocks, capacity, count;
} layer;

struct seq_idfilter {
    layer l[MAX_LAYERS];
    uint32_t n;
    uint64_t count;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

uint64_t seq_idfilter_hash(uint32_t seq, uint64_t user, const char *id, uint32_t id_len)
{
    uint64_t h = UINT64_C(14695981039346656037) ^ seq;
    h = mix(h ^ user);
    for (uint32_t i = 0; i < id_len; i++) h = (h ^ (uint8_t)id[i]) * UINT64_C(1099511628211);
    return mix(h);
}

static int add_layer(seq_idfilter *f, uint64_t capacity)
{
    if (f->n == MAX_LAYERS) return -1;
    layer *l = &f->l[f->n];
    l->n_blocks = (capacity * BITS_PER_ID + 511) / 512;
    l->words = calloc(l->n_blocks * BLOCK_WORDS, sizeof *l->words);
    if (!l->words) return -1;
    l->capacity = capacity;
    l->count = 0;
    f->n++;
    return 0;
}

seq_idfilter *seq_idfilter_new(uint64_t expected)
{
    seq_idfilter *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    if (add_layer(f, expected > MIN_IDS ? expected : MIN_IDS) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

void seq_idfilter_free(seq_idfilter *f)
{
    if (!f) return;
    for (uint32_t i = 0; i < f->n; i++) free(f->l[i].words);
    free(f);
}

/* The block of a hash, and its probes: bit positions from the other half of the hash. */
static uint64_t *block_of(const layer *l, uint64_t h)
{
    return l->words + ((h >> 32) % l->n_blocks) * BLOCK_WORDS;
}

static int layer_has(const layer *l, uint64_t h)
{
    const uint64_t *b = block_of(l, h);
    uint32_t x = (uint32_t)h, step = (uint32_t)(h >> 9 & 0x7fffff) | 1; /* not the block's bits */
    for (int i = 0; i < PROBES; i++, x += step)
        if (!(b[(x >> 6) & 7] >> (x & 63) & 1)) return 0;
    return 1;
}

int seq_idfilter_add(seq_idfilter *f, uint64_t h)
{
    layer *l = &f->l[f->n - 1];
    if (l->count >= l->capacity) {
        if (add_layer(f, l->capacity * GROWTH) < 0) return -1;
        l = &f->l[f->n - 1];
    }
    uint64_t *b = block_of(l, h);
    uint32_t x = (uint32_t)h, step = (uint32_t)(h >> 9 & 0x7fffff) | 1; /* not the block's bits */
    for (int i = 0; i < PROBES; i++, x += step) b[(x >> 6) & 7] |= UINT64_C(1) << (x & 63);
    l->count++;
    f->count++;
    return 0;
}

int seq_idfilter_maybe(const seq_idfilter *f, uint64_t h)
{
    for (uint32_t i = f->n; i-- > 0;)
        if (layer_has(&f->l[i], h)) return 1;
    return 0;
}

uint64_t seq_idfilter_count(const seq_idfilter *f) { return f->count; }

size_t seq_idfilter_bytes(const seq_idfilter *f)
{
    size_t n = sizeof *f;
    for (uint32_t i = 0; i < f->n; i++) n += f->l[i].n_blocks * BLOCK_WORDS * 8;
    return n;
}
