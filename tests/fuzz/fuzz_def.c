/* libFuzzer entry: the definition parser must refuse or accept any bytes without
 * crashing or leaking, and an accepted definition must re-parse from its own `json` to
 * the same fingerprint and pass the compatibility check against itself.
 * Build: clang -fsanitize=fuzzer,address -I. -Ibuild/gen tests/fuzz/fuzz_def.c
 *        engine/def.c engine/common.c -ljansson -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    seq_def *d = NULL, *again = NULL;
    if (seq_def_parse((const char *)data, size, &d, err, sizeof err) != SEQ_OK) return 0;
    if (seq_def_parse(d->json, strlen(d->json), &again, err, sizeof err) != SEQ_OK) abort();
    if (again->fingerprint != d->fingerprint) abort();
    if (seq_def_check_compat(d, again, err, sizeof err) != SEQ_OK) abort();
    for (uint32_t i = 0; i < d->n_seqs; i++)
        if (seq_def_check_seq_compat(d, again, d->seqs[i].name, err, sizeof err) != SEQ_OK)
            abort();
    seq_def_free(again);
    seq_def_free(d);
    return 0;
}
