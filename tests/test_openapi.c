/* SPDX-License-Identifier: LGPL-2.1-only */
/* openapi.json agrees with the front end: same methods, same params, same endpoints. */
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/api.h"
#include "common/log.h"
#include "tests/support/mock_service.h"
#include "tests/support/paths.h"

/* ==== the document ===================================================================== */

static json_t *doc;

static int load_doc(void **state)
{
    json_error_t jerr;
    char *path = support_find_file("OPENAPI_JSON", "openapi.json");

    (void)state;
    mock_reset();
    doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        print_error("%s: %s (line %d)\n", path, jerr.text, jerr.line);
    free(path);
    return doc == NULL ? -1 : 0;
}

static int free_doc(void **state)
{
    (void)state;
    mock_free();
    json_decref(doc);
    doc = NULL;
    return 0;
}

static json_t *doc_methods(void)
{
    json_t *m = json_object_get(doc, "x-jsonrpc-methods");
    assert_true(json_is_object(m));
    return m;
}

/* The reply to a body, parsed. */
static json_t *rpc(const char *body)
{
    int status = 0;
    char *reply = api_handle_rpc(MOCK_SVC, body, strlen(body), &status);
    assert_int_equal(status, 200);
    json_t *j = json_loads(reply, 0, NULL);
    if (j == NULL)
        fail_msg("not JSON: %s", reply);
    free(reply);
    return j;
}

static int error_code(const json_t *reply)
{
    json_t *e = json_object_get(reply, "error");
    return e != NULL ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static char *dumps(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    return s;
}

/* ==== the tests ========================================================================== */

static void test_is_openapi_3(void **state)
{
    (void)state;
    const char *v = json_string_value(json_object_get(doc, "openapi"));
    assert_non_null(v);
    assert_true(strncmp(v, "3.", 2) == 0);
    assert_true(json_is_object(json_object_get(doc, "info")));
}

static void test_every_method_documented(void **state)
{
    (void)state;
    for (const char *const *n = api_method_names(); *n != NULL; n++)
        if (json_object_get(doc_methods(), *n) == NULL)
            fail_msg("method %s is not in openapi.json x-jsonrpc-methods", *n);
}

static void test_every_documented_method_exists(void **state)
{
    const char *name;
    json_t *m;
    (void)state;
    json_object_foreach(doc_methods(), name, m)
    {
        bool found = false;
        for (const char *const *n = api_method_names(); *n != NULL && !found; n++)
            found = strcmp(*n, name) == 0;
        if (!found)
            fail_msg("openapi.json documents %s, which the front end does not dispatch", name);
    }
}

static void test_endpoints_documented(void **state)
{
    static const char *const wanted[][2] = {
        {"/", "post"},       {"/jsonrpc", "post"}, {"/status", "get"},
        {"/metrics", "get"}, {"/healthz", "get"},  {"/openapi.json", "get"},
        {"/", "get"},        {"/ui", "get"},       {"/history", "get"},
    };
    json_t *paths = json_object_get(doc, "paths");
    (void)state;
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        json_t *op = json_object_get(json_object_get(paths, wanted[i][0]), wanted[i][1]);
        if (!json_is_object(op))
            fail_msg("%s %s is not documented", wanted[i][1], wanted[i][0]);
        assert_true(json_is_object(json_object_get(op, "responses")));
    }
    /* The RPC endpoints document their HTTP errors. */
    json_t *resp =
        json_object_get(json_object_get(json_object_get(paths, "/"), "post"), "responses");
    assert_non_null(json_object_get(resp, "200"));
    assert_non_null(json_object_get(resp, "204"));
    assert_non_null(json_object_get(resp, "405"));
    assert_non_null(json_object_get(resp, "413"));
}

/* Build params from the documented examples; with_dbg adds dbg first. */
static json_t *example_params(const json_t *m, bool named, bool with_dbg)
{
    json_t *out = named ? json_object() : json_array();
    size_t i;
    json_t *p;

    if (with_dbg) {
        if (named)
            json_object_set_new(out, "dbg", json_string("openapi-test"));
        else
            json_array_append_new(out, json_string("openapi-test"));
    }
    json_array_foreach(json_object_get(m, "params"), i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        assert_non_null(name);
        if (strcmp(name, "dbg") == 0)
            continue;
        json_t *ex = json_object_get(p, "example");
        if (ex == NULL)
            fail_msg("param %s has no example", name);
        if (named)
            json_object_set(out, name, ex);
        else
            json_array_append(out, ex);
    }
    return out;
}

/* Each method, called with its documented params (named, positional, xapi), runs. */
static void test_documented_params_accepted(void **state)
{
    const char *name;
    json_t *m;
    (void)state;
    mock.has_sim = true;
    json_object_foreach(doc_methods(), name, m)
    {
        for (int form = 0; form < 3; form++) {
            json_t *params = example_params(m, form == 0, true);
            json_t *req =
                json_pack("{s:s, s:o, s:i}", "method", name, "params", params, "id", 7);
            if (form != 2)
                json_object_set_new(req, "jsonrpc", json_string("2.0"));
            char *body = dumps(req);
            int before = mock_calls();
            json_t *reply = rpc(body);
            if (error_code(reply) != 0 ||
                (form == 2 && !json_is_null(json_object_get(reply, "error")))) {
                char *r = dumps(reply);
                fail_msg("%s -> %s", body, r);
            }
            assert_int_equal(mock_calls(), before + 1);
            json_decref(reply);
            json_decref(req);
            free(body);
        }
    }
}

/* Params the document does not list are refused; each required one is required. */
static void test_undocumented_params_refused(void **state)
{
    const char *name;
    json_t *m;
    (void)state;
    mock.has_sim = true;
    json_object_foreach(doc_methods(), name, m)
    {
        json_t *params = example_params(m, true, true);
        json_object_set_new(params, "no_such_param", json_integer(1));
        json_t *req = json_pack("{s:s, s:s, s:O, s:i}", "jsonrpc", "2.0", "method", name,
                                "params", params, "id", 1);
        char *body = dumps(req);
        json_t *reply = rpc(body);
        if (error_code(reply) != -32602)
            fail_msg("%s: an unknown named param was not refused", name);
        json_decref(reply);
        json_decref(req);
        free(body);

        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(m, "params"), i, p)
        {
            const char *pname = json_string_value(json_object_get(p, "name"));
            bool required = json_is_true(json_object_get(p, "required"));
            if (strcmp(pname, "no_such_param") == 0)
                continue;
            json_t *fewer = json_deep_copy(params);
            json_object_del(fewer, "no_such_param");
            json_object_del(fewer, pname);
            req = json_pack("{s:s, s:s, s:o, s:i}", "jsonrpc", "2.0", "method", name, "params",
                            fewer, "id", 1);
            body = dumps(req);
            reply = rpc(body);
            int code = error_code(reply);
            if (required && code != -32602)
                fail_msg("%s: leaving out required %s gave %d", name, pname, code);
            if (!required && code != 0)
                fail_msg("%s: leaving out optional %s gave %d", name, pname, code);
            json_decref(reply);
            json_decref(req);
            free(body);
        }
        json_decref(params);
    }
}

/* Methods marked sim are exactly those refused without the simulated backend. */
static void test_sim_flag_matches(void **state)
{
    const char *name;
    json_t *m;
    (void)state;
    mock.has_sim = false;
    json_object_foreach(doc_methods(), name, m)
    {
        json_t *params = example_params(m, true, true);
        json_t *req = json_pack("{s:s, s:s, s:o, s:i}", "jsonrpc", "2.0", "method", name,
                                "params", params, "id", 1);
        char *body = dumps(req);
        json_t *reply = rpc(body);
        bool refused = error_code(reply) == -32601;
        if (refused != json_is_true(json_object_get(m, "sim")))
            fail_msg("%s: sim is %s in openapi.json but the method is %s without sim", name,
                     json_is_true(json_object_get(m, "sim")) ? "true" : "false",
                     refused ? "refused" : "served");
        json_decref(reply);
        json_decref(req);
        free(body);
    }
    mock.has_sim = true;
}

/* Each method has a request schema referenced from Request. */
static void test_request_schemas(void **state)
{
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *one_of = json_object_get(json_object_get(schemas, "Request"), "oneOf");
    const char *name;
    json_t *m;
    (void)state;
    assert_true(json_is_array(one_of));
    json_object_foreach(doc_methods(), name, m)
    {
        char ref[128];
        char sname[100];
        snprintf(sname, sizeof(sname), "Request_%s", name);
        for (char *c = sname; *c != '\0'; c++)
            if (*c == '.')
                *c = '_';
        snprintf(ref, sizeof(ref), "#/components/schemas/%s", sname);
        json_t *s = json_object_get(schemas, sname);
        if (s == NULL)
            fail_msg("no schema %s", sname);
        json_t *method = json_object_get(json_object_get(s, "properties"), "method");
        assert_string_equal(json_string_value(json_object_get(method, "const")), name);
        bool listed = false;
        size_t i;
        json_t *r;
        json_array_foreach(one_of, i, r) listed =
            listed || strcmp(json_string_value(json_object_get(r, "$ref")) ?: "", ref) == 0;
        if (!listed)
            fail_msg("%s is not in Request.oneOf", ref);
        assert_non_null(json_object_get(m, "result"));
        assert_true(json_is_array(json_object_get(m, "errors")));
    }
}

/* The /status schema has every part of the published picture. */
static void test_status_schema(void **state)
{
    static const char *const parts[] = {
        "host", "domains", "reservations", "operations", "operation_totals", "cache", "daemon"};
    static const char *const host[] = {"free_kib",           "reserved_kib", "total_kib",
                                       "xen_free_kib",       "scrub_kib",    "reservations_kib",
                                       "booting_unused_kib", "claims_kib"};
    json_t *status = json_object_get(
        json_object_get(json_object_get(doc, "components"), "schemas"), "Status");
    json_t *props = json_object_get(status, "properties");
    (void)state;
    assert_true(json_is_object(props));
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (json_object_get(props, parts[i]) == NULL)
            fail_msg("Status has no %s", parts[i]);
    json_t *hp = json_object_get(json_object_get(props, "host"), "properties");
    for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++)
        if (json_object_get(hp, host[i]) == NULL)
            fail_msg("Status.host has no %s", host[i]);
    assert_int_equal(json_object_size(props), sizeof(parts) / sizeof(parts[0]));
}

/* The error codes and variants the front end sends are documented. */
static void test_errors_documented(void **state)
{
    static const char *const codes[] = {"-32700", "-32600", "-32601", "-32602", "-32000"};
    static const char *const variants[] = {
        "Cannot_free_this_much_memory", "Domains_refused_to_cooperate",
        "Unknown_reservation",          "No_reservation",
        "Invalid_memory_value",         "Internal_error"};
    json_t *ec = json_object_get(doc, "x-jsonrpc-error-codes");
    (void)state;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (json_object_get(ec, codes[i]) == NULL)
            fail_msg("error code %s is not documented", codes[i]);
    char *all = dumps(json_object_get(json_object_get(doc, "components"), "schemas"));
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "{\"const\":\"%s\"", variants[i]);
        if (strstr(all, quoted) == NULL)
            fail_msg("error variant %s has no schema", variants[i]);
    }
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_openapi_3),
        cmocka_unit_test(test_every_method_documented),
        cmocka_unit_test(test_every_documented_method_exists),
        cmocka_unit_test(test_endpoints_documented),
        cmocka_unit_test(test_documented_params_accepted),
        cmocka_unit_test(test_undocumented_params_refused),
        cmocka_unit_test(test_sim_flag_matches),
        cmocka_unit_test(test_request_schemas),
        cmocka_unit_test(test_status_schema),
        cmocka_unit_test(test_errors_documented),
    };
    log_init("test_openapi", true, 0);
    log_quiet(true);
    return cmocka_run_group_tests_name("openapi", tests, load_doc, free_doc);
}
