/* SPDX-License-Identifier: LGPL-2.1-only */
/* Per-domain cache of xenstore and hypervisor reads, and the snapshot builder (SPEC 2, 5). */
#include "cache/domcache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xalloc.h"

/*
 * How the cache stays right without reading:
 *
 *  - Keys only we write (target, memory-offset, uncooperative, initial-reservation)
 *    are read once per domain and then updated by our own successful writes. An absent
 *    memory/target is not cached: a domain still being built gets it soon.
 *  - control/feature-balloon and data/updated are cached once present. While absent
 *    they are read through each snapshot, unless the domain's watches are registered,
 *    in which case absence is known until a watch event says otherwise.
 *  - memory/dynamic-min and dynamic-max are cached only while watched; a watch event
 *    marks the key stale, and the one read happens lazily at the next snapshot, however
 *    many events arrived.
 *  - A watch token is "sq:<domid>:<serial>"; every registration gets a new serial, so
 *    events of an older registration (a recycled domid) are told apart and ignored.
 *    Watches are registered before any key is read and the queue is drained right after,
 *    so the event every registration fires at once lands on a key that has not been read
 *    yet and costs nothing.
 *  - Events lost (overflow) make every value stale (the watches themselves still
 *    stand). A lost connection also drops every registration: the next snapshot
 *    registers again.
 *
 * How a steady snapshot stays linear in the number of domains: the entries are scattered
 * on the heap (some 360 bytes each over six cache lines, plus a string per value: over
 * 12 MB at 32,000 domains, far beyond the CPU caches), so reading each one costs cache
 * misses, more of them the larger the host. A snapshot therefore keeps, in an array in
 * the order of the domain list (struct dc_slot, 80 bytes), who each listed domain was and
 * the view it built for it (its memo). When the next domain list is the same, domain for
 * domain, a domain whose memo still stands is built from the memo and the list alone,
 * without reading its entry: two arrays read in order. The memo stands until something
 * changes the entry: every change of a value, of Xen's maxmem, of the watches, goes
 * through entry_touch, which drops it; a different list drops them all. Only a view the
 * cache can vouch for is memoised: a booted domain in the snapshot, every key it used
 * fresh (value_fresh), so that building it again would read nothing and give the same
 * view. Booting, skipped and left-out domains, and every domain when reading through, are
 * built from their entry every time. What the list says (pages, maxmem, claim, paused) is
 * never taken from a memo.
 */

enum dc_key {
    DK_TARGET,
    DK_OFFSET,
    DK_UNCOOP,
    DK_INITRES,
    DK_FEATURE_BALLOON,
    DK_DATA_UPDATED,
    DK_DYN_MIN,
    DK_DYN_MAX,
    DK_N
};

static const char *const key_names[DK_N] = {
    [DK_TARGET] = "memory/target",
    [DK_OFFSET] = "memory/memory-offset",
    [DK_UNCOOP] = "memory/uncooperative",
    [DK_INITRES] = "memory/initial-reservation",
    [DK_FEATURE_BALLOON] = "control/feature-balloon",
    [DK_DATA_UPDATED] = "data/updated",
    [DK_DYN_MIN] = "memory/dynamic-min",
    [DK_DYN_MAX] = "memory/dynamic-max",
};

/* The keys watched per domain, in registration order. */
static const enum dc_key watched_keys[] = {DK_DYN_MIN, DK_DYN_MAX, DK_FEATURE_BALLOON,
                                           DK_DATA_UPDATED};
#define N_WATCHED (sizeof(watched_keys) / sizeof(watched_keys[0]))

#define DOMAINS_TOKEN "sq:domains"
#define TOKEN_PREFIX "sq:"
#define DRAIN_EVERY 64 /* new registrations between two drains of the event queue */
#define PAGE_KIB 4
#define REASON_VALUE_BYTES 64 /* of a bad xenstore value quoted in a reason */

struct dc_value {
    bool known; /* `present` and `str` are what xenstore held when last read/written */
    bool present;
    int num_rc; /* parse_int64 of str within +-LIMIT_KIB_MAX: 0 (held in num) or <0 */
    int64_t num;
    char *str; /* the value while present */
};

struct dc_entry {
    struct dc_entry *next; /* hash chain */
    uint32_t domid;
    uint8_t handle[16];
    enum domain_type type;
    char *path;              /* /local/domain/<domid> */
    uint64_t serial;         /* of the current watch registration */
    bool watched;            /* its watches are registered */
    bool seen;               /* listed (and not dying) by the current snapshot */
    bool included;           /* part of the current snapshot */
    bool excluded;           /* left out of the current snapshot: bad xenstore values */
    char *excluded_reason;   /* the reason last logged; NULL once included again */
    bool dir_confirmed;      /* its xenstore directory was seen to exist */
    uint64_t maxmem_xen_kib; /* maxmem as Xen holds it: as listed by the last snapshot
                                (KiB kept from our last set while the pages agree) */
    int64_t listed_tot_kib;  /* its total pages (KiB) as listed by the last snapshot that
                                built its view from the entry (always so for a domain not
                                in the snapshot: only those are read from it) */
    size_t slot;             /* its index in dc->slots while dc->slots[slot].e is it */
    int64_t offset_kib;      /* memory-offset in use (0 while booting) */
    bool offset_known;       /* offset_kib was settled by a snapshot */
    bool shadow_known;       /* shadow_mib is valid while total_pages == shadow_tot_pages */
    uint64_t shadow_tot_pages;
    uint32_t shadow_mib;
    struct dc_value v[DK_N];
    bool identity_read; /* name and uuid were read (once per entry: they do not change) */
    char *name;         /* /local/domain/<domid>/name, or NULL */
    char *uuid;         /* the last component of /local/domain/<domid>/vm, or NULL */
};

struct dc_counters {
    _Atomic uint64_t xenstore_reads;
    _Atomic uint64_t xenstore_writes;
    _Atomic uint64_t watch_events;
    _Atomic uint64_t hypercalls;
    _Atomic uint64_t snapshots;
    _Atomic uint64_t rebuilds;
};

struct domcache {
    struct backend *b;
    struct domcache_config cfg;
    bool watching;        /* relying on watches (cfg.use_watches and none failed) */
    bool domains_watched; /* @introduceDomain / @releaseDomain registered */

    struct dc_entry **buckets;
    size_t n_buckets; /* power of two */
    size_t n_entries;
    uint64_t next_serial;

    struct dc_counters c;

    /* Snapshot scratch: built here, copied to the caller's struct on success. */
    struct policy_domain *s_domains;
    struct domcache_domain_extra *s_extra;
    struct domcache_excluded *s_excluded;
    size_t s_cap;          /* of s_domains and s_extra */
    size_t s_cap_excluded; /* of s_excluded */
    struct dc_slot *slots; /* the domains of the last sync's list, in its order */
    size_t slots_cap;
    size_t n_slots;               /* listed domains of the last sync (0: none valid) */
    size_t n_slot_entries;        /* of them with an entry (not dying) */
    bool resync;                  /* the next sync must match the list again (no fast path) */
    struct dc_ident *idents;      /* parallel to slots (same index and capacity) */
    size_t ident_next;            /* where domcache_identity looks first (after its last hit) */
    struct backend_domain *batch; /* list_batch of them: the list as a snapshot reads it */
    size_t list_batch;
    struct backend_domain *list; /* the whole list, when it is not the last one */
    size_t list_cap;
};

/* The identity of each slot's domain, for domcache_identity: a status picture asks it
 * of every domain after every snapshot, in domid order, and finding each entry in the
 * table (one or two cache misses each at 32,000 domains) cost more than the snapshot. */
struct dc_ident {
    uint32_t domid;
    bool read;        /* name and uuid are the entry's, read (it has read them) */
    const char *name; /* borrowed from the entry */
    const char *uuid;
};

/* One domain of the last domain list, at its index in the list: who it was, its entry,
 * and its memo (the view the snapshot last built for it, while `memo`). Kept small and
 * sequential: a steady snapshot reads these and the list, not the entries. */
struct dc_slot {
    uint32_t domid;
    bool memo;          /* the fields below are the view last built, and still stand */
    bool can_balloon;   /* memo */
    bool uncooperative; /* memo */
    uint8_t type;       /* memo: enum domain_type */
    uint8_t handle[16];
    struct dc_entry *e; /* NULL: dying */
    /* memo: */
    uint64_t maxmem_xen_kib; /* the entry's, when the view was built */
    int64_t target_kib;
    int64_t dynamic_min_kib;
    int64_t dynamic_max_kib;
    int64_t offset_kib;
    int64_t initial_reservation_kib;
};

/* Domains per list_domains call of a snapshot (domcache_set_list_batch). */
#define LIST_BATCH 1024

#define COUNT(dc, field) atomic_fetch_add_explicit(&(dc)->c.field, 1, memory_order_relaxed)

/* e is about to change (a value, Xen's maxmem, its watches, its offset): the view the
 * last snapshot built for it no longer stands. Every change to an entry goes through
 * here before the next snapshot. */
static void entry_touch(struct domcache *dc, const struct dc_entry *e)
{
    if (e->slot < dc->n_slots && dc->slots[e->slot].e == e)
        dc->slots[e->slot].memo = false;
}

/* Every memo goes (the cache stops relying on watches). */
static void memo_forget_all(struct domcache *dc)
{
    for (size_t i = 0; i < dc->n_slots; i++)
        dc->slots[i].memo = false;
}

/* ---- small helpers ---- */

/* Xen's page counts in KiB; beyond LIMIT_KIB_MAX (Xen's "unlimited" maxmem) clipped. */
static int64_t pages_to_kib(uint64_t pages)
{
    if (pages > (uint64_t)LIMIT_KIB_MAX / PAGE_KIB)
        return LIMIT_KIB_MAX;
    return (int64_t)pages * PAGE_KIB;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static void value_forget(struct domcache *dc, struct dc_entry *e, enum dc_key k)
{
    struct dc_value *v = &e->v[k];
    entry_touch(dc, e);
    free(v->str);
    v->str = NULL;
    v->known = false;
    v->present = false;
    v->num_rc = -EINVAL;
}

static void value_set(struct domcache *dc, struct dc_entry *e, enum dc_key k, const char *str)
{
    struct dc_value *v = &e->v[k];
    entry_touch(dc, e);
    char *copy = xstrdup(str);
    free(v->str);
    v->str = copy;
    v->known = true;
    v->present = true;
    /* Parsed once here, not at every snapshot. */
    v->num_rc = parse_int64(copy, -LIMIT_KIB_MAX, LIMIT_KIB_MAX, &v->num);
}

/* The value as a size (0 .. LIMIT_KIB_MAX), if it is one. */
static bool value_kib(const struct dc_value *v, int64_t *out)
{
    if (!v->present || v->num_rc != 0 || v->num < 0)
        return false;
    *out = v->num;
    return true;
}

/* Whether v, present, is out of range or not a number (a size if `size`, else any
 * integer within +-LIMIT_KIB_MAX); if so `why` says "KEY = VALUE: what is wrong" (the
 * value cut short and made printable ASCII, so that it can go into JSON as it is). */
static bool value_bad(const struct dc_value *v, enum dc_key k, bool size, char *why, size_t len)
{
    const char *what;
    if (!v->present || (v->num_rc == 0 && (!size || v->num >= 0)))
        return false;
    if (v->num_rc == -EINVAL)
        what = "not a number";
    else if (v->num_rc == 0 || v->str[0] == '-')
        what = size ? "negative" : "below the limit of -" LIMIT_KIB_MAX_TEXT " KiB";
    else
        what = "above the limit of " LIMIT_KIB_MAX_TEXT " KiB";
    char value[REASON_VALUE_BYTES + 4];
    snprintf(value, sizeof(value), "%.*s%s", REASON_VALUE_BYTES, v->str,
             strlen(v->str) > REASON_VALUE_BYTES ? "..." : "");
    for (char *c = value; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    snprintf(why, len, "%s = %s: %s", key_names[k], value, what);
    return true;
}

static void value_set_absent(struct domcache *dc, struct dc_entry *e, enum dc_key k)
{
    struct dc_value *v = &e->v[k];
    entry_touch(dc, e);
    free(v->str);
    v->str = NULL;
    v->known = true;
    v->present = false;
    v->num_rc = -EINVAL;
}

static int key_index(const char *key)
{
    for (int k = 0; k < DK_N; k++)
        if (strcmp(key_names[k], key) == 0)
            return k;
    return -1;
}

/* Whether e->v[k] may be used without reading xenstore. */
static bool value_fresh(const struct domcache *dc, const struct dc_entry *e, enum dc_key k)
{
    const struct dc_value *v = &e->v[k];
    if (!v->known)
        return false;
    bool watched = dc->watching && e->watched;
    switch (k) {
    case DK_TARGET:
        return v->present;
    case DK_OFFSET:
    case DK_UNCOOP:
    case DK_INITRES:
        return true;
    case DK_FEATURE_BALLOON:
    case DK_DATA_UPDATED:
        return v->present || watched;
    case DK_DYN_MIN:
    case DK_DYN_MAX:
        return watched;
    case DK_N:
        break;
    }
    return false;
}

/* ---- the table of entries ---- */

static size_t bucket_of(const struct domcache *dc, uint32_t domid)
{
    /* Domids are small and mostly dense: the low bits spread them well. */
    return (size_t)domid & (dc->n_buckets - 1);
}

static struct dc_entry *entry_find(const struct domcache *dc, uint32_t domid)
{
    for (struct dc_entry *e = dc->buckets[bucket_of(dc, domid)]; e != NULL; e = e->next)
        if (e->domid == domid)
            return e;
    return NULL;
}

static void table_grow(struct domcache *dc)
{
    size_t old_n = dc->n_buckets;
    struct dc_entry **old = dc->buckets;
    dc->n_buckets = old_n * 2;
    dc->buckets = xcalloc(dc->n_buckets, sizeof(*dc->buckets));
    for (size_t i = 0; i < old_n; i++) {
        struct dc_entry *e = old[i];
        while (e != NULL) {
            struct dc_entry *next = e->next;
            size_t bkt = bucket_of(dc, e->domid);
            e->next = dc->buckets[bkt];
            dc->buckets[bkt] = e;
            e = next;
        }
    }
    free(old);
}

static char *key_path(const struct dc_entry *e, enum dc_key k)
{
    return xasprintf("%s/%s", e->path, key_names[k]);
}

static char *watch_token(const struct dc_entry *e)
{
    return xasprintf(TOKEN_PREFIX "%" PRIu32 ":%" PRIu64, e->domid, e->serial);
}

/* Remove e's watches (errors do not matter: the watch is gone either way). */
static void entry_unwatch(struct domcache *dc, struct dc_entry *e)
{
    if (!e->watched)
        return;
    char *token = watch_token(e);
    for (size_t i = 0; i < N_WATCHED; i++) {
        char *path = key_path(e, watched_keys[i]);
        int rc = dc->b->ops->xs_unwatch(dc->b, path, token);
        if (rc < 0 && rc != -ENOENT)
            log_dom_debug(e->domid, "unwatch %s: %s", path, strerror(-rc));
        free(path);
    }
    free(token);
    entry_touch(dc, e);
    e->watched = false;
}

static void unwatch_all(struct domcache *dc)
{
    for (size_t i = 0; i < dc->n_buckets; i++)
        for (struct dc_entry *e = dc->buckets[i]; e != NULL; e = e->next)
            entry_unwatch(dc, e);
}

/* Stop relying on watches: from now on the watched keys are read through. */
static void watches_fail(struct domcache *dc, const char *path, int rc)
{
    log_warnx("cannot watch %s: %s; reading memory/dynamic-min, dynamic-max and the boot "
              "signals through from now on",
              path, strerror(-rc));
    dc->watching = false;
    memo_forget_all(dc);
    unwatch_all(dc);
}

/* Register e's watches with a new serial. On failure falls back to reading through. */
static void entry_watch(struct domcache *dc, struct dc_entry *e)
{
    e->serial = ++dc->next_serial;
    char *token = watch_token(e);
    size_t done = 0;
    for (; done < N_WATCHED; done++) {
        char *path = key_path(e, watched_keys[done]);
        int rc = dc->b->ops->xs_watch(dc->b, path, token);
        if (rc < 0) {
            /* Undo this entry's partial registration, then everybody else's. */
            for (size_t j = 0; j < done; j++) {
                char *p = key_path(e, watched_keys[j]);
                dc->b->ops->xs_unwatch(dc->b, p, token);
                free(p);
            }
            watches_fail(dc, path, rc);
            free(path);
            break;
        }
        free(path);
    }
    if (done == N_WATCHED) {
        entry_touch(dc, e);
        e->watched = true;
    }
    free(token);
}

static struct dc_entry *entry_new(struct domcache *dc, const struct backend_domain *d)
{
    if (dc->n_entries + 1 > dc->n_buckets)
        table_grow(dc);
    struct dc_entry *e = xcalloc(1, sizeof(*e));
    e->domid = d->domid;
    memcpy(e->handle, d->handle, sizeof(e->handle));
    e->type = d->type;
    e->path = backend_domain_path(d->domid);
    e->maxmem_xen_kib = (uint64_t)pages_to_kib(d->max_pages);
    e->slot = SIZE_MAX; /* in no slot until a sync lists it */
    size_t bkt = bucket_of(dc, d->domid);
    e->next = dc->buckets[bkt];
    dc->buckets[bkt] = e;
    dc->n_entries++;
    return e;
}

/* Xen's maxmem for e as we now know it. */
static void entry_set_maxmem_xen(struct domcache *dc, struct dc_entry *e, uint64_t kib)
{
    if (e->maxmem_xen_kib == kib)
        return;
    entry_touch(dc, e);
    e->maxmem_xen_kib = kib;
}

static void entry_free(struct dc_entry *e)
{
    for (int k = 0; k < DK_N; k++)
        free(e->v[k].str);
    free(e->excluded_reason);
    free(e->name);
    free(e->uuid);
    free(e->path);
    free(e);
}

/* Unlink, unwatch and free e. */
static void entry_drop(struct domcache *dc, struct dc_entry *e)
{
    struct dc_entry **pp = &dc->buckets[bucket_of(dc, e->domid)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    dc->n_entries--;
    dc->n_slots = 0; /* the slots may point to it: no fast path at the next sync */
    entry_unwatch(dc, e);
    entry_free(e);
}

/* Forget every value (events were lost). Identity, maxmem and watches stay. */
static void entry_invalidate(struct domcache *dc, struct dc_entry *e)
{
    for (int k = 0; k < DK_N; k++)
        value_forget(dc, e, (enum dc_key)k);
    e->dir_confirmed = false;
    e->shadow_known = false;
    e->offset_known = false;
}

/* Events were lost: nothing cached can be trusted. With a lost connection the
 * registrations are dropped too and made again by the next snapshot. */
static void rebuild(struct domcache *dc, bool connection_lost)
{
    COUNT(dc, rebuilds);
    for (size_t i = 0; i < dc->n_buckets; i++) {
        for (struct dc_entry *e = dc->buckets[i]; e != NULL; e = e->next) {
            if (connection_lost)
                entry_unwatch(dc, e);
            entry_invalidate(dc, e);
        }
    }
    /* Without registrations the next sync must register again: no fast path (also
     * when this happens during a sync, past some of the domains it registered). */
    if (connection_lost)
        dc->resync = true;
}

/* ---- reads ---- */

/* Read e's key k into the cache. 0 (present or absent), or a negative errno. */
static int entry_fetch(struct domcache *dc, struct dc_entry *e, enum dc_key k)
{
    char *path = key_path(e, k);
    char *val = NULL;
    COUNT(dc, xenstore_reads);
    int rc = dc->b->ops->xs_read(dc->b, path, &val);
    if (rc == 0) {
        value_set(dc, e, k, val);
        free(val);
    } else if (rc == -ENOENT) {
        value_set_absent(dc, e, k);
        rc = 0;
    } else {
        log_dom_warnx(e->domid, "cannot read %s: %s", path, strerror(-rc));
    }
    free(path);
    return rc;
}

/* Make e->v[k] usable, reading only if the cache cannot vouch for it. */
static int entry_get(struct domcache *dc, struct dc_entry *e, enum dc_key k)
{
    if (value_fresh(dc, e, k))
        return 0;
    return entry_fetch(dc, e, k);
}

/* Whether e's directory exists (read once per entry). 1, 0, or a negative errno. */
static int entry_dir_exists(struct domcache *dc, struct dc_entry *e)
{
    if (e->dir_confirmed)
        return 1;
    char *val = NULL;
    COUNT(dc, xenstore_reads);
    int rc = dc->b->ops->xs_read(dc->b, e->path, &val);
    free(val);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    e->dir_confirmed = true;
    return 1;
}

/* ---- writes ---- */

/*
 * Write `key` = value for domid through the cache: skipped if the cache holds that value
 * already; else one transaction that checks the domain's directory. The cache is updated
 * only on success. 0, -ENOENT if the domain's directory has gone, or a negative errno.
 */
static int write_key(struct domcache *dc, uint32_t domid, struct dc_entry *e, const char *key,
                     const char *value)
{
    int k = key_index(key);
    if (e != NULL && k >= 0 && value_fresh(dc, e, (enum dc_key)k) && e->v[k].present &&
        strcmp(e->v[k].str, value) == 0)
        return 0;
    char *dir = e != NULL ? xstrdup(e->path) : backend_domain_path(domid);
    char *path = xasprintf("%s/%s", dir, key);
    COUNT(dc, xenstore_writes);
    int rc = dc->b->ops->xs_write(dc->b, dir, path, value);
    if (rc == 0) {
        if (e != NULL && k >= 0)
            value_set(dc, e, (enum dc_key)k, value);
    } else if (rc == -ENOENT) {
        log_dom_debug(domid, "not writing %s = '%s': the domain has gone", path, value);
    } else {
        log_dom_warnx(domid, "cannot write %s = '%s': %s", path, value, strerror(-rc));
    }
    free(path);
    free(dir);
    return rc;
}

/* The domain has gone: forget it so nothing stale outlives it. */
static void forget_domain(struct domcache *dc, uint32_t domid)
{
    struct dc_entry *e = entry_find(dc, domid);
    if (e != NULL)
        entry_drop(dc, e);
}

/* ---- events ---- */

/* Apply one event. 1 if it changed something the policy reads, else 0. */
static int apply_event(struct domcache *dc, const struct backend_watch_event *ev)
{
    if (ev->token == NULL || ev->path == NULL)
        return 0;
    if (strcmp(ev->token, DOMAINS_TOKEN) == 0)
        return 1;
    if (!dc->watching || strncmp(ev->token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0)
        return 0;
    const char *p = ev->token + strlen(TOKEN_PREFIX);
    char *end;
    errno = 0;
    unsigned long long domid = strtoull(p, &end, 10);
    if (errno != 0 || end == p || *end != ':' || domid > UINT32_MAX)
        return 0;
    p = end + 1;
    unsigned long long serial = strtoull(p, &end, 10);
    if (errno != 0 || end == p || *end != '\0')
        return 0;
    struct dc_entry *e = entry_find(dc, (uint32_t)domid);
    if (e == NULL || !e->watched || e->serial != serial)
        return 0; /* an older registration's event */
    size_t plen = strlen(e->path);
    if (strncmp(ev->path, e->path, plen) != 0 || ev->path[plen] != '/')
        return 0;
    const char *rel = ev->path + plen + 1;
    for (size_t i = 0; i < N_WATCHED; i++) {
        enum dc_key k = watched_keys[i];
        size_t klen = strlen(key_names[k]);
        if (strncmp(rel, key_names[k], klen) != 0 || (rel[klen] != '\0' && rel[klen] != '/'))
            continue;
        struct dc_value *v = &e->v[k];
        /* Unread keys cost nothing (the event a registration fires lands here), and a
         * boot signal once present is final. */
        if (!v->known)
            return 0;
        if ((k == DK_FEATURE_BALLOON || k == DK_DATA_UPDATED) && v->present)
            return 0;
        value_forget(dc, e, k);
        return 1;
    }
    return 0;
}

int domcache_process_events(struct domcache *dc)
{
    int changes = 0;
    for (;;) {
        struct backend_watch_event ev = {0};
        int rc = dc->b->ops->read_watch(dc->b, &ev);
        if (rc == 0)
            break;
        if (rc == 1) {
            COUNT(dc, watch_events);
            changes += apply_event(dc, &ev);
            backend_watch_event_clear(&ev);
            continue;
        }
        if (rc == BACKEND_EOVERFLOW || rc == BACKEND_ECONN) {
            log_info("xenstore watch events were lost (%s): emptying the domain cache",
                     rc == BACKEND_EOVERFLOW ? "queue overflow" : "connection reset");
            rebuild(dc, rc == BACKEND_ECONN);
            changes++;
            continue;
        }
        log_warnx("cannot read xenstore watch events: %s", strerror(-rc));
        return rc;
    }
    return changes;
}

/* ---- life cycle ---- */

struct domcache *domcache_new(struct backend *b, const struct domcache_config *cfg)
{
    struct domcache *dc = xcalloc(1, sizeof(*dc));
    dc->b = b;
    dc->cfg = *cfg;
    dc->list_batch = LIST_BATCH;
    dc->watching = cfg->use_watches;
    dc->n_buckets = 64;
    dc->buckets = xcalloc(dc->n_buckets, sizeof(*dc->buckets));
    if (dc->watching) {
        /* Domains coming and going wake the daemon up; optional (snapshots list the
         * domains anyway), so a failure only loses that. */
        int rc = b->ops->xs_watch(b, "@introduceDomain", DOMAINS_TOKEN);
        if (rc == 0) {
            rc = b->ops->xs_watch(b, "@releaseDomain", DOMAINS_TOKEN);
            if (rc < 0)
                b->ops->xs_unwatch(b, "@introduceDomain", DOMAINS_TOKEN);
        }
        if (rc == 0)
            dc->domains_watched = true;
        else
            log_debug("cannot watch @introduceDomain/@releaseDomain: %s", strerror(-rc));
        /* The events the registrations fire at once are not news. */
        struct backend_watch_event ev = {0};
        int n;
        while ((n = b->ops->read_watch(b, &ev)) == 1) {
            COUNT(dc, watch_events);
            backend_watch_event_clear(&ev);
        }
    }
    return dc;
}

void domcache_free(struct domcache *dc)
{
    if (dc == NULL)
        return;
    for (size_t i = 0; i < dc->n_buckets; i++) {
        struct dc_entry *e = dc->buckets[i];
        while (e != NULL) {
            struct dc_entry *next = e->next;
            entry_unwatch(dc, e);
            entry_free(e);
            e = next;
        }
    }
    if (dc->domains_watched) {
        dc->b->ops->xs_unwatch(dc->b, "@introduceDomain", DOMAINS_TOKEN);
        dc->b->ops->xs_unwatch(dc->b, "@releaseDomain", DOMAINS_TOKEN);
    }
    free(dc->buckets);
    free(dc->s_domains);
    free(dc->s_extra);
    free(dc->s_excluded);
    free(dc->slots);
    free(dc->idents);
    free(dc->batch);
    free(dc->list);
    free(dc);
}

void domcache_set_list_batch(struct domcache *dc, size_t n)
{
    dc->list_batch = n > 0 ? n : 1;
    free(dc->batch);
    dc->batch = NULL;
}

bool domcache_watching(const struct domcache *dc)
{
    return dc->watching;
}

void domcache_counters(const struct domcache *dc, struct domcache_counters *out)
{
    /* Readers on other threads (status) may ask while the owner works. */
    struct domcache *m = (struct domcache *)dc;
    out->xenstore_reads = atomic_load_explicit(&m->c.xenstore_reads, memory_order_relaxed);
    out->xenstore_writes = atomic_load_explicit(&m->c.xenstore_writes, memory_order_relaxed);
    out->watch_events = atomic_load_explicit(&m->c.watch_events, memory_order_relaxed);
    out->hypercalls = atomic_load_explicit(&m->c.hypercalls, memory_order_relaxed);
    out->snapshots = atomic_load_explicit(&m->c.snapshots, memory_order_relaxed);
    out->rebuilds = atomic_load_explicit(&m->c.rebuilds, memory_order_relaxed);
}

/* ---- snapshots ---- */

void domcache_snapshot_init(struct domcache_snapshot *s)
{
    memset(s, 0, sizeof(*s));
}

void domcache_snapshot_free(struct domcache_snapshot *s)
{
    if (s == NULL)
        return;
    free(s->domains);
    free(s->extra);
    free(s->excluded);
    memset(s, 0, sizeof(*s));
}

static bool is_dom0_unmanaged(const struct domcache *dc, uint32_t domid)
{
    return domid == 0 && !dc->cfg.manage_domain_zero;
}

/* maxmem in guest units: Xen's (maxmem_xen_kib) minus the type's slack and the memory
 * offset. */
static int64_t guest_maxmem_of(const struct domcache *dc, uint32_t domid, enum domain_type type,
                               uint64_t maxmem_xen_kib, int64_t offset_kib)
{
    /* As the seed: dom0's Xen maxmem is meaningless (often unlimited). */
    if (is_dom0_unmanaged(dc, domid))
        return 0;
    /* What we set when Xen agrees with it (Xen keeps pages, so no rounding). */
    int64_t xen_kib =
        maxmem_xen_kib > (uint64_t)LIMIT_KIB_MAX ? LIMIT_KIB_MAX : (int64_t)maxmem_xen_kib;
    int64_t kib = xen_kib - domain_type_xen_offset_kib(type) - offset_kib;
    return max64(0, kib);
}

static int64_t guest_maxmem_kib(const struct domcache *dc, const struct dc_entry *e,
                                int64_t offset_kib)
{
    return guest_maxmem_of(dc, e->domid, e->type, e->maxmem_xen_kib, offset_kib);
}

/* Shadow memory of a booting domain, asked again only when its size changed. */
static int64_t shadow_kib(struct domcache *dc, struct dc_entry *e,
                          const struct backend_domain *d)
{
    if (!e->shadow_known || e->shadow_tot_pages != d->total_pages) {
        uint32_t mib = 0;
        COUNT(dc, hypercalls);
        int rc = dc->b->ops->shadow_allocation_mib(dc->b, d->domid, &mib);
        if (rc < 0) {
            log_dom_debug(d->domid, "shadow allocation unknown (%s), counting 0",
                          strerror(-rc));
            mib = 0;
        }
        e->shadow_mib = mib;
        e->shadow_tot_pages = d->total_pages;
        e->shadow_known = rc == 0;
    }
    return (int64_t)e->shadow_mib * 1024;
}

/* Settle e's memory offset on a booted domain: the value recorded, or a calibration
 * written now. 1 done, 0 skip the domain (gone), or a negative errno. */
static int settle_offset(struct domcache *dc, struct dc_entry *e, int64_t tot_kib,
                         int64_t target_kib, int64_t *offset_kib)
{
    int rc = entry_get(dc, e, DK_OFFSET);
    if (rc < 0)
        return rc;
    const struct dc_value *v = &e->v[DK_OFFSET];
    int64_t off;
    if (v->present) {
        /* May be negative: a guest that started above its target. A bad one has
         * left the domain out of the snapshot before this. */
        if (v->num_rc == 0) {
            *offset_kib = v->num;
            return 1;
        }
    }
    off = tot_kib - target_kib;
    log_dom_debug(e->domid, "booted; calibrating memory-offset = %" PRId64 " KiB", off);
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, off);
    rc = write_key(dc, e->domid, e, key_names[DK_OFFSET], buf);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    *offset_kib = off;
    return 1;
}

/* The dynamic range of a balloonable domain; the target for both while either key is
 * missing (the toolstack writes them one at a time). 0, 1 when a value is bad or
 * dynamic-min is above dynamic-max (`why` says which), or a negative errno. */
static int dynamic_range(struct domcache *dc, struct dc_entry *e, int64_t target_kib,
                         int64_t *min_kib, int64_t *max_kib, char *why, size_t len)
{
    int rc = entry_get(dc, e, DK_DYN_MIN);
    if (rc == 0)
        rc = entry_get(dc, e, DK_DYN_MAX);
    if (rc < 0)
        return rc;
    if (value_bad(&e->v[DK_DYN_MIN], DK_DYN_MIN, true, why, len) ||
        value_bad(&e->v[DK_DYN_MAX], DK_DYN_MAX, true, why, len))
        return 1;
    int64_t lo, hi;
    if (value_kib(&e->v[DK_DYN_MIN], &lo) && value_kib(&e->v[DK_DYN_MAX], &hi)) {
        if (lo > hi) {
            snprintf(why, len, "%s = %" PRId64 " is above %s = %" PRId64 " KiB",
                     key_names[DK_DYN_MIN], lo, key_names[DK_DYN_MAX], hi);
            return 1;
        }
        *min_kib = lo;
        *max_kib = hi;
    } else {
        *min_kib = target_kib;
        *max_kib = target_kib;
    }
    return 0;
}

/* Record listed domain d as left out of the snapshot for `why`: logged once per reason
 * (not at every snapshot), kept on the entry until the values are right again. */
static void exclude(struct domcache *dc, struct dc_entry *e, const struct backend_domain *d,
                    const char *why, struct domcache_excluded *x)
{
    if (e->excluded_reason == NULL || strcmp(e->excluded_reason, why) != 0) {
        log_dom_warnx(e->domid, "left out of the snapshot, not ballooned: %s", why);
        free(e->excluded_reason);
        e->excluded_reason = xstrdup(why);
    }
    e->excluded = true;
    memset(x, 0, sizeof(*x));
    x->domid = (int32_t)d->domid;
    x->type = e->type;
    x->actual_kib = pages_to_kib(d->total_pages);
    x->maxmem_kib = guest_maxmem_kib(dc, e, 0);
    snprintf(x->reason, sizeof(x->reason), "%s", why);
}

/* What one domain contributes to a snapshot. */
struct dom_out {
    struct policy_domain pd;
    struct domcache_domain_extra ex;
    int64_t booting_unused_kib;
    char why[sizeof(((struct domcache_excluded *)0)->reason)]; /* when left out */
    int64_t claim_kib; /* outstanding claim beyond booting_unused_kib */
};

/* The view of a booted domain from what the cache settled for it (`v`'s memo fields)
 * and what the domain list says now (its pages, claim, paused flag). The one place both
 * the slow path and a memo make it, so that they cannot differ. */
static void view_of(const struct domcache *dc, const struct dc_slot *v,
                    const struct backend_domain *d, struct dom_out *o)
{
    memset(&o->pd, 0, sizeof(o->pd));
    memset(&o->ex, 0, sizeof(o->ex));
    o->booting_unused_kib = 0;
    /* Xen's free memory still includes what it has promised a domain by a claim. */
    o->claim_kib = pages_to_kib(d->outstanding_pages);
    o->pd.domid = (int32_t)d->domid;
    o->pd.inaccuracy_kib = POLICY_INACCURACY_KIB;
    o->pd.paused = d->paused;
    o->pd.can_balloon = v->can_balloon;
    o->pd.dynamic_min_kib = v->dynamic_min_kib;
    o->pd.dynamic_max_kib = v->dynamic_max_kib;
    o->pd.target_kib = v->target_kib;
    o->pd.actual_kib = pages_to_kib(d->total_pages) - v->offset_kib;
    o->pd.maxmem_kib = guest_maxmem_of(dc, d->domid, (enum domain_type)v->type,
                                       v->maxmem_xen_kib, v->offset_kib);
    o->ex.type = (enum domain_type)v->type;
    o->ex.booting = false;
    o->ex.uncooperative = v->uncooperative;
    o->ex.memory_offset_kib = v->offset_kib;
    o->ex.initial_reservation_kib = v->initial_reservation_kib;
}

/* Whether e's view, just built for a booted domain, can be memoised: every key it used is
 * one the cache vouches for, so that building it again would read nothing and, until
 * entry_touch, give the same view. */
static bool view_settled(const struct domcache *dc, const struct dc_entry *e, bool can_balloon)
{
    static const enum dc_key used[] = {DK_FEATURE_BALLOON, DK_UNCOOP, DK_INITRES, DK_TARGET,
                                       DK_OFFSET};
    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++)
        if (!value_fresh(dc, e, used[i]))
            return false;
    if (!e->v[DK_FEATURE_BALLOON].present && !value_fresh(dc, e, DK_DATA_UPDATED))
        return false;
    if (can_balloon && (!value_fresh(dc, e, DK_DYN_MIN) || !value_fresh(dc, e, DK_DYN_MAX)))
        return false;
    return e->offset_known && e->excluded_reason == NULL;
}

/*
 * One listed domain's view (SPEC 2). 1 included, 0 skipped (it vanished or is not
 * fully there yet), 2 left out (o->why: a xenstore value out of range, not a number,
 * or a dynamic range upside down), or a negative errno (xenstore could not be read).
 * Keys only we write are read again after a bad value: the toolstack may repair it.
 * For a booted domain included, *view gets the memo fields it was built from.
 */
static int build_domain(struct domcache *dc, struct dc_entry *e, const struct backend_domain *d,
                        struct dom_out *o, struct dc_slot *view)
{
    int64_t tot_kib = pages_to_kib(d->total_pages);
    int rc = entry_get(dc, e, DK_FEATURE_BALLOON);
    if (rc < 0)
        return rc;
    bool feature_balloon = e->v[DK_FEATURE_BALLOON].present;
    bool booted = feature_balloon;
    if (!booted) {
        if ((rc = entry_get(dc, e, DK_DATA_UPDATED)) < 0)
            return rc;
        booted = e->v[DK_DATA_UPDATED].present;
    }
    if ((rc = entry_get(dc, e, DK_UNCOOP)) < 0 || (rc = entry_get(dc, e, DK_INITRES)) < 0)
        return rc;
    int64_t initres_kib = 0;
    if (value_bad(&e->v[DK_INITRES], DK_INITRES, true, o->why, sizeof(o->why))) {
        value_forget(dc, e, DK_INITRES);
        return 2;
    }
    if (e->v[DK_INITRES].present)
        value_kib(&e->v[DK_INITRES], &initres_kib);

    memset(&o->pd, 0, sizeof(o->pd));
    memset(&o->ex, 0, sizeof(o->ex));
    o->booting_unused_kib = 0;
    o->pd.domid = (int32_t)d->domid;
    o->pd.inaccuracy_kib = POLICY_INACCURACY_KIB;
    o->pd.paused = d->paused;
    /* Xen's free memory still includes what it has promised a domain by a claim. */
    int64_t claim_kib = pages_to_kib(d->outstanding_pages);
    o->claim_kib = claim_kib;
    o->ex.type = e->type;
    o->ex.uncooperative = e->v[DK_UNCOOP].present;
    o->ex.initial_reservation_kib = initres_kib;

    if (!booted) {
        /* Nothing in xenstore says "booting" apart from the absence of keys: make sure
         * the domain's directory is there at all. */
        rc = entry_dir_exists(dc, e);
        if (rc <= 0) {
            if (rc == 0)
                log_dom_debug(e->domid, "no xenstore directory; skipped");
            return rc;
        }
        /* Not ballooned yet: it counts as using max(initial-reservation, actual), and
         * what it has still to allocate is not free. */
        int64_t unused = 0;
        if (initres_kib > tot_kib)
            unused = max64(0, initres_kib - tot_kib - shadow_kib(dc, e, d));
        int64_t used = max64(initres_kib, tot_kib);
        e->offset_kib = 0;
        e->offset_known = true;
        o->pd.can_balloon = false;
        o->pd.dynamic_min_kib = used;
        o->pd.dynamic_max_kib = used;
        o->pd.target_kib = used;
        o->pd.actual_kib = used;
        o->pd.maxmem_kib = guest_maxmem_kib(dc, e, 0);
        o->ex.booting = true;
        o->booting_unused_kib = unused;
        /* Its unused reservation and its claim describe the same pages still to be
         * allocated: the larger of the two counts, once. */
        o->claim_kib = max64(0, claim_kib - unused);
        return 1;
    }

    if ((rc = entry_get(dc, e, DK_TARGET)) < 0)
        return rc;
    int64_t target_kib = 0;
    if (!e->v[DK_TARGET].present) {
        log_dom_debug(e->domid, "memory/target missing; skipped");
        return 0;
    }
    if (value_bad(&e->v[DK_TARGET], DK_TARGET, true, o->why, sizeof(o->why))) {
        value_forget(dc, e, DK_TARGET);
        return 2;
    }
    value_kib(&e->v[DK_TARGET], &target_kib);
    if ((rc = entry_get(dc, e, DK_OFFSET)) < 0)
        return rc;
    if (value_bad(&e->v[DK_OFFSET], DK_OFFSET, false, o->why, sizeof(o->why))) {
        value_forget(dc, e, DK_OFFSET);
        return 2;
    }
    int64_t offset_kib;
    rc = settle_offset(dc, e, tot_kib, target_kib, &offset_kib);
    if (rc <= 0) {
        if (rc == 0)
            log_dom_debug(e->domid, "gone while calibrating; skipped");
        return rc;
    }
    e->offset_kib = offset_kib;
    e->offset_known = true;
    e->dir_confirmed = true;

    bool can_balloon = feature_balloon && !is_dom0_unmanaged(dc, d->domid);
    int64_t min_kib = target_kib, max_kib = target_kib;
    /* A domain that cannot balloon keeps its target: its range is not used. */
    if (can_balloon) {
        rc = dynamic_range(dc, e, target_kib, &min_kib, &max_kib, o->why, sizeof(o->why));
        if (rc != 0)
            return rc < 0 ? rc : 2;
    }
    memset(view, 0, sizeof(*view));
    view->can_balloon = can_balloon;
    view->uncooperative = e->v[DK_UNCOOP].present;
    view->maxmem_xen_kib = e->maxmem_xen_kib;
    view->target_kib = target_kib;
    view->dynamic_min_kib = min_kib;
    view->dynamic_max_kib = max_kib;
    view->offset_kib = offset_kib;
    view->initial_reservation_kib = initres_kib;
    view->type = (uint8_t)e->type;
    view_of(dc, view, d, o);
    return 1;
}

/* A capacity of at least n, from cap by doubling. */
static size_t grown(size_t cap, size_t n)
{
    if (cap < 16)
        cap = 16;
    while (cap < n)
        cap *= 2;
    return cap;
}

/* Room for n domains in the scratch arrays. */
static void scratch_reserve(struct domcache *dc, size_t n)
{
    if (n > dc->s_cap) {
        size_t cap = grown(dc->s_cap, n);
        dc->s_domains = xreallocarray(dc->s_domains, cap, sizeof(*dc->s_domains));
        dc->s_extra = xreallocarray(dc->s_extra, cap, sizeof(*dc->s_extra));
        dc->s_cap = cap;
    }
    if (n > dc->s_cap_excluded) {
        size_t cap = grown(dc->s_cap_excluded, n);
        dc->s_excluded = xreallocarray(dc->s_excluded, cap, sizeof(*dc->s_excluded));
        dc->s_cap_excluded = cap;
    }
}

static int cmp_domid(const void *a, const void *b)
{
    uint32_t x = ((const struct backend_domain *)a)->domid;
    uint32_t y = ((const struct backend_domain *)b)->domid;
    return x < y ? -1 : x > y;
}

/*
 * Steady state: the list is the last one, domain for domain (same domids, same handles,
 * the same ones dying), and no entry was made or dropped since (by a write to a domain
 * the last list did not have). Each domain's slot is then the one at its index last
 * time, memo included, and no entry is read. Every entry of a slot is watched while the
 * cache is watching: a sync registers them, and a lost connection (which drops
 * registrations) makes the next sync a full one (resync).
 *
 * Whether the list may be the last one: the part that costs nothing. The rest, domain
 * by domain (slot_lists) and the count, is checked by the pass that builds the views,
 * which reads the slot and the listed domain anyway.
 */
static bool slots_may_stand(const struct domcache *dc)
{
    return !dc->resync && dc->n_slots > 0 && dc->n_slot_entries == dc->n_entries;
}

/* Whether slot sl is for listed domain d: the same domain, dying or not as it was. */
static bool slot_lists(const struct dc_slot *sl, const struct backend_domain *d)
{
    return sl->domid == d->domid && (sl->e == NULL) == d->dying &&
           memcmp(sl->handle, d->handle, sizeof(sl->handle)) == 0;
}

/* Match the domain list with the entries: drop the dead and the recycled, make the new
 * (registering their watches), and make the slots again (no memo). dc->slots[i] is
 * list[i]'s slot, its entry NULL when the domain is dying. */
static void sync_entries(struct domcache *dc, const struct backend_domain *list, size_t n)
{
    if (n > dc->slots_cap) {
        dc->slots = xreallocarray(dc->slots, n, sizeof(*dc->slots));
        dc->idents = xreallocarray(dc->idents, n, sizeof(*dc->idents));
        dc->slots_cap = n;
    }
    dc->n_slots = 0; /* being remade: no memo until they are */
    dc->resync = false;
    for (size_t i = 0; i < dc->n_buckets; i++)
        for (struct dc_entry *e = dc->buckets[i]; e != NULL; e = e->next)
            e->seen = false;
    size_t since_drain = 0, with_entry = 0;
    for (size_t i = 0; i < n; i++) {
        const struct backend_domain *d = &list[i];
        struct dc_entry *e = entry_find(dc, d->domid);
        if (e != NULL && memcmp(e->handle, d->handle, sizeof(e->handle)) != 0) {
            log_dom_debug(d->domid, "a new domain (handle changed); forgetting the old "
                                    "one");
            entry_drop(dc, e);
            e = NULL;
        }
        struct dc_slot *sl = &dc->slots[i];
        memset(sl, 0, sizeof(*sl));
        sl->domid = d->domid;
        memcpy(sl->handle, d->handle, sizeof(sl->handle));
        dc->idents[i] = (struct dc_ident){.domid = d->domid};
        if (d->dying)
            continue; /* not seen: its entry goes below */
        if (e == NULL)
            e = entry_new(dc, d);
        sl->e = e;
        dc->idents[i] = (struct dc_ident){
            .domid = d->domid, .read = e->identity_read, .name = e->name, .uuid = e->uuid};
        e->slot = i;
        e->seen = true;
        with_entry++;
        if (dc->watching && !e->watched) {
            entry_watch(dc, e);
            /* Drain as we go: keeps the queue short and consumes the events the
             * registrations fire before anything is read. */
            if (++since_drain >= DRAIN_EVERY) {
                domcache_process_events(dc);
                since_drain = 0;
            }
        }
    }
    for (size_t i = 0; i < dc->n_buckets; i++) {
        struct dc_entry *e = dc->buckets[i];
        while (e != NULL) {
            struct dc_entry *next = e->next;
            if (!e->seen)
                entry_drop(dc, e);
            e = next;
        }
    }
    dc->n_slots = n;
    dc->n_slot_entries = with_entry;
    if (since_drain > 0)
        domcache_process_events(dc);
}

/* What the views of one snapshot add up to. */
struct views {
    size_t m;    /* domains in dc->s_domains, dc->s_extra */
    size_t n_ex; /* in dc->s_excluded */
    int64_t booting_unused_kib;
    int64_t claims_kib;
};

#define VIEWS_LIST_CHANGED 1

/*
 * Build the views of listed domains list[0..n), the list's domains from index `base` on,
 * into the scratch arrays (adding to *v). With `check`, the slots are last time's and
 * each is checked against its listed domain before use: VIEWS_LIST_CHANGED at the first
 * that differs (the caller matches the list in full, then builds it again without
 * `check`). 0, or a negative errno (xenstore could not be read).
 */
static int build_views(struct domcache *dc, const struct backend_domain *list, size_t n,
                       size_t base, bool check, struct views *v)
{
    for (size_t i = 0; i < n; i++) {
        const struct backend_domain *d = &list[i];
        struct dc_slot *sl = &dc->slots[base + i];
        if (check && !slot_lists(sl, d))
            return VIEWS_LIST_CHANGED;
        struct dc_entry *e = sl->e;
        if (e == NULL)
            continue;
        struct dom_out o;
        if (sl->memo && sl->maxmem_xen_kib / PAGE_KIB == d->max_pages) {
            /* Nothing changed the entry since its view was built (its `included` stays
             * true): the memo and the list make it again, the entry is not read. */
            view_of(dc, sl, d, &o);
        } else {
            /* Xen's maxmem is listed for free; keep what we set while it matches in
             * pages (Xen rounds down to pages). */
            if (e->maxmem_xen_kib / PAGE_KIB != d->max_pages)
                entry_set_maxmem_xen(dc, e, (uint64_t)pages_to_kib(d->max_pages));
            e->included = false;
            e->excluded = false;
            e->listed_tot_kib = pages_to_kib(d->total_pages);
            struct dc_slot view;
            int rc = build_domain(dc, e, d, &o, &view);
            if (rc < 0)
                return rc;
            if (rc == 0)
                continue;
            if (rc == 2) {
                exclude(dc, e, d, o.why, &dc->s_excluded[v->n_ex++]);
                continue;
            }
            if (e->excluded_reason != NULL) {
                log_dom_info(e->domid, "back in the snapshot: its xenstore values are in "
                                       "range");
                free(e->excluded_reason);
                e->excluded_reason = NULL;
            }
            e->included = true;
            if (!o.ex.booting && view_settled(dc, e, view.can_balloon)) {
                view.domid = sl->domid;
                memcpy(view.handle, sl->handle, sizeof(view.handle));
                view.e = e;
                view.memo = true;
                *sl = view;
            }
        }
        dc->s_domains[v->m] = o.pd;
        dc->s_extra[v->m] = o.ex;
        v->booting_unused_kib += o.booting_unused_kib;
        v->claims_kib += o.claim_kib;
        v->m++;
    }
    return 0;
}

/* Sort list by domid and keep one of each domid; the new length. */
static size_t sort_unique(struct backend_domain *list, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (list[i - 1].domid >= list[i].domid) {
            qsort(list, n, sizeof(*list), cmp_domid);
            break;
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && list[w - 1].domid == list[i].domid)
            continue;
        if (w != i)
            list[w] = list[i];
        w++;
    }
    return w;
}

/*
 * The steady snapshot: the domain list read in batches of LIST_BATCH (64 KB), each
 * built into views while it is in the processor's cache, checked against last time's
 * slots as it comes. At 32,000 domains the whole list is 2 MB: written out by the
 * backend and read back, it went through the last-level cache twice. A batch is what
 * the Xen backend asks of one xc_domain_getinfolist, so a list costs the hypercalls it
 * did. 0, VIEWS_LIST_CHANGED (the list is not the last one: the caller reads it whole),
 * or a negative errno (logged).
 */
static int stream_views(struct domcache *dc, struct views *v)
{
    size_t max = dc->list_batch;
    if (dc->batch == NULL)
        dc->batch = xcalloc(max, sizeof(*dc->batch));
    size_t i = 0;
    uint32_t first = 0;
    for (;;) {
        COUNT(dc, hypercalls);
        int got = dc->b->ops->list_domains(dc->b, first, dc->batch, max);
        if (got < 0) {
            log_warnx("cannot list domains: %s", strerror(-got));
            return got;
        }
        if ((size_t)got > max || (size_t)got > dc->n_slots - i)
            return VIEWS_LIST_CHANGED; /* more than last time (or a broken backend) */
        int rc = build_views(dc, dc->batch, (size_t)got, i, true, v);
        if (rc != 0)
            return rc;
        i += (size_t)got;
        if ((size_t)got < max || !backend_list_next(dc->batch, (size_t)got, first, &first))
            break;
    }
    return i == dc->n_slots ? 0 : VIEWS_LIST_CHANGED;
}

int domcache_snapshot(struct domcache *dc, const struct domcache_reservation *resv,
                      size_t n_resv, struct domcache_snapshot *out)
{
    struct backend_physinfo pi;
    int rc;

    domcache_process_events(dc);
    /* The last list again, domain for domain (the usual case), is sorted and without
     * duplicates as that one was: the pass that builds the views checks it. Any other
     * list is read whole, put in order (the contract says sorted; a duplicate or
     * unsorted list would break the policy), matched in full, and built. */
    struct views v = {0};
    rc = VIEWS_LIST_CHANGED;
    if (slots_may_stand(dc)) {
        scratch_reserve(dc, dc->n_slots);
        rc = stream_views(dc, &v);
    }
    if (rc == VIEWS_LIST_CHANGED) {
        /* What a first pass did holds: each domain it built was the one of its slot;
         * the list read again is matched and built from scratch. */
        size_t n = 0;
        int calls = backend_list_all(dc->b, &dc->list, &dc->list_cap, &n);
        atomic_fetch_add_explicit(&dc->c.hypercalls, calls < 0 ? 1 : (uint64_t)calls,
                                  memory_order_relaxed);
        if (calls < 0) {
            rc = calls;
            log_warnx("cannot list domains: %s", strerror(-rc));
            goto out;
        }
        n = sort_unique(dc->list, n);
        scratch_reserve(dc, n);
        sync_entries(dc, dc->list, n);
        memset(&v, 0, sizeof(v));
        rc = build_views(dc, dc->list, n, 0, false, &v);
    }
    if (rc < 0)
        goto out;
    COUNT(dc, hypercalls);
    if ((rc = dc->b->ops->physinfo(dc->b, &pi)) < 0) {
        log_warnx("cannot read the host's physical memory figures: %s", strerror(-rc));
        goto out;
    }
    size_t m = v.m, n_ex = v.n_ex;
    int64_t booting_unused = v.booting_unused_kib, claims = v.claims_kib;

    /*
     * The accounting rule (server/reservations.h): an untransferred reservation counts
     * in full. A transferred one counts through its domain: while the domain is in this
     * snapshot (or left out for bad values) its booting unused part is counted above,
     * from the memory/initial-reservation the transfer wrote, and nothing more; while it
     * is listed but not in the snapshot (no xenstore directory or target yet), what it
     * has not allocated yet; once it is gone (not listed, or dying), nothing: what it
     * held comes back as Xen's free memory, never as the reservation's full size again.
     */
    int64_t resv_kib = 0;
    for (size_t i = 0; i < n_resv; i++) {
        if (resv[i].domid < 0) {
            resv_kib += resv[i].kib;
            continue;
        }
        struct dc_entry *e = entry_find(dc, (uint32_t)resv[i].domid);
        if (e == NULL || !e->seen || e->included || e->excluded)
            continue;
        resv_kib += max64(0, resv[i].kib - e->listed_tot_kib);
    }

    /* The arrays built change hands with the caller's last ones (which become the next
     * snapshot's scratch): no copy of what was just written. */
    struct policy_domain *domains = out->domains;
    struct domcache_domain_extra *extra = out->extra;
    size_t cap = out->cap;
    out->domains = dc->s_domains;
    out->extra = dc->s_extra;
    out->cap = dc->s_cap;
    dc->s_domains = domains;
    dc->s_extra = extra;
    dc->s_cap = cap;
    if (n_ex > out->cap_excluded) {
        out->excluded = xreallocarray(out->excluded, n_ex, sizeof(*out->excluded));
        out->cap_excluded = n_ex;
    }
    if (n_ex > 0)
        memcpy(out->excluded, dc->s_excluded, n_ex * sizeof(*out->excluded));
    out->n_excluded = n_ex;
    out->xen_free_kib = pages_to_kib(pi.free_pages);
    out->scrub_kib = pages_to_kib(pi.scrub_pages);
    out->total_kib = pages_to_kib(pi.total_pages);
    out->booting_unused_kib = booting_unused;
    out->claims_kib = claims;
    out->reservations_kib = resv_kib;
    out->host.domains = out->domains;
    out->host.n_domains = m;
    out->host.free_kib =
        out->xen_free_kib + out->scrub_kib - booting_unused - claims - resv_kib;
    COUNT(dc, snapshots);
    rc = 0;
out:
    return rc;
}

/* ---- writes through the cache ---- */

/* Xen's entry for domid from a fresh domain list: 1 and *out (the listed domain) when it
 * is there and not dying, 0 when not, or a negative errno. */
static int listed_now(struct domcache *dc, uint32_t domid, struct backend_domain *out)
{
    struct backend_domain d;
    COUNT(dc, hypercalls);
    int rc = backend_list_one(dc->b, domid, &d);
    if (rc < 0) {
        log_dom_warnx(domid, "cannot list domains: %s", strerror(-rc));
        return rc;
    }
    if (rc == 0 || d.dying)
        return 0;
    *out = d;
    return 1;
}

/* The entry of domid for a maxmem change, made from a fresh domain list when the cache
 * has none yet (created since the last snapshot). *listed_kib gets Xen's maxmem from
 * that list, or -1 when no list was read. 1 found, 0 gone, or a negative errno. */
static int maxmem_entry(struct domcache *dc, uint32_t domid, bool fresh, struct dc_entry **out,
                        int64_t *listed_kib)
{
    struct dc_entry *e = entry_find(dc, domid);
    *listed_kib = -1;
    if (e == NULL || fresh) {
        struct backend_domain d;
        int rc = listed_now(dc, domid, &d);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            log_dom_debug(domid, "not setting maxmem: the domain has gone");
            return 0;
        }
        if (e != NULL && memcmp(e->handle, d.handle, sizeof(e->handle)) != 0) {
            entry_drop(dc, e);
            e = NULL;
        }
        if (e == NULL) {
            e = entry_new(dc, &d);
            if (dc->watching)
                entry_watch(dc, e);
        }
        *listed_kib = pages_to_kib(d.max_pages);
    }
    if (!e->offset_known) {
        /* Booting until a snapshot says otherwise, unless an offset is recorded. */
        int rc = entry_get(dc, e, DK_OFFSET);
        if (rc < 0)
            return rc;
        entry_touch(dc, e);
        e->offset_kib =
            e->v[DK_OFFSET].present && e->v[DK_OFFSET].num_rc == 0 ? e->v[DK_OFFSET].num : 0;
    }
    *out = e;
    return 1;
}

/* One setmaxmem hypercall, in Xen's units. 0 (also when the domain has gone), or a
 * negative errno (logged). */
static int maxmem_call(struct domcache *dc, struct dc_entry *e, int64_t maxmem_kib,
                       int64_t xen_kib)
{
    uint32_t domid = e->domid;
    log_dom_debug(domid, "maxmem %" PRId64 " KiB (Xen %" PRId64 " KiB)", maxmem_kib, xen_kib);
    COUNT(dc, hypercalls);
    int rc = dc->b->ops->set_maxmem(dc->b, domid, (uint64_t)xen_kib);
    if (rc == -ESRCH || rc == -ENOENT) {
        log_dom_debug(domid, "not setting maxmem: the domain has gone");
        forget_domain(dc, domid);
        return 0;
    }
    if (rc < 0) {
        log_dom_warnx(domid, "cannot set maxmem to %" PRId64 " KiB: %s", xen_kib,
                      strerror(-rc));
        return rc;
    }
    entry_set_maxmem_xen(dc, e, (uint64_t)xen_kib);
    return 0;
}

static int64_t xen_maxmem_of(const struct dc_entry *e, int64_t maxmem_kib)
{
    int64_t xen_kib = maxmem_kib + domain_type_xen_offset_kib(e->type) + e->offset_kib;
    return xen_kib < 0 ? 0 : xen_kib;
}

int domcache_set_maxmem(struct domcache *dc, uint32_t domid, int64_t maxmem_kib)
{
    if (maxmem_kib < 0 || maxmem_kib > LIMIT_KIB_MAX)
        return -EINVAL;
    struct dc_entry *e = NULL;
    int64_t listed_kib;
    int rc = maxmem_entry(dc, domid, false, &e, &listed_kib);
    if (rc <= 0)
        return rc;
    int64_t xen_kib = xen_maxmem_of(e, maxmem_kib);
    /* A domain without a balloon driver (still being built, or never ballooning) cannot
     * give memory back: lowering its maxmem can only make its build or its next
     * allocation fail (CP-311475). */
    if ((uint64_t)xen_kib < e->maxmem_xen_kib &&
        (rc = entry_get(dc, e, DK_FEATURE_BALLOON)) < 0)
        return rc;
    if (!e->v[DK_FEATURE_BALLOON].present && (uint64_t)xen_kib < e->maxmem_xen_kib) {
        log_dom_info(domid,
                     "not lowering maxmem to %" PRId64 " KiB: no balloon driver announced",
                     maxmem_kib);
        return 0;
    }
    /* Never skipped on what we believe Xen holds: the toolstack sets maxmem too. */
    return maxmem_call(dc, e, maxmem_kib, xen_kib);
}

int domcache_raise_maxmem(struct domcache *dc, uint32_t domid, int64_t maxmem_kib)
{
    if (maxmem_kib < 0 || maxmem_kib > LIMIT_KIB_MAX)
        return -EINVAL;
    struct dc_entry *e = NULL;
    int64_t listed_kib;
    /* Xen's value asked now, not a cached one: a stale figure must neither skip the
     * raise nor make it a lowering. */
    int rc = maxmem_entry(dc, domid, true, &e, &listed_kib);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return -ESRCH;
    int64_t xen_kib = xen_maxmem_of(e, maxmem_kib);
    if (listed_kib >= xen_kib) {
        entry_set_maxmem_xen(dc, e, (uint64_t)listed_kib);
        log_dom_debug(domid, "maxmem already %" PRId64 " KiB (Xen), >= %" PRId64, listed_kib,
                      xen_kib);
        return 0;
    }
    return maxmem_call(dc, e, maxmem_kib, xen_kib);
}

int domcache_apply(struct domcache *dc, const struct policy_op *op)
{
    if (op->domid < 0 || op->value_kib < 0 || op->value_kib > LIMIT_KIB_MAX)
        return -EINVAL;
    uint32_t domid = (uint32_t)op->domid;
    switch (op->kind) {
    case POLICY_OP_SET_MAXMEM:
        return domcache_set_maxmem(dc, domid, op->value_kib);
    case POLICY_OP_SET_TARGET: {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" PRId64, op->value_kib);
        struct dc_entry *e = entry_find(dc, domid);
        int rc = write_key(dc, domid, e, key_names[DK_TARGET], buf);
        if (rc == -ENOENT) {
            forget_domain(dc, domid);
            return 0;
        }
        return rc;
    }
    }
    return -EINVAL;
}

int domcache_set_uncooperative(struct domcache *dc, uint32_t domid, bool uncooperative)
{
    struct dc_entry *e = entry_find(dc, domid);
    if (uncooperative) {
        int rc = write_key(dc, domid, e, key_names[DK_UNCOOP], "");
        if (rc == -ENOENT) {
            forget_domain(dc, domid);
            return 0;
        }
        return rc;
    }
    if (e != NULL && value_fresh(dc, e, DK_UNCOOP) && !e->v[DK_UNCOOP].present)
        return 0;
    char *dir = e != NULL ? xstrdup(e->path) : backend_domain_path(domid);
    char *path = xasprintf("%s/%s", dir, key_names[DK_UNCOOP]);
    COUNT(dc, xenstore_writes);
    int rc = dc->b->ops->xs_rm(dc->b, path);
    if (rc == -ENOENT)
        rc = 0;
    if (rc == 0 && e != NULL)
        value_set_absent(dc, e, DK_UNCOOP);
    if (rc < 0)
        log_dom_warnx(domid, "cannot remove %s: %s", path, strerror(-rc));
    free(path);
    free(dir);
    return rc;
}

int domcache_read(struct domcache *dc, uint32_t domid, const char *key, char **value)
{
    int k = key_index(key);
    struct dc_entry *e = entry_find(dc, domid);
    if (e != NULL && k >= 0) {
        int rc = entry_get(dc, e, (enum dc_key)k);
        if (rc < 0)
            return rc;
        const struct dc_value *v = &e->v[k];
        if (!v->present)
            return -ENOENT;
        *value = xstrdup(v->str);
        return 0;
    }
    char *dir = backend_domain_path(domid);
    char *path = xasprintf("%s/%s", dir, key);
    COUNT(dc, xenstore_reads);
    int rc = dc->b->ops->xs_read(dc->b, path, value);
    free(path);
    free(dir);
    return rc;
}

/* A name or uuid fit for a label: printable ASCII only, at most 128 bytes; else NULL. */
static char *identity_value(char *v)
{
    if (v == NULL)
        return NULL;
    size_t n = strlen(v);
    bool ok = n > 0 && n <= 128;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] >= 0x20 && v[i] < 0x7f;
    if (!ok) {
        free(v);
        return NULL;
    }
    return v;
}

/* domid's identity record in the last sync's slots, or NULL: where the last call left off
 * (asked in domid order, the next one), else a binary search (slots are in domid order). */
static struct dc_ident *ident_find(struct domcache *dc, uint32_t domid)
{
    size_t n = dc->n_slots, i = dc->ident_next;
    if (i >= n || dc->idents[i].domid != domid) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (dc->idents[mid].domid < domid)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo >= n || dc->idents[lo].domid != domid)
            return NULL;
        i = lo;
    }
    dc->ident_next = i + 1;
    return &dc->idents[i];
}

int domcache_identity(struct domcache *dc, uint32_t domid, const char **name, const char **uuid)
{
    *name = NULL;
    *uuid = NULL;
    const struct dc_ident *id = ident_find(dc, domid);
    if (id != NULL && id->read) {
        *name = id->name;
        *uuid = id->uuid;
        return 0;
    }
    struct dc_entry *e = entry_find(dc, domid);
    if (e == NULL)
        return -ENOENT;
    if (!e->identity_read) {
        e->identity_read = true;
        char *path = xasprintf("%s/name", e->path);
        char *v = NULL;
        COUNT(dc, xenstore_reads);
        if (dc->b->ops->xs_read(dc->b, path, &v) == 0)
            e->name = identity_value(v);
        free(path);
        path = xasprintf("%s/vm", e->path);
        v = NULL;
        COUNT(dc, xenstore_reads);
        if (dc->b->ops->xs_read(dc->b, path, &v) == 0 && v != NULL) {
            const char *slash = strrchr(v, '/');
            e->uuid = identity_value(xstrdup(slash != NULL ? slash + 1 : v));
        }
        free(v);
        free(path);
        if (e->slot < dc->n_slots && dc->slots[e->slot].e == e)
            dc->idents[e->slot] = (struct dc_ident){
                .domid = domid, .read = true, .name = e->name, .uuid = e->uuid};
    }
    *name = e->name;
    *uuid = e->uuid;
    return 0;
}

int domcache_write(struct domcache *dc, uint32_t domid, const char *key, const char *value)
{
    struct dc_entry *e = entry_find(dc, domid);
    int rc = write_key(dc, domid, e, key, value);
    if (rc == -ENOENT)
        forget_domain(dc, domid);
    return rc;
}

/* ---- a reservation's transfer ---- */

int domcache_domain_exists(struct domcache *dc, uint32_t domid)
{
    struct backend_domain d;
    return listed_now(dc, domid, &d);
}
