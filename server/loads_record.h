/* One operation of `<topic>.seqd-loads` (server/loads.h): the commit of a cluster-wide
 * LoadBatch or RollbackBatch, as a JSON object
 *   {"v":1,"op":"load","sequence","start_ms","end_ms","generation","partitions":P,
 *    "paths":[...],"sums":[[size,"hash"],...],"node","at_ms"}
 *   {"v":1,"op":"dry_run", the fields of a load,"expires_ms"}: a LoadBatch with dry_run:
 *    every node verifies the parts of the partitions it holds and counts what the load
 *    would change there (published in its cluster map record), changing nothing; once
 *    expires_ms has passed (the receiver's wall clock: its answer was due before), no one
 *    waits for it and a node skips it without reading a file (absent, as written by older
 *    receivers: at_ms + SEQ_LOADS_DRY_RUN_TTL_MS)
 *   {"v":1,"op":"rollback","sequence","generation" (as requested, 0 = the newest),
 *    "from" (the newest load in effect when it was verified),"to" (in effect after it),
 *    "node","at_ms"}
 * Records come from Kafka, and anyone allowed to produce there writes them: the parser
 * refuses what is not such an object (tests/fuzz/fuzz_loads_record.c), and whatever it
 * accepts is verified again, file by file, by every node that applies it. */
#ifndef SEQ_LOADS_RECORD_H
#define SEQ_LOADS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define SEQ_LOADS_MAX_PATHS 65536
#define SEQ_LOADS_MAX_TEXT 256
/* A dry-run record without "expires_ms" expires this long after its at_ms. */
#define SEQ_LOADS_DRY_RUN_TTL_MS (10 * 60 * 1000)

typedef enum { SEQ_LOADS_OP_LOAD = 1, SEQ_LOADS_OP_ROLLBACK = 2, SEQ_LOADS_OP_DRY_RUN = 3 } seq_loads_op;

typedef struct {
    seq_loads_op op;
    char sequence[SEQ_LOADS_MAX_TEXT], node[SEQ_LOADS_MAX_TEXT];
    int64_t at_ms;        /* the receiver's wall clock when it wrote the record */
    uint64_t generation;  /* load: the batch's; rollback: as requested */
    /* load and dry_run */
    int64_t start_ms, end_ms;
    uint32_t partitions;  /* the topic's P when it was verified */
    char **paths;         /* n_paths malloc'd strings (the request's, as given) */
    size_t n_paths;
    uint64_t *sums;       /* "sums": per path its size and hash (its manifest entry's
                             algorithm: storage/batch_file.h) as the receiver verified
                             it ([[size, "16 hex digits"], ...]), 2 per path,
                             malloc'd; NULL when absent */
    int64_t expires_ms;   /* dry_run: as above (filled in when absent) */
    /* rollback */
    uint64_t from, to;
} seq_loads_record;

/* SEQ_OK and *r filled (free with seq_loads_record_clear), or SEQ_EINVAL (*r zeroed):
 * not an object of this shape, a string too long or with a NUL, a path list empty or
 * longer than SEQ_LOADS_MAX_PATHS, a negative or non-integer number, "sums" not one
 * [size, 16 hex digits] per path. */
int seq_loads_parse_record(const void *data, size_t len, seq_loads_record *r);
/* The record as JSON text (malloc'd); NULL on OOM. */
char *seq_loads_format_record(const seq_loads_record *r);
void seq_loads_record_clear(seq_loads_record *r);

#endif
