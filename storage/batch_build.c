/* Batch builder: input files -> shared decoder + executor -> sorted runs (spilled to
 * disk past the memory limit) -> k-way merge by user -> dedup by event_id (last input
 * copy wins) -> bucket blobs -> SST files + manifest.json. See batch.h. */
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/blob.h"
#include "../engine/event.h"
#include "../engine/exec.h"
#include "../engine/ingest.h"
#include "../engine/input_avro.h"
#include "../engine/partition.h"
#include "batch_file.h"
#include "batch_parts.h"
#include "store.h"

#define FILE_TARGET_BYTES (256u << 20) /* start a new SST past this size */

/* One kept event in memory: fixed part + offset of its id and columns in the arena. The
 * partition shares a word with the input order so that a partitioned build's records
 * stay 40 bytes (the sort moves them around). */
#define SEQNO_BITS 48
typedef struct {
    uint64_t user;
    int64_t time;
    uint64_t item;
    uint64_t seqno : SEQNO_BITS; /* input order: the larger copy of an id wins */
    uint64_t part : 64 - SEQNO_BITS; /* its partition in a partitioned build, else 0 */
    uint32_t off;   /* into arena: id bytes then n_cols doubles */
    uint16_t type;
    uint8_t id_len, n_cols;
} brec;

typedef struct {
    FILE *f;
    char path[4096];
} run_file;

struct seq_build {
    const seq_def *def;
    const seq_sequence *seq;
    int64_t start_ms, end_ms;
    uint64_t gen;
    char out_dir[3800];
    size_t mem_limit;
    brec *recs;
    size_t n, cap;
    seq_buf arena;
    uint64_t seqno;
    run_file *runs;
    size_t n_runs;
    uint32_t partitions; /* 0: one unpartitioned batch in out_dir; else P (batch_parts.h) */
    uint8_t *selected;   /* [partitions]: the parts this builder writes */
    seq_build_report rep;
};

static int write_desc(seq_build *b, char *err, size_t errlen);

static void note(seq_build *b, const char *file, uint64_t line, const char *what)
{
    if (b->rep.n_notes >= SEQ_BUILD_MAX_NOTES) return;
    /* a note is cut to its slot (a long path or message): said explicitly, or gcc -O2
     * rejects the possible truncation under -Werror=format-truncation */
    char *slot = b->rep.notes[b->rep.n_notes++];
    int n = snprintf(slot, sizeof b->rep.notes[0], "%s:%llu: ", file, (unsigned long long)line);
    if (n >= 0 && (size_t)n < sizeof b->rep.notes[0])
        snprintf(slot + n, sizeof b->rep.notes[0] - (size_t)n, "%.*s",
                 (int)(sizeof b->rep.notes[0] - (size_t)n - 1), what);
}

int seq_build_new(const seq_def *def, const char *sequence, int64_t start_ms, int64_t end_ms,
                  uint64_t generation, const char *out_dir, size_t mem_limit, seq_build **out,
                  char *err, size_t errlen)
{
    const seq_sequence *s = seq_def_find(def, sequence, strlen(sequence));
    if (!s) {
        seq_errf(err, errlen, "unknown sequence '%s'", sequence);
        return SEQ_ENOTFOUND;
    }
    if (start_ms >= end_ms || start_ms % def->bucket_ms || end_ms % def->bucket_ms) {
        seq_errf(err, errlen, "range [%lld, %lld) must be non-empty and aligned to bucket_ms %lld",
                 (long long)start_ms, (long long)end_ms, (long long)def->bucket_ms);
        return SEQ_EINVAL;
    }
    if (generation == 0) {
        seq_errf(err, errlen, "generation must be > 0");
        return SEQ_EINVAL;
    }
    if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
        seq_errf(err, errlen, "%s: %s", out_dir, strerror(errno));
        return SEQ_EINTERNAL;
    }
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/" SEQ_BATCH_MANIFEST, out_dir);
    if (access(mpath, F_OK) == 0) {
        seq_errf(err, errlen, "%s already exists: build into an empty directory", mpath);
        return SEQ_EINVAL;
    }
    seq_build *b = calloc(1, sizeof *b);
    if (!b) return SEQ_EINTERNAL;
    b->def = def;
    b->seq = s;
    b->start_ms = start_ms;
    b->end_ms = end_ms;
    b->gen = generation;
    snprintf(b->out_dir, sizeof b->out_dir, "%s", out_dir);
    b->mem_limit = mem_limit ? mem_limit : (size_t)1 << 30;
    *out = b;
    return SEQ_OK;
}

int seq_build_set_partitions(seq_build *b, uint32_t partitions, const uint8_t *selected,
                             char *err, size_t errlen)
{
    if (partitions < 1 || partitions > SEQ_PARTS_MAX || b->n || b->n_runs || b->partitions) {
        seq_errf(err, errlen, "partitions must be 1..%d, set once before any input",
                 SEQ_PARTS_MAX);
        return SEQ_EINVAL;
    }
    if (!(b->selected = malloc(partitions))) return SEQ_EINTERNAL;
    b->partitions = partitions;
    for (uint32_t p = 0; p < partitions; p++) {
        b->selected[p] = selected ? selected[p] != 0 : 1;
        char name[32], path[4200];
        seq_parts_dir_name(name, sizeof name, p);
        snprintf(path, sizeof path, "%s/%s/" SEQ_BATCH_MANIFEST, b->out_dir, name);
        if (b->selected[p] && access(path, F_OK) == 0) {
            seq_errf(err, errlen, "%s already exists: each part is built once", path);
            return SEQ_EINVAL;
        }
    }
    /* A batch.json of another batch there: refuse now rather than after the work. */
    return write_desc(b, err, errlen);
}

/* Build order: partition, user ascending, then read order (time descending, larger id first), then
 * the later input copy first. ia/ib: each record's id bytes. */
static inline int rec_order(const brec *a, const uint8_t *ia, const brec *b, const uint8_t *ib)
{
    if (a->part != b->part) return a->part < b->part ? -1 : 1;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->time != b->time) return a->time > b->time ? -1 : 1;
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(ia, ib, n);
    if (c == 0 && a->id_len != b->id_len) c = a->id_len < b->id_len ? -1 : 1;
    if (c) return -c;
    return a->seqno > b->seqno ? -1 : (a->seqno < b->seqno);
}

static inline int rec_less(const brec *a, const brec *b, const uint8_t *arena)
{
    return rec_order(a, arena + a->off, b, arena + b->off) < 0;
}

static int cmp_rec(const void *pa, const void *pb, void *arena)
{
    const brec *a = pa, *b = pb;
    return rec_order(a, (const uint8_t *)arena + a->off, b, (const uint8_t *)arena + b->off);
}

static inline void swap_rec(brec *a, brec *b)
{
    brec t = *a;
    *a = *b;
    *b = t;
}

/* Introsort with the comparison inlined: sorting is the builder's largest cost, and
 * qsort_r's indirect calls and merge copies doubled it. Past the depth limit (an adversarial
 * input), the range goes to qsort_r. */
static void sort_recs(brec *r, size_t n, const uint8_t *arena, int depth)
{
    while (n > 16) {
        if (depth-- == 0) {
            qsort_r(r, n, sizeof *r, cmp_rec, (void *)arena);
            return;
        }
        size_t m = n / 2;
        if (rec_less(&r[m], &r[0], arena)) swap_rec(&r[m], &r[0]);
        if (rec_less(&r[n - 1], &r[m], arena)) {
            swap_rec(&r[n - 1], &r[m]);
            if (rec_less(&r[m], &r[0], arena)) swap_rec(&r[m], &r[0]);
        }
        brec pivot = r[m];
        size_t i = 0, j = n - 1;
        for (;;) { /* Hoare partition: r[0..j] <= pivot <= r[j+1..] */
            while (rec_less(&r[i], &pivot, arena)) i++;
            while (rec_less(&pivot, &r[j], arena)) j--;
            if (i >= j) break;
            swap_rec(&r[i++], &r[j--]);
        }
        size_t left = j + 1; /* recurse into the smaller side, loop on the larger */
        if (left < n - left) {
            sort_recs(r, left, arena, depth);
            r += left;
            n -= left;
        } else {
            sort_recs(r + left, n - left, arena, depth);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        brec x = r[i];
        size_t j = i;
        for (; j > 0 && rec_less(&x, &r[j - 1], arena); j--) r[j] = r[j - 1];
        r[j] = x;
    }
}

static void sort_all(seq_build *b)
{
    int depth = 0;
    for (size_t n = b->n; n > 1; n >>= 1) depth += 2;
    sort_recs(b->recs, b->n, b->arena.data, depth);
}

/* ---- runs: sorted record sequences, in memory or spilled to a file ---- */

static int spill(seq_build *b, char *err, size_t errlen)
{
    sort_all(b);
    run_file *rf = realloc(b->runs, (b->n_runs + 1) * sizeof *rf);
    if (!rf) return SEQ_EINTERNAL;
    b->runs = rf;
    rf = &b->runs[b->n_runs];
    /* A unique name: builders of other parts may spill into the same directory. */
    snprintf(rf->path, sizeof rf->path, "%s/.run-XXXXXX", b->out_dir);
    int fd = mkstemp(rf->path);
    rf->f = fd >= 0 ? fdopen(fd, "w+b") : NULL;
    if (!rf->f) {
        if (fd >= 0) close(fd);
        seq_errf(err, errlen, "%s: %s", rf->path, strerror(errno));
        return SEQ_EINTERNAL;
    }
    b->n_runs++;
    b->rep.runs++;
    unlink(rf->path); /* nobody else needs its name; gone even if the builder is killed */
    for (size_t i = 0; i < b->n; i++) {
        const brec *r = &b->recs[i];
        size_t extra = r->id_len + (size_t)r->n_cols * 8;
        if (fwrite(r, sizeof *r, 1, rf->f) != 1 ||
            fwrite(b->arena.data + r->off, 1, extra, rf->f) != extra) {
            seq_errf(err, errlen, "%s: write failed: %s", rf->path, strerror(errno));
            return SEQ_EINTERNAL;
        }
    }
    rewind(rf->f);
    b->n = 0;
    b->arena.len = 0;
    return SEQ_OK;
}

/* Room for one more record in a doubling array (first size `initial`); 0 or -1 (OOM). */
static int grow(brec **recs, size_t *cap, size_t n, size_t initial)
{
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : initial;
    brec *p = realloc(*recs, c * sizeof *p);
    if (!p) return -1;
    *recs = p;
    *cap = c;
    return 0;
}

static int keep(seq_build *b, const seq_event *ev, const seq_exec_out *o)
{
    size_t extra = ev->id_len + (size_t)o->n_cols * 8;
    uint32_t part = b->partitions ? seq_partition_of_user(ev->user_id, b->partitions) : 0;
    if (b->partitions && !b->selected[part]) {
        b->rep.other_partitions++; /* another builder's share */
        return SEQ_OK;
    }
    if (b->seqno + 1 >= (uint64_t)1 << SEQNO_BITS) return SEQ_EINTERNAL;
    if (grow(&b->recs, &b->cap, b->n, 65536) < 0) return SEQ_EINTERNAL;
    brec *r = &b->recs[b->n++];
    r->user = ev->user_id;
    r->time = ev->time_ms;
    r->item = ev->item_id;
    r->seqno = ++b->seqno;
    r->part = part;
    r->off = (uint32_t)b->arena.len;
    r->type = (uint16_t)o->type_idx;
    r->id_len = (uint8_t)ev->id_len;
    r->n_cols = (uint8_t)o->n_cols;
    if (seq_buf_reserve(&b->arena, extra) < 0) return SEQ_EINTERNAL;
    memcpy(b->arena.data + b->arena.len, ev->id, ev->id_len);
    memcpy(b->arena.data + b->arena.len + ev->id_len, o->cols, (size_t)o->n_cols * 8);
    b->arena.len += extra;
    return SEQ_OK;
}

static int over_limit(const seq_build *b)
{
    return b->arena.len + b->n * sizeof(brec) >= b->mem_limit || b->arena.len > 0xF0000000u;
}

static int account(seq_build *b, const char *path, uint64_t line, seq_ingest_result ir,
                   const seq_event *ev, const seq_exec_out *out, char *msg, size_t msglen);

/* Runs one input record through the shared ingest step (engine/ingest.h). */
static int add_record(seq_build *b, const char *path, uint64_t line, const uint8_t *rec,
                      size_t len, seq_format fmt, int64_t now)
{
    seq_event ev;
    seq_exec_out out;
    uint32_t n_out = 0;
    char msg[160];
    b->rep.records++;
    seq_ingest_result ir = seq_ingest(b->def, fmt, rec, len, now, (int)b->seq->id, &ev, &out,
                                      &n_out, msg, sizeof msg);
    return account(b, path, line, ir, &ev, &out, msg, sizeof msg);
}

/* What the ingest step said of one record (msg its message when malformed): counted and
 * noted, or kept when inside the range. */
static int account(seq_build *b, const char *path, uint64_t line, seq_ingest_result ir,
                   const seq_event *ev, const seq_exec_out *out, char *msg, size_t msglen)
{
    if (ir == SEQ_INGEST_MALFORMED || ir == SEQ_INGEST_FUTURE) {
        b->rep.malformed++;
        note(b, path, line, msg);
        return SEQ_OK;
    }
    if (ev->time_ms < b->start_ms || ev->time_ms >= b->end_ms) {
        b->rep.out_of_range++;
        snprintf(msg, msglen, "event_time_ms %lld outside [%lld, %lld)",
                 (long long)ev->time_ms, (long long)b->start_ms, (long long)b->end_ms);
        note(b, path, line, msg);
        return SEQ_OK;
    }
    if (ir == SEQ_INGEST_UNKNOWN_TYPE) {
        b->rep.unknown_type++;
        snprintf(msg, msglen, "event_type '%s' is not a type of sequence '%s'", ev->type,
                 b->seq->name);
        note(b, path, line, msg);
        return SEQ_OK;
    }
    if (ir == SEQ_INGEST_FILTERED) {
        b->rep.filtered++;
        return SEQ_OK;
    }
    b->rep.kept++;
    return keep(b, ev, out);
}

/* Drops the pages of input already read, [from, to) rounded to pages, so that the
 * mapping of an input larger than RAM does not count against the memory bound (records
 * kept point into the arena, never into the input). Returns the new `from`. */
static size_t release_input(void *map, size_t from, size_t to)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    to -= to % page;
    if (to > from) madvise((uint8_t *)map + from, to - from, MADV_DONTNEED);
    return to > from ? to : from;
}

/* An Avro container file (engine/input_avro.h): avro-c reads it record by record, so
 * nothing of it is mapped; records are numbered from 1 in the notes. The reader decodes,
 * the shared ingest step does the rest. */
static int add_avro_file(seq_build *b, const char *path,
                         void (*progress)(const seq_build_report *r), char *err, size_t errlen)
{
    seq_avro_reader *r;
    int rc = seq_avro_open(b->def, path, &r, err, errlen), got;
    if (rc != SEQ_OK) return rc;
    int64_t now = seq_now_ms();
    seq_event ev;
    seq_exec_out out;
    uint32_t n_out;
    char msg[200];
    while ((got = seq_avro_next(r, &ev, msg, sizeof msg)) > 0) {
        b->rep.records++;
        seq_ingest_result ir =
            got == 1 ? seq_ingest_event(b->def, &ev, now, (int)b->seq->id, &out, &n_out, msg,
                                        sizeof msg)
                     : SEQ_INGEST_MALFORMED;
        rc = account(b, path, seq_avro_record_no(r), ir, &ev, &out, msg, sizeof msg);
        if (rc == SEQ_OK && over_limit(b)) rc = spill(b, err, errlen);
        if (rc != SEQ_OK) break;
        if (progress && b->rep.records % 1000000 == 0) progress(&b->rep);
    }
    if (got < 0) {
        seq_errf(err, errlen, "%s: %s", path, msg);
        rc = SEQ_EINVAL;
    }
    seq_avro_close(r);
    return rc;
}

int seq_build_add_file(seq_build *b, const char *path, seq_format fmt,
                       void (*progress)(const seq_build_report *r), char *err, size_t errlen)
{
    if (fmt == SEQ_FORMAT_AVRO) return add_avro_file(b, path, progress, err, errlen);
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        seq_errf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return SEQ_ENOTFOUND;
    }
    void *map = NULL;
    if (st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            seq_errf(err, errlen, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            return SEQ_EINTERNAL;
        }
        madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    }
    close(fd);
    seq_input in;
    seq_input_init(&in, fmt, map, (size_t)st.st_size);
    const uint8_t *rec;
    size_t len;
    int64_t now = seq_now_ms();
    int rc = SEQ_OK, got;
    char ferr[200];
    size_t dropped = 0; /* input bytes already handed back to the kernel */
    while ((got = seq_input_next(&in, &rec, &len, ferr, sizeof ferr)) == 1) {
        rc = add_record(b, path, in.record_no, rec, len, fmt, now);
        if (rc == SEQ_OK && over_limit(b)) rc = spill(b, err, errlen);
        if (rc != SEQ_OK) break;
        if (b->rep.records % 1000000 == 0) {
            if (progress) progress(&b->rep);
            dropped = release_input(map, dropped, (size_t)(in.p - (const uint8_t *)map));
        }
    }
    if (got < 0) {
        seq_errf(err, errlen, "%s: %s", path, ferr);
        rc = SEQ_EINVAL;
    }
    if (map) munmap(map, (size_t)st.st_size);
    return rc;
}

/* ---- merge of runs, dedup, blobs, SST files ---- */

/* A sorted run being merged: the in-memory one (records point into the arena, nothing
 * copied) or a spilled file (one record at a time read into buf). */
typedef struct {
    int mem; /* 1: the in-memory run */
    size_t pos;
    FILE *f;
    brec cur;
    const uint8_t *data; /* cur's id bytes then columns */
    int live;
    uint8_t buf[SEQ_ID_MAX + 1 + 8 * SEQ_MAX_COLUMNS];
} source;

static int source_next(seq_build *b, source *s)
{
    if (s->mem) {
        if (s->pos >= b->n) return s->live = 0;
        s->cur = b->recs[s->pos++];
        s->data = b->arena.data + s->cur.off;
        return s->live = 1;
    }
    if (fread(&s->cur, sizeof s->cur, 1, s->f) != 1) return s->live = 0;
    size_t extra = s->cur.id_len + (size_t)s->cur.n_cols * 8;
    if (extra > sizeof s->buf || fread(s->buf, 1, extra, s->f) != extra) return -1;
    s->data = s->buf;
    return s->live = 1;
}

/* The output side: one user's records at a time, then SST files. */
typedef struct {
    seq_build *b;
    rocksdb_options_t *opts;
    rocksdb_envoptions_t *envopts;
    rocksdb_sstfilewriter_t *w;
    seq_batch_file_info cur; /* the file being written */
    char dir[4096];          /* where the current part's files go */
    int part_open;           /* a part's files are being written */
    uint32_t part;           /* the current part (0 when not partitioned) */
    uint32_t next_part;      /* partitions below it are done */
    uint64_t part_users, part_events;
    json_t *files;           /* the current part's files */
    uint32_t file_no;
    brec *user_recs; /* the buffered user's records; off points into user_bytes */
    size_t n_user, cap_user;
    seq_buf user_bytes;
    seq_buf blob, key_last;
    seq_rec *recs;
    size_t cap_recs;
} writer;

static int writer_open_file(writer *w, char *err, size_t errlen)
{
    char *e = NULL;
    snprintf(w->cur.name, sizeof w->cur.name, "part-%05u.sst", w->file_no++);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", w->dir, w->cur.name);
    w->w = rocksdb_sstfilewriter_create(w->envopts, w->opts);
    rocksdb_sstfilewriter_open(w->w, path, &e);
    if (e) {
        seq_errf(err, errlen, "%s: %s", path, e);
        free(e);
        return SEQ_EINTERNAL;
    }
    w->cur.users = w->cur.events = 0;
    w->cur.first_key_len = 0;
    return SEQ_OK;
}

static int writer_close_file(writer *w, char *err, size_t errlen)
{
    char *e = NULL;
    if (!w->w) return SEQ_OK;
    rocksdb_sstfilewriter_finish(w->w, &e);
    rocksdb_sstfilewriter_destroy(w->w);
    w->w = NULL;
    if (e) {
        seq_errf(err, errlen, "%s: %s", w->cur.name, e);
        free(e);
        return SEQ_EINTERNAL;
    }
    memcpy(w->cur.last_key, w->key_last.data, w->key_last.len);
    w->cur.last_key_len = (uint32_t)w->key_last.len;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", w->dir, w->cur.name);
    w->cur.hash_alg = SEQ_BATCH_HASH_XXH3;
    int rc = seq_batch_file_hash(path, w->cur.hash_alg, &w->cur.size, &w->cur.hash, err,
                                 errlen);
    if (rc != SEQ_OK) return rc;
    json_array_append_new(w->files, seq_batch_file_to_json(&w->cur));
    w->b->rep.files++;
    return SEQ_OK;
}

static int put_blob(writer *w, uint64_t user, int64_t bucket, const seq_rec *recs, size_t n,
                    char *err, size_t errlen)
{
    uint8_t key[SEQ_KEY_MAX];
    char *e = NULL;
    size_t klen = seq_key_batch(key, w->b->seq->id, w->b->gen, user, bucket);
    if (seq_blob_build(&w->blob, recs, n) != SEQ_OK) return SEQ_EINTERNAL;
    if (!w->w) {
        int rc = writer_open_file(w, err, errlen);
        if (rc != SEQ_OK) return rc;
    }
    rocksdb_sstfilewriter_put(w->w, (const char *)key, klen, (const char *)w->blob.data,
                              w->blob.len, &e);
    if (e) {
        seq_errf(err, errlen, "%s: %s", w->cur.name, e);
        free(e);
        return SEQ_EINTERNAL;
    }
    if (w->cur.first_key_len == 0) {
        memcpy(w->cur.first_key, key, klen);
        w->cur.first_key_len = (uint32_t)klen;
    }
    w->key_last.len = 0;
    seq_buf_append(&w->key_last, key, klen);
    w->cur.events += n;
    return SEQ_OK;
}

/* Copies of one id sit anywhere in a user's read-ordered records: sort an index by
 * (id, seqno descending) and drop all but the first of each id (the last input copy). */
static int cmp_id_idx(const void *pa, const void *pb, void *ctx)
{
    const writer *w = ctx;
    const brec *a = &w->user_recs[*(const size_t *)pa], *b = &w->user_recs[*(const size_t *)pb];
    const uint8_t *base = w->user_bytes.data;
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = memcmp(base + a->off, base + b->off, n);
    if (c == 0 && a->id_len != b->id_len) c = a->id_len < b->id_len ? -1 : 1;
    if (c) return c;
    return a->seqno > b->seqno ? -1 : (a->seqno < b->seqno);
}

static void mark_dropped(writer *w, size_t *idx, uint8_t *drop)
{
    size_t n = w->n_user;
    const uint8_t *base = w->user_bytes.data;
    qsort_r(idx, n, sizeof *idx, cmp_id_idx, w);
    for (size_t i = 1; i < n; i++) {
        const brec *a = &w->user_recs[idx[i - 1]], *b = &w->user_recs[idx[i]];
        if (a->id_len == b->id_len && memcmp(base + a->off, base + b->off, a->id_len) == 0)
            drop[idx[i]] = 1;
    }
}

/* The first file opens with the partition's marker (batch_file.h), so that even a build
 * with no events is a loadable file: an empty partition still replaces its range. */
static int put_marker(writer *w, char *err, size_t errlen)
{
    uint8_t key[SEQ_KEY_MAX];
    char *e = NULL, val[512];
    size_t klen = seq_batch_marker_key(key, w->b->seq->id, w->b->gen);
    int n = snprintf(val, sizeof val,
                     "{\"sequence\":\"%s\",\"start_ms\":%lld,\"end_ms\":%lld,"
                     "\"generation\":%llu,\"fingerprint\":\"%016llx\"}",
                     w->b->seq->name, (long long)w->b->start_ms, (long long)w->b->end_ms,
                     (unsigned long long)w->b->gen, (unsigned long long)w->b->def->fingerprint);
    int rc = writer_open_file(w, err, errlen);
    if (rc != SEQ_OK) return rc;
    rocksdb_sstfilewriter_put(w->w, (const char *)key, klen, val,
                              (size_t)n < sizeof val ? (size_t)n : sizeof val - 1, &e);
    if (e) {
        seq_errf(err, errlen, "%s: %s", w->cur.name, e);
        free(e);
        return SEQ_EINTERNAL;
    }
    memcpy(w->cur.first_key, key, klen);
    w->cur.first_key_len = (uint32_t)klen;
    w->key_last.len = 0;
    return seq_buf_append(&w->key_last, key, klen) < 0 ? SEQ_EINTERNAL : SEQ_OK;
}

/* ---- parts: one in an unpartitioned build, else one directory per selected partition
 * (batch_parts.h), written in partition order since records sort by partition first ---- */

static int part_begin(writer *w, uint32_t part, char *err, size_t errlen)
{
    seq_build *b = w->b;
    snprintf(w->dir, sizeof w->dir, "%s", b->out_dir);
    if (b->partitions) {
        char name[32];
        seq_parts_dir_name(name, sizeof name, part);
        snprintf(w->dir, sizeof w->dir, "%s/%s", b->out_dir, name);
        if (mkdir(w->dir, 0755) < 0 && errno != EEXIST) {
            seq_errf(err, errlen, "%s: %s", w->dir, strerror(errno));
            return SEQ_EINTERNAL;
        }
    }
    w->part = part;
    w->part_open = 1;
    w->part_users = w->part_events = 0;
    w->file_no = 0;
    json_decref(w->files);
    if (!(w->files = json_array())) return SEQ_EINTERNAL;
    return put_marker(w, err, errlen);
}

/* Closes the part's last file and writes its manifest. */
static int part_end(writer *w, char *err, size_t errlen)
{
    seq_build *b = w->b;
    int rc = writer_close_file(w, err, errlen);
    if (rc != SEQ_OK) return rc;
    seq_batch_manifest m = {.start_ms = b->start_ms, .end_ms = b->end_ms,
                            .generation = b->gen, .users = w->part_users,
                            .events = w->part_events, .files = w->files,
                            .partitions = b->partitions, .partition = w->part};
    snprintf(m.sequence, sizeof m.sequence, "%s", b->seq->name);
    rc = seq_batch_manifest_write(w->dir, &m, b->def, err, errlen);
    w->part_open = 0;
    w->next_part = w->part + 1;
    if (rc == SEQ_OK) b->rep.parts++;
    return rc;
}

/* Makes `part` the open part (a no-op when it is): ends the open one and writes an empty
 * part for every selected partition in between, since a partition with no users is still
 * a part. part == partitions ends them all. Unpartitioned builds have one part, open. */
static int part_switch(writer *w, uint32_t part, char *err, size_t errlen)
{
    seq_build *b = w->b;
    int rc = SEQ_OK;
    if (!b->partitions || (w->part_open && w->part == part)) return SEQ_OK;
    if (w->part_open) rc = part_end(w, err, errlen);
    for (uint32_t p = w->next_part; p < part && rc == SEQ_OK; p++)
        if (b->selected[p] && (rc = part_begin(w, p, err, errlen)) == SEQ_OK)
            rc = part_end(w, err, errlen);
    if (rc == SEQ_OK && part < b->partitions) rc = part_begin(w, part, err, errlen);
    return rc;
}

static int write_desc(seq_build *b, char *err, size_t errlen)
{
    seq_batch_desc d = {.start_ms = b->start_ms, .end_ms = b->end_ms, .generation = b->gen,
                        .partitions = b->partitions};
    snprintf(d.sequence, sizeof d.sequence, "%s", b->seq->name);
    snprintf(d.fingerprint, sizeof d.fingerprint, "%016llx",
             (unsigned long long)b->def->fingerprint);
    return seq_batch_desc_write(b->out_dir, &d, err, errlen);
}

/* Emits the buffered user: drops earlier copies of an id, then one blob per bucket. */
static int flush_user(writer *w, char *err, size_t errlen)
{
    size_t n = w->n_user, m = 0;
    if (n == 0) return SEQ_OK;
    size_t *idx = malloc(n * sizeof *idx);
    uint8_t *drop = calloc(n, 1);
    if (!idx || !drop) {
        free(idx);
        free(drop);
        return SEQ_EINTERNAL;
    }
    for (size_t i = 0; i < n; i++) idx[i] = i;
    mark_dropped(w, idx, drop);
    free(idx);
    if (m + n > w->cap_recs) {
        seq_rec *p = realloc(w->recs, n * sizeof *p);
        if (!p) {
            free(drop);
            return SEQ_EINTERNAL;
        }
        w->recs = p;
        w->cap_recs = n;
    }
    for (size_t i = 0; i < n; i++) {
        if (drop[i]) {
            w->b->rep.duplicates++;
            continue;
        }
        const brec *x = &w->user_recs[i];
        const uint8_t *data = w->user_bytes.data + x->off;
        w->recs[m++] = (seq_rec){.time_ms = x->time, .item_id = x->item, .type_idx = x->type,
                                 .id_len = x->id_len, .id = (const char *)data,
                                 .n_cols = x->n_cols, .cols = data + x->id_len};
    }
    free(drop);
    int rc = part_switch(w, w->user_recs[0].part, err, errlen);
    for (size_t i = 0; i < m && rc == SEQ_OK;) {
        int64_t bucket = seq_exec_bucket(w->b->def, w->recs[i].time_ms);
        size_t j = i + 1;
        while (j < m && seq_exec_bucket(w->b->def, w->recs[j].time_ms) == bucket) j++;
        rc = put_blob(w, w->user_recs[0].user, bucket, w->recs + i, j - i, err, errlen);
        i = j;
    }
    if (m) {
        w->b->rep.users++;
        w->b->rep.events += m;
        w->cur.users++;
        w->part_users++;
        w->part_events += m;
    }
    w->n_user = 0;
    w->user_bytes.len = 0;
    if (rc == SEQ_OK && w->w) {
        uint64_t size = 0;
        rocksdb_sstfilewriter_file_size(w->w, &size);
        if (size >= FILE_TARGET_BYTES) rc = writer_close_file(w, err, errlen);
    }
    return rc;
}

static int buffer_rec(writer *w, const source *src)
{
    if (grow(&w->user_recs, &w->cap_user, w->n_user, 256) < 0) return SEQ_EINTERNAL;
    brec *r = &w->user_recs[w->n_user++];
    *r = src->cur;
    r->off = (uint32_t)w->user_bytes.len;
    return seq_buf_append(&w->user_bytes, src->data, r->id_len + (size_t)r->n_cols * 8) < 0
               ? SEQ_EINTERNAL
               : SEQ_OK;
}

static int merge_runs(seq_build *b, writer *w, char *err, size_t errlen)
{
    size_t ns = b->n_runs + 1;
    source *src = calloc(ns, sizeof *src);
    if (!src) return SEQ_EINTERNAL;
    int rc = SEQ_OK;
    src[0].mem = 1;
    for (size_t i = 1; i < ns; i++) src[i].f = b->runs[i - 1].f;
    for (size_t i = 0; i < ns && rc == SEQ_OK; i++)
        if (source_next(b, &src[i]) < 0) rc = SEQ_EINTERNAL;
    for (;;) {
        if (rc != SEQ_OK) break;
        source *best = NULL; /* few runs: a linear scan beats a heap's bookkeeping */
        for (size_t i = 0; i < ns; i++)
            if (src[i].live &&
                (!best || rec_order(&src[i].cur, src[i].data, &best->cur, best->data) < 0))
                best = &src[i];
        if (!best) break;
        if (w->n_user && w->user_recs[0].user != best->cur.user)
            rc = flush_user(w, err, errlen);
        if (rc == SEQ_OK) rc = buffer_rec(w, best);
        if (rc == SEQ_OK && source_next(b, best) < 0) {
            seq_errf(err, errlen, "spilled run is corrupt");
            rc = SEQ_EINTERNAL;
        }
    }
    if (rc == SEQ_OK) rc = flush_user(w, err, errlen);
    free(src);
    return rc;
}

int seq_build_finish(seq_build *b, seq_build_report *rep, char *err, size_t errlen)
{
    writer w = {.b = b};
    int rc = SEQ_OK;
    sort_all(b);
    w.opts = rocksdb_options_create();
    w.envopts = rocksdb_envoptions_create();
    seq_store_sst_options(w.opts); /* the database's prefix blooms */
    if (!b->partitions) rc = part_begin(&w, 0, err, errlen); /* even with no events */
    if (rc == SEQ_OK) rc = merge_runs(b, &w, err, errlen);
    if (rc == SEQ_OK && b->partitions) rc = part_switch(&w, b->partitions, err, errlen);
    if (rc == SEQ_OK && w.part_open) rc = part_end(&w, err, errlen);
    if (rc == SEQ_OK && b->partitions) rc = write_desc(b, err, errlen);
    if (w.w) rocksdb_sstfilewriter_destroy(w.w);
    rocksdb_options_destroy(w.opts);
    rocksdb_envoptions_destroy(w.envopts);
    json_decref(w.files);
    free(w.user_recs);
    seq_buf_free(&w.user_bytes);
    free(w.recs);
    seq_buf_free(&w.blob);
    seq_buf_free(&w.key_last);
    if (rep) *rep = b->rep;
    return rc;
}

const seq_build_report *seq_build_stats(const seq_build *b) { return &b->rep; }

void seq_build_free(seq_build *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n_runs; i++) {
        if (b->runs[i].f) fclose(b->runs[i].f);
        unlink(b->runs[i].path);
    }
    free(b->runs);
    free(b->selected);
    free(b->recs);
    seq_buf_free(&b->arena);
    free(b);
}
