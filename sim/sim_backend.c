/* SPDX-License-Identifier: LGPL-2.1-only */
/* The sim backend: struct backend_ops over the simulated host of sim/sim.c. */
#include <stdlib.h>

#include "sim/sim.h"
#include "common/xalloc.h"

static struct sim *world(struct backend *b)
{
    return b->priv;
}

static int sb_list_domains(struct backend *b, uint32_t first, struct backend_domain *out,
                           size_t max)
{
    return sim_list_domains_from(world(b), first, out, max);
}

static int sb_physinfo(struct backend *b, struct backend_physinfo *out)
{
    return sim_physinfo(world(b), out);
}

static int sb_set_maxmem(struct backend *b, uint32_t domid, uint64_t maxmem_kib)
{
    return sim_set_maxmem(world(b), domid, maxmem_kib);
}

static int sb_shadow_allocation_mib(struct backend *b, uint32_t domid, uint32_t *mib)
{
    return sim_shadow_allocation_mib(world(b), domid, mib);
}

static int sb_xs_read(struct backend *b, const char *path, char **value)
{
    return sim_xs_read(world(b), path, value);
}

static int sb_xs_write(struct backend *b, const char *check_dir, const char *path,
                       const char *value)
{
    /* One transaction in a single-threaded world: check and write cannot interleave. */
    if (check_dir != NULL && !sim_xs_exists(world(b), check_dir))
        return -ENOENT;
    return sim_xs_write(world(b), path, value);
}

static int sb_xs_rm(struct backend *b, const char *path)
{
    return sim_xs_rm(world(b), path);
}

static int sb_xs_directory(struct backend *b, const char *path, char ***entries, size_t *n)
{
    return sim_xs_directory(world(b), path, entries, n);
}

static int sb_xs_watch(struct backend *b, const char *path, const char *token)
{
    return sim_xs_watch(world(b), path, token);
}

static int sb_xs_unwatch(struct backend *b, const char *path, const char *token)
{
    return sim_xs_unwatch(world(b), path, token);
}

static int sb_watch_fd(struct backend *b)
{
    return sim_xs_watch_fd(world(b));
}

static int sb_read_watch(struct backend *b, struct backend_watch_event *ev)
{
    return sim_xs_read_watch(world(b), ev);
}

static int64_t sb_now_ms(struct backend *b)
{
    return sim_now_ms(world(b));
}

static void sb_sleep_ms(struct backend *b, int64_t ms)
{
    sim_advance(world(b), ms);
}

static bool sb_clock_is_virtual(struct backend *b)
{
    return sim_clock_mode(world(b)) == SIM_CLOCK_VIRTUAL;
}

static void sb_close(struct backend *b)
{
    sim_free(world(b));
    free(b);
}

static const struct backend_ops sim_ops = {
    .name = "sim",
    .list_domains = sb_list_domains,
    .physinfo = sb_physinfo,
    .set_maxmem = sb_set_maxmem,
    .shadow_allocation_mib = sb_shadow_allocation_mib,
    .xs_read = sb_xs_read,
    .xs_write = sb_xs_write,
    .xs_rm = sb_xs_rm,
    .xs_directory = sb_xs_directory,
    .xs_watch = sb_xs_watch,
    .xs_unwatch = sb_xs_unwatch,
    .watch_fd = sb_watch_fd,
    .read_watch = sb_read_watch,
    .now_ms = sb_now_ms,
    .sleep_ms = sb_sleep_ms,
    .clock_is_virtual = sb_clock_is_virtual,
    .close = sb_close,
};

struct backend *backend_sim_open(struct sim *s)
{
    struct backend *b = xcalloc(1, sizeof(*b));
    b->ops = &sim_ops;
    b->priv = s;
    return b;
}
