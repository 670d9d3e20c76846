/* SPDX-License-Identifier: LGPL-2.1-only */
/* backend/xen.c over the fake libxenctrl/libxenstore, with faults, under the cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/harness.h"

#include "sim/sim.h"
#include "cache/domcache.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/squeeze.h"
#include "tests/fakexen/fakexen.h"

#define MIB 1024
#define GIB (1024 * 1024)

/* ---- worlds ---- */

/* The cache over backend/xen.c over the fake over world s (owned by the fixture). */
struct xfx {
    struct sim *sim;
    struct backend *b;
    struct domcache *dc;
    struct domcache_snapshot snap;
};

/* Taken by the test's state: teardown closes it, also after a failed assertion. */
static struct xfx *xfx_open(void **state, struct sim *s, bool watches)
{
    struct xfx *f = xcalloc(1, sizeof(*f));
    assert_null(*state); /* one per test */
    f->sim = s;
    *state = f;
    fakexen_reset();
    fakexen_set_world(s);
    char *err = NULL;
    f->b = backend_xen_open(&err);
    if (f->b == NULL)
        fail_msg("backend_xen_open: %s", err);
    assert_string_equal(f->b->ops->name, "xen");
    struct domcache_config cfg = {.use_watches = watches};
    f->dc = domcache_new(f->b, &cfg);
    domcache_snapshot_init(&f->snap);
    return f;
}

static int teardown(void **state)
{
    struct xfx *f = *state;
    if (f == NULL)
        return 0;
    domcache_free(f->dc);
    domcache_snapshot_free(&f->snap);
    backend_close(f->b);
    fakexen_set_world(NULL);
    fakexen_reset();
    sim_free(f->sim);
    free(f);
    *state = NULL;
    return 0;
}

static void snap(struct xfx *f)
{
    assert_int_equal(domcache_snapshot(f->dc, NULL, 0, &f->snap), 0);
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

static void xs_set(struct sim *s, uint32_t domid, const char *key, const char *value)
{
    char path[128];
    snprintf(path, sizeof(path), "/local/domain/%u/%s", domid, key);
    assert_int_equal(sim_xs_write(s, path, value), 0);
}

static uint64_t reads(struct xfx *f)
{
    struct domcache_counters c;
    domcache_counters(f->dc, &c);
    return c.xenstore_reads;
}

static uint64_t rebuilds(struct xfx *f)
{
    struct domcache_counters c;
    domcache_counters(f->dc, &c);
    return c.rebuilds;
}

/* The snapshot agrees with the sim's truth: the same domains (all booted here), their
 * figures (to Xen's page) and host free memory. Values in use are never stale. */
static void assert_truth(struct sim *s, const struct domcache_snapshot *snp)
{
    json_t *st = sim_state_json(s);
    json_t *doms = json_object_get(st, "domains");
    assert_int_equal(snp->host.n_domains, json_array_size(doms));
    for (size_t i = 0; i < snp->host.n_domains; i++) {
        const struct policy_domain *p = &snp->domains[i];
        json_t *t = json_array_get(doms, i);
        assert_int_equal(p->domid, json_integer_value(json_object_get(t, "domid")));
        assert_false(snp->extra[i].booting);
        int64_t actual = json_integer_value(json_object_get(t, "actual_kib"));
        if (p->actual_kib > actual || actual - p->actual_kib >= 4)
            fail_msg("domid %d: actual %lld, truth %lld", p->domid, (long long)p->actual_kib,
                     (long long)actual);
        assert_int_equal(p->target_kib, json_integer_value(json_object_get(t, "target_kib")));
        assert_int_equal(p->maxmem_kib, json_integer_value(json_object_get(t, "maxmem_kib")));
        assert_int_equal(p->can_balloon, json_is_true(json_object_get(t, "can_balloon")));
        if (p->can_balloon) {
            assert_int_equal(p->dynamic_min_kib,
                             json_integer_value(json_object_get(t, "dynamic_min_kib")));
            assert_int_equal(p->dynamic_max_kib,
                             json_integer_value(json_object_get(t, "dynamic_max_kib")));
        }
        assert_int_equal(snp->extra[i].uncooperative,
                         json_is_true(json_object_get(t, "uncooperative")));
    }
    int64_t free_kib = json_integer_value(json_object_get(st, "free_kib"));
    int64_t want = free_kib - snp->booting_unused_kib - snp->claims_kib - snp->reservations_kib;
    if (snp->host.free_kib > want || want - snp->host.free_kib >= 4)
        fail_msg("free %lld, truth %lld", (long long)snp->host.free_kib, (long long)want);
    json_decref(st);
}

/* ---- the backend's own operations ---- */

static void test_open_without_hypervisor_says_why(void **state)
{
    (void)state;
    fakexen_set_world(NULL);
    unsetenv("FAKEXEN_SCENARIO");
    unsetenv("FAKEXEN_STATE");
    char *err = NULL;
    struct backend *b = backend_xen_open(&err);
    assert_null(b);
    assert_non_null(err);
    assert_non_null(strstr(err, "libxenctrl"));
    assert_non_null(strstr(err, "FAKEXEN_SCENARIO")); /* what the library said */
    free(err);
}

/* The fake makes its world from the environment as build/squeezed-fakexen does, and
 * keeps it in FAKEXEN_STATE across a "restart". */
static void test_world_from_environment(void **state)
{
    (void)state;
    char state_file[] = "/tmp/test_xen_state_XXXXXX";
    int fd = mkstemp(state_file);
    assert_true(fd >= 0);
    close(fd);
    unlink(state_file);
    setenv("FAKEXEN_SCENARIO", "scenarios/stop-short.json", 1);
    setenv("FAKEXEN_STATE", state_file, 1);
    fakexen_set_world(NULL);
    char *err = NULL;
    struct backend *b = backend_xen_open(&err);
    if (b == NULL)
        fail_msg("%s", err);
    struct backend_domain *list = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(backend_list_all(b, &list, &cap, &n), 1);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].domid, 1);
    assert_int_equal(list[0].type, DOMAIN_TYPE_HVM);
    assert_int_equal(list[1].type, DOMAIN_TYPE_PV);
    assert_int_equal(list[2].type, DOMAIN_TYPE_PVINPVH);
    free(list);
    assert_int_equal(
        b->ops->xs_write(b, "/local/domain/1", "/local/domain/1/memory/target", "3000000"), 0);
    backend_close(b);
    fakexen_set_world(NULL); /* the daemon stops; the state file stays */
    unsetenv("FAKEXEN_SCENARIO");
    b = backend_xen_open(&err);
    if (b == NULL)
        fail_msg("%s", err);
    char *v = NULL;
    assert_int_equal(b->ops->xs_read(b, "/local/domain/1/memory/target", &v), 0);
    assert_string_equal(v, "3000000");
    free(v);
    backend_close(b);
    fakexen_set_world(NULL);
    unsetenv("FAKEXEN_STATE");
    unlink(state_file);
}

static void test_xenstore_operations(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 2), false);
    struct backend *b = f->b;
    char *v = NULL;
    assert_int_equal(b->ops->xs_read(b, "/local/domain/1/memory/nothing", &v), -ENOENT);
    assert_int_equal(b->ops->xs_read(b, "/local/domain/2/memory/target", &v), 0);
    assert_string_equal(v, "262144");
    free(v);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(b->ops->xs_directory(b, "/local/domain/1/memory", &names, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "dynamic-max");
    assert_string_equal(names[1], "dynamic-min");
    assert_string_equal(names[2], "target");
    backend_strv_free(names, n);
    assert_int_equal(b->ops->xs_directory(b, "/local/domain/9", &names, &n), -ENOENT);
    /* A write whose directory is missing writes nothing. */
    assert_int_equal(
        b->ops->xs_write(b, "/local/domain/9", "/local/domain/9/memory/target", "1"), -ENOENT);
    assert_false(sim_xs_exists(f->sim, "/local/domain/9"));
    assert_int_equal(b->ops->xs_write(b, NULL, "/squeezed/state/x", "1"), 0);
    assert_true(sim_xs_exists(f->sim, "/squeezed/state/x"));
    assert_int_equal(b->ops->xs_rm(b, "/squeezed/state/x"), 0);
    assert_int_equal(b->ops->xs_rm(b, "/squeezed/state/x"), 0); /* missing: fine */
    assert_false(sim_xs_exists(f->sim, "/squeezed/state/x"));
    /* Hypercalls. */
    struct backend_physinfo pi;
    assert_int_equal(b->ops->physinfo(b, &pi), 0);
    assert_int_equal(pi.free_pages * 4, sim_host_free_kib(f->sim));
    assert_int_equal(b->ops->set_maxmem(b, 1, 300 * MIB + 1024), 0);
    int64_t m;
    assert_int_equal(sim_domain_memory(f->sim, 1, NULL, NULL, &m), 0);
    assert_int_equal(m, 300 * MIB);
    assert_int_equal(b->ops->set_maxmem(b, 42, 1), -ESRCH);
    uint32_t mib = 7;
    fakexen_set_shadow_mib(2, 12);
    assert_int_equal(b->ops->shadow_allocation_mib(b, 2, &mib), 0);
    assert_int_equal(mib, 12);
    assert_int_equal(b->ops->shadow_allocation_mib(b, 42, &mib), -ESRCH);
    assert_false(b->ops->clock_is_virtual(b));
    int64_t t0 = b->ops->now_ms(b);
    b->ops->sleep_ms(b, 20);
    assert_true(b->ops->now_ms(b) - t0 >= 20);
    assert_true(b->ops->watch_fd(b) >= 0);
}

/* More domains than one xc_domain_getinfolist batch: all listed, sorted, typed. */
static void test_domain_list_in_batches(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 2500), false);
    struct backend_domain *list = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(backend_list_all(f->b, &list, &cap, &n), 3);
    assert_int_equal(n, 2500);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list[i].domid, i + 1);
        assert_int_equal(list[i].type, harness_guest((uint32_t)i + 1).type);
        assert_false(list[i].dying);
        assert_int_equal(list[i].total_pages * 4, 256 * MIB);
    }
    struct fakexen_counters c;
    fakexen_counters(&c);
    assert_int_equal(c.getinfolist, 3);
    fakexen_set_dying(7, true);
    assert_int_equal(backend_list_all(f->b, &list, &cap, &n), 3);
    assert_true(list[6].dying);
    free(list);
    snap(f);
    assert_null(find(&f->snap, 7, NULL));
    assert_int_equal(f->snap.host.n_domains, 2499);
}

/* ---- the cache over Xen = the cache over the sim ---- */

static void test_same_snapshots_as_sim_backend(void **state)
{
    struct sim_domain_spec d[8];
    for (uint32_t i = 0; i < 8; i++)
        d[i] = harness_guest(i + 1);
    d[2].boot_after_s = 3;
    d[2].memory_offset_kib = 1024;
    d[3].balloon.model = SIM_BALLOON_NONE;
    d[4].initial_reservation_kib = 512 * MIB;
    d[4].target_kib = 512 * MIB;
    d[4].actual_kib = 0;
    d[4].balloon.rate_kib_s = 100 * MIB;
    d[5].balloon.model = SIM_BALLOON_STUCK;
    struct xfx *x = xfx_open(state, harness_world(d, 8), true);
    fakexen_set_shadow_mib(5, 4); /* the sim backend says 0: keep the worlds alike */
    fakexen_set_shadow_mib(5, 0);
    struct sim *s = harness_world(d, 8);
    struct backend *sb = backend_sim_open(s);
    struct domcache_config cfg = {.use_watches = true};
    struct domcache *dc = domcache_new(sb, &cfg);
    struct domcache_snapshot ss;
    domcache_snapshot_init(&ss);
    struct domcache_reservation r[2] = {{.kib = 1000, .domid = -1},
                                        {.kib = 512 * MIB, .domid = 5}};
    for (int round = 0; round < 12; round++) {
        assert_int_equal(domcache_snapshot(x->dc, r, 2, &x->snap), 0);
        assert_int_equal(domcache_snapshot(dc, r, 2, &ss), 0);
        assert_int_equal(x->snap.host.n_domains, ss.host.n_domains);
        assert_int_equal(x->snap.host.free_kib, ss.host.free_kib);
        assert_int_equal(x->snap.booting_unused_kib, ss.booting_unused_kib);
        assert_int_equal(x->snap.reservations_kib, ss.reservations_kib);
        for (size_t i = 0; i < ss.host.n_domains; i++) {
            assert_memory_equal(&x->snap.domains[i], &ss.domains[i], sizeof(ss.domains[i]));
            assert_memory_equal(&x->snap.extra[i], &ss.extra[i], sizeof(ss.extra[i]));
        }
        /* The same decisions applied to both. */
        struct policy_op ops[3] = {
            {.kind = POLICY_OP_SET_MAXMEM, .domid = 1, .value_kib = 300 * MIB + round},
            {.kind = POLICY_OP_SET_TARGET, .domid = 1, .value_kib = 300 * MIB + round},
            {.kind = POLICY_OP_SET_TARGET, .domid = 2, .value_kib = 200 * MIB},
        };
        for (int i = 0; i < 3; i++) {
            assert_int_equal(domcache_apply(x->dc, &ops[i]), 0);
            assert_int_equal(domcache_apply(dc, &ops[i]), 0);
        }
        if (round == 4) {
            assert_int_equal(sim_set_dynamic_range(x->sim, 7, 64 * MIB, 1 * GIB), 0);
            assert_int_equal(sim_set_dynamic_range(s, 7, 64 * MIB, 1 * GIB), 0);
            assert_int_equal(domcache_set_uncooperative(x->dc, 6, true), 0);
            assert_int_equal(domcache_set_uncooperative(dc, 6, true), 0);
        }
        if (round == 6) {
            assert_int_equal(sim_destroy_domain(x->sim, 8), 0);
            assert_int_equal(sim_destroy_domain(s, 8), 0);
        }
        sim_advance(x->sim, 1000);
        sim_advance(s, 1000);
    }
    domcache_snapshot_free(&ss);
    domcache_free(dc);
    backend_close(sb);
}

/* ---- faults ---- */

/* Destroyed between the domain list and the xenstore read: skipped, nothing stale. */
static void test_domain_destroyed_between_list_and_read(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 4), true);
    fakexen_destroy_on_read(2); /* on the first snapshot: a new entry */
    snap(f);
    /* Its memory went back to Xen after physinfo was asked: only the next snapshot
     * sees that; this one must just not show the domain. */
    assert_null(find(&f->snap, 2, NULL));
    assert_int_equal(f->snap.host.n_domains, 3);
    snap(f);
    assert_truth(f->sim, &f->snap);
    /* A warm entry: the read its watch asks for finds the domain gone. */
    xs_set(f->sim, 3, "memory/dynamic-max", "600000");
    fakexen_destroy_on_read(3);
    snap(f);
    snap(f);
    assert_null(find(&f->snap, 3, NULL));
    assert_truth(f->sim, &f->snap);
}

/* Destroyed between the start and the end of the write's transaction: the retry finds
 * the directory gone, nothing is written, the write "succeeds" (the domain has gone). */
static void test_domain_destroyed_inside_transaction(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 3), true);
    snap(f);
    fakexen_reset();
    fakexen_destroy_in_transaction(2);
    struct policy_op op = {.kind = POLICY_OP_SET_TARGET, .domid = 2, .value_kib = 100 * MIB};
    assert_int_equal(domcache_apply(f->dc, &op), 0);
    assert_false(sim_xs_exists(f->sim, "/local/domain/2"));
    struct fakexen_counters c;
    fakexen_counters(&c);
    assert_int_equal(c.tx_eagain, 1);
    assert_int_equal(c.tx_commit, 0);
    assert_int_equal(domcache_write(f->dc, 2, "memory/initial-reservation", "1"), -ENOENT);
    assert_false(sim_xs_exists(f->sim, "/local/domain/2"));
    snap(f);
    assert_truth(f->sim, &f->snap);
}

/* Conflicts are retried: EAGAIN twice, then the value is written once. */
static void test_transaction_conflicts_retried(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 3), true);
    snap(f);
    fakexen_reset();
    struct sim_counters s0, s1;
    sim_counters(f->sim, &s0);
    fakexen_fail_transactions(2);
    struct policy_op op = {.kind = POLICY_OP_SET_TARGET, .domid = 1, .value_kib = 200 * MIB};
    assert_int_equal(domcache_apply(f->dc, &op), 0);
    struct fakexen_counters c;
    fakexen_counters(&c);
    assert_int_equal(c.tx_eagain, 2);
    assert_int_equal(c.tx_commit, 1);
    sim_counters(f->sim, &s1);
    assert_int_equal(s1.xs_writes - s0.xs_writes, 1);
    int64_t t;
    assert_int_equal(sim_domain_memory(f->sim, 1, NULL, &t, NULL), 0);
    assert_int_equal(t, 200 * MIB);
    /* Conflicts that never end: -EAGAIN, and the cache did not pretend it was written. */
    fakexen_fail_transactions(1000);
    op.value_kib = 150 * MIB;
    assert_int_equal(domcache_apply(f->dc, &op), -EAGAIN);
    assert_int_equal(sim_domain_memory(f->sim, 1, NULL, &t, NULL), 0);
    assert_int_equal(t, 200 * MIB);
    fakexen_fail_transactions(0);
    assert_int_equal(domcache_apply(f->dc, &op), 0);
    assert_int_equal(sim_domain_memory(f->sim, 1, NULL, &t, NULL), 0);
    assert_int_equal(t, 150 * MIB);
    snap(f);
    assert_truth(f->sim, &f->snap);
}

/* A lost connection: BACKEND_ECONN, reconnected, watches registered again, the cache
 * rebuilt with the right values, and back to reading nothing. */
static void test_connection_drop_rebuilds(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 6), true);
    snap(f);
    snap(f);
    fakexen_reset();
    fakexen_drop_connection();
    /* Changes made while nobody listens. */
    assert_int_equal(sim_set_dynamic_range(f->sim, 3, 100 * MIB, 300 * MIB), 0);
    struct backend_watch_event ev = {0};
    assert_int_equal(f->b->ops->read_watch(f->b, &ev), BACKEND_ECONN);
    struct fakexen_counters c;
    fakexen_counters(&c);
    assert_int_equal(c.xs_open, 1);
    assert_int_equal(c.xs_watch, 2 + 6 * 4); /* every watch registered again */
    uint64_t rb = rebuilds(f);
    /* The cache hears it at its next look at the events (here: the snapshot). */
    fakexen_drop_connection();
    assert_int_equal(sim_set_dynamic_range(f->sim, 4, 100 * MIB, 300 * MIB), 0);
    snap(f);
    assert_int_equal(rebuilds(f) - rb, 1);
    assert_true(domcache_watching(f->dc));
    assert_int_equal(find(&f->snap, 3, NULL)->dynamic_max_kib, 300 * MIB);
    assert_int_equal(find(&f->snap, 4, NULL)->dynamic_max_kib, 300 * MIB);
    assert_truth(f->sim, &f->snap);
    uint64_t r0 = reads(f);
    snap(f);
    assert_int_equal(reads(f) - r0, 0);
    /* The watches work again. */
    xs_set(f->sim, 5, "memory/dynamic-max", "700000");
    r0 = reads(f);
    snap(f);
    assert_int_equal(reads(f) - r0, 1);
    assert_int_equal(find(&f->snap, 5, NULL)->dynamic_max_kib, 700000);
    assert_truth(f->sim, &f->snap);
}

/* The loss is noticed by a write first: it is retried on the new connection, and the
 * cache still learns that events were lost. */
static void test_connection_drop_seen_by_a_write(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 4), true);
    snap(f);
    fakexen_drop_connection();
    assert_int_equal(sim_set_dynamic_range(f->sim, 2, 100 * MIB, 300 * MIB), 0);
    struct policy_op op = {.kind = POLICY_OP_SET_TARGET, .domid = 1, .value_kib = 200 * MIB};
    assert_int_equal(domcache_apply(f->dc, &op), 0);
    int64_t t;
    assert_int_equal(sim_domain_memory(f->sim, 1, NULL, &t, NULL), 0);
    assert_int_equal(t, 200 * MIB);
    uint64_t rb = rebuilds(f);
    snap(f);
    assert_int_equal(rebuilds(f) - rb, 1);
    assert_int_equal(find(&f->snap, 2, NULL)->dynamic_max_kib, 300 * MIB);
    assert_truth(f->sim, &f->snap);
}

/* 10,000 events for one key: with room in the queue they cost one read; past the
 * queue's limit the connection is dropped (as xenstored does), the cache rebuilds, and
 * either way the value in use is the last one written. */
static void burst(void **state, size_t queue_limit, bool expect_rebuild)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 10), true);
    snap(f);
    snap(f);
    sim_xs_set_watch_queue_limit(f->sim, queue_limit);
    assert_int_equal(fakexen_watch_burst("/local/domain/4/memory/dynamic-max", "650000", 9999),
                     0);
    xs_set(f->sim, 4, "memory/dynamic-max", "660000");
    uint64_t rb = rebuilds(f), r0 = reads(f);
    snap(f);
    assert_int_equal(rebuilds(f) - rb, expect_rebuild ? 1 : 0);
    if (!expect_rebuild)
        assert_int_equal(reads(f) - r0, 1);
    assert_int_equal(find(&f->snap, 4, NULL)->dynamic_max_kib, 660000);
    assert_truth(f->sim, &f->snap);
    r0 = reads(f);
    snap(f);
    assert_int_equal(reads(f) - r0, 0);
    xs_set(f->sim, 4, "memory/dynamic-max", "670000");
    snap(f);
    assert_int_equal(find(&f->snap, 4, NULL)->dynamic_max_kib, 670000);
    assert_truth(f->sim, &f->snap);
}

static void test_watch_burst_within_queue(void **state)
{
    burst(state, 20000, false);
}

static void test_watch_burst_overflowing_queue(void **state)
{
    burst(state, 5000, true);
}

/* Booting accounting with the shadow memory libxenctrl reports. */
static void test_booting_shadow_through_xen(void **state)
{
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[1].initial_reservation_kib = 1 * GIB;
    d[1].target_kib = d[1].dynamic_min_kib = d[1].dynamic_max_kib = 1 * GIB;
    d[1].maxmem_kib = 1 * GIB;
    d[1].actual_kib = 0;
    d[1].balloon.rate_kib_s = 65536;
    struct xfx *f = xfx_open(state, harness_world(d, 2), true);
    fakexen_set_shadow_mib(2, 8);
    sim_advance(f->sim, 1000);
    snap(f);
    const struct domcache_domain_extra *x = NULL;
    const struct policy_domain *p = find(&f->snap, 2, &x);
    assert_true(x->booting);
    assert_int_equal(p->actual_kib, 1 * GIB);
    assert_int_equal(f->snap.booting_unused_kib, 1 * GIB - 65536 - 8 * MIB);
    assert_int_equal(f->snap.host.free_kib,
                     sim_host_free_kib(f->sim) - (1 * GIB - 65536 - 8 * MIB));
}

/* Steady state through the real backend code too: no reads, two hypercalls. */
static void test_steady_state_over_xen(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 1000), true);
    snap(f);
    snap(f);
    fakexen_reset();
    struct domcache_counters c0, c1;
    domcache_counters(f->dc, &c0);
    for (int i = 0; i < 20; i++)
        snap(f);
    domcache_counters(f->dc, &c1);
    struct fakexen_counters c;
    fakexen_counters(&c);
    assert_int_equal(c1.xenstore_reads - c0.xenstore_reads, 0);
    assert_int_equal(c.xs_read + c.xs_directory, 0);
    assert_int_equal(c.getinfolist, 20);
    assert_int_equal(c.physinfo, 20);
    assert_int_equal(c1.hypercalls - c0.hypercalls, 40);
    assert_truth(f->sim, &f->snap);
}

/* ---- claims, maxmem and squeezes over the Xen backend (virtual time) ---- */

/* The xen backend's clock is the real one; these tests let the sim's virtual clock stand
 * in for it, so that a squeeze over backend/xen.c runs minutes of ballooning at once. */
static struct backend_ops virt_ops;
static struct sim *virt_world;

static int64_t virt_now_ms(struct backend *b)
{
    (void)b;
    return sim_now_ms(virt_world);
}

static void virt_sleep_ms(struct backend *b, int64_t ms)
{
    (void)b;
    sim_advance(virt_world, ms);
}

static bool virt_is_virtual(struct backend *b)
{
    (void)b;
    return true;
}

struct vsq {
    struct xfx *f;
    struct squeezer *sq;
    unsigned stuck_seen; /* domains declared stuck, all rounds */
};

static void vsq_observe(void *ctx, const struct domcache_snapshot *s,
                        const struct policy_decision *d)
{
    (void)s;
    ((struct vsq *)ctx)->stuck_seen += (unsigned)d->n_newly_stuck;
}

/* The rig is the test's state (teardown closes it); vsq_close frees the squeezer. */
static struct vsq *vsq_open(void **state, struct sim *s)
{
    struct vsq *v = xcalloc(1, sizeof(*v));
    v->f = xfx_open(state, s, true);
    virt_world = s;
    virt_ops = *v->f->b->ops;
    virt_ops.now_ms = virt_now_ms;
    virt_ops.sleep_ms = virt_sleep_ms;
    virt_ops.clock_is_virtual = virt_is_virtual;
    v->f->b->ops = &virt_ops;
    struct squeeze_config cfg = {.reserved_host_kib = 73728, .poll_ms = 250};
    v->sq = squeezer_new(v->f->b, v->f->dc, &cfg, NULL, NULL);
    squeeze_set_observer(v->sq, vsq_observe, v);
    return v;
}

static void vsq_close(struct vsq *v)
{
    squeezer_free(v->sq);
    virt_world = NULL;
    free(v);
}

static void assert_no_violation(struct sim *s)
{
    size_t n = sim_violation_count(s);
    for (size_t i = 0; i < n; i++)
        print_message("violation: %s\n", sim_violation(s, i));
    assert_int_equal(n, 0);
}

static int64_t sim_maxmem(struct sim *s, uint32_t domid)
{
    int64_t a, t, m;
    assert_int_equal(sim_domain_memory(s, domid, &a, &t, &m), 0);
    return m;
}

/* A domain another tool builds: it allocates 2 GiB over 64 s out of a 2 GiB claim, with
 * no memory/initial-reservation (no reservation of ours). Guests that could grow into
 * 14 GiB are balanced and a reservation is made meanwhile: the claim is never handed to
 * a guest (no violation, nobody found stuck), and the reservation's memory is there. */
static void test_claim_of_a_domain_built_elsewhere(void **state)
{
    struct sim_domain_spec d[9];
    for (uint32_t i = 0; i < 8; i++) {
        d[i] = harness_guest(i + 1);
        d[i].dynamic_max_kib = d[i].maxmem_kib = 2 * GIB;
    }
    sim_domain_spec_default(&d[8], 20);
    d[8].initial_reservation_kib = 2 * GIB;
    d[8].target_kib = d[8].dynamic_min_kib = d[8].dynamic_max_kib = 2 * GIB;
    d[8].maxmem_kib = 2 * GIB;
    d[8].actual_kib = 0;
    d[8].claim_kib = 2 * GIB;
    d[8].boot_after_s = 3600;
    d[8].balloon.model = SIM_BALLOON_NONE;
    d[8].balloon.rate_kib_s = 32 * MIB;
    struct vsq *v = vsq_open(state, harness_world(d, 9));
    struct sim *s = v->f->sim;
    assert_int_equal(sim_xs_rm(s, "/local/domain/20/memory/initial-reservation"), 0);
    int64_t maxmem20 = sim_maxmem(s, 20);

    struct squeeze_result res;
    assert_int_equal(squeeze_balance(v->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    squeeze_result_free(&res);
    assert_true(sim_claimed_kib(s) > 0); /* still building */
    assert_int_equal(squeeze_free(v->sq, 1 * GIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    squeeze_result_free(&res);
    /* Free, less what is claimed and what the guests may still grow into. */
    int64_t g = sim_host_free_kib(s) - sim_claimed_kib(s);
    for (uint32_t i = 1; i <= 8; i++) {
        int64_t a, t, m;
        assert_int_equal(sim_domain_memory(s, i, &a, &t, &m), 0);
        if (t > a)
            g -= t - a;
    }
    assert_true(g >= 1 * GIB + 73728);
    /* The build goes on to its end, and nothing it was promised went elsewhere. */
    sim_advance(s, 70 * 1000);
    assert_int_equal(sim_claimed_kib(s), 0);
    assert_int_equal(v->stuck_seen, 0);
    assert_int_equal(sim_maxmem(s, 20), maxmem20);
    assert_no_violation(s);
    vsq_close(v);
}

/* A booting domain with a transferred reservation of 1 GiB and a claim of 1 GiB: the
 * same pages, counted once (the larger); a claim larger than the unused reservation
 * counts for the rest. A booted domain's claim counts in full. */
static void test_claim_and_reservation_counted_once(void **state)
{
    struct sim_domain_spec d[2] = {harness_guest(1), harness_guest(2)};
    d[1].initial_reservation_kib = 1 * GIB;
    d[1].target_kib = d[1].dynamic_min_kib = d[1].dynamic_max_kib = 1 * GIB;
    d[1].maxmem_kib = 1 * GIB;
    d[1].actual_kib = 0;
    d[1].claim_kib = 1 * GIB;
    d[1].balloon.rate_kib_s = 1; /* stays unbooted */
    struct xfx *f = xfx_open(state, harness_world(d, 2), true);
    snap(f);
    int64_t xen_free = sim_host_free_kib(f->sim);
    assert_int_equal(f->snap.booting_unused_kib, 1 * GIB);
    assert_int_equal(f->snap.claims_kib, 0);
    assert_int_equal(f->snap.host.free_kib, xen_free - 1 * GIB);

    assert_int_equal(sim_set_claim(f->sim, 2, 1536 * MIB), 0);
    snap(f);
    assert_int_equal(f->snap.claims_kib, 512 * MIB);
    assert_int_equal(f->snap.host.free_kib, xen_free - 1536 * MIB);

    assert_int_equal(sim_set_claim(f->sim, 2, 0), 0);
    assert_int_equal(sim_set_claim(f->sim, 1, 300 * MIB), 0);
    snap(f);
    assert_int_equal(f->snap.claims_kib, 300 * MIB);
    assert_int_equal(f->snap.host.free_kib, xen_free - 1 * GIB - 300 * MIB);
    /* Xen refuses a claim beyond the free memory not claimed by others. */
    assert_int_equal(sim_set_claim(f->sim, 2, xen_free), -ENOMEM);
}

/* The toolstack changes maxmem behind our back: the next snapshot sees Xen's value, and
 * a setmaxmem to the value we set before is made, not skipped on a cached figure. */
static void test_toolstack_changes_maxmem(void **state)
{
    struct xfx *f = xfx_open(state, harness_world(NULL, 2), true);
    snap(f);
    assert_int_equal(domcache_set_maxmem(f->dc, 1, 400 * MIB), 0);
    snap(f);
    assert_int_equal(find(&f->snap, 1, NULL)->maxmem_kib, 400 * MIB);
    /* xenopsd sets it (HVM: Xen's value carries the 1 MiB slack). */
    assert_int_equal(sim_set_maxmem(f->sim, 1, 600 * MIB + 1024), 0);
    assert_int_equal(domcache_set_maxmem(f->dc, 1, 400 * MIB), 0);
    assert_int_equal(sim_maxmem(f->sim, 1), 400 * MIB);
    assert_int_equal(sim_set_maxmem(f->sim, 1, 700 * MIB + 1024), 0);
    snap(f);
    assert_int_equal(find(&f->snap, 1, NULL)->maxmem_kib, 700 * MIB);
    assert_truth(f->sim, &f->snap);
    /* A transfer raises from Xen's value asked now: with maxmem set to 0 behind our
     * back after we cached 700 MiB, it still ends above 0. */
    assert_int_equal(sim_set_maxmem(f->sim, 1, 0), 0);
    assert_int_equal(domcache_raise_maxmem(f->dc, 1, 300 * MIB), 0);
    assert_int_equal(sim_maxmem(f->sim, 1), 300 * MIB);
    /* ... and never lowers it. */
    assert_int_equal(domcache_raise_maxmem(f->dc, 1, 100 * MIB), 0);
    assert_int_equal(sim_maxmem(f->sim, 1), 300 * MIB);
    assert_int_equal(domcache_raise_maxmem(f->dc, 9, 100 * MIB), -ESRCH);
}

/* A domain with no balloon driver builds for 60 s while balances and reservations run
 * around it: its maxmem is never lowered, its target never written; a transfer to it
 * leaves maxmem > 0 and at least the reservation. */
static void test_building_domain_keeps_its_maxmem(void **state)
{
    struct sim_domain_spec d[3] = {harness_guest(1), harness_guest(2)};
    sim_domain_spec_default(&d[2], 7);
    d[2].type = DOMAIN_TYPE_PV; /* no slack: a maxmem of 0 would be 0 pages */
    d[2].initial_reservation_kib = 1 * GIB;
    d[2].target_kib = d[2].dynamic_min_kib = d[2].dynamic_max_kib = 1 * GIB;
    d[2].maxmem_kib = 1536 * MIB;
    d[2].actual_kib = 0;
    d[2].balloon.model = SIM_BALLOON_NONE;
    d[2].balloon.rate_kib_s = 16 * MIB; /* 64 s */
    struct vsq *v = vsq_open(state, harness_world(d, 3));
    struct sim *s = v->f->sim;
    char *before = NULL;
    assert_int_equal(sim_xs_read(s, "/local/domain/7/memory/target", &before), 0);
    struct squeeze_result res;
    for (int t = 0; t < 60; t += 10) {
        assert_true(squeeze_check(v->sq) >= 0);
        assert_int_equal(squeeze_balance(v->sq, &res), 0);
        squeeze_result_free(&res);
        assert_int_equal(squeeze_free(v->sq, 256 * MIB, &res), 0);
        assert_int_equal(res.verdict, POLICY_SUCCESS);
        squeeze_result_free(&res);
        assert_int_equal(sim_maxmem(s, 7), 1536 * MIB);
        sim_advance(s, 10 * 1000);
    }
    char *after = NULL;
    assert_int_equal(sim_xs_read(s, "/local/domain/7/memory/target", &after), 0);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* A stale cached figure does not skip the transfer's raise either (the toolstack
     * lowered maxmem to just above what the domain holds). */
    assert_int_equal(sim_set_maxmem(s, 7, 1000 * MIB), 0);
    assert_int_equal(domcache_raise_maxmem(v->f->dc, 7, 1 * GIB), 0);
    assert_true(sim_maxmem(s, 7) > 0);
    assert_int_equal(sim_maxmem(s, 7), 1 * GIB);
    /* And even asked to, the cache never lowers the maxmem of a domain without driver. */
    assert_int_equal(domcache_set_maxmem(v->f->dc, 7, 100 * MIB), 0);
    assert_int_equal(sim_maxmem(s, 7), 1 * GIB);
    assert_no_violation(s);
    vsq_close(v);
}

/* A setmaxmem that fails is logged and tried again at the next round; a target that was
 * to go up after a failed maxmem raise is not written (it would be above maxmem). */
static void test_failed_setmaxmem_retried(void **state)
{
    struct vsq *v = vsq_open(state, harness_world(NULL, 2));
    struct sim *s = v->f->sim;
    /* Take 8 GiB of the 8 GiB free: both guests go down (the host reserve comes out of
     * them); the first maxmem lowering fails. */
    fakexen_fail_setmaxmem(1);
    struct squeeze_result res;
    assert_int_equal(squeeze_free(v->sq, 8 * GIB, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    squeeze_result_free(&res);
    for (uint32_t i = 1; i <= 2; i++) {
        int64_t a, t, m;
        assert_int_equal(sim_domain_memory(s, i, &a, &t, &m), 0);
        assert_int_equal(m, t);
    }
    /* Growing: the first raise fails, so its target waits for the next round. */
    fakexen_fail_setmaxmem(1);
    assert_int_equal(squeeze_balance(v->sq, &res), 0);
    assert_int_equal(res.verdict, POLICY_SUCCESS);
    squeeze_result_free(&res);
    for (uint32_t i = 1; i <= 2; i++) {
        int64_t a, t, m;
        assert_int_equal(sim_domain_memory(s, i, &a, &t, &m), 0);
        assert_int_equal(m, t);
        assert_int_equal(t, 512 * MIB);
    }
    assert_no_violation(s);
    vsq_close(v);
}

int main(void)
{
    log_init("test_xen", true, 0);
    log_quiet(true);
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_without_hypervisor_says_why),
        T(test_world_from_environment),
        T(test_xenstore_operations),
        T(test_domain_list_in_batches),
        T(test_same_snapshots_as_sim_backend),
        T(test_domain_destroyed_between_list_and_read),
        T(test_domain_destroyed_inside_transaction),
        T(test_transaction_conflicts_retried),
        T(test_connection_drop_rebuilds),
        T(test_connection_drop_seen_by_a_write),
        T(test_watch_burst_within_queue),
        T(test_watch_burst_overflowing_queue),
        T(test_booting_shadow_through_xen),
        T(test_steady_state_over_xen),
        T(test_claim_of_a_domain_built_elsewhere),
        T(test_claim_and_reservation_counted_once),
        T(test_toolstack_changes_maxmem),
        T(test_building_domain_keeps_its_maxmem),
        T(test_failed_setmaxmem_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
