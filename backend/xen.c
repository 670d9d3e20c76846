/* SPDX-License-Identifier: LGPL-2.1-only */
/* The real Xen backend: struct backend_ops over libxenctrl and libxenstore. */

/* Xen's public headers need GNU C (anonymous unions, aligned attributes); -std=c11 says
 * strict ISO. Only this file and the fake that stands in for the libraries see them. */
#undef __STRICT_ANSI__
#include <xenctrl.h>
#include <xenstore.h>

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"

#define GETINFO_BATCH 1024  /* domains per xc_domain_getinfolist call */
#define TRANSACTION_TRIES 8 /* xenstore transaction attempts before -EAGAIN */

/* libxenctrl logs through this: kept quiet (debug) and remembered for error messages. */
struct xen_logger {
    xentoollog_logger vtable; /* first: libxenctrl sees a xentoollog_logger */
    char last[512];
};

/* A watch we registered, to register again after a reconnection. */
struct xen_watch {
    struct xen_watch *next; /* hash chain */
    char *path;
    char *token;
};

struct xen_priv {
    xc_interface *xch;
    struct xs_handle *xsh; /* NULL while disconnected */
    struct xen_logger logger;
    struct xen_watch **wb; /* watches by (path, token) */
    size_t n_wb;           /* power of two */
    size_t n_watches;
    bool owe_econn;        /* the connection was lost: read_watch owes BACKEND_ECONN */
    xc_domaininfo_t *info; /* GETINFO_BATCH of them for xc_domain_getinfolist */
};

static struct xen_priv *priv(struct backend *b)
{
    return b->priv;
}

/* ---- libxenctrl's logger ---- */

static void xl_vmessage(struct xentoollog_logger *logger, xentoollog_level level, int errnoval,
                        const char *context, const char *format, va_list al)
    __attribute__((format(printf, 5, 0)));
static void xl_vmessage(struct xentoollog_logger *logger, xentoollog_level level, int errnoval,
                        const char *context, const char *format, va_list al)
{
    struct xen_logger *l = (struct xen_logger *)logger;
    char msg[400];
    vsnprintf(msg, sizeof(msg), format, al);
    if (errnoval >= 0)
        snprintf(l->last, sizeof(l->last), "%s%s%s: %s", context ? context : "",
                 context ? ": " : "", msg, strerror(errnoval));
    else
        snprintf(l->last, sizeof(l->last), "%s%s%s", context ? context : "",
                 context ? ": " : "", msg);
    if (level >= XTL_WARN)
        log_debug("libxenctrl: %s", l->last);
}

static void xl_progress(struct xentoollog_logger *logger, const char *context,
                        const char *doing_what, int percent, unsigned long done,
                        unsigned long total)
{
    (void)logger;
    (void)context;
    (void)doing_what;
    (void)percent;
    (void)done;
    (void)total;
}

static void xl_destroy(struct xentoollog_logger *logger)
{
    (void)logger; /* lives inside struct xen_priv */
}

/* ---- the list of our watches ---- */

static size_t watch_hash(const struct xen_priv *p, const char *path, const char *token)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over path NUL token */
    for (const char *s = path; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h = (h ^ 0) * 1099511628211ULL;
    for (const char *s = token; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h & (p->n_wb - 1);
}

static struct xen_watch **watch_slot(struct xen_priv *p, const char *path, const char *token)
{
    struct xen_watch **pp = &p->wb[watch_hash(p, path, token)];
    for (; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->path, path) == 0 && strcmp((*pp)->token, token) == 0)
            break;
    return pp;
}

static void watch_remember(struct xen_priv *p, const char *path, const char *token)
{
    if (*watch_slot(p, path, token) != NULL)
        return;
    if (p->n_watches + 1 > p->n_wb * 2) {
        size_t old_n = p->n_wb;
        struct xen_watch **old = p->wb;
        p->n_wb = old_n * 4;
        p->wb = xcalloc(p->n_wb, sizeof(*p->wb));
        for (size_t i = 0; i < old_n; i++) {
            struct xen_watch *w = old[i];
            while (w != NULL) {
                struct xen_watch *next = w->next;
                size_t h = watch_hash(p, w->path, w->token);
                w->next = p->wb[h];
                p->wb[h] = w;
                w = next;
            }
        }
        free(old);
    }
    struct xen_watch *w = xmalloc(sizeof(*w));
    w->path = xstrdup(path);
    w->token = xstrdup(token);
    size_t h = watch_hash(p, path, token);
    w->next = p->wb[h];
    p->wb[h] = w;
    p->n_watches++;
}

static void watch_forget(struct xen_priv *p, const char *path, const char *token)
{
    struct xen_watch **pp = watch_slot(p, path, token);
    struct xen_watch *w = *pp;
    if (w == NULL)
        return;
    *pp = w->next;
    free(w->path);
    free(w->token);
    free(w);
    p->n_watches--;
}

/* ---- the xenstore connection ---- */

/* Connect if disconnected, registering every known watch again. 0 or -errno. */
static int xs_connect(struct xen_priv *p)
{
    if (p->xsh != NULL)
        return 0;
    p->xsh = xs_open(0);
    if (p->xsh == NULL) {
        int e = errno ? errno : ECONNREFUSED;
        log_debug("xenstore: cannot reconnect: %s", strerror(e));
        return -e;
    }
    size_t ok = 0, failed = 0;
    for (size_t i = 0; i < p->n_wb; i++) {
        for (struct xen_watch *w = p->wb[i]; w != NULL; w = w->next) {
            if (xs_watch(p->xsh, w->path, w->token)) {
                ok++;
            } else {
                failed++;
                log_warnx("xenstore: cannot watch %s again after reconnecting: %s", w->path,
                          strerror(errno));
            }
        }
    }
    log_info("xenstore: reconnected; %zu watches registered again%s", ok,
             failed ? " (some failed)" : "");
    return 0;
}

/* Whether errno e from a xenstore call means the connection is gone. libxenstore closes
 * its socket when the reader thread fails; later calls then see EBADF, or EINVAL when
 * the reply never came. EINVAL is also xenstored's answer to a malformed request, so it
 * is checked with a harmless request. */
static bool connection_broken(struct xen_priv *p, int e)
{
    switch (e) {
    case EPIPE:
    case ECONNRESET:
    case ECONNREFUSED:
    case ECONNABORTED:
    case ENOTCONN:
    case ESHUTDOWN:
    case EIO:
    case EBADF:
        return true;
    case EINVAL: {
        unsigned int len;
        void *v = xs_read(p->xsh, XBT_NULL, "/", &len);
        if (v != NULL) {
            free(v);
            return false;
        }
        return errno != ENOENT && errno != EACCES;
    }
    default:
        return false;
    }
}

/* Drop the dead connection and open a new one; read_watch reports the loss. */
static int xs_reconnect(struct xen_priv *p)
{
    log_warnx("xenstore: connection lost; reconnecting");
    xs_close(p->xsh);
    p->xsh = NULL;
    p->owe_econn = true;
    return xs_connect(p);
}

/*
 * Run one xenstore operation with one retry after a reconnection. The operation is a
 * callback so the same rule holds for all: an errno meaning the connection is gone
 * reconnects (registering the watches again) and tries once more.
 */
typedef int (*xs_op_fn)(struct xen_priv *p, void *arg);

static int with_connection(struct xen_priv *p, xs_op_fn fn, void *arg)
{
    int rc = -ECONNRESET;
    for (int attempt = 0; attempt < 2; attempt++) {
        int c = xs_connect(p);
        if (c < 0)
            return BACKEND_ECONN;
        errno = 0;
        rc = fn(p, arg);
        if (rc >= 0 || rc == -ENOENT)
            return rc;
        if (!connection_broken(p, -rc))
            return rc;
        if (xs_reconnect(p) < 0)
            return BACKEND_ECONN;
    }
    return rc < 0 && rc != -ENOENT ? BACKEND_ECONN : rc;
}

static int errno_or(int fallback)
{
    return errno ? -errno : -fallback;
}

/* ---- hypervisor ---- */

static int cmp_domid(const void *a, const void *b)
{
    uint32_t x = ((const struct backend_domain *)a)->domid;
    uint32_t y = ((const struct backend_domain *)b)->domid;
    return x < y ? -1 : x > y;
}

static enum domain_type info_type(const xc_domaininfo_t *info)
{
    if (!(info->flags & XEN_DOMINF_hvm_guest))
        return DOMAIN_TYPE_PV;
#ifdef XEN_X86_EMU_PIC
    /* A PVH container (such as the shim running a PV guest) emulates no legacy
     * devices; an HVM guest does. Both have the same maxmem slack. */
    if (!(info->arch_config.emulation_flags & XEN_X86_EMU_PIC))
        return DOMAIN_TYPE_PVINPVH;
#endif
    return DOMAIN_TYPE_HVM;
}

static int xen_list_domains(struct backend *b, uint32_t first, struct backend_domain *out,
                            size_t max)
{
    struct xen_priv *p = priv(b);
    if (p->info == NULL)
        p->info = xcalloc(GETINFO_BATCH, sizeof(*p->info));
    if (max > INT_MAX)
        max = INT_MAX;
    size_t k = 0;
    while (k < max) {
        unsigned int ask = max - k < GETINFO_BATCH ? (unsigned int)(max - k) : GETINFO_BATCH;
        int got = xc_domain_getinfolist(p->xch, first, ask, p->info);
        if (got < 0) {
            int rc = errno_or(EIO);
            log_debug("xc_domain_getinfolist from %" PRIu32 ": %s", first, strerror(-rc));
            return rc;
        }
        if ((unsigned int)got > ask)
            got = (int)ask;
        struct backend_domain *batch = &out[k];
        bool sorted = true;
        for (int i = 0; i < got; i++) {
            const xc_domaininfo_t *d = &p->info[i];
            struct backend_domain *o = &out[k++];
            memset(o, 0, sizeof(*o));
            o->domid = d->domain;
            o->type = info_type(d);
            o->dying = (d->flags & (XEN_DOMINF_dying | XEN_DOMINF_shutdown)) != 0;
            o->total_pages = d->tot_pages;
            o->max_pages = d->max_pages;
            o->outstanding_pages = d->outstanding_pages;
            o->paused = (d->flags & XEN_DOMINF_paused) != 0;
            memcpy(o->handle, d->handle, sizeof(o->handle));
            if (i > 0 && o[-1].domid >= o->domid)
                sorted = false;
        }
        /* Xen lists in domid order; one batch put in order costs nothing if it is. */
        if (!sorted)
            qsort(batch, (size_t)got, sizeof(*batch), cmp_domid);
        if ((unsigned int)got < ask || !backend_list_next(batch, (size_t)got, first, &first))
            break;
    }
    return (int)k;
}

static int xen_physinfo(struct backend *b, struct backend_physinfo *out)
{
    xc_physinfo_t info;
    memset(&info, 0, sizeof(info));
    if (xc_physinfo(priv(b)->xch, &info) < 0)
        return errno_or(EIO);
    out->free_pages = info.free_pages;
    out->scrub_pages = info.scrub_pages;
    out->total_pages = info.total_pages;
    return 0;
}

static int xen_set_maxmem(struct backend *b, uint32_t domid, uint64_t maxmem_kib)
{
    if (xc_domain_setmaxmem(priv(b)->xch, domid, maxmem_kib) < 0)
        return errno_or(EIO);
    return 0;
}

static int xen_shadow_allocation_mib(struct backend *b, uint32_t domid, uint32_t *mib)
{
    unsigned int mb = 0;
    if (xc_shadow_control(priv(b)->xch, domid, XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION, &mb, 0) < 0)
        return errno_or(EIO);
    *mib = mb;
    return 0;
}

/* ---- xenstore ---- */

struct read_arg {
    const char *path;
    char *value;
};

static int op_read(struct xen_priv *p, void *arg)
{
    struct read_arg *a = arg;
    unsigned int len;
    a->value = xs_read(p->xsh, XBT_NULL, a->path, &len);
    return a->value != NULL ? 0 : errno_or(EIO);
}

static int xen_xs_read(struct backend *b, const char *path, char **value)
{
    struct read_arg a = {.path = path};
    int rc = with_connection(priv(b), op_read, &a);
    if (rc == 0)
        *value = a.value; /* malloc'd and NUL-terminated by libxenstore */
    return rc;
}

struct write_arg {
    const char *check_dir;
    const char *path;
    const char *value;
};

/* One transaction, retried on conflicts. */
static int op_write(struct xen_priv *p, void *arg)
{
    struct write_arg *a = arg;
    for (int tries = 0; tries < TRANSACTION_TRIES; tries++) {
        xs_transaction_t t = xs_transaction_start(p->xsh);
        if (t == XBT_NULL)
            return errno_or(EIO);
        if (a->check_dir != NULL) {
            unsigned int len;
            void *v = xs_read(p->xsh, t, a->check_dir, &len);
            if (v == NULL) {
                int e = errno ? errno : EIO;
                xs_transaction_end(p->xsh, t, true);
                return -e;
            }
            free(v);
        }
        if (!xs_write(p->xsh, t, a->path, a->value, (unsigned int)strlen(a->value))) {
            int e = errno ? errno : EIO;
            xs_transaction_end(p->xsh, t, true);
            return -e;
        }
        if (xs_transaction_end(p->xsh, t, false))
            return 0;
        if (errno != EAGAIN)
            return errno_or(EIO);
        log_debug("xenstore: transaction writing %s conflicted; retrying", a->path);
    }
    log_warnx("xenstore: writing %s: still conflicting after %d tries", a->path,
              TRANSACTION_TRIES);
    return -EAGAIN;
}

static int xen_xs_write(struct backend *b, const char *check_dir, const char *path,
                        const char *value)
{
    struct write_arg a = {.check_dir = check_dir, .path = path, .value = value};
    return with_connection(priv(b), op_write, &a);
}

static int op_rm(struct xen_priv *p, void *arg)
{
    return xs_rm(p->xsh, XBT_NULL, arg) ? 0 : errno_or(EIO);
}

static int xen_xs_rm(struct backend *b, const char *path)
{
    int rc = with_connection(priv(b), op_rm, (void *)path);
    return rc == -ENOENT ? 0 : rc;
}

struct dir_arg {
    const char *path;
    char **names; /* one block from libxenstore */
    unsigned int n;
};

static int op_directory(struct xen_priv *p, void *arg)
{
    struct dir_arg *a = arg;
    a->names = xs_directory(p->xsh, XBT_NULL, a->path, &a->n);
    return a->names != NULL ? 0 : errno_or(EIO);
}

static int xen_xs_directory(struct backend *b, const char *path, char ***entries, size_t *n)
{
    struct dir_arg a = {.path = path};
    int rc = with_connection(priv(b), op_directory, &a);
    if (rc < 0)
        return rc;
    /* Our contract: separately allocated strings (backend_strv_free). */
    char **v = xcalloc((size_t)a.n + 1, sizeof(*v));
    for (unsigned int i = 0; i < a.n; i++)
        v[i] = xstrdup(a.names[i]);
    free(a.names);
    *entries = v;
    *n = a.n;
    return 0;
}

struct watch_arg {
    const char *path;
    const char *token;
};

static int op_watch(struct xen_priv *p, void *arg)
{
    struct watch_arg *a = arg;
    return xs_watch(p->xsh, a->path, a->token) ? 0 : errno_or(EIO);
}

static int xen_xs_watch(struct backend *b, const char *path, const char *token)
{
    struct xen_priv *p = priv(b);
    struct watch_arg a = {.path = path, .token = token};
    int rc = with_connection(p, op_watch, &a);
    /* A reconnection in between registered it already if it was remembered. */
    if (rc == -EEXIST && *watch_slot(p, path, token) != NULL)
        rc = 0;
    if (rc == 0)
        watch_remember(p, path, token);
    return rc;
}

static int op_unwatch(struct xen_priv *p, void *arg)
{
    struct watch_arg *a = arg;
    return xs_unwatch(p->xsh, a->path, a->token) ? 0 : errno_or(EIO);
}

static int xen_xs_unwatch(struct backend *b, const char *path, const char *token)
{
    struct xen_priv *p = priv(b);
    bool known = *watch_slot(p, path, token) != NULL;
    /* Forget it first: a reconnection on the way must not register it again. */
    watch_forget(p, path, token);
    struct watch_arg a = {.path = path, .token = token};
    int rc = with_connection(p, op_unwatch, &a);
    if (rc == BACKEND_ECONN && known)
        rc = 0; /* gone with the connection */
    return rc;
}

static int xen_watch_fd(struct backend *b)
{
    struct xen_priv *p = priv(b);
    if (xs_connect(p) < 0)
        return -1;
    return xs_fileno(p->xsh);
}

static int xen_read_watch(struct backend *b, struct backend_watch_event *ev)
{
    struct xen_priv *p = priv(b);
    if (p->xsh == NULL) {
        int rc = xs_connect(p);
        if (rc < 0)
            return rc;
    }
    if (p->owe_econn) {
        p->owe_econn = false;
        return BACKEND_ECONN;
    }
    errno = 0;
    char **v = xs_check_watch(p->xsh);
    if (v != NULL) {
        ev->path = xstrdup(v[XS_WATCH_PATH]);
        ev->token = xstrdup(v[XS_WATCH_TOKEN]);
        free(v);
        return 1;
    }
    if (errno == EAGAIN)
        return 0;
    /* The reader failed: events may have been lost with the connection. */
    log_debug("xenstore: xs_check_watch: %s", strerror(errno ? errno : EIO));
    int rc = xs_reconnect(p);
    p->owe_econn = false;
    if (rc < 0) {
        p->owe_econn = true; /* say so once reconnected */
        return rc;
    }
    return BACKEND_ECONN;
}

/* ---- clock ---- */

static int64_t xen_now_ms(struct backend *b)
{
    (void)b;
    return clock_monotonic_ms();
}

static void xen_sleep_ms(struct backend *b, int64_t ms)
{
    (void)b;
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static bool xen_clock_is_virtual(struct backend *b)
{
    (void)b;
    return false;
}

static void xen_close(struct backend *b)
{
    struct xen_priv *p = priv(b);
    if (p->xsh != NULL)
        xs_close(p->xsh);
    if (p->xch != NULL)
        xc_interface_close(p->xch);
    for (size_t i = 0; i < p->n_wb; i++) {
        struct xen_watch *w = p->wb[i];
        while (w != NULL) {
            struct xen_watch *next = w->next;
            free(w->path);
            free(w->token);
            free(w);
            w = next;
        }
    }
    free(p->wb);
    free(p->info);
    free(p);
    free(b);
}

static const struct backend_ops xen_ops = {
    .name = "xen",
    .list_domains = xen_list_domains,
    .physinfo = xen_physinfo,
    .set_maxmem = xen_set_maxmem,
    .shadow_allocation_mib = xen_shadow_allocation_mib,
    .xs_read = xen_xs_read,
    .xs_write = xen_xs_write,
    .xs_rm = xen_xs_rm,
    .xs_directory = xen_xs_directory,
    .xs_watch = xen_xs_watch,
    .xs_unwatch = xen_xs_unwatch,
    .watch_fd = xen_watch_fd,
    .read_watch = xen_read_watch,
    .now_ms = xen_now_ms,
    .sleep_ms = xen_sleep_ms,
    .clock_is_virtual = xen_clock_is_virtual,
    .close = xen_close,
};

struct backend *backend_xen_open(char **err)
{
    struct xen_priv *p = xcalloc(1, sizeof(*p));
    p->logger.vtable.vmessage = xl_vmessage;
    p->logger.vtable.progress = xl_progress;
    p->logger.vtable.destroy = xl_destroy;
    p->n_wb = 64;
    p->wb = xcalloc(p->n_wb, sizeof(*p->wb));

    errno = 0;
    p->xch = xc_interface_open(&p->logger.vtable, &p->logger.vtable, 0);
    if (p->xch == NULL) {
        int e = errno ? errno : ENOENT;
        *err = xasprintf("cannot open the Xen hypervisor interface (libxenctrl): %s%s%s "
                         "(is this a Xen dom0, running as root?)",
                         strerror(e), p->logger.last[0] ? "; " : "", p->logger.last);
        goto fail;
    }
    errno = 0;
    p->xsh = xs_open(0);
    if (p->xsh == NULL) {
        int e = errno ? errno : ENOENT;
        *err = xasprintf("cannot connect to xenstored (libxenstore): %s (is xenstored "
                         "running?)",
                         strerror(e));
        goto fail;
    }
    struct backend *b = xcalloc(1, sizeof(*b));
    b->ops = &xen_ops;
    b->priv = p;
    return b;
fail:
    if (p->xch != NULL)
        xc_interface_close(p->xch);
    free(p->wb);
    free(p);
    return NULL;
}
