/* SPDX-License-Identifier: LGPL-2.1-only */
/* The squeeze core: proportional balloon targets, stuck tracking and verdicts (SPEC 3). */
#include "policy/policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/xalloc.h"

/*
 * Sizes above LIMIT_KIB_MAX (1 PiB) are refused as absurd, and so are snapshots of more
 * than LIMIT_DOMAINS_MAX domains (Xen itself stops below 32768). Together the two bounds
 * keep every sum below 2^61, so int64_t arithmetic cannot overflow anywhere here.
 */

/* What the stuck tracker knows of one domain during an operation. */
struct stuck_entry {
    int32_t domid;
    bool stuck;
    bool newly_stuck;         /* declared stuck in the current round */
    bool newly_active;        /* stuck until the current round */
    int64_t last_actual_kib;  /* actual seen in the previous round */
    int64_t last_progress_ms; /* last round it moved towards (or sat at) its target */
    int64_t clip_kib;         /* maxmem set when declared stuck; valid while stuck */
};

struct policy_state {
    struct stuck_entry *ents; /* sorted by domid: parallel to the last snapshot */
    size_t n_ents;
    size_t cap_ents;
    struct stuck_entry *spare; /* the next round's array, swapped with ents */
    size_t cap_spare;
    uint64_t rounds; /* rounds run since new / reset */
    bool have_ideal; /* FREE_RANGE: ideal_kib fixed for [ideal_min, ideal_max] */
    int64_t ideal_kib;
    int64_t ideal_min_kib;
    int64_t ideal_max_kib;
};

/* One domain's uncooperative tracking. */
struct coop_entry {
    int32_t domid;
    bool uncooperative;
    int64_t last_coop_ms; /* last time it could not balloon or sat at its target */
};

struct policy_coop {
    struct coop_entry *ents; /* sorted by domid */
    size_t n_ents;
    size_t cap_ents;
    struct coop_entry *spare;
    size_t cap_spare;
};

/* Sums over one snapshot under one view of which domains are active. */
struct sums {
    int64_t freeable_kib;        /* active: sum of max(0, actual - min - 2 * inaccuracy) */
    int64_t range_kib;           /* active: sum of (max - min) */
    int64_t guaranteed_free_kib; /* host free minus what balloonable domains may grow */
    int64_t best_free_kib;       /* host free if every balloonable domain went to min */
    size_t n_balloonable;
    size_t n_active;
    bool all_active_hit;  /* every active domain within inaccuracy of its target */
    bool all_balloon_hit; /* every balloonable domain within inaccuracy of target */
};

/* The proportional share computed from the sums. */
struct share {
    int64_t surplus_kib;
    int64_t total_range_kib;
    double gamma;
};

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static bool size_ok(int64_t kib)
{
    return kib >= 0 && kib <= LIMIT_KIB_MAX;
}

/* Whether more than limit_ms passed from since_ms to now_ms, without overflow. */
static bool longer_than(int64_t now_ms, int64_t since_ms, int64_t limit_ms)
{
    return now_ms > since_ms && (uint64_t)now_ms - (uint64_t)since_ms > (uint64_t)limit_ms;
}

/* -1: actual must go down to reach target; 1: up; 0: within inaccuracy of it. */
static int direction(const struct policy_domain *d)
{
    if (d->actual_kib > d->target_kib + d->inaccuracy_kib)
        return -1;
    if (d->actual_kib < d->target_kib - d->inaccuracy_kib)
        return 1;
    return 0;
}

static bool host_valid(const struct policy_host *h)
{
    if (h == NULL || h->n_domains > LIMIT_DOMAINS_MAX)
        return false;
    if (h->n_domains > 0 && h->domains == NULL)
        return false;
    if (h->free_kib < -LIMIT_KIB_MAX || h->free_kib > LIMIT_KIB_MAX)
        return false;
    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        if (d->domid < 0 || (i > 0 && d->domid <= h->domains[i - 1].domid))
            return false;
        if (!size_ok(d->dynamic_min_kib) || !size_ok(d->dynamic_max_kib) ||
            !size_ok(d->target_kib) || !size_ok(d->actual_kib) || !size_ok(d->inaccuracy_kib))
            return false;
        if (d->dynamic_min_kib > d->dynamic_max_kib)
            return false;
        /* maxmem only takes part in comparisons; Xen may report it unlimited. */
        if (d->maxmem_kib < 0)
            return false;
    }
    return true;
}

static bool request_valid(const struct policy_request *r)
{
    if (r == NULL || !size_ok(r->reserved_kib))
        return false;
    switch (r->kind) {
    case POLICY_FREE:
        return size_ok(r->need_kib);
    case POLICY_FREE_RANGE:
        return size_ok(r->min_kib) && size_ok(r->max_kib) && r->min_kib <= r->max_kib;
    case POLICY_BALANCE:
        return true;
    }
    return false;
}

/* floor(surplus * range / total), clamped to [0, range]; range is part of total. */
static int64_t share_of(int64_t surplus_kib, int64_t total_kib, int64_t range_kib)
{
    if (surplus_kib <= 0 || range_kib <= 0)
        return 0;
    if (surplus_kib >= total_kib)
        return range_kib;
    if (surplus_kib <= INT64_MAX / range_kib)
        return surplus_kib * range_kib / total_kib;
#ifdef __SIZEOF_INT128__
    /* Exact: surplus < total < 2^62 and range < 2^41, so the product fits. */
    return (int64_t)((unsigned __int128)surplus_kib * (uint64_t)range_kib /
                     (uint64_t)total_kib);
#else
    long double q = (long double)surplus_kib * (long double)range_kib / (long double)total_kib;
    return clamp64((int64_t)q, 0, range_kib);
#endif
}

static void make_share(int64_t surplus_kib, int64_t total_kib, struct share *s)
{
    s->surplus_kib = surplus_kib;
    s->total_range_kib = total_kib;
    if (total_kib <= 0)
        s->gamma = surplus_kib > 0 ? 1.0 : 0.0;
    else if (surplus_kib <= 0)
        s->gamma = 0.0;
    else if (surplus_kib >= total_kib)
        s->gamma = 1.0;
    else
        s->gamma = (double)surplus_kib / (double)total_kib;
}

/* Round a target down to a whole page. Balloon drivers work in pages: a target between
 * two pages would leave a driver that stops one page short 7 KiB away, beyond the
 * inaccuracy, and it would be declared stuck while it has done its job. */
static int64_t page_down(int64_t kib, int64_t floor_kib)
{
    int64_t aligned = kib - kib % POLICY_PAGE_KIB;
    return aligned < floor_kib ? floor_kib : aligned;
}

/* The top of a domain's range as the proportional policy uses it: a paused domain's
 * driver cannot run, so it takes part as if its dynamic-max were its current target (it
 * may be asked to give memory, never handed more, and its share goes to the others). */
static int64_t share_max(const struct policy_domain *d)
{
    if (d->paused)
        return clamp64(d->target_kib, d->dynamic_min_kib, d->dynamic_max_kib);
    return d->dynamic_max_kib;
}

/* The proportional target of an active domain (whole pages, never below dynamic-min). */
static int64_t ideal_target(const struct policy_domain *d, const struct share *s)
{
    int64_t range_kib = share_max(d) - d->dynamic_min_kib;
    return page_down(d->dynamic_min_kib +
                         share_of(s->surplus_kib, s->total_range_kib, range_kib),
                     d->dynamic_min_kib);
}

/* ents is parallel to the snapshot, or NULL: every balloonable domain active. */
static bool is_active(const struct policy_domain *d, const struct stuck_entry *e)
{
    return d->can_balloon && !(e != NULL && e->stuck);
}

static void sum_up(const struct policy_host *h, const struct stuck_entry *ents, struct sums *s)
{
    int64_t may_grow_kib = 0, above_min_kib = 0;

    memset(s, 0, sizeof(*s));
    s->all_active_hit = true;
    s->all_balloon_hit = true;
    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        const struct stuck_entry *e = ents != NULL ? &ents[i] : NULL;
        if (!d->can_balloon)
            continue;
        bool hit = direction(d) == 0;
        if (!hit)
            s->all_balloon_hit = false;

        /* What this domain may still allocate: up to its target (a balloon driver never
         * grows past it; stopping short is what the inaccuracy allows for), and for a
         * stuck domain no further than the maxmem clip it was given. */
        int64_t ceiling_kib = d->target_kib;
        if (e != NULL && e->stuck)
            ceiling_kib = min64(ceiling_kib, e->clip_kib);
        may_grow_kib += max64(0, ceiling_kib - d->actual_kib);
        /* Stuck or not, what it holds above dynamic-min is the most it could give. */
        above_min_kib += max64(0, d->actual_kib - d->dynamic_min_kib);
        s->n_balloonable++;

        if (!is_active(d, e))
            continue;
        s->n_active++;
        if (!hit)
            s->all_active_hit = false;
        s->freeable_kib += max64(0, d->actual_kib - d->dynamic_min_kib - 2 * d->inaccuracy_kib);
        s->range_kib += share_max(d) - d->dynamic_min_kib;
    }
    s->guaranteed_free_kib = h->free_kib - may_grow_kib;
    s->best_free_kib = h->free_kib + above_min_kib;
}

/*
 * FREE_RANGE: the ideal amount to free, as if a virtual domain with range [min, max]
 * and nothing allocated yet took part in the proportional policy. Its dynamic-min must
 * come out of the surplus like the host reserve does.
 */
static int64_t range_ideal(const struct policy_host *h, const struct sums *s,
                           const struct policy_request *r)
{
    struct share sh;
    int64_t range_kib = r->max_kib - r->min_kib;

    make_share(h->free_kib + s->freeable_kib - r->reserved_kib - r->min_kib,
               s->range_kib + range_kib, &sh);
    return r->min_kib + share_of(sh.surplus_kib, sh.total_range_kib, range_kib);
}

static void push_op(struct policy_decision *d, enum policy_op_kind kind, int32_t domid,
                    int64_t value_kib)
{
    if (d->n_ops == d->cap_ops) {
        d->cap_ops = d->cap_ops ? 2 * d->cap_ops : 16;
        d->ops = xreallocarray(d->ops, d->cap_ops, sizeof(*d->ops));
    }
    d->ops[d->n_ops].kind = kind;
    d->ops[d->n_ops].domid = domid;
    d->ops[d->n_ops].value_kib = value_kib;
    d->n_ops++;
}

static void push_domid(int32_t **arr, size_t *n, size_t *cap, int32_t domid)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *arr = xreallocarray(*arr, *cap, sizeof(**arr));
    }
    (*arr)[(*n)++] = domid;
}

static void decision_clear(struct policy_decision *d)
{
    d->verdict = POLICY_CONTINUE;
    d->n_ops = 0;
    d->n_newly_stuck = 0;
    d->n_newly_active = 0;
    d->n_refused = 0;
    d->needed_kib = 0;
    d->free_kib = 0;
    d->reserve_kib = 0;
    d->host_target_kib = 0;
    d->guaranteed_free_kib = 0;
    d->gamma = 0.0;
    d->n_active = 0;
    d->best_free_kib = 0;
    d->fast_path = false;
    d->fail_fast = false;
}

static void fresh_entry(struct stuck_entry *e, const struct policy_domain *d, int64_t now_ms)
{
    memset(e, 0, sizeof(*e));
    e->domid = d->domid;
    e->last_actual_kib = d->actual_kib;
    e->last_progress_ms = now_ms;
}

/*
 * Merge-join the tracker with the snapshot (both sorted by domid): domains gone are
 * dropped, new ones start active with progress now, and each known balloonable domain
 * is checked for progress towards its target. Afterwards st->ents is parallel to the
 * snapshot. Domains that cannot balloon are not tracked: they start afresh if they ever
 * can.
 */
static void track(struct policy_state *st, const struct policy_host *h, int64_t now_ms,
                  struct policy_decision *out)
{
    size_t j = 0;

    if (st->cap_spare < h->n_domains) {
        st->cap_spare = h->n_domains;
        st->spare = xreallocarray(st->spare, st->cap_spare, sizeof(*st->spare));
    }
    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        struct stuck_entry *e = &st->spare[i];

        while (j < st->n_ents && st->ents[j].domid < d->domid)
            j++;
        if (!d->can_balloon || j == st->n_ents || st->ents[j].domid != d->domid) {
            fresh_entry(e, d, now_ms);
            continue;
        }
        *e = st->ents[j];
        e->newly_stuck = false;
        e->newly_active = false;

        int dir = direction(d);
        bool progress = dir == 0 || (dir < 0 && d->actual_kib < e->last_actual_kib) ||
                        (dir > 0 && d->actual_kib > e->last_actual_kib);
        e->last_actual_kib = d->actual_kib;
        if (progress) {
            e->last_progress_ms = now_ms;
            if (e->stuck) {
                e->stuck = false;
                e->newly_active = true;
                push_domid(&out->newly_active, &out->n_newly_active, &out->cap_newly_active,
                           d->domid);
            }
        } else if (!e->stuck &&
                   longer_than(now_ms, e->last_progress_ms, POLICY_STUCK_AFTER_MS)) {
            /* Let it give memory back but never take more than it has (or its
             * target, if lower), within its range: what it does not hold may be
             * handed to others. */
            e->stuck = true;
            e->newly_stuck = true;
            e->clip_kib = clamp64(min64(d->target_kib, d->actual_kib), d->dynamic_min_kib,
                                  d->dynamic_max_kib);
            push_domid(&out->newly_stuck, &out->n_newly_stuck, &out->cap_newly_stuck, d->domid);
        }
    }

    struct stuck_entry *old = st->ents;
    size_t old_cap = st->cap_ents;
    st->ents = st->spare;
    st->cap_ents = st->cap_spare;
    st->n_ents = h->n_domains;
    st->spare = old;
    st->cap_spare = old_cap;
}

/* The host free memory the operation aims for. */
static int64_t host_target_of(struct policy_state *st, const struct policy_host *h,
                              const struct sums *s, const struct policy_request *r)
{
    switch (r->kind) {
    case POLICY_FREE:
        return r->reserved_kib + r->need_kib;
    case POLICY_FREE_RANGE:
        if (!st->have_ideal || st->ideal_min_kib != r->min_kib ||
            st->ideal_max_kib != r->max_kib) {
            st->ideal_kib = range_ideal(h, s, r);
            st->ideal_min_kib = r->min_kib;
            st->ideal_max_kib = r->max_kib;
            st->have_ideal = true;
        }
        return r->reserved_kib + st->ideal_kib;
    case POLICY_BALANCE:
        break;
    }
    return r->reserved_kib;
}

/*
 * The targets of this round. Two phases: while any active target goes down only the
 * decreases are emitted. Otherwise the increases are granted in domid order out of a
 * budget of max(0, guaranteed free - floor), floor being the round's host target.
 *
 * Guaranteed free memory already excludes reservations and what every guest may still
 * grow into, so with any floor >= 0 no race between allocating guests can take host free
 * memory below zero or eat a reservation. The floor is the host target rather than 0
 * so that guests are only ever given memory the operation does not need: the host
 * reserve is never handed out (SPEC 2), and a FREE cannot lose to a guest the memory it
 * is gathering, to have to take it back later (or fail) if a donor turns out stuck.
 * It costs next to nothing once balloons have settled: with every active domain within
 * inaccuracy of its target, the proportional increases stay 4 KiB per active domain
 * under the budget (8 KiB less for each domain within 2 * inaccuracy of dynamic-min,
 * whose margin the surplus does not subtract).
 *
 * The domain that exhausts the budget gets a partial increase; those after it wait for
 * a later round, when memory being freed has arrived. Raising a target by x raises what
 * the domain may grow into by at most x, hence the charge of x.
 *
 * ents NULL: plan only (all balloonable domains active), nothing emitted. Returns the
 * number of SET_TARGET ops (that would be) emitted.
 */
static size_t plan_targets(const struct policy_host *h, const struct stuck_entry *ents,
                           const struct sums *s, const struct share *sh, int64_t floor_kib,
                           struct policy_decision *out)
{
    bool decreasing = false;
    int64_t budget_kib = max64(0, s->guaranteed_free_kib - floor_kib);
    size_t n_set = 0;

    for (size_t i = 0; i < h->n_domains && !decreasing; i++) {
        const struct policy_domain *d = &h->domains[i];
        if (is_active(d, ents != NULL ? &ents[i] : NULL) && ideal_target(d, sh) < d->target_kib)
            decreasing = true;
    }

    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        const struct stuck_entry *e = ents != NULL ? &ents[i] : NULL;

        if (e != NULL && e->newly_stuck) {
            push_op(out, POLICY_OP_SET_MAXMEM, d->domid, e->clip_kib);
            continue;
        }
        if (!is_active(d, e))
            continue;

        int64_t t_kib = d->target_kib;
        int64_t new_kib = ideal_target(d, sh);
        if (new_kib > t_kib) {
            int64_t grant_kib = decreasing ? 0 : min64(new_kib - t_kib, budget_kib);
            /* A partial grant still ends on a page boundary (never below the old one). */
            new_kib = page_down(t_kib + grant_kib, t_kib);
            /* The surplus does not count what a guest holds within 2 x inaccuracy of
             * its dynamic-min as freeable, so a guest growing inside that band lowers
             * the surplus by as much as it took: the next round takes a small increase
             * back, the one after gives it again, and the operation never ends (guests
             * at dynamic-min with a few KiB to spare). So a guest in the band gets no
             * increase of 2 x inaccuracy or less. Above the band growing costs the
             * surplus nothing; below dynamic-min a target still goes up to it. */
            int64_t band_kib = 2 * d->inaccuracy_kib;
            if (new_kib - t_kib <= band_kib && t_kib >= d->dynamic_min_kib &&
                t_kib < d->dynamic_min_kib + band_kib)
                new_kib = t_kib;
            /* A paused domain's driver cannot run: memory handed to it would lie
             * idle, promised to a guest that cannot take it. */
            if (d->paused)
                new_kib = t_kib;
            budget_kib -= new_kib - t_kib;
        }
        if (new_kib != t_kib)
            n_set++;
        if (out == NULL)
            continue;

        /* A target going down from above a maxmem clip (a guest stuck below its target
         * is clipped to what it has, and gets a fresh chance in the next operation) is
         * still above the clip: maxmem goes up to it first, so that no target is ever
         * written above maxmem. */
        if (new_kib > t_kib || (new_kib < t_kib && new_kib > d->maxmem_kib)) {
            push_op(out, POLICY_OP_SET_MAXMEM, d->domid, new_kib);
            push_op(out, POLICY_OP_SET_TARGET, d->domid, new_kib);
        } else if (new_kib < t_kib) {
            push_op(out, POLICY_OP_SET_TARGET, d->domid, new_kib);
            push_op(out, POLICY_OP_SET_MAXMEM, d->domid, new_kib);
        } else if ((e != NULL && e->newly_active) || d->maxmem_kib < t_kib) {
            /* Back from stuck: lift the clip. A maxmem below target left by an earlier
             * operation's clip is lifted too, or the fresh chance is no chance. */
            push_op(out, POLICY_OP_SET_MAXMEM, d->domid, t_kib);
        }
    }
    return n_set;
}

/* The host free memory an operation must reach to succeed (reserve included). */
static int64_t needed_of(const struct policy_request *r)
{
    switch (r->kind) {
    case POLICY_FREE:
        return r->reserved_kib + r->need_kib;
    case POLICY_FREE_RANGE:
        return r->reserved_kib + r->min_kib;
    case POLICY_BALANCE:
        break;
    }
    return r->reserved_kib;
}

static void cannot_free(const struct policy_request *r, int64_t guaranteed_kib,
                        struct policy_decision *out)
{
    out->verdict = POLICY_CANNOT_FREE;
    out->n_ops = 0;
    out->n_refused = 0;
    out->reserve_kib = 0;
    out->needed_kib = needed_of(r);
    /* Reported only when the memory is not there, so free < needed always holds. */
    out->free_kib = guaranteed_kib;
}

/*
 * Verdict once the round is quiet: success condition, else who to blame. Stuck domains
 * are named only when what they hold above dynamic-min would have covered the
 * shortfall: otherwise even their full cooperation would not have been enough, and the
 * precise reason is that the host cannot free this much.
 */
static void judge(const struct policy_host *h, const struct policy_state *st,
                  const struct policy_request *r, int64_t guaranteed_kib,
                  struct policy_decision *out)
{
    bool ok = false;

    switch (r->kind) {
    case POLICY_FREE:
        ok = guaranteed_kib >= r->need_kib + r->reserved_kib;
        out->reserve_kib = r->need_kib;
        break;
    case POLICY_FREE_RANGE:
        ok = guaranteed_kib >= r->min_kib + r->reserved_kib;
        out->reserve_kib = clamp64(guaranteed_kib - r->reserved_kib, r->min_kib, r->max_kib);
        break;
    case POLICY_BALANCE:
        ok = guaranteed_kib >= r->reserved_kib - POLICY_BALANCE_SLACK_KIB;
        out->reserve_kib = 0;
        break;
    }
    out->n_ops = 0;
    if (ok) {
        out->verdict = POLICY_SUCCESS;
        return;
    }
    int64_t shortfall_kib = needed_of(r) - guaranteed_kib;
    int64_t held_kib = 0;
    out->reserve_kib = 0;
    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        /* dom0 changing its memory on its own is not a guest refusing (CA-75568);
         * a stuck domain at its dynamic-min had nothing more to give. */
        if (d->can_balloon && st->ents[i].stuck && d->domid != 0 &&
            d->actual_kib > d->dynamic_min_kib + d->inaccuracy_kib) {
            push_domid(&out->refused, &out->n_refused, &out->cap_refused, d->domid);
            held_kib += d->actual_kib - d->dynamic_min_kib;
        }
    }
    /* As for failing fast: Xen's page counts may hide up to a page of each. */
    int64_t unseen_kib = POLICY_PAGE_KIB * (int64_t)(out->n_refused + 1);
    if (out->n_refused > 0 && held_kib + unseen_kib >= shortfall_kib)
        out->verdict = POLICY_REFUSED;
    else
        cannot_free(r, guaranteed_kib, out);
}

int policy_round(struct policy_state *st, const struct policy_host *host,
                 const struct policy_request *req, int64_t now_ms, struct policy_decision *out)
{
    struct sums s;
    struct share sh;

    if (out != NULL)
        decision_clear(out);
    if (st == NULL || out == NULL || !host_valid(host) || !request_valid(req))
        return -EINVAL;

    bool first_round = st->rounds == 0;
    st->rounds++;
    track(st, host, now_ms, out);
    sum_up(host, st->ents, &s);

    int64_t host_target_kib = host_target_of(st, host, &s, req);
    make_share(host->free_kib + s.freeable_kib - host_target_kib, s.range_kib, &sh);
    out->host_target_kib = host_target_kib;
    out->guaranteed_free_kib = s.guaranteed_free_kib;
    out->best_free_kib = s.best_free_kib;
    out->gamma = sh.gamma;
    out->n_active = s.n_active;

    /* Fail fast: not even every balloonable domain at its dynamic-min would do. No
     * target is changed for a request that cannot succeed, and nobody is blamed. Xen
     * counts whole pages, so a snapshot may miss up to a page of each domain's and of
     * the host's memory: the test allows for them, never failing what could succeed. */
    int64_t unseen_kib = POLICY_PAGE_KIB * (int64_t)(s.n_balloonable + 1);
    if (first_round && req->kind != POLICY_BALANCE &&
        needed_of(req) > s.best_free_kib + unseen_kib) {
        /* The payload says what the host could free at most, as a squeeze to the
         * dynamic-mins would have ended, without making anyone wait for it. */
        cannot_free(req, s.best_free_kib, out);
        out->fail_fast = true;
        return 0;
    }

    if (first_round && req->kind != POLICY_BALANCE && s.all_balloon_hit) {
        int64_t asked_kib =
            req->reserved_kib + (req->kind == POLICY_FREE ? req->need_kib : req->max_kib);
        if (s.guaranteed_free_kib >= asked_kib) {
            out->verdict = POLICY_SUCCESS;
            out->fast_path = true;
            out->reserve_kib = req->kind == POLICY_FREE ? req->need_kib : req->max_kib;
            return 0;
        }
    }

    size_t n_set = plan_targets(host, st->ents, &s, &sh, host_target_kib, out);

    /* A round that declares domains stuck or active again ends with CONTINUE so that
     * their maxmem ops are applied; the verdict follows one poll later. */
    if (n_set == 0 && s.all_active_hit && out->n_newly_stuck == 0 && out->n_newly_active == 0)
        judge(host, st, req, s.guaranteed_free_kib, out);
    return 0;
}

/*
 * The domains `last` found stuck that are still stuck now: away from their target and
 * not one step nearer it than when last seen. Returns an array parallel to the host (new,
 * caller frees) or NULL when there are none.
 */
static struct stuck_entry *still_stuck(const struct policy_state *last,
                                       const struct policy_host *host)
{
    struct stuck_entry *ents = NULL;
    size_t j = 0;

    if (last == NULL)
        return NULL;
    for (size_t i = 0; i < host->n_domains; i++) {
        const struct policy_domain *d = &host->domains[i];
        while (j < last->n_ents && last->ents[j].domid < d->domid)
            j++;
        if (j == last->n_ents || last->ents[j].domid != d->domid || !last->ents[j].stuck)
            continue;
        const struct stuck_entry *e = &last->ents[j];
        int dir = direction(d);
        bool moved = (dir > 0 && d->actual_kib > e->last_actual_kib) ||
                     (dir < 0 && d->actual_kib < e->last_actual_kib);
        if (!d->can_balloon || dir == 0 || moved)
            continue;
        if (ents == NULL)
            ents = xcalloc(host->n_domains, sizeof(*ents));
        ents[i].stuck = true;
        ents[i].clip_kib = e->clip_kib;
    }
    if (ents != NULL)
        for (size_t i = 0; i < host->n_domains; i++)
            ents[i].domid = host->domains[i].domid;
    return ents;
}

bool policy_balance_needed(const struct policy_state *last, const struct policy_host *host,
                           int64_t reserved_kib)
{
    struct sums s;
    struct share sh;

    if (!host_valid(host) || !size_ok(reserved_kib))
        return false;
    struct stuck_entry *ents = still_stuck(last, host);
    sum_up(host, ents, &s);
    make_share(host->free_kib + s.freeable_kib - reserved_kib, s.range_kib, &sh);
    bool needed = plan_targets(host, ents, &s, &sh, reserved_kib, NULL) > 0;
    free(ents);
    return needed;
}

int64_t policy_balance_change_kib(const struct policy_state *last,
                                  const struct policy_host *host, int64_t reserved_kib)
{
    struct sums s;
    struct share sh;
    int64_t change_kib = 0;

    if (!host_valid(host) || !size_ok(reserved_kib))
        return 0;
    struct stuck_entry *ents = still_stuck(last, host);
    sum_up(host, ents, &s);
    make_share(host->free_kib + s.freeable_kib - reserved_kib, s.range_kib, &sh);
    for (size_t i = 0; i < host->n_domains; i++) {
        const struct policy_domain *d = &host->domains[i];
        if (!is_active(d, ents != NULL ? &ents[i] : NULL))
            continue;
        int64_t delta_kib = ideal_target(d, &sh) - d->target_kib;
        change_kib += delta_kib < 0 ? -delta_kib : delta_kib;
    }
    free(ents);
    return change_kib;
}

struct policy_state *policy_state_new(void)
{
    return xcalloc(1, sizeof(struct policy_state));
}

void policy_state_reset(struct policy_state *st)
{
    if (st == NULL)
        return;
    st->n_ents = 0;
    st->rounds = 0;
    st->have_ideal = false;
    st->ideal_kib = 0;
    st->ideal_min_kib = 0;
    st->ideal_max_kib = 0;
}

void policy_state_free(struct policy_state *st)
{
    if (st == NULL)
        return;
    free(st->ents);
    free(st->spare);
    free(st);
}

bool policy_state_is_stuck(const struct policy_state *st, int32_t domid)
{
    if (st == NULL)
        return false;
    size_t lo = 0, hi = st->n_ents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->ents[mid].domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < st->n_ents && st->ents[lo].domid == domid && st->ents[lo].stuck;
}

void policy_decision_init(struct policy_decision *d)
{
    memset(d, 0, sizeof(*d));
}

void policy_decision_free(struct policy_decision *d)
{
    if (d == NULL)
        return;
    free(d->ops);
    free(d->newly_stuck);
    free(d->newly_active);
    free(d->refused);
    memset(d, 0, sizeof(*d));
}

struct policy_coop *policy_coop_new(void)
{
    return xcalloc(1, sizeof(struct policy_coop));
}

void policy_coop_free(struct policy_coop *c)
{
    if (c == NULL)
        return;
    free(c->ents);
    free(c->spare);
    free(c);
}

size_t policy_coop_update(struct policy_coop *c, const struct policy_host *host, int64_t now_ms,
                          struct policy_coop_change **changes)
{
    struct policy_coop_change *out = NULL;
    size_t n_out = 0, cap_out = 0, j = 0;

    if (changes != NULL)
        *changes = NULL;
    /* A malformed snapshot cannot be merge-joined; keep what we know. */
    if (c == NULL || !host_valid(host))
        return 0;
    if (c->cap_spare < host->n_domains) {
        c->cap_spare = host->n_domains;
        c->spare = xreallocarray(c->spare, c->cap_spare, sizeof(*c->spare));
    }
    for (size_t i = 0; i < host->n_domains; i++) {
        const struct policy_domain *d = &host->domains[i];
        struct coop_entry *e = &c->spare[i];

        while (j < c->n_ents && c->ents[j].domid < d->domid)
            j++;
        if (j < c->n_ents && c->ents[j].domid == d->domid) {
            *e = c->ents[j];
        } else {
            e->domid = d->domid;
            e->uncooperative = false;
            e->last_coop_ms = now_ms;
        }
        if (!d->can_balloon || direction(d) == 0)
            e->last_coop_ms = now_ms;
        bool unco = longer_than(now_ms, e->last_coop_ms, POLICY_UNCOOPERATIVE_AFTER_MS);
        if (unco == e->uncooperative)
            continue;
        e->uncooperative = unco;
        if (n_out == cap_out) {
            cap_out = cap_out ? 2 * cap_out : 8;
            out = xreallocarray(out, cap_out, sizeof(*out));
        }
        out[n_out].domid = d->domid;
        out[n_out].uncooperative = unco;
        n_out++;
    }

    struct coop_entry *old = c->ents;
    size_t old_cap = c->cap_ents;
    c->ents = c->spare;
    c->cap_ents = c->cap_spare;
    c->n_ents = host->n_domains;
    c->spare = old;
    c->cap_spare = old_cap;

    if (changes != NULL)
        *changes = out;
    else
        free(out);
    return n_out;
}

/* out[i] for domains sorted by domid, in one merge pass over both sorted arrays. */
#define FLAGS_MERGE(ents, n_ents, field, domains, n, out)                                      \
    do {                                                                                       \
        size_t k_ = 0;                                                                         \
        for (size_t i_ = 0; i_ < (n); i_++) {                                                  \
            while (k_ < (n_ents) && (ents)[k_].domid < (domains)[i_].domid)                    \
                k_++;                                                                          \
            (out)[i_] =                                                                        \
                k_ < (n_ents) && (ents)[k_].domid == (domains)[i_].domid && (ents)[k_].field;  \
        }                                                                                      \
    } while (0)

void policy_state_stuck_flags(const struct policy_state *st,
                              const struct policy_domain *domains, size_t n, bool *out)
{
    if (st == NULL) {
        memset(out, 0, n * sizeof(*out));
        return;
    }
    FLAGS_MERGE(st->ents, st->n_ents, stuck, domains, n, out);
}

void policy_coop_flags(const struct policy_coop *c, const struct policy_domain *domains,
                       size_t n, bool *out)
{
    if (c == NULL) {
        memset(out, 0, n * sizeof(*out));
        return;
    }
    FLAGS_MERGE(c->ents, c->n_ents, uncooperative, domains, n, out);
}

bool policy_coop_is_uncooperative(const struct policy_coop *c, int32_t domid)
{
    if (c == NULL)
        return false;
    size_t lo = 0, hi = c->n_ents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->ents[mid].domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_ents && c->ents[lo].domid == domid && c->ents[lo].uncooperative;
}
