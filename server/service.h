/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's operations as the front end calls them: typed, thread-safe. */
#ifndef SQUEEZED_SERVICE_H
#define SQUEEZED_SERVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * api/ parses and type-checks requests, then calls these. Every call is safe from any
 * thread: operations that touch the host are queued to the one worker thread (which
 * owns the backend, the cache and the squeezer) and run one at a time; the caller
 * blocks until its own operation is done. service_status never waits for the worker:
 * it returns the last published picture.
 *
 * Values are validated here too (the front end is not the only caller): a size that is
 * negative, zero where a size is needed, or absurd (above SERVICE_MAX_KIB) is
 * SERVICE_ERR_INVALID_MEMORY_VALUE and changes nothing.
 *
 * Each call returns 0 on success, or -1 with *err filled (caller clears it with
 * service_error_clear). Output strings are new; the caller frees them.
 */

#define SERVICE_MAX_KIB ((int64_t)1 << 40) /* 1 PiB: beyond any host */

enum service_error_kind {
    SERVICE_OK = 0,
    SERVICE_ERR_CANNOT_FREE,          /* ["Cannot_free_this_much_memory", [needed, free]] */
    SERVICE_ERR_REFUSED,              /* ["Domains_refused_to_cooperate", [domids]] */
    SERVICE_ERR_UNKNOWN_RESERVATION,  /* ["Unknown_reservation", text] */
    SERVICE_ERR_NO_RESERVATION,       /* "No_reservation" */
    SERVICE_ERR_INVALID_MEMORY_VALUE, /* ["Invalid_memory_value", value] */
    SERVICE_ERR_INTERNAL,             /* ["Internal_error", text] */
    SERVICE_ERR_INVALID_PARAMS,       /* a value the front end could not check (e.g. an
                                         unknown domid for sim.*): JSON-RPC -32602 */
};

struct service_error {
    enum service_error_kind kind;
    int64_t needed_kib; /* CANNOT_FREE */
    int64_t free_kib;   /* CANNOT_FREE */
    int32_t *domids;    /* REFUSED (owned) */
    size_t n_domids;
    int64_t value;      /* INVALID_MEMORY_VALUE */
    char *text;         /* UNKNOWN_RESERVATION (the id), INTERNAL, INVALID_PARAMS (owned) */
};

/* Free what an error owns and reset it to SERVICE_OK. */
void service_error_clear(struct service_error *e);

struct service;

/* SPEC 4: returns the session id (the service name) and deletes every reservation
 * that service made before. */
int service_login(struct service *s, const char *dbg, const char *service_name,
                  char **session, struct service_error *err);
/* Free kib (plus the host reserve) and hold it under a new reservation id. The session
 * must have logged in (else INTERNAL "unknown session"). */
int service_reserve_memory(struct service *s, const char *dbg, const char *session,
                           int64_t kib, char **reservation_id, struct service_error *err);
int service_reserve_memory_range(struct service *s, const char *dbg, const char *session,
                                 int64_t min_kib, int64_t max_kib, char **reservation_id,
                                 int64_t *reserved_kib, struct service_error *err);
int service_delete_reservation(struct service *s, const char *dbg, const char *session,
                               const char *reservation_id, struct service_error *err);
int service_transfer_reservation_to_domain(struct service *s, const char *dbg,
                                           const char *session, const char *reservation_id,
                                           int64_t domid, struct service_error *err);
/* NO_RESERVATION when the domain has none. */
int service_query_reservation_of_domain(struct service *s, const char *dbg,
                                        const char *session, int64_t domid,
                                        char **reservation_id, struct service_error *err);
int service_balance_memory(struct service *s, const char *dbg, struct service_error *err);

int64_t service_get_host_reserved_memory_kib(struct service *s);
int64_t service_get_host_initial_free_memory_bytes(struct service *s);

struct service_dom0_policy {
    bool fixed;           /* ["Fixed_size", fixed_bytes] else ["Auto_balloon", [min, max]] */
    int64_t fixed_bytes;
    int64_t min_bytes;
    int64_t max_bytes;
};
void service_get_domain_zero_policy(struct service *s, struct service_dom0_policy *out);
/* Human-readable diagnostics (new string). */
char *service_get_diagnostics(struct service *s);

/* The simulated host (SPEC 6.2). service_has_sim is false with the xen backend: the
 * front end then does not dispatch sim.* at all. Bad domids or values are
 * INVALID_PARAMS; sim.advance on the real clock is INVALID_PARAMS. */
bool service_has_sim(struct service *s);
json_t *service_sim_state(struct service *s, struct service_error *err);
int service_sim_advance(struct service *s, double seconds, struct service_error *err);
int service_sim_create_domain(struct service *s, const json_t *domain,
                              struct service_error *err);
int service_sim_destroy_domain(struct service *s, int64_t domid, struct service_error *err);
int service_sim_set_dynamic_range(struct service *s, int64_t domid, int64_t min_kib,
                                  int64_t max_kib, struct service_error *err);
int service_sim_set_balloon(struct service *s, int64_t domid, const json_t *balloon,
                            struct service_error *err);

/* GET /status (SPEC 7): { host, domains, reservations, operations, cache } as last
 * published; never blocks on a running operation. New reference. */
json_t *service_status(struct service *s);

/* The last published picture (server/status.h): its bytes are built once per picture
 * and shared. New reference (release with status_picture_unref); NULL before the first
 * publication. Never blocks on a running operation. */
struct status_picture;
struct status_picture *service_status_picture(struct service *s);

#endif
