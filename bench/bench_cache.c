/* SPDX-License-Identifier: LGPL-2.1-only */
/* Benchmark: xenstore reads and wall time per steady-state snapshot, by host size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sim.h"
#include "cache/domcache.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tests/fakexen/fakexen.h"

#define MIB 1024LL
#define GIB (1024LL * 1024)

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* n booted, balloonable guests of 256 MiB in [128 MiB, 512 MiB], virtual clock. */
static struct sim *world(size_t n)
{
    struct sim_scenario sc = {0};
    sc.name = (char *)"bench";
    sc.host.total_kib = (int64_t)(n + 16) * GIB;
    sc.host.free_kib = 8 * GIB;
    sc.domains = xcalloc(n, sizeof(*sc.domains));
    sc.n_domains = n;
    for (size_t i = 0; i < n; i++) {
        struct sim_domain_spec *d = &sc.domains[i];
        sim_domain_spec_default(d, (uint32_t)i + 1);
        d->dynamic_min_kib = 128 * MIB;
        d->dynamic_max_kib = 512 * MIB;
        d->target_kib = d->actual_kib = 256 * MIB;
        d->maxmem_kib = 512 * MIB;
    }
    char *err = NULL;
    struct sim *s = sim_new(&sc, SIM_CLOCK_VIRTUAL, &err);
    if (s == NULL) {
        fprintf(stderr, "bench_cache: %s\n", err);
        exit(1);
    }
    free(sc.domains);
    return s;
}

struct result {
    double warmup_ms;
    double reads_per_snapshot;
    double hypercalls_per_snapshot;
    double median_ms;
};

/* Warm up, then time `runs` snapshots of the unchanged host. */
static struct result measure(struct backend *b, bool watches, int runs)
{
    struct domcache_config cfg = {.use_watches = watches};
    struct domcache *dc = domcache_new(b, &cfg);
    struct domcache_snapshot snap;
    domcache_snapshot_init(&snap);
    struct result r = {0};
    double t0 = wall_ms();
    if (domcache_snapshot(dc, NULL, 0, &snap) < 0 ||
        domcache_snapshot(dc, NULL, 0, &snap) < 0) {
        fprintf(stderr, "bench_cache: snapshot failed\n");
        exit(1);
    }
    r.warmup_ms = wall_ms() - t0;
    double *ms = xcalloc((size_t)runs, sizeof(*ms));
    struct domcache_counters c0, c1;
    domcache_counters(dc, &c0);
    for (int i = 0; i < runs; i++) {
        double t = wall_ms();
        if (domcache_snapshot(dc, NULL, 0, &snap) < 0) {
            fprintf(stderr, "bench_cache: snapshot failed\n");
            exit(1);
        }
        ms[i] = wall_ms() - t;
    }
    domcache_counters(dc, &c1);
    qsort(ms, (size_t)runs, sizeof(*ms), cmp_double);
    r.median_ms = ms[runs / 2];
    r.reads_per_snapshot = (double)(c1.xenstore_reads - c0.xenstore_reads) / runs;
    r.hypercalls_per_snapshot = (double)(c1.hypercalls - c0.hypercalls) / runs;
    free(ms);
    domcache_snapshot_free(&snap);
    domcache_free(dc);
    return r;
}

static void row(const char *backend, size_t n, bool watches, const struct result *r)
{
    printf("%-10s %8zu %-8s %12.1f %12.1f %14.3f %12.1f\n", backend, n, watches ? "on" : "off",
           r->reads_per_snapshot, r->hypercalls_per_snapshot, r->median_ms, r->warmup_ms);
}

int main(void)
{
    log_quiet(true);
    const size_t sizes[] = {10, 1000, 32000};
    printf("steady-state snapshots of an unchanged host (booted guests, virtual clock)\n\n");
    printf("%-10s %8s %-8s %12s %12s %14s %12s\n", "backend", "domains", "watches",
           "reads/snap", "hcalls/snap", "median ms/snap", "warm-up ms");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        int runs = n >= 32000 ? 15 : n >= 1000 ? 101 : 1001;
        for (int w = 1; w >= 0; w--) {
            struct backend *b = backend_sim_open(world(n));
            struct result r = measure(b, w, runs);
            row("sim", n, w, &r);
            backend_close(b);
        }
    }
    /* The very same backend/xen.c over the fake libraries. */
    for (int w = 1; w >= 0; w--) {
        struct sim *s = world(1000);
        fakexen_set_world(s);
        char *err = NULL;
        struct backend *b = backend_xen_open(&err);
        if (b == NULL) {
            fprintf(stderr, "bench_cache: %s\n", err);
            return 1;
        }
        struct result r = measure(b, w, 101);
        row("xen(fake)", 1000, w, &r);
        backend_close(b);
        fakexen_set_world(NULL);
        sim_free(s);
    }
    return 0;
}
