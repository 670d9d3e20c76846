/* SPDX-License-Identifier: LGPL-2.1-only */
/* Benchmark: the time of one policy round for 10, 1,000 and 32,000 domains. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/xalloc.h"
#include "policy/policy.h"

#define MIB 1024LL
#define GIB (1024LL * 1024)
#define RESERVED_KIB 73728
#define MIN_BATCH_S 0.3 /* run each row for at least this long */
#define MIN_RUNS 50

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* n domains at dynamic-min, with host free memory to lift them to about half range. */
static void make_host(struct policy_host *h, struct policy_domain *doms, size_t n)
{
    int64_t range_kib = 0;
    for (size_t i = 0; i < n; i++) {
        struct policy_domain *d = &doms[i];
        d->domid = (int32_t)i + 1;
        d->can_balloon = true;
        d->dynamic_min_kib = 512 * MIB + (int64_t)(i % 7) * 128 * MIB;
        d->dynamic_max_kib = d->dynamic_min_kib + GIB + (int64_t)(i % 5) * 256 * MIB;
        d->target_kib = d->dynamic_min_kib;
        d->actual_kib = d->target_kib;
        d->maxmem_kib = d->target_kib;
        d->inaccuracy_kib = POLICY_INACCURACY_KIB;
        range_kib += d->dynamic_max_kib - d->dynamic_min_kib;
    }
    h->n_domains = n;
    h->domains = doms;
    h->free_kib = RESERVED_KIB + range_kib / 2;
}

/* Balance until the verdict, with balloons that reach their targets at once. */
static int converge(struct policy_host *h, struct policy_domain *doms)
{
    struct policy_state *st = policy_state_new();
    struct policy_decision d;
    struct policy_request req = {.kind = POLICY_BALANCE, .reserved_kib = RESERVED_KIB};
    int rc = -1;

    policy_decision_init(&d);
    for (int64_t now_ms = 0; now_ms < 100 * 250; now_ms += 250) {
        if (policy_round(st, h, &req, now_ms, &d) < 0)
            break;
        if (d.verdict != POLICY_CONTINUE) {
            rc = d.verdict == POLICY_SUCCESS ? 0 : -1;
            break;
        }
        /* Ops are in domid order and domids are 1..n. */
        for (size_t k = 0; k < d.n_ops; k++) {
            struct policy_domain *x = &doms[d.ops[k].domid - 1];
            if (d.ops[k].kind == POLICY_OP_SET_MAXMEM) {
                x->maxmem_kib = d.ops[k].value_kib;
            } else {
                h->free_kib -= d.ops[k].value_kib - x->actual_kib;
                x->target_kib = d.ops[k].value_kib;
                x->actual_kib = x->target_kib;
            }
        }
    }
    policy_decision_free(&d);
    policy_state_free(st);
    return rc;
}

struct row {
    size_t runs;
    double median_us;
    double p90_us;
    size_t set_targets; /* SET_TARGET ops in one such round */
};

/* Time policy_round on the same host over and over, with one state (as in a loop). */
static void measure(const struct policy_host *h, struct row *out)
{
    struct policy_state *st = policy_state_new();
    struct policy_decision d;
    struct policy_request req = {.kind = POLICY_BALANCE, .reserved_kib = RESERVED_KIB};
    size_t cap = 1024, n = 0;
    double *samples = xmalloc(cap * sizeof(*samples));
    int64_t now_ms = 0;

    policy_decision_init(&d);
    /* Warm up: the first round of a state allocates its arrays. */
    policy_round(st, h, &req, now_ms, &d);
    double start = now_s();
    while (n < MIN_RUNS || now_s() - start < MIN_BATCH_S) {
        now_ms += 250;
        double t0 = now_s();
        policy_round(st, h, &req, now_ms, &d);
        double t1 = now_s();
        if (n == cap) {
            cap *= 2;
            samples = xreallocarray(samples, cap, sizeof(*samples));
        }
        samples[n++] = (t1 - t0) * 1e6;
    }
    qsort(samples, n, sizeof(*samples), cmp_double);
    out->runs = n;
    out->median_us = samples[n / 2];
    out->p90_us = samples[n * 9 / 10];
    out->set_targets = 0;
    for (size_t k = 0; k < d.n_ops; k++)
        if (d.ops[k].kind == POLICY_OP_SET_TARGET)
            out->set_targets++;
    free(samples);
    policy_decision_free(&d);
    policy_state_free(st);
}

int main(void)
{
    const size_t sizes[] = {10, 1000, 32000};

    printf("policy_round, one balance round (CLOCK_MONOTONIC, each row >= %.1f s of runs)\n",
           MIN_BATCH_S);
    printf("steady: every domain at its target, nothing to change;\n"
           "every target: host free memory dropped by a fifth of the total range\n\n");
    printf("%8s  %-13s %9s %14s %14s %12s\n", "domains", "round", "runs", "median (us)",
           "p90 (us)", "SET_TARGETs");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        struct policy_domain *doms = xcalloc(n, sizeof(*doms));
        struct policy_host h;
        struct row steady, every;

        make_host(&h, doms, n);
        if (converge(&h, doms) < 0) {
            fprintf(stderr, "bench_policy: %zu domains did not converge\n", n);
            return 1;
        }
        measure(&h, &steady);

        int64_t range_kib = 0;
        for (size_t i = 0; i < n; i++)
            range_kib += doms[i].dynamic_max_kib - doms[i].dynamic_min_kib;
        h.free_kib -= range_kib / 5;
        measure(&h, &every);
        if (steady.set_targets != 0 || every.set_targets != n) {
            fprintf(stderr, "bench_policy: unexpected rounds (%zu, %zu SET_TARGETs)\n",
                    steady.set_targets, every.set_targets);
            return 1;
        }

        printf("%8zu  %-13s %9zu %14.2f %14.2f %12zu\n", n, "steady", steady.runs,
               steady.median_us, steady.p90_us, steady.set_targets);
        printf("%8zu  %-13s %9zu %14.2f %14.2f %12zu\n", n, "every target", every.runs,
               every.median_us, every.p90_us, every.set_targets);
        free(doms);
    }
    return 0;
}
