/* SPDX-License-Identifier: LGPL-2.1-only */
/* A bounded ring of memory samples (host free, each domain's target and actual) for plots. */
#ifndef SQUEEZED_HISTORY_H
#define SQUEEZED_HISTORY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The history is pure: no clock, no I/O, no locking. The caller passes the time of each
 * sample and serialises access (service.c holds a mutex around every call).
 *
 * Storage is two preallocated rings: one of samples (time, host free, where its domains
 * are) and one pool of per-domain entries (domid, target, actual). A new sample evicts
 * the oldest ones until both fit, so the memory used is fixed at history_new and never
 * grows: history_bytes(). With few domains the sample ring is the bound (the window is
 * max_samples times the interval); with many the entry pool is (about
 * max_entries / domains samples).
 *
 * Samples are bucketed by time: a sample in the same interval bucket as the last one
 * replaces it (the newest value of each interval is kept), and a sample equal to the last
 * one (same free, same domains with the same target and actual) only moves the
 * last-observed time on, so a quiet host costs no space.
 */

struct history_config {
    size_t max_samples;      /* samples kept at most (>= 2) */
    size_t max_entries;      /* per-domain entries kept at most, over all samples (>= 1) */
    int64_t min_interval_ms; /* one sample per bucket of this length (>= 1) */
};

/* One domain in one sample. */
struct history_domain {
    int32_t domid;
    int64_t target_kib;
    int64_t actual_kib;
};

struct history;

/* A new empty history with every buffer allocated (aborts on out-of-memory). Values of
 * cfg below their minimum are raised to it. Caller frees with history_free. */
struct history *history_new(const struct history_config *cfg);
void history_free(struct history *h); /* NULL allowed */

/* The bytes a history of this configuration holds (its buffers and its struct). */
size_t history_bytes(const struct history_config *cfg);

/* Record a sample taken at at_ms (any monotonic millisecond clock; a time before the last
 * sample's is taken as the last sample's). doms (borrowed, n entries, any order) is
 * copied; past max_entries domains, the ones with the highest domids are left out. */
void history_add(struct history *h, int64_t at_ms, int64_t host_free_kib,
                 const struct history_domain *doms, size_t n);

/* How many samples are stored (for tests and the JSON). */
size_t history_count(const struct history *h);

/*
 * The samples of the last window_ms before now_ms as JSON (new reference):
 *   { "now_ms", "window_ms", "from_ms", "last_sample_ms", "interval_ms", "samples",
 *     "capacity": { "samples", "entries", "bytes" },
 *     "host":    { "t_ms": [...], "free_kib": [...] },
 *     "domains": [ { "domid", "t_ms": [...], "target_kib": [...], "actual_kib": [...] } ] }
 * Each series is a step function: a point is written where the value changes, and a value
 * holds until the next point (the last one until last_sample_ms, and on to now_ms if
 * nothing changed since). The first point of a series is the value in force at from_ms
 * (from the last sample before the window, clamped to from_ms), so a quiet domain has one
 * point. With domids (borrowed, n_domids > 0) only those domains are written, in that
 * order, skipping ones never seen in the window; with none, every domain of the window's
 * newest sample, by domid.
 */
json_t *history_json(const struct history *h, int64_t now_ms, int64_t window_ms,
                     const int32_t *domids, size_t n_domids);

#endif
