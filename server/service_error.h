/* SPDX-License-Identifier: LGPL-2.1-only */
/* The errors the service reports (xapi's Memory errors); below service.h and reservations.h. */
#ifndef SQUEEZED_SERVICE_ERROR_H
#define SQUEEZED_SERVICE_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"

struct json_t; /* <jansson.h> */

/* The largest size a request may carry, in KiB (1 PiB, beyond any host): above it a
 * size is SERVICE_ERR_INVALID_MEMORY_VALUE. */

enum service_error_kind {
    SERVICE_OK = 0,
    SERVICE_ERR_CANNOT_FREE,          /* ["Cannot_free_this_much_memory", [needed, free]] */
    SERVICE_ERR_REFUSED,              /* ["Domains_refused_to_cooperate", [domids]] */
    SERVICE_ERR_UNKNOWN_RESERVATION,  /* ["Unknown_reservation", text] */
    SERVICE_ERR_NO_RESERVATION,       /* "No_reservation" */
    SERVICE_ERR_INVALID_MEMORY_VALUE, /* ["Invalid_memory_value", value] */
    SERVICE_ERR_INTERNAL,             /* ["Internal_error", text] */
    SERVICE_ERR_INVALID_PARAMS,       /* a value out of bounds (domid, name, time) or one
                                         the sim refuses: JSON-RPC -32602 */
};

struct service_error {
    enum service_error_kind kind;
    int64_t needed_kib; /* CANNOT_FREE */
    int64_t free_kib;   /* CANNOT_FREE */
    int32_t *domids;    /* REFUSED (owned) */
    size_t n_domids;
    int64_t value;            /* INVALID_MEMORY_VALUE */
    char *text;               /* UNKNOWN_RESERVATION (the id), INTERNAL, INVALID_PARAMS (owned);
                                 INVALID_MEMORY_VALUE: the whole message, or NULL */
    struct json_t *breakdown; /* CANNOT_FREE, REFUSED of a reservation: why each guest
                                 did not give more (a jansson object, one reference
                                 owned; schema Breakdown of openapi.json), or NULL */
};

/* Free what an error owns (the breakdown's reference too) and reset it to SERVICE_OK. */
void service_error_clear(struct service_error *e);

/* Set *err (cleared first; NULL allowed: text is freed) to kind with text (taken).
 * Returns -1, for `return service_fail(...)`. */
int service_fail(struct service_error *err, enum service_error_kind kind, char *text);

#endif
