#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# use-switch = false: the Memory interface as XML-RPC on --xml-socket, posted as
# xenopsd's Xcp_client.xml_http_rpc does (POST /var/xapi/memory, ocaml-rpc's encoding:
# untyped integers, strings, arrays), answered as squeezed does (Status / Value /
# ErrorDescription, one request per connection). A VM start, the error variants, a GET,
# and an XML body on the JSON-RPC endpoint.
. "$(dirname "$0")/lib.sh"
e2e_init xmlrpc 60
cd "$E2E_ROOT" || exit 1

XS=$TMPD/memory
start_daemon --scenario scenarios/e2e-flow.json --xml-socket "$XS" || e2e_finish
assert_true "the XML-RPC socket exists" test -S "$XS"
mode=$(stat -c %a "$XS")
assert_eq "the XML-RPC socket is 0600" 600 "$mode"

# xcall METHOD VALUE...: each VALUE is the inside of a <value> (text or typed element).
xcall() {
    _m=$1
    shift
    _b="<?xml version=\"1.0\"?><methodCall><methodName>$_m</methodName><params>"
    for _v in "$@"; do
        _b="$_b<param><value>$_v</value></param>"
    done
    _b="$_b</params></methodCall>"
    curl -sS --max-time "$E2E_CURL_MAX_S" --unix-socket "$XS" -X POST \
        -H 'content-type: text/xml' -D "$TMPD/headers" --data-binary "$_b" \
        http://localhost/var/xapi/memory
}

OK_HEAD='<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name>'
FAIL_HEAD='<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name>'
TAIL='</member></struct></value></param></params></methodResponse>'

r=$(xcall login vm-start xenopsd)
assert_eq "login" "${OK_HEAD}<value>xenopsd</value>$TAIL" "$r"
assert_true "one request per connection (Connection: close)" \
    grep -qi '^connection: close' "$TMPD/headers"
r=$(xcall reserve_memory vm-start xenopsd 1572864)
id=$(printf '%s' "$r" | sed -n 's|.*<name>Value</name><value>\([0-9a-f-]*\)</value>.*|\1|p')
assert_match "reserve_memory (an untyped int64) gives a reservation id" \
    '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "$id"
r=$(xcall sim.create_domain "<struct><member><name>domid</name><value>10</value></member><member><name>dynamic_min_kib</name><value>1048576</value></member><member><name>dynamic_max_kib</name><value>1572864</value></member><member><name>target_kib</name><value>1572864</value></member><member><name>initial_reservation_kib</name><value>1572864</value></member></struct>")
assert_eq "sim.create_domain (a struct)" "${OK_HEAD}<value><nil/></value>$TAIL" "$r"
r=$(xcall transfer_reservation_to_domain vm-start xenopsd "$id" 10)
assert_eq "transfer_reservation_to_domain: unit is nil" "${OK_HEAD}<value><nil/></value>$TAIL" "$r"
r=$(xcall query_reservation_of_domain vm-start xenopsd "<i4>10</i4>")
assert_eq "query (a typed i4 is taken too)" "${OK_HEAD}<value>$id</value>$TAIL" "$r"
r=$(xcall delete_reservation vm-start xenopsd "$id")
assert_eq "delete_reservation" "${OK_HEAD}<value><nil/></value>$TAIL" "$r"
assert_json "no reservation left" "$(http_get /status)" .reservations.length 0

r=$(xcall delete_reservation vm-start xenopsd "$id")
assert_eq "Unknown_reservation as [name, id]" \
    "${FAIL_HEAD}<value><array><data><value>Unknown_reservation</value><value>$id</value></data></array></value>$TAIL" "$r"
r=$(xcall query_reservation_of_domain vm-start xenopsd 2)
assert_eq "No_reservation as its name" "${FAIL_HEAD}<value>No_reservation</value>$TAIL" "$r"
r=$(xcall reserve_memory vm-start xenopsd -5)
assert_eq "Invalid_memory_value" \
    "${FAIL_HEAD}<value><array><data><value>Invalid_memory_value</value><value>-5</value></data></array></value>$TAIL" "$r"
r=$(xcall reserve_memory vm-start xenopsd 1073741824)
assert_match "Cannot_free_this_much_memory as [name, [needed, free]]" \
    "Cannot_free_this_much_memory</value><value><array><data><value>[0-9]+</value><value>[0-9]+</value></data></array></value></data>" "$r"
r=$(xcall get_domain_zero_policy dbg)
assert_eq "get_domain_zero_policy: a variant with an argument" \
    "${OK_HEAD}<value><array><data><value>Fixed_size</value><value>1073741824</value></data></array></value>$TAIL" "$r"
r=$(xcall no_such_method dbg)
assert_match "an unknown method: Internal_error" \
    "^$(printf '%s' "$FAIL_HEAD" | sed 's/[][\\.*^$?]/\\&/g')<value><array><data><value>Internal_error</value>" "$r"
r=$(curl -sS --max-time 5 --unix-socket "$XS" -X POST --data-binary 'not xml' http://localhost/)
assert_match "not XML: Internal_error with the reason" "Internal_error</value><value>not XML" "$r"
code=$(curl -sS --max-time 5 --unix-socket "$XS" -o /dev/null -w '%{http_code}' http://localhost/)
assert_eq "GET: 404 as squeezed" 404 "$code"

# The JSON-RPC endpoint, given XML, says where XML-RPC is served.
r=$(curl -sS --max-time 5 --data-binary '<?xml version="1.0"?><methodCall/>' "$(_url /)")
assert_match "XML on the JSON endpoint names the XML-RPC socket" "XML-RPC unix socket" "$r"
stop_daemon
assert_true "the XML-RPC socket is removed at exit" test ! -e "$XS"
e2e_finish
