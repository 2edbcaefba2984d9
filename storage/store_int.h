/* Storage internals shared by store.c (open, meta, views, retention), store_batch.c
 * (stream writes) and store_read.c (the read path). Not for other modules: the batch
 * loader (issue 4) uses only the functions marked "for loads". */
#ifndef SEQ_STORE_INT_H
#define SEQ_STORE_INT_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>

#include "keys.h"
#include "rcache.h"
#include "store.h"

struct seq_store_view {
    atomic_uint refs;
    uint32_t n;              /* = def->n_seqs */
    seq_store_seqstate st[]; /* st[i].cov malloc'd, owned by the view */
};

struct seq_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wsync;
    rocksdb_readoptions_t *rget;  /* point lookups */
    rocksdb_readoptions_t *rscan; /* whole-keyspace scans (total order) */
    const seq_def *def;
    int64_t history_ms; /* seq_store_config.history_ms */
    seq_rcache *rcache; /* hot users' bucket blobs (rcache.h); NULL: none */
    char *stage_dir;    /* <data dir>/load-staging: a load's verified copies (store_load.c) */

    pthread_mutex_t commit_mu; /* serialises stream commits (the malformed counter) */
    _Atomic uint64_t malformed;

    pthread_mutex_t view_mu; /* guards the view pointer swap; refcounts are atomic */
    struct seq_store_view *view;
    /* Bumped whenever data appears without a new sequence number (file ingestion) or the
     * view changes: readers then recreate their cached iterator. */
    _Atomic uint64_t epoch;
};

/* Point lookup; *val malloc'd by RocksDB (free with rocksdb_free), NULL when absent. */
int seq_store_get_raw(seq_store *st, const uint8_t *key, size_t klen, char **val, size_t *vlen,
                      char *err, size_t errlen);

/* For loads: installs `s` as sequence seq_id's committed state in a new view (s->cov is
 * copied) and bumps the epoch. The caller persists the matching 'm' "gen" key first. */
int seq_store_view_install(seq_store *st, uint32_t seq_id, const seq_store_seqstate *s);
/* For loads: tells readers that data appeared (e.g. after rocksdb_ingest_external_file). */
void seq_store_bump_epoch(seq_store *st);
/* For loads: the RocksDB handle (ingestion, 'm' "gen" writes). */
rocksdb_t *seq_store_db(seq_store *st);

#endif
