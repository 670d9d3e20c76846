/* SPDX-License-Identifier: LGPL-2.1-only */
/* The squeeze core driven over the simulated host (virtual clock), one scenario a test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/log.h"
#include "tests/support/harness.h"

#define MIB 1024
#define GIB (1024 * 1024)
#define RESERVED_KIB 73728 /* squeezed's default host reserve */

/* Every successful free must be guaranteed: what the host has minus what guests may
 * still grow into covers what was asked plus the host reserve, now and after the
 * guests have had a long while to reach their targets. */
static void assert_guaranteed(struct harness *h, int64_t asked_kib)
{
    int64_t g = harness_guaranteed_free_kib(h);
    if (g < asked_kib + h->reserved_kib)
        fail_msg("guaranteed free %lld KiB < asked %lld + reserve %lld", (long long)g,
                 (long long)asked_kib, (long long)h->reserved_kib);
    harness_idle(h, 120 * 1000);
    int64_t later = sim_host_free_kib(h->sim);
    if (later < asked_kib + h->reserved_kib)
        fail_msg("after 120 s idle, free %lld KiB < asked %lld + reserve %lld",
                 (long long)later, (long long)asked_kib, (long long)h->reserved_kib);
}

static void assert_no_violations(struct harness *h)
{
    size_t n = sim_violation_count(h->sim);
    for (size_t i = 0; i < n; i++)
        print_message("violation: %s\n", sim_violation(h->sim, i));
    assert_int_equal(n, 0);
}

static int64_t sim_target(struct harness *h, uint32_t domid)
{
    int64_t actual, target, maxmem;
    assert_int_equal(sim_domain_memory(h->sim, domid, &actual, &target, &maxmem), 0);
    return target;
}

static int64_t sim_actual(struct harness *h, uint32_t domid)
{
    int64_t actual, target, maxmem;
    assert_int_equal(sim_domain_memory(h->sim, domid, &actual, &target, &maxmem), 0);
    return actual;
}

/* The test's harness: the scenario named by the test's initial state (main's table), opened
 * by setup and closed by teardown, also after a failed assertion. */
static int setup(void **state)
{
    *state = harness_open((const char *)*state, RESERVED_KIB);
    return 0;
}

static int teardown(void **state)
{
    harness_close(*state);
    return 0;
}

/* Guest 1 moves for 7 s and stalls for 7 s: it is declared stuck during a stall (guest 2
 * covers for it) and active again when it moves; the reservation still succeeds. */
static void test_intermittent_guest_recovers(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    const int64_t ask = 1536 * MIB;
    assert_int_equal(squeeze_free(h->sq, ask, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(h->saw_stuck[1]);
    assert_true(h->saw_active[1]);
    assert_false(h->saw_stuck[2]);
    assert_guaranteed(h, ask);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* Guest 1 will not go below 1.5 GiB although its range allows 512 MiB: it is routed
 * around and guest 2 frees what guest 1 cannot. */
static void test_hidden_floor_routed_around(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    const int64_t ask = 1536 * MIB;
    assert_int_equal(squeeze_free(h->sq, ask, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(h->saw_stuck[1]);
    assert_true(sim_actual(h, 1) >= 1536 * MIB);
    /* Proportionally both would sit at 1404920 KiB; guest 1 stays 167944 KiB above
     * that, so guest 2 has to go as much lower (give or take the 8 KiB of slack). */
    int64_t t2 = sim_target(h, 2);
    assert_true(t2 <= 1404920 - 167944 + 16);
    assert_true(t2 >= 1404920 - 167944 - 16);
    assert_guaranteed(h, ask);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* Balancing 4 GiB of free memory: guest 1 cannot grow past 1 GiB, so guest 2 takes
 * up the slack and the host ends near its reserve. */
static void test_hidden_ceiling_slack_taken_up(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(h->saw_stuck[1]);
    assert_true(sim_actual(h, 1) <= 1024 * MIB);
    /* Proportionally each would get about 2.46 GiB; guest 2 gets what guest 1 cannot. */
    assert_true(sim_target(h, 2) > 3 * GIB);
    int64_t free_kib = sim_host_free_kib(h->sim);
    assert_true(free_kib >= RESERVED_KIB);
    assert_true(free_kib < RESERVED_KIB + 64 * MIB);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* Dynamic-mins leave 512 MiB at most: 1 GiB cannot be freed, and no guest is to blame. */
static void test_mins_too_high_cannot_free(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, 1 * GIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_CANNOT_FREE);
    assert_int_equal(res.needed_kib, 1 * GIB + RESERVED_KIB);
    /* 256 MiB free at the start plus the 256 MiB guest 2 could give. */
    assert_true(res.free_kib >= 512 * MIB - 8 && res.free_kib <= 512 * MIB);
    assert_int_equal(res.n_refused, 0);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* Guest 1 could free 1.5 GiB but never moves: the failure names it. */
static void test_stuck_above_min_refused(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, 1 * GIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_REFUSED);
    assert_int_equal(res.n_refused, 1);
    assert_int_equal(res.refused[0], 1);
    /* It took more than the 5 s of patience, and not absurdly long. */
    assert_true(res.duration_ms > 5000);
    assert_true(res.duration_ms < 30000);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* Proportionally guest 1 (stuck) should free and guest 2 grow. Guest 2 must never be
 * given memory guest 1 has not freed; once guest 1 is found stuck, guest 2 frees
 * instead and the reservation succeeds with no violation. */
static void test_stuck_guest_working_guest_frees_instead(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    const int64_t ask = 1 * GIB;
    const int64_t guest2_before = sim_actual(h, 2);
    assert_int_equal(squeeze_free(h->sq, ask, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(h->saw_stuck[1]);
    assert_true(h->max_target_kib[2] <= guest2_before);
    assert_true(sim_target(h, 2) < guest2_before);
    assert_true(h->min_sim_free_kib >= 0);
    assert_guaranteed(h, ask);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* Drivers that stop 4 KiB short of their targets have reached them. */
static void test_stop_short_counts_as_reached(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    const int64_t ask = 4 * GIB;
    assert_int_equal(squeeze_free(h->sq, ask, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    for (int d = 1; d <= 3; d++)
        assert_false(h->saw_stuck[d]);
    /* Guest 1 gives 1.8 GiB at 256 MiB/s: about 7.5 s of ballooning, with no wait
     * for anyone to be declared stuck on top. */
    assert_true(res.duration_ms <= 8000);
    assert_guaranteed(h, ask);
    assert_no_violations(h);

    /* And a balance afterwards settles without declaring anyone stuck. */
    harness_reset_records(h);
    squeeze_result_free(&res);
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    for (int d = 1; d <= 3; d++)
        assert_false(h->saw_stuck[d]);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* A reservation that already fits while every guest is at its target returns at once,
 * touching nothing. */
static void test_fast_path(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, 1 * GIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(res.fast_path);
    assert_int_equal(res.rounds, 1);
    assert_int_equal(res.duration_ms, 0);
    assert_int_equal(sim_target(h, 1), 512 * MIB);
    assert_int_equal(sim_target(h, 2), 512 * MIB);
    squeeze_result_free(&res);
}

/* Issue 8: one guest whose toolstack wrote memory/dynamic-max = 2^45 KiB (above the
 * limit) made every reservation fail ("cannot read the host"). It is left out of the
 * snapshot and never ballooned; the others still free what is asked. */
static void test_guest_out_of_range_left_alone(void **state)
{
    struct harness *h = *state;
    assert_int_equal(
        sim_xs_write(h->sim, "/local/domain/1/memory/dynamic-max", "35184372088832"), 0);
    int64_t ask = 1536 * MIB; /* 1 GiB is free: guest 2 must give the rest */
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, ask, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_int_equal(sim_target(h, 1), 2 * GIB); /* left alone */
    assert_true(sim_target(h, 2) < 2 * GIB);
    const struct domcache_snapshot *snap = squeeze_last_snapshot(h->sq);
    assert_int_equal(snap->n_excluded, 1);
    assert_int_equal(snap->excluded[0].domid, 1);
    assert_string_equal(snap->excluded[0].reason,
                        "memory/dynamic-max = 35184372088832: above the limit of "
                        "1099511627776 KiB");
    assert_guaranteed(h, ask);
    squeeze_result_free(&res);
    /* Balancing goes on for the others too. */
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_int_equal(sim_target(h, 1), 2 * GIB);
    squeeze_result_free(&res);
    assert_no_violations(h);
}

/* A range reservation frees the policy's ideal amount and reserves within the range. */
static void test_free_range(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    assert_int_equal(squeeze_free_range(h->sq, 1 * GIB, 6 * GIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(res.reserve_kib >= 1 * GIB);
    assert_true(res.reserve_kib <= 6 * GIB);
    /* Not everything: the guests keep a proportional share too. */
    assert_true(res.reserve_kib < 6 * GIB);
    assert_guaranteed(h, res.reserve_kib);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* 1,000 guests give up 100 GiB between them. */
static void test_thousand_guests(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    const int64_t ask = 100LL * GIB;
    assert_int_equal(squeeze_free(h->sq, ask, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    print_message("1000 guests: %u rounds, %lld ms simulated\n", res.rounds,
                  (long long)res.duration_ms);
    assert_guaranteed(h, ask);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* A memory/uncooperative key left by an earlier run of the daemon on a guest that is
 * at its target is removed at the next check; a guest away from its target for over
 * 20 s gets one. */
static void test_uncooperative_key_follows_the_guest(void **state)
{
    struct harness *h = *state;
    assert_int_equal(sim_xs_write(h->sim, "/local/domain/2/memory/uncooperative", ""), 0);
    assert_true(squeeze_check(h->sq) >= 0);
    assert_false(sim_xs_exists(h->sim, "/local/domain/2/memory/uncooperative"));

    /* Guest 1 is stuck: a failed reservation leaves it away from its target. */
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, 1 * GIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_REFUSED);
    squeeze_result_free(&res);
    harness_idle(h, 21 * 1000);
    assert_true(squeeze_check(h->sq) >= 0);
    assert_true(sim_xs_exists(h->sim, "/local/domain/1/memory/uncooperative"));
    assert_true(squeeze_domain_uncooperative(h->sq, 1));
    assert_false(sim_xs_exists(h->sim, "/local/domain/2/memory/uncooperative"));
}

/* After a balance has found guest 1 stuck, the periodic check does not ask for another
 * balance while guest 1 still has not moved (each would swing guest 2's target while
 * guest 1 is found stuck again); once guest 1 moves, it gets its fresh chance. */
static void test_stuck_guest_does_not_rebalance_forever(void **state)
{
    struct harness *h = *state;
    struct squeeze_result res;
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(h->saw_stuck[1]);
    squeeze_result_free(&res);
    int64_t guest2 = sim_target(h, 2);
    for (int i = 0; i < 5; i++) {
        harness_idle(h, 10 * 1000);
        assert_int_equal(squeeze_check(h->sq), 0);
    }
    assert_int_equal(sim_target(h, 2), guest2);

    struct sim_balloon ideal = {.model = SIM_BALLOON_IDEAL, .rate_kib_s = 262144};
    assert_int_equal(sim_set_balloon(h->sim, 1, &ideal), 0);
    harness_idle(h, 1000);
    assert_int_equal(squeeze_check(h->sq), 1);
    harness_reset_records(h);
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_false(h->saw_stuck[1]);
    assert_true(sim_actual(h, 1) < 2 * GIB);
    assert_int_equal(squeeze_check(h->sq), 0);
    assert_no_violations(h);
    squeeze_result_free(&res);
}

/* ---- squeezed's own scenarios a-h (xen-api ocaml/squeezed/test/squeeze_test.ml) ----
 * Domain 0 balloons there, the host reserve is 0 and sizes are a few thousand KiB. As
 * squeezed's test does: free the amount, check it is guaranteed, let a new domain take
 * 500 KiB of it, then balance. */

static struct harness *open_squeezed(const char *name)
{
    char path[64];
    snprintf(path, sizeof(path), "scenarios/squeezed-%s.json", name);
    harness_manage_domain_zero(true);
    struct harness *h = harness_open(path, 0);
    harness_manage_domain_zero(false);
    return h;
}

/* Phases 2 and 3 of squeezed's test: a domain uses 500 KiB, then a balance hands the
 * rest back; it succeeds and leaves nothing the guests could grow into unaccounted. */
static void squeezed_use_and_balance(struct harness *h)
{
    struct sim_domain_spec d;
    sim_domain_spec_default(&d, 9);
    d.type = DOMAIN_TYPE_PV;
    d.target_kib = d.dynamic_min_kib = d.dynamic_max_kib = d.actual_kib = d.maxmem_kib = 500;
    d.balloon.model = SIM_BALLOON_NONE;
    assert_int_equal(sim_create_domain(h->sim, &d, NULL), 0);
    struct squeeze_result res;
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    squeeze_result_free(&res);
    assert_true(harness_guaranteed_free_kib(h) >= 0);
}

static void squeezed_succeeds(const char *name, int64_t need_kib)
{
    struct harness *h = open_squeezed(name);
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, need_kib, &res), 0);
    if (res.verdict != POLICY_SUCCESS)
        fail_msg("scenario %s: verdict %d (needed %lld, free %lld)", name, res.verdict,
                 (long long)res.needed_kib, (long long)res.free_kib);
    squeeze_result_free(&res);
    assert_true(harness_guaranteed_free_kib(h) >= need_kib);
    squeezed_use_and_balance(h);
    assert_no_violations(h);
    harness_close(h);
}

/* a, b: sticky and hidden-floor guests are routed around; g is a with squeezed's
 * inaccuracy compensation switched off (ours cannot be), so it succeeds like a. */
static void test_squeezed_a_b_g_succeed(void **state)
{
    (void)state;
    squeezed_succeeds("a", 1000);
    squeezed_succeeds("b", 1000);
    squeezed_succeeds("g", 1000);
}

/* c: the dynamic-mins leave 1000 KiB at most for 1500 asked: answered at once (one
 * round, no target changed), nobody blamed, free < needed. */
static void test_squeezed_c_fails_fast(void **state)
{
    (void)state;
    struct harness *h = open_squeezed("c");
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, 1500, &res), 0);
    assert_int_equal(res.verdict, POLICY_CANNOT_FREE);
    assert_int_equal(res.rounds, 1);
    assert_int_equal(res.duration_ms, 0);
    assert_int_equal(res.needed_kib, 1500);
    assert_int_equal(res.free_kib, 1000);
    assert_int_equal(sim_target(h, 0), 1500);
    assert_int_equal(sim_target(h, 1), 2500);
    squeeze_result_free(&res);
    harness_close(h);
}

/* d: guest 1 will not go below 2250; what it holds above its min (250 KiB) is exactly
 * what is missing, so it is named. */
static void test_squeezed_d_refused(void **state)
{
    (void)state;
    struct harness *h = open_squeezed("d");
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, 1000, &res), 0);
    assert_int_equal(res.verdict, POLICY_REFUSED);
    assert_int_equal(res.n_refused, 1);
    assert_int_equal(res.refused[0], 1);
    squeeze_result_free(&res);
    assert_no_violations(h);
    harness_close(h);
}

/* e (and f, its domains): dom0 is stuck, guest 1 frees instead and reaches its target
 * exactly: the host has exactly what was asked, and that is a success. With a driver
 * that stops 4 KiB short, 4 KiB are missing and dom0 (never blamed) holds them: the
 * answer is Cannot_free(1000, 996), free < needed. */
static void test_squeezed_e_exact_succeeds_short_fails(void **state)
{
    (void)state;
    squeezed_succeeds("e", 1000);
    squeezed_succeeds("f", 1000);

    struct harness *h = open_squeezed("e");
    struct squeeze_result res;
    assert_int_equal(squeeze_free(h->sq, 1000, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_int_equal(sim_host_free_kib(h->sim), 1000);
    assert_true(h->saw_stuck[0]);
    assert_false(h->saw_stuck[1]);
    squeeze_result_free(&res);
    harness_close(h);

    h = open_squeezed("e-short");
    assert_int_equal(squeeze_free(h->sq, 1000, &res), 0);
    assert_int_equal(res.verdict, POLICY_CANNOT_FREE);
    assert_int_equal(res.needed_kib, 1000);
    assert_int_equal(res.free_kib, 996);
    squeeze_result_free(&res);
    assert_no_violations(h);
    harness_close(h);
}

/* h: nothing to free; the balance afterwards finds guest 0 cannot grow past 1500 and
 * guest 1 takes up the slack. */
static void test_squeezed_h_slack_taken_up(void **state)
{
    (void)state;
    squeezed_succeeds("h", 0);
    struct harness *h = open_squeezed("h");
    struct squeeze_result res;
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_true(sim_actual(h, 0) <= 1500);
    assert_true(sim_target(h, 1) > 1750);
    squeeze_result_free(&res);
    assert_no_violations(h);
    harness_close(h);
}

/* A paused guest's driver cannot run: a balance gives it nothing (guest 2 takes it);
 * a reservation that needs memory from it finds it stuck and frees from guest 2. */
static void test_paused_guest_left_alone(void **state)
{
    struct harness *h = *state;
    assert_int_equal(sim_pause_domain(h->sim, 1, true), 0);
    int64_t t1 = sim_target(h, 1);
    struct squeeze_result res;
    assert_int_equal(squeeze_balance(h->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    assert_int_equal(sim_target(h, 1), t1);
    assert_true(sim_target(h, 2) > 3 * GIB);
    assert_int_equal(squeeze_check(h->sq), 0);
    squeeze_result_free(&res);
    assert_no_violations(h);
}

int main(void)
{
    log_quiet(getenv("TEST_VERBOSE") == NULL);
    if (getenv("TEST_VERBOSE") != NULL)
        log_setverbose(1);
#define T(name, scenario)                                                                      \
    cmocka_unit_test_prestate_setup_teardown(name, setup, teardown, (void *)(scenario))
    const struct CMUnitTest tests[] = {
        T(test_intermittent_guest_recovers, "scenarios/intermittent.json"),
        T(test_hidden_floor_routed_around, "scenarios/hidden-floor.json"),
        T(test_hidden_ceiling_slack_taken_up, "scenarios/hidden-ceiling.json"),
        T(test_mins_too_high_cannot_free, "scenarios/mins-too-high.json"),
        T(test_stuck_above_min_refused, "scenarios/stuck-above-min.json"),
        T(test_stuck_guest_working_guest_frees_instead, "scenarios/stuck-must-free.json"),
        T(test_stop_short_counts_as_reached, "scenarios/stop-short.json"),
        T(test_fast_path, "scenarios/hidden-ceiling.json"),
        T(test_free_range, "scenarios/stop-short.json"),
        T(test_thousand_guests, "scenarios/thousand-guests.json"),
        T(test_guest_out_of_range_left_alone, "scenarios/e2e-flow.json"),
        T(test_uncooperative_key_follows_the_guest, "scenarios/stuck-above-min.json"),
        T(test_stuck_guest_does_not_rebalance_forever, "scenarios/stuck-above-min.json"),
        cmocka_unit_test(test_squeezed_a_b_g_succeed),
        cmocka_unit_test(test_squeezed_c_fails_fast),
        cmocka_unit_test(test_squeezed_d_refused),
        cmocka_unit_test(test_squeezed_e_exact_succeeds_short_fails),
        cmocka_unit_test(test_squeezed_h_slack_taken_up),
        T(test_paused_guest_left_alone, "scenarios/hidden-ceiling.json"),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
