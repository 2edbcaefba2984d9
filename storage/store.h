/* Storage: RocksDB layout and the only module that talks to RocksDB. The stream path
 * writes applied events together with the Kafka offsets that produced them in one
 * atomic write batch; the read path gathers one user's stream and batch records for the
 * merge (engine/merge.h); batch generations are committed by swapping an in-memory
 * view (issue 4 extends this with SST ingestion).
 *
 * Key layout (one column family; big-endian numbers so that keys sort as numbers):
 *   'm' name                          meta: "def" (definition JSON the data was last
 *                                      served with), "off" be32 partition -> i64 next
 *                                      offset, i64 watermark_ms; "malformed" -> u64 count;
 *                                      "gen" be32 seq -> committed batch state
 *   's' be32 seq, be64 user, be64 ~B   stream bucket blob (engine/blob.h); B is the bucket
 *                                      with its sign bit flipped, inverted so that a
 *                                      forward scan goes newest bucket first
 *   'i' be32 seq, be64 user, id        event-id index of the stream: -> i64 time_ms
 *   'b' be32 seq, be64 gen, be64 user, be64 ~B   batch bucket blob of one generation
 *   'x' be32 partition, be64 offset    a malformed message kept aside: u32 reason length,
 *                                      reason, payload
 * One user's sequence is one seek plus a few steps over bucket blobs, per source.
 * Value formats and the key codec: storage/keys.h.
 * Retention: a compaction filter drops stream buckets and index entries older than the
 * sequence's retention plus history_ms (as-of reads look that far back), and the copies
 * a correction replaced once they were replaced more than history_ms ago. */
#ifndef SEQ_STORE_H
#define SEQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/blob.h"
#include "../engine/def.h"
#include "../engine/event.h"
#include "../engine/exec.h"
#include "../engine/merge.h"

typedef struct seq_store seq_store;

/* --history-ms default (PRODUCT.md "As of T"): 7 days. */
#define SEQ_HISTORY_MS_DEFAULT 604800000LL

typedef struct {
    size_t cache_mb;    /* block cache, memtables and record cache share it */
    /* How long copies replaced by a correction are kept (seq_rec.replaced_ms), and how
     * much stream data beyond retention is kept, for as-of reads; 0 = none. */
    int64_t history_ms;
} seq_store_config;

/* Opens (creating if needed) the database in dir. If data was served with another
 * definition, `def` must be compatible with it (seq_def_check_compat): otherwise
 * SEQ_EPRECONDITION and a message saying what changed. On success `def` is stored as the
 * definition the data is served with. `def` must outlive the store. Caller closes with
 * seq_store_close. seq_store_open is seq_store_open_cfg with the default history. */
int seq_store_open_cfg(const char *dir, const seq_def *def, const seq_store_config *cfg,
                       seq_store **out, char *err, size_t errlen);
int seq_store_open(const char *dir, const seq_def *def, size_t cache_mb, seq_store **out,
                   char *err, size_t errlen);
/* The history kept (seq_store_config.history_ms). */
int64_t seq_store_history_ms(const seq_store *st);
void seq_store_close(seq_store *st);

/* ---- stream writes: one seq_store_batch per consumer thread ---- */
typedef struct seq_store_batch seq_store_batch;
seq_store_batch *seq_store_batch_new(seq_store *st);
void seq_store_batch_free(seq_store_batch *b);

/* Adds an event kept by n sequences (outs from seq_exec_apply), stamped with the wall
 * clock as its applied_ms. A copy of the same event_id already stored for that user and
 * sequence, in any bucket, is replaced (the copy applied last wins, its time included):
 * it stays stored with replaced_ms set while history_ms keeps it (engine/blob.h).
 * Several events touching one bucket in one batch are combined in memory. */
int seq_store_batch_add_event(seq_store_batch *b, const seq_event *ev, const seq_exec_out *outs,
                              uint32_t n, char *err, size_t errlen);
/* Keeps a malformed message aside (key 'x') and counts it. */
int seq_store_batch_add_malformed(seq_store_batch *b, int32_t partition, int64_t offset,
                                  const void *payload, size_t len, const char *reason);
/* Records the next offset to consume and the partition's watermark, written in the same
 * atomic write as the events. */
void seq_store_batch_set_offset(seq_store_batch *b, int32_t partition, int64_t next_offset,
                                int64_t watermark_ms);
/* Writes everything added since the last commit in one RocksDB write (synced to the
 * WAL), then empties the batch for reuse. On failure nothing was written. */
int seq_store_batch_commit(seq_store_batch *b, char *err, size_t errlen);

/* Stored next offset and watermark of a partition; SEQ_ENOTFOUND when none. */
int seq_store_get_offset(seq_store *st, int32_t partition, int64_t *next_offset,
                         int64_t *watermark_ms);
/* Malformed messages kept aside so far (persisted). */
uint64_t seq_store_malformed_count(seq_store *st);
/* Visits up to `limit` malformed messages kept aside, oldest key first. */
typedef void (*seq_store_malformed_fn)(void *ctx, int32_t partition, int64_t offset,
                                       const char *reason, const void *payload, size_t len);
void seq_store_list_malformed(seq_store *st, uint32_t limit, seq_store_malformed_fn fn,
                              void *ctx);

/* ---- committed batch state (refcounted snapshot; swapped atomically by loads) ---- */
typedef struct {
    uint64_t generation;    /* newest committed generation, 0 before any load */
    int64_t watermark_ms;   /* largest end_ms of the committed ranges, 0 before any load */
    const seq_cov_seg *cov; /* owned segments, sorted */
    uint32_t n_cov;
} seq_store_seqstate;

typedef struct seq_store_view seq_store_view;
/* Cheap (no I/O). Every acquire is paired with a release. */
const seq_store_view *seq_store_view_acquire(seq_store *st);
void seq_store_view_release(seq_store *st, const seq_store_view *v);
const seq_store_seqstate *seq_store_view_seq(const seq_store_view *v, uint32_t seq_id);

/* ---- reads: one seq_store_reader per thread (owns the buffers records point into) ---- */
typedef struct seq_store_reader seq_store_reader;
seq_store_reader *seq_store_reader_new(seq_store *st);
void seq_store_reader_free(seq_store_reader *r);

/* Gathers user's records for p->seq: stream records newest first, until
 * seq_merge_need(p) visible ones or times below seq_merge_stop_before(p); and batch records
 * of every generation in p->cov (gen set on each); only the batch's in the BATCH view and
 * only the stream's in the STREAM view (merge.h). Arrays are owned by the reader and
 * valid until its next read. Feed them to seq_merge_run. */
int seq_store_read(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                   const seq_rec **stream, uint32_t *ns, const seq_rec **batch, uint32_t *nb,
                   char *err, size_t errlen);

/* Sets the SST format options (compression, key prefix, bloom filters) on RocksDB options
 * of an SST writer, so that its files serve reads as well as the database's own. */
struct rocksdb_options_t;
void seq_store_sst_options(struct rocksdb_options_t *o);

/* The record cache's counters since open and its size in bytes (for /metrics). */
typedef struct {
    uint64_t hits, misses, bytes, capacity;
} seq_store_rcache_stats;
void seq_store_record_cache_stats(seq_store *st, seq_store_rcache_stats *out);

/* Approximate RocksDB block cache usage and capacity, in bytes (for /metrics). */
void seq_store_cache_usage(seq_store *st, uint64_t *usage, uint64_t *capacity);

#endif
