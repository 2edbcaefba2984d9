/* `<topic>.seqd-loads` records (server/loads_record.h): a load and a rollback format and
 * parse back field for field; what is not such a record is refused (wrong version or op,
 * a missing or negative field, an empty range, no paths, an empty path, a NUL inside a
 * string, duplicate keys, a generation 0 load); a dry run round-trips; the impact counts
 * of cluster map records sum one node per partition (server/cluster_record.h). */
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "server/cluster_record.h"
#include "server/loads_record.h"
#include "testlib.h"

static int parses(const char *text)
{
    seq_loads_record r;
    int rc = seq_loads_parse_record(text, strlen(text), &r);
    seq_loads_record_clear(&r);
    return rc == SEQ_OK;
}

static void test_load_round_trip(void)
{
    char *paths[] = {"g/partition-00000/part-0.sst", "g/partition-00001/part-0.sst"};
    seq_loads_record r = {.op = SEQ_LOADS_OP_LOAD, .generation = 7, .start_ms = 1000,
                          .end_ms = 2000, .partitions = 2, .paths = paths, .n_paths = 2,
                          .at_ms = 123};
    strcpy(r.sequence, "engagements");
    strcpy(r.node, "a");
    char *text = seq_loads_format_record(&r);
    CHECK(text != NULL);
    seq_loads_record b;
    CHECK_EQ_INT(seq_loads_parse_record(text, strlen(text), &b), SEQ_OK);
    CHECK_EQ_INT(b.op, SEQ_LOADS_OP_LOAD);
    CHECK(strcmp(b.sequence, "engagements") == 0 && strcmp(b.node, "a") == 0);
    CHECK_EQ_INT(b.generation, 7);
    CHECK_EQ_INT(b.start_ms, 1000);
    CHECK_EQ_INT(b.end_ms, 2000);
    CHECK_EQ_INT(b.partitions, 2);
    CHECK_EQ_INT(b.at_ms, 123);
    CHECK_EQ_INT(b.n_paths, 2);
    CHECK(b.n_paths == 2 && strcmp(b.paths[1], paths[1]) == 0);
    CHECK(b.sums == NULL);
    seq_loads_record_clear(&b);
    CHECK(b.paths == NULL && b.n_paths == 0);
    free(text);
    /* with the sums the receiver verified: one size and hash per path, both ways */
    uint64_t sums[4] = {100, 0xfedcba9876543210ull, 0, 1};
    r.sums = sums;
    text = seq_loads_format_record(&r);
    CHECK(text != NULL && strstr(text, "\"fedcba9876543210\"") != NULL);
    CHECK_EQ_INT(seq_loads_parse_record(text, strlen(text), &b), SEQ_OK);
    CHECK(b.sums != NULL && b.sums[0] == 100 && b.sums[1] == 0xfedcba9876543210ull &&
          b.sums[2] == 0 && b.sums[3] == 1);
    seq_loads_record_clear(&b);
    free(text);
}

static void test_dry_run_round_trip(void)
{
    char *paths[] = {"g/partition-00000/part-0.sst"};
    seq_loads_record r = {.op = SEQ_LOADS_OP_DRY_RUN, .generation = 9, .start_ms = 10,
                          .end_ms = 20, .partitions = 1, .paths = paths, .n_paths = 1,
                          .at_ms = 1000, .expires_ms = 5000};
    strcpy(r.sequence, "s");
    char *text = seq_loads_format_record(&r);
    CHECK(text != NULL && strstr(text, "\"op\":\"dry_run\"") != NULL);
    seq_loads_record b;
    CHECK_EQ_INT(seq_loads_parse_record(text, strlen(text), &b), SEQ_OK);
    CHECK_EQ_INT(b.op, SEQ_LOADS_OP_DRY_RUN);
    CHECK_EQ_INT(b.generation, 9);
    CHECK_EQ_INT(b.expires_ms, 5000);
    CHECK(b.n_paths == 1 && strcmp(b.paths[0], paths[0]) == 0);
    seq_loads_record_clear(&b);
    free(text);
    /* an older receiver's dry run (no expires_ms) expires a fixed time after it was
     * written; a bad expires_ms is refused; a load has none */
    const char *old = "{\"v\":1,\"op\":\"dry_run\",\"sequence\":\"s\",\"node\":\"a\","
                      "\"at_ms\":1000,\"generation\":9,\"start_ms\":10,\"end_ms\":20,"
                      "\"partitions\":1,\"paths\":[\"p\"]";
    char buf[512];
    snprintf(buf, sizeof buf, "%s}", old);
    CHECK_EQ_INT(seq_loads_parse_record(buf, strlen(buf), &b), SEQ_OK);
    CHECK_EQ_INT(b.expires_ms, 1000 + SEQ_LOADS_DRY_RUN_TTL_MS);
    seq_loads_record_clear(&b);
    snprintf(buf, sizeof buf, "%s,\"expires_ms\":-1}", old);
    CHECK_EQ_INT(seq_loads_parse_record(buf, strlen(buf), &b), SEQ_EINVAL);
    snprintf(buf, sizeof buf, "%s,\"expires_ms\":\"x\"}", old);
    CHECK_EQ_INT(seq_loads_parse_record(buf, strlen(buf), &b), SEQ_EINVAL);
    r.op = SEQ_LOADS_OP_LOAD;
    text = seq_loads_format_record(&r);
    CHECK(text != NULL && strstr(text, "expires_ms") == NULL);
    free(text);
}

/* The receiver's sum (server/cluster.h seq_cluster_impact): one count per partition, the
 * first record that has it; other operations' counts and bad entries are not counted. */
static void test_impact_one_holder_per_partition(void)
{
    const char *a = "{\"v\":1,\"id\":\"a\",\"group\":\"g1\",\"grpc\":\"x:1\","
                    "\"n_partitions\":4,\"partitions\":[0,1],\"caught_up\":[],"
                    "\"heartbeat_ms\":1,\"impact\":[{\"at\":5,\"parts\":[[0,1,10],[1,2,20]]},"
                    "{\"at\":6,\"parts\":[[0,100,100]]}]}";
    const char *c = "{\"v\":1,\"id\":\"c\",\"group\":\"g2\",\"grpc\":\"x:2\","
                    "\"n_partitions\":4,\"partitions\":[0,1,2,3],\"caught_up\":[],"
                    "\"heartbeat_ms\":1,\"impact\":[{\"at\":5,\"parts\":[[0,1,10],[1,2,20],"
                    "[2,3,30],[3,4,40],[7,9,9],[\"x\",9,9]]}]}";
    seq_cluster_record ra, rc;
    CHECK_EQ_INT(seq_cluster_parse_record(a, strlen(a), &ra), SEQ_OK);
    CHECK_EQ_INT(seq_cluster_parse_record(c, strlen(c), &rc), SEQ_OK);
    uint8_t seen[8] = {0};
    uint64_t emptied = 0, hidden = 0;
    seq_cluster_record_impact(&ra, 5, 4, seen, &emptied, &hidden);
    seq_cluster_record_impact(&rc, 5, 4, seen, &emptied, &hidden);
    CHECK_EQ_INT(emptied, 1 + 2 + 3 + 4); /* partitions 0 and 1 once, not twice */
    CHECK_EQ_INT(hidden, 10 + 20 + 30 + 40);
    CHECK(seen[0] && seen[3]);
    seq_cluster_record_clear(&ra);
    seq_cluster_record_clear(&rc);
    const char *bad = "{\"v\":1,\"id\":\"a\",\"group\":\"g\",\"grpc\":\"x\","
                      "\"n_partitions\":1,\"partitions\":[],\"caught_up\":[],"
                      "\"heartbeat_ms\":1,\"impact\":{}}";
    CHECK(seq_cluster_parse_record(bad, strlen(bad), &ra) == SEQ_EINVAL); /* not an array */
}

static void test_rollback_round_trip(void)
{
    seq_loads_record r = {.op = SEQ_LOADS_OP_ROLLBACK, .generation = 0, .from = 20, .to = 10};
    strcpy(r.sequence, "s");
    char *text = seq_loads_format_record(&r);
    seq_loads_record b;
    CHECK_EQ_INT(seq_loads_parse_record(text, strlen(text), &b), SEQ_OK);
    CHECK_EQ_INT(b.op, SEQ_LOADS_OP_ROLLBACK);
    CHECK_EQ_INT(b.generation, 0);
    CHECK_EQ_INT(b.from, 20);
    CHECK_EQ_INT(b.to, 10);
    CHECK(b.paths == NULL);
    seq_loads_record_clear(&b);
    free(text);
}

static void test_refusals(void)
{
#define LOAD_TAIL "\"start_ms\":1,\"end_ms\":2,\"partitions\":8,\"paths\":[\"x\"]}"
#define HEAD "{\"v\":1,\"sequence\":\"s\",\"node\":\"a\",\"at_ms\":5,"
    CHECK(parses(HEAD "\"op\":\"load\",\"generation\":3," LOAD_TAIL));
    CHECK(parses(HEAD "\"op\":\"rollback\",\"generation\":0,\"from\":2,\"to\":1}"));
    CHECK(!parses(""));
    CHECK(!parses("[]"));
    CHECK(!parses("{\"v\":2,\"sequence\":\"s\",\"node\":\"a\",\"at_ms\":5,\"op\":\"load\","
                  "\"generation\":3," LOAD_TAIL));
    CHECK(!parses(HEAD "\"op\":\"drop\",\"generation\":3," LOAD_TAIL));
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":0," LOAD_TAIL));   /* generation 0 */
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":-1," LOAD_TAIL));
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":3,\"start_ms\":2,\"end_ms\":2,"
                       "\"partitions\":8,\"paths\":[\"x\"]}"));           /* empty range */
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":3,\"start_ms\":1,\"end_ms\":2,"
                       "\"partitions\":8,\"paths\":[]}"));                /* no paths */
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":3,\"start_ms\":1,\"end_ms\":2,"
                       "\"partitions\":8,\"paths\":[\"\"]}"));            /* empty path */
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":3,\"start_ms\":1,\"end_ms\":2,"
                       "\"partitions\":8,\"paths\":[\"a\\u0000b\"]}"));   /* NUL in a path */
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":3,\"start_ms\":1,\"end_ms\":2,"
                       "\"partitions\":8,\"paths\":[\"x\",7]}"));
    CHECK(!parses(HEAD "\"op\":\"load\",\"generation\":3,\"start_ms\":1,\"end_ms\":2,"
                       "\"paths\":[\"x\"]}"));                            /* no partitions */
    CHECK(!parses(HEAD "\"op\":\"rollback\",\"generation\":0,\"from\":2}")); /* no to */
    CHECK(!parses(HEAD "\"op\":\"rollback\",\"generation\":0,\"from\":2,\"to\":-1}"));
    CHECK(!parses("{\"v\":1,\"sequence\":\"\",\"node\":\"a\",\"at_ms\":5,\"op\":\"rollback\","
                  "\"generation\":0,\"from\":2,\"to\":1}"));             /* empty sequence */
    CHECK(!parses("{\"v\":1,\"sequence\":\"s\\u0000t\",\"node\":\"a\",\"at_ms\":5,\"op\":"
                  "\"rollback\",\"generation\":0,\"from\":2,\"to\":1}"));
    CHECK(!parses("{\"v\":1,\"v\":1,\"sequence\":\"s\",\"node\":\"a\",\"at_ms\":5,\"op\":"
                  "\"rollback\",\"generation\":0,\"from\":2,\"to\":1}")); /* duplicate key */
    CHECK(!parses(HEAD "\"op\":\"rollback\",\"generation\":0.5,\"from\":2,\"to\":1}"));
    /* sums: one [size, 16 hex digits] per path, nothing else */
#define LOAD1 HEAD "\"op\":\"load\",\"generation\":3,\"start_ms\":0,\"end_ms\":5,\"partitions\":1,\"paths\":[\"a\"],"
    CHECK(parses(LOAD1 "\"sums\":[[5,\"00000000000000ff\"]]}"));
    CHECK(!parses(LOAD1 "\"sums\":[]}"));                             /* one per path */
    CHECK(!parses(LOAD1 "\"sums\":[[5,\"ff\"]]}"));                   /* 16 digits */
    CHECK(!parses(LOAD1 "\"sums\":[[5,\"00000000000000FF\"]]}"));     /* lower case */
    CHECK(!parses(LOAD1 "\"sums\":[[-1,\"00000000000000ff\"]]}"));    /* a size */
    CHECK(!parses(LOAD1 "\"sums\":[[5,\"00000000000000ff\",1]]}"));   /* a pair */
    CHECK(!parses(LOAD1 "\"sums\":{}}"));
}

int main(void)
{
    RUN(test_load_round_trip);
    RUN(test_dry_run_round_trip);
    RUN(test_impact_one_holder_per_partition);
    RUN(test_rollback_round_trip);
    RUN(test_refusals);
    return seq_t_done();
}
