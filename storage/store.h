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
 *                                      "gen" be32 seq -> committed batch state; "layout"
 *                                      -> u64 2; "parts" -> u32 P; "corrupt" -> u64 next;
 *                                      "hist" be32 seq -> its load history (loads,
 *                                      rollbacks, reclaims); "born" -> when the data dir
 *                                      began (the oldest as-of time); "wmh" be64 second
 *                                      -> the stream watermark series (as-of reads);
 *                                      "held" be32 partition -> be64 ms this node
 *                                      began holding it; "loads" -> be64 the next
 *                                      offset of `<topic>.seqd-loads` to apply;
 *                                      "filled" -> be64 per partition (batch.h); "gap"
 *                                      be32 partition -> be64 ms from which the Kafka
 *                                      log held the partition when this node began
 *                                      reading it (it had lost older messages: "caught
 *                                      up with a gap"); "orig" be32 q be32 p -> be64
 *                                      the highest origin offset on partition p of the
 *                                      misrouted copies applied on partition q
 *                                      (server/origins.h)
 *   's' be32 part, be32 seq, be64 user, be64 ~B
 *                                      stream bucket blob (engine/blob.h), written as
 *                                      merge operands (store_batch.c, store_merge.c); B
 *                                      is the bucket with its sign bit flipped, inverted so
 *                                      that a forward scan goes newest bucket first
 *   'i' be32 part, be32 seq, be64 user, id   event-id index of the stream: -> i64 time_ms
 *   'b' be32 seq, be64 gen, be64 user, be64 ~B   batch bucket blob of one generation
 *   'x' be32 partition, be64 offset    a malformed message kept aside: u32 reason length,
 *                                      reason, payload
 *   'c' be64 n                         damaged data kept aside: be16 key length, the key it
 *                                      was found under, be32 reason length, reason, bytes
 * `part` is the user's Kafka partition, seq_partition_of_user(user, P), P the topic's
 * partition count stored as "parts" (seq_store_set_partitions): one partition's stream
 * data is one key range per kind. To drop a partition's data (a node that no longer
 * holds it): seq_store_drop_partition, i.e. DeleteRange ['s' be32 p, 's' be32 p+1) and
 * ['i' be32 p, 'i' be32 p+1) and ['m' "orig" be32 p, 'm' "orig" be32 p+1), and delete 'm'
 * "off" p, "held" p and "gap" p, in one write.
 * One user's sequence is one seek plus a few steps over bucket blobs, per source.
 * Value formats and the key codec: storage/keys.h.
 * Retention: a compaction filter drops stream buckets and index entries older than the
 * sequence's retention plus history_ms (as-of reads look that far back), buckets left
 * without a record, and the copies a correction replaced once they were replaced more
 * than history_ms ago (the merge operator drops those too when it folds a bucket). */
#ifndef SEQ_STORE_H
#define SEQ_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/blob.h"
#include "../engine/def.h"
#include "../engine/event.h"
#include "../engine/exec.h"
#include "../engine/history.h"
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
/* When the data dir began (ms): no as-of read can look before it. */
int64_t seq_store_born_ms(const seq_store *st);
void seq_store_close(seq_store *st);

/* ---- stream writes: seq_store_batch ----
 * Filled by one thread (the consumer's: a user's events always in the same batch), and
 * committed by it or a write-lane thread (server/lanes.h); several batches of one store
 * may be committed at once, and the filling thread may fill one batch while another
 * (its prior, seq_store_batch_set_prior) is being committed. */
typedef struct seq_store_batch seq_store_batch;
seq_store_batch *seq_store_batch_new(seq_store *st);
void seq_store_batch_free(seq_store_batch *b);

/* Adds an event kept by n sequences (outs from seq_exec_apply), stamped with the batch's
 * apply time as its applied_ms (the wall clock at its first event since the last commit:
 * the events of one commit become visible together). A copy of the same event_id already stored for that user and
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
/* The log start of a partition whose Kafka log had lost messages when the consumer began
 * reading it (PRODUCT.md "A node that acquires a partition": caught up with a gap): the
 * stream of that partition is held from from_ms on (the timestamp of the oldest message
 * left). Written in the same atomic write as the events and offsets; 'm' "gap" be32
 * partition -> be64 from_ms; from_ms 0 deletes it. */
void seq_store_batch_set_log_from(seq_store_batch *b, int32_t partition, int64_t from_ms);
/* Misrouted copies (server/origins.h): the highest offset on origin partition p of the
 * copies applied on Kafka partition q, written in the same atomic write as q's events and
 * offsets; 'm' "orig" be32 q be32 p -> be64 offset. */
void seq_store_batch_set_origin(seq_store_batch *b, uint32_t q, uint32_t p, int64_t offset);
/* The stream watermark series of as-of reads (server/wmhist.h; PRODUCT.md "As of T":
 * stream_watermark_ms at T is the newest event time applied by T), persisted with the
 * data: from wall time now_ms on, the newest applied event time over all partitions is
 * newest_ms. One put in this batch, 'm' "wmh" be64 (now_ms / 1000) -> (now_ms,
 * newest_ms): a later change in the same second overwrites the key, so the series keeps
 * the last change of each second. Nothing is read. The consumer calls it once per commit
 * that changes the newest. Nothing is written when history_ms is 0 (no as-of reads). */
void seq_store_batch_set_newest(seq_store_batch *b, int64_t now_ms, int64_t newest_ms);
/* Writes everything added since the last commit in one RocksDB write (synced to the
 * WAL), with the damaged-data reports pending (seq_store_keep_corrupt), then empties the
 * batch for reuse. On failure nothing was written. Nothing is read from RocksDB to add
 * an event (store_batch.c), but an 'i' lookup when the id filter cannot rule the id out.
 * The commit leaves the batch's id index entries (what it wrote for each id) readable by
 * a batch whose prior it is, until the next add to this batch: the commit may run on
 * another thread than the filling one, which must not add to b until it returned. */
int seq_store_batch_commit(seq_store_batch *b, char *err, size_t errlen);
/* b is filled while prior (a batch of the same users, or NULL) may be committing: an
 * id's previous copy is looked for in b, then in prior's entries (not visible in RocksDB
 * before its write), then in RocksDB, so that a correction that follows its first copy
 * by one batch still replaces it. prior must not be added to, renewed or freed while b
 * is filled with it set; set it anew before every fill (it also drops b's entries of its
 * last commit, which b's commit kept for the batch b was the prior of). */
void seq_store_batch_set_prior(seq_store_batch *b, const seq_store_batch *prior);

/* The stream layout's partition count (keys.h): the topic's partition count P, set once
 * by the consumer when it learns it (before its first write) and stored. SEQ_OK when it
 * is now P; SEQ_EPRECONDITION with a message when the data was laid out for another
 * count (the stored one stays in use: reads and writes agree whatever P is, only
 * seq_store_drop_partition then no longer matches the topic's partitions). A store
 * written before any count was set uses 1. */
int seq_store_set_partitions(seq_store *st, uint32_t p, char *err, size_t errlen);
uint32_t seq_store_partitions(seq_store *st);

/* When this node began holding layout partition p (PRODUCT.md "As of T": a node that
 * acquired a partition later cannot answer an earlier T): set by the consumer when it
 * takes on a partition it stores nothing for, kept as 'm' "held" be32 p -> be64 ms (a
 * synced put; SEQ_OK or SEQ_EINTERNAL), forgotten by seq_store_drop_partition. 0 when
 * unknown: held since the data dir began (seq_store_born_ms). Partitions from
 * SEQ_STORE_HELD_MAX on are not tracked (0). */
#define SEQ_STORE_HELD_MAX 1024
int seq_store_set_held_since(seq_store *st, uint32_t p, int64_t ms, char *err, size_t errlen);
int64_t seq_store_held_since(seq_store *st, uint32_t p);
/* The same for the layout partition of a user. */
int64_t seq_store_user_held_since(seq_store *st, uint64_t user);

/* Drops everything the stream path stored for one layout partition: its 's' and 'i' key
 * ranges (two range deletes: kind, be32 part .. kind, be32 part + 1), its stored
 * offset, log start, held-since time and misrouted origins (a range delete), in one
 * write. For a node that no longer holds the partition (the cluster
 * helper calls it once the new holder is caught up). Batch data is not touched. SEQ_OK or
 * SEQ_EINTERNAL. */
int seq_store_drop_partition(seq_store *st, uint32_t part, char *err, size_t errlen);

/* Damaged stored data (a bucket or merge operand that does not decode, met by a read or a
 * compaction): counted since the data dir began, and kept aside under 'c' keys with the
 * key it was found under (written by the next stream commit, or by keep_corrupt, which
 * the consumer calls when idle). list visits the newest `limit` reports: id, what
 * ("stream bucket of user 7, sequence s, bucket start ..."), reason, bytes kept. */
uint64_t seq_store_corrupt_count(seq_store *st);
int seq_store_keep_corrupt(seq_store *st, char *err, size_t errlen);
typedef void (*seq_store_corrupt_fn)(void *ctx, uint64_t id, const char *what,
                                     const char *reason, size_t bytes);
void seq_store_list_corrupt(seq_store *st, uint32_t limit, seq_store_corrupt_fn fn, void *ctx);

/* Stream-path counters (for /metrics): ids in the in-memory id filter, its bytes, and the
 * 'i' lookups it could not spare (redeliveries, corrections, false positives). */
typedef struct {
    uint64_t ids, filter_bytes, id_lookups;
} seq_store_write_stats;
void seq_store_get_write_stats(seq_store *st, seq_store_write_stats *out);

/* The stored stream watermark series (seq_store_batch_set_newest), oldest first: fn(ctx,
 * ms, newest_ms) per second that had a change. Read at open by seqd to restore the
 * as-of series (server/main.c). Damaged values (not 16 bytes) are skipped. Returns how
 * many samples were visited. */
typedef void (*seq_store_newest_fn)(void *ctx, int64_t ms, int64_t newest_ms);
uint64_t seq_store_newest_series(seq_store *st, seq_store_newest_fn fn, void *ctx);
/* Bounds the series to --history-ms: deletes every sample before the newest one older
 * than now - history_ms (that one stays: it is the value in force at the oldest
 * answerable time), in one range delete. Run by seq_store_batch_sweep (at start and once
 * a minute). SEQ_OK or SEQ_EINTERNAL. */
int seq_store_newest_trim(seq_store *st, int64_t now, char *err, size_t errlen);

/* Stored log start of a partition (seq_store_batch_set_log_from) into *ms; 0 when none
 * (the log reached back to the partition's start, or was never found short). SEQ_OK;
 * SEQ_EDATALOSS when the stored value is damaged (kept aside, counted); SEQ_EINTERNAL
 * when RocksDB cannot read it. Callers must not take a failure for "no gap". */
int seq_store_get_log_from(seq_store *st, int32_t partition, int64_t *ms);
/* The stored misrouted origins of Kafka partition q (seq_store_batch_set_origin):
 * highest[p] for p < n, -1 where nothing is stored; origin partitions from n on are
 * ignored. SEQ_OK; SEQ_EDATALOSS when a value is damaged (kept aside, counted; that
 * entry stays -1, the others are read); SEQ_EINTERNAL when RocksDB cannot read them. */
int seq_store_get_origins(seq_store *st, uint32_t q, int64_t *highest, uint32_t n);
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
    uint64_t generation;    /* newest load in effect, 0 before any load */
    int64_t watermark_ms;   /* largest end_ms of the loads in effect, 0 before any load */
    const seq_cov_seg *cov; /* owned segments, sorted */
    uint32_t n_cov;
    /* The load history (engine/history.h): the states as of earlier times and what
     * rollback works on. NULL for a sequence the store does not know. */
    const seq_hist *hist;
} seq_store_seqstate;

typedef struct seq_store_view seq_store_view;
/* Cheap (no I/O). Every acquire is paired with a release. */
const seq_store_view *seq_store_view_acquire(seq_store *st);
void seq_store_view_release(seq_store *st, const seq_store_view *v);
const seq_store_seqstate *seq_store_view_seq(const seq_store_view *v, uint32_t seq_id);
/* Is generation gen's data still needed (a load of the history not reclaimed)? */
int seq_store_gen_kept(const seq_store_seqstate *s, uint64_t gen);

/* How many replaced or undone loads per sequence keep their data whatever their age
 * (--keep-generations; default SEQ_KEEP_GENERATIONS_DEFAULT). Set before serving. */
void seq_store_set_keep_generations(seq_store *st, uint32_t n);

/* ---- reads: one seq_store_reader per thread (owns the buffers records point into) ---- */
typedef struct seq_store_reader seq_store_reader;
seq_store_reader *seq_store_reader_new(seq_store *st);
void seq_store_reader_free(seq_store_reader *r);
/* Makes r bypass the record cache (a scan over many users must not evict hot ones). */
void seq_store_reader_uncached(seq_store_reader *r);

/* Errors: SEQ_EDATALOSS (with a message naming user and sequence) when stored data the
 * read needs is damaged (a bucket that does not decode or that a fold marked damaged, a
 * RocksDB checksum error); SEQ_EINTERNAL for other storage failures.
 * Gathers user's records for p->seq: stream records newest first, until
 * seq_merge_need(p) visible ones or times below seq_merge_stop_before(p); and batch records
 * of every generation in p->cov (gen set on each); only the batch's in the BATCH view and
 * only the stream's in the STREAM view (merge.h). Arrays are owned by the reader and
 * valid until its next read. Feed them to seq_merge_run. */
int seq_store_read(seq_store_reader *r, const seq_merge_params *p, uint64_t user,
                   const seq_rec **stream, uint32_t *ns, const seq_rec **batch, uint32_t *nb,
                   char *err, size_t errlen);

/* For tests: the reader gathers every record within retention (no early stop, nothing
 * set aside), so that its answers through the merge can be compared with a normal
 * reader's (tests/unit/test_store_merge_diff.c). */
void seq_store_reader_set_exhaustive(seq_store_reader *r, int on);

/* Sets the SST format options (compression, key prefix, bloom filters) on RocksDB options
 * of an SST writer, so that its files serve reads as well as the database's own. */
struct rocksdb_options_t;
void seq_store_sst_options(struct rocksdb_options_t *o);

/* The record cache's counters since open and its size in bytes (for /metrics). */
typedef struct {
    uint64_t hits, misses, bytes, capacity;
    uint64_t refreshes; /* misses that kept part of an outdated entry (rcache.h) */
    uint64_t writes;    /* entries a stream commit updated in place (write-through) */
    uint64_t prepared;  /* entries a load extended with its generation before its switch */
    uint64_t local;     /* refreshes that found all they needed in the outdated entry */
} seq_store_rcache_stats;
void seq_store_record_cache_stats(seq_store *st, seq_store_rcache_stats *out);

/* Approximate RocksDB block cache usage and capacity, in bytes (for /metrics). */
void seq_store_cache_usage(seq_store *st, uint64_t *usage, uint64_t *capacity);

#endif
