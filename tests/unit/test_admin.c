/* Admin server lifecycle and routing that need no other module: binding port 0,
 * /healthz, 404, and stop right after start (a stop issued before the loop runs must not
 * be lost). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/admin.h"
#include "testlib.h"

/* One HTTP/1.0 GET; returns the status code, body in buf. */
static int http_get(const char *addr, const char *path, char *buf, size_t len)
{
    char host[64];
    int port;
    if (seq_admin_split_hostport(addr, host, sizeof host, &port)) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < len && (r = read(fd, buf + got, len - 1 - got)) > 0) got += (size_t)r;
    buf[got] = '\0';
    close(fd);
    int code = -1;
    sscanf(buf, "HTTP/1.%*d %d", &code);
    return code;
}

static void test_split(void)
{
    char h[64];
    int p;
    CHECK_EQ_INT(seq_admin_split_hostport("127.0.0.1:8080", h, sizeof h, &p), SEQ_OK);
    CHECK(strcmp(h, "127.0.0.1") == 0 && p == 8080);
    CHECK_EQ_INT(seq_admin_split_hostport("[::1]:0", h, sizeof h, &p), SEQ_OK);
    CHECK(strcmp(h, "::1") == 0 && p == 0);
    CHECK_EQ_INT(seq_admin_split_hostport("nohost", h, sizeof h, &p), SEQ_EINVAL);
    CHECK_EQ_INT(seq_admin_split_hostport(":80", h, sizeof h, &p), SEQ_EINVAL);
    CHECK_EQ_INT(seq_admin_split_hostport("h:99999", h, sizeof h, &p), SEQ_EINVAL);
    CHECK_EQ_INT(seq_admin_split_hostport("h:", h, sizeof h, &p), SEQ_EINVAL);
}

static void test_serve_and_stop(void)
{
    seq_config cfg = {.admin_listen = "127.0.0.1:0"};
    seq_admin_ctx ctx = {.config = &cfg};
    char err[256], buf[4096];
    for (int i = 0; i < 50; i++) { /* stop immediately: must return every time */
        seq_admin *a;
        CHECK_EQ_INT(seq_admin_start(&ctx, &a, err, sizeof err), SEQ_OK);
        seq_admin_stop(a);
    }
    seq_admin *a;
    CHECK_EQ_INT(seq_admin_start(&ctx, &a, err, sizeof err), SEQ_OK);
    const char *addr = seq_admin_address(a);
    CHECK(strncmp(addr, "127.0.0.1:", 10) == 0 && atoi(addr + 10) > 0);
    CHECK_EQ_INT(http_get(addr, "/healthz", buf, sizeof buf), 200);
    CHECK(strstr(buf, "\r\n\r\nok\n") != NULL);
    CHECK_EQ_INT(http_get(addr, "/nope", buf, sizeof buf), 404);
    seq_admin_stop(a);

    seq_config bad = {.admin_listen = "127.0.0.1"};
    ctx.config = &bad;
    CHECK_EQ_INT(seq_admin_start(&ctx, &a, err, sizeof err), SEQ_EINVAL);
    CHECK(strstr(err, "--admin-listen") != NULL);
}

int main(void)
{
    RUN(test_split);
    RUN(test_serve_and_stop);
    return seq_t_done();
}
