/* SPDX-License-Identifier: LGPL-2.1-only */
/* Test and benchmark harness: a scenario on the simulated host, with cache and squeezer. */
#ifndef SQUEEZED_HARNESS_H
#define SQUEEZED_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "sim/sim.h"
#include "cache/domcache.h"
#include "server/squeeze.h"

/* Everything a squeeze needs, over one simulated world on the virtual clock. */
struct harness {
    struct sim *sim; /* owned by b */
    struct backend *b;
    struct domcache *dc;
    struct squeezer *sq;
    int64_t reserved_kib; /* the host reserve the squeezer keeps */
    /* Filled by the observer: what every round of the last operation did. */
    unsigned rounds;
    bool saw_stuck[64];         /* domids < 64 declared stuck at some round */
    bool saw_active[64];        /* domids < 64 declared active again */
    int64_t max_target_kib[64]; /* highest target written to each domid < 64 */
    int64_t min_sim_free_kib;   /* lowest host free memory seen in the sim at a round */
};

/* Whether harnesses opened from now on balloon domain 0 (manage-domain-zero, as
 * squeezed's own scenarios do). Default false. */
void harness_manage_domain_zero(bool manage);

/* Load `path` (relative to the repository root) on the virtual clock with watches
 * on. Aborts the test program with a message on failure. Caller frees with
 * harness_close. */
struct harness *harness_open(const char *path, int64_t reserved_kib);
/* The same from an already parsed scenario (borrowed). */
struct harness *harness_open_scenario(const struct sim_scenario *sc, int64_t reserved_kib);
void harness_close(struct harness *h);

/* Reset the observer's records (done before each operation by the helpers below). */
void harness_reset_records(struct harness *h);

/* Free memory the host can count on: sim free minus what every guest could still grow
 * into: max(0, min(target, maxmem) - actual) summed over domains (the sim's truth,
 * not the daemon's belief). */
int64_t harness_guaranteed_free_kib(struct harness *h);

/* Let the world run for ms with nobody changing targets. */
void harness_idle(struct harness *h, int64_t ms);

/* A booted, balloonable guest of 256 MiB in [128 MiB, 512 MiB], at its target; the
 * type cycles pv, hvm, pvinpvh with the domid. */
struct sim_domain_spec harness_guest(uint32_t domid);
/* A world of guests 1..n (the given specs when not NULL, else harness_guest) on
 * (n + 16) GiB with 8 GiB free, virtual clock. Exits the test program if the sim
 * refuses it. Caller frees with sim_free (or hands it to a backend). */
struct sim *harness_world(const struct sim_domain_spec *specs, size_t n);

#endif
