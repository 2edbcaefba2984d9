/* Record cache: one user's bucket blobs of one sequence, as the read path gathered them
 * from RocksDB (storage/store_read.c), kept in memory so that a hot read costs a hash
 * lookup and a copy instead of a RocksDB seek per source. Internal to storage/.
 *
 * Validity, without locks on the write path's side beyond one shard mutex:
 * - stream writes: the consumer calls seq_rcache_forget for every (sequence, user) it
 *   wrote, after its RocksDB write. A reader takes the shard's version before it reads
 *   RocksDB and seq_rcache_put drops the entry if the version moved meanwhile, so an
 *   entry built from data older than a write is never stored;
 * - batch loads: an entry is tagged with the signature of the coverage it was read
 *   under (seq_rcache_cov_sig); a committed load changes the coverage, so every entry
 *   of the sequence stops matching at once, without a sweep.
 * A stream write may instead fold itself into the user's entry (seq_rcache_write, from the
 * commit: storage/store_read.c seq_store_entry_write), so that the written user's next
 * read is still a hit.
 * An entry outdated either way is not a hit, but it is not dropped either: a forget marks
 * its stream part outdated, and seq_rcache_get_stale hands it to the reader, which keeps
 * what is still current (a generation's batch data never changes once loaded; the stream
 * part when no write came since) and reads only the rest from RocksDB (store_read.c).
 * A load thus costs each user one seek of the new generation, and a stream write one seek
 * of the stream, instead of one per source (bench/NOTES.md, "Session 11"). A load also
 * prepares the entries before its switch (seq_rcache_swap, from store_read.c
 * seq_store_prepare_entries): each cached user it holds gets the new generation's buckets
 * appended, and each cached user it does not hold the generation's empty mark, so that
 * the refresh after the switch finds it there and reads nothing from RocksDB
 * (bench/NOTES.md, "Session 12" and "Session 13").
 * Entries are opaque bytes to this module; LRU eviction per shard within the capacity.
 * A hit hands out a reference instead of a copy (the entry is immutable): an entry
 * dropped or evicted while readers hold it is freed by the last release, so the memory
 * in use may exceed the capacity by what the readers hold (one entry per reader). */
#ifndef SEQ_RCACHE_H
#define SEQ_RCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"
#include "../engine/merge.h"

typedef struct seq_rcache seq_rcache;
typedef struct seq_rcache_entry seq_rcache_entry;

/* capacity 0: no cache (NULL). Caller frees with seq_rcache_free. */
seq_rcache *seq_rcache_new(size_t capacity_bytes);
void seq_rcache_free(seq_rcache *c);

/* Signature of a coverage map (generations and ranges). */
uint64_t seq_rcache_cov_sig(const seq_cov_seg *cov, uint32_t n);

/* On a hit, sets *e to a reference to the entry (release it with seq_rcache_release)
 * and returns 1; 0 on a miss (or an entry made under another coverage). *version is the
 * version of (seq, user)'s shard: on a miss, read RocksDB after this call and pass it to
 * put. */
int seq_rcache_get(seq_rcache *c, uint32_t seq, uint64_t user, uint64_t cov_sig,
                   const seq_rcache_entry **e, uint64_t *version);
/* As seq_rcache_get; on a miss that finds an outdated entry of (seq, user) (another
 * coverage signature, or a stream write since), also sets *stale to a reference to it
 * (release it) and *stream_ok to 1 when its stream part is still current (only the
 * coverage changed); otherwise *stale = NULL. */
int seq_rcache_get_stale(seq_rcache *c, uint32_t seq, uint64_t user, uint64_t cov_sig,
                         const seq_rcache_entry **e, uint64_t *version,
                         const seq_rcache_entry **stale, int *stream_ok);
/* The bytes of a held entry: stable and unchanged until its release. */
const uint8_t *seq_rcache_entry_data(const seq_rcache_entry *e, size_t *len);
/* Gives back a reference from seq_rcache_get; NULL is a no-op. Any thread. */
void seq_rcache_release(const seq_rcache_entry *e);

/* Largest entry put keeps: larger ones are not worth gathering. */
size_t seq_rcache_max_entry(const seq_rcache *c);

/* Stores a copy of data unless (seq, user) was forgotten since `version` was read or the
 * entry is too large for its shard. */
void seq_rcache_put(seq_rcache *c, uint32_t seq, uint64_t user, uint64_t cov_sig,
                    uint64_t version, const void *data, size_t len);

/* The entry of (seq, user) whose stream part is current, whatever its coverage
 * signature: a reference (release it), or NULL. For the write-through below. */
const seq_rcache_entry *seq_rcache_peek(seq_rcache *c, uint32_t seq, uint64_t user);
/* After a stream write of (seq, user), committed to RocksDB: `data` (the entry `was`, from
 * seq_rcache_peek, with the write folded in) replaces was, under was's coverage signature,
 * if the table still holds was with its stream part current; otherwise (or with data
 * NULL, or too large) the entry's stream part is marked outdated, as forget does. Moves
 * the shard's version either way. */
void seq_rcache_write(seq_rcache *c, uint32_t seq, uint64_t user, const seq_rcache_entry *was,
                      const void *data, size_t len);
/* Before a load's generation is switched in (store_read.c seq_store_prepare_entries):
 * `data` (the entry `was`, from seq_rcache_peek, with the new generation's buckets
 * appended) replaces was, under was's coverage signature, if the table still holds was;
 * otherwise nothing changes (the entry's next miss reads the generation from RocksDB).
 * The version does not move: data adds nothing a reader of RocksDB could miss (the
 * coverage does not name the generation yet). Returns 1 when replaced. */
int seq_rcache_swap(seq_rcache *c, uint32_t seq, uint64_t user, const seq_rcache_entry *was,
                    const void *data, size_t len);
/* The users of seq with an entry whose stream part is current, in no order: *out is a
 * malloc'd array (free it; NULL when none). Returns how many, or -1 when out of memory.
 * For the preparation of the entries of the users a load does not hold (store_read.c). */
long seq_rcache_users(seq_rcache *c, uint32_t seq, uint64_t **out);
/* Marks (seq, user)'s entry's stream part outdated (no longer a hit) and moves its
 * shard's version. */
void seq_rcache_forget(seq_rcache *c, uint32_t seq, uint64_t user);
/* Drops every entry (a partition's data was dropped); NULL is a no-op. */
void seq_rcache_clear(seq_rcache *c);

typedef struct {
    uint64_t hits, misses, bytes, capacity;
    uint64_t stale; /* misses that found an outdated entry to refresh (get_stale) */
    uint64_t written; /* entries a stream write replaced with the write folded in */
    uint64_t prepared; /* entries a load extended with its generation (seq_rcache_swap) */
    uint64_t entries;  /* entries held now */
} seq_rcache_stats;
void seq_rcache_get_stats(seq_rcache *c, seq_rcache_stats *s);

#endif
