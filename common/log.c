/* SPDX-License-Identifier: LGPL-2.1-only */
/* Logging in the OpenBSD daemon style: stderr in the foreground, syslog otherwise. */
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool log_to_stderr = true;
static int log_max_pri = LOG_INFO;
static bool log_is_quiet;
static bool log_warned_no_syslog;
static bool log_copy_stderr;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether a syslog daemon listens on LOG_SYSLOG_PATH: glibc's syslog() drops messages
 * silently when it cannot connect, so ask first. */
static bool syslog_listening(void)
{
    static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, LOG_SYSLOG_PATH, sizeof(LOG_SYSLOG_PATH));
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
        close(fd);
        if (rc == 0)
            return true;
    }
    return false;
}

void log_init(const char *ident, bool to_stderr, int verbose)
{
    log_setverbose(verbose);
    if (to_stderr) {
        log_to_stderr = true;
        return;
    }
    if (!syslog_listening()) {
        log_to_stderr = true;
        if (!log_warned_no_syslog) {
            log_warned_no_syslog = true;
            log_warnx("no syslog daemon listens on %s: logging to stderr", LOG_SYSLOG_PATH);
        }
        return;
    }
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_SYSLOG_FACILITY);
    log_to_stderr = false;
}

bool log_to_syslog(void)
{
    return !log_to_stderr;
}

void log_also_stderr(bool on)
{
    log_copy_stderr = on;
}

void log_setverbose(int verbose)
{
    log_max_pri = verbose > 0 ? LOG_DEBUG : LOG_INFO;
}

void log_setlevel(int max_pri)
{
    log_max_pri = max_pri;
}

void log_quiet(bool quiet)
{
    log_is_quiet = quiet;
}

/* domid < 0: no subject; else the line starts "domid N: ". */
static void vlog(int pri, int64_t domid, const char *fmt, va_list ap, const char *suffix)
{
    if (pri > log_max_pri)
        return;
    if (log_is_quiet && pri > LOG_WARNING)
        return;
    char msg[1024];
    int n = 0;
    if (domid >= 0)
        n = snprintf(msg, sizeof(msg), "domid %" PRId64 ": ", domid);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    if (!log_to_stderr) {
        if (suffix != NULL)
            syslog(pri, "%s: %s", msg, suffix);
        else
            syslog(pri, "%s", msg);
        if (!log_copy_stderr)
            return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *level = pri <= LOG_ERR       ? "error"
                        : pri == LOG_WARNING ? "warn"
                        : pri == LOG_INFO    ? "info"
                                             : "debug";
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s: %s%s%s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level, msg, suffix ? ": " : "", suffix ? suffix : "");
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void log_warn(const char *fmt, ...)
{
    int saved = errno;
    char buf[128];
    const char *err = strerror_r(saved, buf, sizeof(buf));
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_WARNING, -1, fmt, ap, err);
    va_end(ap);
    errno = saved;
}

void log_warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_WARNING, -1, fmt, ap, NULL);
    va_end(ap);
}

void log_dom_warn(int64_t domid, const char *fmt, ...)
{
    int saved = errno;
    char buf[128];
    const char *err = strerror_r(saved, buf, sizeof(buf));
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_WARNING, domid, fmt, ap, err);
    va_end(ap);
    errno = saved;
}

void log_dom_warnx(int64_t domid, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_WARNING, domid, fmt, ap, NULL);
    va_end(ap);
}

void log_dom_info(int64_t domid, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_INFO, domid, fmt, ap, NULL);
    va_end(ap);
}

void log_dom_debug(int64_t domid, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_DEBUG, domid, fmt, ap, NULL);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_INFO, -1, fmt, ap, NULL);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_DEBUG, -1, fmt, ap, NULL);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    int saved = errno;
    char buf[128];
    const char *err = strerror_r(saved, buf, sizeof(buf));
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_CRIT, -1, fmt, ap, err);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_CRIT, -1, fmt, ap, NULL);
    va_end(ap);
    exit(1);
}
