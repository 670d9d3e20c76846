/* SPDX-License-Identifier: LGPL-2.1-only */
/* squeezed as a daemon: options, wiring of backend, service and HTTP front end, the run. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "api/api.h"
#include "backend/backend.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/config.h"
#include "server/service.h"
#include "server/service_life.h"
#include "sim/sim.h"
#include "sim/sim_service.h"

#define MAX_OVERRIDES 64

static const char usage_text[] =
    "usage: squeezed [-dhnv] [-f CONFIG] [--config-dir DIR] [--pidfile FILE]\n"
    "                [--loglevel LEVEL] [--backend xen|sim] [--scenario FILE]\n"
    "                [--clock real|virtual] [--listen HOST:PORT] [--socket PATH]\n"
    "                [--reserved-host-memory-kib N] [--balance-interval-s S]\n"
    "                [--poll-interval-s S] [--balance-threshold-kib N]\n"
    "                [--sim-state FILE] [--no-watches]\n"
    "                [--use-switch BOOL] [--switch-path PATH] [--xml-socket PATH]\n"
    "                [--token-file FILE] [--max-reservations-per-session N]\n"
    "                [--version]\n";

static const char help_text[] =
    "The memory-ballooning daemon of a Xen host (xapi's Memory interface over JSON-RPC).\n"
    "\n"
    "  -d, --foreground       stay in the foreground and log to stderr (default: become a\n"
    "                         daemon and log to syslog, facility local5; under systemd\n"
    "                         or with daemon = false, stay in the foreground)\n"
    "  -h, --help             print this help and exit\n"
    "  -v, --verbose          log more (the same as --loglevel debug)\n"
    "  -n, --check            check the configuration, options, scenario and that the\n"
    "                         backend can be opened, then exit\n"
    "  -f, --config FILE      squeezed.conf settings (key = value; default\n"
    "                         " CONFIG_DEFAULT_FILE " when it exists); a key the file\n"
    "                         sets wins over the option, as in xapi's squeezed\n"
    "  --config-dir DIR       fragments read after the file (default\n"
    "                         " CONFIG_DEFAULT_DIR ")\n"
    "  --pidfile FILE         write the daemon's pid there once it is ready\n"
    "  --loglevel LEVEL       debug, info (default), notice, warning, error, critical\n"
    "  --backend xen|sim      the real hypervisor (default) or a simulated host\n"
    "  --scenario FILE        the simulated host to start from (--backend sim), e.g.\n"
    "                         scenarios/demo.json\n"
    "  --clock real|virtual   the simulated host's clock; virtual time passes only through\n"
    "                         the sim.advance method (default real)\n"
    "  --sim-state FILE       save the simulated host to FILE on every change and start\n"
    "                         from it when it exists (a restart meets the same host)\n"
    "  --listen HOST:PORT     TCP listener, loopback only (default 127.0.0.1:8799; port 0\n"
    "                         picks a free one; 'none' for no TCP)\n"
    "  --socket PATH          unix socket, mode 0600 (default /var/run/squeezed.sock as\n"
    "                         root, else $XDG_RUNTIME_DIR/squeezed.sock; 'none' for none)\n"
    "  --reserved-host-memory-kib N   memory never handed to guests (default 73728)\n"
    "  --balance-interval-s S periodic balance check (default 10)\n"
    "  --poll-interval-s S    longest wait between squeeze rounds (default 0.25)\n"
    "  --balance-threshold-kib N  no periodic balance moving less than this (default "
    "65536)\n"
    "  --no-watches           read the toolstack's keys every time instead of watching\n"
    "  --use-switch BOOL      serve xenopsd through the message-switch (queue\n"
    "                         org.xen.xapi.memory; default true with --backend xen, false\n"
    "                         with sim); false: XML-RPC on --xml-socket instead\n"
    "  --switch-path PATH     the message-switch socket (default "
    "/var/run/message-switch/sock)\n"
    "  --xml-socket PATH      the XML-RPC socket when use-switch is false (default\n"
    "                         /var/xapi/memory; with --backend sim only when given; 'none')\n"
    "  --token-file FILE      bearer token allowing changing calls over TCP (a file of mode\n"
    "                         0600 owned by root or this user); without it TCP is\n"
    "                         read-only and only the unix socket may change memory\n"
    "  --max-reservations-per-session N   reservations one session may hold (default 1024)\n"
    "\n"
    "Config keys: balance-check-interval, manage-domain-zero, domain-zero-dynamic-min,\n"
    "domain-zero-dynamic-max (bytes or auto), pidfile, log, loglevel, daemon, config-dir,\n"
    "and backend, scenario, clock, sim-state, listen, socket, reserved-host-memory-kib,\n"
    "poll-interval-s, balance-threshold-kib, watches, use-switch, switch-path, xml-socket,\n"
    "token-file, max-reservations-per-session. See squeezed(8).\n"
    "\n"
    "Without Xen, try: squeezed -d --backend sim --scenario scenarios/demo.json\n";

struct options {
    bool foreground;
    int verbose;
    bool check_only;
    const char *config_path;
    struct config_override overrides[MAX_OVERRIDES];
    size_t n_overrides;
};

enum {
    OPT_BACKEND = 256,
    OPT_SCENARIO,
    OPT_CLOCK,
    OPT_LISTEN,
    OPT_SOCKET,
    OPT_RESERVED,
    OPT_BALANCE,
    OPT_POLL,
    OPT_THRESHOLD,
    OPT_SIM_STATE,
    OPT_NO_WATCHES,
    OPT_USE_SWITCH,
    OPT_SWITCH_PATH,
    OPT_XML_SOCKET,
    OPT_TOKEN_FILE,
    OPT_MAX_PER_SESSION,
    OPT_VERSION,
    OPT_PIDFILE,
    OPT_CONFIG_DIR,
    OPT_LOGLEVEL,
};

static const struct option long_options[] = {
    {"foreground", no_argument, NULL, 'd'},
    {"verbose", no_argument, NULL, 'v'},
    {"check", no_argument, NULL, 'n'},
    {"config", required_argument, NULL, 'f'},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"clock", required_argument, NULL, OPT_CLOCK},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"reserved-host-memory-kib", required_argument, NULL, OPT_RESERVED},
    {"balance-interval-s", required_argument, NULL, OPT_BALANCE},
    {"poll-interval-s", required_argument, NULL, OPT_POLL},
    {"balance-threshold-kib", required_argument, NULL, OPT_THRESHOLD},
    {"sim-state", required_argument, NULL, OPT_SIM_STATE},
    {"no-watches", no_argument, NULL, OPT_NO_WATCHES},
    {"use-switch", required_argument, NULL, OPT_USE_SWITCH},
    {"switch-path", required_argument, NULL, OPT_SWITCH_PATH},
    {"xml-socket", required_argument, NULL, OPT_XML_SOCKET},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"max-reservations-per-session", required_argument, NULL, OPT_MAX_PER_SESSION},
    {"help", no_argument, NULL, 'h'},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"config-dir", required_argument, NULL, OPT_CONFIG_DIR},
    {"loglevel", required_argument, NULL, OPT_LOGLEVEL},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* The config key each long option sets. */
static const struct {
    int opt;
    const char *key;
    const char *option;
} option_keys[] = {
    {OPT_BACKEND, "backend", "--backend"},
    {OPT_SCENARIO, "scenario", "--scenario"},
    {OPT_CLOCK, "clock", "--clock"},
    {OPT_LISTEN, "listen", "--listen"},
    {OPT_SOCKET, "socket", "--socket"},
    {OPT_RESERVED, "reserved-host-memory-kib", "--reserved-host-memory-kib"},
    {OPT_BALANCE, "balance-check-interval", "--balance-interval-s"},
    {OPT_POLL, "poll-interval-s", "--poll-interval-s"},
    {OPT_THRESHOLD, "balance-threshold-kib", "--balance-threshold-kib"},
    {OPT_SIM_STATE, "sim-state", "--sim-state"},
    {OPT_NO_WATCHES, "watches", "--no-watches"},
    {OPT_USE_SWITCH, "use-switch", "--use-switch"},
    {OPT_SWITCH_PATH, "switch-path", "--switch-path"},
    {OPT_XML_SOCKET, "xml-socket", "--xml-socket"},
    {OPT_PIDFILE, "pidfile", "--pidfile"},
    {OPT_CONFIG_DIR, "config-dir", "--config-dir"},
    {OPT_LOGLEVEL, "loglevel", "--loglevel"},
    {'v', "loglevel", "-v"},
    {OPT_TOKEN_FILE, "token-file", "--token-file"},
    {OPT_MAX_PER_SESSION, "max-reservations-per-session", "--max-reservations-per-session"},
};

/* Returns 0, or the exit status for main (help/version: 0 via *done; errors: 1). */
static int parse_args(int argc, char **argv, struct options *o, bool *done)
{
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":dhvnf:", long_options, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->foreground = true;
            continue;
        case 'v':
            o->verbose++;
            optarg = (char *)"debug"; /* -v is --loglevel debug */
            break;
        case 'n':
            o->check_only = true;
            continue;
        case 'f':
            o->config_path = optarg;
            continue;
        case 'h':
            fputs(usage_text, stdout);
            fputc('\n', stdout);
            fputs(help_text, stdout);
            *done = true;
            return 0;
        case OPT_VERSION:
            printf("squeezed %s\n", SQUEEZED_VERSION);
            *done = true;
            return 0;
        case ':':
            fprintf(stderr, "squeezed: option %s needs a value\n%s", argv[optind - 1],
                    usage_text);
            return 1;
        case '?':
            if (optopt != 0)
                fprintf(stderr, "squeezed: unknown option -%c\n%s", optopt, usage_text);
            else
                fprintf(stderr, "squeezed: unknown option %s\n%s", argv[optind - 1],
                        usage_text);
            return 1;
        default:
            break;
        }
        size_t i;
        for (i = 0; i < sizeof(option_keys) / sizeof(option_keys[0]); i++)
            if (option_keys[i].opt == c)
                break;
        if (i == sizeof(option_keys) / sizeof(option_keys[0]) ||
            o->n_overrides == MAX_OVERRIDES) {
            fprintf(stderr, "squeezed: too many options\n");
            return 1;
        }
        o->overrides[o->n_overrides++] = (struct config_override){
            .key = option_keys[i].key,
            .value = c == OPT_NO_WATCHES ? "false" : optarg,
            .option = option_keys[i].option,
        };
    }
    if (optind < argc) {
        fprintf(stderr, "squeezed: unexpected argument '%s'\n%s", argv[optind], usage_text);
        return 1;
    }
    return 0;
}

/* The settings in xapi's order: the options, then the file (-f, else the default one
 * if it exists) and config-dir's fragments on top. Returns 0 or 1 (message printed). */
static int load_config(const struct options *o, struct config *cfg)
{
    char *err = NULL, *warn = NULL;
    const char *path = o->config_path != NULL ? o->config_path : CONFIG_DEFAULT_FILE;
    if (config_apply(cfg, o->overrides, o->n_overrides, path, o->config_path != NULL, &err,
                     &warn) < 0) {
        fprintf(stderr, "squeezed: %s\n", err);
        free(err);
        free(warn);
        return 1;
    }
    if (warn != NULL) {
        /* Keys of xapi's that mean nothing here, options a file overrode: say so, go on. */
        char *save = NULL;
        for (char *line = strtok_r(warn, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save))
            log_warnx("%s", line);
        free(warn);
    }
    if (config_check(cfg, &err) < 0) {
        fprintf(stderr, "squeezed: %s\n", err);
        free(err);
        return 1;
    }
    return 0;
}

/* Paths are kept absolute: a daemon runs in "/". */
static void make_absolute(char **path)
{
    if (*path == NULL || (*path)[0] == '/')
        return;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return;
    char *abs = xasprintf("%s/%s", cwd, *path);
    free(*path);
    *path = abs;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0;
}

/* The simulated host: the saved state if there is one, else the scenario. Returns NULL
 * and *err. */
static struct sim *open_sim(const struct config *cfg, char **err)
{
    enum sim_clock_mode clock =
        cfg->clock == CONFIG_CLOCK_VIRTUAL ? SIM_CLOCK_VIRTUAL : SIM_CLOCK_REAL;
    struct sim *w = NULL;
    char *why = NULL;
    if (file_exists(cfg->sim_state_path)) {
        w = sim_load(cfg->sim_state_path, clock, &why);
        if (w == NULL) {
            *err = xasprintf("%s: %s", cfg->sim_state_path, why);
            free(why);
            return NULL;
        }
        log_info("simulated host: resumed from %s", cfg->sim_state_path);
    } else {
        struct sim_scenario *sc = NULL;
        if (sim_scenario_load(cfg->scenario_path, &sc, &why) < 0) {
            *err = xasprintf("%s: %s", cfg->scenario_path, why);
            free(why);
            return NULL;
        }
        w = sim_new(sc, clock, &why);
        if (w == NULL) {
            *err = xasprintf("%s: %s", cfg->scenario_path, why);
            free(why);
            sim_scenario_free(sc);
            return NULL;
        }
        log_info("simulated host: scenario %s (%s), %zu domains", cfg->scenario_path,
                 sc->name != NULL ? sc->name : "unnamed", sc->n_domains);
        sim_scenario_free(sc);
    }
    if (cfg->sim_state_path != NULL) {
        sim_set_state_file(w, cfg->sim_state_path);
        int rc = sim_save(w, cfg->sim_state_path);
        if (rc < 0) {
            *err = xasprintf("%s: cannot save the simulated host: %s", cfg->sim_state_path,
                             strerror(-rc));
            sim_free(w);
            return NULL;
        }
    }
    return w;
}

/* The backend the settings ask for, and the sim.* interface that goes with it (*sim
 * left absent for the real hypervisor unless the hooks supply one). */
static struct backend *open_backend(const struct config *cfg, const struct daemon_hooks *hooks,
                                    struct service_sim *sim, char **err)
{
    if (cfg->backend == CONFIG_BACKEND_SIM) {
        struct sim *w = open_sim(cfg, err);
        if (w == NULL)
            return NULL;
        *sim = sim_service_sim(w); /* w lives as long as the backend that owns it */
        return backend_sim_open(w);
    }
    char *why = NULL;
    struct backend *b =
        hooks->open_xen != NULL ? hooks->open_xen(&why) : backend_xen_open(&why);
    if (b == NULL) {
        *err = xasprintf("cannot use the Xen hypervisor: %s\n"
                         "To try squeezed without Xen, run it on the simulated host:\n"
                         "    squeezed -d --backend sim --scenario scenarios/demo.json",
                         why != NULL ? why : "unknown error");
        free(why);
        return NULL;
    }
    if (hooks->xen_sim != NULL)
        *sim = hooks->xen_sim();
    return b;
}

/* -n: everything but listening: the settings, the scenario or saved state, and that
 * the backend opens (the hypervisor's interfaces on the xen backend). */
static int check_only(const struct config *cfg, const struct daemon_hooks *hooks)
{
    if (cfg->backend == CONFIG_BACKEND_XEN) {
        char *err = NULL;
        struct service_sim sim = {0};
        struct backend *b = open_backend(cfg, hooks, &sim, &err);
        if (b == NULL) {
            fprintf(stderr, "squeezed: %s\n", err);
            free(err);
            return 1;
        }
        backend_close(b);
    }
    if (cfg->backend == CONFIG_BACKEND_SIM) {
        char *err = NULL;
        struct sim *w = NULL;
        if (file_exists(cfg->sim_state_path)) {
            w = sim_load(
                cfg->sim_state_path,
                cfg->clock == CONFIG_CLOCK_VIRTUAL ? SIM_CLOCK_VIRTUAL : SIM_CLOCK_REAL, &err);
        } else {
            struct sim_scenario *sc = NULL;
            if (sim_scenario_load(cfg->scenario_path, &sc, &err) == 0) {
                w = sim_new(sc, SIM_CLOCK_VIRTUAL, &err);
                sim_scenario_free(sc);
            }
        }
        if (w == NULL) {
            fprintf(stderr, "squeezed: %s: %s\n",
                    file_exists(cfg->sim_state_path) ? cfg->sim_state_path : cfg->scenario_path,
                    err != NULL ? err : "cannot be loaded");
            free(err);
            return 1;
        }
        sim_free(w);
    }
    printf("squeezed: configuration OK\n");
    return 0;
}

/* Become a daemon: the parent waits until the child is ready (or has failed), prints
 * the ready line and exits, so a failure at start-up still reaches the terminal.
 * Returns the write end of the pipe in the child. */
static int daemonize(void)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        fatal("pipe");
    pid_t pid = fork();
    if (pid < 0)
        fatal("fork");
    if (pid > 0) {
        close(pfd[1]);
        char buf[1024];
        size_t len = 0;
        ssize_t k;
        while (len < sizeof(buf) - 1 &&
               (k = read(pfd[0], buf + len, sizeof(buf) - 1 - len)) != 0) {
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            len += (size_t)k;
        }
        buf[len] = '\0';
        if (len == 0)
            _exit(1); /* the child said why on stderr */
        fputs(buf, stdout);
        fflush(stdout);
        _exit(0);
    }
    close(pfd[0]);
    if (setsid() < 0)
        fatal("setsid");
    return pfd[1];
}

/* The log level: loglevel (or -v) if set, else info. */
static void apply_log_level(const struct config *cfg)
{
    log_setlevel(cfg->log_max_pri >= 0 ? cfg->log_max_pri : LOG_INFO);
}

/* After the ready line: detach from the terminal, log to syslog only. Without a syslog
 * daemon the log stays on stderr (log_init said so there), never /dev/null. */
static void detach(int ready_fd, const char *line)
{
    log_also_stderr(false);
    ssize_t w = write(ready_fd, line, strlen(line));
    (void)w;
    close(ready_fd);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (log_to_syslog())
            dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    if (chdir("/") < 0)
        log_warn("chdir /");
}

/* Write our pid to `path` ("1234\n", as xapi's daemons do). Returns 0 or -errno. */
static int pidfile_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    int rc = write(fd, buf, (size_t)n) == n ? 0 : -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Remove the pidfile if it is still ours (a later daemon may have taken it over). */
static void pidfile_remove(const char *path)
{
    char buf[32];
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    bool ours = fgets(buf, sizeof(buf), f) != NULL && strtol(buf, NULL, 10) == (long)getpid();
    fclose(f);
    if (ours && unlink(path) < 0)
        log_warn("%s: cannot remove the pidfile", path);
}

static char *ready_line(const struct config *cfg, uint16_t port, const struct service *svc)
{
    char *tcp = NULL, *unix_part = NULL;
    if (cfg->listen_host != NULL)
        tcp = strchr(cfg->listen_host, ':') != NULL
                  ? xasprintf("http://[%s]:%u/", cfg->listen_host, (unsigned)port)
                  : xasprintf("http://%s:%u/", cfg->listen_host, (unsigned)port);
    if (cfg->socket_path != NULL)
        unix_part = xasprintf("unix:%s", cfg->socket_path);
    char *line = xasprintf(
        "squeezed: ready on %s%s%s (backend %s, clock %s)\n", tcp != NULL ? tcp : "",
        tcp != NULL && unix_part != NULL ? " and " : "", unix_part != NULL ? unix_part : "",
        service_backend_name(svc), service_clock_name(svc));
    free(tcp);
    free(unix_part);
    return line;
}

/* Wait for SIGTERM or SIGINT (blocked in every thread, taken here synchronously). */
static void wait_for_stop(const sigset_t *set)
{
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(set, &info);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            fatal("sigwaitinfo");
        }
        if (sig == SIGHUP) {
            log_info("SIGHUP ignored (restart the daemon to change its settings)");
            continue;
        }
        log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
}

/*
 * SIGTERM and SIGINT during start-up (loading a large simulated host, the first snapshot
 * of a large one): a thread takes them while the main thread is busy. Until the daemon
 * listens nothing needs an orderly stop (no socket, no pidfile yet; the simulated host's
 * state file is a journal a crash cannot tear), so the process ends at once. The watch
 * ends before the daemon starts listening; a signal the thread took after that is handed
 * over as a stop request, and one that comes later stays pending for wait_for_stop.
 */
struct startup_watch {
    pthread_t thread;
    const sigset_t *set;
    pthread_mutex_t mu;
    bool over;           /* start-up is over: hand signals over */
    bool stop_requested; /* a stop signal came in after that */
};

static void *startup_watch_main(void *arg)
{
    struct startup_watch *w = arg;
    for (;;) {
        int sig;
        if (sigwait(w->set, &sig) != 0)
            continue;
        pthread_mutex_lock(&w->mu);
        if (w->over) {
            /* startup_watch_end's SIGHUP, or a signal that came just before it */
            if (sig != SIGHUP)
                w->stop_requested = true;
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        if (sig == SIGHUP) {
            pthread_mutex_unlock(&w->mu);
            continue;
        }
        log_info("%s during start-up: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        _exit(0);
    }
}

/*
 * End the watch; true if a stop signal came in meanwhile. The thread is woken by a SIGHUP
 * sent to it alone, not cancelled: a cancellation acted on as sigwait returns would drop
 * the signal it had just taken (seen under valgrind: a SIGTERM right after the ready line
 * left the daemon running in 3 starts of 30).
 */
static bool startup_watch_end(struct startup_watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->over = true;
    pthread_mutex_unlock(&w->mu);
    pthread_kill(w->thread, SIGHUP);
    pthread_join(w->thread, NULL);
    return w->stop_requested;
}

/*
 * Whether the places we are to listen on are taken, asked before the host is opened:
 * a second daemon started by mistake must refuse before its first snapshot writes to
 * xenstore (its fresh tracker would remove the live daemon's memory/uncooperative
 * flags, which that daemon's cache then believes still there). api_start makes the same
 * checks again when it binds, so a place taken in between is still refused; a stale
 * socket file (nobody accepts on it) is left for api_start to replace. Returns 0, or -1
 * with *err (new string) in api_start's words.
 */
static int listen_places_free(const struct config *cfg, char **err)
{
    struct stat st;

    if (cfg->socket_path != NULL && lstat(cfg->socket_path, &st) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (!S_ISSOCK(st.st_mode)) {
            *err =
                xasprintf("%s exists and is not a socket; not replacing it", cfg->socket_path);
            return -1;
        }
        if (strlen(cfg->socket_path) < sizeof(sun.sun_path)) {
            memcpy(sun.sun_path, cfg->socket_path, strlen(cfg->socket_path) + 1);
            int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            bool live = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
            if (fd >= 0)
                close(fd);
            if (live) {
                *err = xasprintf("%s is in use: another process is serving on it",
                                 cfg->socket_path);
                return -1;
            }
        }
    }
    if (cfg->listen_host != NULL && cfg->listen_port != 0) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)cfg->listen_port);
        if (getaddrinfo(cfg->listen_host, port, &hints, &res) != 0)
            return 0; /* api_start says what is wrong with the address */
        bool live = false;
        for (struct addrinfo *ai = res; ai != NULL && !live; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            live = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
            if (fd >= 0)
                close(fd);
        }
        freeaddrinfo(res);
        if (live) {
            *err = xasprintf("cannot listen on %s port %u: another process is serving on it",
                             cfg->listen_host, (unsigned)cfg->listen_port);
            return -1;
        }
    }
    return 0;
}

int daemon_main(int argc, char **argv, const struct daemon_hooks *hooks)
{
    static const struct daemon_hooks no_hooks = {0};
    struct options o;
    memset(&o, 0, sizeof(o));
    struct config cfg;
    struct backend *b = NULL;
    struct service *svc = NULL;
    struct api_server *srv = NULL;
    char *err = NULL;
    char *line = NULL;
    int ready_fd = -1;
    bool pidfile_written = false;
    int rc = 1;
    sigset_t set;
    struct startup_watch watch = {.set = &set, .mu = PTHREAD_MUTEX_INITIALIZER};
    bool watching_startup = false;
    bool stop_requested = false; /* a stop signal the start-up watch handed over */

    if (hooks == NULL)
        hooks = &no_hooks;
    json_set_alloc_funcs(xmalloc, free); /* jansson never returns NULL for want of memory */
    log_init("squeezed", true, 0);
    config_init(&cfg);
    bool done = false;
    rc = parse_args(argc, argv, &o, &done);
    if (rc != 0 || done)
        goto out;
    rc = 1;
    if (load_config(&o, &cfg) != 0)
        goto out;
    apply_log_level(&cfg);
    make_absolute(&cfg.scenario_path);
    make_absolute(&cfg.sim_state_path);
    make_absolute(&cfg.socket_path);
    make_absolute(&cfg.switch_path);
    make_absolute(&cfg.xml_socket_path);
    make_absolute(&cfg.pidfile_path);
    make_absolute(&cfg.token_file);
    if (o.check_only) {
        rc = check_only(&cfg, hooks);
        goto out;
    }
    if (listen_places_free(&cfg, &err) < 0) {
        log_errx("cannot listen: %s", err);
        goto out;
    }

    /* Signals are taken synchronously by the main thread: block them before any thread
     * exists so that every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        fatal("sigprocmask");
    signal(SIGPIPE, SIG_IGN);

    /* Without -d: fork into the background, unless systemd supervises us (Type=notify
     * sets NOTIFY_SOCKET; it wants its main process to stay) or daemon = false says
     * so (xapi's key); those stay in the foreground but log to syslog all the same. */
    if (!o.foreground) {
        bool fork_away =
            cfg.daemonize == 1 || (cfg.daemonize == -1 && getenv("NOTIFY_SOCKET") == NULL);
        if (fork_away) {
            ready_fd = daemonize();
            /* to syslog from now on, and to the terminal until detach() */
            log_init("squeezed", false, 0);
            apply_log_level(&cfg);
            log_also_stderr(true);
        } else {
            log_init("squeezed", false, 0);
            apply_log_level(&cfg);
        }
    }

    watching_startup = pthread_create(&watch.thread, NULL, startup_watch_main, &watch) == 0;
    struct service_sim sim = {0};
    b = open_backend(&cfg, hooks, &sim, &err);
    if (b == NULL) {
        log_errx("%s", err);
        goto out;
    }
    struct service_options so = {
        .reserved_host_kib = cfg.reserved_host_kib,
        .poll_ms = (int64_t)llround(cfg.poll_interval_s * 1000.0),
        .balance_interval_ms = (int64_t)llround(cfg.balance_interval_s * 1000.0),
        .balance_threshold_kib = cfg.balance_threshold_kib,
        .use_watches = cfg.use_watches,
        .manage_domain_zero = cfg.manage_domain_zero,
        .dom0_dynamic_min_bytes = cfg.dom0_dynamic_min_bytes,
        .dom0_dynamic_max_bytes = cfg.dom0_dynamic_max_bytes,
        .max_reservations_per_session = cfg.max_reservations_per_session,
        .sim = sim,
    };
    if (so.poll_ms < 1)
        so.poll_ms = 1;
    if (so.balance_interval_ms < 1)
        so.balance_interval_ms = 1;
    svc = service_new(b, &so, &err);
    b = NULL; /* the service owns it now */
    if (svc == NULL) {
        log_errx("%s", err);
        goto out;
    }
    struct api_config ac = {
        /* The toolstack's transports (issue 9): message-switch or XML-RPC. */
        .switch_path = config_use_switch(&cfg) ? cfg.switch_path : NULL,
        .xml_socket_path = config_xml_socket(&cfg),
        .listen_host = cfg.listen_host,
        .listen_port = cfg.listen_port,
        .socket_path = cfg.socket_path,
        .openapi_path = NULL,
        .token_file = cfg.token_file,
    };
    /* From here on a stop is an orderly one (the socket and the pidfile are removed):
     * the start-up watch ends before anything listens. */
    if (watching_startup) {
        watching_startup = false;
        stop_requested = startup_watch_end(&watch);
    }
    srv = api_start(svc, &ac, &err);
    if (srv == NULL) {
        log_errx("cannot listen: %s", err);
        goto out;
    }

    if (cfg.pidfile_path != NULL) {
        int prc = pidfile_write(cfg.pidfile_path);
        if (prc < 0) {
            errno = -prc;
            log_warn("%s: cannot write the pidfile", cfg.pidfile_path);
            goto out;
        }
        pidfile_written = true;
    }
    line = ready_line(&cfg, cfg.listen_host != NULL ? api_tcp_port(srv) : 0, svc);
    /* systemd (Type=notify): started only now, with the sockets listening. */
    sd_notifyf(0, "READY=1\nMAINPID=%ld\nSTATUS=%.*s", (long)getpid(), (int)strlen(line) - 1,
               line);
    if (ready_fd >= 0) {
        detach(ready_fd, line);
        ready_fd = -1;
        log_info("%.*s", (int)strlen(line) - 1, line);
    } else {
        fputs(line, stdout);
        fflush(stdout);
    }

    if (!stop_requested)
        wait_for_stop(&set);
    sd_notify(0, "STOPPING=1");
    /* Stop the worker first: a running squeeze is cancelled and callers blocked on it get
     * "shutting down", so the HTTP server's threads can finish their requests. */
    service_stop(svc);
    rc = 0;
out:
    if (watching_startup)
        startup_watch_end(&watch);
    api_stop(srv);
    if (pidfile_written)
        pidfile_remove(cfg.pidfile_path);
    service_free(svc);
    backend_close(b);
    if (hooks->at_exit != NULL)
        hooks->at_exit();
    config_release(&cfg);
    free(line);
    free(err);
    if (ready_fd >= 0)
        close(ready_fd);
    if (rc == 0 && !o.check_only && !done)
        log_info("stopped");
    return rc;
}
