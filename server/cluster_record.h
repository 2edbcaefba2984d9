/* One node's record in the cluster map's topic (server/cluster.c): a JSON object
 *   {"v":1,"id","group","grpc","admin","incarnation","fingerprint","partitions":[held],
 *    "caught_up":[...],"n_partitions","ready","heartbeat_ms","generations":{seq: gen},
 *    "loads","filling","impact","gaps":[{"partition","stream_from_ms"}]}
 * ("loads": the next offset of `<topic>.seqd-loads` the node applies, every operation
 * below it applied; "filling": a held partition still lacks a kept load's part;
 * "impact": what its newest loads and dry runs changed per partition it held,
 * seq_loads_impact; all three absent on a node without cluster-wide loads,
 * server/loads.h. "gaps": held partitions caught up *with a gap*, PRODUCT.md "A node
 * that acquires a partition": the Kafka log no longer reached back far enough when the
 * node began reading it; stream_from_ms is when the node holds the partition's stream
 * from; absent in records of older nodes).
 * Records come from Kafka, so anything may arrive: the parser refuses what is not such an
 * object (tests/fuzz/fuzz_cluster_record.c). */
#ifndef SEQ_CLUSTER_RECORD_H
#define SEQ_CLUSTER_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SEQ_CLUSTER_RECORD_MAX_PARTS 1024

typedef struct {
    char id[64], group[128], grpc[128], admin[128], incarnation[24], fingerprint[24];
    uint32_t n_parts; /* the topic's partition count as the node sees it */
    uint8_t held[SEQ_CLUSTER_RECORD_MAX_PARTS / 8], caught[SEQ_CLUSTER_RECORD_MAX_PARTS / 8];
    int ready;
    int64_t heartbeat_ms; /* the node's wall clock when it published */
    char *generations;    /* JSON object text, malloc'd; NULL = none */
    int64_t loads;        /* -1: not published */
    int filling;
    char *impact;         /* JSON array text, malloc'd; NULL = none (read by
                             seq_cluster_impact, which checks each entry) */
    /* per partition: caught up with a gap, the stream held from this time (ms); 0 = no
     * gap. Inline (no ownership): records are copied by value. */
    int64_t gap_from[SEQ_CLUSTER_RECORD_MAX_PARTS];
} seq_cluster_record;

/* SEQ_OK and *r filled (free with seq_cluster_record_clear), or SEQ_EINVAL (*r zeroed). */
int seq_cluster_parse_record(const void *data, size_t len, seq_cluster_record *r);
/* The record as JSON text (malloc'd) for the topic; NULL on OOM. */
char *seq_cluster_format_record(const seq_cluster_record *r);
/* The record as a JSON object (new reference) for GET /cluster. */
json_t *seq_cluster_record_json(const seq_cluster_record *r);
/* Adds the record's impact counts of the operation at offset `at` (its "impact" entry
 * with that "at") for each partition p < np with seen[p] == 0, then sets seen[p]; entries
 * that are not [p, users_emptied, stream_events_hidden] non-negative integers are skipped
 * (the text comes from Kafka: tests/fuzz/fuzz_cluster_record.c). */
void seq_cluster_record_impact(const seq_cluster_record *r, int64_t at, uint32_t np,
                               uint8_t *seen, uint64_t *emptied, uint64_t *hidden);
void seq_cluster_record_clear(seq_cluster_record *r);

#endif
