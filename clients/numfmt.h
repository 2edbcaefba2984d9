/* Numbers as seqctl prints them: a double in the fewest significant digits that read
 * back as the same double (19.99, not 19.989999999999998), in tables and in --json
 * output (jansson's own dump always writes 17 digits). Pure; unit-tested in
 * tests/unit/test_clients.c. */
#ifndef SEQC_NUMFMT_H
#define SEQC_NUMFMT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Writes v into buf (at least 32 bytes): %.15g, %.16g or %.17g, the first that
 * round-trips; "nan", "inf", "-inf" for the non-finite. Returns buf. */
char *seqc_format_double(double v, char *buf, size_t len);

/* Writes a JSON document compactly (as json_dumpf with JSON_COMPACT, keys in insertion
 * order) with every real in seqc_format_double's digits (a non-finite real as null).
 * Returns 0, or -1 on a write error. */
int seqc_json_print(json_t *doc, FILE *out);

#endif
