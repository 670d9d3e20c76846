/* SPDX-License-Identifier: LGPL-2.1-only */
/* The JSON-RPC front end (api/rpc.c) against a recording mock of the service: both wire
 * styles, every method, the error variants, bad requests and limits, the fuzzing seeds. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/api.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "tests/support/checks.h"
#include "tests/support/mock_service.h"
#include "tests/support/paths.h"

/* ==== helpers ========================================================================== */

/* Run a body through api_handle_rpc; returns the parsed reply (NULL for an empty one). */
static json_t *call_rpc_n(const char *body, size_t len, int *status)
{
    int st = -1;
    char *reply = api_handle_rpc(MOCK_SVC, body, len, &st);
    json_t *j = NULL;

    assert_non_null(reply);
    if (reply[0] != '\0') {
        json_error_t jerr;
        j = json_loads(reply, 0, &jerr);
        if (j == NULL)
            fail_msg("reply is not JSON: %s (%s)", reply, jerr.text);
    }
    free(reply);
    if (status != NULL)
        *status = st;
    else
        assert_int_equal(st, 200);
    return j;
}

static json_t *call_rpc(const char *body)
{
    return call_rpc_n(body, strlen(body), NULL);
}

/* body gives exactly the reply expected, HTTP 200. */
static void expect_reply(const char *body, const char *expected)
{
    json_t *r = call_rpc(body);
    json_expect(r, expected);
    json_decref(r);
}

/* The 2.0 error code of the reply to body, after checking the envelope's shape: jsonrpc,
 * id, error {code, message (non-empty), data (the variant)}, no result. */
static int v2_error_code(const char *body)
{
    json_t *r = call_rpc(body);
    json_t *e;
    int code;

    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
    assert_non_null(json_object_get(r, "id"));
    assert_null(json_object_get(r, "result"));
    e = json_object_get(r, "error");
    assert_true(json_is_object(e));
    assert_true(json_is_integer(json_object_get(e, "code")));
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    assert_non_null(json_object_get(e, "data"));
    code = (int)json_integer_value(json_object_get(e, "code"));
    json_decref(r);
    return code;
}

/* An xapi reply to body that is an Internal_error; returns nothing, checks id null. */
static void expect_xapi_internal_error(const char *body)
{
    json_t *r = call_rpc(body);
    json_t *e;

    assert_non_null(r);
    assert_null(json_object_get(r, "jsonrpc"));
    assert_true(json_is_null(json_object_get(r, "result")));
    e = json_object_get(r, "error");
    if (!json_is_array(e) || json_array_size(e) != 2 ||
        strcmp(json_string_value(json_array_get(e, 0)) ?: "", "Internal_error") != 0 ||
        json_string_length(json_array_get(e, 1)) == 0) {
        char *s = json_dumps(r, JSON_COMPACT);
        print_error("not an Internal_error reply: %s (to %s)\n", s, body);
        free(s);
        json_decref(r);
        fail();
    }
    json_decref(r);
}

static int setup_rpc(void **state)
{
    (void)state;
    mock_reset();
    return 0;
}

/* ==== the methods, both styles ========================================================= */

struct method_case {
    const char *method;
    const char *positional; /* xapi and 2.0 positional params */
    const char *named;      /* 2.0 named params */
    const char *result;     /* expected result JSON */
    const char *call;       /* the service call expected (mock record) */
};

static const struct method_case method_cases[] = {
    {"get_diagnostics", "[\"d\"]", "{\"dbg\": \"d\"}", "\"diag\"", "get_diagnostics"},
    {"login", "[\"d\", \"xenopsd\"]", "{\"dbg\": \"d\", \"service_name\": \"xenopsd\"}",
     "\"xenopsd\"", "login dbg=d service=xenopsd"},
    {"reserve_memory", "[\"d\", \"xenopsd\", 1024]",
     "{\"dbg\": \"d\", \"session_id\": \"xenopsd\", \"kib\": 1024}", "\"resv-1024\"",
     "reserve_memory dbg=d session=xenopsd kib=1024"},
    {"reserve_memory_range", "[\"d\", \"xenopsd\", 1000, 2000]",
     "{\"dbg\": \"d\", \"session_id\": \"xenopsd\", \"min_kib\": 1000, \"max_kib\": 2000}",
     "[\"resv-range\", 1999]", "reserve_memory_range dbg=d session=xenopsd min=1000 max=2000"},
    {"delete_reservation", "[\"d\", \"xenopsd\", \"r1\"]",
     "{\"dbg\": \"d\", \"session_id\": \"xenopsd\", \"reservation_id\": \"r1\"}", "null",
     "delete_reservation dbg=d session=xenopsd id=r1"},
    {"transfer_reservation_to_domain", "[\"d\", \"xenopsd\", \"r1\", 5]",
     "{\"dbg\": \"d\", \"session_id\": \"xenopsd\", \"reservation_id\": \"r1\", \"domid\": 5}",
     "null", "transfer dbg=d session=xenopsd id=r1 domid=5"},
    {"query_reservation_of_domain", "[\"d\", \"xenopsd\", 5]",
     "{\"dbg\": \"d\", \"session_id\": \"xenopsd\", \"domid\": 5}", "\"resv-of-5\"",
     "query dbg=d session=xenopsd domid=5"},
    {"balance_memory", "[\"d\"]", "{\"dbg\": \"d\"}", "null", "balance dbg=d"},
    {"get_host_reserved_memory", "[\"d\"]", "{\"dbg\": \"d\"}", "73728",
     "get_host_reserved_memory"},
    {"get_host_initial_free_memory", "[\"d\"]", "{\"dbg\": \"d\"}", "8589934592",
     "get_host_initial_free_memory"},
    {"get_domain_zero_policy", "[\"d\"]", "{\"dbg\": \"d\"}",
     "[\"Auto_balloon\", [536870912, 2147483648]]", "get_domain_zero_policy"},
    {"sim.state", "[\"d\"]", "{\"dbg\": \"d\"}",
     "{\"time_s\": 1.5, \"free_kib\": 4096, \"domains\": [], \"violations\": []}", "sim.state"},
    {"sim.advance", "[\"d\", 2.5]", "{\"dbg\": \"d\", \"seconds\": 2.5}", "null",
     "sim.advance seconds=2.5"},
    {"sim.create_domain", "[\"d\", {\"domid\": 9, \"type\": \"pv\"}]",
     "{\"dbg\": \"d\", \"domain\": {\"domid\": 9, \"type\": \"pv\"}}", "null",
     "sim.create_domain {\"domid\":9,\"type\":\"pv\"}"},
    {"sim.destroy_domain", "[\"d\", 9]", "{\"dbg\": \"d\", \"domid\": 9}", "null",
     "sim.destroy_domain domid=9"},
    {"sim.set_dynamic_range", "[\"d\", 9, 1000, 3000]",
     "{\"dbg\": \"d\", \"domid\": 9, \"min_kib\": 1000, \"max_kib\": 3000}", "null",
     "sim.set_dynamic_range domid=9 min=1000 max=3000"},
    {"sim.set_balloon", "[\"d\", 9, {\"model\": \"stuck\"}]",
     "{\"dbg\": \"d\", \"domid\": 9, \"balloon\": {\"model\": \"stuck\"}}", "null",
     "sim.set_balloon domid=9 {\"model\":\"stuck\"}"},
    {"sim.set_claim", "[\"d\", 9, 2097152]", "{\"dbg\": \"d\", \"domid\": 9, \"kib\": 2097152}",
     "null", "sim.set_claim domid=9 kib=2097152"},
    {"sim.pause_domain", "[\"d\", 9, true]", "{\"dbg\": \"d\", \"domid\": 9, \"paused\": true}",
     "null", "sim.pause_domain domid=9 paused=1"},
};

#define N_CASES (sizeof(method_cases) / sizeof(method_cases[0]))

static void test_every_method_xapi_style(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct method_case *c = &method_cases[i];
        char *body = xasprintf("{\"method\": \"%s\", \"params\": %s, \"id\": %zu}", c->method,
                               c->positional, i + 1);
        char *want =
            xasprintf("{\"result\": %s, \"error\": null, \"id\": %zu}", c->result, i + 1);
        int before = mock_calls();
        expect_reply(body, want);
        assert_int_equal(mock_calls(), before + 1);
        mock_expect_last_call(c->call);
        free(body);
        free(want);
    }
}

static void test_every_method_v2_positional(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct method_case *c = &method_cases[i];
        char *body = xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"params\": %s, "
                               "\"id\": \"req-%zu\"}",
                               c->method, c->positional, i);
        char *want = xasprintf("{\"jsonrpc\": \"2.0\", \"result\": %s, \"id\": \"req-%zu\"}",
                               c->result, i);
        expect_reply(body, want);
        mock_expect_last_call(c->call);
        free(body);
        free(want);
    }
}

static void test_every_method_v2_named(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct method_case *c = &method_cases[i];
        char *body = xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"params\": %s, "
                               "\"id\": %zu}",
                               c->method, c->named, i);
        char *want =
            xasprintf("{\"jsonrpc\": \"2.0\", \"result\": %s, \"id\": %zu}", c->result, i);
        expect_reply(body, want);
        mock_expect_last_call(c->call);
        free(body);
        free(want);
    }
}

/* Named params may leave dbg out; it is then "". */
static void test_named_params_dbg_optional(void **state)
{
    (void)state;
    expect_reply("{\"jsonrpc\": \"2.0\", \"method\": \"reserve_memory\", \"id\": 1,"
                 " \"params\": {\"kib\": 4096, \"session_id\": \"s\"}}",
                 "{\"jsonrpc\": \"2.0\", \"result\": \"resv-4096\", \"id\": 1}");
    mock_expect_last_call("reserve_memory dbg= session=s kib=4096");
    /* xapi style with named params is accepted the same way. */
    expect_reply("{\"method\": \"login\", \"params\": {\"service_name\": \"x\"}, \"id\": 2}",
                 "{\"result\": \"x\", \"error\": null, \"id\": 2}");
}

/* sim.* take their arguments with or without a leading dbg. */
static void test_sim_methods_without_dbg(void **state)
{
    (void)state;
    expect_reply("{\"method\": \"sim.state\", \"params\": [], \"id\": 1}",
                 "{\"result\": {\"time_s\": 1.5, \"free_kib\": 4096, \"domains\": [],"
                 " \"violations\": []}, \"error\": null, \"id\": 1}");
    expect_reply("{\"method\": \"sim.advance\", \"params\": [3], \"id\": 1}",
                 "{\"result\": null, \"error\": null, \"id\": 1}");
    mock_expect_last_call("sim.advance seconds=3");
    expect_reply("{\"method\": \"sim.create_domain\", \"params\": [{\"domid\": 3}], \"id\": 1}",
                 "{\"result\": null, \"error\": null, \"id\": 1}");
    mock_expect_last_call("sim.create_domain {\"domid\":3}");
    expect_reply("{\"method\": \"sim.destroy_domain\", \"params\": [3], \"id\": 1}",
                 "{\"result\": null, \"error\": null, \"id\": 1}");
    mock_expect_last_call("sim.destroy_domain domid=3");
    expect_reply("{\"method\": \"sim.set_dynamic_range\", \"params\": [3, 10, 20], \"id\": 1}",
                 "{\"result\": null, \"error\": null, \"id\": 1}");
    mock_expect_last_call("sim.set_dynamic_range domid=3 min=10 max=20");
    expect_reply("{\"jsonrpc\": \"2.0\", \"method\": \"sim.set_balloon\","
                 " \"params\": [3, {\"model\": \"ideal\"}], \"id\": 1}",
                 "{\"jsonrpc\": \"2.0\", \"result\": null, \"id\": 1}");
    mock_expect_last_call("sim.set_balloon domid=3 {\"model\":\"ideal\"}");
    expect_reply("{\"jsonrpc\": \"2.0\", \"method\": \"sim.state\", \"id\": 1}",
                 "{\"jsonrpc\": \"2.0\", \"result\": {\"time_s\": 1.5, \"free_kib\": 4096,"
                 " \"domains\": [], \"violations\": []}, \"id\": 1}");
}

static void test_sim_methods_refused_without_sim(void **state)
{
    (void)state;
    mock.has_sim = false;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct method_case *c = &method_cases[i];
        if (strncmp(c->method, "sim.", 4) != 0)
            continue;
        char *body = xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"params\": %s, "
                               "\"id\": 1}",
                               c->method, c->positional);
        assert_int_equal(v2_error_code(body), -32601);
        free(body);
        body = xasprintf("{\"method\": \"%s\", \"params\": %s, \"id\": 1}", c->method,
                         c->positional);
        expect_xapi_internal_error(body);
        free(body);
    }
    assert_int_equal(mock_calls(), 0);
}

static void test_dom0_policy_fixed(void **state)
{
    (void)state;
    mock.dom0_fixed = true;
    expect_reply("{\"method\": \"get_domain_zero_policy\", \"params\": [\"d\"], \"id\": 1}",
                 "{\"result\": [\"Fixed_size\", 1073741824], \"error\": null, \"id\": 1}");
}

/* Diagnostics that are not UTF-8 still make a valid reply. */
static void test_diagnostics_not_utf8(void **state)
{
    (void)state;
    mock.diagnostics = "caf\xe9 ok";
    expect_reply("{\"method\": \"get_diagnostics\", \"params\": [\"d\"], \"id\": 1}",
                 "{\"result\": \"caf? ok\", \"error\": null, \"id\": 1}");
}

static void test_ids_echoed(void **state)
{
    (void)state;
    static const char *ids[] = {"0", "-7", "\"abc\"", "null", "1.5", "12345678901234"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char *body = xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"balance_memory\","
                               " \"params\": [\"d\"], \"id\": %s}",
                               ids[i]);
        char *want = xasprintf("{\"jsonrpc\": \"2.0\", \"result\": null, \"id\": %s}", ids[i]);
        expect_reply(body, want);
        free(body);
        free(want);
        body = xasprintf("{\"method\": \"balance_memory\", \"params\": [\"d\"], \"id\": %s}",
                         ids[i]);
        want = xasprintf("{\"result\": null, \"error\": null, \"id\": %s}", ids[i]);
        expect_reply(body, want);
        free(body);
        free(want);
    }
    /* xapi style: no id, null id back; any id is echoed. */
    expect_reply("{\"method\": \"balance_memory\", \"params\": [\"d\"]}",
                 "{\"result\": null, \"error\": null, \"id\": null}");
    expect_reply("{\"method\": \"balance_memory\", \"params\": [\"d\"], \"id\": [1, {}]}",
                 "{\"result\": null, \"error\": null, \"id\": [1, {}]}");
}

/* A 2.0 notification runs and gets no body (HTTP 204). */
static void test_notification_runs_without_reply(void **state)
{
    int status = 0;
    const char *body =
        "{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": [\"d\", \"n\"]}";
    (void)state;
    json_t *r = call_rpc_n(body, strlen(body), &status);
    assert_null(r);
    assert_int_equal(status, 204);
    assert_int_equal(mock_calls(), 1);
    mock_expect_last_call("login dbg=d service=n");
    /* A failing notification is silent too. */
    mock_fail(SERVICE_ERR_INTERNAL, "boom");
    r = call_rpc_n(body, strlen(body), &status);
    assert_null(r);
    assert_int_equal(status, 204);
}

/* ==== the error variants =============================================================== */

static void arm_cannot_free(void)
{
    mock_fail(SERVICE_ERR_CANNOT_FREE, NULL);
    mock.fail.needed_kib = 2048;
    mock.fail.free_kib = 1024;
}

static void arm_refused(void)
{
    static const int32_t domids[] = {3, 12};
    mock_fail(SERVICE_ERR_REFUSED, NULL);
    mock.fail.domids = (int32_t *)domids; /* copied by take_failure */
    mock.fail.n_domids = 2;
}

static void arm_invalid_value(void)
{
    mock_fail(SERVICE_ERR_INVALID_MEMORY_VALUE, NULL);
    mock.fail.value = 99;
}

struct error_case {
    void (*arm)(void);
    enum service_error_kind kind; /* when arm is NULL */
    const char *text;
    const char *variant;
    int code;
};

static const struct error_case error_cases[] = {
    {arm_cannot_free, 0, NULL, "[\"Cannot_free_this_much_memory\", [2048, 1024]]", -32000},
    {arm_refused, 0, NULL, "[\"Domains_refused_to_cooperate\", [3, 12]]", -32000},
    {NULL, SERVICE_ERR_UNKNOWN_RESERVATION, "r9", "[\"Unknown_reservation\", \"r9\"]", -32000},
    {NULL, SERVICE_ERR_NO_RESERVATION, NULL, "\"No_reservation\"", -32000},
    {arm_invalid_value, 0, NULL, "[\"Invalid_memory_value\", 99]", -32000},
    {NULL, SERVICE_ERR_INTERNAL, "unknown session", "[\"Internal_error\", \"unknown session\"]",
     -32000},
    {NULL, SERVICE_ERR_INTERNAL, NULL, "[\"Internal_error\", \"internal error\"]", -32000},
};

static void arm(const struct error_case *c)
{
    if (c->arm != NULL)
        c->arm();
    else
        mock_fail(c->kind, c->text);
}

static void test_error_variants_xapi(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        arm(&error_cases[i]);
        char *want =
            xasprintf("{\"result\": null, \"error\": %s, \"id\": 4}", error_cases[i].variant);
        expect_reply(
            "{\"method\": \"reserve_memory\", \"params\": [\"d\", \"s\", 10], \"id\": 4}",
            want);
        free(want);
    }
}

static void test_error_variants_v2(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        arm(&error_cases[i]);
        json_t *r = call_rpc("{\"jsonrpc\": \"2.0\", \"method\": \"delete_reservation\","
                             " \"params\": [\"d\", \"s\", \"r9\"], \"id\": 4}");
        json_t *e = json_object_get(r, "error");
        assert_non_null(e);
        assert_int_equal(json_integer_value(json_object_get(e, "code")), error_cases[i].code);
        assert_true(json_string_length(json_object_get(e, "message")) > 0);
        json_expect(json_object_get(e, "data"), error_cases[i].variant);
        assert_int_equal(json_integer_value(json_object_get(r, "id")), 4);
        assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
        assert_null(json_object_get(r, "result"));
        json_decref(r);
    }
}

/* The service's INVALID_PARAMS (e.g. an unknown domid for sim.*) is -32602 in 2.0 and an
 * Internal_error in the xapi style. */
static void test_service_invalid_params(void **state)
{
    (void)state;
    mock_fail(SERVICE_ERR_INVALID_PARAMS, "no domain 42");
    json_t *r = call_rpc("{\"jsonrpc\": \"2.0\", \"method\": \"sim.destroy_domain\","
                         " \"params\": [42], \"id\": 1}");
    json_t *e = json_object_get(r, "error");
    assert_int_equal(json_integer_value(json_object_get(e, "code")), -32602);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "no domain 42"));
    json_decref(r);
    mock_fail(SERVICE_ERR_INVALID_PARAMS, "no domain 42");
    expect_reply("{\"method\": \"sim.destroy_domain\", \"params\": [42], \"id\": 1}",
                 "{\"result\": null, \"error\": [\"Internal_error\","
                 " \"invalid params: no domain 42\"], \"id\": 1}");
}

/* ==== bad requests: the right error, and no service call ================================ */

static void test_parse_errors(void **state)
{
    static const char *xapi_bodies[] = {
        "",
        "{",
        "nul",
        "{\"method\": ",
        "{} x",
        "{\"method\": \"login\", \"method\": \"x\"}",
        "{\"method\": \"login\", \"params\": [\"d\", \"\\u0000\"]}",
        "{'method': 1}",
        "{\"method\": \"reserve_memory\", \"params\": [\"d\", \"s\", 99999999999999999999]}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(xapi_bodies) / sizeof(xapi_bodies[0]); i++)
        expect_xapi_internal_error(xapi_bodies[i]);
    /* Invalid UTF-8 and a raw NUL byte. */
    int status;
    json_t *r = call_rpc_n("{\"method\": \"l\xff\"}", 15, &status);
    assert_int_equal(status, 200);
    assert_true(json_is_null(json_object_get(r, "id")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "error"), 0)),
                        "Internal_error");
    json_decref(r);
    r = call_rpc_n("{\"method\"\0: 1}", 14, &status);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "error"), 0)),
                        "Internal_error");
    json_decref(r);
    /* No body at all. */
    char *reply = api_handle_rpc(MOCK_SVC, NULL, 0, &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(reply, "Internal_error"));
    free(reply);
    /* A body that looks like 2.0 gets a 2.0 parse error with id null. */
    r = call_rpc("{\"jsonrpc\": \"2.0\", \"method\": \"login\", ");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     -32700);
    assert_true(json_is_null(json_object_get(r, "id")));
    json_decref(r);
    assert_int_equal(mock_calls(), 0);
}

static void test_invalid_requests(void **state)
{
    static const char *v2_bodies[] = {
        "{\"jsonrpc\": \"2.0\", \"id\": 1}",
        "{\"jsonrpc\": \"2.0\", \"method\": 5, \"id\": 1}",
        "{\"jsonrpc\": \"2.0\", \"method\": null, \"id\": 1}",
        "{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": \"d\", \"id\": 1}",
        "{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": 5, \"id\": 1}",
        "{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": null, \"id\": 1}",
        "{\"jsonrpc\": \"1.0\", \"method\": \"login\", \"params\": [\"d\", \"s\"], \"id\": 1}",
        "{\"jsonrpc\": 2.0, \"method\": \"login\", \"params\": [\"d\", \"s\"], \"id\": 1}",
        "{\"jsonrpc\": null, \"method\": \"login\", \"params\": [\"d\", \"s\"], \"id\": 1}",
        "{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": [\"d\", \"s\"], \"id\": {}}",
        "{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": [\"d\", \"s\"], \"id\": []}",
        "{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": [\"d\", \"s\"], \"id\": "
        "true}",
        "[{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": [\"d\", \"s\"], \"id\": "
        "1}]",
        "[\"jsonrpc\"]",
    };
    static const char *xapi_bodies[] = {
        "42",
        "\"x\"",
        "null",
        "true",
        "[]",
        "[{\"method\": \"login\"}]",
        "{}",
        "{\"method\": 5, \"params\": [], \"id\": 1}",
        "{\"method\": \"login\", \"params\": \"d\", \"id\": 1}",
        "{\"method\": \"login\", \"params\": 7, \"id\": 1}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(v2_bodies) / sizeof(v2_bodies[0]); i++) {
        if (v2_error_code(v2_bodies[i]) != -32600)
            fail_msg("expected -32600 for %s", v2_bodies[i]);
    }
    for (size_t i = 0; i < sizeof(xapi_bodies) / sizeof(xapi_bodies[0]); i++)
        expect_xapi_internal_error(xapi_bodies[i]);
    /* An invalid id is not echoed. */
    json_t *r = call_rpc(v2_bodies[9]);
    assert_true(json_is_null(json_object_get(r, "id")));
    json_decref(r);
    /* The batch refusal says so. */
    r = call_rpc(v2_bodies[12]);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(r, "error"), "message")), "batch"));
    json_decref(r);
    assert_int_equal(mock_calls(), 0);
}

static void test_unknown_methods(void **state)
{
    static const char *names[] = {"Login", "reserve", "", "sim.", "sim.nothing", "login "};
    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *body = xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"params\": [\"d\"],"
                               " \"id\": 1}",
                               names[i]);
        assert_int_equal(v2_error_code(body), -32601);
        free(body);
        body = xasprintf("{\"method\": \"%s\", \"params\": [\"d\"], \"id\": 1}", names[i]);
        expect_xapi_internal_error(body);
        free(body);
    }
    assert_int_equal(mock_calls(), 0);
}

/* Each of these must be -32602 in 2.0 and an Internal_error in the xapi style. */
static const char *const bad_params[][2] = {
    /* wrong counts */
    {"login", "[]"},
    {"login", "[\"d\"]"},
    {"login", "[\"d\", \"s\", \"x\"]"},
    {"reserve_memory", "[\"d\", \"s\"]"},
    {"reserve_memory", "[\"d\", \"s\", 1, 2]"},
    {"reserve_memory_range", "[\"d\", \"s\", 1]"},
    {"transfer_reservation_to_domain", "[\"d\", \"s\", \"r\"]"},
    {"get_host_reserved_memory", "[]"},
    {"get_host_reserved_memory", "[\"d\", \"x\"]"},
    {"balance_memory", "[]"},
    {"sim.state", "[\"d\", \"e\"]"},
    {"sim.advance", "[]"},
    {"sim.advance", "[\"d\", 1, 2]"},
    {"sim.set_dynamic_range", "[1, 2]"},
    /* wrong types */
    {"reserve_memory", "[\"d\", \"s\", \"1024\"]"},
    {"reserve_memory", "[\"d\", \"s\", 1024.0]"},
    {"reserve_memory", "[\"d\", \"s\", 1e3]"},
    {"reserve_memory", "[\"d\", \"s\", true]"},
    {"reserve_memory", "[\"d\", \"s\", null]"},
    {"reserve_memory", "[\"d\", \"s\", [1024]]"},
    {"reserve_memory", "[\"d\", 5, 1024]"},
    {"reserve_memory", "[5, \"s\", 1024]"},
    {"reserve_memory", "[null, \"s\", 1024]"},
    {"login", "[\"d\", 5]"},
    {"login", "[\"d\", {}]"},
    {"reserve_memory_range", "[\"d\", \"s\", 1.5, 2]"},
    {"delete_reservation", "[\"d\", \"s\", 5]"},
    {"transfer_reservation_to_domain", "[\"d\", \"s\", \"r\", \"5\"]"},
    {"transfer_reservation_to_domain", "[\"d\", \"s\", \"r\", 5.0]"},
    {"query_reservation_of_domain", "[\"d\", \"s\", false]"},
    {"sim.advance", "[\"1\"]"},
    {"sim.advance", "[true]"},
    {"sim.create_domain", "[5]"},
    {"sim.create_domain", "[[]]"},
    {"sim.set_balloon", "[1, \"ideal\"]"},
    {"sim.pause_domain", "[1, 1]"},
    {"sim.pause_domain", "[1, \"true\"]"},
    {"sim.set_claim", "[1, 1.5]"},
    {"sim.destroy_domain", "[1.5]"},
    /* out of range (not sizes) */
    {"transfer_reservation_to_domain", "[\"d\", \"s\", \"r\", -1]"},
    {"transfer_reservation_to_domain", "[\"d\", \"s\", \"r\", 32752]"},
    {"query_reservation_of_domain", "[\"d\", \"s\", 65536]"},
    {"sim.destroy_domain", "[-3]"},
    {"sim.advance", "[-1]"},
    {"sim.advance", "[0]"},
    {"sim.advance", "[1e300]"},
    /* names that cannot be sessions */
    {"login", "[\"d\", \"\"]"},
    {"login", "[\"d\", \"a/b\"]"},
    {"login", "[\"d\", \"a\\nb\"]"},
    {"reserve_memory", "[\"d\", \"\", 1]"},
    /* named: unknown, missing, wrong type */
    {"login", "{\"service_name\": \"x\", \"extra\": 1}"},
    {"login", "{\"dbg\": \"d\"}"},
    {"login", "{\"dbg\": 5, \"service_name\": \"x\"}"},
    {"reserve_memory", "{\"session_id\": \"s\", \"kib\": \"1\"}"},
    {"reserve_memory", "{\"session_id\": \"s\", \"min_kib\": 1}"},
    {"balance_memory", "{\"dbg\": \"d\", \"kib\": 1}"},
    {"sim.advance", "{\"secs\": 1}"},
};

static void test_bad_params(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_params) / sizeof(bad_params[0]); i++) {
        char *body = xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"params\": %s,"
                               " \"id\": 1}",
                               bad_params[i][0], bad_params[i][1]);
        int code = v2_error_code(body);
        if (code != -32602)
            fail_msg("%s: expected -32602, got %d", body, code);
        free(body);
        body = xasprintf("{\"method\": \"%s\", \"params\": %s, \"id\": 1}", bad_params[i][0],
                         bad_params[i][1]);
        expect_xapi_internal_error(body);
        free(body);
    }
    assert_int_equal(mock_calls(), 0);
}

/* A 256-byte service name is refused, 255 bytes is fine. */
static void test_name_length_limit(void **state)
{
    char name[257];
    (void)state;
    memset(name, 'a', 256);
    name[256] = '\0';
    char *body =
        xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"login\", \"params\": [\"d\", \"%s\"],"
                  " \"id\": 1}",
                  name);
    assert_int_equal(v2_error_code(body), -32602);
    free(body);
    assert_int_equal(mock_calls(), 0);
    name[255] = '\0';
    body = xasprintf("{\"method\": \"login\", \"params\": [\"d\", \"%s\"], \"id\": 1}", name);
    json_t *r = call_rpc(body);
    assert_string_equal(json_string_value(json_object_get(r, "result")), name);
    json_decref(r);
    free(body);
}

static void test_invalid_memory_values(void **state)
{
    static const struct {
        const char *method;
        const char *params;
        const char *value;
    } cases[] = {
        {"reserve_memory", "[\"d\", \"s\", -1]", "-1"},
        {"reserve_memory", "[\"d\", \"s\", 1099511627777]", "1099511627777"},
        {"reserve_memory", "[\"d\", \"s\", 9223372036854775807]", "9223372036854775807"},
        {"reserve_memory", "[\"d\", \"s\", -9223372036854775808]", "-9223372036854775808"},
        {"reserve_memory_range", "[\"d\", \"s\", -5, 10]", "-5"},
        {"reserve_memory_range", "[\"d\", \"s\", 0, -1]", "-1"},
        {"reserve_memory_range", "[\"d\", \"s\", 10, -1]", "-1"},
        {"reserve_memory_range", "[\"d\", \"s\", 20, 10]", "20"},
        {"reserve_memory_range", "[\"d\", \"s\", 1, 1099511627777]", "1099511627777"},
        {"sim.set_dynamic_range", "[1, -1, 10]", "-1"},
        {"sim.set_dynamic_range", "[1, 1, 1099511627777]", "1099511627777"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = xasprintf("{\"method\": \"%s\", \"params\": %s, \"id\": 1}",
                               cases[i].method, cases[i].params);
        char *want = xasprintf("{\"result\": null, \"error\": [\"Invalid_memory_value\", %s],"
                               " \"id\": 1}",
                               cases[i].value);
        expect_reply(body, want);
        free(body);
        free(want);
        body =
            xasprintf("{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"params\": %s, \"id\": 1}",
                      cases[i].method, cases[i].params);
        json_t *r = call_rpc(body);
        json_t *e = json_object_get(r, "error");
        assert_int_equal(json_integer_value(json_object_get(e, "code")), -32000);
        want = xasprintf("[\"Invalid_memory_value\", %s]", cases[i].value);
        json_expect(json_object_get(e, "data"), want);
        free(want);
        json_decref(r);
        free(body);
    }
    assert_int_equal(mock_calls(), 0);
}

/* The edges that are allowed reach the service. */
static void test_limits_accepted(void **state)
{
    (void)state;
    expect_reply("{\"method\": \"reserve_memory\", \"params\": [\"d\", \"s\", 1099511627776],"
                 " \"id\": 1}",
                 "{\"result\": \"resv-1099511627776\", \"error\": null, \"id\": 1}");
    expect_reply("{\"method\": \"reserve_memory_range\", \"params\": [\"d\", \"s\", 0, 1],"
                 " \"id\": 1}",
                 "{\"result\": [\"resv-range\", 0], \"error\": null, \"id\": 1}");
    expect_reply("{\"method\": \"reserve_memory_range\", \"params\": [\"d\", \"s\", 7, 7],"
                 " \"id\": 1}",
                 "{\"result\": [\"resv-range\", 6], \"error\": null, \"id\": 1}");
    expect_reply("{\"method\": \"query_reservation_of_domain\", \"params\": [\"d\", \"s\", 0],"
                 " \"id\": 1}",
                 "{\"result\": \"resv-of-0\", \"error\": null, \"id\": 1}");
    expect_reply("{\"method\": \"query_reservation_of_domain\","
                 " \"params\": [\"d\", \"s\", 32751], \"id\": 1}",
                 "{\"result\": \"resv-of-32751\", \"error\": null, \"id\": 1}");
    expect_reply("{\"method\": \"sim.advance\", \"params\": [0.001], \"id\": 1}",
                 "{\"result\": null, \"error\": null, \"id\": 1}");
    expect_reply("{\"method\": \"sim.set_dynamic_range\", \"params\": [1, 0, 0], \"id\": 1}",
                 "{\"result\": null, \"error\": null, \"id\": 1}");
    assert_int_equal(mock_calls(), 7);
}

/* A reservation id that could not have been handed out is unknown, without asking. */
static void test_impossible_reservation_ids(void **state)
{
    (void)state;
    expect_reply(
        "{\"method\": \"delete_reservation\", \"params\": [\"d\", \"s\", \"../x\"],"
        " \"id\": 1}",
        "{\"result\": null, \"error\": [\"Unknown_reservation\", \"../x\"], \"id\": 1}");
    expect_reply("{\"method\": \"transfer_reservation_to_domain\","
                 " \"params\": [\"d\", \"s\", \"\", 3], \"id\": 1}",
                 "{\"result\": null, \"error\": [\"Unknown_reservation\", \"\"], \"id\": 1}");
    assert_int_equal(mock_calls(), 0);
}

static void test_body_too_large_direct(void **state)
{
    size_t len = API_MAX_BODY_BYTES + 1;
    char *body = malloc(len);
    int status = 0;
    (void)state;
    memset(body, ' ', len);
    memcpy(body, "{\"method\": \"balance_memory\", \"params\": [\"d\"]}", 45);
    json_t *r = call_rpc_n(body, len, &status);
    assert_int_equal(status, 413);
    assert_non_null(json_object_get(r, "error"));
    json_decref(r);
    free(body);
    assert_int_equal(mock_calls(), 0);
}

static void test_method_names_all_dispatched(void **state)
{
    const char *const *names = api_method_names();
    size_t n = 0;
    (void)state;
    for (; names[n] != NULL; n++) {
        char *body = xasprintf(
            "{\"jsonrpc\": \"2.0\", \"method\": \"%s\", \"params\": {}, \"id\": 1}", names[n]);
        json_t *r = call_rpc(body);
        json_t *e = json_object_get(r, "error");
        /* Not "method not found" (some need params, and say so with -32602). */
        if (e != NULL)
            assert_int_not_equal(json_integer_value(json_object_get(e, "code")), -32601);
        bool covered = false;
        for (size_t i = 0; i < N_CASES; i++)
            covered = covered || strcmp(method_cases[i].method, names[n]) == 0;
        if (!covered)
            fail_msg("method %s has no test case", names[n]);
        json_decref(r);
        free(body);
    }
    assert_int_equal(n, N_CASES);
}

/* The fuzzing seeds (tests/fuzz/corpus): bad_* get an error, the others succeed. */
static void test_fuzz_seeds(void **state)
{
    char *dir = support_find_file(NULL, "tests/fuzz/corpus");
    DIR *d = opendir(dir);
    struct dirent *e;
    int seen = 0;
    (void)state;

    if (d == NULL)
        fail_msg("%s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char buf[65536];
        size_t len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        int status = 0;
        json_t *r = call_rpc_n(buf, len, &status);
        bool bad = strncmp(e->d_name, "bad_", 4) == 0;
        json_t *err = json_object_get(r, "error");
        bool failed = err != NULL && !json_is_null(err);
        if (status == 204) {
            assert_null(r);
        } else {
            assert_int_equal(status, 200);
            if (bad != failed)
                fail_msg("%s: %s", e->d_name, bad ? "no error" : "an error");
        }
        json_decref(r);
        free(path);
        seen++;
    }
    closedir(d);
    free(dir);
    assert_true(seen >= 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_method_xapi_style, setup_rpc),
        cmocka_unit_test_setup(test_every_method_v2_positional, setup_rpc),
        cmocka_unit_test_setup(test_every_method_v2_named, setup_rpc),
        cmocka_unit_test_setup(test_named_params_dbg_optional, setup_rpc),
        cmocka_unit_test_setup(test_sim_methods_without_dbg, setup_rpc),
        cmocka_unit_test_setup(test_sim_methods_refused_without_sim, setup_rpc),
        cmocka_unit_test_setup(test_dom0_policy_fixed, setup_rpc),
        cmocka_unit_test_setup(test_diagnostics_not_utf8, setup_rpc),
        cmocka_unit_test_setup(test_ids_echoed, setup_rpc),
        cmocka_unit_test_setup(test_notification_runs_without_reply, setup_rpc),
        cmocka_unit_test_setup(test_error_variants_xapi, setup_rpc),
        cmocka_unit_test_setup(test_error_variants_v2, setup_rpc),
        cmocka_unit_test_setup(test_service_invalid_params, setup_rpc),
        cmocka_unit_test_setup(test_parse_errors, setup_rpc),
        cmocka_unit_test_setup(test_invalid_requests, setup_rpc),
        cmocka_unit_test_setup(test_unknown_methods, setup_rpc),
        cmocka_unit_test_setup(test_bad_params, setup_rpc),
        cmocka_unit_test_setup(test_name_length_limit, setup_rpc),
        cmocka_unit_test_setup(test_invalid_memory_values, setup_rpc),
        cmocka_unit_test_setup(test_limits_accepted, setup_rpc),
        cmocka_unit_test_setup(test_impossible_reservation_ids, setup_rpc),
        cmocka_unit_test_setup(test_body_too_large_direct, setup_rpc),
        cmocka_unit_test_setup(test_method_names_all_dispatched, setup_rpc),
        cmocka_unit_test_setup(test_fuzz_seeds, setup_rpc),
    };
    int failed;

    log_init("test_rpc", true, 0);
    log_quiet(true);
    /* One group: tests/run.sh counts the last summary line. */
    failed = cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
    mock_free();
    return failed != 0;
}
