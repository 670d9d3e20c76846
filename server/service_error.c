/* SPDX-License-Identifier: LGPL-2.1-only */
/* The errors the service reports: clearing and filling them. */
#include "server/service_error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void service_error_clear(struct service_error *e)
{
    if (e == NULL)
        return;
    free(e->domids);
    free(e->text);
    json_decref(e->breakdown);
    memset(e, 0, sizeof(*e));
}

int service_fail(struct service_error *err, enum service_error_kind kind, char *text)
{
    if (err == NULL) {
        free(text);
        return -1;
    }
    service_error_clear(err);
    err->kind = kind;
    err->text = text;
    return -1;
}
