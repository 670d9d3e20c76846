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
#include <sys/stat.h>
#include <syslog.h>
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
    assert_int_equal(f->c.balance_threshold_kib, 65536);
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
                             "balance-threshold-kib = 0\n"
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
    assert_int_equal(f->c.balance_threshold_kib, 0);
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
        {"balance-threshold-kib", "-1"},
        {"balance-threshold-kib", "64M"},
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
    assert_int_equal(load(f, "colour = blue\ninventory=/etc/inventory\n"
                             "reserved-host-memory-kib = 2048\n"),
                     0);
    assert_non_null(f->warn);
    assert_non_null(strstr(f->warn, ":1: unknown key 'colour' (ignored)"));
    assert_non_null(strstr(f->warn, ":2: inventory: accepted and ignored"));
    assert_int_equal(f->c.reserved_host_kib, 2048);
}

/* xapi's squeezed.conf as ocaml/squeezed/scripts/squeezed.conf ships it, with its
 * commented keys switched on: it loads, and only the keys that mean nothing here are
 * warned about. */
static void test_stock_squeezed_conf_loads(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "# Configuration file for squeezed\n\n"
                             "log=syslog:squeezed\n"
                             "pidfile=/var/run/squeezed.pid\n"
                             "disable-logging-for=http\n"
                             "balance-check-interval=10\n"
                             "manage-domain-zero=false\n"
                             "domain-zero-dynamic-min = 1073741824\n"
                             "domain-zero-dynamic-max = auto\n"),
                     0);
    assert_string_equal(f->c.pidfile_path, "/var/run/squeezed.pid");
    assert_true(f->c.balance_interval_s == 10.0);
    assert_int_equal(f->c.dom0_dynamic_min_bytes, 1073741824);
    assert_int_equal(f->c.dom0_dynamic_max_bytes, -1);
    assert_non_null(f->warn);
    assert_non_null(strstr(f->warn, ":5: disable-logging-for: accepted and ignored"));
    /* one line of warning: log and pidfile are understood */
    size_t lines = 0;
    for (const char *p = f->warn; *p != '\0'; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1);
}

static void test_dom0_max_auto(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "domain-zero-dynamic-max = 2147483648\n"), 0);
    assert_int_equal(f->c.dom0_dynamic_max_bytes, 2147483648);
    assert_int_equal(load(f, "domain-zero-dynamic-max = auto\n"), 0);
    assert_int_equal(f->c.dom0_dynamic_max_bytes, -1);
    assert_int_equal(load(f, "domain-zero-dynamic-min = auto\n"), -EINVAL);
    assert_int_equal(load(f, "domain-zero-dynamic-max = Auto\n"), -EINVAL);
    assert_non_null(strstr(f->err, "'auto' or a whole number"));
}

static void test_common_keys(void **state)
{
    struct fixture *f = *state;
    assert_null(f->c.pidfile_path);
    assert_int_equal(f->c.log_max_pri, -1);
    assert_int_equal(f->c.daemonize, -1);
    assert_string_equal(f->c.config_dir, CONFIG_DEFAULT_DIR);
    assert_int_equal(load(f, "pidfile = /run/sq.pid\nloglevel = warning\ndaemon = false\n"
                             "config-dir = /tmp/frag.d\nlog = syslog:daemon\n"),
                     0);
    assert_null(f->warn);
    assert_string_equal(f->c.pidfile_path, "/run/sq.pid");
    assert_int_equal(f->c.log_max_pri, LOG_WARNING);
    assert_int_equal(f->c.daemonize, 0);
    assert_string_equal(f->c.config_dir, "/tmp/frag.d");
    assert_int_equal(load(f, "loglevel = DEBUG\ndaemon = true\n"), 0);
    assert_int_equal(f->c.log_max_pri, LOG_DEBUG);
    assert_int_equal(f->c.daemonize, 1);

    assert_int_equal(load(f, "loglevel = chatty\n"), -EINVAL);
    assert_non_null(strstr(f->err, ":1: loglevel = 'chatty'"));
    assert_int_equal(load(f, "pidfile =\n"), -EINVAL);
    assert_int_equal(load(f, "daemon = maybe\n"), -EINVAL);
    /* a log destination other than syslog: a warning, not a stop */
    assert_int_equal(load(f, "log = file:/tmp/x.log\n"), 0);
    assert_non_null(strstr(f->warn, "only syslog is supported"));

    static const char *const names[] = {"emergency", "alert", "critical", "error", "err",
                                        "warning",   "warn",  "notice",   "info",  "debug"};
    static const int pris[] = {LOG_EMERG,   LOG_ALERT,   LOG_CRIT,   LOG_ERR,  LOG_ERR,
                               LOG_WARNING, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int pri = -1;
        assert_int_equal(config_parse_loglevel(names[i], &pri), 0);
        assert_int_equal(pri, pris[i]);
    }
}

static void test_ignored_keys_warn_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, "inventory = /etc/xensource-inventory\nconfig = /etc/x.conf\n"
                             "disable-logging-for = http\nsearch-path = /opt/xensource/bin\n"
                             "disable-logging-for = xenops\n"),
                     0);
    assert_non_null(strstr(f->warn, ":1: inventory: accepted and ignored"));
    assert_non_null(strstr(f->warn, ":2: config: accepted and ignored"));
    assert_non_null(strstr(f->warn, ":3: disable-logging-for: accepted and ignored"));
    assert_non_null(strstr(f->warn, ":4: search-path: accepted and ignored"));
    assert_null(strstr(f->warn, ":5:"));
    /* the same config read again (a fragment): still no second warning */
    assert_int_equal(load(f, "disable-logging-for = http\n"), 0);
    assert_null(f->warn);
    assert_non_null(config_origin(&f->c, "disable-logging-for"));
    /* use-switch and switch-path are real keys now (the message-switch transport) */
    assert_int_equal(load(f, "use-switch = true\nswitch-path = /var/run/message-switch/sock\n"),
                     0);
    assert_null(f->warn);
}

/* xcp_service.ml: "defaults < arguments < config file". */
static void test_file_wins_over_the_command_line(void **state)
{
    struct fixture *f = *state;
    write_file(f, "reserved-host-memory-kib = 2048\nbalance-check-interval = 5\n");
    const struct config_override ov[] = {
        {"reserved-host-memory-kib", "4096", "--reserved-host-memory-kib"},
        {"listen", "127.0.0.1:0", "--listen"},
        {"loglevel", "debug", "-v"},
    };
    free(f->c.config_dir);
    f->c.config_dir = NULL;
    assert_int_equal(config_apply(&f->c, ov, 3, f->path, true, &f->err, &f->warn), 0);
    assert_int_equal(f->c.reserved_host_kib, 2048); /* the file's */
    assert_int_equal(f->c.listen_port, 0);          /* the option's: the file is silent */
    assert_int_equal(f->c.log_max_pri, LOG_DEBUG);
    assert_true(f->c.balance_interval_s == 5.0);
    assert_non_null(f->warn);
    char *want =
        xasprintf("option --reserved-host-memory-kib 4096: overridden by %s:1", f->path);
    assert_non_null(strstr(f->warn, want));
    free(want);
    assert_null(strstr(f->warn, "--listen"));
    assert_string_equal(config_origin(&f->c, "listen"), "option --listen");
    assert_null(config_origin(&f->c, "socket"));
}

static void test_bad_option_is_an_error(void **state)
{
    struct fixture *f = *state;
    const struct config_override ov[] = {{"loglevel", "loud", "--loglevel"}};
    assert_int_equal(config_apply(&f->c, ov, 1, NULL, false, &f->err, &f->warn), -EINVAL);
    assert_non_null(strstr(f->err, "option --loglevel: loglevel = 'loud'"));
}

/* The default file is read only when it exists; -f's must exist. */
static void test_default_file_only_if_present(void **state)
{
    struct fixture *f = *state;
    free(f->c.config_dir);
    f->c.config_dir = NULL;
    assert_int_equal(config_load(&f->c, "/nonexistent/squeezed.conf", false, &f->err, &f->warn),
                     0);
    assert_int_equal(config_load(&f->c, "/nonexistent/squeezed.conf", true, &f->err, &f->warn),
                     -ENOENT);
    free(f->err);
    f->err = NULL;
    write_file(f, "reserved-host-memory-kib = 1234\n");
    assert_int_equal(config_load(&f->c, f->path, false, &f->err, &f->warn), 0);
    assert_int_equal(f->c.reserved_host_kib, 1234);
}

static void write_at(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* config-dir: fragments after the file, in name order, dot-files skipped; the file may
 * name the directory. */
static void test_config_dir_fragments(void **state)
{
    struct fixture *f = *state;
    char dir[] = "/tmp/squeezed-test-confd.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *a = xasprintf("%s/10-a.conf", dir), *b = xasprintf("%s/20-b.conf", dir);
    char *h = xasprintf("%s/.hidden", dir), *sub = xasprintf("%s/30-dir", dir);
    write_at(b, "reserved-host-memory-kib = 3000\nbalance-check-interval = 7\n");
    write_at(a, "reserved-host-memory-kib = 2000\npoll-interval-s = 0.5\n");
    write_at(h, "reserved-host-memory-kib = 9999\n");
    assert_int_equal(mkdir(sub, 0700), 0);
    char *text = xasprintf("config-dir = %s\nreserved-host-memory-kib = 1000\n"
                           "balance-check-interval = 3\n",
                           dir);
    write_file(f, text);
    free(text);
    assert_int_equal(config_load(&f->c, f->path, true, &f->err, &f->warn), 0);
    assert_int_equal(f->c.reserved_host_kib, 3000); /* 20-b.conf, read last */
    assert_true(f->c.balance_interval_s == 7.0);
    assert_true(f->c.poll_interval_s == 0.5);
    char *want = xasprintf("%s:1", b);
    assert_string_equal(config_origin(&f->c, "reserved-host-memory-kib"), want);
    free(want);
    /* a bad fragment stops the load, naming it */
    write_at(a, "reserved-host-memory-kib = lots\n");
    assert_int_equal(config_load(&f->c, f->path, true, &f->err, &f->warn), -EINVAL);
    assert_non_null(strstr(f->err, "10-a.conf:1"));
    unlink(a);
    unlink(b);
    unlink(h);
    rmdir(sub);
    rmdir(dir);
    free(a);
    free(b);
    free(h);
    free(sub);
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

static void test_config_set_replaces_a_value(void **state)
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

/* use-switch, switch-path, xml-socket: upstream's names and defaults; the backend decides
 * the default transport; the sim takes the XML-RPC socket only when it is given. */
static void test_toolstack_transports(void **state)
{
    struct fixture *f = *state;
    assert_true(config_use_switch(&f->c)); /* xen */
    assert_string_equal(f->c.switch_path, "/var/run/message-switch/sock");
    assert_string_equal(f->c.xml_socket_path, "/var/xapi/memory");
    assert_null(config_xml_socket(&f->c));
    assert_int_equal(load(f, "use-switch = false\n"), 0);
    assert_string_equal(config_xml_socket(&f->c), "/var/xapi/memory");
    assert_int_equal(load(f, "backend = sim\nscenario = x.json\n"), 0);
    assert_false(config_use_switch(&f->c)); /* use-switch false from before */
    assert_null(config_xml_socket(&f->c));  /* sim: not unless given */
    assert_int_equal(load(f, "xml-socket = /tmp/m\nswitch-path = /tmp/s\n"), 0);
    assert_string_equal(config_xml_socket(&f->c), "/tmp/m");
    assert_string_equal(f->c.switch_path, "/tmp/s");
    assert_int_equal(config_set(&f->c, "use-switch", "true", "option --use-switch", &f->err),
                     0);
    assert_true(config_use_switch(&f->c));
    assert_null(config_xml_socket(&f->c)); /* one or the other, as upstream */
    assert_int_equal(config_set(&f->c, "use-switch", "maybe", "option --use-switch", &f->err),
                     -EINVAL);
    assert_non_null(strstr(f->err, "use-switch"));
    assert_int_equal(config_set(&f->c, "use-switch", "false", "o", &f->err), 0);
    assert_int_equal(config_set(&f->c, "xml-socket", "none", "o", &f->err), 0);
    assert_null(config_xml_socket(&f->c));
    free(f->err);
    f->err = NULL;
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
        T(test_config_set_replaces_a_value),
        T(test_stock_squeezed_conf_loads),
        T(test_dom0_max_auto),
        T(test_common_keys),
        T(test_ignored_keys_warn_once),
        T(test_file_wins_over_the_command_line),
        T(test_bad_option_is_an_error),
        T(test_default_file_only_if_present),
        T(test_config_dir_fragments),
        T(test_none_disables_a_listener),
        T(test_checks_across_keys),
        T(test_number_parsers_are_strict),
        T(test_toolstack_transports),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
