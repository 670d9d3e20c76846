/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one monotonic clock of the daemon (real time; the simulated host keeps its own). */
#include "common/clock.h"

#include <time.h>

int64_t clock_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
