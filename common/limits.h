/* SPDX-License-Identifier: LGPL-2.1-only */
/* Every limit of the daemon in one place, each with its unit; nothing else defines its own. */
#ifndef SQUEEZED_LIMITS_H
#define SQUEEZED_LIMITS_H

#include <stdint.h>

/*
 * Sizes. Anything larger than LIMIT_KIB_MAX is refused as absurd wherever it comes from
 * (a request, the configuration, a xenstore value, a scenario file); Xen's "unlimited"
 * maxmem is clipped to it. Together with LIMIT_DOMAINS_MAX it keeps every sum the
 * policy makes below 2^61, so int64_t arithmetic cannot overflow.
 */
#define LIMIT_KIB_MAX (INT64_C(1) << 40)    /* KiB: 1 PiB, beyond any host */
#define LIMIT_KIB_MAX_TEXT "1099511627776"  /* LIMIT_KIB_MAX in decimal, for messages */
#define LIMIT_DOMAINS_MAX ((size_t)1 << 20) /* domains in one snapshot */
#define LIMIT_DOMID_MAX 32751               /* domid: DOMID_FIRST_RESERVED (0x7FF0) - 1 */

/* Time. */
#define LIMIT_ADVANCE_MAX_S 86400.0        /* s: one sim.advance moves the clock at most this */
#define LIMIT_POLL_INTERVAL_MIN_S 0.001    /* s: poll-interval-s */
#define LIMIT_POLL_INTERVAL_MAX_S 60.0     /* s: poll-interval-s */
#define LIMIT_BALANCE_INTERVAL_MIN_S 0.001 /* s: balance-check-interval */
#define LIMIT_BALANCE_INTERVAL_MAX_S 86400.0 /* s: balance-check-interval */

/* Names and bodies. */
#define LIMIT_NAME_MAX_BYTES 255           /* bytes: a text parameter of a request */
#define LIMIT_SERVICE_NAME_MAX_BYTES 128   /* bytes: a session's service name (login) */
#define LIMIT_BODY_MAX_BYTES (1024 * 1024) /* bytes: larger request bodies get 413 */

/* The toolstack's transports (api/switch.c, api/xmlrpc.c). A switch response may carry
 * a transfer of many messages. */
#define LIMIT_SWITCH_RESPONSE_MAX_BYTES (16 << 20) /* bytes: one response from the switch */
#define LIMIT_SWITCH_HEADER_MAX_BYTES 16384        /* bytes: its HTTP header */
#define LIMIT_XMLRPC_DEPTH_MAX 64     /* nested arrays/structs in an XML-RPC request */
#define LIMIT_RPC_KEY_MAX_BYTES 64    /* bytes: a stored switch reply's key */
#define LIMIT_RPC_REPLIES_KEPT_MAX 64 /* stored switch replies under /squeezed/rpc */

/* GET /history and the sample ring behind it (server/history.h; 3 MiB at most, about
 * 131 s of a thousand domains all moving). */
#define LIMIT_HISTORY_SAMPLES_MAX 3600     /* samples kept: an hour at one a second */
#define LIMIT_HISTORY_ENTRIES_MAX 131072   /* per-domain entries over all samples */
#define LIMIT_HISTORY_INTERVAL_MIN_MS 1000 /* ms: at most one sample this often */
#define LIMIT_HISTORY_WINDOW_MAX_S 86400   /* s: window_s of GET /history */
#define LIMIT_HISTORY_DOMIDS_MAX 1024      /* domids= of GET /history lists at most this */

/* squeezed-cli: a reply it reads (a /status of 32,000 domains is about 8 MiB). */
#define LIMIT_CLI_REPLY_MAX_BYTES (64u << 20) /* bytes */

#endif
