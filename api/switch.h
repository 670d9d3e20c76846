/* SPDX-License-Identifier: LGPL-2.1-only */
/* The Memory interface as a queue server of xapi's message-switch (use-switch = true). */
#ifndef SQUEEZED_SWITCH_H
#define SQUEEZED_SWITCH_H

#include <stddef.h>

#include "server/service.h"

#define SWITCH_QUEUE "org.xen.xapi.memory" /* Memory_interface.queue_name */
#define SWITCH_TRANSFER_TIMEOUT_S 30       /* Message_switch_core.Protocol.timeout */

/*
 * The wire, as xapi-project/xen-api ocaml/message-switch has it (core/protocol.ml
 * In.to_request / Out.to_response, core/make.ml Connection.rpc, unix/protocol_unix.ml
 * Server.listen), and as this module speaks it:
 *
 * - Each frame is one HTTP/1.1 request on a kept-alive unix-socket connection
 *   (cohttp: `host: localhost`, `user-agent: cohttp`, `content-length: N`,
 *   `connection: keep-alive`), answered by `HTTP/1.1 200 OK` with a body; 404 means
 *   "Please log in." or an unparsable frame. Path segments are percent-encoded.
 *     GET  /login/TOKEN                     -> ""            (TOKEN: "squeezed:PID")
 *     GET  /persistent/QUEUE                -> "QUEUE"
 *     POST /transfer  {"from":"N","timeout":30.0,"queues":["QUEUE"]}   ("from" left
 *          out the first time) -> {"messages":[[["QUEUE",ID],{"payload":"BODY",
 *          "kind":["Request","REPLY_QUEUE"]}],...],"next":"N"}  (long poll: waits up to
 *          timeout for a message with an id above "from")
 *     POST /response/REPLY_QUEUE/QUEUE/ID  body = reply -> [["REPLY_QUEUE",ID2]] or []
 *     GET  /ack/QUEUE/ID                    -> ""
 * - The queue server (Server.listen) logs in on two connections (requests: login,
 *   then login again after the second; replies: login), declares the persistent queue
 *   on the first, long-polls transfer on it, and for each message sends the reply
 *   (kind Response (QUEUE, ID)) then the ack on the second connection.
 * - Payloads are JSON-RPC v1 texts: {"method":M,"params":[...],"id":N} in,
 *   {"result":R,"error":E,"id":N} out (upstream always answers "id":0; we echo N).
 *
 * At-most-once: a message the switch hands out again (answered, not acknowledged,
 * daemon restarted) is answered with the reply stored before it was first sent and
 * not run again. The state-changing methods (login, reserve_memory,
 * reserve_memory_range, delete_reservation, transfer_reservation_to_domain) are
 * marked "running" in the service's store before they run and "done" with the reply
 * before the reply is sent; the entry goes once the ack is through. A message found
 * "running" (the daemon died while it ran) is answered Internal_error and not run
 * again. Entries are keyed by the message id and the queue name's hash and hold a
 * hash of the payload, so a switch restarted without its state (ids from 0 again)
 * cannot be answered from an old reply.
 */

struct switch_config {
    const char *path;  /* the switch's unix socket (copied) */
    const char *queue; /* NULL: SWITCH_QUEUE */
};

struct switch_server;

/* Start the queue server thread. svc is borrowed and must outlive it. The switch need
 * not be up: the thread connects, and reconnects after a loss, with a backoff of 0.5 s
 * growing to 5 s, and logs the first failure of a run of them only. NULL and *err
 * (new string) only if the thread cannot be created. */
struct switch_server *switch_start(struct service *svc, const struct switch_config *cfg,
                                   char **err);
/* Stop the thread (a long poll is interrupted) and free. NULL allowed. */
void switch_stop(struct switch_server *sw);

/* For tests: percent-encode a path segment as ocaml-uri does for a path (unreserved,
 * sub-delims, ':' and '@' kept; '/' and everything else %XX). New string. */
char *switch_pct_encode(const char *segment);
/* For tests: the xenstore key of a message, "ID-HASH" (new string). */
char *switch_reply_key(const char *queue, long long id);

#endif
