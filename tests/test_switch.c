/* SPDX-License-Identifier: LGPL-2.1-only */
/* The message-switch queue server against a scripted switch: every frame it writes,
 * byte for byte, as ocaml/message-switch's Protocol_unix.Server.listen writes them
 * through cohttp, and its answers parsed as the switch sends them. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/switch.h"

#define HDRS(n)                                                                                \
    "host: localhost\r\nuser-agent: cohttp\r\ncontent-length: " n                              \
    "\r\nconnection: keep-alive\r\n\r\n"

static void test_pct_encode(void **state)
{
    (void)state;
    char *s = switch_pct_encode("org.xen.xapi.memory");
    assert_string_equal(s, "org.xen.xapi.memory");
    free(s);
    s = switch_pct_encode("xenopsd:12@h/q x%");
    assert_string_equal(s, "xenopsd:12@h%2Fq%20x%25");
    free(s);
}

static void test_reply_key(void **state)
{
    (void)state;
    char *k = switch_reply_key("org.xen.xapi.memory", 7);
    assert_int_equal(strlen(k), strlen("7-") + 16);
    assert_memory_equal(k, "7-", 2);
    char *k2 = switch_reply_key("other", 7);
    assert_string_not_equal(k, k2);
    free(k);
    free(k2);
}

/* ---- a scripted switch ----------------------------------------------------------------- */

struct script {
    char path[108];
    int lfd;
    char token[64];
    char errors[4096]; /* mismatches, reported by the test thread */
    int steps;         /* frames seen as expected */
};

/* Read one request (head + content-length body) from fd into buf. */
static int read_frame(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *e = strstr(buf, "\r\n\r\n");
        if (e != NULL) {
            char *cl = strstr(buf, "content-length: ");
            size_t body = cl != NULL && cl < e ? strtoul(cl + 16, NULL, 10) : 0;
            size_t want = (size_t)(e - buf) + 4 + body;
            if (len >= want)
                return 0;
        }
        if (len + 1 >= cap)
            return -1;
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
    }
}

static void answer(int fd, const char *body)
{
    char head[128];
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\ncontent-length: %zu\r\n\r\n",
             strlen(body));
    if (write(fd, head, strlen(head)) < 0 || write(fd, body, strlen(body)) < 0)
        return;
}

static bool expect(struct script *sc, int fd, const char *want)
{
    char buf[4096];
    if (read_frame(fd, buf, sizeof(buf)) < 0) {
        snprintf(sc->errors + strlen(sc->errors), sizeof(sc->errors) - strlen(sc->errors),
                 "step %d: no frame (wanted %s)\n", sc->steps, want);
        return false;
    }
    if (strcmp(buf, want) != 0) {
        snprintf(sc->errors + strlen(sc->errors), sizeof(sc->errors) - strlen(sc->errors),
                 "step %d:\n got: %s\nwant: %s\n", sc->steps, buf, want);
        return false;
    }
    sc->steps++;
    return true;
}

static void *switch_script(void *arg)
{
    struct script *sc = arg;
    char want[1024];
    int a = accept(sc->lfd, NULL, NULL);
    snprintf(want, sizeof(want), "GET /login/%s HTTP/1.1\r\n" HDRS("0"), sc->token);
    if (!expect(sc, a, want))
        goto out;
    answer(a, "");
    int b = accept(sc->lfd, NULL, NULL);
    if (!expect(sc, b, want))
        goto out2;
    answer(b, "");
    if (!expect(sc, a, want))
        goto out2;
    answer(a, "");
    if (!expect(sc, a, "GET /persistent/org.xen.xapi.memory HTTP/1.1\r\n" HDRS("0")))
        goto out2;
    answer(a, "org.xen.xapi.memory");
    if (!expect(sc, a,
                "POST /transfer HTTP/1.1\r\n" HDRS(
                    "49") "{\"timeout\":30.0,\"queues\":[\"org.xen.xapi.memory\"]}"))
        goto out2;
    /* One request, as the switch hands it out (Out.transfer), for a method that is not
     * there: answered without touching the service. */
    answer(a, "{\"messages\":[[[\"org.xen.xapi.memory\",7],{\"payload\":\"{\\\"method\\\":"
              "\\\"nope\\\",\\\"params\\\":[],\\\"id\\\":7}\",\"kind\":[\"Request\","
              "\"xenopsd:1/r\"]}]],\"next\":\"7\"}");
    if (!expect(sc, b,
                "POST /response/xenopsd:1%2Fr/org.xen.xapi.memory/7 HTTP/1.1\r\n" HDRS(
                    "74") "{\"result\":null,\"error\":[\"Internal_error\",\"method not found: "
                          "nope\"],"
                          "\"id\":7}"))
        goto out2;
    answer(b, "[[\"xenopsd:1/r\",0]]");
    if (!expect(sc, b, "GET /ack/org.xen.xapi.memory/7 HTTP/1.1\r\n" HDRS("0")))
        goto out2;
    answer(b, "");
    expect(sc, a,
           "POST /transfer HTTP/1.1\r\n" HDRS(
               "60") "{\"from\":\"7\",\"timeout\":30.0,\"queues\":[\"org.xen.xapi.memory\"]}");
    /* The long poll stays open until the client stops (its connections then close). */
out2:
    for (char c; read(a, &c, 1) > 0;)
        ;
    close(b);
out:
    close(a);
    return NULL;
}

static void test_frames_of_the_queue_server(void **state)
{
    (void)state;
    struct script sc;
    memset(&sc, 0, sizeof(sc));
    snprintf(sc.path, sizeof(sc.path), "/tmp/test-switch-%d.sock", (int)getpid());
    snprintf(sc.token, sizeof(sc.token), "squeezed:%d", (int)getpid());
    unlink(sc.path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, sc.path, strlen(sc.path) + 1);
    sc.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(sc.lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(sc.lfd, 4), 0);
    pthread_t t;
    pthread_create(&t, NULL, switch_script, &sc);

    char *err = NULL;
    struct switch_config cfg = {.path = sc.path};
    struct switch_server *sw = switch_start(NULL, &cfg, &err); /* no call reaches it */
    assert_non_null(sw);
    for (int i = 0; i < 200 && sc.steps < 8 && sc.errors[0] == '\0'; i++)
        usleep(20000);
    switch_stop(sw);
    shutdown(sc.lfd, SHUT_RDWR); /* an accept still waiting returns */
    pthread_join(t, NULL);
    close(sc.lfd);
    unlink(sc.path);
    if (sc.errors[0] != '\0')
        fail_msg("%s", sc.errors);
    assert_int_equal(sc.steps, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct_encode),
        cmocka_unit_test(test_reply_key),
        cmocka_unit_test(test_frames_of_the_queue_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
