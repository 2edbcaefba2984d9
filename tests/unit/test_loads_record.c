/* `<topic>.seqd-loads` records (server/loads_record.h): a load and a rollback format and
 * parse back field for field; what is not such a record is refused (wrong version or op,
 * a missing or negative field, an empty range, no paths, an empty path, a NUL inside a
 * string, duplicate keys, a generation 0 load). */
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
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
    seq_loads_record_clear(&b);
    CHECK(b.paths == NULL && b.n_paths == 0);
    free(text);
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
}

int main(void)
{
    RUN(test_load_round_trip);
    RUN(test_rollback_round_trip);
    RUN(test_refusals);
    return seq_t_done();
}
