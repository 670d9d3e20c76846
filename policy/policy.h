/* SPDX-License-Identifier: LGPL-2.1-only */
/* The squeeze core: pure decisions on balloon targets from a host snapshot (SPEC 3). */
#ifndef SQUEEZED_POLICY_H
#define SQUEEZED_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Everything here is pure: no I/O, no clock, no globals. Time comes in as `now_ms`
 * (any monotonic millisecond clock). Sizes are KiB.
 *
 * Units: target_kib, actual_kib and maxmem_kib are all "guest" units, comparable
 * with each other. The caller (cache/) adds the Xen per-type offset and the
 * domain's memory-offset when it turns a maxmem decision into a hypercall.
 */

#define POLICY_INACCURACY_KIB 4             /* a driver within this of target has hit it */
#define POLICY_PAGE_KIB 4                   /* new targets are whole pages of this size */
#define POLICY_STUCK_AFTER_MS 5000          /* no progress for longer than this: stuck */
#define POLICY_UNCOOPERATIVE_AFTER_MS 20000 /* away from target longer: uncooperative */
#define POLICY_BALANCE_SLACK_KIB 512        /* balance succeeds within this of the target */

/* One domain as the snapshot sees it. */
struct policy_domain {
    int32_t domid;
    bool can_balloon;        /* feature-balloon seen (and not dom0 unless managed) */
    int64_t dynamic_min_kib; /* invariant: dynamic_min_kib <= dynamic_max_kib */
    int64_t dynamic_max_kib;
    int64_t target_kib;     /* what we last wrote to memory/target */
    int64_t actual_kib;     /* Xen total pages KiB minus memory-offset */
    int64_t maxmem_kib;     /* Xen max pages KiB minus per-type offset */
    int64_t inaccuracy_kib; /* normally POLICY_INACCURACY_KIB */
    bool paused;            /* Xen says paused: its driver cannot run, so it is given
                               no increase (it may still be asked to give memory): the
                               proportional policy treats its target as its
                               dynamic-max, and its share goes to the others */
};

/* A read-only snapshot of the host. */
struct policy_host {
    int64_t free_kib; /* (free + scrub) minus booting domains' unused reservations
                         minus untransferred reservations; may be negative */
    size_t n_domains;
    const struct policy_domain *domains; /* sorted by domid, ascending, unique */
};

enum policy_kind {
    POLICY_FREE,       /* make need_kib free (on top of reserved_kib) */
    POLICY_FREE_RANGE, /* make between min_kib and max_kib free, ideally per policy */
    POLICY_BALANCE,    /* hand spare memory back so free == reserved_kib */
};

/* What an operation is asked to achieve. */
struct policy_request {
    enum policy_kind kind;
    int64_t reserved_kib; /* host reserve ("slush fund") kept free at all times */
    int64_t need_kib;     /* POLICY_FREE */
    int64_t min_kib;      /* POLICY_FREE_RANGE; 0 <= min_kib <= max_kib */
    int64_t max_kib;
};

enum policy_verdict {
    POLICY_CONTINUE,    /* apply ops, wait a poll interval, call policy_round again */
    POLICY_SUCCESS,     /* done; for FREE_RANGE see reserve_kib */
    POLICY_CANNOT_FREE, /* Cannot_free_this_much_memory(needed_kib, free_kib) */
    POLICY_REFUSED,     /* Domains_refused_to_cooperate(refused) */
};

enum policy_op_kind {
    POLICY_OP_SET_MAXMEM, /* value_kib in guest units (see above) */
    POLICY_OP_SET_TARGET, /* write memory/target */
};

/* One thing to do to a domain. Ops are listed in the order they must be applied:
 * maxmem raised before a target goes up, lowered after it goes down. */
struct policy_op {
    enum policy_op_kind kind;
    int32_t domid;
    int64_t value_kib;
};

/* The outcome of one round. The caller owns it; policy_round fills it.
 * Arrays are reused between rounds (capacity grows); release with
 * policy_decision_free. */
struct policy_decision {
    enum policy_verdict verdict;

    struct policy_op *ops; /* CONTINUE: to apply, in order (may be empty) */
    size_t n_ops;
    size_t cap_ops;

    int32_t *newly_stuck; /* domids declared stuck this round (for logs) */
    size_t n_newly_stuck;
    size_t cap_newly_stuck;
    int32_t *newly_active; /* domids that moved again after being stuck */
    size_t n_newly_active;
    size_t cap_newly_active;

    int32_t *refused; /* REFUSED: stuck domids that could have freed memory */
    size_t n_refused;
    size_t cap_refused;

    int64_t needed_kib;  /* CANNOT_FREE: host free memory the operation needed (reserve
                            included); invariant: free_kib < needed_kib */
    int64_t free_kib;    /* CANNOT_FREE: guaranteed free memory it had (may be < 0), or
                            when failed fast the best free memory it could have had */
    int64_t reserve_kib; /* SUCCESS of FREE: need_kib; of FREE_RANGE:
                            clamp(guaranteed free - reserved, min, max); BALANCE: 0 */

    /* Figures of this round, for logs and tests. */
    int64_t host_target_kib;     /* free memory the round aims for */
    int64_t guaranteed_free_kib; /* free minus what guests may still grow into */
    double gamma;                /* proportion of each active range handed out */
    size_t n_active;             /* domains that can balloon and are not stuck */
    int64_t best_free_kib;       /* free memory if every balloonable domain (stuck ones
                                    included) went down to its dynamic-min */
    bool fast_path;              /* SUCCESS decided in round one without new targets */
    bool fail_fast;              /* CANNOT_FREE decided before any target changed: what
                                    is asked exceeds best_free_kib */
};

/* Per-operation state: stuck tracking and the maxmem clips decided so far.
 * Opaque; one per squeeze operation (or reset between operations). */
struct policy_state;

/* A fresh state: every domain presumed active. Caller frees with policy_state_free. */
struct policy_state *policy_state_new(void);
/* Forget everything (start of a new operation). */
void policy_state_reset(struct policy_state *st);
/* NULL is allowed. */
void policy_state_free(struct policy_state *st);
/* True if the state currently regards `domid` as stuck. */
bool policy_state_is_stuck(const struct policy_state *st, int32_t domid);
/* The same for every domain of an array sorted by domid (out[i] for domains[i]), in one
 * O(n + tracked) pass. st may be NULL (all false). */
void policy_state_stuck_flags(const struct policy_state *st,
                              const struct policy_domain *domains, size_t n, bool *out);

/* Zero a decision before first use. */
void policy_decision_init(struct policy_decision *d);
/* Release the arrays of a decision (not the struct). NULL is allowed. */
void policy_decision_free(struct policy_decision *d);

/*
 * One round of a squeeze operation (SPEC 3).
 *
 * host: borrowed, read only. req: borrowed. st: updated (stuck tracking, round count).
 * out: overwritten. Returns 0, or -EINVAL if the host or request is malformed
 * (domains unsorted, min > max, negative sizes), leaving st unchanged.
 *
 * Semantics:
 *  - Stuck tracking: a domain whose |actual - target| > inaccuracy and that has not
 *    moved towards target for more than POLICY_STUCK_AFTER_MS is stuck; it is active
 *    again as soon as it moves towards target (or reaches it).
 *  - Active = can_balloon && !stuck. Non-active domains keep their targets.
 *  - Proportional: host_target = reserved + need (FREE), reserved + ideal (RANGE; the
 *    ideal is fixed in the operation's first round by adding a virtual domain with
 *    range [min, max]), reserved (BALANCE). surplus = free + sum over active of
 *    max(0, actual - min - 2*inaccuracy) - host_target; gamma = clamp(surplus /
 *    sum(max - min), 0, 1); target = min + gamma * (max - min), rounded down to a whole page
 *    (POLICY_PAGE_KIB) but not below min.
 *  - Two phases: while anything needs to free (a new target goes down, or an active
 *    domain is still above its target by more than the inaccuracy), only decreases
 *    are emitted. Otherwise increases are emitted, but never more in total than the
 *    guaranteed free memory above host_target (granted in domid order, the last one
 *    partially), so racing guests can never drive free memory below what the
 *    operation is keeping (reservations are already out of host->free_kib).
 *  - maxmem: a target going up gets SET_MAXMEM(new target) before SET_TARGET;
 *    going down gets SET_MAXMEM after, unless the lower target is still above the
 *    domain's maxmem (a clip from an earlier operation): then maxmem is raised first.
 *    No increase of 2 * inaccuracy or less is made for a domain within that band of its
 *    dynamic-min (it would give a page and take it back forever). A newly stuck domain gets
 *    SET_MAXMEM(clamp(min(target, actual), dynamic_min, dynamic_max)); a domain
 *    active again gets SET_MAXMEM(target). Domains that cannot balloon (building, no
 *    driver) get no op at all; a paused domain gets no increase.
 *  - guaranteed free = free - sum over balloonable domains of
 *    max(0, min(target, cap) - actual) where cap is the stuck clip for stuck domains and
 *    unbounded otherwise: a balloon driver never grows past its target, so only the
 *    part of a target not yet reached can still be taken.
 *  - best free = free + sum over balloonable domains (stuck ones included) of
 *    max(0, actual - dynamic_min): the most any squeeze could make free.
 *  - Fail fast (FREE, FREE_RANGE; first round, before any op is planned): if what is
 *    asked (FREE: need + reserved; RANGE: min + reserved) exceeds best free by more than
 *    a page per balloonable domain and one for the host (what Xen's page counts may
 *    hide), the verdict is CANNOT_FREE(asked, best free) at once, with no op
 *    (fail_fast).
 *  - Fast path (round one only): every balloonable domain within inaccuracy of its
 *    target and guaranteed free >= what is asked (FREE: need + reserved; RANGE:
 *    max + reserved) => SUCCESS with no ops.
 *  - Verdict once every active domain has hit its target and no target changes:
 *    FREE: SUCCESS if guaranteed free >= need + reserved.
 *    RANGE: SUCCESS if guaranteed free >= min + reserved.
 *    BALANCE: SUCCESS if guaranteed free >= reserved - slack, i.e. unless the guests
 *    hold memory the host reserve needs (spare memory left because every active
 *    domain is at dynamic-max is not a failure).
 *    Otherwise, with shortfall = needed - guaranteed free (needed: FREE need + reserved,
 *    RANGE min + reserved, BALANCE reserved): REFUSED naming the stuck balloonable
 *    domains other than dom0 whose actual is above dynamic-min + inaccuracy, if what
 *    they hold above dynamic-min adds up to the shortfall or more (they are to blame;
 *    a page each and one for the host are allowed for Xen's page counts);
 *    else CANNOT_FREE(needed, guaranteed free), with guaranteed free < needed.
 */
int policy_round(struct policy_state *st, const struct policy_host *host,
                 const struct policy_request *req, int64_t now_ms, struct policy_decision *out);

/* True if one balance round would change any target (the periodic balance check of
 * SPEC 3). Every balloonable domain is presumed active except those `last` (the previous
 * operation's state, borrowed; NULL: none) found stuck and that have not moved towards
 * their target since: otherwise one stuck guest would start a balance every interval,
 * each swinging the other guests' targets while it is found stuck again. A guest that
 * moves again is presumed active, and gets its fresh chance. Pure; O(n). */
bool policy_balance_needed(const struct policy_state *last, const struct policy_host *host,
                           int64_t reserved_kib);

/* How much one balance would move: the sum over active domains of |proportional target -
 * current target| (KiB), with the same view of stuck domains as policy_balance_needed.
 * The periodic check compares it with a significance threshold. Pure; O(n). */
int64_t policy_balance_change_kib(const struct policy_state *last,
                                  const struct policy_host *host, int64_t reserved_kib);

/* Uncooperative tracking across operations (SPEC 3): a balloonable domain away from
 * its target for more than POLICY_UNCOOPERATIVE_AFTER_MS is uncooperative. */
struct policy_coop;

struct policy_coop *policy_coop_new(void);
/* NULL is allowed. */
void policy_coop_free(struct policy_coop *c);

/* One domain whose uncooperative flag must change. */
struct policy_coop_change {
    int32_t domid;
    bool uncooperative;
};

/* Update with a snapshot taken at now_ms. Writes into *changes (a new array the caller
 * frees, NULL when none) the domains whose flag flips, and forgets domains gone from
 * the snapshot. Returns the number of changes. */
size_t policy_coop_update(struct policy_coop *c, const struct policy_host *host, int64_t now_ms,
                          struct policy_coop_change **changes);
/* Current flag of a domain (false if unknown). */
bool policy_coop_is_uncooperative(const struct policy_coop *c, int32_t domid);
/* The same for every domain of an array sorted by domid, in one pass; c may be NULL. */
void policy_coop_flags(const struct policy_coop *c, const struct policy_domain *domains,
                       size_t n, bool *out);

#endif
