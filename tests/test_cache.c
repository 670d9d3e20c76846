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

#include "tests/support/fault_backend.h"
#include "tests/support/harness.h"

#include "sim/sim.h"
#include "cache/domcache.h"
#include "common/log.h"
#include "common/xalloc.h"

#define MIB 1024
#define GIB (1024 * 1024)

/* The cache sees the sim backend through tests/support/fault_backend: it counts every call
 * and can pretend things the sim cannot show (a domain dying, shadow memory, a watch the
 * backend refuses, a domain destroyed just before one of its keys is read). */

/* ---- fixture ---- */

struct fx {
    struct sim *sim; /* owned by the backend */
    struct fault_backend *w;
    struct domcache *dc;
    struct domcache_snapshot snap;
};

static void fx_free(struct fx *f)
{
    domcache_free(f->dc);
    domcache_snapshot_free(&f->snap);
    backend_close(&f->w->base);
    free(f);
}

/* The worlds a test opened, its cmocka state (setup, teardown): teardown closes those still
 * open, so a failed assertion leaks nothing. */
#define FX_MAX 4

struct fixtures {
    struct fx *open[FX_MAX];
};

static int setup(void **state)
{
    *state = xcalloc(1, sizeof(struct fixtures));
    return 0;
}

static int teardown(void **state)
{
    struct fixtures *fs = *state;
    for (size_t i = 0; i < FX_MAX; i++)
        if (fs->open[i] != NULL)
            fx_free(fs->open[i]);
    free(fs);
    return 0;
}

/* A fixture over s (taken): the sim backend in a fault_backend, no cache yet, kept in the
 * test's fixtures. */
static struct fx *fx_new(void **state, struct sim *s)
{
    struct fixtures *fs = *state;
    size_t slot = 0;
    while (slot < FX_MAX && fs->open[slot] != NULL)
        slot++;
    if (slot == FX_MAX)
        fail_msg("more than %d worlds open in one test", FX_MAX);
    struct fx *f = xcalloc(1, sizeof(*f));
    f->sim = s;
    f->w = fault_backend_new(backend_sim_open(s), s, false);
    domcache_snapshot_init(&f->snap);
    fs->open[slot] = f;
    return f;
}

/* The same with its cache. */
static struct fx *fx_open(void **state, struct sim *s, bool watches, bool manage_dom0)
{
    struct fx *f = fx_new(state, s);
    struct domcache_config cfg = {.use_watches = watches, .manage_domain_zero = manage_dom0};
    f->dc = domcache_new(&f->w->base, &cfg);
    return f;
}

/* Close one world before the test ends (a test that opens one per round). */
static void fx_close(void **state, struct fx *f)
{
    struct fixtures *fs = *state;
    for (size_t i = 0; i < FX_MAX; i++)
        if (fs->open[i] == f)
            fs->open[i] = NULL;
    fx_free(f);
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

static const struct domcache_excluded *excluded(const struct domcache_snapshot *s,
                                                int32_t domid)
{
    for (size_t i = 0; i < s->n_excluded; i++)
        if (s->excluded[i].domid == domid)
            return &s->excluded[i];
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
    for (int watches = 0; watches <= 1; watches++) {
        struct fx *f = fx_open(state, harness_world(NULL, 3), watches, false);
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
        fx_close(state, f);
    }
}

/* Keys the cache does not keep are read through every time. */
static void test_other_keys_read_through(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 2), true, false);
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
}

/* ---- writes ---- */

static void test_write_skipped_when_equal(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 2), true, false);
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
}

/* A write to a domain that has gone returns 0, creates nothing and leaves no entry. */
static void test_write_to_vanished_domain(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 3), true, false);
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
}

/* maxmem: guest units + type slack + memory-offset; skipped when equal. */
static void test_set_maxmem_units_never_skipped(void **state)
{
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(3)}; /* hvm, pv */
    d[0].memory_offset_kib = 2048;
    struct fx *f = fx_open(state, harness_world(d, 2), true, false);
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
}

/* A domain created since the last snapshot gets its maxmem set all the same. */
static void test_set_maxmem_of_unseen_domain(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 1), true, false);
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
}

/* ---- domains coming and going ---- */

static void test_dead_domain_dropped(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 4), true, false);
    snap(f);
    assert_int_equal(f->snap.host.n_domains, 4);
    unsigned long unwatch0 = f->w->n.xs_unwatch;
    assert_int_equal(sim_destroy_domain(f->sim, 3), 0);
    snap(f);
    assert_int_equal(f->snap.host.n_domains, 3);
    assert_null(find(&f->snap, 3, NULL));
    assert_int_equal(f->w->n.xs_unwatch - unwatch0, 4); /* its four watches */
    assert_truth(f->sim, &f->snap);
}

static void test_dying_domain_skipped(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 3), true, false);
    snap(f);
    f->w->dying[2] = true;
    snap(f);
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 2);
    f->w->dying[2] = false;
    snap(f);
    assert_non_null(find(&f->snap, 2, NULL));
    assert_truth(f->sim, &f->snap);
}

/* A domid reused by a new domain (new handle) never sees the old one's values: here
 * the old memory-offset would make its actual wrong. */
static void test_recycled_domid_gets_fresh_entry(void **state)
{
    for (int watches = 0; watches <= 1; watches++) {
        struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(5)};
        d[1].memory_offset_kib = 4096;
        struct fx *f = fx_open(state, harness_world(d, 2), watches, false);
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
        fx_close(state, f);
    }
}

/* ---- booting and calibration ---- */

/* memory-offset is calibrated and written once, on the first boot signal. */
static void test_calibration_on_first_boot_signal(void **state)
{
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[0].boot_after_s = 5;
    d[0].memory_offset_kib = 2048;
    d[1].boot_after_s = 5; /* no balloon driver: boots with data/updated only */
    d[1].memory_offset_kib = 1024;
    d[1].balloon.model = SIM_BALLOON_NONE;
    struct fx *f = fx_open(state, harness_world(d, 2), true, false);
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
}

/* An offset recorded by an earlier run is used, not calibrated again. */
static void test_recorded_offset_used(void **state)
{
    struct sim_domain_spec d = harness_guest(1);
    d.memory_offset_kib = 512;
    struct sim *s = harness_world(&d, 1);
    xs_set(s, 1, "memory/memory-offset", "512");
    struct fx *f = fx_open(state, s, true, false);
    snap(f);
    assert_int_equal(f->w->n.xs_write, 0);
    const struct domcache_domain_extra *x = NULL;
    assert_non_null(find(&f->snap, 1, &x));
    assert_int_equal(x->memory_offset_kib, 512);
    assert_truth(f->sim, &f->snap);
}

/* A booting domain counts as max(initial-reservation, actual); what it has still to
 * allocate, minus its shadow memory, is not free. */
static void test_booting_domain_accounting(void **state)
{
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[1].initial_reservation_kib = 1 * GIB;
    d[1].target_kib = 1 * GIB;
    d[1].dynamic_min_kib = d[1].dynamic_max_kib = 1 * GIB;
    d[1].maxmem_kib = 1 * GIB;
    d[1].actual_kib = 0;
    d[1].balloon.rate_kib_s = 65536;
    struct fx *f = fx_open(state, harness_world(d, 2), true, false);
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
}

/* A booting domain without initial-reservation counts its actual and is not skipped. */
static void test_booting_without_initial_reservation(void **state)
{
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[1].boot_after_s = 100;
    struct fx *f = fx_open(state, harness_world(d, 2), false, false);
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
}

/* The domain's own initial-reservation written through the cache is seen at once. */
static void test_initial_reservation_written_through(void **state)
{
    struct sim_domain_spec d = harness_guest(1);
    d.boot_after_s = 100;
    struct fx *f = fx_open(state, harness_world(&d, 1), true, false);
    snap(f);
    assert_int_equal(f->snap.booting_unused_kib, 0);
    assert_int_equal(domcache_write(f->dc, 1, "memory/initial-reservation", "524288"), 0);
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 0);
    assert_int_equal(f->snap.booting_unused_kib, 512 * MIB - 256 * MIB);
    assert_int_equal(find(&f->snap, 1, NULL)->actual_kib, 512 * MIB);
}

/* ---- host free memory ---- */

static void test_reservations_subtracted_unless_transferred(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 3), true, false);
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
}

/* ---- the dynamic range ---- */

static void test_dynamic_range_defaults_to_target(void **state)
{
    for (int watches = 0; watches <= 1; watches++) {
        struct fx *f = fx_open(state, harness_world(NULL, 2), watches, false);
        snap(f);
        assert_int_equal(find(&f->snap, 1, NULL)->dynamic_min_kib, 128 * MIB);
        xs_del(f->sim, 1, "memory/dynamic-min");
        snap(f);
        const struct policy_domain *p = find(&f->snap, 1, NULL);
        assert_int_equal(p->dynamic_min_kib, 256 * MIB);
        assert_int_equal(p->dynamic_max_kib, 256 * MIB);
        /* A pair upside down or a value that is not a number leaves the domain out
         * (test_bad_values_leave_the_domain_out); a missing key does not. */
        xs_set(f->sim, 1, "memory/dynamic-min", "900000");
        xs_set(f->sim, 1, "memory/dynamic-max", "800000");
        snap(f);
        assert_null(find(&f->snap, 1, NULL));
        assert_non_null(excluded(&f->snap, 1));
        assert_int_equal(sim_set_dynamic_range(f->sim, 1, 100 * MIB, 300 * MIB), 0);
        snap(f);
        p = find(&f->snap, 1, NULL);
        assert_int_equal(p->dynamic_min_kib, 100 * MIB);
        assert_int_equal(p->dynamic_max_kib, 300 * MIB);
        assert_truth(f->sim, &f->snap);
        fx_close(state, f);
    }
}

/* ---- bad values ---- */

/* A domain whose xenstore values are out of range, not numbers or inconsistent is left
 * out of the snapshot with the reason (key, value, what is wrong); the others are
 * there, the policy accepts the snapshot, and the domain comes back once repaired. */
static void test_bad_values_leave_the_domain_out(void **state)
{
    static const struct {
        const char *key, *value, *reason;
    } bad[] = {
        {"memory/dynamic-max", "35184372088832",
         "memory/dynamic-max = 35184372088832: above the limit of 1099511627776 KiB"},
        {"memory/dynamic-max", "99999999999999999999",
         "memory/dynamic-max = 99999999999999999999: above the limit of 1099511627776 KiB"},
        {"memory/dynamic-min", "-1", "memory/dynamic-min = -1: negative"},
        {"memory/dynamic-min", "12x", "memory/dynamic-min = 12x: not a number"},
        {"memory/dynamic-min", "600000",
         "memory/dynamic-min = 600000 is above memory/dynamic-max = 524288 KiB"},
        {"memory/target", "1099511627777",
         "memory/target = 1099511627777: above the limit of 1099511627776 KiB"},
        {"memory/target", " 262144", "memory/target =  262144: not a number"},
        {"memory/memory-offset", "-1099511627777",
         "memory/memory-offset = -1099511627777: below the limit of -1099511627776 KiB"},
        {"memory/memory-offset", "", "memory/memory-offset = : not a number"},
        {"memory/initial-reservation", "1e6", "memory/initial-reservation = 1e6: not a number"},
    };
    for (int watches = 0; watches <= 1; watches++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            /* Written before the cache first reads: memory/target, memory-offset and
             * initial-reservation are keys the cache then takes as its own. */
            struct fx *f = fx_open(state, harness_world(NULL, 3), watches, false);
            int64_t target_kib = xs_int(f->sim, 2, "memory/target");
            char *old = NULL;
            char path[128];
            snprintf(path, sizeof(path), "/local/domain/2/%s", bad[i].key);
            if (sim_xs_read(f->sim, path, &old) < 0)
                old = NULL;
            xs_set(f->sim, 2, bad[i].key, bad[i].value);
            snap(f);
            snap(f); /* still out, and logged once (seen by hand with log_quiet off) */
            assert_null(find(&f->snap, 2, NULL));
            assert_non_null(find(&f->snap, 1, NULL));
            assert_non_null(find(&f->snap, 3, NULL));
            assert_int_equal(f->snap.host.n_domains, 2);
            assert_int_equal(f->snap.n_excluded, 1);
            const struct domcache_excluded *x = excluded(&f->snap, 2);
            assert_non_null(x);
            assert_string_equal(x->reason, bad[i].reason);
            assert_true(x->actual_kib > 0);
            /* The policy takes the snapshot (the fault of issue 8: it refused it). */
            struct policy_request req = {.kind = POLICY_BALANCE, .reserved_kib = 0};
            struct policy_state *ps = policy_state_new();
            struct policy_decision dec;
            policy_decision_init(&dec);
            assert_int_equal(policy_round(ps, &f->snap.host, &req, 1000, &dec), 0);
            for (size_t k = 0; k < dec.n_ops; k++)
                assert_int_not_equal(dec.ops[k].domid, 2);
            policy_decision_free(&dec);
            policy_state_free(ps);
            /* Repaired: back in, as it was. */
            if (old != NULL)
                xs_set(f->sim, 2, bad[i].key, old);
            else
                xs_del(f->sim, 2, bad[i].key);
            free(old);
            snap(f);
            assert_int_equal(f->snap.n_excluded, 0);
            assert_non_null(find(&f->snap, 2, NULL));
            assert_int_equal(find(&f->snap, 2, NULL)->target_kib, target_kib);
            fx_close(state, f);
        }
    }
}

/* ---- skipping ---- */

/* A booted domain without memory/target yet is skipped until it has one. */
static void test_domain_without_target_skipped(void **state)
{
    struct sim *s = harness_world(NULL, 2);
    xs_del(s, 2, "memory/target");
    struct fx *f = fx_open(state, s, true, false);
    snap(f);
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 1);
    xs_set(f->sim, 2, "memory/target", "268435");
    snap(f);
    assert_non_null(find(&f->snap, 2, NULL));
    assert_int_equal(find(&f->snap, 2, NULL)->target_kib, 268435);
}

/* A domain destroyed between the domain list and its xenstore reads is skipped. */
static void test_domain_vanishing_mid_read_skipped(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 3), true, false);
    f->w->destroy_on_read = 2;
    snap(f);
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 2);
    snap(f);
    assert_int_equal(f->snap.host.n_domains, 2);
    assert_truth(f->sim, &f->snap);
}

/* ---- domain 0 ---- */

static void test_dom0_left_alone_unless_managed(void **state)
{
    for (int managed = 0; managed <= 1; managed++) {
        struct sim_domain_spec d[2] = {harness_guest(0), harness_guest(1)};
        d[0].type = DOMAIN_TYPE_PV;
        struct fx *f = fx_open(state, harness_world(d, 2), true, managed);
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
        fx_close(state, f);
    }
}

/* ---- watches ---- */

static void test_events_report_changes(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 3), true, false);
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
}

/* Lost events (queue overflow) empty the cache; the next snapshot is right again and
 * the one after reads nothing. */
static void test_overflow_rebuilds(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 30), true, false);
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
}

/* A backend that refuses watches: read through (seed behaviour), values still right. */
static void test_watch_failure_falls_back_to_reading(void **state)
{
    struct fx *f = fx_new(state, harness_world(NULL, 5));
    f->w->watch_budget = 2 + 4 * 2 + 1; /* domains watch, 2 domains, then 1 more */
    struct domcache_config cfg = {.use_watches = true};
    f->dc = domcache_new(&f->w->base, &cfg);
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
}

/* With and without watches the snapshots are the same. */
static void test_same_snapshot_with_and_without_watches(void **state)
{
    struct sim_domain_spec d[6];
    for (uint32_t i = 0; i < 6; i++)
        d[i] = harness_guest(i + 1);
    d[2].boot_after_s = 3;
    d[3].balloon.model = SIM_BALLOON_NONE;
    d[4].initial_reservation_kib = 512 * MIB;
    d[4].actual_kib = 0;
    d[4].balloon.rate_kib_s = 100 * MIB;
    struct fx *a = fx_open(state, harness_world(d, 6), true, false);
    struct fx *b = fx_open(state, harness_world(d, 6), false, false);
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
}

/* ---- the figures the issue asks for ---- */

static struct fx *thousand(void **state, bool watches)
{
    return fx_open(state, harness_world(NULL, 1000), watches, false);
}

/* Steady state of an unchanged 1,000-domain host: no xenstore read at all, and exactly
 * two hypercalls (domain list, physinfo) per snapshot. */
static void test_steady_state_reads_nothing(void **state)
{
    struct fx *f = thousand(state, true);
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
}

/* A change to one domain's dynamic-max is seen by the next snapshot for one read. */
static void test_dynamic_max_change_costs_one_read(void **state)
{
    struct fx *f = thousand(state, true);
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
}

/* Without watches, as the seed: at most two reads per domain per snapshot. */
static void test_without_watches_two_reads_per_domain(void **state)
{
    struct fx *f = thousand(state, false);
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
}

/* The first snapshot of a host costs one read per key per domain, watches included: the
 * event each registration fires costs nothing. */
static void test_warm_up_reads_each_key_once(void **state)
{
    struct fx *f = fx_open(state, harness_world(NULL, 200), true, false);
    snap(f);
    /* feature-balloon, uncooperative, initial-reservation, target, memory-offset,
     * dynamic-min, dynamic-max; plus the memory-offset written. */
    assert_int_equal(f->w->n.xs_read, 7 * 200);
    assert_int_equal(f->w->n.xs_write, 200);
    f->w->n.xs_read = 0;
    snap(f);
    assert_int_equal(f->w->n.xs_read, 0);
}

int main(void)
{
    log_init("test_cache", true, 0);
    log_quiet(true);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_cached_keys_not_reread),
        T(test_other_keys_read_through),
        T(test_write_skipped_when_equal),
        T(test_write_to_vanished_domain),
        T(test_set_maxmem_units_never_skipped),
        T(test_set_maxmem_of_unseen_domain),
        T(test_dead_domain_dropped),
        T(test_dying_domain_skipped),
        T(test_recycled_domid_gets_fresh_entry),
        T(test_calibration_on_first_boot_signal),
        T(test_recorded_offset_used),
        T(test_booting_domain_accounting),
        T(test_booting_without_initial_reservation),
        T(test_initial_reservation_written_through),
        T(test_reservations_subtracted_unless_transferred),
        T(test_dynamic_range_defaults_to_target),
        T(test_bad_values_leave_the_domain_out),
        T(test_domain_without_target_skipped),
        T(test_domain_vanishing_mid_read_skipped),
        T(test_dom0_left_alone_unless_managed),
        T(test_events_report_changes),
        T(test_overflow_rebuilds),
        T(test_watch_failure_falls_back_to_reading),
        T(test_same_snapshot_with_and_without_watches),
        T(test_steady_state_reads_nothing),
        T(test_dynamic_max_change_costs_one_read),
        T(test_without_watches_two_reads_per_domain),
        T(test_warm_up_reads_each_key_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
