/* Stream writes: the consumer's batch of applied events, committed with the Kafka
 * offsets that produced them in one synced RocksDB write (PRODUCT.md rule 7).
 *
 * Blind writes (issue 10): applying an event reads nothing from RocksDB on the hot path.
 * Each kept event becomes a merge operand of its bucket's key ('A', engine/blob.h), folded
 * into the bucket blob by the merge operator when a read or a compaction meets it
 * (store_merge.c), plus a put of its id index key ('i' -> the event's time). Duplicates
 * are resolved where the copies meet:
 *   - same bucket: the fold marks the older copy replaced (the copy applied last wins);
 *   - another bucket (a correction that moved the event's time): the old bucket gets an
 *     'R' operand marking its copy replaced. Which bucket that is comes from the id
 *     index, looked up only when the in-memory id filter (idfilter.h) says the id may
 *     have been stored before (a redelivery, a correction, or a ~1 % false positive), or
 *     from this batch's own index entries (not in RocksDB until the commit).
 * This is only correct while no other writer writes the same users' stream keys: a
 * user's events all go to one batch (the consumer's write lane of the user's partition),
 * batches are filled by one thread (the id filter is that thread's, and so is its
 * published count: seq_store_publish_idf), and a lookup for an id never misses a copy
 * that an earlier batch holds: either that batch's write is done, or it is the batch's
 * prior (seq_store_batch_set_prior: the consumer fills a lane's next batch while its
 * previous one commits), whose id index entries the lookup reads first. Those entries
 * stay as they were through the prior's commit (it only reads them), and are cleared on
 * the filling thread when the prior is filled again (set_prior, or its next add). Several batches may be committed at once,
 * each by its own thread. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* This batch's id index entries (key -> time), so that a second copy of an id in the
 * same batch finds the first before the commit makes it visible to lookups. */
typedef struct {
    uint32_t hash, koff;
    uint16_t klen;
    int64_t time;
} ient;

typedef struct {
    uint32_t seq;
    uint64_t user;
} touched;

/* A stream write staged until the commit, so that the commit hands RocksDB its keys in
 * order: the memtable's skiplist insert starts from the previous insert's position (a
 * splice), and inserts in key order make each search short. The skiplist search was
 * most of the write path's CPU (bench/NOTES.md, "Stream write path"). The same key's
 * writes keep their order (merge operands fold oldest first). */
typedef struct {
    uint32_t off;  /* key then value in staged.data */
    uint16_t klen;
    uint8_t merge; /* 1: merge operand, 0: put */
    uint32_t vlen;
    uint32_t ord;  /* staging order */
} staged;

struct seq_store_batch {
    seq_store *st;
    rocksdb_writebatch_t *wb;
    ient *ent;
    uint32_t n_ent, cap_ent;
    uint32_t *tab;   /* open addressing: entry index + 1, 0 = empty */
    uint32_t tab_cap; /* power of two, > 2 * n_ent */
    seq_buf keys;     /* the entries' key bytes */
    touched *users;   /* (seq, user) written, for the record cache */
    uint32_t n_users, cap_users;
    seq_buf op;
    seq_buf sbytes;   /* staged writes' keys and values */
    staged *st_w;     /* staged writes */
    uint32_t n_st, cap_st;
    uint64_t n_malformed;
    /* The apply time of every event of this commit (0: none added yet): they all become
     * visible at once, so an as-of read sees them all or none of them. */
    int64_t applied_ms;
    /* The id index entries (ent, tab, keys) are those of the last commit: kept for a
     * batch whose prior this is, cleared by the next add (set by the commit). */
    int ent_committed;
    const seq_store_batch *prior; /* seq_store_batch_set_prior */
};

static uint32_t hash_key(const uint8_t *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 16777619u;
    return h;
}

seq_store_batch *seq_store_batch_new(seq_store *st)
{
    seq_store_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->st = st;
    b->wb = rocksdb_writebatch_create();
    b->tab_cap = 1024;
    b->tab = calloc(b->tab_cap, sizeof *b->tab);
    if (!b->tab) {
        seq_store_batch_free(b);
        return NULL;
    }
    return b;
}

void seq_store_batch_free(seq_store_batch *b)
{
    if (!b) return;
    free(b->ent);
    free(b->tab);
    free(b->users);
    free(b->st_w);
    seq_buf_free(&b->sbytes);
    seq_buf_free(&b->keys);
    seq_buf_free(&b->op);
    if (b->wb) rocksdb_writebatch_destroy(b->wb);
    free(b);
}

static void tab_insert(uint32_t *tab, uint32_t cap, uint32_t hash, uint32_t idx)
{
    uint32_t i = hash & (cap - 1);
    while (tab[i]) i = (i + 1) & (cap - 1);
    tab[i] = idx + 1;
}

static int grow(seq_store_batch *b)
{
    if (b->n_ent == b->cap_ent) {
        uint32_t cap = b->cap_ent ? b->cap_ent * 2 : 256;
        ient *e = realloc(b->ent, sizeof *e * cap);
        if (!e) return -1;
        b->ent = e;
        b->cap_ent = cap;
    }
    if ((b->n_ent + 1) * 2 > b->tab_cap) {
        uint32_t cap = b->tab_cap * 2;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t) return -1;
        for (uint32_t i = 0; i < b->n_ent; i++) tab_insert(t, cap, b->ent[i].hash, i);
        free(b->tab);
        b->tab = t;
        b->tab_cap = cap;
    }
    return 0;
}

/* This batch's entry for an index key, or NULL. */
static ient *find_ent(seq_store_batch *b, const uint8_t *key, size_t klen, uint32_t h)
{
    for (uint32_t i = h & (b->tab_cap - 1); b->tab[i]; i = (i + 1) & (b->tab_cap - 1)) {
        ient *e = &b->ent[b->tab[i] - 1];
        if (e->hash == h && e->klen == klen && memcmp(b->keys.data + e->koff, key, klen) == 0)
            return e;
    }
    return NULL;
}

static void clear_index(seq_store_batch *b)
{
    b->n_ent = 0;
    b->keys.len = 0;
    memset(b->tab, 0, sizeof *b->tab * b->tab_cap);
    b->ent_committed = 0;
}

static int stage(seq_store_batch *b, int merge, const uint8_t *k, size_t kl, const void *v,
                 size_t vl)
{
    if (b->n_st == b->cap_st) {
        uint32_t cap = b->cap_st ? b->cap_st * 2 : 1024;
        staged *w = realloc(b->st_w, sizeof *w * cap);
        if (!w) return -1;
        b->st_w = w;
        b->cap_st = cap;
    }
    if (b->sbytes.len + kl + vl > UINT32_MAX) return -1;
    uint32_t off = (uint32_t)b->sbytes.len;
    if (seq_buf_append(&b->sbytes, k, kl) < 0 || seq_buf_append(&b->sbytes, v, vl) < 0) return -1;
    b->st_w[b->n_st] = (staged){off, (uint16_t)kl, (uint8_t)merge, (uint32_t)vl, b->n_st};
    b->n_st++;
    return 0;
}

static int cmp_staged(const void *x, const void *y, void *arg)
{
    const staged *a = x, *c = y;
    const uint8_t *d = arg;
    int r = memcmp(d + a->off, d + c->off, a->klen < c->klen ? a->klen : c->klen);
    if (r) return r;
    if (a->klen != c->klen) return a->klen < c->klen ? -1 : 1;
    return a->ord < c->ord ? -1 : a->ord > c->ord;
}

/* The staged writes into the write batch, in key order. */
static void flush_staged(seq_store_batch *b)
{
    if (b->n_st > 1) qsort_r(b->st_w, b->n_st, sizeof *b->st_w, cmp_staged, b->sbytes.data);
    for (uint32_t i = 0; i < b->n_st; i++) {
        const staged *w = &b->st_w[i];
        const char *k = (const char *)b->sbytes.data + w->off;
        if (w->merge) rocksdb_writebatch_merge(b->wb, k, w->klen, k + w->klen, w->vlen);
        else rocksdb_writebatch_put(b->wb, k, w->klen, k + w->klen, w->vlen);
    }
}

/* Records key -> time in this batch's index entries and stages its put. */
static int put_index(seq_store_batch *b, const uint8_t *key, size_t klen, uint32_t h,
                     ient *e, int64_t time)
{
    uint8_t t[8];
    seq_put_be64(t, (uint64_t)time);
    if (stage(b, 0, key, klen, t, 8) < 0) return -1;
    if (e) {
        e->time = time;
        return 0;
    }
    if (grow(b) < 0) return -1;
    uint32_t koff = (uint32_t)b->keys.len;
    if (seq_buf_append(&b->keys, key, klen) < 0) return -1;
    b->ent[b->n_ent] = (ient){h, koff, (uint16_t)klen, time};
    tab_insert(b->tab, b->tab_cap, h, b->n_ent);
    b->n_ent++;
    return 0;
}

/* Where the id's previous copy lives: its time, from this batch, from its prior's entries
 * (being committed: see the top of the file) or (when the id filter cannot rule it out)
 * from RocksDB. 1 found, 0 none. A lookup that fails (damaged index entry or block) is
 * treated as none and reported: the new copy is stored, at worst beside an older copy
 * that a read then shows too (never a stalled consumer). */
static int previous_time(seq_store_batch *b, const uint8_t *key, size_t klen, ient *e,
                         uint32_t h, uint64_t idh, int64_t *time)
{
    seq_store *st = b->st;
    if (!e && b->prior) e = find_ent((seq_store_batch *)b->prior, key, klen, h);
    if (e) {
        *time = e->time;
        return 1;
    }
    if (!st->idf_partial && !seq_idfilter_maybe(st->idf, idh)) return 0;
    atomic_fetch_add_explicit(&st->id_lookups, 1, memory_order_relaxed);
    char *val, err[256];
    size_t vl;
    if (seq_store_get_raw(st, key, klen, &val, &vl, err, sizeof err) != SEQ_OK) {
        seq_store_note_corrupt(st, key, klen, err, strlen(err), "id index lookup failed");
        return 0;
    }
    int found = val && vl == 8;
    if (found) *time = (int64_t)seq_get_be64((const uint8_t *)val);
    else if (val) seq_store_note_corrupt(st, key, klen, val, vl, "undecodable id index entry");
    rocksdb_free(val);
    return found;
}

static int note_user(seq_store_batch *b, uint32_t seq, uint64_t user)
{
    if (b->n_users && b->users[b->n_users - 1].seq == seq && b->users[b->n_users - 1].user == user)
        return 0;
    if (b->n_users == b->cap_users) {
        uint32_t cap = b->cap_users ? b->cap_users * 2 : 256;
        touched *u = realloc(b->users, sizeof *u * cap);
        if (!u) return -1;
        b->users = u;
        b->cap_users = cap;
    }
    b->users[b->n_users++] = (touched){seq, user};
    return 0;
}

static int add_one(seq_store_batch *b, const seq_event *ev, const seq_exec_out *o,
                   int64_t applied, char *err, size_t errlen)
{
    seq_store *st = b->st;
    uint32_t part = seq_store_part_of(st, ev->user_id);
    uint8_t ik[SEQ_KEY_MAX], sk[SEQ_KEY_MAX];
    size_t ikl = seq_key_index(ik, part, o->seq_id, ev->user_id, ev->id, ev->id_len);
    uint32_t h = hash_key(ik, ikl);
    uint64_t idh = seq_idfilter_hash(o->seq_id, ev->user_id, ev->id, ev->id_len);
    ient *e = find_ent(b, ik, ikl, h);
    int64_t told;
    if (previous_time(b, ik, ikl, e, h, idh, &told)) {
        int64_t ob = seq_bucket_of(told, st->def->bucket_ms);
        if (ob != o->bucket) { /* same bucket: the fold replaces it in place */
            size_t skl = seq_key_stream(sk, part, o->seq_id, ev->user_id, ob);
            if (seq_blob_op_replace(&b->op, ev->id, ev->id_len, applied) != SEQ_OK ||
                stage(b, 1, sk, skl, b->op.data, b->op.len) < 0)
                goto oom;
        }
    } else if (!e) {
        if (seq_idfilter_add(st->idf, idh) < 0) goto oom;
        seq_store_publish_idf(st);
    }
    seq_rec rec = {.time_ms = ev->time_ms, .item_id = ev->item_id, .type_idx = o->type_idx,
                   .id_len = ev->id_len, .id = ev->id, .n_cols = o->n_cols,
                   .cols = (const uint8_t *)o->cols, /* blob columns are LE doubles */
                   .applied_ms = applied};
    if (seq_blob_op_add(&b->op, &rec) != SEQ_OK) goto oom;
    size_t skl = seq_key_stream(sk, part, o->seq_id, ev->user_id, o->bucket);
    if (stage(b, 1, sk, skl, b->op.data, b->op.len) < 0) goto oom;
    if (put_index(b, ik, ikl, h, e, ev->time_ms) < 0 || note_user(b, o->seq_id, ev->user_id) < 0)
        goto oom;
    return SEQ_OK;
oom:
    seq_errf(err, errlen, "out of memory");
    return SEQ_EINTERNAL;
}

int seq_store_batch_add_event(seq_store_batch *b, const seq_event *ev, const seq_exec_out *outs,
                              uint32_t n, char *err, size_t errlen)
{
    /* the layout's partition count must be fixed before the first stream key is written */
    if (!seq_store_partitions(b->st) && seq_store_set_partitions(b->st, 1, err, errlen))
        return SEQ_EINTERNAL;
    if (!b->applied_ms) b->applied_ms = seq_now_ms();
    if (b->ent_committed) clear_index(b);
    for (uint32_t i = 0; i < n; i++) {
        int rc = add_one(b, ev, &outs[i], b->applied_ms, err, errlen);
        if (rc != SEQ_OK) return rc;
    }
    return SEQ_OK;
}

int seq_store_batch_add_malformed(seq_store_batch *b, int32_t partition, int64_t offset,
                                  const void *payload, size_t len, const char *reason)
{
    uint8_t k[SEQ_KEY_MAX], h[4];
    size_t kl = seq_key_malformed(k, partition, offset);
    size_t rl = reason ? strlen(reason) : 0;
    seq_put_be32(h, (uint32_t)rl);
    const char *parts[3] = {(const char *)h, reason ? reason : "", payload};
    size_t sizes[3] = {4, rl, len};
    const char *kp = (const char *)k;
    rocksdb_writebatch_putv(b->wb, 1, &kp, &kl, 3, parts, sizes);
    b->n_malformed++;
    return SEQ_OK;
}

void seq_store_batch_set_offset(seq_store_batch *b, int32_t partition, int64_t next_offset,
                                int64_t watermark_ms)
{
    uint8_t k[SEQ_KEY_MAX], v[16];
    size_t kl = seq_key_offset(k, partition);
    seq_put_be64(v, (uint64_t)next_offset);
    seq_put_be64(v + 8, (uint64_t)watermark_ms);
    rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 16);
}

void seq_store_batch_set_log_from(seq_store_batch *b, int32_t partition, int64_t from_ms)
{
    uint8_t k[SEQ_KEY_MAX], v[8];
    size_t kl = seq_key_gap(k, partition);
    if (from_ms <= 0) {
        rocksdb_writebatch_delete(b->wb, (const char *)k, kl);
        return;
    }
    seq_put_be64(v, (uint64_t)from_ms);
    rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 8);
}

void seq_store_batch_set_origin(seq_store_batch *b, uint32_t q, uint32_t p, int64_t offset)
{
    uint8_t k[SEQ_KEY_MAX], v[8];
    size_t kl = seq_key_origin(k, q, p);
    seq_put_be64(v, (uint64_t)offset);
    rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 8);
}

void seq_store_batch_set_newest(seq_store_batch *b, int64_t now_ms, int64_t newest_ms)
{
    if (b->st->history_ms <= 0) return; /* no as-of reads: nothing to keep */
    uint8_t k[SEQ_KEY_MAX], v[16];
    size_t kl = seq_key_wmh(k, now_ms / 1000);
    seq_put_be64(v, (uint64_t)now_ms);
    seq_put_be64(v + 8, (uint64_t)newest_ms);
    rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 16);
}

/* After a successful write, readers must not be served what the record cache held of the
 * users it changed (rcache.h): each written user's entry gets the write folded in
 * (seq_store_entry_write), or is marked outdated. The staged writes are in key order
 * (flush_staged), so a user's stream operands are one run, by bucket, in write order.
 *
 * One race is left on purpose: a reader that missed may gather the user from RocksDB
 * after this write and put its entry before the peek below, so that this commit's
 * operands are folded into an entry that has them already. That is harmless: the next
 * commit of the user starts only after this one's write-through (consumer.c: one commit
 * in flight, a set after the previous whole), so they are the entry's newest operands,
 * and re-applying them changes no answer: a re-added copy replaces its identical self
 * at the same applied time (blob.h: live in [applied, replaced), empty here), and a
 * replace marker finds no live copy left to mark (mark_replaced in engine/blob.c).
 *
 * Only small commits are written through: a fold copies the user's whole entry (every
 * source, every bucket), ~5-8 µs, on the lane thread. Commits are small when the consumer
 * keeps up (a few events per commit at 10k events/s) and large when it is behind; there,
 * writing through every user cut the rate applied with the producer alongside from ~120k
 * to 43k events/s in a full bench/run (bench/NOTES.md, "Session 11", section 4), so larger
 * commits outdate the entries as before. */
#define WRITE_THROUGH_MAX_USERS 64

static void write_through(seq_store_batch *b)
{
    seq_store *st = b->st;
    if (!st->rcache) return;
    const char **ops = NULL;
    size_t *lens = NULL;
    seq_store_wbucket *bk = NULL;
    if (b->n_users <= WRITE_THROUGH_MAX_USERS) {
        ops = malloc(sizeof *ops * (b->n_st + 1));
        lens = malloc(sizeof *lens * (b->n_st + 1));
        bk = malloc(sizeof *bk * (b->n_st + 1));
    }
    if (!ops || !lens || !bk) { /* a large commit, or out of memory: outdate the entries */
        for (uint32_t j = 0; j < b->n_users; j++)
            seq_rcache_forget(st->rcache, b->users[j].seq, b->users[j].user);
        goto out;
    }
    seq_key cur = {0}, k;
    uint32_t nops = 0, nbk = 0;
    for (uint32_t i = 0; i <= b->n_st; i++) {
        const staged *w = i < b->n_st ? &b->st_w[i] : NULL;
        const uint8_t *kp = w ? b->sbytes.data + w->off : NULL;
        int is_stream = w && w->merge && seq_key_parse(kp, w->klen, &k) == 0 && k.kind == SEQ_K_STREAM;
        if (w && !is_stream) continue; /* id index puts */
        if (nbk && (!w || k.seq != cur.seq || k.user != cur.user)) { /* the user's run ended */
            seq_store_entry_write(st, cur.seq, cur.user, bk, nbk, ops, lens);
            nops = nbk = 0;
        }
        if (!w) break;
        if (!nbk || k.bucket != bk[nbk - 1].bucket) bk[nbk++] = (seq_store_wbucket){k.bucket, nops, 0};
        ops[nops] = (const char *)kp + w->klen;
        lens[nops++] = w->vlen;
        bk[nbk - 1].n++;
        cur = k;
    }
out:
    free(ops);
    free(lens);
    free(bk);
}

/* After a commit: empty for reuse, but for the id index entries (clear_index, by the
 * next add: a batch filled meanwhile with this one as its prior may be reading them). */
static void reset(seq_store_batch *b)
{
    rocksdb_writebatch_clear(b->wb);
    b->n_malformed = 0;
    b->applied_ms = 0;
    b->n_users = 0;
    b->n_st = 0;
    b->sbytes.len = 0;
    b->ent_committed = 1;
}

void seq_store_batch_set_prior(seq_store_batch *b, const seq_store_batch *prior)
{
    /* b's own entries of its last commit go now, not at its first add: b may commit no
     * event before it is another batch's prior again, and its old entries would then
     * answer for ids that a later commit changed */
    if (b->ent_committed) clear_index(b);
    b->prior = prior;
}

int seq_store_batch_commit(seq_store_batch *b, char *err, size_t errlen)
{
    seq_store *st = b->st;
    char *e = NULL;
    flush_staged(b);
    /* Commits of several write lanes run at once (server/lanes.h); only those that write
     * the malformed count or damaged-data reports ('m' keys whose last write must be the
     * newest) take turns. A report that arrives after the check waits for the next
     * commit (or seq_store_keep_corrupt). */
    int shared = b->n_malformed || atomic_load(&st->n_corrupt_pending);
    uint64_t count = 0;
    struct seq_corrupt_item *kept = NULL;
    if (shared) {
        pthread_mutex_lock(&st->commit_mu);
        count = atomic_load(&st->malformed) + b->n_malformed;
        if (b->n_malformed) {
            uint8_t k[SEQ_KEY_MAX], v[8];
            size_t kl = seq_key_meta(k, "malformed");
            seq_put_be64(v, count);
            rocksdb_writebatch_put(b->wb, (const char *)k, kl, (const char *)v, 8);
        }
        kept = seq_store_corrupt_take(st, b->wb);
    }
    rocksdb_write(st->db, st->wsync, b->wb, &e);
    if (shared) {
        if (!e) atomic_store(&st->malformed, count);
        pthread_mutex_unlock(&st->commit_mu);
        seq_store_corrupt_done(st, kept, e == NULL);
    }
    if (e) {
        seq_errf(err, errlen, "rocksdb write: %s", e);
        rocksdb_free(e);
        reset(b); /* the caller resumes from the stored offsets */
        return SEQ_EINTERNAL;
    }
    write_through(b);
    reset(b);
    return SEQ_OK;
}
