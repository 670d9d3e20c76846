/* SPDX-License-Identifier: LGPL-2.1-only */
/* A recording mock of server/service.h, for the front end's tests (rpc, http, metrics,
 * openapi). */
#include "tests/support/mock_service.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "server/request.h"

struct service {
    int unused;
};

struct mock_service mock = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

static struct service the_service;
struct service *const MOCK_SVC = &the_service;

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&mock.lock);
    mock.calls++;
    va_start(ap, fmt);
    vsnprintf(mock.last, sizeof(mock.last), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&mock.lock);
}

/* If a failure is armed, hand it over (deep copy) and disarm. */
static int take_failure(struct service_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&mock.lock);
    if (mock.fail.kind != SERVICE_OK) {
        *err = mock.fail; /* the text moves over */
        if (mock.fail.n_domids > 0) {
            err->domids = calloc(mock.fail.n_domids, sizeof(int32_t));
            memcpy(err->domids, mock.fail.domids, mock.fail.n_domids * sizeof(int32_t));
        }
        mock.fail = (struct service_error){0};
        rc = -1;
    }
    pthread_mutex_unlock(&mock.lock);
    return rc;
}

int service_login(struct service *s, const char *dbg, const char *service_name, char **session,
                  struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_login(&(struct req_login){.service_name = service_name}, err) < 0)
        return -1;
    record("login dbg=%s service=%s", dbg, service_name);
    if (take_failure(err) < 0)
        return -1;
    *session = strdup(service_name);
    return 0;
}

int service_reserve_memory(struct service *s, const char *dbg, const char *session, int64_t kib,
                           char **reservation_id, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_reserve(&(struct req_reserve){.session = session, .kib = kib}, err) < 0)
        return -1;
    record("reserve_memory dbg=%s session=%s kib=%lld", dbg, session, (long long)kib);
    if (strcmp(session, "slow") == 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 20;
        pthread_mutex_lock(&mock.lock);
        mock.slow_entered = true;
        pthread_cond_broadcast(&mock.cond);
        while (!mock.slow_release &&
               pthread_cond_timedwait(&mock.cond, &mock.lock, &deadline) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&mock.lock);
    }
    if (take_failure(err) < 0)
        return -1;
    if (asprintf(reservation_id, "resv-%lld", (long long)kib) < 0)
        abort();
    return 0;
}

int service_reserve_memory_range(struct service *s, const char *dbg, const char *session,
                                 int64_t min_kib, int64_t max_kib, char **reservation_id,
                                 int64_t *reserved_kib, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_reserve_range(&(struct req_reserve_range){.session = session,
                                                                .min_kib = min_kib,
                                                                .max_kib = max_kib},
                                    err) < 0)
        return -1;
    record("reserve_memory_range dbg=%s session=%s min=%lld max=%lld", dbg, session,
           (long long)min_kib, (long long)max_kib);
    if (take_failure(err) < 0)
        return -1;
    *reservation_id = strdup("resv-range");
    *reserved_kib = max_kib - 1;
    return 0;
}

int service_delete_reservation(struct service *s, const char *dbg, const char *session,
                               const char *reservation_id, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_delete(
            &(struct req_delete){.session = session, .reservation_id = reservation_id}, err) <
        0)
        return -1;
    record("delete_reservation dbg=%s session=%s id=%s", dbg, session, reservation_id);
    return take_failure(err);
}

int service_transfer_reservation_to_domain(struct service *s, const char *dbg,
                                           const char *session, const char *reservation_id,
                                           int64_t domid, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_transfer(&(struct req_transfer){.session = session,
                                                      .reservation_id = reservation_id,
                                                      .domid = domid},
                               err) < 0)
        return -1;
    record("transfer dbg=%s session=%s id=%s domid=%lld", dbg, session, reservation_id,
           (long long)domid);
    return take_failure(err);
}

int service_query_reservation_of_domain(struct service *s, const char *dbg, const char *session,
                                        int64_t domid, char **reservation_id,
                                        struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_query(&(struct req_query){.session = session, .domid = domid}, err) < 0)
        return -1;
    record("query dbg=%s session=%s domid=%lld", dbg, session, (long long)domid);
    if (take_failure(err) < 0)
        return -1;
    if (asprintf(reservation_id, "resv-of-%lld", (long long)domid) < 0)
        abort();
    return 0;
}

int service_balance_memory(struct service *s, const char *dbg, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    record("balance dbg=%s", dbg);
    return take_failure(err);
}

int64_t service_get_host_reserved_memory_kib(struct service *s)
{
    assert_ptr_equal(s, MOCK_SVC);
    record("get_host_reserved_memory");
    return 73728;
}

int64_t service_get_host_initial_free_memory_bytes(struct service *s)
{
    assert_ptr_equal(s, MOCK_SVC);
    record("get_host_initial_free_memory");
    return 8589934592LL;
}

void service_get_domain_zero_policy(struct service *s, struct service_dom0_policy *out)
{
    assert_ptr_equal(s, MOCK_SVC);
    record("get_domain_zero_policy");
    out->fixed = mock.dom0_fixed;
    out->fixed_bytes = 1073741824LL;
    out->min_bytes = 536870912LL;
    out->max_bytes = 2147483648LL;
}

char *service_get_diagnostics(struct service *s)
{
    assert_ptr_equal(s, MOCK_SVC);
    record("get_diagnostics");
    return strdup(mock.diagnostics != NULL ? mock.diagnostics : "diag");
}

bool service_has_sim(struct service *s)
{
    assert_ptr_equal(s, MOCK_SVC);
    return mock.has_sim;
}

json_t *service_sim_state(struct service *s, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    record("sim.state");
    if (take_failure(err) < 0)
        return NULL;
    return json_pack("{s:f,s:i,s:[],s:[]}", "time_s", 1.5, "free_kib", 4096, "domains",
                     "violations");
}

int service_sim_advance(struct service *s, double seconds, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_sim_advance(&(struct req_sim_advance){.seconds = seconds}, err) < 0)
        return -1;
    record("sim.advance seconds=%g", seconds);
    return take_failure(err);
}

int service_sim_create_domain(struct service *s, const json_t *domain,
                              struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_sim_create(&(struct req_sim_create){.domain = domain}, err) < 0)
        return -1;
    char *d = json_dumps(domain, JSON_COMPACT | JSON_SORT_KEYS);
    record("sim.create_domain %s", d);
    free(d);
    return take_failure(err);
}

int service_sim_destroy_domain(struct service *s, int64_t domid, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_sim_destroy(&(struct req_sim_destroy){.domid = domid}, err) < 0)
        return -1;
    record("sim.destroy_domain domid=%lld", (long long)domid);
    return take_failure(err);
}

int service_sim_set_dynamic_range(struct service *s, int64_t domid, int64_t min_kib,
                                  int64_t max_kib, struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_sim_range(
            &(struct req_sim_range){.domid = domid, .min_kib = min_kib, .max_kib = max_kib},
            err) < 0)
        return -1;
    record("sim.set_dynamic_range domid=%lld min=%lld max=%lld", (long long)domid,
           (long long)min_kib, (long long)max_kib);
    return take_failure(err);
}

int service_sim_set_balloon(struct service *s, int64_t domid, const json_t *balloon,
                            struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_sim_balloon(&(struct req_sim_balloon){.domid = domid, .balloon = balloon},
                                  err) < 0)
        return -1;
    char *b = json_dumps(balloon, JSON_COMPACT | JSON_SORT_KEYS);
    record("sim.set_balloon domid=%lld %s", (long long)domid, b);
    free(b);
    return take_failure(err);
}

int service_sim_set_claim(struct service *s, int64_t domid, int64_t kib,
                          struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_sim_claim(&(struct req_sim_claim){.domid = domid, .kib = kib}, err) < 0)
        return -1;
    record("sim.set_claim domid=%lld kib=%lld", (long long)domid, (long long)kib);
    return take_failure(err);
}

int service_sim_pause_domain(struct service *s, int64_t domid, bool paused,
                             struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    if (request_check_sim_pause(&(struct req_sim_pause){.domid = domid, .paused = paused},
                                err) < 0)
        return -1;
    record("sim.pause_domain domid=%lld paused=%d", (long long)domid, (int)paused);
    return take_failure(err);
}

/* The message-switch front end's store (api/switch.c): nothing stored here; keys are
 * checked as the service checks them. */
int service_rpc_reply_get(struct service *s, const char *key, char **value,
                          struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    *value = NULL;
    return request_check_rpc_reply(&(struct req_rpc_reply){.key = key}, err);
}

int service_rpc_reply_put(struct service *s, const char *key, const char *value,
                          struct service_error *err)
{
    assert_ptr_equal(s, MOCK_SVC);
    return request_check_rpc_reply(&(struct req_rpc_reply){.key = key, .value = value}, err);
}

/* GET /history: what the front end asked for, echoed back. */
json_t *service_history(struct service *s, int64_t window_ms, const int32_t *domids,
                        size_t n_domids)
{
    assert_ptr_equal(s, MOCK_SVC);
    json_t *ids = json_array();
    for (size_t i = 0; i < n_domids; i++)
        json_array_append_new(ids, json_integer(domids[i]));
    return json_pack("{s:I,s:o}", "window_ms", (json_int_t)window_ms, "domids", ids);
}

json_t *service_status(struct service *s)
{
    assert_ptr_equal(s, MOCK_SVC);
    pthread_mutex_lock(&mock.lock);
    mock.status_calls++;
    json_t *st = json_deep_copy(mock.status);
    pthread_mutex_unlock(&mock.lock);
    return st;
}

const char MOCK_STATUS_JSON[] =
    "{\"host\": {\"free_kib\": 1048576, \"reserved_kib\": 73728, \"total_kib\": 16777216,"
    " \"xen_free_kib\": 1100000, \"scrub_kib\": 0, \"reservations_kib\": 51424,"
    " \"booting_unused_kib\": 0},"
    " \"domains\": [{\"domid\": 0, \"type\": \"pv\", \"can_balloon\": false,"
    "   \"booting\": false, \"dynamic_min_kib\": 4194304, \"dynamic_max_kib\": 4194304,"
    "   \"target_kib\": 4194304, \"actual_kib\": 4194304, \"maxmem_kib\": 4194304,"
    "   \"stuck\": false, \"uncooperative\": false},"
    "  {\"domid\": 7, \"type\": \"hvm\", \"can_balloon\": true, \"booting\": false,"
    "   \"dynamic_min_kib\": 1000, \"dynamic_max_kib\": 2000, \"target_kib\": 1500,"
    "   \"actual_kib\": 1520, \"maxmem_kib\": 1500, \"stuck\": true, \"uncooperative\": true}],"
    " \"reservations\": [{\"id\": \"r1\", \"session\": \"xenopsd\", \"kib\": 51424},"
    "  {\"id\": \"r2\", \"session\": \"xenopsd\", \"kib\": 1000, \"domid\": 7}],"
    " \"operations\": [{\"kind\": \"reserve\", \"kib\": 51424, \"outcome\": \"success\","
    "   \"duration_ms\": 250, \"rounds\": 2, \"at_ms\": 1000}],"
    " \"operation_totals\": [{\"kind\": \"reserve\", \"outcome\": \"success\", \"count\": 3,"
    "   \"duration_ms_sum\": 1250},"
    "  {\"kind\": \"balance\", \"outcome\": \"refused\", \"count\": 1, \"duration_ms_sum\": "
    "20000}],"
    " \"cache\": {\"xenstore_reads\": 10, \"xenstore_writes\": 4, \"watch_events\": 2,"
    "   \"hypercalls\": 30, \"snapshots\": 12, \"rebuilds\": 1, \"watching\": true},"
    " \"daemon\": {\"version\": \"0.1\", \"backend\": \"sim\", \"clock\": \"virtual\","
    "   \"busy\": false, \"now_ms\": 12500, \"uptime_s\": 3.25}}";

void mock_reset(void)
{
    pthread_mutex_lock(&mock.lock);
    mock.calls = 0;
    mock.status_calls = 0;
    mock.last[0] = '\0';
    mock.has_sim = true;
    mock.dom0_fixed = false;
    mock.diagnostics = NULL;
    free(mock.fail.text);
    mock.fail = (struct service_error){0};
    mock.slow_entered = false;
    mock.slow_release = false;
    json_decref(mock.status);
    mock.status = json_loads(MOCK_STATUS_JSON, 0, NULL);
    pthread_mutex_unlock(&mock.lock);
    assert_non_null(mock.status);
}

int mock_calls(void)
{
    pthread_mutex_lock(&mock.lock);
    int n = mock.calls;
    pthread_mutex_unlock(&mock.lock);
    return n;
}

void mock_fail(enum service_error_kind kind, const char *text)
{
    pthread_mutex_lock(&mock.lock);
    free(mock.fail.text);
    mock.fail = (struct service_error){.kind = kind};
    mock.fail.text = text != NULL ? strdup(text) : NULL;
    pthread_mutex_unlock(&mock.lock);
}

void mock_expect_last_call(const char *expected)
{
    pthread_mutex_lock(&mock.lock);
    char last[sizeof(mock.last)];
    memcpy(last, mock.last, sizeof(last));
    pthread_mutex_unlock(&mock.lock);
    assert_string_equal(last, expected);
}

bool mock_wait_slow_entered(int timeout_s)
{
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;
    pthread_mutex_lock(&mock.lock);
    while (!mock.slow_entered &&
           pthread_cond_timedwait(&mock.cond, &mock.lock, &deadline) != ETIMEDOUT)
        ;
    bool entered = mock.slow_entered;
    pthread_mutex_unlock(&mock.lock);
    return entered;
}

void mock_release_slow(void)
{
    pthread_mutex_lock(&mock.lock);
    mock.slow_release = true;
    pthread_cond_broadcast(&mock.cond);
    pthread_mutex_unlock(&mock.lock);
}

void mock_free(void)
{
    pthread_mutex_lock(&mock.lock);
    json_decref(mock.status);
    mock.status = NULL;
    free(mock.fail.text);
    mock.fail = (struct service_error){0};
    pthread_mutex_unlock(&mock.lock);
}
