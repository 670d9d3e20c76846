/* SPDX-License-Identifier: LGPL-2.1-only */
/* The real service over a simulated host of identical guests, for concurrency tests and
 * benches. */
#ifndef SQUEEZED_SVCWORLD_H
#define SQUEEZED_SVCWORLD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/service.h"

/* A host of n_guests identical guests (domids 1..n) plus dom0 (1 GiB, fixed). */
struct svcworld_spec {
    size_t n_guests;
    int64_t guest_min_kib, guest_max_kib; /* each guest's dynamic range */
    int64_t guest_kib;                    /* target and actual at start */
    double rate_kib_s;                    /* every balloon's rate */
    int64_t free_kib;                     /* host free memory at start */
    bool real_clock;                      /* else virtual */
    bool stuck_guest; /* one more guest (domid n+1): stuck 256 MiB above its target */
    int64_t poll_ms;  /* 0: 250 */
    int64_t balance_interval_ms; /* 0: 10000 */
    int64_t balance_threshold_kib;
};

struct svcworld {
    struct service *svc;
    int64_t reserved_kib; /* the host reserve (73728) */
};

/* Opens the service with the session "xenopsd" logged in. Exits the program on failure. */
struct svcworld *svcworld_open(const struct svcworld_spec *spec);
void svcworld_close(struct svcworld *w);

/* From the published status: the operations of `kind` (count), the last one of it
 * (new reference or NULL), the daemon's busy flag, the cache's xenstore writes. */
size_t svcworld_count_ops(struct svcworld *w, const char *kind);
json_t *svcworld_last_op(struct svcworld *w, const char *kind);
bool svcworld_busy(struct svcworld *w);
int64_t svcworld_xenstore_writes(struct svcworld *w);

/* Through sim.state: the violations logged, and the memory the host can count on
 * (free minus what every guest may still grow into, up to target and maxmem). */
size_t svcworld_violations(struct svcworld *w);
int64_t svcworld_guaranteed_free_kib(struct svcworld *w);
/* The sum of the published reservations (KiB). */
int64_t svcworld_reserved_kib(struct svcworld *w);

/* Wall clock, ms (CLOCK_MONOTONIC). */
double svcworld_wall_ms(void);

#endif
