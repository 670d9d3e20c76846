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

/* Clients (issue 11: no client starves the others). */
#define LIMIT_RESERVATIONS_PER_SESSION_DEFAULT 1024 /* max-reservations-per-session */
#define LIMIT_RESERVATIONS_PER_SESSION_MAX 1000000  /* its largest configurable value */
#define LIMIT_HTTP_CONNECTIONS 4096                 /* open HTTP connections per listener */
#define LIMIT_HTTP_CONNECTIONS_PER_IP 64            /* per client address, TCP only */
#define LIMIT_HTTP_IDLE_S 15       /* s: a connection silent this long is closed */
#define LIMIT_HTTP_RPC_RUNNING 256 /* JSON-RPC calls in progress at once (503 beyond) */

#endif
