/* Storage internals shared by store.c (open, meta, views, retention), store_batch.c
 * (stream writes) and store_read.c (the read path). Not for other modules: the batch
 * loader (issue 4) uses only the functions marked "for loads". */
#ifndef SEQ_STORE_INT_H
#define SEQ_STORE_INT_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>

#include "batch.h"
#include "idfilter.h"
#include "keys.h"
#include "rcache.h"
#include "store.h"

#define SEQ_CORRUPT_SEEN 1024 /* reports of damaged data remembered, to report each once */
struct seq_corrupt_item;

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
    _Atomic uint64_t rc_local; /* refreshes that read nothing from RocksDB (store_read.c) */
    char *stage_dir;    /* <data dir>/load-staging: a load's verified copies (store_load.c) */

    pthread_mutex_t commit_mu; /* serialises the stream commits that write the malformed
                                * counter or damaged-data reports */
    _Atomic uint64_t malformed;

    /* Stream layout (keys.h): the partition count user partitions are computed with,
     * stored as 'm' "parts"; 0 until the consumer (or a first write) sets it. */
    _Atomic uint32_t layout_parts;
    /* When this node began holding each layout partition (ms; 0: since the data dir
     * began), 'm' "held" be32 p; loaded at open, then written by the consumer only. */
    _Atomic int64_t held_since[SEQ_STORE_HELD_MAX];
    seq_idfilter *idf;          /* ids stored on the stream path (idfilter.h); one writer */
    int idf_partial;            /* the index could not be read whole at open: look up all */
    _Atomic uint64_t id_lookups; /* 'i' lookups the filter could not spare */
    /* the filter's size for /metrics, published by the writer (the filter is its own) */
    _Atomic uint64_t idf_ids, idf_bytes;

    /* damaged data kept aside (store_merge.c) */
    pthread_mutex_t corrupt_mu;
    struct seq_corrupt_item *corrupt_head, **corrupt_tail; /* reports not written yet */
    _Atomic uint32_t n_corrupt_pending;
    uint64_t corrupt_seen[SEQ_CORRUPT_SEEN];
    uint32_t corrupt_seen_next;
    uint64_t corrupt_next_id;        /* next 'c' key; persisted as 'm' "corrupt" */
    _Atomic uint64_t corrupt_total;  /* reports since the data dir began */

    pthread_mutex_t view_mu; /* guards the view pointer swap; refcounts are atomic */
    struct seq_store_view *view;
    /* Bumped whenever data appears without a new sequence number (file ingestion) or the
     * view changes: readers then recreate their cached iterator. */
    _Atomic uint64_t epoch;

    /* the load history (store_history.c) */
    int64_t born_ms;           /* when the data dir began: no as-of read before it */
    uint32_t keep_generations; /* replaced loads kept whatever their age */
    struct seq_store_sweeper *sweeper; /* seq_store_start_sweeper; NULL: none */
};

/* Point lookup; *val malloc'd by RocksDB (free with rocksdb_free), NULL when absent. */
int seq_store_get_raw(seq_store *st, const uint8_t *key, size_t klen, char **val, size_t *vlen,
                      char *err, size_t errlen);

/* Publishes the id filter's size for seq_store_get_write_stats (writer thread only). */
void seq_store_publish_idf(seq_store *st);
/* The user's partition in the stream layout (keys.h). */
uint32_t seq_store_part_of(seq_store *st, uint64_t user);
/* now - history_ms: replaced copies below it are dropped (INT64_MAX with no history). */
int64_t seq_store_drop_before(const seq_store *st, int64_t now);

/* store_read.c: write-through of one committed stream write into the record cache
 * (rcache.h): the operands ops[bk[i].first .. + bk[i].n) of bucket bk[i].bucket (buckets
 * newest first, as their keys sort; operands in write order) folded into (seq, user)'s cached entry, as the
 * merge operator folds them into RocksDB's. Without a current entry, or when a fold meets
 * damaged data, the entry's stream part is marked outdated instead (the next read
 * gathers it, and reports what is damaged). */
typedef struct {
    int64_t bucket;
    uint32_t first, n;
} seq_store_wbucket;
void seq_store_entry_write(seq_store *st, uint32_t seq, uint64_t user, const seq_store_wbucket *bk,
                           uint32_t nbk, const char *const *ops, const size_t *lens);

/* store_read.c: after a load's files are ingested and before its generation is switched
 * in (store_load.c): every cached entry of a user that generation `gen` holds gets the
 * generation's buckets appended, read from RocksDB in one pass over its key range, so
 * that the reads after the switch find the generation in the outdated entry (rcache.h)
 * instead of each seeking it: a load no longer turns every cached user's next read into
 * a RocksDB seek at once (bench/NOTES.md, "Session 12"). Entries under the old coverage
 * ignore the appended buckets (reads look up the generations the coverage names). Best
 * effort: a user not prepared is read from RocksDB as before. Returns the entries
 * prepared. After it, a load that is not switched in must drop the cache
 * (seq_rcache_clear): a retry of the generation may bring other data. */
size_t seq_store_prepare_entries(seq_store *st, uint32_t seq, uint64_t gen);

/* store_merge.c: the stream buckets' merge operator (owned by the options it is set on),
 * and damaged data. note_corrupt is thread-safe and cheap for a report already made. */
rocksdb_mergeoperator_t *seq_store_merge_operator(seq_store *st);
void seq_store_note_corrupt(seq_store *st, const void *key, size_t klen, const void *val,
                            size_t vlen, const char *reason);
/* Under commit_mu: moves the pending reports into wb as 'c' keys; after the write,
 * corrupt_done frees them (written) or puts them back (not written). */
struct seq_corrupt_item *seq_store_corrupt_take(seq_store *st, rocksdb_writebatch_t *wb);
void seq_store_corrupt_done(seq_store *st, struct seq_corrupt_item *list, int written);
void seq_store_corrupt_free(seq_store *st); /* at close */

/* For loads: installs `s` as sequence seq_id's committed state in a new view (s->cov is
 * copied) and bumps the epoch. The caller persists the matching 'm' "gen" key first. */
int seq_store_view_install(seq_store *st, uint32_t seq_id, const seq_store_seqstate *s);
/* For loads: tells readers that data appeared (e.g. after rocksdb_ingest_external_file). */
void seq_store_bump_epoch(seq_store *st);
/* For loads: the RocksDB handle (ingestion, 'm' "gen" writes). */
rocksdb_t *seq_store_db(seq_store *st);

/* ---- store_history.c: the load history of each sequence ---- */
/* Reads (or, the first time, writes) st->born_ms. */
int seq_store_born(seq_store *st, char *err, size_t errlen);
/* At open: sequence seq's committed state from its 'm' "hist" (migrating a data dir that
 * has only 'm' "gen"); out->cov and out->hist are owned by the caller's view. */
int seq_store_hist_open(seq_store *st, uint32_t seq, seq_store_seqstate *out, char *err,
                        size_t errlen);
/* Commits a changed record list of sequence seq at `now` (a load appended, or loads
 * undone): marks replaced loads, picks what --keep-generations/--history-ms let go,
 * writes 'm' "gen" and 'm' "hist" (and, when loads_next > 0, 'm' "loads": a cluster
 * node's applied position, server/loads.h) in one synced write (then the crash point
 * `crash_after`), installs the new state for readers, then (once no reader holds `old`,
 * the view the caller acquired before the change) deletes the data of the loads it
 * reclaimed. `loads` is modified. The caller holds the load lock. */
int seq_store_hist_commit(seq_store *st, uint32_t seq, seq_load_rec *loads, uint32_t n,
                          uint64_t max_gen, int64_t now, const seq_store_view *old,
                          int64_t loads_next, const char *crash_after, char *err,
                          size_t errlen);
/* Stops the sweeper thread, if any (before the database closes). */
void seq_store_stop_sweeper(seq_store *st);
/* store_impact.c: appends to v (*n of *cap, grown with realloc) the users with a bucket of
 * sequence seq overlapping [lo, hi) (lo < hi) among the keys under prefix pre: 's' (the
 * stream of every partition and sequence) or 'b' seq gen (one generation); grouped by
 * user, ascending within a partition. A skip scan: it reads a few keys a user, not its
 * every bucket. SEQ_OK, or SEQ_EINTERNAL (out of memory, a RocksDB error) with err. */
int seq_store_window_users(seq_store *st, const uint8_t *pre, size_t pl, uint32_t seq,
                           int64_t lo, int64_t hi, uint64_t **v, size_t *n, size_t *cap,
                           char *err, size_t errlen);
/* store_impact.c: what loading req (verified, its copies staged at `staged`) changes in
 * the MERGED view over [start, min(end, C)) at `now`, before the cuts of rule 5, against
 * the state cur: sets res->users_emptied and res->stream_events_hidden. */
int seq_store_load_impact(seq_store *st, const seq_sequence *s, const seq_store_seqstate *cur,
                          const seq_load_req *req, char *const *staged, int64_t now,
                          seq_load_result *res, char *err, size_t errlen);
/* Deletes every key of a generation (store_load.c). */
void seq_store_delete_gen(seq_store *st, uint32_t seq, uint64_t gen);
/* Crash hook for tests (store_load.c): SIGKILLs the process at `where` when
 * SEQD_CRASH_AT names it. */
void seq_store_crash_point(const char *where);

#endif
