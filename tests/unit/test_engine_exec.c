/* The executor: type selection, filters (type-scoped, missing attribute fails), columns
 * with defaults, buckets with floor division, only_seq. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/common.h"
#include "engine/def.h"
#include "engine/event.h"
#include "engine/exec.h"
#include "testlib.h"

static const char DEF[] =
    "{\"bucket_ms\":1000,\"freshness_horizon_ms\":1000,\"sequences\":["
    "{\"name\":\"eng\",\"event_types\":[\"click\",\"save\",\"view\"],\"max_length\":10,"
    "\"retention_ms\":10000,\"columns\":[\"dwell\",{\"name\":\"pos\",\"default\":-1}],"
    "\"filters\":[{\"attribute\":\"dwell\",\"op\":\">=\",\"value\":500,\"event_types\":[\"view\"]}]},"
    "{\"name\":\"ops\",\"event_types\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"click\"],\"max_length\":10,"
    "\"retention_ms\":10000,\"filters\":["
    "{\"attribute\":\"v\",\"op\":\"<\",\"value\":1,\"event_types\":[\"a\"]},"
    "{\"attribute\":\"v\",\"op\":\"<=\",\"value\":1,\"event_types\":[\"b\"]},"
    "{\"attribute\":\"v\",\"op\":\"==\",\"value\":1,\"event_types\":[\"c\"]},"
    "{\"attribute\":\"v\",\"op\":\"!=\",\"value\":1,\"event_types\":[\"d\"]},"
    "{\"attribute\":\"v\",\"op\":\">=\",\"value\":1,\"event_types\":[\"e\"]},"
    "{\"attribute\":\"v\",\"op\":\">\",\"value\":1,\"event_types\":[\"f\"]},"
    "{\"attribute\":\"pos\",\"op\":\"!=\",\"value\":0,\"event_types\":[\"click\"]}]}]}";

static seq_def *def;
static seq_exec_out out[4];
static uint32_t n_out;

static seq_exec_result run(const char *json, int only)
{
    seq_event ev;
    char err[256];
    if (seq_event_decode_json(def, json, strlen(json), &ev, err, sizeof err) != SEQ_OK) {
        fprintf(stderr, "decode: %s\n", err);
        CHECK(0);
        return (seq_exec_result)-1;
    }
    return seq_exec_apply(def, &ev, only, out, &n_out);
}

static void test_types_and_columns(void)
{
    /* click: kept by eng (no filter on click), not by ops (click there needs pos != 0: absent) */
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":2500,\"event_type\":\"click\","
                     "\"attributes\":{\"dwell\":7}}", -1), SEQ_EXEC_KEPT);
    CHECK_EQ_INT(n_out, 1);
    CHECK_EQ_INT(out[0].seq_id, 0);
    CHECK_EQ_INT(out[0].type_idx, 0);
    CHECK_EQ_INT(out[0].bucket, 2);
    CHECK_EQ_INT(out[0].n_cols, 2);
    CHECK(out[0].cols[0] == 7.0);
    CHECK(out[0].cols[1] == -1.0); /* default */

    /* click with pos: kept by both, in definition order */
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":2500,\"event_type\":\"click\","
                     "\"attributes\":{\"pos\":3}}", -1), SEQ_EXEC_KEPT);
    CHECK_EQ_INT(n_out, 2);
    CHECK(isnan(out[0].cols[0])); /* no default given: NaN */
    CHECK(out[0].cols[1] == 3.0);
    CHECK_EQ_INT(out[1].seq_id, 1);
    CHECK_EQ_INT(out[1].type_idx, 6);
    CHECK_EQ_INT(out[1].n_cols, 0);

    /* only_seq restricts */
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":2500,\"event_type\":\"click\","
                     "\"attributes\":{\"pos\":3}}", 1), SEQ_EXEC_KEPT);
    CHECK_EQ_INT(n_out, 1);
    CHECK_EQ_INT(out[0].seq_id, 1);
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":2500,\"event_type\":\"click\"}", 1),
                 SEQ_EXEC_FILTERED);
    CHECK_EQ_INT(n_out, 0);
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":2500,\"event_type\":\"save\"}", 1),
                 SEQ_EXEC_UNKNOWN_TYPE);

    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":2500,\"event_type\":\"purchase\"}", -1),
                 SEQ_EXEC_UNKNOWN_TYPE);
    CHECK_EQ_INT(n_out, 0);
    /* a type name that is a prefix of a declared one is not that type */
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":2500,\"event_type\":\"clic\"}", -1),
                 SEQ_EXEC_UNKNOWN_TYPE);
}

static void test_filter_scope(void)
{
    /* view needs dwell >= 500 */
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":1,\"event_type\":\"view\","
                     "\"attributes\":{\"dwell\":500}}", -1), SEQ_EXEC_KEPT);
    CHECK_EQ_INT(out[0].type_idx, 2);
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":1,\"event_type\":\"view\","
                     "\"attributes\":{\"dwell\":499.9}}", -1), SEQ_EXEC_FILTERED);
    /* missing attribute fails the filter */
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":1,\"event_type\":\"view\"}", -1),
                 SEQ_EXEC_FILTERED);
    /* the filter does not apply to save */
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":1,\"event_type\":\"save\"}", -1),
                 SEQ_EXEC_KEPT);
}

static void test_ops(void)
{
    static const char *types[] = {"a", "b", "c", "d", "e", "f"};
    /* expected result for v = 0, 1, 2 per op < <= == != >= > */
    static const int want[6][3] = {{1, 0, 0}, {1, 1, 0}, {0, 1, 0},
                                   {1, 0, 1}, {0, 1, 1}, {0, 0, 1}};
    char js[256];
    for (int t = 0; t < 6; t++)
        for (int v = 0; v < 3; v++) {
            snprintf(js, sizeof js, "{\"user_id\":1,\"event_time_ms\":1,\"event_type\":\"%s\","
                                    "\"attributes\":{\"v\":%d}}", types[t], v);
            seq_exec_result r = run(js, -1);
            if ((r == SEQ_EXEC_KEPT) != want[t][v]) {
                fprintf(stderr, "  op %s v=%d: got %d\n", types[t], v, r);
                CHECK(0);
            } else {
                CHECK(1);
            }
        }
}

static void test_bucket(void)
{
    CHECK_EQ_INT(seq_exec_bucket(def, 0), 0);
    CHECK_EQ_INT(seq_exec_bucket(def, 999), 0);
    CHECK_EQ_INT(seq_exec_bucket(def, 1000), 1);
    CHECK_EQ_INT(seq_exec_bucket(def, -1), -1);
    CHECK_EQ_INT(seq_exec_bucket(def, -1000), -1);
    CHECK_EQ_INT(seq_exec_bucket(def, -1001), -2);
    CHECK_EQ_INT(run("{\"user_id\":1,\"event_time_ms\":-1,\"event_type\":\"save\"}", -1),
                 SEQ_EXEC_KEPT);
    CHECK_EQ_INT(out[0].bucket, -1);
}

int main(void)
{
    char err[256];
    if (seq_def_parse(DEF, strlen(DEF), &def, err, sizeof err) != SEQ_OK) {
        fprintf(stderr, "def: %s\n", err);
        return 1;
    }
    RUN(test_types_and_columns);
    RUN(test_filter_scope);
    RUN(test_ops);
    RUN(test_bucket);
    seq_def_free(def);
    return seq_t_done();
}
