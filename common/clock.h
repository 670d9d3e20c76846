/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one monotonic clock of the daemon (real time; the simulated host keeps its own). */
#ifndef SQUEEZED_CLOCK_H
#define SQUEEZED_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds: never goes back, unrelated to the time of day. */
int64_t clock_monotonic_ms(void);

#endif
