/* SPDX-License-Identifier: LGPL-2.1-only */
/* A tiny HTTP/1.1 client over TCP (loopback) or a unix socket, for the front end's tests. */
#include "tests/support/http_client.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "common/xalloc.h"

void http_reply_free(struct http_reply *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = HTTP_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int http_connect_tcp(uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        fail_msg("connect to port %u: %s", port, strerror(errno));
    return fd;
}

/* -1 with errno on failure (no assert: used to probe). */
int http_connect_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int http_send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

const char *http_find_header(const struct http_reply *r, const char *name, size_t *len)
{
    size_t nlen = strlen(name);

    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            *len = strcspn(v, "\r\n");
            return v;
        }
    }
    return NULL;
}

bool http_header_is(const struct http_reply *r, const char *name, const char *value)
{
    size_t len = 0;
    const char *v = http_find_header(r, name, &len);
    return v != NULL && len == strlen(value) && strncmp(v, value, len) == 0;
}

/* Read one response. head_only: a reply to HEAD (no body whatever the headers say). */
int http_read_reply(int fd, struct http_reply *r, bool head_only)
{
    size_t cap = 8192, len = 0;
    char *buf = xmalloc(cap);
    char *end = NULL;
    size_t want = SIZE_MAX;

    memset(r, 0, sizeof(*r));
    for (;;) {
        if (end == NULL) {
            buf[len] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                size_t hlen = (size_t)(end - buf);
                r->head = strndup(buf, hlen);
                r->status = atoi(buf + 9);
                size_t clen = 0;
                const char *cl = http_find_header(r, "Content-Length", &clen);
                if (head_only || r->status == 204 || r->status == 304)
                    want = hlen + 4;
                else if (cl != NULL)
                    want = hlen + 4 + strtoull(cl, NULL, 10);
            }
        }
        if (end != NULL && len >= want)
            break;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = xreallocarray(buf, cap, 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            free(r->head);
            r->head = NULL;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (end == NULL) {
        free(buf);
        return -1;
    }
    size_t hlen = strlen(r->head) + 4;
    size_t blen = want != SIZE_MAX && want < len ? want - hlen : len - hlen;
    r->body = xmalloc(blen + 1);
    memcpy(r->body, buf + hlen, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    free(buf);
    return 0;
}

/* One request on fd; extra: more header lines ("Name: v\r\n"...), may be NULL. */
int http_send(int fd, const char *method, const char *path, const char *extra, const char *body,
              size_t len, bool close_after)
{
    char *head =
        xasprintf("%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s", method, path,
                  close_after ? "Connection: close\r\n" : "", extra != NULL ? extra : "");
    char *cl = body != NULL ? xasprintf("Content-Length: %zu\r\n\r\n", len) : strdup("\r\n");
    int rc = http_send_all(fd, head, strlen(head));
    if (rc == 0)
        rc = http_send_all(fd, cl, strlen(cl));
    if (rc == 0 && body != NULL)
        rc = http_send_all(fd, body, len);
    free(head);
    free(cl);
    return rc;
}

void http_on(int fd, const char *method, const char *path, const char *body,
             struct http_reply *r)
{
    assert_int_equal(http_send(fd, method, path, NULL, body, body ? strlen(body) : 0, true), 0);
    if (http_read_reply(fd, r, strcmp(method, "HEAD") == 0) < 0)
        fail_msg("no reply to %s %s: %s", method, path, strerror(errno));
    close(fd);
}
