/* SPDX-License-Identifier: LGPL-2.1-only */
/* The bounded sample ring behind GET /history (server/history.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/history.h"

static struct history *mk(size_t samples, size_t entries, int64_t interval_ms)
{
    struct history_config c = {
        .max_samples = samples, .max_entries = entries, .min_interval_ms = interval_ms};
    return history_new(&c);
}

static json_int_t ival(const json_t *a, size_t i)
{
    const json_t *v = json_array_get(a, i);
    assert_non_null(v);
    return json_integer_value(v);
}

static const json_t *dom_of(const json_t *j, int domid)
{
    const json_t *doms = json_object_get(j, "domains");
    for (size_t i = 0; i < json_array_size(doms); i++) {
        const json_t *d = json_array_get(doms, i);
        if (json_integer_value(json_object_get(d, "domid")) == domid)
            return d;
    }
    return NULL;
}

static void test_empty_history_has_empty_series(void **state)
{
    (void)state;
    struct history *h = mk(8, 64, 1000);
    json_t *j = history_json(h, 5000, 60000, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "host"), "t_ms")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "domains")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "samples")), 0);
    json_decref(j);
    history_free(h);
    history_free(NULL);
}

static void test_one_sample_per_interval_newest_wins(void **state)
{
    (void)state;
    struct history *h = mk(8, 64, 1000);
    struct history_domain d = {.domid = 1, .target_kib = 100, .actual_kib = 90};
    history_add(h, 1000, 500, &d, 1);
    d.actual_kib = 95;
    history_add(h, 1400, 510, &d, 1); /* same second: replaces */
    d.actual_kib = 100;
    history_add(h, 2100, 520, &d, 1); /* next second: appended */
    assert_int_equal(history_count(h), 2);
    json_t *j = history_json(h, 3000, 60000, NULL, 0);
    const json_t *host = json_object_get(j, "host");
    assert_int_equal(json_array_size(json_object_get(host, "free_kib")), 2);
    assert_int_equal(ival(json_object_get(host, "free_kib"), 0), 510);
    assert_int_equal(ival(json_object_get(host, "t_ms"), 0), 1400);
    assert_int_equal(ival(json_object_get(host, "free_kib"), 1), 520);
    const json_t *d1 = dom_of(j, 1);
    assert_non_null(d1);
    assert_int_equal(ival(json_object_get(d1, "actual_kib"), 0), 95);
    assert_int_equal(ival(json_object_get(d1, "actual_kib"), 1), 100);
    json_decref(j);
    history_free(h);
}

static void test_repeats_cost_nothing_but_move_last_seen(void **state)
{
    (void)state;
    struct history *h = mk(4, 64, 1000);
    struct history_domain d = {.domid = 3, .target_kib = 7, .actual_kib = 7};
    for (int64_t t = 0; t < 100000; t += 1000)
        history_add(h, t, 42, &d, 1);
    assert_int_equal(history_count(h), 1);
    json_t *j = history_json(h, 100000, 1000000, NULL, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "last_sample_ms")), 99000);
    json_decref(j);
    history_free(h);
}

static void test_sample_ring_is_bounded(void **state)
{
    (void)state;
    struct history *h = mk(4, 64, 1000);
    for (int i = 0; i < 10; i++) {
        struct history_domain d = {.domid = 1, .target_kib = i, .actual_kib = i};
        history_add(h, i * 1000, i, &d, 1);
    }
    assert_int_equal(history_count(h), 4);
    json_t *j = history_json(h, 10000, 1000000, NULL, 0);
    const json_t *f = json_object_get(json_object_get(j, "host"), "free_kib");
    assert_int_equal(json_array_size(f), 4);
    assert_int_equal(ival(f, 0), 6);
    assert_int_equal(ival(f, 3), 9);
    json_decref(j);
    history_free(h);
}

/* Against a model that keeps everything: whatever the ring keeps is the newest samples,
 * each with exactly its own entries, over many wraps of the entry pool with samples of
 * varying sizes. Every value is distinct so that no point is merged away. */
static void test_entry_pool_wraps_and_keeps_the_newest_intact(void **state)
{
    (void)state;
    enum { ROUNDS = 400, MAXN = 7, POOL = 17 };
    struct history *h = mk(64, POOL, 1); /* the pool binds, not the sample ring */
    static int ns[ROUNDS];
    unsigned seed = 12345;
    for (int r = 0; r < ROUNDS; r++) {
        seed = seed * 1103515245u + 12345u;
        int n = 1 + (int)((seed >> 16) % MAXN);
        ns[r] = n;
        struct history_domain d[MAXN];
        for (int i = 0; i < n; i++) /* reversed: history sorts */
            d[i] = (struct history_domain){.domid = n - 1 - i,
                                           .target_kib = r * 1000 + (n - 1 - i),
                                           .actual_kib = -(r * 1000 + (n - 1 - i))};
        history_add(h, r, r, d, (size_t)n);
        size_t kept = history_count(h);
        assert_true(kept >= 1 && kept <= 64);
        size_t entries = 0;
        for (size_t k = 0; k < kept; k++)
            entries += (size_t)ns[r - (int)k];
        assert_true(entries <= POOL);
        json_t *j = history_json(h, r, 1000000, NULL, 0);
        const json_t *f = json_object_get(json_object_get(j, "host"), "free_kib");
        assert_int_equal(json_array_size(f), kept);
        for (size_t k = 0; k < kept; k++)
            assert_int_equal(ival(f, k), r - (int)(kept - 1 - k));
        for (int dom = 0; dom < MAXN; dom++) {
            const json_t *dj = dom_of(j, dom);
            if (dj == NULL) {
                assert_true(dom >= n); /* every domain of the newest sample is there */
                continue;
            }
            const json_t *tg = json_object_get(dj, "target_kib");
            const json_t *ac = json_object_get(dj, "actual_kib");
            size_t p = 0;
            for (size_t k = 0; k < kept; k++) {
                int rr = r - (int)(kept - 1 - k);
                if (dom >= ns[rr])
                    continue;
                assert_int_equal(ival(tg, p), rr * 1000 + dom);
                assert_int_equal(ival(ac, p), -(rr * 1000 + dom));
                p++;
            }
            assert_int_equal(json_array_size(tg), p);
        }
        json_decref(j);
    }
    history_free(h);
}

static void test_window_starts_with_the_value_in_force(void **state)
{
    (void)state;
    struct history *h = mk(16, 64, 1000);
    struct history_domain d = {.domid = 2, .target_kib = 10, .actual_kib = 10};
    history_add(h, 0, 100, &d, 1);
    d.actual_kib = 20;
    history_add(h, 50000, 200, &d, 1);
    history_add(h, 90000, 200, &d, 1); /* a repeat */
    json_t *j = history_json(h, 100000, 60000, NULL, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "from_ms")), 40000);
    const json_t *host = json_object_get(j, "host");
    assert_int_equal(ival(json_object_get(host, "t_ms"), 0), 40000); /* clamped */
    assert_int_equal(ival(json_object_get(host, "free_kib"), 0), 100);
    assert_int_equal(ival(json_object_get(host, "t_ms"), 1), 50000);
    assert_int_equal(json_array_size(json_object_get(host, "t_ms")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "last_sample_ms")), 90000);
    json_decref(j);
    /* A window after every change: one point per series, the value in force. */
    j = history_json(h, 100000, 10000, NULL, 0);
    const json_t *d2 = dom_of(j, 2);
    assert_int_equal(json_array_size(json_object_get(d2, "t_ms")), 1);
    assert_int_equal(ival(json_object_get(d2, "actual_kib"), 0), 20);
    json_decref(j);
    history_free(h);
}

static void test_domid_filter_keeps_order_and_skips_unknown(void **state)
{
    (void)state;
    struct history *h = mk(8, 64, 1000);
    struct history_domain d[3] = {{5, 1, 1}, {1, 2, 2}, {9, 3, 3}};
    history_add(h, 0, 0, d, 3);
    int32_t want[3] = {9, 4, 1};
    json_t *j = history_json(h, 0, 1000, want, 3);
    const json_t *doms = json_object_get(j, "domains");
    assert_int_equal(json_array_size(doms), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doms, 0), "domid")), 9);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doms, 1), "domid")), 1);
    json_decref(j);
    /* Unfiltered: sorted by domid. */
    j = history_json(h, 0, 1000, NULL, 0);
    doms = json_object_get(j, "domains");
    assert_int_equal(json_array_size(doms), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doms, 0), "domid")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doms, 2), "domid")), 9);
    json_decref(j);
    history_free(h);
}

static void test_too_many_domains_keeps_the_lowest_domids(void **state)
{
    (void)state;
    struct history *h = mk(8, 2, 1000);
    struct history_domain d[3] = {{7, 1, 1}, {3, 2, 2}, {0, 3, 3}};
    history_add(h, 0, 0, d, 3);
    json_t *j = history_json(h, 0, 1000, NULL, 0);
    const json_t *doms = json_object_get(j, "domains");
    assert_int_equal(json_array_size(doms), 2);
    assert_non_null(dom_of(j, 0));
    assert_non_null(dom_of(j, 3));
    assert_null(dom_of(j, 7));
    json_decref(j);
    history_free(h);
}

static void test_bytes_is_the_stated_bound(void **state)
{
    (void)state;
    struct history_config c = {
        .max_samples = 3600, .max_entries = 131072, .min_interval_ms = 1000};
    size_t b = history_bytes(&c);
    /* 24-byte entries and 32-byte samples on LP64: 3 MiB + 112.5 KiB + the struct. */
    assert_true(b >= 131072 * 20 + 3600 * 32);
    assert_true(b < 131072 * 24 + 3600 * 32 + 256);
    struct history *h = history_new(&c);
    json_t *j = history_json(h, 0, 0, NULL, 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "capacity"), "bytes")),
        (json_int_t)b);
    json_decref(j);
    history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_history_has_empty_series),
        cmocka_unit_test(test_one_sample_per_interval_newest_wins),
        cmocka_unit_test(test_repeats_cost_nothing_but_move_last_seen),
        cmocka_unit_test(test_sample_ring_is_bounded),
        cmocka_unit_test(test_entry_pool_wraps_and_keeps_the_newest_intact),
        cmocka_unit_test(test_window_starts_with_the_value_in_force),
        cmocka_unit_test(test_domid_filter_keeps_order_and_skips_unknown),
        cmocka_unit_test(test_too_many_domains_keeps_the_lowest_domids),
        cmocka_unit_test(test_bytes_is_the_stated_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
