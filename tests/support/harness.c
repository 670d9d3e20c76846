/* SPDX-License-Identifier: LGPL-2.1-only */
/* Test and benchmark harness: a scenario on the simulated host, with cache and squeezer. */
#include "tests/support/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/xalloc.h"

/* Every test and benchmark binary links this file: jansson allocates through xmalloc
 * there as in the daemon (set before main, once). */
static void harness_json_alloc(void) __attribute__((constructor));
static void harness_json_alloc(void)
{
    json_set_alloc_funcs(xmalloc, free);
}

static void observe(void *ctx, const struct domcache_snapshot *snap,
                    const struct policy_decision *d)
{
    struct harness *h = ctx;
    (void)snap;
    h->rounds++;
    for (size_t i = 0; i < d->n_newly_stuck; i++)
        if (d->newly_stuck[i] >= 0 && d->newly_stuck[i] < 64)
            h->saw_stuck[d->newly_stuck[i]] = true;
    for (size_t i = 0; i < d->n_newly_active; i++)
        if (d->newly_active[i] >= 0 && d->newly_active[i] < 64)
            h->saw_active[d->newly_active[i]] = true;
    for (size_t i = 0; i < d->n_ops; i++) {
        const struct policy_op *op = &d->ops[i];
        if (op->kind == POLICY_OP_SET_TARGET && op->domid >= 0 && op->domid < 64 &&
            op->value_kib > h->max_target_kib[op->domid])
            h->max_target_kib[op->domid] = op->value_kib;
    }
    int64_t free_kib = sim_host_free_kib(h->sim);
    if (free_kib < h->min_sim_free_kib)
        h->min_sim_free_kib = free_kib;
}

void harness_reset_records(struct harness *h)
{
    h->rounds = 0;
    memset(h->saw_stuck, 0, sizeof(h->saw_stuck));
    memset(h->saw_active, 0, sizeof(h->saw_active));
    for (int i = 0; i < 64; i++)
        h->max_target_kib[i] = -1;
    h->min_sim_free_kib = INT64_MAX;
}

static bool manage_domain_zero;

void harness_manage_domain_zero(bool manage)
{
    manage_domain_zero = manage;
}

struct harness *harness_open_scenario(const struct sim_scenario *sc, int64_t reserved_kib)
{
    char *err = NULL;
    struct sim *sim = sim_new(sc, SIM_CLOCK_VIRTUAL, &err);
    if (sim == NULL) {
        fprintf(stderr, "harness: scenario refused: %s\n", err ? err : "?");
        exit(2);
    }
    struct harness *h = xcalloc(1, sizeof(*h));
    h->sim = sim;
    h->b = backend_sim_open(sim);
    struct domcache_config dcfg = {.use_watches = true,
                                   .manage_domain_zero = manage_domain_zero};
    h->dc = domcache_new(h->b, &dcfg);
    struct squeeze_config scfg = {
        .reserved_host_kib = reserved_kib,
        .poll_ms = 250,
        .timeout_ms = 3600 * 1000,
    };
    h->reserved_kib = reserved_kib;
    h->sq = squeezer_new(h->b, h->dc, &scfg, NULL, NULL);
    squeeze_set_observer(h->sq, observe, h);
    harness_reset_records(h);
    return h;
}

struct harness *harness_open(const char *path, int64_t reserved_kib)
{
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    if (sim_scenario_load(path, &sc, &err) < 0) {
        fprintf(stderr, "harness: %s: %s\n", path, err ? err : "?");
        exit(2);
    }
    struct harness *h = harness_open_scenario(sc, reserved_kib);
    sim_scenario_free(sc);
    return h;
}

void harness_close(struct harness *h)
{
    if (h == NULL)
        return;
    squeezer_free(h->sq);
    domcache_free(h->dc);
    backend_close(h->b);
    free(h);
}

int64_t harness_guaranteed_free_kib(struct harness *h)
{
    struct backend_domain *doms = NULL;
    size_t n = 0;
    if (sim_list_domains(h->sim, &doms, &n) < 0)
        return INT64_MIN;
    int64_t free_kib = sim_host_free_kib(h->sim);
    for (size_t i = 0; i < n; i++) {
        int64_t actual, target, maxmem;
        if (sim_domain_memory(h->sim, doms[i].domid, &actual, &target, &maxmem) < 0)
            continue;
        int64_t reach = target; /* a balloon driver never grows past its target */
        if (maxmem < reach)
            reach = maxmem;
        if (reach > actual)
            free_kib -= reach - actual;
    }
    free(doms);
    return free_kib;
}

void harness_idle(struct harness *h, int64_t ms)
{
    sim_advance(h->sim, ms);
}

struct sim_domain_spec harness_guest(uint32_t domid)
{
    const int64_t mib = 1024;
    struct sim_domain_spec d;
    sim_domain_spec_default(&d, domid);
    d.type = domid % 3 == 0   ? DOMAIN_TYPE_PV
             : domid % 3 == 1 ? DOMAIN_TYPE_HVM
                              : DOMAIN_TYPE_PVINPVH;
    d.dynamic_min_kib = 128 * mib;
    d.dynamic_max_kib = 512 * mib;
    d.target_kib = 256 * mib;
    d.actual_kib = 256 * mib;
    d.maxmem_kib = 512 * mib;
    return d;
}

struct sim *harness_world(const struct sim_domain_spec *specs, size_t n)
{
    const int64_t gib = 1024 * 1024;
    struct sim_scenario sc = {0};
    sc.name = (char *)"test";
    sc.host.total_kib = (int64_t)(n + 16) * gib;
    sc.host.free_kib = 8 * gib;
    struct sim_domain_spec *d = xcalloc(n ? n : 1, sizeof(*d));
    for (size_t i = 0; i < n; i++)
        d[i] = specs != NULL ? specs[i] : harness_guest((uint32_t)i + 1);
    sc.domains = d;
    sc.n_domains = n;
    char *err = NULL;
    struct sim *s = sim_new(&sc, SIM_CLOCK_VIRTUAL, &err);
    if (s == NULL) {
        fprintf(stderr, "harness: sim_new: %s\n", err ? err : "?");
        exit(2);
    }
    free(d);
    return s;
}
