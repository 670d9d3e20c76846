/* SPDX-License-Identifier: LGPL-2.1-only */
/* The simulated Xen host: domains, balloon drivers, a xenstore tree, a clock (SPEC 6). */
#include "sim/sim.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "sim/simspec.h"
#include "sim/simworld.h"
#include "sim/xstree.h"
#include "common/clock.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xalloc.h"

#define STEP_MS 100 /* the world moves in steps of at most this */

/* ---- small helpers ---- */

void simworld_add_violation_text(struct sim *s, char *line)
{
    if (s->n_violations == s->cap_violations) {
        s->cap_violations = s->cap_violations ? s->cap_violations * 2 : 8;
        s->violations = xreallocarray(s->violations, s->cap_violations, sizeof(*s->violations));
    }
    s->violations[s->n_violations++] = line;
}

static void add_violation(struct sim *s, uint32_t domid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_violation(struct sim *s, uint32_t domid, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *line = xasprintf("t=%.3fs domid %u: %s", (double)s->now_ms / 1000.0, domid, msg);
    free(msg);
    log_warnx("sim: violation: %s", line);
    simworld_add_violation_text(s, line);
}

static size_t dom_index(const struct sim *s, uint32_t domid, bool *found)
{
    size_t lo = 0, hi = s->n_doms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->hv[mid].domid < domid) /* the dense table: no record read */
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->n_doms && s->hv[lo].domid == domid;
    return lo;
}

static void list_one(const struct sim_dom *d, struct backend_domain *o)
{
    memset(o, 0, sizeof(*o));
    o->domid = d->domid;
    o->type = d->type;
    o->dying = false;
    o->total_pages = (uint64_t)d->tot_kib / 4;
    o->max_pages = (uint64_t)d->max_kib / 4;
    o->outstanding_pages = ((uint64_t)d->claim_kib + 3) / 4;
    o->paused = d->paused;
    memcpy(o->handle, d->handle, sizeof(o->handle));
}

void simworld_dom_listed(struct sim *s, const struct sim_dom *d)
{
    bool found;
    size_t i = dom_index(s, d->domid, &found);
    assert(found && s->doms[i] == d);
    list_one(d, &s->hv[i]);
}

struct sim_dom *simworld_dom_find(const struct sim *s, uint32_t domid)
{
    bool found;
    size_t i = dom_index(s, domid, &found);
    return found ? s->doms[i] : NULL;
}

/*
 * Domain records come from chunks of DOM_CHUNK, reused through a free list, so the
 * records of a scenario's domains (made in domid order) lie next to each other rather
 * than among the xenstore tree's nodes: the stepper and the state file walk them in
 * order. The domain list does not read them at all: it copies the dense table s->hv
 * (at 32,000 domains, reading one record per domain was most of a snapshot's time).
 */
#define DOM_CHUNK 256

struct sim_dom_chunk {
    struct sim_dom_chunk *next;
    struct sim_dom recs[DOM_CHUNK];
};

static struct sim_dom *dom_alloc(struct sim *s)
{
    if (s->dom_free == NULL) {
        struct sim_dom_chunk *c = xcalloc(1, sizeof(*c));
        c->next = s->dom_chunks;
        s->dom_chunks = c;
        for (size_t i = DOM_CHUNK; i-- > 0;) {
            c->recs[i].next_free = s->dom_free;
            s->dom_free = &c->recs[i];
        }
    }
    struct sim_dom *d = s->dom_free;
    s->dom_free = d->next_free;
    memset(d, 0, sizeof(*d));
    return d;
}

static void dom_free(struct sim *s, struct sim_dom *d)
{
    if (d == NULL)
        return;
    free(d->target_path);
    d->next_free = s->dom_free; /* dom_alloc zeroes it again */
    s->dom_free = d;
}

static char *dom_key(uint32_t domid, const char *rel)
{
    return xasprintf("/local/domain/%u/%s", domid, rel);
}

/* If path is "/local/domain/<domid>/memory/target", the domid. */
static bool is_target_path(const char *path, uint32_t *domid)
{
    static const char prefix[] = "/local/domain/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *p = path + sizeof(prefix) - 1;
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (strcmp(end, "/memory/target") != 0 || v > LIMIT_DOMID_MAX)
        return false;
    *domid = (uint32_t)v;
    return true;
}

/* If path is "/local/domain/<domid>" or below, the domid. */
static bool rm_hits_one_domain(const char *path, uint32_t *domid)
{
    static const char prefix[] = "/local/domain/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *p = path + sizeof(prefix) - 1;
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if ((*end != '\0' && *end != '/') || v > LIMIT_DOMID_MAX)
        return false;
    *domid = (uint32_t)v;
    return true;
}

/* The stepper skips settled domains; it keeps a count to skip idle stretches at once. */
static void set_settled(struct sim *s, struct sim_dom *d, bool settled)
{
    if (d->settled == settled)
        return;
    d->settled = settled;
    if (settled)
        s->n_unsettled--;
    else
        s->n_unsettled++;
}

/* ---- xenstore, as the world itself changes it (no counters, no checks) ---- */

static void xs_set(struct sim *s, const char *path, const char *value)
{
    if (xstree_write(s->xs, path, value) < 0)
        return;
    simjournal_note_xs(s, path, value);
    uint32_t domid;
    struct sim_dom *d;
    if (is_target_path(path, &domid) && (d = simworld_dom_find(s, domid)) != NULL) {
        d->target_valid = parse_int64(value, 0, INT64_MAX, &d->target_kib) == 0;
        d->target_epoch = s->rm_epoch;
        set_settled(s, d, false);
    }
}

static int xs_del(struct sim *s, const char *path)
{
    uint64_t before = xstree_generation(s->xs);
    int rc = xstree_rm(s->xs, path);
    if (xstree_generation(s->xs) != before) {
        simjournal_note_xs(s, path, NULL);
        s->rm_epoch++;
        /* Wake the drivers whose memory/target may have gone with it. */
        uint32_t domid;
        struct sim_dom *d;
        if (rm_hits_one_domain(path, &domid)) {
            if ((d = simworld_dom_find(s, domid)) != NULL)
                set_settled(s, d, false);
        } else if (strncmp("/local/domain", path, strlen(path)) == 0) {
            for (size_t i = 0; i < s->n_doms; i++)
                set_settled(s, s->doms[i], false);
        }
    }
    return rc;
}

static void xs_set_dom(struct sim *s, uint32_t domid, const char *rel, const char *value)
{
    char *path = dom_key(domid, rel);
    xs_set(s, path, value);
    free(path);
}

static void xs_set_dom_i64(struct sim *s, uint32_t domid, const char *rel, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    xs_set_dom(s, domid, rel, buf);
}

/* The domain's memory/target, or false if absent or not a number. */
static bool dom_target(struct sim *s, struct sim_dom *d, int64_t *target_kib)
{
    if (d->target_epoch != s->rm_epoch) {
        const char *v = xstree_get(s->xs, d->target_path);
        d->target_valid = parse_int64(v, 0, INT64_MAX, &d->target_kib) == 0;
        d->target_epoch = s->rm_epoch;
    }
    *target_kib = d->target_kib;
    return d->target_valid;
}

static int64_t dom_actual(const struct sim_dom *d)
{
    return d->tot_kib - d->memory_offset_kib;
}

/* maxmem in guest units (without the per-type slack and the memory offset). */
static int64_t dom_maxmem(const struct sim_dom *d)
{
    return d->max_kib - domain_type_xen_offset_kib(d->type) - d->memory_offset_kib;
}

/* ---- balloon drivers ---- */

static void dom_boot(struct sim *s, struct sim_dom *d)
{
    d->booted = true;
    /* The daemon calibrates memory-offset as total - target when a guest boots, which
     * holds for a guest that boots at its target. One that does not (a scenario guest
     * caught mid-balloon, as after a daemon restart) carries the offset an earlier
     * daemon would have recorded. */
    int64_t target;
    char *off_path = dom_key(d->domid, "memory/memory-offset");
    if (dom_target(s, d, &target) && target != dom_actual(d) && !xstree_exists(s->xs, off_path))
        xs_set_dom_i64(s, d->domid, "memory/memory-offset", d->memory_offset_kib);
    free(off_path);
    xs_set_dom(s, d->domid, "data/updated", "1");
    if (d->balloon.model != SIM_BALLOON_NONE)
        xs_set_dom(s, d->domid, "control/feature-balloon", "1");
}

/* Take up to want_kib from the host for d: bounded by host free memory not claimed by
 * other domains, as Xen allocates (recording a violation when the guest wanted more).
 * What d gets comes out of its own claim first. Returns what it got. */
static int64_t host_take(struct sim *s, struct sim_dom *d, int64_t want_kib)
{
    int64_t avail = s->free_kib + s->scrub_kib;
    int64_t unclaimed = avail - (s->claimed_kib - d->claim_kib);
    if (unclaimed < 0)
        unclaimed = 0;
    int64_t got = want_kib;
    if (want_kib > unclaimed) {
        if (!d->free_limited && want_kib > avail)
            add_violation(s, d->domid,
                          "free<0: guest wanted %" PRId64
                          " KiB more but the host had only %" PRId64
                          " KiB free (actual %" PRId64 " KiB)",
                          want_kib, avail, dom_actual(d));
        else if (!d->free_limited)
            add_violation(s, d->domid,
                          "claimed: guest wanted %" PRId64 " KiB more; the host had %" PRId64
                          " KiB free but %" PRId64 " KiB of it claimed by other domains "
                          "(actual %" PRId64 " KiB)",
                          want_kib, avail, s->claimed_kib - d->claim_kib, dom_actual(d));
        d->free_limited = true;
        got = unclaimed;
    } else {
        d->free_limited = false;
    }
    int64_t from_claim = got < d->claim_kib ? got : d->claim_kib;
    d->claim_kib -= from_claim;
    s->claimed_kib -= from_claim;
    /* Xen hands out clean free pages first, then scrubs dirty ones on demand. */
    int64_t from_free = got < s->free_kib ? got : s->free_kib;
    s->free_kib -= from_free;
    s->scrub_kib -= got - from_free;
    return got;
}

/* Move d's actual towards goal_kib with budget_kib (fractional) of movement. */
static void dom_move(struct sim *s, struct sim_dom *d, int64_t goal_kib, double budget_kib)
{
    int64_t actual = dom_actual(d);
    if (goal_kib == actual) {
        d->frac_kib = 0;
        d->free_limited = false;
        return;
    }
    double total = budget_kib + d->frac_kib;
    /* The epsilon absorbs rounding (0.1 s steps are not exact in binary). */
    int64_t step = (int64_t)floor(total + 1e-6);
    int64_t dist = goal_kib > actual ? goal_kib - actual : actual - goal_kib;
    if (step >= dist) {
        step = dist;
        d->frac_kib = 0;
    } else {
        d->frac_kib = total > (double)step ? total - (double)step : 0;
    }
    if (step <= 0)
        return;
    if (goal_kib < actual) {
        d->tot_kib -= step;
        s->free_kib += step;
        d->free_limited = false;
        simworld_dom_listed(s, d);
        return;
    }
    /* Growing: Xen refuses pages past max_pages (no violation: that is its job). */
    int64_t room = d->max_kib - d->tot_kib;
    if (room < 0)
        room = 0;
    if (step > room) {
        step = room;
        d->frac_kib = 0;
    }
    if (step <= 0) {
        d->free_limited = false;
        return;
    }
    d->tot_kib += host_take(s, d, step); /* and its claim */
    simworld_dom_listed(s, d);
}

/* How much of [t0_s, t1_s) (domain time) falls in the intermittent driver's active
 * periods [0, p), [2p, 3p), ... */
static double intermittent_active_s(double t0_s, double t1_s, double p)
{
    double active = 0;
    double k = floor(t0_s / (2 * p));
    for (double start = k * 2 * p; start < t1_s; start += 2 * p) {
        double a = start > t0_s ? start : t0_s;
        double b = start + p < t1_s ? start + p : t1_s;
        if (b > a)
            active += b - a;
    }
    return active;
}

static void dom_step(struct sim *s, struct sim_dom *d, int64_t t0_ms, int64_t dt_ms)
{
    double dt_s = (double)dt_ms / 1000.0;
    if (!d->booted) {
        int64_t actual = dom_actual(d);
        if (d->initial_reservation_kib > actual)
            dom_move(s, d, d->initial_reservation_kib, d->balloon.rate_kib_s * dt_s);
        double age_s = (double)(t0_ms + dt_ms - d->created_ms) / 1000.0;
        /* Booted once old enough and allocated (or unable to allocate more at all). */
        bool allocated =
            dom_actual(d) >= d->initial_reservation_kib || d->tot_kib >= d->max_kib;
        if (age_s + 1e-9 >= d->boot_after_s && allocated)
            dom_boot(s, d);
        return;
    }
    const struct sim_balloon *b = &d->balloon;
    int64_t target;
    /* A paused guest's driver does not run. */
    if (b->model == SIM_BALLOON_STUCK || b->model == SIM_BALLOON_NONE || d->paused ||
        !dom_target(s, d, &target)) {
        set_settled(s, d, true);
        return;
    }
    int64_t actual = dom_actual(d);
    int64_t goal = actual;
    if (target < actual) {
        goal = target + b->stop_short_kib;
        if (goal > actual)
            goal = actual;
        if (b->model == SIM_BALLOON_FLOOR && goal < b->floor_kib)
            goal = b->floor_kib > actual ? actual : b->floor_kib;
    } else if (target > actual) {
        goal = target - b->stop_short_kib;
        if (goal < actual)
            goal = actual;
        if (b->model == SIM_BALLOON_CEILING && goal > b->ceiling_kib)
            goal = b->ceiling_kib < actual ? actual : b->ceiling_kib;
    }
    if (goal == actual) {
        set_settled(s, d, true);
        d->frac_kib = 0;
        d->free_limited = false;
        return;
    }
    double active_s = dt_s;
    if (b->model == SIM_BALLOON_INTERMITTENT) {
        double age0 = (double)(t0_ms - d->created_ms) / 1000.0;
        active_s = intermittent_active_s(age0, age0 + dt_s, b->period_s);
    }
    dom_move(s, d, goal, b->rate_kib_s * active_s);
}

/* Run the world forward to sim time to_ms. */
static void run_until(struct sim *s, int64_t to_ms)
{
    while (s->now_ms < to_ms) {
        if (s->n_unsettled == 0) {
            s->now_ms = to_ms; /* nothing can move until someone changes something */
            break;
        }
        int64_t dt = to_ms - s->now_ms;
        if (dt > STEP_MS)
            dt = STEP_MS;
        /* Domains may be added by nobody during a step, so the array is stable. */
        for (size_t i = 0; i < s->n_doms; i++) {
            if (!s->doms[i]->settled) {
                simjournal_note_dom(s, s->doms[i]);
                dom_step(s, s->doms[i], s->now_ms, dt);
            }
        }
        s->now_ms += dt;
    }
}

/* Real clock: catch the world up with CLOCK_MONOTONIC. */
static void sync_clock(struct sim *s)
{
    if (s->clock == SIM_CLOCK_REAL)
        run_until(s, clock_monotonic_ms() - s->origin_ms);
}

/* Record what the last call changed in the state file's journal. A change that cannot be
 * saved makes the call fail (-EIO): it is not acknowledged as if it were kept. */
static int persist(struct sim *s)
{
    if (s->state_file == NULL)
        return 0;
    int rc =
        s->journal != NULL ? simjournal_commit(s, false) : simjournal_open(s, s->state_file);
    if (rc < 0) {
        log_warnx("sim: cannot save the simulated host to %s: %s", s->state_file,
                  strerror(-rc));
        return -EIO;
    }
    return 0;
}

/* ---- domains ---- */

static void random_handle(uint8_t handle[16])
{
    static uint64_t fallback;
    if (getrandom(handle, 16, 0) == 16)
        return;
    /* No entropy source: still unique within this process. */
    uint64_t v = ++fallback ^ (uint64_t)clock_monotonic_ms() << 20;
    memset(handle, 0, 16);
    memcpy(handle, &v, sizeof(v));
}

struct sim_dom *simworld_dom_insert(struct sim *s, uint32_t domid)
{
    bool found;
    size_t i = dom_index(s, domid, &found);
    assert(!found);
    if (s->n_doms == s->cap_doms) {
        s->cap_doms = s->cap_doms ? s->cap_doms * 2 : 16;
        s->doms = xreallocarray(s->doms, s->cap_doms, sizeof(*s->doms));
        s->hv = xreallocarray(s->hv, s->cap_doms, sizeof(*s->hv));
    }
    memmove(s->doms + i + 1, s->doms + i, (s->n_doms - i) * sizeof(*s->doms));
    memmove(s->hv + i + 1, s->hv + i, (s->n_doms - i) * sizeof(*s->hv));
    struct sim_dom *d = dom_alloc(s);
    d->domid = domid;
    d->target_path = dom_key(domid, "memory/target");
    d->target_epoch = UINT64_MAX; /* read on first use */
    s->doms[i] = d;
    list_one(d, &s->hv[i]);
    s->n_doms++;
    s->n_unsettled++; /* d->settled is false */
    return d;
}

bool simworld_dom_remove(struct sim *s, uint32_t domid)
{
    bool found;
    size_t i = dom_index(s, domid, &found);
    if (!found)
        return false;
    struct sim_dom *d = s->doms[i];
    set_settled(s, d, true);
    memmove(s->doms + i, s->doms + i + 1, (s->n_doms - i - 1) * sizeof(*s->doms));
    memmove(s->hv + i, s->hv + i + 1, (s->n_doms - i - 1) * sizeof(*s->hv));
    s->n_doms--;
    dom_free(s, d);
    return true;
}

/* Create d from a validated spec; memory accounting is the caller's. */
static struct sim_dom *dom_create(struct sim *s, const struct sim_domain_spec *sp)
{
    struct sim_dom *d = simworld_dom_insert(s, sp->domid);
    d->type = sp->type;
    d->memory_offset_kib = sp->memory_offset_kib;
    d->tot_kib = sp->actual_kib + sp->memory_offset_kib;
    d->max_kib = sp->maxmem_kib + domain_type_xen_offset_kib(sp->type) + sp->memory_offset_kib;
    d->initial_reservation_kib = sp->initial_reservation_kib;
    d->boot_after_s = sp->boot_after_s;
    d->balloon = sp->balloon;
    d->claim_kib = sp->claim_kib;
    s->claimed_kib += sp->claim_kib;
    d->created_ms = s->now_ms;
    d->shadow_mib = 0;
    random_handle(d->handle);
    simworld_dom_listed(s, d);

    char *dir = backend_domain_path(sp->domid);
    xs_set(s, dir, "");
    free(dir);
    xs_set_dom_i64(s, d->domid, "memory/target", sp->target_kib);
    xs_set_dom_i64(s, d->domid, "memory/dynamic-min", sp->dynamic_min_kib);
    xs_set_dom_i64(s, d->domid, "memory/dynamic-max", sp->dynamic_max_kib);
    if (sp->initial_reservation_kib > 0)
        xs_set_dom_i64(s, d->domid, "memory/initial-reservation", sp->initial_reservation_kib);
    if (sp->initial_reservation_kib == 0 && sp->boot_after_s <= 0)
        dom_boot(s, d);
    return d;
}

struct sim *simworld_alloc(enum sim_clock_mode clock)
{
    struct sim *s = xcalloc(1, sizeof(*s));
    s->clock = clock;
    s->xs = xstree_new();
    s->origin_ms = clock_monotonic_ms();
    return s;
}

struct sim *sim_new(const struct sim_scenario *sc, enum sim_clock_mode clock, char **err)
{
    const struct sim_host_spec *h = &sc->host;
    if (h->total_kib < 0 || h->free_kib < 0 || h->scrub_kib < 0 ||
        h->total_kib > LIMIT_KIB_MAX || h->free_kib + h->scrub_kib > h->total_kib) {
        if (err != NULL)
            *err = xasprintf("host: free_kib %lld + scrub_kib %lld must fit in total_kib "
                             "%lld (all >= 0)",
                             (long long)h->free_kib, (long long)h->scrub_kib,
                             (long long)h->total_kib);
        return NULL;
    }
    int64_t used = 0, claimed = 0;
    /* Domids seen, one bit each (validated domids are at most LIMIT_DOMID_MAX): a search
     * of the ones before each domain made a 32,000-domain start-up take seconds. */
    uint64_t *seen = xcalloc(LIMIT_DOMID_MAX / 64 + 1, sizeof(*seen));
    for (size_t i = 0; i < sc->n_domains; i++) {
        char where[32];
        snprintf(where, sizeof(where), "domains[%zu]", i);
        if (simspec_validate(&sc->domains[i], where, err) < 0) {
            free(seen);
            return NULL;
        }
        uint32_t id = sc->domains[i].domid;
        if (seen[id / 64] & (UINT64_C(1) << (id % 64))) {
            if (err != NULL)
                *err = xasprintf("%s.domid: duplicate domid %u", where, id);
            free(seen);
            return NULL;
        }
        seen[id / 64] |= UINT64_C(1) << (id % 64);
        used += sc->domains[i].actual_kib + sc->domains[i].memory_offset_kib;
        claimed += sc->domains[i].claim_kib;
    }
    free(seen);
    if (claimed > h->free_kib + h->scrub_kib) {
        if (err != NULL)
            *err = xasprintf("domains: claims of %lld KiB in all are more than the host's "
                             "free %lld KiB (Xen refuses such a claim)",
                             (long long)claimed, (long long)(h->free_kib + h->scrub_kib));
        return NULL;
    }
    if (used + h->free_kib + h->scrub_kib > h->total_kib) {
        if (err != NULL)
            *err = xasprintf("domains: the domains hold %lld KiB which with host free "
                             "%lld KiB and scrub %lld KiB is more than the host's total "
                             "%lld KiB",
                             (long long)used, (long long)h->free_kib, (long long)h->scrub_kib,
                             (long long)h->total_kib);
        return NULL;
    }
    struct sim *s = simworld_alloc(clock);
    s->name = xstrdup(sc->name ? sc->name : "unnamed");
    s->total_kib = h->total_kib;
    s->free_kib = h->free_kib;
    s->scrub_kib = h->scrub_kib;
    for (size_t i = 0; i < sc->n_domains; i++)
        dom_create(s, &sc->domains[i]);
    return s;
}

void sim_free(struct sim *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_doms; i++)
        dom_free(s, s->doms[i]);
    free(s->doms);
    free(s->hv);
    while (s->dom_chunks != NULL) {
        struct sim_dom_chunk *c = s->dom_chunks;
        s->dom_chunks = c->next;
        free(c);
    }
    xstree_free(s->xs);
    for (size_t i = 0; i < s->n_violations; i++)
        free(s->violations[i]);
    free(s->violations);
    free(s->name);
    simjournal_close(s->journal);
    free(s->state_file);
    free(s);
}

/* ---- clock ---- */

enum sim_clock_mode sim_clock_mode(const struct sim *s)
{
    return s->clock;
}

int64_t sim_now_ms(struct sim *s)
{
    sync_clock(s);
    return s->now_ms;
}

void sim_advance(struct sim *s, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (s->clock == SIM_CLOCK_REAL) {
        sync_clock(s);
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        sync_clock(s);
    } else {
        run_until(s, s->now_ms + ms);
    }
    (void)persist(s); /* logged; time has passed whether or not it is saved */
}

/* ---- driving the world ---- */

int sim_create_domain(struct sim *s, const struct sim_domain_spec *d, char **err)
{
    sync_clock(s);
    int rc = simspec_validate(d, NULL, err);
    if (rc < 0)
        return rc;
    if (simworld_dom_find(s, d->domid) != NULL) {
        if (err != NULL)
            *err = xasprintf("domid: domain %u already exists", d->domid);
        return -EEXIST;
    }
    int64_t need = d->actual_kib + d->memory_offset_kib;
    int64_t unclaimed = s->free_kib + s->scrub_kib - s->claimed_kib;
    if (need > unclaimed) {
        if (err != NULL)
            *err = xasprintf("actual_kib: the domain needs %lld KiB, the host has %lld KiB "
                             "free not claimed by other domains",
                             (long long)need, (long long)unclaimed);
        return -ENOMEM;
    }
    if (d->claim_kib > unclaimed - need) {
        if (err != NULL)
            *err = xasprintf("claim_kib: %lld KiB, but the host has %lld KiB free and "
                             "unclaimed once the domain is created",
                             (long long)d->claim_kib, (long long)(unclaimed - need));
        return -ENOMEM;
    }
    int64_t from_free = need < s->free_kib ? need : s->free_kib;
    s->free_kib -= from_free;
    s->scrub_kib -= need - from_free;
    dom_create(s, d);
    simjournal_note_dom(s, simworld_dom_find(s, d->domid));
    xstree_fire_special(s->xs, "@introduceDomain");
    return persist(s);
}

int sim_destroy_domain(struct sim *s, uint32_t domid)
{
    sync_clock(s);
    struct sim_dom *d = simworld_dom_find(s, domid);
    if (d == NULL)
        return -ENOENT;
    s->free_kib += d->tot_kib;
    s->claimed_kib -= d->claim_kib;
    simworld_dom_remove(s, domid);
    char *dir = backend_domain_path(domid);
    xs_del(s, dir);
    free(dir);
    simjournal_note_gone(s, domid);
    xstree_fire_special(s->xs, "@releaseDomain");
    return persist(s);
}

int sim_set_dynamic_range(struct sim *s, uint32_t domid, int64_t min_kib, int64_t max_kib)
{
    sync_clock(s);
    if (simworld_dom_find(s, domid) == NULL)
        return -ENOENT;
    if (min_kib < 0 || max_kib < 0 || min_kib > max_kib || max_kib > LIMIT_KIB_MAX)
        return -EINVAL;
    xs_set_dom_i64(s, domid, "memory/dynamic-min", min_kib);
    xs_set_dom_i64(s, domid, "memory/dynamic-max", max_kib);
    return persist(s);
}

int sim_set_balloon(struct sim *s, uint32_t domid, const struct sim_balloon *b)
{
    sync_clock(s);
    struct sim_dom *d = simworld_dom_find(s, domid);
    if (d == NULL)
        return -ENOENT;
    if (simspec_validate_balloon(b, NULL, NULL) < 0)
        return -EINVAL;
    bool was_none = d->balloon.model == SIM_BALLOON_NONE;
    d->balloon = *b;
    d->frac_kib = 0;
    set_settled(s, d, false);
    /* A driver loaded into a running guest announces itself. */
    if (was_none && b->model != SIM_BALLOON_NONE && d->booted)
        xs_set_dom(s, d->domid, "control/feature-balloon", "1");
    simjournal_note_dom(s, d);
    return persist(s);
}

int sim_set_claim(struct sim *s, uint32_t domid, int64_t kib)
{
    sync_clock(s);
    struct sim_dom *d = simworld_dom_find(s, domid);
    if (d == NULL)
        return -ENOENT;
    if (kib < 0 || kib > LIMIT_KIB_MAX)
        return -EINVAL;
    if (kib > s->free_kib + s->scrub_kib - (s->claimed_kib - d->claim_kib))
        return -ENOMEM;
    s->claimed_kib += kib - d->claim_kib;
    d->claim_kib = kib;
    simworld_dom_listed(s, d);
    /* Pages it wanted and was refused may now be its own. */
    set_settled(s, d, false);
    persist(s);
    return 0;
}

int sim_pause_domain(struct sim *s, uint32_t domid, bool paused)
{
    sync_clock(s);
    struct sim_dom *d = simworld_dom_find(s, domid);
    if (d == NULL)
        return -ENOENT;
    d->paused = paused;
    simworld_dom_listed(s, d);
    d->frac_kib = 0;
    set_settled(s, d, false);
    persist(s);
    return 0;
}

int64_t sim_claimed_kib(const struct sim *s)
{
    return s->claimed_kib;
}

/* ---- truth ---- */

static json_t *xs_int_or_null(struct sim *s, uint32_t domid, const char *rel)
{
    char *path = dom_key(domid, rel);
    const char *v = xstree_get(s->xs, path);
    free(path);
    int64_t n;
    if (parse_int64(v, INT64_MIN, INT64_MAX, &n) == 0)
        return json_integer(n);
    return json_null();
}

static bool xs_dom_has(struct sim *s, uint32_t domid, const char *rel)
{
    char *path = dom_key(domid, rel);
    bool r = xstree_exists(s->xs, path);
    free(path);
    return r;
}

json_t *sim_state_json(struct sim *s)
{
    sync_clock(s);
    json_t *doms = json_array();
    for (size_t i = 0; i < s->n_doms; i++) {
        struct sim_dom *d = s->doms[i];
        json_array_append_new(
            doms,
            json_pack("{s:I, s:I, s:o, s:I, s:o, s:o, s:b, s:b, s:I, s:b}", "domid",
                      (json_int_t)d->domid, "actual_kib", (json_int_t)dom_actual(d),
                      "target_kib", xs_int_or_null(s, d->domid, "memory/target"), "maxmem_kib",
                      (json_int_t)dom_maxmem(d), "dynamic_min_kib",
                      xs_int_or_null(s, d->domid, "memory/dynamic-min"), "dynamic_max_kib",
                      xs_int_or_null(s, d->domid, "memory/dynamic-max"), "can_balloon",
                      xs_dom_has(s, d->domid, "control/feature-balloon"), "uncooperative",
                      xs_dom_has(s, d->domid, "memory/uncooperative"), "claim_kib",
                      (json_int_t)d->claim_kib, "paused", d->paused));
    }
    json_t *viol = json_array();
    for (size_t i = 0; i < s->n_violations; i++)
        json_array_append_new(viol, json_string(s->violations[i]));
    return json_pack("{s:f, s:I, s:I, s:o, s:o}", "time_s", (double)s->now_ms / 1000.0,
                     "free_kib", (json_int_t)s->free_kib, "claimed_kib",
                     (json_int_t)s->claimed_kib, "domains", doms, "violations", viol);
}

size_t sim_violation_count(const struct sim *s)
{
    return s->n_violations;
}

const char *sim_violation(const struct sim *s, size_t i)
{
    return i < s->n_violations ? s->violations[i] : NULL;
}

int64_t sim_host_free_kib(struct sim *s)
{
    sync_clock(s);
    return s->free_kib;
}

int sim_domain_memory(struct sim *s, uint32_t domid, int64_t *actual_kib, int64_t *target_kib,
                      int64_t *maxmem_kib)
{
    sync_clock(s);
    struct sim_dom *d = simworld_dom_find(s, domid);
    if (d == NULL)
        return -ENOENT;
    if (actual_kib != NULL)
        *actual_kib = dom_actual(d);
    if (target_kib != NULL) {
        int64_t t;
        *target_kib = dom_target(s, d, &t) ? t : -1;
    }
    if (maxmem_kib != NULL)
        *maxmem_kib = dom_maxmem(d);
    return 0;
}

/* ---- hypervisor view ---- */

int sim_list_domains(struct sim *s, struct backend_domain **out, size_t *n)
{
    sync_clock(s);
    s->counters.list_domains++;
    struct backend_domain *v = xcalloc(s->n_doms + 1, sizeof(*v));
    for (size_t i = 0; i < s->n_doms; i++) {
        /* The truth, from the records: the table the backend lists must agree. */
        list_one(s->doms[i], &v[i]);
        if (memcmp(&v[i], &s->hv[i], sizeof(v[i])) != 0) {
            log_errx("sim: the domain list's entry for domid %" PRIu32 " is stale", v[i].domid);
            abort();
        }
    }
    *out = v;
    *n = s->n_doms;
    return 0;
}

int sim_list_domains_from(struct sim *s, uint32_t first, struct backend_domain *out, size_t max)
{
    sync_clock(s);
    s->counters.list_domains++;
    if (max > INT_MAX)
        max = INT_MAX;
    bool found;
    size_t i = dom_index(s, first, &found);
    size_t k = s->n_doms - i < max ? s->n_doms - i : max;
    if (k > 0)
        memcpy(out, &s->hv[i], k * sizeof(*out));
    return (int)k;
}

int sim_physinfo(struct sim *s, struct backend_physinfo *out)
{
    sync_clock(s);
    s->counters.physinfo++;
    out->free_pages = (uint64_t)s->free_kib / 4;
    out->scrub_pages = (uint64_t)s->scrub_kib / 4;
    out->total_pages = (uint64_t)s->total_kib / 4;
    return 0;
}

int sim_set_maxmem(struct sim *s, uint32_t domid, uint64_t maxmem_kib)
{
    sync_clock(s);
    s->counters.set_maxmem++;
    struct sim_dom *d = simworld_dom_find(s, domid);
    if (d == NULL)
        return -ESRCH;
    if (maxmem_kib > (uint64_t)LIMIT_KIB_MAX)
        return -EINVAL;
    int64_t new_max = (int64_t)maxmem_kib;
    int64_t guest = new_max - domain_type_xen_offset_kib(d->type) - d->memory_offset_kib;
    int64_t target;
    /* Compare with what Xen reports the guest holds: whole pages. The guest's KiB
     * beyond its last whole page are invisible to the daemon, which can only ever clip
     * maxmem to the page-rounded figure. */
    int64_t actual = (dom_actual(d) + d->memory_offset_kib) / 4 * 4 - d->memory_offset_kib;
    if (dom_target(s, d, &target) && guest < target && guest < actual)
        add_violation(s, domid,
                      "maxmem<target: maxmem set to %" PRId64 " KiB (Xen %" PRId64
                      " KiB), below both target %" PRId64 " KiB and actual %" PRId64 " KiB",
                      guest, new_max, target, actual);
    d->max_kib = new_max;
    simworld_dom_listed(s, d);
    simjournal_note_dom(s, d);
    return persist(s);
}

int sim_shadow_allocation_mib(struct sim *s, uint32_t domid, uint32_t *mib)
{
    sync_clock(s);
    struct sim_dom *d = simworld_dom_find(s, domid);
    if (d == NULL)
        return -ESRCH;
    *mib = d->shadow_mib;
    return 0;
}

/* ---- xenstore, as clients see it ---- */

int sim_xs_read(struct sim *s, const char *path, char **value)
{
    sync_clock(s);
    s->counters.xs_reads++;
    return xstree_read(s->xs, path, value);
}

int sim_xs_write(struct sim *s, const char *path, const char *value)
{
    sync_clock(s);
    s->counters.xs_writes++;
    if (value == NULL || xstree_check_path(path) < 0)
        return -EINVAL;
    char *before = NULL;
    bool existed = xstree_read(s->xs, path, &before) == 0;
    xs_set(s, path, value);
    uint32_t domid;
    struct sim_dom *d;
    int64_t target;
    if (is_target_path(path, &domid) && (d = simworld_dom_find(s, domid)) != NULL &&
        parse_int64(value, INT64_MIN, INT64_MAX, &target) == 0 && target > dom_maxmem(d))
        add_violation(s, domid,
                      "target>maxmem: memory/target written as %" PRId64
                      " KiB, above maxmem %" PRId64 " KiB (Xen max %" PRId64
                      " KiB, memory offset %" PRId64 " KiB)",
                      target, dom_maxmem(d), d->max_kib, d->memory_offset_kib);
    /* A write that cannot be saved did not happen: on Xen an answered write is in
     * xenstore, and a reservation is acknowledged only once it is stored (issue 11, F5). */
    int rc = persist(s);
    if (rc < 0) {
        if (existed)
            xs_set(s, path, before);
        else
            xs_del(s, path);
    }
    free(before);
    return rc < 0 ? -EIO : 0;
}

int sim_xs_rm(struct sim *s, const char *path)
{
    sync_clock(s);
    s->counters.xs_writes++;
    int rc = xs_del(s, path);
    if (rc < 0)
        return rc;
    return persist(s);
}

int sim_xs_directory(struct sim *s, const char *path, char ***entries, size_t *n)
{
    sync_clock(s);
    s->counters.xs_reads++;
    return xstree_directory(s->xs, path, entries, n);
}

bool sim_xs_exists(struct sim *s, const char *path)
{
    sync_clock(s);
    return xstree_exists(s->xs, path);
}

uint64_t sim_xs_generation(const struct sim *s)
{
    return xstree_generation(s->xs);
}

int sim_xs_watch(struct sim *s, const char *path, const char *token)
{
    sync_clock(s);
    return xstree_watch(s->xs, path, token);
}

int sim_xs_unwatch(struct sim *s, const char *path, const char *token)
{
    sync_clock(s);
    return xstree_unwatch(s->xs, path, token);
}

int sim_xs_read_watch(struct sim *s, struct backend_watch_event *ev)
{
    sync_clock(s);
    return xstree_read_watch(s->xs, ev);
}

int sim_xs_watch_fd(struct sim *s)
{
    return xstree_watch_fd(s->xs);
}

void sim_xs_set_watch_queue_limit(struct sim *s, size_t limit)
{
    xstree_set_watch_queue_limit(s->xs, limit);
}

void sim_xs_drop_watches(struct sim *s)
{
    xstree_drop_watches(s->xs);
}

void sim_counters(const struct sim *s, struct sim_counters *out)
{
    *out = s->counters;
}

void sim_set_state_file(struct sim *s, const char *path)
{
    simjournal_close(s->journal);
    s->journal = NULL;
    free(s->state_file);
    s->state_file = NULL;
    if (path == NULL)
        return;
    s->state_file = xstrdup(path);
    int rc = simjournal_open(s, path);
    if (rc < 0)
        log_warnx("sim: cannot save the simulated host to %s: %s", path, strerror(-rc));
}
