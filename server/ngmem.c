/* nghttp2 block pool (see ngmem.h). Blocks come in classes of 32 << k bytes, header
 * included (k < NG_CLASSES: up to 4096); larger ones go to malloc. Each class keeps up
 * to KEEP_BYTES of free blocks, enough for the blocks of hundreds of streams in flight. */
#include "ngmem.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SHIFT 5
#define NG_CLASSES 8
#define KEEP_BYTES (512u << 10)

struct seq_ngmem {
    void *free[NG_CLASSES];
    unsigned nfree[NG_CLASSES];
    nghttp2_mem mem;
};

/* Each block starts with its class (NG_CLASSES: a malloc'ed block), keeping the payload
 * aligned as malloc's is. */
typedef union {
    unsigned cls;
    max_align_t align;
} hdr;

static unsigned class_of(size_t size)
{
    size_t need = size + sizeof(hdr);
    unsigned k = 0;
    while (k < NG_CLASSES && need > ((size_t)1 << (MIN_SHIFT + k))) k++;
    return k;
}

static void *mem_malloc(size_t size, void *ud)
{
    seq_ngmem *mp = ud;
    unsigned k = class_of(size);
    hdr *h;
    if (k < NG_CLASSES && mp->free[k]) {
        h = mp->free[k];
        mp->free[k] = *(void **)(h + 1);
        mp->nfree[k]--;
    } else {
        h = malloc(k < NG_CLASSES ? (size_t)1 << (MIN_SHIFT + k) : sizeof *h + size);
        if (!h) return NULL;
        h->cls = k;
    }
    return h + 1;
}

static void mem_free(void *ptr, void *ud)
{
    seq_ngmem *mp = ud;
    if (!ptr) return;
    hdr *h = (hdr *)ptr - 1;
    unsigned k = h->cls;
    if (k >= NG_CLASSES || mp->nfree[k] >= KEEP_BYTES >> (MIN_SHIFT + k)) {
        free(h);
        return;
    }
    *(void **)ptr = mp->free[k];
    mp->free[k] = h;
    mp->nfree[k]++;
}

static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
    if (size && nmemb > SIZE_MAX / 2 / size) return NULL;
    void *p = mem_malloc(nmemb * size, ud);
    if (p) memset(p, 0, nmemb * size);
    return p;
}

static void *mem_realloc(void *ptr, size_t size, void *ud)
{
    if (!ptr) return mem_malloc(size, ud);
    hdr *h = (hdr *)ptr - 1;
    if (h->cls >= NG_CLASSES) { /* stays a malloc'ed block, whatever the new size */
        hdr *n = realloc(h, sizeof *n + size);
        return n ? n + 1 : NULL;
    }
    size_t have = ((size_t)1 << (MIN_SHIFT + h->cls)) - sizeof *h;
    if (size <= have) return ptr;
    void *p = mem_malloc(size, ud);
    if (!p) return NULL;
    memcpy(p, ptr, have);
    mem_free(ptr, ud);
    return p;
}

seq_ngmem *seq_ngmem_new(void)
{
    seq_ngmem *m = calloc(1, sizeof *m);
    if (m) m->mem = (nghttp2_mem){m, mem_malloc, mem_free, mem_calloc, mem_realloc};
    return m;
}

nghttp2_mem *seq_ngmem_get(seq_ngmem *m) { return &m->mem; }

void seq_ngmem_free(seq_ngmem *m)
{
    if (!m) return;
    for (unsigned k = 0; k < NG_CLASSES; k++)
        while (m->free[k]) {
            hdr *h = m->free[k];
            m->free[k] = *(void **)(h + 1);
            free(h);
        }
    free(m);
}
