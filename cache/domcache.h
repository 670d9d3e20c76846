/* SPDX-License-Identifier: LGPL-2.1-only */
/* Per-domain cache of xenstore and hypervisor reads, and the snapshot builder (SPEC 2, 5). */
#ifndef SQUEEZED_DOMCACHE_H
#define SQUEEZED_DOMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/limits.h"
#include "policy/policy.h"

/*
 * The cache talks only to the backend operations table.
 *
 * Per domain it holds: the xenstore path, the type, the Xen handle, the maxmem last set,
 * and the values of keys only we write or that never change once written:
 * memory/target, memory/memory-offset, memory/uncooperative, memory/initial-reservation,
 * and control/feature-balloon once present. memory/dynamic-min and dynamic-max are
 * watched (with watches on) or read through (watches off, as in the seed).
 * Writes go through the cache (skip if equal; transactional, checking the domain's
 * directory; never an error when the domain has gone).
 *
 * Xenstore layout per domain, below /local/domain/<domid>:
 *   memory/target memory/dynamic-min memory/dynamic-max memory/memory-offset
 *   memory/initial-reservation memory/reservation-id memory/uncooperative
 *   control/feature-balloon data/updated
 */

struct domcache;

struct domcache_counters {
    uint64_t xenstore_reads;  /* xs_read + xs_directory calls */
    uint64_t xenstore_writes; /* xs_write + xs_rm calls */
    uint64_t watch_events;    /* events taken from the backend */
    uint64_t hypercalls;      /* list_domains (one per 1,024 domains listed), physinfo,
                                 set_maxmem, shadow calls */
    uint64_t snapshots;       /* domcache_snapshot calls that succeeded */
    uint64_t rebuilds;        /* full drops after overflow / lost connection */
};

struct domcache_config {
    bool use_watches;        /* false: read dynamic-min/max through (seed behaviour) */
    bool manage_domain_zero; /* false: dom0 is reported but never balloonable */
};

/* A reservation the snapshot must account for (SPEC 2, the rule in
 * server/reservations.h): untransferred (domid -1), subtracted from host free in full;
 * transferred, counted through its domain only (its unallocated part while the domain is
 * listed without being in the snapshot), and not at all once the domain is gone. */
struct domcache_reservation {
    int64_t kib;
    int32_t domid; /* -1 while not transferred */
};

/* Per-domain facts the snapshot carries beside the policy's view, same order. */
struct domcache_domain_extra {
    enum domain_type type;
    bool booting;       /* no feature-balloon and no data/updated yet */
    bool uncooperative; /* memory/uncooperative present */
    int64_t memory_offset_kib;
    int64_t initial_reservation_kib; /* 0 if none */
};

/* A listed domain left out of the snapshot: one of its xenstore values (memory/target,
 * dynamic-min, dynamic-max, memory-offset, initial-reservation) is not a number, out of
 * range (a size above LIMIT_KIB_MAX or negative), or dynamic-min is above dynamic-max.
 * The policy never sees it, so it is not ballooned: it keeps the pages it holds, which
 * Xen's free memory already leaves out. Logged once per reason (not every snapshot). */
struct domcache_excluded {
    int32_t domid;
    enum domain_type type;
    int64_t actual_kib; /* what Xen says it holds (its pages) */
    int64_t maxmem_kib; /* Xen's maxmem less the type's slack, clipped to LIMIT_KIB_MAX */
    char reason[192];   /* "memory/dynamic-max = 35184372088832: above the limit of ..." */
};

/* A snapshot of the host. Owned by the caller; free with domcache_snapshot_free. Make it
 * with domcache_snapshot_init and fill it only with domcache_snapshot: its domains and
 * extra arrays change hands with the cache's own at each snapshot (no copy and, in steady
 * state, no allocation), so pointers into them are valid until the next snapshot into the
 * same struct. */
struct domcache_snapshot {
    struct policy_host host;             /* host.domains points into `domains` */
    struct policy_domain *domains;       /* sorted by domid */
    struct domcache_domain_extra *extra; /* parallel to domains */
    size_t cap;
    struct domcache_excluded *excluded; /* left out of host.domains; sorted by domid */
    size_t n_excluded, cap_excluded;
    int64_t xen_free_kib;       /* physinfo free pages KiB */
    int64_t scrub_kib;          /* physinfo scrub pages KiB */
    int64_t total_kib;          /* physinfo total pages KiB */
    int64_t booting_unused_kib; /* subtracted for booting domains */
    int64_t claims_kib;         /* subtracted for Xen claims: outstanding claims not
                                   already counted as a booting domain's unused
                                   reservation (the same memory: the larger counts) */
    int64_t reservations_kib;   /* subtracted for untransferred reservations */
};

/* A cache over backend b (borrowed; must outlive the cache). With use_watches the cache
 * registers its watches at once; if that fails it falls back to reading through and
 * logs it. Returns a new cache (free with domcache_free). */
struct domcache *domcache_new(struct backend *b, const struct domcache_config *cfg);
/* NULL allowed. Unregisters watches. */
void domcache_free(struct domcache *dc);

/* Whether the cache is currently relying on watches. */
bool domcache_watching(const struct domcache *dc);

/* The domains a snapshot asks the backend for per list_domains call (default 1024, as
 * Xen's backend asks per hypercall; at least 1). For tests: small batches put the
 * boundaries between any two domains. */
void domcache_set_list_batch(struct domcache *dc, size_t n);

/* Take pending watch events (without blocking) and apply them. Returns the number of
 * events that changed something the policy reads (dynamic range, boot signals, domain
 * appearance), or a negative errno. Overflow or a lost connection empties the cache,
 * which is then rebuilt by the next snapshot; that counts as a change. */
int domcache_process_events(struct domcache *dc);

/* Build a snapshot (SPEC 2): the domain list (in batches, see above), one physinfo, and
 * in steady state with watches no xenstore read. Processes pending watch events first.
 * Calibrates and writes memory-offset on a domain's first boot signal; counts booting
 * domains through max(initial-reservation, actual) + shadow; subtracts each domain's
 * outstanding Xen claim (for a booting domain, only what exceeds its unused reservation);
 * subtracts reservations (borrowed array). Each domain's maxmem and paused flag are Xen's, as
 * listed by this very snapshot.
 * Drops entries of domains gone; a recycled domid (new handle) gets a fresh entry.
 * Domains that vanish while being read are skipped; domains whose xenstore values are
 * bad are left out into out->excluded (see struct domcache_excluded). Returns 0 or a negative
 * errno (the hypervisor could not be asked); *out is then unchanged.
 * Cost: with the same domain list as last time, a domain nothing changed since (no watch
 * event, no write or read through the cache, no new maxmem) is made again from what the
 * last snapshot made for it and from the list, without reading its cache entry: a
 * sequential pass over two arrays, linear in the number of domains. */
int domcache_snapshot(struct domcache *dc, const struct domcache_reservation *resv,
                      size_t n_resv, struct domcache_snapshot *out);
void domcache_snapshot_init(struct domcache_snapshot *s);
void domcache_snapshot_free(struct domcache_snapshot *s);

/* Apply one policy op: SET_TARGET writes memory/target (skipped when the cached value is
 * equal: only we write it); SET_MAXMEM sets Xen maxmem to value + type offset +
 * memory-offset, always (never skipped on a cached figure: the toolstack sets maxmem
 * too). Returns 0, also when the domain has gone (logged), or a negative errno for
 * other failures. */
int domcache_apply(struct domcache *dc, const struct policy_op *op);

/* Write / remove memory/uncooperative (empty value) through the cache. */
int domcache_set_uncooperative(struct domcache *dc, uint32_t domid, bool uncooperative);

/* Generic per-domain key access through the cache, for keys like
 * memory/initial-reservation and memory/reservation-id. `key` is relative to the domain
 * path ("memory/reservation-id"). Reads of cached keys cost nothing. read: *value new
 * string, -ENOENT if absent. write: skip if equal, transactional, -ENOENT if the domain
 * has gone. */
int domcache_read(struct domcache *dc, uint32_t domid, const char *key, char **value);
int domcache_write(struct domcache *dc, uint32_t domid, const char *key, const char *value);

/* The VM's name and uuid as xenstore has them (/local/domain/<domid>/name, the last
 * component of /local/domain/<domid>/vm), read once per domain (a recycled domid is a new
 * domain) and kept until it goes. *name, *uuid are borrowed (valid until the next
 * snapshot), NULL where xenstore has none or a value that is not printable ASCII of at
 * most 128 bytes. Returns 0, or -ENOENT for a domain the cache does not hold. Asked of
 * the last snapshot's domains in domid order, each answer after the first read costs a
 * step along an array (no table lookup, no read of the domain's entry). */
int domcache_identity(struct domcache *dc, uint32_t domid, const char **name,
                      const char **uuid);
/* Set maxmem directly in guest units (as SET_MAXMEM). Never lowers the maxmem of a
 * domain that has not announced a balloon driver (building, or never ballooning):
 * that is refused with a log line and 0. */
int domcache_set_maxmem(struct domcache *dc, uint32_t domid, int64_t maxmem_kib);
/* Raise maxmem to maxmem_kib in guest units if Xen's value, asked now, is lower; never
 * lowers it (a reservation's transfer). 0, -ESRCH if the domain does not exist, or a
 * negative errno. */
int domcache_raise_maxmem(struct domcache *dc, uint32_t domid, int64_t maxmem_kib);
/* Whether domid exists now (a fresh domain list; a dying domain does not): 1, 0, or a
 * negative errno. */
int domcache_domain_exists(struct domcache *dc, uint32_t domid);

/* Counters so far. */
void domcache_counters(const struct domcache *dc, struct domcache_counters *out);

#endif
