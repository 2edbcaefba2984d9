/* Storage, the load's impact count (storage/store_impact.c): seq_store_window_users, the
 * skip scan that finds the users with a bucket in a window, against a plain scan of the
 * same keys kept in memory, over random keys of several partitions, sequences and
 * generations (the edges included: user 0 and UINT64_MAX, sequence and partition
 * UINT32_MAX, a generation's marker key) and random windows. */
#include "store_fixture.h"
#include "storage/batch_file.h"

typedef struct {
    uint8_t kind;
    uint32_t part, seq;
    uint64_t gen, user;
    int64_t bucket;
} fkey;

#define NKEYS 3000
static fkey keys[NKEYS];
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const uint32_t PARTS[] = {0, 1, 2, UINT32_MAX};
static const uint32_t SEQS[] = {0, 1, UINT32_MAX};
static const uint64_t USERS[] = {0, 1, 2, 3, 5, 8, 13, 21, 34, 55, UINT64_MAX - 1, UINT64_MAX};
#define N(a) (sizeof(a) / sizeof(a)[0])

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted, distinct. */
static size_t tidy(uint64_t *v, size_t n)
{
    if (n < 2) return n;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!m || v[i] != v[m - 1]) v[m++] = v[i];
    return m;
}

int main(void)
{
    fx_mkdir();
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    int64_t b0 = 490000; /* buckets around b0 (hours) */
    for (int i = 0; i < NKEYS; i++) {
        fkey *k = &keys[i];
        k->kind = rnd(2) ? SEQ_K_STREAM : SEQ_K_BATCH;
        k->part = k->kind == SEQ_K_STREAM ? PARTS[rnd(N(PARTS))] : 0;
        k->seq = SEQS[rnd(N(SEQS))];
        k->gen = k->kind == SEQ_K_BATCH ? 1 + rnd(2) : 0;
        k->user = USERS[rnd(N(USERS))];
        k->bucket = b0 - 40 + (int64_t)rnd(80);
        uint8_t kb[SEQ_KEY_MAX];
        size_t kl = k->kind == SEQ_K_STREAM ? seq_key_stream(kb, k->part, k->seq, k->user, k->bucket)
                                            : seq_key_batch(kb, k->seq, k->gen, k->user, k->bucket);
        fx_put_raw(st, kb, kl, "x", 1);
    }
    for (uint32_t s = 0; s < N(SEQS); s++) /* generation markers, as loads leave them */
        for (uint64_t g = 1; g <= 2; g++) {
            uint8_t kb[SEQ_KEY_MAX];
            fx_put_raw(st, kb, seq_batch_marker_key(kb, SEQS[s], g), "m", 1);
        }
    uint64_t want[NKEYS], *got = NULL;
    size_t cap = 0, checked = 0, nonempty = 0;
    char err[256];
    for (int w = 0; w < 400; w++) {
        /* a window of 1 ms to 60 h, anywhere around the keys, its ends on bucket
         * boundaries or not */
        int64_t lo = (b0 - 50) * HOUR + (int64_t)rnd(100 * 3600) * 1000 + rnd(1000);
        int64_t hi = lo + 1 + (int64_t)rnd(60 * 3600) * 1000;
        if (rnd(2)) lo = seq_bucket_start(seq_bucket_of(lo, HOUR), HOUR);
        if (rnd(2)) hi = seq_bucket_end(seq_bucket_of(hi, HOUR), HOUR);
        uint32_t seq = SEQS[rnd(N(SEQS))];
        int stream = w % 3 != 0;
        uint64_t gen = 1 + rnd(2);
        uint8_t pre[SEQ_KEY_MAX];
        size_t pl = 1;
        pre[0] = stream ? SEQ_K_STREAM : SEQ_K_BATCH;
        if (!stream) {
            seq_put_be32(pre + 1, seq);
            seq_put_be64(pre + 5, gen);
            pl = 13;
        }
        size_t nw = 0, ng = 0;
        for (int i = 0; i < NKEYS; i++) {
            const fkey *k = &keys[i];
            if (k->kind != pre[0] || k->seq != seq || (!stream && k->gen != gen)) continue;
            if (seq_bucket_start(k->bucket, HOUR) < hi && seq_bucket_end(k->bucket, HOUR) > lo)
                want[nw++] = k->user;
        }
        CHECK(seq_store_window_users(st, pre, pl, seq, lo, hi, &got, &ng, &cap, err, sizeof err) ==
              SEQ_OK);
        nw = tidy(want, nw);
        ng = tidy(got, ng);
        CHECK_EQ_INT((int)ng, (int)nw);
        if (ng == nw) CHECK(memcmp(want, got, nw * sizeof *want) == 0);
        checked++;
        nonempty += nw > 0;
    }
    CHECK(checked == 400 && nonempty > 100);
    free(got);
    seq_store_close(st);
    seq_def_free(d);
    fx_rmdir();
    return seq_t_done();
}
