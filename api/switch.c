/* SPDX-License-Identifier: LGPL-2.1-only */
/* The message-switch queue server: long-poll, dispatch, reply, acknowledge (switch.h). */
#include "api/switch.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/xalloc.h"

#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 5000
#define IO_SLACK_S 15 /* beyond the long poll's own timeout */

/* One kept-alive HTTP connection to the switch. */
struct conn {
    int fd;
    char *buf; /* bytes read and not consumed yet */
    size_t len, cap;
};

struct switch_server {
    struct service *svc;
    char *path;
    char *queue;
    char *token; /* our session name: "squeezed:PID", as Protocol_unix's whoami */
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards the fds (for shutdown) and the stop wait */
    pthread_cond_t cv;
    int fds[2];
    bool quiet; /* the service is stopping: wait for switch_stop without reconnecting */
};

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t fnv1a64(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

char *switch_reply_key(const char *queue, long long id)
{
    return xasprintf("%lld-%016" PRIx64, id, fnv1a64(queue, strlen(queue)));
}

char *switch_pct_encode(const char *segment)
{
    static const char keep[] = "-._~!$&'()*+,;=:@";
    size_t n = strlen(segment);
    char *out = xmalloc(3 * n + 1);
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)segment; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            (*p != '\0' && strchr(keep, *p) != NULL)) {
            *o++ = (char)*p;
        } else {
            o += sprintf(o, "%%%02X", *p);
        }
    }
    *o = '\0';
    return out;
}

static bool stopping(struct switch_server *sw)
{
    return atomic_load(&sw->stop);
}

/* Sleep ms unless stop is asked. */
static void pause_ms(struct switch_server *sw, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sw->mu);
    while (!stopping(sw)) {
        if (pthread_cond_timedwait(&sw->cv, &sw->mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&sw->mu);
}

/* ---- one connection ---------------------------------------------------------------- */

static int conn_open(struct switch_server *sw, struct conn *c, int slot)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    if (strlen(sw->path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, sw->path, strlen(sw->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    /* A switch that stops answering is taken for gone. */
    struct timeval rcv = {.tv_sec = SWITCH_TRANSFER_TIMEOUT_S + IO_SLACK_S};
    struct timeval snd = {.tv_sec = IO_SLACK_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
    pthread_mutex_lock(&sw->mu);
    sw->fds[slot] = fd;
    if (stopping(sw))
        shutdown(fd, SHUT_RDWR);
    pthread_mutex_unlock(&sw->mu);
    c->fd = fd;
    return 0;
}

static void conn_close(struct switch_server *sw, struct conn *c, int slot)
{
    pthread_mutex_lock(&sw->mu);
    sw->fds[slot] = -1;
    pthread_mutex_unlock(&sw->mu);
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read more bytes into c->buf; 0, or -1 on EOF / error / timeout. */
static int fill(struct conn *c)
{
    if (c->cap - c->len < 4096) {
        c->cap = c->cap == 0 ? 8192 : c->cap * 2;
        c->buf = xreallocarray(c->buf, c->cap + 1, 1);
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = ECONNRESET;
            return -1;
        }
        c->len += (size_t)r;
        c->buf[c->len] = '\0';
        return 0;
    }
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    if (c->buf != NULL)
        c->buf[c->len] = '\0';
}

/* Find "\r\n" from off; returns its index or -1. */
static long find_crlf(const struct conn *c, size_t off)
{
    for (size_t i = off; i + 1 < c->len; i++)
        if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
            return (long)i;
    return -1;
}

/* Read one HTTP response: status and body (new string). 0, or -1 (errno set). */
static int read_response(struct conn *c, int *status, char **body, size_t *body_len)
{
    size_t head_end = 0;
    for (;;) {
        char *e = c->buf != NULL ? strstr(c->buf, "\r\n\r\n") : NULL;
        if (e != NULL) {
            head_end = (size_t)(e - c->buf) + 4;
            break;
        }
        if (c->len > LIMIT_SWITCH_HEADER_MAX_BYTES) {
            errno = EPROTO;
            return -1;
        }
        if (fill(c) < 0)
            return -1;
    }
    int major, minor;
    if (sscanf(c->buf, "HTTP/%d.%d %d", &major, &minor, status) != 3) {
        errno = EPROTO;
        return -1;
    }
    long long content_length = -1;
    bool chunked = false;
    for (char *line = strstr(c->buf, "\r\n") + 2; line < c->buf + head_end - 2;) {
        char *end = strstr(line, "\r\n");
        if (strncasecmp(line, "content-length:", 15) == 0)
            content_length = strtoll(line + 15, NULL, 10);
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0 &&
                 strstr(line, "chunked") != NULL && strstr(line, "chunked") < end)
            chunked = true;
        line = end + 2;
    }
    consume(c, head_end);

    char *out = NULL;
    size_t out_len = 0;
    if (!chunked) {
        if (content_length < 0 || content_length > LIMIT_SWITCH_RESPONSE_MAX_BYTES) {
            errno = EPROTO;
            return -1;
        }
        while (c->len < (size_t)content_length)
            if (fill(c) < 0)
                return -1;
        out = xmalloc((size_t)content_length + 1);
        memcpy(out, c->buf, (size_t)content_length);
        out_len = (size_t)content_length;
        consume(c, (size_t)content_length);
    } else {
        out = xmalloc(1);
        for (;;) {
            long eol;
            while ((eol = find_crlf(c, 0)) < 0)
                if (fill(c) < 0)
                    goto fail;
            unsigned long long size = strtoull(c->buf, NULL, 16);
            if (size > LIMIT_SWITCH_RESPONSE_MAX_BYTES ||
                out_len + size > LIMIT_SWITCH_RESPONSE_MAX_BYTES) {
                errno = EPROTO;
                goto fail;
            }
            consume(c, (size_t)eol + 2);
            while (c->len < size + 2)
                if (fill(c) < 0)
                    goto fail;
            out = xreallocarray(out, out_len + size + 1, 1);
            memcpy(out + out_len, c->buf, size);
            out_len += size;
            consume(c, size + 2);
            if (size == 0)
                break;
        }
    }
    out[out_len] = '\0';
    *body = out;
    *body_len = out_len;
    return 0;
fail:
    free(out);
    return -1;
}

/* One frame: a request as cohttp writes it, the answer. Returns 0 with *body (new, may
 * be NULL if body is NULL) when the switch said 200; -1 otherwise (logged at debug). */
static int frame(struct conn *c, const char *meth, const char *path, const char *payload,
                 char **body)
{
    size_t plen = payload != NULL ? strlen(payload) : 0;
    char *req = xasprintf("%s %s HTTP/1.1\r\nhost: localhost\r\nuser-agent: cohttp\r\n"
                          "content-length: %zu\r\nconnection: keep-alive\r\n\r\n",
                          meth, path, plen);
    int rc = write_all(c->fd, req, strlen(req));
    free(req);
    if (rc == 0 && plen > 0)
        rc = write_all(c->fd, payload, plen);
    if (rc < 0) {
        log_debug("message-switch: %s %s: %s", meth, path, strerror(errno));
        return -1;
    }
    int status = 0;
    char *b = NULL;
    size_t blen = 0;
    if (read_response(c, &status, &b, &blen) < 0) {
        log_debug("message-switch: %s %s: no answer: %s", meth, path, strerror(errno));
        return -1;
    }
    if (status != 200) {
        log_warnx("message-switch: %s %s: HTTP %d: %.200s", meth, path, status, b);
        free(b);
        errno = EPROTO;
        return -1;
    }
    if (body != NULL)
        *body = b;
    else
        free(b);
    return 0;
}

static int frame_get(struct conn *c, const char *what, const char *a, const char *b,
                     char **body)
{
    char *ea = switch_pct_encode(a);
    char *path =
        b != NULL ? xasprintf("/%s/%s/%s", what, ea, b) : xasprintf("/%s/%s", what, ea);
    int rc = frame(c, "GET", path, NULL, body);
    free(path);
    free(ea);
    return rc;
}

/* ---- the stored replies --------------------------------------------------------------- */

static bool changes_state(const char *method)
{
    static const char *const names[] = {"login", "reserve_memory", "reserve_memory_range",
                                        "delete_reservation", "transfer_reservation_to_domain"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (method != NULL && strcmp(method, names[i]) == 0)
            return true;
    return false;
}

static char *stored_value(const char *sum, const char *state, const char *reply)
{
    json_t *v = json_pack("{s:s, s:s, s:s}", "sum", sum, "state", state, "reply",
                          reply != NULL ? reply : "");
    if (v == NULL)
        abort();
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (text == NULL)
        abort();
    return text;
}

static void store(struct switch_server *sw, const char *key, const char *value)
{
    struct service_error err = {0};
    if (service_rpc_reply_put(sw->svc, key, value, &err) < 0)
        log_warnx("message-switch: cannot store the reply of %s: %s", key,
                  err.text != NULL ? err.text : "?");
    service_error_clear(&err);
}

/* A JSON-RPC v1 error reply with the request's id. */
static char *error_reply(const char *payload, const char *text)
{
    json_t *req = json_loads(payload, 0, NULL);
    json_t *id = req != NULL ? json_object_get(req, "id") : NULL;
    json_t *r = json_pack("{s:n, s:[ss], s:O}", "result", "error", "Internal_error", text, "id",
                          id != NULL ? id : json_null());
    char *out = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    json_decref(req);
    if (out == NULL)
        abort();
    return out;
}

/* The reply to one request: from the store, or by running it (stored around that). */
static char *answer(struct switch_server *sw, const char *key, const char *payload,
                    bool *stored)
{
    char sum[17];
    snprintf(sum, sizeof(sum), "%016" PRIx64, fnv1a64(payload, strlen(payload)));
    *stored = false;

    json_t *req = json_loads(payload, 0, NULL);
    const char *method = req != NULL ? json_string_value(json_object_get(req, "method")) : NULL;
    bool keep = changes_state(method);
    char *method_copy = xstrdup(method != NULL ? method : "?");
    json_decref(req);

    if (keep) {
        struct service_error err = {0};
        char *old = NULL;
        if (service_rpc_reply_get(sw->svc, key, &old, &err) < 0) {
            log_warnx("message-switch: cannot read the stored reply of %s: %s", key,
                      err.text != NULL ? err.text : "?");
            service_error_clear(&err);
            free(method_copy);
            /* Without the store we cannot tell a redelivery: do not run it. */
            return error_reply(payload, "cannot read the daemon's stored replies");
        }
        json_t *o = old != NULL ? json_loads(old, 0, NULL) : NULL;
        free(old);
        const char *osum = json_string_value(json_object_get(o, "sum"));
        const char *ostate = json_string_value(json_object_get(o, "state"));
        if (osum != NULL && strcmp(osum, sum) == 0 && ostate != NULL) {
            char *r;
            *stored = true;
            if (strcmp(ostate, "done") == 0) {
                log_info("message-switch: message %s (%s) delivered again: answered with "
                         "the reply stored before, not run again",
                         key, method_copy);
                r = xstrdup(json_string_value(json_object_get(o, "reply")));
            } else {
                log_warnx("message-switch: message %s (%s) delivered again after the "
                          "daemon stopped while running it: not run again",
                          key, method_copy);
                r = error_reply(payload, "the daemon restarted while running this request; "
                                         "it was not run again (it may or may not have "
                                         "taken effect)");
                char *v = stored_value(sum, "done", r);
                store(sw, key, v);
                free(v);
            }
            json_decref(o);
            free(method_copy);
            return r;
        }
        json_decref(o);
        char *v = stored_value(sum, "running", NULL);
        store(sw, key, v);
        free(v);
    }
    int status = 0;
    char *reply = api_handle_rpc(sw->svc, payload, strlen(payload), &status);
    if (keep) {
        char *v = stored_value(sum, "done", reply);
        store(sw, key, v);
        free(v);
        *stored = true;
    }
    free(method_copy);
    return reply;
}

/* ---- the loop --------------------------------------------------------------------------- */

struct message {
    long long id;
    const char *queue;
    const char *payload;
    const char *reply_to; /* NULL: a Response where a Request should be */
};

static int cmp_message(const void *a, const void *b)
{
    const struct message *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool is_shutting_down(const char *reply)
{
    json_t *r = json_loads(reply, 0, NULL);
    json_t *e = json_object_get(r, "error");
    const char *text = json_string_value(json_array_get(e, 1));
    bool yes = text != NULL && strcmp(text, "shutting down") == 0;
    json_decref(r);
    return yes;
}

/* Handle one message: answer on its reply queue, then ack. -1 if the connection broke,
 * -2 if the daemon is stopping (nothing sent). */
static int handle(struct switch_server *sw, struct conn *rep, const struct message *m)
{
    char idtext[24];
    snprintf(idtext, sizeof(idtext), "%lld", m->id);
    char *key = switch_reply_key(m->queue, m->id);
    bool stored = false;
    int rc = 0;

    if (m->reply_to != NULL) {
        char *reply = answer(sw, key, m->payload, &stored);
        if (is_shutting_down(reply)) {
            /* The daemon is stopping: leave the message on the queue for the next one
             * rather than answer it with an error. */
            log_info("message-switch: message %s left on the queue (stopping)", key);
            free(reply);
            free(key);
            return -2;
        }
        char *eq = switch_pct_encode(m->reply_to);
        char *eq2 = switch_pct_encode(m->queue);
        char *path = xasprintf("/response/%s/%s/%s", eq, eq2, idtext);
        rc = frame(rep, "POST", path, reply, NULL);
        free(path);
        free(eq);
        free(eq2);
        free(reply);
    }
    if (rc == 0)
        rc = frame_get(rep, "ack", m->queue, idtext, NULL);
    if (rc == 0 && stored)
        store(sw, key, NULL);
    free(key);
    return rc;
}

/* One session with the switch: until the connection breaks or stop. */
static void serve(struct switch_server *sw, struct conn *req, struct conn *rep)
{
    char *from = NULL; /* every unacknowledged message first, after each (re)connect */
    while (!stopping(sw)) {
        json_t *t = from != NULL
                        ? json_pack("{s:s, s:f, s:[s]}", "from", from, "timeout",
                                    (double)SWITCH_TRANSFER_TIMEOUT_S, "queues", sw->queue)
                        : json_pack("{s:f, s:[s]}", "timeout",
                                    (double)SWITCH_TRANSFER_TIMEOUT_S, "queues", sw->queue);
        char *tb = json_dumps(t, JSON_COMPACT | JSON_REAL_PRECISION(17));
        json_decref(t);
        char *body = NULL;
        int rc = frame(req, "POST", "/transfer", tb, &body);
        free(tb);
        if (rc < 0)
            break;
        json_t *o = json_loads(body, 0, NULL);
        free(body);
        json_t *msgs = json_object_get(o, "messages");
        const char *next = json_string_value(json_object_get(o, "next"));
        if (!json_is_array(msgs) || next == NULL) {
            log_warnx("message-switch: a transfer answer without messages/next; reconnecting");
            json_decref(o);
            break;
        }
        size_t n = json_array_size(msgs), k = 0;
        struct message *list = xcalloc(n + 1, sizeof(*list));
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(msgs, i);
            json_t *mid = json_array_get(e, 0), *msg = json_array_get(e, 1);
            json_t *kind = json_object_get(msg, "kind");
            const char *q = json_string_value(json_array_get(mid, 0));
            json_t *num = json_array_get(mid, 1);
            const char *payload = json_string_value(json_object_get(msg, "payload"));
            if (q == NULL || !json_is_integer(num) || payload == NULL || !json_is_array(kind)) {
                log_warnx("message-switch: a message of unexpected shape skipped");
                continue;
            }
            const char *kname = json_string_value(json_array_get(kind, 0));
            list[k] = (struct message){
                .id = (long long)json_integer_value(num),
                .queue = q,
                .payload = payload,
                .reply_to = kname != NULL && strcmp(kname, "Request") == 0
                                ? json_string_value(json_array_get(kind, 1))
                                : NULL,
            };
            k++;
        }
        qsort(list, k, sizeof(*list), cmp_message);
        bool broke = false;
        for (size_t i = 0; i < k && !broke; i++) {
            int hrc = handle(sw, rep, &list[i]);
            broke = hrc < 0;
            if (hrc == -2)
                sw->quiet = true;
        }
        free(list);
        if (!broke) {
            free(from);
            from = xstrdup(next);
        }
        json_decref(o);
        if (broke)
            break;
    }
    free(from);
}

static int session_open(struct switch_server *sw, struct conn *req, struct conn *rep)
{
    /* As Protocol_unix.Server.listen: login on the request connection, on the reply
     * connection, on the request connection again; then declare the queue. */
    if (conn_open(sw, req, 0) < 0)
        return -1;
    if (frame_get(req, "login", sw->token, NULL, NULL) < 0)
        return -1;
    if (conn_open(sw, rep, 1) < 0)
        return -1;
    if (frame_get(rep, "login", sw->token, NULL, NULL) < 0 ||
        frame_get(req, "login", sw->token, NULL, NULL) < 0 ||
        frame_get(req, "persistent", sw->queue, NULL, NULL) < 0)
        return -1;
    return 0;
}

static void *switch_main(void *arg)
{
    struct switch_server *sw = arg;
    int backoff_ms = BACKOFF_FIRST_MS;
    bool failing = false; /* a failure was logged; say so once when it ends */

    while (!stopping(sw)) {
        struct conn req, rep;
        memset(&req, 0, sizeof(req));
        memset(&rep, 0, sizeof(rep));
        req.fd = rep.fd = -1;
        if (session_open(sw, &req, &rep) < 0) {
            int e = errno;
            conn_close(sw, &req, 0);
            conn_close(sw, &rep, 1);
            if (stopping(sw))
                break;
            if (!failing)
                log_warnx("message-switch at %s: cannot connect (%s); retrying every %d s "
                          "without logging again",
                          sw->path, strerror(e), BACKOFF_MAX_MS / 1000);
            failing = true;
            pause_ms(sw, backoff_ms);
            backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
            continue;
        }
        log_info("message-switch at %s: serving queue %s as %s%s", sw->path, sw->queue,
                 sw->token, failing ? " (connected again)" : "");
        failing = false;
        backoff_ms = BACKOFF_FIRST_MS;
        serve(sw, &req, &rep);
        conn_close(sw, &req, 0);
        conn_close(sw, &rep, 1);
        while (sw->quiet && !stopping(sw))
            pause_ms(sw, BACKOFF_MAX_MS);
        if (!stopping(sw)) {
            log_warnx("message-switch at %s: connection lost; reconnecting", sw->path);
            failing = true;
            pause_ms(sw, backoff_ms);
        }
    }
    return NULL;
}

struct switch_server *switch_start(struct service *svc, const struct switch_config *cfg,
                                   char **err)
{
    struct switch_server *sw = xcalloc(1, sizeof(*sw));
    sw->svc = svc;
    sw->path = xstrdup(cfg->path);
    sw->queue = xstrdup(cfg->queue != NULL ? cfg->queue : SWITCH_QUEUE);
    sw->token = xasprintf("squeezed:%d", (int)getpid());
    sw->fds[0] = sw->fds[1] = -1;
    atomic_init(&sw->stop, false);
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cv, NULL);
    int rc = pthread_create(&sw->thread, NULL, switch_main, sw);
    if (rc != 0) {
        *err = xasprintf("cannot start the message-switch thread: %s", strerror(rc));
        pthread_mutex_destroy(&sw->mu);
        pthread_cond_destroy(&sw->cv);
        free(sw->path);
        free(sw->queue);
        free(sw->token);
        free(sw);
        return NULL;
    }
    return sw;
}

void switch_stop(struct switch_server *sw)
{
    if (sw == NULL)
        return;
    pthread_mutex_lock(&sw->mu);
    atomic_store(&sw->stop, true);
    for (int i = 0; i < 2; i++)
        if (sw->fds[i] >= 0)
            shutdown(sw->fds[i], SHUT_RDWR);
    pthread_cond_broadcast(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
    pthread_join(sw->thread, NULL);
    pthread_mutex_destroy(&sw->mu);
    pthread_cond_destroy(&sw->cv);
    free(sw->path);
    free(sw->queue);
    free(sw->token);
    free(sw);
}
