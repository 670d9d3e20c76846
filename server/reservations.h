/* SPDX-License-Identifier: LGPL-2.1-only */
/* Sessions and memory reservations (SPEC 4), kept in xenstore so a restart finds them. */
#ifndef SQUEEZED_RESERVATIONS_H
#define SQUEEZED_RESERVATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "cache/domcache.h"
#include "server/service_error.h"
#include "server/squeeze.h"

/*
 * Xenstore layout (written through the backend, not the per-domain cache):
 *   /squeezed/state/<session>                    ""   (the session exists: login)
 *   /squeezed/state/<session>/<id>               kib
 *   /squeezed/state/<session>/<id>/in-transfer   domid (once transferred)
 * Per domain, through the cache: memory/initial-reservation, memory/reservation-id.
 *
 * Every change is written to xenstore before the in-memory list changes and before the
 * caller answers, so an answered reservation is never lost. On any error nothing in
 * the list changes. Not thread-safe: the worker thread owns it.
 *
 * Errors are reported as service errors (server/service_error.h), filled into *err, with
 * -1 returned; 0 on success. Request values come checked (server/request.h): sizes are
 * within their bounds here, and are not checked again.
 */

/*
 * The accounting rule. A reservation is in one of two states:
 *  - untransferred (domid -1): counted in full, subtracted from host free memory;
 *  - transferred to exactly one live domain: counted through that domain only. While it
 *    builds, the domain's unused part (memory/initial-reservation, written by the
 *    transfer, minus what it has allocated) is subtracted; once built, nothing beyond
 *    what Xen reports as allocated. Never twice (the reservation and its domain), and
 *    never again after the domain is gone: its memory comes back as Xen's free memory,
 *    not as the reservation's size. Such a reservation is used up: it stays listed (and
 *    deletable) but counts 0 and cannot be transferred again.
 * A transfer therefore goes to one domain, a domain takes one reservation, and a
 * transfer never lowers a domain's maxmem (see reservations_transfer). The snapshot
 * applies the rule (cache/domcache.c, domcache_snapshot).
 */

struct reservations;

struct reservation {
    char *id;      /* random UUID (v4) */
    char *session; /* the service that made it (shared by its reservations; read only) */
    int64_t kib;
    int32_t domid; /* -1 until transferred */
    uint64_t seq;  /* creation order: larger is newer; never reused within one set */
};

/* What the squeeze of a reserve call did, for the daemon's operations log. */
struct reservations_squeeze {
    bool ran;                  /* a squeeze operation ran (the request was valid) */
    int rc;                    /* 0, or the negative errno the squeeze returned */
    struct squeeze_result res; /* valid when ran && rc == 0; free with
                                  squeeze_result_free */
};

/* A new, empty set over b and dc (both borrowed; must outlive it). */
struct reservations *reservations_new(struct backend *b, struct domcache *dc);
/* NULL allowed. Leaves xenstore as it is. */
void reservations_free(struct reservations *r);
/* At most max reservations per session (default LIMIT_RESERVATIONS_PER_SESSION_DEFAULT):
 * a reserve call beyond is refused at once, before any squeeze, with an Internal_error
 * naming the limit. Reservations found at load are all kept, even beyond it. */
void reservations_set_max_per_session(struct reservations *r, size_t max);
/* 0 if session may take one more reservation beyond what it holds and pending more on
 * their way (a coalesced batch's calls not granted yet); else -1 with *err (an
 * Internal_error naming the limit). */
int reservations_check_room(const struct reservations *r, const char *session, size_t pending,
                            struct service_error *err);

/* Read back the sessions and reservations found in xenstore (daemon start). Entries
 * that do not parse are logged and skipped. Returns 0, or a negative errno if
 * /squeezed/state exists but cannot be listed. */
int reservations_load(struct reservations *r);

/* login(service): a valid name is letters, digits, '-', '_' or '@' (it is a xenstore
 * path component), at most 128 bytes; else INVALID_PARAMS. Deletes every reservation
 * the session made before, (re)creates the session. */
int reservations_login(struct reservations *r, const char *service, struct service_error *err);
bool reservations_has_session(const struct reservations *r, const char *session);

/* reserve_memory: squeeze_free(kib) through sq, then record. kib: 1 .. LIMIT_KIB_MAX
 * (checked by the caller). *id new string.
 * *sq_out says what the squeeze did (caller frees its result). */
int reservations_reserve(struct reservations *r, struct squeezer *sq, const char *session,
                         int64_t kib, char **id, struct reservations_squeeze *sq_out,
                         struct service_error *err);
/* reserve_memory_range: squeeze_free_range(min, max), then record what it allows.
 * 0 <= min_kib <= max_kib, 1 <= max_kib <= LIMIT_KIB_MAX (checked by the caller). */
int reservations_reserve_range(struct reservations *r, struct squeezer *sq, const char *session,
                               int64_t min_kib, int64_t max_kib, char **id,
                               int64_t *reserved_kib, struct reservations_squeeze *sq_out,
                               struct service_error *err);
/* Record a reservation of kib for session without squeezing: the caller (a coalesced
 * batch) has made sure kib is guaranteed free above the host reserve. */
int reservations_grant(struct reservations *r, const char *session, int64_t kib, char **id,
                       struct service_error *err);
int reservations_delete(struct reservations *r, const char *session, const char *id,
                        struct service_error *err);
/* Write the domain's memory/initial-reservation and memory/reservation-id, raise its
 * maxmem to the reservation if lower (never lower it), mark the reservation in transfer
 * to domid. Refused with SERVICE_ERR_INTERNAL (xapi's Internal_error, with a text that
 * says why), changing nothing, when: the domain does not exist (listed by the hypervisor
 * now, not dying); the reservation is transferred to another domain already; the domain
 * holds another reservation (its memory/reservation-id names a different one); the
 * reservation's domain has gone and the domid is another domain's now (used up). A
 * repeat of a transfer that was made (same id, same live domain) succeeds, changing
 * nothing. */
int reservations_transfer(struct reservations *r, const char *session, const char *id,
                          int64_t domid, struct service_error *err);
/* The domain's memory/reservation-id (*id new), or NO_RESERVATION. */
int reservations_query(struct reservations *r, const char *session, int64_t domid, char **id,
                       struct service_error *err);

/* The list, in creation order (load order after a restart). Borrowed; valid until the
 * next change. Finding a reservation by id, adding and deleting one cost O(1) on
 * average whatever the number held; count, first and next O(1); at(i) walks (O(i)). */
size_t reservations_count(const struct reservations *r);
const struct reservation *reservations_first(const struct reservations *r);
/* The one after x (NULL at the end). */
const struct reservation *reservations_next(const struct reservations *r,
                                            const struct reservation *x);
const struct reservation *reservations_at(const struct reservations *r, size_t i);

/* What changed in the list, told to the observer as it happens. */
enum reservations_change {
    RESERVATIONS_ADDED,   /* x is new, at the end of the list (its seq is the largest) */
    RESERVATIONS_CHANGED, /* x (same seq) was transferred: its domid changed */
    RESERVATIONS_REMOVED, /* x leaves the list: valid during the call only */
};
typedef void (*reservations_observer_fn)(void *ctx, enum reservations_change what,
                                         const struct reservation *x);
/* Call fn(ctx, ...) once for every change of the list from now on (load, login, reserve,
 * grant, delete, transfer), after the change is made (a removal: just before x is
 * freed), on the thread that made it. fn must not change r. NULL: none. Replaces any
 * observer set before. */
void reservations_set_observer(struct reservations *r, reservations_observer_fn fn, void *ctx);

/* A squeeze_reservations_fn: ctx is the struct reservations. Maintained by each change
 * (O(1) per call): one entry with domid -1 for the sum of every untransferred
 * reservation (absent when there is none), then one per transferred reservation. */
const struct domcache_reservation *reservations_accounting(void *ctx, size_t *n);
/* How much the untransferred reservations grew (or shrank, negative) since the accounting
 * was last taken for a snapshot: a grant answered between two snapshots is already in the
 * list, and /status counts it at once with this. */
int64_t reservations_unaccounted_kib(const struct reservations *r);

/* A new random UUID v4 string (getrandom). */
char *reservations_new_uuid(void);

/* A squeeze verdict as a service error: 0 on SUCCESS, else -1 with *err (cleared first;
 * NULL allowed: the verdict only). rc is the squeeze call's return. */
int reservations_verdict_error(int rc, const struct squeeze_result *res,
                               struct service_error *err);

#endif
