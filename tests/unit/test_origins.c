/* The misrouted origins applied per (owner partition, origin partition) (server/origins.h)
 * and their storage ('m' "orig", storage/store.h): stored only by the commit that holds
 * them, kept across a reopen, dropped with their owner partition and with nothing else, a
 * damaged value an error that loses nothing else; the module's rule (a copy at or below
 * the highest applied skipped), its batch state (discarded with a failed batch,
 * committed per partition or whole) and its loading from the store. */
#include "server/origins.h"
#include "store_fixture.h"

static int64_t T;

/* q's stored origins into out[0..n), checked to read without error */
static void stored(seq_store *st, uint32_t q, int64_t *out, uint32_t n)
{
    CHECK_EQ_INT(seq_store_get_origins(st, q, out, n), SEQ_OK);
}

static void storage(void)
{
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    char err[256];
    CHECK(seq_store_set_partitions(st, 4, err, sizeof err) == SEQ_OK);
    seq_store_batch *b = seq_store_batch_new(st);
    int64_t h[4];
    stored(st, 2, h, 4);
    CHECK(h[0] == -1 && h[1] == -1 && h[2] == -1 && h[3] == -1);
    seq_store_batch_set_offset(b, 2, 10, T);
    seq_store_batch_set_origin(b, 2, 0, 5);
    seq_store_batch_set_origin(b, 2, 3, 7);
    seq_store_batch_set_origin(b, 1, 0, 4);
    seq_store_batch_set_origin(b, 3, 0, 6);
    stored(st, 2, h, 4);
    CHECK(h[0] == -1 && h[3] == -1); /* not before the commit */
    CHECK(fx_commit(b) == SEQ_OK);
    stored(st, 2, h, 4);
    CHECK(h[0] == 5 && h[1] == -1 && h[2] == -1 && h[3] == 7);
    h[3] = 99;
    stored(st, 2, h, 3); /* origin partitions from n on are left out */
    CHECK(h[0] == 5 && h[1] == -1 && h[2] == -1 && h[3] == 99);
    seq_store_batch_set_origin(b, 2, 0, 9); /* a later write replaces */
    CHECK(fx_commit(b) == SEQ_OK);
    stored(st, 2, h, 4);
    CHECK(h[0] == 9 && h[3] == 7);
    seq_store_batch_free(b);
    seq_store_close(st);
    st = fx_open(d); /* kept across a reopen */
    stored(st, 2, h, 4);
    CHECK(h[0] == 9 && h[3] == 7);
    /* a dropped partition's origins go with it, its neighbours' stay */
    CHECK(seq_store_drop_partition(st, 2, err, sizeof err) == SEQ_OK);
    stored(st, 2, h, 4);
    CHECK(h[0] == -1 && h[3] == -1);
    stored(st, 1, h, 4);
    CHECK(h[0] == 4);
    stored(st, 3, h, 4);
    CHECK(h[0] == 6);
    /* a damaged value: an error, kept aside and counted; the others are read */
    uint8_t k[SEQ_KEY_MAX];
    fx_put_raw(st, k, seq_key_origin(k, 3, 2), "bad", 3);
    uint64_t corrupt = seq_store_corrupt_count(st);
    CHECK(seq_store_get_origins(st, 3, h, 4) == SEQ_EDATALOSS);
    CHECK(h[0] == 6 && h[2] == -1);
    CHECK(seq_store_corrupt_count(st) == corrupt + 1);
    seq_store_close(st);
    seq_def_free(d);
}

static void rule(void)
{
    seq_origins *o = seq_origins_new(4);
    CHECK(o != NULL);
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), -1);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 5), 0); /* the first copy applies */
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 5), 1); /* another copy of it: skipped */
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 3), 1); /* below: applied before */
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 8), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 2, 3), 0); /* per origin partition */
    CHECK_EQ_INT(seq_origins_admit(o, 2, 0, 3), 0); /* per owner partition */
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), 8);
    /* outside the topic: applied, not recorded */
    CHECK_EQ_INT(seq_origins_admit(o, 1, 4, 3), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 4, 3), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 9, 0, 3), 0);
    seq_origins_discard(o); /* the batch failed: its retry decides the same copies again */
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), -1);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 5), 0);
    seq_origins_committed(o, -1);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 5), 1);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 6), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 2, 0, 6), 0);
    /* one lane's write succeeded (q 1), another's failed (q 2) */
    seq_origins_committed(o, 1);
    seq_origins_discard(o);
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), 6);
    CHECK_EQ_INT(seq_origins_highest(o, 2, 0), -1);
    seq_origins_forget(o, 1);
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), -1);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 5), 0);
    seq_origins_free(o);
}

/* the batch of every partition: one store batch in this test */
static seq_store_batch *one_batch(void *ctx, uint32_t q)
{
    (void)q;
    return ctx;
}

/* Staged with the batch, committed, and loaded back by a new instance (a restart, or a
 * partition taken on again). */
static void persisted(void)
{
    fx_rmdir();
    fx_mkdir();
    seq_def *d = fx_def(DEF_JSON);
    seq_store *st = fx_open(d);
    seq_store_batch *b = seq_store_batch_new(st);
    seq_origins *o = seq_origins_new(4);
    char err[256];
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 5), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 7), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 3, 2), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 2, 0, 4), 0);
    seq_origins_stage(o, one_batch, b);
    CHECK(fx_commit(b) == SEQ_OK);
    seq_origins_committed(o, -1);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 9), 0);
    seq_origins_discard(o); /* not staged: never stored */
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), 7); /* back to what the commit stored */
    seq_origins_stage(o, one_batch, b); /* nothing changed: nothing written */
    CHECK(fx_commit(b) == SEQ_OK);
    seq_origins_free(o);
    o = seq_origins_new(4);
    CHECK_EQ_INT(seq_origins_load(o, st, 1, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), 7);
    CHECK_EQ_INT(seq_origins_highest(o, 1, 3), 2);
    CHECK_EQ_INT(seq_origins_highest(o, 2, 0), -1); /* not taken on */
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 7), 1);
    CHECK_EQ_INT(seq_origins_admit(o, 1, 0, 8), 0);
    CHECK_EQ_INT(seq_origins_load(o, st, 1, err, sizeof err), SEQ_OK); /* taken on again */
    CHECK_EQ_INT(seq_origins_highest(o, 1, 0), 7);
    CHECK_EQ_INT(seq_origins_load(o, st, 3, err, sizeof err), SEQ_OK); /* nothing stored */
    CHECK_EQ_INT(seq_origins_highest(o, 3, 0), -1);
    uint8_t k[SEQ_KEY_MAX];
    /* an origin offset 0 is one (the log's first message): loaded, and a copy of it skipped */
    CHECK_EQ_INT(seq_origins_admit(o, 3, 1, 0), 0);
    /* a partition forgotten while the batch holds its pairs: they go with it */
    CHECK_EQ_INT(seq_origins_admit(o, 0, 1, 4), 0);
    seq_origins_forget(o, 0);
    seq_origins_stage(o, one_batch, b);
    CHECK(fx_commit(b) == SEQ_OK);
    seq_origins_committed(o, -1);
    CHECK_EQ_INT(seq_origins_load(o, st, 3, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_origins_highest(o, 3, 1), 0);
    CHECK_EQ_INT(seq_origins_admit(o, 3, 1, 0), 1);
    CHECK_EQ_INT(seq_origins_load(o, st, 0, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_origins_highest(o, 0, 1), -1);
    fx_put_raw(st, k, seq_key_origin(k, 2, 1), "bad", 3);
    CHECK_EQ_INT(seq_origins_load(o, st, 2, err, sizeof err), SEQ_EDATALOSS);
    CHECK(strstr(err, "partition 2") != NULL);
    CHECK_EQ_INT(seq_origins_highest(o, 2, 0), 4); /* the rest is loaded */
    seq_origins_free(o);
    seq_store_batch_free(b);
    seq_store_close(st);
    seq_def_free(d);
}

int main(void)
{
    T = (seq_now_ms() / HOUR - 3) * HOUR;
    fx_mkdir();
    RUN(storage);
    RUN(rule);
    RUN(persisted);
    fx_rmdir();
    return seq_t_done();
}
