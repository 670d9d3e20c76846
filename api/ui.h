/* SPDX-License-Identifier: LGPL-2.1-only */
/* The operator's pages (GET /, GET /ui) and the query of GET /history. */
#ifndef SQUEEZED_API_UI_H
#define SQUEEZED_API_UI_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"

#define API_HISTORY_DEFAULT_WINDOW_S 300 /* /history without window_s */

/* api/ui/index.html, built into the binary (scripts/embed.sh, generated at build time):
 * api_ui_index_html_len bytes (a NUL follows them). */
extern const unsigned char api_ui_index_html[];
extern const size_t api_ui_index_html_len;

/* The small page of GET /: what the daemon is and links to /ui and the other endpoints
 * (a static string). */
const char *api_ui_root_page(void);

/*
 * The arguments of GET /history, as sent (NULL when absent):
 *   window_s  whole seconds, 1 .. LIMIT_HISTORY_WINDOW_MAX_S (default
 *             API_HISTORY_DEFAULT_WINDOW_S)
 *   domids    a comma-separated list of domids (0 .. LIMIT_DOMID_MAX), at most
 *             LIMIT_HISTORY_DOMIDS_MAX; empty or absent: every domain
 * Returns 0 with *window_ms, *domids (new array, caller frees; NULL when none) and
 * *n_domids set; or -1 with *err (new string naming the argument) and nothing else set.
 */
int api_ui_history_query(const char *window_s, const char *domids, int64_t *window_ms,
                         int32_t **domids_out, size_t *n_domids, char **err);

#endif
