/* SPDX-License-Identifier: LGPL-2.1-only */
/* The simulated Xen host: domains, balloon drivers, a xenstore tree, a clock (SPEC 6). */
#ifndef SQUEEZED_SIM_H
#define SQUEEZED_SIM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "sim/simspec.h"
#include "sim/simtypes.h"

/*
 * Memory model. Per domain the sim holds Xen's view: tot_kib (total pages KiB) and
 * max_kib (max pages KiB, including the per-type offset), plus memory_offset_kib, so
 * that the guest-visible actual = tot_kib - memory_offset_kib. Host free memory is
 * tracked directly: a guest that grows takes from it, one that shrinks gives back.
 *
 * The guest's balloon driver reads its own memory/target key from the sim's xenstore
 * and moves actual towards it according to its model. Growth is bounded by max_kib
 * and by host free memory; a guest that *wants* more than either records a violation
 * and takes what it can.
 *
 * Violations (each a line of text, kept for tests):
 *  - "free<0": a guest would have driven host free memory below zero;
 *  - "target>maxmem": memory/target written above the domain's maxmem
 *    (target + memory_offset > max_kib - type offset);
 *  - "maxmem<target": maxmem set below both the domain's current target and its
 *    actual (the ordering bug: maxmem lowered before the target);
 *  - "claimed": a guest would have allocated pages claimed by another domain (Xen
 *    refuses such an allocation; the guest gets only the unclaimed free memory).
 *
 * Claims (Xen's xc_domain_claim_pages): a domain's claim is memory promised to it.
 * Xen's free memory still includes it, but no other domain may allocate into it; the
 * claim shrinks as its own domain allocates. The domain list reports each domain's
 * outstanding claim (outstanding_pages) and whether it is paused; a paused domain's
 * balloon driver does not move (a domain still being built allocates all the same).
 *
 * The sim is single-threaded: one owner calls it.
 */

/* A new world from a scenario (borrowed). Domains in the scenario are created with
 * their xenstore keys: memory/{target,dynamic-min,dynamic-max}, memory/initial-reservation
 * when set, and control/feature-balloon once booted (never for model none). Returns NULL
 * and *err if the scenario does not fit (e.g. domains larger than the host). */
struct sim *sim_new(const struct sim_scenario *sc, enum sim_clock_mode clock, char **err);
/* NULL allowed. */
void sim_free(struct sim *s);

/* Keep the world in `path` (NULL stops): a full save now (atomically: a new temporary
 * file created with O_EXCL|O_NOFOLLOW, then rename), then every change is appended to
 * `path`.journal as one record of what changed (never the whole world), compacted into
 * a full save once the journal outgrows the file. A change to a reservation's node
 * (/squeezed/...) is on disk (fdatasync) before the call that made it returns; other
 * changes within a second or at sim_flush. A call whose change cannot be saved fails
 * (-EIO). The journal is never opened through a symbolic link. */
void sim_set_state_file(struct sim *s, const char *path);
/* Make every change so far durable. 0, or a negative errno (also when saving failed
 * earlier and could not be recovered). 0 without a state file. */
int sim_flush(struct sim *s);
/* Load a world saved by the above: the file, then its journal's records in order. A
 * torn last record (a crash mid-append) is dropped; so is a journal of an older epoch
 * (a crash between a compaction's rename and the journal's reset). Returns NULL and *err
 * on a bad file. */
struct sim *sim_load(const char *path, enum sim_clock_mode clock, char **err);
/* Save now, in full. Saving to the state file itself is a compaction (the journal is
 * emptied). Returns 0 or -errno. */
int sim_save(struct sim *s, const char *path);

/* Clock. */
enum sim_clock_mode sim_clock_mode(const struct sim *s);
int64_t sim_now_ms(struct sim *s);
/* Let ms of simulated time pass (virtual clock; with the real clock this sleeps). */
void sim_advance(struct sim *s, int64_t ms);

/* Driving the world (sim.* methods). Return 0, -ENOENT for an unknown domid, -EEXIST
 * for a duplicate, -EINVAL with *err (may be NULL) for a bad value, -ENOMEM if the host
 * has not the memory to create the domain. */
int sim_create_domain(struct sim *s, const struct sim_domain_spec *d, char **err);
int sim_destroy_domain(struct sim *s, uint32_t domid);
int sim_set_dynamic_range(struct sim *s, uint32_t domid, int64_t min_kib, int64_t max_kib);
int sim_set_balloon(struct sim *s, uint32_t domid, const struct sim_balloon *b);
/* Set the domain's outstanding claim to kib (0 clears it). -ENOENT, -EINVAL (negative
 * or absurd), or -ENOMEM when the host has not that much free memory unclaimed by
 * other domains (as Xen refuses the claim). */
int sim_set_claim(struct sim *s, uint32_t domid, int64_t kib);
/* Pause or unpause a domain (Xen's XEN_DOMINF_paused). -ENOENT. */
int sim_pause_domain(struct sim *s, uint32_t domid, bool paused);
/* Sum of every domain's outstanding claim. */
int64_t sim_claimed_kib(const struct sim *s);

/* sim.state: { time_s, free_kib, claimed_kib, domains: [... claim_kib, paused ...],
 * violations: [...] } (new reference). */
json_t *sim_state_json(struct sim *s);
size_t sim_violation_count(const struct sim *s);
/* i < sim_violation_count; borrowed string. */
const char *sim_violation(const struct sim *s, size_t i);

/* Truth for tests. */
int64_t sim_host_free_kib(struct sim *s);
/* Guest-visible actual / target (read from xenstore) / maxmem (guest units). */
int sim_domain_memory(struct sim *s, uint32_t domid, int64_t *actual_kib, int64_t *target_kib,
                      int64_t *maxmem_kib);

/* Hypervisor view (what libxenctrl would say). Every domain (a new array)... */
int sim_list_domains(struct sim *s, struct backend_domain **out, size_t *n);
/* ... or those from domid `first` on, at most max of them, as the backend's
 * list_domains: how many were written. */
int sim_list_domains_from(struct sim *s, uint32_t first, struct backend_domain *out,
                          size_t max);
int sim_physinfo(struct sim *s, struct backend_physinfo *out);
int sim_set_maxmem(struct sim *s, uint32_t domid, uint64_t maxmem_kib);
int sim_shadow_allocation_mib(struct sim *s, uint32_t domid, uint32_t *mib);

/* The xenstore tree. Paths are absolute. Same conventions as backend_ops. Every
 * successful write or rm bumps a generation counter and fires matching watches. */
int sim_xs_read(struct sim *s, const char *path, char **value);
int sim_xs_write(struct sim *s, const char *path, const char *value);
int sim_xs_rm(struct sim *s, const char *path);
int sim_xs_directory(struct sim *s, const char *path, char ***entries, size_t *n);
bool sim_xs_exists(struct sim *s, const char *path);
uint64_t sim_xs_generation(const struct sim *s);
int sim_xs_watch(struct sim *s, const char *path, const char *token);
int sim_xs_unwatch(struct sim *s, const char *path, const char *token);
/* As backend_ops.read_watch (never BACKEND_ECONN). */
int sim_xs_read_watch(struct sim *s, struct backend_watch_event *ev);
/* Readable while events are pending (eventfd). */
int sim_xs_watch_fd(struct sim *s);
/* Events beyond this many pending are dropped and the next read_watch returns
 * BACKEND_EOVERFLOW. Default 65536. */
void sim_xs_set_watch_queue_limit(struct sim *s, size_t limit);
/* Drop every watch (as a lost connection does). */
void sim_xs_drop_watches(struct sim *s);

/* The counters (struct sim_counters, sim/simtypes.h). */
void sim_counters(const struct sim *s, struct sim_counters *out);

/* The sim backend: backend_ops over this world. Takes ownership of s. */
struct backend *backend_sim_open(struct sim *s);

#endif
