/* SPDX-License-Identifier: LGPL-2.1-only */
/* The service's sim.* interface over a struct sim: parse, apply, say what went wrong. */
#include "sim/sim_service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"

/* The message for a failed call on domid (why taken; used when rc says nothing more). */
static int errno_why(int rc, int64_t domid, char *why, char **out)
{
    if (rc == -ENOENT)
        *out = xasprintf("no simulated domain %" PRId64, domid);
    else if (rc == -EEXIST)
        *out = xasprintf("domain %" PRId64 " already exists", domid);
    else if (rc == -ENOMEM)
        *out = xasprintf("the simulated host has not the memory for domain %" PRId64, domid);
    else if (why != NULL)
        *out = xasprintf("domain %" PRId64 ": %s", domid, why);
    else
        *out = xasprintf("domain %" PRId64 ": %s", domid, strerror(-rc));
    free(why);
    return -1;
}

static json_t *ss_state(void *ctx)
{
    return sim_state_json(ctx);
}

static int ss_create_domain(void *ctx, const json_t *domain, char **why)
{
    struct sim_domain_spec spec;
    char *text = NULL;
    if (sim_domain_spec_from_json(domain, "domain", &spec, &text) < 0) {
        *why = text;
        return -1;
    }
    int rc = sim_create_domain(ctx, &spec, &text);
    if (rc < 0)
        return errno_why(rc, spec.domid, text, why);
    log_info("domid %u: created in the simulated host", spec.domid);
    return 0;
}

static int ss_destroy_domain(void *ctx, uint32_t domid, char **why)
{
    int rc = sim_destroy_domain(ctx, domid);
    if (rc < 0)
        return errno_why(rc, domid, NULL, why);
    log_info("domid %u: destroyed in the simulated host", domid);
    return 0;
}

static int ss_set_dynamic_range(void *ctx, uint32_t domid, int64_t min_kib, int64_t max_kib,
                                char **why)
{
    int rc = sim_set_dynamic_range(ctx, domid, min_kib, max_kib);
    if (rc == -EINVAL)
        return errno_why(
            rc, domid,
            xasprintf("bad dynamic range [%" PRId64 ", %" PRId64 "] KiB", min_kib, max_kib),
            why);
    if (rc < 0)
        return errno_why(rc, domid, NULL, why);
    return 0;
}

static int ss_set_balloon(void *ctx, uint32_t domid, const json_t *balloon, char **why)
{
    struct sim_balloon bal;
    char *text = NULL;
    if (sim_balloon_from_json(balloon, "balloon", &bal, &text) < 0) {
        *why = text;
        return -1;
    }
    int rc = sim_set_balloon(ctx, domid, &bal);
    if (rc < 0)
        return errno_why(rc, domid, NULL, why);
    return 0;
}

static int ss_set_claim(void *ctx, uint32_t domid, int64_t kib, char **why)
{
    int rc = sim_set_claim(ctx, domid, kib);
    if (rc == -ENOMEM || rc == -EINVAL)
        return errno_why(-EINVAL, domid,
                         xasprintf("a claim of %" PRId64 " KiB is more than the host's free "
                                   "memory not claimed by others",
                                   kib),
                         why);
    if (rc < 0)
        return errno_why(rc, domid, NULL, why);
    log_dom_info(domid, "claim of %" PRId64 " KiB in the simulated host", kib);
    return 0;
}

static int ss_pause_domain(void *ctx, uint32_t domid, bool paused, char **why)
{
    int rc = sim_pause_domain(ctx, domid, paused);
    if (rc < 0)
        return errno_why(rc, domid, NULL, why);
    log_dom_info(domid, "%s in the simulated host", paused ? "paused" : "unpaused");
    return 0;
}

static const struct service_sim_ops sim_service_ops = {
    .state = ss_state,
    .create_domain = ss_create_domain,
    .destroy_domain = ss_destroy_domain,
    .set_dynamic_range = ss_set_dynamic_range,
    .set_balloon = ss_set_balloon,
    .set_claim = ss_set_claim,
    .pause_domain = ss_pause_domain,
};

struct service_sim sim_service_sim(struct sim *w)
{
    return (struct service_sim){.ops = w != NULL ? &sim_service_ops : NULL, .ctx = w};
}
