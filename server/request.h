/* SPDX-License-Identifier: LGPL-2.1-only */
/* The service's typed requests, one per kind of work, and the one check of each. */
#ifndef SQUEEZED_REQUEST_H
#define SQUEEZED_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/limits.h"
#include "server/service_error.h"

/*
 * Each public call of server/service.h fills one of these and checks it here, at the
 * service boundary, before anything is queued; the worker and the modules under it
 * (reservations, squeeze, the sim interface) take the values as valid. The front end
 * checks only JSON types and counts. Strings are borrowed from the caller.
 *
 * Every check returns 0, or -1 with *err filled (cleared first) with the error the
 * caller answers, its message naming the parameter and the method in the xapi
 * Memory interface's words (e.g. "invalid memory value for kib of reserve_memory: -5
 * (KiB, 0 .. 1099511627776)"). Parameters are checked in their declaration order.
 */

struct req_login {
    const char *service_name;
};

struct req_reserve {
    const char *session;
    int64_t kib; /* 0 .. LIMIT_KIB_MAX (0: a reservation of nothing, as squeezed) */
};

struct req_reserve_range {
    const char *session;
    int64_t min_kib; /* 0 .. max_kib */
    int64_t max_kib; /* 0 .. LIMIT_KIB_MAX */
};

struct req_delete {
    const char *session;
    const char *reservation_id;
};

struct req_transfer {
    const char *session;
    const char *reservation_id;
    int64_t domid; /* 0 .. LIMIT_DOMID_MAX */
};

struct req_query {
    const char *session;
    int64_t domid; /* 0 .. LIMIT_DOMID_MAX */
};

struct req_sim_advance {
    double seconds; /* > 0, <= LIMIT_ADVANCE_MAX_S  */
};

struct req_sim_create {
    const json_t *domain; /* an object; its fields are the simulator's to check */
};

struct req_sim_destroy {
    int64_t domid;
};

struct req_sim_range {
    int64_t domid;
    int64_t min_kib; /* 0 .. LIMIT_KIB_MAX (min <= max is the simulator's rule) */
    int64_t max_kib; /* 0 .. LIMIT_KIB_MAX */
};

struct req_sim_balloon {
    int64_t domid;
    const json_t *balloon; /* an object; the simulator checks its fields */
};

struct req_sim_claim {
    int64_t domid;
    int64_t kib; /* 0 .. LIMIT_KIB_MAX (whether the host has it is the simulator's rule) */
};

struct req_sim_pause {
    int64_t domid;
    bool paused;
};

/* A stored reply of the message-switch front end (service_rpc_reply_get/put). */
struct req_rpc_reply {
    const char *key;   /* 1 .. LIMIT_RPC_KEY_MAX_BYTES of [A-Za-z0-9_-] */
    const char *value; /* put: the reply to keep, NULL to remove it; get: unused */
};

/* service_name: a non-empty name of at most LIMIT_NAME_MAX_BYTES without '/' or
 * control characters, else INVALID_PARAMS (the session rules proper are the
 * reservations' own: reservations_login). */
int request_check_login(const struct req_login *r, struct service_error *err);
/* session as a name; kib 0 .. LIMIT_KIB_MAX, else INVALID_MEMORY_VALUE. */
int request_check_reserve(const struct req_reserve *r, struct service_error *err);
/* session; min_kib 0 .., max_kib 0 .. LIMIT_KIB_MAX, min <= max (else
 * INVALID_MEMORY_VALUE with min_kib). */
int request_check_reserve_range(const struct req_reserve_range *r, struct service_error *err);
/* session; an id that could not have been handed out is UNKNOWN_RESERVATION. */
int request_check_delete(const struct req_delete *r, struct service_error *err);
/* session, id as above, domid 0 .. LIMIT_DOMID_MAX else INVALID_PARAMS. */
int request_check_transfer(const struct req_transfer *r, struct service_error *err);
int request_check_query(const struct req_query *r, struct service_error *err);
/* seconds finite, > 0, <= LIMIT_ADVANCE_MAX_S, else INVALID_PARAMS. */
int request_check_sim_advance(const struct req_sim_advance *r, struct service_error *err);
/* domain must be a JSON object, else INVALID_PARAMS. */
int request_check_sim_create(const struct req_sim_create *r, struct service_error *err);
int request_check_sim_destroy(const struct req_sim_destroy *r, struct service_error *err);
int request_check_sim_range(const struct req_sim_range *r, struct service_error *err);
int request_check_sim_balloon(const struct req_sim_balloon *r, struct service_error *err);
/* domid as above; kib 0 .. LIMIT_KIB_MAX, else INVALID_MEMORY_VALUE. */
int request_check_sim_claim(const struct req_sim_claim *r, struct service_error *err);
int request_check_sim_pause(const struct req_sim_pause *r, struct service_error *err);
/* key as above, else INVALID_PARAMS ("bad key KEY"). */
int request_check_rpc_reply(const struct req_rpc_reply *r, struct service_error *err);

#endif
