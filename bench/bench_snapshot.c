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
 *
 * A snapshot's cost includes the backend's domain list and physinfo, here the simulated
 * host's (which reads one record per domain, reached through a pointer; Xen's is a
 * hypercall per 1,024 domains). The cache asks for the list 1,024 domains at a time and
 * builds each batch while it is in the processor's cache. "backend" is the time
 * the snapshot spent in those two calls (timed inside it, by wrapping the backend's
 * operations); "cache" is the rest of it: what cache/domcache.c costs. Both are the
 * medians over the runs of each size's per-snapshot figures. The last lines compare the
 * per-domain costs at each size with the smallest size's (linear: a ratio of 1).
 * Usage: [SNAPSHOT_RUNS=n] bench_snapshot [N...] (default 1000 10000 32000; at most
 * 32751 domains, Xen's domids).
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

/* The harness's backend with its domain list and physinfo timed: the time spent in them
 * is added to backend_ms. */
static const struct backend_ops *inner_ops;
static struct backend_ops timed_ops;
static double backend_ms;

static int timed_list_domains(struct backend *b, uint32_t first, struct backend_domain *out,
                              size_t max)
{
    double t0 = wall_ms();
    int rc = inner_ops->list_domains(b, first, out, max);
    backend_ms += wall_ms() - t0;
    return rc;
}

static int timed_physinfo(struct backend *b, struct backend_physinfo *out)
{
    double t0 = wall_ms();
    int rc = inner_ops->physinfo(b, out);
    backend_ms += wall_ms() - t0;
    return rc;
}

static void time_backend(struct backend *b)
{
    inner_ops = b->ops;
    timed_ops = *b->ops;
    timed_ops.list_domains = timed_list_domains;
    timed_ops.physinfo = timed_physinfo;
    b->ops = &timed_ops;
}

#define MAX_SIZES 16

int main(int argc, char **argv)
{
    log_quiet(true);
    size_t def[] = {1000, 10000, 32000};
    size_t n_sizes = argc > 1 ? (size_t)argc - 1 : 3;
    if (n_sizes > MAX_SIZES) {
        fprintf(stderr, "bench_snapshot: at most %d sizes\n", MAX_SIZES);
        return 2;
    }
    size_t sizes[MAX_SIZES];
    double per_dom[MAX_SIZES], cache_per_dom[MAX_SIZES];
    printf("%8s %12s %10s %12s %12s %17s %13s\n", "domains", "snapshot ms", "ns/domain",
           "backend ns/d", "cache ns/d", "reserve ms (1+1)", "reference ms");
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
        time_backend(h->b);
        struct domcache_snapshot snap;
        domcache_snapshot_init(&snap);
        double *snap_ms = xcalloc((size_t)runs, sizeof(double));
        double *back_ms = xcalloc((size_t)runs, sizeof(double));
        double *res_ms = xcalloc((size_t)runs, sizeof(double));
        for (int i = -1; i < runs; i++) {
            backend_ms = 0;
            double t0 = wall_ms();
            if (domcache_snapshot(h->dc, NULL, 0, &snap) < 0) {
                fprintf(stderr, "bench_snapshot: snapshot failed\n");
                return 1;
            }
            double t1 = wall_ms();
            double snap_backend_ms = backend_ms;
            struct squeeze_result res = {0};
            if (squeeze_free(h->sq, 1024, &res) < 0 || res.verdict != POLICY_SUCCESS) {
                fprintf(stderr, "bench_snapshot: the reserve failed\n");
                return 1;
            }
            double t2 = wall_ms();
            squeeze_result_free(&res);
            if (i >= 0) { /* i == -1 warms up */
                snap_ms[i] = t1 - t0;
                back_ms[i] = snap_backend_ms;
                res_ms[i] = t2 - t1;
            }
        }
        double s = median(snap_ms, runs), bk = median(back_ms, runs), r = median(res_ms, runs);
        sizes[k] = n;
        per_dom[k] = s * 1e6 / (double)n;
        cache_per_dom[k] = (s - bk) * 1e6 / (double)n;
        printf("%8zu %12.3f %10.1f %12.1f %12.1f %17.3f %13.3f\n", n, s, per_dom[k],
               bk * 1e6 / (double)n, cache_per_dom[k], r, r + s);
        if (argc > 1 && n_sizes == 1)
            printf("reference %.3f\n", r + s);
        free(snap_ms);
        free(back_ms);
        free(res_ms);
        domcache_snapshot_free(&snap);
        h->b->ops = inner_ops;
        harness_close(h);
    }
    /* Linearity: each size's cost per domain against the smallest size's (the reference,
     * were the snapshot linear). */
    size_t lo = 0;
    for (size_t k = 1; k < n_sizes; k++)
        if (sizes[k] < sizes[lo])
            lo = k;
    for (size_t k = 0; n_sizes > 1 && k < n_sizes; k++) {
        if (k == lo)
            continue;
        printf("per domain at %zu vs %zu: snapshot %.1f / %.1f ns (ratio %.2f), cache %.1f / "
               "%.1f ns (ratio %.2f)\n",
               sizes[k], sizes[lo], per_dom[k], per_dom[lo], per_dom[k] / per_dom[lo],
               cache_per_dom[k], cache_per_dom[lo], cache_per_dom[k] / cache_per_dom[lo]);
    }
    return 0;
}
