/* SPDX-License-Identifier: LGPL-2.1-only */
/* The service under concurrent calls (issue 12): calls that move no memory answer during a
 * squeeze, reservations preempt balances and coalesce, the wait between rounds follows the
 * balloons, an idle host stays quiet. The real service over the simulated host, with
 * threads; time limits are scaled by E2E_LIMIT_SCALE (default 1) and are far from the
 * figures measured (bench/bench_concurrency.c prints those). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/log.h"
#include "server/service.h"
#include "tests/support/svcworld.h"

#define MIB 1024LL
#define GIB (1024LL * 1024)

static double scale(void)
{
    const char *s = getenv("E2E_LIMIT_SCALE");
    double v = s != NULL ? atof(s) : 1.0;
    return v >= 1.0 ? v : 1.0;
}

/* ---- a call on its own thread ---- */

struct call {
    struct svcworld *w;
    int kind; /* 0 reserve, 1 balance */
    int64_t kib;
    pthread_barrier_t *start;
    int rc;
    char *id;
    struct service_error err;
    double t0_ms, t1_ms;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    if (c->start != NULL)
        pthread_barrier_wait(c->start);
    c->t0_ms = svcworld_wall_ms();
    if (c->kind == 0)
        c->rc = service_reserve_memory(c->w->svc, "test", "xenopsd", c->kib, &c->id, &c->err);
    else
        c->rc = service_balance_memory(c->w->svc, "test", &c->err);
    c->t1_ms = svcworld_wall_ms();
    return NULL;
}

static void wait_busy(struct svcworld *w)
{
    for (int i = 0; i < 5000 && !svcworld_busy(w); i++)
        usleep(1000);
    assert_true(svcworld_busy(w));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Four guests of [1, 4] GiB at 4 GiB, 1 GiB free, balloons at 1 GiB/s each: freeing 8 GiB
 * more takes 2 s. */
static struct svcworld_spec slow_host(bool real_clock)
{
    struct svcworld_spec s = {
        .n_guests = 4,
        .guest_min_kib = GIB,
        .guest_max_kib = 4 * GIB,
        .guest_kib = 4 * GIB,
        .rate_kib_s = (double)GIB,
        .free_kib = GIB,
        .real_clock = real_clock,
    };
    return s;
}

/* login, query, delete and transfer answer while a reservation is squeezed; a deleted
 * reservation's memory is counted back at once. */
static void test_metadata_during_squeeze(void **state)
{
    (void)state;
    struct svcworld_spec spec = slow_host(true);
    struct svcworld *w = svcworld_open(&spec);
    struct service_error e = {0};
    char *old = NULL;
    assert_int_equal(service_reserve_memory(w->svc, "t", "xenopsd", 256 * MIB, &old, &e), 0);

    struct call big = {.w = w, .kind = 0, .kib = 8 * GIB};
    pthread_t th;
    pthread_create(&th, NULL, call_main, &big);
    wait_busy(w);

    double lat[40];
    for (int i = 0; i < 40; i++) {
        char *out = NULL;
        double t0 = svcworld_wall_ms();
        if (i % 2 == 0) {
            assert_int_equal(service_login(w->svc, "t", "other", &out, &e), 0);
        } else {
            assert_int_equal(
                service_query_reservation_of_domain(w->svc, "t", "xenopsd", 1, &out, &e), -1);
            assert_int_equal(e.kind, SERVICE_ERR_NO_RESERVATION);
            service_error_clear(&e);
        }
        lat[i] = svcworld_wall_ms() - t0;
        free(out);
    }
    double t0 = svcworld_wall_ms();
    assert_int_equal(service_delete_reservation(w->svc, "t", "xenopsd", old, &e), 0);
    double del_ms = svcworld_wall_ms() - t0;
    /* Still squeezing: the calls did not wait for it. */
    assert_true(svcworld_busy(w));
    assert_int_equal(svcworld_reserved_kib(w), 0);
    pthread_join(th, NULL);
    assert_int_equal(big.rc, 0);
    qsort(lat, 40, sizeof(lat[0]), cmp_double);
    print_message("metadata calls during a squeeze: p50 %.2f ms, max %.2f ms, delete %.2f "
                  "ms; the squeeze took %.0f ms\n",
                  lat[20], lat[39], del_ms, big.t1_ms - big.t0_ms);
    assert_true(lat[39] < 500.0 * scale());
    assert_true(big.t1_ms - big.t0_ms > lat[39]);
    assert_int_equal(svcworld_violations(w), 0);
    assert_true(svcworld_guaranteed_free_kib(w) >= svcworld_reserved_kib(w) + w->reserved_kib);
    free(old);
    free(big.id);
    svcworld_close(w);
}

/* Guests far below their share, balloons slow: a balance takes many seconds. */
static struct svcworld_spec long_balance_host(void)
{
    struct svcworld_spec s = {
        .n_guests = 4,
        .guest_min_kib = 512 * MIB,
        .guest_max_kib = 4 * GIB,
        .guest_kib = 512 * MIB,
        .rate_kib_s = 256.0 * MIB,
        .free_kib = 8 * GIB,
        .real_clock = true,
        .balance_interval_ms = 50,
    };
    return s;
}

/* A periodic balance gives way to a reservation within one poll interval. */
static void test_reservation_preempts_periodic_balance(void **state)
{
    (void)state;
    struct svcworld_spec spec = long_balance_host();
    struct svcworld *w = svcworld_open(&spec);
    wait_busy(w); /* the periodic balance runs */
    usleep(300 * 1000);
    struct call r = {.w = w, .kind = 0, .kib = GIB};
    call_main(&r);
    assert_int_equal(r.rc, 0);
    json_t *op = svcworld_last_op(w, "periodic_balance");
    assert_non_null(op);
    assert_string_equal(json_string_value(json_object_get(op, "outcome")), "preempted");
    json_decref(op);
    op = svcworld_last_op(w, "reserve");
    int64_t wait_ms = json_integer_value(json_object_get(op, "wait_ms"));
    print_message("reservation during a periodic balance: waited %lld ms (backend clock), "
                  "answered in %.0f ms\n",
                  (long long)wait_ms, r.t1_ms - r.t0_ms);
    assert_true(wait_ms <= (int64_t)(250 * scale()));
    json_decref(op);
    assert_int_equal(svcworld_violations(w), 0);
    free(r.id);
    svcworld_close(w);
}

/* An explicit balance_memory gives way too, and its caller is answered once its balance
 * really ran (after the reservation). */
static void test_reservation_preempts_balance_memory(void **state)
{
    (void)state;
    struct svcworld_spec spec = long_balance_host();
    spec.balance_interval_ms = 3600 * 1000;
    struct svcworld *w = svcworld_open(&spec);
    struct call b = {.w = w, .kind = 1};
    pthread_t th;
    pthread_create(&th, NULL, call_main, &b);
    wait_busy(w);
    usleep(300 * 1000);
    struct call r = {.w = w, .kind = 0, .kib = GIB};
    call_main(&r);
    assert_int_equal(r.rc, 0);
    pthread_join(th, NULL);
    assert_int_equal(b.rc, 0);
    assert_true(b.t1_ms > r.t1_ms);
    json_t *st = service_status(w->svc);
    size_t i;
    json_t *op;
    int seen = 0; /* 1: balance preempted, 2: then reserve, 3: then balance success */
    json_array_foreach(json_object_get(st, "operations"), i, op)
    {
        const char *k = json_string_value(json_object_get(op, "kind"));
        const char *o = json_string_value(json_object_get(op, "outcome"));
        if (seen == 0 && strcmp(k, "balance") == 0 && strcmp(o, "preempted") == 0)
            seen = 1;
        else if (seen == 1 && strcmp(k, "reserve") == 0 && strcmp(o, "success") == 0)
            seen = 2;
        else if (seen == 2 && strcmp(k, "balance") == 0 && strcmp(o, "success") == 0)
            seen = 3;
    }
    json_decref(st);
    assert_int_equal(seen, 3);
    assert_int_equal(svcworld_violations(w), 0);
    free(r.id);
    svcworld_close(w);
}

/* 8 reservations at once: one operation, each answered, nothing over-committed. */
static void test_parallel_reservations_coalesced(void **state)
{
    (void)state;
    struct svcworld_spec spec = slow_host(true);
    struct svcworld *w = svcworld_open(&spec);
    enum { N = 8 };
    struct call c[N];
    pthread_t th[N];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        c[i] = (struct call){.w = w, .kind = 0, .kib = GIB, .start = &start};
        pthread_create(&th[i], NULL, call_main, &c[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c[i].rc, 0);
        assert_non_null(c[i].id);
        free(c[i].id);
    }
    assert_int_equal(svcworld_count_ops(w, "reserve"), 1);
    json_t *op = svcworld_last_op(w, "reserve");
    assert_int_equal(json_integer_value(json_object_get(op, "reservations")), N);
    json_decref(op);
    assert_int_equal(svcworld_reserved_kib(w), N * GIB);
    assert_int_equal(svcworld_violations(w), 0);
    assert_true(svcworld_guaranteed_free_kib(w) >= svcworld_reserved_kib(w) + w->reserved_kib);
    svcworld_close(w);
}

/* More than the guests can give: those that fit are granted in arrival order, every
 * other call of the batch gets the verdict; nothing is over-committed. */
static void test_batch_failure_answers_all(void **state)
{
    (void)state;
    struct svcworld_spec spec = slow_host(true);
    struct svcworld *w = svcworld_open(&spec);
    enum { N = 8 };
    struct call c[N];
    pthread_t th[N];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        c[i] = (struct call){.w = w, .kind = 0, .kib = 2 * GIB, .start = &start};
        pthread_create(&th[i], NULL, call_main, &c[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    int ok = 0, failed = 0;
    for (int i = 0; i < N; i++) {
        if (c[i].rc == 0) {
            ok++;
        } else {
            failed++;
            assert_int_equal(c[i].err.kind, SERVICE_ERR_CANNOT_FREE);
        }
        service_error_clear(&c[i].err);
        free(c[i].id);
    }
    /* 1 GiB free + 4 x 3 GiB the guests can give = 13 GiB: 6 of 2 GiB fit. */
    print_message("%d granted, %d refused\n", ok, failed);
    assert_int_equal(ok + failed, N);
    assert_true(ok >= 5 && ok <= 6);
    assert_int_equal(svcworld_reserved_kib(w), ok * 2 * GIB);
    assert_int_equal(svcworld_violations(w), 0);
    assert_true(svcworld_guaranteed_free_kib(w) >= svcworld_reserved_kib(w) + w->reserved_kib);
    svcworld_close(w);
}

/* On the virtual clock: freeing N at known rates takes at most 1.2 x N / (sum of rates)
 * plus one short poll. */
static void test_adaptive_wait(void **state)
{
    (void)state;
    struct svcworld_spec spec = slow_host(false);
    struct svcworld *w = svcworld_open(&spec);
    struct service_error e = {0};
    char *id = NULL;
    int64_t kib = 8 * GIB;
    assert_int_equal(service_reserve_memory(w->svc, "t", "xenopsd", kib, &id, &e), 0);
    json_t *op = svcworld_last_op(w, "reserve");
    int64_t took_ms = json_integer_value(json_object_get(op, "duration_ms"));
    json_decref(op);
    double to_free_kib = (double)(kib + w->reserved_kib - spec.free_kib);
    double ideal_ms = to_free_kib / (4.0 * spec.rate_kib_s) * 1000.0 + 10.0;
    print_message("free %.0f MiB at 4 GiB/s: %lld ms simulated, ideal %.0f ms (%.2fx)\n",
                  to_free_kib / 1024.0, (long long)took_ms, ideal_ms,
                  (double)took_ms / ideal_ms);
    assert_true((double)took_ms <= 1.2 * ideal_ms);
    assert_int_equal(svcworld_violations(w), 0);
    free(id);
    svcworld_close(w);
}

/* Guests at their targets and a stuck guest: an idle hour writes nothing. */
static void test_idle_hour_writes_nothing(void **state)
{
    (void)state;
    struct svcworld_spec spec = {
        .n_guests = 6,
        .guest_min_kib = 512 * MIB,
        .guest_max_kib = 2 * GIB,
        .guest_kib = GIB,
        .rate_kib_s = 256.0 * MIB,
        .free_kib = 4 * GIB,
        .stuck_guest = true,
        .balance_threshold_kib = 64 * MIB,
    };
    struct svcworld *w = svcworld_open(&spec);
    struct service_error e = {0};
    /* Settle: a balance, and a few minutes for the balloons and the stuck tracking. */
    assert_int_equal(service_balance_memory(w->svc, "t", &e), 0);
    assert_int_equal(service_sim_advance(w->svc, 300, &e), 0);
    int64_t before = svcworld_xenstore_writes(w);
    for (int i = 0; i < 60; i++)
        assert_int_equal(service_sim_advance(w->svc, 60, &e), 0);
    int64_t after = svcworld_xenstore_writes(w);
    print_message("xenstore writes in an idle hour: %lld\n", (long long)(after - before));
    assert_int_equal(after - before, 0);
    assert_int_equal(svcworld_violations(w), 0);
    svcworld_close(w);
}

int main(void)
{
    log_quiet(getenv("TEST_VERBOSE") == NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_during_squeeze),
        cmocka_unit_test(test_reservation_preempts_periodic_balance),
        cmocka_unit_test(test_reservation_preempts_balance_memory),
        cmocka_unit_test(test_parallel_reservations_coalesced),
        cmocka_unit_test(test_batch_failure_answers_all),
        cmocka_unit_test(test_adaptive_wait),
        cmocka_unit_test(test_idle_hour_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
