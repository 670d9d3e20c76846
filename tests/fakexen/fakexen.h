/* SPDX-License-Identifier: LGPL-2.1-only */
/* A fake libxenctrl + libxenstore over the simulated host, with fault injection. */
#ifndef SQUEEZED_FAKEXEN_H
#define SQUEEZED_FAKEXEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/sim.h"

/*
 * tests/fakexen/fakexen.c defines the functions of <xenctrl.h> and <xenstore.h> that
 * backend/xen.c calls, with the same names and signatures, answering from one global
 * simulated world. Test binaries and build/squeezed-fakexen link it instead of
 * -lxenctrl -lxenstore, so the very same backend/xen.c runs over the sim.
 *
 * Single-threaded, like the sim. Faults are one-shot unless said otherwise and are
 * cleared by fakexen_reset.
 */

/* Use s as the world (borrowed: the caller keeps it alive while Xen handles are open
 * and frees it). NULL forgets the current world (freeing it if it was made from the
 * environment). */
void fakexen_set_world(struct sim *s);

/* The world, created on first use from the environment when none was set:
 * FAKEXEN_STATE=<file> (a saved sim state; loaded if the file exists, and saved after
 * every change) and/or FAKEXEN_SCENARIO=<scenario file>, on the real clock (backend/xen.c
 * uses the real clock). NULL if neither is set or they cannot be loaded (logged). */
struct sim *fakexen_world(void);

/* Destroy domid at the next xs_read or xs_directory of a path in its directory: the
 * domain dies between the domain list and the xenstore read. */
void fakexen_destroy_on_read(uint32_t domid);
/* Destroy domid between the next transaction's start and its end. */
void fakexen_destroy_in_transaction(uint32_t domid);
/* Make the next n xc_domain_setmaxmem calls fail with EIO (nothing changed). */
void fakexen_fail_setmaxmem(unsigned n);
/* Make the next n transaction ends fail with EAGAIN (their writes discarded). */
void fakexen_fail_transactions(unsigned n);
/* Lose the xenstore connection: every open handle fails from now on (errno as the real
 * library after its socket closed) until closed and opened again; every watch and
 * pending event is lost. An event queue overflow in the sim does the same, as a
 * xenstored that gives up on a slow reader. */
void fakexen_drop_connection(void);
/* Write value to path n times: n watch events for whoever watches it. 0 or -errno. */
int fakexen_watch_burst(const char *path, const char *value, size_t n);
/* What xc_shadow_control reports for domid (the sim says 0). */
void fakexen_set_shadow_mib(uint32_t domid, uint32_t mib);
/* Report domid as dying (XEN_DOMINF_dying) in the domain list. */
void fakexen_set_dying(uint32_t domid, bool dying);
/* Clear every fault and override, and the counters. */
void fakexen_reset(void);

/*
 * Faults from outside, for the daemon built with the fake (build/squeezed-fakexen) in
 * end-to-end tests: with FAKEXEN_FAULT_FILE=<file> in the environment, every call into
 * the fake libraries first looks for the file; if it is there it is read, removed, and
 * each line applied (write it elsewhere and rename it into place). Lines:
 *   drop-connection                fakexen_drop_connection()
 *   eagain N                       fakexen_fail_transactions(N) (0 clears)
 *   burst N PATH                   PATH (which must exist) written N times with its own
 *                                  value: N watch events, and no change
 *   destroy-at-read DOMID          fakexen_destroy_on_read(DOMID)
 *   destroy-in-transaction DOMID   fakexen_destroy_in_transaction(DOMID)
 *   dying DOMID 0|1                fakexen_set_dying(DOMID, ...)
 *   write PATH VALUE               PATH set to VALUE (the rest of the line) as a
 *                                  toolstack would, whatever it holds: watches fire
 * Empty lines and lines starting with '#' are skipped; every line applied is logged
 * ("fakexen: fault: LINE"), every other one too, as refused. Returns the number of
 * lines applied (0 without the file). Called by the fake itself; tests may call it. */
int fakexen_poll_fault_file(void);

/* Calls made into the fake libraries. */
struct fakexen_counters {
    uint64_t xs_open;
    uint64_t xs_read; /* outside and inside transactions */
    uint64_t xs_write;
    uint64_t xs_rm;
    uint64_t xs_directory;
    uint64_t xs_watch;
    uint64_t xs_unwatch;
    uint64_t xs_check_watch;
    uint64_t tx_start;
    uint64_t tx_commit; /* ends that applied their writes */
    uint64_t tx_eagain; /* ends that failed with EAGAIN */
    uint64_t tx_abort;  /* ends asked to abort */
    uint64_t getinfolist;
    uint64_t physinfo;
    uint64_t setmaxmem;
    uint64_t shadow;
};
void fakexen_counters(struct fakexen_counters *out);

#endif
