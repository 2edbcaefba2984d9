/* gRPC message framing (server/grpc_frame.c): reassembly across arbitrary chunk
 * boundaries, early refusal of oversized or compressed messages, end-of-stream checks. */
#include <stdlib.h>
#include <string.h>

#include "server/grpc_frame.h"
#include "tests/unit/testlib.h"

static size_t make_msg(uint8_t *out, uint8_t flag, const char *body)
{
    size_t n = strlen(body);
    out[0] = flag;
    seq_put_be32(out + 1, (uint32_t)n);
    memcpy(out + 5, body, n);
    return n + 5;
}

static void test_whole_message(void)
{
    uint8_t buf[64];
    size_t n = make_msg(buf, 0, "hello");
    seq_frame f;
    seq_frame_init(&f, 100);
    CHECK_EQ_INT(seq_frame_feed(&f, buf, n, NULL, 0), SEQ_OK);
    CHECK(f.complete);
    CHECK(!f.extra);
    CHECK_EQ_INT(f.msg.len, 5);
    CHECK(memcmp(f.msg.data, "hello", 5) == 0);
    CHECK_EQ_INT(seq_frame_end(&f, NULL, 0), SEQ_OK);
    seq_frame_free(&f);
}

/* Every split point of a frame into two feeds, and every truncation ended early. */
static void test_every_split_and_truncation(void)
{
    uint8_t buf[64];
    size_t n = make_msg(buf, 0, "abcdefghij");
    for (size_t cut = 0; cut <= n; cut++) {
        seq_frame f;
        seq_frame_init(&f, 100);
        CHECK_EQ_INT(seq_frame_feed(&f, buf, cut, NULL, 0), SEQ_OK);
        char err[128] = "";
        int end = seq_frame_end(&f, err, sizeof err);
        if (cut == 0) CHECK_EQ_INT(end, SEQ_EINVAL);
        else if (cut < n) {
            CHECK_EQ_INT(end, SEQ_EINTERNAL);
            CHECK(strstr(err, "truncated") != NULL);
        } else CHECK_EQ_INT(end, SEQ_OK);
        CHECK_EQ_INT(seq_frame_feed(&f, buf + cut, n - cut, NULL, 0), SEQ_OK);
        CHECK(f.complete);
        CHECK(!f.extra);
        CHECK(f.msg.len == 10 && memcmp(f.msg.data, "abcdefghij", 10) == 0);
        CHECK_EQ_INT(seq_frame_end(&f, NULL, 0), SEQ_OK);
        seq_frame_free(&f);
    }
}

static void test_byte_by_byte(void)
{
    uint8_t buf[64];
    size_t n = make_msg(buf, 0, "byte by byte");
    seq_frame f;
    seq_frame_init(&f, 100);
    for (size_t i = 0; i < n; i++) {
        CHECK(!f.complete);
        CHECK_EQ_INT(seq_frame_feed(&f, buf + i, 1, NULL, 0), SEQ_OK);
    }
    CHECK(f.complete);
    CHECK(f.msg.len == 12 && memcmp(f.msg.data, "byte by byte", 12) == 0);
    seq_frame_free(&f);
}

static void test_empty_message(void)
{
    uint8_t buf[8];
    size_t n = make_msg(buf, 0, "");
    seq_frame f;
    seq_frame_init(&f, 100);
    CHECK_EQ_INT(seq_frame_feed(&f, buf, 4, NULL, 0), SEQ_OK);
    CHECK(!f.complete);
    CHECK_EQ_INT(seq_frame_feed(&f, buf + 4, n - 4, NULL, 0), SEQ_OK);
    CHECK(f.complete);
    CHECK_EQ_INT(f.msg.len, 0);
    CHECK_EQ_INT(seq_frame_end(&f, NULL, 0), SEQ_OK);
    seq_frame_free(&f);
}

/* A second message in the same stream (one feed, or a later feed) sets extra and
 * leaves the first message intact. */
static void test_two_messages(void)
{
    uint8_t buf[64];
    size_t n1 = make_msg(buf, 0, "one");
    size_t n2 = make_msg(buf + n1, 0, "two!");
    seq_frame f;
    seq_frame_init(&f, 100);
    CHECK_EQ_INT(seq_frame_feed(&f, buf, n1 + n2, NULL, 0), SEQ_OK);
    CHECK(f.complete);
    CHECK(f.extra);
    CHECK(f.msg.len == 3 && memcmp(f.msg.data, "one", 3) == 0);
    seq_frame_reset(&f);
    CHECK(!f.complete && !f.extra && f.msg.len == 0);
    CHECK_EQ_INT(seq_frame_feed(&f, buf, n1, NULL, 0), SEQ_OK);
    CHECK(!f.extra);
    CHECK_EQ_INT(seq_frame_feed(&f, buf + n1, 1, NULL, 0), SEQ_OK);
    CHECK(f.extra);
    seq_frame_free(&f);
}

/* The declared length is refused from the prefix alone: nothing of the body buffered,
 * and feeding more never buffers either. */
static void test_oversized_before_body(void)
{
    uint8_t pre[5] = {0, 0, 0x10, 0, 0}; /* 1 MiB */
    seq_frame f;
    seq_frame_init(&f, 1000);
    char err[128] = "";
    CHECK_EQ_INT(seq_frame_feed(&f, pre, 3, err, sizeof err), SEQ_OK);
    CHECK_EQ_INT(seq_frame_feed(&f, pre + 3, 2, err, sizeof err), SEQ_ERESOURCE);
    CHECK(strstr(err, "1048576") != NULL && strstr(err, "1000") != NULL);
    CHECK(f.msg.cap < 1000);
    uint8_t body[512] = {0};
    CHECK_EQ_INT(seq_frame_feed(&f, body, sizeof body, NULL, 0), SEQ_ERESOURCE);
    CHECK_EQ_INT(f.msg.len, 0);
    seq_frame_free(&f);

    /* exactly at the limit is fine */
    seq_frame_init(&f, 3);
    uint8_t buf[16];
    size_t n = make_msg(buf, 0, "abc");
    CHECK_EQ_INT(seq_frame_feed(&f, buf, n, NULL, 0), SEQ_OK);
    CHECK(f.complete);
    seq_frame_free(&f);
}

static void test_flag_errors(void)
{
    uint8_t buf[16];
    char err[128] = "";
    seq_frame f;
    seq_frame_init(&f, 100);
    size_t n = make_msg(buf, 1, "zz");
    CHECK_EQ_INT(seq_frame_feed(&f, buf, n, err, sizeof err), SEQ_EINVAL);
    CHECK(strstr(err, "compressed") != NULL);
    CHECK(!f.complete);
    seq_frame_free(&f);

    seq_frame_init(&f, 100);
    n = make_msg(buf, 0x80, "zz");
    CHECK_EQ_INT(seq_frame_feed(&f, buf, n, err, sizeof err), SEQ_EINVAL);
    CHECK(strstr(err, "0x80") != NULL);
    seq_frame_free(&f);
}

static void test_end_truncated(void)
{
    uint8_t buf[64];
    size_t n = make_msg(buf, 0, "0123456789");
    char err[128] = "";
    seq_frame f;
    seq_frame_init(&f, 100);
    CHECK_EQ_INT(seq_frame_feed(&f, buf, n - 3, NULL, 0), SEQ_OK);
    CHECK_EQ_INT(seq_frame_end(&f, err, sizeof err), SEQ_EINTERNAL);
    CHECK(strstr(err, "7 of 10") != NULL);
    seq_frame_free(&f);
}

int main(void)
{
    RUN(test_whole_message);
    RUN(test_every_split_and_truncation);
    RUN(test_byte_by_byte);
    RUN(test_empty_message);
    RUN(test_two_messages);
    RUN(test_oversized_before_body);
    RUN(test_flag_errors);
    RUN(test_end_truncated);
    return seq_t_done();
}
