/* SPDX-License-Identifier: LGPL-2.1-only */
/* The simulated host's plain types, below sim.h, simspec.h and simworld.h (no functions). */
#ifndef SQUEEZED_SIMTYPES_H
#define SQUEEZED_SIMTYPES_H

#include <stdint.h>
#include <stddef.h>

#include "backend/backend.h"

enum sim_balloon_model {
    SIM_BALLOON_IDEAL,        /* moves to target at rate, stops stop_short_kib away */
    SIM_BALLOON_FLOOR,        /* ideal, but never below floor_kib */
    SIM_BALLOON_CEILING,      /* ideal, but never above ceiling_kib */
    SIM_BALLOON_STUCK,        /* never moves */
    SIM_BALLOON_INTERMITTENT, /* moves for period_s, stuck for period_s, ... */
    SIM_BALLOON_NONE,         /* no driver: never writes feature-balloon, never moves */
};

struct sim_balloon {
    enum sim_balloon_model model;
    double rate_kib_s;      /* default 262144 */
    int64_t stop_short_kib; /* default 0 */
    int64_t floor_kib;      /* SIM_BALLOON_FLOOR */
    int64_t ceiling_kib;    /* SIM_BALLOON_CEILING */
    double period_s;        /* SIM_BALLOON_INTERMITTENT; default 10 */
};

/* A domain as a scenario (or sim.create_domain) describes it. */
struct sim_domain_spec {
    uint32_t domid;
    enum domain_type type;     /* default hvm */
    int64_t dynamic_min_kib;   /* default target_kib */
    int64_t dynamic_max_kib;   /* default target_kib */
    int64_t target_kib;        /* default 1048576, or initial_reservation_kib if set */
    int64_t actual_kib;        /* default target_kib; 0 when initial_reservation_kib set */
    int64_t maxmem_kib;        /* default target_kib; guest units (without type offset) */
    int64_t memory_offset_kib; /* default 0 */
    int64_t initial_reservation_kib; /* 0 = none; else starts unbooted, allocates up to
                                        it at the balloon rate, then boots */
    double boot_after_s;             /* default 0: booted at creation */
    int64_t claim_kib;               /* default 0: a Xen claim outstanding at creation */
    struct sim_balloon balloon;
};

struct sim_host_spec {
    int64_t total_kib; /* default 16777216 */
    int64_t free_kib;  /* Xen free memory at time 0; default 1048576 */
    int64_t scrub_kib; /* default 0 */
};

struct sim_scenario {
    char *name;
    struct sim_host_spec host;
    struct sim_domain_spec *domains;
    size_t n_domains;
};

enum sim_clock_mode {
    SIM_CLOCK_REAL,    /* the world catches up with CLOCK_MONOTONIC on every call */
    SIM_CLOCK_VIRTUAL, /* time passes only through sim_advance */
};

struct sim;

/* Counters of what the world was asked, for tests of the cache. */
struct sim_counters {
    uint64_t xs_reads;  /* xs_read + xs_directory */
    uint64_t xs_writes; /* xs_write + xs_rm */
    uint64_t list_domains;
    uint64_t physinfo;
    uint64_t set_maxmem;
};

#endif
