/* SPDX-License-Identifier: LGPL-2.1-only */
/* Logging in the OpenBSD daemon style: stderr in the foreground, syslog otherwise. */
#ifndef SQUEEZED_LOG_H
#define SQUEEZED_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* The syslog socket and facility: LOG_LOCAL5 is what xapi's daemons (squeezed too) log
 * at, and what a stock XenServer / XCP-ng host's rsyslog writes to
 * /var/log/xensource.log. */
#define LOG_SYSLOG_PATH "/dev/log"
#define LOG_SYSLOG_FACILITY LOG_LOCAL5

/* Start logging as `ident` (kept, not copied: pass a string literal). to_stderr:
 * foreground runs log to stderr, else syslog at LOG_SYSLOG_FACILITY with the pid;
 * when no syslog socket accepts a connection at LOG_SYSLOG_PATH, logging stays on
 * stderr and one warning says so (never nowhere). verbose: 0 = info and above, 1+ =
 * debug too. Safe to call more than once. */
void log_init(const char *ident, bool to_stderr, int verbose);
/* Whether messages go to syslog now (false: stderr). */
bool log_to_syslog(void);
/* While logging to syslog, also copy every message to stderr (a daemon between its
 * fork and detaching from the terminal: start-up failures reach both). */
void log_also_stderr(bool on);
/* Change verbosity after log_init. */
void log_setverbose(int verbose);
/* Drop messages less severe than `max_pri` (a syslog priority: LOG_DEBUG keeps all,
 * LOG_INFO drops debug, LOG_WARNING keeps warnings and worse). Overrides
 * log_setverbose; the last call of the two wins. */
void log_setlevel(int max_pri);
/* Silence everything below warnings (used by tests and benchmarks). */
void log_quiet(bool quiet);

/* Warning with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Warning without errno. */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same about one domain (as libxl's LOGD): the line starts "domid N: ". */
void log_dom_warn(int64_t domid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_dom_warnx(int64_t domid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_dom_info(int64_t domid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_dom_debug(int64_t domid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log with strerror(errno) and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Log and exit(1). */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
