/* The batch path: building a partition's SST files offline (seqctl build) and loading
 * them into the server (LoadBatch). The builder runs the same decoders and executor as
 * the stream consumer (engine/event.h, engine/exec.h); only the scheduling differs:
 * it reads whole files, deduplicates by event_id (the copy that comes last in the input
 * wins, as on the stream), sorts, and writes bucket blobs (engine/blob.h) under batch
 * keys 'b' seq gen user ~bucket (storage/store.h) with RocksDB's SST writer.
 *
 * Beside the SST files it writes manifest.json: format, sequence, start_ms, end_ms,
 * generation, the definition it was built with and its fingerprint, users, events, and
 * per file its name, size, hash of its bytes (xxh3_64, or fnv1a64 in batches built before:
 * storage/batch_file.h), first and last key, users and events.
 * A load gets only the SST paths: it finds the manifest in their directory. */
#ifndef SEQ_BATCH_H
#define SEQ_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/def.h"
#include "../engine/input.h"

#define SEQ_BUILD_MAX_NOTES 10

typedef struct {
    uint64_t records;      /* input records read */
    uint64_t kept;         /* kept by the sequence, before deduplication (and before
                              other_partitions are set aside) */
    uint64_t other_partitions; /* kept, but of a partition another builder writes */
    uint64_t duplicates;   /* dropped as an earlier copy of an id */
    uint64_t events;       /* written */
    uint64_t users;        /* distinct users written */
    uint64_t out_of_range; /* event time outside [start_ms, end_ms) */
    uint64_t malformed;    /* undecodable, or too far in the future */
    uint64_t unknown_type; /* type not declared by the sequence */
    uint64_t filtered;     /* dropped by the sequence's filters */
    uint32_t files;
    uint32_t runs;         /* sorted runs spilled to disk (memory limit reached) */
    uint32_t parts;        /* part directories written (1 when not partitioned) */
    uint32_t n_notes;
    char notes[SEQ_BUILD_MAX_NOTES][200]; /* "FILE:LINE: what" for the first problems */
} seq_build_report;

typedef struct seq_build seq_build;

/* mem_limit: bytes of records kept in memory before a sorted run is spilled to out_dir
 * (0 = 1 GiB; a spilled run's file is unlinked once open, so nothing is left behind). out_dir is created if missing and must not already hold a manifest.
 * Caller frees with seq_build_free. */
int seq_build_new(const seq_def *def, const char *sequence, int64_t start_ms, int64_t end_ms,
                  uint64_t generation, const char *out_dir, size_t mem_limit,
                  seq_build **out, char *err, size_t errlen);
/* Makes the build partitioned (storage/batch_parts.h): the batch's users are split into
 * `partitions` parts by engine/partition.h, and only the parts with selected[p] != 0
 * (NULL: all) are written, each into out_dir/partition-NNNNN/ with its own manifest,
 * an empty partition as an empty part; out_dir/batch.json describes the whole batch.
 * Call once, before any input. SEQ_EINVAL: a bad P, a selected part already built there,
 * or a batch.json there describing another batch. */
int seq_build_set_partitions(seq_build *b, uint32_t partitions, const uint8_t *selected,
                             char *err, size_t errlen);
/* Reads one input file. Bad records are counted (and the first few noted) and skipped;
 * an unreadable file or broken framing is an error. progress (may be NULL) is called
 * every million records. */
int seq_build_add_file(seq_build *b, const char *path, seq_format fmt,
                       void (*progress)(const seq_build_report *r), char *err, size_t errlen);
/* Sorts, deduplicates, writes the SST files and the manifest. */
int seq_build_finish(seq_build *b, seq_build_report *rep, char *err, size_t errlen);
const seq_build_report *seq_build_stats(const seq_build *b);
void seq_build_free(seq_build *b);


/* ---- loading (LoadBatch): verification; the commit is seq_store_load_batch ---- */

/* Where a load's time went (seq_load_req.timing): when each step ended, wall clock ms
 * (seq_now_ms: comparable across the nodes of one machine, and across machines up to
 * their clocks' skew), 0 when not reached; stage_ms: the time within the verification
 * spent reading and hashing the files (and copying them, when staged). For the log line
 * of a cluster load's timeline (server/loads.c). */
typedef struct {
    int64_t started;  /* the load lock taken (another load or rollback may delay it) */
    int64_t verified; /* staged, hashed, checked */
    int64_t counted;  /* its impact counted */
    int64_t ingested; /* the files ingested */
    int64_t committed; /* the generation switched (the history's commit) */
    int64_t stage_ms;
} seq_load_timing;
/* "started +A, staged N ms, verified +B, counted +C, ingested +D, switched +E ms": each
 * step in ms after `from` (wall clock ms), "-" where not reached; into out. */
void seq_load_timing_format(const seq_load_timing *t, int64_t from, char *out, size_t len);
/* "+N" (to - from, into buf) or "-" when to is 0 (not reached). */
const char *seq_load_timing_rel(char buf[24], int64_t from, int64_t to);

typedef struct {
    const char *sequence;
    int64_t start_ms, end_ms;
    uint64_t generation;
    const char *const *paths;
    size_t n_paths;
    int dry_run; /* verify everything and count what would change; change nothing */
    uint32_t partitions; /* the topic's partitions: a partitioned batch must have as many
                            (0: not checked) */
    /* A cluster node's apply (server/loads.h): of a partitioned batch, only the parts p
     * with only_parts[p] != 0 (`partitions` entries) are verified, staged and ingested;
     * the others must still be named (the batch is whole), their files are not read.
     * NULL: every part. The counts in the result are those of the selected parts, the
     * impact counts (users_emptied, stream_events_hidden) those of the users of the
     * selected partitions. */
    const uint8_t *only_parts;
    /* Set (2 * `partitions` entries, zeroed by the caller): the impact counts split by
     * the users' partition, [2p] users_emptied and [2p + 1] stream_events_hidden (a
     * cluster node reports them per partition: server/loads.h). */
    uint64_t *impact_by_part;
    /* 1: no impact count (both 0): the receiver of a cluster load, whose nodes count it
     * each for the partitions it holds. */
    int no_impact;
    /* Set (2 per path, filled by the verification): each file's size and hash as
     * verified, for a cluster load's record (server/loads.h). */
    uint64_t *sums_out;
    /* Set (2 per path, from a cluster load's record): each file's size and hash as the
     * receiver verified it whole. A file whose bytes (as staged here) have exactly these
     * is not scanned entry by entry again: its SST structure is opened, its first and
     * last keys must be keys of this sequence and generation (so an ingestion of it
     * touches nothing else), and its counts are its manifest's. */
    const uint64_t *verified;
    /* > 0: 'm' "loads" := loads_next in the same synced write as the commit (the next
     * offset of `<topic>.seqd-loads` to apply: a crash never applies one twice). */
    int64_t loads_next;
    /* 1: ingest the selected parts into generation `generation`, which must be a load of
     * the sequence whose data is kept (a node that acquired a partition fills it); no
     * commit, the history is unchanged. SEQ_EPRECONDITION when it is not kept. */
    int fill;
    seq_load_timing *timing; /* set: filled as the load goes (zeroed by the caller) */
} seq_load_req;

typedef struct {
    uint64_t generation;
    uint32_t files;
    uint64_t users, events;
    /* what the load changes in the MERGED view over [start, min(end, C)) before the cuts
     * of rule 5 (PRODUCT.md "Dry-run loads"): users with events there before and none
     * after, stream events shown there before and not after; 0 for a repeated load */
    uint64_t users_emptied, stream_events_hidden;
} seq_load_result;

/* Checks everything a load needs before anything changes: the request's shape; every
 * path confined to batch_root after resolving symlinks and ".." (relative paths are
 * taken under batch_root; PERMISSION_DENIED), present (NOT_FOUND), all in one directory
 * with a manifest that agrees with the request and lists exactly these files (or, for a
 * partitioned batch, batch_parts.h: the files of every part of one batch directory, each
 * part's directory so, the parts agreeing with its batch.json, each part once, P equal to
 * req->partitions when set: FAILED_PRECONDITION otherwise, before any file is read, and
 * every user of a part in its partition: INVALID_ARGUMENT), each file's
 * size and hash as the manifest says (INVALID_ARGUMENT: corrupt or foreign), built from a
 * definition compatible for this sequence (FAILED_PRECONDITION), and every SST entry a
 * well-formed bucket blob of this sequence, generation and range (INVALID_ARGUMENT).
 * Messages name the file. Each file is copied into stage_dir (an existing directory on
 * the database's file system) in the same read that hashes it, and the checks run on the
 * copies. On success *resolved holds res->files malloc'd paths of those copies (n_paths
 * unless only_parts left parts out; the array has n_paths slots, the rest NULL; caller frees
 * each and the array), which hold exactly the bytes verified and which the caller can
 * hand to RocksDB to move instead of copying again; res holds the counts. On failure no
 * copy is left. stage_dir NULL (a dry run, which ingests nothing): nothing is copied, the
 * checks read the files where they are, and *resolved holds their resolved paths (not to
 * be unlinked). */
int seq_batch_verify(const seq_def *def, const char *batch_root, const char *stage_dir,
                     const seq_load_req *req, char ***resolved, seq_load_result *res, char *err,
                     size_t errlen);

/* The path checks alone (confinement, existence), as seq_batch_verify makes them: what a
 * repeated load (a no-op) still answers for. SEQ_OK, SEQ_EPERM, SEQ_ENOTFOUND. */
int seq_batch_check_paths(const char *batch_root, const seq_load_req *req, char *err,
                          size_t errlen);

typedef struct seq_store seq_store;
/* Loads a verified partition: generation rules (PRODUCT.md "Details"), verification,
 * ingestion, then the atomic commit. One load at a time; reads go on meanwhile. On
 * SEQ_OK res holds the counts (for a repeated load, the committed ones). */
int seq_store_load_batch(seq_store *st, const char *batch_root, const seq_load_req *req,
                         seq_load_result *res, char *err, size_t errlen);
/* RollbackBatch (PRODUCT.md "Rollback"): undoes the loads in effect above `to` (0: the
 * newest), atomically for readers and crash-safe (one synced write), under the same lock
 * as loads. *gen: the sequence's committed generation after it. SEQ_OK (also for the
 * no-op), SEQ_ENOTFOUND (unknown sequence), SEQ_EPRECONDITION (see history.h), or
 * SEQ_EINTERNAL. */
int seq_store_rollback_batch(seq_store *st, const char *sequence, uint64_t to, uint64_t *gen,
                             char *err, size_t errlen);
/* The same for a cluster (server/loads.h). dry: check only, change nothing (*gen as the
 * rollback would leave it, *from the newest load in effect now); returns 1 for a no-op.
 * loads_next > 0: 'm' "loads" := loads_next in the commit's write. */
int seq_store_rollback_ex(seq_store *st, const char *sequence, uint64_t to, int dry,
                          int64_t loads_next, uint64_t *gen, uint64_t *from, char *err,
                          size_t errlen);
/* The stored next offset of `<topic>.seqd-loads` (0 when none) and its write alone (for
 * operations refused or no-ops at apply, which commit nothing). SEQ_OK or SEQ_EINTERNAL. */
int64_t seq_store_loads_next(seq_store *st);
int seq_store_set_loads_next(seq_store *st, int64_t next, char *err, size_t errlen);
/* 'm' "filled": per partition p, the offset of `<topic>.seqd-loads` below which every
 * load's part of p is in this store (server/loads.c fills a partition only from there,
 * so a restart does not ingest again what is here). Reads up to max entries into to
 * (the rest 0) and returns how many were stored; the write stores n (any write error:
 * SEQ_EINTERNAL; a lost write only makes the next fill start earlier). */
uint32_t seq_store_loads_filled(seq_store *st, int64_t *to, uint32_t max);
int seq_store_set_loads_filled(seq_store *st, const int64_t *to, uint32_t n, char *err,
                               size_t errlen);
/* Reclaims the data of replaced loads that --history-ms no longer keeps (loads and
 * rollbacks reclaim at their commit; time alone needs this): one commit per sequence
 * that has any, under the load lock; then bounds the stream watermark series
 * (seq_store_newest_trim, store.h). seq_store_start_sweeper runs it periodically. */
int seq_store_batch_sweep(seq_store *st, int64_t now, char *err, size_t errlen);
/* Runs seq_store_batch_sweep every period_ms on a thread of its own until the store
 * closes. SEQ_OK or SEQ_EINTERNAL. */
int seq_store_start_sweeper(seq_store *st, int64_t period_ms);
/* Removes batch generations the load history does not keep (after a crash mid-load). */
int seq_store_batch_gc(seq_store *st, char *err, size_t errlen);

#endif
