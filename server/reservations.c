/* SPDX-License-Identifier: LGPL-2.1-only */
/* Sessions and memory reservations (SPEC 4), kept in xenstore so a restart finds them. */
#include "server/reservations.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/limits.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xalloc.h"

#define STATE_ROOT "/squeezed/state"

struct reservations {
    struct backend *b;   /* borrowed */
    struct domcache *dc; /* borrowed */
    struct reservation *list;
    size_t n, cap;
    char **sessions;
    size_t n_sessions, cap_sessions;
    struct domcache_reservation *acct; /* what the squeeze subtracts, parallel to list */
    size_t cap_acct;
};

struct reservations *reservations_new(struct backend *b, struct domcache *dc)
{
    struct reservations *r = xcalloc(1, sizeof(*r));
    r->b = b;
    r->dc = dc;
    return r;
}

static void reservation_clear(struct reservation *x)
{
    free(x->id);
    free(x->session);
    x->id = NULL;
    x->session = NULL;
}

void reservations_free(struct reservations *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        reservation_clear(&r->list[i]);
    free(r->list);
    for (size_t i = 0; i < r->n_sessions; i++)
        free(r->sessions[i]);
    free(r->sessions);
    free(r->acct);
    free(r);
}

size_t reservations_count(const struct reservations *r)
{
    return r->n;
}

const struct reservation *reservations_at(const struct reservations *r, size_t i)
{
    return i < r->n ? &r->list[i] : NULL;
}

const struct domcache_reservation *reservations_accounting(void *ctx, size_t *n)
{
    struct reservations *r = ctx;
    if (r->n > r->cap_acct) {
        r->cap_acct = r->n;
        r->acct = xreallocarray(r->acct, r->cap_acct, sizeof(*r->acct));
    }
    for (size_t i = 0; i < r->n; i++) {
        r->acct[i].kib = r->list[i].kib;
        r->acct[i].domid = r->list[i].domid;
    }
    *n = r->n;
    return r->acct;
}

char *reservations_new_uuid(void)
{
    uint8_t u[16];
    size_t got = 0;
    while (got < sizeof(u)) {
        ssize_t k = getrandom(u + got, sizeof(u) - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            fatal("getrandom");
        }
        got += (size_t)k;
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    return xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                     "%02x%02x%02x%02x%02x%02x",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
                     u[12], u[13], u[14], u[15]);
}

/* ---- errors ------------------------------------------------------------------------- */

static int fail_text(struct service_error *err, enum service_error_kind kind, char *text)
{
    err->kind = kind;
    err->text = text;
    return -1;
}

static int fail_internal(struct service_error *err, char *text)
{
    return fail_text(err, SERVICE_ERR_INTERNAL, text);
}

/* ---- sessions ----------------------------------------------------------------------- */

static bool session_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LIMIT_SERVICE_NAME_MAX_BYTES)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789-_@") == n;
}

bool reservations_has_session(const struct reservations *r, const char *session)
{
    for (size_t i = 0; i < r->n_sessions; i++)
        if (strcmp(r->sessions[i], session) == 0)
            return true;
    return false;
}

static void add_session(struct reservations *r, const char *session)
{
    if (reservations_has_session(r, session))
        return;
    if (r->n_sessions == r->cap_sessions) {
        r->cap_sessions = r->cap_sessions ? 2 * r->cap_sessions : 4;
        r->sessions = xreallocarray(r->sessions, r->cap_sessions, sizeof(*r->sessions));
    }
    r->sessions[r->n_sessions++] = xstrdup(session);
}

static int check_session(const struct reservations *r, const char *session,
                         struct service_error *err)
{
    if (session == NULL || !reservations_has_session(r, session))
        return fail_internal(err, xasprintf("unknown session '%s': call login first",
                                            session != NULL ? session : ""));
    return 0;
}

/* ---- the list ----------------------------------------------------------------------- */

static void add_entry(struct reservations *r, char *id, const char *session, int64_t kib,
                      int32_t domid)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 8;
        r->list = xreallocarray(r->list, r->cap, sizeof(*r->list));
    }
    struct reservation *x = &r->list[r->n++];
    x->id = id;
    x->session = xstrdup(session);
    x->kib = kib;
    x->domid = domid;
}

static void remove_at(struct reservations *r, size_t i)
{
    reservation_clear(&r->list[i]);
    memmove(&r->list[i], &r->list[i + 1], (r->n - i - 1) * sizeof(*r->list));
    r->n--;
}

static struct reservation *find(struct reservations *r, const char *session, const char *id,
                                size_t *index)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->list[i].id, id) == 0 && strcmp(r->list[i].session, session) == 0) {
            if (index != NULL)
                *index = i;
            return &r->list[i];
        }
    }
    return NULL;
}

/* ---- loading ------------------------------------------------------------------------ */

static void load_one(struct reservations *r, const char *session, const char *id)
{
    char *path = xasprintf(STATE_ROOT "/%s/%s", session, id);
    char *value = NULL, *domid_text = NULL;
    char *tpath = xasprintf("%s/in-transfer", path);
    int64_t kib, domid = -1;
    int rc = r->b->ops->xs_read(r->b, path, &value);
    if (rc < 0 || parse_int64(value, 0, LIMIT_KIB_MAX, &kib) < 0) {
        log_warnx("reservation %s of session %s: ignoring bad entry %s ('%s')", id, session,
                  path, value != NULL ? value : "");
        goto out;
    }
    rc = r->b->ops->xs_read(r->b, tpath, &domid_text);
    if (rc == 0 && parse_int64(domid_text, 0, LIMIT_DOMID_MAX, &domid) < 0) {
        log_warnx("reservation %s: ignoring bad in-transfer '%s'", id, domid_text);
        domid = -1;
    }
    add_entry(r, xstrdup(id), session, kib, (int32_t)domid);
    if (domid >= 0)
        log_info("reservation %s of session %s: %" PRId64 " KiB, transferred to domid %" PRId64
                 " (found in xenstore)",
                 id, session, kib, domid);
    else
        log_info("reservation %s of session %s: %" PRId64 " KiB (found in xenstore)", id,
                 session, kib);
out:
    free(value);
    free(domid_text);
    free(tpath);
    free(path);
}

int reservations_load(struct reservations *r)
{
    char **sessions = NULL;
    size_t n_sessions = 0;
    int rc = r->b->ops->xs_directory(r->b, STATE_ROOT, &sessions, &n_sessions);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n_sessions; i++) {
        if (!session_name_ok(sessions[i])) {
            log_warnx("ignoring %s/%s: not a session name", STATE_ROOT, sessions[i]);
            continue;
        }
        add_session(r, sessions[i]);
        char *dir = xasprintf(STATE_ROOT "/%s", sessions[i]);
        char **ids = NULL;
        size_t n_ids = 0;
        if (r->b->ops->xs_directory(r->b, dir, &ids, &n_ids) == 0) {
            for (size_t k = 0; k < n_ids; k++)
                load_one(r, sessions[i], ids[k]);
        }
        backend_strv_free(ids, n_ids);
        free(dir);
    }
    backend_strv_free(sessions, n_sessions);
    return 0;
}

/* ---- operations --------------------------------------------------------------------- */

int reservations_login(struct reservations *r, const char *service, struct service_error *err)
{
    if (service == NULL || !session_name_ok(service))
        return fail_text(err, SERVICE_ERR_INVALID_PARAMS,
                         xasprintf("invalid service name '%s': use 1 to %d letters, digits, "
                                   "'-', '_' or '@'",
                                   service != NULL ? service : "",
                                   LIMIT_SERVICE_NAME_MAX_BYTES));
    char *dir = xasprintf(STATE_ROOT "/%s", service);
    int rc = r->b->ops->xs_rm(r->b, dir);
    if (rc == 0)
        rc = r->b->ops->xs_write(r->b, NULL, dir, "");
    free(dir);
    if (rc < 0)
        return fail_internal(err, xasprintf("cannot record session '%s' in xenstore: %s",
                                            service, strerror(-rc)));
    size_t purged = 0;
    for (size_t i = r->n; i-- > 0;) {
        if (strcmp(r->list[i].session, service) == 0) {
            log_info("login %s: deleting reservation %s (%" PRId64 " KiB) made before", service,
                     r->list[i].id, r->list[i].kib);
            remove_at(r, i);
            purged++;
        }
    }
    add_session(r, service);
    log_info("login %s: %zu earlier reservation(s) deleted", service, purged);
    return 0;
}

/* Record a reservation: xenstore first, then the list. */
static int record(struct reservations *r, const char *session, int64_t kib, char **id,
                  struct service_error *err)
{
    char *new_id = reservations_new_uuid();
    char *path = xasprintf(STATE_ROOT "/%s/%s", session, new_id);
    char *value = xasprintf("%" PRId64, kib);
    int rc = r->b->ops->xs_write(r->b, NULL, path, value);
    free(path);
    free(value);
    if (rc < 0) {
        free(new_id);
        return fail_internal(
            err, xasprintf("cannot record the reservation in xenstore: %s", strerror(-rc)));
    }
    add_entry(r, new_id, session, kib, -1);
    *id = xstrdup(new_id);
    log_info("session %s: reserved %" PRId64 " KiB as %s", session, kib, new_id);
    return 0;
}

static int verdict_fill(int rc, const struct squeeze_result *res, struct service_error *err)
{
    if (rc < 0)
        return fail_internal(err, xasprintf("cannot read the host: %s", strerror(-rc)));
    if (res->cancelled)
        return fail_internal(err, xstrdup("shutting down"));
    switch (res->verdict) {
    case POLICY_SUCCESS:
        return 0;
    case POLICY_REFUSED:
        err->kind = SERVICE_ERR_REFUSED;
        err->n_domids = res->n_refused;
        err->domids = NULL;
        if (res->n_refused > 0) {
            err->domids = xcalloc(res->n_refused, sizeof(*err->domids));
            memcpy(err->domids, res->refused, res->n_refused * sizeof(*err->domids));
        }
        return -1;
    case POLICY_CANNOT_FREE:
    case POLICY_CONTINUE:
        break;
    }
    err->kind = SERVICE_ERR_CANNOT_FREE;
    err->needed_kib = res->needed_kib;
    err->free_kib = res->free_kib;
    return -1;
}

int reservations_verdict_error(int rc, const struct squeeze_result *res,
                               struct service_error *err)
{
    struct service_error scratch = {0};
    if (err == NULL) {
        int ret = verdict_fill(rc, res, &scratch);
        service_error_clear(&scratch);
        return ret;
    }
    service_error_clear(err);
    return verdict_fill(rc, res, err);
}

int reservations_reserve(struct reservations *r, struct squeezer *sq, const char *session,
                         int64_t kib, char **id, struct reservations_squeeze *sq_out,
                         struct service_error *err)
{
    memset(sq_out, 0, sizeof(*sq_out));
    if (check_session(r, session, err) < 0)
        return -1;
    sq_out->ran = true;
    sq_out->rc = squeeze_free(sq, kib, &sq_out->res);
    if (reservations_verdict_error(sq_out->rc, &sq_out->res, err) < 0)
        return -1;
    return record(r, session, kib, id, err);
}

int reservations_reserve_range(struct reservations *r, struct squeezer *sq, const char *session,
                               int64_t min_kib, int64_t max_kib, char **id,
                               int64_t *reserved_kib, struct reservations_squeeze *sq_out,
                               struct service_error *err)
{
    memset(sq_out, 0, sizeof(*sq_out));
    if (check_session(r, session, err) < 0)
        return -1;
    sq_out->ran = true;
    sq_out->rc = squeeze_free_range(sq, min_kib, max_kib, &sq_out->res);
    if (reservations_verdict_error(sq_out->rc, &sq_out->res, err) < 0)
        return -1;
    int64_t kib = sq_out->res.reserve_kib;
    if (kib < min_kib)
        kib = min_kib;
    if (kib > max_kib)
        kib = max_kib;
    if (record(r, session, kib, id, err) < 0)
        return -1;
    *reserved_kib = kib;
    return 0;
}

int reservations_grant(struct reservations *r, const char *session, int64_t kib, char **id,
                       struct service_error *err)
{
    if (check_session(r, session, err) < 0)
        return -1;
    return record(r, session, kib, id, err);
}

int reservations_delete(struct reservations *r, const char *session, const char *id,
                        struct service_error *err)
{
    if (check_session(r, session, err) < 0)
        return -1;
    size_t i;
    if (id == NULL || find(r, session, id, &i) == NULL)
        return fail_text(err, SERVICE_ERR_UNKNOWN_RESERVATION, xstrdup(id != NULL ? id : ""));
    char *path = xasprintf(STATE_ROOT "/%s/%s", session, id);
    int rc = r->b->ops->xs_rm(r->b, path);
    free(path);
    if (rc < 0)
        return fail_internal(
            err, xasprintf("cannot delete the reservation from xenstore: %s", strerror(-rc)));
    log_info("session %s: deleted reservation %s (%" PRId64 " KiB)", session, id,
             r->list[i].kib);
    remove_at(r, i);
    return 0;
}

static int domain_gone(struct service_error *err, int64_t domid)
{
    return fail_internal(err, xasprintf("domain %" PRId64 " does not exist", domid));
}

int reservations_transfer(struct reservations *r, const char *session, const char *id,
                          int64_t domid, struct service_error *err)
{
    if (check_session(r, session, err) < 0)
        return -1;
    struct reservation *x = id != NULL ? find(r, session, id, NULL) : NULL;
    if (x == NULL)
        return fail_text(err, SERVICE_ERR_UNKNOWN_RESERVATION, xstrdup(id != NULL ? id : ""));
    if (domid < 0 || domid > LIMIT_DOMID_MAX)
        return domain_gone(err, domid);

    uint32_t d = (uint32_t)domid;
    char *kib_text = xasprintf("%" PRId64, x->kib);
    char *path = xasprintf(STATE_ROOT "/%s/%s/in-transfer", session, id);
    char *domid_text = xasprintf("%" PRId64, domid);
    int rc = domcache_write(r->dc, d, "memory/initial-reservation", kib_text);
    if (rc == -ENOENT || rc == -ESRCH) {
        domain_gone(err, domid);
        goto out;
    }
    if (rc == 0)
        rc = domcache_write(r->dc, d, "memory/reservation-id", id);
    if (rc == 0)
        rc = domcache_raise_maxmem(r->dc, d, x->kib);
    if (rc == -ENOENT || rc == -ESRCH) {
        domain_gone(err, domid);
        goto out;
    }
    if (rc < 0) {
        fail_internal(err, xasprintf("domid %" PRId64 ": cannot hand the reservation over: %s",
                                     domid, strerror(-rc)));
        goto out;
    }
    rc = r->b->ops->xs_write(r->b, NULL, path, domid_text);
    if (rc < 0) {
        fail_internal(err,
                      xasprintf("cannot record the transfer in xenstore: %s", strerror(-rc)));
        goto out;
    }
    x->domid = (int32_t)domid;
    log_dom_info(domid, "reservation %s (%" PRId64 " KiB) of session %s transferred", id,
                 x->kib, session);
out:
    free(kib_text);
    free(path);
    free(domid_text);
    return rc < 0 ? -1 : 0;
}

int reservations_query(struct reservations *r, const char *session, int64_t domid, char **id,
                       struct service_error *err)
{
    if (check_session(r, session, err) < 0)
        return -1;
    if (domid < 0 || domid > LIMIT_DOMID_MAX) {
        err->kind = SERVICE_ERR_NO_RESERVATION;
        return -1;
    }
    char *value = NULL;
    int rc = domcache_read(r->dc, (uint32_t)domid, "memory/reservation-id", &value);
    if (rc == -ENOENT || rc == -ESRCH || (rc == 0 && value[0] == '\0')) {
        free(value);
        err->kind = SERVICE_ERR_NO_RESERVATION;
        return -1;
    }
    if (rc < 0)
        return fail_internal(err,
                             xasprintf("domid %" PRId64 ": cannot read its reservation: %s",
                                       domid, strerror(-rc)));
    *id = value;
    return 0;
}
