/* SPDX-License-Identifier: LGPL-2.1-only */
/* A backend wrapping another for tests: counts every call and injects faults (a domain
 * dying or destroyed mid-read, shadow memory, refused watches, a jumping clock, a hook
 * after the domain list). */
#include "tests/support/fault_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static struct fault_backend *FB(struct backend *b)
{
    return b->priv;
}

static struct backend *inner_of(struct backend *b)
{
    return FB(b)->inner;
}

static int fb_list(struct backend *b, uint32_t first, struct backend_domain *out, size_t max)
{
    struct fault_backend *fb = FB(b);
    fb->n.list++;
    /* Disorder 2 lists the batch's lowest domid twice: room for it is kept. */
    bool twice = fb->list_disorder == 2 && max > 1;
    int rc = fb->inner->ops->list_domains(fb->inner, first, out, twice ? max - 1 : max);
    size_t n = rc > 0 ? (size_t)rc : 0;
    for (size_t i = 0; i < n; i++)
        if (out[i].domid < FAULT_BACKEND_MAX_DOMID && fb->dying[out[i].domid])
            out[i].dying = true;
    if (fb->list_disorder > 0 && n > 1) {
        for (size_t i = 0, j = n - 1; i < j; i++, j--) {
            struct backend_domain t = out[i];
            out[i] = out[j];
            out[j] = t;
        }
        if (twice) {
            out[n] = out[n - 1]; /* the lowest domid, once more */
            rc++;
        }
    }
    if (fb->after_list != NULL)
        fb->after_list(fb, fb->ctx);
    return rc;
}

static int fb_physinfo(struct backend *b, struct backend_physinfo *out)
{
    FB(b)->n.physinfo++;
    return inner_of(b)->ops->physinfo(inner_of(b), out);
}

static int fb_set_maxmem(struct backend *b, uint32_t domid, uint64_t maxmem_kib)
{
    FB(b)->n.set_maxmem++;
    return inner_of(b)->ops->set_maxmem(inner_of(b), domid, maxmem_kib);
}

static int fb_shadow(struct backend *b, uint32_t domid, uint32_t *mib)
{
    struct fault_backend *fb = FB(b);
    fb->n.shadow++;
    int rc = fb->inner->ops->shadow_allocation_mib(fb->inner, domid, mib);
    if (rc == 0 && domid < FAULT_BACKEND_MAX_DOMID && fb->shadow_mib[domid] >= 0)
        *mib = (uint32_t)fb->shadow_mib[domid];
    return rc;
}

static void maybe_destroy(struct fault_backend *fb, const char *path)
{
    if (fb->destroy_on_read < 0 || fb->world == NULL)
        return;
    char dir[64];
    int len = snprintf(dir, sizeof(dir), "/local/domain/%lld/", (long long)fb->destroy_on_read);
    if (strncmp(path, dir, (size_t)len) == 0) {
        sim_destroy_domain(fb->world, (uint32_t)fb->destroy_on_read);
        fb->destroy_on_read = -1;
    }
}

static int fb_xs_read(struct backend *b, const char *path, char **value)
{
    struct fault_backend *fb = FB(b);
    fb->n.xs_read++;
    maybe_destroy(fb, path);
    return fb->inner->ops->xs_read(fb->inner, path, value);
}

static int fb_xs_write(struct backend *b, const char *check_dir, const char *path,
                       const char *value)
{
    FB(b)->n.xs_write++;
    return inner_of(b)->ops->xs_write(inner_of(b), check_dir, path, value);
}

static int fb_xs_rm(struct backend *b, const char *path)
{
    FB(b)->n.xs_rm++;
    return inner_of(b)->ops->xs_rm(inner_of(b), path);
}

static int fb_xs_directory(struct backend *b, const char *path, char ***entries, size_t *n)
{
    FB(b)->n.xs_directory++;
    return inner_of(b)->ops->xs_directory(inner_of(b), path, entries, n);
}

static int fb_xs_watch(struct backend *b, const char *path, const char *token)
{
    struct fault_backend *fb = FB(b);
    fb->n.xs_watch++;
    if (fb->watch_budget == 0)
        return -ENOSPC;
    if (fb->watch_budget > 0)
        fb->watch_budget--;
    return fb->inner->ops->xs_watch(fb->inner, path, token);
}

static int fb_xs_unwatch(struct backend *b, const char *path, const char *token)
{
    FB(b)->n.xs_unwatch++;
    return inner_of(b)->ops->xs_unwatch(inner_of(b), path, token);
}

static int fb_watch_fd(struct backend *b)
{
    return inner_of(b)->ops->watch_fd(inner_of(b));
}

static int fb_read_watch(struct backend *b, struct backend_watch_event *ev)
{
    if (FB(b)->econn_next) {
        FB(b)->econn_next = false;
        return BACKEND_ECONN;
    }
    int rc = inner_of(b)->ops->read_watch(inner_of(b), ev);
    if (rc == 1)
        FB(b)->n.events++;
    return rc;
}

static int64_t fb_now_ms(struct backend *b)
{
    struct fault_backend *fb = FB(b);
    int64_t base =
        fb->clock_from_world ? sim_now_ms(fb->world) : fb->inner->ops->now_ms(fb->inner);
    return base + fb->offset_ms;
}

static void fb_sleep_ms(struct backend *b, int64_t ms)
{
    struct fault_backend *fb = FB(b);
    if (fb->clock_from_world)
        sim_advance(fb->world, ms);
    else
        fb->inner->ops->sleep_ms(fb->inner, ms);
}

static bool fb_clock_is_virtual(struct backend *b)
{
    struct fault_backend *fb = FB(b);
    return fb->clock_from_world || fb->inner->ops->clock_is_virtual(fb->inner);
}

static void fb_close(struct backend *b)
{
    struct fault_backend *fb = FB(b);
    backend_close(fb->inner);
    free(fb);
}

static const struct backend_ops fault_backend_ops = {
    .name = "fault",
    .list_domains = fb_list,
    .physinfo = fb_physinfo,
    .set_maxmem = fb_set_maxmem,
    .shadow_allocation_mib = fb_shadow,
    .xs_read = fb_xs_read,
    .xs_write = fb_xs_write,
    .xs_rm = fb_xs_rm,
    .xs_directory = fb_xs_directory,
    .xs_watch = fb_xs_watch,
    .xs_unwatch = fb_xs_unwatch,
    .watch_fd = fb_watch_fd,
    .read_watch = fb_read_watch,
    .now_ms = fb_now_ms,
    .sleep_ms = fb_sleep_ms,
    .clock_is_virtual = fb_clock_is_virtual,
    .close = fb_close,
};

struct fault_backend *fault_backend_new(struct backend *inner, struct sim *world,
                                        bool clock_from_world)
{
    struct fault_backend *fb = xcalloc(1, sizeof(*fb));

    if (clock_from_world && world == NULL)
        abort(); /* a test's mistake: no world to take the time from */
    fb->base.ops = &fault_backend_ops;
    fb->base.priv = fb;
    fb->inner = inner;
    fb->world = world;
    fb->clock_from_world = clock_from_world;
    for (int i = 0; i < FAULT_BACKEND_MAX_DOMID; i++)
        fb->shadow_mib[i] = -1;
    fb->watch_budget = -1;
    fb->destroy_on_read = -1;
    return fb;
}
