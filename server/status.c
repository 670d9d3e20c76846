/* SPDX-License-Identifier: LGPL-2.1-only */
/* The published /status picture: immutable, shared by reference, serialised once. */
#include "server/status.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "common/xalloc.h"

/*
 * The JSON is written straight into a buffer (no jansson tree): at 32,000 domains a tree
 * of 350,000 values costs tens of milliseconds to build and dump, the buffer a few. The
 * output is what json_dumps(JSON_COMPACT) gave for the same object: the same keys in the
 * same order. Every string written is one of ours (names, UUIDs, session names limited
 * to [A-Za-z0-9_@-]) but is escaped all the same.
 */

#define NO_TEXT SIZE_MAX

struct status_domain_row {
    struct policy_domain pd;
    enum domain_type type;
    bool booting;
    bool stuck;
    bool uncooperative;
    size_t name, uuid;           /* offsets in the view's pool, or NO_TEXT */
    int64_t stuck_since_wall_ms; /* -1: not stuck */
};

struct status_domains {
    atomic_uint refs;
    size_t n;
    struct status_domain_row *rows;
    char *pool; /* names and uuids, NUL-terminated one after the other */
    size_t pool_len, pool_cap;
    size_t n_excluded;
    struct domcache_excluded *excluded; /* left out of the snapshot, sorted by domid */
};

struct status_resv_row {
    size_t id;        /* offset of the id in the view's pool */
    uint32_t session; /* index in sessions */
    int64_t kib;
    int32_t domid;
};

struct status_resvs {
    atomic_uint refs;
    size_t n;
    struct status_resv_row *rows;
    char *pool; /* the ids, NUL-terminated one after the other */
    char **sessions;
    size_t n_sessions;
};

struct status_picture {
    atomic_uint refs;
    struct status_input in; /* ops, totals, waits, bounds, running point into the below */
    struct status_op ops[STATUS_MAX_OPS];
    struct status_total totals[STATUS_MAX_TOTALS];
    struct status_wait waits[STATUS_MAX_WAITS];
    double bounds_s[STATUS_MAX_BOUNDS];
    struct status_running running;

    pthread_mutex_t mu;   /* held while the bytes are built */
    _Atomic(char *) json; /* NULL until built */
    size_t json_len;
    _Atomic(char *) memo[STATUS_MEMO_SLOTS];
    size_t memo_len[STATUS_MEMO_SLOTS];
};

/* ---- the shared parts ---------------------------------------------------------------- */

/* Copy text into d's pool: its offset, or NO_TEXT for NULL. */
static size_t pool_add(struct status_domains *d, const char *text)
{
    if (text == NULL)
        return NO_TEXT;
    size_t n = strlen(text) + 1;
    if (d->pool_len + n > d->pool_cap) {
        size_t cap = d->pool_cap ? d->pool_cap : 1024;
        while (cap < d->pool_len + n)
            cap *= 2;
        d->pool = xreallocarray(d->pool, cap, 1);
        d->pool_cap = cap;
    }
    memcpy(d->pool + d->pool_len, text, n);
    d->pool_len += n;
    return d->pool_len - n;
}

struct status_domains *status_domains_new(const struct domcache_snapshot *snap,
                                          status_flags_fn flags, const void *ctx,
                                          status_ident_fn ident, void *ident_ctx)
{
    struct status_domains *d = xcalloc(1, sizeof(*d));
    atomic_init(&d->refs, 1);
    d->n = snap != NULL ? snap->host.n_domains : 0;
    if (snap != NULL && snap->n_excluded > 0) {
        d->n_excluded = snap->n_excluded;
        d->excluded = xcalloc(d->n_excluded, sizeof(*d->excluded));
        memcpy(d->excluded, snap->excluded, d->n_excluded * sizeof(*d->excluded));
    }
    if (d->n == 0)
        return d;
    d->rows = xcalloc(d->n, sizeof(*d->rows));
    bool *stuck = xcalloc(2 * d->n, sizeof(bool));
    bool *uncoop = stuck + d->n;
    if (flags != NULL)
        flags(ctx, snap, stuck, uncoop);
    for (size_t i = 0; i < d->n; i++) {
        struct status_domain_row *r = &d->rows[i];
        r->pd = snap->domains[i];
        r->type = snap->extra[i].type;
        r->booting = snap->extra[i].booting;
        r->stuck = stuck[i];
        r->uncooperative = uncoop[i];
        const char *name = NULL, *uuid = NULL;
        r->stuck_since_wall_ms = -1;
        if (ident != NULL)
            ident(ident_ctx, r->pd.domid, &name, &uuid, &r->stuck_since_wall_ms);
        r->name = pool_add(d, name);
        r->uuid = pool_add(d, uuid);
    }
    free(stuck);
    return d;
}

void status_domains_unref(struct status_domains *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    free(d->rows);
    free(d->pool);
    free(d->excluded);
    free(d);
}

/* One pass over the list, a memcpy per id (about 20 ns per reservation held): this runs
 * on the worker after every change of the list. */
struct status_resvs *status_resvs_new(const struct reservations *r)
{
    struct status_resvs *v = xcalloc(1, sizeof(*v));
    atomic_init(&v->refs, 1);
    v->n = reservations_count(r);
    v->rows = v->n > 0 ? xcalloc(v->n, sizeof(*v->rows)) : NULL;
    size_t pool_cap = v->n * 37 + 64, pool_len = 0;
    v->pool = xmalloc(pool_cap);
    size_t cap_sessions = 0;
    const char *last = NULL;
    uint32_t last_ix = 0;
    size_t i = 0;
    for (const struct reservation *x = reservations_first(r); x != NULL && i < v->n;
         x = reservations_next(r, x), i++) {
        struct status_resv_row *row = &v->rows[i];
        size_t idlen = strlen(x->id) + 1;
        if (pool_len + idlen > pool_cap) {
            while (pool_len + idlen > pool_cap)
                pool_cap *= 2;
            v->pool = xreallocarray(v->pool, pool_cap, 1);
        }
        memcpy(v->pool + pool_len, x->id, idlen);
        row->id = pool_len;
        pool_len += idlen;
        row->kib = x->kib;
        row->domid = x->domid;
        /* Sessions are interned by the reservations: compare pointers first. */
        if (x->session != last) {
            size_t k = 0;
            while (k < v->n_sessions && strcmp(v->sessions[k], x->session) != 0)
                k++;
            if (k == v->n_sessions) {
                if (v->n_sessions == cap_sessions) {
                    cap_sessions = cap_sessions ? 2 * cap_sessions : 4;
                    v->sessions = xreallocarray(v->sessions, cap_sessions, sizeof(char *));
                }
                v->sessions[v->n_sessions++] = xstrdup(x->session);
            }
            last = x->session;
            last_ix = (uint32_t)k;
        }
        row->session = last_ix;
    }
    v->n = i;
    return v;
}

void status_resvs_unref(struct status_resvs *v)
{
    if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    for (size_t i = 0; i < v->n_sessions; i++)
        free(v->sessions[i]);
    free(v->sessions);
    free(v->rows);
    free(v->pool);
    free(v);
}

/* ---- pictures ------------------------------------------------------------------------- */

static struct status_picture *picture_alloc(void)
{
    struct status_picture *p = xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->json, NULL);
    for (unsigned k = 0; k < STATUS_MEMO_SLOTS; k++)
        atomic_init(&p->memo[k], NULL);
    return p;
}

struct status_picture *status_picture_new(const struct status_input *in)
{
    struct status_picture *p = picture_alloc();
    p->in = *in;
    size_t n_ops = in->n_ops < STATUS_MAX_OPS ? in->n_ops : STATUS_MAX_OPS;
    size_t n_totals = in->n_totals < STATUS_MAX_TOTALS ? in->n_totals : STATUS_MAX_TOTALS;
    if (n_ops > 0)
        memcpy(p->ops, in->ops, n_ops * sizeof(*p->ops));
    if (n_totals > 0)
        memcpy(p->totals, in->totals, n_totals * sizeof(*p->totals));
    for (size_t i = 0; i < n_ops; i++) {
        p->ops[i].dbg = p->ops[i].dbg != NULL ? xstrdup(p->ops[i].dbg) : NULL;
        p->ops[i].session = p->ops[i].session != NULL ? xstrdup(p->ops[i].session) : NULL;
        p->ops[i].breakdown = p->ops[i].breakdown != NULL ? xstrdup(p->ops[i].breakdown) : NULL;
    }
    size_t n_waits = in->n_waits < STATUS_MAX_WAITS ? in->n_waits : STATUS_MAX_WAITS;
    size_t n_bounds = in->n_bounds < STATUS_MAX_BOUNDS ? in->n_bounds : STATUS_MAX_BOUNDS;
    if (n_waits > 0)
        memcpy(p->waits, in->waits, n_waits * sizeof(*p->waits));
    if (n_bounds > 0)
        memcpy(p->bounds_s, in->bounds_s, n_bounds * sizeof(*p->bounds_s));
    p->in.ops = p->ops;
    p->in.n_ops = n_ops;
    p->in.totals = p->totals;
    p->in.n_totals = n_totals;
    p->in.waits = p->waits;
    p->in.n_waits = n_waits;
    p->in.bounds_s = p->bounds_s;
    p->in.n_bounds = n_bounds;
    if (in->running != NULL) {
        p->running = *in->running;
        p->running.dbg = in->running->dbg != NULL ? xstrdup(in->running->dbg) : NULL;
        p->running.session =
            in->running->session != NULL ? xstrdup(in->running->session) : NULL;
        p->in.running = &p->running;
    }
    if (in->domains != NULL)
        atomic_fetch_add(&in->domains->refs, 1);
    if (in->resvs != NULL)
        atomic_fetch_add(&in->resvs->refs, 1);
    return p;
}

struct status_picture *status_picture_from_json(const char *json, size_t len)
{
    struct status_picture *p = picture_alloc();
    char *copy = xmalloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = '\0';
    p->json_len = len;
    atomic_store(&p->json, copy);
    return p;
}

struct status_picture *status_picture_ref(struct status_picture *p)
{
    atomic_fetch_add(&p->refs, 1);
    return p;
}

void status_picture_unref(struct status_picture *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    status_domains_unref(p->in.domains);
    status_resvs_unref(p->in.resvs);
    for (size_t i = 0; i < p->in.n_ops; i++) {
        free((char *)p->ops[i].dbg);
        free((char *)p->ops[i].session);
        free((char *)p->ops[i].breakdown);
    }
    if (p->in.running != NULL) {
        free((char *)p->running.dbg);
        free((char *)p->running.session);
    }
    free(atomic_load(&p->json));
    for (unsigned k = 0; k < STATUS_MEMO_SLOTS; k++)
        free(atomic_load(&p->memo[k]));
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- the JSON --------------------------------------------------------------------------- */

struct jbuf {
    char *p;
    size_t len, cap;
};

static void jb_reserve(struct jbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = xreallocarray(b->p, cap, 1);
    b->cap = cap;
}

static void jb_raw(struct jbuf *b, const char *s)
{
    size_t n = strlen(s);
    jb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_int(struct jbuf *b, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp);
    char *s = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--s = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--s = '-';
    size_t n = (size_t)(e - s);
    jb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* A string, escaped as JSON (control characters as \u00XX). */
static void jb_str(struct jbuf *b, const char *s)
{
    jb_reserve(b, 2 + 6 * strlen(s));
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        } else if (*c < 0x20) {
            o += sprintf(o, "\\u%04x", *c);
        } else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->p);
}

/* ,"key": (the comma unless first) */
static void jb_key(struct jbuf *b, const char *key, bool first)
{
    if (!first)
        jb_raw(b, ",");
    jb_str(b, key);
    jb_raw(b, ":");
}

static void jb_kint(struct jbuf *b, const char *key, int64_t v, bool first)
{
    jb_key(b, key, first);
    jb_int(b, v);
}

static void jb_kbool(struct jbuf *b, const char *key, bool v)
{
    jb_key(b, key, false);
    jb_raw(b, v ? "true" : "false");
}

static void jb_kstr(struct jbuf *b, const char *key, const char *v, bool first)
{
    jb_key(b, key, first);
    jb_str(b, v);
}

/* As jansson writes a real: %.17g, with ".0" when that looks like an integer. */
static void jb_real(struct jbuf *b, double v)
{
    char tmp[40];
    snprintf(tmp, sizeof(tmp), "%.17g", v);
    jb_raw(b, tmp);
    if (strpbrk(tmp, ".eEin") == NULL)
        jb_raw(b, ".0");
}

void status_iso_utc(int64_t unix_ms, char buf[64])
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}

static void jb_kiso(struct jbuf *b, const char *key, int64_t unix_ms)
{
    char buf[64];
    status_iso_utc(unix_ms, buf);
    jb_kstr(b, key, buf, false);
}

static void jb_buckets(struct jbuf *b, const uint64_t *buckets, size_t n)
{
    jb_key(b, "buckets", false);
    jb_raw(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            jb_raw(b, ",");
        jb_int(b, (int64_t)buckets[i]);
    }
    jb_raw(b, "]");
}

/* A domain left out of the snapshot: the same fields, its sizes all what Xen says it
 * holds (it is left as it is), and "excluded" saying why. */
static void write_excluded(struct jbuf *b, const struct domcache_excluded *x)
{
    jb_kint(b, "domid", x->domid, true);
    jb_kstr(b, "type", domain_type_name(x->type), false);
    jb_kbool(b, "can_balloon", false);
    jb_kbool(b, "booting", false);
    jb_kbool(b, "paused", false);
    jb_kint(b, "dynamic_min_kib", x->actual_kib, false);
    jb_kint(b, "dynamic_max_kib", x->actual_kib, false);
    jb_kint(b, "target_kib", x->actual_kib, false);
    jb_kint(b, "actual_kib", x->actual_kib, false);
    jb_kint(b, "maxmem_kib", x->maxmem_kib, false);
    jb_kbool(b, "stuck", false);
    jb_kbool(b, "uncooperative", false);
    char reason[sizeof(x->reason) + 1];
    memcpy(reason, x->reason, sizeof(x->reason));
    reason[sizeof(x->reason)] = '\0';
    jb_kstr(b, "excluded", reason, false);
}

static void write_domains(struct jbuf *b, const struct status_domains *d)
{
    jb_raw(b, "[");
    size_t k = 0; /* the next excluded domain, merged in domid order */
    bool first = true;
    for (size_t i = 0; d != NULL && i < d->n; i++) {
        const struct status_domain_row *r = &d->rows[i];
        for (; k < d->n_excluded && d->excluded[k].domid < r->pd.domid; k++) {
            jb_raw(b, first ? "{" : ",{");
            first = false;
            write_excluded(b, &d->excluded[k]);
            jb_raw(b, "}");
        }
        jb_raw(b, first ? "{" : ",{");
        first = false;
        jb_kint(b, "domid", r->pd.domid, true);
        jb_kstr(b, "type", domain_type_name(r->type), false);
        jb_kbool(b, "can_balloon", r->pd.can_balloon);
        jb_kbool(b, "booting", r->booting);
        jb_kbool(b, "paused", r->pd.paused);
        jb_kint(b, "dynamic_min_kib", r->pd.dynamic_min_kib, false);
        jb_kint(b, "dynamic_max_kib", r->pd.dynamic_max_kib, false);
        jb_kint(b, "target_kib", r->pd.target_kib, false);
        jb_kint(b, "actual_kib", r->pd.actual_kib, false);
        jb_kint(b, "maxmem_kib", r->pd.maxmem_kib, false);
        jb_kbool(b, "stuck", r->stuck);
        jb_kbool(b, "uncooperative", r->uncooperative);
        if (r->name != NO_TEXT)
            jb_kstr(b, "name", d->pool + r->name, false);
        if (r->uuid != NO_TEXT)
            jb_kstr(b, "uuid", d->pool + r->uuid, false);
        if (r->stuck_since_wall_ms >= 0)
            jb_kiso(b, "stuck_since", r->stuck_since_wall_ms);
        jb_raw(b, "}");
    }
    for (; d != NULL && k < d->n_excluded; k++) {
        jb_raw(b, first ? "{" : ",{");
        first = false;
        write_excluded(b, &d->excluded[k]);
        jb_raw(b, "}");
    }
    jb_raw(b, "]");
}

static void write_resvs(struct jbuf *b, const struct status_resvs *v)
{
    jb_raw(b, "[");
    for (size_t i = 0; v != NULL && i < v->n; i++) {
        const struct status_resv_row *r = &v->rows[i];
        jb_raw(b, i == 0 ? "{" : ",{");
        jb_kstr(b, "id", v->pool + r->id, true);
        jb_kstr(b, "session", v->sessions[r->session], false);
        jb_kint(b, "kib", r->kib, false);
        if (r->domid >= 0)
            jb_kint(b, "domid", r->domid, false);
        jb_raw(b, "}");
    }
    jb_raw(b, "]");
}

static char *build_json(const struct status_input *in, size_t *len)
{
    struct jbuf b = {0};
    size_t rows =
        (in->domains != NULL ? in->domains->n : 0) + (in->resvs != NULL ? in->resvs->n : 0);
    jb_reserve(&b, 4096 + 256 * rows);
    jb_raw(&b, "{\"host\":{");
    bool h = in->have_host;
    jb_kint(&b, "free_kib", h ? in->free_kib : 0, true);
    jb_kint(&b, "reserved_kib", in->reserved_kib, false);
    jb_kint(&b, "total_kib", h ? in->total_kib : 0, false);
    jb_kint(&b, "xen_free_kib", h ? in->xen_free_kib : 0, false);
    jb_kint(&b, "scrub_kib", h ? in->scrub_kib : 0, false);
    jb_kint(&b, "reservations_kib", h ? in->reservations_kib : 0, false);
    jb_kint(&b, "booting_unused_kib", h ? in->booting_unused_kib : 0, false);
    jb_kint(&b, "claims_kib", h ? in->claims_kib : 0, false);
    jb_raw(&b, "},\"domains\":");
    write_domains(&b, in->domains);
    jb_raw(&b, ",\"reservations\":");
    write_resvs(&b, in->resvs);
    jb_raw(&b, ",\"operations\":[");
    for (size_t i = 0; i < in->n_ops; i++) {
        const struct status_op *o = &in->ops[i];
        jb_raw(&b, i == 0 ? "{" : ",{");
        jb_kstr(&b, "kind", o->kind, true);
        jb_kint(&b, "kib", o->kib, false);
        jb_kstr(&b, "outcome", o->outcome, false);
        jb_kiso(&b, "started", o->started_wall_ms);
        jb_kint(&b, "waited_ms", o->waited_ms, false);
        jb_kint(&b, "duration_ms", o->duration_ms, false);
        jb_kint(&b, "rounds", o->rounds, false);
        jb_kint(&b, "at_ms", o->at_ms, false);
        jb_kint(&b, "wait_ms", o->wait_ms, false);
        jb_kint(&b, "reservations", o->reservations, false);
        if (o->dbg != NULL)
            jb_kstr(&b, "dbg", o->dbg, false);
        if (o->session != NULL)
            jb_kstr(&b, "session", o->session, false);
        if (o->breakdown != NULL) {
            jb_key(&b, "breakdown", false);
            jb_raw(&b, o->breakdown); /* JSON already (json_dumps) */
        }
        jb_raw(&b, "}");
    }
    jb_raw(&b, "],\"operation_totals\":[");
    for (size_t i = 0; i < in->n_totals; i++) {
        const struct status_total *t = &in->totals[i];
        jb_raw(&b, i == 0 ? "{" : ",{");
        jb_kstr(&b, "kind", t->kind, true);
        jb_kstr(&b, "outcome", t->outcome, false);
        jb_kint(&b, "count", (int64_t)t->count, false);
        jb_kint(&b, "duration_ms_sum", t->duration_ms_sum, false);
        jb_buckets(&b, t->buckets, in->n_bounds);
        jb_raw(&b, "}");
    }
    jb_raw(&b, "],\"cache\":{");
    jb_kint(&b, "xenstore_reads", (int64_t)in->cache.xenstore_reads, true);
    jb_kint(&b, "xenstore_writes", (int64_t)in->cache.xenstore_writes, false);
    jb_kint(&b, "watch_events", (int64_t)in->cache.watch_events, false);
    jb_kint(&b, "hypercalls", (int64_t)in->cache.hypercalls, false);
    jb_kint(&b, "snapshots", (int64_t)in->cache.snapshots, false);
    jb_kint(&b, "rebuilds", (int64_t)in->cache.rebuilds, false);
    jb_kbool(&b, "watching", in->watching);
    jb_raw(&b, "},\"daemon\":{");
    jb_kstr(&b, "version", in->version != NULL ? in->version : "", true);
    jb_kstr(&b, "backend", in->backend != NULL ? in->backend : "", false);
    jb_kstr(&b, "clock", in->clock != NULL ? in->clock : "", false);
    jb_kbool(&b, "busy", in->busy);
    jb_kint(&b, "now_ms", in->now_ms, false);
    jb_key(&b, "uptime_s", false);
    jb_real(&b, in->uptime_s);
    jb_raw(&b, "},\"client_waits\":[");
    for (size_t i = 0; i < in->n_waits; i++) {
        const struct status_wait *w = &in->waits[i];
        jb_raw(&b, i == 0 ? "{" : ",{");
        jb_kstr(&b, "method", w->method, true);
        jb_kint(&b, "count", (int64_t)w->count, false);
        jb_kint(&b, "wait_ms_sum", w->wait_ms_sum, false);
        jb_buckets(&b, w->buckets, in->n_bounds);
        jb_raw(&b, "}");
    }
    jb_raw(&b, "],\"histogram_bounds_s\":[");
    for (size_t i = 0; i < in->n_bounds; i++) {
        if (i > 0)
            jb_raw(&b, ",");
        jb_real(&b, in->bounds_s[i]);
    }
    jb_raw(&b, "]");
    const struct status_running *r = in->running;
    if (r != NULL) {
        jb_raw(&b, ",\"running\":{");
        jb_kstr(&b, "kind", r->kind, true);
        jb_kint(&b, "kib", r->kib, false);
        jb_kiso(&b, "started", r->started_wall_ms);
        jb_kint(&b, "started_ms", r->started_ms, false);
        jb_kint(&b, "waiting", r->waiting, false);
        if (r->has_max)
            jb_kint(&b, "max_kib", r->max_kib, false);
        if (r->dbg != NULL)
            jb_kstr(&b, "dbg", r->dbg, false);
        if (r->session != NULL)
            jb_kstr(&b, "session", r->session, false);
        if (r->has_progress) {
            jb_raw(&b, ",\"progress\":{");
            jb_kint(&b, "freed_kib", r->freed_kib, true);
            jb_kint(&b, "needed_kib", r->needed_kib, false);
            jb_raw(&b, "}");
        }
        jb_raw(&b, "}");
    }
    jb_raw(&b, "}");
    *len = b.len;
    return b.p;
}

const char *status_picture_json(struct status_picture *p, size_t *len)
{
    char *j = atomic_load_explicit(&p->json, memory_order_acquire);
    if (j == NULL) {
        pthread_mutex_lock(&p->mu);
        j = atomic_load_explicit(&p->json, memory_order_relaxed);
        if (j == NULL) {
            j = build_json(&p->in, &p->json_len);
            atomic_store_explicit(&p->json, j, memory_order_release);
        }
        pthread_mutex_unlock(&p->mu);
    }
    *len = p->json_len;
    return j;
}

const char *status_picture_memo(struct status_picture *p, unsigned slot, status_build_fn build,
                                size_t *len)
{
    if (slot >= STATUS_MEMO_SLOTS)
        return NULL;
    char *m = atomic_load_explicit(&p->memo[slot], memory_order_acquire);
    if (m == NULL) {
        size_t jlen;
        const char *json = status_picture_json(p, &jlen);
        pthread_mutex_lock(&p->mu);
        m = atomic_load_explicit(&p->memo[slot], memory_order_relaxed);
        if (m == NULL) {
            m = build(json, jlen);
            if (m != NULL) {
                p->memo_len[slot] = strlen(m);
                atomic_store_explicit(&p->memo[slot], m, memory_order_release);
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (m == NULL)
            return NULL;
    }
    *len = p->memo_len[slot];
    return m;
}
