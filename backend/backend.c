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

bool backend_list_next(const struct backend_domain *v, size_t got, uint32_t first,
                       uint32_t *next)
{
    uint32_t top = 0;
    bool any = false;
    for (size_t i = 0; i < got; i++) {
        if (v[i].domid >= first && (!any || v[i].domid > top)) {
            top = v[i].domid;
            any = true;
        }
    }
    if (!any || top == UINT32_MAX)
        return false; /* nothing at or past `first`: asking again would loop */
    *next = top + 1;
    return true;
}

/* Domains asked for per list_domains call by backend_list_all. */
#define LIST_ALL_BATCH 1024

int backend_list_all(struct backend *b, struct backend_domain **v, size_t *cap, size_t *n)
{
    uint32_t first = 0;
    int calls = 0;
    *n = 0;
    for (;;) {
        if (*cap - *n < LIST_ALL_BATCH) {
            size_t c = *cap < LIST_ALL_BATCH ? LIST_ALL_BATCH : *cap;
            while (c - *n < LIST_ALL_BATCH)
                c *= 2;
            *v = xreallocarray(*v, c, sizeof(**v));
            *cap = c;
        }
        int got = b->ops->list_domains(b, first, *v + *n, LIST_ALL_BATCH);
        calls++;
        if (got < 0) {
            *n = 0;
            return got;
        }
        if (got > LIST_ALL_BATCH)
            got = LIST_ALL_BATCH; /* a backend breaking its contract */
        const struct backend_domain *batch = *v + *n;
        *n += (size_t)got;
        if (got < LIST_ALL_BATCH || !backend_list_next(batch, (size_t)got, first, &first))
            break;
    }
    return calls;
}

int backend_list_one(struct backend *b, uint32_t domid, struct backend_domain *out)
{
    struct backend_domain d;
    int got = b->ops->list_domains(b, domid, &d, 1);
    if (got < 0)
        return got;
    if (got == 0 || d.domid != domid)
        return 0;
    *out = d;
    return 1;
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
