/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's settings: squeezed.conf-style file, command-line overrides, checks. */
#include "server/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
}

void config_release(struct config *c)
{
    if (c == NULL)
        return;
    free(c->scenario_path);
    free(c->sim_state_path);
    free(c->listen_host);
    free(c->socket_path);
    c->scenario_path = NULL;
    c->sim_state_path = NULL;
    c->listen_host = NULL;
    c->socket_path = NULL;
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

int config_set(struct config *c, const char *key, const char *value, const char *where,
               char **err)
{
    size_t i;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, key) == 0)
            break;
    if (i == sizeof(keys) / sizeof(keys[0])) {
        *err = xasprintf("%s: unknown key '%s'", where, key);
        return -ENOENT;
    }

    int64_t n;
    double d;
    bool flag;
    switch (keys[i].kind) {
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
        replace(keys[i].kind == KEY_SCENARIO ? &c->scenario_path : &c->sim_state_path,
                xstrdup(value));
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
        if (keys[i].kind == KEY_MANAGE_DOM0)
            c->manage_domain_zero = flag;
        else
            c->use_watches = flag;
        return 0;
    case KEY_DOM0_MIN:
    case KEY_DOM0_MAX:
        if (parse_int64(value, 0, LIMIT_KIB_MAX * 1024, &n) < 0)
            return bad(err, where, key, value,
                       "must be a whole number of bytes from 0 to 2^50");
        if (keys[i].kind == KEY_DOM0_MIN)
            c->dom0_dynamic_min_bytes = n;
        else
            c->dom0_dynamic_max_bytes = n;
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
    *warn = NULL;
    FILE *f = fopen(path, "r");
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
        if (r == -ENOENT) {
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
