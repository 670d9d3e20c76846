/* SPDX-License-Identifier: LGPL-2.1-only */
/* The real service over a simulated host of identical guests, for concurrency tests and
 * benches. */
#include "tests/support/svcworld.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "common/xalloc.h"
#include "server/service_life.h"
#include "sim/sim.h"
#include "sim/sim_service.h"

struct svcworld *svcworld_open(const struct svcworld_spec *spec)
{
    size_t n = spec->n_guests + (spec->stuck_guest ? 1 : 0);
    struct sim_domain_spec *d = xcalloc(n + 1, sizeof(*d));
    sim_domain_spec_default(&d[0], 0);
    d[0].target_kib = d[0].actual_kib = d[0].maxmem_kib = 1024 * 1024;
    d[0].dynamic_min_kib = d[0].dynamic_max_kib = 1024 * 1024;
    int64_t total_kib = spec->free_kib + 1024 * 1024;
    for (size_t i = 1; i <= n; i++) {
        struct sim_domain_spec *g = &d[i];
        sim_domain_spec_default(g, (uint32_t)i);
        g->dynamic_min_kib = spec->guest_min_kib;
        g->dynamic_max_kib = spec->guest_max_kib;
        g->target_kib = g->actual_kib = spec->guest_kib;
        g->maxmem_kib = spec->guest_max_kib;
        g->balloon.rate_kib_s = spec->rate_kib_s;
        if (i > spec->n_guests) { /* the stuck one */
            g->actual_kib = spec->guest_kib + 256 * 1024;
            g->balloon.model = SIM_BALLOON_STUCK;
        }
        total_kib += g->actual_kib;
    }
    struct sim_scenario sc = {0};
    sc.name = (char *)"svcworld";
    sc.host.total_kib = total_kib;
    sc.host.free_kib = spec->free_kib;
    sc.domains = d;
    sc.n_domains = n + 1;
    char *err = NULL;
    struct sim *s = sim_new(&sc, spec->real_clock ? SIM_CLOCK_REAL : SIM_CLOCK_VIRTUAL, &err);
    free(d);
    if (s == NULL) {
        fprintf(stderr, "svcworld: sim_new: %s\n", err ? err : "?");
        exit(2);
    }
    struct service_options o = {
        .reserved_host_kib = 73728,
        .poll_ms = spec->poll_ms > 0 ? spec->poll_ms : 250,
        .balance_interval_ms =
            spec->balance_interval_ms > 0 ? spec->balance_interval_ms : 10000,
#ifndef SVCWORLD_BEFORE_ISSUE_12 /* to measure the code before it, in a scratch tree */
        .balance_threshold_kib = spec->balance_threshold_kib,
#endif
        .use_watches = true,
        .dom0_dynamic_min_bytes = -1,
        .dom0_dynamic_max_bytes = -1,
        .sim = sim_service_sim(s),
    };
    struct svcworld *w = xcalloc(1, sizeof(*w));
    w->reserved_kib = o.reserved_host_kib;
    w->svc = service_new(backend_sim_open(s), &o, &err);
    if (w->svc == NULL) {
        fprintf(stderr, "svcworld: service_new: %s\n", err ? err : "?");
        exit(2);
    }
    struct service_error e = {0};
    char *session = NULL;
    if (service_login(w->svc, "svcworld", "xenopsd", &session, &e) < 0) {
        fprintf(stderr, "svcworld: login failed\n");
        exit(2);
    }
    free(session);
    return w;
}

void svcworld_close(struct svcworld *w)
{
    if (w == NULL)
        return;
    service_free(w->svc);
    free(w);
}

size_t svcworld_count_ops(struct svcworld *w, const char *kind)
{
    json_t *st = service_status(w->svc);
    size_t i, n = 0;
    json_t *op;
    json_array_foreach(json_object_get(st, "operations"), i, op)
    {
        const char *k = json_string_value(json_object_get(op, "kind"));
        if (k != NULL && strcmp(k, kind) == 0)
            n++;
    }
    json_decref(st);
    return n;
}

json_t *svcworld_last_op(struct svcworld *w, const char *kind)
{
    json_t *st = service_status(w->svc);
    size_t i;
    json_t *op, *last = NULL;
    json_array_foreach(json_object_get(st, "operations"), i, op)
    {
        const char *k = json_string_value(json_object_get(op, "kind"));
        if (k != NULL && strcmp(k, kind) == 0)
            last = op;
    }
    json_incref(last);
    json_decref(st);
    return last;
}

bool svcworld_busy(struct svcworld *w)
{
    json_t *st = service_status(w->svc);
    bool busy = json_is_true(json_object_get(json_object_get(st, "daemon"), "busy"));
    json_decref(st);
    return busy;
}

int64_t svcworld_xenstore_writes(struct svcworld *w)
{
    json_t *st = service_status(w->svc);
    int64_t n =
        json_integer_value(json_object_get(json_object_get(st, "cache"), "xenstore_writes"));
    json_decref(st);
    return n;
}

static json_t *sim_state(struct svcworld *w)
{
    struct service_error e = {0};
    json_t *st = service_sim_state(w->svc, &e);
    if (st == NULL) {
        fprintf(stderr, "svcworld: sim.state failed\n");
        exit(2);
    }
    return st;
}

size_t svcworld_violations(struct svcworld *w)
{
    json_t *st = sim_state(w);
    size_t n = json_array_size(json_object_get(st, "violations"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(st, "violations"), i, v)
        fprintf(stderr, "violation: %s\n", json_string_value(v));
    json_decref(st);
    return n;
}

int64_t svcworld_guaranteed_free_kib(struct svcworld *w)
{
    json_t *st = sim_state(w);
    int64_t g = json_integer_value(json_object_get(st, "free_kib"));
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(st, "domains"), i, d)
    {
        int64_t target = json_integer_value(json_object_get(d, "target_kib"));
        int64_t actual = json_integer_value(json_object_get(d, "actual_kib"));
        int64_t maxmem = json_integer_value(json_object_get(d, "maxmem_kib"));
        int64_t ceiling = target + 4 < maxmem ? target + 4 : maxmem;
        if (ceiling > actual)
            g -= ceiling - actual;
    }
    json_decref(st);
    return g;
}

int64_t svcworld_reserved_kib(struct svcworld *w)
{
    json_t *st = service_status(w->svc);
    int64_t sum = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(st, "reservations"), i, r) sum +=
        json_integer_value(json_object_get(r, "kib"));
    json_decref(st);
    return sum;
}

double svcworld_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
