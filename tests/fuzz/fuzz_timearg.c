/* libFuzzer entry for seqctl's time arguments (clients/timearg.c): any bytes (as a
 * NUL-terminated string) must parse or be refused with a message, never crash or
 * overflow (UBSan); an accepted ISO-8601 or ms value must not depend on "now", a
 * relative one must be now minus a non-negative span.
 * Seeds: tests/fuzz/corpus_timearg/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clients/timearg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[256], err[512];
    if (size >= sizeof s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    int64_t a = 0, b = 0;
    int ra = seqc_parse_time(s, 1764000000000LL, &a, err, sizeof err);
    int rb = seqc_parse_time(s, 1764000000000LL + 1000, &b, err, sizeof err);
    if (ra != rb) abort();
    if (ra == 0) {
        int relative = s[0] == '-' && strspn(s + 1, "0123456789") < strlen(s + 1);
        if (strcmp(s, "now") == 0 || relative) {
            if (b - a != 1000 || a > 1764000000000LL) abort();
        } else if (a != b) {
            abort();
        }
    } else if (!strstr(err, "ISO-8601")) {
        abort();
    }
    return 0;
}
