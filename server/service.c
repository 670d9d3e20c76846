/* SPDX-License-Identifier: LGPL-2.1-only */
/* The daemon's operations: one worker thread runs them one at a time; status is published. */
#include "server/service.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cache/domcache.h"
#include "common/clock.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xalloc.h"
#include "server/history.h"
#include "server/request.h"
#include "server/reservations.h"
#include "server/service_life.h"
#include "server/service_sim.h"
#include "server/squeeze.h"
#include "server/status.h"

#define OPS_RING 64
#define PUBLISH_DURING_OP_MS 200 /* republish /status at most this often mid-operation */
#define RPC_ROOT "/squeezed/rpc" /* stored message-switch replies */

/* /history: one sample a second at most, an hour of them (common/limits.h; see
 * history_bytes). */
static const struct history_config service_history_config = {
    .max_samples = LIMIT_HISTORY_SAMPLES_MAX,
    .max_entries = LIMIT_HISTORY_ENTRIES_MAX,
    .min_interval_ms = LIMIT_HISTORY_INTERVAL_MIN_MS};

enum op_kind { OP_RESERVE, OP_RESERVE_RANGE, OP_BALANCE, OP_PERIODIC, OP_KINDS };
enum op_outcome {
    OUT_SUCCESS,
    OUT_CANNOT_FREE,
    OUT_REFUSED,
    OUT_ERROR,
    OUT_PREEMPTED,
    OUT_KINDS
};

static const char *const op_kind_names[OP_KINDS] = {"reserve", "reserve_range", "balance",
                                                    "periodic_balance"};
static const char *const op_outcome_names[OUT_KINDS] = {"success", "cannot_free", "refused",
                                                        "error", "preempted"};

struct op_record {
    enum op_kind kind;
    int64_t kib;
    enum op_outcome outcome;
    int64_t duration_ms; /* backend clock */
    unsigned rounds;
    int64_t at_ms;           /* backend clock, when it ended */
    int64_t started_wall_ms; /* time of day (Unix ms) when it started */
    int64_t waited_ms;       /* real time its client was queued before it started */
    char *dbg;               /* the client's dbg and session (owned); NULL: periodic */
    char *session;
    json_t *breakdown;     /* CANNOT_FREE / REFUSED of a reservation: one reference, or NULL */
    char *breakdown_text;  /* the same as compact JSON, for the /status picture; owned */
    unsigned reservations; /* reserve: the coalesced calls it served (1 when alone) */
    int64_t wait_ms;       /* backend clock: from the first call queued to the start */
};

/* Histogram bucket bounds in seconds (Prometheus' le): a squeeze takes from a few ms (the
 * fast path) to its 600 s timeout; a client waits from nothing to a whole balance. */
static const double hist_bounds_s[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                       2.5,   5,    10,    30,   60,  120,  300, 600};
#define HIST_N (sizeof(hist_bounds_s) / sizeof(hist_bounds_s[0]))

struct hist {
    uint64_t count;
    int64_t sum_ms;
    uint64_t bucket[HIST_N]; /* bucket[i]: observations in (bound i-1, bound i] */
};

/* A guest whose balloon the policy declared stuck, from then until it moves again. */
struct stuck_mark {
    int32_t domid;
    int64_t since_wall_ms; /* time of day (Unix ms) it was first declared stuck */
};

enum job_kind { /* the first five change the reservations; up to JOB_BALANCE: clients' */
                JOB_LOGIN,
                JOB_RESERVE,
                JOB_RESERVE_RANGE,
                JOB_DELETE,
                JOB_TRANSFER,
                JOB_QUERY,
                JOB_BALANCE,
                JOB_SIM_STATE,
                JOB_SIM_ADVANCE,
                JOB_SIM_CREATE,
                JOB_SIM_DESTROY,
                JOB_SIM_RANGE,
                JOB_SIM_BALLOON,
                JOB_SIM_CLAIM,
                JOB_SIM_PAUSE,
                JOB_RPC_GET, /* the message-switch front end's stored replies */
                JOB_RPC_PUT,
                JOB_KINDS,
};

/* The method each job answers (logs, the client wait histogram). */
static const char *const job_names[JOB_KINDS] = {"login",
                                                 "reserve_memory",
                                                 "reserve_memory_range",
                                                 "delete_reservation",
                                                 "transfer_reservation_to_domain",
                                                 "query_reservation_of_domain",
                                                 "balance_memory",
                                                 "sim.state",
                                                 "sim.advance",
                                                 "sim.create_domain",
                                                 "sim.destroy_domain",
                                                 "sim.set_dynamic_range",
                                                 "sim.set_balloon",
                                                 "sim.set_claim",
                                                 "sim.pause_domain",
                                                 "switch.reply_get",
                                                 "switch.reply_put"};
#define JOB_CLIENT_LAST JOB_BALANCE /* jobs after it are the simulator's (no dbg) */

/* One queued call, with the typed request its kind takes (checked by server/request.c
 * before it was queued). Lives on the caller's stack; the caller waits for done. */
struct job {
    enum job_kind kind;
    int64_t queued_ms;      /* backend clock when the worker first saw it (-1: not yet) */
    struct job *batch_next; /* JOB_RESERVE: the next call of its coalesced batch */
    union {
        struct req_login login;         /* JOB_LOGIN */
        struct req_reserve reserve;     /* JOB_RESERVE */
        struct req_reserve_range range; /* JOB_RESERVE_RANGE */
        struct req_delete del;          /* JOB_DELETE */
        struct req_transfer transfer;   /* JOB_TRANSFER */
        struct req_query query;         /* JOB_QUERY */
        struct req_sim_advance advance; /* JOB_SIM_ADVANCE */
        struct req_sim_create create;   /* JOB_SIM_CREATE */
        struct req_sim_destroy destroy; /* JOB_SIM_DESTROY */
        struct req_sim_range sim_range; /* JOB_SIM_RANGE */
        struct req_sim_balloon balloon; /* JOB_SIM_BALLOON */
        struct req_sim_claim claim;     /* JOB_SIM_CLAIM */
        struct req_sim_pause pause;     /* JOB_SIM_PAUSE */
        struct req_rpc_reply rpc;       /* JOB_RPC_GET, JOB_RPC_PUT */
    } req;
    const char *dbg;         /* the client's (borrowed); "" when it sent none */
    const char *session;     /* borrowed; NULL for calls without one */
    int64_t queued_wall_ms;  /* clock_monotonic_ms() when queued */
    int64_t started_wall_ms; /* clock_monotonic_ms() when it started running; -1: not yet */
    int64_t waited_wall_ms;  /* real time it waited in the queue before that */
    char *out_str;           /* outputs, owned by the caller once done */
    int64_t out_kib;
    json_t *out_json;
    struct service_error *err;
    int rc;
    bool done;
    struct job *next;
};

/* The squeeze operation running now (worker only), for /status, logs and records. */
struct op_ctx {
    bool on; /* between op_begin and op_end */
    enum op_kind kind;
    int64_t kib;                 /* asked (a range: its min) */
    int64_t max_kib;             /* a range: its max */
    char *dbg, *session;         /* copies of the first job's (owned: in a coalesced batch
                                    that job is answered, and its strings freed, before the
                                    operation ends); NULL for a periodic balance */
    int64_t waited_ms;           /* real time the client was queued */
    int64_t started_wall_ms;     /* time of day (Unix ms) */
    int64_t started_ms;          /* backend clock */
    bool have_start;             /* the first round was seen: the fields below are set */
    int64_t free_at_start_kib;   /* host free memory at the first round */
    int64_t needed_kib;          /* what must be freed on top of that (0: balance) */
    int64_t freed_kib;           /* freed so far */
    struct policy_domain *start; /* each domain as the first round saw it (owned) */
    size_t n_start, cap_start;
};

/* dom0 as last seen, for get_domain_zero_policy. */
struct dom0_info {
    bool present;
    int64_t target_kib, actual_kib, dynamic_min_kib, dynamic_max_kib;
};

struct service {
    struct backend *b; /* owned; used by the worker only once it runs */
    struct domcache *dc;
    struct squeezer *sq;
    struct reservations *resv;
    struct service_options o; /* o.sim: the simulated host's interface, or ops NULL */
    bool virtual_clock;
    int64_t started_ms; /* clock_monotonic_ms() at service_new */
    int64_t initial_free_kib;

    /* The queue. */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    struct job *q_head, *q_tail;
    bool q_closed;
    int wake_fd; /* eventfd: jobs queued or stop asked */
    atomic_bool stop;

    pthread_mutex_t life_mu;
    pthread_t thread;
    bool thread_running;

    /* Worker-only state. */
    int64_t next_periodic_ms;
    bool event_pending;          /* watch events changed something; a check is due */
    int64_t watch_retry_wall_ms; /* do not poll the watch fd before this (after errors) */
    bool busy;
    int in_op;             /* a squeeze operation is running (its hooks run jobs) */
    bool op_is_balance;    /* ... and it is a balance, which a reservation preempts */
    bool op_takes_reserve; /* ... and it is a reservation batch reserve calls may join */
    struct job *batch_head, *batch_tail;   /* the running batch's calls still waiting */
    struct job *answer_head, *answer_tail; /* answered once the status says so */
    int64_t batch_need_kib;                /* the sum of their kib */
    unsigned batch_size;                   /* calls the batch has taken, answered or not */
    int64_t batch_kib;                     /* and their kib */
    struct op_record ring[OPS_RING];
    size_t ring_n, ring_next;
    struct hist totals[OP_KINDS][OUT_KINDS]; /* operation durations (backend clock) */
    struct hist waits[JOB_CLIENT_LAST + 1];  /* clients' time queued, by method */
    int64_t last_publish_wall_ms;
    struct op_ctx cur;
    struct stuck_mark *stuck; /* sorted by domid */
    size_t n_stuck, cap_stuck;
    atomic_int q_waiting; /* jobs queued and not yet taken by the worker */

    /* The parts of the last picture, reused while unchanged (worker only). */
    struct status_domains *pub_domains;
    uint64_t pub_domains_snapshots; /* the snapshot counter they were made at */
    struct status_resvs *pub_resvs; /* kept in step with s->resv by resv_changed */

    /* Published for readers on other threads. */
    pthread_mutex_t pub_mu;
    struct status_picture *picture;
    struct dom0_info dom0;

    /* The history of /history (server/history.h), fed by publish. */
    pthread_mutex_t hist_mu;
    struct history *hist;
    int64_t hist_now_ms;  /* backend clock at the last sample */
    int64_t hist_wall_ms; /* clock_monotonic_ms() then */
};

/* ---- small helpers ------------------------------------------------------------------ */

static int64_t now_ms(struct service *s)
{
    return s->b->ops->now_ms(s->b);
}

static int shutting_down(struct service_error *err)
{
    return service_fail(err, SERVICE_ERR_INTERNAL, xstrdup("shutting down"));
}

const char *service_backend_name(const struct service *s)
{
    return s->b->ops->name;
}

const char *service_clock_name(const struct service *s)
{
    return s->virtual_clock ? "virtual" : "real";
}

/* The time of day in Unix ms (records and logs only: durations use monotonic clocks). */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ISO 8601 in UTC with milliseconds: "2025-01-31T12:00:00.123Z". */
static void iso_utc(int64_t unix_ms, char buf[64])
{
    status_iso_utc(unix_ms, buf);
}

static void hist_add(struct hist *h, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    h->count++;
    h->sum_ms += ms;
    for (size_t i = 0; i < HIST_N; i++)
        if ((double)ms <= hist_bounds_s[i] * 1000.0) {
            h->bucket[i]++;
            return;
        }
}

/* Cumulative counts, one per bound of hist_bounds_s (Prometheus' _bucket{le}). */
static void hist_cumulative(const struct hist *h, uint64_t out[STATUS_MAX_BOUNDS])
{
    uint64_t sum = 0;
    for (size_t i = 0; i < HIST_N && i < STATUS_MAX_BOUNDS; i++) {
        sum += h->bucket[i];
        out[i] = sum;
    }
}

static bool stuck_find(const struct service *s, int32_t domid, size_t *at)
{
    size_t lo = 0, hi = s->n_stuck;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->stuck[mid].domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return lo < s->n_stuck && s->stuck[lo].domid == domid;
}

/* ---- status ------------------------------------------------------------------------- */

static void domain_flags(const void *ctx, const struct domcache_snapshot *snap, bool *stuck,
                         bool *uncooperative)
{
    squeeze_domain_flags(ctx, snap, stuck, uncooperative);
}

/* The VM's name and uuid (read once per domain by the cache) and since when its balloon
 * is stuck. */
static void domain_ident(void *ctx, int32_t domid, const char **name, const char **uuid,
                         int64_t *stuck_since_wall_ms)
{
    struct service *s = ctx;
    size_t at;
    if (domcache_identity(s->dc, (uint32_t)domid, name, uuid) < 0)
        *name = *uuid = NULL;
    *stuck_since_wall_ms = stuck_find(s, domid, &at) ? s->stuck[at].since_wall_ms : -1;
}

/* One history sample per publish (history.c keeps one per second and drops repeats). */
static void record_history(struct service *s, const struct domcache_snapshot *snap)
{
    if (snap == NULL)
        return;
    size_t n = snap->host.n_domains;
    struct history_domain *d = xreallocarray(NULL, n > 0 ? n : 1, sizeof(*d));
    for (size_t i = 0; i < n; i++)
        d[i] = (struct history_domain){.domid = snap->domains[i].domid,
                                       .target_kib = snap->domains[i].target_kib,
                                       .actual_kib = snap->domains[i].actual_kib};
    int64_t now = now_ms(s);
    pthread_mutex_lock(&s->hist_mu);
    history_add(s->hist, now, snap->host.free_kib, d, n);
    s->hist_now_ms = now;
    s->hist_wall_ms = clock_monotonic_ms();
    pthread_mutex_unlock(&s->hist_mu);
    free(d);
}

json_t *service_history(struct service *s, int64_t window_ms, const int32_t *domids,
                        size_t n_domids)
{
    pthread_mutex_lock(&s->hist_mu);
    /* The backend's clock belongs to the worker: extrapolate from the last sample (on the
     * virtual clock, time passes only in sim.advance, which samples). */
    int64_t now =
        s->hist_now_ms + (s->virtual_clock ? 0 : clock_monotonic_ms() - s->hist_wall_ms);
    json_t *j = history_json(s->hist, now, window_ms, domids, n_domids);
    pthread_mutex_unlock(&s->hist_mu);
    return j;
}

/* A change of the reservations, applied to the published set as it happens: O(log N)
 * (server/status.h), where rebuilding the set after each change was O(N). */
static void resv_changed(void *ctx, enum reservations_change what, const struct reservation *x)
{
    struct service *s = ctx;
    struct status_resvs *v = NULL;
    switch (what) {
    case RESERVATIONS_ADDED:
        v = status_resvs_add(s->pub_resvs, x);
        break;
    case RESERVATIONS_CHANGED:
        v = status_resvs_set(s->pub_resvs, x);
        break;
    case RESERVATIONS_REMOVED:
        v = status_resvs_remove(s->pub_resvs, x->seq);
        break;
    }
    status_resvs_unref(s->pub_resvs);
    s->pub_resvs = v;
}

/* Publish the worker's state as a new picture (server/status.h). No serialisation here:
 * the picture copies the small parts and shares the domains (rebuilt only after a new
 * snapshot) and the reservations (kept in step by resv_changed); HTTP threads make the
 * bytes on first read. Worker thread (or service_new before the worker starts). */
static void publish(struct service *s)
{
    const struct domcache_snapshot *snap = squeeze_last_snapshot(s->sq);
    struct domcache_counters c;
    domcache_counters(s->dc, &c);
    if (s->pub_domains == NULL || snap == NULL || c.snapshots != s->pub_domains_snapshots) {
        status_domains_unref(s->pub_domains);
        s->pub_domains = status_domains_new(snap, domain_flags, s->sq, domain_ident, s);
        s->pub_domains_snapshots = c.snapshots;
    }
    assert(status_resvs_count(s->pub_resvs) == reservations_count(s->resv));
    struct status_op ops[OPS_RING];
    size_t first = (s->ring_next + OPS_RING - s->ring_n) % OPS_RING;
    for (size_t k = 0; k < s->ring_n; k++) {
        const struct op_record *r = &s->ring[(first + k) % OPS_RING];
        ops[k] = (struct status_op){
            .kind = op_kind_names[r->kind],
            .kib = r->kib,
            .outcome = op_outcome_names[r->outcome],
            .started_wall_ms = r->started_wall_ms,
            .waited_ms = r->waited_ms,
            .duration_ms = r->duration_ms,
            .rounds = r->rounds,
            .at_ms = r->at_ms,
            .wait_ms = r->wait_ms,
            .reservations = r->reservations,
            .dbg = r->dbg,
            .session = r->session,
            .breakdown = r->breakdown_text,
        };
    }
    struct status_total totals[OP_KINDS * OUT_KINDS];
    size_t n_totals = 0;
    for (int k = 0; k < OP_KINDS; k++)
        for (int o = 0; o < OUT_KINDS; o++) {
            struct status_total *t = &totals[n_totals++];
            *t = (struct status_total){
                .kind = op_kind_names[k],
                .outcome = op_outcome_names[o],
                .count = s->totals[k][o].count,
                .duration_ms_sum = s->totals[k][o].sum_ms,
            };
            hist_cumulative(&s->totals[k][o], t->buckets);
        }
    struct status_wait waits[JOB_CLIENT_LAST + 1];
    for (int k = 0; k <= JOB_CLIENT_LAST; k++) {
        waits[k] = (struct status_wait){
            .method = job_names[k],
            .count = s->waits[k].count,
            .wait_ms_sum = s->waits[k].sum_ms,
        };
        hist_cumulative(&s->waits[k], waits[k].buckets);
    }
    const struct op_ctx *cur = &s->cur;
    struct status_running running = {0};
    if (cur->on) {
        running = (struct status_running){
            .kind = op_kind_names[cur->kind],
            .kib = cur->kib,
            .has_max = cur->kind == OP_RESERVE_RANGE,
            .max_kib = cur->max_kib,
            .started_wall_ms = cur->started_wall_ms,
            .started_ms = cur->started_ms,
            .waiting = atomic_load(&s->q_waiting),
            .dbg = cur->dbg,
            .session = cur->session,
            .has_progress = cur->have_start && cur->needed_kib > 0,
            .freed_kib = cur->freed_kib,
            .needed_kib = cur->needed_kib,
        };
    }
    struct status_input in = {
        .have_host = snap != NULL,
        .reserved_kib = s->o.reserved_host_kib,
        .domains = s->pub_domains,
        .resvs = s->pub_resvs,
        .ops = ops,
        .n_ops = s->ring_n,
        .totals = totals,
        .n_totals = n_totals,
        .waits = waits,
        .n_waits = JOB_CLIENT_LAST + 1,
        .bounds_s = hist_bounds_s,
        .n_bounds = HIST_N,
        .running = cur->on ? &running : NULL,
        .cache = c,
        .watching = domcache_watching(s->dc),
        .version = SQUEEZED_VERSION,
        .backend = service_backend_name(s),
        .clock = service_clock_name(s),
        .busy = s->busy,
        .now_ms = now_ms(s),
        .uptime_s = (double)(clock_monotonic_ms() - s->started_ms) / 1000.0,
    };
    if (snap != NULL) {
        /* Reservations granted or deleted since the snapshot (their callers may have
         * their answer already) count at once, so the picture agrees with its list. */
        int64_t unaccounted_kib = reservations_unaccounted_kib(s->resv);
        in.free_kib = snap->host.free_kib - unaccounted_kib;
        in.total_kib = snap->total_kib;
        in.xen_free_kib = snap->xen_free_kib;
        in.scrub_kib = snap->scrub_kib;
        in.reservations_kib = snap->reservations_kib + unaccounted_kib;
        in.booting_unused_kib = snap->booting_unused_kib;
        in.claims_kib = snap->claims_kib;
    }
    struct status_picture *pic = status_picture_new(&in);
    struct dom0_info d0 = {0};
    if (snap != NULL && snap->host.n_domains > 0 && snap->domains[0].domid == 0) {
        d0.present = true;
        d0.target_kib = snap->domains[0].target_kib;
        d0.actual_kib = snap->domains[0].actual_kib;
        d0.dynamic_min_kib = snap->domains[0].dynamic_min_kib;
        d0.dynamic_max_kib = snap->domains[0].dynamic_max_kib;
    }
    pthread_mutex_lock(&s->pub_mu);
    struct status_picture *old = s->picture;
    s->picture = pic;
    s->dom0 = d0;
    pthread_mutex_unlock(&s->pub_mu);
    status_picture_unref(old);
    s->last_publish_wall_ms = clock_monotonic_ms();
    record_history(s, snap);
}

struct status_picture *service_status_picture(struct service *s)
{
    pthread_mutex_lock(&s->pub_mu);
    struct status_picture *p = s->picture != NULL ? status_picture_ref(s->picture) : NULL;
    pthread_mutex_unlock(&s->pub_mu);
    return p;
}

json_t *service_status(struct service *s)
{
    struct status_picture *p = service_status_picture(s);
    if (p == NULL)
        return NULL;
    size_t len;
    const char *text = status_picture_json(p, &len);
    json_t *st = json_loadb(text, len, 0, NULL);
    status_picture_unref(p);
    return st;
}

/* Why the running operation moves balloons, for the target change lines. */
static void op_why(const struct op_ctx *c, char *buf, size_t size)
{
    const char *dbg = c->dbg != NULL && c->dbg[0] != '\0' ? c->dbg : NULL;
    switch (c->kind) {
    case OP_RESERVE:
        snprintf(buf, size, "squeeze for reserve %" PRId64 " KiB%s%s%s", c->kib,
                 dbg ? " (dbg " : "", dbg ? dbg : "", dbg ? ")" : "");
        break;
    case OP_RESERVE_RANGE:
        snprintf(buf, size, "squeeze for reserve %" PRId64 "..%" PRId64 " KiB%s%s%s", c->kib,
                 c->max_kib, dbg ? " (dbg " : "", dbg ? dbg : "", dbg ? ")" : "");
        break;
    case OP_BALANCE:
        snprintf(buf, size, "balance%s%s%s", dbg ? " (dbg " : "", dbg ? dbg : "",
                 dbg ? ")" : "");
        break;
    default:
        snprintf(buf, size, "periodic balance");
        break;
    }
}

static const struct policy_domain *snap_domain(const struct domcache_snapshot *snap,
                                               int32_t domid, size_t *index)
{
    size_t lo = 0, hi = snap->host.n_domains;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (snap->host.domains[mid].domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < snap->host.n_domains && snap->host.domains[lo].domid == domid) {
        if (index != NULL)
            *index = lo;
        return &snap->host.domains[lo];
    }
    return NULL;
}

/* Stuck and moving again, logged once per change (the policy's own tracking starts
 * afresh with every operation; this set lasts until the balloon is seen to move). */
static void track_stuck(struct service *s, const struct domcache_snapshot *snap,
                        const struct policy_decision *d)
{
    size_t at;
    for (size_t i = 0; i < d->n_newly_stuck; i++) {
        int32_t domid = d->newly_stuck[i];
        if (stuck_find(s, domid, &at))
            continue;
        if (s->n_stuck == s->cap_stuck) {
            s->cap_stuck = s->cap_stuck ? 2 * s->cap_stuck : 8;
            s->stuck = xreallocarray(s->stuck, s->cap_stuck, sizeof(*s->stuck));
        }
        memmove(&s->stuck[at + 1], &s->stuck[at], (s->n_stuck - at) * sizeof(*s->stuck));
        s->stuck[at] = (struct stuck_mark){.domid = domid, .since_wall_ms = wall_ms()};
        s->n_stuck++;
        const struct policy_domain *pd = snap_domain(snap, domid, NULL);
        log_dom_info(domid,
                     "balloon stuck: target %" PRId64 " KiB, actual %" PRId64
                     " KiB, no move for over 5 s; working around it",
                     pd != NULL ? pd->target_kib : -1, pd != NULL ? pd->actual_kib : -1);
    }
    /* Moving again: the policy says so, or the balloon reached its target, or the domain
     * has gone (silently). */
    for (size_t k = 0; k < s->n_stuck;) {
        int32_t domid = s->stuck[k].domid;
        const struct policy_domain *pd = snap_domain(snap, domid, NULL);
        bool moved = false;
        for (size_t i = 0; i < d->n_newly_active && !moved; i++)
            moved = d->newly_active[i] == domid;
        bool at_target = pd != NULL && llabs(pd->actual_kib - pd->target_kib) <=
                                           (pd->inaccuracy_kib > 0 ? pd->inaccuracy_kib : 4);
        if (pd != NULL && !moved && !at_target) {
            k++;
            continue;
        }
        if (pd != NULL) {
            char since[64];
            iso_utc(s->stuck[k].since_wall_ms, since);
            log_dom_info(domid, "balloon moving again (stuck since %s)", since);
        }
        memmove(&s->stuck[k], &s->stuck[k + 1], (s->n_stuck - k - 1) * sizeof(*s->stuck));
        s->n_stuck--;
    }
}

/* Every round of a squeeze: progress, one line per target changed, stuck changes; and
 * let readers follow a long squeeze, without rebuilding /status every round. */
static void observe_round(void *ctx, const struct domcache_snapshot *snap,
                          const struct policy_decision *d)
{
    struct service *s = ctx;
    struct op_ctx *c = &s->cur;
    if (c->on && !c->have_start) {
        c->have_start = true;
        c->free_at_start_kib = snap->host.free_kib;
        int64_t want = c->kind == OP_RESERVE || c->kind == OP_RESERVE_RANGE
                           ? c->kib + s->o.reserved_host_kib
                           : 0;
        c->needed_kib = want > c->free_at_start_kib ? want - c->free_at_start_kib : 0;
        if (c->cap_start < snap->host.n_domains) {
            c->cap_start = snap->host.n_domains;
            c->start = xreallocarray(c->start, c->cap_start, sizeof(*c->start));
        }
        c->n_start = snap->host.n_domains;
        if (c->n_start > 0)
            memcpy(c->start, snap->host.domains, c->n_start * sizeof(*c->start));
    }
    if (c->on && c->have_start) {
        int64_t freed = snap->host.free_kib - c->free_at_start_kib;
        c->freed_kib = freed < 0 ? 0 : freed > c->needed_kib ? c->needed_kib : freed;
    }
    track_stuck(s, snap, d);
    if (d->verdict == POLICY_CONTINUE) {
        char why[160] = "";
        for (size_t i = 0; i < d->n_ops; i++) {
            const struct policy_op *op = &d->ops[i];
            const struct policy_domain *pd = snap_domain(snap, op->domid, NULL);
            int64_t old = pd == NULL                         ? -1
                          : op->kind == POLICY_OP_SET_TARGET ? pd->target_kib
                                                             : pd->maxmem_kib;
            if (old == op->value_kib)
                continue;
            if (why[0] == '\0')
                op_why(c, why, sizeof(why));
            if (op->kind == POLICY_OP_SET_TARGET)
                log_dom_info(op->domid, "target %" PRId64 " -> %" PRId64 " KiB: %s", old,
                             (int64_t)op->value_kib, why);
            else
                log_dom_debug(op->domid, "maxmem %" PRId64 " -> %" PRId64 " KiB: %s", old,
                              (int64_t)op->value_kib, why);
        }
    }
    if (clock_monotonic_ms() - s->last_publish_wall_ms >= PUBLISH_DURING_OP_MS)
        publish(s);
}

/* ---- squeeze operations ------------------------------------------------------------- */

static enum op_outcome outcome_of(int rc, const struct squeeze_result *res)
{
    if (rc < 0 || res->cancelled)
        return OUT_ERROR;
    if (res->preempted)
        return OUT_PREEMPTED;
    switch (res->verdict) {
    case POLICY_SUCCESS:
        return OUT_SUCCESS;
    case POLICY_REFUSED:
        return OUT_REFUSED;
    case POLICY_CANNOT_FREE:
    case POLICY_CONTINUE:
        break;
    }
    return OUT_CANNOT_FREE;
}

/* Why each guest did not give more, after a reservation failed: for every guest that
 * still held memory above its dynamic-min or gave some during the operation, what it
 * held, what it gave (at what rate) and why it stopped. New object; *line gets the same
 * as one log line's tail (new string). */
static json_t *breakdown(struct service *s, const struct squeeze_result *res, char **line)
{
    const struct domcache_snapshot *snap = squeeze_last_snapshot(s->sq);
    const struct op_ctx *c = &s->cur;
    json_t *doms = json_array();
    char *text = NULL;
    size_t len = 0, listed = 0, more = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        fatal("open_memstream");
    double secs = (double)res->duration_ms / 1000.0;
    for (size_t i = 0; snap != NULL && i < snap->host.n_domains; i++) {
        const struct policy_domain *d = &snap->host.domains[i];
        const struct domcache_domain_extra *x = &snap->extra[i];
        int64_t held = d->actual_kib - d->dynamic_min_kib;
        if (held < 0)
            held = 0;
        int64_t gave = 0;
        if (c->have_start) {
            struct domcache_snapshot start = {
                .host = {.n_domains = c->n_start, .domains = c->start}};
            const struct policy_domain *d0 = snap_domain(&start, d->domid, NULL);
            if (d0 != NULL)
                gave = d0->actual_kib - d->actual_kib;
        }
        if (held == 0 && gave <= 0)
            continue;
        int64_t inacc = d->inaccuracy_kib > 0 ? d->inaccuracy_kib : 4;
        const char *why;
        size_t at;
        bool stuck = stuck_find(s, d->domid, &at);
        if (x->booting)
            why = "booting";
        else if (d->paused) /* its balloon driver cannot run (issue 10) */
            why = "paused";
        else if (!d->can_balloon)
            why = "no_balloon_driver";
        else if (stuck || squeeze_domain_stuck(s->sq, d->domid))
            why = "stuck";
        else if (held <= 2 * inacc)
            why = "at_dynamic_min";
        else if (squeeze_domain_uncooperative(s->sq, d->domid))
            why = "uncooperative";
        else
            why = "not_needed"; /* the verdict came before it was asked for more */
        /* Averaged over the whole operation: a lower bound of the balloon's speed. */
        int64_t rate = secs > 0 && gave > 0 ? (int64_t)llround((double)gave / secs) : 0;
        json_t *o =
            json_pack("{s:i,s:I,s:I,s:I,s:I,s:s,s:I}", "domid", d->domid, "held_above_min_kib",
                      (json_int_t)held, "gave_kib", (json_int_t)gave, "target_kib",
                      (json_int_t)d->target_kib, "actual_kib", (json_int_t)d->actual_kib,
                      "reason", why, "rate_kib_s", (json_int_t)rate);
        char since[64] = "";
        if (stuck) {
            iso_utc(s->stuck[at].since_wall_ms, since);
            json_object_set_new(o, "stuck_since", json_string(since));
        }
        const char *name, *uuid;
        if (domcache_identity(s->dc, (uint32_t)d->domid, &name, &uuid) == 0 && name != NULL)
            json_object_set_new(o, "name", json_string(name));
        json_array_append_new(doms, o);
        if (listed++ >= 16) {
            more++;
            continue;
        }
        fprintf(f,
                "; domid %d: held %" PRId64 " KiB above dynamic-min, gave %" PRId64
                " KiB (%" PRId64 " KiB/s), %s%s%s",
                d->domid, held, gave, rate, why, stuck ? " since " : "", since);
    }
    if (more > 0)
        fprintf(f, "; and %zu more guests (see /status)", more);
    if (listed == 0)
        fputs("; no guest held memory above its dynamic-min", f);
    fclose(f);
    *line = text;
    /* A refusal carries no figures of its own: the host's as the operation left it. */
    int64_t needed =
        res->verdict == POLICY_CANNOT_FREE ? res->needed_kib : c->kib + s->o.reserved_host_kib;
    int64_t free_kib = res->verdict == POLICY_CANNOT_FREE ? res->free_kib
                       : snap != NULL                     ? snap->host.free_kib
                                                          : 0;
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "needed_kib", (json_int_t)needed, "free_kib",
                     (json_int_t)free_kib, "free_at_start_kib",
                     (json_int_t)(c->have_start ? c->free_at_start_kib : res->free_kib),
                     "duration_ms", (json_int_t)res->duration_ms, "rounds",
                     (json_int_t)res->rounds, "domains", doms);
}

/* Record the operation that ends, with its explanation when a reservation failed; the
 * breakdown also goes into err (a reference) for the JSON-RPC 2.0 error's data, and is
 * returned (borrowed from the record; NULL: none). reservations: the calls a reserve
 * operation served; queued_ms: when the first of them was queued (backend clock; -1: not
 * a call). */
static const json_t *record_op(struct service *s, enum op_kind kind, int64_t kib, int rc,
                               const struct squeeze_result *res, struct service_error *err,
                               unsigned reservations, int64_t queued_ms)
{
    const struct op_ctx *c = &s->cur;
    struct op_record r = {
        .kind = kind,
        .kib = kib,
        .outcome = outcome_of(rc, res),
        .duration_ms = rc < 0 ? 0 : res->duration_ms,
        .rounds = rc < 0 ? 0 : res->rounds,
        .at_ms = now_ms(s),
        .started_wall_ms = c->on ? c->started_wall_ms : wall_ms(),
        .waited_ms = c->on ? c->waited_ms : 0,
        .dbg = c->on && c->dbg != NULL ? xstrdup(c->dbg) : NULL,
        .session = c->on && c->session != NULL ? xstrdup(c->session) : NULL,
        .reservations = reservations,
    };
    if (queued_ms >= 0) {
        int64_t started_ms = r.at_ms - r.duration_ms;
        r.wait_ms = started_ms > queued_ms ? started_ms - queued_ms : 0;
    }
    char *explained = NULL;
    if (rc == 0 && !res->cancelled && (kind == OP_RESERVE || kind == OP_RESERVE_RANGE) &&
        (r.outcome == OUT_CANNOT_FREE || r.outcome == OUT_REFUSED)) {
        r.breakdown = breakdown(s, res, &explained);
        r.breakdown_text = json_dumps(r.breakdown, JSON_COMPACT);
        if (err != NULL &&
            (err->kind == SERVICE_ERR_CANNOT_FREE || err->kind == SERVICE_ERR_REFUSED)) {
            json_decref(err->breakdown);
            err->breakdown = json_incref(r.breakdown);
        }
    }
    struct op_record *slot = &s->ring[s->ring_next];
    if (s->ring_n == OPS_RING) {
        free(slot->dbg);
        free(slot->session);
        json_decref(slot->breakdown);
        free(slot->breakdown_text);
    }
    *slot = r;
    s->ring_next = (s->ring_next + 1) % OPS_RING;
    if (s->ring_n < OPS_RING)
        s->ring_n++;
    hist_add(&s->totals[kind][r.outcome], r.duration_ms);

    char who[160] = "";
    if (r.dbg != NULL)
        snprintf(who, sizeof(who), "dbg %s: ", r.dbg);
    if (rc < 0) {
        log_warnx("%s%s %" PRId64 " KiB: error: cannot read the host (%s)", who,
                  op_kind_names[kind], kib, strerror(-rc));
        return NULL;
    }
    char refused[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < res->n_refused && used + 16 < sizeof(refused); i++)
        used += (size_t)snprintf(refused + used, sizeof(refused) - used, "%s%d",
                                 i ? "," : " domids ", res->refused[i]);
    void (*log_fn)(const char *, ...) = r.outcome == OUT_SUCCESS ? log_info : log_warnx;
    if (kind == OP_PERIODIC && r.outcome == OUT_SUCCESS)
        log_fn = log_debug;
    if (res->cancelled || r.outcome == OUT_PREEMPTED) /* stopping, or giving way: expected */
        log_fn = log_info;
    log_fn("%s%s %" PRId64 " KiB%s: %s%s%s after %u rounds, %" PRId64 " ms%s%s", who,
           op_kind_names[kind], kib, reservations > 1 ? " (coalesced)" : "",
           op_outcome_names[r.outcome], refused, res->cancelled ? " (cancelled: stopping)" : "",
           r.rounds, r.duration_ms, res->fast_path ? " (fast path)" : "",
           explained != NULL ? explained : "");
    free(explained);
    return r.breakdown;
}

/* The operation a job (or the periodic duty) is about to run; squeeze_started stamps it
 * when the squeezer really starts. job NULL: the periodic balance. */
static void op_begin(struct service *s, enum op_kind kind, int64_t kib, int64_t max_kib,
                     const struct job *j, int64_t waited_ms)
{
    struct op_ctx *c = &s->cur;
    c->on = true;
    c->kind = kind;
    c->kib = kib;
    c->max_kib = max_kib;
    free(c->dbg);
    free(c->session);
    c->dbg = j != NULL && j->dbg != NULL ? xstrdup(j->dbg) : NULL;
    c->session = j != NULL && j->session != NULL ? xstrdup(j->session) : NULL;
    c->waited_ms = waited_ms;
    c->started_wall_ms = wall_ms();
    c->started_ms = now_ms(s);
    c->have_start = false;
    c->needed_kib = c->freed_kib = 0;
    c->n_start = 0;
}

static void op_end(struct service *s)
{
    s->cur.on = false;
    free(s->cur.dbg);
    free(s->cur.session);
    s->cur.dbg = s->cur.session = NULL;
}

/* A squeeze operation starts (squeezer start hook): /status says busy (and what runs)
 * until the job or the periodic balance that started it is over. */
static void squeeze_started(void *ctx)
{
    struct service *s = ctx;
    s->busy = true;
    s->cur.started_wall_ms = wall_ms();
    s->cur.started_ms = now_ms(s);
    publish(s);
}

/* ---- jobs during an operation ------------------------------------------------------- */

static void job_args(const struct job *j, char *buf, size_t size);
static void log_call_end(const struct job *j, int rc, int64_t ms, bool queued);

/* A call starts running (once: a balance that gave way and runs again, or a reserve call
 * joining a batch, count once): its time in the queue goes to the client wait histogram
 * and the log. */
static void job_starts(struct service *s, struct job *j)
{
    if (j->started_wall_ms >= 0)
        return;
    j->started_wall_ms = clock_monotonic_ms();
    j->waited_wall_ms = j->started_wall_ms - j->queued_wall_ms;
    if (j->kind > JOB_CLIENT_LAST)
        return;
    hist_add(&s->waits[j->kind], j->waited_wall_ms);
    char args[256];
    job_args(j, args, sizeof(args));
    log_info("dbg %s: %s%s%s: started after %" PRId64 " ms in the queue", j->dbg,
             job_names[j->kind], args[0] != '\0' ? " " : "", args, j->waited_wall_ms);
}

static bool run_job(struct service *s, struct job *j);
static void finish_job(struct service *s, struct job *j);
static void requeue(struct service *s, struct job *j);

/* Calls that move no memory: they run between the rounds of a squeeze (their effect is
 * seen by its next round: a deleted reservation's memory is counted back at once). */
static bool moves_no_memory(enum job_kind k)
{
    return k == JOB_LOGIN || k == JOB_DELETE || k == JOB_TRANSFER || k == JOB_QUERY ||
           k == JOB_SIM_STATE || k == JOB_RPC_GET || k == JOB_RPC_PUT;
}

static bool is_reserve(enum job_kind k)
{
    return k == JOB_RESERVE || k == JOB_RESERVE_RANGE;
}

/* Worker thread, q_mu held: note when each call was first seen (the backend's clock is
 * the worker's to read). */
static void stamp_queue(struct service *s, int64_t t_ms)
{
    for (struct job *j = s->q_head; j != NULL; j = j->next)
        if (j->queued_ms < 0)
            j->queued_ms = t_ms;
}

/* True if a reservation waits in the queue (a balance then gives way). */
static bool reserve_queued(struct service *s)
{
    int64_t t_ms = now_ms(s);
    pthread_mutex_lock(&s->q_mu);
    stamp_queue(s, t_ms);
    bool found = false;
    for (struct job *j = s->q_head; j != NULL && !found; j = j->next)
        found = is_reserve(j->kind);
    pthread_mutex_unlock(&s->q_mu);
    return found;
}

/* The running batch's calls of session not granted yet. */
static size_t batch_pending(const struct service *s, const char *session)
{
    size_t n = 0;
    for (const struct job *j = s->batch_head; j != NULL; j = j->batch_next)
        n += strcmp(j->req.reserve.session, session) == 0;
    return n;
}

/* A reserve call joins the running batch: its kib adds to what the squeeze frees. */
static void batch_add(struct service *s, struct job *j)
{
    job_starts(s, j);
    j->batch_next = NULL;
    if (s->batch_tail != NULL)
        s->batch_tail->batch_next = j;
    else
        s->batch_head = j;
    s->batch_tail = j;
    s->batch_need_kib += j->req.reserve.kib;
    s->batch_size++;
    s->batch_kib += j->req.reserve.kib;
    if (s->cur.on && s->cur.kind == OP_RESERVE)
        s->cur.kib = s->batch_kib; /* /status' running shows the whole batch */
}

/* Take out of the queue, in order, what may run now: calls that move no memory, and
 * reserve calls when a batch is open to them (a call from an unknown session is answered
 * at once). The rest stays queued, in order. */
static void run_jobs_between_rounds(struct service *s)
{
    struct job *take = NULL, **tail = &take;
    int64_t t_ms = now_ms(s);
    pthread_mutex_lock(&s->q_mu);
    stamp_queue(s, t_ms);
    struct job **pp = &s->q_head;
    s->q_tail = NULL;
    while (*pp != NULL) {
        struct job *j = *pp;
        if (moves_no_memory(j->kind) || (j->kind == JOB_RESERVE && s->op_takes_reserve)) {
            *pp = j->next;
            j->next = NULL;
            atomic_fetch_sub(&s->q_waiting, 1);
            *tail = j;
            tail = &j->next;
        } else {
            s->q_tail = j;
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&s->q_mu);

    while (take != NULL) {
        struct job *j = take;
        take = j->next;
        if (j->kind != JOB_RESERVE) {
            if (run_job(s, j))
                finish_job(s, j);
        } else if (!reservations_has_session(s->resv, j->req.reserve.session)) {
            struct service_error *e = j->err;
            j->rc = service_fail(
                e, SERVICE_ERR_INTERNAL,
                xasprintf("unknown session '%s': call login first", j->req.reserve.session));
            finish_job(s, j);
        } else if (reservations_check_room(s->resv, j->req.reserve.session,
                                           batch_pending(s, j->req.reserve.session),
                                           j->err) < 0) {
            j->rc = -1; /* max-reservations-per-session, counting the batch's calls */
            finish_job(s, j);
        } else {
            batch_add(s, j);
        }
    }
}

/* Drain the wake-up counter. */
static void take_wakeup(struct service *s)
{
    uint64_t v;
    if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("worker: reading the wake-up counter");
}

/*
 * The squeezer's wait between rounds. On the real clock: wait on the wake-up fd until
 * the round's time is over, running calls as they arrive, so they answer within
 * milliseconds; a balance stops waiting as soon as a reservation is queued. On the
 * virtual clock: run what is queued, then let the simulated time pass.
 */
static void op_wait(void *ctx, int64_t wait_ms)
{
    struct service *s = ctx;
    if (s->virtual_clock) {
        run_jobs_between_rounds(s);
        if (!(s->op_is_balance && reserve_queued(s)))
            s->b->ops->sleep_ms(s->b, wait_ms);
        return;
    }
    int64_t end_ms = clock_monotonic_ms() + wait_ms;
    for (;;) {
        run_jobs_between_rounds(s);
        if (atomic_load(&s->stop) || (s->op_is_balance && reserve_queued(s)))
            return;
        int64_t left_ms = end_ms - clock_monotonic_ms();
        if (left_ms <= 0)
            return;
        struct pollfd fd = {.fd = s->wake_fd, .events = POLLIN};
        int n = poll(&fd, 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (n < 0 && errno != EINTR)
            log_warn("worker: poll");
        if (n > 0 && (fd.revents & POLLIN))
            take_wakeup(s);
    }
}

static bool op_yield(void *ctx)
{
    struct service *s = ctx;
    return s->op_is_balance && reserve_queued(s);
}

static int64_t batch_need(void *ctx)
{
    struct service *s = ctx;
    return s->batch_need_kib;
}

/* Calls granted or failed whose answer waits for the status to say so. */
static void answer_later(struct service *s, struct job *j)
{
    j->batch_next = NULL;
    if (s->answer_tail != NULL)
        s->answer_tail->batch_next = j;
    else
        s->answer_head = j;
    s->answer_tail = j;
}

/* Answer them (after a publish: a caller that reads /status next sees its call). */
static void answer_now(struct service *s)
{
    while (s->answer_head != NULL) {
        struct job *j = s->answer_head;
        s->answer_head = j->batch_next;
        finish_job(s, j);
    }
    s->answer_tail = NULL;
}

/* After a round: answer the waiting calls, in arrival order, whose memory is now
 * guaranteed (grantable: guaranteed free above the host reserve after the round). While
 * calls remain waiting, those granted are answered at once; the last ones when the
 * operation is recorded. */
static void batch_round(void *ctx, const struct policy_decision *d, int64_t grantable_kib)
{
    (void)d;
    struct service *s = ctx;
    int64_t granted_kib = 0;
    while (s->batch_head != NULL) {
        struct job *j = s->batch_head;
        int64_t kib = j->req.reserve.kib;
        if (granted_kib + kib > grantable_kib)
            break;
        s->batch_head = j->batch_next;
        if (s->batch_head == NULL)
            s->batch_tail = NULL;
        s->batch_need_kib -= kib;
        j->rc = reservations_grant(s->resv, j->req.reserve.session, kib, &j->out_str, j->err);
        if (j->rc == 0)
            granted_kib += kib;
        answer_later(s, j);
    }
    if (granted_kib > 0 && s->batch_head != NULL) {
        publish(s);
        answer_now(s);
    }
}

static void op_enter(struct service *s, bool balance, bool takes_reserve)
{
    s->in_op++;
    s->op_is_balance = balance;
    s->op_takes_reserve = takes_reserve;
}

/* The operation is over: the status shows the host as it left it, counting the
 * reservations granted or deleted during it: the last snapshot brought up to date when
 * nothing was written since it was taken (a reserve that needed no ballooning), else a
 * fresh one. */
static void op_leave(struct service *s)
{
    s->in_op--;
    s->op_is_balance = false;
    s->op_takes_reserve = false;
    s->busy = false;
    if (s->in_op == 0 && !atomic_load(&s->stop) && !squeeze_refresh(s->sq) &&
        squeeze_check(s->sq) < 0)
        log_warnx("cannot read the host after an operation");
    publish(s);
}

/* Name the calls a failed batch answers (dbg, session, kib). */
static void log_batch_failure(struct service *s, const struct service_error *e, bool stopping)
{
    char why[96];
    if (e->kind == SERVICE_ERR_CANNOT_FREE)
        snprintf(why, sizeof(why),
                 "cannot free this much memory (needed %" PRId64 " KiB, free %" PRId64 " KiB)",
                 e->needed_kib, e->free_kib);
    else if (e->kind == SERVICE_ERR_REFUSED)
        snprintf(why, sizeof(why), "%zu domain(s) refused to cooperate", e->n_domids);
    else
        snprintf(why, sizeof(why), "%s", e->text != NULL ? e->text : "failed");
    for (struct job *j = s->batch_head; j != NULL; j = j->batch_next)
        (stopping ? log_info : log_warnx)(
            "reserve batch: %" PRId64 " KiB for session %s (dbg '%s'): %s", j->req.reserve.kib,
            j->req.reserve.session, j->dbg != NULL ? j->dbg : "", why);
}

/*
 * reserve_memory: the call starts a batch that reserve calls queued now or arriving
 * while it is squeezed join. The squeeze frees what the calls still waiting need
 * (read every round); each is answered as soon as its memory is guaranteed; a verdict
 * that ends the squeeze short answers every call still waiting with it.
 */
static void run_reserve_batch(struct service *s, struct job *first)
{
    if (!reservations_has_session(s->resv, first->req.reserve.session)) {
        first->rc = service_fail(
            first->err, SERVICE_ERR_INTERNAL,
            xasprintf("unknown session '%s': call login first", first->req.reserve.session));
        finish_job(s, first);
        return;
    }
    if (reservations_check_room(s->resv, first->req.reserve.session, 0, first->err) < 0) {
        first->rc = -1; /* max-reservations-per-session: refused before any squeeze */
        finish_job(s, first);
        return;
    }
    s->batch_head = s->batch_tail = NULL;
    s->batch_need_kib = s->batch_kib = 0;
    s->batch_size = 0;
    int64_t queued_ms = first->queued_ms;
    batch_add(s, first);
    op_enter(s, false, true);
    op_begin(s, OP_RESERVE, first->req.reserve.kib, 0, first, first->waited_wall_ms);
    run_jobs_between_rounds(s); /* reserve calls queued behind it join at once */

    struct squeeze_result res;
    int rc = 0;
    memset(&res, 0, sizeof(res));
    while (s->batch_head != NULL) {
        struct squeeze_hooks h = {
            .ctx = s, .wait = op_wait, .need = batch_need, .round = batch_round};
        squeeze_set_hooks(s->sq, &h);
        squeeze_result_free(&res);
        int64_t need_before = s->batch_need_kib;
        rc = squeeze_free(s->sq, s->batch_need_kib, &res);
        if (s->batch_head == NULL)
            break;
        struct service_error e = {0};
        if (reservations_verdict_error(rc, &res, &e) == 0) {
            /* Success with calls left: they joined late; squeeze again for them. A
             * success that granted nothing would loop: answer them (never seen). */
            if (s->batch_need_kib != need_before)
                continue;
            service_fail(&e, SERVICE_ERR_INTERNAL,
                         xstrdup("the reservation could not be granted; try again"));
        }
        /* Cannot free the batch's total: the calls that fit in what the host can free
         * (the earliest first) are squeezed again; the others get the verdict. */
        struct job *keep_tail = NULL;
        if (e.kind == SERVICE_ERR_CANNOT_FREE && !res.cancelled && !res.timed_out) {
            int64_t room_kib = res.free_kib - s->o.reserved_host_kib, sum_kib = 0;
            for (struct job *j = s->batch_head; j != NULL; j = j->batch_next) {
                if (sum_kib + j->req.reserve.kib > room_kib)
                    break;
                sum_kib += j->req.reserve.kib;
                keep_tail = j;
            }
            if (keep_tail == s->batch_tail)
                keep_tail = NULL; /* no smaller batch to try */
        }
        struct job *fail_from = keep_tail != NULL ? keep_tail->batch_next : s->batch_head;
        struct job *saved_head = s->batch_head;
        s->batch_head = fail_from;
        log_batch_failure(s, &e, res.cancelled || atomic_load(&s->stop));
        while (s->batch_head != NULL) {
            struct job *j = s->batch_head;
            s->batch_head = j->batch_next;
            s->batch_need_kib -= j->req.reserve.kib;
            if (reservations_verdict_error(rc, &res, j->err) == 0)
                service_fail(j->err, SERVICE_ERR_INTERNAL,
                             xstrdup("the reservation could not be granted; try again"));
            j->rc = -1;
            answer_later(s, j);
        }
        if (keep_tail != NULL) {
            keep_tail->batch_next = NULL;
            s->batch_head = saved_head;
            s->batch_tail = keep_tail;
            publish(s);
            answer_now(s); /* those refused need not wait for the rest */
        } else {
            s->batch_tail = NULL;
            s->batch_need_kib = 0;
        }
        service_error_clear(&e);
    }
    const json_t *bd =
        record_op(s, OP_RESERVE, s->batch_kib, rc, &res, NULL, s->batch_size, queued_ms);
    /* The failed calls' JSON-RPC 2.0 errors carry the operation's breakdown. */
    for (struct job *j = s->answer_head; bd != NULL && j != NULL; j = j->batch_next)
        if (j->rc < 0 && j->err != NULL && j->err->breakdown == NULL &&
            (j->err->kind == SERVICE_ERR_CANNOT_FREE || j->err->kind == SERVICE_ERR_REFUSED))
            j->err->breakdown = json_incref((json_t *)bd);
    squeeze_result_free(&res);
    op_end(s);
    op_leave(s);
    answer_now(s);
}

/* A balance (kind OP_BALANCE for a client's call j, OP_PERIODIC with j NULL). */
static int run_balance(struct service *s, enum op_kind kind, const struct job *j,
                       struct service_error *err, bool *preempted)
{
    struct squeeze_result res;
    memset(&res, 0, sizeof(res));
    op_enter(s, true, false);
    op_begin(s, kind, 0, 0, j, j != NULL ? j->waited_wall_ms : 0);
    struct squeeze_hooks h = {.ctx = s, .wait = op_wait, .yield = op_yield};
    squeeze_set_hooks(s->sq, &h);
    int rc = squeeze_balance(s->sq, &res);
    *preempted = rc == 0 && res.preempted;
    int ret = *preempted ? 0 : reservations_verdict_error(rc, &res, err);
    record_op(s, kind, 0, rc, &res, err, 0, j != NULL ? j->queued_ms : -1);
    op_end(s);
    squeeze_result_free(&res);
    op_leave(s);
    return ret;
}

/* Take the first queued reservation out of the queue (NULL: none). */
static struct job *pop_reserve(struct service *s)
{
    pthread_mutex_lock(&s->q_mu);
    struct job **pp = &s->q_head, *found = NULL, *prev = NULL;
    for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
        if (is_reserve((*pp)->kind)) {
            found = *pp;
            *pp = found->next;
            if (s->q_tail == found)
                s->q_tail = prev;
            found->next = NULL;
            atomic_fetch_sub(&s->q_waiting, 1);
            break;
        }
    }
    pthread_mutex_unlock(&s->q_mu);
    return found;
}

/* On the virtual clock a balance is preempted inside sim.advance: the reservations
 * queued run now, not after the advance (the other calls keep their turn). */
static void run_preempting_jobs(struct service *s)
{
    struct job *j;
    while (!atomic_load(&s->stop) && (j = pop_reserve(s)) != NULL) {
        if (run_job(s, j))
            finish_job(s, j);
    }
}

/* The periodic duty (SPEC 3): balance if one round would change a target. */
static void periodic_check(struct service *s)
{
    s->event_pending = false;
    int rc = squeeze_check(s->sq);
    bool preempted = false;
    if (rc < 0)
        log_warnx("periodic check: cannot read the host (%s)", strerror(-rc));
    else if (rc == 1 && !atomic_load(&s->stop))
        run_balance(s, OP_PERIODIC, NULL, NULL, &preempted);
    if (preempted) {
        /* The reservation that preempted it runs first; the check follows it. */
        s->event_pending = true;
        if (s->virtual_clock)
            run_preempting_jobs(s);
    }
    publish(s);
}

/* Take watch events; note whether they changed something the policy reads. A failure
 * to read them keeps the worker from polling the watch fd for a second, so a broken
 * connection cannot make it spin. */
static void take_events(struct service *s)
{
    int n = domcache_process_events(s->dc);
    if (n > 0) {
        s->event_pending = true;
    } else if (n < 0) {
        log_warnx("watch events: %s; retrying in 1 s", strerror(-n));
        s->watch_retry_wall_ms = clock_monotonic_ms() + 1000;
    }
}

/* After the simulated world changed under us (sim.* calls): refresh the status at once.
 * A balance the change calls for runs after the caller has had its answer: on the real
 * clock from the worker's loop, on the virtual clock at the next sim.advance. */
static void after_world_change(struct service *s)
{
    take_events(s);
    if (squeeze_check(s->sq) < 0)
        log_warnx("cannot read the host after a change to the simulated world");
    publish(s);
}

/* sim.advance on the virtual clock: time passes in poll-interval steps, stopping at each
 * periodic deadline; watch events are handled between steps as the real loop does. */
static void advance(struct service *s, int64_t ms)
{
    int64_t end = now_ms(s) + ms;
    if (s->event_pending)
        periodic_check(s);
    for (;;) {
        int64_t now = now_ms(s);
        if (now >= end || atomic_load(&s->stop))
            break;
        int64_t step = end - now;
        if (step > s->o.poll_ms)
            step = s->o.poll_ms;
        if (s->next_periodic_ms - now < step)
            step = s->next_periodic_ms - now;
        if (step > 0)
            s->b->ops->sleep_ms(s->b, step);
        take_events(s);
        now = now_ms(s);
        if (now >= s->next_periodic_ms) {
            periodic_check(s);
            s->next_periodic_ms = now_ms(s) + s->o.balance_interval_ms;
        } else if (s->event_pending) {
            periodic_check(s);
        }
        if (clock_monotonic_ms() - s->last_publish_wall_ms >= PUBLISH_DURING_OP_MS)
            publish(s);
    }
}

/* ---- the simulated world ------------------------------------------------------------ */

/* A sim.* job through the interface handed to service_new; the values were checked. */
static int run_sim_job(struct service *s, struct job *j)
{
    const struct service_sim_ops *ops = s->o.sim.ops;
    void *ctx = s->o.sim.ctx;
    char *why = NULL;
    int rc;
    switch (j->kind) {
    case JOB_SIM_STATE:
        j->out_json = ops->state(ctx);
        return 0;
    case JOB_SIM_ADVANCE:
        advance(s, (int64_t)llround(j->req.advance.seconds * 1000.0));
        publish(s);
        return 0;
    case JOB_SIM_CREATE:
        rc = ops->create_domain(ctx, j->req.create.domain, &why);
        break;
    case JOB_SIM_DESTROY:
        rc = ops->destroy_domain(ctx, (uint32_t)j->req.destroy.domid, &why);
        break;
    case JOB_SIM_RANGE:
        rc = ops->set_dynamic_range(ctx, (uint32_t)j->req.sim_range.domid,
                                    j->req.sim_range.min_kib, j->req.sim_range.max_kib, &why);
        break;
    case JOB_SIM_BALLOON:
        rc =
            ops->set_balloon(ctx, (uint32_t)j->req.balloon.domid, j->req.balloon.balloon, &why);
        break;
    case JOB_SIM_CLAIM:
        rc = ops->set_claim(ctx, (uint32_t)j->req.claim.domid, j->req.claim.kib, &why);
        break;
    case JOB_SIM_PAUSE:
        rc = ops->pause_domain(ctx, (uint32_t)j->req.pause.domid, j->req.pause.paused, &why);
        break;
    default:
        return service_fail(j->err, SERVICE_ERR_INTERNAL, xstrdup("bad job"));
    }
    if (rc < 0)
        return service_fail(j->err, SERVICE_ERR_INVALID_PARAMS,
                            why != NULL ? why : xstrdup("refused by the simulated host"));
    after_world_change(s);
    return 0;
}

/* ---- jobs --------------------------------------------------------------------------- */

/* The message-switch front end's stored replies: one key per message under RPC_ROOT. */
static int run_rpc_job(struct service *s, struct job *j)
{
    char *path = xasprintf(RPC_ROOT "/%s", j->req.rpc.key);
    int rc;

    if (j->kind == JOB_RPC_GET) {
        rc = s->b->ops->xs_read(s->b, path, &j->out_str);
        if (rc == -ENOENT) {
            j->out_str = NULL;
            rc = 0;
        }
    } else if (j->req.rpc.value == NULL) {
        rc = s->b->ops->xs_rm(s->b, path);
    } else {
        /* Bounded: entries are removed once the switch has the acknowledgement, so only
         * a crash leaves one behind; past LIMIT_RPC_REPLIES_KEPT_MAX the others go (the front
         * end has at most one message in hand at a time). */
        char **names = NULL;
        size_t n = 0;
        if (s->b->ops->xs_directory(s->b, RPC_ROOT, &names, &n) == 0 &&
            n >= LIMIT_RPC_REPLIES_KEPT_MAX) {
            for (size_t i = 0; i < n; i++) {
                if (strcmp(names[i], j->req.rpc.key) == 0)
                    continue;
                char *old = xasprintf(RPC_ROOT "/%s", names[i]);
                if (s->b->ops->xs_rm(s->b, old) < 0)
                    log_warnx("cannot prune %s", old);
                free(old);
            }
        }
        backend_strv_free(names, n);
        rc = s->b->ops->xs_write(s->b, NULL, path, j->req.rpc.value);
    }
    if (rc < 0)
        service_fail(j->err, SERVICE_ERR_INTERNAL,
                     xasprintf("xenstore %s %s: %s", j->kind == JOB_RPC_GET ? "read" : "write",
                               path, strerror(-rc)));
    free(path);
    return rc < 0 ? -1 : 0;
}

/* The simulated host with --sim-state: what the job changed is on disk before the answer
 * (a reservation's own node already is, from its write). A job whose changes cannot be
 * saved fails. */
static void flush_sim(struct service *s, struct job *j)
{
    const struct service_sim_ops *ops = s->o.sim.ops;
    if (ops == NULL || ops->flush == NULL || j->rc < 0 || ops->flush(s->o.sim.ctx) == 0)
        return;
    free(j->out_str);
    j->out_str = NULL;
    json_decref(j->out_json);
    j->out_json = NULL;
    j->rc = service_fail(j->err, SERVICE_ERR_INTERNAL,
                         xstrdup("cannot save the simulated host (--sim-state)"));
}

static const char *error_kind_name(enum service_error_kind k)
{
    switch (k) {
    case SERVICE_OK:
        return "ok";
    case SERVICE_ERR_CANNOT_FREE:
        return "Cannot_free_this_much_memory";
    case SERVICE_ERR_REFUSED:
        return "Domains_refused_to_cooperate";
    case SERVICE_ERR_UNKNOWN_RESERVATION:
        return "Unknown_reservation";
    case SERVICE_ERR_NO_RESERVATION:
        return "No_reservation";
    case SERVICE_ERR_INVALID_MEMORY_VALUE:
        return "Invalid_memory_value";
    case SERVICE_ERR_INTERNAL:
        return "Internal_error";
    case SERVICE_ERR_INVALID_PARAMS:
        return "invalid params";
    }
    return "?";
}

/* The arguments of a client's job, for its log lines. */
static void job_args(const struct job *j, char *buf, size_t size)
{
    switch (j->kind) {
    case JOB_LOGIN:
        snprintf(buf, size, "%s", j->req.login.service_name);
        break;
    case JOB_RESERVE:
        snprintf(buf, size, "session %s, %" PRId64 " KiB", j->req.reserve.session,
                 j->req.reserve.kib);
        break;
    case JOB_RESERVE_RANGE:
        snprintf(buf, size, "session %s, %" PRId64 "..%" PRId64 " KiB", j->req.range.session,
                 j->req.range.min_kib, j->req.range.max_kib);
        break;
    case JOB_DELETE:
        snprintf(buf, size, "session %s, %s", j->req.del.session, j->req.del.reservation_id);
        break;
    case JOB_TRANSFER:
        snprintf(buf, size, "session %s, %s to domid %" PRId64, j->req.transfer.session,
                 j->req.transfer.reservation_id, j->req.transfer.domid);
        break;
    case JOB_QUERY:
        snprintf(buf, size, "session %s, domid %" PRId64, j->req.query.session,
                 j->req.query.domid);
        break;
    default:
        buf[0] = '\0';
        break;
    }
}

/* A client's call ends: one info line with the dbg, outcome and duration (the first
 * line said when it started). Calls refused before they were queued log only this. */
static void log_call_end(const struct job *j, int rc, int64_t ms, bool queued)
{
    if (j->kind > JOB_CLIENT_LAST)
        return;
    char args[256];
    job_args(j, args, sizeof(args));
    const char *sep = args[0] != '\0' ? " " : "";
    if (rc == 0) {
        char result[160] = "";
        if (j->kind == JOB_RESERVE_RANGE)
            snprintf(result, sizeof(result), ": %s (%" PRId64 " KiB)", j->out_str, j->out_kib);
        else if (j->out_str != NULL && j->kind != JOB_LOGIN)
            snprintf(result, sizeof(result), ": %s", j->out_str);
        log_info("dbg %s: %s%s%s: success%s in %" PRId64 " ms", j->dbg, job_names[j->kind], sep,
                 args, result, ms);
    } else {
        const struct service_error *e = j->err;
        log_info("dbg %s: %s%s%s: %s%s%s%s in %" PRId64 " ms", j->dbg, job_names[j->kind], sep,
                 args,
                 queued ? "" : "refused: ", e != NULL ? error_kind_name(e->kind) : "error",
                 e != NULL && e->text != NULL ? ": " : "",
                 e != NULL && e->text != NULL ? e->text : "", ms);
    }
}

static bool run_job(struct service *s, struct job *j)
{
    struct reservations_squeeze rs;
    bool preempted = false;
    memset(&rs, 0, sizeof(rs));
    job_starts(s, j);
    switch (j->kind) {
    case JOB_LOGIN:
        j->rc = reservations_login(s->resv, j->req.login.service_name, j->err);
        if (j->rc == 0)
            j->out_str = xstrdup(j->req.login.service_name);
        break;
    case JOB_RESERVE:
        run_reserve_batch(s, j);
        return false;
    case JOB_RESERVE_RANGE: {
        /* Alone (not coalesced), but calls that move no memory still run meanwhile. */
        op_enter(s, false, false);
        op_begin(s, OP_RESERVE_RANGE, j->req.range.min_kib, j->req.range.max_kib, j,
                 j->waited_wall_ms);
        struct squeeze_hooks h = {.ctx = s, .wait = op_wait};
        squeeze_set_hooks(s->sq, &h);
        j->rc = reservations_reserve_range(s->resv, s->sq, j->req.range.session,
                                           j->req.range.min_kib, j->req.range.max_kib,
                                           &j->out_str, &j->out_kib, &rs, j->err);
        squeeze_set_hooks(s->sq, NULL);
        if (rs.ran)
            record_op(s, OP_RESERVE_RANGE, j->rc == 0 ? j->out_kib : j->req.range.min_kib,
                      rs.rc, &rs.res, j->err, 1, j->queued_ms);
        op_end(s);
        op_leave(s);
        break;
    }
    case JOB_DELETE:
        j->rc =
            reservations_delete(s->resv, j->req.del.session, j->req.del.reservation_id, j->err);
        break;
    case JOB_TRANSFER:
        j->rc = reservations_transfer(s->resv, j->req.transfer.session,
                                      j->req.transfer.reservation_id, j->req.transfer.domid,
                                      j->err);
        break;
    case JOB_QUERY:
        j->rc = reservations_query(s->resv, j->req.query.session, j->req.query.domid,
                                   &j->out_str, j->err);
        break;
    case JOB_BALANCE:
        j->rc = run_balance(s, OP_BALANCE, j, j->err, &preempted);
        break;
    case JOB_RPC_GET:
    case JOB_RPC_PUT:
        j->rc = run_rpc_job(s, j);
        break;
    default:
        j->rc = run_sim_job(s, j);
        break;
    }
    squeeze_result_free(&rs.res);
    if (s->in_op == 0) {
        s->busy = false;
        if (j->kind <= JOB_TRANSFER && j->rc == 0 && !squeeze_refresh(s->sq) &&
            squeeze_check(s->sq) < 0)
            log_warnx("cannot read the host after a change of reservations");
    }
    flush_sim(s, j);
    publish(s);
    if (preempted) {
        requeue(s, j);
        return false;
    }
    return true;
}

/* Queue a job and wait for it. */
static int submit(struct service *s, struct job *j)
{
    pthread_mutex_lock(&s->q_mu);
    if (s->q_closed || atomic_load(&s->stop)) {
        pthread_mutex_unlock(&s->q_mu);
        return shutting_down(j->err);
    }
    j->done = false;
    j->next = NULL;
    j->queued_wall_ms = clock_monotonic_ms();
    j->started_wall_ms = -1;
    atomic_fetch_add(&s->q_waiting, 1);
    j->queued_ms = -1; /* the worker stamps it when it first sees it (backend clock) */
    if (s->q_tail != NULL)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    pthread_mutex_unlock(&s->q_mu);

    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("cannot wake the worker");

    pthread_mutex_lock(&s->q_mu);
    while (!j->done)
        pthread_cond_wait(&s->q_cv, &s->q_mu);
    pthread_mutex_unlock(&s->q_mu);
    return j->rc;
}

/* Put a call back at the end of the queue (its caller still waits). */
static void requeue(struct service *s, struct job *j)
{
    pthread_mutex_lock(&s->q_mu);
    j->next = NULL;
    if (s->q_tail != NULL)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    atomic_fetch_add(&s->q_waiting, 1);
    pthread_mutex_unlock(&s->q_mu);
}

static struct job *pop_job(struct service *s)
{
    int64_t t_ms = now_ms(s);
    pthread_mutex_lock(&s->q_mu);
    stamp_queue(s, t_ms);
    struct job *j = s->q_head;
    if (j != NULL) {
        s->q_head = j->next;
        if (s->q_head == NULL)
            s->q_tail = NULL;
        atomic_fetch_sub(&s->q_waiting, 1);
    }
    pthread_mutex_unlock(&s->q_mu);
    return j;
}

static void finish_job(struct service *s, struct job *j)
{
    /* Logged before the caller is woken: the job lives on its stack. */
    log_call_end(j, j->rc,
                 j->started_wall_ms >= 0 ? clock_monotonic_ms() - j->started_wall_ms : 0, true);
    pthread_mutex_lock(&s->q_mu);
    j->done = true;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

static void run_jobs(struct service *s)
{
    struct job *j;
    while (!atomic_load(&s->stop) && (j = pop_job(s)) != NULL) {
        if (run_job(s, j))
            finish_job(s, j);
    }
}

/* Close the queue: queued callers and later ones get "shutting down". */
static void close_queue(struct service *s)
{
    pthread_mutex_lock(&s->q_mu);
    s->q_closed = true;
    for (struct job *j = s->q_head; j != NULL; j = j->next) {
        j->rc = shutting_down(j->err);
        j->done = true;
        atomic_fetch_sub(&s->q_waiting, 1);
    }
    s->q_head = s->q_tail = NULL;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

static void *worker_main(void *arg)
{
    struct service *s = arg;
    s->next_periodic_ms = now_ms(s) + s->o.balance_interval_ms;
    while (!atomic_load(&s->stop)) {
        struct pollfd fds[2] = {{.fd = s->wake_fd, .events = POLLIN}};
        nfds_t nfds = 1;
        int timeout = -1;
        if (!s->virtual_clock) {
            int wfd = domcache_watching(s->dc) ? s->b->ops->watch_fd(s->b) : -1;
            int64_t wait_ms = s->next_periodic_ms - now_ms(s);
            int64_t retry_ms = s->watch_retry_wall_ms - clock_monotonic_ms();
            if (wfd >= 0 && retry_ms <= 0) {
                fds[1].fd = wfd;
                fds[1].events = POLLIN;
                nfds = 2;
            } else if (wfd >= 0 && retry_ms < wait_ms) {
                wait_ms = retry_ms;
            }
            timeout = wait_ms < 0 ? 0 : wait_ms > INT_MAX ? INT_MAX : (int)wait_ms;
        }
        pthread_mutex_lock(&s->q_mu);
        if (s->q_head != NULL)
            timeout = 0; /* calls left queued (behind a preempted balance) */
        pthread_mutex_unlock(&s->q_mu);
        int n = poll(fds, nfds, timeout);
        if (n < 0 && errno != EINTR)
            log_warn("worker: poll");
        if (atomic_load(&s->stop))
            break;
        if (fds[0].revents & POLLIN) {
            uint64_t v;
            if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_warn("worker: reading the wake-up counter");
        }
        run_jobs(s);
        if (s->virtual_clock || atomic_load(&s->stop))
            continue;
        if (nfds == 2 && (fds[1].revents & POLLIN))
            take_events(s);
        if (now_ms(s) >= s->next_periodic_ms) {
            periodic_check(s);
            s->next_periodic_ms = now_ms(s) + s->o.balance_interval_ms;
        } else if (s->event_pending) {
            periodic_check(s);
        }
    }
    close_queue(s);
    publish(s);
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------- */

/* manage-domain-zero with a configured range: write it to dom0's xenstore keys. */
static void configure_dom0(struct service *s)
{
    if (!s->o.manage_domain_zero ||
        (s->o.dom0_dynamic_min_bytes < 0 && s->o.dom0_dynamic_max_bytes < 0))
        return;
    int64_t min_kib = s->o.dom0_dynamic_min_bytes / 1024;
    int64_t max_kib = s->o.dom0_dynamic_max_bytes / 1024;
    const char *keys[2] = {"memory/dynamic-min", "memory/dynamic-max"};
    int64_t *vals[2] = {&min_kib, &max_kib};
    for (int i = 0; i < 2; i++) {
        if (*vals[i] >= 0)
            continue;
        char *v = NULL;
        if (domcache_read(s->dc, 0, keys[i], &v) < 0) {
            log_dom_warnx(0, "cannot read %s: dom0's range left as it is", keys[i]);
            return;
        }
        int64_t x;
        bool ok = parse_int64(v, 0, LIMIT_KIB_MAX, &x) == 0;
        free(v);
        if (!ok) {
            log_dom_warnx(0, "bad %s: dom0's range left as it is", keys[i]);
            return;
        }
        *vals[i] = x;
    }
    if (min_kib > max_kib) {
        log_dom_warnx(0,
                      "configured range %" PRId64 "..%" PRId64 " KiB is empty; left as it is",
                      min_kib, max_kib);
        return;
    }
    for (int i = 1; i >= 0; i--) {
        char *v = xasprintf("%" PRId64, *vals[i]);
        int rc = domcache_write(s->dc, 0, keys[i], v);
        free(v);
        if (rc < 0) {
            log_dom_warnx(0, "cannot write %s (error %d)", keys[i], -rc);
            return;
        }
    }
    log_dom_info(0, "managed, dynamic range %" PRId64 "..%" PRId64 " KiB", min_kib, max_kib);
}

struct service *service_new(struct backend *b, const struct service_options *o, char **err)
{
    struct service *s = xcalloc(1, sizeof(*s));
    s->b = b;
    s->o = *o;
    if (s->o.poll_ms <= 0)
        s->o.poll_ms = 250;
    if (s->o.balance_interval_ms <= 0)
        s->o.balance_interval_ms = 10000;
    s->virtual_clock = b->ops->clock_is_virtual(b);
    s->started_ms = clock_monotonic_ms();
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->pub_mu, NULL);
    pthread_mutex_init(&s->life_mu, NULL);
    pthread_mutex_init(&s->hist_mu, NULL);
    s->hist = history_new(&service_history_config);
    atomic_init(&s->stop, false);
    atomic_init(&s->q_waiting, 0);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        *err = xasprintf("eventfd: %s", strerror(errno));
        goto fail;
    }

    struct domcache_config dcc = {
        .use_watches = o->use_watches,
        .manage_domain_zero = o->manage_domain_zero,
    };
    s->dc = domcache_new(b, &dcc);
    s->resv = reservations_new(b, s->dc);
    if (o->max_reservations_per_session > 0)
        reservations_set_max_per_session(s->resv, (size_t)o->max_reservations_per_session);
    int rc = reservations_load(s->resv);
    if (rc < 0) {
        *err =
            xasprintf("cannot read the reservations under /squeezed/state: %s", strerror(-rc));
        goto fail;
    }
    s->pub_resvs = status_resvs_new(s->resv);
    reservations_set_observer(s->resv, resv_changed, s);
    struct squeeze_config sqc = {
        .reserved_host_kib = o->reserved_host_kib,
        .poll_ms = s->o.poll_ms,
        .timeout_ms = 600000,
    };
    s->sq = squeezer_new(b, s->dc, &sqc, reservations_accounting, s->resv);
    squeeze_set_observer(s->sq, observe_round, s);
    squeeze_set_start_hook(s->sq, squeeze_started, s);
    squeeze_set_balance_threshold(s->sq, o->balance_threshold_kib);
    configure_dom0(s);

    rc = squeeze_check(s->sq);
    if (rc < 0) {
        *err = xasprintf("cannot read the host: %s", strerror(-rc));
        goto fail;
    }
    const struct domcache_snapshot *snap = squeeze_last_snapshot(s->sq);
    s->initial_free_kib = snap->host.free_kib;
    log_info("host: %" PRId64 " KiB total, %" PRId64 " KiB free, %zu domains, %zu "
             "reservations, reserve %" PRId64 " KiB",
             snap->total_kib, snap->host.free_kib, snap->host.n_domains,
             reservations_count(s->resv), o->reserved_host_kib);
    publish(s);

    rc = pthread_create(&s->thread, NULL, worker_main, s);
    if (rc != 0) {
        *err = xasprintf("cannot start the worker thread: %s", strerror(rc));
        goto fail;
    }
    s->thread_running = true;
    return s;
fail:
    service_free(s);
    return NULL;
}

/* Ask the worker to stop: the running squeeze is cancelled, the worker leaves its loop.
 * Only atomic stores and a write(2). */
static void request_stop(struct service *s)
{
    atomic_store(&s->stop, true);
    if (s->sq != NULL)
        squeeze_cancel(s->sq);
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof(one));
    (void)w;
}

void service_stop(struct service *s)
{
    pthread_mutex_lock(&s->life_mu);
    if (s->thread_running) {
        request_stop(s);
        pthread_join(s->thread, NULL);
        s->thread_running = false;
    }
    pthread_mutex_unlock(&s->life_mu);
    close_queue(s);
}

void service_free(struct service *s)
{
    if (s == NULL)
        return;
    if (s->wake_fd >= 0)
        service_stop(s);
    status_picture_unref(s->picture);
    status_domains_unref(s->pub_domains);
    status_resvs_unref(s->pub_resvs);
    squeezer_free(s->sq);
    reservations_free(s->resv);
    domcache_free(s->dc);
    backend_close(s->b);
    for (size_t i = 0; i < s->ring_n; i++) {
        free(s->ring[i].dbg);
        free(s->ring[i].session);
        json_decref(s->ring[i].breakdown);
        free(s->ring[i].breakdown_text);
    }
    free(s->cur.start);
    free(s->cur.dbg);
    free(s->cur.session);
    free(s->stuck);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->pub_mu);
    pthread_mutex_destroy(&s->life_mu);
    history_free(s->hist);
    pthread_mutex_destroy(&s->hist_mu);
    free(s);
}

/* ---- the calls of server/service.h ------------------------------------------------ */

static void job_init(struct job *j, enum job_kind kind, struct service_error *err)
{
    memset(j, 0, sizeof(*j));
    j->kind = kind;
    j->err = err;
    j->dbg = "";
}

/* A client's call with its dbg and session (borrowed: the job lives on the caller's
 * stack until it is done). */
static void job_client(struct job *j, const char *dbg, const char *session)
{
    j->dbg = dbg != NULL ? dbg : "";
    j->session = session;
}

/* The check of a client's request: a refusal is logged (the call is not queued). */
static int checked(const struct job *j, int rc)
{
    if (rc < 0)
        log_call_end(j, rc, 0, false);
    return rc;
}

int service_login(struct service *s, const char *dbg, const char *service_name, char **session,
                  struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_LOGIN, err);
    job_client(&j, dbg, NULL);
    j.req.login = (struct req_login){.service_name = service_name};
    if (checked(&j, request_check_login(&j.req.login, err)) < 0 || submit(s, &j) < 0)
        return -1;
    *session = j.out_str;
    return 0;
}

int service_reserve_memory(struct service *s, const char *dbg, const char *session, int64_t kib,
                           char **reservation_id, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_RESERVE, err);
    job_client(&j, dbg, session);
    j.req.reserve = (struct req_reserve){.session = session, .kib = kib};
    if (checked(&j, request_check_reserve(&j.req.reserve, err)) < 0 || submit(s, &j) < 0)
        return -1;
    *reservation_id = j.out_str;
    return 0;
}

int service_reserve_memory_range(struct service *s, const char *dbg, const char *session,
                                 int64_t min_kib, int64_t max_kib, char **reservation_id,
                                 int64_t *reserved_kib, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_RESERVE_RANGE, err);
    job_client(&j, dbg, session);
    j.req.range =
        (struct req_reserve_range){.session = session, .min_kib = min_kib, .max_kib = max_kib};
    if (checked(&j, request_check_reserve_range(&j.req.range, err)) < 0 || submit(s, &j) < 0)
        return -1;
    *reservation_id = j.out_str;
    *reserved_kib = j.out_kib;
    return 0;
}

int service_delete_reservation(struct service *s, const char *dbg, const char *session,
                               const char *reservation_id, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_DELETE, err);
    job_client(&j, dbg, session);
    j.req.del = (struct req_delete){.session = session, .reservation_id = reservation_id};
    if (checked(&j, request_check_delete(&j.req.del, err)) < 0)
        return -1;
    return submit(s, &j);
}

int service_transfer_reservation_to_domain(struct service *s, const char *dbg,
                                           const char *session, const char *reservation_id,
                                           int64_t domid, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_TRANSFER, err);
    job_client(&j, dbg, session);
    j.req.transfer = (struct req_transfer){
        .session = session, .reservation_id = reservation_id, .domid = domid};
    if (checked(&j, request_check_transfer(&j.req.transfer, err)) < 0)
        return -1;
    return submit(s, &j);
}

int service_query_reservation_of_domain(struct service *s, const char *dbg, const char *session,
                                        int64_t domid, char **reservation_id,
                                        struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_QUERY, err);
    job_client(&j, dbg, session);
    j.req.query = (struct req_query){.session = session, .domid = domid};
    if (checked(&j, request_check_query(&j.req.query, err)) < 0 || submit(s, &j) < 0)
        return -1;
    *reservation_id = j.out_str;
    return 0;
}

int service_balance_memory(struct service *s, const char *dbg, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_BALANCE, err);
    job_client(&j, dbg, NULL);
    return submit(s, &j);
}

int64_t service_get_host_reserved_memory_kib(struct service *s)
{
    return s->o.reserved_host_kib;
}

int64_t service_get_host_initial_free_memory_bytes(struct service *s)
{
    return s->initial_free_kib * 1024;
}

void service_get_domain_zero_policy(struct service *s, struct service_dom0_policy *out)
{
    pthread_mutex_lock(&s->pub_mu);
    struct dom0_info d0 = s->dom0;
    pthread_mutex_unlock(&s->pub_mu);
    memset(out, 0, sizeof(*out));
    if (s->o.manage_domain_zero) {
        out->fixed = false;
        out->min_bytes = s->o.dom0_dynamic_min_bytes >= 0 ? s->o.dom0_dynamic_min_bytes
                                                          : d0.dynamic_min_kib * 1024;
        out->max_bytes = s->o.dom0_dynamic_max_bytes >= 0 ? s->o.dom0_dynamic_max_bytes
                                                          : d0.dynamic_max_kib * 1024;
        return;
    }
    out->fixed = true;
    int64_t kib = d0.target_kib > 0 ? d0.target_kib : d0.actual_kib;
    out->fixed_bytes = d0.present ? kib * 1024 : 0;
}

bool service_has_sim(struct service *s)
{
    return s->o.sim.ops != NULL;
}

static int need_sim(struct service *s, struct service_error *err)
{
    if (!service_has_sim(s))
        return service_fail(err, SERVICE_ERR_INVALID_PARAMS,
                            xstrdup("sim.* methods need the simulated host (--backend sim)"));
    return 0;
}

json_t *service_sim_state(struct service *s, struct service_error *err)
{
    if (need_sim(s, err) < 0)
        return NULL;
    struct job j;
    job_init(&j, JOB_SIM_STATE, err);
    if (submit(s, &j) < 0)
        return NULL;
    return j.out_json;
}

int service_sim_advance(struct service *s, double seconds, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_SIM_ADVANCE, err);
    j.req.advance = (struct req_sim_advance){.seconds = seconds};
    if (request_check_sim_advance(&j.req.advance, err) < 0 || need_sim(s, err) < 0)
        return -1;
    if (!s->virtual_clock)
        return service_fail(err, SERVICE_ERR_INVALID_PARAMS,
                            xstrdup("the clock is real: time passes by itself (sim.advance "
                                    "needs --clock virtual)"));
    return submit(s, &j);
}

int service_sim_create_domain(struct service *s, const json_t *domain,
                              struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_SIM_CREATE, err);
    j.req.create = (struct req_sim_create){.domain = domain};
    if (request_check_sim_create(&j.req.create, err) < 0 || need_sim(s, err) < 0)
        return -1;
    return submit(s, &j);
}

int service_sim_destroy_domain(struct service *s, int64_t domid, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_SIM_DESTROY, err);
    j.req.destroy = (struct req_sim_destroy){.domid = domid};
    if (request_check_sim_destroy(&j.req.destroy, err) < 0 || need_sim(s, err) < 0)
        return -1;
    return submit(s, &j);
}

int service_sim_set_dynamic_range(struct service *s, int64_t domid, int64_t min_kib,
                                  int64_t max_kib, struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_SIM_RANGE, err);
    j.req.sim_range =
        (struct req_sim_range){.domid = domid, .min_kib = min_kib, .max_kib = max_kib};
    if (request_check_sim_range(&j.req.sim_range, err) < 0 || need_sim(s, err) < 0)
        return -1;
    return submit(s, &j);
}

int service_sim_set_claim(struct service *s, int64_t domid, int64_t kib,
                          struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_SIM_CLAIM, err);
    j.req.claim = (struct req_sim_claim){.domid = domid, .kib = kib};
    if (request_check_sim_claim(&j.req.claim, err) < 0 || need_sim(s, err) < 0)
        return -1;
    return submit(s, &j);
}

int service_sim_pause_domain(struct service *s, int64_t domid, bool paused,
                             struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_SIM_PAUSE, err);
    j.req.pause = (struct req_sim_pause){.domid = domid, .paused = paused};
    if (request_check_sim_pause(&j.req.pause, err) < 0 || need_sim(s, err) < 0)
        return -1;
    return submit(s, &j);
}

int service_sim_set_balloon(struct service *s, int64_t domid, const json_t *balloon,
                            struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_SIM_BALLOON, err);
    j.req.balloon = (struct req_sim_balloon){.domid = domid, .balloon = balloon};
    if (request_check_sim_balloon(&j.req.balloon, err) < 0 || need_sim(s, err) < 0)
        return -1;
    return submit(s, &j);
}

/* ---- diagnostics -------------------------------------------------------------------- */

static json_int_t jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static bool jbool(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : "?";
}

int service_rpc_reply_get(struct service *s, const char *key, char **value,
                          struct service_error *err)
{
    *value = NULL;
    struct job j;
    job_init(&j, JOB_RPC_GET, err);
    j.req.rpc = (struct req_rpc_reply){.key = key};
    if (request_check_rpc_reply(&j.req.rpc, err) < 0 || submit(s, &j) < 0)
        return -1;
    *value = j.out_str;
    return 0;
}

int service_rpc_reply_put(struct service *s, const char *key, const char *value,
                          struct service_error *err)
{
    struct job j;
    job_init(&j, JOB_RPC_PUT, err);
    j.req.rpc = (struct req_rpc_reply){.key = key, .value = value};
    if (request_check_rpc_reply(&j.req.rpc, err) < 0)
        return -1;
    return submit(s, &j);
}

char *service_get_diagnostics(struct service *s)
{
    json_t *st = service_status(s);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        fatal("open_memstream");
    const json_t *d = json_object_get(st, "daemon");
    const json_t *h = json_object_get(st, "host");
    fprintf(
        f,
        "squeezed %s: backend %s, clock %s, up %.1f s, %s, backend time %" JSON_INTEGER_FORMAT
        " ms\n",
        jstr(d, "version"), jstr(d, "backend"), jstr(d, "clock"),
        json_number_value(json_object_get(d, "uptime_s")),
        jbool(d, "busy") ? "an operation is running" : "idle", jint(d, "now_ms"));
    fprintf(f,
            "host: total %" JSON_INTEGER_FORMAT " KiB, Xen free %" JSON_INTEGER_FORMAT
            " KiB, scrub %" JSON_INTEGER_FORMAT " KiB, free for guests %" JSON_INTEGER_FORMAT
            " KiB (after %" JSON_INTEGER_FORMAT " KiB of reservations and %" JSON_INTEGER_FORMAT
            " KiB for booting domains), host reserve %" JSON_INTEGER_FORMAT
            " KiB, free at start %" PRId64 " KiB\n",
            jint(h, "total_kib"), jint(h, "xen_free_kib"), jint(h, "scrub_kib"),
            jint(h, "free_kib"), jint(h, "reservations_kib"), jint(h, "booting_unused_kib"),
            jint(h, "reserved_kib"), s->initial_free_kib);
    struct service_dom0_policy p;
    service_get_domain_zero_policy(s, &p);
    if (p.fixed)
        fprintf(f, "domain 0: fixed size %" PRId64 " bytes\n", p.fixed_bytes);
    else
        fprintf(f, "domain 0: ballooned within %" PRId64 "..%" PRId64 " bytes\n", p.min_bytes,
                p.max_bytes);

    const json_t *a = json_object_get(st, "domains");
    size_t i;
    const json_t *v;
    fprintf(f, "domains (%zu):\n", json_array_size(a));
    json_array_foreach(a, i, v)
    {
        fprintf(f,
                "  domid %" JSON_INTEGER_FORMAT ": %s, %s%s, dynamic %" JSON_INTEGER_FORMAT
                "..%" JSON_INTEGER_FORMAT " KiB, target %" JSON_INTEGER_FORMAT
                " KiB, actual %" JSON_INTEGER_FORMAT " KiB, maxmem %" JSON_INTEGER_FORMAT
                " KiB%s%s%s%s\n",
                jint(v, "domid"), jstr(v, "type"),
                jbool(v, "can_balloon") ? "balloons" : "no balloon driver",
                jbool(v, "booting") ? ", booting" : "", jint(v, "dynamic_min_kib"),
                jint(v, "dynamic_max_kib"), jint(v, "target_kib"), jint(v, "actual_kib"),
                jint(v, "maxmem_kib"), jbool(v, "stuck") ? ", STUCK" : "",
                jbool(v, "uncooperative") ? ", UNCOOPERATIVE" : "",
                json_object_get(v, "excluded") != NULL ? ", LEFT OUT: " : "",
                json_object_get(v, "excluded") != NULL ? jstr(v, "excluded") : "");
    }
    a = json_object_get(st, "reservations");
    fprintf(f, "reservations (%zu):\n", json_array_size(a));
    json_array_foreach(a, i, v)
    {
        fprintf(f, "  %s: session %s, %" JSON_INTEGER_FORMAT " KiB", jstr(v, "id"),
                jstr(v, "session"), jint(v, "kib"));
        if (json_object_get(v, "domid") != NULL)
            fprintf(f, ", transferred to domid %" JSON_INTEGER_FORMAT, jint(v, "domid"));
        fputc('\n', f);
    }
    a = json_object_get(st, "operations");
    size_t n = json_array_size(a);
    size_t from = n > 16 ? n - 16 : 0;
    fprintf(f, "last operations (%zu of %zu kept):\n", n - from, n);
    for (i = from; i < n; i++) {
        v = json_array_get(a, i);
        fprintf(f,
                "  at %" JSON_INTEGER_FORMAT " ms: %s %" JSON_INTEGER_FORMAT
                " KiB: %s after %" JSON_INTEGER_FORMAT " rounds, %" JSON_INTEGER_FORMAT " ms\n",
                jint(v, "at_ms"), jstr(v, "kind"), jint(v, "kib"), jstr(v, "outcome"),
                jint(v, "rounds"), jint(v, "duration_ms"));
    }
    const json_t *c = json_object_get(st, "cache");
    fprintf(f,
            "cache: %s, %" JSON_INTEGER_FORMAT " xenstore reads, %" JSON_INTEGER_FORMAT
            " writes, %" JSON_INTEGER_FORMAT " watch events, %" JSON_INTEGER_FORMAT
            " hypercalls, %" JSON_INTEGER_FORMAT " snapshots, %" JSON_INTEGER_FORMAT
            " rebuilds\n",
            jbool(c, "watching") ? "watching xenstore" : "reading through (no watches)",
            jint(c, "xenstore_reads"), jint(c, "xenstore_writes"), jint(c, "watch_events"),
            jint(c, "hypercalls"), jint(c, "snapshots"), jint(c, "rebuilds"));
    fclose(f);
    json_decref(st);
    return text;
}
