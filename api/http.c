/* SPDX-License-Identifier: LGPL-2.1-only */
/* HTTP plumbing (libmicrohttpd): listeners, routes, body limits, responses. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api/api.h"
#include "api/metrics.h"
#include "api/switch.h"
#include "api/ui.h"
#include "api/xmlrpc.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/xalloc.h"

#define LISTEN_BACKLOG 64
#define MAX_CONNECTIONS 256u /* one thread each */
#define IDLE_TIMEOUT_S 60u   /* an idle keep-alive connection is closed after this */
#define MAX_OPENAPI_BYTES (8 << 20)
/* A body of unknown length (chunked) over the limit is read and thrown away, up to this
 * much more, so that the client can be told 413; past it the connection is dropped. */
#define MAX_DISCARD_BYTES ((uint64_t)64 << 20)

#define JSON_TYPE "application/json"
#define TEXT_TYPE "text/plain; charset=utf-8"
#define HTML_TYPE "text/html; charset=utf-8"
/* The pages load nothing from elsewhere: inline style and script, same-origin fetches. */
#define PAGE_CSP                                                                               \
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "              \
    "connect-src 'self'; img-src 'self' data:"

struct api_server {
    struct service *svc;            /* borrowed */
    struct MHD_Daemon *tcp_daemon;  /* NULL without a TCP listener */
    struct MHD_Daemon *unix_daemon; /* NULL without a unix socket */
    uint16_t tcp_port;              /* bound port; 0 without a TCP listener */
    char *socket_path;              /* owned; NULL without a unix socket */
    dev_t socket_dev;               /* the socket file we created (not someone else's) */
    ino_t socket_ino;
    char *openapi_path;            /* owned; NULL: none found at start */
    struct MHD_Daemon *xml_daemon; /* XML-RPC on xml_socket_path; NULL: none */
    char *xml_socket_path;         /* owned */
    dev_t xml_socket_dev;
    ino_t xml_socket_ino;
    struct switch_server *sw; /* the message-switch queue server; NULL: none */
};

enum route {
    ROUTE_NONE,
    ROUTE_RPC,
    ROUTE_STATUS,
    ROUTE_METRICS,
    ROUTE_HEALTHZ,
    ROUTE_OPENAPI,
    ROUTE_INDEX,   /* GET / (POST / is ROUTE_RPC) */
    ROUTE_UI,      /* GET /ui */
    ROUTE_HISTORY, /* GET /history */
    ROUTE_XMLRPC,  /* the XML-RPC socket: every path */
};

/* Per-request state, from the first call of the access handler to the completion. */
struct request {
    enum route route;
    bool method_ok;
    char *body; /* RPC only: at most LIMIT_BODY_MAX_BYTES bytes */
    size_t len;
    size_t cap;
    bool too_big;       /* the body went over the limit: 413 */
    uint64_t discarded; /* bytes thrown away since */
};

/* ---- responses ------------------------------------------------------------------ */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *ctype,
                               const char *body, size_t len, const char *allow)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (ctype != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    enum MHD_Result ret;

    json_decref(j);
    ret = respond(conn, status, JSON_TYPE, s, strlen(s), NULL);
    free(s);
    return ret;
}

/* Every HTTP-level error (not JSON-RPC): {"error": {"code": status, "message": text}}. */
static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status,
                                     const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status,
                                     const char *allow, const char *fmt, ...)
{
    va_list ap;
    char msg[512];
    json_t *j;
    char *s;
    enum MHD_Result ret;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* The path in a message may not be UTF-8: keep ASCII only. */
    for (char *p = msg; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
            *p = '?';
    j = json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "message", msg);
    assert(j != NULL); /* msg is ASCII: only allocation could fail, and that aborts */
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    ret = respond(conn, status, JSON_TYPE, s, strlen(s), allow);
    free(s);
    return ret;
}

/* ---- GET endpoints ---------------------------------------------------------------- */

static enum MHD_Result serve_openapi(struct api_server *srv, struct MHD_Connection *conn)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0;
    enum MHD_Result ret;

    if (srv->openapi_path == NULL)
        return respond_error(conn, 404, NULL, "openapi.json was not found at start-up");
    f = fopen(srv->openapi_path, "re");
    if (f == NULL) {
        ret = respond_error(conn, 404, NULL, "openapi.json: %s: %s", srv->openapi_path,
                            strerror(errno));
        goto out;
    }
    buf = xmalloc(MAX_OPENAPI_BYTES);
    len = fread(buf, 1, MAX_OPENAPI_BYTES, f);
    if (ferror(f) || !feof(f)) {
        ret = respond_error(conn, 500, NULL, "openapi.json: %s: unreadable or too large",
                            srv->openapi_path);
        goto out;
    }
    ret = respond(conn, 200, JSON_TYPE, buf, len, NULL);
out:
    if (f != NULL)
        fclose(f);
    free(buf);
    return ret;
}

static enum MHD_Result respond_page(struct MHD_Connection *conn, const char *body, size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, HTML_TYPE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "Content-Security-Policy", PAGE_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* GET /history?window_s=N&domids=1,2 (api/ui.h). */
static enum MHD_Result serve_history(struct api_server *srv, struct MHD_Connection *conn)
{
    const char *w = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "window_s");
    const char *d = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "domids");
    int64_t window_ms = 0;
    int32_t *domids = NULL;
    size_t n = 0;
    char *err = NULL;
    enum MHD_Result ret;

    if (api_ui_history_query(w, d, &window_ms, &domids, &n, &err) < 0) {
        ret = respond_error(conn, 400, NULL, "%s", err);
        free(err);
        return ret;
    }
    ret = respond_json(conn, 200, service_history(srv->svc, window_ms, domids, n));
    free(domids);
    return ret;
}

static enum MHD_Result serve_get(struct api_server *srv, struct MHD_Connection *conn,
                                 enum route route)
{
    json_t *status;
    char *text;
    enum MHD_Result ret;

    switch (route) {
    case ROUTE_STATUS:
        status = service_status(srv->svc);
        if (status == NULL)
            return respond_error(conn, 500, NULL, "no status published yet");
        return respond_json(conn, 200, status);
    case ROUTE_METRICS:
        status = service_status(srv->svc);
        if (status == NULL)
            return respond_error(conn, 500, NULL, "no status published yet");
        text = metrics_render(status);
        json_decref(status);
        ret = respond(conn, 200, METRICS_CONTENT_TYPE, text, strlen(text), NULL);
        free(text);
        return ret;
    case ROUTE_HEALTHZ:
        return respond(conn, 200, TEXT_TYPE, "ok\n", 3, NULL);
    case ROUTE_OPENAPI:
        return serve_openapi(srv, conn);
    case ROUTE_INDEX:
        return respond_page(conn, api_ui_root_page(), strlen(api_ui_root_page()));
    case ROUTE_UI:
        return respond_page(conn, (const char *)api_ui_index_html, api_ui_index_html_len);
    case ROUTE_HISTORY:
        return serve_history(srv, conn);
    case ROUTE_RPC:
    case ROUTE_NONE:
    default:
        break;
    }
    return respond_error(conn, 500, NULL, "no handler");
}

/* ---- the access handler ----------------------------------------------------------- */

static enum route route_of(const char *url)
{
    if (strcmp(url, "/") == 0 || strcmp(url, "/jsonrpc") == 0)
        return ROUTE_RPC;
    if (strcmp(url, "/status") == 0)
        return ROUTE_STATUS;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strcmp(url, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(url, "/openapi.json") == 0)
        return ROUTE_OPENAPI;
    if (strcmp(url, "/ui") == 0 || strcmp(url, "/ui/") == 0)
        return ROUTE_UI;
    if (strcmp(url, "/history") == 0)
        return ROUTE_HISTORY;
    return ROUTE_NONE;
}

/* Content-Length announces more than we take. */
static bool declared_too_big(struct MHD_Connection *conn)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long n;
    char *end;

    if (cl == NULL)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    if (end == cl)
        return false; /* libmicrohttpd refuses a malformed length itself */
    return errno == ERANGE || n > LIMIT_BODY_MAX_BYTES;
}

static enum MHD_Result respond_too_big(struct MHD_Connection *conn)
{
    return respond_error(conn, 413, NULL, "request body larger than %d bytes",
                         LIMIT_BODY_MAX_BYTES);
}

/* Take a piece of the body, never holding more than the limit. */
static void take_upload(struct request *rq, const char *data, size_t size)
{
    if ((rq->route != ROUTE_RPC && rq->route != ROUTE_XMLRPC) || !rq->method_ok) {
        rq->discarded += size; /* a body nobody reads */
        return;
    }
    if (rq->too_big || size > LIMIT_BODY_MAX_BYTES - rq->len) {
        rq->too_big = true;
        rq->discarded += size;
        return;
    }
    if (rq->len + size > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 4096;
        while (cap < rq->len + size)
            cap *= 2;
        if (cap > LIMIT_BODY_MAX_BYTES)
            cap = LIMIT_BODY_MAX_BYTES;
        rq->body = xreallocarray(rq->body, cap, 1);
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, size);
    rq->len += size;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct api_server *srv = cls;
    struct request *rq = *con_cls;
    char *reply;
    int status = 0;
    enum MHD_Result ret;

    (void)version;
    if (rq == NULL) {
        /* First call: headers only. A body announced too large is refused before any of
         * it is read (libmicrohttpd then closes the connection). */
        rq = xcalloc(1, sizeof(*rq));
        rq->route = route_of(url);
        /* GET / is the landing page; POST / stays JSON-RPC. */
        if (rq->route == ROUTE_RPC && strcmp(url, "/") == 0 &&
            (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
             strcmp(method, MHD_HTTP_METHOD_HEAD) == 0))
            rq->route = ROUTE_INDEX;
        if (rq->route == ROUTE_RPC)
            rq->method_ok = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
        else
            rq->method_ok = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
                            strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
        *con_cls = rq;
        if (rq->route == ROUTE_RPC && rq->method_ok && declared_too_big(conn)) {
            rq->too_big = true;
            return respond_too_big(conn);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        take_upload(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (rq->discarded > MAX_DISCARD_BYTES) {
            log_info("http: dropping a connection sending more than %llu bytes",
                     (unsigned long long)MAX_DISCARD_BYTES);
            return MHD_NO;
        }
        return MHD_YES;
    }
    /* The whole request is in. */
    if (rq->route == ROUTE_NONE)
        return respond_error(conn, 404, NULL, "no such path: %s", url);
    if (!rq->method_ok) {
        if (rq->route == ROUTE_RPC && strcmp(url, "/") == 0)
            return respond_error(conn, 405, "GET, HEAD, POST",
                                 "%s is not allowed on %s: POST for JSON-RPC, GET for the page",
                                 method, url);
        if (rq->route == ROUTE_RPC)
            return respond_error(conn, 405, MHD_HTTP_METHOD_POST,
                                 "%s is not allowed on %s: use POST", method, url);
        return respond_error(conn, 405, "GET, HEAD", "%s is not allowed on %s: use GET", method,
                             url);
    }
    if (rq->route != ROUTE_RPC)
        return serve_get(srv, conn, rq->route);
    if (rq->too_big)
        return respond_too_big(conn);
    reply = api_handle_rpc(srv->svc, rq->body != NULL ? rq->body : "", rq->len, &status);
    if (status == 204)
        ret = respond(conn, 204, NULL, "", 0, NULL);
    else
        ret = respond(conn, (unsigned)status, JSON_TYPE, reply, strlen(reply), NULL);
    free(reply);
    return ret;
}

/*
 * The XML-RPC socket, as xapi-idl's Xcp_service.http_handler: POST on any path (xenopsd
 * posts to /var/xapi/memory), the reply with 200; any other method 404 with an empty
 * body. One request per connection (Connection: close), as squeezed closes each.
 */
static enum MHD_Result respond_xml(struct MHD_Connection *conn, unsigned status,
                                   const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    if (body[0] != '\0')
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/xml");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_xml_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    struct api_server *srv = cls;
    struct request *rq = *con_cls;

    (void)url;
    (void)version;
    if (rq == NULL) {
        rq = xcalloc(1, sizeof(*rq));
        rq->route = ROUTE_XMLRPC;
        rq->method_ok = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
        *con_cls = rq;
        if (rq->method_ok && declared_too_big(conn)) {
            rq->too_big = true;
            char *r = xmlrpc_internal_error("request body larger than 1 MiB");
            enum MHD_Result ret = respond_xml(conn, 413, r);
            free(r);
            return ret;
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        take_upload(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rq->discarded > MAX_DISCARD_BYTES ? MHD_NO : MHD_YES;
    }
    if (!rq->method_ok)
        return respond_xml(conn, 404, "");
    char *reply = rq->too_big
                      ? xmlrpc_internal_error("request body larger than 1 MiB")
                      : xmlrpc_handle(srv->svc, rq->body != NULL ? rq->body : "", rq->len);
    enum MHD_Result ret = respond_xml(conn, rq->too_big ? 413 : 200, reply);
    free(reply);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (rq != NULL) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* Paths are compared as sent: no percent-decoding, so "/%00" is not "/". */
static size_t keep_escapes(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t len;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';
    log_info("http: %s", msg);
}

/* ---- listeners ---------------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        return (ntohl(sin.sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        if (IN6_IS_ADDR_LOOPBACK(&sin6.sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr) && sin6.sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* Bind a TCP listener on host (loopback only) and port. */
static int listen_tcp(const char *host_in, uint16_t port, int *fd_out, uint16_t *port_out,
                      char **err)
{
    struct addrinfo hints = {0};
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char *host = xstrdup(host_in);
    size_t hlen = strlen(host);
    int fd = -1;
    int rc = -1;
    int gai;
    int one = 1;

    /* "[::1]" as in a URL. */
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0) {
        *err = xasprintf("cannot resolve listen address %s: %s", host_in, gai_strerror(gai));
        goto out;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr)) {
            *err = xasprintf("refusing to listen on %s: not a loopback address (the "
                             "interface has no authentication; use 127.0.0.1 or ::1)",
                             host_in);
            goto out;
        }
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) == 0 &&
            listen(fd, LISTEN_BACKLOG) == 0)
            break;
        free(*err);
        *err = xasprintf("cannot listen on %s port %u: %s", host_in, (unsigned)port,
                         strerror(errno));
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        if (*err == NULL)
            *err = xasprintf("cannot listen on %s port %u", host_in, (unsigned)port);
        goto out;
    }
    free(*err);
    *err = NULL;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        *err = xasprintf("getsockname on %s: %s", host_in, strerror(errno));
        goto out;
    }
    *port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    *fd_out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (res != NULL)
        freeaddrinfo(res);
    free(host);
    return rc;
}

/* Create the unix socket, 0600. A stale socket file (nobody accepts on it) is replaced;
 * a live one, or anything that is not a socket, is left alone and is an error. */
static int listen_unix(const char *path, int *fd_out, dev_t *dev, ino_t *ino, char **err)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    mode_t old_mask;
    int fd = -1;
    int rc = -1;
    int e;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        *err = xasprintf("socket path %s is too long (at most %zu bytes)", path,
                         sizeof(sun.sun_path) - 1);
        goto out;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = xasprintf("%s exists and is not a socket; not replacing it", path);
            goto out;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            *err = xasprintf("socket: %s", strerror(errno));
            goto out;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            *err = xasprintf("%s is in use: another process is serving on it", path);
            goto out;
        }
        e = errno;
        close(fd);
        fd = -1;
        if (e != ECONNREFUSED && e != ENOENT) {
            *err = xasprintf("cannot tell whether %s is in use: %s", path, strerror(e));
            goto out;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            *err = xasprintf("cannot remove the stale socket %s: %s", path, strerror(errno));
            goto out;
        }
        log_info("removed the stale socket %s", path);
    } else if (errno != ENOENT) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        goto out;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = xasprintf("socket: %s", strerror(errno));
        goto out;
    }
    /* Created 0600 from the start: no window in which others may connect. */
    old_mask = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    e = errno;
    umask(old_mask);
    if (rc < 0) {
        *err = xasprintf("cannot bind %s: %s", path, strerror(e));
        goto out;
    }
    rc = -1;
    if (chmod(path, 0600) < 0 || listen(fd, LISTEN_BACKLOG) < 0 || stat(path, &st) < 0) {
        *err = xasprintf("cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        goto out;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    *fd_out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* libmicrohttpd with one thread per connection: a request blocked in a long squeeze
 * operation holds only its own thread, GET /status is served meanwhile. Takes fd (closed
 * on failure too). */
static struct MHD_Daemon *start_daemon_with(struct api_server *srv, int fd,
                                            MHD_AccessHandlerCallback handler)
{
    struct MHD_Daemon *d;

    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, handler, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
                         NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                         MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL, MHD_OPTION_END);
    if (d == NULL)
        close(fd);
    return d;
}

static struct MHD_Daemon *start_daemon(struct api_server *srv, int fd)
{
    return start_daemon_with(srv, fd, on_request);
}

/* Create the directory of a socket path (0755, as Xcp_service.mkdir_rec) if missing. */
static void make_parent_dirs(const char *path)
{
    char *dir = xstrdup(path);
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            log_debug("mkdir %s: %s", dir, strerror(errno));
        *p = '/';
    }
    free(dir);
}

/* The file served at GET /openapi.json: the configured one, else ../openapi.json next to
 * the binary (build/squeezed in a checkout), else ../share/squeezed/openapi.json next to
 * it (installed: PREFIX/sbin/squeezed, PREFIX/share/squeezed/openapi.json), else
 * ./openapi.json. */
static char *find_openapi(const char *configured)
{
    char exe[PATH_MAX];
    char *path;
    char *cwd;
    ssize_t n;

    if (configured != NULL)
        return xstrdup(configured);
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char *dir = dirname(exe);
        path = xasprintf("%s/../openapi.json", dir);
        if (access(path, R_OK) == 0)
            return path;
        free(path);
        path = xasprintf("%s/../share/squeezed/openapi.json", dir);
        if (access(path, R_OK) == 0)
            return path;
        free(path);
    }
    cwd = getcwd(NULL, 0);
    if (cwd != NULL) {
        path = xasprintf("%s/openapi.json", cwd);
        free(cwd);
        if (access(path, R_OK) == 0)
            return path;
        free(path);
    }
    return NULL;
}

struct api_server *api_start(struct service *svc, const struct api_config *cfg, char **err)
{
    struct api_server *srv = xcalloc(1, sizeof(*srv));
    char *msg = NULL;
    int fd = -1;

    srv->svc = svc;
    if (cfg == NULL || (cfg->listen_host == NULL && cfg->socket_path == NULL &&
                        cfg->xml_socket_path == NULL && cfg->switch_path == NULL)) {
        msg = xasprintf("nothing to listen on: neither a TCP address nor a unix socket");
        goto fail;
    }
    if (cfg->listen_host != NULL) {
        if (listen_tcp(cfg->listen_host, cfg->listen_port, &fd, &srv->tcp_port, &msg) < 0)
            goto fail;
        srv->tcp_daemon = start_daemon(srv, fd);
        if (srv->tcp_daemon == NULL) {
            msg = xasprintf("cannot start the HTTP server on %s", cfg->listen_host);
            goto fail;
        }
    }
    if (cfg->socket_path != NULL) {
        if (listen_unix(cfg->socket_path, &fd, &srv->socket_dev, &srv->socket_ino, &msg) < 0)
            goto fail;
        srv->socket_path = xstrdup(cfg->socket_path);
        srv->unix_daemon = start_daemon(srv, fd);
        if (srv->unix_daemon == NULL) {
            msg = xasprintf("cannot start the HTTP server on %s", cfg->socket_path);
            goto fail;
        }
    }
    if (cfg->xml_socket_path != NULL) {
        make_parent_dirs(cfg->xml_socket_path);
        if (listen_unix(cfg->xml_socket_path, &fd, &srv->xml_socket_dev, &srv->xml_socket_ino,
                        &msg) < 0)
            goto fail;
        srv->xml_socket_path = xstrdup(cfg->xml_socket_path);
        srv->xml_daemon = start_daemon_with(srv, fd, on_xml_request);
        if (srv->xml_daemon == NULL) {
            msg = xasprintf("cannot start the XML-RPC server on %s", cfg->xml_socket_path);
            goto fail;
        }
        log_info("XML-RPC (the Memory interface as squeezed serves it) on %s",
                 cfg->xml_socket_path);
    }
    if (cfg->switch_path != NULL) {
        struct switch_config sc = {.path = cfg->switch_path, .queue = NULL};
        srv->sw = switch_start(svc, &sc, &msg);
        if (srv->sw == NULL)
            goto fail;
    }
    srv->openapi_path = find_openapi(cfg->openapi_path);
    if (srv->openapi_path == NULL)
        log_info("openapi.json not found: GET /openapi.json will answer 404");
    if (err != NULL)
        *err = NULL;
    return srv;
fail:
    api_stop(srv);
    if (err != NULL)
        *err = msg;
    else
        free(msg);
    return NULL;
}

void api_stop(struct api_server *srv)
{
    struct stat st;

    if (srv == NULL)
        return;
    switch_stop(srv->sw);
    if (srv->xml_daemon != NULL)
        MHD_stop_daemon(srv->xml_daemon);
    if (srv->xml_socket_path != NULL && lstat(srv->xml_socket_path, &st) == 0 &&
        st.st_dev == srv->xml_socket_dev && st.st_ino == srv->xml_socket_ino)
        unlink(srv->xml_socket_path);
    free(srv->xml_socket_path);
    /* Waits for requests in progress (a running squeeze operation included). */
    if (srv->tcp_daemon != NULL)
        MHD_stop_daemon(srv->tcp_daemon);
    if (srv->unix_daemon != NULL)
        MHD_stop_daemon(srv->unix_daemon);
    /* Remove our socket file, not one another daemon has put there since. */
    if (srv->socket_path != NULL && lstat(srv->socket_path, &st) == 0 &&
        st.st_dev == srv->socket_dev && st.st_ino == srv->socket_ino)
        unlink(srv->socket_path);
    free(srv->socket_path);
    free(srv->openapi_path);
    free(srv);
}

uint16_t api_tcp_port(const struct api_server *srv)
{
    return srv != NULL ? srv->tcp_port : 0;
}
