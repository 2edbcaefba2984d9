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

#ifdef __cplusplus
}
#endif
#endif
