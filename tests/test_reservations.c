/* SPDX-License-Identifier: LGPL-2.1-only */
/* Sessions and reservations (SPEC 4) over the simulated host on the virtual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/sim.h"
#include "cache/domcache.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "server/reservations.h"
#include "server/squeeze.h"

#define GIB (1024 * 1024)
#define RESERVED_KIB 73728

/* Host: 1 GiB free. Guest 1 balloons (1..2 GiB, at 2 GiB). Guest 2 is stuck at 2 GiB
 * with a range down to 1 GiB. Guest 3 has no balloon driver. */
static const char scenario_text[] =
    "{ \"name\": \"reservations\","
    "  \"host\": { \"total_kib\": 16777216, \"free_kib\": 1048576 },"
    "  \"domains\": ["
    "    { \"domid\": 1, \"dynamic_min_kib\": 1048576, \"dynamic_max_kib\": 2097152,"
    "      \"target_kib\": 2097152 },"
    "    { \"domid\": 2, \"dynamic_min_kib\": 1048576, \"dynamic_max_kib\": 2097152,"
    "      \"target_kib\": 2097152, \"balloon\": { \"model\": \"stuck\" } },"
    "    { \"domid\": 3, \"target_kib\": 524288, \"balloon\": { \"model\": \"none\" } } ] }";

struct fixture {
    struct sim *sim; /* owned by b */
    struct backend *b;
    struct domcache *dc;
    struct reservations *r;
    struct squeezer *sq;
    struct service_error err;
};

static void open_stack(struct fixture *f)
{
    struct domcache_config dcc = {.use_watches = true, .manage_domain_zero = false};
    f->dc = domcache_new(f->b, &dcc);
    f->r = reservations_new(f->b, f->dc);
    assert_int_equal(reservations_load(f->r), 0);
    struct squeeze_config sqc = {.reserved_host_kib = RESERVED_KIB, .poll_ms = 250};
    f->sq = squeezer_new(f->b, f->dc, &sqc, reservations_accounting, f->r);
}

static void close_stack(struct fixture *f)
{
    squeezer_free(f->sq);
    reservations_free(f->r);
    domcache_free(f->dc);
    f->sq = NULL;
    f->r = NULL;
    f->dc = NULL;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct sim_scenario *sc = NULL;
    char *err = NULL;
    log_quiet(true);
    if (sim_scenario_parse(scenario_text, &sc, &err) < 0)
        fail_msg("scenario: %s", err);
    f->sim = sim_new(sc, SIM_CLOCK_VIRTUAL, &err);
    if (f->sim == NULL)
        fail_msg("sim_new: %s", err);
    sim_scenario_free(sc);
    f->b = backend_sim_open(f->sim);
    open_stack(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Whatever a test did, the host must never have been driven into a violation. */
    size_t n = sim_violation_count(f->sim);
    for (size_t i = 0; i < n; i++)
        print_error("violation: %s\n", sim_violation(f->sim, i));
    service_error_clear(&f->err);
    close_stack(f);
    backend_close(f->b);
    free(f);
    return n == 0 ? 0 : -1;
}

static char *xs(struct fixture *f, const char *path)
{
    char *v = NULL;
    if (sim_xs_read(f->sim, path, &v) < 0)
        return NULL;
    return v;
}

static void assert_xs(struct fixture *f, const char *path, const char *expected)
{
    char *v = xs(f, path);
    if (expected == NULL) {
        if (v != NULL)
            fail_msg("%s = '%s', expected absent", path, v);
        return;
    }
    if (v == NULL)
        fail_msg("%s absent, expected '%s'", path, expected);
    assert_string_equal(v, expected);
    free(v);
}

static void login(struct fixture *f, const char *service)
{
    assert_int_equal(reservations_login(f->r, service, &f->err), 0);
}

/* Reserve kib in session; returns the new id (caller frees). */
static char *reserve(struct fixture *f, const char *session, int64_t kib)
{
    char *id = NULL;
    struct reservations_squeeze rs;
    int rc = reservations_reserve(f->r, f->sq, session, kib, &id, &rs, &f->err);
    squeeze_result_free(&rs.res);
    if (rc < 0)
        fail_msg("reserve %lld: error kind %d (%s)", (long long)kib, f->err.kind,
                 f->err.text != NULL ? f->err.text : "");
    assert_true(rs.ran);
    return id;
}

static char *state_path(const char *session, const char *id)
{
    return xasprintf("/squeezed/state/%s/%s", session, id);
}

static void test_uuid_is_random_v4(void **state)
{
    (void)state;
    char *a = reservations_new_uuid();
    char *b = reservations_new_uuid();
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[13], '-');
    assert_int_equal(a[14], '4');
    assert_int_equal(a[18], '-');
    assert_non_null(strchr("89ab", a[19]));
    assert_int_equal(a[23], '-');
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_login_creates_session_in_xenstore(void **state)
{
    struct fixture *f = *state;
    assert_false(reservations_has_session(f->r, "xenopsd"));
    login(f, "xenopsd");
    assert_true(reservations_has_session(f->r, "xenopsd"));
    assert_true(sim_xs_exists(f->sim, "/squeezed/state/xenopsd"));
}

static void test_login_refuses_bad_names(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {"", "a/b", "a b", "../x", "dot.ted"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(reservations_login(f->r, bad[i], &f->err), -1);
        assert_int_equal(f->err.kind, SERVICE_ERR_INVALID_PARAMS);
        service_error_clear(&f->err);
    }
    assert_false(sim_xs_exists(f->sim, "/squeezed/state"));
}

static void test_unknown_session_is_refused(void **state)
{
    struct fixture *f = *state;
    char *id = NULL;
    struct reservations_squeeze rs;
    assert_int_equal(reservations_reserve(f->r, f->sq, "nobody", 1024, &id, &rs, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_non_null(strstr(f->err.text, "unknown session 'nobody'"));
    assert_false(rs.ran);
    assert_int_equal(reservations_count(f->r), 0);
}

static void test_reserve_writes_xenstore_before_answering(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *id = reserve(f, "xenopsd", 262144);
    char *path = state_path("xenopsd", id);
    assert_xs(f, path, "262144");
    assert_int_equal(reservations_count(f->r), 1);
    const struct reservation *x = reservations_at(f->r, 0);
    assert_string_equal(x->id, id);
    assert_string_equal(x->session, "xenopsd");
    assert_int_equal(x->kib, 262144);
    assert_int_equal(x->domid, -1);
    size_t n = 0;
    const struct domcache_reservation *acct = reservations_accounting(f->r, &n);
    assert_int_equal(n, 1);
    assert_int_equal(acct[0].kib, 262144);
    assert_int_equal(acct[0].domid, -1);
    free(path);
    free(id);
}

static void test_reserve_squeezes_guests_down(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    /* 1.5 GiB + reserve > the 1 GiB free: guest 1 must give memory back. */
    char *id = reserve(f, "xenopsd", 1572864);
    int64_t actual, target, maxmem;
    assert_int_equal(sim_domain_memory(f->sim, 1, &actual, &target, &maxmem), 0);
    assert_true(target < 2097152);
    assert_true(sim_host_free_kib(f->sim) >= 1572864 + RESERVED_KIB);
    free(id);
}

static void test_reserve_cannot_free_reports_needed_and_free(void **state)
{
    struct fixture *f = *state;
    /* Without the stuck guest the host has 1 GiB free + 2 GiB given back by the destroyed
     * guest 2 + 1 GiB guest 1 can give: 4 GiB at most. */
    assert_int_equal(sim_destroy_domain(f->sim, 2), 0);
    login(f, "xenopsd");
    char *id = NULL;
    struct reservations_squeeze rs;
    int rc = reservations_reserve(f->r, f->sq, "xenopsd", 8 * GIB, &id, &rs, &f->err);
    squeeze_result_free(&rs.res);
    assert_int_equal(rc, -1);
    assert_true(rs.ran);
    assert_int_equal(f->err.kind, SERVICE_ERR_CANNOT_FREE);
    assert_int_equal(f->err.needed_kib, 8 * GIB + RESERVED_KIB);
    assert_in_range(f->err.free_kib, 4 * GIB - 16, 4 * GIB);
    assert_int_equal(reservations_count(f->r), 0);
    assert_null(id);
}

static void test_reserve_refused_names_the_stuck_guest(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *id = NULL;
    struct reservations_squeeze rs;
    /* 2.5 GiB: guest 1 can give 1 GiB, the rest needs the stuck guest 2. */
    int rc = reservations_reserve(f->r, f->sq, "xenopsd", 2621440, &id, &rs, &f->err);
    squeeze_result_free(&rs.res);
    assert_int_equal(rc, -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_REFUSED);
    assert_int_equal(f->err.n_domids, 1);
    assert_int_equal(f->err.domids[0], 2);
    assert_int_equal(reservations_count(f->r), 0);
}

static void test_reserve_range_reserves_within_bounds(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *id = NULL;
    int64_t kib = 0;
    struct reservations_squeeze rs;
    assert_int_equal(reservations_reserve_range(f->r, f->sq, "xenopsd", 262144, 524288, &id,
                                                &kib, &rs, &f->err),
                     0);
    squeeze_result_free(&rs.res);
    assert_true(kib >= 262144 && kib <= 524288);
    char *path = state_path("xenopsd", id);
    char *expected = xasprintf("%lld", (long long)kib);
    assert_xs(f, path, expected);
    free(expected);
    free(path);
    free(id);
}

/* As in squeezed, 0 KiB is a size: a reservation of nothing, recorded like any other;
 * a range [0, 0] too. */
static void test_reserve_zero_is_a_reservation(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *id = NULL;
    struct reservations_squeeze rs;
    assert_int_equal(reservations_reserve(f->r, f->sq, "xenopsd", 0, &id, &rs, &f->err), 0);
    squeeze_result_free(&rs.res);
    assert_non_null(id);
    char *path = xasprintf("/squeezed/state/xenopsd/%s", id);
    char *value = NULL;
    assert_int_equal(sim_xs_read(f->sim, path, &value), 0);
    assert_string_equal(value, "0");
    free(value);
    free(path);
    free(id);
    id = NULL;
    int64_t kib = -1;
    assert_int_equal(
        reservations_reserve_range(f->r, f->sq, "xenopsd", 0, 0, &id, &kib, &rs, &f->err), 0);
    squeeze_result_free(&rs.res);
    assert_int_equal(kib, 0);
    free(id);
    assert_int_equal(reservations_count(f->r), 2);
}

static void test_login_deletes_only_that_sessions_reservations(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    login(f, "other");
    char *a = reserve(f, "xenopsd", 65536);
    char *b = reserve(f, "other", 65536);
    char *pa = state_path("xenopsd", a);
    char *pb = state_path("other", b);
    login(f, "xenopsd");
    assert_int_equal(reservations_count(f->r), 1);
    assert_string_equal(reservations_at(f->r, 0)->id, b);
    assert_xs(f, pa, NULL);
    assert_xs(f, pb, "65536");
    assert_true(sim_xs_exists(f->sim, "/squeezed/state/xenopsd"));
    free(pa);
    free(pb);
    free(a);
    free(b);
}

static void test_delete_removes_the_reservation(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *id = reserve(f, "xenopsd", 65536);
    char *path = state_path("xenopsd", id);
    assert_int_equal(reservations_delete(f->r, "xenopsd", id, &f->err), 0);
    assert_xs(f, path, NULL);
    assert_int_equal(reservations_count(f->r), 0);
    /* A second delete: unknown. */
    assert_int_equal(reservations_delete(f->r, "xenopsd", id, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_UNKNOWN_RESERVATION);
    assert_string_equal(f->err.text, id);
    free(path);
    free(id);
}

static void test_delete_of_another_sessions_reservation_is_unknown(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    login(f, "other");
    char *id = reserve(f, "xenopsd", 65536);
    assert_int_equal(reservations_delete(f->r, "other", id, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_UNKNOWN_RESERVATION);
    assert_int_equal(reservations_count(f->r), 1);
    free(id);
}

static void test_transfer_hands_the_reservation_to_the_domain(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    /* Domain 3 holds 512 MiB, as a domain built from this reservation would. */
    char *id = reserve(f, "xenopsd", 524288);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", id, 3, &f->err), 0);
    assert_xs(f, "/local/domain/3/memory/initial-reservation", "524288");
    assert_xs(f, "/local/domain/3/memory/reservation-id", id);
    char *path = state_path("xenopsd", id);
    char *tpath = xasprintf("%s/in-transfer", path);
    assert_xs(f, tpath, "3");
    assert_xs(f, path, "524288");
    int64_t actual, target, maxmem;
    assert_int_equal(sim_domain_memory(f->sim, 3, &actual, &target, &maxmem), 0);
    assert_int_equal(maxmem, 524288);
    assert_int_equal(reservations_at(f->r, 0)->domid, 3);
    size_t n = 0;
    const struct domcache_reservation *acct = reservations_accounting(f->r, &n);
    assert_int_equal(n, 1);
    assert_int_equal(acct[0].domid, 3);

    char *q = NULL;
    assert_int_equal(reservations_query(f->r, "xenopsd", 3, &q, &f->err), 0);
    assert_string_equal(q, id);
    free(q);
    free(tpath);
    free(path);
    free(id);
}

static void test_transfer_to_a_missing_domain_changes_nothing(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *id = reserve(f, "xenopsd", 65536);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", id, 42, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_string_equal(f->err.text, "domain 42 does not exist");
    service_error_clear(&f->err);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", id, -5, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_int_equal(reservations_at(f->r, 0)->domid, -1);
    char *path = state_path("xenopsd", id);
    char *tpath = xasprintf("%s/in-transfer", path);
    assert_xs(f, tpath, NULL);
    assert_false(sim_xs_exists(f->sim, "/local/domain/42"));
    free(tpath);
    free(path);
    free(id);
}

static void test_transfer_of_an_unknown_id(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    assert_int_equal(reservations_transfer(f->r, "xenopsd", "no-such-id", 1, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_UNKNOWN_RESERVATION);
    assert_string_equal(f->err.text, "no-such-id");
    assert_xs(f, "/local/domain/1/memory/reservation-id", NULL);
}

static void test_query_without_reservation(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *q = NULL;
    assert_int_equal(reservations_query(f->r, "xenopsd", 1, &q, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_NO_RESERVATION);
    service_error_clear(&f->err);
    assert_int_equal(reservations_query(f->r, "xenopsd", 77, &q, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_NO_RESERVATION);
    assert_null(q);
}

static void test_restart_finds_sessions_and_reservations(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    login(f, "idle");
    char *a = reserve(f, "xenopsd", 65536);
    char *b = reserve(f, "xenopsd", 524288);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", b, 3, &f->err), 0);

    close_stack(f); /* the daemon stops; xenstore (the sim) lives on */
    open_stack(f);

    assert_true(reservations_has_session(f->r, "xenopsd"));
    assert_true(reservations_has_session(f->r, "idle"));
    assert_int_equal(reservations_count(f->r), 2);
    bool seen_a = false, seen_b = false;
    for (size_t i = 0; i < 2; i++) {
        const struct reservation *x = reservations_at(f->r, i);
        assert_string_equal(x->session, "xenopsd");
        if (strcmp(x->id, a) == 0) {
            seen_a = true;
            assert_int_equal(x->kib, 65536);
            assert_int_equal(x->domid, -1);
        } else if (strcmp(x->id, b) == 0) {
            seen_b = true;
            assert_int_equal(x->kib, 524288);
            assert_int_equal(x->domid, 3);
        }
    }
    assert_true(seen_a && seen_b);
    /* Still deletable after the restart. */
    assert_int_equal(reservations_delete(f->r, "xenopsd", a, &f->err), 0);
    assert_int_equal(reservations_count(f->r), 1);
    free(a);
    free(b);
}

static void test_load_skips_bad_entries(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sim_xs_write(f->sim, "/squeezed/state/xenopsd/good", "1024"), 0);
    assert_int_equal(sim_xs_write(f->sim, "/squeezed/state/xenopsd/bad", "12x"), 0);
    assert_int_equal(sim_xs_write(f->sim, "/squeezed/state/xenopsd/neg", "-5"), 0);
    assert_int_equal(sim_xs_write(f->sim, "/squeezed/state/xenopsd/odd/in-transfer", "9"), 0);
    assert_int_equal(sim_xs_write(f->sim, "/squeezed/state/xenopsd/good/in-transfer", "x"), 0);
    close_stack(f);
    open_stack(f);
    assert_int_equal(reservations_count(f->r), 1);
    assert_string_equal(reservations_at(f->r, 0)->id, "good");
    assert_int_equal(reservations_at(f->r, 0)->kib, 1024);
    assert_int_equal(reservations_at(f->r, 0)->domid, -1);
}

static void test_reservations_are_subtracted_from_host_free(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    assert_int_equal(squeeze_check(f->sq) >= 0, 1);
    int64_t before = squeeze_last_snapshot(f->sq)->host.free_kib;
    char *id = reserve(f, "xenopsd", 131072);
    assert_int_equal(squeeze_check(f->sq) >= 0, 1);
    const struct domcache_snapshot *snap = squeeze_last_snapshot(f->sq);
    assert_int_equal(snap->reservations_kib, 131072);
    assert_int_equal(snap->host.free_kib, before - 131072);
    free(id);
}

/* ---- issue 11: the accounting rule (F1-F4) ------------------------------------------ */

static int64_t reservations_counted(struct fixture *f)
{
    assert_true(squeeze_check(f->sq) >= 0);
    return squeeze_last_snapshot(f->sq)->reservations_kib;
}

static void create_booted(struct fixture *f, uint32_t domid, int64_t kib)
{
    struct sim_domain_spec sp = {.domid = domid,
                                 .type = DOMAIN_TYPE_HVM,
                                 .dynamic_min_kib = kib,
                                 .dynamic_max_kib = kib,
                                 .target_kib = kib,
                                 .actual_kib = kib,
                                 .maxmem_kib = kib,
                                 .balloon = {.model = SIM_BALLOON_IDEAL, .rate_kib_s = 262144}};
    char *err = NULL;
    if (sim_create_domain(f->sim, &sp, &err) < 0)
        fail_msg("create domain %u: %s", domid, err);
}

/* F1: a domain holding a transferred reservation shrinks (holds less than the reservation)
 * and is destroyed: the reservation must not count again at its full size. */
static void test_f1_gone_domain_frees_its_reservation_once(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *id = reserve(f, "xenopsd", 524288);
    assert_int_equal(reservations_counted(f), 524288);
    create_booted(f, 10, 262144); /* it now holds half of the reservation */
    assert_int_equal(reservations_transfer(f->r, "xenopsd", id, 10, &f->err), 0);
    assert_int_equal(reservations_counted(f), 0);
    assert_int_equal(sim_destroy_domain(f->sim, 10), 0);
    assert_int_equal(reservations_counted(f), 0);
    const struct domcache_snapshot *snap = squeeze_last_snapshot(f->sq);
    assert_int_equal(snap->host.free_kib,
                     snap->xen_free_kib + snap->scrub_kib - snap->booting_unused_kib);
    assert_true(snap->host.free_kib >= 0);
    /* Used up: it cannot go to another domain (nor to the same domid reused). */
    create_booted(f, 10, 65536);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", id, 10, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_non_null(strstr(f->err.text, "gone"));
    assert_xs(f, "/local/domain/10/memory/reservation-id", NULL);
    /* Still deletable. */
    assert_int_equal(reservations_delete(f->r, "xenopsd", id, &f->err), 0);
    free(id);
}

/* F2: two reservations to one domain: the second is refused and still counts in full. */
static void test_f2_one_reservation_per_domain(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *a = reserve(f, "xenopsd", 131072);
    char *b = reserve(f, "xenopsd", 65536);
    create_booted(f, 11, 65536);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", a, 11, &f->err), 0);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", b, 11, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_non_null(strstr(f->err.text, "already holds reservation"));
    service_error_clear(&f->err);
    assert_xs(f, "/local/domain/11/memory/reservation-id", a);
    assert_xs(f, "/local/domain/11/memory/initial-reservation", "131072");
    char *path = state_path("xenopsd", b);
    char *tpath = xasprintf("%s/in-transfer", path);
    assert_xs(f, tpath, NULL);
    assert_int_equal(reservations_counted(f), 65536);
    /* The same transfer again is idempotent. */
    assert_int_equal(reservations_transfer(f->r, "xenopsd", a, 11, &f->err), 0);
    assert_int_equal(reservations_counted(f), 65536);
    free(tpath);
    free(path);
    free(a);
    free(b);
}

/* F3: a reservation transferred to one domain cannot be transferred to another. */
static void test_f3_one_domain_per_reservation(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *a = reserve(f, "xenopsd", 131072);
    create_booted(f, 12, 65536);
    create_booted(f, 13, 65536);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", a, 12, &f->err), 0);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", a, 13, &f->err), -1);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_non_null(strstr(f->err.text, "already transferred to domain 12"));
    assert_xs(f, "/local/domain/13/memory/reservation-id", NULL);
    assert_xs(f, "/local/domain/13/memory/initial-reservation", NULL);
    int64_t actual, target, maxmem;
    assert_int_equal(sim_domain_memory(f->sim, 13, &actual, &target, &maxmem), 0);
    assert_int_equal(maxmem, 65536);
    assert_int_equal(reservations_at(f->r, 0)->domid, 12);
    free(a);
}

/* F4: a transfer never lowers a running domain's maxmem. */
static void test_f4_transfer_never_lowers_maxmem(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    char *a = reserve(f, "xenopsd", 1024);
    int64_t actual, target, maxmem;
    assert_int_equal(sim_domain_memory(f->sim, 1, &actual, &target, &maxmem), 0);
    int64_t before = maxmem;
    assert_true(before > 1024);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", a, 1, &f->err), 0);
    assert_int_equal(sim_domain_memory(f->sim, 1, &actual, &target, &maxmem), 0);
    assert_int_equal(maxmem, before);
    /* And raises it when lower. */
    char *b = reserve(f, "xenopsd", 131072);
    create_booted(f, 14, 65536);
    assert_int_equal(reservations_transfer(f->r, "xenopsd", b, 14, &f->err), 0);
    assert_int_equal(sim_domain_memory(f->sim, 14, &actual, &target, &maxmem), 0);
    assert_int_equal(maxmem, 131072);
    free(a);
    free(b);
}

/* A session holds at most max-reservations-per-session; beyond, refused at once. */
static void test_reservations_per_session_are_limited(void **state)
{
    struct fixture *f = *state;
    login(f, "xenopsd");
    login(f, "other");
    reservations_set_max_per_session(f->r, 3);
    for (int i = 0; i < 3; i++)
        free(reserve(f, "xenopsd", 1024));
    char *id = NULL;
    struct reservations_squeeze rs;
    assert_int_equal(reservations_reserve(f->r, f->sq, "xenopsd", 1024, &id, &rs, &f->err), -1);
    assert_false(rs.ran);
    assert_int_equal(f->err.kind, SERVICE_ERR_INTERNAL);
    assert_non_null(strstr(f->err.text, "max-reservations-per-session"));
    assert_int_equal(reservations_count(f->r), 3);
    free(reserve(f, "other", 1024)); /* another session is not affected */
}

/* The index by id and the incremental accounting, against a plain model: 1,500
 * reservations in two sessions, a third deleted in a scattered order, three transferred,
 * a login purge; after every step each id is found (or not) as the model says, the list
 * keeps creation order and the accounting adds up to what a rebuild would. */
struct model_entry {
    char *id;
    const char *session;
    int64_t kib;
    int32_t domid;
    bool live;
};

static void check_against_model(struct fixture *f, const struct model_entry *m, size_t n)
{
    size_t live = 0;
    int64_t untransferred = 0;
    const struct reservation *x = reservations_first(f->r);
    for (size_t i = 0; i < n; i++) {
        if (!m[i].live)
            continue;
        live++;
        assert_non_null(x);
        assert_string_equal(x->id, m[i].id);
        assert_string_equal(x->session, m[i].session);
        assert_int_equal(x->kib, m[i].kib);
        assert_int_equal(x->domid, m[i].domid);
        if (m[i].domid < 0)
            untransferred += m[i].kib;
        x = reservations_next(f->r, x);
    }
    assert_null(x);
    assert_int_equal(reservations_count(f->r), live);
    size_t na = 0;
    const struct domcache_reservation *acct = reservations_accounting(f->r, &na);
    int64_t sum_untransferred = 0;
    size_t n_transferred = 0;
    for (size_t i = 0; i < na; i++) {
        if (acct[i].domid < 0)
            sum_untransferred += acct[i].kib;
        else
            n_transferred++;
    }
    assert_int_equal(sum_untransferred, untransferred);
    size_t model_transferred = 0;
    for (size_t i = 0; i < n; i++)
        model_transferred += m[i].live && m[i].domid >= 0;
    assert_int_equal(n_transferred, model_transferred);
}

static void test_index_and_accounting_follow_every_change(void **state)
{
    struct fixture *f = *state;
    enum { N = 1500 };
    struct model_entry *m = xcalloc(N, sizeof(*m));
    login(f, "xenopsd");
    login(f, "other");
    for (size_t i = 0; i < N; i++) {
        m[i].session = i % 3 == 2 ? "other" : "xenopsd";
        /* Three of 512 MiB, to be handed to domains 20-22 (their maxmem becomes that). */
        m[i].kib = i == 1 || i == 4 || i == 7 ? 524288 : 1 + (int64_t)(i % 7);
        m[i].domid = -1;
        m[i].live = true;
        m[i].id = reserve(f, m[i].session, m[i].kib);
    }
    check_against_model(f, m, N);
    /* Delete every third of xenopsd's, in a scattered order (stride 7 over N). */
    for (size_t k = 0, i = 0; k < N; k++, i = (i + 7) % N) {
        if (i % 3 != 0)
            continue;
        assert_int_equal(reservations_delete(f->r, m[i].session, m[i].id, &f->err), 0);
        m[i].live = false;
        /* A second delete, or one from the wrong session, is unknown. */
        assert_int_equal(reservations_delete(f->r, m[i].session, m[i].id, &f->err), -1);
        assert_int_equal(f->err.kind, SERVICE_ERR_UNKNOWN_RESERVATION);
        service_error_clear(&f->err);
    }
    assert_int_equal(reservations_delete(f->r, "other", m[1].id, &f->err), -1);
    service_error_clear(&f->err);
    check_against_model(f, m, N);
    /* Transfer three to domains 20, 21, 22 (a domain takes one reservation), then delete
     * the first and the last of them. */
    for (size_t i = 1; i <= 7; i += 3) {
        int32_t domid = 20 + (int32_t)(i / 3);
        create_booted(f, (uint32_t)domid, 262144);
        assert_int_equal(reservations_transfer(f->r, m[i].session, m[i].id, domid, &f->err), 0);
        m[i].domid = domid;
        check_against_model(f, m, N);
    }
    for (size_t i = 1; i <= 7; i += 6) {
        assert_int_equal(reservations_delete(f->r, m[i].session, m[i].id, &f->err), 0);
        m[i].live = false;
        check_against_model(f, m, N);
    }
    check_against_model(f, m, N);
    /* A login of "other" purges only its reservations. */
    login(f, "other");
    for (size_t i = 0; i < N; i++)
        if (strcmp(m[i].session, "other") == 0)
            m[i].live = false;
    check_against_model(f, m, N);
    for (size_t i = 0; i < N; i++)
        free(m[i].id);
    free(m);
}

/* The index grows by moving a few buckets per change: every reservation is found (and a
 * deleted one is not) while a grown table is being filled, at every size crossed. */
static void test_index_finds_every_reservation_while_it_grows(void **state)
{
    struct fixture *f = *state;
    enum { N = 5000 };
    reservations_set_max_per_session(f->r, N);
    char **ids = xcalloc(N, sizeof(*ids));
    size_t n = 0;
    uint64_t rnd = 88172645463325252ULL;
    login(f, "xenopsd");
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(reservations_grant(f->r, "xenopsd", 1, &ids[n], &f->err), 0);
        n++;
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        if (rnd % 4 != 0)
            continue;
        size_t k = (size_t)(rnd >> 8) % n;
        assert_int_equal(reservations_delete(f->r, "xenopsd", ids[k], &f->err), 0);
        assert_int_equal(reservations_delete(f->r, "xenopsd", ids[k], &f->err), -1);
        assert_int_equal(f->err.kind, SERVICE_ERR_UNKNOWN_RESERVATION);
        service_error_clear(&f->err);
        free(ids[k]);
        ids[k] = ids[--n];
    }
    assert_int_equal(reservations_count(f->r), n);
    assert_true(n > 2048); /* the table grew past 2048 buckets */
    while (n > 0) {
        assert_int_equal(reservations_delete(f->r, "xenopsd", ids[n - 1], &f->err), 0);
        free(ids[--n]);
    }
    assert_int_equal(reservations_count(f->r), 0);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_is_random_v4),
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_login_creates_session_in_xenstore),
        T(test_login_refuses_bad_names),
        T(test_unknown_session_is_refused),
        T(test_reserve_writes_xenstore_before_answering),
        T(test_reserve_squeezes_guests_down),
        T(test_reserve_zero_is_a_reservation),
        T(test_reserve_cannot_free_reports_needed_and_free),
        T(test_reserve_refused_names_the_stuck_guest),
        T(test_reserve_range_reserves_within_bounds),
        T(test_login_deletes_only_that_sessions_reservations),
        T(test_delete_removes_the_reservation),
        T(test_delete_of_another_sessions_reservation_is_unknown),
        T(test_transfer_hands_the_reservation_to_the_domain),
        T(test_transfer_to_a_missing_domain_changes_nothing),
        T(test_transfer_of_an_unknown_id),
        T(test_query_without_reservation),
        T(test_restart_finds_sessions_and_reservations),
        T(test_load_skips_bad_entries),
        T(test_reservations_are_subtracted_from_host_free),
        T(test_f1_gone_domain_frees_its_reservation_once),
        T(test_f2_one_reservation_per_domain),
        T(test_f3_one_domain_per_reservation),
        T(test_f4_transfer_never_lowers_maxmem),
        T(test_reservations_per_session_are_limited),
        T(test_index_and_accounting_follow_every_change),
        T(test_index_finds_every_reservation_while_it_grows),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
