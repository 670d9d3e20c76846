/* SPDX-License-Identifier: LGPL-2.1-only */
/* The simulated Xen host: balloons, clock, xenstore, watches, scenarios, persistence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim.h"
#include "common/log.h"
#include "common/xalloc.h"

#define MIB 1024
#define GIB (1024 * 1024)

/* ---- helpers ---- */

/* The worlds a test made with world() or one_guest(), its cmocka state: world_teardown
 * frees them, also after a failed assertion. */
#define WORLDS_MAX 4

struct worlds {
    struct sim *open[WORLDS_MAX];
};

static int world_setup(void **state)
{
    *state = xcalloc(1, sizeof(struct worlds));
    return 0;
}

static int world_teardown(void **state)
{
    struct worlds *ws = *state;
    for (size_t i = 0; i < WORLDS_MAX; i++)
        sim_free(ws->open[i]);
    free(ws);
    return 0;
}

/* A world on the virtual clock from scenario text, kept in the test's worlds (state NULL:
 * the caller's, e.g. to hand to a backend); fails the test on a bad scenario. */
static struct sim *world(void **state, const char *json)
{
    struct worlds *ws = state != NULL ? *state : NULL;
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    size_t slot = 0;
    while (ws != NULL && slot < WORLDS_MAX && ws->open[slot] != NULL)
        slot++;
    if (ws != NULL && slot == WORLDS_MAX)
        fail_msg("more than %d worlds in one test", WORLDS_MAX);
    if (sim_scenario_parse(json, &sc, &err) < 0)
        fail_msg("scenario refused: %s", err);
    struct sim *s = sim_new(sc, SIM_CLOCK_VIRTUAL, &err);
    sim_scenario_free(sc);
    if (s == NULL)
        fail_msg("sim_new refused: %s", err);
    if (ws != NULL)
        ws->open[slot] = s;
    return s;
}

/* One guest (domid 1) with the given extra domain fields and a roomy host. */
static struct sim *one_guest(void **state, const char *fields)
{
    char *json = xasprintf("{\"host\": {\"total_kib\": 16777216, \"free_kib\": 4194304},"
                           " \"domains\": [{\"domid\": 1, %s}]}",
                           fields);
    struct sim *s = world(state, json);
    free(json);
    return s;
}

static int64_t actual_of(struct sim *s, uint32_t domid)
{
    int64_t a, t, m;
    assert_int_equal(sim_domain_memory(s, domid, &a, &t, &m), 0);
    return a;
}

static int64_t maxmem_of(struct sim *s, uint32_t domid)
{
    int64_t a, t, m;
    assert_int_equal(sim_domain_memory(s, domid, &a, &t, &m), 0);
    return m;
}

static void set_target(struct sim *s, uint32_t domid, int64_t kib)
{
    char path[64], val[32];
    snprintf(path, sizeof(path), "/local/domain/%u/memory/target", domid);
    snprintf(val, sizeof(val), "%lld", (long long)kib);
    assert_int_equal(sim_xs_write(s, path, val), 0);
}

static bool has_key(struct sim *s, uint32_t domid, const char *rel)
{
    char path[128];
    snprintf(path, sizeof(path), "/local/domain/%u/%s", domid, rel);
    return sim_xs_exists(s, path);
}

static char *read_key(struct sim *s, const char *path)
{
    char *v = NULL;
    assert_int_equal(sim_xs_read(s, path, &v), 0);
    return v;
}

static void assert_key(struct sim *s, const char *path, const char *want)
{
    char *v = read_key(s, path);
    assert_string_equal(v, want);
    free(v);
}

static void assert_no_violations(struct sim *s)
{
    size_t n = sim_violation_count(s);
    for (size_t i = 0; i < n; i++)
        print_message("violation: %s\n", sim_violation(s, i));
    assert_int_equal(n, 0);
}

/* The violations whose text contains `kind`. */
static size_t violations_of(struct sim *s, const char *kind)
{
    size_t k = 0;
    for (size_t i = 0; i < sim_violation_count(s); i++)
        if (strstr(sim_violation(s, i), kind) != NULL)
            k++;
    return k;
}

/* Take the next watch event and check it. */
static void expect_event(struct sim *s, const char *path, const char *token)
{
    struct backend_watch_event ev = {0};
    int rc = sim_xs_read_watch(s, &ev);
    if (rc != 1)
        fail_msg("expected event %s (%s), read_watch returned %d", path, token, rc);
    assert_string_equal(ev.path, path);
    assert_string_equal(ev.token, token);
    backend_watch_event_clear(&ev);
}

static void expect_no_event(struct sim *s)
{
    struct backend_watch_event ev = {0};
    int rc = sim_xs_read_watch(s, &ev);
    if (rc == 1)
        fail_msg("unexpected event %s (%s)", ev.path, ev.token);
    assert_int_equal(rc, 0);
}

static void drain_events(struct sim *s)
{
    struct backend_watch_event ev = {0};
    while (sim_xs_read_watch(s, &ev) == 1)
        backend_watch_event_clear(&ev);
}

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static char *state_text(struct sim *s)
{
    json_t *j = sim_state_json(s);
    char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return t;
}

static int setup(void **state)
{
    (void)state;
    log_quiet(true);
    return 0;
}

/* ---- shared helpers of backend.h ---- */

static void test_domain_types(void **state)
{
    (void)state;
    enum domain_type t;
    assert_int_equal(domain_type_xen_offset_kib(DOMAIN_TYPE_HVM), 1024);
    assert_int_equal(domain_type_xen_offset_kib(DOMAIN_TYPE_PVINPVH), 1024);
    assert_int_equal(domain_type_xen_offset_kib(DOMAIN_TYPE_PV), 0);
    const enum domain_type all[] = {DOMAIN_TYPE_PV, DOMAIN_TYPE_HVM, DOMAIN_TYPE_PVINPVH};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(domain_type_parse(domain_type_name(all[i]), &t), 0);
        assert_int_equal(t, all[i]);
    }
    assert_string_equal(domain_type_name(DOMAIN_TYPE_PVINPVH), "pvinpvh");
    assert_int_equal(domain_type_parse("kvm", &t), -EINVAL);
    assert_int_equal(domain_type_parse(NULL, &t), -EINVAL);
    char *p = backend_domain_path(42);
    assert_string_equal(p, "/local/domain/42");
    free(p);
    backend_strv_free(NULL, 0);
    backend_watch_event_clear(NULL);
    backend_close(NULL);
}

/* ---- scenarios ---- */

static void test_scenario_defaults(void **state)
{
    (void)state;
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    assert_int_equal(sim_scenario_parse("{\"domains\": [{\"domid\": 3}, {\"domid\": 4, "
                                        "\"initial_reservation_kib\": 524288}]}",
                                        &sc, &err),
                     0);
    assert_int_equal(sc->host.total_kib, 16777216);
    assert_int_equal(sc->host.free_kib, 1048576);
    assert_int_equal(sc->host.scrub_kib, 0);
    assert_int_equal(sc->n_domains, 2);
    const struct sim_domain_spec *d = &sc->domains[0];
    assert_int_equal(d->domid, 3);
    assert_int_equal(d->type, DOMAIN_TYPE_HVM);
    assert_int_equal(d->target_kib, 1048576);
    assert_int_equal(d->dynamic_min_kib, 1048576);
    assert_int_equal(d->dynamic_max_kib, 1048576);
    assert_int_equal(d->actual_kib, 1048576);
    assert_int_equal(d->maxmem_kib, 1048576);
    assert_int_equal(d->memory_offset_kib, 0);
    assert_int_equal(d->initial_reservation_kib, 0);
    assert_true(d->boot_after_s == 0);
    assert_int_equal(d->balloon.model, SIM_BALLOON_IDEAL);
    assert_true(d->balloon.rate_kib_s == 262144);
    assert_int_equal(d->balloon.stop_short_kib, 0);
    assert_true(d->balloon.period_s == 10);
    /* With an initial reservation: target follows it, the domain starts empty. */
    d = &sc->domains[1];
    assert_int_equal(d->target_kib, 524288);
    assert_int_equal(d->actual_kib, 0);
    assert_int_equal(d->maxmem_kib, 524288);
    assert_int_equal(d->dynamic_min_kib, 524288);

    struct sim_domain_spec def;
    sim_domain_spec_default(&def, 3);
    assert_int_equal(def.domid, 3);
    assert_int_equal(def.target_kib, sc->domains[0].target_kib);
    assert_int_equal(def.balloon.model, SIM_BALLOON_IDEAL);
    assert_true(def.balloon.rate_kib_s == 262144);
    sim_scenario_free(sc);

    /* Given fields drive the defaults of the others. */
    assert_int_equal(sim_scenario_parse("{\"name\": \"x\", \"domains\": [{\"domid\": 1, "
                                        "\"target_kib\": 2000, \"type\": \"pv\"}]}",
                                        &sc, &err),
                     0);
    assert_string_equal(sc->name, "x");
    assert_int_equal(sc->domains[0].type, DOMAIN_TYPE_PV);
    assert_int_equal(sc->domains[0].dynamic_min_kib, 2000);
    assert_int_equal(sc->domains[0].dynamic_max_kib, 2000);
    assert_int_equal(sc->domains[0].actual_kib, 2000);
    assert_int_equal(sc->domains[0].maxmem_kib, 2000);
    sim_scenario_free(sc);
    sim_scenario_free(NULL);
}

static void test_scenario_spec_example_parses(void **state)
{
    (void)state;
    /* The example of SPEC 6.1, verbatim. */
    const char *text =
        "{ \"name\": \"two-guests\",\n"
        "  \"host\": { \"total_kib\": 16777216, \"free_kib\": 1048576, \"scrub_kib\": 0 },\n"
        "  \"domains\": [\n"
        "    { \"domid\": 1, \"type\": \"hvm\",\n"
        "      \"dynamic_min_kib\": 1000, \"dynamic_max_kib\": 2000,\n"
        "      \"target_kib\": 1500, \"actual_kib\": 1500, \"maxmem_kib\": 1500,\n"
        "      \"memory_offset_kib\": 0, \"boot_after_s\": 0,\n"
        "      \"balloon\": { \"model\": \"ideal\", \"rate_kib_s\": 100, "
        "\"stop_short_kib\": 4 } } ] }";
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    assert_int_equal(sim_scenario_parse(text, &sc, &err), 0);
    assert_string_equal(sc->name, "two-guests");
    assert_int_equal(sc->domains[0].dynamic_min_kib, 1000);
    assert_true(sc->domains[0].balloon.rate_kib_s == 100);
    assert_int_equal(sc->domains[0].balloon.stop_short_kib, 4);
    sim_scenario_free(sc);
}

struct bad_case {
    const char *json;
    const char *want; /* the error must start with this */
};

static void test_scenario_errors_name_the_field(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"{\"domains\": [{\"domid\": 1}, {\"domid\": 2, \"balloon\": {\"model\": \"fast\"}}]}",
         "domains[1].balloon.model: unknown model 'fast' (expected ideal, floor, ceiling, "
         "stuck, intermittent, none)"},
        {"{\"hosts\": {}}", "hosts: unknown field"},
        {"{\"name\": 3}", "name: expected a string"},
        {"[]", "(top level): "},
        {"{\"domains\": {}}", "domains: expected an array"},
        {"{\"domains\": [3]}", "domains[0]: expected an object"},
        {"{\"domains\": [{\"domid\": 1, \"tagret_kib\": 5}]}",
         "domains[0].tagret_kib: unknown field"},
        {"{\"domains\": [{\"domid\": 1, \"target_kib\": 1.5}]}",
         "domains[0].target_kib: expected an integer"},
        {"{\"domains\": [{\"domid\": 1, \"target_kib\": 1e6}]}",
         "domains[0].target_kib: expected an integer"},
        {"{\"domains\": [{\"domid\": \"1\"}]}", "domains[0].domid: expected an integer"},
        {"{\"domains\": [{\"domid\": 1.0}]}", "domains[0].domid: expected an integer"},
        {"{\"domains\": [{\"target_kib\": 5}]}", "domains[0].domid: missing"},
        {"{\"domains\": [{\"domid\": 32752}]}", "domains[0].domid: 32752 out of range"},
        {"{\"domains\": [{\"domid\": -1}]}", "domains[0].domid: -1 out of range"},
        {"{\"domains\": [{\"domid\": 1}, {\"domid\": 1}]}",
         "domains[1].domid: duplicate domid 1"},
        {"{\"domains\": [{\"domid\": 1, \"actual_kib\": -5}]}",
         "domains[0].actual_kib: negative size -5"},
        {"{\"domains\": [{\"domid\": 1, \"memory_offset_kib\": -1}]}",
         "domains[0].memory_offset_kib: negative"},
        {"{\"domains\": [{\"domid\": 1, \"target_kib\": 4611686018427387904}]}",
         "domains[0].target_kib: 4611686018427387904 KiB is absurdly large"},
        {"{\"domains\": [{\"domid\": 1, \"dynamic_min_kib\": 2000, "
         "\"dynamic_max_kib\": 1000}]}",
         "domains[0].dynamic_min_kib: 2000 is above dynamic_max_kib 1000"},
        {"{\"domains\": [{\"domid\": 1, \"type\": \"kvm\"}]}",
         "domains[0].type: unknown type 'kvm'"},
        {"{\"domains\": [{\"domid\": 1, \"type\": \"pv\", \"actual_kib\": 3000, "
         "\"maxmem_kib\": 2000}]}",
         "domains[0].actual_kib: 3000 is above maxmem_kib 2000"},
        {"{\"domains\": [{\"domid\": 1, \"initial_reservation_kib\": 5000, "
         "\"maxmem_kib\": 2000}]}",
         "domains[0].initial_reservation_kib: 5000 is above maxmem_kib 2000"},
        {"{\"domains\": [{\"domid\": 1, \"boot_after_s\": -1}]}",
         "domains[0].boot_after_s: must be a number >= 0"},
        {"{\"domains\": [{\"domid\": 1, \"boot_after_s\": \"soon\"}]}",
         "domains[0].boot_after_s: expected a number"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": 3}]}",
         "domains[0].balloon: expected an object"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"model\": 3}}]}",
         "domains[0].balloon.model: expected a string"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"rate_kib_s\": 0}}]}",
         "domains[0].balloon.rate_kib_s: must be a positive number"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"rate_kib_s\": -3}}]}",
         "domains[0].balloon.rate_kib_s: must be a positive number"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"model\": \"intermittent\", "
         "\"period_s\": 0}}]}",
         "domains[0].balloon.period_s: must be a positive number"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"floor_kib\": 10}}]}",
         "domains[0].balloon.floor_kib: only for model floor (model is ideal)"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"ceiling_kib\": 10, "
         "\"model\": \"floor\"}}]}",
         "domains[0].balloon.ceiling_kib: only for model ceiling (model is floor)"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"period_s\": 10}}]}",
         "domains[0].balloon.period_s: only for model intermittent"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"stop_short_kib\": -4}}]}",
         "domains[0].balloon.stop_short_kib: negative"},
        {"{\"domains\": [{\"domid\": 1, \"balloon\": {\"speed\": 4}}]}",
         "domains[0].balloon.speed: unknown field"},
        {"{\"host\": {\"used_kib\": 3}}", "host.used_kib: unknown field"},
        {"{\"host\": {\"free_kib\": -3}}", "host.free_kib: negative"},
        {"{\"host\": {\"total_kib\": \"big\"}}", "host.total_kib: expected an integer"},
        {"{\"host\": 5}", "host: expected an object"},
        {"{\"host\": {\"total_kib\": 1000, \"free_kib\": 2000}}",
         "host.free_kib: free_kib 2000 + scrub_kib 0 is more than total_kib 1000"},
        {"{\"host\": {\"total_kib\": 3000000, \"free_kib\": 1000000}, \"domains\": "
         "[{\"domid\": 1}, {\"domid\": 2}]}",
         "domains: the domains hold 2097152 KiB"},
        {"{\"domains\": [", "line 1, column"},
        {"{\"name\": \"a\", \"name\": \"b\"}", "line 1, column"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sim_scenario *sc = NULL;
        char *err = NULL;
        int rc = sim_scenario_parse(cases[i].json, &sc, &err);
        if (rc != -EINVAL)
            fail_msg("case %zu (%s): accepted (rc %d)", i, cases[i].json, rc);
        assert_null(sc);
        assert_non_null(err);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].want);
        free(err);
    }
}

static void test_scenario_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_sim_scenario_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "{\"domains\": [{\"domid\": 7, \"balloon\": {\"model\": \"nope\"}}]}";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    assert_int_equal(sim_scenario_load(path, &sc, &err), -EINVAL);
    /* The field is named (the caller names the file). */
    assert_true(strncmp(err, "domains[0].balloon.model: unknown model 'nope'", 46) == 0);
    free(err);
    unlink(path);

    err = NULL;
    assert_int_equal(sim_scenario_load("/nonexistent/scenario.json", &sc, &err), -ENOENT);
    assert_string_equal(err, strerror(ENOENT));
    free(err);

    assert_int_equal(sim_scenario_load("scenarios/demo.json", &sc, &err), 0);
    assert_true(sc->n_domains >= 12);
    sim_scenario_free(sc);
}

static void test_domain_spec_from_json(void **state)
{
    (void)state;
    struct sim_domain_spec d;
    char *err = NULL;
    json_t *o =
        json_pack("{s:i, s:s, s:i, s:{s:s, s:i}}", "domid", 9, "type", "pvinpvh", "target_kib",
                  4096, "balloon", "model", "ceiling", "ceiling_kib", 5000);
    assert_int_equal(sim_domain_spec_from_json(o, "params", &d, &err), 0);
    assert_int_equal(d.domid, 9);
    assert_int_equal(d.type, DOMAIN_TYPE_PVINPVH);
    assert_int_equal(d.maxmem_kib, 4096);
    assert_int_equal(d.balloon.model, SIM_BALLOON_CEILING);
    assert_int_equal(d.balloon.ceiling_kib, 5000);
    json_decref(o);

    /* domid is required here too; `where` prefixes the field. */
    o = json_pack("{s:i}", "target_kib", 4096);
    assert_int_equal(sim_domain_spec_from_json(o, "params", &d, &err), -EINVAL);
    assert_string_equal(err, "params.domid: missing (every domain needs one)");
    free(err);
    json_decref(o);
    o = json_pack("{s:i, s:i}", "domid", 1, "bogus", 1);
    assert_int_equal(sim_domain_spec_from_json(o, NULL, &d, &err), -EINVAL);
    assert_true(strncmp(err, "bogus: unknown field", 20) == 0);
    free(err);
    json_decref(o);

    struct sim_balloon b;
    o = json_pack("{s:s, s:f}", "model", "intermittent", "period_s", 2.5);
    assert_int_equal(sim_balloon_from_json(o, "balloon", &b, &err), 0);
    assert_int_equal(b.model, SIM_BALLOON_INTERMITTENT);
    assert_true(b.period_s == 2.5);
    assert_true(b.rate_kib_s == 262144);
    json_decref(o);
    assert_string_equal(sim_balloon_model_name(SIM_BALLOON_INTERMITTENT), "intermittent");
    assert_string_equal(sim_balloon_model_name(SIM_BALLOON_NONE), "none");
}

static void test_sim_new_refuses_what_does_not_fit(void **state)
{
    (void)state;
    struct sim_scenario sc = {.name = "x"};
    struct sim_domain_spec d[2];
    sim_domain_spec_default(&d[0], 1);
    sim_domain_spec_default(&d[1], 2);
    sc.host.total_kib = 2 * GIB;
    sc.host.free_kib = 512 * MIB;
    sc.domains = d;
    sc.n_domains = 2;
    char *err = NULL;
    assert_null(sim_new(&sc, SIM_CLOCK_VIRTUAL, &err));
    assert_non_null(strstr(err, "domains"));
    free(err);
    d[1].domid = 1;
    sc.host.total_kib = 4 * GIB;
    assert_null(sim_new(&sc, SIM_CLOCK_VIRTUAL, &err));
    assert_non_null(strstr(err, "domains[1].domid: duplicate"));
    free(err);
    d[1].domid = 2;
    d[1].dynamic_min_kib = d[1].dynamic_max_kib + 1;
    assert_null(sim_new(&sc, SIM_CLOCK_VIRTUAL, &err));
    assert_non_null(strstr(err, "domains[1].dynamic_min_kib"));
    free(err);
}

static void test_demo_scenario_runs_cleanly(void **state)
{
    (void)state;
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    assert_int_equal(sim_scenario_load("scenarios/demo.json", &sc, &err), 0);
    struct sim *s = sim_new(sc, SIM_CLOCK_VIRTUAL, &err);
    assert_non_null(s);
    /* Something boots late, something never has a driver. */
    uint32_t booting = UINT32_MAX, driverless = UINT32_MAX;
    for (size_t i = 0; i < sc->n_domains; i++) {
        if (sc->domains[i].initial_reservation_kib > 0 || sc->domains[i].boot_after_s > 0)
            booting = sc->domains[i].domid;
        if (sc->domains[i].balloon.model == SIM_BALLOON_NONE)
            driverless = sc->domains[i].domid;
    }
    assert_int_not_equal(booting, UINT32_MAX);
    assert_int_not_equal(driverless, UINT32_MAX);
    assert_false(has_key(s, booting, "control/feature-balloon"));
    sim_advance(s, 60 * 1000);
    assert_true(has_key(s, booting, "control/feature-balloon"));
    assert_false(has_key(s, driverless, "control/feature-balloon"));
    /* A few GiB free, on a 64 GiB-ish host. */
    int64_t free_kib = sim_host_free_kib(s);
    assert_true(free_kib >= 1 * GIB && free_kib <= 8 * GIB);
    assert_no_violations(s);
    sim_scenario_free(sc);
    sim_free(s);
}

/* ---- balloon drivers ---- */

static void test_ideal_moves_at_rate(void **state)
{
    struct sim *s =
        one_guest(state, "\"type\": \"pv\", \"target_kib\": 100000, "
                         "\"maxmem_kib\": 200000, \"balloon\": {\"rate_kib_s\": 1000}");
    int64_t free0 = sim_host_free_kib(s);
    set_target(s, 1, 90000);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 99000);
    assert_int_equal(sim_host_free_kib(s), free0 + 1000);
    sim_advance(s, 2500);
    assert_int_equal(actual_of(s, 1), 96500);
    sim_advance(s, 60000);
    assert_int_equal(actual_of(s, 1), 90000);
    assert_int_equal(sim_host_free_kib(s), free0 + 10000);
    /* And up again. */
    set_target(s, 1, 95000);
    sim_advance(s, 2000);
    assert_int_equal(actual_of(s, 1), 92000);
    sim_advance(s, 10000);
    assert_int_equal(actual_of(s, 1), 95000);
    assert_int_equal(sim_host_free_kib(s), free0 + 5000);
    assert_no_violations(s);
}

static void test_slow_rate_keeps_fractional_progress(void **state)
{
    /* 3 KiB/s is 0.3 KiB per 100 ms step: it must still move. */
    struct sim *s =
        one_guest(state, "\"target_kib\": 100000, \"balloon\": {\"rate_kib_s\": 3}");
    set_target(s, 1, 0);
    sim_advance(s, 10000);
    assert_int_equal(actual_of(s, 1), 100000 - 30);
    /* Many small advances add up the same. */
    for (int i = 0; i < 100; i++)
        sim_advance(s, 10);
    assert_int_equal(actual_of(s, 1), 100000 - 33);
}

static void test_stop_short(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 100000, \"maxmem_kib\": 200000, "
                                     "\"balloon\": {\"stop_short_kib\": 4}");
    set_target(s, 1, 50000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 50004);
    set_target(s, 1, 150000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 149996);
    /* Within stop_short of the target: no movement at all. */
    set_target(s, 1, 149998);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 149996);
}

static void test_floor_model(void **state)
{
    struct sim *s =
        one_guest(state, "\"target_kib\": 100000, \"maxmem_kib\": 200000, "
                         "\"balloon\": {\"model\": \"floor\", \"floor_kib\": 80000}");
    set_target(s, 1, 50000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 80000);
    set_target(s, 1, 120000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 120000);
    set_target(s, 1, 90000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 90000);
}

static void test_ceiling_model(void **state)
{
    struct sim *s =
        one_guest(state, "\"target_kib\": 100000, \"maxmem_kib\": 200000, "
                         "\"balloon\": {\"model\": \"ceiling\", \"ceiling_kib\": 110000}");
    set_target(s, 1, 150000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 110000);
    set_target(s, 1, 60000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 60000);
    assert_no_violations(s);
}

static void test_stuck_and_none_never_move(void **state)
{
    struct sim *s =
        world(state, "{\"host\": {\"total_kib\": 16777216, \"free_kib\": 4194304}, "
                     "\"domains\": [{\"domid\": 1, \"balloon\": {\"model\": \"stuck\"}},"
                     " {\"domid\": 2, \"balloon\": {\"model\": \"none\"}}]}");
    set_target(s, 1, 500000);
    set_target(s, 2, 500000);
    sim_advance(s, 60000);
    assert_int_equal(actual_of(s, 1), 1048576);
    assert_int_equal(actual_of(s, 2), 1048576);
    /* stuck has a driver (it announced itself), none has not. */
    assert_true(has_key(s, 1, "control/feature-balloon"));
    assert_false(has_key(s, 2, "control/feature-balloon"));
    assert_true(has_key(s, 2, "data/updated"));
}

static void test_intermittent_periods(void **state)
{
    struct sim *s =
        one_guest(state, "\"target_kib\": 100000, \"balloon\": {\"model\": "
                         "\"intermittent\", \"period_s\": 2, \"rate_kib_s\": 1000}");
    set_target(s, 1, 0);
    sim_advance(s, 2000); /* [0, 2): moving */
    assert_int_equal(actual_of(s, 1), 98000);
    sim_advance(s, 2000); /* [2, 4): stuck */
    assert_int_equal(actual_of(s, 1), 98000);
    sim_advance(s, 1000); /* [4, 5): moving */
    assert_int_equal(actual_of(s, 1), 97000);
    sim_advance(s, 1050); /* [5, 6.05): 1 s moving, 0.05 s stuck */
    assert_int_equal(actual_of(s, 1), 96000);
    sim_advance(s, 10000); /* [6.05, 16.05): active in [8,10), [12,14), [16, 16.05) */
    assert_int_equal(actual_of(s, 1), 96000 - 4050);
}

/* A world at rest skips time in one go; any change that matters wakes the driver. */
static void test_idle_world_wakes_on_change(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 100000, \"maxmem_kib\": 200000, "
                                     "\"balloon\": {\"rate_kib_s\": 1000}");
    sim_advance(s, 3600 * 1000);
    assert_int_equal(sim_now_ms(s), 3600 * 1000);
    assert_int_equal(actual_of(s, 1), 100000);
    /* No target: the driver has nothing to follow. */
    assert_int_equal(sim_xs_rm(s, "/local/domain/1/memory/target"), 0);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 100000);
    set_target(s, 1, 99000);
    sim_advance(s, 500);
    assert_int_equal(actual_of(s, 1), 99500);
    sim_advance(s, 3600 * 1000);
    assert_int_equal(actual_of(s, 1), 99000);
    /* The target goes with its directory, then comes back. */
    assert_int_equal(sim_xs_rm(s, "/local/domain/1/memory"), 0);
    assert_int_equal(sim_xs_write(s, "/local/domain/1/memory/target", "98000"), 0);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 98000);
    /* Unparsable targets are ignored. */
    assert_int_equal(sim_xs_write(s, "/local/domain/1/memory/target", "lots"), 0);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 98000);
    assert_int_equal(sim_xs_write(s, "/local/domain/1/memory/target", "97000"), 0);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 97000);
    /* Raising maxmem lets a guest that was capped go on. */
    set_target(s, 1, 200000);
    assert_int_equal(sim_set_maxmem(s, 1, 98000 + 1024), 0);
    sim_advance(s, 60000);
    assert_int_equal(actual_of(s, 1), 99024);
    assert_int_equal(sim_set_maxmem(s, 1, 200000 + 1024), 0);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 100024);
}

static void test_boot_after(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 100000, \"boot_after_s\": 2.5, "
                                     "\"balloon\": {\"rate_kib_s\": 1000}");
    assert_false(has_key(s, 1, "control/feature-balloon"));
    assert_false(has_key(s, 1, "data/updated"));
    set_target(s, 1, 90000);
    sim_advance(s, 2400);
    assert_false(has_key(s, 1, "control/feature-balloon"));
    /* Not booted: no driver to move anything yet. */
    assert_int_equal(actual_of(s, 1), 100000);
    sim_advance(s, 100);
    assert_true(has_key(s, 1, "control/feature-balloon"));
    assert_true(has_key(s, 1, "data/updated"));
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 99000);
}

static void test_initial_reservation_allocation(void **state)
{
    struct sim *s = one_guest(state, "\"type\": \"pv\", \"initial_reservation_kib\": 10000, "
                                     "\"balloon\": {\"rate_kib_s\": 1000}");
    int64_t free0 = sim_host_free_kib(s);
    assert_int_equal(actual_of(s, 1), 0);
    assert_key(s, "/local/domain/1/memory/initial-reservation", "10000");
    assert_key(s, "/local/domain/1/memory/target", "10000");
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 5000);
    assert_int_equal(sim_host_free_kib(s), free0 - 5000);
    assert_false(has_key(s, 1, "control/feature-balloon"));
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 10000);
    assert_true(has_key(s, 1, "control/feature-balloon"));

    /* Allocation done at 10 s, boot not before 20 s. */
    s = one_guest(state, "\"type\": \"pv\", \"initial_reservation_kib\": 10000, "
                         "\"boot_after_s\": 20, \"balloon\": {\"rate_kib_s\": 1000}");
    sim_advance(s, 19900);
    assert_int_equal(actual_of(s, 1), 10000);
    assert_false(has_key(s, 1, "control/feature-balloon"));
    sim_advance(s, 100);
    assert_true(has_key(s, 1, "control/feature-balloon"));
    assert_no_violations(s);
}

static void test_growth_bounded_by_maxmem(void **state)
{
    /* HVM: Xen lets actual reach maxmem + 1024 KiB slack; the driver wants more. */
    struct sim *s = one_guest(state, "\"target_kib\": 100000, \"maxmem_kib\": 100000, "
                                     "\"memory_offset_kib\": 512");
    sim_xs_write(s, "/local/domain/1/memory/target", "500000");
    sim_advance(s, 10000);
    assert_int_equal(actual_of(s, 1), 101024);
    /* Only the target write is a violation: Xen refusing pages is not one. */
    assert_int_equal(sim_violation_count(s), 1);
    assert_int_equal(violations_of(s, "target>maxmem"), 1);
    assert_int_equal(violations_of(s, "free<0"), 0);
    /* Raising maxmem (Xen KiB) lets it go on. */
    assert_int_equal(sim_set_maxmem(s, 1, 200000 + 1024 + 512), 0);
    assert_int_equal(maxmem_of(s, 1), 200000);
    sim_advance(s, 10000);
    assert_int_equal(actual_of(s, 1), 201024);
}

static void test_growth_bounded_by_free_records_violation(void **state)
{
    struct sim *s =
        world(state, "{\"host\": {\"total_kib\": 4000000, \"free_kib\": 500}, "
                     "\"domains\": [{\"domid\": 1, \"type\": \"pv\", \"target_kib\": 1000,"
                     " \"maxmem_kib\": 5000, \"balloon\": {\"rate_kib_s\": 1000}},"
                     " {\"domid\": 2, \"type\": \"pv\", \"target_kib\": 5000}]}");
    set_target(s, 1, 3000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 1500);
    assert_int_equal(sim_host_free_kib(s), 0);
    assert_int_equal(sim_violation_count(s), 1);
    assert_non_null(strstr(sim_violation(s, 0), "free<0"));
    assert_non_null(strstr(sim_violation(s, 0), "domid 1"));
    /* Still wanting: the same episode, one violation. */
    sim_advance(s, 5000);
    assert_int_equal(sim_violation_count(s), 1);
    /* Memory comes back (domain 2 shrinks), guest 1 takes it. */
    set_target(s, 2, 0);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 3000);
    assert_int_equal(sim_violation_count(s), 1);
}

static void test_scrub_memory_is_allocatable(void **state)
{
    struct sim *s =
        world(state, "{\"host\": {\"total_kib\": 4000000, \"free_kib\": 500, "
                     "\"scrub_kib\": 1000}, \"domains\": [{\"domid\": 1, \"type\": \"pv\","
                     " \"target_kib\": 1000, \"maxmem_kib\": 5000}]}");
    struct backend_physinfo pi;
    assert_int_equal(sim_physinfo(s, &pi), 0);
    assert_int_equal(pi.free_pages, 125);
    assert_int_equal(pi.scrub_pages, 250);
    assert_int_equal(pi.total_pages, 1000000);
    set_target(s, 1, 2200);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 2200);
    assert_int_equal(sim_physinfo(s, &pi), 0);
    assert_int_equal(pi.free_pages, 0);
    assert_int_equal(pi.scrub_pages, 75);
    assert_no_violations(s);
}

static void test_target_above_maxmem_violation(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 100000, \"maxmem_kib\": 150000");
    set_target(s, 1, 150000); /* at maxmem: fine */
    assert_no_violations(s);
    set_target(s, 1, 150001);
    assert_int_equal(sim_violation_count(s), 1);
    const char *v = sim_violation(s, 0);
    assert_non_null(strstr(v, "target>maxmem"));
    assert_non_null(strstr(v, "domid 1"));
    assert_non_null(strstr(v, "150001"));
    assert_non_null(strstr(v, "150000"));
}

/* A guest holding a part page: Xen reports whole pages, so a clip of maxmem to the
 * page-rounded actual (all the daemon can see) is not below what the guest holds. */
static void test_maxmem_clip_to_whole_pages_is_no_violation(void **state)
{
    struct sim *s = one_guest(state, "\"type\": \"pv\", \"target_kib\": 100002, "
                                     "\"actual_kib\": 100002, \"maxmem_kib\": 150000");
    struct backend_domain *doms = NULL;
    size_t n = 0;
    assert_int_equal(sim_list_domains(s, &doms, &n), 0);
    assert_int_equal(doms[0].total_pages * 4, 100000);
    free(doms);
    assert_int_equal(sim_set_maxmem(s, 1, 100000), 0);
    assert_no_violations(s);
    /* One page lower is below what the guest holds: the ordering bug. */
    assert_int_equal(sim_set_maxmem(s, 1, 99996), 0);
    assert_int_equal(violations_of(s, "maxmem<target"), 1);
}

static void test_maxmem_below_target_violation(void **state)
{
    struct sim *s = one_guest(state, "\"type\": \"pv\", \"target_kib\": 100000, "
                                     "\"maxmem_kib\": 150000");
    /* Below the target but not below actual: not the ordering bug. */
    set_target(s, 1, 120000);
    assert_int_equal(sim_set_maxmem(s, 1, 110000), 0);
    assert_no_violations(s);
    /* Below both target and actual. */
    assert_int_equal(sim_set_maxmem(s, 1, 90000), 0);
    assert_int_equal(sim_violation_count(s), 1);
    assert_non_null(strstr(sim_violation(s, 0), "maxmem<target"));
    assert_non_null(strstr(sim_violation(s, 0), "90000"));
    assert_int_equal(sim_set_maxmem(s, 99, 90000), -ESRCH);
}

static void test_legitimate_sequences_have_no_violation(void **state)
{
    struct sim *s =
        world(state, "{\"host\": {\"total_kib\": 16777216, \"free_kib\": 4194304}, "
                     "\"domains\": [{\"domid\": 1, \"target_kib\": 100000, "
                     "\"memory_offset_kib\": 256},"
                     " {\"domid\": 2, \"target_kib\": 100000, \"maxmem_kib\": 200000, "
                     "\"balloon\": {\"model\": \"stuck\"}}]}");
    int64_t off = 1024 + 256; /* hvm slack + memory offset */
    /* Up: raise maxmem first, then the target. */
    assert_int_equal(sim_set_maxmem(s, 1, 150000 + off), 0);
    set_target(s, 1, 150000);
    sim_advance(s, 5000);
    assert_int_equal(actual_of(s, 1), 150000);
    /* Down: lower the target, let it get there, then lower maxmem. */
    set_target(s, 1, 80000);
    sim_advance(s, 5000);
    assert_int_equal(sim_set_maxmem(s, 1, 80000 + off), 0);
    /* Even lowering maxmem right after the target, before the guest moved. */
    set_target(s, 1, 70000);
    assert_int_equal(sim_set_maxmem(s, 1, 70000 + off), 0);
    /* A stuck guest gets maxmem = min(target, actual). */
    set_target(s, 2, 50000);
    sim_advance(s, 10000);
    assert_int_equal(sim_set_maxmem(s, 2, 50000 + 1024), 0);
    assert_int_equal(sim_set_maxmem(s, 2, 150000 + 1024), 0);
    set_target(s, 2, 150000);
    sim_advance(s, 10000);
    assert_int_equal(actual_of(s, 2), 100000);
    assert_int_equal(sim_set_maxmem(s, 2, 100000 + 1024), 0);
    assert_no_violations(s);
}

/* ---- xenstore ---- */

static void test_xs_read_write_rm(void **state)
{
    struct sim *s = world(state, "{}");
    char *v = NULL;
    assert_int_equal(sim_xs_read(s, "/a/b", &v), -ENOENT);
    assert_int_equal(sim_xs_write(s, "/a/b/c", "hello"), 0);
    assert_key(s, "/a/b/c", "hello");
    /* Parents are created with an empty value; a node has a value and children. */
    assert_key(s, "/a/b", "");
    assert_key(s, "/a", "");
    assert_int_equal(sim_xs_write(s, "/a/b", "parent"), 0);
    assert_key(s, "/a/b", "parent");
    assert_key(s, "/a/b/c", "hello");
    assert_int_equal(sim_xs_write(s, "/a/b/c", ""), 0);
    assert_key(s, "/a/b/c", "");
    /* rm takes the subtree; missing is fine. */
    assert_int_equal(sim_xs_rm(s, "/a/b"), 0);
    assert_false(sim_xs_exists(s, "/a/b"));
    assert_false(sim_xs_exists(s, "/a/b/c"));
    assert_true(sim_xs_exists(s, "/a"));
    assert_int_equal(sim_xs_rm(s, "/a/b"), 0);
    assert_int_equal(sim_xs_rm(s, "/never/was"), 0);
    /* Bad paths. */
    assert_int_equal(sim_xs_write(s, "relative", "x"), -EINVAL);
    assert_int_equal(sim_xs_write(s, "/a//b", "x"), -EINVAL);
    assert_int_equal(sim_xs_write(s, "/a/", "x"), -EINVAL);
    assert_int_equal(sim_xs_write(s, "/a b", "x"), -EINVAL);
    assert_int_equal(sim_xs_read(s, "", &v), -EINVAL);
    assert_int_equal(sim_xs_rm(s, "/"), -EINVAL);
}

static void test_xs_directory_sorted(void **state)
{
    struct sim *s = world(state, "{}");
    const char *names[] = {"zeta", "alpha", "10", "2", "mid"};
    for (size_t i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/d/%s/leaf", names[i]);
        assert_int_equal(sim_xs_write(s, path, "1"), 0);
    }
    char **e = NULL;
    size_t n = 0;
    assert_int_equal(sim_xs_directory(s, "/d", &e, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(e[0], "10");
    assert_string_equal(e[1], "2");
    assert_string_equal(e[2], "alpha");
    assert_string_equal(e[3], "mid");
    assert_string_equal(e[4], "zeta");
    backend_strv_free(e, n);
    assert_int_equal(sim_xs_directory(s, "/d/alpha/leaf", &e, &n), 0);
    assert_int_equal(n, 0);
    backend_strv_free(e, n);
    assert_int_equal(sim_xs_directory(s, "/nope", &e, &n), -ENOENT);
    assert_int_equal(sim_xs_rm(s, "/d/mid"), 0);
    assert_int_equal(sim_xs_directory(s, "/d", &e, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(e[3], "zeta");
    backend_strv_free(e, n);
}

static void test_xs_generation(void **state)
{
    struct sim *s = world(state, "{}");
    uint64_t g = sim_xs_generation(s);
    char *v = NULL;
    assert_int_equal(sim_xs_write(s, "/x", "1"), 0);
    assert_true(sim_xs_generation(s) == g + 1);
    assert_int_equal(sim_xs_read(s, "/x", &v), 0);
    free(v);
    assert_true(sim_xs_generation(s) == g + 1);
    assert_int_equal(sim_xs_rm(s, "/x"), 0);
    assert_true(sim_xs_generation(s) == g + 2);
    assert_int_equal(sim_xs_rm(s, "/x"), 0); /* nothing removed */
    assert_true(sim_xs_generation(s) == g + 2);
    assert_int_equal(sim_xs_write(s, "bad", "1"), -EINVAL);
    assert_true(sim_xs_generation(s) == g + 2);
}

/* A guest booting away from its target carries its memory-offset (the daemon could not
 * calibrate it as total - target); one booting at its target leaves it to the daemon. */
static void test_memory_offset_for_guests_booted_off_target(void **state)
{
    struct sim *s =
        world(state, "{\"host\": {\"total_kib\": 16777216, \"free_kib\": 1048576}, "
                     "\"domains\": [{\"domid\": 1, \"target_kib\": 100000, "
                     "\"actual_kib\": 120000, \"maxmem_kib\": 200000, "
                     "\"memory_offset_kib\": 2048},"
                     " {\"domid\": 2, \"target_kib\": 100000, \"memory_offset_kib\": 2048},"
                     " {\"domid\": 3, \"target_kib\": 100000, \"actual_kib\": 90000,"
                     "  \"boot_after_s\": 1}]}");
    assert_key(s, "/local/domain/1/memory/memory-offset", "2048");
    assert_false(has_key(s, 2, "memory/memory-offset"));
    assert_false(has_key(s, 3, "memory/memory-offset"));
    sim_advance(s, 1000);
    assert_key(s, "/local/domain/3/memory/memory-offset", "0");
}

static void test_domain_keys(void **state)
{
    struct sim *s = one_guest(state, "\"dynamic_min_kib\": 1000, \"dynamic_max_kib\": 3000, "
                                     "\"target_kib\": 2000, \"maxmem_kib\": 3000");
    assert_true(sim_xs_exists(s, "/local/domain/1"));
    assert_key(s, "/local/domain/1/memory/target", "2000");
    assert_key(s, "/local/domain/1/memory/dynamic-min", "1000");
    assert_key(s, "/local/domain/1/memory/dynamic-max", "3000");
    assert_key(s, "/local/domain/1/control/feature-balloon", "1");
    assert_true(has_key(s, 1, "data/updated"));
    assert_false(has_key(s, 1, "memory/initial-reservation"));
}

/* ---- watches ---- */

static void test_watch_fires_at_registration(void **state)
{
    struct sim *s = world(state, "{}");
    assert_int_equal(sim_xs_watch(s, "/not/there/yet", "t1"), 0);
    expect_event(s, "/not/there/yet", "t1");
    expect_no_event(s);
    assert_int_equal(sim_xs_watch(s, "/not/there/yet", "t1"), -EEXIST);
    assert_int_equal(sim_xs_watch(s, "/not/there/yet", "t2"), 0);
    expect_event(s, "/not/there/yet", "t2");
    assert_int_equal(sim_xs_watch(s, "bad//", "t"), -EINVAL);
}

static void test_watch_subtree(void **state)
{
    struct sim *s = world(state, "{}");
    assert_int_equal(sim_xs_watch(s, "/a/b", "w"), 0);
    drain_events(s);
    assert_int_equal(sim_xs_write(s, "/a/b", "1"), 0);
    assert_int_equal(sim_xs_write(s, "/a/b/c/d", "1"), 0);
    assert_int_equal(sim_xs_write(s, "/a/bc", "1"), 0); /* a sibling, not below */
    assert_int_equal(sim_xs_write(s, "/a", "1"), 0);    /* an ancestor write */
    assert_int_equal(sim_xs_rm(s, "/a/b/c"), 0);
    expect_event(s, "/a/b", "w");
    expect_event(s, "/a/b/c/d", "w");
    expect_event(s, "/a/b/c", "w");
    expect_no_event(s);
    /* A watch on / sees everything. */
    assert_int_equal(sim_xs_watch(s, "/", "root"), 0);
    expect_event(s, "/", "root");
    assert_int_equal(sim_xs_write(s, "/q", "1"), 0);
    expect_event(s, "/q", "root");
    expect_no_event(s);
}

static void test_watch_fires_on_ancestor_rm(void **state)
{
    struct sim *s = world(state, "{}");
    assert_int_equal(sim_xs_write(s, "/a/b/c/d", "1"), 0);
    assert_int_equal(sim_xs_watch(s, "/a/b/c", "deep"), 0);
    assert_int_equal(sim_xs_watch(s, "/a/x", "other"), 0); /* never existed */
    assert_int_equal(sim_xs_watch(s, "/z", "unrelated"), 0);
    drain_events(s);
    assert_int_equal(sim_xs_rm(s, "/a"), 0);
    /* Both watches below the removed node fire with their own path. */
    struct backend_watch_event ev = {0};
    bool deep = false, other = false;
    while (sim_xs_read_watch(s, &ev) == 1) {
        if (strcmp(ev.token, "deep") == 0 && strcmp(ev.path, "/a/b/c") == 0)
            deep = true;
        else if (strcmp(ev.token, "other") == 0 && strcmp(ev.path, "/a/x") == 0)
            other = true;
        else
            fail_msg("unexpected event %s (%s)", ev.path, ev.token);
        backend_watch_event_clear(&ev);
    }
    assert_true(deep);
    assert_true(other);
}

static void test_unwatch(void **state)
{
    struct sim *s = world(state, "{}");
    assert_int_equal(sim_xs_watch(s, "/a", "w"), 0);
    assert_int_equal(sim_xs_watch(s, "/a", "keep"), 0);
    drain_events(s);
    assert_int_equal(sim_xs_write(s, "/a/1", "x"), 0);
    /* Pending events of the removed watch go with it. */
    assert_int_equal(sim_xs_unwatch(s, "/a", "w"), 0);
    expect_event(s, "/a/1", "keep");
    expect_no_event(s);
    assert_int_equal(sim_xs_write(s, "/a/2", "x"), 0);
    expect_event(s, "/a/2", "keep");
    expect_no_event(s);
    assert_int_equal(sim_xs_unwatch(s, "/a", "w"), -ENOENT);
    assert_int_equal(sim_xs_unwatch(s, "/b", "w"), -ENOENT);
    assert_int_equal(sim_xs_unwatch(s, "/a", "keep"), 0);
    assert_int_equal(sim_xs_write(s, "/a/3", "x"), 0);
    expect_no_event(s);
    /* Drop every watch. */
    assert_int_equal(sim_xs_watch(s, "/a", "again"), 0);
    sim_xs_drop_watches(s);
    expect_no_event(s);
    assert_int_equal(sim_xs_write(s, "/a/4", "x"), 0);
    expect_no_event(s);
}

static void test_watch_overflow(void **state)
{
    struct sim *s = world(state, "{}");
    sim_xs_set_watch_queue_limit(s, 3);
    assert_int_equal(sim_xs_watch(s, "/a", "w"), 0); /* 1 pending */
    assert_int_equal(sim_xs_write(s, "/a/1", "x"), 0);
    assert_int_equal(sim_xs_write(s, "/a/2", "x"), 0); /* 3 pending: at the limit */
    assert_int_equal(sim_xs_write(s, "/a/3", "x"), 0); /* dropped */
    assert_int_equal(sim_xs_write(s, "/a/4", "x"), 0);
    assert_true(fd_readable(sim_xs_watch_fd(s)));
    struct backend_watch_event ev = {0};
    assert_int_equal(sim_xs_read_watch(s, &ev), BACKEND_EOVERFLOW);
    assert_null(ev.path);
    /* Once: then the queue starts again. */
    expect_no_event(s);
    assert_false(fd_readable(sim_xs_watch_fd(s)));
    assert_int_equal(sim_xs_write(s, "/a/5", "x"), 0);
    expect_event(s, "/a/5", "w");
    expect_no_event(s);
}

static void test_watch_fd_readable_while_pending(void **state)
{
    struct sim *s = world(state, "{}");
    int fd = sim_xs_watch_fd(s);
    assert_true(fd >= 0);
    assert_false(fd_readable(fd));
    assert_int_equal(sim_xs_watch(s, "/a", "w"), 0);
    assert_true(fd_readable(fd));
    assert_int_equal(sim_xs_write(s, "/a/1", "x"), 0);
    expect_event(s, "/a", "w");
    assert_true(fd_readable(fd)); /* one more pending */
    expect_event(s, "/a/1", "w");
    assert_false(fd_readable(fd));
    assert_int_equal(sim_xs_write(s, "/a/2", "x"), 0);
    assert_true(fd_readable(fd));
    drain_events(s);
    assert_false(fd_readable(fd));
}

static void test_special_watches(void **state)
{
    struct sim *s = world(state, "{\"host\": {\"free_kib\": 4194304}}");
    assert_int_equal(sim_xs_watch(s, "@releaseDomain", "rel"), 0);
    assert_int_equal(sim_xs_watch(s, "@introduceDomain", "intro"), 0);
    assert_int_equal(sim_xs_watch(s, "@bogus", "x"), -EINVAL);
    drain_events(s);
    struct sim_domain_spec d;
    sim_domain_spec_default(&d, 5);
    assert_int_equal(sim_create_domain(s, &d, NULL), 0);
    expect_event(s, "@introduceDomain", "intro");
    expect_no_event(s);
    assert_int_equal(sim_destroy_domain(s, 5), 0);
    expect_event(s, "@releaseDomain", "rel");
    expect_no_event(s);
    assert_int_equal(sim_xs_unwatch(s, "@releaseDomain", "rel"), 0);
    assert_int_equal(sim_xs_unwatch(s, "@releaseDomain", "rel"), -ENOENT);
}

static void test_domain_destroy_fires_watches(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 1000");
    assert_int_equal(sim_xs_watch(s, "/local/domain/1/memory/dynamic-min", "min"), 0);
    drain_events(s);
    assert_int_equal(sim_destroy_domain(s, 1), 0);
    expect_event(s, "/local/domain/1/memory/dynamic-min", "min");
    expect_no_event(s);
    assert_false(sim_xs_exists(s, "/local/domain/1"));
}

/* Many domains with keys and watches: stays correct (and cheap: the whole test must
 * run in well under a second even under sanitizers). */
static void test_many_domains_and_watches(void **state)
{
    struct sim *s = world(state, "{\"host\": {\"total_kib\": 1099511627776, "
                                 "\"free_kib\": 1099511627776}}");
    const uint32_t n = 32000;
    struct sim_domain_spec d;
    for (uint32_t i = 1; i <= n; i++) {
        sim_domain_spec_default(&d, i);
        d.target_kib = d.actual_kib = d.maxmem_kib = 1024;
        d.dynamic_min_kib = d.dynamic_max_kib = 1024;
        assert_int_equal(sim_create_domain(s, &d, NULL), 0);
        char path[64];
        snprintf(path, sizeof(path), "/local/domain/%u/memory/dynamic-min", i);
        assert_int_equal(sim_xs_watch(s, path, "min"), 0);
        snprintf(path, sizeof(path), "/local/domain/%u/memory/dynamic-max", i);
        assert_int_equal(sim_xs_watch(s, path, "max"), 0);
    }
    drain_events(s);
    assert_int_equal(sim_set_dynamic_range(s, 31999, 512, 2048), 0);
    expect_event(s, "/local/domain/31999/memory/dynamic-min", "min");
    expect_event(s, "/local/domain/31999/memory/dynamic-max", "max");
    expect_no_event(s);
    char **e = NULL;
    size_t k = 0;
    assert_int_equal(sim_xs_directory(s, "/local/domain", &e, &k), 0);
    assert_int_equal(k, n);
    backend_strv_free(e, k);
    sim_advance(s, 1000);
    struct backend_domain *doms = NULL;
    assert_int_equal(sim_list_domains(s, &doms, &k), 0);
    assert_int_equal(k, n);
    for (size_t i = 1; i < k; i++)
        assert_true(doms[i - 1].domid < doms[i].domid);
    free(doms);
    for (uint32_t i = 1; i <= n; i++)
        assert_int_equal(sim_destroy_domain(s, i), 0);
    assert_int_equal(sim_xs_directory(s, "/local/domain", &e, &k), 0);
    assert_int_equal(k, 0);
    backend_strv_free(e, k);
}

/* ---- driving the world ---- */

static void test_create_destroy(void **state)
{
    struct sim *s =
        world(state, "{\"host\": {\"total_kib\": 16777216, \"free_kib\": 3000000}}");
    struct sim_domain_spec d;
    sim_domain_spec_default(&d, 4);
    d.actual_kib = 1000000;
    d.memory_offset_kib = 1000;
    d.target_kib = d.dynamic_min_kib = d.dynamic_max_kib = d.maxmem_kib = 1000000;
    assert_int_equal(sim_create_domain(s, &d, NULL), 0);
    assert_int_equal(sim_host_free_kib(s), 3000000 - 1001000);
    assert_int_equal(actual_of(s, 4), 1000000);
    assert_int_equal(maxmem_of(s, 4), 1000000);

    char *err = NULL;
    assert_int_equal(sim_create_domain(s, &d, &err), -EEXIST);
    free(err);
    sim_domain_spec_default(&d, 5);
    d.actual_kib = d.target_kib = d.maxmem_kib = 2500000;
    d.dynamic_min_kib = d.dynamic_max_kib = 2500000;
    assert_int_equal(sim_create_domain(s, &d, &err), -ENOMEM);
    assert_non_null(err);
    free(err);
    assert_false(sim_xs_exists(s, "/local/domain/5"));
    d.dynamic_min_kib = d.dynamic_max_kib + 1;
    assert_int_equal(sim_create_domain(s, &d, &err), -EINVAL);
    assert_non_null(strstr(err, "dynamic_min_kib"));
    free(err);

    struct backend_domain *v = NULL;
    size_t n = 0;
    assert_int_equal(sim_list_domains(s, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].domid, 4);
    assert_int_equal(v[0].type, DOMAIN_TYPE_HVM);
    assert_int_equal(v[0].total_pages, 1001000 / 4);
    assert_int_equal(v[0].max_pages, (1000000 + 1024 + 1000) / 4);
    assert_false(v[0].dying);
    uint8_t old_handle[16];
    memcpy(old_handle, v[0].handle, 16);
    free(v);

    assert_int_equal(sim_destroy_domain(s, 4), 0);
    assert_int_equal(sim_host_free_kib(s), 3000000);
    assert_false(sim_xs_exists(s, "/local/domain/4"));
    assert_int_equal(sim_destroy_domain(s, 4), -ENOENT);
    assert_int_equal(sim_domain_memory(s, 4, NULL, NULL, NULL), -ENOENT);

    /* The domid comes back as a new domain: a new handle. */
    sim_domain_spec_default(&d, 4);
    assert_int_equal(sim_create_domain(s, &d, NULL), 0);
    assert_int_equal(sim_list_domains(s, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_not_equal(v[0].handle, old_handle, 16);
    free(v);
    assert_no_violations(s);
}

static void test_set_dynamic_range(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 2000");
    assert_int_equal(sim_set_dynamic_range(s, 1, 1000, 3000), 0);
    assert_key(s, "/local/domain/1/memory/dynamic-min", "1000");
    assert_key(s, "/local/domain/1/memory/dynamic-max", "3000");
    assert_int_equal(sim_set_dynamic_range(s, 1, 3001, 3000), -EINVAL);
    assert_int_equal(sim_set_dynamic_range(s, 1, -1, 3000), -EINVAL);
    assert_key(s, "/local/domain/1/memory/dynamic-min", "1000");
    assert_int_equal(sim_set_dynamic_range(s, 2, 1000, 3000), -ENOENT);
}

static void test_set_balloon(void **state)
{
    struct sim *s =
        one_guest(state, "\"target_kib\": 100000, \"balloon\": {\"model\": \"stuck\"}");
    set_target(s, 1, 50000);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 100000);
    struct sim_balloon b = {.model = SIM_BALLOON_IDEAL, .rate_kib_s = 10000};
    assert_int_equal(sim_set_balloon(s, 1, &b), 0);
    sim_advance(s, 1000);
    assert_int_equal(actual_of(s, 1), 90000);
    b.rate_kib_s = 0;
    assert_int_equal(sim_set_balloon(s, 1, &b), -EINVAL);
    b.rate_kib_s = 1;
    assert_int_equal(sim_set_balloon(s, 2, &b), -ENOENT);

    /* A driver loaded into a driverless guest announces itself. */
    s = one_guest(state, "\"balloon\": {\"model\": \"none\"}");
    assert_false(has_key(s, 1, "control/feature-balloon"));
    b.model = SIM_BALLOON_IDEAL;
    b.rate_kib_s = 1000;
    assert_int_equal(sim_set_balloon(s, 1, &b), 0);
    assert_true(has_key(s, 1, "control/feature-balloon"));
}

static void test_shadow_allocation(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 1000");
    uint32_t mib = 99;
    assert_int_equal(sim_shadow_allocation_mib(s, 1, &mib), 0);
    assert_int_equal(mib, 0);
    assert_int_equal(sim_shadow_allocation_mib(s, 2, &mib), -ESRCH);
}

/* ---- truth, clock, persistence ---- */

static void test_state_json_shape(void **state)
{
    struct sim *s = world(state, "{\"host\": {\"total_kib\": 16777216, \"free_kib\": 4194304}, "
                                 "\"domains\": [{\"domid\": 2, \"type\": \"pv\", "
                                 "\"dynamic_min_kib\": 1000, \"dynamic_max_kib\": 3000, "
                                 "\"target_kib\": 2000, \"maxmem_kib\": 2500}, "
                                 "{\"domid\": 1, \"balloon\": {\"model\": \"none\"}}]}");
    assert_int_equal(sim_xs_write(s, "/local/domain/2/memory/uncooperative", ""), 0);
    sim_advance(s, 1500);
    json_t *j = sim_state_json(s);
    assert_true(json_is_number(json_object_get(j, "time_s")));
    assert_true(json_number_value(json_object_get(j, "time_s")) == 1.5);
    assert_int_equal(json_integer_value(json_object_get(j, "free_kib")), 4194304);
    assert_true(json_is_array(json_object_get(j, "violations")));
    assert_int_equal(json_object_size(j), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "claimed_kib")), 0);
    json_t *doms = json_object_get(j, "domains");
    assert_int_equal(json_array_size(doms), 2);
    json_t *d1 = json_array_get(doms, 0), *d2 = json_array_get(doms, 1);
    assert_int_equal(json_integer_value(json_object_get(d1, "domid")), 1);
    assert_false(json_is_true(json_object_get(d1, "can_balloon")));
    assert_false(json_is_true(json_object_get(d1, "uncooperative")));
    assert_int_equal(json_object_size(d2), 10);
    assert_int_equal(json_integer_value(json_object_get(d2, "claim_kib")), 0);
    assert_false(json_is_true(json_object_get(d2, "paused")));
    assert_int_equal(json_integer_value(json_object_get(d2, "domid")), 2);
    assert_int_equal(json_integer_value(json_object_get(d2, "actual_kib")), 2000);
    assert_int_equal(json_integer_value(json_object_get(d2, "target_kib")), 2000);
    assert_int_equal(json_integer_value(json_object_get(d2, "maxmem_kib")), 2500);
    assert_int_equal(json_integer_value(json_object_get(d2, "dynamic_min_kib")), 1000);
    assert_int_equal(json_integer_value(json_object_get(d2, "dynamic_max_kib")), 3000);
    assert_true(json_is_true(json_object_get(d2, "can_balloon")));
    assert_true(json_is_true(json_object_get(d2, "uncooperative")));
    json_decref(j);

    set_target(s, 2, 9000); /* above maxmem */
    j = sim_state_json(s);
    json_t *viol = json_object_get(j, "violations");
    assert_int_equal(json_array_size(viol), 1);
    assert_non_null(strstr(json_string_value(json_array_get(viol, 0)), "target>maxmem"));
    json_decref(j);
}

static const char *busy_scenario =
    "{\"host\": {\"total_kib\": 16777216, \"free_kib\": 2000000}, \"domains\": ["
    " {\"domid\": 1, \"target_kib\": 500000, \"maxmem_kib\": 900000,"
    "  \"balloon\": {\"rate_kib_s\": 777.7, \"stop_short_kib\": 3}},"
    " {\"domid\": 2, \"type\": \"pv\", \"target_kib\": 400000, \"maxmem_kib\": 400000,"
    "  \"balloon\": {\"model\": \"intermittent\", \"period_s\": 1.3, \"rate_kib_s\": 5000}},"
    " {\"domid\": 3, \"initial_reservation_kib\": 300000, \"boot_after_s\": 3.3,"
    "  \"balloon\": {\"rate_kib_s\": 100000}}]}";

static void drive_busy(struct sim *s)
{
    set_target(s, 1, 800000);
    set_target(s, 2, 100000);
    sim_advance(s, 1234);
    set_target(s, 1, 300000);
    sim_advance(s, 777);
    sim_advance(s, 3000);
}

static void test_virtual_clock_is_deterministic(void **state)
{
    struct sim *a = world(state, busy_scenario);
    struct sim *b = world(state, busy_scenario);
    assert_int_equal(sim_clock_mode(a), SIM_CLOCK_VIRTUAL);
    assert_int_equal(sim_now_ms(a), 0);
    drive_busy(a);
    drive_busy(b);
    assert_int_equal(sim_now_ms(a), 1234 + 777 + 3000);
    char *ta = state_text(a), *tb = state_text(b);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    /* No time passes by itself. */
    int64_t t = sim_now_ms(a);
    usleep(20000);
    assert_int_equal(sim_now_ms(a), t);
}

static void test_real_clock(void **state)
{
    (void)state;
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    assert_int_equal(sim_scenario_parse("{\"domains\": [{\"domid\": 1, \"target_kib\": "
                                        "100000, \"balloon\": {\"rate_kib_s\": 100000}}]}",
                                        &sc, &err),
                     0);
    struct sim *s = sim_new(sc, SIM_CLOCK_REAL, &err);
    sim_scenario_free(sc);
    assert_int_equal(sim_clock_mode(s), SIM_CLOCK_REAL);
    int64_t t0 = sim_now_ms(s);
    set_target(s, 1, 50000);
    sim_advance(s, 100);
    int64_t t1 = sim_now_ms(s);
    assert_true(t1 - t0 >= 100);
    /* The balloon moved with real time, about 100 KiB/ms. */
    int64_t moved = 100000 - actual_of(s, 1);
    assert_true(moved >= 10000 && moved < 50000);
    usleep(600 * 1000);
    assert_int_equal(actual_of(s, 1), 50000); /* caught up without sim_advance */
    sim_free(s);
}

static void test_persistence_round_trip(void **state)
{
    char dir[] = "/tmp/test_sim_state_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/state.json", dir);
    char *tmp = xasprintf("%s.tmp", path);

    struct sim *a = world(state, busy_scenario);
    struct sim *twin = world(state, busy_scenario);
    sim_set_state_file(a, path);
    assert_true(access(path, F_OK) == 0);
    drive_busy(a);
    drive_busy(twin);
    assert_int_equal(sim_xs_write(a, "/squeezed/state/xenopsd/r1", "4096"), 0);
    assert_int_equal(sim_xs_write(twin, "/squeezed/state/xenopsd/r1", "4096"), 0);
    set_target(a, 2, 999999); /* a violation to keep */
    set_target(twin, 2, 999999);
    assert_int_equal(sim_violation_count(a), 1);
    /* Saved after the last change, atomically. */
    assert_true(access(tmp, F_OK) != 0);

    char *err = NULL;
    struct sim *b = sim_load(path, SIM_CLOCK_VIRTUAL, &err);
    if (b == NULL)
        fail_msg("load: %s", err);
    char *ta = state_text(a), *tb = state_text(b);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    assert_int_equal(sim_now_ms(b), sim_now_ms(a));
    assert_true(sim_xs_generation(b) == sim_xs_generation(a));
    assert_key(b, "/squeezed/state/xenopsd/r1", "4096");
    struct backend_domain *va = NULL, *vb = NULL;
    size_t na = 0, nb = 0;
    assert_int_equal(sim_list_domains(a, &va, &na), 0);
    assert_int_equal(sim_list_domains(b, &vb, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(va, vb, na * sizeof(*va));
    free(va);
    free(vb);

    /* Time and balloons go on from where they were, as if never saved. */
    sim_advance(b, 5000);
    sim_advance(twin, 5000);
    ta = state_text(twin);
    tb = state_text(b);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);

    /* A bad file is refused with a reason. */
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"something else\"}", f);
    fclose(f);
    assert_null(sim_load(path, SIM_CLOCK_VIRTUAL, &err));
    assert_non_null(strstr(err, "format"));
    free(err);
    assert_null(sim_load("/nonexistent/state.json", SIM_CLOCK_VIRTUAL, &err));
    free(err);

    sim_set_state_file(a, NULL);
    unlink(path);
    sim_advance(a, 10);
    assert_true(access(path, F_OK) != 0); /* no longer saved */
    sim_free(b);
    rmdir(dir);
    free(path);
    free(tmp);
}

/* ---- the state file's journal ---- */

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static char *load_text(const char *path)
{
    char *err = NULL;
    struct sim *b = sim_load(path, SIM_CLOCK_VIRTUAL, &err);
    if (b == NULL)
        fail_msg("load: %s", err);
    char *t = state_text(b);
    sim_free(b);
    return t;
}

/* A child changes the world (a reservation node last) and is killed with SIGKILL, no
 * clean-up at all: loading the file and its journal gives the world it had, the
 * reservation included. */
static void test_journal_replays_after_sigkill(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_sim_journal_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/state.json", dir);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct sim *a = world(NULL, busy_scenario);
        sim_set_state_file(a, path);
        drive_busy(a);
        set_target(a, 2, 999999); /* a violation, saved too */
        if (sim_xs_write(a, "/squeezed/state/xenopsd/r1", "4096") != 0)
            _exit(3);
        char *t = state_text(a);
        size_t n = strlen(t);
        if (write(fds[1], t, n) != (ssize_t)n)
            _exit(4);
        close(fds[1]);
        raise(SIGKILL);
        _exit(5);
    }
    close(fds[1]);
    char buf[65536];
    size_t len = 0;
    ssize_t k;
    while ((k = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)k;
    buf[len] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(len > 0);
    /* Replayed from the journal, not from a full save after every change. */
    char *jpath = xasprintf("%s.journal", path);
    assert_true(file_size(jpath) > 0);
    char *t = load_text(path);
    assert_string_equal(t, buf);
    free(t);
    char *err = NULL;
    struct sim *b = sim_load(path, SIM_CLOCK_VIRTUAL, &err);
    assert_non_null(b);
    assert_key(b, "/squeezed/state/xenopsd/r1", "4096");
    assert_int_equal(sim_violation_count(b), 1);
    sim_free(b);
    unlink(jpath);
    unlink(path);
    rmdir(dir);
    free(jpath);
    free(path);
}

/* A record cut short by a crash mid-append is dropped; the ones before it stay. A
 * record that does not parse ends the replay there. */
static void test_journal_drops_a_torn_last_record(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_sim_journal_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/state.json", dir);
    char *jpath = xasprintf("%s.journal", path);
    struct sim *a = world(NULL, busy_scenario);
    sim_set_state_file(a, path);
    drive_busy(a);
    assert_int_equal(sim_xs_write(a, "/squeezed/state/s/r1", "1"), 0);
    char *before = state_text(a);
    int fd = open(jpath, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    const char torn[] = "{\"now_ms\":123456,\"free_kib\":1,\"scrub_kib\":0,\"xs_gen";
    assert_int_equal(write(fd, torn, sizeof(torn) - 1), (ssize_t)(sizeof(torn) - 1));
    close(fd);
    char *t = load_text(path);
    assert_string_equal(t, before);
    free(t);
    /* The same bytes with a newline: not JSON, dropped too. */
    fd = open(jpath, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    t = load_text(path);
    assert_string_equal(t, before);
    free(t);
    free(before);
    sim_free(a);
    unlink(jpath);
    unlink(path);
    rmdir(dir);
    free(jpath);
    free(path);
}

/* A compaction writes the whole world and empties the journal; a journal of the epoch
 * before (a crash between the rename and the reset) is not applied again. */
static void test_journal_compaction(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_sim_journal_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/state.json", dir);
    char *jpath = xasprintf("%s.journal", path);
    char *old = xasprintf("%s/old.journal", dir);
    struct sim *a = world(NULL, busy_scenario);
    sim_set_state_file(a, path);
    off_t empty = file_size(jpath);
    assert_true(empty > 0);
    drive_busy(a);
    assert_int_equal(sim_xs_write(a, "/squeezed/state/s/r1", "1"), 0);
    assert_true(file_size(jpath) > empty);
    /* Keep the journal as it is before the compaction. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp %s %s", jpath, old);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(sim_save(a, path), 0);
    assert_int_equal(file_size(jpath), empty);
    char *want = state_text(a);
    char *t = load_text(path);
    assert_string_equal(t, want);
    free(t);
    /* The old journal back in place: of another epoch, left unapplied. */
    assert_int_equal(rename(old, jpath), 0);
    t = load_text(path);
    assert_string_equal(t, want);
    free(t);
    /* Changes after the compaction go on in the journal. */
    sim_set_state_file(a, path);
    assert_int_equal(sim_xs_rm(a, "/squeezed/state/s/r1"), 0);
    free(want);
    want = state_text(a);
    t = load_text(path);
    assert_string_equal(t, want);
    free(t);
    free(want);
    sim_free(a);
    unlink(jpath);
    unlink(path);
    rmdir(dir);
    free(old);
    free(jpath);
    free(path);
}

/* Symbolic links planted where the state goes are never followed: the journal is
 * refused (and a change that cannot be saved fails), loading refuses a linked journal,
 * and the full save's temporary file is a new file, not a planted one. */
static void test_journal_refuses_symlinks(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_sim_journal_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/state.json", dir);
    char *jpath = xasprintf("%s.journal", path);
    char *victim = xasprintf("%s/victim", dir);
    char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(victim, "w");
    fputs("precious\n", f);
    fclose(f);
    assert_int_equal(symlink(victim, jpath), 0);
    assert_int_equal(symlink(victim, tmp), 0);
    struct sim *a = world(NULL, busy_scenario);
    sim_set_state_file(a, path);
    assert_int_equal(sim_xs_write(a, "/squeezed/state/s/r1", "1"), -EIO);
    assert_int_equal(sim_flush(a), -EIO);
    assert_int_equal(file_size(victim), 9);
    /* Loading with a linked journal is refused. */
    char *err = NULL;
    if (access(path, F_OK) != 0) {
        struct sim *c = world(NULL, busy_scenario);
        assert_int_equal(sim_save(c, path), 0);
        sim_free(c);
    }
    assert_null(sim_load(path, SIM_CLOCK_VIRTUAL, &err));
    assert_non_null(strstr(err, "symbolic link"));
    free(err);
    /* Without the planted journal, saving works; the planted .tmp is left alone. */
    unlink(jpath);
    sim_set_state_file(a, path);
    assert_int_equal(sim_xs_write(a, "/squeezed/state/s/r2", "2"), 0);
    assert_int_equal(file_size(victim), 9);
    struct stat st;
    assert_int_equal(lstat(tmp, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    sim_free(a);
    unlink(tmp);
    unlink(victim);
    unlink(jpath);
    unlink(path);
    rmdir(dir);
    free(tmp);
    free(victim);
    free(jpath);
    free(path);
}

/* ---- the backend table ---- */

static void test_backend_sim_ops(void **state)
{
    (void)state;
    struct sim *s =
        one_guest(NULL, "\"type\": \"pv\", \"target_kib\": 100000, "
                        "\"maxmem_kib\": 200000, \"balloon\": {\"rate_kib_s\": 1000}");
    struct backend *b = backend_sim_open(s);
    assert_ptr_equal(b->priv, s);
    assert_string_equal(b->ops->name, "sim");
    assert_true(b->ops->clock_is_virtual(b));

    struct backend_domain *v = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(backend_list_all(b, &v, &cap, &n), 1);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].total_pages, 25000);
    assert_int_equal(v[0].max_pages, 50000);
    free(v);
    struct backend_physinfo pi;
    assert_int_equal(b->ops->physinfo(b, &pi), 0);
    assert_int_equal(pi.free_pages, 4194304 / 4);
    assert_int_equal(b->ops->set_maxmem(b, 1, 150000), 0);
    assert_int_equal(maxmem_of(s, 1), 150000);
    assert_int_equal(b->ops->set_maxmem(b, 9, 150000), -ESRCH);
    uint32_t mib;
    assert_int_equal(b->ops->shadow_allocation_mib(b, 1, &mib), 0);

    /* Transactional write: only while the domain's directory exists. */
    assert_int_equal(
        b->ops->xs_write(b, "/local/domain/1", "/local/domain/1/memory/target", "90000"), 0);
    assert_int_equal(
        b->ops->xs_write(b, "/local/domain/7", "/local/domain/7/memory/target", "90000"),
        -ENOENT);
    assert_false(sim_xs_exists(s, "/local/domain/7"));
    assert_int_equal(b->ops->xs_write(b, NULL, "/squeezed/x", "1"), 0);
    char *val = NULL;
    assert_int_equal(b->ops->xs_read(b, "/squeezed/x", &val), 0);
    assert_string_equal(val, "1");
    free(val);
    assert_int_equal(b->ops->xs_read(b, "/squeezed/y", &val), -ENOENT);
    char **e = NULL;
    assert_int_equal(b->ops->xs_directory(b, "/squeezed", &e, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0], "x");
    backend_strv_free(e, n);
    assert_int_equal(b->ops->xs_rm(b, "/squeezed"), 0);
    assert_int_equal(b->ops->xs_rm(b, "/squeezed"), 0);

    /* Watches through the table. */
    assert_int_equal(b->ops->xs_watch(b, "/local/domain/1/memory", "m"), 0);
    int fd = b->ops->watch_fd(b);
    assert_true(fd >= 0 && fd_readable(fd));
    struct backend_watch_event ev = {0};
    assert_int_equal(b->ops->read_watch(b, &ev), 1);
    assert_string_equal(ev.path, "/local/domain/1/memory");
    backend_watch_event_clear(&ev);
    assert_int_equal(b->ops->read_watch(b, &ev), 0);
    assert_int_equal(b->ops->xs_unwatch(b, "/local/domain/1/memory", "m"), 0);

    /* The clock: sleeping moves the world. */
    assert_int_equal(b->ops->now_ms(b), 0);
    b->ops->sleep_ms(b, 4000);
    assert_int_equal(b->ops->now_ms(b), 4000);
    assert_int_equal(actual_of(s, 1), 96000);

    struct sim_counters c;
    sim_counters(s, &c);
    assert_true(c.list_domains == 1);
    assert_true(c.physinfo == 1);
    assert_true(c.set_maxmem == 2);
    assert_true(c.xs_reads == 3);  /* 2 reads + 1 directory */
    assert_true(c.xs_writes == 4); /* 2 writes + 2 rm (the refused write does not count) */
    backend_close(b);              /* frees the world too */
}

static void test_counters_ignore_the_world_itself(void **state)
{
    struct sim *s = one_guest(state, "\"target_kib\": 100000, \"boot_after_s\": 1");
    struct sim_counters c;
    sim_advance(s, 5000); /* boots: the world writes its own keys */
    sim_counters(s, &c);
    assert_true(c.xs_reads == 0 && c.xs_writes == 0 && c.list_domains == 0 && c.physinfo == 0 &&
                c.set_maxmem == 0);
    char *v = read_key(s, "/local/domain/1/memory/target");
    free(v);
    sim_counters(s, &c);
    assert_true(c.xs_reads == 1);
}

/* Claims as Xen has them: a claim beyond the unclaimed free memory is refused; another
 * domain may not allocate into claimed pages (a "claimed" violation, and it gets only
 * the unclaimed rest); the claimant's own allocations come out of its claim. A paused
 * domain's balloon does not move. Both survive a save and a load. */
static void test_claims_and_pausing(void **state)
{
    struct sim *s = world(state, "{\"host\": {\"total_kib\": 16777216, \"free_kib\": 1048576}, "
                                 "\"domains\": [{\"domid\": 1, \"dynamic_min_kib\": 262144, "
                                 "\"dynamic_max_kib\": 2097152, \"target_kib\": 262144, "
                                 "\"maxmem_kib\": 2097152}, "
                                 "{\"domid\": 2, \"initial_reservation_kib\": 524288, "
                                 "\"maxmem_kib\": 524288, \"claim_kib\": 524288, "
                                 "\"balloon\": {\"rate_kib_s\": 262144}}]}");
    assert_int_equal(sim_claimed_kib(s), 524288);
    assert_int_equal(sim_set_claim(s, 1, 524289), -ENOMEM);
    assert_int_equal(sim_set_claim(s, 9, 1), -ENOENT);
    json_t *j = sim_state_json(s);
    assert_int_equal(json_integer_value(json_object_get(j, "claimed_kib")), 524288);
    json_decref(j);
    struct backend_domain *v = NULL;
    size_t n = 0;
    assert_int_equal(sim_list_domains(s, &v, &n), 0);
    assert_int_equal(v[1].outstanding_pages, 524288 / 4);
    free(v);
    /* Domain 1 is paused: a target far up does not move it. */
    assert_int_equal(sim_pause_domain(s, 1, true), 0);
    assert_int_equal(sim_xs_write(s, "/local/domain/1/memory/target", "2097152"), 0);
    sim_advance(s, 3000);
    int64_t a, t, m;
    assert_int_equal(sim_domain_memory(s, 1, &a, &t, &m), 0);
    assert_int_equal(a, 262144);
    /* Domain 2 has built out of its own claim. */
    assert_int_equal(sim_claimed_kib(s), 0);
    assert_int_equal(sim_violation_count(s), 0);
    /* A new claim for 2; unpaused, domain 1 wants 1.75 GiB, finds 512 MiB unclaimed. */
    assert_int_equal(sim_set_claim(s, 2, 262144), 0);
    assert_int_equal(sim_pause_domain(s, 1, false), 0);
    sim_advance(s, 10000);
    assert_int_equal(sim_domain_memory(s, 1, &a, &t, &m), 0);
    assert_int_equal(a, 262144 + 1048576 - 524288 - 262144);
    assert_int_equal(sim_violation_count(s), 1);
    assert_non_null(strstr(sim_violation(s, 0), "claimed"));
    assert_int_equal(sim_host_free_kib(s), 262144);

    char dir[] = "/tmp/squeezed-claims-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/state.json", dir);
    assert_int_equal(sim_pause_domain(s, 1, true), 0);
    assert_int_equal(sim_save(s, path), 0);
    char *err = NULL;
    struct sim *b = sim_load(path, SIM_CLOCK_VIRTUAL, &err);
    if (b == NULL)
        fail_msg("load: %s", err);
    assert_int_equal(sim_claimed_kib(b), 262144);
    j = sim_state_json(b);
    json_t *d1 = json_array_get(json_object_get(j, "domains"), 0);
    assert_true(json_is_true(json_object_get(d1, "paused")));
    json_decref(j);
    sim_free(b);
    unlink(path);
    rmdir(dir);
    free(path);
}

int main(void)
{
#define W(name) cmocka_unit_test_setup_teardown(name, world_setup, world_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_types),
        cmocka_unit_test(test_scenario_defaults),
        cmocka_unit_test(test_scenario_spec_example_parses),
        cmocka_unit_test(test_scenario_errors_name_the_field),
        cmocka_unit_test(test_scenario_load_file),
        cmocka_unit_test(test_domain_spec_from_json),
        cmocka_unit_test(test_sim_new_refuses_what_does_not_fit),
        cmocka_unit_test(test_demo_scenario_runs_cleanly),
        W(test_ideal_moves_at_rate),
        W(test_slow_rate_keeps_fractional_progress),
        W(test_stop_short),
        W(test_floor_model),
        W(test_ceiling_model),
        W(test_stuck_and_none_never_move),
        W(test_intermittent_periods),
        W(test_idle_world_wakes_on_change),
        W(test_boot_after),
        W(test_initial_reservation_allocation),
        W(test_growth_bounded_by_maxmem),
        W(test_growth_bounded_by_free_records_violation),
        W(test_scrub_memory_is_allocatable),
        W(test_target_above_maxmem_violation),
        W(test_maxmem_below_target_violation),
        W(test_maxmem_clip_to_whole_pages_is_no_violation),
        W(test_legitimate_sequences_have_no_violation),
        W(test_xs_read_write_rm),
        W(test_xs_directory_sorted),
        W(test_xs_generation),
        W(test_domain_keys),
        W(test_memory_offset_for_guests_booted_off_target),
        W(test_watch_fires_at_registration),
        W(test_watch_subtree),
        W(test_watch_fires_on_ancestor_rm),
        W(test_unwatch),
        W(test_watch_overflow),
        W(test_watch_fd_readable_while_pending),
        W(test_special_watches),
        W(test_domain_destroy_fires_watches),
        W(test_many_domains_and_watches),
        W(test_create_destroy),
        W(test_set_dynamic_range),
        W(test_set_balloon),
        W(test_shadow_allocation),
        W(test_state_json_shape),
        W(test_claims_and_pausing),
        W(test_virtual_clock_is_deterministic),
        cmocka_unit_test(test_real_clock),
        W(test_persistence_round_trip),
        cmocka_unit_test(test_journal_replays_after_sigkill),
        cmocka_unit_test(test_journal_drops_a_torn_last_record),
        cmocka_unit_test(test_journal_compaction),
        cmocka_unit_test(test_journal_refuses_symlinks),
        cmocka_unit_test(test_backend_sim_ops),
        W(test_counters_ignore_the_world_itself),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
