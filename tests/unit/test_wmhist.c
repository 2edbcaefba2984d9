/* The stream watermark series of as-of reads (server/wmhist.h): exact for recent changes,
 * the last change of each second for older ones, dropped past the history. */
#include "server/wmhist.h"
#include "testlib.h"

static void test_exact_recent(void)
{
    seq_wmhist *h = seq_wmhist_new(3600000);
    CHECK_EQ_INT(seq_wmhist_at(h, 1000), 0); /* nothing noted */
    seq_wmhist_note(h, 10000, 500);
    seq_wmhist_note(h, 10010, 500); /* unchanged: no entry */
    seq_wmhist_note(h, 10020, 700);
    seq_wmhist_note(h, 10020, 800); /* same ms: a second entry, the later wins */
    CHECK_EQ_INT(seq_wmhist_at(h, 9999), 500); /* before the first note: the first value */
    CHECK_EQ_INT(seq_wmhist_at(h, 10000), 500);
    CHECK_EQ_INT(seq_wmhist_at(h, 10019), 500);
    CHECK_EQ_INT(seq_wmhist_at(h, 10020), 800);
    CHECK_EQ_INT(seq_wmhist_at(h, 99999), 800);
    CHECK_EQ_INT(seq_wmhist_at(NULL, 5), 0);
    seq_wmhist_note(NULL, 1, 1); /* ignored */
    seq_wmhist_free(h);
}

static void test_thinned_and_dropped(void)
{
    seq_wmhist *h = seq_wmhist_new(3600000);
    seq_wmhist_note(h, 1000100, 1); /* second 1000 */
    seq_wmhist_note(h, 1000500, 2);
    seq_wmhist_note(h, 1001200, 3); /* second 1001 */
    seq_wmhist_note(h, 1700000, 4); /* 11+ minutes later: the first three are thinned */
    /* second 1000 keeps its last change (2 from .500): before it, the oldest kept value */
    CHECK_EQ_INT(seq_wmhist_at(h, 1000600), 2);
    CHECK_EQ_INT(seq_wmhist_at(h, 1000300), 2);
    CHECK_EQ_INT(seq_wmhist_at(h, 1001100), 2); /* 3 came at .200 of the next second */
    CHECK_EQ_INT(seq_wmhist_at(h, 1001300), 3);
    CHECK_EQ_INT(seq_wmhist_at(h, 1700000), 4);
    seq_wmhist_note(h, 1000100 + 3600000 + 700000, 5); /* past the hour: old ones dropped */
    CHECK(seq_wmhist_at(h, 1000600) >= 3);              /* the oldest kept stands for them */
    CHECK_EQ_INT(seq_wmhist_at(h, 1000100 + 3600000 + 700000), 5);
    seq_wmhist_free(h);
}

int main(void)
{
    RUN(test_exact_recent);
    RUN(test_thinned_and_dropped);
    return seq_t_done();
}
