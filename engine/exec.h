/* The executor: what each sequence keeps of one decoded event (type declared, every
 * filter holds), with its type index, columns (defaults filled) and time bucket.
 * Shared by the stream consumer and the batch builder: only the scheduling differs. */
#ifndef SEQ_EXEC_H
#define SEQ_EXEC_H

#include <stdint.h>

#include "def.h"
#include "event.h"

typedef struct {
    uint32_t seq_id;   /* seq_sequence.id */
    uint32_t type_idx; /* position of the event's type in that sequence's event_types */
    int64_t bucket;    /* floor(time_ms / bucket_ms) (floor also for negative times) */
    uint32_t n_cols;   /* = the sequence's n_columns */
    double cols[SEQ_MAX_COLUMNS];
} seq_exec_out;

typedef enum {
    SEQ_EXEC_KEPT = 0,         /* at least one sequence keeps it; see *n_out */
    SEQ_EXEC_FILTERED = 1,     /* some sequence declares the type, but filters dropped it */
    SEQ_EXEC_UNKNOWN_TYPE = 2, /* no sequence declares the type: normal on a shared topic */
} seq_exec_result;

/* out must have room for def->n_seqs entries. When only_seq >= 0, only that sequence
 * is considered (the batch builder builds one sequence). */
seq_exec_result seq_exec_apply(const seq_def *def, const seq_event *ev, int only_seq,
                               seq_exec_out *out, uint32_t *n_out);

/* Bucket of a time (floor division). */
int64_t seq_exec_bucket(const seq_def *def, int64_t time_ms);

#endif
