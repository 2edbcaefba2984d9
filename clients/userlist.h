/* User lists of seqctl (diff --users): ids and inclusive ranges, separated by commas,
 * spaces or newlines, e.g. "1-1000,42". Pure; fuzzed by tests/fuzz/fuzz_userlist.c. */
#ifndef SEQC_USERLIST_H
#define SEQC_USERLIST_H

#include <stddef.h>
#include <stdint.h>

/* Expands text into *out (malloc'd, in the order given; caller frees) and *n. More than
 * max users, a 0 id, a reversed range or anything else is -1 with a message in err (an
 * empty list too: "the user list is empty"). */
int seqc_parse_users(const char *text, size_t max, uint64_t **out, size_t *n, char *err,
                     size_t errlen);

#endif
