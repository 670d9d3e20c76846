/* SPDX-License-Identifier: LGPL-2.1-only */
/* Benchmark: snapshot cost per domain by host size, and the floor of a reserve. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "tests/support/harness.h"

/*
 * Hosts as bench/gen_scenario.sh makes them (N booted guests of 64 MiB in [32 MiB,
 * 64 MiB] at their maximum, 4 GiB free), watches on, virtual clock. For each size:
 * the median steady-state snapshot, its cost per domain, and the median in-process
 * reserve of 1 MiB that needs no ballooning (one snapshot + one policy round, the fast
 * path). "reference" is what the daemon's reserve can at best cost: that reserve plus
 * the one snapshot of the check after it (issue 13: two snapshots and one round).
 * Usage: [SNAPSHOT_RUNS=n] bench_snapshot [N...] (default 1000 10000 32000).
 */

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

static struct harness *open_host(size_t n)
{
    struct sim_scenario sc = {0};
    sc.name = (char *)"bench";
    sc.host.free_kib = 4 * GIB;
    sc.host.total_kib = (int64_t)n * 64 * 1024 + 8 * GIB;
    sc.domains = xcalloc(n, sizeof(*sc.domains));
    sc.n_domains = n;
    for (size_t i = 0; i < n; i++) {
        struct sim_domain_spec *d = &sc.domains[i];
        sim_domain_spec_default(d, (uint32_t)i + 1);
        d->dynamic_min_kib = 32 * 1024;
        d->dynamic_max_kib = d->target_kib = d->actual_kib = 64 * 1024;
    }
    struct harness *h = harness_open_scenario(&sc, 73728);
    free(sc.domains);
    return h;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    log_quiet(true);
    size_t def[] = {1000, 10000, 32000};
    size_t n_sizes = argc > 1 ? (size_t)argc - 1 : 3;
    printf("%8s %14s %14s %18s %14s\n", "domains", "snapshot ms", "ns/domain",
           "reserve ms (1+1)", "reference ms");
    for (size_t k = 0; k < n_sizes; k++) {
        size_t n = argc > 1 ? strtoul(argv[k + 1], NULL, 10) : def[k];
        if (n == 0 || n > 32751) {
            fprintf(stderr, "bench_snapshot: bad size %s\n", argv[k + 1]);
            return 2;
        }
        int runs = n >= 10000 ? 11 : 51;
        const char *env = getenv("SNAPSHOT_RUNS");
        if (env != NULL && atoi(env) > 0)
            runs = atoi(env);
        struct harness *h = open_host(n);
        struct domcache_snapshot snap;
        domcache_snapshot_init(&snap);
        double *snap_ms = xcalloc((size_t)runs, sizeof(double));
        double *res_ms = xcalloc((size_t)runs, sizeof(double));
        for (int i = -1; i < runs; i++) {
            double t0 = wall_ms();
            if (domcache_snapshot(h->dc, NULL, 0, &snap) < 0) {
                fprintf(stderr, "bench_snapshot: snapshot failed\n");
                return 1;
            }
            double t1 = wall_ms();
            struct squeeze_result res = {0};
            if (squeeze_free(h->sq, 1024, &res) < 0 || res.verdict != POLICY_SUCCESS) {
                fprintf(stderr, "bench_snapshot: the reserve failed\n");
                return 1;
            }
            double t2 = wall_ms();
            squeeze_result_free(&res);
            if (i >= 0) { /* i == -1 warms up */
                snap_ms[i] = t1 - t0;
                res_ms[i] = t2 - t1;
            }
        }
        double s = median(snap_ms, runs), r = median(res_ms, runs);
        printf("%8zu %14.3f %14.1f %18.3f %14.3f\n", n, s, s * 1e6 / (double)n, r, r + s);
        if (argc > 1 && n_sizes == 1)
            printf("reference %.3f\n", r + s);
        free(snap_ms);
        free(res_ms);
        domcache_snapshot_free(&snap);
        harness_close(h);
    }
    return 0;
}
