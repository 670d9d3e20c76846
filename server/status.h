/* SPDX-License-Identifier: LGPL-2.1-only */
/* The published /status picture: immutable, shared by reference, serialised once. */
#ifndef SQUEEZED_STATUS_H
#define SQUEEZED_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/domcache.h"
#include "server/reservations.h"

/*
 * The worker publishes a picture after each change; HTTP threads read it. Publishing
 * costs no serialisation: a picture holds copies of the small parts (host, operations,
 * counters) and references to two shared, immutable parts that are only rebuilt when
 * they changed (the domains when a new snapshot was taken, the reservations when the
 * list changed). The bytes of GET /status are built on the first read of a picture, by
 * the reading thread, once (other readers of the same picture wait for them or find
 * them ready); what is derived from them (GET /metrics) is memoised the same way.
 *
 * Reference counts are atomic: a picture may be released on any thread. Every function
 * here is safe from any thread on a picture the caller holds a reference to.
 */

struct status_domains;
struct status_resvs;
struct status_picture;

/* Stuck / uncooperative as the squeezer last saw them, for every domain of snap in its
 * order (called on the publishing thread). */
typedef void (*status_flags_fn)(const void *ctx, const struct domcache_snapshot *snap,
                                bool *stuck, bool *uncooperative);

/* A domain's VM name and uuid (borrowed, NULL: none) and since when (time of day, Unix
 * ms) its balloon is declared stuck (-1: it is not), for one domain (called on the
 * publishing thread). */
typedef void (*status_ident_fn)(void *ctx, int32_t domid, const char **name, const char **uuid,
                                int64_t *stuck_since_wall_ms);

/* The domains of snap (borrowed; NULL: none) with their flags and identities (ident may
 * be NULL), copied. New reference. O(domains). */
struct status_domains *status_domains_new(const struct domcache_snapshot *snap,
                                          status_flags_fn flags, const void *ctx,
                                          status_ident_fn ident, void *ident_ctx);
void status_domains_unref(struct status_domains *d); /* NULL allowed */

/*
 * The reservations, in their order (creation order, by struct reservation's seq), as a
 * persistent set: a version is never changed once made, and a change makes a new version
 * that shares all but O(log N) of its memory with the old one, so the worker keeps the
 * set in step with the list one change at a time (reservations_set_observer) and a new
 * picture costs no copy of the list. The JSON of the rows is memoised in pieces of at
 * most 128 rows, so a picture after one change serialises one piece again.
 */
/* The reservations of r (borrowed; NULL: none) in their order, copied. New reference.
 * O(N). */
struct status_resvs *status_resvs_new(const struct reservations *r);
/* A new version of v (borrowed, unchanged) with x (borrowed; copied) added at the end: x's
 * seq must be larger than any in v. New reference. O(log N). */
struct status_resvs *status_resvs_add(const struct status_resvs *v,
                                      const struct reservation *x);
/* A new version of v with the row of x's seq replaced by x (a transfer changes its
 * domid); the same rows if v has no such row. New reference. O(log N). */
struct status_resvs *status_resvs_set(const struct status_resvs *v,
                                      const struct reservation *x);
/* A new version of v without the row of seq; the same rows if v has none. New reference.
 * O(log N). */
struct status_resvs *status_resvs_remove(const struct status_resvs *v, uint64_t seq);
size_t status_resvs_count(const struct status_resvs *v); /* NULL: 0 */
struct status_resvs *status_resvs_ref(struct status_resvs *v);
void status_resvs_unref(struct status_resvs *v); /* NULL allowed */
/* The "reservations" array of /status for v (NULL: none), a new string (free), *len its
 * length. O(N): the pieces are built (once each) and copied. Any thread. */
char *status_resvs_json(const struct status_resvs *v, size_t *len);
/* For tests: 0 if v's tree keeps its invariants (rows in seq order and in their
 * subtrees' ranges, node sizes, heights, count), else -1 and *why says what is wrong
 * (static). *height: the tree's levels (0: empty). */
int status_resvs_check(const struct status_resvs *v, unsigned *height, const char **why);

#define STATUS_MAX_OPS 64
#define STATUS_MAX_TOTALS 32
#define STATUS_MAX_WAITS 32
#define STATUS_MAX_BOUNDS 32 /* histogram buckets */

/* One line of "operations" / "operation_totals" / "client_waits". kind, outcome and
 * method are static strings (not copied); dbg, session and breakdown (the failure's
 * breakdown as compact JSON) are copied, NULL: left out. Buckets are cumulative counts,
 * one per bound of status_input.bounds_s. */
struct status_op {
    const char *kind;
    int64_t kib;
    const char *outcome;
    int64_t started_wall_ms; /* time of day, Unix ms */
    int64_t waited_ms;
    int64_t duration_ms;
    unsigned rounds;
    int64_t at_ms;
    int64_t wait_ms;       /* backend clock: from the first call queued to the start */
    unsigned reservations; /* the calls it served (reserve: coalesced ones) */
    const char *dbg, *session, *breakdown;
};
struct status_total {
    const char *kind;
    const char *outcome;
    uint64_t count;
    int64_t duration_ms_sum;
    uint64_t buckets[STATUS_MAX_BOUNDS];
};
struct status_wait {
    const char *method;
    uint64_t count;
    int64_t wait_ms_sum;
    uint64_t buckets[STATUS_MAX_BOUNDS];
};

/* The operation running now ("running"). dbg and session copied (NULL: left out). */
struct status_running {
    const char *kind;
    int64_t kib;
    bool has_max;
    int64_t max_kib;
    int64_t started_wall_ms;
    int64_t started_ms;
    int waiting;
    const char *dbg, *session;
    bool has_progress;
    int64_t freed_kib, needed_kib;
};

/* What a picture is made of. Everything is copied or referenced by status_picture_new. */
struct status_input {
    bool have_host; /* false: the host fields are all 0 (no snapshot yet) */
    int64_t free_kib, reserved_kib, total_kib, xen_free_kib, scrub_kib, reservations_kib,
        booting_unused_kib, claims_kib;
    struct status_domains *domains; /* borrowed: the picture takes its own reference */
    struct status_resvs *resvs;     /* borrowed: idem */
    const struct status_op *ops;    /* oldest first, at most STATUS_MAX_OPS */
    size_t n_ops;
    const struct status_total *totals; /* at most STATUS_MAX_TOTALS */
    size_t n_totals;
    const struct status_wait *waits; /* at most STATUS_MAX_WAITS */
    size_t n_waits;
    const double *bounds_s; /* the histograms' bucket bounds, at most STATUS_MAX_BOUNDS */
    size_t n_bounds;
    const struct status_running *running; /* NULL: nothing runs */
    struct domcache_counters cache;
    bool watching;
    const char *version, *backend, *clock; /* static strings */
    bool busy;
    int64_t now_ms;
    double uptime_s;
};

/* A new picture (one reference). O(number of operations): no part is serialised. */
struct status_picture *status_picture_new(const struct status_input *in);
/* A picture whose /status bytes are given (copied): for stand-ins of the service in
 * tests. */
struct status_picture *status_picture_from_json(const char *json, size_t len);
struct status_picture *status_picture_ref(struct status_picture *p);
void status_picture_unref(struct status_picture *p); /* NULL allowed */

/* ISO 8601 in UTC with milliseconds: "2025-01-31T12:00:00.123Z". */
void status_iso_utc(int64_t unix_ms, char buf[64]);

/* The /status JSON (compact, no trailing newline): built on the first call for this
 * picture, then the same bytes. Borrowed: valid while the caller holds its reference. */
const char *status_picture_json(struct status_picture *p, size_t *len);

/* A text derived from the JSON, memoised per picture in slot (< STATUS_MEMO_SLOTS): build
 * is called at most once per picture and slot, with the JSON; it returns a new string
 * (malloc) or NULL (then the next call tries again). A slot must always be given the same
 * build function. Borrowed like the JSON. NULL if build failed. */
#define STATUS_MEMO_SLOTS 2
typedef char *(*status_build_fn)(const char *json, size_t len);
const char *status_picture_memo(struct status_picture *p, unsigned slot, status_build_fn build,
                                size_t *len);

#endif
