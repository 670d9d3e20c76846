/* SPDX-License-Identifier: LGPL-2.1-only */
/* squeezed: the entry point of the daemon (all of it in daemon/daemon.c). */
#include "daemon/daemon.h"

int main(int argc, char **argv)
{
    return daemon_main(argc, argv, NULL);
}
