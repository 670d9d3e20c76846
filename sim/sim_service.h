/* SPDX-License-Identifier: LGPL-2.1-only */
/* The simulated host behind the service's sim.* interface (server/service_sim.h). */
#ifndef SQUEEZED_SIM_SERVICE_H
#define SQUEEZED_SIM_SERVICE_H

#include "server/service_sim.h"
#include "sim/sim.h"

/* The interface over w (borrowed: w must outlive the service it is handed to). NULL w
 * gives the absent interface (ops NULL). */
struct service_sim sim_service_sim(struct sim *w);

#endif
