/* SPDX-License-Identifier: LGPL-2.1-only */
/* squeezed-fakexen: the daemon with backend/xen.c over the fake libxenctrl/libxenstore. */
#include "daemon/daemon.h"
#include "sim/sim_service.h"
#include "tests/fakexen/fakexen.h"

/* The fake libraries run on a simulated world (FAKEXEN_SCENARIO / FAKEXEN_STATE): let the
 * sim.* methods reach it, as they do with --backend sim. */
static struct service_sim fakexen_sim(void)
{
    return sim_service_sim(fakexen_world());
}

static void fakexen_exit(void)
{
    fakexen_set_world(NULL);
}

int main(int argc, char **argv)
{
    static const struct daemon_hooks hooks = {
        .open_xen = NULL, /* backend_xen_open: linked against the fake libraries */
        .xen_sim = fakexen_sim,
        .at_exit = fakexen_exit,
    };
    return daemon_main(argc, argv, &hooks);
}
