/* SPDX-License-Identifier: LGPL-2.1-only */
/* The Prometheus exposition of a status picture (api/metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    /* base units: the picture's KiB as bytes */
    expect_line(text, "# TYPE squeezed_host_free_bytes gauge");
    expect_line(text, "squeezed_host_free_bytes 1073741824");
    expect_line(text, "squeezed_host_reserved_bytes 75497472");
    expect_line(text, "squeezed_host_total_bytes 17179869184");
    expect_line(text, "squeezed_host_reservations_bytes 52658176");
    assert_null(strstr(text, "_kib"));
    /* domains by domid, and the VM's name and uuid where xenstore has them */
    expect_line(text, "squeezed_domain_target_bytes{domid=\"7\",name=\"web \\\"1\\\"\","
                      "uuid=\"5f1e7c2a-3d4b-4c6e-9f80-1a2b3c4d5e6f\"} 1536000");
    expect_line(text, "squeezed_domain_actual_bytes{domid=\"7\",name=\"web \\\"1\\\"\","
                      "uuid=\"5f1e7c2a-3d4b-4c6e-9f80-1a2b3c4d5e6f\"} 1556480");
    expect_line(text, "squeezed_domain_dynamic_min_bytes{domid=\"0\"} 4294967296");
    expect_line(text, "squeezed_domain_stuck{domid=\"0\"} 0");
    expect_line(text, "squeezed_domain_uncooperative{domid=\"7\",name=\"web \\\"1\\\"\","
                      "uuid=\"5f1e7c2a-3d4b-4c6e-9f80-1a2b3c4d5e6f\"} 1");
    expect_line(text, "squeezed_reservations 2");
    expect_line(text, "squeezed_reservations_bytes 53682176");
    expect_line(text, "# TYPE squeezed_operations_total counter");
    expect_line(text, "squeezed_operations_total{kind=\"reserve\",outcome=\"success\"} 3");
    expect_line(text, "squeezed_operations_total{kind=\"balance\",outcome=\"refused\"} 1");
    /* histograms: buckets on the picture's bounds, +Inf = count, sum in seconds */
    expect_line(text, "# TYPE squeezed_operation_duration_seconds histogram");
    expect_line(text, "squeezed_operation_duration_seconds_bucket{kind=\"reserve\","
                      "outcome=\"success\",le=\"0.1\"} 0");
    expect_line(text, "squeezed_operation_duration_seconds_bucket{kind=\"reserve\","
                      "outcome=\"success\",le=\"30\"} 3");
    expect_line(text, "squeezed_operation_duration_seconds_bucket{kind=\"reserve\","
                      "outcome=\"success\",le=\"+Inf\"} 3");
    expect_line(text,
                "squeezed_operation_duration_seconds_sum{kind=\"reserve\",outcome=\"success\"}"
                " 1.25");
    expect_line(
        text, "squeezed_operation_duration_seconds_count{kind=\"balance\",outcome=\"refused\"}"
              " 1");
    /* an entry without buckets still has +Inf */
    expect_line(text, "squeezed_operation_duration_seconds_bucket{kind=\"balance\","
                      "outcome=\"refused\",le=\"+Inf\"} 1");
    expect_line(text, "# TYPE squeezed_client_wait_seconds histogram");
    expect_line(text,
                "squeezed_client_wait_seconds_bucket{method=\"reserve_memory\",le=\"1\"} 2");
    expect_line(text, "squeezed_client_wait_seconds_sum{method=\"reserve_memory\"} 30.2");
    expect_line(text, "squeezed_client_wait_seconds_count{method=\"reserve_memory\"} 4");
    expect_line(text, "# TYPE squeezed_cache_xenstore_reads_total counter");
    expect_line(text, "squeezed_cache_xenstore_reads_total 10");
    expect_line(text, "squeezed_cache_snapshots_total 12");
    expect_line(text, "squeezed_cache_watching 1");
    expect_line(text, "squeezed_busy 0");
    expect_line(text, "squeezed_clients_waiting 0");
    expect_line(text, "squeezed_uptime_seconds 3.25");
    expect_line(text, "squeezed_backend_clock_seconds 12.5");
    expect_line(text, "squeezed_info{version=\"0.1\",backend=\"sim\",clock=\"virtual\"} 1");
    free(text);
}

/* The process_* metrics of Prometheus' client libraries, from /proc/self: present and
 * plausible for this very process. */
static void test_metrics_process(void **state)
{
    (void)state;
    char *text = metrics_render(mock.status);
    static const char *const names[] = {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *key = NULL;
        assert_true(asprintf(&key, "\n%s ", names[i]) > 0);
        const char *at = strstr(text, key);
        if (at == NULL)
            fail_msg("no sample of %s", names[i]);
        double v = strtod(at + strlen(key), NULL);
        assert_true(v >= 0);
        if (strcmp(names[i], "process_resident_memory_bytes") == 0)
            assert_true(v > 1e5 && v < 1e10);
        if (strcmp(names[i], "process_open_fds") == 0)
            assert_true(v >= 3);
        if (strcmp(names[i], "process_start_time_seconds") == 0)
            assert_true(v > 1.5e9 && v <= (double)time(NULL) + 1);
        free(key);
    }
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
        cmocka_unit_test_setup(test_metrics_process, setup),
    };
    int failed;

    log_init("test_metrics", true, 0);
    log_quiet(true);
    /* One group: tests/run.sh counts the last summary line. */
    failed = cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
    mock_free();
    return failed != 0;
}
