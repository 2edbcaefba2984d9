/* `seqd --check-definition FILE [--data-dir DIR]`: a definition's verdict without
 * serving anything: valid or not (the message names the bad path), and, with a data dir,
 * compatible or not with the definition the data was last served with; an incompatible
 * one is answered with how to get back (that definition, printed). Reads the data dir
 * read-only (storage/store_peek.h), so it works beside a running server. */
#ifndef SEQ_DEFCHECK_H
#define SEQ_DEFCHECK_H

#include <stdio.h>

/* Prints the verdict on out. data_dir NULL: validity only. Returns the exit code: 0 valid
 * (and compatible, or no data yet), 2 invalid, incompatible, or the data unreadable. */
int seq_defcheck_run(const char *file, const char *data_dir, FILE *out);

#endif
