/* SPDX-License-Identifier: LGPL-2.1-only */
/* The operator's pages (GET /, GET /ui) and the query of GET /history. */
#include "api/ui.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* A whole decimal number in [min, max]. */
static int parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int api_ui_history_query(const char *window_s, const char *domids, int64_t *window_ms,
                         int32_t **domids_out, size_t *n_domids, char **err)
{
    long long w = API_HISTORY_DEFAULT_WINDOW_S;
    int32_t *ids = NULL;
    size_t n = 0;
    char *copy = NULL;
    int rc = -1;

    if (window_s != NULL && parse_int(window_s, 1, API_HISTORY_MAX_WINDOW_S, &w) < 0) {
        *err = xasprintf("window_s must be whole seconds, 1 .. %d", API_HISTORY_MAX_WINDOW_S);
        goto out;
    }
    if (domids != NULL && *domids != '\0') {
        copy = xstrdup(domids);
        ids = xreallocarray(NULL, API_HISTORY_MAX_DOMIDS, sizeof(*ids));
        /* strtok_r would merge empty fields: walk commas by hand. */
        for (char *p = copy;; ) {
            char *comma = strchr(p, ',');
            long long v;
            if (comma != NULL)
                *comma = '\0';
            if (n == API_HISTORY_MAX_DOMIDS) {
                *err = xasprintf("domids lists more than %d domains", API_HISTORY_MAX_DOMIDS);
                goto out;
            }
            if (parse_int(p, 0, INT32_MAX, &v) < 0) {
                *err = xasprintf("domids must be domain ids separated by commas");
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
