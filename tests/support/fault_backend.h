/* SPDX-License-Identifier: LGPL-2.1-only */
/* A backend wrapping another for tests: counts every call and injects faults (a domain
 * dying or destroyed mid-read, shadow memory, refused watches, a lost connection, a
 * jumping clock, a hook after the domain list). */
#ifndef SQUEEZED_TEST_FAULT_BACKEND_H
#define SQUEEZED_TEST_FAULT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "sim/sim.h"

#define FAULT_BACKEND_MAX_DOMID 64 /* domids the per-domain overrides reach (exclusive) */

struct fault_backend;
typedef void (*fault_backend_hook_fn)(struct fault_backend *fb, void *ctx);

/*
 * Hand &fb->base to the cache or the squeezer as their backend. Every call goes to the
 * inner backend, counted in n, changed only where a field below says so. The fields are
 * the test's to set at any time (the wrapper runs on the caller's thread).
 */
struct fault_backend {
    struct backend base;   /* what the code under test sees */
    struct backend *inner; /* owned: closed with the wrapper */
    struct sim *world;     /* the simulated host behind inner (borrowed): destroy_on_read
                              destroys there; with clock_from_world, time is its clock */
    bool clock_from_world; /* now_ms / sleep_ms on world's virtual clock instead of inner's
                              (backend/xen.c over the fake libraries has a real clock) */
    int64_t offset_ms;     /* added to now_ms: the clock jumps when a test changes it */
    bool dying[FAULT_BACKEND_MAX_DOMID];         /* list_domains reports these as dying */
    int64_t shadow_mib[FAULT_BACKEND_MAX_DOMID]; /* shadow allocation to report; -1: inner's */
    long watch_budget;       /* xs_watch calls left before -ENOSPC; -1: no limit */
    int64_t destroy_on_read; /* domid destroyed in world just before the next xs_read of a
                                key of its own (/local/domain/<domid>/...); -1: none */
    /* The next read_watch returns BACKEND_ECONN (once): the connection was lost and made
     * again (the inner backend's watches stand). */
    bool econn_next;
    /* list_domains breaks its contract: 1 each batch reversed, 2 reversed with its
     * lowest domain listed twice (0: as the inner backend lists it). */
    int list_disorder;
    fault_backend_hook_fn after_list; /* called after every list_domains (NULL: none) */
    void *ctx;                        /* handed to after_list */
    struct {
        unsigned long xs_read, xs_write, xs_rm, xs_directory, xs_watch, xs_unwatch;
        unsigned long list, physinfo, set_maxmem, shadow, events;
    } n; /* calls so far (events: watch events read) */
};

/* Wrap inner (ownership taken) over world (borrowed; may be NULL when neither
 * destroy_on_read nor clock_from_world is used). Starts with no fault armed: a
 * pass-through that counts. Free with backend_close(&fb->base). */
struct fault_backend *fault_backend_new(struct backend *inner, struct sim *world,
                                        bool clock_from_world);

#endif
