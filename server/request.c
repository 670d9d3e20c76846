/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one check of each typed request of the service (server/request.h). */
#include "server/request.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/xalloc.h"

/* A name that can be a xenstore path component: non-empty, bounded, no '/', no control
 * characters. */
static bool is_plain_name(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len == 0 || len > LIMIT_NAME_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return false;
    }
    return true;
}

static int check_name(const char *value, const char *param, const char *method,
                      struct service_error *err)
{
    if (is_plain_name(value))
        return 0;
    return service_fail(err, SERVICE_ERR_INVALID_PARAMS,
                        xasprintf("%s of %s must be a non-empty name of at most %d bytes "
                                  "without '/' or control characters",
                                  param, method, LIMIT_NAME_MAX_BYTES));
}

/* Ids are UUIDs: one that could not name a xenstore key was never handed out. */
static int check_id(const char *id, struct service_error *err)
{
    if (is_plain_name(id))
        return 0;
    return service_fail(err, SERVICE_ERR_UNKNOWN_RESERVATION, xstrdup(id != NULL ? id : ""));
}

/* A size in KiB: min_kib (0 or 1) .. LIMIT_KIB_MAX. */
static int check_kib(int64_t kib, int64_t min_kib, const char *param, const char *method,
                     struct service_error *err)
{
    if (kib >= min_kib && kib <= LIMIT_KIB_MAX)
        return 0;
    service_fail(err, SERVICE_ERR_INVALID_MEMORY_VALUE,
                 xasprintf("invalid memory value for %s of %s: %" PRId64 " (KiB, %" PRId64
                           " .. %" PRId64 ")",
                           param, method, kib, min_kib, LIMIT_KIB_MAX));
    if (err != NULL)
        err->value = kib;
    return -1;
}

static int check_domid(int64_t domid, const char *method, struct service_error *err)
{
    if (domid >= 0 && domid <= LIMIT_DOMID_MAX)
        return 0;
    return service_fail(err, SERVICE_ERR_INVALID_PARAMS,
                        xasprintf("domid of %s must be a domain id, 0 .. %d; got %" PRId64,
                                  method, LIMIT_DOMID_MAX, domid));
}

static int check_object(const json_t *v, const char *param, const char *method,
                        struct service_error *err)
{
    if (json_is_object(v))
        return 0;
    return service_fail(err, SERVICE_ERR_INVALID_PARAMS,
                        xasprintf("%s of %s must be an object", param, method));
}

int request_check_login(const struct req_login *r, struct service_error *err)
{
    return check_name(r->service_name, "service_name", "login", err);
}

int request_check_reserve(const struct req_reserve *r, struct service_error *err)
{
    static const char m[] = "reserve_memory";
    if (check_name(r->session, "session_id", m, err) < 0)
        return -1;
    return check_kib(r->kib, 0, "kib", m, err);
}

int request_check_reserve_range(const struct req_reserve_range *r, struct service_error *err)
{
    static const char m[] = "reserve_memory_range";
    if (check_name(r->session, "session_id", m, err) < 0 ||
        check_kib(r->min_kib, 0, "min_kib", m, err) < 0 ||
        check_kib(r->max_kib, 0, "max_kib", m, err) < 0)
        return -1;
    if (r->min_kib > r->max_kib) {
        service_fail(err, SERVICE_ERR_INVALID_MEMORY_VALUE,
                     xasprintf("invalid memory value: min_kib %" PRId64
                               " is above max_kib %" PRId64,
                               r->min_kib, r->max_kib));
        if (err != NULL)
            err->value = r->min_kib;
        return -1;
    }
    return 0;
}

int request_check_delete(const struct req_delete *r, struct service_error *err)
{
    if (check_name(r->session, "session_id", "delete_reservation", err) < 0)
        return -1;
    return check_id(r->reservation_id, err);
}

int request_check_transfer(const struct req_transfer *r, struct service_error *err)
{
    static const char m[] = "transfer_reservation_to_domain";
    if (check_name(r->session, "session_id", m, err) < 0 ||
        check_id(r->reservation_id, err) < 0)
        return -1;
    return check_domid(r->domid, m, err);
}

int request_check_query(const struct req_query *r, struct service_error *err)
{
    static const char m[] = "query_reservation_of_domain";
    if (check_name(r->session, "session_id", m, err) < 0)
        return -1;
    return check_domid(r->domid, m, err);
}

int request_check_sim_advance(const struct req_sim_advance *r, struct service_error *err)
{
    if (isfinite(r->seconds) && r->seconds > 0 && r->seconds <= LIMIT_ADVANCE_MAX_S)
        return 0;
    return service_fail(err, SERVICE_ERR_INVALID_PARAMS,
                        xasprintf("seconds of sim.advance must be above 0 and at most %.0f; "
                                  "got %g",
                                  LIMIT_ADVANCE_MAX_S, r->seconds));
}

int request_check_sim_create(const struct req_sim_create *r, struct service_error *err)
{
    return check_object(r->domain, "domain", "sim.create_domain", err);
}

int request_check_sim_destroy(const struct req_sim_destroy *r, struct service_error *err)
{
    return check_domid(r->domid, "sim.destroy_domain", err);
}

int request_check_sim_range(const struct req_sim_range *r, struct service_error *err)
{
    static const char m[] = "sim.set_dynamic_range";
    if (check_domid(r->domid, m, err) < 0 || check_kib(r->min_kib, 0, "min_kib", m, err) < 0)
        return -1;
    return check_kib(r->max_kib, 0, "max_kib", m, err);
}

int request_check_sim_balloon(const struct req_sim_balloon *r, struct service_error *err)
{
    static const char m[] = "sim.set_balloon";
    if (check_domid(r->domid, m, err) < 0)
        return -1;
    return check_object(r->balloon, "balloon", m, err);
}

int request_check_sim_claim(const struct req_sim_claim *r, struct service_error *err)
{
    static const char m[] = "sim.set_claim";
    if (check_domid(r->domid, m, err) < 0)
        return -1;
    return check_kib(r->kib, 0, "kib", m, err);
}

int request_check_sim_pause(const struct req_sim_pause *r, struct service_error *err)
{
    return check_domid(r->domid, "sim.pause_domain", err);
}

int request_check_rpc_reply(const struct req_rpc_reply *r, struct service_error *err)
{
    size_t len = r->key != NULL ? strlen(r->key) : 0;
    bool ok = len > 0 && len <= LIMIT_RPC_KEY_MAX_BYTES;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)r->key[i];
        ok = isalnum(c) || c == '-' || c == '_';
    }
    if (ok)
        return 0;
    return service_fail(err, SERVICE_ERR_INVALID_PARAMS,
                        xasprintf("bad key %s", r->key != NULL ? r->key : "(null)"));
}
