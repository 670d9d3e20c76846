/* SPDX-License-Identifier: LGPL-2.1-only */
/* The simulated host as the service drives it (sim.* methods): an interface, not the sim. */
#ifndef SQUEEZED_SERVICE_SIM_H
#define SQUEEZED_SERVICE_SIM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Handed to service_new (struct service_options.sim) by whoever opened the host: the
 * simulated backend, or the fake libxenctrl/libxenstore of the tests, provide one
 * (sim/sim.h: sim_service_sim); on the real Xen backend it is absent (ops NULL) and
 * service_has_sim is false. server/ never includes sim/.
 *
 * The service calls these from its worker thread only, one at a time, with values it
 * has checked (server/request.h: domids 0 .. 32751, sizes 0 .. LIMIT_KIB_MAX, JSON
 * objects). Each returns 0, or -1 with *why (new string): the message of the
 * INVALID_PARAMS error the caller answers ("no simulated domain 7", "domain 7 already
 * exists", "domain.target_kib: ..."). Time passes through the backend (sleep_ms), not
 * through this interface.
 */
struct service_sim_ops {
    /* sim.state: { time_s, free_kib, domains, violations } (new reference). */
    json_t *(*state)(void *ctx);
    /* A domain object as sim.create_domain takes it. */
    int (*create_domain)(void *ctx, const json_t *domain, char **why);
    int (*destroy_domain)(void *ctx, uint32_t domid, char **why);
    int (*set_dynamic_range)(void *ctx, uint32_t domid, int64_t min_kib, int64_t max_kib,
                             char **why);
    /* A balloon object as sim.set_balloon takes it. */
    int (*set_balloon)(void *ctx, uint32_t domid, const json_t *balloon, char **why);
    /* sim.set_claim: the domain's outstanding Xen claim becomes kib (0 clears it). */
    int (*set_claim)(void *ctx, uint32_t domid, int64_t kib, char **why);
    /* sim.pause_domain: pause or unpause the domain (its balloon driver stops). */
    int (*pause_domain)(void *ctx, uint32_t domid, bool paused, char **why);
};

struct service_sim {
    const struct service_sim_ops *ops; /* NULL: no simulated host */
    void *ctx;                         /* borrowed: must outlive the service */
};

#endif
