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
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api/api.h"
#include "api/metrics.h"
#include "api/switch.h"
#include "api/ui.h"
#include "api/xmlrpc.h"
#include "common/clock.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/status.h"

#define LISTEN_BACKLOG 256
/* Connections are multiplexed (epoll) over a few threads: an idle or slow connection
 * costs a file descriptor and a little memory, never a thread. A JSON-RPC call runs on a
 * thread of its own while its connection is suspended (see run_rpc), so a call that
 * waits for a squeeze holds no pool thread either. */
#define POOL_THREADS 4u
#define TOKEN_MIN_BYTES 16
#define TOKEN_MAX_BYTES 4096
#define SOCKET_CHECK_MS 1000 /* how often the unix socket's file is checked */
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

/* One per listener: the access handler's closure. */
struct listener {
    struct api_server *srv;
    bool is_unix;
};

struct api_server {
    struct service *svc; /* borrowed */
    struct listener tcp_l, unix_l, xml_l;
    char *token; /* owned; NULL: TCP is read-only */
    size_t token_len;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;
    unsigned rpc_running; /* JSON-RPC calls on their own threads (run_rpc) */
    bool stopping;
    bool socket_replaced; /* the socket path no longer names our socket */
    bool watcher_started;
    pthread_t watcher;
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
    /* A JSON-RPC call handed to its own thread: */
    struct api_server *srv;
    struct MHD_Connection *conn;
    struct api_caller caller;
    char who[96];
    char *reply; /* set by the thread before it resumes the connection */
    int status;
    bool started; /* handed over (the connection is suspended until it is done) */
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

/* The bytes of a picture go out as they are: the response borrows them and holds the
 * picture until libmicrohttpd is done sending. */
static void release_picture(void *cls)
{
    status_picture_unref(cls);
}

/* Send r (a body that must not be cached) as 200 with its type; r is released. */
static enum MHD_Result queue_ok(struct MHD_Connection *conn, struct MHD_Response *r,
                                const char *ctype)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_picture(struct MHD_Connection *conn, struct status_picture *pic,
                                       const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        len, (void *)body, release_picture, pic);
    if (r == NULL) {
        status_picture_unref(pic);
        return MHD_NO;
    }
    return queue_ok(conn, r, ctype);
}

/* GET /metrics of a picture: what comes from its JSON is rendered once
 * (status_picture_memo); the process_* metrics are read at each scrape. */
static char *build_metrics(const char *json, size_t len)
{
    json_error_t jerr;
    json_t *status = json_loadb(json, len, 0, &jerr);
    if (status == NULL) {
        log_warnx("/metrics: the status picture does not parse: %s at byte %d (near '%.40s')",
                  jerr.text, jerr.position,
                  json + (jerr.position > 20 && (size_t)jerr.position < len ? jerr.position - 20
                                                                            : 0));
        return NULL;
    }
    char *text = metrics_render_status(status);
    json_decref(status);
    return text;
}

#define MEMO_METRICS 0

/*
 * The body of GET /metrics: the picture's rendered text and the process_* metrics in one
 * buffer, shared by reference with the responses sending it. It is made again for a new
 * picture, or when its process part (read from /proc by api/metrics.c) is older than
 * PROCESS_METRICS_MAX_AGE_MS: a scrape then costs no file reads, and what a scraper
 * sees is at most that old (Prometheus scrapes every few seconds; the CPU time Linux
 * reports moves in 10 ms ticks anyway). One buffer, as /status: sent from two
 * (MHD_create_response_from_iovec), the body went out at 0.65-0.88 of the bare server's
 * rate at 1,000 domains, where /status, from one, went at 1.26-1.37. It holds the picture
 * it was made from, so that no new picture can be given its address while it is kept.
 */
#define PROCESS_METRICS_MAX_AGE_MS 100

struct metrics_body {
    atomic_uint refs;
    struct status_picture *pic;
    int64_t process_at_ms; /* when its process part was read */
    size_t pic_len;        /* text[0..pic_len) is the picture's, the rest the process part */
    size_t len;
    char text[];
};

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_body *metrics_cur; /* the last one made, NULL before the first */

static void metrics_body_unref(void *cls)
{
    struct metrics_body *m = cls;
    if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1) {
        status_picture_unref(m->pic);
        free(m);
    }
}

/* The body for picture pic (its rendered text body[len]); a reference. Takes pic. */
static struct metrics_body *metrics_body_get(struct status_picture *pic, const char *body,
                                             size_t len)
{
    int64_t now = clock_monotonic_ms();
    pthread_mutex_lock(&metrics_mu);
    struct metrics_body *old = metrics_cur, *m = old;
    bool fresh = old != NULL && now - old->process_at_ms <= PROCESS_METRICS_MAX_AGE_MS;
    if (!fresh || old->pic != pic) {
        /* The process part: the last body's while fresh, else read now. */
        char *read = fresh ? NULL : metrics_render_process();
        const char *proc = fresh ? old->text + old->pic_len : read;
        size_t proc_len = fresh ? old->len - old->pic_len : strlen(read);
        m = xmalloc(sizeof(*m) + len + proc_len);
        atomic_init(&m->refs, 1);
        m->pic = pic;
        m->process_at_ms = fresh ? old->process_at_ms : now;
        m->pic_len = len;
        m->len = len + proc_len;
        memcpy(m->text, body, len);
        memcpy(m->text + len, proc, proc_len);
        free(read);
        metrics_body_unref(old);
        metrics_cur = m;
    } else {
        status_picture_unref(pic);
    }
    atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&metrics_mu);
    return m;
}

/* GET /metrics: the picture's rendered text, then the process part. Takes pic. */
static enum MHD_Result respond_metrics(struct MHD_Connection *conn, struct status_picture *pic,
                                       const char *body, size_t len)
{
    struct metrics_body *m = metrics_body_get(pic, body, len);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        m->len, m->text, metrics_body_unref, m);
    if (r == NULL) {
        metrics_body_unref(m);
        return MHD_NO;
    }
    return queue_ok(conn, r, METRICS_CONTENT_TYPE);
}

static enum MHD_Result serve_get(struct api_server *srv, struct MHD_Connection *conn,
                                 enum route route)
{
    struct status_picture *pic;
    const char *body;
    size_t len = 0;

    switch (route) {
    case ROUTE_STATUS:
    case ROUTE_METRICS:
        pic = service_status_picture(srv->svc);
        if (pic == NULL)
            return respond_error(conn, 500, NULL, "no status published yet");
        if (route == ROUTE_STATUS)
            body = status_picture_json(pic, &len);
        else
            body = status_picture_memo(pic, MEMO_METRICS, build_metrics, &len);
        if (body == NULL) {
            status_picture_unref(pic);
            return respond_error(conn, 500, NULL, "cannot render the status");
        }
        if (route == ROUTE_STATUS)
            return respond_picture(conn, pic, JSON_TYPE, body, len);
        return respond_metrics(conn, pic, body, len);
    case ROUTE_HEALTHZ: {
        pthread_mutex_lock(&srv->lock);
        bool replaced = srv->socket_replaced;
        pthread_mutex_unlock(&srv->lock);
        if (replaced)
            return respond_error(conn, 503, NULL,
                                 "the unix socket %s was replaced or removed by someone else",
                                 srv->socket_path);
        return respond(conn, 200, TEXT_TYPE, "ok\n", 3, NULL);
    }
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

/* ---- who is calling ------------------------------------------------------------------ */

/* Equal in time independent of where they differ (only the lengths leak). */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    volatile unsigned char diff = (unsigned char)(alen != blen);
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* Fill rq->caller (and rq->who) for this connection. */
static void identify(struct api_server *srv, const struct listener *l,
                     struct MHD_Connection *conn, struct request *rq)
{
    const union MHD_ConnectionInfo *ci;
    rq->caller.who = rq->who;
    if (l->is_unix) {
        struct ucred uc;
        socklen_t len = sizeof(uc);
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci != NULL && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0)
            snprintf(rq->who, sizeof(rq->who), "unix pid %ld uid %ld gid %ld", (long)uc.pid,
                     (long)uc.uid, (long)uc.gid);
        else
            snprintf(rq->who, sizeof(rq->who), "unix (peer unknown)");
        /* The socket is 0600 in a checked directory: only its owner can connect. */
        rq->caller.may_change = true;
        return;
    }
    char addr[INET6_ADDRSTRLEN] = "?";
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr,
                      sizeof(addr));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                      addr, sizeof(addr));
    }
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    static const char bearer[] = "Bearer ";
    if (srv->token == NULL) {
        snprintf(rq->who, sizeof(rq->who), "tcp %s", addr);
        rq->caller.why_not = "TCP is read-only: no token is configured (start the daemon "
                             "with --token-file FILE and send 'Authorization: Bearer TOKEN', "
                             "or use the unix socket)";
        return;
    }
    if (auth == NULL || strncmp(auth, bearer, sizeof(bearer) - 1) != 0) {
        snprintf(rq->who, sizeof(rq->who), "tcp %s", addr);
        rq->caller.why_not = "a changing call over TCP needs 'Authorization: Bearer TOKEN' "
                             "(the token in the daemon's --token-file), or the unix socket";
        return;
    }
    const char *t = auth + sizeof(bearer) - 1;
    if (!same_secret(t, strlen(t), srv->token, srv->token_len)) {
        snprintf(rq->who, sizeof(rq->who), "tcp %s (wrong token)", addr);
        rq->caller.why_not = "the bearer token is wrong";
        return;
    }
    snprintf(rq->who, sizeof(rq->who), "tcp %s (token)", addr);
    rq->caller.may_change = true;
}

/* ---- JSON-RPC calls on their own threads ------------------------------------------------ */

static void *rpc_thread(void *arg)
{
    struct request *rq = arg;
    struct api_server *srv = rq->srv;
    int status = 0;
    char *reply;
    if (rq->route == ROUTE_XMLRPC) {
        /* The XML-RPC socket is privileged (0600, as the unix socket). */
        reply = xmlrpc_handle(srv->svc, rq->body != NULL ? rq->body : "", rq->len);
        status = 200;
    } else {
        reply = api_handle_rpc_as(srv->svc, rq->body != NULL ? rq->body : "", rq->len, &status,
                                  &rq->caller);
    }
    pthread_mutex_lock(&srv->lock);
    rq->reply = reply;
    rq->status = status;
    /* After this, rq belongs to libmicrohttpd again (it may be freed at once). */
    MHD_resume_connection(rq->conn);
    srv->rpc_running--;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

/* Hand the call to a thread of its own and suspend the connection until it is done: a
 * call that waits seconds for a squeeze then holds no pool thread, and the pool keeps
 * serving everyone else. Returns false when too many calls are running already (or the
 * thread cannot be made): the caller answers 503. */
static bool run_rpc(struct api_server *srv, struct MHD_Connection *conn, struct request *rq)
{
    pthread_attr_t attr;
    pthread_t t;
    bool ok = false;

    pthread_mutex_lock(&srv->lock);
    if (srv->stopping || srv->rpc_running >= LIMIT_HTTP_RPC_RUNNING) {
        pthread_mutex_unlock(&srv->lock);
        return false;
    }
    srv->rpc_running++;
    rq->srv = srv;
    rq->conn = conn;
    rq->started = true;
    MHD_suspend_connection(conn);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    ok = pthread_create(&t, &attr, rpc_thread, rq) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) {
        srv->rpc_running--;
        rq->started = false;
        MHD_resume_connection(conn);
    }
    pthread_mutex_unlock(&srv->lock);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct listener *l = cls;
    struct api_server *srv = l->srv;
    struct request *rq = *con_cls;
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
    if (rq->started) {
        /* Resumed: the call's thread has put its reply here. */
        if (rq->reply == NULL)
            return MHD_YES; /* not done yet (a spurious call) */
        if (rq->status == 204)
            ret = respond(conn, 204, NULL, "", 0, NULL);
        else
            ret = respond(conn, (unsigned)rq->status, JSON_TYPE, rq->reply, strlen(rq->reply),
                          NULL);
        return ret;
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
    identify(srv, l, conn, rq);
    if (!run_rpc(srv, conn, rq))
        return respond_error(conn, 503, NULL,
                             "busy: %d JSON-RPC calls are in progress, or the daemon is "
                             "stopping; try again",
                             LIMIT_HTTP_RPC_RUNNING);
    return MHD_YES;
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
    struct listener *l = cls;
    struct api_server *srv = l->srv;
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
    if (rq->started) {
        /* Resumed: the call's thread has put its reply here. */
        if (rq->reply == NULL)
            return MHD_YES;
        return respond_xml(conn, (unsigned)rq->status, rq->reply);
    }
    if (*upload_data_size > 0) {
        take_upload(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rq->discarded > MAX_DISCARD_BYTES ? MHD_NO : MHD_YES;
    }
    if (!rq->method_ok)
        return respond_xml(conn, 404, "");
    enum MHD_Result ret;
    char *reply = NULL;
    if (rq->too_big) {
        reply = xmlrpc_internal_error("request body larger than 1 MiB");
        ret = respond_xml(conn, 413, reply);
    } else if (run_rpc(srv, conn, rq)) {
        return MHD_YES; /* answered when the call's thread resumes the connection */
    } else {
        reply = xmlrpc_internal_error("busy: too many calls in progress, or the daemon is "
                                      "stopping; try again");
        ret = respond_xml(conn, 503, reply);
    }
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
        free(rq->reply);
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

/* The directory of the unix socket must not let anyone else replace the socket: owned
 * by root or by us, and not writable by group or others unless sticky (/tmp). 0, or -1
 * with *err. */
static int check_socket_dir(const char *path, char **err)
{
    char *copy = xstrdup(path);
    char *dir = dirname(copy);
    struct stat st;
    int rc = -1;

    if (stat(dir, &st) < 0) {
        *err = xasprintf("socket directory %s: %s", dir, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        *err = xasprintf("socket directory %s is not a directory", dir);
        goto out;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        *err = xasprintf("socket directory %s is owned by uid %ld, neither root nor this "
                         "daemon's user (uid %ld): its owner could replace the socket",
                         dir, (long)st.st_uid, (long)geteuid());
        goto out;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
        *err = xasprintf("socket directory %s is writable by %s without the sticky bit "
                         "(mode %04o): anyone there could replace the socket",
                         dir, (st.st_mode & S_IWOTH) ? "everyone" : "its group",
                         (unsigned)(st.st_mode & 07777));
        goto out;
    }
    rc = 0;
out:
    free(copy);
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
    if (check_socket_dir(path, err) < 0)
        goto out;
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

/* libmicrohttpd on a few threads polling with epoll: a connection costs a descriptor,
 * not a thread, so many idle or slow ones (slowloris) do not lock a new client out.
 * Limits: LIMIT_HTTP_CONNECTIONS open connections, LIMIT_HTTP_CONNECTIONS_PER_IP per
 * client address on TCP, a connection silent for LIMIT_HTTP_IDLE_S is closed. JSON-RPC
 * and XML-RPC calls run on threads of their own (run_rpc). Takes fd (closed on failure
 * too). */
static struct MHD_Daemon *start_daemon_with(struct listener *l, int fd,
                                            MHD_AccessHandlerCallback handler)
{
    struct MHD_Daemon *d;
    unsigned per_ip = l->is_unix ? 0 : LIMIT_HTTP_CONNECTIONS_PER_IP;

    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                             MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, handler, l, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
                         NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE,
                         POOL_THREADS, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)LIMIT_HTTP_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                         per_ip, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)LIMIT_HTTP_IDLE_S,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL, MHD_OPTION_END);
    if (d == NULL)
        close(fd);
    return d;
}

static struct MHD_Daemon *start_daemon(struct listener *l, int fd)
{
    return start_daemon_with(l, fd, on_request);
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

/* Enough descriptors for both listeners' connection limits. */
static void raise_nofile(void)
{
    struct rlimit rl;
    rlim_t want = 2 * (rlim_t)LIMIT_HTTP_CONNECTIONS + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_warnx("cannot raise the open file limit to %lu: %s", (unsigned long)want,
                  strerror(errno));
    if (rl.rlim_cur < want)
        log_info("open file limit %lu: fewer than %lu HTTP connections can be held",
                 (unsigned long)rl.rlim_cur, (unsigned long)want);
}

/* ---- the token ---------------------------------------------------------------------- */

int api_load_token(const char *path, char **token, char **err)
{
    char buf[TOKEN_MAX_BYTES + 2];
    struct stat st;
    size_t len = 0;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

    *token = NULL;
    if (fd < 0) {
        *err = xasprintf("token file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        *err = xasprintf("token file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = xasprintf("token file %s is not a regular file", path);
        goto out;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        *err = xasprintf("token file %s is owned by uid %ld, neither root nor this daemon's "
                         "user (uid %ld)",
                         path, (long)st.st_uid, (long)geteuid());
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        *err = xasprintf("token file %s has mode %04o: it must not be readable or writable "
                         "by group or others (chmod 600)",
                         path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    for (;;) {
        ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            *err = xasprintf("token file %s: %s", path, strerror(errno));
            goto out;
        }
        if (k == 0)
            break;
        len += (size_t)k;
        if (len == sizeof(buf) - 1)
            break;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    buf[len] = '\0';
    if (len < TOKEN_MIN_BYTES || len > TOKEN_MAX_BYTES) {
        *err = xasprintf("token file %s: the token must be %d to %d characters (one line)",
                         path, TOKEN_MIN_BYTES, TOKEN_MAX_BYTES);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (buf[i] <= ' ' || buf[i] == 0x7f) {
            *err = xasprintf("token file %s: the token must be printable characters without "
                             "spaces",
                             path);
            goto out;
        }
    }
    *token = xstrdup(buf);
    rc = 0;
out:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

/* ---- the socket's watcher --------------------------------------------------------------- */

/* Every SOCKET_CHECK_MS, check that the socket path still names the socket we made. If
 * it is removed or replaced (someone else's socket there, serving fake replies), say so
 * at once and on /healthz (503); we keep serving on our socket (clients already
 * connected, and any that reach it) and do not touch the new file. */
static void *socket_watcher(void *arg)
{
    struct api_server *srv = arg;
    pthread_mutex_lock(&srv->lock);
    while (!srv->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += SOCKET_CHECK_MS / 1000;
        pthread_cond_timedwait(&srv->cond, &srv->lock, &ts);
        if (srv->stopping)
            break;
        struct stat st;
        bool present = lstat(srv->socket_path, &st) == 0;
        bool ours = present && st.st_dev == srv->socket_dev && st.st_ino == srv->socket_ino;
        if (!ours && !srv->socket_replaced)
            log_warnx("the unix socket %s was %s: clients using that path no longer reach "
                      "this daemon (restart it to make a new socket)",
                      srv->socket_path, present ? "replaced by another file" : "removed");
        else if (ours && srv->socket_replaced)
            log_info("the unix socket %s is ours again", srv->socket_path);
        srv->socket_replaced = !ours;
    }
    pthread_mutex_unlock(&srv->lock);
    return NULL;
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
    srv->tcp_l.srv = srv;
    srv->unix_l.srv = srv;
    srv->unix_l.is_unix = true;
    srv->xml_l.srv = srv;
    srv->xml_l.is_unix = true;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    if (cfg != NULL && cfg->token_file != NULL) {
        if (api_load_token(cfg->token_file, &srv->token, &msg) < 0)
            goto fail;
        srv->token_len = strlen(srv->token);
    }
    raise_nofile();
    if (cfg == NULL || (cfg->listen_host == NULL && cfg->socket_path == NULL &&
                        cfg->xml_socket_path == NULL && cfg->switch_path == NULL)) {
        msg = xasprintf("nothing to listen on: neither a TCP address nor a unix socket");
        goto fail;
    }
    if (cfg->listen_host != NULL) {
        if (listen_tcp(cfg->listen_host, cfg->listen_port, &fd, &srv->tcp_port, &msg) < 0)
            goto fail;
        srv->tcp_daemon = start_daemon(&srv->tcp_l, fd);
        if (srv->tcp_daemon == NULL) {
            msg = xasprintf("cannot start the HTTP server on %s", cfg->listen_host);
            goto fail;
        }
    }
    if (cfg->socket_path != NULL) {
        if (listen_unix(cfg->socket_path, &fd, &srv->socket_dev, &srv->socket_ino, &msg) < 0)
            goto fail;
        srv->socket_path = xstrdup(cfg->socket_path);
        srv->unix_daemon = start_daemon(&srv->unix_l, fd);
        if (srv->unix_daemon == NULL) {
            msg = xasprintf("cannot start the HTTP server on %s", cfg->socket_path);
            goto fail;
        }
        if (pthread_create(&srv->watcher, NULL, socket_watcher, srv) != 0) {
            msg = xasprintf("cannot start the socket's watcher");
            goto fail;
        }
        srv->watcher_started = true;
    }
    if (cfg->xml_socket_path != NULL) {
        make_parent_dirs(cfg->xml_socket_path);
        if (listen_unix(cfg->xml_socket_path, &fd, &srv->xml_socket_dev, &srv->xml_socket_ino,
                        &msg) < 0)
            goto fail;
        srv->xml_socket_path = xstrdup(cfg->xml_socket_path);
        srv->xml_daemon = start_daemon_with(&srv->xml_l, fd, on_xml_request);
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
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_cond_broadcast(&srv->cond);
    /* Calls on their own threads finish first (the service answers "shutting down" once
     * stopped): libmicrohttpd must not be stopped with suspended connections. */
    while (srv->rpc_running > 0)
        pthread_cond_wait(&srv->cond, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    if (srv->watcher_started)
        pthread_join(srv->watcher, NULL);
    switch_stop(srv->sw);
    if (srv->xml_daemon != NULL)
        MHD_stop_daemon(srv->xml_daemon);
    if (srv->xml_socket_path != NULL && lstat(srv->xml_socket_path, &st) == 0 &&
        st.st_dev == srv->xml_socket_dev && st.st_ino == srv->xml_socket_ino)
        unlink(srv->xml_socket_path);
    free(srv->xml_socket_path);
    /* Waits for requests in progress. */
    if (srv->tcp_daemon != NULL)
        MHD_stop_daemon(srv->tcp_daemon);
    if (srv->unix_daemon != NULL)
        MHD_stop_daemon(srv->unix_daemon);
    /* The /metrics body kept for the next scrape holds a picture: let it go. */
    pthread_mutex_lock(&metrics_mu);
    metrics_body_unref(metrics_cur);
    metrics_cur = NULL;
    pthread_mutex_unlock(&metrics_mu);
    /* Remove our socket file, not one another daemon has put there since. */
    if (srv->socket_path != NULL && lstat(srv->socket_path, &st) == 0 &&
        st.st_dev == srv->socket_dev && st.st_ino == srv->socket_ino)
        unlink(srv->socket_path);
    free(srv->socket_path);
    free(srv->openapi_path);
    if (srv->token != NULL)
        explicit_bzero(srv->token, srv->token_len);
    free(srv->token);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

uint16_t api_tcp_port(const struct api_server *srv)
{
    return srv != NULL ? srv->tcp_port : 0;
}
