/* SPDX-License-Identifier: LGPL-2.1-only */
/* Scenario and domain-spec parsing, and the checks the simulated host shares with it. */
#ifndef SQUEEZED_SIMSPEC_H
#define SQUEEZED_SIMSPEC_H

#include <jansson.h>

#include "common/limits.h" /* LIMIT_DOMID_MAX, LIMIT_KIB_MAX bound every spec */
#include "sim/simtypes.h"

/* Public: what sim.h users call to read scenarios and sim.create_domain arguments. */

/* "ideal", "floor", ... (static string). */
const char *sim_balloon_model_name(enum sim_balloon_model m);

/* Fill a domain spec with the SPEC 6.1 defaults for `domid`. */
void sim_domain_spec_default(struct sim_domain_spec *d, uint32_t domid);

/* Parse one domain object (scenario entry or sim.create_domain argument). On error
 * returns -EINVAL and sets *err to a new string "FIELD: reason" with FIELD prefixed by
 * `where` (e.g. "domains[2]"). */
int sim_domain_spec_from_json(const json_t *obj, const char *where, struct sim_domain_spec *out,
                              char **err);
/* Parse a balloon object ("balloon" field). Same error convention. */
int sim_balloon_from_json(const json_t *obj, const char *where, struct sim_balloon *out,
                          char **err);

/* Parse a scenario from JSON text / a file. On success *out is new (free with
 * sim_scenario_free). On error returns -EINVAL (or -errno for I/O) and *err names the
 * field and the reason, e.g. "domains[1].balloon.model: unknown model 'fast'". Duplicate
 * domids, negative sizes, min > max, unknown fields and wrong types are refused. */
int sim_scenario_parse(const char *text, struct sim_scenario **out, char **err);
int sim_scenario_load(const char *path, struct sim_scenario **out, char **err);
/* NULL allowed. */
void sim_scenario_free(struct sim_scenario *s);

/* Internal to sim/ from here on. */

/* Check a filled-in domain spec (sizes, ranges, balloon). On error returns -EINVAL and
 * *err = "WHERE.FIELD: reason" (new string; `where` may be NULL or ""). */
int simspec_validate(const struct sim_domain_spec *d, const char *where, char **err);
/* Same for a balloon alone. */
int simspec_validate_balloon(const struct sim_balloon *b, const char *where, char **err);

#endif
