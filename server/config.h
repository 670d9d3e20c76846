/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's settings: squeezed.conf-style file, command-line overrides, checks. */
#ifndef SQUEEZED_CONFIG_H
#define SQUEEZED_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * One struct holds every setting. Both the file (`key = value` lines, `#` comments, as
 * squeezed.conf) and the command line go through config_set with the same key names,
 * so the checks are the same: main applies the file first, then the options, so
 * options win.
 *
 * Keys (squeezed.conf's): balance-check-interval (seconds), manage-domain-zero (bool),
 * domain-zero-dynamic-min / domain-zero-dynamic-max (bytes). Ours: backend (xen|sim),
 * scenario (file), clock (real|virtual), listen (HOST:PORT, loopback only), socket
 * (path, or "none"), reserved-host-memory-kib, poll-interval-s, balance-threshold-kib,
 * sim-state (file),
 * watches (bool). Unknown keys are ignored with a warning (squeezed.conf has keys of
 * its own that mean nothing here).
 */

enum config_backend {
    CONFIG_BACKEND_XEN,
    CONFIG_BACKEND_SIM,
};

enum config_clock {
    CONFIG_CLOCK_REAL,
    CONFIG_CLOCK_VIRTUAL,
};

struct config {
    enum config_backend backend;    /* default xen */
    enum config_clock clock;        /* default real */
    char *scenario_path;            /* owned; NULL: none */
    char *sim_state_path;           /* owned; NULL: none */
    char *listen_host;              /* owned; a loopback address; NULL: no TCP listener */
    uint16_t listen_port;           /* default 8799; 0 = any free port */
    char *socket_path;              /* owned; NULL: no unix socket */
    int64_t reserved_host_kib;      /* default 73728 */
    double poll_interval_s;         /* default 0.25; in (0, 60] */
    double balance_interval_s;      /* default 10; in (0, 86400] */
    int64_t balance_threshold_kib;  /* default 65536: no balance for less (README) */
    bool manage_domain_zero;        /* default false */
    int64_t dom0_dynamic_min_bytes; /* -1: dom0's current value */
    int64_t dom0_dynamic_max_bytes; /* -1: dom0's current value */
    bool use_watches;               /* default true */
};

/* Fill *c with the defaults. The socket default is /var/run/squeezed.sock as root, else
 * $XDG_RUNTIME_DIR/squeezed.sock, else /tmp/squeezed-<uid>.sock. */
void config_init(struct config *c);
/* Free the strings (not the struct). NULL allowed. */
void config_release(struct config *c);

/* Set one key from its text value. `where` names the origin for messages ("file:12" or
 * "option --listen"). Returns 0, or -EINVAL with *err a new message naming where, the
 * key and why; -ENOENT (with *err) for an unknown key. *c is unchanged on error. */
int config_set(struct config *c, const char *key, const char *value, const char *where,
               char **err);

/* Read a squeezed.conf-style file into *c. Unknown keys are reported through *warn
 * (a new string of lines, NULL if none). Returns 0, -errno if the file cannot be read,
 * or -EINVAL with *err naming file:line and the key. *c may be partly updated on
 * error (the caller exits). */
int config_load_file(struct config *c, const char *path, char **err, char **warn);

/* Checks across keys (dom0 min <= max, sim needs a scenario or state file, the virtual
 * clock needs the sim backend). Returns 0, or -EINVAL with *err. */
int config_check(const struct config *c, char **err);

/* Parse "HOST:PORT" ("127.0.0.1:8799", "localhost:0", "[::1]:8799"); the host must be
 * loopback. On success *host is new. Returns 0 or -EINVAL with *err. */
int config_parse_listen(const char *text, char **host, uint16_t *port, char **err);

/* Strict number parsing (whole string, range checked). 0 or -EINVAL. Integers go
 * through parse_int64 (common/parse.h). */
int config_parse_double(const char *text, double min_excl, double max_incl, double *out);
int config_parse_bool(const char *text, bool *out);

#endif
