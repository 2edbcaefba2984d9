/* Command-line configuration of seqd (PRODUCT.md "Command line"). Parsed once in main;
 * everything else reads the resulting seq_config and never looks at argv. */
#ifndef SEQ_CONFIG_H
#define SEQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../engine/ingest.h"

/* Kafka values (--event-format): the engine's one format enum (engine/ingest.h).
 * "protobuf", "json", "confluent-protobuf". */
const char *seq_event_format_name(seq_format f);

typedef struct {
    /* Strings point into argv or at static defaults, except batch_root (owned). */
    const char *definition;
    const char *data_dir;
    const char *grpc_listen;
    const char *admin_listen;
    const char *brokers; /* NULL: the embedded mock cluster */
    const char *topic;
    const char *group;
    seq_format event_format;
    int threads;
    size_t cache_mb;
    size_t max_message_bytes;
    char *batch_root; /* default "<data_dir>/batch"; freed by seq_config_free */
    const char *admin_token_file;
    int idle_timeout_s; /* idle HTTP/2 connections are closed; 0 = transport default */
    /* gRPC transport limits (server/grpc.h); 0 = the transport's defaults */
    int max_connections;
    int max_concurrent_streams;
    int max_header_bytes;
    /* The consumer stops writing (and retries) while the data dir's file system has less
     * free space than this: RocksDB 7.8 cannot recover in-process from a WAL write that
     * ran out of space, but recovers from flushes that did. 0 = no check. */
    size_t min_free_mb;
    /* A cluster of nodes (PRODUCT.md, "A cluster of nodes"). */
    const char *kafka_config; /* librdkafka key=value file for every Kafka client; NULL: none */
    const char *instance_id;  /* static group membership id; NULL: generated once, kept in the data dir */
    const char *advertise;    /* HOST:PORT peers and clients reach the gRPC port at; NULL: the bound one */
    /* --history-ms: how long copies replaced by a correction, and stream data beyond
     * retention, are kept for as-of reads (storage/store.h); 0 = none. */
    int64_t history_ms;
    /* --keep-generations: replaced or undone batch loads whose data is kept per sequence
     * whatever their age (a rollback can return to them); storage/store.h */
    int keep_generations;
    /* --write-lanes: stream commits made at once, each on its own thread, with a share
     * of the partitions (server/consumer.c); 1..SEQ_LANES_MAX (server/lanes.h). */
    int write_lanes;
    int help;           /* --help was given: print usage, exit 0 */
    /* --check-definition FILE: validate FILE (and, with --data-dir, its compatibility
     * with the stored data), print the verdict, exit; serve nothing. */
    const char *check_definition;
    int data_dir_given; /* --data-dir was on the command line */
    int group_given;    /* --group was on the command line: the node joins that group */
} seq_config;

/* Fills *c with the defaults, then applies argv. Accepts "--opt value" and "--opt=value".
 * SEQ_OK, or SEQ_EINVAL with a message naming the option. --definition is required
 * unless --help or --check-definition is given. */
int seq_config_parse(seq_config *c, int argc, char **argv, char *err, size_t errlen);
void seq_config_free(seq_config *c);
void seq_config_usage(FILE *f);

#endif
