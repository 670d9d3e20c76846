/* SPDX-License-Identifier: LGPL-2.1-only */
/* The operator's pages (GET /, GET /ui) and the query of GET /history. */
#include "api/ui.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "common/xalloc.h"

static const char root_page[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>squeezed</title>\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;"
    "padding:0 1em;color:#1f2933}a{color:#0b62c4}code{font-size:90%}</style></head>\n"
    "<body><h1>squeezed</h1>\n"
    "<p>The memory-ballooning daemon of this Xen host.</p>\n"
    "<p><a href=\"/ui\"><b>Open the dashboard</b></a></p>\n"
    "<ul>\n"
    "<li><a href=\"/status\"><code>/status</code></a>: host, domains, reservations, "
    "operations (JSON)</li>\n"
    "<li><a href=\"/history?window_s=300\"><code>/history</code></a>: host free memory and "
    "each domain's target and actual over time (JSON)</li>\n"
    "<li><a href=\"/metrics\"><code>/metrics</code></a>: Prometheus metrics</li>\n"
    "<li><a href=\"/openapi.json\"><code>/openapi.json</code></a>: the whole interface</li>\n"
    "<li><code>POST /</code>: JSON-RPC (xapi's Memory interface)</li>\n"
    "</ul></body></html>\n";

const char *api_ui_root_page(void)
{
    return root_page;
}

/* A whole decimal number in [min, max]: digits only (no sign), by the one parser. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    return parse_int64(s, min, max, out) < 0 ? -1 : 0;
}

int api_ui_history_query(const char *window_s, const char *domids, int64_t *window_ms,
                         int32_t **domids_out, size_t *n_domids, char **err)
{
    int64_t w = API_HISTORY_DEFAULT_WINDOW_S;
    int32_t *ids = NULL;
    size_t n = 0;
    char *copy = NULL;
    int rc = -1;

    if (window_s != NULL && parse_int(window_s, 1, LIMIT_HISTORY_WINDOW_MAX_S, &w) < 0) {
        *err = xasprintf("window_s must be whole seconds, 1 .. %d", LIMIT_HISTORY_WINDOW_MAX_S);
        goto out;
    }
    if (domids != NULL && *domids != '\0') {
        copy = xstrdup(domids);
        ids = xreallocarray(NULL, LIMIT_HISTORY_DOMIDS_MAX, sizeof(*ids));
        /* strtok_r would merge empty fields: walk commas by hand. */
        for (char *p = copy;;) {
            char *comma = strchr(p, ',');
            int64_t v;
            if (comma != NULL)
                *comma = '\0';
            if (n == LIMIT_HISTORY_DOMIDS_MAX) {
                *err = xasprintf("domids lists more than %d domains", LIMIT_HISTORY_DOMIDS_MAX);
                goto out;
            }
            if (parse_int(p, 0, LIMIT_DOMID_MAX, &v) < 0) {
                *err = xasprintf("domids must be domain ids (0 .. %d) separated by commas",
                                 LIMIT_DOMID_MAX);
                goto out;
            }
            ids[n++] = (int32_t)v;
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    }
    *window_ms = (int64_t)w * 1000;
    *domids_out = n > 0 ? ids : NULL;
    if (n == 0)
        free(ids);
    *n_domids = n;
    ids = NULL;
    rc = 0;
out:
    free(ids);
    free(copy);
    return rc;
}
