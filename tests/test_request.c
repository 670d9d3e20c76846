/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one check of each typed request of the service (server/request.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/request.h"

/* The error of a failed check: kind, value and text, then cleared. */
static void expect_error(struct service_error *err, enum service_error_kind kind, int64_t value,
                         const char *text)
{
    assert_int_equal(err->kind, kind);
    if (kind == SERVICE_ERR_INVALID_MEMORY_VALUE)
        assert_int_equal(err->value, value);
    if (text != NULL)
        assert_string_equal(err->text, text);
    service_error_clear(err);
}

/* (Moved from test_reservations: the sizes reservations_reserve once refused itself.) */
static void test_reserve_refuses_bad_values(void **state)
{
    (void)state;
    struct service_error err = {0};
    const int64_t bad[] = {-1, LIMIT_KIB_MAX + 1, INT64_MIN};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct req_reserve r = {.session = "xenopsd", .kib = bad[i]};
        assert_int_equal(request_check_reserve(&r, &err), -1);
        expect_error(&err, SERVICE_ERR_INVALID_MEMORY_VALUE, bad[i], NULL);
    }
    struct req_reserve r = {.session = "xenopsd", .kib = -5};
    assert_int_equal(request_check_reserve(&r, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_MEMORY_VALUE, -5,
                 "invalid memory value for kib of reserve_memory: -5 (KiB, 0 .. "
                 "1099511627776)");
    r.kib = 0; /* a reservation of nothing, as squeezed (issue 10) */
    assert_int_equal(request_check_reserve(&r, &err), 0);
    r.kib = 1;
    assert_int_equal(request_check_reserve(&r, &err), 0);
    r.kib = LIMIT_KIB_MAX;
    assert_int_equal(request_check_reserve(&r, &err), 0);
    assert_int_equal(err.kind, SERVICE_OK);
}

static void test_reserve_range_refuses_bad_bounds(void **state)
{
    (void)state;
    struct service_error err = {0};
    const int64_t cases[][3] = {
        /* min, max, the value reported */
        {-1, 1024, -1},
        {0, -1, -1},
        {2048, 1024, 2048},
        {0, LIMIT_KIB_MAX + 1, LIMIT_KIB_MAX + 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct req_reserve_range r = {
            .session = "xenopsd", .min_kib = cases[i][0], .max_kib = cases[i][1]};
        assert_int_equal(request_check_reserve_range(&r, &err), -1);
        expect_error(&err, SERVICE_ERR_INVALID_MEMORY_VALUE, cases[i][2], NULL);
    }
    struct req_reserve_range r = {.session = "s", .min_kib = 20, .max_kib = 10};
    assert_int_equal(request_check_reserve_range(&r, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_MEMORY_VALUE, 20,
                 "invalid memory value: min_kib 20 is above max_kib 10");
    r = (struct req_reserve_range){.session = "s", .min_kib = 0, .max_kib = 0};
    assert_int_equal(request_check_reserve_range(&r, &err), 0);
    r = (struct req_reserve_range){.session = "s", .min_kib = 0, .max_kib = 1};
    assert_int_equal(request_check_reserve_range(&r, &err), 0);
    r = (struct req_reserve_range){.session = "s", .min_kib = 7, .max_kib = 7};
    assert_int_equal(request_check_reserve_range(&r, &err), 0);
}

/* Parameters are checked in order: a bad session is reported before a bad size. */
static void test_names_are_checked_first(void **state)
{
    (void)state;
    struct service_error err = {0};
    struct req_reserve r = {.session = "a/b", .kib = -1};
    assert_int_equal(request_check_reserve(&r, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0,
                 "session_id of reserve_memory must be a non-empty name of at most 255 bytes "
                 "without '/' or control characters");
    const char *bad[] = {"", "a/b", "a\nb", "\x7f", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct req_login l = {.service_name = bad[i]};
        assert_int_equal(request_check_login(&l, &err), -1);
        expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0, NULL);
    }
    char name[257];
    memset(name, 'a', 256);
    name[256] = '\0';
    struct req_login l = {.service_name = name};
    assert_int_equal(request_check_login(&l, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0, NULL);
    name[255] = '\0';
    assert_int_equal(request_check_login(&l, &err), 0);
}

static void test_impossible_ids_are_unknown(void **state)
{
    (void)state;
    struct service_error err = {0};
    struct req_delete d = {.session = "s", .reservation_id = "../x"};
    assert_int_equal(request_check_delete(&d, &err), -1);
    expect_error(&err, SERVICE_ERR_UNKNOWN_RESERVATION, 0, "../x");
    struct req_transfer t = {.session = "s", .reservation_id = "", .domid = 3};
    assert_int_equal(request_check_transfer(&t, &err), -1);
    expect_error(&err, SERVICE_ERR_UNKNOWN_RESERVATION, 0, "");
}

static void test_domids_are_bounded(void **state)
{
    (void)state;
    struct service_error err = {0};
    struct req_transfer t = {.session = "s", .reservation_id = "r", .domid = 32752};
    assert_int_equal(request_check_transfer(&t, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0,
                 "domid of transfer_reservation_to_domain must be a domain id, 0 .. 32751; "
                 "got 32752");
    t.domid = -1;
    assert_int_equal(request_check_transfer(&t, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0, NULL);
    struct req_query q = {.session = "s", .domid = 32751};
    assert_int_equal(request_check_query(&q, &err), 0);
    q.domid = 65536;
    assert_int_equal(request_check_query(&q, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0, NULL);
    struct req_sim_destroy sd = {.domid = -3};
    assert_int_equal(request_check_sim_destroy(&sd, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0,
                 "domid of sim.destroy_domain must be a domain id, 0 .. 32751; got -3");
}

static void test_sim_values(void **state)
{
    (void)state;
    struct service_error err = {0};
    const double bad_s[] = {0, -1, 1e300, 1.0e9 + 1};
    for (size_t i = 0; i < sizeof(bad_s) / sizeof(bad_s[0]); i++) {
        struct req_sim_advance a = {.seconds = bad_s[i]};
        assert_int_equal(request_check_sim_advance(&a, &err), -1);
        expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0, NULL);
    }
    struct req_sim_advance a = {.seconds = 0.001};
    assert_int_equal(request_check_sim_advance(&a, &err), 0);
    struct req_sim_range r = {.domid = 1, .min_kib = -1, .max_kib = 10};
    assert_int_equal(request_check_sim_range(&r, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_MEMORY_VALUE, -1,
                 "invalid memory value for min_kib of sim.set_dynamic_range: -1 (KiB, 0 .. "
                 "1099511627776)");
    r = (struct req_sim_range){.domid = 1, .min_kib = 0, .max_kib = 0};
    assert_int_equal(request_check_sim_range(&r, &err), 0);
    json_t *arr = json_array();
    struct req_sim_balloon b = {.domid = 1, .balloon = arr};
    assert_int_equal(request_check_sim_balloon(&b, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0,
                 "balloon of sim.set_balloon must be an object");
    json_decref(arr);
    struct req_sim_claim c = {.domid = 1, .kib = -1};
    assert_int_equal(request_check_sim_claim(&c, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_MEMORY_VALUE, -1,
                 "invalid memory value for kib of sim.set_claim: -1 (KiB, 0 .. "
                 "1099511627776)");
    c = (struct req_sim_claim){.domid = 1, .kib = 0};
    assert_int_equal(request_check_sim_claim(&c, &err), 0);
    struct req_sim_pause p = {.domid = 32752, .paused = true};
    assert_int_equal(request_check_sim_pause(&p, &err), -1);
    expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0,
                 "domid of sim.pause_domain must be a domain id, 0 .. 32751; got 32752");
    p.domid = 7;
    assert_int_equal(request_check_sim_pause(&p, &err), 0);
}

/* The message-switch front end's reply keys: xenstore path components it made itself. */
static void test_rpc_reply_keys(void **state)
{
    (void)state;
    struct service_error err = {0};
    struct req_rpc_reply r = {.key = "a-Z_09"};
    assert_int_equal(request_check_rpc_reply(&r, &err), 0);
    const char *bad[] = {"", "a/b", "a b", "../x",
                         "0123456789012345678901234567890123456789012345678901234567890123x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r.key = bad[i];
        assert_int_equal(request_check_rpc_reply(&r, &err), -1);
        expect_error(&err, SERVICE_ERR_INVALID_PARAMS, 0, NULL);
    }
    r.key = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 */
    assert_int_equal(request_check_rpc_reply(&r, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpc_reply_keys),
        cmocka_unit_test(test_reserve_refuses_bad_values),
        cmocka_unit_test(test_reserve_range_refuses_bad_bounds),
        cmocka_unit_test(test_names_are_checked_first),
        cmocka_unit_test(test_impossible_ids_are_unknown),
        cmocka_unit_test(test_domids_are_bounded),
        cmocka_unit_test(test_sim_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
