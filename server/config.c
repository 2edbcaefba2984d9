/* Command-line parsing for seqd: a table of long options, each bound to a field of
 * seq_config with a kind that says how its value is checked. Runs before anything else
 * in main; a bad option is reported here and main exits 2. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/common.h"
#include "lanes.h"

typedef enum { OPT_STR, OPT_INT, OPT_SIZE, OPT_I64, OPT_FORMAT, OPT_FLAG } opt_kind;

typedef struct {
    const char *name;
    opt_kind kind;
    size_t off;     /* offset of the field in seq_config */
    long long min;  /* numeric options: smallest accepted value */
} opt_spec;

#define F(field) offsetof(seq_config, field)
static const opt_spec OPTS[] = {
    {"definition", OPT_STR, F(definition), 0},
    {"data-dir", OPT_STR, F(data_dir), 0},
    {"grpc-listen", OPT_STR, F(grpc_listen), 0},
    {"admin-listen", OPT_STR, F(admin_listen), 0},
    {"brokers", OPT_STR, F(brokers), 0},
    {"topic", OPT_STR, F(topic), 0},
    {"group", OPT_STR, F(group), 0},
    {"event-format", OPT_FORMAT, F(event_format), 0},
    {"threads", OPT_INT, F(threads), 1},
    {"cache-mb", OPT_SIZE, F(cache_mb), 1},
    {"max-message-bytes", OPT_SIZE, F(max_message_bytes), 1024},
    {"batch-root", OPT_STR, F(batch_root), 0},
    {"admin-token-file", OPT_STR, F(admin_token_file), 0},
    {"idle-timeout-s", OPT_INT, F(idle_timeout_s), 1},
    {"max-connections", OPT_INT, F(max_connections), 1},
    {"max-concurrent-streams", OPT_INT, F(max_concurrent_streams), 1},
    {"max-header-bytes", OPT_INT, F(max_header_bytes), 1024},
    {"min-free-mb", OPT_SIZE, F(min_free_mb), 0},
    {"kafka-config", OPT_STR, F(kafka_config), 0},
    {"instance-id", OPT_STR, F(instance_id), 0},
    {"advertise", OPT_STR, F(advertise), 0},
    {"history-ms", OPT_I64, F(history_ms), 0},
    {"keep-generations", OPT_INT, F(keep_generations), 0},
    {"write-lanes", OPT_INT, F(write_lanes), 1},
    {"help", OPT_FLAG, F(help), 0},
    {"check-definition", OPT_STR, F(check_definition), 0},
};
#undef F

void seq_config_usage(FILE *f)
{
    fputs("usage: seqd --definition FILE [--data-dir DIR] [--grpc-listen HOST:PORT]\n"
          "            [--admin-listen HOST:PORT] [--brokers LIST] [--topic NAME] [--group ID]\n"
          "            [--event-format protobuf|json|confluent-protobuf] [--threads N]\n"
          "            [--cache-mb N]\n"
          "            [--max-message-bytes N] [--batch-root DIR] [--admin-token-file FILE]\n"
          "            [--idle-timeout-s N] [--max-connections N] [--max-concurrent-streams N]\n"
          "            [--max-header-bytes N] [--min-free-mb N] [--kafka-config FILE]\n"
          "            [--instance-id ID] [--advertise HOST:PORT] [--history-ms MS]\n"
          "            [--keep-generations N] [--write-lanes N]\n"
          "defaults: --data-dir ./seqd-data --grpc-listen 127.0.0.1:50051\n"
          "          --admin-listen 127.0.0.1:8080 --topic seqd.events --group seqd\n"
          "          --event-format protobuf --threads <cores> --cache-mb 512\n"
          "          --max-message-bytes 4194304 --batch-root <data-dir>/batch\n"
          "          --idle-timeout-s 300 --max-connections 4096 --max-concurrent-streams 256\n"
          "          --max-header-bytes 16384 --min-free-mb 128 (0: no check);\n"
          "          --history-ms 604800000 (7 days; 0: keep no replaced copies);\n"
          "          --keep-generations 2 (replaced batch loads kept for rollback);\n"
          "          --write-lanes 2 (stream commits at once, 1-8);\n"
          "          no --brokers: an embedded Kafka cluster\n"
          "       seqd --check-definition FILE [--data-dir DIR]\n"
          "          validates FILE (and its compatibility with the data in DIR), prints the\n"
          "          verdict, exits 0 (valid) or 2; serves nothing\n",
          f);
}

const char *seq_event_format_name(seq_format f)
{
    return f == SEQ_FORMAT_JSON ? "json" : f == SEQ_FORMAT_CONFLUENT_PROTOBUF ? "confluent-protobuf"
                                                                        : "protobuf";
}

static const char DEFAULT_DATA_DIR[] = "./seqd-data";
static const char DEFAULT_GROUP[] = "seqd";

/* The CPUs this process may run on (its affinity mask: `taskset`, a cgroup cpuset), as
 * nproc(1) counts them, not the machine's: a seqd pinned to one core with a worker per
 * core of the machine would time-slice its workers on that core, and every call that
 * waits out another worker's slice waits milliseconds. */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void set_defaults(seq_config *c)
{
    memset(c, 0, sizeof *c);
    c->data_dir = DEFAULT_DATA_DIR;
    c->grpc_listen = "127.0.0.1:50051";
    c->admin_listen = "127.0.0.1:8080";
    c->topic = "seqd.events";
    c->group = DEFAULT_GROUP;
    c->event_format = SEQ_FORMAT_PROTOBUF;
    c->threads = usable_cpus();
    c->cache_mb = 512;
    c->max_message_bytes = 4194304;
    c->min_free_mb = 128;
    c->history_ms = 604800000; /* 7 days (PRODUCT.md "As of T") */
    c->write_lanes = 2;         /* the two cores of the machine the bench runs on */
    c->keep_generations = 2;   /* PRODUCT.md "Rollback" */
}

static const opt_spec *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof OPTS / sizeof OPTS[0]; i++)
        if (strlen(OPTS[i].name) == len && memcmp(OPTS[i].name, name, len) == 0) return &OPTS[i];
    return NULL;
}

static int parse_number(const opt_spec *o, const char *v, long long max, long long *out,
                        char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno == ERANGE || n < o->min || n > max) {
        seq_errf(err, errlen, "--%s: '%s' is not an integer in [%lld, %lld]", o->name, v,
                 o->min, max);
        return SEQ_EINVAL;
    }
    *out = n;
    return SEQ_OK;
}

/* Stores the value of option o; batch_root is copied because seq_config owns it. */
static int apply(seq_config *c, const opt_spec *o, const char *v, char *err, size_t errlen)
{
    char *field = (char *)c + o->off;
    long long n;
    switch (o->kind) {
    case OPT_STR:
        if (*v == '\0') {
            seq_errf(err, errlen, "--%s: empty value", o->name);
            return SEQ_EINVAL;
        }
        if (o->off == offsetof(seq_config, batch_root)) {
            free(c->batch_root);
            if (!(c->batch_root = strdup(v))) return SEQ_EINTERNAL;
        } else {
            *(const char **)field = v;
        }
        return SEQ_OK;
    case OPT_INT:
        if (parse_number(o, v, INT_MAX, &n, err, errlen)) return SEQ_EINVAL;
        *(int *)field = (int)n;
        return SEQ_OK;
    case OPT_SIZE:
        if (parse_number(o, v, (long long)(SIZE_MAX >> 21), &n, err, errlen)) return SEQ_EINVAL;
        *(size_t *)field = (size_t)n;
        return SEQ_OK;
    case OPT_I64: /* times in ms: bounded so that now - value cannot overflow */
        if (parse_number(o, v, INT64_MAX >> 2, &n, err, errlen)) return SEQ_EINVAL;
        *(int64_t *)field = (int64_t)n;
        return SEQ_OK;
    case OPT_FORMAT:
        if (strcmp(v, "protobuf") == 0) c->event_format = SEQ_FORMAT_PROTOBUF;
        else if (strcmp(v, "json") == 0) c->event_format = SEQ_FORMAT_JSON;
        else if (strcmp(v, "confluent-protobuf") == 0) c->event_format = SEQ_FORMAT_CONFLUENT_PROTOBUF;
        else {
            seq_errf(err, errlen, "--event-format: '%s' is not protobuf, json or confluent-protobuf", v);
            return SEQ_EINVAL;
        }
        return SEQ_OK;
    case OPT_FLAG:
        *(int *)field = 1;
        return SEQ_OK;
    }
    return SEQ_EINVAL;
}

static int default_batch_root(seq_config *c)
{
    if (c->batch_root) return SEQ_OK;
    size_t n = strlen(c->data_dir) + sizeof "/batch";
    if (!(c->batch_root = malloc(n))) return SEQ_EINTERNAL;
    snprintf(c->batch_root, n, "%s/batch", c->data_dir);
    return SEQ_OK;
}

int seq_config_parse(seq_config *c, int argc, char **argv, char *err, size_t errlen)
{
    set_defaults(c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            seq_errf(err, errlen, "unexpected argument '%s' (options start with --)", a);
            goto fail;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_spec *o = find_opt(name, nlen);
        if (!o) {
            seq_errf(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
            goto fail;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (o->kind == OPT_FLAG && v) {
            seq_errf(err, errlen, "--%s takes no value", o->name);
            goto fail;
        }
        if (o->kind != OPT_FLAG && !v) {
            if (i + 1 >= argc) {
                seq_errf(err, errlen, "--%s needs a value", o->name);
                goto fail;
            }
            v = argv[++i];
        }
        int rc = apply(c, o, v ? v : "", err, errlen);
        if (rc) {
            if (rc == SEQ_EINTERNAL) seq_errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (c->write_lanes > SEQ_LANES_MAX) { /* the one option with an upper bound */
        seq_errf(err, errlen, "--write-lanes: '%d' is not an integer in [1, %d]", c->write_lanes,
                 SEQ_LANES_MAX);
        goto fail;
    }
    c->data_dir_given = c->data_dir != DEFAULT_DATA_DIR;
    c->group_given = c->group != DEFAULT_GROUP;
    if (c->help || c->check_definition) return SEQ_OK;
    if (!c->definition) {
        seq_errf(err, errlen, "--definition FILE is required (see --help)");
        goto fail;
    }
    if (default_batch_root(c)) {
        seq_errf(err, errlen, "out of memory");
        goto fail;
    }
    return SEQ_OK;
fail:
    seq_config_free(c);
    return SEQ_EINVAL;
}

void seq_config_free(seq_config *c)
{
    free(c->batch_root);
    c->batch_root = NULL;
}
