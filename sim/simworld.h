/* SPDX-License-Identifier: LGPL-2.1-only */
/* The simulated host's internal state, shared by sim.c (the world) and simstate.c (saving). */
#ifndef SQUEEZED_SIMWORLD_H
#define SQUEEZED_SIMWORLD_H

#include <stdbool.h>
#include <stdint.h>

#include "sim/simtypes.h"
#include "sim/xstree.h"

/* Internal to sim/: nothing outside sim.c and simstate.c may include this. */

struct sim_dom {
    /* What the hypervisor's domain list says of the domain (copied into the world's
     * dense table by simworld_dom_listed after every change). */
    uint32_t domid;
    enum domain_type type;
    int64_t tot_kib;   /* Xen total pages KiB */
    int64_t max_kib;   /* Xen max pages KiB (includes the per-type slack) */
    int64_t claim_kib; /* outstanding Xen claim; shrinks as the domain allocates */
    uint8_t handle[16];
    bool paused; /* its balloon driver does not run */

    int64_t memory_offset_kib; /* actual = tot_kib - memory_offset_kib */
    int64_t initial_reservation_kib;
    double boot_after_s;
    bool booted;
    int64_t created_ms; /* sim time of creation */
    uint32_t shadow_mib;
    struct sim_balloon balloon;
    double frac_kib;    /* progress not yet a whole KiB */
    bool free_limited;  /* a free<0 violation was recorded for the current episode */
    bool settled;       /* booted and nothing to move until its target or driver
                           changes: skipped by the stepper (not saved) */
    bool journal_dirty; /* changed since the last journal record (not saved) */

    /* memory/target as last written; re-read when target_epoch != sim rm_epoch. */
    char *target_path;
    bool target_valid;
    int64_t target_kib;
    uint64_t target_epoch;
    struct sim_dom *next_free; /* in the world's free list (sim.c) */
};

struct sim {
    enum sim_clock_mode clock;
    char *name;
    int64_t total_kib;
    int64_t free_kib;
    int64_t scrub_kib;
    int64_t claimed_kib; /* sum of the domains' claim_kib */
    int64_t now_ms;
    int64_t origin_ms; /* CLOCK_MONOTONIC ms at sim time 0 (real clock) */

    struct sim_dom **doms;            /* sorted by domid */
    struct backend_domain *hv;        /* parallel to doms: what the domain list says of each,
                                         kept by simworld_dom_listed (the list copies from this
                                         dense array, not from the records) */
    struct sim_dom_chunk *dom_chunks; /* where the records are (sim.c) */
    struct sim_dom *dom_free;         /* records to reuse */
    size_t n_doms, cap_doms;
    size_t n_unsettled; /* domains with settled == false */

    struct xstree *xs;
    uint64_t rm_epoch; /* bumped by every rm: cached targets may be gone */

    char **violations;
    size_t n_violations, cap_violations;

    struct sim_counters counters;
    char *state_file;
    struct simjournal *journal;    /* non-NULL while state_file is set (simstate.c) */
    uint64_t journal_epoch_loaded; /* the loaded file's journal epoch (0: a new world) */
};

/* An empty world (no domains, "/" only) on the given clock; never NULL. */
struct sim *simworld_alloc(enum sim_clock_mode clock);
/* The domain, or NULL. */
struct sim_dom *simworld_dom_find(const struct sim *s, uint32_t domid);
/* A new zeroed domain record in domid order (domid must be absent). */
struct sim_dom *simworld_dom_insert(struct sim *s, uint32_t domid);
/* d's type, pages, maxmem, claim, paused flag or handle changed: its entry in the
 * hypervisor's domain list (s->hv) is made again. Every change to them goes through here. */
void simworld_dom_listed(struct sim *s, const struct sim_dom *d);
/* Append a violation line (taken). */
void simworld_add_violation_text(struct sim *s, char *line);
/* Remove a domain record (no memory accounting, no xenstore); false if absent. */
bool simworld_dom_remove(struct sim *s, uint32_t domid);

/*
 * The state file's journal (simstate.c). The world tells it what changed as it changes;
 * simjournal_commit appends one record of it (a line) to <state file>.journal. Cheap when
 * no state file is set (s->journal NULL: every call returns at once).
 */
void simjournal_note_dom(struct sim *s, struct sim_dom *d); /* d's record changed */
void simjournal_note_gone(struct sim *s, uint32_t domid);   /* domain destroyed */
void simjournal_note_xs(struct sim *s, const char *path, const char *value); /* NULL: rm */
/* Append what changed since the last record. Durable (fdatasync'd) before returning
 * when a reservation's node (/squeezed/...) changed or `durable`; else within a second
 * or at the next sim_flush. Compacts (a full save, then an empty journal) once the
 * journal outgrows the state file. Returns 0 or a negative errno: the change is then not
 * known to be saved (the journal is reset by a full save at the next commit). */
int simjournal_commit(struct sim *s, bool durable);
/* Forget the journal (closes it); NULL allowed. */
void simjournal_close(struct simjournal *j);
/* Open the journal of path for s (after a load or a new world): a full save of s to
 * path with a new epoch and an empty journal. 0 or negative errno. */
int simjournal_open(struct sim *s, const char *path);

#endif
