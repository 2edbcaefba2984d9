/* Storage fails safe on damaged stored data (issue 10, item 3): a damaged bucket answers
 * DATA_LOSS naming the user and sequence (never a wrong OK) while other users are served;
 * the consumer's writes to a damaged bucket still commit (blind writes: nothing read,
 * nothing stalls); a merge operand that does not decode never fails the merge operator
 * (reads, compactions and later writes go on); damaged bytes are counted once and kept
 * aside under 'c' keys naming where they were found; a flipped byte in an SST data block
 * (RocksDB's checksum) answers DATA_LOSS for the user whose data it holds. */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "store_fixture.h"

static int64_t T;

static int read_rc(seq_store_reader *r, const seq_def *d, uint64_t user, uint32_t *ns,
                   char *err, size_t errlen)
{
    seq_merge_params p = fx_params(d, seq_now_ms());
    const seq_rec *s, *b;
    uint32_t nb;
    err[0] = 0;
    return seq_store_read(r, &p, user, &s, ns, &b, &nb, err, errlen);
}

typedef struct {
    int n;
    char what[8][256];
} listed;

static void on_corrupt(void *ctx, uint64_t id, const char *what, const char *reason, size_t bytes)
{
    listed *l = ctx;
    (void)id, (void)reason, (void)bytes;
    if (l->n < 8) snprintf(l->what[l->n], sizeof l->what[0], "%s", what);
    l->n++;
}

static void damaged_bucket_and_operand(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    seq_store_batch *b = seq_store_batch_new(st);
    seq_store_reader *r = seq_store_reader_new(st);
    char err[512];
    uint32_t ns = 0;
    CHECK(fx_add(b, d, 50, T + 1, "a", 0, 1) == SEQ_OK);
    CHECK(fx_add(b, d, 51, T + 1, "b", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);

    /* user 50's bucket overwritten with bytes that do not decode */
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_stream(k, seq_store_part_of(st, 50), 0, 50, seq_bucket_of(T, HOUR));
    fx_put_raw(st, k, kl, "\x02\x00\x00\x00\x05\x00\x00\x00junk", 12);
    CHECK_EQ_INT(read_rc(r, d, 50, &ns, err, sizeof err), SEQ_EDATALOSS);
    CHECK(strstr(err, "user 50") && strstr(err, "sequence eng"));
    CHECK_EQ_INT(read_rc(r, d, 51, &ns, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(ns, 1);
    CHECK_EQ_INT(seq_store_corrupt_count(st), 1);

    /* the consumer writes into the damaged bucket: the commit succeeds; reads still say
     * DATA_LOSS (the fold keeps the damage mark); the same bytes are counted once */
    CHECK(fx_add(b, d, 50, T + 2, "c", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(read_rc(r, d, 50, &ns, err, sizeof err), SEQ_EDATALOSS);
    CHECK(strstr(err, "user 50") != NULL);
    CHECK_EQ_INT(read_rc(r, d, 50, &ns, err, sizeof err), SEQ_EDATALOSS);
    CHECK_EQ_INT(seq_store_corrupt_count(st), 1);
    /* a correction moving "a" out of the damaged bucket (its older bucket): no read of
     * it, no stall; the commit goes through */
    CHECK(fx_add(b, d, 50, T + HOUR + 5, "a", 0, 2) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(read_rc(r, d, 50, &ns, err, sizeof err), SEQ_EDATALOSS);

    /* a merge operand that does not decode, on user 52's bucket */
    CHECK(fx_add(b, d, 52, T + 1, "e", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    kl = seq_key_stream(k, seq_store_part_of(st, 52), 0, 52, seq_bucket_of(T, HOUR));
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *e = NULL;
    rocksdb_merge(seq_store_db(st), wo, (const char *)k, kl, "Qbad", 4, &e);
    CHECK(e == NULL);
    rocksdb_writeoptions_destroy(wo);
    CHECK_EQ_INT(read_rc(r, d, 52, &ns, err, sizeof err), SEQ_EDATALOSS);
    CHECK(strstr(err, "user 52") != NULL);
    CHECK_EQ_INT(seq_store_corrupt_count(st), 2);
    /* compactions fold it without failing; writes go on after them */
    fx_compact(st);
    CHECK(fx_add(b, d, 52, T + 3, "f", 0, 1) == SEQ_OK);
    CHECK(fx_add(b, d, 53, T + 3, "g", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(read_rc(r, d, 52, &ns, err, sizeof err), SEQ_EDATALOSS);
    CHECK_EQ_INT(read_rc(r, d, 53, &ns, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(read_rc(r, d, 51, &ns, err, sizeof err), SEQ_OK);

    /* kept aside: written by the commits (or keep_corrupt), listed with where they were */
    CHECK(seq_store_keep_corrupt(st, err, sizeof err) == SEQ_OK);
    listed l = {0};
    seq_store_list_corrupt(st, 10, on_corrupt, &l);
    CHECK_EQ_INT(l.n, 2);
    CHECK(strstr(l.what[0], "stream bucket of user 50, sequence eng") != NULL);
    CHECK(strstr(l.what[1], "user 52") != NULL);
    seq_store_reader_free(r);
    seq_store_batch_free(b);
    seq_store_close(st);
    /* the count survives a reopen */
    st = fx_open(d);
    CHECK_EQ_INT(seq_store_corrupt_count(st), 2);
    seq_store_close(st);
    seq_def_free(d);
}

/* The newest .sst file of the data dir into path; 0 on success. */
static int newest_sst(char *path, size_t n)
{
    DIR *dir = opendir(fx_dir);
    struct dirent *de;
    long best = -1;
    while (dir && (de = readdir(dir))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".sst") == 0 && atol(de->d_name) > best)
            best = atol(de->d_name);
    }
    if (dir) closedir(dir);
    if (best < 0) return -1;
    snprintf(path, n, "%s/%06ld.sst", fx_dir, best);
    return 0;
}

static void flush(seq_store *st)
{
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    char *e = NULL;
    rocksdb_flush(seq_store_db(st), fo, &e);
    CHECK(e == NULL);
    rocksdb_flushoptions_destroy(fo);
}

static void flipped_sst_byte(void)
{
    fx_rmdir();
    fx_mkdir();
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    char err[512];
    CHECK(seq_store_set_partitions(st, 1, err, sizeof err) == SEQ_OK);
    flush(st); /* meta keys in a file of their own */
    seq_store_batch *b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 60, T + 1, "a", 0, 1) == SEQ_OK);
    CHECK(fx_add(b, d, 60, T + 2, "b", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    flush(st); /* user 60's keys: one small file, one data block */
    char sst[256];
    CHECK(newest_sst(sst, sizeof sst) == 0);
    CHECK(fx_add(b, d, 61, T + 1, "c", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    flush(st);
    seq_store_batch_free(b);
    seq_store_close(st);

    int fd = open(sst, O_RDWR);
    CHECK(fd >= 0);
    uint8_t byte;
    CHECK(pread(fd, &byte, 1, 20) == 1); /* inside the first data block */
    byte ^= 0x5a;
    CHECK(pwrite(fd, &byte, 1, 20) == 1);
    close(fd);

    st = fx_open(d); /* opens: the damaged block is read only by what touches it */
    CHECK(st != NULL);
    seq_store_reader *r = seq_store_reader_new(st);
    uint32_t ns = 0;
    CHECK_EQ_INT(read_rc(r, d, 60, &ns, err, sizeof err), SEQ_EDATALOSS);
    CHECK(strstr(err, "user 60") && strstr(err, "sequence eng"));
    CHECK_EQ_INT(read_rc(r, d, 61, &ns, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(ns, 1);
    /* writes go on: a new event for an unaffected user commits and reads back */
    b = seq_store_batch_new(st);
    CHECK(fx_add(b, d, 62, T + 1, "d", 0, 1) == SEQ_OK);
    CHECK(fx_commit(b) == SEQ_OK);
    CHECK_EQ_INT(read_rc(r, d, 62, &ns, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(ns, 1);
    seq_store_batch_free(b);
    seq_store_reader_free(r);
    seq_store_close(st);
    seq_def_free(d);
}

int main(void)
{
    T = (seq_now_ms() / HOUR - 3) * HOUR;
    fx_mkdir();
    RUN(damaged_bucket_and_operand);
    RUN(flipped_sst_byte);
    fx_rmdir();
    return seq_t_done();
}
