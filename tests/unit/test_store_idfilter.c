/* The stream path's in-memory id filter (storage/idfilter.h): never a false negative,
 * across its growth into several layers, and few false positives. */
#include "storage/idfilter.h"
#include "testlib.h"

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void no_false_negatives(void)
{
    seq_idfilter *f = seq_idfilter_new(0);
    CHECK(f != NULL);
    uint64_t x = 7;
    const uint32_t n = 600000; /* past two growths of the 65536-id first layer */
    for (uint32_t i = 0; i < n; i++) CHECK(seq_idfilter_add(f, next(&x)) == 0);
    CHECK(seq_idfilter_count(f) == n);
    x = 7;
    uint32_t missing = 0;
    for (uint32_t i = 0; i < n; i++) missing += !seq_idfilter_maybe(f, next(&x));
    CHECK_EQ_INT(missing, 0);
    uint32_t fp = 0;
    for (uint32_t i = 0; i < 200000; i++) fp += seq_idfilter_maybe(f, next(&x));
    fprintf(stderr, "   false positives: %u of 200000\n", fp);
    CHECK(fp < 2000); /* < 1 % */
    CHECK(seq_idfilter_bytes(f) < (size_t)n * 8);
    /* the hash tells sequences, users and ids apart */
    CHECK(seq_idfilter_hash(0, 1, "a", 1) != seq_idfilter_hash(1, 1, "a", 1));
    CHECK(seq_idfilter_hash(0, 1, "a", 1) != seq_idfilter_hash(0, 2, "a", 1));
    CHECK(seq_idfilter_hash(0, 1, "a", 1) != seq_idfilter_hash(0, 1, "b", 1));
    seq_idfilter_free(f);
}

int main(void)
{
    RUN(no_false_negatives);
    return seq_t_done();
}
