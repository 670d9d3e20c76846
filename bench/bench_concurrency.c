/* SPDX-License-Identifier: LGPL-2.1-only */
/* Benchmark (issue 12): how long VM starts wait for memory, on the simulated host with the
 * virtual and the real clock: one reservation against the ideal; 8 parallel reservations
 * against one of 8 GiB and 8 in a row; a reservation sent during a long balance; metadata
 * calls during a long squeeze; target writes in an idle hour. Figures as ratios.
 * BENCH_QUICK=1 shortens the long real-clock squeeze (30 s) to 5 s. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "server/service.h"
#include "tests/support/svcworld.h"

#define MIB 1024LL
#define GIB (1024LL * 1024)

/* Four guests of [1, 4] GiB at 4 GiB, 1 GiB free: 12 GiB to give at 4 x rate. */
static struct svcworld_spec host(bool real_clock, double rate_kib_s)
{
    struct svcworld_spec s = {
        .n_guests = 4,
        .guest_min_kib = GIB,
        .guest_max_kib = 4 * GIB,
        .guest_kib = 4 * GIB,
        .rate_kib_s = rate_kib_s,
        .free_kib = GIB,
        .real_clock = real_clock,
        .balance_interval_ms = 3600 * 1000,
    };
    return s;
}

/* Host time in ms: the simulated clock (sim.state time_s) or the wall clock. */
static double host_ms(struct svcworld *w, bool real_clock)
{
    if (real_clock)
        return svcworld_wall_ms();
    struct service_error e = {0};
    json_t *st = service_sim_state(w->svc, &e);
    double t = json_number_value(json_object_get(st, "time_s")) * 1000.0;
    json_decref(st);
    return t;
}

struct call {
    struct svcworld *w;
    int64_t kib;
    pthread_barrier_t *start;
    int rc;
    double t0_ms, t1_ms; /* wall */
};

static void *reserve_main(void *arg)
{
    struct call *c = arg;
    struct service_error e = {0};
    char *id = NULL;
    if (c->start != NULL)
        pthread_barrier_wait(c->start);
    c->t0_ms = svcworld_wall_ms();
    c->rc = service_reserve_memory(c->w->svc, "bench", "xenopsd", c->kib, &id, &e);
    c->t1_ms = svcworld_wall_ms();
    service_error_clear(&e);
    free(id);
    return NULL;
}

static int reserve(struct svcworld *w, int64_t kib)
{
    struct call c = {.w = w, .kib = kib};
    reserve_main(&c);
    return c.rc;
}

/* Ideal time to free what `kib` needs beyond the free memory, at 4 x rate (ms). */
static double ideal_ms(const struct svcworld_spec *s, int64_t kib)
{
    return (double)(kib + 73728 - s->free_kib) / (4.0 * s->rate_kib_s) * 1000.0;
}

static void one_reservation(bool real)
{
    struct svcworld_spec s = host(real, (double)GIB);
    struct svcworld *w = svcworld_open(&s);
    double t0 = host_ms(w, real);
    int rc = reserve(w, 8 * GIB);
    double took = host_ms(w, real) - t0;
    printf("  one reservation of 8 GiB: %.0f ms, ideal %.0f ms: %.2fx ideal%s\n", took,
           ideal_ms(&s, 8 * GIB), took / ideal_ms(&s, 8 * GIB), rc == 0 ? "" : " (FAILED)");
    svcworld_close(w);
}

static void parallel_vs(bool real)
{
    struct svcworld_spec s = host(real, (double)GIB);
    enum { N = 8 };

    struct svcworld *w = svcworld_open(&s);
    double t0 = host_ms(w, real);
    int rc = reserve(w, N * GIB);
    double one_big = host_ms(w, real) - t0;
    svcworld_close(w);

    w = svcworld_open(&s);
    t0 = host_ms(w, real);
    for (int i = 0; i < N; i++)
        rc |= reserve(w, GIB);
    double in_row = host_ms(w, real) - t0;
    svcworld_close(w);

    w = svcworld_open(&s);
    struct call c[N];
    pthread_t th[N];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    t0 = host_ms(w, real);
    for (int i = 0; i < N; i++) {
        c[i] = (struct call){.w = w, .kib = GIB, .start = &start};
        pthread_create(&th[i], NULL, reserve_main, &c[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        rc |= c[i].rc;
    }
    double parallel = host_ms(w, real) - t0;
    size_t ops = svcworld_count_ops(w, "reserve");
    size_t violations = svcworld_violations(w);
    pthread_barrier_destroy(&start);
    svcworld_close(w);
    printf("  8 x 1 GiB in parallel: %.0f ms in %zu operation(s); 1 x 8 GiB: %.0f ms; "
           "8 x 1 GiB in a row: %.0f ms\n"
           "    parallel / one of 8 GiB = %.2f, parallel / in a row = %.2f, violations %zu%s\n",
           parallel, ops, one_big, in_row, parallel / one_big, parallel / in_row, violations,
           rc == 0 ? "" : " (a call FAILED)");
}

/* A balance handing back memory slowly (4 guests at 512 MiB of [512 MiB, 4 GiB], 8 GiB
 * free, 256 MiB/s), started by balance_memory; a reservation sent 0.5 s into it. */
struct balance_call {
    struct svcworld *w;
    double t0_ms, t1_ms;
};

static void *balance_main(void *arg)
{
    struct balance_call *b = arg;
    struct service_error e = {0};
    b->t0_ms = svcworld_wall_ms();
    service_balance_memory(b->w->svc, "bench", &e);
    b->t1_ms = svcworld_wall_ms();
    service_error_clear(&e);
    return NULL;
}

static void during_balance(bool real)
{
    struct svcworld_spec s = {
        .n_guests = 4,
        .guest_min_kib = 512 * MIB,
        .guest_max_kib = 4 * GIB,
        .guest_kib = 512 * MIB,
        .rate_kib_s = 256.0 * MIB,
        .free_kib = 8 * GIB,
        .real_clock = real,
        .balance_interval_ms = 3600 * 1000,
    };
    struct svcworld *w = svcworld_open(&s);
    if (!real) {
        /* Virtual clock: the balance runs in a few ms of wall time; the reservation is
         * queued before it so that it waits for it (old code) or preempts it. */
        printf("  reservation during a long balance: (real clock only)\n");
        svcworld_close(w);
        return;
    }
    struct balance_call b = {.w = w};
    pthread_t th;
    pthread_create(&th, NULL, balance_main, &b);
    for (int i = 0; i < 5000 && !svcworld_busy(w); i++)
        usleep(1000);
    usleep(500 * 1000);
    struct call c = {.w = w, .kib = GIB};
    reserve_main(&c);
    pthread_join(th, NULL);
    printf(
        "  1 GiB reservation sent 0.5 s into a balance (balance_memory) of %.0f ms: answered "
        "in %.0f ms: %.3f of the balance\n",
        b.t1_ms - b.t0_ms, c.t1_ms - c.t0_ms, (c.t1_ms - c.t0_ms) / (b.t1_ms - b.t0_ms));
    svcworld_close(w);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void metadata_during_squeeze(void)
{
    bool quick = getenv("BENCH_QUICK") != NULL;
    /* 12 GiB less 1 GiB free to free at 4 x rate: 30 s (5 s quick). */
    double secs = quick ? 5.0 : 30.0;
    struct svcworld_spec s = host(true, (double)(11 * GIB) / (4.0 * secs));
    struct svcworld *w = svcworld_open(&s);
    struct call big = {.w = w, .kib = 11 * GIB};
    pthread_t th;
    pthread_create(&th, NULL, reserve_main, &big);
    for (int i = 0; i < 5000 && !svcworld_busy(w); i++)
        usleep(1000);
    enum { MAX = 4000 };
    static double lat[MAX];
    size_t n = 0;
    while (n < MAX && svcworld_busy(w)) {
        struct service_error e = {0};
        char *out = NULL;
        double t0 = svcworld_wall_ms();
        if (n % 2 == 0)
            service_login(w->svc, "bench", "other", &out, &e);
        else
            service_query_reservation_of_domain(w->svc, "bench", "xenopsd", 1, &out, &e);
        lat[n++] = svcworld_wall_ms() - t0;
        service_error_clear(&e);
        free(out);
        usleep(5000);
    }
    pthread_join(th, NULL);
    qsort(lat, n, sizeof(lat[0]), cmp_double);
    if (n == 0) {
        printf("  metadata calls during a squeeze: none answered while busy\n");
    } else {
        double p50 = lat[n / 2], p99 = lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
        printf("  metadata calls (login, query) during a %.0f s squeeze: %zu calls, p50 %.2f "
               "ms, p99 %.2f ms, max %.2f ms; p99 / squeeze = %.5f\n",
               (big.t1_ms - big.t0_ms) / 1000.0, n, p50, p99, lat[n - 1],
               p99 / (big.t1_ms - big.t0_ms));
    }
    svcworld_close(w);
}

static void idle_hour(int64_t threshold_kib)
{
    struct svcworld_spec s = {
        .n_guests = 6,
        .guest_min_kib = 512 * MIB,
        .guest_max_kib = 2 * GIB,
        .guest_kib = GIB,
        .rate_kib_s = 256.0 * MIB,
        .free_kib = 4 * GIB,
        .stuck_guest = true,
        .balance_threshold_kib = threshold_kib,
    };
    struct svcworld *w = svcworld_open(&s);
    struct service_error e = {0};
    service_balance_memory(w->svc, "bench", &e);
    service_error_clear(&e);
    service_sim_advance(w->svc, 300, &e);
    int64_t before = svcworld_xenstore_writes(w);
    for (int i = 0; i < 60; i++)
        service_sim_advance(w->svc, 60, &e);
    int64_t writes = svcworld_xenstore_writes(w) - before;
    printf("  idle hour, 6 guests at their targets and a stuck one, threshold %lld KiB: "
           "%lld xenstore writes, %zu balance operations\n",
           (long long)threshold_kib, (long long)writes,
           svcworld_count_ops(w, "periodic_balance"));
    svcworld_close(w);
}

int main(void)
{
    log_quiet(true);
    for (int real = 0; real <= 1; real++) {
        printf("%s clock (4 guests of [1, 4] GiB, balloons at 1 GiB/s each unless said):\n",
               real ? "real" : "virtual");
        one_reservation(real);
        parallel_vs(real);
        during_balance(real);
    }
    metadata_during_squeeze();
    printf("virtual clock:\n");
    idle_hour(0);
    idle_hour(64 * MIB);
    return 0;
}
