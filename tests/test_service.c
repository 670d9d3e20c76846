/* SPDX-License-Identifier: LGPL-2.1-only */
/* The service (server/service.c) over a simulated host on the virtual clock, through its
 * public interface only (server/service.h, server/service_life.h): the calls, their
 * errors, the published status, stopping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend/backend.h"
#include "sim/sim.h"
#include "sim/sim_service.h"
#include "common/log.h"
#include "server/service.h"
#include "server/service_life.h"
#include "tests/support/harness.h"

#define MIB 1024
#define GIB (1024 * 1024)
#define RESERVED_KIB 73728 /* the daemon's default host reserve */
#define GUESTS 3           /* harness_guest 1..3: 256 MiB each, dynamic-min 128 MiB */
#define DOM0_KIB GIB       /* sim_domain_spec_default: dom0 fixed at 1 GiB */
#define FREE_KIB (8 * GIB) /* harness_world's host free memory */

/* One service over a fresh world, with the session "xenopsd" logged in. */
struct fx {
    struct service *svc;
    struct service_error err;
};

static int setup(void **state)
{
    /* The daemon's defaults (server/config.c). */
    struct service_options o = {
        .reserved_host_kib = RESERVED_KIB,
        .poll_ms = 250,
        .balance_interval_ms = 10000,
        .use_watches = true,
        .manage_domain_zero = false,
        .dom0_dynamic_min_bytes = -1,
        .dom0_dynamic_max_bytes = -1,
    };
    struct fx *f = calloc(1, sizeof(*f));
    char *err = NULL;
    char *session = NULL;

    struct sim_domain_spec specs[GUESTS + 1];

    if (f == NULL)
        return -1;
    /* dom0 (not ballooning, as manage_domain_zero is off) and the guests. */
    sim_domain_spec_default(&specs[0], 0);
    for (uint32_t domid = 1; domid <= GUESTS; domid++)
        specs[domid] = harness_guest(domid);
    struct sim *w = harness_world(specs, GUESTS + 1);
    o.sim = sim_service_sim(w);
    f->svc = service_new(backend_sim_open(w), &o, &err);
    if (f->svc == NULL) {
        print_error("service_new: %s\n", err != NULL ? err : "?");
        free(err);
        free(f);
        return -1;
    }
    if (service_login(f->svc, "setup", "xenopsd", &session, &f->err) < 0) {
        print_error("login: %s\n", f->err.text != NULL ? f->err.text : "?");
        service_error_clear(&f->err);
        service_free(f->svc);
        free(f);
        return -1;
    }
    free(session);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    service_error_clear(&f->err);
    service_free(f->svc);
    free(f);
    return 0;
}

/* ---- helpers ---- */

/* The published status: its array `key` (borrowed from *st, which the caller frees). */
static json_t *status_array(struct fx *f, const char *key, json_t **st)
{
    *st = service_status(f->svc);
    assert_non_null(*st);
    json_t *a = json_object_get(*st, key);
    assert_true(json_is_array(a));
    return a;
}

/* The published reservation with this id (a new reference), or NULL. */
static json_t *published_reservation(struct fx *f, const char *id)
{
    json_t *st;
    json_t *a = status_array(f, "reservations", &st);
    json_t *found = NULL;
    size_t i;
    json_t *r;

    json_array_foreach(a, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "id")) ?: "", id) == 0)
            found = json_incref(r);
    }
    json_decref(st);
    return found;
}

static size_t published_count(struct fx *f, const char *key)
{
    json_t *st;
    size_t n = json_array_size(status_array(f, key, &st));
    json_decref(st);
    return n;
}

/* The last published operation's kind and outcome are these. */
static void expect_last_operation(struct fx *f, const char *kind, const char *outcome)
{
    json_t *st;
    json_t *a = status_array(f, "operations", &st);
    json_t *op = json_array_get(a, json_array_size(a) - 1);

    assert_non_null(op);
    assert_string_equal(json_string_value(json_object_get(op, "kind")), kind);
    assert_string_equal(json_string_value(json_object_get(op, "outcome")), outcome);
    json_decref(st);
}

/* Sum of the guests' published targets. */
static int64_t published_guest_targets_kib(struct fx *f)
{
    json_t *st;
    json_t *a = status_array(f, "domains", &st);
    int64_t sum = 0;
    size_t i;
    json_t *d;

    json_array_foreach(a, i, d)
    {
        if (json_integer_value(json_object_get(d, "domid")) != 0)
            sum += json_integer_value(json_object_get(d, "target_kib"));
    }
    json_decref(st);
    return sum;
}

static char *reserve(struct fx *f, int64_t kib)
{
    char *id = NULL;
    if (service_reserve_memory(f->svc, "t", "xenopsd", kib, &id, &f->err) < 0)
        fail_msg("reserve %lld: error kind %d (%s)", (long long)kib, f->err.kind,
                 f->err.text != NULL ? f->err.text : "");
    assert_non_null(id);
    return id;
}

/* ---- the calls ---- */

static void test_host_figures(void **state)
{
    struct fx *f = *state;
    struct service_dom0_policy p;

    assert_int_equal(service_get_host_reserved_memory_kib(f->svc), RESERVED_KIB);
    /* Free at start, in bytes: the world's free memory as the first snapshot saw it. */
    int64_t initial = service_get_host_initial_free_memory_bytes(f->svc);
    assert_true(initial > (int64_t)(FREE_KIB - 64 * MIB) * 1024);
    assert_true(initial <= (int64_t)FREE_KIB * 1024);
    service_get_domain_zero_policy(f->svc, &p);
    /* dom0 not managed: its own size, fixed. */
    assert_true(p.fixed);
    assert_int_equal(p.fixed_bytes, (int64_t)DOM0_KIB * 1024);
    char *diag = service_get_diagnostics(f->svc);
    assert_non_null(diag);
    assert_true(strlen(diag) > 0);
    free(diag);
    assert_true(service_has_sim(f->svc));
    assert_string_equal(service_backend_name(f->svc), "sim");
    assert_string_equal(service_clock_name(f->svc), "virtual");
}

static void test_login_returns_session_and_drops_old_reservations(void **state)
{
    struct fx *f = *state;
    char *session = NULL;

    char *id = reserve(f, GIB);
    assert_int_equal(published_count(f, "reservations"), 1);
    /* xenopsd restarts: its login deletes what it reserved before. */
    assert_int_equal(service_login(f->svc, "t", "xenopsd", &session, &f->err), 0);
    assert_string_equal(session, "xenopsd");
    assert_int_equal(published_count(f, "reservations"), 0);
    free(session);
    free(id);
}

static void test_login_refuses_bad_name(void **state)
{
    struct fx *f = *state;
    char *session = NULL;

    assert_int_equal(service_login(f->svc, "t", "../evil", &session, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INVALID_PARAMS);
    assert_null(session);
}

/* A reservation the host has free: no squeeze needed; the status lists it at once. */
static void test_reserve_published(void **state)
{
    struct fx *f = *state;

    char *id = reserve(f, GIB);
    json_t *r = published_reservation(f, id);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "session")), "xenopsd");
    assert_int_equal(json_integer_value(json_object_get(r, "kib")), GIB);
    assert_null(json_object_get(r, "domid"));
    json_decref(r);
    expect_last_operation(f, "reserve", "success");
    /* The operation is over: not busy. */
    json_t *st = service_status(f->svc);
    assert_true(json_is_false(json_object_get(json_object_get(st, "daemon"), "busy")));
    json_decref(st);
    free(id);
}

/* More than is free: the guests balloon down to make room. */
static void test_reserve_squeezes_guests(void **state)
{
    struct fx *f = *state;
    int64_t before = published_guest_targets_kib(f);
    int64_t want = FREE_KIB - RESERVED_KIB + 200 * MIB;

    char *id = reserve(f, want);
    int64_t after = published_guest_targets_kib(f);
    if (before - after < 200 * MIB)
        fail_msg("guests gave %lld KiB, not 200 MiB", (long long)(before - after));
    expect_last_operation(f, "reserve", "success");
    free(id);
}

static void test_reserve_cannot_free(void **state)
{
    struct fx *f = *state;
    char *id = NULL;

    /* Beyond the guests' dynamic-min (3 x 128 MiB can go). */
    assert_int_equal(
        service_reserve_memory(f->svc, "t", "xenopsd", FREE_KIB + GIB, &id, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_CANNOT_FREE);
    assert_true(f->err.needed_kib > f->err.free_kib);
    assert_null(id);
    assert_int_equal(published_count(f, "reservations"), 0);
    expect_last_operation(f, "reserve", "cannot_free");
}

static void test_reserve_range(void **state)
{
    struct fx *f = *state;
    char *id = NULL;
    int64_t got = 0;

    /* All of max is free. */
    assert_int_equal(
        service_reserve_memory_range(f->svc, "t", "xenopsd", GIB, 2 * GIB, &id, &got, &f->err),
        0);
    assert_int_equal(got, 2 * GIB);
    json_t *r = published_reservation(f, id);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "kib")), got);
    json_decref(r);
    free(id);
    id = NULL;
    /* Max beyond the host: as much as it can, at least min. */
    assert_int_equal(
        service_reserve_memory_range(f->svc, "t", "xenopsd", GIB, 64 * GIB, &id, &got, &f->err),
        0);
    assert_true(got >= GIB && got < 64 * GIB);
    expect_last_operation(f, "reserve_range", "success");
    free(id);
}

static void test_delete(void **state)
{
    struct fx *f = *state;

    char *id = reserve(f, GIB);
    assert_int_equal(service_delete_reservation(f->svc, "t", "xenopsd", id, &f->err), 0);
    assert_null(published_reservation(f, id));
    /* Deleted once: unknown now, the error names it. */
    assert_int_equal(service_delete_reservation(f->svc, "t", "xenopsd", id, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_UNKNOWN_RESERVATION);
    assert_string_equal(f->err.text, id);
    free(id);
}

static void test_transfer_and_query(void **state)
{
    struct fx *f = *state;
    char *got = NULL;

    char *id = reserve(f, GIB);
    assert_int_equal(
        service_transfer_reservation_to_domain(f->svc, "t", "xenopsd", id, 2, &f->err), 0);
    json_t *r = published_reservation(f, id);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "domid")), 2);
    json_decref(r);
    assert_int_equal(
        service_query_reservation_of_domain(f->svc, "t", "xenopsd", 2, &got, &f->err), 0);
    assert_string_equal(got, id);
    free(got);
    got = NULL;
    /* A domain without one. */
    assert_int_equal(
        service_query_reservation_of_domain(f->svc, "t", "xenopsd", 3, &got, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_NO_RESERVATION);
    assert_null(got);
    free(id);
}

static void test_transfer_unknown_reservation(void **state)
{
    struct fx *f = *state;

    assert_int_equal(service_transfer_reservation_to_domain(f->svc, "t", "xenopsd",
                                                            "no-such-id", 2, &f->err),
                     -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_UNKNOWN_RESERVATION);
    assert_string_equal(f->err.text, "no-such-id");
}

/* The published host figures and the number of snapshots taken so far. */
struct host_view {
    int64_t free_kib, reservations_kib, snapshots;
};
static struct host_view host_view(struct fx *f)
{
    json_t *st = service_status(f->svc);
    assert_non_null(st);
    json_t *h = json_object_get(st, "host");
    struct host_view v = {
        .free_kib = json_integer_value(json_object_get(h, "free_kib")),
        .reservations_kib = json_integer_value(json_object_get(h, "reservations_kib")),
        .snapshots =
            json_integer_value(json_object_get(json_object_get(st, "cache"), "snapshots")),
    };
    assert_true(v.snapshots > 0);
    json_decref(st);
    return v;
}

/*
 * Issue 13: a reserve the host has free costs one snapshot (and one policy round): the
 * check after it brings that snapshot up to date instead of reading the host again, and
 * a delete reads nothing. The figures published are those a fresh snapshot gives (a
 * balance takes one). A transfer changes what the domain counts for: a new snapshot.
 */
static void test_reserve_without_squeeze_reuses_the_snapshot(void **state)
{
    struct fx *f = *state;
    /* Balanced first: the guests at their targets, so a balance after changes nothing. */
    assert_int_equal(service_balance_memory(f->svc, "t", &f->err), 0);
    struct host_view v0 = host_view(f);

    char *id = reserve(f, GIB);
    struct host_view v1 = host_view(f);
    assert_int_equal(v1.snapshots - v0.snapshots, 1);
    assert_int_equal(v1.free_kib, v0.free_kib - GIB);
    assert_int_equal(v1.reservations_kib, v0.reservations_kib + GIB);
    /* A fresh snapshot agrees (the balance changes no target). */
    assert_int_equal(service_balance_memory(f->svc, "t", &f->err), 0);
    struct host_view v2 = host_view(f);
    assert_true(v2.snapshots > v1.snapshots);
    assert_int_equal(v2.free_kib, v1.free_kib);
    assert_int_equal(v2.reservations_kib, v1.reservations_kib);

    assert_int_equal(service_delete_reservation(f->svc, "t", "xenopsd", id, &f->err), 0);
    struct host_view v3 = host_view(f);
    assert_int_equal(v3.snapshots, v2.snapshots);
    assert_int_equal(v3.free_kib, v0.free_kib);
    assert_int_equal(v3.reservations_kib, v0.reservations_kib);
    free(id);

    id = reserve(f, GIB);
    struct host_view v4 = host_view(f);
    assert_int_equal(
        service_transfer_reservation_to_domain(f->svc, "t", "xenopsd", id, 2, &f->err), 0);
    struct host_view v5 = host_view(f);
    assert_int_equal(v5.snapshots - v4.snapshots, 1);
    /* Domain 2 is running: the reservation now counts through it only. */
    assert_int_equal(v5.reservations_kib, v0.reservations_kib);
    free(id);
}

/* A reserve that makes the guests balloon writes targets: the check after it reads the
 * host again, so the published domains show the targets written. */
static void test_reserve_with_squeeze_takes_a_fresh_snapshot(void **state)
{
    struct fx *f = *state;
    int64_t want = FREE_KIB - RESERVED_KIB + 200 * MIB;

    char *id = reserve(f, want);
    struct host_view v1 = host_view(f);
    assert_int_equal(service_balance_memory(f->svc, "t", &f->err), 0);
    struct host_view v2 = host_view(f);
    assert_true(v2.snapshots > v1.snapshots);
    assert_int_equal(v2.reservations_kib, v1.reservations_kib);
    free(id);
}

static void test_balance(void **state)
{
    struct fx *f = *state;

    assert_int_equal(service_balance_memory(f->svc, "t", &f->err), 0);
    expect_last_operation(f, "balance", "success");
    /* The operation is over: not busy (a balance once left the service "in" it for
     * good: busy true and no check after later calls). */
    json_t *st = service_status(f->svc);
    assert_true(json_is_false(json_object_get(json_object_get(st, "daemon"), "busy")));
    json_decref(st);
    struct host_view v0 = host_view(f);
    char *id = reserve(f, GIB);
    assert_int_equal(host_view(f).snapshots - v0.snapshots, 1);
    free(id);
}

/* ---- errors ---- */

static void test_unknown_session(void **state)
{
    struct fx *f = *state;
    char *id = NULL;

    assert_int_equal(service_reserve_memory(f->svc, "t", "nobody", GIB, &id, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_non_null(strstr(f->err.text, "unknown session"));
    assert_null(id);
    service_error_clear(&f->err); /* the caller's duty between calls (server/service.h) */
    assert_int_equal(service_delete_reservation(f->svc, "t", "nobody", "x", &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_non_null(strstr(f->err.text, "unknown session"));
    assert_int_equal(published_count(f, "reservations"), 0);
}

/* Refused at the boundary, nothing done: no reservation, no operation. */
static void test_invalid_memory_values(void **state)
{
    static const int64_t bad[] = {-1, INT64_MIN, LIMIT_KIB_MAX + 1, INT64_MAX};
    static const struct {
        int64_t min, max, value; /* value: the one the error names */
    } bad_range[] = {
        {-1, GIB, -1},
        {GIB, -1, -1},
        {GIB, 0, GIB},
        {2 * GIB, GIB, 2 * GIB},
        {0, LIMIT_KIB_MAX + 1, LIMIT_KIB_MAX + 1},
        {LIMIT_KIB_MAX + 1, LIMIT_KIB_MAX + 2, LIMIT_KIB_MAX + 1},
    };
    struct fx *f = *state;
    size_t ops = published_count(f, "operations");

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *id = NULL;
        assert_int_equal(service_reserve_memory(f->svc, "t", "xenopsd", bad[i], &id, &f->err),
                         -1);
        assert_int_equal(f->err.kind, SERVICE_ERR_INVALID_MEMORY_VALUE);
        assert_int_equal(f->err.value, bad[i]);
        assert_null(id);
    }
    for (size_t i = 0; i < sizeof(bad_range) / sizeof(bad_range[0]); i++) {
        char *id = NULL;
        int64_t got = -7;
        assert_int_equal(service_reserve_memory_range(f->svc, "t", "xenopsd", bad_range[i].min,
                                                      bad_range[i].max, &id, &got, &f->err),
                         -1);
        assert_int_equal(f->err.kind, SERVICE_ERR_INVALID_MEMORY_VALUE);
        assert_int_equal(f->err.value, bad_range[i].value);
        assert_null(id);
        assert_int_equal(got, -7);
    }
    assert_int_equal(published_count(f, "reservations"), 0);
    assert_int_equal(published_count(f, "operations"), ops);
}

/* ---- stopping ---- */

static void test_calls_after_stop_are_refused(void **state)
{
    struct fx *f = *state;
    char *id = reserve(f, GIB);
    char *out = NULL;

    service_stop(f->svc);
    service_stop(f->svc); /* idempotent */
    assert_int_equal(service_login(f->svc, "t", "xenopsd", &out, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_string_equal(f->err.text, "shutting down");
    assert_int_equal(service_reserve_memory(f->svc, "t", "xenopsd", GIB, &out, &f->err), -1);
    assert_string_equal(f->err.text, "shutting down");
    assert_int_equal(service_delete_reservation(f->svc, "t", "xenopsd", id, &f->err), -1);
    assert_string_equal(f->err.text, "shutting down");
    assert_int_equal(service_balance_memory(f->svc, "t", &f->err), -1);
    assert_string_equal(f->err.text, "shutting down");
    assert_null(out);
    /* The last picture is still served, the reservation in it. */
    json_t *r = published_reservation(f, id);
    assert_non_null(r);
    json_decref(r);
    free(id);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_host_figures),
        T(test_login_returns_session_and_drops_old_reservations),
        T(test_login_refuses_bad_name),
        T(test_reserve_published),
        T(test_reserve_squeezes_guests),
        T(test_reserve_cannot_free),
        T(test_reserve_range),
        T(test_delete),
        T(test_transfer_and_query),
        T(test_transfer_unknown_reservation),
        T(test_reserve_without_squeeze_reuses_the_snapshot),
        T(test_reserve_with_squeeze_takes_a_fresh_snapshot),
        T(test_balance),
        T(test_unknown_session),
        T(test_invalid_memory_values),
        T(test_calls_after_stop_are_refused),
    };
#undef T
    log_init("test_service", true, 0);
    log_quiet(true);
    return cmocka_run_group_tests_name("service", tests, NULL, NULL);
}
