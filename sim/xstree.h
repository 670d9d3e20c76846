/* SPDX-License-Identifier: LGPL-2.1-only */
/* An in-memory xenstore: a tree of keys with values, a generation counter, watches. */
#ifndef SQUEEZED_XSTREE_H
#define SQUEEZED_XSTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/*
 * Internal to the simulated host (sim/sim.c); not a backend on its own.
 *
 * Paths are absolute ("/local/domain/1/memory/target"): no empty components, no
 * trailing slash except for the root "/". A node can hold a value and children at
 * once, as in xenstored; writing a/b/c creates missing parents with an empty value.
 * Lookups cost O(path length) (one hash table of full paths); watch matching walks
 * only the changed path's ancestors and, for rm, the watches below it.
 *
 * Watches: a watch on P fires for a write or rm at P or below (event path = the
 * changed path) and for the rm of an ancestor of P (event path = P). A new watch fires
 * once at once. Watches on "@introduceDomain" / "@releaseDomain" fire through
 * xstree_fire_special. Events queue FIFO up to a limit; past it they are dropped and
 * the next xstree_read_watch returns BACKEND_EOVERFLOW once, emptying the queue.
 */

struct xstree;

/* A new tree holding only "/" (empty value). Never NULL. */
struct xstree *xstree_new(void);
/* NULL allowed. */
void xstree_free(struct xstree *t);

/* 0 if path is well-formed, else -EINVAL. */
int xstree_check_path(const char *path);

/* The value of path, borrowed (valid until the next change), or NULL if absent. */
const char *xstree_get(struct xstree *t, const char *path);
/* *value is a new string. -ENOENT if absent, -EINVAL for a bad path. */
int xstree_read(struct xstree *t, const char *path, char **value);
/* Write (creating parents). value is copied. 0 or -EINVAL. */
int xstree_write(struct xstree *t, const char *path, const char *value);
/* Remove path and everything below. Missing: 0 and nothing fires. */
int xstree_rm(struct xstree *t, const char *path);
/* Child names, sorted; *entries is a new NULL-terminated vector of n new strings
 * (free with backend_strv_free). -ENOENT if path is absent. */
int xstree_directory(struct xstree *t, const char *path, char ***entries, size_t *n);
bool xstree_exists(struct xstree *t, const char *path);
uint64_t xstree_generation(const struct xstree *t);
void xstree_set_generation(struct xstree *t, uint64_t gen);

/* Every node as a nested walk: enter(node) for "/" (name "") and each node, children in
 * sorted order between its enter and leave; index = position among its siblings. */
struct xstree_walker {
    void (*enter)(void *ctx, const char *name, const char *value, size_t index,
                  size_t n_children);
    void (*leave)(void *ctx, size_t n_children);
};
void xstree_walk(struct xstree *t, const struct xstree_walker *w, void *ctx);

/* -EEXIST if (path, token) is already registered; -EINVAL for a bad path. */
int xstree_watch(struct xstree *t, const char *path, const char *token);
/* -ENOENT if not registered. Pending events of that watch are dropped. */
int xstree_unwatch(struct xstree *t, const char *path, const char *token);
/* Fire the watches on a special path such as "@releaseDomain". */
void xstree_fire_special(struct xstree *t, const char *special);
/* 1 and *ev filled (new strings), 0 if none pending, BACKEND_EOVERFLOW once after
 * events were dropped. */
int xstree_read_watch(struct xstree *t, struct backend_watch_event *ev);
/* An eventfd readable while events (or an overflow) are pending. */
int xstree_watch_fd(struct xstree *t);
void xstree_set_watch_queue_limit(struct xstree *t, size_t limit);
/* Forget every watch and every pending event. */
void xstree_drop_watches(struct xstree *t);

#endif
