/* The admin HTTP server (HTTP/1.1, evhttp on its own thread and event_base):
 * GET /metrics, /healthz, /readyz, /status, /malformed (the messages kept aside),
 * /cluster (the cluster map), and the web console under /ui (console.h; its sampler runs
 * as a timer on this thread). Reads the state of the other modules; never
 * on the request path of gRPC. */
#ifndef SEQ_ADMIN_H
#define SEQ_ADMIN_H

#include <stddef.h>

#include "../engine/def.h"
#include "../storage/store.h"
#include "config.h"
#include "console.h"
#include "consumer.h"
#include "metrics.h"

typedef struct seq_admin seq_admin;

typedef struct {
    const seq_config *config; /* listen address, topic, group, format */
    const char *grpc_address; /* as bound */
    const seq_def *def;
    seq_store *store;
    seq_consumer *consumer;
    seq_metrics *metrics;
    const _Atomic int64_t *stream_watermark;
    seq_console *console; /* NULL: no /ui */
} seq_admin_ctx;

/* Binds config->admin_listen (port 0 picks one) and starts the thread. ctx's pointers
 * must outlive the server. */
int seq_admin_start(const seq_admin_ctx *ctx, seq_admin **out, char *err, size_t errlen);
/* "HOST:PORT" actually bound. */
const char *seq_admin_address(const seq_admin *a);
/* Serves GET /cluster from c from now on (before: 503). */
struct seq_cluster;
void seq_admin_set_cluster(seq_admin *a, struct seq_cluster *c);
/* Adds "loads" to /status from l from now on (server/loads.h, seq_loads_status). */
struct seq_loads;
void seq_admin_set_loads(seq_admin *a, struct seq_loads *l);
/* Stops the loop, joins the thread, frees a. */
void seq_admin_stop(seq_admin *a);

/* Splits "HOST:PORT" ("[v6]:PORT" too) into host (NUL-terminated) and port. SEQ_OK or
 * SEQ_EINVAL. Shared with main for messages. */
int seq_admin_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
