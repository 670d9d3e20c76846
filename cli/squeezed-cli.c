/* SPDX-License-Identifier: LGPL-2.1-only */
/* squeezed-cli: the daemon from a shell (status table, reserve, delete, balance, diagnostics).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/limits.h"
#include "common/xalloc.h"

#define CLI_VERSION "0.1.0"
#define DEFAULT_SESSION "squeezed-cli"
#define CONNECT_TIMEOUT_S 5L

enum exit_code { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static const char usage_text[] =
    "usage: squeezed-cli [--socket PATH | --url URL] [--session NAME] [--dbg TEXT]\n"
    "                    [--timeout S] [--kib] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  status            the domains as a table (domid, name, dynamic-min, target, actual,\n"
    "                    dynamic-max, flags), the host's memory and the reservations\n"
    "  reserve KIB [MAX] free KIB (or between KIB and MAX) and hold it; prints the\n"
    "                    reservation id (and the size with MAX). Sizes are KiB, or take a\n"
    "                    suffix: 512MiB, 4GiB. Logs the session in first if the daemon does\n"
    "                    not know it yet. May take seconds: guests balloon down.\n"
    "  delete ID         delete a reservation of the session\n"
    "  balance           rebalance the guests now (waits until they have moved)\n"
    "  diagnostics       the daemon's diagnostics text\n"
    "\n"
    "options:\n"
    "  --socket PATH     the daemon's unix socket (default /var/run/squeezed.sock as root,\n"
    "                    else $XDG_RUNTIME_DIR/squeezed.sock, as the daemon's)\n"
    "  --url URL         talk HTTP to URL instead (e.g. http://127.0.0.1:8799)\n"
    "  --session NAME    the session reservations belong to (default " DEFAULT_SESSION ")\n"
    "  --dbg TEXT        the debug string sent with each call (default squeezed-cli)\n"
    "  --timeout S       give up after S seconds (default: wait as long as the daemon)\n"
    "  --kib             status in KiB instead of MiB\n"
    "\n"
    "exit status: 0 done, 1 the daemon refused or failed, 2 bad usage, 3 no daemon.\n";

struct cli {
    char *socket_path; /* owned; NULL with a URL */
    char *base_url;    /* owned: "http://localhost" over the socket */
    const char *session;
    const char *dbg;
    long timeout_s; /* 0: none */
    bool kib;
};

/* ---- HTTP ------------------------------------------------------------------------ */

struct buf {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    size_t add = size * n;
    if (b->len + add > LIMIT_CLI_REPLY_MAX_BYTES) {
        b->too_big = true;
        return 0;
    }
    b->data = xreallocarray(b->data, b->len + add + 1, 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* GET path (body NULL) or POST body; returns the parsed JSON reply (new reference) or
 * NULL after printing why; *unreachable tells a connection failure apart. */
static json_t *http_json(const struct cli *c, const char *path, const char *body,
                         bool *unreachable)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct buf b = {0};
    char *url = NULL;
    json_t *j = NULL;
    json_error_t jerr;
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURLcode rc;

    *unreachable = false;
    if (h == NULL) {
        fprintf(stderr, "squeezed-cli: cannot initialise libcurl\n");
        goto out;
    }
    url = xasprintf("%s%s", c->base_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (c->socket_path != NULL)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    if (c->timeout_s > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "squeezed-cli/" CLI_VERSION);
    if (body != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        *unreachable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
        if (c->socket_path != NULL && *unreachable)
            fprintf(stderr, "squeezed-cli: cannot connect to the unix socket %s\n",
                    c->socket_path);
        else
            fprintf(stderr, "squeezed-cli: %s%s%s: %s\n",
                    c->socket_path != NULL ? c->socket_path : url,
                    c->socket_path != NULL ? " " : "", c->socket_path != NULL ? path : "",
                    b.too_big   ? "reply too large"
                    : errbuf[0] ? errbuf
                                : curl_easy_strerror(rc));
        if (*unreachable)
            fprintf(stderr, "squeezed-cli: is squeezed running? (--socket PATH or --url URL "
                            "to reach another)\n");
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    j = json_loadb(b.data != NULL ? b.data : "", b.len, 0, &jerr);
    if (j == NULL) {
        fprintf(stderr, "squeezed-cli: %s: HTTP %ld, not JSON: %s\n", path, status, jerr.text);
        goto out;
    }
    if (status != 200 && body == NULL) {
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        fprintf(stderr, "squeezed-cli: %s: HTTP %ld%s%s\n", path, status, msg ? ": " : "",
                msg ? msg : "");
        json_decref(j);
        j = NULL;
    }
out:
    curl_slist_free_all(hdrs);
    if (h != NULL)
        curl_easy_cleanup(h);
    free(url);
    free(b.data);
    return j;
}

/* ---- JSON-RPC (xapi's style: {"method", "params": [dbg, ...], "id"}) -------------- */

/* Print an error of xapi's Memory interface in words. */
static void print_rpc_error(const char *method, const json_t *e)
{
    const char *name =
        json_is_string(e) ? json_string_value(e) : json_string_value(json_array_get(e, 0));
    const json_t *arg = json_array_get(e, 1);
    char *text;

    if (name != NULL && strcmp(name, "Cannot_free_this_much_memory") == 0 &&
        json_array_size(arg) == 2) {
        fprintf(stderr,
                "squeezed-cli: %s: cannot free this much memory: %" JSON_INTEGER_FORMAT
                " KiB needed, %" JSON_INTEGER_FORMAT " KiB could be freed\n",
                method, json_integer_value(json_array_get(arg, 0)),
                json_integer_value(json_array_get(arg, 1)));
        return;
    }
    if (name != NULL && strcmp(name, "Domains_refused_to_cooperate") == 0) {
        fprintf(stderr, "squeezed-cli: %s: domains refused to cooperate:", method);
        for (size_t i = 0; i < json_array_size(arg); i++)
            fprintf(stderr, " %" JSON_INTEGER_FORMAT,
                    json_integer_value(json_array_get(arg, i)));
        fprintf(stderr, "\n");
        return;
    }
    if (name != NULL && strcmp(name, "Unknown_reservation") == 0 && json_is_string(arg)) {
        fprintf(stderr, "squeezed-cli: %s: no reservation %s in this session\n", method,
                json_string_value(arg));
        return;
    }
    text = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
    fprintf(stderr, "squeezed-cli: %s: %s\n", method, text != NULL ? text : "error");
    free(text);
}

/* Call method with params (taken); 0 and *result (new reference) or an exit code. When
 * err_name is not NULL, an error whose name is *err_name is returned as -1 silently. */
static int rpc(const struct cli *c, const char *method, json_t *params, json_t **result,
               const char *quiet_error)
{
    json_t *req =
        json_pack("{s:s,s:o,s:s}", "method", method, "params", params, "id", "squeezed-cli");
    char *body = json_dumps(req, JSON_COMPACT);
    bool unreachable = false;
    json_t *reply;
    const json_t *err;
    int rc = EXIT_FAILED;

    json_decref(req);
    reply = http_json(c, "/", body, &unreachable);
    free(body);
    if (reply == NULL)
        return unreachable ? EXIT_UNREACHABLE : EXIT_FAILED;
    err = json_object_get(reply, "error");
    if (err != NULL && !json_is_null(err)) {
        const char *name = json_is_string(err) ? json_string_value(err)
                                               : json_string_value(json_array_get(err, 0));
        const json_t *text = json_array_get(err, 1);
        if (quiet_error != NULL && name != NULL && strcmp(name, "Internal_error") == 0 &&
            json_is_string(text) && strstr(json_string_value(text), quiet_error) != NULL) {
            rc = -1;
        } else if (json_is_object(err)) { /* JSON-RPC 2.0 shape, should the daemon use it */
            print_rpc_error(method,
                            json_object_get(err, "data") ? json_object_get(err, "data") : err);
        } else {
            print_rpc_error(method, err);
        }
        goto out;
    }
    *result = json_incref(json_object_get(reply, "result"));
    rc = EXIT_OK;
out:
    json_decref(reply);
    return rc;
}

/* ---- commands --------------------------------------------------------------------- */

/* "4194304", "512MiB", "4GiB", "4G" -> KiB; -1 if not a size. */
static int64_t parse_kib(const char *s)
{
    char *end = NULL;
    long long v;
    int64_t mult = 1;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0)
        return -1;
    if (strcmp(end, "") == 0 || strcasecmp(end, "K") == 0 || strcasecmp(end, "KiB") == 0)
        mult = 1;
    else if (strcasecmp(end, "M") == 0 || strcasecmp(end, "MiB") == 0)
        mult = 1024;
    else if (strcasecmp(end, "G") == 0 || strcasecmp(end, "GiB") == 0)
        mult = 1024 * 1024;
    else if (strcasecmp(end, "T") == 0 || strcasecmp(end, "TiB") == 0)
        mult = (int64_t)1024 * 1024 * 1024;
    else
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    return (int64_t)v * mult;
}

static json_int_t jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* A size column: MiB (rounded down, as xl list) or KiB. */
static void put_size(const struct cli *c, const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        printf(" %10s", "-");
    else if (c->kib)
        printf(" %10" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        printf(" %10" JSON_INTEGER_FORMAT, json_integer_value(v) / 1024);
}

static int cmd_status(const struct cli *c)
{
    bool unreachable = false;
    json_t *st = http_json(c, "/status", NULL, &unreachable);
    const json_t *doms, *host, *resv, *d;
    size_t i;
    const char *unit = c->kib ? "KiB" : "MiB";

    if (st == NULL)
        return unreachable ? EXIT_UNREACHABLE : EXIT_FAILED;
    doms = json_object_get(st, "domains");
    host = json_object_get(st, "host");
    resv = json_object_get(st, "reservations");

    printf("%-5s %-24s %10s %10s %10s %10s %-5s\n", "domid", "name", "min", "target", "actual",
           "max", "flags");
    json_array_foreach(doms, i, d)
    {
        const char *name = json_string_value(json_object_get(d, "name"));
        char flags[6] = "-----";
        if (json_is_true(json_object_get(d, "stuck")))
            flags[0] = 's';
        if (json_is_true(json_object_get(d, "uncooperative")))
            flags[1] = 'u';
        if (json_is_true(json_object_get(d, "booting")))
            flags[2] = 'b';
        if (json_is_true(json_object_get(d, "paused")))
            flags[3] = 'p';
        if (json_is_false(json_object_get(d, "can_balloon")) &&
            !json_is_true(json_object_get(d, "booting")))
            flags[4] = 'n';
        printf("%5" JSON_INTEGER_FORMAT " %-24.24s", jint(d, "domid"),
               name != NULL && *name != '\0' ? name : "-");
        put_size(c, d, "dynamic_min_kib");
        put_size(c, d, "target_kib");
        put_size(c, d, "actual_kib");
        put_size(c, d, "dynamic_max_kib");
        printf(" %s\n", flags);
    }
    printf("(sizes in %s; flags: s stuck, u uncooperative, b booting, p paused, "
           "n no balloon driver)\n",
           unit);
    json_int_t div = c->kib ? 1 : 1024;
    printf("\nhost: %" JSON_INTEGER_FORMAT " %s total, %" JSON_INTEGER_FORMAT
           " %s free for guests, %" JSON_INTEGER_FORMAT " %s Xen free, %" JSON_INTEGER_FORMAT
           " %s host reserve, %" JSON_INTEGER_FORMAT " %s reserved%s\n",
           jint(host, "total_kib") / div, unit, jint(host, "free_kib") / div, unit,
           jint(host, "xen_free_kib") / div, unit, jint(host, "reserved_kib") / div, unit,
           jint(host, "reservations_kib") / div, unit,
           json_is_true(json_object_get(json_object_get(st, "daemon"), "busy"))
               ? "; busy (an operation is running)"
               : "");
    if (json_array_size(resv) > 0) {
        printf("\n%-36s %-16s %10s %s\n", "reservation", "session", unit, "domain");
        json_array_foreach(resv, i, d)
        {
            const json_t *dom = json_object_get(d, "domid");
            printf("%-36s %-16s %10" JSON_INTEGER_FORMAT " ",
                   json_string_value(json_object_get(d, "id")),
                   json_string_value(json_object_get(d, "session")),
                   jint(d, "kib") / (c->kib ? 1 : 1024));
            if (json_is_integer(dom))
                printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(dom));
            else
                printf("-\n");
        }
    }
    json_decref(st);
    return EXIT_OK;
}

static int cmd_reserve(const struct cli *c, const char *a, const char *b)
{
    int64_t min = parse_kib(a), max = b != NULL ? parse_kib(b) : -1;
    json_t *res = NULL;
    int rc;

    if (min <= 0 || (b != NULL && max < min)) {
        fprintf(stderr, "squeezed-cli: reserve: bad size%s (KiB, or with MiB/GiB)\n",
                b != NULL ? "s: KIB MAX with 0 < KIB <= MAX" : "");
        return EXIT_USAGE;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (b == NULL)
            rc = rpc(c, "reserve_memory",
                     json_pack("[s,s,I]", c->dbg, c->session, (json_int_t)min), &res,
                     attempt == 0 ? "session" : NULL);
        else
            rc = rpc(
                c, "reserve_memory_range",
                json_pack("[s,s,I,I]", c->dbg, c->session, (json_int_t)min, (json_int_t)max),
                &res, attempt == 0 ? "session" : NULL);
        if (rc != -1)
            break;
        /* The daemon does not know the session: log it in (it had no reservations to
         * lose) and try once more. */
        json_t *s = NULL;
        rc = rpc(c, "login", json_pack("[s,s]", c->dbg, c->session), &s, NULL);
        json_decref(s);
        if (rc != EXIT_OK)
            return rc;
    }
    if (rc != EXIT_OK)
        return rc;
    if (json_is_string(res))
        printf("%s\n", json_string_value(res));
    else if (json_is_array(res))
        printf("%s %" JSON_INTEGER_FORMAT "\n", json_string_value(json_array_get(res, 0)),
               json_integer_value(json_array_get(res, 1)));
    json_decref(res);
    return EXIT_OK;
}

static int cmd_simple(const struct cli *c, const char *method, json_t *params, bool print_text)
{
    json_t *res = NULL;
    int rc = rpc(c, method, params, &res, NULL);
    if (rc == EXIT_OK && print_text && json_is_string(res)) {
        const char *t = json_string_value(res);
        fputs(t, stdout);
        if (*t != '\0' && t[strlen(t) - 1] != '\n')
            putchar('\n');
    }
    json_decref(res);
    return rc;
}

/* ---- main -------------------------------------------------------------------------- */

static char *default_socket(void)
{
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (geteuid() == 0)
        return xstrdup("/var/run/squeezed.sock");
    if (rt != NULL && rt[0] == '/')
        return xasprintf("%s/squeezed.sock", rt);
    return xasprintf("/tmp/squeezed-%u.sock", (unsigned)geteuid());
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"url", required_argument, NULL, 'u'},
        {"session", required_argument, NULL, 'S'},
        {"dbg", required_argument, NULL, 'D'},
        {"timeout", required_argument, NULL, 't'},
        {"kib", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct cli c = {.session = DEFAULT_SESSION, .dbg = "squeezed-cli"};
    const char *url = NULL;
    const char *cmd;
    int opt, rc = EXIT_USAGE, nargs;
    char *end;

    while ((opt = getopt_long(argc, argv, "+s:u:S:D:t:khV", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            free(c.socket_path);
            c.socket_path = xstrdup(optarg);
            break;
        case 'u':
            url = optarg;
            break;
        case 'S':
            c.session = optarg;
            break;
        case 'D':
            c.dbg = optarg;
            break;
        case 't':
            errno = 0;
            c.timeout_s = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || c.timeout_s <= 0) {
                fprintf(stderr, "squeezed-cli: --timeout wants whole seconds > 0\n");
                goto out;
            }
            break;
        case 'k':
            c.kib = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            rc = EXIT_OK;
            goto out;
        case 'V':
            printf("squeezed-cli %s\n", CLI_VERSION);
            rc = EXIT_OK;
            goto out;
        default:
            fputs(usage_text, stderr);
            goto out;
        }
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        goto out;
    }
    if (url != NULL && c.socket_path != NULL) {
        fprintf(stderr, "squeezed-cli: --socket and --url exclude each other\n");
        goto out;
    }
    if (url != NULL) {
        size_t n = strlen(url);
        c.base_url = xstrdup(url);
        if (n > 0 && c.base_url[n - 1] == '/')
            c.base_url[n - 1] = '\0';
    } else {
        if (c.socket_path == NULL)
            c.socket_path = default_socket();
        c.base_url = xstrdup("http://localhost");
    }
    cmd = argv[optind];
    nargs = argc - optind - 1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "squeezed-cli: cannot initialise libcurl\n");
        rc = EXIT_FAILED;
        goto out;
    }
    if (strcmp(cmd, "status") == 0 && nargs == 0)
        rc = cmd_status(&c);
    else if (strcmp(cmd, "reserve") == 0 && (nargs == 1 || nargs == 2))
        rc = cmd_reserve(&c, argv[optind + 1], nargs == 2 ? argv[optind + 2] : NULL);
    else if (strcmp(cmd, "delete") == 0 && nargs == 1)
        rc = cmd_simple(&c, "delete_reservation",
                        json_pack("[s,s,s]", c.dbg, c.session, argv[optind + 1]), false);
    else if (strcmp(cmd, "balance") == 0 && nargs == 0)
        rc = cmd_simple(&c, "balance_memory", json_pack("[s]", c.dbg), false);
    else if (strcmp(cmd, "diagnostics") == 0 && nargs == 0)
        rc = cmd_simple(&c, "get_diagnostics", json_pack("[s]", c.dbg), true);
    else {
        fprintf(stderr, "squeezed-cli: unknown command or wrong arguments: %s\n\n", cmd);
        fputs(usage_text, stderr);
        rc = EXIT_USAGE;
    }
    curl_global_cleanup();
out:
    free(c.socket_path);
    free(c.base_url);
    return rc;
}
