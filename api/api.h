/* SPDX-License-Identifier: LGPL-2.1-only */
/* The HTTP front end: JSON-RPC (xapi-style and 2.0), /status, /metrics, /healthz. */
#ifndef SQUEEZED_API_H
#define SQUEEZED_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/service.h"

/* Larger bodies are refused (413). An alias kept for the tests; the limit lives in
 * common/limits.h. */
#define API_MAX_BODY_BYTES LIMIT_BODY_MAX_BYTES

struct api_config {
    const char *xml_socket_path; /* XML-RPC unix socket (0600), as squeezed's
                                    /var/xapi/memory; NULL: none */
    const char *switch_path;     /* message-switch socket: serve the queue
                                    org.xen.xapi.memory through it; NULL: no switch */
    const char *listen_host;     /* must be a loopback address; NULL: no TCP listener */
    uint16_t listen_port;        /* 0: any free port (see api_tcp_port) */
    const char *socket_path;     /* unix socket, created 0600; NULL: none. A stale file that
                                    nobody listens on is replaced; a live one is an error. */
    const char *openapi_path;    /* file served at GET /openapi.json; NULL: built-in path */
};

struct api_server;

/* Start serving (libmicrohttpd threads). svc is borrowed and must outlive the server.
 * Returns NULL and *err (new string) if an address cannot be bound. */
struct api_server *api_start(struct service *svc, const struct api_config *cfg, char **err);
/* Stop serving, remove the unix socket. NULL allowed. */
void api_stop(struct api_server *srv);
/* The TCP port actually bound (useful with port 0). */
uint16_t api_tcp_port(const struct api_server *srv);

/* The JSON-RPC path without HTTP, for tests and the fuzzer: a POST body in, the reply
 * body out (new string) and the HTTP status it is sent with. */
char *api_handle_rpc(struct service *svc, const char *body, size_t len, int *http_status);

/* What the dispatcher takes as the pos-th positional parameter of method (dbg is 0),
 * given n_given of them: the XML-RPC front end turns untyped values into these. */
enum api_param_kind {
    API_PARAM_ANY, /* unknown method or position: left as it is */
    API_PARAM_STRING,
    API_PARAM_INT,
    API_PARAM_NUMBER, /* integer or not */
    API_PARAM_OBJECT, /* sim.*: a struct whose untyped integer members become integers */
};
enum api_param_kind api_param_kind(const char *method, size_t pos, size_t n_given);

/* NULL-terminated list of the JSON-RPC method names dispatched (sim.* included; they
 * are refused at run time when service_has_sim is false). */
const char *const *api_method_names(void);

#endif
