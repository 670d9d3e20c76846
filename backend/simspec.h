/* SPDX-License-Identifier: LGPL-2.1-only */
/* Checks shared by the scenario parser and the simulated host (internal to backend/). */
#ifndef SQUEEZED_SIMSPEC_H
#define SQUEEZED_SIMSPEC_H

#include <jansson.h>

#include "backend/sim.h"
#include "common/limits.h" /* LIMIT_DOMID_MAX, LIMIT_KIB_MAX bound every spec */

/* Check a filled-in domain spec (sizes, ranges, balloon). On error returns -EINVAL and
 * *err = "WHERE.FIELD: reason" (new string; `where` may be NULL or ""). */
int simspec_validate(const struct sim_domain_spec *d, const char *where, char **err);
/* Same for a balloon alone. */
int simspec_validate_balloon(const struct sim_balloon *b, const char *where, char **err);
/* Parse a model name; 0 or -EINVAL. */
int simspec_model_parse(const char *name, enum sim_balloon_model *out);
/* The balloon as its JSON object (only the fields its model takes); new reference. */
json_t *simspec_balloon_to_json(const struct sim_balloon *b);
/* "where.field", or "field" when where is NULL or empty (new string). */
char *simspec_field(const char *where, const char *field);

#endif
