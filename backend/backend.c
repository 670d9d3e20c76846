/* SPDX-License-Identifier: LGPL-2.1-only */
/* Helpers shared by every backend: domain types, string vectors, watch events, paths. */
#include "backend/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

int64_t domain_type_xen_offset_kib(enum domain_type t)
{
    switch (t) {
    case DOMAIN_TYPE_HVM:
    case DOMAIN_TYPE_PVINPVH:
        return 1024;
    case DOMAIN_TYPE_PV:
        return 0;
    }
    return 0;
}

const char *domain_type_name(enum domain_type t)
{
    switch (t) {
    case DOMAIN_TYPE_PV:
        return "pv";
    case DOMAIN_TYPE_HVM:
        return "hvm";
    case DOMAIN_TYPE_PVINPVH:
        return "pvinpvh";
    }
    return "unknown";
}

int domain_type_parse(const char *name, enum domain_type *out)
{
    if (name == NULL)
        return -EINVAL;
    if (strcmp(name, "pv") == 0)
        *out = DOMAIN_TYPE_PV;
    else if (strcmp(name, "hvm") == 0)
        *out = DOMAIN_TYPE_HVM;
    else if (strcmp(name, "pvinpvh") == 0)
        *out = DOMAIN_TYPE_PVINPVH;
    else
        return -EINVAL;
    return 0;
}

void backend_strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void backend_watch_event_clear(struct backend_watch_event *ev)
{
    if (ev == NULL)
        return;
    free(ev->path);
    free(ev->token);
    ev->path = NULL;
    ev->token = NULL;
}

void backend_close(struct backend *b)
{
    if (b == NULL)
        return;
    b->ops->close(b);
}

char *backend_domain_path(uint32_t domid)
{
    return xasprintf("/local/domain/%u", domid);
}
