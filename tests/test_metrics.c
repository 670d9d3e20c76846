/* SPDX-License-Identifier: LGPL-2.1-only */
/* The Prometheus exposition of a status picture (api/metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/metrics.h"
#include "common/log.h"
#include "tests/support/checks.h"
#include "tests/support/mock_service.h"

/* The picture is the mock's MOCK_STATUS_JSON (mock.status after mock_reset), the one the
 * HTTP tests serve too. */
static int setup(void **state)
{
    (void)state;
    mock_reset();
    return 0;
}

static void test_metrics_render(void **state)
{
    (void)state;
    char *text = metrics_render(mock.status);
    assert_true(check_exposition(text) > 30);
    expect_line(text, "# TYPE squeezed_host_free_kib gauge");
    expect_line(text, "squeezed_host_free_kib 1048576");
    expect_line(text, "squeezed_host_reserved_kib 73728");
    expect_line(text, "squeezed_host_total_kib 16777216");
    expect_line(text, "squeezed_domain_target_kib{domid=\"7\"} 1500");
    expect_line(text, "squeezed_domain_actual_kib{domid=\"7\"} 1520");
    expect_line(text, "squeezed_domain_dynamic_min_kib{domid=\"0\"} 4194304");
    expect_line(text, "squeezed_domain_dynamic_max_kib{domid=\"7\"} 2000");
    expect_line(text, "squeezed_domain_maxmem_kib{domid=\"7\"} 1500");
    expect_line(text, "squeezed_domain_stuck{domid=\"7\"} 1");
    expect_line(text, "squeezed_domain_stuck{domid=\"0\"} 0");
    expect_line(text, "squeezed_domain_uncooperative{domid=\"7\"} 1");
    expect_line(text, "squeezed_reservations 2");
    expect_line(text, "squeezed_reservations_kib 52424");
    expect_line(text, "# TYPE squeezed_operations_total counter");
    expect_line(text, "squeezed_operations_total{kind=\"reserve\",outcome=\"success\"} 3");
    expect_line(text, "squeezed_operations_total{kind=\"balance\",outcome=\"refused\"} 1");
    expect_line(text,
                "squeezed_operation_duration_seconds_sum{kind=\"reserve\",outcome=\"success\"}"
                " 1.25");
    expect_line(
        text, "squeezed_operation_duration_seconds_count{kind=\"balance\",outcome=\"refused\"}"
              " 1");
    expect_line(text, "# TYPE squeezed_cache_xenstore_reads_total counter");
    expect_line(text, "squeezed_cache_xenstore_reads_total 10");
    expect_line(text, "squeezed_cache_snapshots_total 12");
    expect_line(text, "squeezed_cache_watching 1");
    expect_line(text, "squeezed_busy 0");
    expect_line(text, "squeezed_uptime_seconds 3.25");
    expect_line(text, "squeezed_backend_clock_seconds 12.5");
    expect_line(text, "squeezed_info{version=\"0.1\",backend=\"sim\",clock=\"virtual\"} 1");
    free(text);
}

/* Odd pictures (missing parts, wrong types, label text that needs escaping) still render
 * valid exposition text. */
static void test_metrics_render_odd_status(void **state)
{
    static const char *odd[] = {
        "{}",
        "null",
        "{\"host\": 5, \"domains\": {}, \"reservations\": \"x\", \"cache\": []}",
        "{\"domains\": [{\"domid\": \"1\", \"target_kib\": 5}, 7, {\"domid\": 2}]}",
        ("{\"operation_totals\": [{\"kind\": \"a\\\"b\\\\c\\nd\", \"outcome\": 5, "
         "\"count\": 1, \"duration_ms_sum\": 1e300}]}"),
        "{\"daemon\": {\"version\": null, \"busy\": true, \"uptime_s\": 1e308}}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        json_t *st = json_loads(odd[i], JSON_DECODE_ANY, NULL);
        assert_non_null(st);
        char *text = metrics_render(st);
        check_exposition(text);
        free(text);
        json_decref(st);
    }
    json_t *st = json_loads(odd[4], 0, NULL);
    char *text = metrics_render(st);
    expect_line(text, "squeezed_operations_total{kind=\"a\\\"b\\\\c\\nd\",outcome=\"\"} 1");
    free(text);
    json_decref(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_metrics_render, setup),
        cmocka_unit_test_setup(test_metrics_render_odd_status, setup),
    };
    int failed;

    log_init("test_metrics", true, 0);
    log_quiet(true);
    /* One group: tests/run.sh counts the last summary line. */
    failed = cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
    mock_free();
    return failed != 0;
}
