/* SPDX-License-Identifier: LGPL-2.1-only */
/* Faults in the middle of squeezes: domains destroyed at every step, the clock jumping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sim/sim.h"
#include "cache/domcache.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/squeeze.h"
#include "tests/fakexen/fakexen.h"
#include "tests/support/fault_backend.h"
#include "tests/support/harness.h"

/*
 * The reference squeeze: scenarios/fault-squeeze.json, reserve 2 GiB (1.6 GiB to free
 * from guest 1, fast; guest 2, slow; guest 3, stuck), on the virtual clock. It takes
 * some thirty rounds: the stuck guest is found out after 5 s and the others give more.
 * Each test reruns it with a fault at round k, for every k the reference has, and
 * checks that the operation still ends with a clean verdict, that the next snapshot is
 * the simulated host's truth, and that the host recorded no violation. Leaks show in
 * the ASan run.
 */

#define SCENARIO "scenarios/fault-squeeze.json"
#define RESERVED_KIB 73728
#define NEED_KIB 2097152
#define TIMEOUT_MS 600000
#define MAX_ROUNDS 256

/* ---- one squeeze with a fault planned at a round ---- */

enum fault {
    FAULT_NONE,
    FAULT_DESTROY,            /* observer: the sim destroys the victim (after the snapshot,
                                 before the round's targets are applied) */
    FAULT_DESTROY_IN_TX,      /* observer arms fakexen: inside the next transaction */
    FAULT_DESTROY_ON_READ,    /* observer arms fakexen: at the next read in its directory */
    FAULT_DESTROY_AFTER_LIST, /* the round's domain list arms fakexen: at the next read */
    FAULT_JUMP,               /* observer: the clock jumps by jump_ms, once */
    FAULT_JUMP_EVERY,         /* observer: the clock jumps by jump_ms every round from k */
};

struct plan {
    enum fault fault;
    unsigned at_round; /* 1-based; 0 never */
    uint32_t victim;
    int64_t jump_ms;
};

/* What a run saw, round by round. */
struct seen {
    unsigned rounds;
    bool stuck[8]; /* domids < 8 declared stuck at some round */
    int64_t min_sim_free_kib;
};

/* The pieces of a run: the sim, a backend over it (sim or xen.c + fakexen) in a fault_backend,
 * the cache and the squeezer. */
struct rig {
    struct sim *sim; /* owned by the inner backend (sim) or by the rig (xen) */
    bool xen;
    struct fault_backend *w; /* tests/support: clock offsets, a hook after the list */
    struct domcache *dc;
    struct squeezer *sq;
    struct plan plan;
    struct seen seen;
};

static struct sim *load_world(void)
{
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    if (sim_scenario_load(SCENARIO, &sc, &err) < 0)
        fail_msg("%s: %s", SCENARIO, err ? err : "?");
    struct sim *s = sim_new(sc, SIM_CLOCK_VIRTUAL, &err);
    if (s == NULL)
        fail_msg("%s: %s", SCENARIO, err ? err : "?");
    sim_scenario_free(sc);
    return s;
}

static void after_list(struct fault_backend *fb, void *ctx)
{
    struct rig *r = ctx;
    (void)fb;
    /* The list of round k is taken when k - 1 rounds are done. */
    if (r->plan.fault == FAULT_DESTROY_AFTER_LIST && r->seen.rounds + 1 == r->plan.at_round)
        fakexen_destroy_on_read(r->plan.victim);
}

static void observe(void *ctx, const struct domcache_snapshot *snap,
                    const struct policy_decision *d)
{
    struct rig *r = ctx;
    (void)snap;
    r->seen.rounds++;
    for (size_t i = 0; i < d->n_newly_stuck; i++)
        if (d->newly_stuck[i] >= 0 && d->newly_stuck[i] < 8)
            r->seen.stuck[d->newly_stuck[i]] = true;
    int64_t free_kib = sim_host_free_kib(r->sim);
    if (free_kib < r->seen.min_sim_free_kib)
        r->seen.min_sim_free_kib = free_kib;
    assert_true(r->seen.rounds < MAX_ROUNDS);

    const struct plan *p = &r->plan;
    bool now = r->seen.rounds == p->at_round;
    switch (p->fault) {
    case FAULT_DESTROY:
        if (now)
            sim_destroy_domain(r->sim, p->victim);
        break;
    case FAULT_DESTROY_IN_TX:
        if (now)
            fakexen_destroy_in_transaction(p->victim);
        break;
    case FAULT_DESTROY_ON_READ:
        if (now)
            fakexen_destroy_on_read(p->victim);
        break;
    case FAULT_JUMP:
        if (now)
            r->w->offset_ms += p->jump_ms;
        break;
    case FAULT_JUMP_EVERY:
        if (p->at_round != 0 && r->seen.rounds >= p->at_round)
            r->w->offset_ms += p->jump_ms;
        break;
    case FAULT_NONE:
    case FAULT_DESTROY_AFTER_LIST:
        break;
    }
}

/* The rigs open now: rig_open adds, rig_close removes, and every test's teardown closes
 * what a failed assertion left open (tests open a fresh rig per fault round). */
#define RIGS_MAX 2
static struct rig *open_rigs[RIGS_MAX];

/* A rig over a fresh world. xen: backend/xen.c over the fake libraries. */
static struct rig *rig_open(bool xen, bool watches)
{
    struct rig *r = xcalloc(1, sizeof(*r));
    r->sim = load_world();
    r->xen = xen;
    struct backend *inner;
    if (xen) {
        fakexen_reset();
        fakexen_set_world(r->sim);
        char *err = NULL;
        inner = backend_xen_open(&err);
        if (inner == NULL)
            fail_msg("backend_xen_open: %s", err);
        r->w = fault_backend_new(inner, r->sim, true);
    } else {
        inner = backend_sim_open(r->sim);
        r->w = fault_backend_new(inner, r->sim, false);
    }
    r->w->ctx = r;
    r->w->after_list = after_list;
    struct domcache_config dcfg = {.use_watches = watches, .manage_domain_zero = false};
    r->dc = domcache_new(&r->w->base, &dcfg);
    struct squeeze_config scfg = {
        .reserved_host_kib = RESERVED_KIB,
        .poll_ms = 250,
        .timeout_ms = TIMEOUT_MS,
    };
    r->sq = squeezer_new(&r->w->base, r->dc, &scfg, NULL, NULL);
    squeeze_set_observer(r->sq, observe, r);
    size_t slot = 0;
    while (slot < RIGS_MAX && open_rigs[slot] != NULL)
        slot++;
    assert_true(slot < RIGS_MAX);
    open_rigs[slot] = r;
    return r;
}

static void rig_close(struct rig *r)
{
    for (size_t i = 0; i < RIGS_MAX; i++)
        if (open_rigs[i] == r)
            open_rigs[i] = NULL;
    squeezer_free(r->sq);
    domcache_free(r->dc);
    backend_close(&r->w->base);
    if (r->xen) {
        fakexen_set_world(NULL);
        fakexen_reset();
        sim_free(r->sim);
    }
    free(r);
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < RIGS_MAX; i++)
        if (open_rigs[i] != NULL)
            rig_close(open_rigs[i]);
    unsetenv("FAKEXEN_FAULT_FILE");
    return 0;
}

static int rig_free(struct rig *r, const struct plan *p, struct squeeze_result *res)
{
    r->plan = p != NULL ? *p : (struct plan){0};
    memset(&r->seen, 0, sizeof(r->seen));
    r->seen.min_sim_free_kib = INT64_MAX;
    return squeeze_free(r->sq, NEED_KIB, res);
}

static bool alive(struct sim *s, uint32_t domid)
{
    return sim_domain_memory(s, domid, NULL, NULL, NULL) == 0;
}

/* Free memory the host can count on, the sim's truth: free minus what every guest may
 * still take, up to min(target + inaccuracy, maxmem) (all guests here are booted). */
static int64_t truth_guaranteed_kib(struct sim *s)
{
    struct backend_domain *doms = NULL;
    size_t n = 0;
    assert_int_equal(sim_list_domains(s, &doms, &n), 0);
    int64_t free_kib = sim_host_free_kib(s);
    for (size_t i = 0; i < n; i++) {
        int64_t actual, target, maxmem;
        assert_int_equal(sim_domain_memory(s, doms[i].domid, &actual, &target, &maxmem), 0);
        int64_t reach =
            target + POLICY_INACCURACY_KIB < maxmem ? target + POLICY_INACCURACY_KIB : maxmem;
        if (reach > actual)
            free_kib -= reach - actual;
    }
    free(doms);
    return free_kib;
}

/* The next snapshot is the sim's truth: the same domains, the same figures (actual and
 * free to Xen's page), every write of the operation either done or moot. */
static void assert_truth(struct rig *r)
{
    struct domcache_snapshot snap;
    domcache_snapshot_init(&snap);
    assert_int_equal(domcache_snapshot(r->dc, NULL, 0, &snap), 0);
    json_t *st = sim_state_json(r->sim);
    json_t *doms = json_object_get(st, "domains");
    assert_int_equal(snap.host.n_domains, json_array_size(doms));
    for (size_t i = 0; i < snap.host.n_domains; i++) {
        const struct policy_domain *p = &snap.domains[i];
        json_t *t = json_array_get(doms, i);
        assert_int_equal(p->domid, json_integer_value(json_object_get(t, "domid")));
        int64_t actual = json_integer_value(json_object_get(t, "actual_kib"));
        if (p->actual_kib > actual || actual - p->actual_kib >= 4)
            fail_msg("domid %d: actual %lld, truth %lld", p->domid, (long long)p->actual_kib,
                     (long long)actual);
        assert_int_equal(p->target_kib, json_integer_value(json_object_get(t, "target_kib")));
        /* dom0's Xen maxmem is not used (often unlimited): the cache says 0. */
        if (p->domid != 0)
            assert_int_equal(p->maxmem_kib,
                             json_integer_value(json_object_get(t, "maxmem_kib")));
        assert_int_equal(p->can_balloon, json_is_true(json_object_get(t, "can_balloon")));
        if (p->can_balloon) {
            assert_int_equal(p->dynamic_min_kib,
                             json_integer_value(json_object_get(t, "dynamic_min_kib")));
            assert_int_equal(p->dynamic_max_kib,
                             json_integer_value(json_object_get(t, "dynamic_max_kib")));
        }
        assert_int_equal(snap.extra[i].uncooperative,
                         json_is_true(json_object_get(t, "uncooperative")));
        assert_false(snap.extra[i].booting);
    }
    int64_t free_kib = json_integer_value(json_object_get(st, "free_kib"));
    if (snap.host.free_kib > free_kib || free_kib - snap.host.free_kib >= 4)
        fail_msg("free %lld, truth %lld", (long long)snap.host.free_kib, (long long)free_kib);
    json_decref(st);
    domcache_snapshot_free(&snap);
}

static void assert_no_violation(struct sim *s)
{
    if (sim_violation_count(s) > 0)
        fail_msg("violation: %s", sim_violation(s, 0));
}

/* A clean end: a verdict of its own (not a timeout, not cancelled), and if SUCCESS the
 * memory really is free on the host. */
static void assert_clean(struct rig *r, int rc, const struct squeeze_result *res)
{
    assert_int_equal(rc, 0);
    assert_false(res->timed_out);
    assert_false(res->cancelled);
    assert_true(res->duration_ms >= 0);
    assert_true(res->verdict == POLICY_SUCCESS || res->verdict == POLICY_CANNOT_FREE ||
                res->verdict == POLICY_REFUSED);
    if (res->verdict == POLICY_SUCCESS)
        assert_true(truth_guaranteed_kib(r->sim) >= NEED_KIB + RESERVED_KIB);
    assert_true(r->seen.min_sim_free_kib >= 0);
}

/* After the fault: a balance and a second reservation run cleanly on what is left. */
static void assert_recovers(struct rig *r)
{
    struct squeeze_result res;
    assert_int_equal(squeeze_balance(r->sq, &res), 0);
    assert_false(res.timed_out);
    squeeze_result_free(&res);
    int rc = rig_free(r, NULL, &res);
    assert_clean(r, rc, &res);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    squeeze_result_free(&res);
    assert_truth(r);
    assert_no_violation(r->sim);
}

/* Rounds the reference squeeze takes (and that it succeeds, the stuck guest found). */
static unsigned reference_rounds(bool xen)
{
    struct rig *r = rig_open(xen, true);
    struct squeeze_result res;
    int rc = rig_free(r, NULL, &res);
    assert_clean(r, rc, &res);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(r->seen.stuck[3]);
    unsigned n = res.rounds;
    assert_true(n > 20 && n < MAX_ROUNDS / 2);
    squeeze_result_free(&res);
    assert_truth(r);
    assert_no_violation(r->sim);
    rig_close(r);
    return n;
}

/*
 * For every round k of the reference and every guest, rerun with the fault at k.
 * Destroying a guest returns all its memory to the host, so the reservation must still
 * succeed. fired counts the runs in which the guest really died during the operation
 * (a fault armed for a later read may find none: the cache reads nothing it holds).
 */
static void destroy_every_round(bool xen, bool watches, enum fault fault, unsigned *fired,
                                unsigned *runs)
{
    unsigned n = reference_rounds(xen);
    *fired = 0;
    *runs = 0;
    for (unsigned k = 1; k <= n; k++) {
        for (uint32_t victim = 1; victim <= 3; victim++) {
            struct rig *r = rig_open(xen, watches);
            struct plan p = {.fault = fault, .at_round = k, .victim = victim};
            struct squeeze_result res;
            int rc = rig_free(r, &p, &res);
            if (xen)
                fakexen_reset(); /* a fault armed but not met is not for the next run */
            assert_clean(r, rc, &res);
            if (res.verdict != POLICY_SUCCESS)
                fail_msg("round %u, guest %u: verdict %d", k, victim, res.verdict);
            squeeze_result_free(&res);
            (*runs)++;
            if (!alive(r->sim, victim))
                (*fired)++;
            assert_truth(r);
            assert_no_violation(r->sim);
            assert_recovers(r);
            rig_close(r);
        }
    }
}

/* ---- domains destroyed mid-squeeze ---- */

/* Over the harness (sim backend): destroyed after the round's snapshot, before its
 * targets are written. */
static void test_destroyed_after_snapshot_every_round_harness(void **state)
{
    (void)state;
    struct harness *ref = harness_open(SCENARIO, RESERVED_KIB);
    struct squeeze_result res;
    assert_int_equal(squeeze_free(ref->sq, NEED_KIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    unsigned n = res.rounds;
    squeeze_result_free(&res);
    harness_close(ref);

    for (unsigned k = 1; k <= n; k++) {
        for (uint32_t victim = 1; victim <= 3; victim++) {
            struct harness *h = harness_open(SCENARIO, RESERVED_KIB);
            struct rig r = {.sim = h->sim, .sq = h->sq, .dc = h->dc};
            r.plan = (struct plan){.fault = FAULT_DESTROY, .at_round = k, .victim = victim};
            r.seen.min_sim_free_kib = INT64_MAX;
            squeeze_set_observer(h->sq, observe, &r);
            int rc = squeeze_free(h->sq, NEED_KIB, &res);
            assert_clean(&r, rc, &res);
            assert_int_equal(res.verdict, POLICY_SUCCESS);
            squeeze_result_free(&res);
            assert_false(alive(h->sim, victim));
            assert_truth(&r);
            assert_no_violation(h->sim);
            assert_true(harness_guaranteed_free_kib(h) >= RESERVED_KIB);
            harness_close(h);
        }
    }
}

/* The same through backend/xen.c and the fake libraries. */
static void test_destroyed_after_snapshot_every_round_xen(void **state)
{
    (void)state;
    unsigned fired, runs;
    destroy_every_round(true, true, FAULT_DESTROY, &fired, &runs);
    assert_int_equal(fired, runs);
}

/* Inside the transaction that writes the round's first target (or the next one). */
static void test_destroyed_inside_transaction_every_round_xen(void **state)
{
    (void)state;
    unsigned fired, runs;
    destroy_every_round(true, true, FAULT_DESTROY_IN_TX, &fired, &runs);
    print_message("destroyed inside a transaction in %u of %u runs\n", fired, runs);
    assert_true(fired > 0);
}

/* At the next xenstore read in its directory after the round's snapshot: the
 * transaction that writes its target reads the directory first. */
static void test_destroyed_at_next_read_every_round_xen(void **state)
{
    (void)state;
    unsigned fired, runs;
    destroy_every_round(true, true, FAULT_DESTROY_ON_READ, &fired, &runs);
    print_message("destroyed at a read in %u of %u runs\n", fired, runs);
    assert_true(fired > 0);
}

/* Between the round's domain list and its xenstore reads (the cache reading dynamic-min
 * and dynamic-max through, as without watches, so that every snapshot reads). */
static void test_destroyed_between_list_and_reads_every_round_xen(void **state)
{
    (void)state;
    unsigned fired, runs;
    destroy_every_round(true, false, FAULT_DESTROY_AFTER_LIST, &fired, &runs);
    assert_int_equal(fired, runs);
}

/* ---- the clock jumping ---- */

/* The reference with every balloon moving (guest 3 unstuck): no guest is ever stuck. */
static struct rig *moving_rig(void)
{
    struct rig *r = rig_open(false, true);
    struct sim_balloon b = {.model = SIM_BALLOON_IDEAL, .rate_kib_s = 65536, .period_s = 10};
    assert_int_equal(sim_set_balloon(r->sim, 3, &b), 0);
    return r;
}

/* A jump back by seconds at any round: nobody declared stuck, the same result, and no
 * negative duration. */
static void test_backward_jump_no_false_stuck(void **state)
{
    (void)state;
    struct rig *r = moving_rig();
    struct squeeze_result ref;
    int rc = rig_free(r, NULL, &ref);
    assert_clean(r, rc, &ref);
    assert_int_equal(ref.verdict, POLICY_SUCCESS);
    for (int d = 0; d < 8; d++)
        assert_false(r->seen.stuck[d]);
    unsigned n = ref.rounds;
    rig_close(r);

    for (int64_t back_ms = 1000; back_ms <= 30000; back_ms *= 30) {
        for (unsigned k = 1; k <= n; k++) {
            r = moving_rig();
            struct plan p = {.fault = FAULT_JUMP, .at_round = k, .jump_ms = -back_ms};
            struct squeeze_result res;
            rc = rig_free(r, &p, &res);
            assert_clean(r, rc, &res);
            assert_int_equal(res.verdict, POLICY_SUCCESS);
            assert_int_equal(res.reserve_kib, ref.reserve_kib);
            /* The wait between rounds is paced by the balloons as the clock measures
             * them: a jump back makes them look faster once, worth a round at most. */
            assert_in_range(res.rounds, n, n + 1);
            for (int d = 0; d < 8; d++)
                if (r->seen.stuck[d])
                    fail_msg("back %lld ms at round %u: guest %d declared stuck",
                             (long long)back_ms, k, d);
            assert_truth(r);
            assert_no_violation(r->sim);
            rig_close(r);
        }
    }
    squeeze_result_free(&ref);
}

/* A clock that goes back a little every round from k on (time runs backwards): still
 * nobody stuck, the same result, durations not negative. */
static void test_clock_running_backwards(void **state)
{
    (void)state;
    for (unsigned k = 1; k <= 8; k++) {
        struct rig *r = moving_rig();
        struct plan p = {.fault = FAULT_JUMP_EVERY, .at_round = k, .jump_ms = -400};
        struct squeeze_result res;
        int rc = rig_free(r, &p, &res);
        assert_clean(r, rc, &res);
        assert_int_equal(res.verdict, POLICY_SUCCESS);
        for (int d = 0; d < 8; d++)
            assert_false(r->seen.stuck[d]);
        squeeze_result_free(&res);
        assert_no_violation(r->sim);
        rig_close(r);
    }
}

/* A genuinely stuck guest is still found out after a jump back, and the operation
 * ends: a jump back does not buy a stuck guest (or the operation) unbounded time. */
static void test_backward_jump_stuck_still_found(void **state)
{
    (void)state;
    unsigned n = reference_rounds(false);
    for (unsigned k = 1; k <= n; k++) {
        struct rig *r = rig_open(false, true);
        struct plan p = {.fault = FAULT_JUMP, .at_round = k, .jump_ms = -3000};
        struct squeeze_result res;
        int rc = rig_free(r, &p, &res);
        assert_clean(r, rc, &res);
        assert_int_equal(res.verdict, POLICY_SUCCESS);
        assert_true(r->seen.stuck[3]);
        assert_false(r->seen.stuck[1]);
        assert_false(r->seen.stuck[2]);
        /* The step back counts as no time: at most one round later than the reference
         * (not the 3 s worth of rounds the stuck guest would otherwise gain). */
        assert_true(res.rounds <= n + 1);
        squeeze_result_free(&res);
        assert_truth(r);
        assert_no_violation(r->sim);
        rig_close(r);
    }
}

/* A jump forward by hours at any round: the operation ends by its timeout (not a
 * verdict of its own, no grant), nothing broken; the next operation is normal. */
static void test_forward_jump_ends_by_timeout(void **state)
{
    (void)state;
    unsigned n = reference_rounds(false);
    for (unsigned k = 1; k < n; k++) {
        struct rig *r = rig_open(false, true);
        struct plan p = {.fault = FAULT_JUMP, .at_round = k, .jump_ms = 3 * 3600 * 1000};
        struct squeeze_result res;
        int rc = rig_free(r, &p, &res);
        assert_int_equal(rc, 0);
        if (res.verdict == POLICY_SUCCESS) {
            /* Only if round k + 1 found the job done. */
            assert_true(truth_guaranteed_kib(r->sim) >= NEED_KIB + RESERVED_KIB);
        } else {
            assert_true(res.timed_out);
            assert_int_equal(res.verdict, POLICY_CANNOT_FREE);
            assert_int_equal(res.rounds, k + 1);
        }
        assert_true(res.duration_ms >= 0);
        squeeze_result_free(&res);
        assert_no_violation(r->sim);
        assert_truth(r);
        /* Afterwards: the clock is just later; the next reservation works. */
        assert_recovers(r);
        rig_close(r);
    }
}

/* ---- a guest stuck below its target, then given a fresh chance ---- */

/* Every SET_TARGET of d is at most the domain's maxmem at that point of the ops. */
static void assert_targets_within_maxmem(const struct policy_host *h,
                                         const struct policy_decision *d)
{
    for (size_t i = 0; i < d->n_ops; i++) {
        if (d->ops[i].kind != POLICY_OP_SET_TARGET)
            continue;
        int64_t maxmem = -1;
        for (size_t k = 0; k < h->n_domains; k++)
            if (h->domains[k].domid == d->ops[i].domid)
                maxmem = h->domains[k].maxmem_kib;
        for (size_t j = 0; j < i; j++)
            if (d->ops[j].kind == POLICY_OP_SET_MAXMEM && d->ops[j].domid == d->ops[i].domid)
                maxmem = d->ops[j].value_kib;
        if (d->ops[i].value_kib > maxmem)
            fail_msg("domid %d: target %lld written above maxmem %lld", d->ops[i].domid,
                     (long long)d->ops[i].value_kib, (long long)maxmem);
    }
}

/* The policy alone: guest 1 was clipped to the 2 GiB it has while its target says 3 GiB;
 * a new operation lowers the target to 2.5 GiB, above the clip: maxmem goes up first. */
static void test_target_lowered_above_a_clip_raises_maxmem_first(void **state)
{
    (void)state;
    const int64_t G = 1048576;
    struct policy_domain doms[2] = {
        {.domid = 1,
         .can_balloon = true,
         .dynamic_min_kib = G,
         .dynamic_max_kib = 4 * G,
         .target_kib = 3 * G,
         .actual_kib = 2 * G,
         .maxmem_kib = 2 * G,
         .inaccuracy_kib = POLICY_INACCURACY_KIB},
        {.domid = 2,
         .can_balloon = true,
         .dynamic_min_kib = G,
         .dynamic_max_kib = 4 * G,
         .target_kib = 4 * G,
         .actual_kib = 4 * G,
         .maxmem_kib = 4 * G,
         .inaccuracy_kib = POLICY_INACCURACY_KIB},
    };
    struct policy_host h = {.free_kib = G / 2, .n_domains = 2, .domains = doms};
    struct policy_request req = {.kind = POLICY_FREE,
                                 .reserved_kib = RESERVED_KIB,
                                 .need_kib = 3 * G / 2 - RESERVED_KIB};
    struct policy_state *st = policy_state_new();
    struct policy_decision d;
    policy_decision_init(&d);
    assert_int_equal(policy_round(st, &h, &req, 0, &d), 0);
    assert_int_equal(d.verdict, POLICY_CONTINUE);
    bool lowered = false;
    for (size_t i = 0; i < d.n_ops; i++)
        if (d.ops[i].kind == POLICY_OP_SET_TARGET && d.ops[i].domid == 1 &&
            d.ops[i].value_kib < 3 * G && d.ops[i].value_kib > 2 * G)
            lowered = true;
    assert_true(lowered);
    assert_targets_within_maxmem(&h, &d);
    policy_decision_free(&d);
    policy_state_free(st);
}

/* The same on the simulated host, as it comes about: a balance raises guest 1's target
 * above what its stuck balloon holds, it is clipped; a reservation then lowers it to
 * above the clip. The sim records a target written above maxmem as a violation. */
static void test_stuck_below_target_then_lowered_no_violation(void **state)
{
    (void)state;
    struct sim_scenario sc = {.name = (char *)"clip"};
    sc.host.total_kib = 16 * 1048576;
    sc.host.free_kib = 1048576 / 2;
    struct sim_domain_spec d[2];
    for (int i = 0; i < 2; i++) {
        sim_domain_spec_default(&d[i], (uint32_t)i + 1);
        d[i].dynamic_min_kib = 1048576;
        d[i].dynamic_max_kib = 4 * 1048576;
        d[i].maxmem_kib = 4 * 1048576;
    }
    d[0].target_kib = d[0].actual_kib = 2 * 1048576;
    d[0].balloon.model = SIM_BALLOON_STUCK;
    d[1].target_kib = d[1].actual_kib = 4 * 1048576;
    sc.domains = d;
    sc.n_domains = 2;
    struct harness *h = harness_open_scenario(&sc, RESERVED_KIB);
    struct squeeze_result res;
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    squeeze_result_free(&res);
    assert_true(h->saw_stuck[1]);
    int64_t actual, target, maxmem;
    assert_int_equal(sim_domain_memory(h->sim, 1, &actual, &target, &maxmem), 0);
    assert_true(maxmem < target); /* clipped below its target */
    assert_no_violation(h->sim);

    harness_reset_records(h);
    assert_int_equal(squeeze_free(h->sq, 1048576, &res), 0);
    squeeze_result_free(&res);
    int64_t lowered;
    assert_int_equal(sim_domain_memory(h->sim, 1, NULL, &lowered, NULL), 0);
    assert_true(lowered < target && lowered > maxmem);
    assert_no_violation(h->sim);
    harness_close(h);
}

/* ---- guests near dynamic-min: the policy settles ---- */

/* A perfect host: every driver reaches its target before the next round. Runs rounds
 * until a verdict (at most max_rounds); returns the rounds run, 0 if none came. */
static unsigned rounds_to_verdict(struct policy_domain *doms, size_t n, int64_t free_kib,
                                  const struct policy_request *req, unsigned max_rounds)
{
    struct policy_state *st = policy_state_new();
    struct policy_decision d;
    policy_decision_init(&d);
    unsigned done = 0;
    for (unsigned r = 1; r <= max_rounds && done == 0; r++) {
        struct policy_host h = {.free_kib = free_kib, .n_domains = n, .domains = doms};
        assert_int_equal(policy_round(st, &h, req, (int64_t)r * 250, &d), 0);
        assert_targets_within_maxmem(&h, &d);
        if (d.verdict != POLICY_CONTINUE) {
            done = r;
            break;
        }
        for (size_t i = 0; i < d.n_ops; i++) {
            for (size_t k = 0; k < n; k++) {
                if (doms[k].domid != d.ops[i].domid)
                    continue;
                if (d.ops[i].kind == POLICY_OP_SET_MAXMEM) {
                    doms[k].maxmem_kib = d.ops[i].value_kib;
                } else {
                    free_kib -= d.ops[i].value_kib - doms[k].actual_kib;
                    doms[k].target_kib = doms[k].actual_kib = d.ops[i].value_kib;
                }
            }
        }
    }
    policy_decision_free(&d);
    policy_state_free(st);
    return done;
}

/*
 * Guests at (or a page or two above) their dynamic-min with a little spare memory: the
 * proportional share gives some of them a page, which they take; what they hold within
 * 2 x inaccuracy of dynamic-min does not count as freeable, so the surplus drops by as
 * much and the next round takes the page back, and so on. The soak met such a squeeze,
 * 31 guests wide, that only its 10-minute timeout ended. Every operation must settle.
 */
static void test_guests_near_minimum_settle(void **state)
{
    (void)state;
    const int64_t G = 1048576;
    unsigned worst = 0;
    for (size_t n = 2; n <= 32; n += 3) {
        for (int64_t spare = 0; spare <= 256; spare += 4) {
            for (int kind = 0; kind < 3; kind++) {
                struct policy_domain doms[32];
                for (size_t i = 0; i < n; i++) {
                    int64_t min = G / 2 + (int64_t)i * 4096;
                    doms[i] = (struct policy_domain){.domid = (int32_t)i + 1,
                                                     .can_balloon = true,
                                                     .dynamic_min_kib = min,
                                                     .dynamic_max_kib =
                                                         min + (int64_t)(i % 5 + 1) * 65536,
                                                     .target_kib = min + (i % 3 == 0 ? 4 : 0),
                                                     .actual_kib = min + (i % 3 == 0 ? 4 : 0),
                                                     .maxmem_kib = min + 65536 * 5,
                                                     .inaccuracy_kib = POLICY_INACCURACY_KIB};
                }
                struct policy_request req = {.reserved_kib = RESERVED_KIB};
                int64_t host_target = RESERVED_KIB;
                if (kind == 1) {
                    req.kind = POLICY_FREE;
                    req.need_kib = 65536;
                    host_target += 65536;
                } else if (kind == 2) {
                    req.kind = POLICY_FREE_RANGE;
                    req.min_kib = 4096;
                    req.max_kib = 65536;
                    host_target += 4096;
                } else {
                    req.kind = POLICY_BALANCE;
                }
                unsigned r = rounds_to_verdict(doms, n, host_target + spare, &req, 400);
                if (r == 0)
                    fail_msg("%zu guests, %lld KiB spare, kind %d: no verdict in 400 rounds", n,
                             (long long)spare, kind);
                if (r > worst)
                    worst = r;
            }
        }
    }
    print_message("every operation settled, in at most %u rounds\n", worst);
}

/* The same over random hosts: guests in, at the edge of and above the band, ranges from
 * none to a GiB, a little or a lot to spare (or short of it). */
static void test_random_hosts_settle(void **state)
{
    (void)state;
    uint32_t seed = 12345;
#define NEXT() (seed = seed * 1103515245u + 12345u, (seed >> 8) & 0xffffff)
    unsigned worst = 0;
    for (int run = 0; run < 3000; run++) {
        size_t n = 1 + NEXT() % 24;
        struct policy_domain doms[24];
        for (size_t i = 0; i < n; i++) {
            int64_t min = 262144 + (int64_t)(NEXT() % 196608) * 4;
            int64_t range =
                NEXT() % 3 == 0 ? (int64_t)(NEXT() % 6) * 4 : (int64_t)(NEXT() % 262144) * 4;
            int64_t off = NEXT() % 2 ? (int64_t)(NEXT() % 6) * 4 : range / 2;
            if (off > range)
                off = range;
            off -= off % 4;
            doms[i] = (struct policy_domain){.domid = (int32_t)i + 1,
                                             .can_balloon = true,
                                             .dynamic_min_kib = min,
                                             .dynamic_max_kib = min + range,
                                             .target_kib = min + off,
                                             .actual_kib = min + off,
                                             .maxmem_kib = min + range,
                                             .inaccuracy_kib = POLICY_INACCURACY_KIB};
        }
        struct policy_request req = {.reserved_kib = RESERVED_KIB};
        int64_t host_target = RESERVED_KIB;
        switch (NEXT() % 3) {
        case 0:
            req.kind = POLICY_BALANCE;
            break;
        case 1:
            req.kind = POLICY_FREE;
            req.need_kib = (int64_t)(NEXT() % 65536) * 4;
            host_target += req.need_kib;
            break;
        default:
            req.kind = POLICY_FREE_RANGE;
            req.min_kib = (int64_t)(NEXT() % 16384) * 4;
            req.max_kib = req.min_kib + (int64_t)(NEXT() % 65536) * 4;
            host_target += req.min_kib;
            break;
        }
        int64_t spare = NEXT() % 2 ? (int64_t)(NEXT() % 64) - 16 : (int64_t)(NEXT() % 1048576);
        unsigned r = rounds_to_verdict(doms, n, host_target + spare, &req, 400);
        if (r == 0)
            fail_msg("run %d: %zu guests, kind %d, %lld KiB spare: no verdict in 400 rounds",
                     run, n, req.kind, (long long)spare);
        if (r > worst)
            worst = r;
    }
#undef NEXT
    print_message("3000 random hosts settled, in at most %u rounds\n", worst);
}

/* ---- the fake's fault file (what the end-to-end tests drive the daemon with) ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void test_fault_file_commands(void **state)
{
    (void)state;
    char path[] = "/tmp/test_faults_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    setenv("FAKEXEN_FAULT_FILE", path, 1);
    struct rig *r = rig_open(true, true);
    struct backend *b = &r->w->base;
    assert_int_equal(fakexen_poll_fault_file(), 0); /* no file: nothing */

    write_file(path, "# faults\n\ndrop-connection\neagain 3\nbogus\neagain -1\n"
                     "burst 5 /local/domain/1/memory/dynamic-max\nburst 5 /no/such/key\n"
                     "destroy-at-read 2\ndying 1 1\ndying 1 2\n");
    assert_int_equal(fakexen_poll_fault_file(), 5);
    assert_int_equal(access(path, F_OK), -1); /* taken */
    assert_int_equal(fakexen_poll_fault_file(), 0);

    /* The connection was lost: the next call reconnects; the watch reader hears of it. */
    struct fakexen_counters c0, c1;
    fakexen_counters(&c0);
    char *v = NULL;
    assert_int_equal(b->ops->xs_read(b, "/local/domain/3/memory/target", &v), 0);
    free(v);
    fakexen_counters(&c1);
    assert_int_equal(c1.xs_open, c0.xs_open + 1);
    struct backend_watch_event ev = {0};
    assert_int_equal(b->ops->read_watch(b, &ev), BACKEND_ECONN);
    /* Three transaction ends fail, the write is retried and done. */
    assert_int_equal(b->ops->xs_write(b, "/local/domain/3", "/local/domain/3/x", "1"), 0);
    fakexen_counters(&c1);
    assert_int_equal(c1.tx_eagain - c0.tx_eagain, 3);
    /* The burst was written to the world (before the loss: its events went with it). */
    assert_int_equal(sim_xs_read(r->sim, "/local/domain/1/memory/dynamic-max", &v), 0);
    assert_string_equal(v, "2097152");
    free(v);
    /* Guest 2 dies at the next read in its directory; guest 1 is listed as dying. */
    assert_int_equal(b->ops->xs_read(b, "/local/domain/2/memory/target", &v), -ENOENT);
    assert_false(alive(r->sim, 2));
    struct backend_domain *list = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(backend_list_all(b, &list, &cap, &n), 1);
    assert_int_equal(n, 3);
    assert_int_equal(list[1].domid, 1);
    assert_true(list[1].dying);
    free(list);

    /* A burst with watches registered: that many events, no change. */
    struct domcache_snapshot snap;
    domcache_snapshot_init(&snap);
    assert_int_equal(domcache_snapshot(r->dc, NULL, 0, &snap), 0);
    domcache_snapshot_free(&snap);
    struct domcache_counters d0, d1;
    domcache_counters(r->dc, &d0);
    write_file(path, "burst 100 /local/domain/3/memory/dynamic-min\n");
    assert_int_equal(fakexen_poll_fault_file(), 1);
    assert_true(domcache_process_events(r->dc) >= 0);
    domcache_counters(r->dc, &d1);
    assert_int_equal(d1.watch_events - d0.watch_events, 100);
    assert_int_equal(d1.rebuilds, d0.rebuilds);
    rig_close(r);
    unsetenv("FAKEXEN_FAULT_FILE");
}

int main(void)
{
    log_init("test_faults", true, 0);
    log_quiet(true);
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(test_destroyed_after_snapshot_every_round_harness),
        T(test_destroyed_after_snapshot_every_round_xen),
        T(test_destroyed_inside_transaction_every_round_xen),
        T(test_destroyed_at_next_read_every_round_xen),
        T(test_destroyed_between_list_and_reads_every_round_xen),
        T(test_backward_jump_no_false_stuck),
        T(test_clock_running_backwards),
        T(test_backward_jump_stuck_still_found),
        T(test_forward_jump_ends_by_timeout),
        T(test_target_lowered_above_a_clip_raises_maxmem_first),
        T(test_stuck_below_target_then_lowered_no_violation),
        T(test_guests_near_minimum_settle),
        T(test_random_hosts_settle),
        T(test_fault_file_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
