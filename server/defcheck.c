/* seqd --check-definition (defcheck.h): the same parse (engine/def.c) and compatibility
 * rule (seq_def_check_compat) the server applies at start, so the verdict is the one a
 * start would give. */
#include "defcheck.h"

#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"
#include "../engine/def.h"
#include "../storage/store_peek.h"

#define EXIT_REFUSED 2

int seq_defcheck_run(const char *file, const char *data_dir, FILE *out)
{
    char err[1024];
    seq_def *def = NULL, *prev = NULL;
    char *stored = NULL;
    int code = EXIT_REFUSED;
    if (seq_def_load_file(file, &def, err, sizeof err) != SEQ_OK) {
        fprintf(out, "invalid: %s: %s\n", file, err);
        goto out;
    }
    fprintf(out, "valid: %s (%u sequence%s)\n", file, def->n_seqs, def->n_seqs == 1 ? "" : "s");
    if (!data_dir) {
        code = 0;
        goto out;
    }
    int rc = seq_store_peek_definition(data_dir, &stored, err, sizeof err);
    if (rc == SEQ_ENOTFOUND) {
        fprintf(out, "compatible: %s (no data served yet)\n", data_dir);
        code = 0;
        goto out;
    }
    if (rc != SEQ_OK) {
        fprintf(out, "unknown: cannot read the data in %s: %s\n", data_dir, err);
        goto out;
    }
    if (seq_def_parse(stored, strlen(stored), &prev, err, sizeof err) != SEQ_OK) {
        fprintf(out, "unknown: the definition stored in %s does not parse: %s\n", data_dir, err);
        goto out;
    }
    if (seq_def_check_compat(prev, def, err, sizeof err) != SEQ_OK) {
        fprintf(out,
                "incompatible with the data in %s: %s\n"
                "to get back: serve the definition the data was last served with (below), or a\n"
                "compatible change of it: the same bucket_ms and freshness_horizon_ms, every\n"
                "sequence kept at its position under its name, event types and columns only\n"
                "appended; sequences may be appended. The stored definition:\n%s\n",
                data_dir, err, stored);
        goto out;
    }
    fprintf(out, "compatible: %s (with the definition the data was last served with)\n",
            data_dir);
    code = 0;
out:
    seq_def_free(def);
    seq_def_free(prev);
    free(stored);
    return code;
}
