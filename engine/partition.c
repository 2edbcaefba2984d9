/* Kafka's default partitioner: see partition.h. A port of
 * org.apache.kafka.common.utils.Utils.murmur2, checked against the values in
 * tests/unit/murmur2_vectors.tsv (Kafka's own test values and user ids). */
#include "partition.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

int32_t seq_murmur2(const void *key, size_t len)
{
    const uint8_t *d = key;
    const uint32_t seed = 0x9747b28cu, m = 0x5bd1e995u;
    const int r = 24;
    uint32_t h = seed ^ (uint32_t)len;
    size_t n4 = len / 4;
    for (size_t i = 0; i < n4; i++) {
        size_t i4 = i * 4;
        /* little-endian words, as Java assembles them */
        uint32_t k = (uint32_t)d[i4] | ((uint32_t)d[i4 + 1] << 8) | ((uint32_t)d[i4 + 2] << 16) |
                     ((uint32_t)d[i4 + 3] << 24);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    size_t tail = len & ~(size_t)3;
    switch (len % 4) {
    case 3: h ^= (uint32_t)d[tail + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)d[tail + 1] << 8;  /* fall through */
    case 1:
        h ^= (uint32_t)d[tail];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

uint32_t seq_partition_of_user(uint64_t user_id, uint32_t n_partitions)
{
    assert(n_partitions > 0);
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRIu64, user_id);
    assert(n > 0 && (size_t)n < sizeof buf);
    uint32_t h = (uint32_t)seq_murmur2(buf, (size_t)n) & 0x7fffffffu;
    return h % n_partitions;
}
