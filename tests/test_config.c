/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's settings: squeezed.conf-style files, option overrides, checks. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/parse.h"
#include "common/xalloc.h"
#include "server/config.h"

struct fixture {
    struct config c;
    char path[64];
    char *err;
    char *warn;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    config_init(&f->c);
    strcpy(f->path, "/tmp/squeezed-test-config.XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->path);
    config_release(&f->c);
    free(f->err);
    free(f->warn);
    free(f);
    return 0;
}

static void write_file(struct fixture *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int load(struct fixture *f, const char *text)
{
    write_file(f, text);
    free(f->err);
    free(f->warn);
    f->err = NULL;
    f->warn = NULL;
    return config_load_file(&f->c, f->path, &f->err, &f->warn);
}

static void test_defaults(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->c.backend, CONFIG_BACKEND_XEN);
    assert_int_equal(f->c.clock, CONFIG_CLOCK_REAL);
    assert_string_equal(f->c.listen_host, "127.0.0.1");
    assert_int_equal(f->c.listen_port, 8799);
    assert_non_null(f->c.socket_path);
    if (geteuid() == 0)
        assert_string_equal(f->c.socket_path, "/var/run/squeezed.sock");
    assert_int_equal(f->c.reserved_host_kib, 73728);
    assert_true(f->c.poll_interval_s == 0.25);
    assert_true(f->c.balance_interval_s == 10.0);
    assert_false(f->c.manage_domain_zero);
    assert_int_equal(f->c.dom0_dynamic_min_bytes, -1);
    assert_int_equal(f->c.dom0_dynamic_max_bytes, -1);
    assert_true(f->c.use_watches);
    assert_null(f->c.scenario_path);
    assert_null(f->c.sim_state_path);
}

static void test_file_sets_every_key(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "# squeezed.conf\n"
                             "balance-check-interval = 2.5\n"
                             "manage-domain-zero=true\n"
                             "domain-zero-dynamic-min = 1073741824\n"
                             "domain-zero-dynamic-max = \"2147483648\"\n"
                             "\n"
                             "   reserved-host-memory-kib = 1024   # trailing comment\n"
                             "poll-interval-s = 0.1\n"
                             "listen = 127.0.0.2:9000\n"
                             "socket = /tmp/x.sock\n"
                             "backend = sim\n"
                             "scenario = scenarios/demo.json\n"
                             "clock = virtual\n"
                             "sim-state = /tmp/state.json\n"
                             "watches = no\n"),
                     0);
    assert_null(f->warn);
    assert_true(f->c.balance_interval_s == 2.5);
    assert_true(f->c.manage_domain_zero);
    assert_int_equal(f->c.dom0_dynamic_min_bytes, 1073741824);
    assert_int_equal(f->c.dom0_dynamic_max_bytes, 2147483648LL);
    assert_int_equal(f->c.reserved_host_kib, 1024);
    assert_true(f->c.poll_interval_s == 0.1);
    assert_string_equal(f->c.listen_host, "127.0.0.2");
    assert_int_equal(f->c.listen_port, 9000);
    assert_string_equal(f->c.socket_path, "/tmp/x.sock");
    assert_int_equal(f->c.backend, CONFIG_BACKEND_SIM);
    assert_string_equal(f->c.scenario_path, "scenarios/demo.json");
    assert_int_equal(f->c.clock, CONFIG_CLOCK_VIRTUAL);
    assert_string_equal(f->c.sim_state_path, "/tmp/state.json");
    assert_false(f->c.use_watches);
    assert_int_equal(config_check(&f->c, &f->err), 0);
}

static void test_bad_value_names_file_line_and_key(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "# comment\n\nreserved-host-memory-kib = 12abc\n"), -EINVAL);
    char *expected = xasprintf("%s:3: reserved-host-memory-kib = '12abc'", f->path);
    if (strstr(f->err, expected) == NULL)
        fail_msg("message '%s' does not start with '%s'", f->err, expected);
    free(expected);
    assert_int_equal(f->c.reserved_host_kib, 73728);
}

static void test_bad_values_are_refused(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[][2] = {
        {"reserved-host-memory-kib", "-1"},
        {"reserved-host-memory-kib", ""},
        {"reserved-host-memory-kib", " 5"},
        {"reserved-host-memory-kib", "99999999999999999999999"},
        {"reserved-host-memory-kib", "2199023255553"},
        {"poll-interval-s", "0"},
        {"poll-interval-s", "nan"},
        {"poll-interval-s", "61"},
        {"balance-check-interval", "inf"},
        {"balance-check-interval", "-3"},
        {"balance-check-interval", "1e9"},
        {"manage-domain-zero", "maybe"},
        {"watches", ""},
        {"domain-zero-dynamic-min", "1.5"},
        {"backend", "kvm"},
        {"clock", "fast"},
        {"listen", "8799"},
        {"listen", "127.0.0.1:99999"},
        {"listen", "127.0.0.1:"},
        {"scenario", ""},
        {"socket", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *err = NULL;
        if (config_set(&f->c, bad[i][0], bad[i][1], "test", &err) != -EINVAL)
            fail_msg("%s = '%s' accepted", bad[i][0], bad[i][1]);
        assert_non_null(strstr(err, bad[i][0]));
        free(err);
    }
    /* Nothing changed. */
    assert_int_equal(f->c.reserved_host_kib, 73728);
    assert_int_equal(f->c.listen_port, 8799);
    assert_int_equal(f->c.backend, CONFIG_BACKEND_XEN);
}

static void test_listen_is_loopback_only(void **state)
{
    struct fixture *f = *state;
    const char *refused[] = {"0.0.0.0:8799", "10.0.0.1:80", "[::]:8799", "example.com:80",
                             "[2001:db8::1]:80"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char *err = NULL;
        if (config_set(&f->c, "listen", refused[i], "option --listen", &err) != -EINVAL)
            fail_msg("listen %s accepted", refused[i]);
        assert_non_null(strstr(err, "loopback"));
        free(err);
    }
    char *host = NULL, *err = NULL;
    uint16_t port = 0;
    assert_int_equal(config_parse_listen("[::1]:8080", &host, &port, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    free(host);
    assert_int_equal(config_parse_listen("localhost:0", &host, &port, &err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 0);
    free(host);
    assert_int_equal(config_parse_listen("127.10.0.1:1", &host, &port, &err), 0);
    free(host);
}

static void test_unknown_keys_warn_but_load(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "log = syslog:daemon\ninventory=/etc/inventory\n"
                             "reserved-host-memory-kib = 2048\n"),
                     0);
    assert_non_null(f->warn);
    assert_non_null(strstr(f->warn, ":1: unknown key 'log'"));
    assert_non_null(strstr(f->warn, ":2: unknown key 'inventory'"));
    assert_int_equal(f->c.reserved_host_kib, 2048);
}

static void test_lines_without_equals_are_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "reserved-host-memory-kib 2048\n"), -EINVAL);
    assert_non_null(strstr(f->err, ":1:"));
    assert_int_equal(load(f, " = 5\n"), -EINVAL);
    assert_non_null(strstr(f->err, "missing key"));
}

static void test_missing_file_is_an_error(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(config_load_file(&f->c, "/nonexistent/squeezed.conf", &f->err, &f->warn),
                     -ENOENT);
    assert_non_null(strstr(f->err, "/nonexistent/squeezed.conf"));
}

static void test_options_override_the_file(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "reserved-host-memory-kib = 2048\nlisten = 127.0.0.1:1000\n"), 0);
    char *err = NULL;
    assert_int_equal(config_set(&f->c, "reserved-host-memory-kib", "4096",
                                "option --reserved-host-memory-kib", &err),
                     0);
    assert_int_equal(config_set(&f->c, "listen", "127.0.0.1:0", "option --listen", &err), 0);
    assert_int_equal(f->c.reserved_host_kib, 4096);
    assert_int_equal(f->c.listen_port, 0);
}

static void test_none_disables_a_listener(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    assert_int_equal(config_set(&f->c, "socket", "none", "test", &err), 0);
    assert_null(f->c.socket_path);
    assert_int_equal(config_check(&f->c, &err), 0);
    assert_int_equal(config_set(&f->c, "listen", "none", "test", &err), 0);
    assert_int_equal(config_check(&f->c, &err), -EINVAL);
    free(err);
}

static void test_checks_across_keys(void **state)
{
    struct fixture *f = *state;
    char *err = NULL;
    f->c.dom0_dynamic_min_bytes = 2048;
    f->c.dom0_dynamic_max_bytes = 1024;
    assert_int_equal(config_check(&f->c, &err), -EINVAL);
    assert_non_null(strstr(err, "domain-zero-dynamic-min"));
    free(err);
    f->c.dom0_dynamic_max_bytes = 4096;
    assert_int_equal(config_check(&f->c, &err), 0);

    f->c.clock = CONFIG_CLOCK_VIRTUAL;
    assert_int_equal(config_check(&f->c, &err), -EINVAL);
    assert_non_null(strstr(err, "--backend sim"));
    free(err);

    f->c.backend = CONFIG_BACKEND_SIM;
    assert_int_equal(config_check(&f->c, &err), -EINVAL);
    assert_non_null(strstr(err, "scenarios/demo.json"));
    free(err);
    f->c.scenario_path = xstrdup("x.json");
    assert_int_equal(config_check(&f->c, &err), 0);
}

static void test_number_parsers_are_strict(void **state)
{
    (void)state;
    int64_t n;
    double d;
    bool b;
    assert_int_equal(parse_int64("42", 0, 100, &n), 0);
    assert_int_equal(n, 42);
    assert_int_equal(parse_int64("42 ", 0, 100, &n), -EINVAL);
    assert_int_equal(parse_int64("0x10", 0, 100, &n), -EINVAL);
    assert_int_equal(parse_int64("101", 0, 100, &n), -ERANGE);
    assert_int_equal(parse_int64("9223372036854775808", 0, INT64_MAX, &n), -ERANGE);
    assert_int_equal(config_parse_double("0.5", 0, 1, &d), 0);
    assert_true(d == 0.5);
    assert_int_equal(config_parse_double("0", 0, 1, &d), -EINVAL);
    assert_int_equal(config_parse_double("1.5s", 0, 10, &d), -EINVAL);
    assert_int_equal(config_parse_double("1e400", 0, INFINITY, &d), -EINVAL);
    assert_int_equal(config_parse_bool("Yes", &b), 0);
    assert_true(b);
    assert_int_equal(config_parse_bool("off", &b), 0);
    assert_false(b);
    assert_int_equal(config_parse_bool("2", &b), -EINVAL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_file_sets_every_key),
        T(test_bad_value_names_file_line_and_key),
        T(test_bad_values_are_refused),
        T(test_listen_is_loopback_only),
        T(test_unknown_keys_warn_but_load),
        T(test_lines_without_equals_are_refused),
        T(test_missing_file_is_an_error),
        T(test_options_override_the_file),
        T(test_none_disables_a_listener),
        T(test_checks_across_keys),
        T(test_number_parsers_are_strict),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
