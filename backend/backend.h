/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one table of operations the cache reads the host through: Xen or simulated. */
#ifndef SQUEEZED_BACKEND_H
#define SQUEEZED_BACKEND_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum domain_type {
    DOMAIN_TYPE_PV,
    DOMAIN_TYPE_HVM,
    DOMAIN_TYPE_PVINPVH,
};

/* Xen's per-type maxmem slack in KiB: 1024 for HVM and PV-in-PVH, 0 for PV. */
int64_t domain_type_xen_offset_kib(enum domain_type t);
/* "pv", "hvm", "pvinpvh". */
const char *domain_type_name(enum domain_type t);
/* Parse a name as above; returns 0 or -EINVAL. */
int domain_type_parse(const char *name, enum domain_type *out);

/* One domain from the hypervisor's domain list. */
struct backend_domain {
    uint32_t domid;
    enum domain_type type;
    bool dying;                 /* XEN_DOMINF_dying or shutdown: being torn down */
    uint64_t total_pages;       /* 4 KiB pages the domain holds */
    uint64_t max_pages;         /* its maxmem in pages (includes the per-type slack) */
    uint64_t outstanding_pages; /* its Xen claim still outstanding: pages promised to
                                   it that Xen still counts as free */
    bool paused;                /* XEN_DOMINF_paused: its vcpus (and balloon driver) cannot
                                   run; a domain is built paused */
    uint8_t handle[16];         /* Xen domain handle: tells a recycled domid apart */
};

struct backend_physinfo {
    uint64_t free_pages;
    uint64_t scrub_pages;
    uint64_t total_pages;
};

/* A watch event: path that changed and the token it was registered with. */
struct backend_watch_event {
    char *path; /* owned by the event; free with backend_watch_event_clear */
    char *token;
};

/* Error codes beyond the usual negative errno values. */
#define BACKEND_EOVERFLOW (-EOVERFLOW) /* watch events were lost: rebuild everything */
#define BACKEND_ECONN                                                                          \
    (-ECONNRESET) /* xenstore connection lost; reconnected, watches                            \
                     re-registered: rebuild everything */

struct backend;

/*
 * Every operation returns 0 on success or a negative errno: -ENOENT for a missing
 * domain, key or directory, -ESRCH for a domain gone from the hypervisor, -EAGAIN
 * only where said. Nothing here aborts on a failure of the outside world.
 */
struct backend_ops {
    const char *name; /* "xen", "sim" */

    /* The domains with domid >= first, sorted by domid, as many as fit in the caller's
     * out[max] (as xc_domain_getinfolist): how many were written, fewer than max when
     * there are no more, or a negative errno. A snapshot reads the list in batches
     * that stay in the processor's cache while it uses them (backend_list_all below
     * reads it whole); like Xen's own batches, two calls are not one atomic list. */
    int (*list_domains)(struct backend *b, uint32_t first, struct backend_domain *out,
                        size_t max);
    int (*physinfo)(struct backend *b, struct backend_physinfo *out);
    /* Set Xen's maxmem in KiB (caller has added the per-type offset). */
    int (*set_maxmem)(struct backend *b, uint32_t domid, uint64_t maxmem_kib);
    /* Shadow memory allocated to the domain, in MiB. */
    int (*shadow_allocation_mib)(struct backend *b, uint32_t domid, uint32_t *mib);

    /* Read a key; *value is a new string the caller frees. -ENOENT if absent. */
    int (*xs_read)(struct backend *b, const char *path, char **value);
    /* In one transaction: if `check_dir` exists, write path = value; else -ENOENT and
     * nothing written. Retries transaction conflicts (EAGAIN) a bounded number of
     * times, then returns -EAGAIN. check_dir may be NULL (plain transactional write). */
    int (*xs_write)(struct backend *b, const char *check_dir, const char *path,
                    const char *value);
    /* Remove a key and its children. Removing a missing key is 0. */
    int (*xs_rm)(struct backend *b, const char *path);
    /* Children names of a directory; *entries is a new array of new strings, free with
     * backend_strv_free. -ENOENT if the directory does not exist. */
    int (*xs_directory)(struct backend *b, const char *path, char ***entries, size_t *n);
    /* Register / remove a watch on path and everything below it. As in xenstored, a
     * registered watch fires once at once. */
    int (*xs_watch)(struct backend *b, const char *path, const char *token);
    int (*xs_unwatch)(struct backend *b, const char *path, const char *token);
    /* A file descriptor that becomes readable when watch events are pending, for the
     * daemon's poll loop; -1 if none. */
    int (*watch_fd)(struct backend *b);
    /* Take one pending event without blocking: 1 and *ev filled, 0 if none,
     * BACKEND_EOVERFLOW if events were dropped, BACKEND_ECONN if the connection was
     * lost (the backend reconnects and re-registers its watches before returning). */
    int (*read_watch)(struct backend *b, struct backend_watch_event *ev);

    /* The backend's clock, in ms (monotonic; virtual with the sim's virtual clock). */
    int64_t (*now_ms)(struct backend *b);
    /* Let ms pass: sleep (real clock) or advance the simulated world (virtual). */
    void (*sleep_ms)(struct backend *b, int64_t ms);
    /* True if time only passes through sleep_ms (virtual clock). */
    bool (*clock_is_virtual)(struct backend *b);

    /* Release everything. */
    void (*close)(struct backend *b);
};

struct backend {
    const struct backend_ops *ops;
    void *priv; /* the implementation's own state */
};

/* The domid to ask for after a batch of got domains listed from `first`: one past the
 * highest listed (a backend may break the order). false when nothing can follow. */
bool backend_list_next(const struct backend_domain *v, size_t got, uint32_t first,
                       uint32_t *next);
/* Every domain, through list_domains in batches, into *v (grown as needed; *cap its
 * size; *v may be NULL with *cap 0): *n how many; the number of list_domains calls, or a
 * negative errno (*n then 0). The list is as the backend gives it: the caller checks
 * the order. */
int backend_list_all(struct backend *b, struct backend_domain **v, size_t *cap, size_t *n);
/* Domain domid from one list_domains call: 1 and *out when listed, 0 when not, or a
 * negative errno. */
int backend_list_one(struct backend *b, uint32_t domid, struct backend_domain *out);

/* Free a string vector from xs_directory (NULL allowed). */
void backend_strv_free(char **v, size_t n);
/* Free an event's strings and zero it. */
void backend_watch_event_clear(struct backend_watch_event *ev);
/* Close and free a backend (NULL allowed). */
void backend_close(struct backend *b);

/* The xenstore path of a domain: "/local/domain/<domid>" (new string). */
char *backend_domain_path(uint32_t domid);

/* Open the real Xen backend (libxenctrl + libxenstore). On failure returns NULL and
 * sets *err to a new message naming what could not be opened. */
struct backend *backend_xen_open(char **err);

#endif
