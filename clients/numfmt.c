/* seqctl's number printing (numfmt.h). 17 significant digits always round-trip an IEEE
 * double; fewer usually do, and the shortest of 15..17 that does is what a reader
 * expects to see (15 digits never show binary noise). */
#include "numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *seqc_format_double(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "nan");
        return buf;
    }
    if (isinf(v)) {
        snprintf(buf, len, v < 0 ? "-inf" : "inf");
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static int print_string(const char *s, size_t n, FILE *out)
{
    json_t *js = json_stringn(s, n);
    int rc = js ? json_dumpf(js, out, JSON_ENCODE_ANY) : -1;
    json_decref(js);
    return rc;
}

int seqc_json_print(json_t *v, FILE *out)
{
    char buf[40];
    size_t i;
    int first = 1;
    const char *k;
    json_t *e;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        fputc('{', out);
        json_object_foreach(v, k, e) {
            if (!first) fputc(',', out);
            first = 0;
            if (print_string(k, strlen(k), out) < 0) return -1;
            fputc(':', out);
            if (seqc_json_print(e, out) < 0) return -1;
        }
        fputc('}', out);
        break;
    case JSON_ARRAY:
        fputc('[', out);
        json_array_foreach(v, i, e) {
            if (i) fputc(',', out);
            if (seqc_json_print(e, out) < 0) return -1;
        }
        fputc(']', out);
        break;
    case JSON_STRING:
        return print_string(json_string_value(v), json_string_length(v), out);
    case JSON_REAL:
        if (!isfinite(json_real_value(v))) {
            fputs("null", out);
            break;
        }
        seqc_format_double(json_real_value(v), buf, sizeof buf);
        fputs(buf, out);
        /* keep it a JSON real: "3" would read back as an integer */
        if (!strpbrk(buf, ".eE")) fputs(".0", out);
        break;
    default: /* integers, true, false, null: jansson's own text */
        return json_dumpf(v, out, JSON_ENCODE_ANY);
    }
    return ferror(out) ? -1 : 0;
}
