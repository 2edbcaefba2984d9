/* Record cache: hits return exactly what was put; an entry made under another coverage
 * is a miss; a forget between the version read and the put keeps the stale read out;
 * eviction keeps the bytes within the capacity; oversized entries are not kept; an entry
 * a reader holds stays intact after it is forgotten, replaced or evicted (ASan checks the
 * frees); an outdated entry is handed out as such (get_stale), saying whether its
 * stream part is still current; a stream write folded into an entry (write-through)
 * replaces it only if it is still the one the writer read, else marks it outdated. */
#include <stdlib.h>
#include <string.h>

#include "storage/rcache.h"
#include "testlib.h"

/* get + copy + release: 1 and the bytes in b on a hit, like a reader sees them. */
static int get(seq_rcache *c, uint32_t seq, uint64_t user, uint64_t sig, seq_buf *b, uint64_t *v)
{
    const seq_rcache_entry *e = NULL;
    if (!seq_rcache_get(c, seq, user, sig, &e, v)) return 0;
    size_t len;
    const uint8_t *d = seq_rcache_entry_data(e, &len);
    b->len = 0;
    CHECK(seq_buf_append(b, d, len) == 0);
    seq_rcache_release(e);
    return 1;
}

static void hit_and_coverage(void)
{
    seq_rcache *c = seq_rcache_new(1 << 20);
    seq_buf b = {0};
    uint64_t v;
    CHECK_EQ_INT(get(c, 1, 42, 7, &b, &v), 0);
    seq_rcache_put(c, 1, 42, 7, v, "abcdef", 6);
    CHECK_EQ_INT(get(c, 1, 42, 7, &b, &v), 1);
    CHECK(b.len == 6 && memcmp(b.data, "abcdef", 6) == 0);
    CHECK_EQ_INT(get(c, 1, 42, 8, &b, &v), 0); /* a load changed the coverage */
    CHECK_EQ_INT(get(c, 2, 42, 7, &b, &v), 0); /* another sequence */
    CHECK_EQ_INT(get(c, 1, 43, 7, &b, &v), 0); /* another user */
    seq_rcache_stats s;
    seq_rcache_get_stats(c, &s);
    CHECK(s.hits == 1 && s.misses == 4 && s.bytes > 6 && s.capacity <= 1 << 20);
    seq_buf_free(&b);
    seq_rcache_free(c);
}

static void forget_races_put(void)
{
    seq_rcache *c = seq_rcache_new(1 << 20);
    seq_buf b = {0};
    uint64_t v;
    seq_rcache_put(c, 1, 5, 0, 0, "old", 3);
    CHECK_EQ_INT(get(c, 1, 5, 0, &b, &v), 1);
    seq_rcache_forget(c, 1, 5); /* a stream write */
    CHECK_EQ_INT(get(c, 1, 5, 0, &b, &v), 0);
    /* a reader read RocksDB before this write: its put must not land */
    uint64_t before = v;
    seq_rcache_forget(c, 1, 5);
    seq_rcache_put(c, 1, 5, 0, before, "stale", 5);
    CHECK_EQ_INT(get(c, 1, 5, 0, &b, &v), 0);
    seq_rcache_put(c, 1, 5, 0, v, "new", 3);
    CHECK_EQ_INT(get(c, 1, 5, 0, &b, &v), 1);
    CHECK(b.len == 3 && memcmp(b.data, "new", 3) == 0);
    seq_buf_free(&b);
    seq_rcache_free(c);
}

/* What a miss may keep of an outdated entry (store_read.c refreshes it). */
static void stale_entries(void)
{
    seq_rcache *c = seq_rcache_new(1 << 20);
    const seq_rcache_entry *e = NULL, *old = NULL;
    uint64_t v;
    int ok = -1;
    size_t len;
    CHECK_EQ_INT(seq_rcache_get_stale(c, 1, 9, 7, &e, &v, &old, &ok), 0);
    CHECK(old == NULL); /* nothing cached */
    seq_rcache_put(c, 1, 9, 7, v, "gen1+s", 6);
    /* a load changed the coverage: a miss, the entry's stream part still current */
    CHECK_EQ_INT(seq_rcache_get_stale(c, 1, 9, 8, &e, &v, &old, &ok), 0);
    CHECK(old != NULL && ok == 1);
    CHECK(memcmp(seq_rcache_entry_data(old, &len), "gen1+s", 6) == 0 && len == 6);
    seq_rcache_release(old);
    /* a stream write: a miss under either coverage, its stream part outdated */
    seq_rcache_forget(c, 1, 9);
    CHECK_EQ_INT(seq_rcache_get_stale(c, 1, 9, 7, &e, &v, &old, &ok), 0);
    CHECK(old != NULL && ok == 0);
    seq_rcache_release(old);
    ok = -1;
    CHECK_EQ_INT(seq_rcache_get_stale(c, 1, 9, 8, &e, &v, &old, &ok), 0);
    CHECK(old != NULL && ok == 0);
    seq_rcache_release(old);
    /* the refreshed entry replaces it and is a hit again */
    seq_rcache_put(c, 1, 9, 8, v, "gen2+s", 6);
    CHECK_EQ_INT(seq_rcache_get_stale(c, 1, 9, 8, &e, &v, &old, &ok), 1);
    CHECK(old == NULL && memcmp(seq_rcache_entry_data(e, &len), "gen2+s", 6) == 0);
    seq_rcache_release(e);
    CHECK_EQ_INT(seq_rcache_get_stale(c, 2, 9, 8, &e, &v, &old, &ok), 0); /* another sequence */
    CHECK(old == NULL);
    seq_rcache_stats s;
    seq_rcache_get_stats(c, &s);
    CHECK(s.stale == 3 && s.hits == 1 && s.misses == 5);
    seq_rcache_free(c);
}

/* seq_rcache_peek + seq_rcache_write, as a stream commit uses them (store_batch.c). */
static void write_through(void)
{
    seq_rcache *c = seq_rcache_new(1 << 20);
    seq_buf b = {0};
    uint64_t v;
    seq_rcache_put(c, 1, 3, 7, 0, "e1", 2);
    const seq_rcache_entry *was = seq_rcache_peek(c, 1, 3);
    CHECK(was != NULL);
    seq_rcache_write(c, 1, 3, was, "e2", 2); /* the write folded in: still a hit */
    seq_rcache_release(was);
    CHECK_EQ_INT(get(c, 1, 3, 7, &b, &v), 1);
    CHECK(b.len == 2 && memcmp(b.data, "e2", 2) == 0);
    /* a reader replaced the entry between the writer's peek and its write: outdated */
    was = seq_rcache_peek(c, 1, 3);
    CHECK_EQ_INT(get(c, 1, 3, 8, &b, &v), 0); /* a load: the reader refreshes under sig 8 */
    seq_rcache_put(c, 1, 3, 8, v, "r", 1);
    seq_rcache_write(c, 1, 3, was, "e3", 2);
    seq_rcache_release(was);
    CHECK_EQ_INT(get(c, 1, 3, 8, &b, &v), 0);
    CHECK(seq_rcache_peek(c, 1, 3) == NULL); /* no current stream part to fold into */
    /* a read of RocksDB from before the write must not land after it */
    CHECK_EQ_INT(get(c, 1, 4, 7, &b, &v), 0);
    uint64_t before = v;
    seq_rcache_write(c, 1, 4, NULL, NULL, 0); /* a write of a user not cached */
    seq_rcache_put(c, 1, 4, 7, before, "old", 3);
    CHECK_EQ_INT(get(c, 1, 4, 7, &b, &v), 0);
    /* nothing to fold into (data NULL): outdated, as forget */
    seq_rcache_put(c, 1, 5, 7, v, "e", 1);
    was = seq_rcache_peek(c, 1, 5);
    seq_rcache_write(c, 1, 5, was, NULL, 0);
    seq_rcache_release(was);
    CHECK_EQ_INT(get(c, 1, 5, 7, &b, &v), 0);
    seq_rcache_stats s;
    seq_rcache_get_stats(c, &s);
    CHECK(s.written == 1);
    seq_buf_free(&b);
    seq_rcache_free(c);
}

/* A load's prepared entry (seq_rcache_swap) replaces the one peeked only if the table
 * still holds it, keeps its coverage signature and an outdated stream part, and moves no
 * version (what it adds is outside the coverage readers use). */
static void swap_prepared(void)
{
    seq_rcache *c = seq_rcache_new(1 << 20);
    seq_buf b = {0};
    uint64_t v, v2;
    const seq_rcache_entry *stale;
    int ok;
    seq_rcache_put(c, 1, 3, 7, 0, "e1", 2);
    const seq_rcache_entry *was = seq_rcache_peek(c, 1, 3), *e = NULL;
    CHECK_EQ_INT(get(c, 1, 3, 7, &b, &v), 1);
    CHECK_EQ_INT(seq_rcache_swap(c, 1, 3, was, "e1+g", 4), 1);
    seq_rcache_release(was);
    CHECK_EQ_INT(get(c, 1, 3, 7, &b, &v2), 1); /* still a hit under its signature */
    CHECK(b.len == 4 && memcmp(b.data, "e1+g", 4) == 0);
    CHECK(v2 == v); /* no version moved: a reader's put of before the swap still lands */
    /* replaced meanwhile (a reader's put): the swap changes nothing */
    was = seq_rcache_peek(c, 1, 3);
    CHECK_EQ_INT(get(c, 1, 3, 8, &b, &v), 0);
    seq_rcache_put(c, 1, 3, 8, v, "r", 1);
    CHECK_EQ_INT(seq_rcache_swap(c, 1, 3, was, "x", 1), 0);
    seq_rcache_release(was);
    CHECK_EQ_INT(get(c, 1, 3, 8, &b, &v), 1);
    CHECK(b.len == 1 && b.data[0] == 'r');
    /* a stream write between the peek and the swap: the swapped entry stays outdated */
    was = seq_rcache_peek(c, 1, 3);
    seq_rcache_forget(c, 1, 3);
    CHECK_EQ_INT(seq_rcache_swap(c, 1, 3, was, "r+g", 3), 1);
    seq_rcache_release(was);
    CHECK_EQ_INT(seq_rcache_get_stale(c, 1, 3, 8, &e, &v, &stale, &ok), 0);
    CHECK(stale != NULL && ok == 0);
    size_t len;
    CHECK(stale && memcmp(seq_rcache_entry_data(stale, &len), "r+g", 3) == 0);
    seq_rcache_release(stale);
    seq_rcache_stats s;
    seq_rcache_get_stats(c, &s);
    CHECK(s.prepared == 2);
    seq_buf_free(&b);
    seq_rcache_free(c);
}

/* A held entry is the reader's until released, whatever the table does meanwhile. */
static void held_outlives_table(void)
{
    seq_rcache *c = seq_rcache_new(256 << 10);
    uint64_t v;
    const seq_rcache_entry *a = NULL, *b = NULL, *d = NULL;
    size_t len;
    seq_rcache_put(c, 1, 7, 0, 0, "first", 5);
    CHECK_EQ_INT(seq_rcache_get(c, 1, 7, 0, &a, &v), 1);
    CHECK_EQ_INT(seq_rcache_get(c, 1, 7, 0, &b, &v), 1); /* two readers share it */
    CHECK(a == b);
    seq_rcache_forget(c, 1, 7); /* dropped from the table while held */
    CHECK_EQ_INT(seq_rcache_get(c, 1, 7, 0, &d, &v), 0);
    seq_rcache_put(c, 1, 7, 0, v, "second", 6);
    CHECK_EQ_INT(seq_rcache_get(c, 1, 7, 0, &d, &v), 1);
    CHECK(memcmp(seq_rcache_entry_data(a, &len), "first", 5) == 0 && len == 5);
    seq_rcache_release(a);
    CHECK(memcmp(seq_rcache_entry_data(b, &len), "first", 5) == 0 && len == 5);
    seq_rcache_release(b); /* the last holder frees it */
    char blob[100] = {0};
    for (uint64_t u = 100; u < 20000; u++) {
        const seq_rcache_entry *miss;
        CHECK_EQ_INT(seq_rcache_get(c, 1, u, 0, &miss, &v), 0);
        seq_rcache_put(c, 1, u, 0, v, blob, sizeof blob);
    }
    CHECK_EQ_INT(seq_rcache_get(c, 1, 7, 0, &a, &v), 0); /* evicted, still held by d */
    CHECK(memcmp(seq_rcache_entry_data(d, &len), "second", 6) == 0 && len == 6);
    seq_rcache_release(NULL);
    seq_rcache_free(c); /* the cache goes first: d stays valid */
    CHECK(memcmp(seq_rcache_entry_data(d, &len), "second", 6) == 0 && len == 6);
    seq_rcache_release(d);
}

static void bounded(void)
{
    size_t cap = 256 << 10;
    seq_rcache *c = seq_rcache_new(cap);
    size_t max = seq_rcache_max_entry(c);
    char *blob = calloc(1, max + 1);
    seq_buf b = {0};
    uint64_t v;
    seq_rcache_put(c, 1, 1, 0, 0, blob, max + 1);
    CHECK_EQ_INT(get(c, 1, 1, 0, &b, &v), 0); /* too large to keep */
    seq_rcache_put(c, 1, 2, 0, v, blob, max);
    CHECK_EQ_INT(get(c, 1, 2, 0, &b, &v), 1); /* the largest it keeps */
    CHECK_EQ_INT((int)b.len, (int)max);
    for (uint64_t u = 0; u < 100000; u++) {
        get(c, 1, u, 0, &b, &v);
        seq_rcache_put(c, 1, u, 0, v, blob, 100);
    }
    seq_rcache_stats s;
    seq_rcache_get_stats(c, &s);
    CHECK(s.bytes <= s.capacity && s.capacity <= cap && s.bytes > cap / 2);
    CHECK_EQ_INT(get(c, 1, 99999, 0, &b, &v), 1); /* the newest stays */
    CHECK_EQ_INT(get(c, 1, 0, 0, &b, &v), 0);     /* the oldest went */
    free(blob);
    seq_buf_free(&b);
    seq_rcache_free(c);
}

/* seq_rcache_users: the users of one sequence whose stream part is current. */
static void users_listed(void)
{
    seq_rcache *c = seq_rcache_new(1 << 20);
    uint64_t v, *u = NULL;
    seq_buf b = {0};
    CHECK_EQ_INT((int)seq_rcache_users(c, 1, &u), 0);
    CHECK(u == NULL);
    for (uint64_t k = 0; k < 300; k++) { /* every third user in sequence 2 */
        uint32_t seq = 1 + (uint32_t)(k % 3 == 0);
        CHECK_EQ_INT(get(c, seq, k, 0, &b, &v), 0);
        seq_rcache_put(c, seq, k, 0, v, "x", 1);
    }
    seq_rcache_forget(c, 1, 1); /* outdated stream part: left out */
    long n = seq_rcache_users(c, 1, &u);
    CHECK_EQ_INT((int)n, 199);
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        CHECK(u[i] % 3 != 0 && u[i] != 1);
        sum += u[i];
    }
    CHECK(sum == (299 * 300 / 2) - (3 * 99 * 100 / 2) - 1);
    free(u);
    seq_buf_free(&b);
    seq_rcache_free(c);
}

int main(void)
{
    RUN(hit_and_coverage);
    RUN(forget_races_put);
    RUN(held_outlives_table);
    RUN(stale_entries);
    RUN(write_through);
    RUN(swap_prepared);
    RUN(bounded);
    RUN(users_listed);
    return seq_t_done();
}
