/* SPDX-License-Identifier: LGPL-2.1-only */
/* A fake libxenctrl + libxenstore over the simulated host, with fault injection. */

/* Xen's public headers need GNU C; see backend/xen.c. */
#undef __STRICT_ANSI__
#include <xenctrl.h>
#include <xenstore.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "tests/fakexen/fakexen.h"

struct xc_interface_core {
    int unused;
};

/* A write buffered in a transaction (value NULL: rm). */
struct fx_op {
    char *path;
    char *value;
};

struct fx_tx {
    struct fx_tx *next;
    xs_transaction_t id;
    uint64_t generation; /* the world's xenstore generation at start */
    struct fx_op *ops;
    size_t n_ops, cap_ops;
};

struct xs_handle {
    uint64_t epoch;   /* the connection epoch it was opened in */
    bool told_closed; /* the first failure after the loss was reported */
    struct fx_tx *txs;
    xs_transaction_t next_tx;
};

struct fx_override {
    uint32_t domid;
    bool dying;
    bool has_shadow;
    uint32_t shadow_mib;
};

static struct {
    struct sim *world;
    bool owned; /* made from the environment: ours to free */
    bool env_tried;
    int64_t destroy_on_read;
    int64_t destroy_in_tx;
    unsigned eagain_ends;
    unsigned setmaxmem_failures; /* next setmaxmem calls that fail with EIO */
    uint64_t epoch;              /* bumped by every connection loss */
    struct fx_override *ov;
    size_t n_ov;
    struct fakexen_counters c;
} fx = {.destroy_on_read = -1, .destroy_in_tx = -1};

/* ---- the world ---- */

static void free_owned_world(void)
{
    if (fx.owned)
        sim_free(fx.world);
    fx.world = NULL;
    fx.owned = false;
}

void fakexen_set_world(struct sim *s)
{
    free_owned_world();
    fx.world = s;
    fx.env_tried = s != NULL;
}

static struct sim *world_from_env(void)
{
    const char *state = getenv("FAKEXEN_STATE");
    const char *scenario = getenv("FAKEXEN_SCENARIO");
    char *err = NULL;
    struct sim *s = NULL;
    if (state != NULL && *state != '\0' && access(state, F_OK) == 0) {
        s = sim_load(state, SIM_CLOCK_REAL, &err);
        if (s == NULL)
            log_warnx("fakexen: cannot load %s: %s", state, err ? err : "?");
    } else if (scenario != NULL && *scenario != '\0') {
        struct sim_scenario *sc = NULL;
        int rc = sim_scenario_load(scenario, &sc, &err);
        if (rc < 0) {
            log_warnx("fakexen: cannot load %s: %s", scenario, err ? err : strerror(-rc));
        } else {
            s = sim_new(sc, SIM_CLOCK_REAL, &err);
            if (s == NULL)
                log_warnx("fakexen: %s: %s", scenario, err ? err : "?");
        }
        sim_scenario_free(sc);
    }
    free(err);
    if (s != NULL && state != NULL && *state != '\0')
        sim_set_state_file(s, state);
    return s;
}

struct sim *fakexen_world(void)
{
    if (fx.world == NULL && !fx.env_tried) {
        fx.env_tried = true;
        fx.world = world_from_env();
        if (fx.world != NULL) {
            fx.owned = true;
            atexit(free_owned_world);
        }
    }
    return fx.world;
}

/* ---- faults ---- */

void fakexen_destroy_on_read(uint32_t domid)
{
    fx.destroy_on_read = domid;
}

void fakexen_destroy_in_transaction(uint32_t domid)
{
    fx.destroy_in_tx = domid;
}

void fakexen_fail_transactions(unsigned n)
{
    fx.eagain_ends = n;
}

void fakexen_fail_setmaxmem(unsigned n)
{
    fx.setmaxmem_failures = n;
}

void fakexen_drop_connection(void)
{
    fx.epoch++;
    if (fx.world != NULL)
        sim_xs_drop_watches(fx.world);
}

int fakexen_watch_burst(const char *path, const char *value, size_t n)
{
    struct sim *w = fakexen_world();
    if (w == NULL)
        return -ENOENT;
    for (size_t i = 0; i < n; i++) {
        int rc = sim_xs_write(w, path, value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static struct fx_override * override(uint32_t domid)
{
    for (size_t i = 0; i < fx.n_ov; i++)
        if (fx.ov[i].domid == domid)
            return &fx.ov[i];
    fx.ov = xreallocarray(fx.ov, fx.n_ov + 1, sizeof(*fx.ov));
    struct fx_override *o = &fx.ov[fx.n_ov++];
    memset(o, 0, sizeof(*o));
    o->domid = domid;
    return o;
}

static const struct fx_override *find_override(uint32_t domid)
{
    for (size_t i = 0; i < fx.n_ov; i++)
        if (fx.ov[i].domid == domid)
            return &fx.ov[i];
    return NULL;
}

void fakexen_set_shadow_mib(uint32_t domid, uint32_t mib)
{
    struct fx_override *o = override(domid);
    o->has_shadow = true;
    o->shadow_mib = mib;
}

void fakexen_set_dying(uint32_t domid, bool dying)
{
    override(domid)->dying = dying;
}

void fakexen_reset(void)
{
    fx.destroy_on_read = -1;
    fx.destroy_in_tx = -1;
    fx.eagain_ends = 0;
    fx.setmaxmem_failures = 0;
    free(fx.ov);
    fx.ov = NULL;
    fx.n_ov = 0;
    memset(&fx.c, 0, sizeof(fx.c));
}

void fakexen_counters(struct fakexen_counters *out)
{
    *out = fx.c;
}

/* ---- faults from a file ---- */

/* A whole decimal number in [min, max] followed by blanks or the end; *rest after it. */
static bool parse_num(const char *s, long long min, long long max, long long *out,
                      const char **rest)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < min || v > max || (*end != '\0' && *end != ' '))
        return false;
    while (*end == ' ')
        end++;
    *out = v;
    *rest = end;
    return true;
}

/* Apply one line of the fault file. 1 applied, 0 skipped (blank, comment), -1 refused. */
static int apply_fault_line(char *line)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return 0;
    const char *rest = NULL;
    long long n = 0, v = 0;
    if (strcmp(line, "drop-connection") == 0) {
        fakexen_drop_connection();
    } else if (strncmp(line, "eagain ", 7) == 0 &&
               parse_num(line + 7, 0, UINT32_MAX, &n, &rest) && *rest == '\0') {
        fakexen_fail_transactions((unsigned)n);
    } else if (strncmp(line, "burst ", 6) == 0 && parse_num(line + 6, 1, 10000000, &n, &rest) &&
               *rest == '/') {
        char *value = NULL;
        if (fx.world == NULL || sim_xs_read(fx.world, rest, &value) < 0)
            goto refused;
        int rc = fakexen_watch_burst(rest, value, (size_t)n);
        free(value);
        if (rc < 0)
            goto refused;
    } else if (strncmp(line, "destroy-at-read ", 16) == 0 &&
               parse_num(line + 16, 0, UINT32_MAX, &n, &rest) && *rest == '\0') {
        fakexen_destroy_on_read((uint32_t)n);
    } else if (strncmp(line, "destroy-in-transaction ", 23) == 0 &&
               parse_num(line + 23, 0, UINT32_MAX, &n, &rest) && *rest == '\0') {
        fakexen_destroy_in_transaction((uint32_t)n);
    } else if (strncmp(line, "dying ", 6) == 0 &&
               parse_num(line + 6, 0, UINT32_MAX, &n, &rest) &&
               parse_num(rest, 0, 1, &v, &rest) && *rest == '\0') {
        fakexen_set_dying((uint32_t)n, v != 0);
    } else if (strncmp(line, "write /", 7) == 0 && strchr(line + 7, ' ') != NULL) {
        char *value = strchr(line + 7, ' ');
        *value++ = '\0';
        int rc = fx.world != NULL ? sim_xs_write(fx.world, line + 6, value) : -EINVAL;
        value[-1] = ' '; /* the line is logged whole */
        if (rc < 0)
            goto refused;
    } else {
        goto refused;
    }
    log_info("fakexen: fault: %s", line);
    return 1;
refused:
    log_warnx("fakexen: fault file: refused '%s'", line);
    return -1;
}

int fakexen_poll_fault_file(void)
{
    const char *path = getenv("FAKEXEN_FAULT_FILE");
    if (path == NULL || *path == '\0')
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (unlink(path) < 0)
        log_warnx("fakexen: cannot remove the fault file %s: %s", path, strerror(errno));
    int applied = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0)
        if (apply_fault_line(line) > 0)
            applied++;
    free(line);
    fclose(f);
    return applied;
}

/* ---- libxenctrl ---- */

static void xtl_say(xentoollog_logger *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void xtl_say(xentoollog_logger *l, const char *fmt, ...)
{
    if (l == NULL || l->vmessage == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    l->vmessage(l, XTL_ERROR, -1, "fakexen", fmt, ap);
    va_end(ap);
}

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    (void)dombuild_logger;
    (void)open_flags;
    if (fakexen_world() == NULL) {
        xtl_say(logger, "no simulated world (set FAKEXEN_SCENARIO or FAKEXEN_STATE)");
        errno = ENOENT;
        return NULL;
    }
    return xcalloc(1, sizeof(xc_interface));
}

int xc_interface_close(xc_interface *xch)
{
    free(xch);
    return 0;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          xc_domaininfo_t *info)
{
    (void)xch;
    fx.c.getinfolist++;
    fakexen_poll_fault_file();
    struct sim *w = fakexen_world();
    struct backend_domain *list = max_domains ? xcalloc(max_domains, sizeof(*list)) : NULL;
    int rc = w ? sim_list_domains_from(w, first_domain, list, max_domains) : -ENOENT;
    if (rc < 0) {
        free(list);
        errno = -rc;
        return -1;
    }
    size_t n = (size_t)rc;
    unsigned int got = 0;
    for (size_t i = 0; i < n && got < max_domains; i++) {
        const struct backend_domain *d = &list[i];
        xc_domaininfo_t *o = &info[got++];
        memset(o, 0, sizeof(*o));
        o->domain = (domid_t)d->domid;
        const struct fx_override *ov = find_override(d->domid);
        if (d->type != DOMAIN_TYPE_PV)
            o->flags |= XEN_DOMINF_hvm_guest;
        if (d->dying || (ov != NULL && ov->dying))
            o->flags |= XEN_DOMINF_dying;
        o->tot_pages = d->total_pages;
        o->max_pages = d->max_pages;
        o->outstanding_pages = d->outstanding_pages;
        if (d->paused)
            o->flags |= XEN_DOMINF_paused;
        memcpy(o->handle, d->handle, sizeof(o->handle));
#ifdef XEN_X86_EMU_ALL
        if (d->type == DOMAIN_TYPE_HVM)
            o->arch_config.emulation_flags = XEN_X86_EMU_ALL & ~XEN_X86_EMU_VPCI;
        else if (d->type == DOMAIN_TYPE_PVINPVH)
            o->arch_config.emulation_flags = XEN_X86_EMU_LAPIC;
#endif
    }
    free(list);
    return (int)got;
}

int xc_physinfo(xc_interface *xch, xc_physinfo_t *info)
{
    (void)xch;
    fx.c.physinfo++;
    fakexen_poll_fault_file();
    struct sim *w = fakexen_world();
    struct backend_physinfo pi;
    int rc = w ? sim_physinfo(w, &pi) : -ENOENT;
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    memset(info, 0, sizeof(*info));
    info->free_pages = pi.free_pages;
    info->scrub_pages = pi.scrub_pages;
    info->total_pages = pi.total_pages;
    return 0;
}

int xc_domain_setmaxmem(xc_interface *xch, uint32_t domid, uint64_t max_memkb)
{
    (void)xch;
    fx.c.setmaxmem++;
    fakexen_poll_fault_file();
    if (fx.setmaxmem_failures > 0) {
        fx.setmaxmem_failures--;
        errno = EIO;
        return -1;
    }
    struct sim *w = fakexen_world();
    int rc = w ? sim_set_maxmem(w, domid, max_memkb) : -ENOENT;
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}

int xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop, unsigned int *mb,
                      unsigned int mode)
{
    (void)xch;
    (void)mode;
    fx.c.shadow++;
    if (sop != XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION || mb == NULL) {
        errno = EINVAL;
        return -1;
    }
    struct sim *w = fakexen_world();
    uint32_t mib = 0;
    int rc = w ? sim_shadow_allocation_mib(w, domid, &mib) : -ENOENT;
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    const struct fx_override *ov = find_override(domid);
    if (ov != NULL && ov->has_shadow)
        mib = ov->shadow_mib;
    *mb = mib;
    return 0;
}

/* ---- libxenstore ---- */

/* False (errno set) if h's connection was lost: the real library closes its socket,
 * the call waiting for a reply gets EINVAL and later ones EBADF. */
static bool alive(struct xs_handle *h)
{
    if (h == NULL) {
        errno = EINVAL;
        return false;
    }
    if (h->epoch == fx.epoch && fx.world != NULL)
        return true;
    errno = h->told_closed ? EBADF : EINVAL;
    h->told_closed = true;
    return false;
}

static bool fail_rc(int rc)
{
    errno = -rc;
    return false;
}

static void tx_free(struct fx_tx *t)
{
    for (size_t i = 0; i < t->n_ops; i++) {
        free(t->ops[i].path);
        free(t->ops[i].value);
    }
    free(t->ops);
    free(t);
}

static struct fx_tx *tx_find(struct xs_handle *h, xs_transaction_t id, bool unlink)
{
    for (struct fx_tx **pp = &h->txs; *pp != NULL; pp = &(*pp)->next) {
        struct fx_tx *t = *pp;
        if (t->id == id) {
            if (unlink)
                *pp = t->next;
            return t;
        }
    }
    return NULL;
}

/* The last buffered op on path in t, or NULL. */
static const struct fx_op *tx_lookup(const struct fx_tx *t, const char *path)
{
    for (size_t i = t->n_ops; i > 0; i--)
        if (strcmp(t->ops[i - 1].path, path) == 0)
            return &t->ops[i - 1];
    return NULL;
}

static void tx_add(struct fx_tx *t, const char *path, const char *value, size_t len)
{
    if (t->n_ops == t->cap_ops) {
        t->cap_ops = t->cap_ops ? t->cap_ops * 2 : 4;
        t->ops = xreallocarray(t->ops, t->cap_ops, sizeof(*t->ops));
    }
    struct fx_op *op = &t->ops[t->n_ops++];
    op->path = xstrdup(path);
    op->value = NULL;
    if (value != NULL) {
        op->value = xmalloc(len + 1);
        memcpy(op->value, value, len);
        op->value[len] = '\0';
    }
}

/* A domain due to die at the next read of a path in its directory dies now. */
static void maybe_destroy_on_read(const char *path)
{
    if (fx.destroy_on_read < 0)
        return;
    char dir[64];
    int len = snprintf(dir, sizeof(dir), "/local/domain/%" PRId64, fx.destroy_on_read);
    if (strncmp(path, dir, (size_t)len) != 0 || (path[len] != '\0' && path[len] != '/'))
        return;
    sim_destroy_domain(fx.world, (uint32_t)fx.destroy_on_read);
    fx.destroy_on_read = -1;
}

struct xs_handle *xs_open(unsigned long flags)
{
    (void)flags;
    fx.c.xs_open++;
    if (fakexen_world() == NULL) {
        errno = ENOENT; /* as with no xenstored socket */
        return NULL;
    }
    struct xs_handle *h = xcalloc(1, sizeof(*h));
    h->epoch = fx.epoch;
    h->next_tx = 1;
    return h;
}

void xs_close(struct xs_handle *xsh)
{
    if (xsh == NULL)
        return;
    while (xsh->txs != NULL) {
        struct fx_tx *t = xsh->txs;
        xsh->txs = t->next;
        tx_free(t);
    }
    free(xsh);
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    fx.c.xs_read++;
    fakexen_poll_fault_file();
    if (!alive(h))
        return NULL;
    maybe_destroy_on_read(path);
    if (t != XBT_NULL) {
        struct fx_tx *tx = tx_find(h, t, false);
        if (tx == NULL) {
            errno = ENOENT; /* xenstored: unknown transaction */
            return NULL;
        }
        const struct fx_op *op = tx_lookup(tx, path);
        if (op != NULL) {
            if (op->value == NULL) {
                errno = ENOENT;
                return NULL;
            }
            if (len != NULL)
                *len = (unsigned int)strlen(op->value);
            return xstrdup(op->value);
        }
    }
    char *v = NULL;
    int rc = sim_xs_read(fx.world, path, &v);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    if (len != NULL)
        *len = (unsigned int)strlen(v);
    return v;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
              unsigned int len)
{
    fx.c.xs_write++;
    fakexen_poll_fault_file();
    if (!alive(h))
        return false;
    if (t != XBT_NULL) {
        struct fx_tx *tx = tx_find(h, t, false);
        if (tx == NULL)
            return fail_rc(-ENOENT);
        tx_add(tx, path, data, len);
        return true;
    }
    char *value = xmalloc((size_t)len + 1);
    memcpy(value, data, len);
    value[len] = '\0';
    int rc = sim_xs_write(fx.world, path, value);
    free(value);
    return rc < 0 ? fail_rc(rc) : true;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    fx.c.xs_rm++;
    fakexen_poll_fault_file();
    if (!alive(h))
        return false;
    if (t != XBT_NULL) {
        struct fx_tx *tx = tx_find(h, t, false);
        if (tx == NULL)
            return fail_rc(-ENOENT);
        tx_add(tx, path, NULL, 0);
        return true;
    }
    if (!sim_xs_exists(fx.world, path))
        return fail_rc(-ENOENT);
    int rc = sim_xs_rm(fx.world, path);
    return rc < 0 ? fail_rc(rc) : true;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path,
                    unsigned int *num)
{
    (void)t;
    fx.c.xs_directory++;
    fakexen_poll_fault_file();
    if (!alive(h))
        return NULL;
    maybe_destroy_on_read(path);
    char **names = NULL;
    size_t n = 0;
    int rc = sim_xs_directory(fx.world, path, &names, &n);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    /* As libxenstore: one block, the pointers followed by the strings. */
    size_t bytes = (n + 1) * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(names[i]) + 1;
    char **block = xmalloc(bytes);
    char *s = (char *)(block + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(s, names[i], l);
        block[i] = s;
        s += l;
    }
    block[n] = NULL;
    backend_strv_free(names, n);
    *num = (unsigned int)n;
    return block;
}

bool xs_watch(struct xs_handle *h, const char *path, const char *token)
{
    fx.c.xs_watch++;
    fakexen_poll_fault_file();
    if (!alive(h))
        return false;
    int rc = sim_xs_watch(fx.world, path, token);
    return rc < 0 ? fail_rc(rc) : true;
}

bool xs_unwatch(struct xs_handle *h, const char *path, const char *token)
{
    fx.c.xs_unwatch++;
    fakexen_poll_fault_file();
    if (!alive(h))
        return false;
    int rc = sim_xs_unwatch(fx.world, path, token);
    return rc < 0 ? fail_rc(rc) : true;
}

int xs_fileno(struct xs_handle *h)
{
    if (!alive(h))
        return -1;
    return sim_xs_watch_fd(fx.world);
}

char **xs_check_watch(struct xs_handle *h)
{
    fx.c.xs_check_watch++;
    fakexen_poll_fault_file();
    if (!alive(h)) {
        errno = EINVAL; /* the reader thread is gone */
        return NULL;
    }
    struct backend_watch_event ev = {0};
    int rc = sim_xs_read_watch(fx.world, &ev);
    if (rc == 0) {
        errno = EAGAIN;
        return NULL;
    }
    if (rc == BACKEND_EOVERFLOW) {
        /* No overflow in the real protocol: a xenstored that cannot keep up with a
         * reader drops it. */
        fakexen_drop_connection();
        errno = EINVAL;
        return NULL;
    }
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    size_t lp = strlen(ev.path) + 1, lt = strlen(ev.token) + 1;
    char **v = xmalloc(2 * sizeof(char *) + lp + lt);
    char *s = (char *)(v + 2);
    memcpy(s, ev.path, lp);
    memcpy(s + lp, ev.token, lt);
    v[XS_WATCH_PATH] = s;
    v[XS_WATCH_TOKEN] = s + lp;
    backend_watch_event_clear(&ev);
    return v;
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
    fx.c.tx_start++;
    fakexen_poll_fault_file();
    if (!alive(h))
        return XBT_NULL;
    struct fx_tx *t = xcalloc(1, sizeof(*t));
    t->id = h->next_tx++;
    if (t->id == XBT_NULL)
        t->id = h->next_tx++;
    t->generation = sim_xs_generation(fx.world);
    t->next = h->txs;
    h->txs = t;
    return t->id;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort)
{
    struct fx_tx *tx = h != NULL ? tx_find(h, t, true) : NULL;
    bool ok = false;
    if (!alive(h))
        goto out;
    if (tx == NULL) {
        errno = ENOENT;
        goto out;
    }
    if (abort) {
        fx.c.tx_abort++;
        ok = true;
        goto out;
    }
    if (fx.destroy_in_tx >= 0) {
        sim_destroy_domain(fx.world, (uint32_t)fx.destroy_in_tx);
        fx.destroy_in_tx = -1;
    }
    /* Any change since the start conflicts (as the original xenstored did). */
    if (fx.eagain_ends > 0 || sim_xs_generation(fx.world) != tx->generation) {
        if (fx.eagain_ends > 0)
            fx.eagain_ends--;
        fx.c.tx_eagain++;
        errno = EAGAIN;
        goto out;
    }
    for (size_t i = 0; i < tx->n_ops; i++) {
        const struct fx_op *op = &tx->ops[i];
        int rc = op->value != NULL ? sim_xs_write(fx.world, op->path, op->value)
                                   : sim_xs_rm(fx.world, op->path);
        if (rc < 0) {
            errno = -rc;
            goto out;
        }
    }
    fx.c.tx_commit++;
    ok = true;
out:
    if (tx != NULL)
        tx_free(tx);
    return ok;
}
