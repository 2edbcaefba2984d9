/* libFuzzer entry for the console's query strings (server/console_query.c): any bytes as
 * the query of /ui/api/sequence. A crash, a leak, UB, or a result that breaks the
 * parser's promises is a bug: on SEQ_OK the sequence is a printable-ASCII C string that
 * fits, the view is one of the three, the limit is 0 or in 1..100000, as_of is >= 0;
 * otherwise the message is not empty.
 * Seeds: tests/fuzz/corpus_ui_query/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "server/console_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seq_cq q;
    char err[256] = "";
    /* a copy of exactly size bytes: the parser must not read past len */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    int rc = seq_cq_parse(copy, size, &q, err, sizeof err);
    free(copy);
    if (rc != SEQ_OK) {
        if (rc != SEQ_EINVAL || !err[0]) abort();
        return 0;
    }
    size_t n = strnlen(q.sequence, sizeof q.sequence);
    if (n == sizeof q.sequence || (q.has_sequence && n == 0) || (!q.has_sequence && n != 0)) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)q.sequence[i] <= ' ' || (unsigned char)q.sequence[i] >= 0x7f) abort();
    if (q.view > SEQ_CQ_BATCH_ONLY || q.limit > 100000 || q.as_of_ms < 0) abort();
    if (!q.has_user && q.user != 0) abort();
    return 0;
}
