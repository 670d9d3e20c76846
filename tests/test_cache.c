/* SPDX-License-Identifier: LGPL-2.1-only */
/* The per-domain cache and snapshot builder over the simulated host (SPEC 2, 5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/harness.h"

#include "backend/sim.h"
#include "cache/domcache.h"
#include "common/log.h"
#include "common/xalloc.h"

#define MIB 1024
#define GIB (1024 * 1024)
#define WRAP_MAX 64 /* domids the wrapper can override */

/*
 * The cache sees the sim backend through a thin wrapper that counts every call and can
 * pretend things the sim cannot show: a domain dying, shadow memory, a watch the
 * backend refuses, a domain destroyed just before one of its keys is read.
 */
struct wrap {
    struct backend base; /* first: the cache's struct backend * points here */
    struct backend_ops ops;
    struct backend *inner;
    bool dying[WRAP_MAX];
    int64_t shadow_mib[WRAP_MAX]; /* -1: ask the sim */
    long watch_budget;            /* xs_watch calls left before -ENOSPC; -1: no limit */
    int64_t destroy_on_read;      /* domid to destroy at its next key read; -1: none */
    struct {
        unsigned long xs_read, xs_write, xs_rm, xs_directory, xs_watch, xs_unwatch;
        unsigned long list, physinfo, set_maxmem, shadow, events;
    } n;
};

static struct wrap *W(struct backend *b)
{
    return (struct wrap *)b;
}

static int w_list(struct backend *b, struct backend_domain **out, size_t *n)
{
    struct wrap *w = W(b);
    w->n.list++;
    int rc = w->inner->ops->list_domains(w->inner, out, n);
    if (rc == 0)
        for (size_t i = 0; i < *n; i++)
            if ((*out)[i].domid < WRAP_MAX && w->dying[(*out)[i].domid])
                (*out)[i].dying = true;
    return rc;
}

static int w_physinfo(struct backend *b, struct backend_physinfo *out)
{
    W(b)->n.physinfo++;
    return W(b)->inner->ops->physinfo(W(b)->inner, out);
}

static int w_set_maxmem(struct backend *b, uint32_t domid, uint64_t kib)
{
    W(b)->n.set_maxmem++;
    return W(b)->inner->ops->set_maxmem(W(b)->inner, domid, kib);
}

static int w_shadow(struct backend *b, uint32_t domid, uint32_t *mib)
{
    struct wrap *w = W(b);
    w->n.shadow++;
    int rc = w->inner->ops->shadow_allocation_mib(w->inner, domid, mib);
    if (rc == 0 && domid < WRAP_MAX && w->shadow_mib[domid] >= 0)
        *mib = (uint32_t)w->shadow_mib[domid];
    return rc;
}

static void w_maybe_destroy(struct wrap *w, const char *path)
{
    if (w->destroy_on_read < 0)
        return;
    char dir[64];
    int len = snprintf(dir, sizeof(dir), "/local/domain/%lld/", (long long)w->destroy_on_read);
    if (strncmp(path, dir, (size_t)len) == 0) {
        sim_destroy_domain(w->inner->sim, (uint32_t)w->destroy_on_read);
        w->destroy_on_read = -1;
    }
}

static int w_xs_read(struct backend *b, const char *path, char **value)
{
    struct wrap *w = W(b);
    w->n.xs_read++;
    w_maybe_destroy(w, path);
    return w->inner->ops->xs_read(w->inner, path, value);
}

static int w_xs_write(struct backend *b, const char *dir, const char *path, const char *v)
{
    W(b)->n.xs_write++;
    return W(b)->inner->ops->xs_write(W(b)->inner, dir, path, v);
}

static int w_xs_rm(struct backend *b, const char *path)
{
    W(b)->n.xs_rm++;
    return W(b)->inner->ops->xs_rm(W(b)->inner, path);
}

static int w_xs_directory(struct backend *b, const char *path, char ***e, size_t *n)
{
    W(b)->n.xs_directory++;
    return W(b)->inner->ops->xs_directory(W(b)->inner, path, e, n);
}

static int w_xs_watch(struct backend *b, const char *path, const char *token)
{
    struct wrap *w = W(b);
    w->n.xs_watch++;
    if (w->watch_budget == 0)
        return -ENOSPC;
    if (w->watch_budget > 0)
        w->watch_budget--;
    return w->inner->ops->xs_watch(w->inner, path, token);
}

static int w_xs_unwatch(struct backend *b, const char *path, const char *token)
{
    W(b)->n.xs_unwatch++;
    return W(b)->inner->ops->xs_unwatch(W(b)->inner, path, token);
}

static int w_watch_fd(struct backend *b)
{
    return W(b)->inner->ops->watch_fd(W(b)->inner);
}

static int w_read_watch(struct backend *b, struct backend_watch_event *ev)
{
    int rc = W(b)->inner->ops->read_watch(W(b)->inner, ev);
    if (rc == 1)
        W(b)->n.events++;
    return rc;
}

static int64_t w_now_ms(struct backend *b)
{
    return W(b)->inner->ops->now_ms(W(b)->inner);
}

static void w_sleep_ms(struct backend *b, int64_t ms)
{
    W(b)->inner->ops->sleep_ms(W(b)->inner, ms);
}

static bool w_virtual(struct backend *b)
{
    return W(b)->inner->ops->clock_is_virtual(W(b)->inner);
}

static void w_close(struct backend *b)
{
    backend_close(W(b)->inner);
    free(b);
}

static struct wrap *wrap_new(struct sim *s)
{
    struct wrap *w = xcalloc(1, sizeof(*w));
    w->inner = backend_sim_open(s);
    w->ops = (struct backend_ops){
        .name = "wrapped-sim",
        .list_domains = w_list,
        .physinfo = w_physinfo,
        .set_maxmem = w_set_maxmem,
        .shadow_allocation_mib = w_shadow,
        .xs_read = w_xs_read,
        .xs_write = w_xs_write,
        .xs_rm = w_xs_rm,
        .xs_directory = w_xs_directory,
        .xs_watch = w_xs_watch,
        .xs_unwatch = w_xs_unwatch,
        .watch_fd = w_watch_fd,
        .read_watch = w_read_watch,
        .now_ms = w_now_ms,
        .sleep_ms = w_sleep_ms,
        .clock_is_virtual = w_virtual,
        .close = w_close,
    };
    w->base.ops = &w->ops;
    w->base.priv = w;
    w->base.sim = s;
    for (int i = 0; i < WRAP_MAX; i++)
        w->shadow_mib[i] = -1;
    w->watch_budget = -1;
    w->destroy_on_read = -1;
    return w;
}

/* ---- fixture ---- */

struct fx {
    struct sim *sim; /* owned by the backend */
    struct wrap *w;
    struct domcache *dc;
    struct domcache_snapshot snap;
};


static struct fx *fx_open(struct sim *s, bool watches, bool manage_dom0)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    f->sim = s;
    f->w = wrap_new(s);
    struct domcache_config cfg = {.use_watches = watches, .manage_domain_zero = manage_dom0};
    f->dc = domcache_new(&f->w->base, &cfg);
    domcache_snapshot_init(&f->snap);
    return f;
}

static void fx_close(struct fx *f)
{
    domcache_free(f->dc);
    domcache_snapshot_free(&f->snap);
    backend_close(&f->w->base);
    free(f);
}

static void snap(struct fx *f)
{
    assert_int_equal(domcache_snapshot(f->dc, NULL, 0, &f->snap), 0);
}

static void counters(struct fx *f, struct domcache_counters *c)
{
    domcache_counters(f->dc, c);
}

static const struct policy_domain *find(const struct domcache_snapshot *s, int32_t domid,
                                        const struct domcache_domain_extra **x)
{
    for (size_t i = 0; i < s->host.n_domains; i++) {
        if (s->domains[i].domid == domid) {
            if (x != NULL)
                *x = &s->extra[i];
            return &s->domains[i];
        }
    }
    return NULL;
}

static bool xs_has(struct sim *s, const char *path)
{
    return sim_xs_exists(s, path);
}

static int64_t xs_int(struct sim *s, uint32_t domid, const char *key)
{
    char path[128];
    snprintf(path, sizeof(path), "/local/domain/%u/%s", domid, key);
    char *v = NULL;
    if (sim_xs_read(s, path, &v) < 0)
        return -1;
    int64_t n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

static void xs_set(struct sim *s, uint32_t domid, const char *key, const char *value)
{
    char path[128];
    snprintf(path, sizeof(path), "/local/domain/%u/%s", domid, key);
    assert_int_equal(sim_xs_write(s, path, value), 0);
}

static void xs_del(struct sim *s, uint32_t domid, const char *key)
{
    char path[128];
    snprintf(path, sizeof(path), "/local/domain/%u/%s", domid, key);
    assert_int_equal(sim_xs_rm(s, path), 0);
}

/* Every booted domain of the snapshot agrees with the sim's truth (to Xen's page). */
static void assert_truth(struct sim *s, const struct domcache_snapshot *snp)
{
    json_t *st = sim_state_json(s);
    json_t *doms = json_object_get(st, "domains");
    size_t booted = 0;
    for (size_t i = 0; i < snp->host.n_domains; i++) {
        const struct policy_domain *p = &snp->domains[i];
        const struct domcache_domain_extra *x = &snp->extra[i];
        json_t *t = NULL;
        size_t j;
        json_t *d;
        json_array_foreach(doms, j, d)
        {
            if (json_integer_value(json_object_get(d, "domid")) == p->domid)
                t = d;
        }
        if (t == NULL)
            fail_msg("domid %d is in the snapshot but not in the world", p->domid);
        if (x->booting)
            continue;
        booted++;
        int64_t actual = json_integer_value(json_object_get(t, "actual_kib"));
        int64_t target = json_integer_value(json_object_get(t, "target_kib"));
        int64_t maxmem = json_integer_value(json_object_get(t, "maxmem_kib"));
        if (p->actual_kib > actual || actual - p->actual_kib >= 4)
            fail_msg("domid %d: actual %lld, truth %lld", p->domid, (long long)p->actual_kib,
                     (long long)actual);
        assert_int_equal(p->target_kib, target);
        if (p->domid != 0)
            assert_int_equal(p->maxmem_kib, maxmem);
        assert_int_equal(x->uncooperative, json_is_true(json_object_get(t, "uncooperative")));
        if (p->can_balloon) {
            assert_true(json_is_true(json_object_get(t, "can_balloon")));
            json_t *mn = json_object_get(t, "dynamic_min_kib");
            json_t *mx = json_object_get(t, "dynamic_max_kib");
            if (json_is_integer(mn) && json_is_integer(mx) &&
                json_integer_value(mn) <= json_integer_value(mx)) {
                assert_int_equal(p->dynamic_min_kib, json_integer_value(mn));
                assert_int_equal(p->dynamic_max_kib, json_integer_value(mx));
            } else {
                assert_int_equal(p->dynamic_min_kib, p->target_kib);
                assert_int_equal(p->dynamic_max_kib, p->target_kib);
            }
        }
    }
    /* Every domain of the world is there (none booting in these worlds is missing). */
    size_t n_world = json_array_size(doms);
    assert_true(snp->host.n_domains <= n_world);
    (void)booted;
    int64_t free_kib = json_integer_value(json_object_get(st, "free_kib"));
    int64_t want = free_kib - snp->booting_unused_kib - snp->reservations_kib;
    if (snp->host.free_kib > want || want - snp->host.free_kib >= 4)
        fail_msg("free %lld, truth %lld", (long long)snp->host.free_kib, (long long)want);
    json_decref(st);
}

static void assert_same_snapshot(const struct domcache_snapshot *a,
                                 const struct domcache_snapshot *b)
{
    assert_int_equal(a->host.n_domains, b->host.n_domains);
    assert_int_equal(a->host.free_kib, b->host.free_kib);
    assert_int_equal(a->booting_unused_kib, b->booting_unused_kib);
    assert_int_equal(a->reservations_kib, b->reservations_kib);
    assert_int_equal(a->xen_free_kib, b->xen_free_kib);
    assert_int_equal(a->total_kib, b->total_kib);
    for (size_t i = 0; i < a->host.n_domains; i++) {
        assert_memory_equal(&a->domains[i], &b->domains[i], sizeof(a->domains[i]));
        assert_memory_equal(&a->extra[i], &b->extra[i], sizeof(a->extra[i]));
    }
}

/* ---- reads ---- */

/* Once read, the keys only we write are never read again, with or without watches. */
static void test_cached_keys_not_reread(void **state)
{
    (void)state;
    for (int watches = 0; watches <= 1; watches++) {
        struct fx *f = fx_open(harness_world(NULL, 3), watches, false);
        snap(f);
        assert_int_equal(f->snap.host.n_domains, 3);
        assert_truth(f->sim, &f->snap);
        f->w->n.xs_read = 0;
        snap(f);
        snap(f);
        /* Without watches only dynamic-min and dynamic-max are read (2 x 3 x 2). */
        assert_int_equal(f->w->n.xs_read, watches ? 0 : 12);
        char *v = NULL;
        f->w->n.xs_read = 0;
        assert_int_equal(domcache_read(f->dc, 2, "memory/target", &v), 0);
        assert_string_equal(v, "262144");
        free(v);
        assert_int_equal(domcache_read(f->dc, 2, "memory/uncooperative", &v), -ENOENT);
        assert_int_equal(f->w->n.xs_read, 0);
        fx_close(f);
    }
}

/* Keys the cache does not keep are read through every time. */
static void test_other_keys_read_through(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 2), true, false);
    snap(f);
    xs_set(f->sim, 1, "memory/reservation-id", "abc");
    f->w->n.xs_read = 0;
    char *v = NULL;
    assert_int_equal(domcache_read(f->dc, 1, "memory/reservation-id", &v), 0);
    assert_string_equal(v, "abc");
    free(v);
    xs_set(f->sim, 1, "memory/reservation-id", "def");
    assert_int_equal(domcache_read(f->dc, 1, "memory/reservation-id", &v), 0);
    assert_string_equal(v, "def");
    free(v);
    assert_int_equal(f->w->n.xs_read, 2);
    assert_int_equal(domcache_read(f->dc, 9, "memory/target", &v), -ENOENT);
    fx_close(f);
}

/* ---- writes ---- */

static void test_write_skipped_when_equal(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 2), true, false);
    snap(f);
    assert_int_equal(f->w->n.xs_write, 2); /* the memory-offsets calibrated */
    f->w->n.xs_write = 0;
    struct domcache_counters c0, c1;
    counters(f, &c0);
    struct policy_op same = {.kind = POLICY_OP_SET_TARGET, .domid = 1, .value_kib = 256 * MIB};
    assert_int_equal(domcache_apply(f->dc, &same), 0);
    assert_int_equal(f->w->n.xs_write, 0);
    struct policy_op down = {.kind = POLICY_OP_SET_TARGET, .domid = 1, .value_kib = 200 * MIB};
    assert_int_equal(domcache_apply(f->dc, &down), 0);
    assert_int_equal(domcache_apply(f->dc, &down), 0);
    assert_int_equal(f->w->n.xs_write, 1);
    assert_int_equal(xs_int(f->sim, 1, "memory/target"), 200 * MIB);

    assert_int_equal(domcache_set_uncooperative(f->dc, 2, true), 0);
    assert_int_equal(domcache_set_uncooperative(f->dc, 2, true), 0);
    assert_int_equal(f->w->n.xs_write, 2);
    assert_true(xs_has(f->sim, "/local/domain/2/memory/uncooperative"));
    assert_int_equal(domcache_set_uncooperative(f->dc, 2, false), 0);
    assert_int_equal(domcache_set_uncooperative(f->dc, 2, false), 0);
    assert_int_equal(f->w->n.xs_rm, 1);
    assert_false(xs_has(f->sim, "/local/domain/2/memory/uncooperative"));

    assert_int_equal(domcache_write(f->dc, 1, "memory/reservation-id", "r1"), 0);
    assert_int_equal(f->w->n.xs_write, 3);
    counters(f, &c1);
    assert_int_equal(c1.xenstore_writes - c0.xenstore_writes, 4); /* 3 writes + 1 rm */
    /* The snapshot sees what was written without reading it back. */
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 0);
    assert_int_equal(find(&f->snap, 1, NULL)->target_kib, 200 * MIB);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* A write to a domain that has gone returns 0, creates nothing and leaves no entry. */
static void test_write_to_vanished_domain(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 3), true, false);
    snap(f);
    assert_int_equal(sim_destroy_domain(f->sim, 2), 0);
    struct policy_op op = {.kind = POLICY_OP_SET_TARGET, .domid = 2, .value_kib = 100 * MIB};
    assert_int_equal(domcache_apply(f->dc, &op), 0);
    assert_false(xs_has(f->sim, "/local/domain/2"));
    struct policy_op mm = {.kind = POLICY_OP_SET_MAXMEM, .domid = 2, .value_kib = 100 * MIB};
    assert_int_equal(domcache_apply(f->dc, &mm), 0);
    assert_int_equal(domcache_set_uncooperative(f->dc, 2, true), 0);
    assert_false(xs_has(f->sim, "/local/domain/2"));
    assert_int_equal(domcache_write(f->dc, 2, "memory/initial-reservation", "5"), -ENOENT);
    assert_false(xs_has(f->sim, "/local/domain/2"));
    /* No entry is left: a read goes to xenstore and finds nothing. */
    f->w->n.xs_read = 0;
    char *v = NULL;
    assert_int_equal(domcache_read(f->dc, 2, "memory/target", &v), -ENOENT);
    assert_int_equal(f->w->n.xs_read, 1);
    snap(f);
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 2);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* maxmem: guest units + type slack + memory-offset; skipped when equal. */
static void test_set_maxmem_units_never_skipped(void **state)
{
    (void)state;
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(3)}; /* hvm, pv */
    d[0].memory_offset_kib = 2048;
    struct fx *f = fx_open(harness_world(d, 2), true, false);
    snap(f);
    const struct domcache_domain_extra *x = NULL;
    assert_non_null(find(&f->snap, 1, &x));
    assert_int_equal(x->memory_offset_kib, 2048);
    assert_int_equal(domcache_set_maxmem(f->dc, 1, 300 * MIB), 0);
    assert_int_equal(domcache_set_maxmem(f->dc, 3, 300 * MIB), 0);
    assert_int_equal(f->w->n.set_maxmem, 2);
    int64_t a, t, m;
    assert_int_equal(sim_domain_memory(f->sim, 1, &a, &t, &m), 0);
    assert_int_equal(m, 300 * MIB);
    assert_int_equal(sim_domain_memory(f->sim, 3, &a, &t, &m), 0);
    assert_int_equal(m, 300 * MIB);
    struct backend_domain *list;
    size_t n;
    assert_int_equal(sim_list_domains(f->sim, &list, &n), 0);
    assert_int_equal(list[0].max_pages * 4, 300 * MIB + 1024 + 2048);
    assert_int_equal(list[1].max_pages * 4, 300 * MIB);
    free(list);
    /* Never skipped on what the cache believes Xen holds: the toolstack sets maxmem too,
     * and a skipped call is how a domain was left with max_pages = 0 (XCP-ng). */
    assert_int_equal(domcache_set_maxmem(f->dc, 1, 300 * MIB), 0);
    struct policy_op mm = {.kind = POLICY_OP_SET_MAXMEM, .domid = 3, .value_kib = 300 * MIB};
    assert_int_equal(domcache_apply(f->dc, &mm), 0);
    assert_int_equal(f->w->n.set_maxmem, 4);
    /* Xen keeps pages: a value that is not a whole page is still "equal" afterwards. */
    assert_int_equal(domcache_set_maxmem(f->dc, 3, 300 * MIB + 2), 0);
    snap(f);
    assert_int_equal(f->w->n.set_maxmem, 5);
    assert_int_equal(find(&f->snap, 3, NULL)->maxmem_kib, 300 * MIB + 2);
    assert_int_equal(domcache_set_maxmem(f->dc, 3, -1), -EINVAL);
    fx_close(f);
}

/* A domain created since the last snapshot gets its maxmem set all the same. */
static void test_set_maxmem_of_unseen_domain(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 1), true, false);
    snap(f);
    struct sim_domain_spec d = harness_guest(7); /* hvm */
    assert_int_equal(sim_create_domain(f->sim, &d, NULL), 0);
    assert_int_equal(domcache_set_maxmem(f->dc, 7, 400 * MIB), 0);
    int64_t a, t, m;
    assert_int_equal(sim_domain_memory(f->sim, 7, &a, &t, &m), 0);
    assert_int_equal(m, 400 * MIB);
    assert_int_equal(domcache_set_maxmem(f->dc, 8, 400 * MIB), 0); /* no such domain */
    snap(f);
    assert_int_equal(find(&f->snap, 7, NULL)->maxmem_kib, 400 * MIB);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* ---- domains coming and going ---- */

static void test_dead_domain_dropped(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 4), true, false);
    snap(f);
    assert_int_equal(f->snap.host.n_domains, 4);
    unsigned long unwatch0 = f->w->n.xs_unwatch;
    assert_int_equal(sim_destroy_domain(f->sim, 3), 0);
    snap(f);
    assert_int_equal(f->snap.host.n_domains, 3);
    assert_null(find(&f->snap, 3, NULL));
    assert_int_equal(f->w->n.xs_unwatch - unwatch0, 4); /* its four watches */
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

static void test_dying_domain_skipped(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 3), true, false);
    snap(f);
    f->w->dying[2] = true;
    snap(f);
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 2);
    f->w->dying[2] = false;
    snap(f);
    assert_non_null(find(&f->snap, 2, NULL));
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* A domid reused by a new domain (new handle) never sees the old one's values: here
 * the old memory-offset would make its actual wrong. */
static void test_recycled_domid_gets_fresh_entry(void **state)
{
    (void)state;
    for (int watches = 0; watches <= 1; watches++) {
        struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(5)};
        d[1].memory_offset_kib = 4096;
        struct fx *f = fx_open(harness_world(d, 2), watches, false);
        snap(f);
        const struct domcache_domain_extra *x = NULL;
        assert_non_null(find(&f->snap, 5, &x));
        assert_int_equal(x->memory_offset_kib, 4096);
        assert_int_equal(xs_int(f->sim, 5, "memory/memory-offset"), 4096);
        assert_int_equal(domcache_set_uncooperative(f->dc, 5, true), 0);

        assert_int_equal(sim_destroy_domain(f->sim, 5), 0);
        struct sim_domain_spec again = harness_guest(5);
        again.target_kib = again.actual_kib = 300 * MIB;
        assert_int_equal(sim_create_domain(f->sim, &again, NULL), 0);
        snap(f);
        const struct policy_domain *p = find(&f->snap, 5, &x);
        assert_non_null(p);
        assert_int_equal(x->memory_offset_kib, 0);
        assert_false(x->uncooperative);
        assert_int_equal(p->target_kib, 300 * MIB);
        assert_int_equal(p->actual_kib, 300 * MIB);
        assert_int_equal(xs_int(f->sim, 5, "memory/memory-offset"), 0);
        assert_truth(f->sim, &f->snap);
        fx_close(f);
    }
}

/* ---- booting and calibration ---- */

/* memory-offset is calibrated and written once, on the first boot signal. */
static void test_calibration_on_first_boot_signal(void **state)
{
    (void)state;
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[0].boot_after_s = 5;
    d[0].memory_offset_kib = 2048;
    d[1].boot_after_s = 5; /* no balloon driver: boots with data/updated only */
    d[1].memory_offset_kib = 1024;
    d[1].balloon.model = SIM_BALLOON_NONE;
    struct fx *f = fx_open(harness_world(d, 2), true, false);
    snap(f);
    const struct domcache_domain_extra *x = NULL;
    const struct policy_domain *p = find(&f->snap, 1, &x);
    assert_non_null(p);
    assert_true(x->booting);
    assert_false(p->can_balloon);
    assert_false(xs_has(f->sim, "/local/domain/1/memory/memory-offset"));
    unsigned long w0 = f->w->n.xs_write;
    sim_advance(f->sim, 6000);
    snap(f);
    p = find(&f->snap, 1, &x);
    assert_false(x->booting);
    assert_true(p->can_balloon);
    assert_int_equal(x->memory_offset_kib, 2048);
    assert_int_equal(xs_int(f->sim, 1, "memory/memory-offset"), 2048);
    p = find(&f->snap, 2, &x);
    assert_false(x->booting);
    assert_false(p->can_balloon);
    assert_int_equal(x->memory_offset_kib, 1024);
    assert_int_equal(xs_int(f->sim, 2, "memory/memory-offset"), 1024);
    assert_int_equal(f->w->n.xs_write - w0, 2);
    assert_truth(f->sim, &f->snap);
    snap(f);
    snap(f);
    assert_int_equal(f->w->n.xs_write - w0, 2);
    fx_close(f);
}

/* An offset recorded by an earlier run is used, not calibrated again. */
static void test_recorded_offset_used(void **state)
{
    (void)state;
    struct sim_domain_spec d = harness_guest(1);
    d.memory_offset_kib = 512;
    struct sim *s = harness_world(&d, 1);
    xs_set(s, 1, "memory/memory-offset", "512");
    struct fx *f = fx_open(s, true, false);
    snap(f);
    assert_int_equal(f->w->n.xs_write, 0);
    const struct domcache_domain_extra *x = NULL;
    assert_non_null(find(&f->snap, 1, &x));
    assert_int_equal(x->memory_offset_kib, 512);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* A booting domain counts as max(initial-reservation, actual); what it has still to
 * allocate, minus its shadow memory, is not free. */
static void test_booting_domain_accounting(void **state)
{
    (void)state;
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[1].initial_reservation_kib = 1 * GIB;
    d[1].target_kib = 1 * GIB;
    d[1].dynamic_min_kib = d[1].dynamic_max_kib = 1 * GIB;
    d[1].maxmem_kib = 1 * GIB;
    d[1].actual_kib = 0;
    d[1].balloon.rate_kib_s = 65536;
    struct fx *f = fx_open(harness_world(d, 2), true, false);
    f->w->shadow_mib[2] = 8;
    sim_advance(f->sim, 1000);
    snap(f);
    const struct domcache_domain_extra *x = NULL;
    const struct policy_domain *p = find(&f->snap, 2, &x);
    assert_non_null(p);
    assert_true(x->booting);
    assert_false(p->can_balloon);
    assert_int_equal(x->initial_reservation_kib, 1 * GIB);
    int64_t actual;
    assert_int_equal(sim_domain_memory(f->sim, 2, &actual, NULL, NULL), 0);
    assert_int_equal(actual, 65536);
    assert_int_equal(p->actual_kib, 1 * GIB);
    assert_int_equal(p->target_kib, 1 * GIB);
    assert_int_equal(p->dynamic_min_kib, 1 * GIB);
    assert_int_equal(p->dynamic_max_kib, 1 * GIB);
    assert_int_equal(f->snap.booting_unused_kib, 1 * GIB - 65536 - 8 * MIB);
    assert_int_equal(f->snap.host.free_kib,
                     sim_host_free_kib(f->sim) - (1 * GIB - 65536 - 8 * MIB));
    assert_truth(f->sim, &f->snap);
    /* Shadow is asked again only when the domain's size changed. */
    unsigned long sh = f->w->n.shadow;
    snap(f);
    assert_int_equal(f->w->n.shadow, sh);
    sim_advance(f->sim, 1000);
    snap(f);
    assert_int_equal(f->w->n.shadow, sh + 1);
    assert_int_equal(f->snap.booting_unused_kib, 1 * GIB - 2 * 65536 - 8 * MIB);
    /* Shadow larger than what is left: nothing negative is added. */
    f->w->shadow_mib[2] = 2048;
    sim_advance(f->sim, 1000);
    snap(f);
    assert_int_equal(f->snap.booting_unused_kib, 0);
    /* Once allocated it boots, and is calibrated against its target. */
    sim_advance(f->sim, 20000);
    snap(f);
    p = find(&f->snap, 2, &x);
    assert_false(x->booting);
    assert_int_equal(f->snap.booting_unused_kib, 0);
    assert_int_equal(p->actual_kib, 1 * GIB);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* A booting domain without initial-reservation counts its actual and is not skipped. */
static void test_booting_without_initial_reservation(void **state)
{
    (void)state;
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[1].boot_after_s = 100;
    struct fx *f = fx_open(harness_world(d, 2), false, false);
    snap(f);
    const struct domcache_domain_extra *x = NULL;
    const struct policy_domain *p = find(&f->snap, 2, &x);
    assert_non_null(p);
    assert_true(x->booting);
    assert_int_equal(x->initial_reservation_kib, 0);
    assert_int_equal(p->actual_kib, 256 * MIB);
    assert_int_equal(f->snap.booting_unused_kib, 0);
    /* Read through without watches: still at most two reads for it per snapshot. */
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 2 /* domain 1: dynamic range */ + 2 /* domain 2 */);
    fx_close(f);
}

/* The domain's own initial-reservation written through the cache is seen at once. */
static void test_initial_reservation_written_through(void **state)
{
    (void)state;
    struct sim_domain_spec d = harness_guest(1);
    d.boot_after_s = 100;
    struct fx *f = fx_open(harness_world(&d, 1), true, false);
    snap(f);
    assert_int_equal(f->snap.booting_unused_kib, 0);
    assert_int_equal(domcache_write(f->dc, 1, "memory/initial-reservation", "524288"), 0);
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 0);
    assert_int_equal(f->snap.booting_unused_kib, 512 * MIB - 256 * MIB);
    assert_int_equal(find(&f->snap, 1, NULL)->actual_kib, 512 * MIB);
    fx_close(f);
}

/* ---- host free memory ---- */

static void test_reservations_subtracted_unless_transferred(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 3), true, false);
    struct domcache_reservation r[4] = {
        {.kib = 1000, .domid = -1}, /* not transferred */
        {.kib = 2000, .domid = 2},  /* held by live domain 2 */
        {.kib = 4000, .domid = 77}, /* its domain is gone */
        {.kib = 8000, .domid = 3},  /* domain 3 will die */
    };
    assert_int_equal(domcache_snapshot(f->dc, r, 4, &f->snap), 0);
    assert_int_equal(f->snap.reservations_kib, 5000);
    int64_t xen = f->snap.xen_free_kib + f->snap.scrub_kib;
    assert_int_equal(f->snap.host.free_kib, xen - 5000);
    assert_int_equal(sim_destroy_domain(f->sim, 3), 0);
    assert_int_equal(domcache_snapshot(f->dc, r, 4, &f->snap), 0);
    assert_int_equal(f->snap.reservations_kib, 13000);
    xen = f->snap.xen_free_kib + f->snap.scrub_kib;
    assert_int_equal(f->snap.host.free_kib, xen - 13000);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* ---- the dynamic range ---- */

static void test_dynamic_range_defaults_to_target(void **state)
{
    (void)state;
    for (int watches = 0; watches <= 1; watches++) {
        struct fx *f = fx_open(harness_world(NULL, 2), watches, false);
        snap(f);
        assert_int_equal(find(&f->snap, 1, NULL)->dynamic_min_kib, 128 * MIB);
        xs_del(f->sim, 1, "memory/dynamic-min");
        snap(f);
        const struct policy_domain *p = find(&f->snap, 1, NULL);
        assert_int_equal(p->dynamic_min_kib, 256 * MIB);
        assert_int_equal(p->dynamic_max_kib, 256 * MIB);
        /* A half-written pair that makes no sense counts as missing too. */
        xs_set(f->sim, 1, "memory/dynamic-min", "900000");
        snap(f);
        p = find(&f->snap, 1, NULL);
        assert_int_equal(p->dynamic_min_kib, 256 * MIB);
        assert_int_equal(p->dynamic_max_kib, 256 * MIB);
        xs_set(f->sim, 1, "memory/dynamic-max", "garbage");
        snap(f);
        assert_int_equal(find(&f->snap, 1, NULL)->dynamic_max_kib, 256 * MIB);
        assert_int_equal(sim_set_dynamic_range(f->sim, 1, 100 * MIB, 300 * MIB), 0);
        snap(f);
        p = find(&f->snap, 1, NULL);
        assert_int_equal(p->dynamic_min_kib, 100 * MIB);
        assert_int_equal(p->dynamic_max_kib, 300 * MIB);
        assert_truth(f->sim, &f->snap);
        fx_close(f);
    }
}

/* ---- skipping ---- */

/* A booted domain without memory/target yet is skipped until it has one. */
static void test_domain_without_target_skipped(void **state)
{
    (void)state;
    struct sim *s = harness_world(NULL, 2);
    xs_del(s, 2, "memory/target");
    struct fx *f = fx_open(s, true, false);
    snap(f);
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 1);
    xs_set(f->sim, 2, "memory/target", "268435");
    snap(f);
    assert_non_null(find(&f->snap, 2, NULL));
    assert_int_equal(find(&f->snap, 2, NULL)->target_kib, 268435);
    fx_close(f);
}

/* A domain destroyed between the domain list and its xenstore reads is skipped. */
static void test_domain_vanishing_mid_read_skipped(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 3), true, false);
    f->w->destroy_on_read = 2;
    snap(f);
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 2);
    snap(f);
    assert_int_equal(f->snap.host.n_domains, 2);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* ---- domain 0 ---- */

static void test_dom0_left_alone_unless_managed(void **state)
{
    (void)state;
    for (int managed = 0; managed <= 1; managed++) {
        struct sim_domain_spec d[2] = {harness_guest(0), harness_guest(1)};
        d[0].type = DOMAIN_TYPE_PV;
        struct fx *f = fx_open(harness_world(d, 2), true, managed);
        snap(f);
        const struct policy_domain *p = find(&f->snap, 0, NULL);
        assert_non_null(p);
        assert_int_equal(p->can_balloon, managed);
        if (managed) {
            assert_int_equal(p->dynamic_min_kib, 128 * MIB);
            assert_int_equal(p->dynamic_max_kib, 512 * MIB);
            assert_int_equal(p->maxmem_kib, 512 * MIB);
        } else {
            assert_int_equal(p->dynamic_min_kib, 256 * MIB);
            assert_int_equal(p->dynamic_max_kib, 256 * MIB);
            assert_int_equal(p->maxmem_kib, 0);
        }
        assert_true(find(&f->snap, 1, NULL)->can_balloon);
        fx_close(f);
    }
}

/* ---- watches ---- */

static void test_events_report_changes(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 3), true, false);
    snap(f);
    assert_int_equal(domcache_process_events(f->dc), 0);
    assert_int_equal(sim_set_dynamic_range(f->sim, 2, 100 * MIB, 400 * MIB), 0);
    assert_int_equal(domcache_process_events(f->dc), 2);
    /* Many events for one key: one read at the next snapshot. */
    for (int i = 0; i < 50; i++)
        xs_set(f->sim, 3, "memory/dynamic-max", i % 2 ? "400000" : "500000");
    assert_true(domcache_process_events(f->dc) >= 1);
    struct sim_domain_spec d = harness_guest(9);
    assert_int_equal(sim_create_domain(f->sim, &d, NULL), 0);
    assert_true(domcache_process_events(f->dc) >= 1); /* @introduceDomain */
    f->w->n.xs_read = 0;
    snap(f);
    /* domain 2: min and max; domain 3: max; domain 9 is new. */
    const struct policy_domain *p = find(&f->snap, 3, NULL);
    assert_int_equal(p->dynamic_max_kib, 400000); /* the last written */
    assert_int_equal(find(&f->snap, 2, NULL)->dynamic_max_kib, 400 * MIB);
    assert_non_null(find(&f->snap, 9, NULL));
    assert_truth(f->sim, &f->snap);
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 0);
    fx_close(f);
}

/* Lost events (queue overflow) empty the cache; the next snapshot is right again and
 * the one after reads nothing. */
static void test_overflow_rebuilds(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 30), true, false);
    snap(f);
    snap(f);
    sim_xs_set_watch_queue_limit(f->sim, 16);
    for (uint32_t d = 1; d <= 30; d++)
        assert_int_equal(sim_set_dynamic_range(f->sim, d, 64 * MIB + d, 500 * MIB + d), 0);
    struct domcache_counters c0, c1;
    counters(f, &c0);
    snap(f);
    counters(f, &c1);
    assert_int_equal(c1.rebuilds - c0.rebuilds, 1);
    assert_true(domcache_watching(f->dc));
    for (uint32_t d = 1; d <= 30; d++) {
        const struct policy_domain *p = find(&f->snap, (int32_t)d, NULL);
        assert_int_equal(p->dynamic_min_kib, 64 * MIB + d);
        assert_int_equal(p->dynamic_max_kib, 500 * MIB + d);
    }
    assert_truth(f->sim, &f->snap);
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 0);
    fx_close(f);
}

/* A backend that refuses watches: read through (seed behaviour), values still right. */
static void test_watch_failure_falls_back_to_reading(void **state)
{
    (void)state;
    struct sim *s = harness_world(NULL, 5);
    struct fx *f = xcalloc(1, sizeof(*f));
    f->sim = s;
    f->w = wrap_new(s);
    f->w->watch_budget = 2 + 4 * 2 + 1; /* domains watch, 2 domains, then 1 more */
    struct domcache_config cfg = {.use_watches = true};
    f->dc = domcache_new(&f->w->base, &cfg);
    domcache_snapshot_init(&f->snap);
    assert_true(domcache_watching(f->dc));
    snap(f);
    assert_false(domcache_watching(f->dc));
    /* Every per-domain watch that was made is removed again. */
    assert_int_equal(f->w->n.xs_unwatch, 4 * 2 + 1);
    assert_int_equal(f->snap.host.n_domains, 5);
    assert_truth(f->sim, &f->snap);
    assert_int_equal(sim_set_dynamic_range(f->sim, 4, 100 * MIB, 200 * MIB), 0);
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 2 * 5);
    assert_int_equal(find(&f->snap, 4, NULL)->dynamic_max_kib, 200 * MIB);
    fx_close(f);
}

/* With and without watches the snapshots are the same. */
static void test_same_snapshot_with_and_without_watches(void **state)
{
    (void)state;
    struct sim_domain_spec d[6];
    for (uint32_t i = 0; i < 6; i++)
        d[i] = harness_guest(i + 1);
    d[2].boot_after_s = 3;
    d[3].balloon.model = SIM_BALLOON_NONE;
    d[4].initial_reservation_kib = 512 * MIB;
    d[4].actual_kib = 0;
    d[4].balloon.rate_kib_s = 100 * MIB;
    struct fx *a = fx_open(harness_world(d, 6), true, false);
    struct fx *b = fx_open(harness_world(d, 6), false, false);
    for (int round = 0; round < 8; round++) {
        snap(a);
        snap(b);
        assert_same_snapshot(&a->snap, &b->snap);
        if (round == 3) {
            assert_int_equal(sim_set_dynamic_range(a->sim, 1, 1 * MIB, 2 * GIB), 0);
            assert_int_equal(sim_set_dynamic_range(b->sim, 1, 1 * MIB, 2 * GIB), 0);
        }
        sim_advance(a->sim, 1000);
        sim_advance(b->sim, 1000);
    }
    fx_close(a);
    fx_close(b);
}

/* ---- the figures the issue asks for ---- */

static struct fx *thousand(bool watches)
{
    return fx_open(harness_world(NULL, 1000), watches, false);
}

/* Steady state of an unchanged 1,000-domain host: no xenstore read at all, and exactly
 * two hypercalls (domain list, physinfo) per snapshot. */
static void test_steady_state_reads_nothing(void **state)
{
    (void)state;
    struct fx *f = thousand(true);
    snap(f);
    snap(f);
    assert_int_equal(f->snap.host.n_domains, 1000);
    struct domcache_counters c0, c1;
    struct sim_counters s0, s1;
    counters(f, &c0);
    sim_counters(f->sim, &s0);
    for (int i = 0; i < 100; i++) {
        sim_advance(f->sim, 250);
        snap(f);
    }
    counters(f, &c1);
    sim_counters(f->sim, &s1);
    assert_int_equal(c1.xenstore_reads - c0.xenstore_reads, 0);
    assert_int_equal(c1.xenstore_writes - c0.xenstore_writes, 0);
    assert_int_equal(c1.hypercalls - c0.hypercalls, 200);
    assert_int_equal(c1.snapshots - c0.snapshots, 100);
    assert_int_equal(s1.xs_reads - s0.xs_reads, 0);
    assert_int_equal(s1.list_domains - s0.list_domains, 100);
    assert_int_equal(s1.physinfo - s0.physinfo, 100);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* A change to one domain's dynamic-max is seen by the next snapshot for one read. */
static void test_dynamic_max_change_costs_one_read(void **state)
{
    (void)state;
    struct fx *f = thousand(true);
    snap(f);
    snap(f);
    struct domcache_counters c0, c1;
    counters(f, &c0);
    xs_set(f->sim, 500, "memory/dynamic-max", "600000");
    snap(f);
    counters(f, &c1);
    assert_int_equal(find(&f->snap, 500, NULL)->dynamic_max_kib, 600000);
    assert_true(c1.xenstore_reads - c0.xenstore_reads <= 1);
    assert_int_equal(c1.xenstore_reads - c0.xenstore_reads, 1);
    /* A hundred events for it before the next snapshot: still one read. */
    for (int i = 0; i < 100; i++)
        xs_set(f->sim, 500, "memory/dynamic-max", i % 2 ? "600000" : "610000");
    xs_set(f->sim, 500, "memory/dynamic-max", "620000");
    counters(f, &c0);
    snap(f);
    counters(f, &c1);
    assert_int_equal(c1.xenstore_reads - c0.xenstore_reads, 1);
    assert_int_equal(find(&f->snap, 500, NULL)->dynamic_max_kib, 620000);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* Without watches, as the seed: at most two reads per domain per snapshot. */
static void test_without_watches_two_reads_per_domain(void **state)
{
    (void)state;
    struct fx *f = thousand(false);
    snap(f);
    struct domcache_counters c0, c1;
    counters(f, &c0);
    for (int i = 0; i < 5; i++)
        snap(f);
    counters(f, &c1);
    assert_true(c1.xenstore_reads - c0.xenstore_reads <= 5 * 2 * 1000);
    assert_int_equal(c1.xenstore_reads - c0.xenstore_reads, 5 * 2 * 1000);
    assert_int_equal(c1.hypercalls - c0.hypercalls, 10);
    xs_set(f->sim, 10, "memory/dynamic-max", "600000");
    snap(f);
    assert_int_equal(find(&f->snap, 10, NULL)->dynamic_max_kib, 600000);
    assert_truth(f->sim, &f->snap);
    fx_close(f);
}

/* The first snapshot of a host costs one read per key per domain, watches included: the
 * event each registration fires costs nothing. */
static void test_warm_up_reads_each_key_once(void **state)
{
    (void)state;
    struct fx *f = fx_open(harness_world(NULL, 200), true, false);
    snap(f);
    /* feature-balloon, uncooperative, initial-reservation, target, memory-offset,
     * dynamic-min, dynamic-max; plus the memory-offset written. */
    assert_int_equal(f->w->n.xs_read, 7 * 200);
    assert_int_equal(f->w->n.xs_write, 200);
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 0);
    fx_close(f);
}

int main(void)
{
    log_init("test_cache", true, 0);
    log_quiet(true);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cached_keys_not_reread),
        cmocka_unit_test(test_other_keys_read_through),
        cmocka_unit_test(test_write_skipped_when_equal),
        cmocka_unit_test(test_write_to_vanished_domain),
        cmocka_unit_test(test_set_maxmem_units_never_skipped),
        cmocka_unit_test(test_set_maxmem_of_unseen_domain),
        cmocka_unit_test(test_dead_domain_dropped),
        cmocka_unit_test(test_dying_domain_skipped),
        cmocka_unit_test(test_recycled_domid_gets_fresh_entry),
        cmocka_unit_test(test_calibration_on_first_boot_signal),
        cmocka_unit_test(test_recorded_offset_used),
        cmocka_unit_test(test_booting_domain_accounting),
        cmocka_unit_test(test_booting_without_initial_reservation),
        cmocka_unit_test(test_initial_reservation_written_through),
        cmocka_unit_test(test_reservations_subtracted_unless_transferred),
        cmocka_unit_test(test_dynamic_range_defaults_to_target),
        cmocka_unit_test(test_domain_without_target_skipped),
        cmocka_unit_test(test_domain_vanishing_mid_read_skipped),
        cmocka_unit_test(test_dom0_left_alone_unless_managed),
        cmocka_unit_test(test_events_report_changes),
        cmocka_unit_test(test_overflow_rebuilds),
        cmocka_unit_test(test_watch_failure_falls_back_to_reading),
        cmocka_unit_test(test_same_snapshot_with_and_without_watches),
        cmocka_unit_test(test_steady_state_reads_nothing),
        cmocka_unit_test(test_dynamic_max_change_costs_one_read),
        cmocka_unit_test(test_without_watches_two_reads_per_domain),
        cmocka_unit_test(test_warm_up_reads_each_key_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
