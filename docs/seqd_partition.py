"""The Kafka partition of a seqd user id, in plain Python, for batch jobs that partition
their input before `seqctl build --only-partitions` (docs/batch-spark.md).

Kafka's default (Java) partitioner for keyed records, which seqd's producers use
(engine/partition.h): partition = (murmur2(key) & 0x7fffffff) % P, key = the user id
as its decimal string. tests/integration/test_batch_parts.py checks this module against
tests/unit/murmur2_vectors.tsv (Kafka's own test values) and builds a batch with it.
"""


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c) as Java's signed 32-bit int."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(user_id, partitions: int) -> int:
    """The partition of user_id (an int or a decimal string) on a topic of `partitions`."""
    return (murmur2(str(user_id).encode()) & 0x7FFFFFFF) % partitions
