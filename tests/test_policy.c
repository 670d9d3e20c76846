/* SPDX-License-Identifier: LGPL-2.1-only */
/* Tests of the squeeze core, driven by a tiny host model over a fake clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/xalloc.h"
#include "policy/policy.h"

#define POLL_MS 250
#define INACC POLICY_INACCURACY_KIB

/*
 * The host model: each domain's balloon moves towards its target by step_kib per round
 * (0: stuck), never past its maxmem when growing. Host free memory follows, and is NOT
 * capped at zero, so a policy that lets guests race for memory shows up as negative
 * free memory (min_free_kib). Violations count writes in the wrong order: a target
 * written above maxmem, or maxmem set below both target and actual.
 */
struct mdom {
    struct policy_domain d;
    int64_t step_kib;
};

struct model {
    struct mdom *doms; /* sorted by domid */
    size_t n;
    size_t cap;
    int64_t free_kib;
    int64_t min_free_kib;
    int64_t now_ms;
    unsigned violations;
    struct policy_domain *snap;
    size_t snap_cap;
    struct policy_host host;
};

struct fixture {
    struct model m;
    struct policy_state *st;
    struct policy_decision d;
    unsigned rounds; /* rounds run by the last run() */
};

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    fx->st = policy_state_new();
    policy_decision_init(&fx->d);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    policy_state_free(fx->st);
    policy_decision_free(&fx->d);
    free(fx->m.doms);
    free(fx->m.snap);
    free(fx);
    return 0;
}

static void model_free_kib(struct model *m, int64_t free_kib)
{
    m->free_kib = free_kib;
    m->min_free_kib = free_kib;
}

static struct mdom *model_add(struct model *m, int32_t domid, bool can_balloon, int64_t min_kib,
                              int64_t max_kib, int64_t target_kib, int64_t actual_kib,
                              int64_t step_kib)
{
    size_t at = m->n;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->doms = xreallocarray(m->doms, m->cap, sizeof(*m->doms));
    }
    while (at > 0 && m->doms[at - 1].d.domid > domid)
        at--;
    memmove(&m->doms[at + 1], &m->doms[at], (m->n - at) * sizeof(*m->doms));
    m->n++;
    struct mdom *x = &m->doms[at];
    memset(x, 0, sizeof(*x));
    x->d.domid = domid;
    x->d.can_balloon = can_balloon;
    x->d.dynamic_min_kib = min_kib;
    x->d.dynamic_max_kib = max_kib;
    x->d.target_kib = target_kib;
    x->d.actual_kib = actual_kib;
    x->d.maxmem_kib = target_kib > actual_kib ? target_kib : actual_kib;
    x->d.inaccuracy_kib = INACC;
    x->step_kib = step_kib;
    return x;
}

static struct mdom *model_find(struct model *m, int32_t domid)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->doms[mid].d.domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->doms[lo].d.domid == domid ? &m->doms[lo] : NULL;
}

/* The domain is destroyed: its memory returns to the host. */
static void model_remove(struct model *m, int32_t domid)
{
    struct mdom *x = model_find(m, domid);
    assert_non_null(x);
    m->free_kib += x->d.actual_kib;
    size_t at = (size_t)(x - m->doms);
    memmove(&m->doms[at], &m->doms[at + 1], (m->n - at - 1) * sizeof(*m->doms));
    m->n--;
}

static const struct policy_host *model_snapshot(struct model *m)
{
    if (m->snap_cap < m->n) {
        m->snap_cap = m->n;
        m->snap = xreallocarray(m->snap, m->snap_cap, sizeof(*m->snap));
    }
    for (size_t i = 0; i < m->n; i++)
        m->snap[i] = m->doms[i].d;
    m->host.free_kib = m->free_kib;
    m->host.n_domains = m->n;
    m->host.domains = m->snap;
    return &m->host;
}

static void model_apply(struct model *m, const struct policy_decision *d)
{
    for (size_t k = 0; k < d->n_ops; k++) {
        const struct policy_op *op = &d->ops[k];
        struct mdom *x = model_find(m, op->domid);
        assert_non_null(x);
        if (op->kind == POLICY_OP_SET_TARGET) {
            if (op->value_kib > x->d.maxmem_kib)
                m->violations++;
            x->d.target_kib = op->value_kib;
        } else {
            if (op->value_kib < x->d.target_kib && op->value_kib < x->d.actual_kib)
                m->violations++;
            x->d.maxmem_kib = op->value_kib;
        }
    }
}

/* Balloons move one poll interval's worth. */
static void model_move(struct model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        struct policy_domain *d = &m->doms[i].d;
        int64_t step = m->doms[i].step_kib;
        if (d->actual_kib > d->target_kib) {
            int64_t dec = d->actual_kib - d->target_kib;
            dec = dec < step ? dec : step;
            d->actual_kib -= dec;
            m->free_kib += dec;
        } else if (d->actual_kib < d->target_kib) {
            int64_t inc = d->target_kib - d->actual_kib;
            inc = inc < step ? inc : step;
            if (inc > d->maxmem_kib - d->actual_kib)
                inc = d->maxmem_kib - d->actual_kib;
            if (inc > 0) {
                d->actual_kib += inc;
                m->free_kib -= inc;
            }
        }
    }
    if (m->free_kib < m->min_free_kib)
        m->min_free_kib = m->free_kib;
}

/* One poll interval: balloons move, time passes. */
static void model_step(struct model *m)
{
    model_move(m);
    m->now_ms += POLL_MS;
}

/* Host free memory minus what the guests may still grow into: up to their targets (a
 * balloon driver never grows past its target). */
static int64_t model_guaranteed(const struct model *m)
{
    int64_t g = m->free_kib;
    for (size_t i = 0; i < m->n; i++) {
        const struct policy_domain *d = &m->doms[i].d;
        int64_t grow = d->target_kib - d->actual_kib;
        if (d->can_balloon && grow > 0)
            g -= grow;
    }
    return g;
}

/*
 * Invariants every decision must keep: maxmem raised right before a target goes up and
 * lowered right after it goes down; no increase in a round with a decrease; SET_TARGETs
 * in domid order, one per domain at most; increases in total within the guaranteed free
 * memory above the host target (never the reserve, nor what the operation gathers).
 */
static void check_ops(struct model *m, const struct policy_decision *d)
{
    bool up = false, down = false;
    int64_t increase_kib = 0;
    int32_t last_domid = -1;

    for (size_t k = 0; k < d->n_ops; k++) {
        const struct policy_op *op = &d->ops[k];
        if (op->kind != POLICY_OP_SET_TARGET)
            continue;
        struct mdom *x = model_find(m, op->domid);
        assert_non_null(x);
        assert_true(x->d.can_balloon);
        /* In domid order, so at most one per domain. */
        assert_true(op->domid > last_domid);
        last_domid = op->domid;
        assert_int_not_equal(op->value_kib, x->d.target_kib);
        assert_true(op->value_kib >= x->d.dynamic_min_kib);
        assert_true(op->value_kib <= x->d.dynamic_max_kib);
        if (op->value_kib > x->d.target_kib) {
            up = true;
            increase_kib += op->value_kib - x->d.target_kib;
            assert_true(k > 0);
            assert_int_equal(d->ops[k - 1].kind, POLICY_OP_SET_MAXMEM);
            assert_int_equal(d->ops[k - 1].domid, op->domid);
            assert_int_equal(d->ops[k - 1].value_kib, op->value_kib);
        } else {
            down = true;
            assert_true(k + 1 < d->n_ops);
            assert_int_equal(d->ops[k + 1].kind, POLICY_OP_SET_MAXMEM);
            assert_int_equal(d->ops[k + 1].domid, op->domid);
            assert_int_equal(d->ops[k + 1].value_kib, op->value_kib);
        }
    }
    assert_false(up && down);
    int64_t budget_kib = d->guaranteed_free_kib - d->host_target_kib;
    assert_true(increase_kib <= (budget_kib > 0 ? budget_kib : 0));
}

static enum policy_verdict round_at(struct fixture *fx, const struct policy_request *req)
{
    assert_int_equal(policy_round(fx->st, model_snapshot(&fx->m), req, fx->m.now_ms, &fx->d),
                     0);
    check_ops(&fx->m, &fx->d);
    if (fx->d.verdict != POLICY_CONTINUE)
        assert_int_equal(fx->d.n_ops, 0);
    return fx->d.verdict;
}

/* Apply the last decision and let one poll interval pass. */
static void advance(struct fixture *fx)
{
    model_apply(&fx->m, &fx->d);
    model_step(&fx->m);
    assert_true(fx->m.min_free_kib >= 0);
}

/* Run rounds until a verdict; fails the test after max_rounds. */
static enum policy_verdict run(struct fixture *fx, const struct policy_request *req,
                               unsigned max_rounds)
{
    for (fx->rounds = 1; fx->rounds <= max_rounds; fx->rounds++) {
        enum policy_verdict v = round_at(fx, req);
        if (v != POLICY_CONTINUE)
            return v;
        advance(fx);
    }
    fail_msg("no verdict after %u rounds", max_rounds);
    return POLICY_CONTINUE;
}

static struct policy_request free_req(int64_t need_kib, int64_t reserved_kib)
{
    struct policy_request r = {
        .kind = POLICY_FREE, .need_kib = need_kib, .reserved_kib = reserved_kib};
    return r;
}

static struct policy_request range_req(int64_t min_kib, int64_t max_kib, int64_t reserved_kib)
{
    struct policy_request r = {.kind = POLICY_FREE_RANGE,
                               .min_kib = min_kib,
                               .max_kib = max_kib,
                               .reserved_kib = reserved_kib};
    return r;
}

static struct policy_request balance_req(int64_t reserved_kib)
{
    struct policy_request r = {.kind = POLICY_BALANCE, .reserved_kib = reserved_kib};
    return r;
}

static const struct policy_op *find_op(const struct policy_decision *d,
                                       enum policy_op_kind kind, int32_t domid)
{
    for (size_t k = 0; k < d->n_ops; k++)
        if (d->ops[k].kind == kind && d->ops[k].domid == domid)
            return &d->ops[k];
    return NULL;
}

static void test_proportional_targets_exact(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(1000);

    /* surplus = 2016 + (2000-1000-8) + (3000-2000-8) - 1000 = 3000 over a range of
     * 6000: gamma 0.5, targets 1000+1000 (unchanged) and 2000+2000. */
    model_free_kib(&fx->m, 2016);
    model_add(&fx->m, 1, true, 1000, 3000, 2000, 2000, 1000);
    model_add(&fx->m, 2, true, 2000, 6000, 3000, 3000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_float_equal(fx->d.gamma, 0.5, 1e-12);
    assert_int_equal(fx->d.host_target_kib, 1000);
    /* Both at their targets: nothing more to grow into. */
    assert_int_equal(fx->d.guaranteed_free_kib, 2016);
    assert_int_equal(fx->d.n_active, 2);
    assert_int_equal(fx->d.n_ops, 2);
    assert_int_equal(fx->d.ops[0].kind, POLICY_OP_SET_MAXMEM);
    assert_int_equal(fx->d.ops[0].domid, 2);
    assert_int_equal(fx->d.ops[0].value_kib, 4000);
    assert_int_equal(fx->d.ops[1].kind, POLICY_OP_SET_TARGET);
    assert_int_equal(fx->d.ops[1].domid, 2);
    assert_int_equal(fx->d.ops[1].value_kib, 4000);
}

static void test_proportional_targets_round_down(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(2084, 0);

    /* surplus = 100 + 992 + 1992 - 2084 = 1000 over 3000: gamma 1/3; targets
     * 1000 + 1000/3 and 1000 + 2000/3, rounded down to whole 4 KiB pages. */
    model_free_kib(&fx->m, 100);
    model_add(&fx->m, 1, true, 1000, 2000, 2000, 2000, 1000);
    model_add(&fx->m, 2, true, 1000, 3000, 3000, 3000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_float_equal(fx->d.gamma, 1.0 / 3.0, 1e-12);
    assert_int_equal(fx->d.host_target_kib, 2084);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 1)->value_kib, 1332);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 2)->value_kib, 1664);

    assert_int_equal(run(fx, &req, 20), POLICY_SUCCESS);
    assert_int_equal(fx->m.free_kib, 100 + 668 + 1336);
    assert_int_equal(fx->d.reserve_kib, 2084);
    assert_true(model_guaranteed(&fx->m) >= 2084);
    assert_int_equal(fx->m.violations, 0);
}

static void test_gamma_clamped_at_zero(void **state)
{
    struct fixture *fx = *state;
    /* surplus = 0 + 2992 + 5992 - 9000 < 0, while every guest at its min would give
     * exactly 9000: possible, so not failed fast. */
    struct policy_request req = free_req(9000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 1, true, 1000, 5000, 4000, 4000, 1000);
    model_add(&fx->m, 2, true, 2000, 9000, 8000, 8000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_true(fx->d.gamma == 0.0);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 1)->value_kib, 1000);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 2)->value_kib, 2000);
}

static void test_gamma_clamped_at_one(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(73728);

    model_free_kib(&fx->m, 100000000);
    model_add(&fx->m, 1, true, 1000, 5000, 2000, 2000, 1000);
    model_add(&fx->m, 2, true, 2000, 9000, 3000, 3000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_true(fx->d.gamma == 1.0);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 1)->value_kib, 5000);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 2)->value_kib, 9000);
}

static void test_two_phase_decreases_first(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(0);

    /* surplus = 7992 + 1992 = 9984 over 20000: both targets 4992. */
    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 1, true, 0, 10000, 8000, 8000, 1000);
    model_add(&fx->m, 2, true, 0, 10000, 2000, 2000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 1)->value_kib, 4992);
    assert_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 2));
    advance(fx);

    /* Domain 1 has freed 1000 so far: domain 2 may grow into that, not more. */
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.guaranteed_free_kib, 1000);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 2)->value_kib, 2000 + 1000);

    assert_int_equal(run(fx, &req, 40), POLICY_SUCCESS);
    assert_int_equal(model_find(&fx->m, 1)->d.target_kib, 4992);
    assert_int_equal(model_find(&fx->m, 2)->d.target_kib, 4992);
    assert_int_equal(fx->m.violations, 0);
}

static void test_increases_granted_in_domid_order_within_guaranteed_free(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(0);

    /* Domain 4 (no range) is still ballooning down to 1000, so its memory counts in the
     * surplus but not yet in host free memory. surplus = 3000 + 3 * 992 + 3992 = 9968
     * over 12000: each of 1..3 wants 3322, a page boundary 3320 (+2320), but only
     * 3000 is guaranteed: domain 2 gets the remaining 680. */
    model_free_kib(&fx->m, 3000);
    model_add(&fx->m, 1, true, 0, 4000, 1000, 1000, 1000);
    model_add(&fx->m, 2, true, 0, 4000, 1000, 1000, 1000);
    model_add(&fx->m, 3, true, 0, 4000, 1000, 1000, 1000);
    model_add(&fx->m, 4, true, 1000, 1000, 1000, 5000, 500);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.guaranteed_free_kib, 3000);
    assert_int_equal(fx->d.n_ops, 4);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 1)->value_kib, 3320);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 2)->value_kib, 1000 + 680);
    assert_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 3));

    /* Once domain 4 is down to its min, its last 8 KiB count too: 9976 / 3 = 3325,
     * on a page boundary 3324. */
    assert_int_equal(run(fx, &req, 60), POLICY_SUCCESS);
    for (int32_t id = 1; id <= 3; id++)
        assert_int_equal(model_find(&fx->m, id)->d.target_kib, 3324);
    assert_int_equal(fx->m.free_kib, 3000 + 4000 - 3 * 2324);
    assert_true(fx->m.min_free_kib >= 0);
    assert_int_equal(fx->m.violations, 0);
}

static void test_increases_never_take_what_the_operation_needs(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(100000, 5000);

    /* Proportionally domain 1 should shrink and domain 2 grow. Domain 1 never moves:
     * the 8000 KiB already free belong to the reservation and the reserve, so domain 2
     * must not be given any of it; once domain 1 is stuck, domain 2 frees instead. */
    model_free_kib(&fx->m, 8000);
    model_add(&fx->m, 1, true, 100000, 400000, 400000, 400000, 0);
    model_add(&fx->m, 2, true, 100000, 400000, 250000, 250000, 20000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_non_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 1));
    assert_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 2));
    int64_t highest_kib = 250000;
    for (fx->rounds = 0; fx->d.verdict == POLICY_CONTINUE && fx->rounds < 100; fx->rounds++) {
        advance(fx);
        round_at(fx, &req);
        const struct policy_op *op = find_op(&fx->d, POLICY_OP_SET_TARGET, 2);
        if (op != NULL && op->value_kib > highest_kib)
            highest_kib = op->value_kib;
    }
    assert_int_equal(fx->d.verdict, POLICY_SUCCESS);
    assert_int_equal(highest_kib, 250000);
    assert_true(model_find(&fx->m, 2)->d.target_kib < 250000);
    assert_true(fx->m.min_free_kib >= 8000);
    assert_true(model_guaranteed(&fx->m) >= 100000 + 5000);
}

static void test_free_never_negative_with_racing_guests(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(40000, 1000);

    /* Fast growers and slow shrinkers: without the budget on increases the growers
     * would take memory the shrinkers have not given back yet. */
    model_free_kib(&fx->m, 2000);
    for (int32_t id = 1; id <= 10; id++) {
        if (id % 2)
            model_add(&fx->m, id, true, 1000, 20000, 19000, 19000, 300);
        else
            model_add(&fx->m, id, true, 1000, 20000, 1500, 1500, 5000);
    }
    assert_int_equal(run(fx, &req, 400), POLICY_SUCCESS);
    assert_true(fx->m.min_free_kib >= 0);
    assert_true(model_guaranteed(&fx->m) >= 40000 + 1000);
    assert_int_equal(fx->m.violations, 0);
}

static void test_continue_without_ops_while_balloons_move(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(3000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 1, true, 1000, 5000, 5000, 5000, 100);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_true(fx->d.n_ops > 0);
    advance(fx);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.n_ops, 0);
}

static void test_maxmem_raised_before_target_up(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(0);

    model_free_kib(&fx->m, 1000000);
    model_add(&fx->m, 3, true, 1000, 8000, 2000, 2000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.n_ops, 2);
    assert_int_equal(fx->d.ops[0].kind, POLICY_OP_SET_MAXMEM);
    assert_int_equal(fx->d.ops[0].value_kib, 8000);
    assert_int_equal(fx->d.ops[1].kind, POLICY_OP_SET_TARGET);
    assert_int_equal(fx->d.ops[1].value_kib, 8000);
    advance(fx);
    assert_int_equal(fx->m.violations, 0);
}

static void test_maxmem_lowered_after_target_down(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(7000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 3, true, 1000, 8000, 8000, 8000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.n_ops, 2);
    assert_int_equal(fx->d.ops[0].kind, POLICY_OP_SET_TARGET);
    assert_int_equal(fx->d.ops[0].value_kib, 1000);
    assert_int_equal(fx->d.ops[1].kind, POLICY_OP_SET_MAXMEM);
    assert_int_equal(fx->d.ops[1].value_kib, 1000);
    advance(fx);
    assert_int_equal(fx->m.violations, 0);
}

/* Two domains asked to go down to 2992 (FREE 4000 from free 0); domain 1 never moves. */
static void two_to_squeeze(struct fixture *fx, int64_t free_kib)
{
    model_free_kib(&fx->m, free_kib);
    model_add(&fx->m, 1, true, 1000, 5000, 5000, 5000, 0);
    model_add(&fx->m, 2, true, 1000, 5000, 5000, 5000, 1000);
}

static void round_at_ms(struct fixture *fx, const struct policy_request *req, int64_t now_ms)
{
    fx->m.now_ms = now_ms;
    assert_int_equal(round_at(fx, req), POLICY_CONTINUE);
    model_apply(&fx->m, &fx->d);
    model_move(&fx->m);
}

static void test_stuck_after_more_than_5s_not_at_5s(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(4000, 0);

    two_to_squeeze(fx, 0);
    round_at_ms(fx, &req, 0);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 1)->value_kib, 2992);
    round_at_ms(fx, &req, 2500);
    round_at_ms(fx, &req, 5000);
    assert_false(policy_state_is_stuck(fx->st, 1));
    assert_int_equal(fx->d.n_newly_stuck, 0);

    round_at_ms(fx, &req, 5001);
    assert_true(policy_state_is_stuck(fx->st, 1));
    assert_false(policy_state_is_stuck(fx->st, 2));
    assert_int_equal(fx->d.n_newly_stuck, 1);
    assert_int_equal(fx->d.newly_stuck[0], 1);
    assert_int_equal(fx->d.n_active, 1);

    /* Declared once, not again. */
    round_at_ms(fx, &req, 6000);
    assert_int_equal(fx->d.n_newly_stuck, 0);
    assert_true(policy_state_is_stuck(fx->st, 1));
}

static void test_stuck_domain_clipped_and_others_compensate(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(4000, 0);

    two_to_squeeze(fx, 100);
    for (fx->rounds = 0; fx->rounds < 100 && fx->d.n_newly_stuck == 0; fx->rounds++) {
        assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
        if (fx->d.n_newly_stuck == 0)
            advance(fx);
    }
    assert_int_equal(fx->d.newly_stuck[0], 1);
    assert_true(fx->m.now_ms > POLICY_STUCK_AFTER_MS);
    /* Clip: min(target, actual 5000) within [1000, 5000], i.e. its target 3040. */
    const struct policy_op *clip = find_op(&fx->d, POLICY_OP_SET_MAXMEM, 1);
    assert_non_null(clip);
    assert_int_equal(model_find(&fx->m, 1)->d.target_kib, 3040);
    assert_int_equal(clip->value_kib, 3040);
    assert_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 1));
    int64_t target1 = model_find(&fx->m, 1)->d.target_kib;

    /* Domain 2 alone must now free what both were asked for: 100 + 3908 >= 4000. */
    assert_int_equal(run(fx, &req, 100), POLICY_SUCCESS);
    assert_int_equal(model_find(&fx->m, 1)->d.target_kib, target1);
    assert_int_equal(model_find(&fx->m, 1)->d.maxmem_kib, target1);
    assert_int_equal(model_find(&fx->m, 2)->d.target_kib, 1092);
    assert_true(model_guaranteed(&fx->m) >= 4000);
    assert_int_equal(fx->m.violations, 0);
}

static void test_verdict_waits_one_round_after_newly_stuck(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(2000, 0);

    /* Everyone at dynamic-min already but domain 1 (stuck): nothing will change when it
     * is declared stuck, yet its clip must still be applied before the verdict. */
    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 1, true, 1000, 5000, 1000, 3000, 0);
    for (int64_t t = 0; t <= 5000; t += 1000)
        round_at_ms(fx, &req, t);
    round_at_ms(fx, &req, 5250);
    assert_int_equal(fx->d.n_newly_stuck, 1);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_MAXMEM, 1)->value_kib, 1000);
    fx->m.now_ms = 5500;
    assert_int_equal(round_at(fx, &req), POLICY_REFUSED);
    assert_int_equal(fx->d.n_refused, 1);
    assert_int_equal(fx->d.refused[0], 1);
}

static void test_guaranteed_free_counts_stuck_domain_only_up_to_its_clip(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(0);

    /* Domain 1 should grow from 2000 to 3000 but never does. Until it is declared
     * stuck it may still take 1004; after, its maxmem is clipped to its actual. */
    model_free_kib(&fx->m, 1000000);
    model_add(&fx->m, 1, true, 2000, 3000, 3000, 2000, 0);
    for (int64_t t = 0; t <= 5000; t += 1000) {
        round_at_ms(fx, &req, t);
        assert_int_equal(fx->d.guaranteed_free_kib, 1000000 - 1000);
        assert_int_equal(fx->d.n_ops, 0);
    }
    round_at_ms(fx, &req, 5250);
    assert_int_equal(fx->d.newly_stuck[0], 1);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_MAXMEM, 1)->value_kib, 2000);
    assert_int_equal(fx->d.guaranteed_free_kib, 1000000);
    fx->m.now_ms = 5500;
    assert_int_equal(round_at(fx, &req), POLICY_SUCCESS);
    assert_int_equal(fx->m.violations, 0);
}

static void test_stuck_domain_recovers_when_it_moves(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(8000, 0);

    /* gamma stays 0 throughout, so targets never change: only maxmem moves. */
    two_to_squeeze(fx, 0);
    while (fx->d.n_newly_stuck == 0) {
        assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
        advance(fx);
        assert_true(fx->m.now_ms < 10000);
    }
    assert_int_equal(model_find(&fx->m, 1)->d.maxmem_kib, 1000);
    assert_true(policy_state_is_stuck(fx->st, 1));

    /* It wakes up and shrinks (it may: the clip only stops it growing). */
    model_find(&fx->m, 1)->step_kib = 500;
    model_step(&fx->m);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.n_newly_active, 1);
    assert_int_equal(fx->d.newly_active[0], 1);
    assert_false(policy_state_is_stuck(fx->st, 1));
    assert_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 1));
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_MAXMEM, 1)->value_kib, 1000);
    assert_int_equal(fx->d.n_active, 2);

    /* Nobody is stuck at the end, and both at their mins give exactly what was asked. */
    assert_int_equal(run(fx, &req, 100), POLICY_SUCCESS);
    assert_int_equal(fx->m.free_kib, 8000);
}

static void test_reset_presumes_active(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(4000, 0);

    two_to_squeeze(fx, 0);
    while (!policy_state_is_stuck(fx->st, 1)) {
        assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
        advance(fx);
        assert_true(fx->m.now_ms < 10000);
    }
    policy_state_reset(fx->st);
    assert_false(policy_state_is_stuck(fx->st, 1));

    int64_t t0 = fx->m.now_ms;
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.n_active, 2);
    assert_int_equal(fx->d.n_newly_active, 0);
    /* A fresh chance: stuck again only after another 5 s without progress. */
    while (!policy_state_is_stuck(fx->st, 1)) {
        advance(fx);
        round_at(fx, &req);
    }
    assert_true(fx->m.now_ms - t0 > POLICY_STUCK_AFTER_MS);
}

static void test_fast_path(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(10000, 73728);

    model_free_kib(&fx->m, 73728 + 10000 + 11);
    model_add(&fx->m, 1, true, 1000, 5000, 3000, 3000, 1000);
    model_add(&fx->m, 2, true, 1000, 5000, 3000, 2997, 1000);  /* within inaccuracy */
    model_add(&fx->m, 3, false, 1000, 5000, 3000, 1000, 1000); /* not ballooned */
    assert_int_equal(round_at(fx, &req), POLICY_SUCCESS);
    assert_true(fx->d.fast_path);
    assert_int_equal(fx->d.n_ops, 0);
    assert_int_equal(fx->d.reserve_kib, 10000);
    assert_int_equal(fx->d.guaranteed_free_kib, 73728 + 10000 + 8); /* 11 - 3 */
}

static void test_fast_path_not_taken_when_off_target(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(10000, 73728);

    model_free_kib(&fx->m, 1000000);
    model_add(&fx->m, 1, true, 1000, 5000, 3000, 3000, 1000);
    model_add(&fx->m, 2, true, 1000, 5000, 3000, 3100, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_false(fx->d.fast_path);

    assert_int_equal(run(fx, &req, 40), POLICY_SUCCESS);
    assert_false(fx->d.fast_path);
    assert_true(model_guaranteed(&fx->m) >= 10000 + 73728);
}

static void test_free_cannot_free_reports_needed_and_free(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(1000, 200);

    model_free_kib(&fx->m, 500);
    model_add(&fx->m, 1, true, 1000, 2000, 1000, 1000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CANNOT_FREE);
    assert_int_equal(fx->d.needed_kib, 1200);
    assert_int_equal(fx->d.free_kib, 500);
    assert_int_equal(fx->d.n_refused, 0);
}

static void test_refused_names_only_eligible_stuck_domains(void **state)
{
    struct fixture *fx = *state;
    /* Domain 4 gives 4000, domain 2 may still take 100 up to its min: the 4000 short
     * are just what domain 1 holds above its min, so domain 1 is to blame. */
    struct policy_request req = free_req(7900, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 0, true, 1000, 5000, 5000, 5000, 0);  /* dom0, managed, stuck */
    model_add(&fx->m, 1, true, 1000, 5000, 5000, 5000, 0);  /* stuck with memory */
    model_add(&fx->m, 2, true, 1000, 5000, 1000, 900, 0);   /* stuck below its min */
    model_add(&fx->m, 3, false, 1000, 5000, 3000, 5000, 0); /* cannot balloon */
    model_add(&fx->m, 4, true, 1000, 5000, 5000, 5000, 1000);
    assert_int_equal(run(fx, &req, 100), POLICY_REFUSED);
    assert_true(policy_state_is_stuck(fx->st, 0));
    assert_true(policy_state_is_stuck(fx->st, 1));
    assert_true(policy_state_is_stuck(fx->st, 2));
    assert_false(policy_state_is_stuck(fx->st, 3));
    assert_int_equal(fx->d.n_refused, 1);
    assert_int_equal(fx->d.refused[0], 1);
    assert_int_equal(fx->m.violations, 0);
}

static void test_only_dom0_stuck_is_cannot_free(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(8000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 0, true, 1000, 5000, 5000, 5000, 0);
    model_add(&fx->m, 4, true, 1000, 5000, 5000, 5000, 1000);
    assert_int_equal(run(fx, &req, 100), POLICY_CANNOT_FREE);
    assert_true(policy_state_is_stuck(fx->st, 0));
    assert_int_equal(fx->d.needed_kib, 8000);
    assert_int_equal(fx->d.free_kib, 4000);
}

/* Squeezed's scenario e with exact drivers: the host ends with exactly what was asked
 * for, every active guest at its target, and that is a success. */
static void test_request_met_exactly_succeeds(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(1000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 0, true, 5000, 7000, 7000, 7000, 0);    /* dom0, managed, stuck */
    model_add(&fx->m, 1, true, 5000, 11000, 6000, 6000, 100); /* exact driver */
    assert_int_equal(run(fx, &req, 200), POLICY_SUCCESS);
    assert_int_equal(fx->m.free_kib, 1000);
    assert_int_equal(model_find(&fx->m, 1)->d.target_kib, 5000);
    assert_int_equal(fx->d.guaranteed_free_kib, 1000);
    assert_int_equal(fx->m.violations, 0);
}

/* More than every balloonable guest at its dynamic-min could give (stuck ones included):
 * answered in the first round, no target changed, nobody blamed, free < needed. */
static void test_impossible_request_fails_fast(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(64LL << 30, 73728);

    model_free_kib(&fx->m, 100000);
    model_add(&fx->m, 1, true, 1000, 5000, 5000, 5000, 0); /* stuck, would be */
    model_add(&fx->m, 2, true, 1000, 5000, 5000, 5000, 1000);
    model_add(&fx->m, 3, false, 1000, 5000, 5000, 5000, 0); /* cannot balloon */
    assert_int_equal(round_at(fx, &req), POLICY_CANNOT_FREE);
    assert_true(fx->d.fail_fast);
    assert_int_equal(fx->d.n_ops, 0);
    assert_int_equal(fx->d.n_refused, 0);
    assert_int_equal(fx->d.needed_kib, (64LL << 30) + 73728);
    assert_int_equal(fx->d.free_kib, 100000 + 4000 + 4000);
    assert_int_equal(fx->d.best_free_kib, 100000 + 4000 + 4000);
    assert_true(fx->d.free_kib < fx->d.needed_kib);

    /* One KiB less than the best possible is not failed fast. */
    policy_state_reset(fx->st);
    req = free_req(108000 - 73728, 73728);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_false(fx->d.fail_fast);

    /* A range whose min cannot be met fails fast too; a balance never does. */
    policy_state_reset(fx->st);
    req = range_req(200000, 300000, 0);
    assert_int_equal(round_at(fx, &req), POLICY_CANNOT_FREE);
    assert_true(fx->d.fail_fast);
    assert_int_equal(fx->d.needed_kib, 200000);
    policy_state_reset(fx->st);
    req = balance_req(1LL << 30);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
}

/* A stuck guest is named only when what it holds above its dynamic-min would have
 * covered the shortfall: here dom0 (never blamed) holds most of what is missing. */
static void test_stuck_not_blamed_when_it_could_not_have_covered(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(9000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 0, true, 1000, 5000, 5000, 5000, 0); /* dom0, managed, stuck */
    model_add(&fx->m, 1, true, 1000, 5000, 2000, 2000, 0); /* stuck, 1000 above min */
    model_add(&fx->m, 2, true, 1000, 5000, 5000, 5000, 1000);
    assert_int_equal(run(fx, &req, 200), POLICY_CANNOT_FREE);
    assert_true(policy_state_is_stuck(fx->st, 1));
    assert_int_equal(fx->d.needed_kib, 9000);
    assert_int_equal(fx->d.free_kib, 4000);
    assert_int_equal(fx->d.n_refused, 0);

    /* Asking 1000 less, guest 1 alone would have made the difference: it is named. */
    policy_state_reset(fx->st);
    req = free_req(5000, 0);
    assert_int_equal(run(fx, &req, 200), POLICY_REFUSED);
    assert_int_equal(fx->d.n_refused, 1);
    assert_int_equal(fx->d.refused[0], 1);
}

/* A paused guest's driver cannot run: a balance hands it nothing, others still grow. */
static void test_paused_domain_gets_no_increase(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(0);

    model_free_kib(&fx->m, 100000);
    model_add(&fx->m, 1, true, 1000, 50000, 1000, 1000, 1000)->d.paused = true;
    model_add(&fx->m, 2, true, 1000, 50000, 1000, 1000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 1));
    assert_null(find_op(&fx->d, POLICY_OP_SET_MAXMEM, 1));
    assert_non_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 2));
    assert_int_equal(run(fx, &req, 400), POLICY_SUCCESS);
    assert_int_equal(model_find(&fx->m, 1)->d.target_kib, 1000);
    assert_int_equal(model_find(&fx->m, 2)->d.target_kib, 50000);
    /* Not wanted again by the periodic check either. */
    assert_false(policy_balance_needed(NULL, model_snapshot(&fx->m), 0));
}

static void test_free_range_ideal(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = range_req(1000, 3000, 500);

    /* Virtual domain [1000, 3000]: surplus = 1000 + 2 * 1992 - 500 - 1000 = 3484 over
     * 6000, ideal = 1000 + 1161 = 2161. Then surplus = 1000 + 3984 - 2661 = 2323 over
     * 4000: both domains at 1000 + 1161 too, on a page boundary: 2160. */
    model_free_kib(&fx->m, 1000);
    model_add(&fx->m, 1, true, 1000, 3000, 3000, 3000, 200);
    model_add(&fx->m, 2, true, 1000, 3000, 3000, 3000, 200);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_int_equal(fx->d.host_target_kib, 500 + 2161);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 1)->value_kib, 2160);
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_TARGET, 2)->value_kib, 2160);

    /* The ideal is fixed in round one, whatever free memory does later. */
    for (fx->rounds = 0; fx->rounds < 50; fx->rounds++) {
        advance(fx);
        if (round_at(fx, &req) != POLICY_CONTINUE)
            break;
        assert_int_equal(fx->d.host_target_kib, 500 + 2161);
    }
    assert_int_equal(fx->d.verdict, POLICY_SUCCESS);
    assert_int_equal(fx->m.free_kib, 1000 + 2 * 840);
    /* clamp(guaranteed free - reserved, min, max) = 2680 - 500 */
    assert_int_equal(fx->d.reserve_kib, 2180);
    assert_true(model_guaranteed(&fx->m) >= fx->d.reserve_kib + 500);
}

static void test_free_range_reserve_clamped_to_max(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = range_req(1000, 3000, 500);

    model_free_kib(&fx->m, 1000000);
    model_add(&fx->m, 1, true, 1000, 3000, 2000, 2100, 500); /* off target: no fast path */
    assert_int_equal(run(fx, &req, 20), POLICY_SUCCESS);
    assert_false(fx->d.fast_path);
    assert_int_equal(model_find(&fx->m, 1)->d.target_kib, 3000);
    assert_int_equal(fx->d.reserve_kib, 3000);

    /* And through the fast path. */
    policy_state_reset(fx->st);
    assert_int_equal(round_at(fx, &req), POLICY_SUCCESS);
    assert_true(fx->d.fast_path);
    assert_int_equal(fx->d.reserve_kib, 3000);
}

static void test_free_range_succeeds_with_min_when_ideal_unreachable(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = range_req(1000, 100000, 0);

    /* Domain 1 is stuck, so the ideal cannot be met, but min can: success. */
    model_free_kib(&fx->m, 1500);
    model_add(&fx->m, 1, true, 1000, 50000, 50000, 50000, 0);
    model_add(&fx->m, 2, true, 1000, 3000, 3000, 3000, 1000);
    assert_int_equal(run(fx, &req, 100), POLICY_SUCCESS);
    assert_true(fx->d.reserve_kib >= 1000);
    assert_true(fx->d.reserve_kib <= 100000);
    assert_true(model_guaranteed(&fx->m) >= fx->d.reserve_kib);
}

static void test_balance_success(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(73728);

    model_free_kib(&fx->m, 500000);
    model_add(&fx->m, 1, true, 100000, 400000, 100000, 100000, 50000);
    model_add(&fx->m, 2, true, 200000, 900000, 300000, 300000, 50000);
    assert_int_equal(run(fx, &req, 100), POLICY_SUCCESS);
    assert_int_equal(fx->d.reserve_kib, 0);
    assert_true(fx->m.free_kib >= 73728);
    assert_true(fx->m.free_kib - 73728 < POLICY_BALANCE_SLACK_KIB);
    assert_false(policy_balance_needed(NULL, model_snapshot(&fx->m), 73728));
    assert_int_equal(fx->m.violations, 0);
}

static void test_balance_spare_memory_with_everyone_at_max_is_success(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(73728);

    model_free_kib(&fx->m, 10000000);
    model_add(&fx->m, 1, true, 100000, 400000, 100000, 100000, 50000);
    model_add(&fx->m, 2, true, 200000, 900000, 900000, 900000, 50000);
    assert_int_equal(run(fx, &req, 100), POLICY_SUCCESS);
    assert_int_equal(model_find(&fx->m, 1)->d.actual_kib, 400000);
    assert_true(fx->m.free_kib - 73728 > POLICY_BALANCE_SLACK_KIB);
}

static void test_balance_fails_when_stuck_guest_holds_the_reserve(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(73728);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 1, true, 100000, 400000, 400000, 400000, 0);
    assert_int_equal(run(fx, &req, 100), POLICY_REFUSED);
    assert_int_equal(fx->d.refused[0], 1);
}

static void test_balance_needed(void **state)
{
    struct fixture *fx = *state;

    /* Spare memory and room to grow. */
    model_free_kib(&fx->m, 1000000);
    model_add(&fx->m, 1, true, 100000, 400000, 100000, 100000, 50000);
    assert_true(policy_balance_needed(NULL, model_snapshot(&fx->m), 73728));
    /* Everyone at max already. */
    model_find(&fx->m, 1)->d.target_kib = 400000;
    model_find(&fx->m, 1)->d.actual_kib = 400000;
    assert_false(policy_balance_needed(NULL, model_snapshot(&fx->m), 73728));
    /* Short of the reserve: someone must give memory back. */
    model_free_kib(&fx->m, 1000);
    assert_true(policy_balance_needed(NULL, model_snapshot(&fx->m), 73728));
    /* Domains that cannot balloon are never rebalanced. */
    model_find(&fx->m, 1)->d.can_balloon = false;
    assert_false(policy_balance_needed(NULL, model_snapshot(&fx->m), 73728));
    /* Malformed input is never a reason to act. */
    model_find(&fx->m, 1)->d.dynamic_min_kib = 500000;
    assert_false(policy_balance_needed(NULL, model_snapshot(&fx->m), 73728));
}

static void test_coop_flips_after_20s_and_back(void **state)
{
    struct fixture *fx = *state;
    struct policy_coop *c = policy_coop_new();
    struct policy_coop_change *ch = NULL;

    model_add(&fx->m, 1, true, 1000, 5000, 3000, 3000, 0);
    model_add(&fx->m, 2, false, 1000, 5000, 3000, 1000, 0); /* cannot balloon */
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 0, &ch), 0);
    assert_null(ch);

    model_find(&fx->m, 1)->d.actual_kib = 4000; /* leaves its target */
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 1000, &ch), 0);
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 20000, &ch), 0);
    assert_false(policy_coop_is_uncooperative(c, 1));
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 20001, &ch), 1);
    assert_int_equal(ch[0].domid, 1);
    assert_true(ch[0].uncooperative);
    free(ch);
    assert_true(policy_coop_is_uncooperative(c, 1));
    assert_false(policy_coop_is_uncooperative(c, 2));
    /* Reported on the flip only. */
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 30000, &ch), 0);
    assert_null(ch);

    /* A new domain off target is presumed cooperative from when it is first seen. */
    model_add(&fx->m, 5, true, 1000, 5000, 3000, 1000, 0);
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 40000, &ch), 0);
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 60000, &ch), 0);

    model_find(&fx->m, 1)->d.actual_kib = 3003; /* back within inaccuracy */
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 60001, &ch), 2);
    assert_int_equal(ch[0].domid, 1);
    assert_false(ch[0].uncooperative);
    assert_int_equal(ch[1].domid, 5);
    assert_true(ch[1].uncooperative);
    free(ch);
    assert_false(policy_coop_is_uncooperative(c, 1));

    /* Gone domains are forgotten. */
    model_remove(&fx->m, 5);
    assert_int_equal(policy_coop_update(c, model_snapshot(&fx->m), 60002, &ch), 0);
    assert_false(policy_coop_is_uncooperative(c, 5));
    policy_coop_free(c);
    policy_coop_free(NULL);
}

/* A state that has seen domain 1 stuck, for the -EINVAL tests. */
static void stuck_state(struct fixture *fx, const struct policy_request *req)
{
    two_to_squeeze(fx, 0);
    while (!policy_state_is_stuck(fx->st, 1)) {
        assert_int_equal(round_at(fx, req), POLICY_CONTINUE);
        advance(fx);
        assert_true(fx->m.now_ms < 10000);
    }
}

static void expect_einval_keeps_state(struct fixture *fx, const struct policy_host *h,
                                      const struct policy_request *req)
{
    assert_int_equal(policy_round(fx->st, h, req, fx->m.now_ms + 60000, &fx->d), -EINVAL);
    assert_true(policy_state_is_stuck(fx->st, 1));
    assert_int_equal(fx->d.n_ops, 0);
}

static void test_einval_malformed_host(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(4000, 0);
    struct policy_host h;

    /* The hosts below leave out domain 1: had the state been touched, it would have
     * dropped domain 1 and forgotten that it is stuck. */
    stuck_state(fx, &req);
    const struct policy_domain good = model_find(&fx->m, 2)->d;
    struct policy_domain doms[2] = {good, good};
    doms[1].domid = 3;
    h.free_kib = 0;
    h.n_domains = 2;
    h.domains = doms;

    doms[1].domid = 1; /* unsorted */
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].domid = 2; /* duplicate */
    expect_einval_keeps_state(fx, &h, &req);
    doms[1] = good;
    doms[1].domid = 3;
    doms[1].dynamic_min_kib = doms[1].dynamic_max_kib + 1; /* min > max */
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].dynamic_min_kib = good.dynamic_min_kib;
    doms[1].actual_kib = -1;
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].actual_kib = good.actual_kib;
    doms[1].target_kib = -4;
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].target_kib = good.target_kib;
    doms[1].maxmem_kib = -4;
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].maxmem_kib = good.maxmem_kib;
    doms[1].dynamic_min_kib = -1;
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].dynamic_min_kib = good.dynamic_min_kib;
    doms[1].inaccuracy_kib = -1;
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].inaccuracy_kib = good.inaccuracy_kib;
    doms[1].dynamic_max_kib = INT64_MAX; /* absurd: sums would overflow */
    expect_einval_keeps_state(fx, &h, &req);
    doms[1].dynamic_max_kib = good.dynamic_max_kib;
    doms[1].domid = -3;
    doms[0].domid = -4;
    expect_einval_keeps_state(fx, &h, &req);
    doms[0].domid = 2;
    doms[1].domid = 3;
    h.free_kib = INT64_MIN;
    expect_einval_keeps_state(fx, &h, &req);
    h.free_kib = 0;
    h.domains = NULL;
    expect_einval_keeps_state(fx, &h, &req);
    expect_einval_keeps_state(fx, NULL, &req);

    /* Free memory may legitimately be negative (reservations not yet freed); this
     * valid host drops domain 1. */
    h.domains = doms;
    h.free_kib = -1000;
    assert_int_equal(policy_round(fx->st, &h, &req, fx->m.now_ms, &fx->d), 0);
    assert_false(policy_state_is_stuck(fx->st, 1));
}

static void test_einval_malformed_request(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(4000, 0);
    struct policy_request bad;
    struct policy_host h;

    stuck_state(fx, &req);
    model_snapshot(&fx->m);
    h = fx->m.host;
    h.domains = &fx->m.snap[1]; /* without domain 1, as above */
    h.n_domains = 1;
    bad = range_req(3000, 1000, 0);
    expect_einval_keeps_state(fx, &h, &bad);
    bad = range_req(-1, 1000, 0);
    expect_einval_keeps_state(fx, &h, &bad);
    bad = free_req(-1, 0);
    expect_einval_keeps_state(fx, &h, &bad);
    bad = free_req(1, -1);
    expect_einval_keeps_state(fx, &h, &bad);
    bad = balance_req(-73728);
    expect_einval_keeps_state(fx, &h, &bad);
    bad = free_req(INT64_MAX, 0);
    expect_einval_keeps_state(fx, &h, &bad);
    bad = balance_req(0);
    bad.kind = (enum policy_kind)42;
    expect_einval_keeps_state(fx, &h, &bad);
    expect_einval_keeps_state(fx, &h, NULL);
    assert_int_equal(policy_round(NULL, &h, &req, 0, &fx->d), -EINVAL);
    assert_int_equal(policy_round(fx->st, &h, &req, 0, NULL), -EINVAL);
    assert_true(policy_state_is_stuck(fx->st, 1));
}

static void test_32000_domains_converge(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(32000 * 100000LL, 73728);

    model_free_kib(&fx->m, 1048576);
    for (int32_t id = 1; id <= 32000; id++) {
        int64_t min = 262144 + (id % 5) * 65536;
        int64_t max = min + 524288 + (id % 3) * 262144;
        int64_t at = min + (id % 4) * 131072;
        model_add(&fx->m, id, true, min, max, at, at, 131072);
    }
    assert_int_equal(run(fx, &req, 200), POLICY_SUCCESS);
    assert_true(fx->rounds < 50);
    assert_int_equal(fx->d.n_active, 32000);
    assert_true(model_guaranteed(&fx->m) >= 32000 * 100000LL + 73728);
    assert_int_equal(fx->m.violations, 0);
    /* And all at the same proportion of their range, give or take the rounding. */
    double g = fx->d.gamma;
    for (size_t i = 0; i < fx->m.n; i++) {
        const struct policy_domain *d = &fx->m.doms[i].d;
        double want =
            (double)d->dynamic_min_kib + g * (double)(d->dynamic_max_kib - d->dynamic_min_kib);
        assert_true((double)d->target_kib <= want + 1.0);
        assert_true((double)d->target_kib >= want - 1.0 - POLICY_PAGE_KIB);
    }
}

static void test_domains_disappear_and_appear(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(12000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 1, true, 1000, 5000, 5000, 5000, 0);
    model_add(&fx->m, 2, true, 1000, 5000, 5000, 5000, 1000);
    model_add(&fx->m, 7, true, 1000, 5000, 5000, 5000, 1000);
    while (!policy_state_is_stuck(fx->st, 1)) {
        assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
        advance(fx);
        assert_true(fx->m.now_ms < 10000);
    }
    /* The stuck domain is destroyed and another one appears. */
    model_remove(&fx->m, 1);
    model_add(&fx->m, 3, true, 1000, 5000, 5000, 5000, 0);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_false(policy_state_is_stuck(fx->st, 1));
    assert_false(policy_state_is_stuck(fx->st, 3));
    assert_int_equal(fx->d.n_active, 3);
    assert_non_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 3));
    int64_t seen_ms = fx->m.now_ms;

    /* Domid 1 comes back as a new domain: it starts afresh, not stuck. */
    advance(fx);
    model_add(&fx->m, 1, true, 1000, 5000, 5000, 5000, 1000);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_false(policy_state_is_stuck(fx->st, 1));
    assert_int_equal(fx->d.n_active, 4);

    /* The new domain 3 never moves: stuck 5 s after it was first seen, not before. */
    while (!policy_state_is_stuck(fx->st, 3)) {
        advance(fx);
        assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
        assert_true(fx->m.now_ms < seen_ms + 10000);
    }
    assert_true(fx->m.now_ms - seen_ms > POLICY_STUCK_AFTER_MS);
    advance(fx);
    assert_int_equal(run(fx, &req, 100), POLICY_SUCCESS);
    assert_true(model_guaranteed(&fx->m) >= 12000);
}

static void test_clipped_maxmem_lifted_for_a_fresh_chance(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = balance_req(0);

    /* A clip left by an earlier operation: maxmem below the unchanged target.
     * surplus = 16 + 992 + 2992 = 4000 over 8000: targets stay 3000. */
    model_free_kib(&fx->m, 16);
    struct mdom *x = model_add(&fx->m, 1, true, 1000, 5000, 3000, 2000, 500);
    x->d.maxmem_kib = 2000;
    model_add(&fx->m, 2, true, 1000, 5000, 3000, 4000, 500);
    assert_int_equal(round_at(fx, &req), POLICY_CONTINUE);
    assert_null(find_op(&fx->d, POLICY_OP_SET_TARGET, 1));
    assert_int_equal(find_op(&fx->d, POLICY_OP_SET_MAXMEM, 1)->value_kib, 3000);
    assert_int_equal(run(fx, &req, 40), POLICY_SUCCESS);
    assert_int_equal(model_find(&fx->m, 1)->d.actual_kib, 3000);
    assert_int_equal(fx->m.violations, 0);
}

static void test_non_active_domains_keep_targets(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(1000, 0);

    model_free_kib(&fx->m, 0);
    model_add(&fx->m, 1, false, 1000, 5000, 5000, 5000, 1000);
    model_add(&fx->m, 2, true, 1000, 5000, 5000, 5000, 1000);
    assert_int_equal(run(fx, &req, 40), POLICY_SUCCESS);
    assert_int_equal(model_find(&fx->m, 1)->d.target_kib, 5000);
    assert_int_equal(model_find(&fx->m, 1)->d.maxmem_kib, 5000);
    assert_true(model_find(&fx->m, 2)->d.target_kib < 5000);
}

static void test_empty_host(void **state)
{
    struct fixture *fx = *state;
    struct policy_request req = free_req(1000, 0);

    model_free_kib(&fx->m, 500);
    assert_int_equal(round_at(fx, &req), POLICY_CANNOT_FREE);
    assert_int_equal(fx->d.n_active, 0);
    assert_false(policy_balance_needed(NULL, model_snapshot(&fx->m), 0));
    policy_state_free(NULL);
    policy_decision_free(NULL);
    assert_false(policy_state_is_stuck(NULL, 1));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_proportional_targets_exact),
        T(test_proportional_targets_round_down),
        T(test_gamma_clamped_at_zero),
        T(test_gamma_clamped_at_one),
        T(test_two_phase_decreases_first),
        T(test_increases_granted_in_domid_order_within_guaranteed_free),
        T(test_increases_never_take_what_the_operation_needs),
        T(test_free_never_negative_with_racing_guests),
        T(test_continue_without_ops_while_balloons_move),
        T(test_maxmem_raised_before_target_up),
        T(test_maxmem_lowered_after_target_down),
        T(test_stuck_after_more_than_5s_not_at_5s),
        T(test_stuck_domain_clipped_and_others_compensate),
        T(test_verdict_waits_one_round_after_newly_stuck),
        T(test_guaranteed_free_counts_stuck_domain_only_up_to_its_clip),
        T(test_stuck_domain_recovers_when_it_moves),
        T(test_reset_presumes_active),
        T(test_fast_path),
        T(test_fast_path_not_taken_when_off_target),
        T(test_free_cannot_free_reports_needed_and_free),
        T(test_refused_names_only_eligible_stuck_domains),
        T(test_only_dom0_stuck_is_cannot_free),
        T(test_request_met_exactly_succeeds),
        T(test_impossible_request_fails_fast),
        T(test_stuck_not_blamed_when_it_could_not_have_covered),
        T(test_paused_domain_gets_no_increase),
        T(test_free_range_ideal),
        T(test_free_range_reserve_clamped_to_max),
        T(test_free_range_succeeds_with_min_when_ideal_unreachable),
        T(test_balance_success),
        T(test_balance_spare_memory_with_everyone_at_max_is_success),
        T(test_balance_fails_when_stuck_guest_holds_the_reserve),
        T(test_balance_needed),
        T(test_coop_flips_after_20s_and_back),
        T(test_einval_malformed_host),
        T(test_einval_malformed_request),
        T(test_32000_domains_converge),
        T(test_domains_disappear_and_appear),
        T(test_clipped_maxmem_lifted_for_a_fresh_chance),
        T(test_non_active_domains_keep_targets),
        T(test_empty_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
