/* SPDX-License-Identifier: LGPL-2.1-only */
/* A bounded ring of memory samples (host free, each domain's target and actual) for plots. */
#include "server/history.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

struct sample {
    int64_t at_ms;    /* caller's clock */
    int64_t free_kib; /* host free */
    size_t first;     /* its entries: pool[first .. first + n), never wrapping */
    size_t n;
};

struct history {
    struct history_config cfg;
    struct sample *samples; /* ring of cfg.max_samples */
    size_t s_first;         /* the oldest sample */
    size_t s_count;
    struct history_domain *pool; /* ring of cfg.max_entries, sorted by domid per sample */
    size_t head;                 /* where the next sample's entries go */
    int64_t last_ms;             /* the last time a sample was added or confirmed */
};

static void normalise(const struct history_config *in, struct history_config *out)
{
    *out = *in;
    if (out->max_samples < 2)
        out->max_samples = 2;
    if (out->max_entries < 1)
        out->max_entries = 1;
    if (out->min_interval_ms < 1)
        out->min_interval_ms = 1;
}

size_t history_bytes(const struct history_config *cfg)
{
    struct history_config c;
    normalise(cfg, &c);
    return sizeof(struct history) + c.max_samples * sizeof(struct sample) +
           c.max_entries * sizeof(struct history_domain);
}

struct history *history_new(const struct history_config *cfg)
{
    struct history *h = xcalloc(1, sizeof(*h));
    normalise(cfg, &h->cfg);
    h->samples = xcalloc(h->cfg.max_samples, sizeof(*h->samples));
    h->pool = xcalloc(h->cfg.max_entries, sizeof(*h->pool));
    /* Touch the rings now: calloc's fresh pages cost nothing until written, so the
     * daemon's RSS would creep up by the rings' size as they fill (an hour on a quiet host)
     * and look like a leak. Resident from the start, the bound is what RSS shows. */
    memset(h->samples, 0, h->cfg.max_samples * sizeof(*h->samples));
    memset(h->pool, 0, h->cfg.max_entries * sizeof(*h->pool));
    return h;
}

void history_free(struct history *h)
{
    if (h == NULL)
        return;
    free(h->samples);
    free(h->pool);
    free(h);
}

size_t history_count(const struct history *h)
{
    return h->s_count;
}

static struct sample *sample_at(const struct history *h, size_t k)
{
    return &h->samples[(h->s_first + k) % h->cfg.max_samples];
}

static int by_domid(const void *a, const void *b)
{
    const struct history_domain *x = a, *y = b;
    return (x->domid > y->domid) - (x->domid < y->domid);
}

static bool same_as_last(const struct history *h, int64_t free_kib,
                         const struct history_domain *sorted, size_t n)
{
    if (h->s_count == 0)
        return false;
    const struct sample *last = sample_at(h, h->s_count - 1);
    if (last->free_kib != free_kib || last->n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct history_domain *a = &h->pool[last->first + i], *b = &sorted[i];
        if (a->domid != b->domid || a->target_kib != b->target_kib ||
            a->actual_kib != b->actual_kib)
            return false;
    }
    return true;
}

static void drop_oldest(struct history *h)
{
    h->s_first = (h->s_first + 1) % h->cfg.max_samples;
    h->s_count--;
}

static void drop_newest(struct history *h)
{
    const struct sample *last = sample_at(h, h->s_count - 1);
    h->head = last->first; /* its entries were the last ones written */
    h->s_count--;
}

/* Make room for n entries and one sample; returns where the entries go. The live entries
 * run (circularly) from the oldest sample's first to head, so evicting in age order frees
 * the space right after head. */
static size_t make_room(struct history *h, size_t n)
{
    size_t cap = h->cfg.max_entries;
    size_t start = h->head;
    bool wrap = start + n > cap;

    if (h->s_count == 0) {
        h->head = 0;
        return 0;
    }
    if (wrap)
        start = 0;
    while (h->s_count > 0) {
        const struct sample *old = sample_at(h, 0);
        bool in_dead_tail = wrap && old->first >= h->head;
        bool overlaps = old->first < start + n && start < old->first + old->n;
        if (h->s_count == h->cfg.max_samples || in_dead_tail || overlaps)
            drop_oldest(h);
        else
            break;
    }
    if (h->s_count == 0)
        start = 0;
    return start;
}

void history_add(struct history *h, int64_t at_ms, int64_t host_free_kib,
                 const struct history_domain *doms, size_t n)
{
    struct history_domain *tmp = NULL;
    const struct history_domain *src = doms;
    size_t cap = h->cfg.max_entries;

    if (h->s_count > 0 && at_ms < h->last_ms)
        at_ms = h->last_ms;
    if (n > cap) {
        /* Keep the lowest domids: sort everything first, then cut. */
        tmp = xreallocarray(NULL, n, sizeof(*tmp));
        memcpy(tmp, doms, n * sizeof(*tmp));
        qsort(tmp, n, sizeof(*tmp), by_domid);
        src = tmp;
        n = cap;
    }

    /* Stage the sorted entries where they would go, compare, then commit or not. The
     * comparison needs the last sample intact, so it is made on a sorted copy first. */
    bool sorted = true;
    for (size_t i = 1; i < n && sorted; i++)
        sorted = src[i - 1].domid <= src[i].domid;
    if (!sorted) {
        if (tmp == NULL) {
            tmp = xreallocarray(NULL, n, sizeof(*tmp));
            memcpy(tmp, src, n * sizeof(*tmp));
            src = tmp;
        }
        qsort(tmp, n, sizeof(*tmp), by_domid);
    }

    if (same_as_last(h, host_free_kib, src, n)) {
        h->last_ms = at_ms;
        goto out;
    }
    if (h->s_count > 0) {
        const struct sample *last = sample_at(h, h->s_count - 1);
        int64_t iv = h->cfg.min_interval_ms;
        if (last->at_ms / iv == at_ms / iv)
            drop_newest(h); /* the newest value of an interval wins */
    }
    size_t start = make_room(h, n);
    memcpy(&h->pool[start], src, n * sizeof(*src));
    struct sample *s = &h->samples[(h->s_first + h->s_count) % h->cfg.max_samples];
    s->at_ms = at_ms;
    s->free_kib = host_free_kib;
    s->first = start;
    s->n = n;
    h->s_count++;
    h->head = start + n;
    if (h->head >= cap)
        h->head = 0;
    h->last_ms = at_ms;
out:
    free(tmp);
}

/* ---- JSON ------------------------------------------------------------------------- */

static const struct history_domain *find_domain(const struct history *h, const struct sample *s,
                                                int32_t domid)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct history_domain *d = &h->pool[s->first + mid];
        if (d->domid == domid)
            return d;
        if (d->domid < domid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The index of the first sample to write: the last one at or before from_ms (it holds at
 * from_ms), else the first one after it. */
static size_t first_in_window(const struct history *h, int64_t from_ms)
{
    size_t k = 0;
    while (k + 1 < h->s_count && sample_at(h, k + 1)->at_ms <= from_ms)
        k++;
    return k;
}

static void push_point(json_t *t, json_t *a, json_t *b, int64_t at_ms, int64_t va, int64_t vb,
                       bool with_b)
{
    json_array_append_new(t, json_integer(at_ms));
    json_array_append_new(a, json_integer(va));
    if (with_b)
        json_array_append_new(b, json_integer(vb));
}

static json_t *domain_series(const struct history *h, size_t k0, int64_t from_ms, int32_t domid)
{
    json_t *t = json_array(), *tg = json_array(), *ac = json_array();
    bool have = false;
    int64_t last_t = 0, last_a = 0;

    for (size_t k = k0; k < h->s_count; k++) {
        const struct sample *s = sample_at(h, k);
        const struct history_domain *d = find_domain(h, s, domid);
        if (d == NULL) {
            have = false; /* gone: the next appearance starts a new point */
            continue;
        }
        if (have && d->target_kib == last_t && d->actual_kib == last_a)
            continue;
        push_point(t, tg, ac, s->at_ms < from_ms ? from_ms : s->at_ms, d->target_kib,
                   d->actual_kib, true);
        have = true;
        last_t = d->target_kib;
        last_a = d->actual_kib;
    }
    if (json_array_size(t) == 0) {
        json_decref(t);
        json_decref(tg);
        json_decref(ac);
        return NULL;
    }
    return json_pack("{s:i,s:o,s:o,s:o}", "domid", (int)domid, "t_ms", t, "target_kib", tg,
                     "actual_kib", ac);
}

json_t *history_json(const struct history *h, int64_t now_ms, int64_t window_ms,
                     const int32_t *domids, size_t n_domids)
{
    int64_t from_ms = now_ms - (window_ms < 0 ? 0 : window_ms);
    json_t *ht = json_array(), *hf = json_array();
    json_t *doms = json_array();
    size_t k0 = first_in_window(h, from_ms);
    size_t written = 0;
    struct history_config cfg = h->cfg;

    for (size_t k = k0; k < h->s_count; k++) {
        const struct sample *s = sample_at(h, k);
        size_t m = json_array_size(hf);
        if (m > 0 && json_integer_value(json_array_get(hf, m - 1)) == s->free_kib)
            continue;
        push_point(ht, hf, NULL, s->at_ms < from_ms ? from_ms : s->at_ms, s->free_kib, 0,
                   false);
    }
    if (h->s_count > 0)
        written = h->s_count - k0;
    if (n_domids > 0) {
        for (size_t i = 0; i < n_domids; i++) {
            json_t *d = domain_series(h, k0, from_ms, domids[i]);
            if (d != NULL)
                json_array_append_new(doms, d);
        }
    } else if (h->s_count > 0) {
        const struct sample *last = sample_at(h, h->s_count - 1);
        for (size_t i = 0; i < last->n; i++) {
            json_t *d = domain_series(h, k0, from_ms, h->pool[last->first + i].domid);
            if (d != NULL)
                json_array_append_new(doms, d);
        }
    }
    json_t *j = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I},s:{s:o,s:o},s:o}", "now_ms",
        (json_int_t)now_ms, "window_ms", (json_int_t)(now_ms - from_ms), "from_ms",
        (json_int_t)from_ms, "last_sample_ms", (json_int_t)h->last_ms, "interval_ms",
        (json_int_t)cfg.min_interval_ms, "samples", (json_int_t)written, "capacity", "samples",
        (json_int_t)cfg.max_samples, "entries", (json_int_t)cfg.max_entries, "bytes",
        (json_int_t)history_bytes(&cfg), "host", "t_ms", ht, "free_kib", hf, "domains", doms);
    if (j == NULL)
        abort();
    return j;
}
