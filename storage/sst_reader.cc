// SST verification shim over RocksDB's C++ SstFileReader, which the C API lacks
// (../shared/TOOLCHAIN.md). Exceptions never cross into C: RocksDB reports through
// Status, and an allocation that fails (a corrupt block handle can claim any size) is
// caught here and reported as a corrupt file.
//
// Before RocksDB reads a block it allocates the size the block's handle claims, and
// RocksDB 7.8 does not check that against the file's size (found by fuzz_batch_verify: a
// footer claiming a 14 GB metaindex block). So the footer is checked first: its handles
// must lie inside the file, and the file must carry block checksums (seqctl build always
// writes them), so that the handles of every other block come from checksummed blocks.
// RocksDB parses the properties block before checking its checksum (an assertion in
// Debian's build fires on some corrupt ones, found by the same target), so the metaindex
// and properties blocks' checksums are checked here first, with RocksDB's own function.
#include "sst_reader.h"

#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table.h>
#include <rocksdb/table_properties.h>

#include <cstring>
#include <string>
#include <vector>

namespace rocksdb { // exported by librocksdb (table/format.h), not in its public headers
uint32_t ComputeBuiltinChecksumWithLastByte(ChecksumType type, const char *data, size_t size,
                                            char last_byte);
}

#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>

namespace {

const uint64_t kMagic = 0x88e241b785f4cff7ull;       // block-based table, format_version >= 1
const uint64_t kLegacyMagic = 0xdb4775248b80fb57ull; // format_version 0: no checksum byte
const size_t kFooter = 53, kLegacyFooter = 48, kBlockTrailer = 5;

uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// Reads a varint64 at *p (< end); false when truncated or too long.
bool varint(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char c = *(*p)++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            *out = v;
            return true;
        }
    }
    return false;
}

struct handle {
    uint64_t off, len;
};

bool read_at(FILE *f, uint64_t off, void *buf, size_t n)
{
    return std::fseek(f, (long)off, SEEK_SET) == 0 && std::fread(buf, 1, n, f) == n;
}

// Reads the block at h (inside the file: checked by the caller) and checks its trailer's
// checksum. Empty string when it holds; else what is wrong.
const char *read_block(FILE *f, handle h, int type, std::string *out)
{
    out->resize(h.len + kBlockTrailer);
    if (!read_at(f, h.off, &(*out)[0], out->size())) return "cannot read a block";
    const unsigned char *t = (const unsigned char *)out->data() + h.len;
    uint32_t want = (uint32_t)t[1] | (uint32_t)t[2] << 8 | (uint32_t)t[3] << 16 | (uint32_t)t[4] << 24;
    uint32_t got = rocksdb::ComputeBuiltinChecksumWithLastByte((rocksdb::ChecksumType)type,
                                                               out->data(), h.len, (char)t[0]);
    out->resize(h.len);
    return got == want ? "" : "block checksum mismatch";
}

// The handle of "rocksdb.properties" in a metaindex block (restart entries of
// shared/non-shared/value lengths, key delta, value; then the restart array); false when
// absent or malformed.
bool find_properties(const std::string &blk, handle *out)
{
    const unsigned char *b = (const unsigned char *)blk.data();
    if (blk.size() < 4) return false;
    uint32_t nr = (uint32_t)b[blk.size() - 4] | (uint32_t)b[blk.size() - 3] << 8 |
                  (uint32_t)b[blk.size() - 2] << 16 | (uint32_t)b[blk.size() - 1] << 24;
    if (nr > (blk.size() - 4) / 4) return false;
    const unsigned char *p = b, *end = b + blk.size() - 4 - 4 * (size_t)nr;
    std::string key;
    while (p < end) {
        uint64_t shared, non_shared, vlen;
        if (!varint(&p, end, &shared) || !varint(&p, end, &non_shared) || !varint(&p, end, &vlen) ||
            shared > key.size() || non_shared > (uint64_t)(end - p) ||
            vlen > (uint64_t)(end - p) - non_shared)
            return false;
        key.resize(shared);
        key.append((const char *)p, non_shared);
        p += non_shared;
        const unsigned char *v = p, *vend = p + vlen;
        p = vend;
        if (key == "rocksdb.properties")
            return varint(&v, vend, &out->off) && varint(&v, vend, &out->len);
    }
    return false;
}

bool inside(handle h, uint64_t size)
{
    return h.off <= size && h.len <= size - h.off && h.len + kBlockTrailer <= size - h.off;
}

// Checks the metaindex and properties blocks' checksums (see the top of the file).
const char *check_meta_blocks(FILE *f, uint64_t size, handle meta, int type)
{
    std::string blk;
    const char *bad = read_block(f, meta, type, &blk);
    if (*bad) return bad;
    handle props;
    if (!find_properties(blk, &props)) return ""; // RocksDB reports what is missing
    if (!inside(props, size)) return "corrupt: the properties block is past the end of the file";
    return read_block(f, props, type, &blk);
}

// "" when the footer is acceptable (or not a block-based table footer at all: RocksDB
// then reports it), else what is wrong.
const char *check_file(FILE *f)
{
    unsigned char buf[kFooter];
    long size = -1;
    bool got = std::fseek(f, 0, SEEK_END) == 0 && (size = std::ftell(f)) >= (long)kFooter &&
               read_at(f, (uint64_t)size - kFooter, buf, kFooter);
    if (!got) return "";
    const unsigned char *p, *end = buf + kFooter - 12; // handles end before version + magic
    uint64_t magic = le64(buf + kFooter - 8);
    int type = 1; // format_version 0 files are crc32c
    if (magic == kMagic) {
        type = buf[0];
        if (type == 0) return "no block checksums (not written by seqctl build)";
        p = buf + 1;
    } else if (magic == kLegacyMagic) {
        p = buf + kFooter - kLegacyFooter;
        end = buf + kFooter - 8;
    } else {
        return "";
    }
    handle h[2]; // the metaindex and index handles
    for (int i = 0; i < 2; i++) {
        if (!varint(&p, end, &h[i].off) || !varint(&p, end, &h[i].len)) return "corrupt footer";
        if (!inside(h[i], (uint64_t)size))
            return "corrupt footer: a block handle points past the end of the file";
    }
    return check_meta_blocks(f, (uint64_t)size, h[0], type);
}

const char *check_footer(const char *path)
{
    FILE *f = std::fopen(path, "rb");
    if (!f) return ""; // RocksDB reports the open error
    const char *bad = check_file(f);
    std::fclose(f);
    return bad;
}

} // namespace

static int fail(char *err, size_t errlen, const char *path, const rocksdb::Status &s)
{
    if (err && errlen) std::snprintf(err, errlen, "%s: %s", path, s.ToString().c_str());
    return -1;
}

// Opens path into reader: footer and meta blocks checked, no deletions or merge operands.
static int open_checked(rocksdb::SstFileReader &reader, const char *path, char *err,
                        size_t errlen)
{
    const char *bad = check_footer(path);
    if (*bad) {
        if (err && errlen) std::snprintf(err, errlen, "%s: %s", path, bad);
        return -1;
    }
    rocksdb::Status s = reader.Open(path);
    if (!s.ok()) return fail(err, errlen, path, s);
    auto props = reader.GetTableProperties();
    if (props && (props->num_range_deletions > 0 || props->num_merge_operands > 0 ||
                  props->num_deletions > 0)) {
        if (err && errlen)
            std::snprintf(err, errlen, "%s: holds deletions or merge operands, not a seqd build",
                          path);
        return -1;
    }
    return 0;
}

static int scan(const char *path, seq_sst_entry_fn fn, void *ctx, char *err, size_t errlen)
{
    rocksdb::Options opts;
    rocksdb::SstFileReader reader(opts);
    if (open_checked(reader, path, err, errlen)) return -1;
    rocksdb::Status s = reader.VerifyChecksum();
    if (!s.ok()) return fail(err, errlen, path, s);
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

static void copy_key(const rocksdb::Slice &k, char *out, size_t cap, size_t *len)
{
    *len = k.size();
    std::memcpy(out, k.data(), k.size() < cap ? k.size() : cap);
}

static int bounds(const char *path, char *first, size_t cap, size_t *flen, char *last,
                  size_t *llen, char *err, size_t errlen)
{
    rocksdb::Options opts;
    rocksdb::SstFileReader reader(opts);
    if (open_checked(reader, path, err, errlen)) return -1;
    rocksdb::ReadOptions ro;
    ro.verify_checksums = true;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(ro));
    *flen = *llen = 0;
    it->SeekToFirst();
    if (it->Valid()) copy_key(it->key(), first, cap, flen);
    it->SeekToLast();
    if (it->Valid()) copy_key(it->key(), last, cap, llen);
    if (!it->status().ok()) return fail(err, errlen, path, it->status());
    return 0;
}

extern "C" int seq_sst_bounds(const char *path, char *first, size_t cap, size_t *flen,
                              char *last, size_t *llen, char *err, size_t errlen)
{
    try {
        return bounds(path, first, cap, flen, last, llen, err, errlen);
    } catch (const std::bad_alloc &) {
        if (err && errlen)
            std::snprintf(err, errlen, "%s: corrupt: a block claims more memory than there is",
                          path);
        return -1;
    }
}

extern "C" int seq_sst_scan(const char *path, seq_sst_entry_fn fn, void *ctx, char *err,
                            size_t errlen)
{
    try {
        return scan(path, fn, ctx, err, errlen);
    } catch (const std::bad_alloc &) {
        if (err && errlen)
            std::snprintf(err, errlen, "%s: corrupt: a block claims more memory than there is",
                          path);
        return -1;
    }
}
