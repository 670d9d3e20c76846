/* SPDX-License-Identifier: LGPL-2.1-only */
/* XML-RPC golden tests: requests as ocaml-rpc's Xmlrpc.string_of_call writes them for
 * the 11 Memory methods, replies as Xmlrpc.string_of_response for every result type
 * and every error variant of Memory_interface.errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/xmlrpc.h"

#define CALL_HEAD "<?xml version=\"1.0\"?><methodCall><methodName>"
#define P(v) "<param><value>" v "</value></param>"
#define OK_HEAD                                                                                \
    "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>"      \
    "Status</name><value>Success</value></member><member><name>Value</name>"
#define FAIL_HEAD                                                                              \
    "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct><member><name>"      \
    "Status</name><value>Failure</value></member><member><name>ErrorDescription</name>"
#define TAIL "</member></struct></value></param></params></methodResponse>"

/* string_of_call: <methodName>NAME</methodName><params>PARAMS</params></methodCall>. */
static void check_request(const char *name, const char *params, const char *want)
{
    char xml[2048];
    snprintf(xml, sizeof(xml), CALL_HEAD "%s</methodName><params>%s</params></methodCall>",
             name, params);
    char *err = NULL;
    char *got = xmlrpc_request_to_json(xml, strlen(xml), &err);
    if (got == NULL)
        fail_msg("%s: %s", name, err);
    assert_string_equal(got, want);
    free(got);
}

static void test_requests_of_the_11_methods(void **state)
{
    (void)state;
    check_request("get_diagnostics", P("dbg"),
                  "{\"method\":\"get_diagnostics\",\"params\":[\"dbg\"],\"id\":0}");
    check_request("login", P("dbg") P("xenopsd"),
                  "{\"method\":\"login\",\"params\":[\"dbg\",\"xenopsd\"],\"id\":0}");
    /* int64 sizes and int domids are untyped (strict = false): taken as numbers where
     * the method wants one, as ocaml-rpc's int64_of_rpc takes String "N". */
    check_request("reserve_memory", P("dbg") P("xenopsd") P("1048576"),
                  "{\"method\":\"reserve_memory\",\"params\":[\"dbg\",\"xenopsd\",1048576],"
                  "\"id\":0}");
    check_request("reserve_memory_range", P("dbg") P("xenopsd") P("1048576") P("2097152"),
                  "{\"method\":\"reserve_memory_range\",\"params\":[\"dbg\",\"xenopsd\","
                  "1048576,2097152],\"id\":0}");
    check_request("delete_reservation",
                  P("dbg") P("xenopsd") P("6780f096-570a-43a4-8491-0b982dc6459e"),
                  "{\"method\":\"delete_reservation\",\"params\":[\"dbg\",\"xenopsd\","
                  "\"6780f096-570a-43a4-8491-0b982dc6459e\"],\"id\":0}");
    check_request("transfer_reservation_to_domain",
                  P("dbg") P("xenopsd") P("6780f096-570a-43a4-8491-0b982dc6459e") P("42"),
                  "{\"method\":\"transfer_reservation_to_domain\",\"params\":[\"dbg\","
                  "\"xenopsd\",\"6780f096-570a-43a4-8491-0b982dc6459e\",42],\"id\":0}");
    check_request("query_reservation_of_domain", P("dbg") P("xenopsd") P("42"),
                  "{\"method\":\"query_reservation_of_domain\",\"params\":[\"dbg\","
                  "\"xenopsd\",42],\"id\":0}");
    check_request("balance_memory", P("dbg"),
                  "{\"method\":\"balance_memory\",\"params\":[\"dbg\"],\"id\":0}");
    check_request("get_host_reserved_memory", P("dbg"),
                  "{\"method\":\"get_host_reserved_memory\",\"params\":[\"dbg\"],\"id\":0}");
    check_request(
        "get_host_initial_free_memory", P("dbg"),
        "{\"method\":\"get_host_initial_free_memory\",\"params\":[\"dbg\"],\"id\":0}");
    check_request("get_domain_zero_policy", P("dbg"),
                  "{\"method\":\"get_domain_zero_policy\",\"params\":[\"dbg\"],\"id\":0}");
}

static void test_request_values(void **state)
{
    (void)state;
    /* A session or dbg that looks like a number stays a string. */
    check_request("login", P("12") P("34"),
                  "{\"method\":\"login\",\"params\":[\"12\",\"34\"],\"id\":0}");
    /* Typed values (strict = true, or other clients). */
    check_request("reserve_memory",
                  P("<string>dbg</string>") P("<string>x</string>") P("<i8>5</i8>"),
                  "{\"method\":\"reserve_memory\",\"params\":[\"dbg\",\"x\",5],\"id\":0}");
    check_request("query_reservation_of_domain", P("dbg") P("x") P("<i4>7</i4>"),
                  "{\"method\":\"query_reservation_of_domain\",\"params\":[\"dbg\",\"x\",7],"
                  "\"id\":0}");
    check_request("m",
                  P("<int>-3</int>") P("<boolean>1</boolean>") P("<boolean>0</boolean>")
                      P("<double>1.5</double>") P("<nil/>") P("") P("<string/>")
                          P("<array><data></data></array>") P("<struct></struct>"),
                  "{\"method\":\"m\",\"params\":[-3,true,false,1.5,null,\"\",\"\",[],{}],"
                  "\"id\":0}");
    check_request("m",
                  P("<array><data><value>a</value><value><i4>1</i4></value></data></array>")
                      P("<struct><member><name>k</name><value>v</value></member></struct>"),
                  "{\"method\":\"m\",\"params\":[[\"a\",1],{\"k\":\"v\"}],\"id\":0}");
    /* Escapes as encode_buf writes them; whitespace around elements as a pretty printer
     * leaves it; text inside a value kept exactly. */
    check_request("login", P("a&lt;b&gt;c&amp;d&quot;e") P("  two words  "),
                  "{\"method\":\"login\",\"params\":[\"a<b>c&d\\\"e\",\"  two words  \"],"
                  "\"id\":0}");
    const char *pretty =
        "<?xml version=\"1.0\"?>\n<methodCall>\n  <methodName>login</methodName>\n"
        "  <params>\n    <param>\n      <value>\n        <string>d</string>\n"
        "      </value>\n    </param>\n  </params>\n</methodCall>\n";
    char *err = NULL;
    char *got = xmlrpc_request_to_json(pretty, strlen(pretty), &err);
    assert_non_null(got);
    assert_string_equal(got, "{\"method\":\"login\",\"params\":[\"d\"],\"id\":0}");
    free(got);
}

static void check_bad(const char *xml, const char *why)
{
    char *err = NULL;
    char *got = xmlrpc_request_to_json(xml, strlen(xml), &err);
    assert_null(got);
    assert_non_null(err);
    if (strstr(err, why) == NULL)
        fail_msg("'%s' does not say '%s'", err, why);
    free(err);
}

static void test_bad_requests(void **state)
{
    (void)state;
    check_bad("{\"method\":\"login\"}", "not XML");
    check_bad("<?xml version=\"1.0\"?><methodResponse/>", "not an XML-RPC methodCall");
    check_bad("<!DOCTYPE x [<!ENTITY a \"b\">]><methodCall><methodName>m</methodName>"
              "<params/></methodCall>",
              "document type");
    check_bad(CALL_HEAD "m</methodName><params>" P("<int>x</int>") "</params></methodCall>",
              "not an integer");
    check_bad(CALL_HEAD "m</methodName><params>" P("<blob>x</blob>") "</params></methodCall>",
              "unknown value type");
    check_bad(CALL_HEAD "m</methodName><params><param>x</param></params></methodCall>",
              "<param>");
}

static void check_reply(const char *json, const char *want)
{
    char *got = xmlrpc_reply_from_json(json);
    assert_string_equal(got, want);
    free(got);
}

static void test_replies_of_every_result_type(void **state)
{
    (void)state;
    /* string (login, reserve_memory, query, get_diagnostics) */
    check_reply("{\"result\":\"6780f096-570a-43a4-8491-0b982dc6459e\",\"error\":null,\"id\":0}",
                OK_HEAD "<value>6780f096-570a-43a4-8491-0b982dc6459e</value>" TAIL);
    /* reserve_memory_range: reservation_id * int64, a tuple: an array */
    check_reply("{\"result\":[\"r\",1395356],\"error\":null,\"id\":0}",
                OK_HEAD "<value><array><data><value>r</value><value>1395356</value></data>"
                        "</array></value>" TAIL);
    /* unit (delete, transfer, balance) */
    check_reply("{\"result\":null,\"error\":null,\"id\":0}",
                OK_HEAD "<value><nil/></value>" TAIL);
    /* int64 (get_host_reserved_memory, get_host_initial_free_memory): untyped */
    check_reply("{\"result\":73728,\"error\":null,\"id\":0}",
                OK_HEAD "<value>73728</value>" TAIL);
    /* domain_zero_policy: Fixed_size of int64 | Auto_balloon of int64 * int64 */
    check_reply("{\"result\":[\"Fixed_size\",4294967296],\"error\":null,\"id\":0}",
                OK_HEAD "<value><array><data><value>Fixed_size</value><value>4294967296</value>"
                        "</data></array></value>" TAIL);
    check_reply("{\"result\":[\"Auto_balloon\",[1,2]],\"error\":null,\"id\":0}",
                OK_HEAD "<value><array><data><value>Auto_balloon</value><value><array><data>"
                        "<value>1</value><value>2</value></data></array></value></data>"
                        "</array></value>" TAIL);
    /* escapes: > < & " escaped, control characters but tab, LF, CR dropped */
    check_reply("{\"result\":\"a<b>&\\\"\\u0001\\t\\n\",\"error\":null,\"id\":0}",
                OK_HEAD "<value>a&lt;b&gt;&amp;&quot;\t\n</value>" TAIL);
    /* other JSON types the dispatcher may return (sim.state) */
    check_reply("{\"result\":{\"a\":true,\"b\":false,\"c\":0.5},\"error\":null,\"id\":0}",
                OK_HEAD "<value><struct><member><name>a</name><value><boolean>1</boolean>"
                        "</value></member><member><name>b</name><value><boolean>0</boolean>"
                        "</value></member><member><name>c</name><value><double>0.5</double>"
                        "</value></member></struct></value>" TAIL);
}

static void test_replies_of_every_error_variant(void **state)
{
    (void)state;
    check_reply("{\"result\":null,\"error\":[\"Cannot_free_this_much_memory\",[4096,1024]],"
                "\"id\":0}",
                FAIL_HEAD "<value><array><data><value>Cannot_free_this_much_memory</value>"
                          "<value><array><data><value>4096</value><value>1024</value></data>"
                          "</array></value></data></array></value>" TAIL);
    check_reply(
        "{\"result\":null,\"error\":[\"Domains_refused_to_cooperate\",[6,10]],\"id\":0}",
        FAIL_HEAD "<value><array><data><value>Domains_refused_to_cooperate</value>"
                  "<value><array><data><value>6</value><value>10</value></data></array>"
                  "</value></data></array></value>" TAIL);
    check_reply("{\"result\":null,\"error\":[\"Domains_refused_to_cooperate\",[]],\"id\":0}",
                FAIL_HEAD
                "<value><array><data><value>Domains_refused_to_cooperate</value>"
                "<value><array><data></data></array></value></data></array></value>" TAIL);
    check_reply("{\"result\":null,\"error\":[\"Unknown_reservation\",\"r1\"],\"id\":0}",
                FAIL_HEAD "<value><array><data><value>Unknown_reservation</value><value>r1"
                          "</value></data></array></value>" TAIL);
    check_reply("{\"result\":null,\"error\":\"No_reservation\",\"id\":0}",
                FAIL_HEAD "<value>No_reservation</value>" TAIL);
    check_reply("{\"result\":null,\"error\":[\"Invalid_memory_value\",-5],\"id\":0}",
                FAIL_HEAD "<value><array><data><value>Invalid_memory_value</value><value>-5"
                          "</value></data></array></value>" TAIL);
    check_reply("{\"result\":null,\"error\":[\"Internal_error\",\"boom\"],\"id\":0}",
                FAIL_HEAD "<value><array><data><value>Internal_error</value><value>boom"
                          "</value></data></array></value>" TAIL);
    check_reply("{\"result\":null,\"error\":\"Unknown_error\",\"id\":0}",
                FAIL_HEAD "<value>Unknown_error</value>" TAIL);
    char *r = xmlrpc_internal_error("not XML: x");
    assert_string_equal(r, FAIL_HEAD "<value><array><data><value>Internal_error</value>"
                                     "<value>not XML: x</value></data></array></value>" TAIL);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_of_the_11_methods),
        cmocka_unit_test(test_request_values),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_replies_of_every_result_type),
        cmocka_unit_test(test_replies_of_every_error_variant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
