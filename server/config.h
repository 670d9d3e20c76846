/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's settings: squeezed.conf-style file, command-line overrides, checks. */
#ifndef SQUEEZED_CONFIG_H
#define SQUEEZED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One struct holds every setting. Both the files (`key = value` lines, `#` comments, as
 * squeezed.conf) and the command line go through config_set with the same key names,
 * so the checks are the same. The order is xapi's (xcp_service.ml: "defaults <
 * arguments < config file"): main applies the options first, then the file and the
 * fragments of config-dir, so a key the file sets wins over the option; config_origin
 * says where each key was set last, so main can say which option the file overrode.
 *
 * Keys (squeezed.conf's): balance-check-interval (seconds), manage-domain-zero (bool),
 * domain-zero-dynamic-min / domain-zero-dynamic-max (bytes; max also "auto": dom0's
 * own). xapi's common keys: pidfile (path), log ("syslog" or "syslog:NAME"), loglevel
 * (debug .. emergency), daemon (bool), config-dir (directory of fragments). Ours:
 * backend (xen|sim), scenario (file), clock (real|virtual), listen (HOST:PORT, loopback
 * only), socket (path, or "none"), reserved-host-memory-kib, poll-interval-s,
 * balance-threshold-kib, sim-state (file), watches (bool), token-file (path of the bearer
 * token for changing calls over TCP, or "none"), max-reservations-per-session (1 ..
 * 1000000). The toolstack transports, with xapi's names: use-switch (bool; default true
 * on the xen backend, false on sim), switch-path (the message-switch socket), xml-socket
 * (path or "none": the XML-RPC socket served when use-switch is false; on the sim backend
 * only when set). xapi's keys that mean nothing here
 * (disable-logging-for, inventory, search-path, ...) are accepted with one warning each;
 * unknown keys are ignored with a warning (squeezed.conf may carry keys of later
 * versions).
 */

#define CONFIG_SWITCH_PATH "/var/run/message-switch/sock" /* xapi's switch-path */
#define CONFIG_XML_SOCKET_PATH "/var/xapi/memory"         /* Memory_interface.xml_path */
#define CONFIG_DEFAULT_FILE "/etc/squeezed.conf"          /* xapi's: /etc/<program>.conf */
#define CONFIG_DEFAULT_DIR "/etc/squeezed.conf.d"         /* xapi's: /etc/<program>.conf.d */

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
    int use_switch;                 /* -1: the backend's default (see config_use_switch) */
    char *switch_path;              /* owned; default CONFIG_SWITCH_PATH */
    char *xml_socket_path;          /* owned; default CONFIG_XML_SOCKET_PATH; NULL: none */
    bool xml_socket_given;          /* xml-socket was set (file or option) */
    char *pidfile_path;             /* owned; NULL: no pidfile */
    char *config_dir;               /* owned; fragments read after the file; NULL: none */
    int log_max_pri;                /* loglevel as a syslog priority; -1: not set */
    int daemonize;                  /* daemon key: 1 fork, 0 stay, -1 not set */
    struct config_origin *origins;  /* owned; where each key was set last */
    size_t n_origins;
    uint32_t warned_ignored;              /* ignored keys already warned about (bit per key) */
    char *token_file;                     /* owned; NULL: no token, TCP is read-only */
    int64_t max_reservations_per_session; /* default LIMIT_RESERVATIONS_PER_SESSION_DEFAULT */
};

struct config_origin {
    char *key;   /* owned */
    char *where; /* owned: "file:12" or "option --listen" */
};

/* Whether to serve the message-switch queue: use-switch, else true on the xen backend. */
bool config_use_switch(const struct config *c);
/* The XML-RPC socket to serve, or NULL: none with use-switch, none on the sim backend
 * unless xml-socket was set. Borrowed from *c. */
const char *config_xml_socket(const struct config *c);

/* Fill *c with the defaults. The socket default is /var/run/squeezed.sock as root, else
 * $XDG_RUNTIME_DIR/squeezed.sock, else /tmp/squeezed-<uid>.sock. */
void config_init(struct config *c);
/* Free the strings (not the struct). NULL allowed. */
void config_release(struct config *c);

/* Set one key from its text value. `where` names the origin for messages ("file:12" or
 * "option --listen"). Returns 0; or 1 for a key of xapi's that is accepted but means
 * nothing here (or a value of it that does not), with *err a new warning naming where
 * and the key the first time that key is met in *c, NULL after; or -EINVAL with *err a
 * new message naming where, the key and why; -ENOENT (with *err) for an unknown key.
 * *c is unchanged on error. */
int config_set(struct config *c, const char *key, const char *value, const char *where,
               char **err);

/* Where `key` was set last ("file:12", "option --listen"), or NULL: its default.
 * Borrowed from *c. */
const char *config_origin(const struct config *c, const char *key);

/* Read a squeezed.conf-style file into *c. Unknown and ignored keys are reported
 * through *warn (a new string of lines, appended to; NULL if none). Returns 0, -errno
 * if the file cannot be read, or -EINVAL with *err naming file:line and the key. *c may
 * be partly updated on error (the caller exits). */
int config_load_file(struct config *c, const char *path, char **err, char **warn);

/* As xapi reads its configuration: `path` if it exists (or `required`: -f was given),
 * then every regular file of c->config_dir not starting with '.', in byte order of
 * their names (a missing directory is no error). Same returns as config_load_file. */
int config_load(struct config *c, const char *path, bool required, char **err, char **warn);

/* A setting given on the command line: key, value and the option's name. */
struct config_override {
    const char *key;    /* borrowed */
    const char *value;  /* borrowed */
    const char *option; /* borrowed, "--listen" */
};

/* The whole configuration in xapi's order: the overrides (the command line), then
 * config_load(path, required) on top, so a key set by a file wins; each option a file
 * overrode is reported through *warn ("option --x: overridden by file:line"). Returns
 * 0, or an error as config_set (an option) or config_load (a file) returns it. */
int config_apply(struct config *c, const struct config_override *ov, size_t n_ov,
                 const char *path, bool required, char **err, char **warn);

/* Parse a loglevel as xapi's Syslog.level_of_string does (case-insensitive:
 * emergency, alert, critical, error|err, warning|warn, notice, info, debug) into a
 * syslog priority. 0 or -EINVAL. */
int config_parse_loglevel(const char *text, int *pri);

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
