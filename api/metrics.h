/* SPDX-License-Identifier: LGPL-2.1-only */
/* GET /metrics: the /status picture in the Prometheus text exposition format 0.0.4. */
#ifndef SQUEEZED_API_METRICS_H
#define SQUEEZED_API_METRICS_H

#include <jansson.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Render status (borrowed; the JSON of service_status) with # HELP and # TYPE lines.
 * A field that is missing or of the wrong type is left out, never guessed. Returns a new
 * string the caller frees. */
char *metrics_render(const json_t *status);

#endif
