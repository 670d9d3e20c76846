/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's whole life (options, wiring, serving, stopping), for its entry points. */
#ifndef SQUEEZED_DAEMON_H
#define SQUEEZED_DAEMON_H

#include "backend/backend.h"
#include "server/service_sim.h"

/*
 * daemon/ sits above api/ and server/: it is the only code that knows them both, and
 * the simulated host (sim/) too. Two entry points call daemon_main: daemon/main.c
 * (build/squeezed) and tests/fakexen/fakexen_main.c (build/squeezed-fakexen: the real
 * backend/xen.c over the fake libxenctrl/libxenstore), which differ only in the hooks.
 */

struct daemon_hooks {
    /* Open the "xen" backend instead of backend_xen_open (same contract); NULL: that. */
    struct backend *(*open_xen)(char **err);
    /* After open_xen succeeded: the sim.* interface of the host behind it (the fake
     * libraries run on a simulated world); NULL: none, as on real Xen. */
    struct service_sim (*xen_sim)(void);
    /* Last thing before daemon_main returns (after the service and backend are gone). */
    void (*at_exit)(void);
};

/* Run the daemon as `squeezed` with these arguments; hooks NULL for the real one.
 * Returns the process exit status. */
int daemon_main(int argc, char **argv, const struct daemon_hooks *hooks);

#endif
