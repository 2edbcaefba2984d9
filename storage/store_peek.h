/* Read-only peeks into a data dir without serving it, for `seqd --check-definition`:
 * RocksDB opened read-only, so a server running on the same dir is not disturbed (it
 * holds the lock; a read-only open takes none). */
#ifndef SEQ_STORE_PEEK_H
#define SEQ_STORE_PEEK_H

#include <stddef.h>

/* The definition the data in dir was last served with (the JSON text, malloc'd: the
 * caller frees). SEQ_OK; SEQ_ENOTFOUND when dir holds no seqd data (no database, or
 * none served yet); SEQ_EINTERNAL when the database cannot be read (message in err). */
int seq_store_peek_definition(const char *dir, char **json, char *err, size_t errlen);

#endif
