/* SPDX-License-Identifier: LGPL-2.1-only */
/* Runs squeeze operations: snapshot, policy round, apply, wait, until a verdict. */
#ifndef SQUEEZED_SQUEEZE_H
#define SQUEEZED_SQUEEZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "cache/domcache.h"
#include "policy/policy.h"

/*
 * One squeezer per daemon, owned by the worker thread (not thread-safe). It borrows
 * the backend and the cache. Time is the backend's clock: with the sim's virtual clock
 * a multi-minute squeeze runs in milliseconds.
 */

struct squeezer;

struct squeeze_config {
    int64_t reserved_host_kib; /* the slush fund; default 73728 */
    int64_t poll_ms;           /* longest wait between rounds; default 250 */
    int64_t min_poll_ms;       /* shortest wait between rounds; default min(10, poll_ms) */
    int64_t timeout_ms;        /* give up an operation after this; default 600000 */
};

/* Where reservations come from: called before every snapshot. Returns a borrowed
 * array valid until the next call. */
typedef const struct domcache_reservation *(*squeeze_reservations_fn)(void *ctx, size_t *n);

struct squeeze_result {
    enum policy_verdict verdict; /* SUCCESS, CANNOT_FREE or REFUSED */
    int64_t reserve_kib;         /* SUCCESS: what the caller may now reserve */
    int64_t needed_kib;          /* CANNOT_FREE */
    int64_t free_kib;            /* CANNOT_FREE */
    int32_t *refused;            /* REFUSED: domids (owned; squeeze_result_free) */
    size_t n_refused;
    unsigned rounds;     /* policy rounds run */
    int64_t duration_ms; /* on the backend's clock, counting only forward steps
                            (a clock stepping back counts as no time) */
    bool fast_path;
    bool timed_out; /* verdict forced by timeout_ms */
    bool cancelled; /* verdict forced by squeeze_cancel */
    bool preempted; /* stopped before its verdict because the yield hook asked (a
                       balance giving way to a reservation); verdict CANNOT_FREE */
};

void squeeze_result_free(struct squeeze_result *r);

/* cfg copied. resv_fn/ctx may be NULL (no reservations). */
struct squeezer *squeezer_new(struct backend *b, struct domcache *dc,
                              const struct squeeze_config *cfg, squeeze_reservations_fn resv_fn,
                              void *resv_ctx);
void squeezer_free(struct squeezer *sq);

/* Run one operation to its verdict. Returns 0 with *res filled (any verdict), or a
 * negative errno if the host could not be read at all. */
int squeeze_free(struct squeezer *sq, int64_t kib, struct squeeze_result *res);
int squeeze_free_range(struct squeezer *sq, int64_t min_kib, int64_t max_kib,
                       struct squeeze_result *res);
int squeeze_balance(struct squeezer *sq, struct squeeze_result *res);

/* Ask the running operation (if any) to stop at its next round; it then returns
 * CANNOT_FREE with cancelled set. Safe from any thread and from signal handlers;
 * sticky (the squeezer is then done: the service is stopping). */
void squeeze_cancel(struct squeezer *sq);

/* Periodic duty: take a snapshot, update the uncooperative flags, and report whether a
 * balance would change any target. Returns 1 (balance needed), 0, or negative errno. */
int squeeze_check(struct squeezer *sq);

/* Bring the last snapshot up to date after the reservations changed, without reading the
 * host again: possible when only untransferred reservations changed since it was taken
 * and no target or maxmem was written since (a reserve that needed no ballooning, a
 * delete). Its free memory and reservations figures then count the reservations as they
 * are now, as a new snapshot would. Returns 1 (done), or 0 when a new snapshot is needed
 * (take one with squeeze_check). O(transferred reservations). */
int squeeze_refresh(struct squeezer *sq);

/* The significance threshold of squeeze_check: a balance whose target changes add up
 * to less than this (KiB, summed over domains, either way) is not needed. 0: any
 * change. */
void squeeze_set_balance_threshold(struct squeezer *sq, int64_t kib);

/* The last snapshot taken (borrowed; valid until the next call into the squeezer). */
const struct domcache_snapshot *squeeze_last_snapshot(const struct squeezer *sq);
/* Stuck / uncooperative as last seen. */
bool squeeze_domain_stuck(const struct squeezer *sq, int32_t domid);
bool squeeze_domain_uncooperative(const struct squeezer *sq, int32_t domid);
/* Both for every domain of snap (its order), in one pass: stuck[i], uncooperative[i]. */
void squeeze_domain_flags(const struct squeezer *sq, const struct domcache_snapshot *snap,
                          bool *stuck, bool *uncooperative);

/* Called after every round with the snapshot and the decision (tests, logs). */
typedef void (*squeeze_observer_fn)(void *ctx, const struct domcache_snapshot *snap,
                                    const struct policy_decision *d);
void squeeze_set_observer(struct squeezer *sq, squeeze_observer_fn fn, void *ctx);

/*
 * What the service lends a running operation (every field optional; a NULL function
 * keeps the default). The hooks run on the thread running the operation.
 *  - wait: let wait_ms pass on the backend's clock between rounds (default: the
 *    backend's sleep). It may do other work meanwhile and may return early: the next
 *    round is taken at once.
 *  - need: POLICY_FREE only: the memory the operation must free, read before every
 *    round (default: the kib it was started with). Coalesced reservations make it grow
 *    and shrink (0 is a need: the host reserve must still be free).
 *  - round: after every round of a POLICY_FREE operation, with `grantable_kib`: the
 *    memory guaranteed free once this round's ops are applied (targets going up are
 *    counted as already taken), minus the host reserve. Memory handed out from it under
 *    new reservations is out of the next snapshot's free memory.
 *  - yield: asked after every wait; true stops the operation there (preempted).
 */
struct squeeze_hooks {
    void *ctx;
    void (*wait)(void *ctx, int64_t wait_ms);
    int64_t (*need)(void *ctx);
    void (*round)(void *ctx, const struct policy_decision *d, int64_t grantable_kib);
    bool (*yield)(void *ctx);
};

/* Hooks for the next operation only (squeeze_free, _free_range or _balance), copied;
 * they are cleared when it returns. */
void squeeze_set_hooks(struct squeezer *sq, const struct squeeze_hooks *h);

/* Called when an operation (free, free range, balance) starts, before its first
 * snapshot: the moment a squeeze really runs (the service's busy flag). */
typedef void (*squeeze_start_fn)(void *ctx);
void squeeze_set_start_hook(struct squeezer *sq, squeeze_start_fn fn, void *ctx);

#endif
