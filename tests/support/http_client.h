/* SPDX-License-Identifier: LGPL-2.1-only */
/* A tiny HTTP/1.1 client over TCP (loopback) or a unix socket, for the front end's tests. */
#ifndef SQUEEZED_TEST_HTTP_CLIENT_H
#define SQUEEZED_TEST_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every socket gets send and receive timeouts of HTTP_IO_TIMEOUT_S: a server that hangs
 * fails the test instead of stopping it. */
#define HTTP_IO_TIMEOUT_S 10

struct http_reply {
    int status;
    char *head; /* status line and headers */
    char *body; /* NUL-terminated, body_len bytes before the NUL */
    size_t body_len;
};

void http_reply_free(struct http_reply *r);

/* A connection to 127.0.0.1:port (fails the test if refused). */
int http_connect_tcp(uint16_t port);
/* A connection to the unix socket at path; -1 with errno on failure (no assertion: used
 * to probe). */
int http_connect_unix(const char *path);
/* All of buf, or -1. */
int http_send_all(int fd, const char *buf, size_t len);

/* The value of header name (case-insensitive) in r, *len bytes long; NULL if absent. */
const char *http_find_header(const struct http_reply *r, const char *name, size_t *len);
bool http_header_is(const struct http_reply *r, const char *name, const char *value);

/* Read one response. head_only: a reply to HEAD (no body whatever the headers say).
 * 0, or -1 (errno from recv, or no complete head). */
int http_read_reply(int fd, struct http_reply *r, bool head_only);
/* One request on fd; extra: more header lines ("Name: v\r\n"...), may be NULL; body NULL:
 * no Content-Length. close_after adds "Connection: close". 0 or -1. */
int http_send(int fd, const char *method, const char *path, const char *extra, const char *body,
              size_t len, bool close_after);
/* One request with Connection: close on fd, its reply in r, fd closed; fails the test when
 * no reply comes. */
void http_on(int fd, const char *method, const char *path, const char *body,
             struct http_reply *r);

#endif
