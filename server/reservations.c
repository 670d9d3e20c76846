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
#define INDEX_MOVE_STEP 8 /* buckets moved to a grown table per change */

/*
 * The set is indexed so that no call costs more than a logarithm of the number held:
 *  - each reservation is its own allocation (stable address), on a doubly linked list in
 *    creation order (what /status shows) and in a hash table by id (chained, grown at load
 *    factor 1 to twice its size, its entries moved a few buckets per change);
 *  - the accounting the squeezer reads before every snapshot is kept up to date by each
 *    change, never rebuilt: one entry for the sum of every untransferred reservation
 *    (the snapshot only adds them up) and one per transferred reservation (the snapshot
 *    must know whether its domain is alive). Each transferred entry knows its slot.
 *  - each session's reservations are also on a list of their own, so that a login deletes
 *    what the session held without walking everybody's.
 * Sessions are interned: every reservation of a session points to the same string.
 */
struct resv_entry {
    struct reservation pub;           /* pub.session points into r->sessions */
    struct resv_entry *prev, *next;   /* creation order */
    struct resv_entry *sprev, *snext; /* creation order within its session */
    struct resv_entry *hnext;         /* hash chain */
    size_t hash;                      /* hash_id(pub.id) */
    size_t acct_slot;                 /* index in acct while transferred, else SIZE_MAX */
};

/* One session's reservations (parallel to r->sessions). */
struct session_list {
    struct resv_entry *head, *tail;
    size_t held; /* how many */
};

struct reservations {
    struct backend *b;   /* borrowed */
    struct domcache *dc; /* borrowed */
    struct resv_entry *head, *tail;
    size_t n;
    struct resv_entry **buckets;
    size_t n_buckets;                /* power of two, 0 before the first reservation */
    struct resv_entry **old_buckets; /* while growing: the table being moved, else NULL */
    size_t n_old;                    /* its size */
    size_t moved;                    /* its buckets [0, moved) are empty (moved over) */
    char **sessions;
    size_t n_sessions, cap_sessions;
    int64_t untransferred_kib; /* sum of kib over reservations with domid < 0 */
    int64_t accounted_kib;     /* untransferred_kib as the last snapshot took it */
    size_t n_untransferred;
    struct domcache_reservation *acct;  /* [0]: the untransferred sum; then transferred */
    struct resv_entry **acct_owner;     /* parallel to acct; [0] unused */
    size_t n_acct, cap_acct;            /* n_acct counts acct[0] */
    uint64_t next_seq;                  /* the seq of the next reservation added */
    struct session_list *session_lists; /* parallel to sessions */
    size_t max_per_session;             /* reservations one session may hold */
    reservations_observer_fn observer;  /* NULL: none */
    void *observer_ctx;
};

struct reservations *reservations_new(struct backend *b, struct domcache *dc)
{
    struct reservations *r = xcalloc(1, sizeof(*r));
    r->b = b;
    r->dc = dc;
    r->n_acct = 1;
    r->cap_acct = 16;
    r->acct = xcalloc(r->cap_acct, sizeof(*r->acct));
    r->acct_owner = xcalloc(r->cap_acct, sizeof(*r->acct_owner));
    r->acct[0].domid = -1;
    r->max_per_session = LIMIT_RESERVATIONS_PER_SESSION_DEFAULT;
    return r;
}

void reservations_set_max_per_session(struct reservations *r, size_t max)
{
    r->max_per_session = max;
}

void reservations_free(struct reservations *r)
{
    if (r == NULL)
        return;
    struct resv_entry *e = r->head;
    while (e != NULL) {
        struct resv_entry *next = e->next;
        free(e->pub.id);
        free(e);
        e = next;
    }
    free(r->buckets);
    free(r->old_buckets);
    for (size_t i = 0; i < r->n_sessions; i++)
        free(r->sessions[i]);
    free(r->sessions);
    free(r->session_lists);
    free(r->acct);
    free(r->acct_owner);
    free(r);
}

size_t reservations_count(const struct reservations *r)
{
    return r->n;
}

void reservations_set_observer(struct reservations *r, reservations_observer_fn fn, void *ctx)
{
    r->observer = fn;
    r->observer_ctx = ctx;
}

static void notify(struct reservations *r, enum reservations_change what,
                   const struct resv_entry *e)
{
    if (r->observer != NULL)
        r->observer(r->observer_ctx, what, &e->pub);
}

const struct reservation *reservations_first(const struct reservations *r)
{
    return r->head != NULL ? &r->head->pub : NULL;
}

const struct reservation *reservations_next(const struct reservations *r,
                                            const struct reservation *x)
{
    (void)r;
    const struct resv_entry *e = (const struct resv_entry *)x; /* pub is the first member */
    return e->next != NULL ? &e->next->pub : NULL;
}

const struct reservation *reservations_at(const struct reservations *r, size_t i)
{
    const struct reservation *x = reservations_first(r);
    while (x != NULL && i-- > 0)
        x = reservations_next(r, x);
    return x;
}

const struct domcache_reservation *reservations_accounting(void *ctx, size_t *n)
{
    struct reservations *r = ctx;
    r->acct[0].kib = r->untransferred_kib;
    r->acct[0].domid = -1;
    r->accounted_kib = r->untransferred_kib;
    /* Without untransferred reservations the sum is left out. */
    if (r->n_untransferred == 0) {
        *n = r->n_acct - 1;
        return r->acct + 1;
    }
    *n = r->n_acct;
    return r->acct;
}

int64_t reservations_unaccounted_kib(const struct reservations *r)
{
    return r->untransferred_kib - r->accounted_kib;
}

/* ---- the index ---------------------------------------------------------------------- */

static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* Move up to INDEX_MOVE_STEP buckets of the old table into the new one. */
static void index_move(struct reservations *r)
{
    for (size_t k = 0; k < INDEX_MOVE_STEP && r->old_buckets != NULL; k++) {
        struct resv_entry *e = r->old_buckets[r->moved];
        while (e != NULL) {
            struct resv_entry *next = e->hnext;
            size_t b = e->hash & (r->n_buckets - 1);
            e->hnext = r->buckets[b];
            r->buckets[b] = e;
            e = next;
        }
        r->old_buckets[r->moved++] = NULL;
        if (r->moved == r->n_old) {
            free(r->old_buckets);
            r->old_buckets = NULL;
            r->n_old = r->moved = 0;
        }
    }
}

/* The chain where an entry of hash h is (or goes): the old table's while its bucket has
 * not moved yet. */
static struct resv_entry **index_chain(const struct reservations *r, size_t h)
{
    if (r->old_buckets != NULL && (h & (r->n_old - 1)) >= r->moved)
        return &r->old_buckets[h & (r->n_old - 1)];
    return &r->buckets[h & (r->n_buckets - 1)];
}

static void index_insert(struct reservations *r, struct resv_entry *e)
{
    index_move(r);
    if (r->n + 1 > r->n_buckets) {
        /* A table twice the size, filled a few buckets per change rather than all at
         * once: a rehash of everything would be one call's O(N). The old table is empty
         * long before the new one fills (it moves INDEX_MOVE_STEP buckets a change). */
        while (r->old_buckets != NULL)
            index_move(r);
        size_t nb = r->n_buckets ? 2 * r->n_buckets : 64;
        r->old_buckets = r->buckets;
        r->n_old = r->n_buckets;
        r->moved = 0;
        r->buckets = xcalloc(nb, sizeof(*r->buckets));
        r->n_buckets = nb;
    }
    e->hash = hash_id(e->pub.id);
    struct resv_entry **chain = index_chain(r, e->hash);
    e->hnext = *chain;
    *chain = e;
}

static void index_remove(struct reservations *r, struct resv_entry *e)
{
    struct resv_entry **pp = index_chain(r, e->hash);
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    index_move(r);
}

static void acct_add_transferred(struct reservations *r, struct resv_entry *e)
{
    if (r->n_acct == r->cap_acct) {
        r->cap_acct *= 2;
        r->acct = xreallocarray(r->acct, r->cap_acct, sizeof(*r->acct));
        r->acct_owner = xreallocarray(r->acct_owner, r->cap_acct, sizeof(*r->acct_owner));
    }
    e->acct_slot = r->n_acct++;
    r->acct[e->acct_slot].kib = e->pub.kib;
    r->acct[e->acct_slot].domid = e->pub.domid;
    r->acct_owner[e->acct_slot] = e;
}

/* Take e out of the accounting, whichever part it is in. */
static void acct_remove(struct reservations *r, struct resv_entry *e)
{
    if (e->acct_slot == SIZE_MAX) {
        r->untransferred_kib -= e->pub.kib;
        r->n_untransferred--;
        return;
    }
    size_t last = --r->n_acct;
    if (e->acct_slot != last) {
        r->acct[e->acct_slot] = r->acct[last];
        r->acct_owner[e->acct_slot] = r->acct_owner[last];
        r->acct_owner[e->acct_slot]->acct_slot = e->acct_slot;
    }
    e->acct_slot = SIZE_MAX;
}

/* A reservation now held by domid (>= 0). */
static void set_transferred(struct reservations *r, struct resv_entry *e, int32_t domid)
{
    if (e->acct_slot == SIZE_MAX) {
        acct_remove(r, e);
        e->pub.domid = domid;
        acct_add_transferred(r, e);
    } else {
        e->pub.domid = domid;
        r->acct[e->acct_slot].domid = domid;
    }
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

/* The interned session string (added if new). */
static const char *add_session(struct reservations *r, const char *session)
{
    for (size_t i = 0; i < r->n_sessions; i++)
        if (strcmp(r->sessions[i], session) == 0)
            return r->sessions[i];
    if (r->n_sessions == r->cap_sessions) {
        r->cap_sessions = r->cap_sessions ? 2 * r->cap_sessions : 4;
        r->sessions = xreallocarray(r->sessions, r->cap_sessions, sizeof(*r->sessions));
        r->session_lists =
            xreallocarray(r->session_lists, r->cap_sessions, sizeof(*r->session_lists));
    }
    r->session_lists[r->n_sessions] = (struct session_list){0};
    r->sessions[r->n_sessions] = xstrdup(session);
    return r->sessions[r->n_sessions++];
}

/* The slot of an interned session string (from add_session). */
static size_t session_slot(const struct reservations *r, const char *interned)
{
    size_t i = 0;
    while (i < r->n_sessions && r->sessions[i] != interned)
        i++;
    return i;
}

int reservations_check_room(const struct reservations *r, const char *session, size_t pending,
                            struct service_error *err)
{
    size_t held = pending;
    for (size_t i = 0; i < r->n_sessions; i++)
        if (strcmp(r->sessions[i], session) == 0)
            held += r->session_lists[i].held;
    if (held < r->max_per_session)
        return 0;
    return fail_internal(err,
                         xasprintf("session %s holds %zu reservations, the most one session "
                                   "may hold (max-reservations-per-session): delete some first",
                                   session, held));
}

static int check_room(const struct reservations *r, const char *session,
                      struct service_error *err)
{
    return reservations_check_room(r, session, 0, err);
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
    struct resv_entry *e = xcalloc(1, sizeof(*e));
    e->pub.id = id;
    e->pub.session = (char *)add_session(r, session);
    struct session_list *sl = &r->session_lists[session_slot(r, e->pub.session)];
    sl->held++;
    e->sprev = sl->tail;
    if (sl->tail != NULL)
        sl->tail->snext = e;
    else
        sl->head = e;
    sl->tail = e;
    e->pub.kib = kib;
    e->pub.domid = -1;
    e->pub.seq = r->next_seq++;
    e->acct_slot = SIZE_MAX;
    index_insert(r, e);
    e->prev = r->tail;
    if (r->tail != NULL)
        r->tail->next = e;
    else
        r->head = e;
    r->tail = e;
    r->n++;
    r->untransferred_kib += kib;
    r->n_untransferred++;
    if (domid >= 0)
        set_transferred(r, e, domid);
    notify(r, RESERVATIONS_ADDED, e);
}

static void remove_entry(struct reservations *r, struct resv_entry *e)
{
    struct session_list *sl = &r->session_lists[session_slot(r, e->pub.session)];
    sl->held--;
    if (e->sprev != NULL)
        e->sprev->snext = e->snext;
    else
        sl->head = e->snext;
    if (e->snext != NULL)
        e->snext->sprev = e->sprev;
    else
        sl->tail = e->sprev;
    acct_remove(r, e);
    index_remove(r, e);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        r->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        r->tail = e->prev;
    r->n--;
    notify(r, RESERVATIONS_REMOVED, e);
    free(e->pub.id);
    free(e);
}

static struct resv_entry *find(struct reservations *r, const char *session, const char *id)
{
    if (r->n_buckets == 0)
        return NULL;
    for (struct resv_entry *e = *index_chain(r, hash_id(id)); e != NULL; e = e->hnext)
        if (strcmp(e->pub.id, id) == 0 && strcmp(e->pub.session, session) == 0)
            return e;
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
    const char *interned = add_session(r, service);
    struct resv_entry *e = r->session_lists[session_slot(r, interned)].head;
    while (e != NULL) {
        struct resv_entry *next = e->snext;
        log_info("login %s: deleting reservation %s (%" PRId64 " KiB) made before", service,
                 e->pub.id, e->pub.kib);
        remove_entry(r, e);
        purged++;
        e = next;
    }
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
    if (check_room(r, session, err) < 0)
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
    if (check_room(r, session, err) < 0)
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
    if (check_session(r, session, err) < 0 || check_room(r, session, err) < 0)
        return -1;
    return record(r, session, kib, id, err);
}

int reservations_delete(struct reservations *r, const char *session, const char *id,
                        struct service_error *err)
{
    if (check_session(r, session, err) < 0)
        return -1;
    struct resv_entry *e = id != NULL ? find(r, session, id) : NULL;
    if (e == NULL)
        return fail_text(err, SERVICE_ERR_UNKNOWN_RESERVATION, xstrdup(id != NULL ? id : ""));
    char *path = xasprintf(STATE_ROOT "/%s/%s", session, id);
    int rc = r->b->ops->xs_rm(r->b, path);
    free(path);
    if (rc < 0)
        return fail_internal(
            err, xasprintf("cannot delete the reservation from xenstore: %s", strerror(-rc)));
    log_info("session %s: deleted reservation %s (%" PRId64 " KiB)", session, id, e->pub.kib);
    remove_entry(r, e);
    return 0;
}

static int domain_gone(struct service_error *err, int64_t domid)
{
    return fail_internal(err, xasprintf("domain %" PRId64 " does not exist", domid));
}

/* What domid's memory/reservation-id says now: 0 and *held (new string, "" if none), -1
 * with *err when the domain has gone or cannot be read. */
static int held_by(struct reservations *r, int64_t domid, char **held,
                   struct service_error *err)
{
    *held = NULL;
    int rc = domcache_read(r->dc, (uint32_t)domid, "memory/reservation-id", held);
    if (rc == -ENOENT) {
        *held = xstrdup("");
        return 0;
    }
    if (rc == -ESRCH)
        return domain_gone(err, domid);
    if (rc < 0)
        return fail_internal(err,
                             xasprintf("domid %" PRId64 ": cannot read its reservation: %s",
                                       domid, strerror(-rc)));
    return 0;
}

int reservations_transfer(struct reservations *r, const char *session, const char *id,
                          int64_t domid, struct service_error *err)
{
    if (check_session(r, session, err) < 0)
        return -1;
    struct resv_entry *e = id != NULL ? find(r, session, id) : NULL;
    if (e == NULL)
        return fail_text(err, SERVICE_ERR_UNKNOWN_RESERVATION, xstrdup(id != NULL ? id : ""));
    if (domid < 0 || domid > LIMIT_DOMID_MAX)
        return domain_gone(err, domid);

    struct reservation *x = &e->pub;
    uint32_t d = (uint32_t)domid;
    char *kib_text = NULL, *path = NULL, *domid_text = NULL, *held = NULL;
    int rc = domcache_domain_exists(r->dc, d);
    if (rc < 0) {
        fail_internal(err, xasprintf("cannot list domains: %s", strerror(-rc)));
        goto out;
    }
    if (rc == 0) {
        rc = domain_gone(err, domid);
        goto out;
    }
    if ((rc = held_by(r, domid, &held, err)) < 0)
        goto out;
    /* One reservation per domain, one domain per reservation (the rule in the header). */
    if (x->domid >= 0 && x->domid != domid) {
        rc = fail_internal(err,
                           xasprintf("reservation %s is already transferred to domain %" PRId32
                                     ": a reservation goes to one domain only",
                                     id, x->domid));
        goto out;
    }
    if (held[0] != '\0' && strcmp(held, id) != 0) {
        rc = fail_internal(err, xasprintf("domain %" PRId64 " already holds reservation %s: "
                                          "a domain takes one reservation only",
                                          domid, held));
        goto out;
    }
    if (x->domid == domid) {
        if (strcmp(held, id) == 0) {
            log_dom_info(domid, "reservation %s of session %s: transferred already (repeat)",
                         id, session);
            rc = 0;
            goto out;
        }
        /* Listed under this domid but not holding it: the domain it went to has gone
         * and the domid is someone else's now. Its memory came back with the domain. */
        rc = fail_internal(err, xasprintf("reservation %s was transferred to domain %" PRId64
                                          ", which has gone since: it is used up",
                                          id, domid));
        goto out;
    }

    kib_text = xasprintf("%" PRId64, x->kib);
    path = xasprintf(STATE_ROOT "/%s/%s/in-transfer", session, id);
    domid_text = xasprintf("%" PRId64, domid);
    rc = domcache_write(r->dc, d, "memory/initial-reservation", kib_text);
    if (rc == -ENOENT || rc == -ESRCH) {
        domain_gone(err, domid);
        goto out;
    }
    if (rc == 0)
        rc = domcache_write(r->dc, d, "memory/reservation-id", id);
    /* Raised to the reservation if below, never lowered (a running domain keeps its own). */
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
    set_transferred(r, e, (int32_t)domid);
    notify(r, RESERVATIONS_CHANGED, e);
    log_dom_info(domid, "reservation %s (%" PRId64 " KiB) of session %s transferred", id,
                 x->kib, session);
out:
    free(held);
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
