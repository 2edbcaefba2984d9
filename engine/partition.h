/* Which Kafka partition a user belongs to: Kafka's default (Java) partitioner for keyed
 * records, (murmur2(key) & 0x7fffffff) % P, key = the user id as a decimal string
 * (PRODUCT.md, "A cluster of nodes"). librdkafka places keys the same way only with
 * partitioner=murmur2_random. Used by seqctl produce, the consumer's misrouting check,
 * the batch builder's parts and the routing of reads: one function for all of them. */
#ifndef SEQ_PARTITION_H
#define SEQ_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* Kafka's murmur2 (seed 0x9747b28c) of len bytes, as the signed 32-bit value Java returns. */
int32_t seq_murmur2(const void *key, size_t len);

/* The partition of user_id on a topic of n_partitions (> 0). */
uint32_t seq_partition_of_user(uint64_t user_id, uint32_t n_partitions);

#endif
