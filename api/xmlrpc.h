/* SPDX-License-Identifier: LGPL-2.1-only */
/* The Memory interface as XML-RPC, the way squeezed serves it on /var/xapi/memory. */
#ifndef SQUEEZED_XMLRPC_H
#define SQUEEZED_XMLRPC_H

#include <stddef.h>

#include "server/service.h"

/*
 * The encoding, as mirage/ocaml-rpc src/lib/xmlrpc.ml has it (the one xenopsd's
 * Memory_client uses through Xcp_client.xml_http_rpc, strict = false), and the reply of
 * xapi-idl's Xcp_service.http_handler (Xmlrpc.string_of_response):
 *
 * - A request: <?xml version="1.0"?><methodCall><methodName>NAME</methodName><params>
 *   <param>V</param>...</params></methodCall>, one <param> per positional argument.
 * - Values (add_value, strict = false): an int64 or int is UNTYPED: <value>42</value>
 *   (the reader, Parser.of_xml, takes untyped text as a string and the typed
 *   unmarshaller turns "42" into the int64 the method wants); a string <value>TEXT</value>
 *   with > < & " escaped as &gt; &lt; &amp; &quot; and control characters other than
 *   tab, LF, CR dropped (encode_buf); unit (Null) <value><nil/></value>; a bool
 *   <value><boolean>1|0</boolean></value>; a float <value><double>%.16g</double></value>;
 *   a tuple or list <value><array><data>V...</data></array></value>; a record
 *   <value><struct><member><name>N</name>V</member>...</struct></value>; a variant without
 *   arguments as its name (a string), with arguments as an array [name, argument]
 *   (Rpcmarshal.marshal, Variant).
 * - Read back (Parser): <int>, <i4>, <i8> integers; <boolean> "1" true else false;
 *   <double>; <string>; <dateTime.iso8601> and <base64> (kept as text here); <nil/>;
 *   <array><data>; <struct>; empty <value/> or <string/> is "", empty <array/> is [].
 * - The reply: <?xml version="1.0"?><methodResponse><params><param><value><struct>
 *   <member><name>Status</name><value>Success</value></member><member><name>Value</name>
 *   V</member></struct></value></param></params></methodResponse>, or Status Failure
 *   with a member ErrorDescription holding the error variant, e.g.
 *   <value><array><data><value>Unknown_reservation</value><value>ID</value></data>
 *   </array></value>, or <value>No_reservation</value>.
 *
 * A request the daemon cannot read (not XML, not a methodCall, a value of no known
 * type) or a method it does not know is answered with Status Failure and
 * ["Internal_error", why] (squeezed raises there and drops the connection; xenopsd
 * then reports a failure too, without a reason).
 */

/* One XML-RPC request body in, the reply body out (new string; always a methodResponse).
 * Runs the call through api_handle_rpc. */
char *xmlrpc_handle(struct service *svc, const char *body, size_t len);

/* The two halves, for tests. Request: the JSON-RPC v1 text the dispatcher takes
 * ({"method", "params", "id": 0}), NULL and *err (new) if the XML is not a methodCall.
 * Reply: a JSON-RPC v1 reply text to the methodResponse (new string). */
char *xmlrpc_request_to_json(const char *xml, size_t len, char **err);
char *xmlrpc_reply_from_json(const char *json_reply);
/* A Failure reply with ["Internal_error", text] (new string). */
char *xmlrpc_internal_error(const char *text);

#endif
