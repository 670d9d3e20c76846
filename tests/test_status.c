/* SPDX-License-Identifier: LGPL-2.1-only */
/* The published reservations (server/status.h): a persistent tree in step with the list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cache/domcache.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/reservations.h"
#include "server/status.h"
#include "sim/sim.h"

/* A small deterministic generator (xorshift64*), so that a failure can be replayed. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

/* Sizes are divided by this under valgrind (the valgrind stage sets VALGRIND=1): memcheck
 * finds the same errors on a smaller tree, at 50 times the cost per step; the normal and
 * ASan runs take the full sizes. */
static size_t scale_down(void)
{
    const char *v = getenv("VALGRIND");
    return v != NULL && strcmp(v, "1") == 0 ? 4 : 1;
}

/* ---- the tree against a model ------------------------------------------------------- */

struct model_row {
    struct reservation x;
    char id[48];
    bool gone; /* removed (compacted away once they are half the rows) */
};

/* Rows by seq. Removal marks a row gone (no memmove of the rows behind it per removal: at
 * tens of thousands of rows those made this test take seconds, minutes under valgrind). */
struct model {
    struct model_row *rows;
    size_t n;     /* rows held (not gone) */
    size_t slots; /* rows in the array, gone ones included */
    size_t cap;
    uint64_t next_seq;
};

static const char *const sessions[] = {"xenopsd", "xapi", "other@host-1", "s"};

/* The row as a reservation (its id points into the row, which may have moved). */
static const struct reservation *model_x(struct model_row *r)
{
    r->x.id = r->id;
    return &r->x;
}

static void model_add(struct model *m)
{
    if (m->slots == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 256;
        m->rows = xreallocarray(m->rows, m->cap, sizeof(*m->rows));
    }
    struct model_row *r = &m->rows[m->slots++];
    m->n++;
    r->gone = false;
    uint64_t seq = m->next_seq++;
    /* Now and then an id that needs escaping (ids read back from xenstore are any text). */
    if (seq % 97 == 5)
        snprintf(r->id, sizeof(r->id), "odd\"id\\%" PRIu64, seq);
    else
        snprintf(r->id, sizeof(r->id), "%016" PRIx64 "-%08" PRIx64, rnd(), seq);
    r->x = (struct reservation){.id = r->id,
                                .session = (char *)sessions[rnd_below(4)],
                                .kib = (int64_t)rnd_below(1u << 30),
                                .domid = rnd_below(5) == 0 ? (int32_t)rnd_below(32768) : -1,
                                .seq = seq};
}

/* The last row added. */
static struct model_row *model_last(struct model *m)
{
    return &m->rows[m->slots - 1];
}

/* Drop the gone rows once they are half the array. */
static void model_compact(struct model *m)
{
    if (m->slots - m->n <= m->slots / 2)
        return;
    size_t w = 0;
    for (size_t i = 0; i < m->slots; i++)
        if (!m->rows[i].gone)
            m->rows[w++] = m->rows[i];
    m->slots = w;
}

/* The slot of a random row held (m->n > 0). */
static size_t model_pick(struct model *m)
{
    model_compact(m);
    for (;;) {
        size_t i = rnd_below(m->slots);
        if (!m->rows[i].gone)
            return i;
    }
}

/* The first slot at or after i holding a row, or m->slots. */
static size_t model_next(const struct model *m, size_t i)
{
    while (i < m->slots && m->rows[i].gone)
        i++;
    return i;
}

static void model_remove(struct model *m, size_t i)
{
    m->rows[i].gone = true;
    m->n--;
}

/* What /status's "reservations" must be: written by jansson, independently. */
static char *model_json(const struct model *m)
{
    json_t *a = json_array();
    for (size_t i = 0; i < m->slots; i++) {
        if (m->rows[i].gone)
            continue;
        const struct reservation *x = &m->rows[i].x;
        json_t *o = json_pack("{s:s, s:s, s:I}", "id", m->rows[i].id, "session", x->session,
                              "kib", (json_int_t)x->kib);
        if (x->domid >= 0)
            json_object_set_new(o, "domid", json_integer(x->domid));
        json_array_append_new(a, o);
    }
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

static void assert_tree_ok(const struct status_resvs *v, unsigned *height)
{
    const char *why = NULL;
    unsigned h = 0;
    if (status_resvs_check(v, &h, &why) < 0)
        fail_msg("tree broken: %s", why);
    if (height != NULL)
        *height = h;
}

static void assert_same_json(const struct status_resvs *v, const char *expected)
{
    size_t len;
    char *got = status_resvs_json(v, &len);
    assert_string_equal(got, expected);
    assert_int_equal(len, strlen(expected));
    free(got);
}

/* A version kept while later ones are made, with what it held then. */
struct kept {
    struct status_resvs *v;
    char *json;
};

static void test_empty_set(void **state)
{
    (void)state;
    struct status_resvs *v = status_resvs_new(NULL);
    unsigned h;
    assert_tree_ok(v, &h);
    assert_int_equal(h, 0);
    assert_int_equal(status_resvs_count(v), 0);
    assert_same_json(v, "[]");
    /* Removing or changing what is not there changes nothing. */
    struct reservation x = {
        .id = (char *)"a", .session = (char *)"s", .kib = 1, .domid = -1, .seq = 7};
    struct status_resvs *w = status_resvs_remove(v, 7);
    struct status_resvs *u = status_resvs_set(w, &x);
    assert_same_json(u, "[]");
    struct status_resvs *t = status_resvs_add(u, &x);
    assert_same_json(t, "[{\"id\":\"a\",\"session\":\"s\",\"kib\":1}]");
    struct status_resvs *e = status_resvs_remove(t, 7);
    assert_tree_ok(e, &h);
    assert_int_equal(h, 0);
    assert_same_json(e, "[]");
    assert_same_json(t, "[{\"id\":\"a\",\"session\":\"s\",\"kib\":1}]");
    status_resvs_unref(v);
    status_resvs_unref(w);
    status_resvs_unref(u);
    status_resvs_unref(t);
    status_resvs_unref(e);
    status_resvs_unref(NULL);
}

/* Random adds (at the end), removals anywhere and changes of one row, checked against the
 * model after every change while small and every few changes once large; versions kept
 * along the way must still hold what they held. Grows past 3 levels, then empties in a
 * random order (merging and evening out nodes at every level). */
static void test_random_changes_match_the_model(void **state)
{
    (void)state;
    rng_state = 0x9e3779b97f4a7c15ULL;
    struct model m = {0};
    struct status_resvs *v = status_resvs_new(NULL);
    enum { KEPT = 8 };
    const size_t GROW = 12000 / scale_down();
    struct kept kept[KEPT] = {{0}};
    size_t changes = 0;
    unsigned h, max_height = 0;
    for (int phase = 0; phase < 2; phase++) {
        size_t steps = phase == 0 ? 3 * GROW : 4 * GROW;
        for (size_t step = 0; step < steps && !(phase == 1 && m.n == 0); step++) {
            struct status_resvs *nv;
            size_t what = rnd_below(10);
            bool grow = phase == 0 ? what < 6 : what < 1; /* add / (remove or change) */
            if (grow || m.n == 0) {
                model_add(&m);
                nv = status_resvs_add(v, model_x(model_last(&m)));
            } else if (what % 3 == 0) {
                struct model_row *r = &m.rows[model_pick(&m)];
                r->x.domid = (int32_t)rnd_below(32768);
                nv = status_resvs_set(v, model_x(r));
            } else {
                /* Removals cluster now and then, as a login purging a session does. */
                size_t at = model_pick(&m);
                size_t run = what == 1 ? 1 + rnd_below(300) : 1;
                nv = v;
                status_resvs_ref(nv);
                for (size_t k = 0; k < run && at < m.slots; k++) {
                    struct status_resvs *t = status_resvs_remove(nv, m.rows[at].x.seq);
                    status_resvs_unref(nv);
                    nv = t;
                    model_remove(&m, at);
                    at = model_next(&m, at);
                }
            }
            status_resvs_unref(v);
            v = nv;
            changes++;
            assert_int_equal(status_resvs_count(v), m.n);
            if (m.n < 300 || changes % 997 == 0) {
                assert_tree_ok(v, &h);
                if (h > max_height)
                    max_height = h;
                char *want = model_json(&m);
                assert_same_json(v, want);
                /* Keep this version; check the one it replaces still holds what it did. */
                struct kept *k = &kept[changes % KEPT];
                if (k->v != NULL) {
                    assert_tree_ok(k->v, NULL);
                    assert_same_json(k->v, k->json);
                    status_resvs_unref(k->v);
                    free(k->json);
                }
                k->v = status_resvs_ref(v);
                k->json = want;
            }
        }
    }
    assert_int_equal(m.n, 0);
    assert_tree_ok(v, &h);
    assert_int_equal(h, 0);
    assert_true(max_height >= 3); /* the test did reach inner nodes above inner nodes */
    for (size_t k = 0; k < KEPT; k++) {
        if (kept[k].v == NULL)
            continue;
        assert_same_json(kept[k].v, kept[k].json);
        status_resvs_unref(kept[k].v);
        free(kept[k].json);
    }
    status_resvs_unref(v);
    free(m.rows);
}

/* A change copies one path: the depth stays logarithmic and a version after one change
 * of a large set shares all but a few of its leaves (their JSON is not built again). */
static void test_depth_is_logarithmic(void **state)
{
    (void)state;
    rng_state = 12345;
    struct model m = {0};
    struct status_resvs *v = status_resvs_new(NULL);
    const size_t rows = 40000 / scale_down();
    for (size_t i = 0; i < rows; i++) {
        model_add(&m);
        struct status_resvs *nv = status_resvs_add(v, model_x(model_last(&m)));
        status_resvs_unref(v);
        v = nv;
    }
    unsigned h;
    assert_tree_ok(v, &h);
    assert_true(h >= 3 && h <= 4);
    /* Remove three rows out of four, in a random order: the tree gets no deeper. */
    for (size_t k = 0; k < rows / 4 * 3; k++) {
        size_t at = model_pick(&m);
        struct status_resvs *nv = status_resvs_remove(v, m.rows[at].x.seq);
        model_remove(&m, at);
        status_resvs_unref(v);
        v = nv;
    }
    unsigned h2;
    assert_tree_ok(v, &h2);
    assert_true(h2 <= h);
    char *want = model_json(&m);
    assert_same_json(v, want);
    free(want);
    status_resvs_unref(v);
    free(m.rows);
}

/* ---- kept in step with the reservations ------------------------------------------------ */

static const char scenario_text[] = "{ \"name\": \"status\","
                                    "  \"host\": { \"total_kib\": 67108864, \"free_kib\": "
                                    "33554432 },"
                                    "  \"domains\": [] }";

struct stack {
    struct backend *b;
    struct sim *sim;
    struct domcache *dc;
    struct reservations *r;
    struct status_resvs *v; /* what the observer keeps */
    size_t notified;
};

static void observe(void *ctx, enum reservations_change what, const struct reservation *x)
{
    struct stack *st = ctx;
    struct status_resvs *nv = NULL;
    switch (what) {
    case RESERVATIONS_ADDED:
        nv = status_resvs_add(st->v, x);
        break;
    case RESERVATIONS_CHANGED:
        nv = status_resvs_set(st->v, x);
        break;
    case RESERVATIONS_REMOVED:
        nv = status_resvs_remove(st->v, x->seq);
        break;
    }
    status_resvs_unref(st->v);
    st->v = nv;
    st->notified++;
}

static void stack_open(struct stack *st)
{
    struct domcache_config dcc = {.use_watches = true, .manage_domain_zero = false};
    st->dc = domcache_new(st->b, &dcc);
    st->r = reservations_new(st->b, st->dc);
    reservations_set_max_per_session(st->r, 100000);
    assert_int_equal(reservations_load(st->r), 0);
    st->v = status_resvs_new(st->r);
    reservations_set_observer(st->r, observe, st);
}

static void stack_close(struct stack *st)
{
    status_resvs_unref(st->v);
    reservations_free(st->r);
    domcache_free(st->dc);
}

/* The kept set serialises exactly as a copy of the list made now. */
static void assert_in_step(struct stack *st)
{
    assert_tree_ok(st->v, NULL);
    assert_int_equal(status_resvs_count(st->v), reservations_count(st->r));
    struct status_resvs *fresh = status_resvs_new(st->r);
    assert_tree_ok(fresh, NULL);
    size_t len;
    char *want = status_resvs_json(fresh, &len);
    assert_same_json(st->v, want);
    free(want);
    status_resvs_unref(fresh);
}

/* Many random logins, grants, deletes and transfers through the reservations module:
 * after each, the set kept by the observer is the list; then a restart (load) gives the
 * same rows again. */
static void test_observer_keeps_the_set_in_step(void **state)
{
    (void)state;
    rng_state = 777;
    log_quiet(true);
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    if (sim_scenario_parse(scenario_text, &sc, &err) < 0)
        fail_msg("scenario: %s", err);
    struct stack st = {0};
    st.sim = sim_new(sc, SIM_CLOCK_VIRTUAL, &err);
    if (st.sim == NULL)
        fail_msg("sim_new: %s", err);
    sim_scenario_free(sc);
    st.b = backend_sim_open(st.sim);
    stack_open(&st);
    const char *names[] = {"xenopsd", "xapi", "third"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(reservations_login(st.r, names[i], &(struct service_error){0}), 0);
    uint32_t next_domid = 1;
    size_t transfers = 0, logins = 0, deletes = 0;
    for (size_t step = 0; step < 3000; step++) {
        struct service_error e = {0};
        size_t what = rnd_below(1000);
        size_t n = reservations_count(st.r);
        if (what < 580 || n == 0) {
            char *id = NULL;
            const char *s = names[rnd_below(3)];
            assert_int_equal(reservations_grant(st.r, s, 1 + (int64_t)rnd_below(64), &id, &e),
                             0);
            free(id);
        } else if (what < 850) {
            const struct reservation *x = reservations_at(st.r, rnd_below(n));
            char *id = xstrdup(x->id);
            assert_int_equal(reservations_delete(st.r, x->session, id, &e), 0);
            free(id);
            deletes++;
        } else if (what < 993) {
            const struct reservation *x = reservations_at(st.r, rnd_below(n));
            if (x->domid >= 0)
                continue;
            uint32_t domid = next_domid++;
            struct sim_domain_spec sp = {
                .domid = domid,
                .type = DOMAIN_TYPE_HVM,
                .dynamic_min_kib = 1024,
                .dynamic_max_kib = 1024,
                .target_kib = 1024,
                .actual_kib = 1024,
                .maxmem_kib = 1024,
                .balloon = {.model = SIM_BALLOON_IDEAL, .rate_kib_s = 262144}};
            if (sim_create_domain(st.sim, &sp, &err) < 0)
                fail_msg("create domain %u: %s", domid, err);
            char *id = xstrdup(x->id);
            if (reservations_transfer(st.r, x->session, id, domid, &e) < 0)
                fail_msg("transfer: %s", e.text != NULL ? e.text : "?");
            free(id);
            transfers++;
        } else {
            assert_int_equal(reservations_login(st.r, names[rnd_below(3)], &e), 0);
            logins++;
        }
        service_error_clear(&e);
        if (step < 300 || step % 37 == 0)
            assert_in_step(&st);
    }
    assert_in_step(&st);
    assert_true(transfers > 100 && logins > 10 && deletes > 300);
    assert_true(reservations_count(st.r) > 100);
    /* A restart reads the same rows back (load order is xenstore's: compare as sets). */
    size_t len;
    char *before = status_resvs_json(st.v, &len);
    size_t n_before = reservations_count(st.r);
    stack_close(&st);
    stack_open(&st);
    assert_in_step(&st);
    assert_int_equal(reservations_count(st.r), n_before);
    json_t *a = json_loads(before, 0, NULL), *b = NULL;
    char *after = status_resvs_json(st.v, &len);
    b = json_loads(after, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(json_array_size(a), json_array_size(b));
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o)
    {
        const char *id = json_string_value(json_object_get(o, "id"));
        bool found = false;
        size_t k;
        json_t *p;
        json_array_foreach(b, k, p) found = found || json_equal(o, p);
        if (!found)
            fail_msg("reservation %s lost across the restart", id);
    }
    json_decref(a);
    json_decref(b);
    free(before);
    free(after);
    stack_close(&st);
    backend_close(st.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_set),
        cmocka_unit_test(test_random_changes_match_the_model),
        cmocka_unit_test(test_depth_is_logarithmic),
        cmocka_unit_test(test_observer_keeps_the_set_in_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
