/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's operations as the front end calls them: typed, thread-safe. */
#ifndef SQUEEZED_SERVICE_H
#define SQUEEZED_SERVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/service_error.h"

/*
 * api/ checks JSON types and counts, then calls these. Every call is safe from any
 * thread: operations that touch the host are queued to the one worker thread (which
 * owns the backend, the cache and the squeezer) and run one at a time; the caller
 * blocks until its own operation is done. service_status never waits for the worker:
 * it returns the last published picture.
 *
 * Values are validated here, once, before anything is queued (server/request.h says
 * how): a size that is negative, zero where a size is needed, or absurd (above
 * LIMIT_KIB_MAX) is SERVICE_ERR_INVALID_MEMORY_VALUE; a domid outside 0 .. 32751, a
 * session or service name that cannot be a xenstore path component, or a time out of
 * bounds is SERVICE_ERR_INVALID_PARAMS; a reservation id that could not have been
 * handed out is SERVICE_ERR_UNKNOWN_RESERVATION. Such a call changes nothing.
 *
 * Each call returns 0 on success, or -1 with *err filled (caller clears it with
 * service_error_clear). Output strings are new; the caller frees them.
 */

struct service;

/* SPEC 4: returns the session id (the service name) and deletes every reservation
 * that service made before. */
int service_login(struct service *s, const char *dbg, const char *service_name, char **session,
                  struct service_error *err);
/* Free kib (plus the host reserve) and hold it under a new reservation id. The session
 * must have logged in (else INTERNAL "unknown session"). */
int service_reserve_memory(struct service *s, const char *dbg, const char *session, int64_t kib,
                           char **reservation_id, struct service_error *err);
int service_reserve_memory_range(struct service *s, const char *dbg, const char *session,
                                 int64_t min_kib, int64_t max_kib, char **reservation_id,
                                 int64_t *reserved_kib, struct service_error *err);
int service_delete_reservation(struct service *s, const char *dbg, const char *session,
                               const char *reservation_id, struct service_error *err);
int service_transfer_reservation_to_domain(struct service *s, const char *dbg,
                                           const char *session, const char *reservation_id,
                                           int64_t domid, struct service_error *err);
/* NO_RESERVATION when the domain has none. */
int service_query_reservation_of_domain(struct service *s, const char *dbg, const char *session,
                                        int64_t domid, char **reservation_id,
                                        struct service_error *err);
int service_balance_memory(struct service *s, const char *dbg, struct service_error *err);

int64_t service_get_host_reserved_memory_kib(struct service *s);
int64_t service_get_host_initial_free_memory_bytes(struct service *s);

struct service_dom0_policy {
    bool fixed; /* ["Fixed_size", fixed_bytes] else ["Auto_balloon", [min, max]] */
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
/* sim.set_claim: the domain's outstanding Xen claim becomes kib (0 clears it). */
int service_sim_set_claim(struct service *s, int64_t domid, int64_t kib,
                          struct service_error *err);
/* sim.pause_domain: pause or unpause the domain (its balloon driver stops). */
int service_sim_pause_domain(struct service *s, int64_t domid, bool paused,
                             struct service_error *err);

/* Stored replies of the message-switch front end (at-most-once across restarts): text
 * kept in xenstore under /squeezed/rpc/KEY (KEY: 1..64 of [A-Za-z0-9_-]), where a
 * restarted daemon finds it. get: *value is a new string, or NULL when none is stored.
 * put: value NULL removes the key; at most 64 keys are kept (older ones are removed
 * when a new one is written). Both run on the worker, in order with the other calls. */
int service_rpc_reply_get(struct service *s, const char *key, char **value,
                          struct service_error *err);
int service_rpc_reply_put(struct service *s, const char *key, const char *value,
                          struct service_error *err);

/* GET /status (SPEC 7): { host, domains, reservations, operations, cache } as last
 * published; never blocks on a running operation. New reference. */
json_t *service_status(struct service *s);

/* GET /history: the samples of the last window_ms (server/history.h, history_json, for the
 * shape), times on the clock of /status's daemon.now_ms; only the n_domids domids given
 * (borrowed), or every domain with none. Never blocks on a running operation. New
 * reference. */
json_t *service_history(struct service *s, int64_t window_ms, const int32_t *domids,
                        size_t n_domids);

#endif
