/* SPDX-License-Identifier: LGPL-2.1-only */
/* libFuzzer target: JSON-RPC bodies through api_handle_rpc into a real service (sim host). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api/api.h"
#include "sim/sim.h"
#include "sim/sim_service.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "policy/policy.h"
#include "server/service.h"
#include "server/service_life.h"
#include "tests/support/paths.h"

/*
 * One input is one POST body, fed to api_handle_rpc exactly as the HTTP front end would
 * (the whole input, bytes as they are, up to libFuzzer's -max_len).
 *
 * One input may also be a short conversation: FUZZ_SEPARATOR splits it into up to
 * FUZZ_MAX_REQUESTS bodies sent in order (login, then reserve, then sim.advance, ...).
 * Inputs without the separator -- every seed in tests/fuzz/corpus -- are one body.
 * Reservation ids are random UUIDs no fuzzer can guess, so in a conversation every
 * FUZZ_ID_TOKEN in a body is replaced by the id of the last reservation a reply handed
 * out (left as it is while there is none): delete, transfer and query then reach real
 * reservations.
 *
 * Every input runs against a fresh service over a fresh simulated host built from
 * scenarios/fuzz.json (parsed once, in LLVMFuzzerInitialize) on the virtual clock, with
 * the session "xenopsd" logged in, as xenopsd does at start. Building it takes about
 * 1.5 ms in this instrumented build, and it buys three things a long-lived service
 * cannot give:
 *  - state cannot pile up across millions of inputs (reservations, created domains,
 *    virtual time), so memory stays flat whatever the fuzzer sends;
 *  - a crash, leak or timeout reproduces from its one saved input
 *    (build/fuzz/fuzz_rpc CRASH-FILE), not from a history nobody kept;
 *  - every input is checked for leaks by libFuzzer (-detect_leaks), the service's
 *    teardown included.
 *
 * What is checked, besides the sanitizers: every reply is well formed -- HTTP status
 * 200 with a JSON object carrying "id" and, in the xapi style, both "result" and "error"
 * (one of them null), in the 2.0 style exactly one of them; 204 with an empty body for a
 * notification; 413 only for an oversized body. And after the last request the
 * simulated host must have recorded no violation the daemon is answerable for
 * (check_world; FUZZ_RPC_VIOLATIONS=0 turns that off). Anything else aborts, which
 * libFuzzer reports as a crash with the input saved; FUZZ_RPC_TRACE=1 prints every
 * request and reply when replaying one.
 *
 * Bounded work per input. The service caps what one call can ask for: sizes at most
 * LIMIT_KIB_MAX, a squeeze bounded by its timeout on the virtual clock, sim.advance at
 * most a day of virtual time. A day is simulated in poll-interval steps (345,600 steps of
 * 250 ms): 0.2 s in the -O2 daemon -- the price of the simulation the caller asked for,
 * on a sim-only method, not a denial of service -- but 1.9 s in this instrumented build,
 * and even half an hour (90 ms) would cut the fuzzer's throughput for nothing: every
 * timer the daemon has (boot, stuck after 5 s, uncooperative after 20 s, the 10 s
 * periodic balance) falls within two minutes. So the harness does not send sim.advance
 * requests beyond FUZZ_MAX_ADVANCE_S of virtual time per input (the sum over its
 * requests); larger values that the service refuses anyway (above a day, negative, not
 * a number) are still sent, so the checks keep being fuzzed.
 */

#define FUZZ_SEPARATOR "\n#next\n"
#define FUZZ_MAX_REQUESTS 8
#define FUZZ_ID_TOKEN "$resv"
/* Past every timer: boot, stuck (5 s), uncooperative (20 s), periodic balance (10 s). */
#define FUZZ_MAX_ADVANCE_S 120.0

static struct sim_scenario *scenario;
static bool trace;            /* FUZZ_RPC_TRACE=1: print every request and reply */
static bool check_violations; /* FUZZ_RPC_VIOLATIONS=0 turns check_world off */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* $FUZZ_RPC_SCENARIO, else found from the binary's directory upwards (build/fuzz/fuzz_rpc
     * sits two levels below the repository), else the cwd. */
    char *path = support_find_file("FUZZ_RPC_SCENARIO", "scenarios/fuzz.json");
    char *err = NULL;

    (void)argc;
    (void)argv;
    /* Warnings (cannot free, refused, bad sim.* calls) are the service doing its job; the
     * fuzzer's output is for findings. */
    log_quiet(true);
    json_set_alloc_funcs(xmalloc, free); /* as the daemon does */
    trace = getenv("FUZZ_RPC_TRACE") != NULL;
    check_violations = getenv("FUZZ_RPC_VIOLATIONS") == NULL ||
                       strcmp(getenv("FUZZ_RPC_VIOLATIONS"), "0") != 0;
    if (sim_scenario_load(path, &scenario, &err) < 0) {
        fprintf(stderr, "fuzz_rpc: %s: %s\n", path, err != NULL ? err : "cannot load");
        exit(1);
    }
    free(path);
    return 0;
}

static struct service *world_open(void)
{
    /* The daemon's defaults (server/config.c). */
    struct service_options o = {
        .reserved_host_kib = 73728,
        .poll_ms = 250,
        .balance_interval_ms = 10000,
        .use_watches = true,
        .manage_domain_zero = false,
        .dom0_dynamic_min_bytes = -1,
        .dom0_dynamic_max_bytes = -1,
    };
    struct service_error se = {0};
    char *err = NULL;
    char *session = NULL;
    struct sim *w = sim_new(scenario, SIM_CLOCK_VIRTUAL, &err);
    struct service *svc;

    if (w == NULL) {
        fprintf(stderr, "fuzz_rpc: sim_new: %s\n", err);
        abort();
    }
    o.sim = sim_service_sim(w);
    svc = service_new(backend_sim_open(w), &o, &err);
    if (svc == NULL) {
        fprintf(stderr, "fuzz_rpc: service_new: %s\n", err);
        abort();
    }
    if (service_login(svc, "fuzz", "xenopsd", &session, &se) < 0) {
        fprintf(stderr, "fuzz_rpc: login: %s\n", se.text != NULL ? se.text : "failed");
        abort();
    }
    free(session);
    return svc;
}

static void bad_reply(const char *why, const uint8_t *body, size_t len, int status,
                      const char *reply)
{
    fprintf(stderr, "fuzz_rpc: %s (HTTP %d)\n  body: %.*s\n  reply: %.600s\n", why, status,
            (int)(len > 600 ? 600 : len), (const char *)body, reply);
    abort();
}

/* The reply to one body is what the wire contract says it is. */
static void check_reply(const uint8_t *body, size_t len, int status, const char *reply)
{
    json_error_t jerr;
    json_t *r;

    if (reply == NULL)
        bad_reply("no reply string", body, len, status, "");
    if (status == 204) {
        if (reply[0] != '\0')
            bad_reply("a body with 204", body, len, status, reply);
        return;
    }
    if (status == 413 && len <= LIMIT_BODY_MAX_BYTES)
        bad_reply("413 for a body within the limit", body, len, status, reply);
    if (status != 200 && status != 413)
        bad_reply("unexpected HTTP status", body, len, status, reply);
    r = json_loads(reply, JSON_REJECT_DUPLICATES, &jerr);
    if (json_is_array(r)) {
        /* a batch's replies: each a reply of its own, at least one (else 204) */
        if (json_array_size(r) == 0 || status != 200)
            bad_reply("an empty or non-200 batch reply", body, len, status, reply);
        size_t i;
        json_t *one;
        json_array_foreach(r, i, one)
        {
            char *text = json_dumps(one, JSON_COMPACT);
            check_reply(body, len, status, text);
            free(text);
        }
        json_decref(r);
        return;
    }
    if (!json_is_object(r))
        bad_reply("the reply is not a JSON object", body, len, status, reply);
    json_t *res = json_object_get(r, "result");
    json_t *err = json_object_get(r, "error");
    if (json_object_get(r, "id") == NULL)
        bad_reply("the reply has no id", body, len, status, reply);
    if (json_object_get(r, "jsonrpc") != NULL) {
        if (!json_is_string(json_object_get(r, "jsonrpc")) ||
            strcmp(json_string_value(json_object_get(r, "jsonrpc")), "2.0") != 0)
            bad_reply("jsonrpc is not \"2.0\"", body, len, status, reply);
        if ((res == NULL) == (err == NULL))
            bad_reply("a 2.0 reply needs exactly one of result and error", body, len, status,
                      reply);
        if (err != NULL && (!json_is_integer(json_object_get(err, "code")) ||
                            !json_is_string(json_object_get(err, "message"))))
            bad_reply("a 2.0 error needs an integer code and a message", body, len, status,
                      reply);
    } else {
        if (res == NULL || err == NULL)
            bad_reply("an xapi reply needs both result and error", body, len, status, reply);
        if (!json_is_null(res) && !json_is_null(err))
            bad_reply("an xapi reply with both a result and an error", body, len, status,
                      reply);
    }
    if (status == 413 && (err == NULL || json_is_null(err)))
        bad_reply("413 without an error", body, len, status, reply);
    json_decref(r);
}

/* The virtual seconds a body would make the service simulate if it is a sim.advance the
 * service accepts (0 otherwise). Every number among the params counts: the harness need
 * not know which one the front end takes. */
static double advance_one(const json_t *req);

static double advance_seconds(const uint8_t *body, size_t len)
{
    json_t *req = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    double total = 0;
    if (json_is_array(req)) { /* a batch: every request in it */
        size_t i;
        json_t *one;
        json_array_foreach(req, i, one) total += advance_one(one);
    } else {
        total = advance_one(req);
    }
    json_decref(req);
    return total;
}

static double advance_one(const json_t *req)
{
    json_t *params = json_object_get(req, "params");
    const char *method = json_string_value(json_object_get(req, "method"));
    double total = 0;

    if (method != NULL && strcmp(method, "sim.advance") == 0) {
        size_t i;
        const char *key;
        json_t *v;
        if (json_is_array(params)) {
            json_array_foreach(params, i, v)
            {
                double x = json_number_value(v);
                if (x > 0 && x <= LIMIT_ADVANCE_MAX_S)
                    total += x;
            }
        } else if (json_is_object(params)) {
            json_object_foreach(params, key, v)
            {
                double x = json_number_value(v);
                if (x > 0 && x <= LIMIT_ADVANCE_MAX_S)
                    total += x;
            }
        }
    }
    return total;
}

/* The KiB by which a violation line of sim/sim.c oversteps, or -1 if it does not
 * say (then it counts in full). */
static long long overstep_kib(const char *t)
{
    long long a, b, c, x;
    const char *p;

    /* "target>maxmem: memory/target written as T KiB, above maxmem M KiB ..." */
    if ((p = strstr(t, "written as ")) != NULL &&
        sscanf(p, "written as %lld KiB, above maxmem %lld KiB", &a, &b) == 2)
        return a - b;
    /* "maxmem<target: maxmem set to X KiB (Xen Y KiB), below both target T KiB and
     * actual A KiB" */
    if ((p = strstr(t, "maxmem set to ")) != NULL &&
        sscanf(p,
               "maxmem set to %lld KiB (Xen %lld KiB), below both target %lld KiB and "
               "actual %lld KiB",
               &x, &a, &b, &c) == 4)
        return (b < c ? b : c) - x;
    return -1;
}

/* The simulated host's truth after the conversation: the daemon never wrote a target
 * above a domain's maxmem, nor clipped maxmem below both target and actual (SPEC 3,
 * SPEC 6). Not checked:
 *  - "free<0": sim.create_domain lets a caller start a guest without reserving its
 *    memory first, and that guest then races the others for free memory -- the
 *    caller's doing, not the daemon's;
 *  - a maxmem that misses by less than a page (POLICY_PAGE_KIB): the sim keeps sizes in
 *    KiB, Xen in pages, and a domain created with sizes that are not whole pages (e.g.
 *    initial_reservation_kib 1048575) gets a memory-offset calibrated from whole pages
 *    that the sim's own bookkeeping does not share. */
static void check_world(struct service *svc, const uint8_t *data, size_t size)
{
    struct service_error se = {0};
    json_t *st = service_sim_state(svc, &se);
    json_t *line;
    size_t i;

    if (st == NULL) {
        fprintf(stderr, "fuzz_rpc: sim.state failed: %s\n", se.text != NULL ? se.text : "?");
        abort();
    }
    json_array_foreach(json_object_get(st, "violations"), i, line)
    {
        const char *t = json_string_value(line);
        if (t == NULL || strstr(t, "free<0") != NULL)
            continue;
        long long over = overstep_kib(t);
        if (over < 0 || over >= POLICY_PAGE_KIB) {
            fprintf(stderr,
                    "fuzz_rpc: the simulated host recorded a violation: %s\n"
                    "  input (%zu bytes): %.*s\n",
                    t, size, (int)(size > 2000 ? 2000 : size), (const char *)data);
            abort();
        }
    }
    json_decref(st);
}

/* The reservation id a reply hands out (the result of reserve_memory and
 * query_reservation_of_domain, the first element of reserve_memory_range's), as a new
 * string; NULL if none. */
static char *reply_reservation_id(const char *reply)
{
    json_t *r = json_loads(reply, 0, NULL);
    json_t *res = json_object_get(r, "result");
    const char *id;
    char *copy = NULL;

    if (json_is_array(res))
        res = json_array_get(res, 0);
    id = json_string_value(res);
    /* 8-4-4-4-12 hex digits: not a session name echoed by login. */
    if (id != NULL && strlen(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' &&
        id[23] == '-')
        copy = strdup(id);
    json_decref(r);
    return copy;
}

/* body with every FUZZ_ID_TOKEN replaced by id, in a new buffer of exactly *out_len
 * bytes (so that ASan still catches a read past its end); NULL if there is none. */
static uint8_t *substitute_id(const uint8_t *body, size_t len, const char *id, size_t *out_len)
{
    const size_t tlen = sizeof(FUZZ_ID_TOKEN) - 1;
    const size_t idlen = strlen(id);
    size_t n = 0;
    const uint8_t *q;
    uint8_t *out, *w;

    for (q = body; (q = memmem(q, len - (size_t)(q - body), FUZZ_ID_TOKEN, tlen)) != NULL;
         q += tlen)
        n++;
    if (n == 0)
        return NULL;
    *out_len = len - n * tlen + n * idlen;
    out = malloc(*out_len > 0 ? *out_len : 1);
    if (out == NULL)
        abort();
    w = out;
    for (const uint8_t *from = body;;) {
        q = memmem(from, len - (size_t)(from - body), FUZZ_ID_TOKEN, tlen);
        size_t chunk = q != NULL ? (size_t)(q - from) : len - (size_t)(from - body);
        memcpy(w, from, chunk);
        w += chunk;
        if (q == NULL)
            break;
        memcpy(w, id, idlen);
        w += idlen;
        from = q + tlen;
    }
    return out;
}

static const uint8_t *find_separator(const uint8_t *p, size_t len)
{
    return memmem(p, len, FUZZ_SEPARATOR, sizeof(FUZZ_SEPARATOR) - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct service *svc = world_open();
    const uint8_t *p = data;
    size_t left = size;
    double advance_left_s = FUZZ_MAX_ADVANCE_S;
    char *last_id = NULL;

    for (int n = 0; n < FUZZ_MAX_REQUESTS; n++) {
        const uint8_t *sep = n + 1 < FUZZ_MAX_REQUESTS ? find_separator(p, left) : NULL;
        size_t len = sep != NULL ? (size_t)(sep - p) : left;
        size_t blen = len;
        uint8_t *subst = last_id != NULL ? substitute_id(p, len, last_id, &blen) : NULL;
        const uint8_t *body = subst != NULL ? subst : p;
        double advance_s = advance_seconds(body, blen);
        if (advance_s <= advance_left_s) {
            int status = 0;
            char *reply = api_handle_rpc(svc, (const char *)body, blen, &status);
            if (trace)
                fprintf(stderr, "fuzz_rpc: request %d: %.*s\n  -> HTTP %d %s\n", n + 1,
                        (int)blen, (const char *)body, status, reply);
            check_reply(body, blen, status, reply);
            char *id = reply_reservation_id(reply);
            if (id != NULL) {
                free(last_id);
                last_id = id;
            }
            free(reply);
            advance_left_s -= advance_s;
        }
        free(subst);
        if (sep == NULL)
            break;
        p = sep + sizeof(FUZZ_SEPARATOR) - 1;
        left = size - (size_t)(p - data);
    }
    free(last_id);
    if (check_violations)
        check_world(svc, data, size);
    service_free(svc);
    return 0;
}
