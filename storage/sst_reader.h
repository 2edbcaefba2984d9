/* A C view of RocksDB's SstFileReader (C++ only in RocksDB 7.8): lets a load verify an
 * external SST file (checksums, every key and value) before ingesting it. The only C++ in
 * the product; see sst_reader.cc. */
#ifndef SEQ_SST_READER_H
#define SEQ_SST_READER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called for each entry in key order; a non-zero return stops the scan and is returned. */
typedef int (*seq_sst_entry_fn)(void *ctx, const char *key, size_t klen, const char *val,
                                size_t vlen);

/* Opens path, verifies its block checksums, then scans every entry through fn.
 * Returns 0, the callback's non-zero value, or -1 with a message (not an SST file,
 * corrupt, unreadable) in err. Range deletions or merge operands count as corrupt. */
int seq_sst_scan(const char *path, seq_sst_entry_fn fn, void *ctx, char *err, size_t errlen);

/* Opens path (its footer and meta blocks checked as seq_sst_scan checks them), refuses a
 * file holding deletions, range deletions or merge operands, and copies its first and
 * last keys (up to cap bytes each; *flen and *llen their whole lengths; both 0 for an
 * empty file). Reads the index and two data blocks, not the whole file: for a file whose
 * bytes were verified whole elsewhere, it bounds what an ingestion can touch. 0, or -1
 * with a message in err. */
int seq_sst_bounds(const char *path, char *first, size_t cap, size_t *flen, char *last,
                   size_t *llen, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
