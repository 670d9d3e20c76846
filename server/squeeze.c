/* SPDX-License-Identifier: LGPL-2.1-only */
/* Runs squeeze operations: snapshot, policy round, apply, wait, until a verdict. */
#include "server/squeeze.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"

/* A snapshot that fails this many times in a row ends the operation with an error. */
#define SQUEEZE_SNAPSHOT_RETRIES 5
/* The shortest wait between rounds (ms), when balloons are moving and the goal is near:
 * short enough to cost little against the poll interval, long enough that a round (a
 * snapshot from the cache) is a small part of it. */
#define SQUEEZE_MIN_POLL_MS 10

/* One domain's balloon as last seen: its actual and how fast it was last seen moving. */
struct pace {
    int32_t domid;
    int64_t actual_kib;
    double kib_per_ms; /* 0: never seen moving */
    bool moved;        /* its actual changed since the snapshot before */
};

struct squeezer {
    struct backend *b;   /* borrowed */
    struct domcache *dc; /* borrowed */
    struct squeeze_config cfg;
    squeeze_reservations_fn resv_fn;
    void *resv_ctx;
    struct policy_state *st;  /* the current (or last) operation's stuck tracking */
    struct policy_coop *coop; /* uncooperative tracking across operations */
    struct domcache_snapshot snap;
    bool have_snap;
    /* Since the last snapshot a target or maxmem was written (or tried): its domains'
     * figures are not the host's any more (squeeze_refresh). */
    bool snap_stale;
    /* The reservations the last snapshot accounted for: the untransferred sum, and the
     * transferred ones as given (squeeze_refresh compares them). */
    int64_t acct_untransferred_kib;
    struct domcache_reservation *acct_xfer;
    size_t n_acct_xfer, cap_acct_xfer;
    struct policy_decision dec;
    squeeze_observer_fn observer;
    void *observer_ctx;
    squeeze_start_fn start_hook;
    void *start_ctx;
    atomic_bool cancel;
    struct squeeze_hooks hooks; /* the running operation's (zeroed between operations) */
    int64_t balance_threshold_kib;
    /* What each domain looked like at the last snapshot, to estimate how fast its
     * balloon moves (sorted by domid, as the snapshot). */
    struct pace *pace;
    size_t n_pace, cap_pace;
    int64_t pace_at_ms; /* when that snapshot was taken; -1: none yet */
    int64_t last_wait_ms;
    struct policy_op *retry; /* SET_MAXMEM ops that failed: tried again next round */
    size_t n_retry, cap_retry;
    bool clock_started;
    int64_t clock_raw_ms; /* the backend's clock when last read */
    int64_t clock_ms;     /* ours: moves by its forward steps only */
};

void squeeze_result_free(struct squeeze_result *r)
{
    if (r == NULL)
        return;
    free(r->refused);
    r->refused = NULL;
    r->n_refused = 0;
}

struct squeezer *squeezer_new(struct backend *b, struct domcache *dc,
                              const struct squeeze_config *cfg, squeeze_reservations_fn resv_fn,
                              void *resv_ctx)
{
    struct squeezer *sq = xcalloc(1, sizeof(*sq));
    sq->b = b;
    sq->dc = dc;
    sq->cfg = *cfg;
    if (sq->cfg.poll_ms <= 0)
        sq->cfg.poll_ms = 250;
    if (sq->cfg.min_poll_ms <= 0)
        sq->cfg.min_poll_ms = SQUEEZE_MIN_POLL_MS;
    if (sq->cfg.min_poll_ms > sq->cfg.poll_ms)
        sq->cfg.min_poll_ms = sq->cfg.poll_ms;
    sq->pace_at_ms = -1;
    if (sq->cfg.timeout_ms <= 0)
        sq->cfg.timeout_ms = 600000;
    if (sq->cfg.reserved_host_kib < 0)
        sq->cfg.reserved_host_kib = 0;
    sq->resv_fn = resv_fn;
    sq->resv_ctx = resv_ctx;
    sq->st = policy_state_new();
    sq->coop = policy_coop_new();
    domcache_snapshot_init(&sq->snap);
    policy_decision_init(&sq->dec);
    atomic_init(&sq->cancel, false);
    return sq;
}

void squeezer_free(struct squeezer *sq)
{
    if (sq == NULL)
        return;
    policy_state_free(sq->st);
    policy_coop_free(sq->coop);
    domcache_snapshot_free(&sq->snap);
    policy_decision_free(&sq->dec);
    free(sq->pace);
    free(sq->retry);
    free(sq->acct_xfer);
    free(sq);
}

void squeeze_cancel(struct squeezer *sq)
{
    atomic_store(&sq->cancel, true);
}

void squeeze_set_observer(struct squeezer *sq, squeeze_observer_fn fn, void *ctx)
{
    sq->observer = fn;
    sq->observer_ctx = ctx;
}

void squeeze_set_hooks(struct squeezer *sq, const struct squeeze_hooks *h)
{
    if (h != NULL)
        sq->hooks = *h;
    else
        memset(&sq->hooks, 0, sizeof(sq->hooks));
}

void squeeze_set_balance_threshold(struct squeezer *sq, int64_t kib)
{
    sq->balance_threshold_kib = kib > 0 ? kib : 0;
}

void squeeze_set_start_hook(struct squeezer *sq, squeeze_start_fn fn, void *ctx)
{
    sq->start_hook = fn;
    sq->start_ctx = ctx;
}

const struct domcache_snapshot *squeeze_last_snapshot(const struct squeezer *sq)
{
    return sq->have_snap ? &sq->snap : NULL;
}

bool squeeze_domain_stuck(const struct squeezer *sq, int32_t domid)
{
    return policy_state_is_stuck(sq->st, domid);
}

bool squeeze_domain_uncooperative(const struct squeezer *sq, int32_t domid)
{
    return policy_coop_is_uncooperative(sq->coop, domid);
}

void squeeze_domain_flags(const struct squeezer *sq, const struct domcache_snapshot *snap,
                          bool *stuck, bool *uncooperative)
{
    policy_state_stuck_flags(sq->st, snap->domains, snap->host.n_domains, stuck);
    policy_coop_flags(sq->coop, snap->domains, snap->host.n_domains, uncooperative);
}

/*
 * The squeezer's clock: the backend's, but never running backwards. A step back (a
 * clock that must not do it, but a simulated or broken one might) counts as no time at
 * all, so elapsed times are never negative, a step back of seconds neither buys a stuck
 * balloon those seconds nor postpones the operation's timeout by them. Steps forward
 * count in full.
 */
static int64_t clock_now_ms(struct squeezer *sq)
{
    int64_t raw_ms = sq->b->ops->now_ms(sq->b);
    if (!sq->clock_started) {
        sq->clock_started = true;
        sq->clock_ms = raw_ms;
    } else if (raw_ms > sq->clock_raw_ms) {
        sq->clock_ms += raw_ms - sq->clock_raw_ms;
    }
    sq->clock_raw_ms = raw_ms;
    return sq->clock_ms;
}

/* The pace entry of domid (NULL if the last snapshot had no such domain). */
static const struct pace *pace_find(const struct squeezer *sq, int32_t domid)
{
    size_t lo = 0, hi = sq->n_pace;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sq->pace[mid].domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sq->n_pace && sq->pace[lo].domid == domid ? &sq->pace[lo] : NULL;
}

/* The pace entry of the snapshot's domain i: the same index once update_pace ran for
 * this snapshot (the usual case), else found by domid. */
static const struct pace *pace_of(const struct squeezer *sq, size_t i, int32_t domid)
{
    if (i < sq->n_pace && sq->pace[i].domid == domid)
        return &sq->pace[i];
    return pace_find(sq, domid);
}

/*
 * Learn how fast each balloon moves from the change of its actual since the last
 * snapshot. Only snapshots close together count (a long gap hides when the balloon
 * stopped); a balloon that reached its target meanwhile may have moved for part of the
 * interval only, so its estimate can go up but not down. A balloon that did not move
 * keeps what was learnt before: the rate is a property of its driver.
 */
static void update_pace(struct squeezer *sq, int64_t now_ms)
{
    const struct policy_host *h = &sq->snap.host;
    struct pace *fresh = xcalloc(h->n_domains > 0 ? h->n_domains : 1, sizeof(*fresh));
    int64_t dt_ms = sq->pace_at_ms >= 0 ? now_ms - sq->pace_at_ms : -1;
    bool close = dt_ms > 0 && dt_ms <= 4 * sq->cfg.poll_ms;
    /* Both sorted by domid: one merge pass, not a search per domain (at 32,000 domains
     * the searches were an eighth of a reserve's time). */
    size_t k = 0;
    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        while (k < sq->n_pace && sq->pace[k].domid < d->domid)
            k++;
        const struct pace *old =
            k < sq->n_pace && sq->pace[k].domid == d->domid ? &sq->pace[k] : NULL;
        fresh[i].domid = d->domid;
        fresh[i].actual_kib = d->actual_kib;
        fresh[i].kib_per_ms = old != NULL ? old->kib_per_ms : 0.0;
        fresh[i].moved = old != NULL && old->actual_kib != d->actual_kib;
        if (old == NULL || !close || old->actual_kib == d->actual_kib)
            continue;
        int64_t moved_kib = d->actual_kib - old->actual_kib;
        double rate = (double)(moved_kib < 0 ? -moved_kib : moved_kib) / (double)dt_ms;
        int64_t gap_kib = d->actual_kib - d->target_kib;
        bool arrived = gap_kib <= d->inaccuracy_kib && gap_kib >= -d->inaccuracy_kib;
        if (!arrived || rate > fresh[i].kib_per_ms)
            fresh[i].kib_per_ms = rate;
    }
    free(sq->pace);
    sq->pace = fresh;
    sq->n_pace = h->n_domains;
    sq->cap_pace = h->n_domains;
    sq->pace_at_ms = now_ms;
}

/* The targets the domains have once the decision's ops are applied: a new array
 * parallel to the snapshot (the ops come in domid order, as the domains: one merge). */
static int64_t *targets_after(const struct policy_host *h, const struct policy_decision *dec)
{
    int64_t *t = xcalloc(h->n_domains > 0 ? h->n_domains : 1, sizeof(*t));
    size_t k = 0;
    for (size_t i = 0; i < h->n_domains; i++) {
        t[i] = h->domains[i].target_kib;
        /* Ops of lower domids (none expected) are skipped; those of this one apply. */
        while (k < dec->n_ops && dec->ops[k].domid < h->domains[i].domid)
            k++;
        for (; k < dec->n_ops && dec->ops[k].domid == h->domains[i].domid; k++)
            if (dec->ops[k].kind == POLICY_OP_SET_TARGET)
                t[i] = dec->ops[k].value_kib;
    }
    return t;
}

/* Memory the decision's ops let guests take: the sum of its target increases. */
static int64_t increases_kib(const struct policy_host *h, const struct policy_decision *dec)
{
    if (dec->n_ops == 0)
        return 0;
    int64_t *t = targets_after(h, dec);
    int64_t sum_kib = 0;
    for (size_t i = 0; i < h->n_domains; i++)
        if (t[i] > h->domains[i].target_kib)
            sum_kib += t[i] - h->domains[i].target_kib;
    free(t);
    return sum_kib;
}

/*
 * How long to wait before the next round: until the moment the balloons, at the pace
 * they were last seen moving, have freed `deficit_kib` (when positive: the operation's
 * goal may be met then), or else until the last moving balloon reaches its target (the
 * policy's verdict needs them there). Balloons never seen moving make it back off from
 * the short poll, doubling. Bounded by [min_poll_ms, poll_ms].
 */
static int64_t next_wait_ms(struct squeezer *sq, const struct policy_decision *dec,
                            int64_t deficit_kib)
{
    const struct policy_host *h = &sq->snap.host;
    int64_t *after = targets_after(h, dec);
    double *rates = xcalloc(h->n_domains > 0 ? h->n_domains : 1, sizeof(*rates));
    double donors_rate = 0.0, donors_gap = 0.0, longest_ms = 0.0;
    bool unknown = false;
    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        if (!d->can_balloon || policy_state_is_stuck(sq->st, d->domid))
            continue;
        int64_t gap_kib = d->actual_kib - after[i];
        int64_t abs_gap_kib = gap_kib < 0 ? -gap_kib : gap_kib;
        if (abs_gap_kib <= d->inaccuracy_kib)
            continue;
        const struct pace *p = pace_of(sq, i, d->domid);
        double rate = p != NULL ? p->kib_per_ms : 0.0;
        rates[i] = rate;
        if (rate <= 0.0) {
            unknown = true;
            continue;
        }
        double ms = (double)(abs_gap_kib - d->inaccuracy_kib) / rate;
        if (ms > longest_ms)
            longest_ms = ms;
        if (gap_kib > 0) {
            donors_rate += rate;
            donors_gap += (double)gap_kib;
        }
    }

    double wait_ms;
    if (deficit_kib > 0 && donors_rate > 0.0 && donors_gap >= (double)deficit_kib) {
        /* The smallest t with sum(min(rate_i t, gap_i)) >= deficit, by bisection. */
        double lo = 0.0, hi = longest_ms;
        for (int it = 0; it < 40; it++) {
            double mid = (lo + hi) / 2.0, got = 0.0;
            for (size_t i = 0; i < h->n_domains; i++) {
                const struct policy_domain *d = &h->domains[i];
                int64_t gap_kib = d->actual_kib - after[i];
                if (gap_kib <= d->inaccuracy_kib || rates[i] <= 0.0)
                    continue; /* rates[i] is 0 too for stuck and non-ballooning domains */
                double can = rates[i] * mid;
                got += can < (double)gap_kib ? can : (double)gap_kib;
            }
            if (got >= (double)deficit_kib)
                hi = mid;
            else
                lo = mid;
        }
        wait_ms = hi;
    } else if (longest_ms > 0.0) {
        wait_ms = longest_ms;
    } else if (unknown) {
        wait_ms = sq->last_wait_ms > 0 ? 2.0 * (double)sq->last_wait_ms : 0.0;
    } else {
        wait_ms = (double)sq->cfg.poll_ms; /* nothing moves: the plain poll */
    }
    free(after);
    free(rates);
    int64_t w = (int64_t)ceil(wait_ms) + 1;
    if (w < sq->cfg.min_poll_ms)
        w = sq->cfg.min_poll_ms;
    if (w > sq->cfg.poll_ms)
        w = sq->cfg.poll_ms;
    sq->last_wait_ms = w;
    return w;
}

/* The sum of the untransferred reservations of an accounting, and how many entries lead
 * the transferred ones (0 or 1: reservations_accounting puts the sum first). */
static int64_t untransferred_kib(const struct domcache_reservation *resv, size_t n,
                                 size_t *first_xfer)
{
    int64_t kib = 0;
    size_t k = 0;
    while (k < n && resv[k].domid < 0)
        kib += resv[k++].kib;
    *first_xfer = k;
    return kib;
}

/* Remember what the snapshot just taken accounted for (O(transferred reservations)). */
static void keep_accounting(struct squeezer *sq, const struct domcache_reservation *resv,
                            size_t n)
{
    size_t k;
    sq->acct_untransferred_kib = untransferred_kib(resv, n, &k);
    size_t m = 0;
    for (size_t i = k; i < n; i++) {
        if (resv[i].domid < 0) { /* not the documented order: refresh never applies */
            sq->acct_untransferred_kib = INT64_MIN;
            break;
        }
        m++;
    }
    if (m > sq->cap_acct_xfer) {
        sq->acct_xfer = xreallocarray(sq->acct_xfer, m, sizeof(*sq->acct_xfer));
        sq->cap_acct_xfer = m;
    }
    if (m > 0)
        memcpy(sq->acct_xfer, resv + k, m * sizeof(*resv));
    sq->n_acct_xfer = m;
}

int squeeze_refresh(struct squeezer *sq)
{
    if (!sq->have_snap || sq->snap_stale || sq->resv_fn == NULL ||
        sq->acct_untransferred_kib == INT64_MIN)
        return 0;
    size_t n = 0, k;
    const struct domcache_reservation *resv = sq->resv_fn(sq->resv_ctx, &n);
    int64_t now_kib = untransferred_kib(resv, n, &k);
    /* A transferred reservation counts through its domain's state at the snapshot, which
     * only a snapshot knows: any change there (a transfer, a delete) takes a new one. */
    bool same = n - k == sq->n_acct_xfer;
    for (size_t i = 0; same && i < sq->n_acct_xfer; i++) /* fields: the struct has padding */
        same = resv[k + i].kib == sq->acct_xfer[i].kib &&
               resv[k + i].domid == sq->acct_xfer[i].domid;
    if (!same) {
        sq->snap_stale = true;
        return 0;
    }
    int64_t delta_kib = now_kib - sq->acct_untransferred_kib;
    sq->snap.reservations_kib += delta_kib;
    sq->snap.host.free_kib -= delta_kib;
    sq->acct_untransferred_kib = now_kib;
    return 1;
}

/* Snapshot the host and bring the uncooperative flags up to date with it. */
static int take_snapshot(struct squeezer *sq, int64_t now_ms)
{
    size_t n_resv = 0;
    const struct domcache_reservation *resv = NULL;
    if (sq->resv_fn != NULL)
        resv = sq->resv_fn(sq->resv_ctx, &n_resv);
    int rc = domcache_snapshot(sq->dc, resv, n_resv, &sq->snap);
    if (rc < 0)
        return rc;
    sq->have_snap = true;
    sq->snap_stale = false;
    keep_accounting(sq, resv, n_resv);
    update_pace(sq, now_ms);

    struct policy_coop_change *changes = NULL;
    size_t n = policy_coop_update(sq->coop, &sq->snap.host, now_ms, &changes);
    for (size_t i = 0; i < n; i++) {
        log_dom_info(changes[i].domid, "%s",
                     changes[i].uncooperative ? "uncooperative: away from its target for over "
                                                "20 s"
                                              : "cooperative again");
        domcache_set_uncooperative(sq->dc, (uint32_t)changes[i].domid,
                                   changes[i].uncooperative);
    }
    free(changes);

    /* The tracker reports flips only. A key it did not write (left by an earlier run of
     * the daemon, or by hand) is brought into line with it here; the cache makes this
     * free when the two agree. */
    size_t nd = sq->snap.host.n_domains;
    if (nd > 0) {
        /* One merge pass over both sorted arrays, not a search per domain. */
        bool *want = xcalloc(nd, sizeof(*want));
        policy_coop_flags(sq->coop, sq->snap.host.domains, nd, want);
        for (size_t i = 0; i < nd; i++) {
            if (sq->snap.extra[i].uncooperative != want[i])
                domcache_set_uncooperative(sq->dc, (uint32_t)sq->snap.host.domains[i].domid,
                                           want[i]);
        }
        free(want);
    }
    return 0;
}

static void copy_refused(struct squeeze_result *res, const struct policy_decision *d)
{
    res->n_refused = d->n_refused;
    res->refused = NULL;
    if (d->n_refused > 0) {
        res->refused = xcalloc(d->n_refused, sizeof(*res->refused));
        memcpy(res->refused, d->refused, d->n_refused * sizeof(*res->refused));
    }
}

static const char *kind_name(enum policy_kind k)
{
    switch (k) {
    case POLICY_FREE:
        return "free";
    case POLICY_FREE_RANGE:
        return "free-range";
    case POLICY_BALANCE:
        return "balance";
    }
    return "?";
}

static void log_round(const struct policy_request *req, const struct policy_decision *d,
                      unsigned round)
{
    /* Stuck and moving again are logged by the observer, once per change across
     * operations (server/service.c), not here where every operation starts afresh. */
    log_debug("%s round %u: host target %lld KiB, guaranteed free %lld KiB, gamma %.4f, "
              "%zu active, %zu ops",
              kind_name(req->kind), round, (long long)d->host_target_kib,
              (long long)d->guaranteed_free_kib, d->gamma, d->n_active, d->n_ops);
}

/*
 * An operation stopped before its verdict (timeout, cancel): success if the memory asked
 * for is already guaranteed free (what guests may still grow into is counted), else
 * Cannot_free(needed, guaranteed free), which keeps free < needed.
 */
static void give_up(const struct policy_request *req, const struct policy_decision *d,
                    struct squeeze_result *res)
{
    int64_t needed_kib = req->reserved_kib;
    if (req->kind == POLICY_FREE)
        needed_kib += req->need_kib;
    else if (req->kind == POLICY_FREE_RANGE)
        needed_kib += req->min_kib;
    int64_t g_kib = d->guaranteed_free_kib;
    if (g_kib >= needed_kib) {
        res->verdict = POLICY_SUCCESS;
        res->reserve_kib = req->kind == POLICY_FREE ? req->need_kib : 0;
        if (req->kind == POLICY_FREE_RANGE) {
            int64_t kib = g_kib - req->reserved_kib;
            res->reserve_kib = kib < req->min_kib   ? req->min_kib
                               : kib > req->max_kib ? req->max_kib
                                                    : kib;
        }
        return;
    }
    res->verdict = POLICY_CANNOT_FREE;
    res->needed_kib = needed_kib;
    res->free_kib = g_kib;
}

static void retry_push(struct squeezer *sq, const struct policy_op *op)
{
    for (size_t i = 0; i < sq->n_retry; i++) {
        if (sq->retry[i].domid == op->domid) {
            sq->retry[i] = *op;
            return;
        }
    }
    if (sq->n_retry == sq->cap_retry) {
        sq->cap_retry = sq->cap_retry ? 2 * sq->cap_retry : 8;
        sq->retry = xreallocarray(sq->retry, sq->cap_retry, sizeof(*sq->retry));
    }
    sq->retry[sq->n_retry++] = *op;
}

static const struct policy_domain *snap_domain(const struct squeezer *sq, int32_t domid)
{
    const struct policy_host *h = &sq->snap.host;
    size_t lo = 0, hi = h->n_domains;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->domains[mid].domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < h->n_domains && h->domains[lo].domid == domid ? &h->domains[lo] : NULL;
}

/*
 * A setmaxmem that failed is tried again at the next round (logged each time), unless
 * the new decision sets that domain's maxmem itself, the domain has gone, Xen already
 * holds the value, or it would now be below the domain's target (never below target).
 */
static void retry_maxmem(struct squeezer *sq, const struct policy_decision *d)
{
    size_t w = 0;
    for (size_t i = 0; i < sq->n_retry; i++) {
        const struct policy_op *op = &sq->retry[i];
        bool superseded = false;
        for (size_t k = 0; d != NULL && k < d->n_ops && !superseded; k++)
            superseded = d->ops[k].kind == POLICY_OP_SET_MAXMEM && d->ops[k].domid == op->domid;
        const struct policy_domain *pd = snap_domain(sq, op->domid);
        if (superseded || pd == NULL || pd->maxmem_kib == op->value_kib ||
            op->value_kib < pd->target_kib)
            continue;
        log_dom_info(op->domid, "setting maxmem to %lld KiB again (it failed before)",
                     (long long)op->value_kib);
        sq->snap_stale = true;
        if (domcache_apply(sq->dc, op) < 0)
            sq->retry[w++] = *op;
    }
    sq->n_retry = w;
}

/* Apply a round's ops in order. A maxmem that fails is remembered for a retry, and a
 * target it was to make room for (maxmem raised first) is not written: the round after
 * asks for both again. */
static void apply_ops(struct squeezer *sq, const struct policy_decision *d)
{
    int32_t failed_domid = -1;
    for (size_t i = 0; i < d->n_ops; i++) {
        const struct policy_op *op = &d->ops[i];
        if (op->kind == POLICY_OP_SET_TARGET && op->domid == failed_domid) {
            log_dom_warnx(op->domid,
                          "not raising the target to %lld KiB: its maxmem could not be raised "
                          "first",
                          (long long)op->value_kib);
            continue;
        }
        sq->snap_stale = true;
        int rc = domcache_apply(sq->dc, op);
        if (rc < 0) {
            log_dom_warnx(op->domid, "cannot set %s to %lld KiB (error %d)%s",
                          op->kind == POLICY_OP_SET_TARGET ? "target" : "maxmem",
                          (long long)op->value_kib, -rc,
                          op->kind == POLICY_OP_SET_MAXMEM ? "; retrying next round" : "");
            if (op->kind == POLICY_OP_SET_MAXMEM) {
                failed_domid = op->domid;
                retry_push(sq, op);
            }
        } else if (op->kind == POLICY_OP_SET_MAXMEM) {
            failed_domid = -1;
        }
    }
}

/*
 * A balloon within the inaccuracy of its target counts as arrived, but one still moving
 * there arrives for real soon: with the wait paced by the balloons a round can fall a
 * few KiB short of where a fixed poll would have landed. A failing verdict waits for
 * such balloons (they moved since the last round) to stop first. Returns the wait, or 0.
 */
static int64_t settling_ms(const struct squeezer *sq)
{
    const struct policy_host *h = &sq->snap.host;
    double longest_ms = 0.0;
    for (size_t i = 0; i < h->n_domains; i++) {
        const struct policy_domain *d = &h->domains[i];
        int64_t gap_kib = d->actual_kib - d->target_kib;
        if (gap_kib < 0)
            gap_kib = -gap_kib;
        if (!d->can_balloon || gap_kib == 0 || gap_kib > d->inaccuracy_kib)
            continue;
        const struct pace *p = pace_of(sq, i, d->domid);
        if (p == NULL || !p->moved)
            continue;
        double ms = p->kib_per_ms > 0.0 ? (double)gap_kib / p->kib_per_ms : 0.0;
        if (ms + 1.0 > longest_ms)
            longest_ms = ms + 1.0;
    }
    if (longest_ms <= 0.0)
        return 0;
    int64_t w = (int64_t)ceil(longest_ms);
    return w < sq->cfg.min_poll_ms ? sq->cfg.min_poll_ms
           : w > sq->cfg.poll_ms   ? sq->cfg.poll_ms
                                   : w;
}

/* Between rounds: the service's wait hook, or the backend's sleep. */
static void wait_between(struct squeezer *sq, const struct squeeze_hooks *hooks, int64_t ms)
{
    if (hooks->wait != NULL)
        hooks->wait(hooks->ctx, ms);
    else
        sq->b->ops->sleep_ms(sq->b, ms);
}

/*
 * The loop of SPEC 3: snapshot, compute, write targets, wait, until a verdict. The wait
 * is paced by the balloons (next_wait_ms); a FREE operation ends as soon as what it
 * needs is guaranteed free (balloons still shrinking towards lower targets only add to
 * it), without waiting for every balloon to settle.
 */
static int run(struct squeezer *sq, const struct policy_request *req_in,
               struct squeeze_result *res)
{
    struct policy_request req = *req_in;
    struct squeeze_hooks hooks = sq->hooks;
    memset(&sq->hooks, 0, sizeof(sq->hooks)); /* this operation's only */
    memset(res, 0, sizeof(*res));
    if (sq->start_hook != NULL)
        sq->start_hook(sq->start_ctx);
    policy_state_reset(sq->st);
    sq->last_wait_ms = 0;
    const int64_t start_ms = clock_now_ms(sq);
    int failures = 0;

    for (;;) {
        int64_t now_ms = clock_now_ms(sq);
        int rc = take_snapshot(sq, now_ms);
        if (rc < 0) {
            log_warnx("%s: cannot read the host (error %d)", kind_name(req.kind), -rc);
            if (++failures >= SQUEEZE_SNAPSHOT_RETRIES)
                return rc;
            wait_between(sq, &hooks, sq->cfg.poll_ms);
            continue;
        }
        failures = 0;
        res->duration_ms = now_ms - start_ms;

        if (req.kind == POLICY_FREE && hooks.need != NULL) {
            req.need_kib = hooks.need(hooks.ctx);
            if (req.need_kib < 0)
                req.need_kib = 0;
        }

        rc = policy_round(sq->st, &sq->snap.host, &req, now_ms, &sq->dec);
        if (rc < 0) {
            log_warnx("%s: the policy refused the snapshot (error %d)", kind_name(req.kind),
                      -rc);
            return rc;
        }
        res->rounds++;
        retry_maxmem(sq, &sq->dec);
        log_round(&req, &sq->dec, res->rounds);
        if (sq->observer != NULL)
            sq->observer(sq->observer_ctx, &sq->snap, &sq->dec);

        const struct policy_decision *d = &sq->dec;
        /* Guaranteed free once this round's ops are applied, above the host reserve. */
        int64_t grantable_kib =
            d->guaranteed_free_kib - increases_kib(&sq->snap.host, d) - req.reserved_kib;
        if (req.kind == POLICY_FREE && hooks.round != NULL)
            hooks.round(hooks.ctx, d, grantable_kib);

        bool cancelled = atomic_load(&sq->cancel);
        bool timed_out = now_ms - start_ms > sq->cfg.timeout_ms;
        if (d->verdict == POLICY_CONTINUE && (cancelled || timed_out)) {
            res->cancelled = cancelled;
            res->timed_out = timed_out;
            if (cancelled) /* the daemon is stopping */
                log_info("%s: cancelled after %u rounds", kind_name(req.kind), res->rounds);
            else
                log_warnx("%s: timed out after %u rounds", kind_name(req.kind), res->rounds);
            give_up(&req, d, res);
            return 0;
        }

        if (d->verdict == POLICY_CANNOT_FREE || d->verdict == POLICY_REFUSED) {
            int64_t settle_ms = settling_ms(sq);
            if (settle_ms > 0) {
                wait_between(sq, &hooks, settle_ms);
                continue;
            }
        }

        switch (d->verdict) {
        case POLICY_SUCCESS:
            res->verdict = POLICY_SUCCESS;
            res->reserve_kib = d->reserve_kib;
            res->fast_path = d->fast_path;
            return 0;
        case POLICY_CANNOT_FREE:
            res->verdict = POLICY_CANNOT_FREE;
            res->needed_kib = d->needed_kib;
            res->free_kib = d->free_kib;
            return 0;
        case POLICY_REFUSED:
            res->verdict = POLICY_REFUSED;
            copy_refused(res, d);
            return 0;
        case POLICY_CONTINUE:
            break;
        }

        apply_ops(sq, d);
        if (req.kind == POLICY_FREE && grantable_kib >= req.need_kib) {
            res->verdict = POLICY_SUCCESS;
            res->reserve_kib = req.need_kib;
            return 0;
        }
        int64_t deficit_kib = 0;
        if (req.kind == POLICY_FREE)
            deficit_kib = req.need_kib - grantable_kib;
        wait_between(sq, &hooks, next_wait_ms(sq, d, deficit_kib));
        if (hooks.yield != NULL && hooks.yield(hooks.ctx)) {
            res->preempted = true;
            res->verdict = POLICY_CANNOT_FREE;
            res->needed_kib = d->host_target_kib;
            res->free_kib = sq->snap.host.free_kib;
            res->duration_ms = clock_now_ms(sq) - start_ms;
            log_info("%s: gives way to a reservation after %u rounds", kind_name(req.kind),
                     res->rounds);
            return 0;
        }
    }
}

int squeeze_free(struct squeezer *sq, int64_t kib, struct squeeze_result *res)
{
    struct policy_request req = {
        .kind = POLICY_FREE,
        .reserved_kib = sq->cfg.reserved_host_kib,
        .need_kib = kib,
    };
    return run(sq, &req, res);
}

int squeeze_free_range(struct squeezer *sq, int64_t min_kib, int64_t max_kib,
                       struct squeeze_result *res)
{
    struct policy_request req = {
        .kind = POLICY_FREE_RANGE,
        .reserved_kib = sq->cfg.reserved_host_kib,
        .min_kib = min_kib,
        .max_kib = max_kib,
    };
    return run(sq, &req, res);
}

int squeeze_balance(struct squeezer *sq, struct squeeze_result *res)
{
    struct policy_request req = {
        .kind = POLICY_BALANCE,
        .reserved_kib = sq->cfg.reserved_host_kib,
    };
    return run(sq, &req, res);
}

int squeeze_check(struct squeezer *sq)
{
    int rc = take_snapshot(sq, clock_now_ms(sq));
    if (rc < 0)
        return rc;
    retry_maxmem(sq, NULL);
    if (!policy_balance_needed(sq->st, &sq->snap.host, sq->cfg.reserved_host_kib))
        return 0;
    if (sq->balance_threshold_kib <= 0)
        return 1;
    int64_t change_kib =
        policy_balance_change_kib(sq->st, &sq->snap.host, sq->cfg.reserved_host_kib);
    return change_kib >= sq->balance_threshold_kib ? 1 : 0;
}
