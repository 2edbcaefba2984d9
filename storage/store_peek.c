/* Read-only peeks into a data dir (store_peek.h). Reads the meta key 'm' "def" that the
 * store writes each time it starts serving a definition (store.c, check_def). */
#include "store_peek.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../engine/common.h"
#include "keys.h"

int seq_store_peek_definition(const char *dir, char **json, char *err, size_t errlen)
{
    struct stat sb;
    char path[4096];
    *json = NULL;
    snprintf(path, sizeof path, "%s/CURRENT", dir);
    if (stat(path, &sb) != 0) {
        seq_errf(err, errlen, "%s holds no seqd data", dir);
        return SEQ_ENOTFOUND;
    }
    rocksdb_options_t *opts = rocksdb_options_create();
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *e = NULL, *val = NULL;
    size_t vl = 0;
    int rc = SEQ_EINTERNAL;
    rocksdb_t *db = rocksdb_open_for_read_only(opts, dir, 0, &e);
    if (e) {
        seq_errf(err, errlen, "open %s read-only: %s", dir, e);
        goto out;
    }
    uint8_t k[SEQ_KEY_MAX];
    size_t kl = seq_key_meta(k, "def");
    val = rocksdb_get(db, ro, (const char *)k, kl, &vl, &e);
    if (e) {
        seq_errf(err, errlen, "read %s: %s", dir, e);
        goto out;
    }
    if (!val) {
        seq_errf(err, errlen, "%s holds no served definition yet", dir);
        rc = SEQ_ENOTFOUND;
        goto out;
    }
    if (!(*json = malloc(vl + 1))) {
        seq_errf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(*json, val, vl);
    (*json)[vl] = 0;
    rc = SEQ_OK;
out:
    rocksdb_free(val);
    rocksdb_free(e);
    if (db) rocksdb_close(db);
    rocksdb_readoptions_destroy(ro);
    rocksdb_options_destroy(opts);
    return rc;
}
