/* SPDX-License-Identifier: LGPL-2.1-only */
/* A recording mock of server/service.h, for the front end's tests (rpc, http, metrics,
 * openapi). */
#ifndef SQUEEZED_TEST_MOCK_SERVICE_H
#define SQUEEZED_TEST_MOCK_SERVICE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "server/service.h"

/*
 * Every service_* function of server/service.h, defined here: a binary linked with this
 * object has no real service (the Makefile links it only into MOCK_SERVICE_TESTS). Each
 * acting call records itself ("reserve_memory dbg=d session=xenopsd kib=1024") and
 * answers with fixed values derived from its arguments ("resv-1024"); an armed failure
 * (mock_fail, or mock.fail set by hand) makes the next acting call fail with it. Every
 * call asserts it was given MOCK_SVC. service_status returns a copy of mock.status (a
 * full picture, MOCK_STATUS_JSON, after mock_reset).
 *
 * A reserve_memory on the session "slow" blocks until mock_release_slow (or 20 s), with
 * mock.slow_entered set while it waits: a test can hold one call inside the service.
 *
 * Fields of `mock` are read and written under mock.lock where a server thread may be
 * calling at the same time.
 */

struct mock_service {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls; /* service calls that act or read the host (not status) */
    int status_calls;
    char last[512]; /* the last call with its arguments */
    bool has_sim;
    bool dom0_fixed;
    const char *diagnostics;   /* NULL: "diag" */
    struct service_error fail; /* kind != OK: the next acting call fails with this */
    json_t *status;
    bool slow_entered;
    bool slow_release;
};

extern struct mock_service mock;

/* The service the mock answers for: pass it to api_handle_rpc, api_start. */
extern struct service *const MOCK_SVC;

/* The picture service_status returns after mock_reset (wire format of SPEC 7). */
extern const char MOCK_STATUS_JSON[];

/* Back to the start: no calls, sim present, Auto_balloon dom0, nothing armed, status
 * MOCK_STATUS_JSON, no slow call. */
void mock_reset(void);
/* mock.calls, under the lock. */
int mock_calls(void);
/* Arm a failure for the next acting call. text may be NULL. */
void mock_fail(enum service_error_kind kind, const char *text);
/* The last recorded call is exactly expected (a cmocka assertion). */
void mock_expect_last_call(const char *expected);
/* Wait up to timeout_s for a "slow" reserve to be inside the mock; true if it is. */
bool mock_wait_slow_entered(int timeout_s);
/* Let a "slow" reserve (waiting or future) go on. */
void mock_release_slow(void);
/* Free what the mock holds (at the end of main). */
void mock_free(void);

#endif
