/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's settings: squeezed.conf-style file, command-line overrides, checks. */
#include "server/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/parse.h"
#include "common/xalloc.h"

#define CONFIG_MAX_LINE 4096

void config_init(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->backend = CONFIG_BACKEND_XEN;
    c->clock = CONFIG_CLOCK_REAL;
    c->listen_host = xstrdup("127.0.0.1");
    c->listen_port = 8799;
    if (geteuid() == 0) {
        c->socket_path = xstrdup("/var/run/squeezed.sock");
    } else {
        const char *rt = getenv("XDG_RUNTIME_DIR");
        if (rt != NULL && rt[0] == '/')
            c->socket_path = xasprintf("%s/squeezed.sock", rt);
        else
            c->socket_path = xasprintf("/tmp/squeezed-%u.sock", (unsigned)geteuid());
    }
    c->reserved_host_kib = 73728;
    c->poll_interval_s = 0.25;
    c->balance_interval_s = 10.0;
    c->balance_threshold_kib = 65536;
    c->manage_domain_zero = false;
    c->dom0_dynamic_min_bytes = -1;
    c->dom0_dynamic_max_bytes = -1;
    c->use_watches = true;
    c->use_switch = -1;
    c->switch_path = xstrdup(CONFIG_SWITCH_PATH);
    c->xml_socket_path = xstrdup(CONFIG_XML_SOCKET_PATH);
    c->xml_socket_given = false;
    c->config_dir = xstrdup(CONFIG_DEFAULT_DIR);
    c->log_max_pri = -1;
    c->daemonize = -1;
    c->token_file = NULL;
    c->max_reservations_per_session = LIMIT_RESERVATIONS_PER_SESSION_DEFAULT;
}

bool config_use_switch(const struct config *c)
{
    return c->use_switch >= 0 ? c->use_switch != 0 : c->backend == CONFIG_BACKEND_XEN;
}

const char *config_xml_socket(const struct config *c)
{
    if (config_use_switch(c) || c->xml_socket_path == NULL)
        return NULL;
    /* The simulated host takes /var/xapi/memory only when asked: several test daemons
     * run side by side, and it is the real squeezed's place. */
    if (c->backend == CONFIG_BACKEND_SIM && !c->xml_socket_given)
        return NULL;
    return c->xml_socket_path;
}

void config_release(struct config *c)
{
    if (c == NULL)
        return;
    free(c->scenario_path);
    free(c->sim_state_path);
    free(c->listen_host);
    free(c->socket_path);
    free(c->switch_path);
    free(c->xml_socket_path);
    c->switch_path = NULL;
    c->xml_socket_path = NULL;
    free(c->pidfile_path);
    free(c->config_dir);
    for (size_t i = 0; i < c->n_origins; i++) {
        free(c->origins[i].key);
        free(c->origins[i].where);
    }
    free(c->origins);
    free(c->token_file);
    c->token_file = NULL;
    c->scenario_path = NULL;
    c->sim_state_path = NULL;
    c->listen_host = NULL;
    c->socket_path = NULL;
    c->pidfile_path = NULL;
    c->config_dir = NULL;
    c->origins = NULL;
    c->n_origins = 0;
}

const char *config_origin(const struct config *c, const char *key)
{
    for (size_t i = 0; i < c->n_origins; i++)
        if (strcmp(c->origins[i].key, key) == 0)
            return c->origins[i].where;
    return NULL;
}

static void set_origin(struct config *c, const char *key, const char *where)
{
    for (size_t i = 0; i < c->n_origins; i++) {
        if (strcmp(c->origins[i].key, key) == 0) {
            free(c->origins[i].where);
            c->origins[i].where = xstrdup(where);
            return;
        }
    }
    c->origins = xreallocarray(c->origins, c->n_origins + 1, sizeof(c->origins[0]));
    c->origins[c->n_origins++] = (struct config_origin){
        .key = xstrdup(key),
        .where = xstrdup(where),
    };
}

int config_parse_loglevel(const char *text, int *pri)
{
    static const struct {
        const char *name;
        int pri;
    } levels[] = {
        {"emergency", LOG_EMERG}, {"alert", LOG_ALERT},   {"critical", LOG_CRIT},
        {"error", LOG_ERR},       {"err", LOG_ERR},       {"warning", LOG_WARNING},
        {"warn", LOG_WARNING},    {"notice", LOG_NOTICE}, {"info", LOG_INFO},
        {"debug", LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcasecmp(text, levels[i].name) == 0) {
            *pri = levels[i].pri;
            return 0;
        }
    }
    return -EINVAL;
}

int config_parse_double(const char *text, double min_excl, double max_incl, double *out)
{
    if (text == NULL || *text == '\0' || isspace((unsigned char)*text))
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v <= min_excl ||
        v > max_incl)
        return -EINVAL;
    *out = v;
    return 0;
}

int config_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

int config_parse_listen(const char *text, char **host, uint16_t *port, char **err)
{
    const char *colon;
    char *h = NULL;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            *err = xasprintf("'%s' is not HOST:PORT (IPv6 as [::1]:PORT)", text);
            return -EINVAL;
        }
        h = xstrndup(text + 1, (size_t)(close - text - 1));
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || strchr(text, ':') != colon) {
            *err = xasprintf("'%s' is not HOST:PORT (e.g. 127.0.0.1:8799)", text);
            return -EINVAL;
        }
        h = xstrndup(text, (size_t)(colon - text));
    }
    int64_t p;
    if (parse_int64(colon + 1, 0, 65535, &p) < 0) {
        *err = xasprintf("'%s': the port must be a number from 0 to 65535", text);
        free(h);
        return -EINVAL;
    }
    if (strcasecmp(h, "localhost") == 0) {
        free(h);
        h = xstrdup("127.0.0.1");
    }
    if (!is_loopback(h)) {
        *err = xasprintf("'%s': squeezed listens on loopback only (127.0.0.1 or ::1); "
                         "the interface has no authentication",
                         text);
        free(h);
        return -EINVAL;
    }
    *host = h;
    *port = (uint16_t)p;
    return 0;
}

/* What a key's value is, for the one table below. */
enum key_kind {
    KEY_BACKEND,
    KEY_CLOCK,
    KEY_SCENARIO,
    KEY_SIM_STATE,
    KEY_LISTEN,
    KEY_SOCKET,
    KEY_RESERVED,
    KEY_POLL,
    KEY_BALANCE,
    KEY_THRESHOLD,
    KEY_MANAGE_DOM0,
    KEY_DOM0_MIN,
    KEY_DOM0_MAX,
    KEY_WATCHES,
    KEY_USE_SWITCH,
    KEY_SWITCH_PATH,
    KEY_XML_SOCKET,
    KEY_PIDFILE,
    KEY_LOG,
    KEY_LOGLEVEL,
    KEY_DAEMON,
    KEY_CONFIG_DIR,
    KEY_TOKEN_FILE,
    KEY_MAX_PER_SESSION,
};

static const struct {
    const char *name;
    enum key_kind kind;
} keys[] = {
    {"backend", KEY_BACKEND},
    {"clock", KEY_CLOCK},
    {"scenario", KEY_SCENARIO},
    {"sim-state", KEY_SIM_STATE},
    {"listen", KEY_LISTEN},
    {"socket", KEY_SOCKET},
    {"reserved-host-memory-kib", KEY_RESERVED},
    {"poll-interval-s", KEY_POLL},
    {"balance-check-interval", KEY_BALANCE},
    {"balance-threshold-kib", KEY_THRESHOLD},
    {"manage-domain-zero", KEY_MANAGE_DOM0},
    {"domain-zero-dynamic-min", KEY_DOM0_MIN},
    {"domain-zero-dynamic-max", KEY_DOM0_MAX},
    {"watches", KEY_WATCHES},
    {"use-switch", KEY_USE_SWITCH},
    {"switch-path", KEY_SWITCH_PATH},
    {"xml-socket", KEY_XML_SOCKET},
    {"pidfile", KEY_PIDFILE},
    {"log", KEY_LOG},
    {"loglevel", KEY_LOGLEVEL},
    {"daemon", KEY_DAEMON},
    {"config-dir", KEY_CONFIG_DIR},
    {"token-file", KEY_TOKEN_FILE},
    {"max-reservations-per-session", KEY_MAX_PER_SESSION},
};

/* xapi's keys (xcp_service.ml's common options, squeezed.ml's own) that this daemon
 * accepts and does nothing with: a stock squeezed.conf must not stop it. Looked up
 * after keys[], so a key implemented later simply moves up there. */
static const struct {
    const char *name;
    const char *why;
} ignored_keys[] = {
    {"disable-logging-for", "this daemon's log has no per-module switches"},
    {"inventory", "this daemon reads nothing from the xensource inventory"},
    {"search-path", "this daemon runs no helper programs"},
    {"config", "name the configuration file with -f"},
    {"boot-time-host-free-memory-minimal-constant-count",
     "host free memory at boot is taken at start-up"},
    {"boot-time-host-free-memory-check-interval",
     "host free memory at boot is taken at start-up"},
};

static int bad(char **err, const char *where, const char *key, const char *value,
               const char *why)
{
    *err = xasprintf("%s: %s = '%s': %s", where, key, value, why);
    return -EINVAL;
}

static void replace(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

static int set_key(struct config *c, enum key_kind kind, const char *key, const char *value,
                   const char *where, char **err);

int config_set(struct config *c, const char *key, const char *value, const char *where,
               char **err)
{
    size_t i;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, key) == 0)
            break;
    if (i == sizeof(keys) / sizeof(keys[0])) {
        for (size_t j = 0; j < sizeof(ignored_keys) / sizeof(ignored_keys[0]); j++) {
            if (strcmp(ignored_keys[j].name, key) != 0)
                continue;
            set_origin(c, key, where);
            if (c->warned_ignored & (UINT32_C(1) << j)) {
                *err = NULL;
                return 1;
            }
            c->warned_ignored |= UINT32_C(1) << j;
            *err =
                xasprintf("%s: %s: accepted and ignored: %s", where, key, ignored_keys[j].why);
            return 1;
        }
        *err = xasprintf("%s: unknown key '%s'", where, key);
        return -ENOENT;
    }
    int rc = set_key(c, keys[i].kind, key, value, where, err);
    if (rc >= 0)
        set_origin(c, key, where);
    return rc;
}

static int set_key(struct config *c, enum key_kind kind, const char *key, const char *value,
                   const char *where, char **err)
{
    int64_t n;
    double d;
    bool flag;
    switch (kind) {
    case KEY_BACKEND:
        if (strcmp(value, "xen") == 0)
            c->backend = CONFIG_BACKEND_XEN;
        else if (strcmp(value, "sim") == 0)
            c->backend = CONFIG_BACKEND_SIM;
        else
            return bad(err, where, key, value, "must be 'xen' or 'sim'");
        return 0;
    case KEY_CLOCK:
        if (strcmp(value, "real") == 0)
            c->clock = CONFIG_CLOCK_REAL;
        else if (strcmp(value, "virtual") == 0)
            c->clock = CONFIG_CLOCK_VIRTUAL;
        else
            return bad(err, where, key, value, "must be 'real' or 'virtual'");
        return 0;
    case KEY_SCENARIO:
    case KEY_SIM_STATE:
        if (value[0] == '\0')
            return bad(err, where, key, value, "must name a file");
        replace(kind == KEY_SCENARIO ? &c->scenario_path : &c->sim_state_path, xstrdup(value));
        return 0;
    case KEY_LISTEN: {
        if (strcmp(value, "none") == 0) {
            replace(&c->listen_host, NULL);
            return 0;
        }
        char *host = NULL, *why = NULL;
        uint16_t port;
        if (config_parse_listen(value, &host, &port, &why) < 0) {
            *err = xasprintf("%s: %s: %s", where, key, why);
            free(why);
            return -EINVAL;
        }
        replace(&c->listen_host, host);
        c->listen_port = port;
        return 0;
    }
    case KEY_SOCKET:
        if (strcmp(value, "none") == 0) {
            replace(&c->socket_path, NULL);
            return 0;
        }
        if (value[0] == '\0')
            return bad(err, where, key, value, "must be a path or 'none'");
        if (strlen(value) >= 108)
            return bad(err, where, key, value, "too long for a unix socket (108 bytes)");
        replace(&c->socket_path, xstrdup(value));
        return 0;
    case KEY_USE_SWITCH:
        if (config_parse_bool(value, &flag) < 0)
            return bad(err, where, key, value, "must be true or false");
        c->use_switch = flag ? 1 : 0;
        return 0;
    case KEY_SWITCH_PATH:
    case KEY_XML_SOCKET:
        if (kind == KEY_XML_SOCKET && strcmp(value, "none") == 0) {
            replace(&c->xml_socket_path, NULL);
            c->xml_socket_given = true;
            return 0;
        }
        if (value[0] == '\0')
            return bad(err, where, key, value, "must be a path");
        if (strlen(value) >= 108)
            return bad(err, where, key, value, "too long for a unix socket (108 bytes)");
        if (kind == KEY_SWITCH_PATH) {
            replace(&c->switch_path, xstrdup(value));
        } else {
            replace(&c->xml_socket_path, xstrdup(value));
            c->xml_socket_given = true;
        }
        return 0;
    case KEY_RESERVED:
        if (parse_int64(value, 0, LIMIT_KIB_MAX, &n) < 0)
            return bad(err, where, key, value, "must be a whole number of KiB from 0 to 2^40");
        c->reserved_host_kib = n;
        return 0;
    case KEY_THRESHOLD:
        if (parse_int64(value, 0, LIMIT_KIB_MAX, &n) < 0)
            return bad(err, where, key, value, "must be a whole number of KiB from 0 to 2^40");
        c->balance_threshold_kib = n;
        return 0;
    case KEY_POLL:
        if (config_parse_double(value, 0.0, LIMIT_POLL_INTERVAL_MAX_S, &d) < 0 ||
            d < LIMIT_POLL_INTERVAL_MIN_S)
            return bad(err, where, key, value, "must be a number of seconds from 0.001 to 60");
        c->poll_interval_s = d;
        return 0;
    case KEY_BALANCE:
        if (config_parse_double(value, 0.0, LIMIT_BALANCE_INTERVAL_MAX_S, &d) < 0 ||
            d < LIMIT_BALANCE_INTERVAL_MIN_S)
            return bad(err, where, key, value,
                       "must be a number of seconds from 0.001 to 86400");
        c->balance_interval_s = d;
        return 0;
    case KEY_MANAGE_DOM0:
    case KEY_WATCHES:
        if (config_parse_bool(value, &flag) < 0)
            return bad(err, where, key, value, "must be true or false");
        if (kind == KEY_MANAGE_DOM0)
            c->manage_domain_zero = flag;
        else
            c->use_watches = flag;
        return 0;
    case KEY_TOKEN_FILE:
        if (strcmp(value, "none") == 0) {
            replace(&c->token_file, NULL);
            return 0;
        }
        if (value[0] == '\0')
            return bad(err, where, key, value, "must be a path or 'none'");
        replace(&c->token_file, xstrdup(value));
        return 0;
    case KEY_MAX_PER_SESSION:
        if (parse_int64(value, 1, LIMIT_RESERVATIONS_PER_SESSION_MAX, &n) < 0)
            return bad(err, where, key, value, "must be a whole number from 1 to 1000000");
        c->max_reservations_per_session = n;
        return 0;
    case KEY_DOM0_MIN:
    case KEY_DOM0_MAX:
        if (kind == KEY_DOM0_MAX && strcmp(value, "auto") == 0) {
            /* xapi's "auto": keep dom0's own dynamic-max (as in xenstore) */
            c->dom0_dynamic_max_bytes = -1;
            return 0;
        }
        if (parse_int64(value, 0, LIMIT_KIB_MAX * 1024, &n) < 0)
            return bad(err, where, key, value,
                       kind == KEY_DOM0_MAX
                           ? "must be 'auto' or a whole number of bytes from 0 to 2^50"
                           : "must be a whole number of bytes from 0 to 2^50");
        if (kind == KEY_DOM0_MIN)
            c->dom0_dynamic_min_bytes = n;
        else
            c->dom0_dynamic_max_bytes = n;
        return 0;
    case KEY_PIDFILE:
    case KEY_CONFIG_DIR:
        if (value[0] == '\0')
            return bad(err, where, key, value,
                       kind == KEY_PIDFILE ? "must name a file" : "must name a directory");
        replace(kind == KEY_PIDFILE ? &c->pidfile_path : &c->config_dir, xstrdup(value));
        return 0;
    case KEY_LOG:
        /* xapi writes "syslog:daemon" or "syslog:squeezed" here and reads nothing from
         * it: squeezed logs to syslog at local5 whatever it says. So do we. */
        if (strcmp(value, "syslog") == 0 || strncmp(value, "syslog:", 7) == 0)
            return 0;
        *err = xasprintf("%s: log = '%s': only syslog is supported; logging to syslog "
                         "(stderr with -d)",
                         where, value);
        return 1;
    case KEY_LOGLEVEL: {
        int pri;
        if (config_parse_loglevel(value, &pri) < 0)
            return bad(err, where, key, value,
                       "must be debug, info, notice, warning, error, critical, alert or "
                       "emergency");
        c->log_max_pri = pri;
        return 0;
    }
    case KEY_DAEMON:
        if (config_parse_bool(value, &flag) < 0)
            return bad(err, where, key, value, "must be true or false");
        c->daemonize = flag ? 1 : 0;
        return 0;
    }
    return -EINVAL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void append(char **text, const char *line)
{
    char *t = xasprintf("%s%s\n", *text != NULL ? *text : "", line);
    free(*text);
    *text = t;
}

int config_load_file(struct config *c, const char *path, char **err, char **warn)
{
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        rc = -errno;
        *err = xasprintf("%s: cannot read: %s", path, strerror(errno));
        return rc;
    }
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)len > CONFIG_MAX_LINE) {
            *err = xasprintf("%s:%u: line too long", path, lineno);
            rc = -EINVAL;
            goto out;
        }
        if (strlen(line) != (size_t)len) {
            *err = xasprintf("%s:%u: NUL byte in line", path, lineno);
            rc = -EINVAL;
            goto out;
        }
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *s = trim(line);
        if (*s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            *err = xasprintf("%s:%u: '%s' is not 'key = value'", path, lineno, s);
            rc = -EINVAL;
            goto out;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        if (*key == '\0') {
            *err = xasprintf("%s:%u: missing key before '='", path, lineno);
            rc = -EINVAL;
            goto out;
        }
        char *where = xasprintf("%s:%u", path, lineno);
        char *why = NULL;
        int r = config_set(c, key, value, where, &why);
        free(where);
        if (r == -ENOENT || r == 1) {
            if (r == -ENOENT) {
                char *t = xasprintf("%s (ignored)", why);
                free(why);
                why = t;
            }
            if (why != NULL)
                append(warn, why);
            free(why);
        } else if (r < 0) {
            *err = why;
            rc = r;
            goto out;
        }
    }
    if (ferror(f)) {
        rc = -EIO;
        *err = xasprintf("%s: read error", path);
    }
out:
    free(line);
    fclose(f);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int config_load(struct config *c, const char *path, bool required, char **err, char **warn)
{
    int rc = 0;
    char **names = NULL;
    size_t n = 0;
    char *dir = NULL;
    DIR *d = NULL;

    if (path != NULL && (required || access(path, F_OK) == 0)) {
        rc = config_load_file(c, path, err, warn);
        if (rc < 0)
            return rc;
    }
    if (c->config_dir == NULL)
        return 0;
    dir = xstrdup(c->config_dir); /* a fragment may name another directory */
    d = opendir(dir);
    if (d == NULL)
        goto out; /* no fragments */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        names = xreallocarray(names, n + 1, sizeof(names[0]));
        names[n++] = p;
    }
    qsort(names, n, sizeof(names[0]), compare_names);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = config_load_file(c, names[i], err, warn);
out:
    if (d != NULL)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(dir);
    return rc;
}

int config_apply(struct config *c, const struct config_override *ov, size_t n_ov,
                 const char *path, bool required, char **err, char **warn)
{
    for (size_t i = 0; i < n_ov; i++) {
        char *where = xasprintf("option %s", ov[i].option);
        char *why = NULL;
        int rc = config_set(c, ov[i].key, ov[i].value, where, &why);
        free(where);
        if (rc < 0) {
            *err = why;
            return rc;
        }
        if (why != NULL)
            append(warn, why);
        free(why);
    }
    int rc = config_load(c, path, required, err, warn);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n_ov; i++) {
        const char *origin = config_origin(c, ov[i].key);
        if (origin == NULL || strncmp(origin, "option ", 7) == 0)
            continue;
        char *line = xasprintf("option %s %s: overridden by %s (the configuration file "
                               "wins over the command line, as in xapi's squeezed)",
                               ov[i].option, ov[i].value, origin);
        append(warn, line);
        free(line);
    }
    return 0;
}

int config_check(const struct config *c, char **err)
{
    if (c->dom0_dynamic_min_bytes >= 0 && c->dom0_dynamic_max_bytes >= 0 &&
        c->dom0_dynamic_min_bytes > c->dom0_dynamic_max_bytes) {
        *err = xasprintf("domain-zero-dynamic-min (%lld bytes) is above "
                         "domain-zero-dynamic-max (%lld bytes)",
                         (long long)c->dom0_dynamic_min_bytes,
                         (long long)c->dom0_dynamic_max_bytes);
        return -EINVAL;
    }
    if (c->backend == CONFIG_BACKEND_SIM) {
        if (c->scenario_path == NULL &&
            (c->sim_state_path == NULL || access(c->sim_state_path, F_OK) != 0)) {
            *err =
                xasprintf("the sim backend needs a host to simulate: --scenario FILE "
                          "(e.g. --scenario scenarios/demo.json)%s",
                          c->sim_state_path != NULL ? " or an existing --sim-state file" : "");
            return -EINVAL;
        }
    } else {
        if (c->clock == CONFIG_CLOCK_VIRTUAL) {
            *err = xstrdup("--clock virtual needs --backend sim: a real host's clock is real");
            return -EINVAL;
        }
        if (c->scenario_path != NULL || c->sim_state_path != NULL) {
            *err = xstrdup("--scenario and --sim-state need --backend sim");
            return -EINVAL;
        }
    }
    if (c->listen_host == NULL && c->socket_path == NULL) {
        *err = xstrdup("nothing to listen on: both listen and socket are 'none'");
        return -EINVAL;
    }
    return 0;
}
