/* Avro batch input (seqctl build --format avro): reads an Avro object container file
 * (what Spark's df.write.format("avro"), Hive and warehouse exports write; codecs null,
 * deflate, snappy) with Debian's avro-c and turns each record into a seq_event, which
 * then goes through the same time check and executor as the other formats
 * (storage/batch_build.c). Fields are found by name in the file's writer schema
 * (PRODUCT.md "Inputs from the data ecosystem"; proto/seqd/v1/event.avsc):
 *   user_id, item_id   long, int or string (decimal)
 *   event_time_ms      long: ms, or logicalType timestamp-millis, or timestamp-micros
 *                      (divided by 1000, rounding down)
 *   event_type         string          event_id   string (derived when absent or null)
 *   attributes         map of double (or float, int, long; null values skipped)
 * Any of them may be a union with null; other fields are ignored. A field whose type can
 * never fit is an error at open; per record, a missing (absent from the schema) or null
 * required field, or a negative id, makes that record malformed. */
#ifndef SEQ_INPUT_AVRO_H
#define SEQ_INPUT_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "def.h"
#include "event.h"

typedef struct seq_avro_reader seq_avro_reader;

/* Opens path: SEQ_OK, SEQ_ENOTFOUND (cannot open), SEQ_EINVAL (not an Avro container
 * file, a writer schema that is not a record, or a field of a type that cannot fit:
 * the message names it). Caller closes with seq_avro_close. def must outlive r. */
int seq_avro_open(const seq_def *def, const char *path, seq_avro_reader **out, char *err,
                  size_t errlen);
/* The same over a file's bytes in memory (the fuzz target); data must outlive r. */
int seq_avro_open_mem(const seq_def *def, const void *data, size_t len, seq_avro_reader **out,
                      char *err, size_t errlen);

/* The next record: 1 and *ev filled (a valid event, derived id included); 2 when the
 * record is malformed (msg says why); 0 at the end; -1 when the file is damaged past
 * this point (a bad block, a truncated file: msg says so; the rest is unusable). */
int seq_avro_next(seq_avro_reader *r, seq_event *ev, char *msg, size_t msglen);
/* 1-based number of the record last returned (for "FILE:RECORD: what"). */
uint64_t seq_avro_record_no(const seq_avro_reader *r);
void seq_avro_close(seq_avro_reader *r);
/* Bytes avro-c holds right now for the readers of this thread: back to its value
 * before an open once that reader has read an undamaged file to its end and is closed
 * (the fuzz target's leak check; avro-c's own leaks on damaged files are not ours). */
size_t seq_avro_live_bytes(void);

#endif
