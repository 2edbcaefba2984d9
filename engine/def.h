/* The signal definition: one JSON file, parsed once into an immutable seq_def that
 * both paths (stream consumer and batch builder) use. Sits at the start of the data
 * path: every executor, storage write and read takes its meaning from here.
 *
 * Attributes are resolved once: every attribute name that a column or a filter of any
 * sequence mentions gets an index into seq_def.attrs; decoded events carry values by
 * that index, so the executors never compare attribute names. */
#ifndef SEQ_DEF_H
#define SEQ_DEF_H

#include <stddef.h>
#include <stdint.h>

#define SEQ_MAX_SEQUENCES 64
#define SEQ_MAX_TYPES 64   /* per sequence: type masks are uint64_t */
#define SEQ_MAX_ATTRS 64   /* distinct attribute names over the definition */
#define SEQ_MAX_COLUMNS 32 /* per sequence */
#define SEQ_TYPE_MAX 63    /* bytes in an event type name */
#define SEQ_ID_MAX 127     /* bytes in an event_id */

typedef enum { SEQ_OP_LT, SEQ_OP_LE, SEQ_OP_EQ, SEQ_OP_NE, SEQ_OP_GE, SEQ_OP_GT } seq_op;

typedef struct {
    uint32_t attr;      /* index into seq_def.attrs */
    seq_op op;
    double value;
    uint64_t type_mask; /* bit i = the sequence's event_types[i]; all ones = every type */
} seq_filter;

typedef struct {
    char *name;
    uint32_t attr; /* index into seq_def.attrs */
    double dflt;   /* NaN when the definition gives none */
} seq_column;

typedef struct {
    char *name;
    uint32_t id; /* position in the definition; stable, used in storage keys */
    char **event_types;
    uint32_t n_types;
    uint32_t max_length;
    int64_t retention_ms;
    seq_column *columns;
    uint32_t n_columns;
    seq_filter *filters;
    uint32_t n_filters;
} seq_sequence;

typedef struct seq_def {
    int64_t bucket_ms;
    int64_t horizon_ms;
    int64_t max_future_ms; /* default 300000 */
    seq_sequence *seqs;
    uint32_t n_seqs;
    char **attrs; /* distinct attribute names used by columns and filters */
    uint32_t n_attrs;
    char *json;           /* the definition as compact JSON (stored with the data, /status) */
    uint64_t fingerprint; /* hash of the compatibility-relevant parts (see seq_def_check_compat) */
} seq_def;

/* Parse and validate. On error returns SEQ_EINVAL and writes a message naming the bad
 * path, e.g. "sequences[0].max_length: must be > 0". Caller frees *out with seq_def_free. */
int seq_def_parse(const char *json, size_t len, seq_def **out, char *err, size_t errlen);
int seq_def_load_file(const char *path, seq_def **out, char *err, size_t errlen);
void seq_def_free(seq_def *def);

/* Lookups; NULL / -1 when absent. */
const seq_sequence *seq_def_find(const seq_def *def, const char *name, size_t len);
int seq_def_type_index(const seq_sequence *s, const char *type, size_t len);
int seq_def_attr_index(const seq_def *def, const char *name, size_t len);

/* Is `next` a compatible successor of `prev` (the definition the data was last served
 * with)? Compatible: same bucket_ms and horizon; every sequence of prev still present at
 * the same position with the same name; its event_types and columns a prefix of the new
 * ones. Anything else: SEQ_EPRECONDITION with a message saying what changed. */
int seq_def_check_compat(const seq_def *prev, const seq_def *next, char *err, size_t errlen);

/* Same rule for one sequence only (batch loads): the builder's definition `built`
 * against the server's `cur`, for sequence `name`. */
int seq_def_check_seq_compat(const seq_def *built, const seq_def *cur, const char *name,
                             char *err, size_t errlen);

#endif
