/* SPDX-License-Identifier: LGPL-2.1-only */
/* Benchmark: a whole reservation on 1,000 simulated guests (rounds, simulated s, wall). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "tests/support/harness.h"

#define RUNS 7
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

int main(void)
{
    log_quiet(true);
    const int64_t asks_gib[] = {10, 100, 400};
    printf("reservation on scenarios/thousand-guests.json (1,000 guests, virtual clock,\n"
           "poll interval 250 ms, rate 256 MiB/s per guest), %d runs each\n\n",
           RUNS);
    printf("%-10s %-8s %8s %14s %16s\n", "ask", "verdict", "rounds", "simulated s",
           "wall ms (median)");
    for (size_t a = 0; a < sizeof(asks_gib) / sizeof(asks_gib[0]); a++) {
        double wall[RUNS];
        struct squeeze_result res = {0};
        for (int r = 0; r < RUNS; r++) {
            struct harness *h = harness_open("scenarios/thousand-guests.json", 73728);
            squeeze_result_free(&res);
            double t0 = wall_ms();
            if (squeeze_free(h->sq, asks_gib[a] * GIB, &res) < 0) {
                fprintf(stderr, "squeeze failed\n");
                return 1;
            }
            wall[r] = wall_ms() - t0;
            harness_close(h);
        }
        qsort(wall, RUNS, sizeof(wall[0]), cmp_double);
        printf("%-4lld GiB   %-8s %8u %14.2f %16.1f\n", (long long)asks_gib[a],
               res.verdict == POLICY_SUCCESS ? "success" : "failed", res.rounds,
               (double)res.duration_ms / 1000.0, wall[RUNS / 2]);
        squeeze_result_free(&res);
    }
    return 0;
}
