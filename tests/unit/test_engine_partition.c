/* Kafka's partitioner (engine/partition.h) against murmur2_vectors.tsv: Kafka's own
 * test values and user ids placed by librdkafka's murmur2_random. A wrong seed, a
 * signed shift or a dropped tail byte moves keys to other partitions and fails here. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine/partition.h"
#include "testlib.h"

#ifndef VECTORS
#error "VECTORS must name murmur2_vectors.tsv"
#endif

static void test_vectors(void)
{
    FILE *f = fopen(VECTORS, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[512];
    int rows = 0, users = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || strncmp(line, "key\t", 4) == 0) continue;
        char key[256];
        long h, p8, p16, p64;
        if (sscanf(line, "%255[^\t]\t%ld\t%ld\t%ld\t%ld", key, &h, &p8, &p16, &p64) != 5) continue;
        rows++;
        CHECK_EQ_INT(seq_murmur2(key, strlen(key)), h);
        char *end;
        unsigned long long u = strtoull(key, &end, 10);
        if (*end == 0 && key[0] != 0) {
            users++;
            CHECK_EQ_INT(seq_partition_of_user(u, 8), p8);
            CHECK_EQ_INT(seq_partition_of_user(u, 16), p16);
            CHECK_EQ_INT(seq_partition_of_user(u, 64), p64);
        }
    }
    fclose(f);
    CHECK(rows >= 20);
    CHECK(users >= 10);
}

static void test_one_partition(void)
{
    for (uint64_t u = 1; u < 1000; u++) CHECK_EQ_INT(seq_partition_of_user(u, 1), 0);
    CHECK_EQ_INT(seq_partition_of_user(UINT64_MAX, 1), 0);
    CHECK(seq_partition_of_user(UINT64_MAX, 7) < 7);
}

int main(void)
{
    RUN(test_vectors);
    RUN(test_one_partition);
    return seq_t_done();
}
