/* seqctl internals shared by its commands: the global options, the command table's
 * signature, option-parsing helpers and the /status fetch. Each command lives in its
 * own clients/cmd_*.c file. Exit codes: 0 ok, 1 failure, 2 usage error. */
#ifndef SEQCTL_H
#define SEQCTL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

enum { SEQC_EXIT_OK = 0, SEQC_EXIT_FAIL = 1, SEQC_EXIT_USAGE = 2 };

typedef struct {
    const char *server; /* gRPC HOST:PORT */
    const char *admin;  /* admin HTTP HOST:PORT */
} seqc_ctx;

/* argv[0] is the command name. Returns the process exit code. */
typedef int (*seqc_command_fn)(const seqc_ctx *ctx, int argc, char **argv);

int seqc_cmd_get(const seqc_ctx *ctx, int argc, char **argv);
int seqc_cmd_produce(const seqc_ctx *ctx, int argc, char **argv);
int seqc_cmd_status(const seqc_ctx *ctx, int argc, char **argv);
int seqc_cmd_broker(const seqc_ctx *ctx, int argc, char **argv);
int seqc_cmd_build(const seqc_ctx *ctx, int argc, char **argv); /* cmd_build.c */
int seqc_cmd_load(const seqc_ctx *ctx, int argc, char **argv);
int seqc_cmd_cluster(const seqc_ctx *ctx, int argc, char **argv); /* cmd_cluster.c */
int seqc_cmd_rollback(const seqc_ctx *ctx, int argc, char **argv);
int seqc_cmd_diff(const seqc_ctx *ctx, int argc, char **argv);
int seqc_cmd_malformed(const seqc_ctx *ctx, int argc, char **argv);

/* Prints "seqctl: <message>" and the hint to stderr; returns SEQC_EXIT_USAGE. */
int seqc_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "error: <message>" to stderr; returns SEQC_EXIT_FAIL. */
int seqc_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Matches argv[*i] against "--name" (value in argv[*i+1]) or "--name=value".
 * Returns 1 and sets *val (advancing *i past a separate value), 0 when argv[*i] is
 * another argument, -1 when the value is missing. */
int seqc_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* Strict decimal parsers: whole string, no sign for u64, range-checked. 0 or -1. */
int seqc_parse_u64(const char *s, uint64_t *out);
int seqc_parse_i64(const char *s, int64_t *out);

/* GET /status from the admin port, parsed. NULL with err set on failure. Caller
 * json_decref()s the result. */
json_t *seqc_fetch_status(const seqc_ctx *ctx, char *err, size_t errlen);
/* GET path (a JSON object) from the admin port; same contract as seqc_fetch_status. */
json_t *seqc_fetch_json(const seqc_ctx *ctx, const char *path, char *err, size_t errlen);

/* The definition's sequence object named `name` inside a /status document, or NULL. */
json_t *seqc_status_sequence_def(json_t *status, const char *name);

/* A uint64 as a JSON integer, or as a decimal string above INT64_MAX. New reference. */
json_t *seqc_json_u64(uint64_t v);

/* An admin call (LoadBatch, RollbackBatch: `method`) with the token of token_file (NULL:
 * none). SEQC_EXIT_OK with the response message in *body (caller frees), or the exit
 * code after printing what failed. */
int seqc_admin_call(const seqc_ctx *ctx, const char *method, const char *token_file,
                    const uint8_t *req, size_t len, seq_buf *body);

/* "2025-11-24T16:00:00.123Z" into buf (at least 32 bytes). */
void seqc_format_time(int64_t ms, char *buf, size_t len);

#endif
