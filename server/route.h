/* Routing of reads in a cluster (PRODUCT.md, "Any node answers any read"): the method
 * table the transport serves is the service's, with GetSequence and BatchGetSequences
 * wrapped: a user whose partition this node holds is read here; another's call is
 * forwarded (forward.h) to a node that holds it (a caught-up one without a gap first, this
 * node's group first: seq_cluster_route), the next replica tried on UNAVAILABLE, DATA_LOSS,
 * FAILED_PRECONDITION or a peer that does not answer, within the call's deadline.
 * BatchGetSequences is split by partition, the parts asked in parallel and answered in
 * request order. A holder with a gap reads at a replica without one. A call that
 * arrives forwarded (`seqd-forwarded: 1`) is never forwarded again: for a partition not
 * held here it is UNAVAILABLE naming the partition. And ClusterService/GetClusterMap.
 * Before the cluster map runs (seq_route_set_cluster), everything is read here. */
#ifndef SEQ_ROUTE_H
#define SEQ_ROUTE_H

#include <stddef.h>

#include "cluster.h"
#include "grpc.h"
#include "service.h"

typedef struct seq_route seq_route;

/* Wraps the service's method table: GetSequence, BatchGetSequences and
 * ClusterService/GetClusterMap are replaced by the routed ones, the rest served as is. */
int seq_route_new(seq_service *svc, seq_route **out, char *err, size_t errlen);
void seq_route_free(seq_route *r);
/* The table for seq_grpc_config and its metric names (the service's, in its order). */
const seq_grpc_method *seq_route_methods(seq_route *r, size_t *n);
const char *const *seq_route_method_names(seq_route *r);
/* Starts routing by the cluster map (set once, before the ready line). */
void seq_route_set_cluster(seq_route *r, seq_cluster *c);

/* Counts since start, for /metrics. */
typedef struct {
    _Atomic unsigned long long forwarded;      /* calls (or batch parts) sent to a peer */
    _Atomic unsigned long long forward_retries; /* of those, tries of a next replica */
    _Atomic unsigned long long refused;        /* forwarded calls refused here (partition not held) */
} seq_route_stats;
seq_route_stats *seq_route_get_stats(seq_route *r);

#endif
