/* A node's id in the cluster (PRODUCT.md, "A cluster of nodes"): --instance-id when given,
 * else an id generated once and kept in the data dir (file `node-id`), so that a node
 * keeps its name across restarts. */
#ifndef SEQ_NODEID_H
#define SEQ_NODEID_H

#include <stddef.h>

/* Writes the id into out (outlen >= 64). An explicit id must be 1-63 bytes of
 * [A-Za-z0-9._-]. SEQ_OK, or SEQ_EINVAL with a message (bad id, unwritable data dir). */
int seq_node_id(const char *data_dir, const char *explicit_id, char *out, size_t outlen,
                char *err, size_t errlen);

#endif
