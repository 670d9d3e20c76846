/* SPDX-License-Identifier: LGPL-2.1-only */
/* JSON-RPC over a POST body: parsing, JSON type and count checks, dispatch, reply envelopes. */
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/request.h"

/* JSON-RPC 2.0 error codes. */
#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_DOMAIN_ERROR -32000 /* the service refused: data holds the xapi variant */

#define MAX_PARAMS 4 /* not counting dbg */

enum rpc_style {
    STYLE_XAPI, /* no "jsonrpc" key: {"result", "error", "id"}, error is the variant */
    STYLE_V2,   /* "jsonrpc": "2.0" */
};

/* An error on its way to the client: in 2.0 it becomes {code, message, data: variant},
 * in the xapi style just the variant. */
struct rpc_error {
    int code;        /* JSON-RPC 2.0 code; 0 while no error is set */
    char *message;   /* owned */
    json_t *variant; /* owned */
};

/* JSON types only: every value (sizes, domids, names, times) is checked once, by the
 * service (server/request.h), which words the error as the client sees it. */
enum param_type {
    P_TEXT,    /* any string */
    P_NAME,    /* service name or session: a string without NUL bytes */
    P_RESV_ID, /* a reservation id: a string; one with NUL bytes is Unknown_reservation */
    P_KIB,     /* size in KiB: an integer */
    P_DOMID,   /* domain id: an integer */
    P_SECONDS, /* a number of seconds, integer or not */
    P_OBJECT,  /* a JSON object */
    P_BOOL,    /* true or false */
};

struct param_spec {
    const char *name; /* the 2.0 named-parameter name */
    enum param_type type;
};

/* A handler borrows the checked parameters (an array in declaration order, dbg not
 * included) and returns a new reference to the result, or NULL with *err set. */
typedef json_t *(*method_fn)(struct service *svc, const char *dbg, const json_t *params,
                             struct rpc_error *err);

struct method {
    const char *name;
    struct param_spec params[MAX_PARAMS]; /* in positional order, dbg not included; the
                                             first with a NULL name ends the list */
    method_fn fn;
    bool sim; /* sim backend only; dbg may be left out of positional params */
};

/* ---- errors and envelopes ------------------------------------------------------- */

/* A JSON string for text that should be UTF-8 but might not be: invalid bytes become
 * '?', so a reply can always be built. New reference. */
static json_t *json_text(const char *s)
{
    if (s == NULL)
        s = "";
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = xstrdup(s);
    for (unsigned char *p = (unsigned char *)copy; *p != '\0'; p++)
        if (*p >= 0x80)
            *p = '?';
    j = json_string(copy); /* ASCII now: only allocation could fail, and that aborts */
    free(copy);
    return j;
}

/* Set *err (replacing what it held): code, a printf message, and the xapi variant
 * (stolen; NULL means ["Internal_error", message]). Every error goes through here. */
static void rpc_fail(struct rpc_error *err, int code, json_t *variant, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rpc_fail(struct rpc_error *err, int code, json_t *variant, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (variant == NULL)
        variant = json_pack("[so]", "Internal_error", json_text(msg));
    json_decref(err->variant);
    free(err->message);
    err->code = code;
    err->message = msg;
    err->variant = variant;
}

static void rpc_error_clear(struct rpc_error *err)
{
    free(err->message);
    json_decref(err->variant);
    err->code = 0;
    err->message = NULL;
    err->variant = NULL;
}

/* The one place replies are built. result is stolen (NULL when err is set); id is
 * borrowed (NULL: the id is unknown and null is sent). */
static json_t *envelope(enum rpc_style style, const json_t *id, json_t *result,
                        const struct rpc_error *err)
{
    json_t *reply = json_object();
    json_t *idv = id != NULL ? json_deep_copy(id) : json_null();

    if (style == STYLE_V2) {
        json_object_set_new(reply, "jsonrpc", json_string("2.0"));
        if (err != NULL && err->code != 0) {
            json_t *e = json_pack("{s:i, s:o, s:O}", "code", err->code, "message",
                                  json_text(err->message), "data", err->variant);
            assert(e != NULL); /* a variant is always set with a code */
            json_object_set_new(reply, "error", e);
            json_decref(result);
        } else {
            json_object_set_new(reply, "result", result != NULL ? result : json_null());
        }
    } else if (err != NULL && err->code != 0) {
        json_object_set_new(reply, "result", json_null());
        json_object_set_new(reply, "error", json_incref(err->variant));
        json_decref(result);
    } else {
        json_object_set_new(reply, "result", result != NULL ? result : json_null());
        json_object_set_new(reply, "error", json_null());
    }
    json_object_set_new(reply, "id", idv);
    return reply;
}

/* Translate what the service reported (and clear it). */
static void fail_from_service(struct rpc_error *err, struct service_error *se)
{
    switch (se->kind) {
    case SERVICE_ERR_CANNOT_FREE:
        rpc_fail(err, RPC_DOMAIN_ERROR,
                 json_pack("[s[II]]", "Cannot_free_this_much_memory",
                           (json_int_t)se->needed_kib, (json_int_t)se->free_kib),
                 "cannot free this much memory: %lld KiB needed, %lld KiB free",
                 (long long)se->needed_kib, (long long)se->free_kib);
        break;
    case SERVICE_ERR_REFUSED: {
        json_t *domids = json_array();
        size_t len = 0;
        char list[256] = "";
        for (size_t i = 0; i < se->n_domids; i++) {
            json_array_append_new(domids, json_integer(se->domids[i]));
            if (len < sizeof(list)) {
                int w = snprintf(list + len, sizeof(list) - len, "%s%d", i ? ", " : "",
                                 (int)se->domids[i]);
                len += w > 0 ? (size_t)w : 0;
            }
        }
        rpc_fail(err, RPC_DOMAIN_ERROR,
                 json_pack("[so]", "Domains_refused_to_cooperate", domids),
                 "domains refused to cooperate: %s", list);
        break;
    }
    case SERVICE_ERR_UNKNOWN_RESERVATION:
        rpc_fail(err, RPC_DOMAIN_ERROR,
                 json_pack("[so]", "Unknown_reservation", json_text(se->text)),
                 "unknown reservation: %s", se->text != NULL ? se->text : "");
        break;
    case SERVICE_ERR_NO_RESERVATION:
        rpc_fail(err, RPC_DOMAIN_ERROR, json_string("No_reservation"),
                 "the domain has no reservation");
        break;
    case SERVICE_ERR_INVALID_MEMORY_VALUE:
        if (se->text != NULL)
            rpc_fail(err, RPC_DOMAIN_ERROR,
                     json_pack("[sI]", "Invalid_memory_value", (json_int_t)se->value), "%s",
                     se->text);
        else
            rpc_fail(err, RPC_DOMAIN_ERROR,
                     json_pack("[sI]", "Invalid_memory_value", (json_int_t)se->value),
                     "invalid memory value: %lld", (long long)se->value);
        break;
    case SERVICE_ERR_INVALID_PARAMS:
        rpc_fail(err, RPC_INVALID_PARAMS, NULL, "invalid params: %s",
                 se->text != NULL ? se->text : "rejected by the service");
        break;
    case SERVICE_ERR_INTERNAL:
    case SERVICE_OK:
    default:
        /* SERVICE_OK with a failed call would be a service bug: still answer. */
        rpc_fail(err, RPC_DOMAIN_ERROR,
                 json_pack("[so]", "Internal_error",
                           json_text(se->text != NULL ? se->text : "internal error")),
                 "internal error: %s", se->text != NULL ? se->text : "internal error");
        break;
    }
    service_error_clear(se);
}

/* ---- the methods ---------------------------------------------------------------- */

static const char *p_str(const json_t *params, size_t i)
{
    return json_string_value(json_array_get(params, i));
}

static int64_t p_int(const json_t *params, size_t i)
{
    return (int64_t)json_integer_value(json_array_get(params, i));
}

/* A new string from the service (may be NULL) as a JSON string; frees it. */
static json_t *take_string(char *s)
{
    json_t *j = json_text(s);
    free(s);
    return j;
}

static json_t *m_get_diagnostics(struct service *svc, const char *dbg, const json_t *params,
                                 struct rpc_error *err)
{
    (void)dbg;
    (void)params;
    (void)err;
    return take_string(service_get_diagnostics(svc));
}

static json_t *m_login(struct service *svc, const char *dbg, const json_t *params,
                       struct rpc_error *err)
{
    struct service_error se = {0};
    char *session = NULL;

    if (service_login(svc, dbg, p_str(params, 0), &session, &se) < 0) {
        free(session);
        fail_from_service(err, &se);
        return NULL;
    }
    return take_string(session);
}

static json_t *m_reserve_memory(struct service *svc, const char *dbg, const json_t *params,
                                struct rpc_error *err)
{
    struct service_error se = {0};
    char *id = NULL;

    if (service_reserve_memory(svc, dbg, p_str(params, 0), p_int(params, 1), &id, &se) < 0) {
        free(id);
        fail_from_service(err, &se);
        return NULL;
    }
    return take_string(id);
}

static json_t *m_reserve_memory_range(struct service *svc, const char *dbg,
                                      const json_t *params, struct rpc_error *err)
{
    struct service_error se = {0};
    char *id = NULL;
    int64_t kib = 0;

    if (service_reserve_memory_range(svc, dbg, p_str(params, 0), p_int(params, 1),
                                     p_int(params, 2), &id, &kib, &se) < 0) {
        free(id);
        fail_from_service(err, &se);
        return NULL;
    }
    return json_pack("[oI]", take_string(id), (json_int_t)kib);
}

static json_t *m_delete_reservation(struct service *svc, const char *dbg, const json_t *params,
                                    struct rpc_error *err)
{
    struct service_error se = {0};

    if (service_delete_reservation(svc, dbg, p_str(params, 0), p_str(params, 1), &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_transfer_reservation_to_domain(struct service *svc, const char *dbg,
                                                const json_t *params, struct rpc_error *err)
{
    struct service_error se = {0};

    if (service_transfer_reservation_to_domain(svc, dbg, p_str(params, 0), p_str(params, 1),
                                               p_int(params, 2), &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_query_reservation_of_domain(struct service *svc, const char *dbg,
                                             const json_t *params, struct rpc_error *err)
{
    struct service_error se = {0};
    char *id = NULL;

    if (service_query_reservation_of_domain(svc, dbg, p_str(params, 0), p_int(params, 1), &id,
                                            &se) < 0) {
        free(id);
        fail_from_service(err, &se);
        return NULL;
    }
    return take_string(id);
}

static json_t *m_balance_memory(struct service *svc, const char *dbg, const json_t *params,
                                struct rpc_error *err)
{
    struct service_error se = {0};

    (void)params;
    if (service_balance_memory(svc, dbg, &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_get_host_reserved_memory(struct service *svc, const char *dbg,
                                          const json_t *params, struct rpc_error *err)
{
    (void)dbg;
    (void)params;
    (void)err;
    return json_integer((json_int_t)service_get_host_reserved_memory_kib(svc));
}

static json_t *m_get_host_initial_free_memory(struct service *svc, const char *dbg,
                                              const json_t *params, struct rpc_error *err)
{
    (void)dbg;
    (void)params;
    (void)err;
    return json_integer((json_int_t)service_get_host_initial_free_memory_bytes(svc));
}

static json_t *m_get_domain_zero_policy(struct service *svc, const char *dbg,
                                        const json_t *params, struct rpc_error *err)
{
    struct service_dom0_policy pol = {0};

    (void)dbg;
    (void)params;
    (void)err;
    service_get_domain_zero_policy(svc, &pol);
    if (pol.fixed)
        return json_pack("[sI]", "Fixed_size", (json_int_t)pol.fixed_bytes);
    return json_pack("[s[II]]", "Auto_balloon", (json_int_t)pol.min_bytes,
                     (json_int_t)pol.max_bytes);
}

static json_t *m_sim_state(struct service *svc, const char *dbg, const json_t *params,
                           struct rpc_error *err)
{
    struct service_error se = {0};
    json_t *state;

    (void)dbg;
    (void)params;
    state = service_sim_state(svc, &se);
    if (state == NULL)
        fail_from_service(err, &se);
    return state;
}

static json_t *m_sim_advance(struct service *svc, const char *dbg, const json_t *params,
                             struct rpc_error *err)
{
    struct service_error se = {0};

    (void)dbg;
    if (service_sim_advance(svc, json_number_value(json_array_get(params, 0)), &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_sim_create_domain(struct service *svc, const char *dbg, const json_t *params,
                                   struct rpc_error *err)
{
    struct service_error se = {0};

    (void)dbg;
    if (service_sim_create_domain(svc, json_array_get(params, 0), &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_sim_destroy_domain(struct service *svc, const char *dbg, const json_t *params,
                                    struct rpc_error *err)
{
    struct service_error se = {0};

    (void)dbg;
    if (service_sim_destroy_domain(svc, p_int(params, 0), &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_sim_set_dynamic_range(struct service *svc, const char *dbg,
                                       const json_t *params, struct rpc_error *err)
{
    struct service_error se = {0};

    (void)dbg;
    if (service_sim_set_dynamic_range(svc, p_int(params, 0), p_int(params, 1), p_int(params, 2),
                                      &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_sim_set_balloon(struct service *svc, const char *dbg, const json_t *params,
                                 struct rpc_error *err)
{
    struct service_error se = {0};

    (void)dbg;
    if (service_sim_set_balloon(svc, p_int(params, 0), json_array_get(params, 1), &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_sim_set_claim(struct service *svc, const char *dbg, const json_t *params,
                               struct rpc_error *err)
{
    struct service_error se = {0};

    (void)dbg;
    if (service_sim_set_claim(svc, p_int(params, 0), p_int(params, 1), &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static json_t *m_sim_pause_domain(struct service *svc, const char *dbg, const json_t *params,
                                  struct rpc_error *err)
{
    struct service_error se = {0};

    (void)dbg;
    if (service_sim_pause_domain(svc, p_int(params, 0), json_is_true(json_array_get(params, 1)),
                                 &se) < 0) {
        fail_from_service(err, &se);
        return NULL;
    }
    return json_null();
}

static const struct method methods[] = {
    {.name = "get_diagnostics", .fn = m_get_diagnostics},
    {.name = "login", .params = {{"service_name", P_NAME}}, .fn = m_login},
    {.name = "reserve_memory",
     .params = {{"session_id", P_NAME}, {"kib", P_KIB}},
     .fn = m_reserve_memory},
    {.name = "reserve_memory_range",
     .params = {{"session_id", P_NAME}, {"min_kib", P_KIB}, {"max_kib", P_KIB}},
     .fn = m_reserve_memory_range},
    {.name = "delete_reservation",
     .params = {{"session_id", P_NAME}, {"reservation_id", P_RESV_ID}},
     .fn = m_delete_reservation},
    {.name = "transfer_reservation_to_domain",
     .params = {{"session_id", P_NAME}, {"reservation_id", P_RESV_ID}, {"domid", P_DOMID}},
     .fn = m_transfer_reservation_to_domain},
    {.name = "query_reservation_of_domain",
     .params = {{"session_id", P_NAME}, {"domid", P_DOMID}},
     .fn = m_query_reservation_of_domain},
    {.name = "balance_memory", .fn = m_balance_memory},
    {.name = "get_host_reserved_memory", .fn = m_get_host_reserved_memory},
    {.name = "get_host_initial_free_memory", .fn = m_get_host_initial_free_memory},
    {.name = "get_domain_zero_policy", .fn = m_get_domain_zero_policy},
    {.name = "sim.state", .fn = m_sim_state, .sim = true},
    {.name = "sim.advance",
     .params = {{"seconds", P_SECONDS}},
     .fn = m_sim_advance,
     .sim = true},
    {.name = "sim.create_domain",
     .params = {{"domain", P_OBJECT}},
     .fn = m_sim_create_domain,
     .sim = true},
    {.name = "sim.destroy_domain",
     .params = {{"domid", P_DOMID}},
     .fn = m_sim_destroy_domain,
     .sim = true},
    {.name = "sim.set_dynamic_range",
     .params = {{"domid", P_DOMID}, {"min_kib", P_KIB}, {"max_kib", P_KIB}},
     .fn = m_sim_set_dynamic_range,
     .sim = true},
    {.name = "sim.set_balloon",
     .params = {{"domid", P_DOMID}, {"balloon", P_OBJECT}},
     .fn = m_sim_set_balloon,
     .sim = true},
    {.name = "sim.set_claim",
     .params = {{"domid", P_DOMID}, {"kib", P_KIB}},
     .fn = m_sim_set_claim,
     .sim = true},
    {.name = "sim.pause_domain",
     .params = {{"domid", P_DOMID}, {"paused", P_BOOL}},
     .fn = m_sim_pause_domain,
     .sim = true},
};

/* How many parameters m takes, dbg not counted. */
static size_t n_params(const struct method *m)
{
    size_t n = 0;
    while (n < MAX_PARAMS && m->params[n].name != NULL)
        n++;
    return n;
}

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static const struct method *method_find(const char *name)
{
    for (size_t i = 0; i < N_METHODS; i++)
        if (strcmp(methods[i].name, name) == 0)
            return &methods[i];
    return NULL;
}

static const char *method_names[N_METHODS + 1];
static pthread_once_t method_names_once = PTHREAD_ONCE_INIT;

static void method_names_init(void)
{
    for (size_t i = 0; i < N_METHODS; i++)
        method_names[i] = methods[i].name;
    method_names[N_METHODS] = NULL;
}

const char *const *api_method_names(void)
{
    pthread_once(&method_names_once, method_names_init);
    return method_names;
}

enum api_param_kind api_param_kind(const char *method, size_t pos, size_t n_given)
{
    const struct method *m = method_find(method);
    if (m == NULL)
        return API_PARAM_ANY;
    /* dbg comes first; sim.* may leave it out. */
    size_t n = n_params(m);
    size_t first = m->sim && n_given == n ? 0 : 1;
    if (pos < first)
        return API_PARAM_STRING;
    if (pos - first >= n)
        return API_PARAM_ANY;
    switch (m->params[pos - first].type) {
    case P_KIB:
    case P_DOMID:
        return API_PARAM_INT;
    case P_SECONDS:
        return API_PARAM_NUMBER;
    case P_OBJECT:
        return API_PARAM_OBJECT;
    case P_BOOL:
        return API_PARAM_ANY;
    default:
        return API_PARAM_STRING;
    }
}

/* ---- parameter checks ----------------------------------------------------------- */

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a non-integer number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
    default:
        return "null";
    }
}

/* A string the service can take as a C string: no NUL bytes inside. */
static bool is_c_string(const json_t *v)
{
    return strlen(json_string_value(v)) == json_string_length(v);
}

/* Check one parameter's JSON type against its spec. */
static int check_param(const struct method *m, const struct param_spec *p, const json_t *v,
                       struct rpc_error *err)
{
    switch (p->type) {
    case P_TEXT:
    case P_NAME:
    case P_RESV_ID:
        if (!json_is_string(v))
            goto wrong_type;
        /* A NUL inside cannot reach the service: answered as the service would answer a
         * name or id with a control character in it. */
        if (p->type == P_NAME && !is_c_string(v)) {
            rpc_fail(err, RPC_INVALID_PARAMS, NULL,
                     "invalid params: %s of %s must be a non-empty name of at most %d bytes "
                     "without '/' or control characters",
                     p->name, m->name, LIMIT_NAME_MAX_BYTES);
            return -1;
        }
        if (p->type == P_RESV_ID && !is_c_string(v)) {
            rpc_fail(err, RPC_DOMAIN_ERROR,
                     json_pack("[so]", "Unknown_reservation", json_text(json_string_value(v))),
                     "unknown reservation: %s", json_string_value(v));
            return -1;
        }
        return 0;
    case P_KIB:
    case P_DOMID:
        if (!json_is_integer(v))
            goto wrong_type;
        return 0;
    case P_SECONDS:
        if (!json_is_number(v))
            goto wrong_type;
        return 0;
    case P_OBJECT:
        if (!json_is_object(v))
            goto wrong_type;
        return 0;
    case P_BOOL:
        if (!json_is_boolean(v))
            goto wrong_type;
        return 0;
    }
wrong_type:
    rpc_fail(err, RPC_INVALID_PARAMS, NULL, "invalid params: %s of %s must be %s, not %s",
             p->name, m->name,
             p->type == P_OBJECT    ? "an object"
             : p->type == P_BOOL    ? "true or false"
             : p->type == P_SECONDS ? "a number"
             : p->type == P_KIB     ? "an integer (KiB)"
             : p->type == P_DOMID   ? "an integer (domain id)"
                                    : "a string",
             json_kind(v));
    return -1;
}

static void fail_count(const struct method *m, size_t got, struct rpc_error *err)
{
    char names[160] = "";
    size_t len = 0;

    for (size_t i = 0; i < n_params(m) && len < sizeof(names); i++) {
        int w = snprintf(names + len, sizeof(names) - len, ", %s", m->params[i].name);
        len += w > 0 ? (size_t)w : 0;
    }
    if (!m->sim)
        rpc_fail(err, RPC_INVALID_PARAMS, NULL,
                 "invalid params: %s takes %zu param%s (dbg%s), got %zu", m->name,
                 n_params(m) + 1, n_params(m) ? "s" : "", names, got);
    else if (n_params(m) == 0)
        rpc_fail(err, RPC_INVALID_PARAMS, NULL,
                 "invalid params: %s takes no params (or just dbg), got %zu", m->name, got);
    else
        rpc_fail(err, RPC_INVALID_PARAMS, NULL,
                 "invalid params: %s takes %zu param%s (%s), optionally after dbg; got %zu",
                 m->name, n_params(m), n_params(m) > 1 ? "s" : "", names + 2, got);
}

/* Normalise params (array or object) into an array in declaration order, dbg apart,
 * every value checked. Returns a new array, or NULL with *err set. */
static json_t *check_params(const struct method *m, const json_t *params, const char **dbg,
                            struct rpc_error *err)
{
    static const struct param_spec dbg_spec = {"dbg", P_TEXT};
    json_t *args = json_array();
    size_t first = 0;

    *dbg = "";
    if (json_is_array(params)) {
        size_t n = json_array_size(params);
        if (n == n_params(m) + 1) {
            first = 1;
        } else if (!(m->sim && n == n_params(m))) {
            fail_count(m, n, err);
            goto fail;
        }
        if (first == 1) {
            if (check_param(m, &dbg_spec, json_array_get(params, 0), err) < 0)
                goto fail;
            *dbg = json_string_value(json_array_get(params, 0));
        }
        for (size_t i = 0; i < n_params(m); i++) {
            json_t *v = json_array_get(params, first + i);
            if (check_param(m, &m->params[i], v, err) < 0)
                goto fail;
            json_array_append(args, v);
        }
    } else {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)params, key, v)
        {
            bool known = strcmp(key, "dbg") == 0;
            for (size_t i = 0; i < n_params(m) && !known; i++)
                known = strcmp(key, m->params[i].name) == 0;
            if (!known) {
                rpc_fail(err, RPC_INVALID_PARAMS, NULL,
                         "invalid params: %s has no parameter named '%s'", m->name, key);
                goto fail;
            }
        }
        v = json_object_get(params, "dbg");
        if (v != NULL) {
            if (check_param(m, &dbg_spec, v, err) < 0)
                goto fail;
            *dbg = json_string_value(v);
        }
        for (size_t i = 0; i < n_params(m); i++) {
            v = json_object_get(params, m->params[i].name);
            if (v == NULL) {
                rpc_fail(err, RPC_INVALID_PARAMS, NULL,
                         "invalid params: %s needs the parameter '%s'", m->name,
                         m->params[i].name);
                goto fail;
            }
            if (check_param(m, &m->params[i], v, err) < 0)
                goto fail;
            json_array_append(args, v);
        }
    }
    return args;
fail:
    json_decref(args);
    return NULL;
}

/* ---- requests --------------------------------------------------------------------- */

/* Which style a body that is not a JSON object (or not JSON at all) is answered in: the
 * envelope a 2.0 client can read if it looks like one, else the xapi one. */
static enum rpc_style guess_style(const char *body, size_t len)
{
    static const char key[] = "\"jsonrpc\"";
    if (len >= sizeof(key) - 1 && memmem(body, len, key, sizeof(key) - 1) != NULL)
        return STYLE_V2;
    return STYLE_XAPI;
}

static char *dump(json_t *reply)
{
    char *s = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    return s;
}

static bool looks_like_xml(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '<';
}

char *api_handle_rpc(struct service *svc, const char *body, size_t len, int *http_status)
{
    struct rpc_error err = {0};
    enum rpc_style style = STYLE_XAPI;
    json_t *req = NULL;
    json_t *reply = NULL;
    json_t *result = NULL;
    json_t *args = NULL;
    const json_t *id = NULL;
    const json_t *params;
    const json_t *v;
    const struct method *m;
    const char *name;
    const char *dbg = "";
    bool notification = false;
    json_error_t jerr;

    *http_status = 200;
    if (body == NULL) {
        body = "";
        len = 0;
    }
    style = guess_style(body, len);
    if (len > LIMIT_BODY_MAX_BYTES) {
        *http_status = 413;
        rpc_fail(&err, RPC_INVALID_REQUEST, NULL, "request body larger than %d bytes",
                 LIMIT_BODY_MAX_BYTES);
        goto out;
    }
    req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (req == NULL && looks_like_xml(body, len)) {
        rpc_fail(&err, RPC_PARSE_ERROR, NULL,
                 "parse error: this is the JSON-RPC endpoint and the body is XML; XML-RPC "
                 "(a methodCall, as xenopsd sends with use-switch=false) is served on the "
                 "XML-RPC unix socket (--xml-socket, default /var/xapi/memory)");
        goto out;
    }
    if (req == NULL) {
        rpc_fail(&err, RPC_PARSE_ERROR, NULL, "parse error: %s at line %d, column %d",
                 jerr.text, jerr.line, jerr.column);
        goto out;
    }
    if (json_is_array(req)) {
        rpc_fail(&err, RPC_INVALID_REQUEST, NULL,
                 "invalid request: batch requests are not supported");
        goto out;
    }
    if (!json_is_object(req)) {
        rpc_fail(&err, RPC_INVALID_REQUEST, NULL,
                 "invalid request: the body must be a JSON object, not %s", json_kind(req));
        goto out;
    }
    v = json_object_get(req, "jsonrpc");
    style = v != NULL ? STYLE_V2 : STYLE_XAPI;
    id = json_object_get(req, "id");
    if (style == STYLE_V2) {
        if (id != NULL && !json_is_string(id) && !json_is_number(id) && !json_is_null(id)) {
            id = NULL;
            rpc_fail(&err, RPC_INVALID_REQUEST, NULL,
                     "invalid request: id must be a string, a number or null");
            goto out;
        }
        if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
            rpc_fail(&err, RPC_INVALID_REQUEST, NULL,
                     "invalid request: \"jsonrpc\" must be \"2.0\" (or left out for the xapi "
                     "style)");
            goto out;
        }
    }
    v = json_object_get(req, "method");
    if (!json_is_string(v)) {
        rpc_fail(&err, RPC_INVALID_REQUEST, NULL,
                 v == NULL ? "invalid request: no method"
                           : "invalid request: method must be a string");
        goto out;
    }
    name = json_string_value(v);
    /* A 2.0 request without an id is a notification: run it, answer nothing. */
    notification = style == STYLE_V2 && id == NULL;
    params = json_object_get(req, "params");
    if (params == NULL) {
        /* Left out: no params (2.0 allows it; xapi methods then have too few). */
        json_object_set_new(req, "params", json_array());
        params = json_object_get(req, "params");
    }
    if (!json_is_array(params) && !json_is_object(params)) {
        rpc_fail(&err, RPC_INVALID_REQUEST, NULL,
                 "invalid request: params must be an array or an object, not %s",
                 json_kind(params));
        goto out;
    }
    m = method_find(name);
    if (m == NULL || (m->sim && !service_has_sim(svc))) {
        rpc_fail(&err, RPC_METHOD_NOT_FOUND, NULL,
                 m == NULL ? "method not found: %s"
                           : "method not found: %s (only with the simulated backend)",
                 name);
        goto out;
    }
    args = check_params(m, params, &dbg, &err);
    if (args == NULL)
        goto out;
    log_debug("rpc: %s (dbg %s)", m->name, dbg);
    result = m->fn(svc, dbg, args, &err);
    if (result == NULL && err.code == 0)
        rpc_fail(&err, RPC_DOMAIN_ERROR, NULL, "%s returned no result", m->name);
out:
    if (err.code != 0)
        log_debug("rpc: error %d: %s", err.code, err.message);
    if (notification) {
        json_decref(result);
        *http_status = 204;
        reply = NULL;
    } else {
        reply = envelope(style, id, result, &err);
    }
    json_decref(args);
    rpc_error_clear(&err);
    /* id points into req: the envelope copied it. */
    json_decref(req);
    return reply != NULL ? dump(reply) : xstrdup("");
}
