/* SPDX-License-Identifier: LGPL-2.1-only */
/* Creating, stopping and freeing the service of server/service.h (for daemon/, tests). */
#ifndef SQUEEZED_SERVICE_LIFE_H
#define SQUEEZED_SERVICE_LIFE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "server/service_sim.h"

struct service; /* server/service.h */

/*
 * The other half of service.c's interface: server/service.h is the front end's
 * contract (the calls it makes); this is what daemon/ needs to build one.
 */

#define SQUEEZED_VERSION "0.1.0"

struct service_options {
    int64_t reserved_host_kib;     /* the host reserve (slush fund) */
    int64_t poll_ms;               /* wait between squeeze rounds */
    int64_t balance_interval_ms;   /* periodic balance check */
    int64_t balance_threshold_kib; /* no periodic balance moving less (0: any change) */
    bool use_watches;              /* xenstore watches for the cache */
    bool manage_domain_zero;
    int64_t dom0_dynamic_min_bytes; /* managed dom0's range; -1: leave dom0's own */
    int64_t dom0_dynamic_max_bytes;
    int64_t max_reservations_per_session; /* 0: LIMIT_RESERVATIONS_PER_SESSION_DEFAULT */
    struct service_sim sim; /* the simulated host's sim.* interface; ops NULL: none (the
                               sim.* methods are then not offered) */
};

/* Takes ownership of b (also on failure). Builds the cache, the squeezer and the
 * reservations (read back from xenstore), takes the first snapshot (host figures for
 * get_host_initial_free_memory), publishes the first status, starts the worker thread.
 * Returns NULL and *err (new string) if the host cannot be read. */
struct service *service_new(struct backend *b, const struct service_options *o, char **err);

/* Stop the worker and wait for it: the running operation ends (cancelled), callers
 * queued or arriving later get INTERNAL "shutting down". service_status keeps working.
 * Idempotent. */
void service_stop(struct service *s);

/* Stop (if not yet) and free everything, the backend included. NULL allowed. */
void service_free(struct service *s);

/* "sim" / "xen"; "real" / "virtual" (borrowed, static strings). */
const char *service_backend_name(const struct service *s);
const char *service_clock_name(const struct service *s);

#endif
