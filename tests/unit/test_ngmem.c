/* nghttp2's block pool (server/ngmem.c): a freed block of a class is the next one handed
 * out, realloc keeps the contents across classes and into malloc'ed sizes, calloc zeroes a
 * reused block, blocks above the kept bound go back to malloc (ASan's leak check sees any
 * lost), and a real session runs on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/ngmem.h"
#include "tests/unit/testlib.h"

static void test_reuse_and_calloc(void)
{
    seq_ngmem *m = seq_ngmem_new();
    nghttp2_mem *a = seq_ngmem_get(m);
    uint8_t *p = a->malloc(100, a->mem_user_data);
    CHECK(p != NULL);
    memset(p, 0xab, 100);
    a->free(p, a->mem_user_data);
    uint8_t *q = a->calloc(10, 10, a->mem_user_data); /* same class: the same block, zeroed */
    CHECK(q == p);
    int zero = 1;
    for (int i = 0; i < 100; i++) zero &= q[i] == 0;
    CHECK(zero);
    uint8_t *r = a->malloc(2000, a->mem_user_data); /* another class: another block */
    CHECK(r != NULL && r != q);
    a->free(q, a->mem_user_data);
    a->free(r, a->mem_user_data);
    a->free(NULL, a->mem_user_data);
    CHECK(a->calloc(SIZE_MAX / 2, 4, a->mem_user_data) == NULL); /* overflow refused */
    seq_ngmem_free(m);
}

static void test_realloc_keeps_contents(void)
{
    seq_ngmem *m = seq_ngmem_new();
    nghttp2_mem *a = seq_ngmem_get(m);
    uint8_t *p = a->realloc(NULL, 20, a->mem_user_data);
    for (int i = 0; i < 20; i++) p[i] = (uint8_t)i;
    p = a->realloc(p, 10, a->mem_user_data); /* fits: in place */
    p = a->realloc(p, 1000, a->mem_user_data);
    p = a->realloc(p, 100000, a->mem_user_data); /* past the classes: malloc'ed */
    int same = 1;
    for (int i = 0; i < 20; i++) same &= p[i] == (uint8_t)i;
    CHECK(same);
    p[99999] = 7;
    p = a->realloc(p, 200000, a->mem_user_data);
    CHECK(p[99999] == 7 && p[19] == 19);
    a->free(p, a->mem_user_data);
    seq_ngmem_free(m);
}

static void test_kept_bound(void)
{
    /* more 4 KB blocks than a class keeps (512 KB): the excess is freed, not leaked */
    enum { N = 300 };
    seq_ngmem *m = seq_ngmem_new();
    nghttp2_mem *a = seq_ngmem_get(m);
    void *b[N];
    for (int i = 0; i < N; i++) CHECK((b[i] = a->malloc(3000, a->mem_user_data)) != NULL);
    for (int i = 0; i < N; i++) a->free(b[i], a->mem_user_data);
    seq_ngmem_free(m);
}

static void test_session_on_pool(void)
{
    seq_ngmem *m = seq_ngmem_new();
    nghttp2_session_callbacks *cbs;
    nghttp2_session *s = NULL;
    CHECK(nghttp2_session_callbacks_new(&cbs) == 0);
    CHECK(nghttp2_session_client_new3(&s, cbs, NULL, NULL, seq_ngmem_get(m)) == 0);
    const nghttp2_nv nv[] = {{(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
                             {(uint8_t *)":path", (uint8_t *)"/x", 5, 2, 0},
                             {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
                             {(uint8_t *)":authority", (uint8_t *)"h", 10, 1, 0}};
    for (int i = 0; i < 50; i++) CHECK(nghttp2_submit_request(s, NULL, nv, 4, NULL, NULL) > 0);
    const uint8_t *d;
    size_t total = 0;
    for (ssize_t n; (n = nghttp2_session_mem_send(s, &d)) > 0;) total += (size_t)n;
    CHECK(total > 50 * 9);
    nghttp2_session_del(s);
    nghttp2_session_callbacks_del(cbs);
    seq_ngmem_free(m);
}

int main(void)
{
    RUN(test_reuse_and_calloc);
    RUN(test_realloc_keeps_contents);
    RUN(test_kept_bound);
    RUN(test_session_on_pool);
    return seq_t_done();
}
