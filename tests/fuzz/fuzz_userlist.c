/* Fuzz target for seqctl's user-list parser (clients/userlist.c, diff --users): never reads
 * past the text, and what it accepts is non-empty, without 0, within the bound. */
#include <stdlib.h>
#include <string.h>

#include "clients/userlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t *v;
    size_t n;
    char err[128];
    if (seqc_parse_users(text, 100000, &v, &n, err, sizeof err) == 0) {
        if (n == 0 || n > 100000) abort();
        for (size_t i = 0; i < n; i++)
            if (v[i] == 0) abort();
        free(v);
    }
    free(text);
    return 0;
}
