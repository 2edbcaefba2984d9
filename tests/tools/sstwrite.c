/* sstwrite: writes an arbitrary, valid RocksDB SST file with the RocksDB C API's SST
 * writer, for load failure tests that need files `seqctl build` would never produce: a
 * foreign file (a readable SST with other keys) or a batch file with a key outside its
 * range. Lines on stdin, one entry each, written in key order:
 *   raw KEYHEX VALHEX                    any key and value
 *   marker SEQ GEN                       the partition marker of (SEQ, GEN)
 *   event SEQ GEN USER TIME_MS ITEM ID   a batch key for TIME_MS's bucket holding a
 *                                        well-formed one-event blob (type 0, no columns)
 * Usage: sstwrite OUT.sst BUCKET_MS < entries */
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/blob.h"
#include "storage/batch_file.h"
#include "storage/keys.h"

typedef struct {
    seq_buf key, val;
} entry;

static int unhex(const char *s, seq_buf *out)
{
    size_t n = strlen(s);
    if (n % 2) return -1;
    for (size_t i = 0; i < n; i += 2) {
        unsigned v;
        if (sscanf(s + i, "%2x", &v) != 1) return -1;
        uint8_t b = (uint8_t)v;
        if (seq_buf_append(out, &b, 1) < 0) return -1;
    }
    return 0;
}

static int event_entry(entry *e, unsigned seq, unsigned long long gen, unsigned long long user,
                       long long t, unsigned long long item, const char *id, long long bucket_ms)
{
    uint8_t k[SEQ_KEY_MAX];
    seq_rec r = {.time_ms = t, .item_id = item, .id = id, .id_len = (uint32_t)strlen(id)};
    size_t kl = seq_key_batch(k, seq, gen, user, seq_bucket_of(t, bucket_ms));
    if (seq_buf_append(&e->key, k, kl) < 0) return -1;
    return seq_blob_build(&e->val, &r, 1) == SEQ_OK ? 0 : -1;
}

/* One input line into e; -1 if it does not parse. */
static int parse_line(char *line, entry *e, long long bucket_ms)
{
    char kind[16], a[4096], b[4096], id[256];
    unsigned seq;
    unsigned long long gen, user, item;
    long long t;
    memset(e, 0, sizeof *e);
    if (sscanf(line, "raw %4095s %4095s", a, b) == 2)
        return unhex(a, &e->key) < 0 || unhex(b, &e->val) < 0 ? -1 : 0;
    if (sscanf(line, "event %u %llu %llu %lld %llu %255s", &seq, &gen, &user, &t, &item, id) == 6)
        return event_entry(e, seq, gen, user, t, item, id, bucket_ms);
    if (sscanf(line, "%15s %u %llu", kind, &seq, &gen) == 3 && strcmp(kind, "marker") == 0) {
        uint8_t k[SEQ_KEY_MAX];
        size_t kl = seq_batch_marker_key(k, seq, gen);
        return seq_buf_append(&e->key, k, kl) < 0 || seq_buf_append(&e->val, "{}", 2) < 0 ? -1
                                                                                           : 0;
    }
    return -1;
}

static int cmp_entry(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    size_t n = a->key.len < b->key.len ? a->key.len : b->key.len;
    int c = memcmp(a->key.data, b->key.data, n);
    if (c) return c;
    return (a->key.len > b->key.len) - (a->key.len < b->key.len);
}

static int write_sst(const char *path, entry *es, size_t n)
{
    char *e = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_envoptions_t *eo = rocksdb_envoptions_create();
    rocksdb_sstfilewriter_t *w = rocksdb_sstfilewriter_create(eo, o);
    rocksdb_sstfilewriter_open(w, path, &e);
    for (size_t i = 0; !e && i < n; i++)
        rocksdb_sstfilewriter_put(w, (const char *)es[i].key.data, es[i].key.len,
                                  (const char *)es[i].val.data, es[i].val.len, &e);
    if (!e) rocksdb_sstfilewriter_finish(w, &e);
    rocksdb_sstfilewriter_destroy(w);
    rocksdb_envoptions_destroy(eo);
    rocksdb_options_destroy(o);
    if (e) fprintf(stderr, "sstwrite: %s: %s\n", path, e);
    free(e);
    return e ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sstwrite OUT.sst BUCKET_MS < entries\n");
        return 2;
    }
    long long bucket_ms = atoll(argv[2]);
    entry *es = NULL;
    size_t n = 0, cap = 0;
    char line[9000];
    int rc = 1;
    while (fgets(line, sizeof line, stdin)) {
        if (line[strspn(line, " \t\r\n")] == '\0') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            entry *p = realloc(es, cap * sizeof *p);
            if (!p) goto out;
            es = p;
        }
        if (parse_line(line, &es[n], bucket_ms) < 0) {
            fprintf(stderr, "sstwrite: bad line: %s", line);
            n++;
            goto out;
        }
        n++;
    }
    qsort(es, n, sizeof *es, cmp_entry);
    rc = write_sst(argv[1], es, n) < 0;
out:
    for (size_t i = 0; i < n; i++) seq_buf_free(&es[i].key), seq_buf_free(&es[i].val);
    free(es);
    return rc;
}
