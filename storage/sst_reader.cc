// SST verification shim over RocksDB's C++ SstFileReader, which the C API lacks
// (../shared/TOOLCHAIN.md). Exceptions never cross into C: RocksDB reports through
// Status, and allocation failure aborts as anywhere else in the process.
#include "sst_reader.h"

#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table_properties.h>

#include <cstdio>
#include <memory>

static int fail(char *err, size_t errlen, const char *path, const rocksdb::Status &s)
{
    if (err && errlen) std::snprintf(err, errlen, "%s: %s", path, s.ToString().c_str());
    return -1;
}

extern "C" int seq_sst_scan(const char *path, seq_sst_entry_fn fn, void *ctx, char *err,
                            size_t errlen)
{
    rocksdb::Options opts;
    rocksdb::SstFileReader reader(opts);
    rocksdb::Status s = reader.Open(path);
    if (!s.ok()) return fail(err, errlen, path, s);
    s = reader.VerifyChecksum();
    if (!s.ok()) return fail(err, errlen, path, s);
    auto props = reader.GetTableProperties();
    if (props && (props->num_range_deletions > 0 || props->num_merge_operands > 0 ||
                  props->num_deletions > 0)) {
        if (err && errlen)
            std::snprintf(err, errlen, "%s: holds deletions or merge operands, not a seqd build",
                          path);
        return -1;
    }
    rocksdb::ReadOptions ro;
    ro.verify_checksums = true;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(ro));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
        rocksdb::Slice k = it->key(), v = it->value();
        int rc = fn(ctx, k.data(), k.size(), v.data(), v.size());
        if (rc) return rc;
    }
    if (!it->status().ok()) return fail(err, errlen, path, it->status());
    return 0;
}
