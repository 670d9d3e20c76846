/* SPDX-License-Identifier: LGPL-2.1-only */
/* GET /metrics: the /status picture and the process in the Prometheus text format 0.0.4. */
#ifndef SQUEEZED_API_METRICS_H
#define SQUEEZED_API_METRICS_H

#include <jansson.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Render status (borrowed; the JSON of service_status) with # HELP and # TYPE lines, in
 * base units (its KiB as bytes, ms as seconds): host and per-domain sizes (domains
 * labelled domid, name, uuid), reservations, operations (a counter, histograms of
 * operation duration and client wait on status' histogram_bounds_s), the cache's
 * counters, the daemon, and the process_* metrics of this process (/proc/self). A field
 * that is missing or of the wrong type is left out, never guessed. Returns a new string
 * the caller frees. */
char *metrics_render(const json_t *status);
/* The same in two parts: what comes from status (metrics_render_status), which a caller
 * may keep while status is unchanged, and the process_* metrics read now
 * (metrics_render_process). metrics_render is the first followed by the second. */
char *metrics_render_status(const json_t *status);
char *metrics_render_process(void);

#endif
