/* SPDX-License-Identifier: LGPL-2.1-only */
/* The published /status picture: immutable, shared by reference, serialised once. */
#include "server/status.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "common/xalloc.h"

/*
 * The JSON is written straight into a buffer (no jansson tree): at 32,000 domains a tree
 * of 350,000 values costs tens of milliseconds to build and dump, the buffer a few. The
 * output is what json_dumps(JSON_COMPACT) gave for the same object: the same keys in the
 * same order. Every string written is one of ours (names, UUIDs, session names limited
 * to [A-Za-z0-9_@-]) but is escaped all the same.
 */

#define NO_TEXT SIZE_MAX

struct status_domain_row {
    struct policy_domain pd;
    enum domain_type type;
    bool booting;
    bool stuck;
    bool uncooperative;
    size_t name, uuid;           /* offsets in the view's pool, or NO_TEXT */
    int64_t stuck_since_wall_ms; /* -1: not stuck */
};

struct status_domains {
    atomic_uint refs;
    size_t n;
    struct status_domain_row *rows;
    char *pool; /* names and uuids, NUL-terminated one after the other */
    size_t pool_len, pool_cap;
    size_t n_excluded;
    struct domcache_excluded *excluded; /* left out of the snapshot, sorted by domid */
};

/*
 * The reservations: a persistent B+ tree of rows in creation order (keyed by the
 * reservation's seq), whose nodes are immutable and shared by reference between
 * versions. A change copies the nodes on one path from the root (and at most one
 * neighbour of each, to keep them full enough): O(log N), whatever the number held, where
 * copying the whole list after each change was ~20 ns a reservation on the worker. Each
 * leaf memoises its rows' JSON on first read, so a picture after one change serialises
 * one leaf, not every row again.
 *
 * A leaf holds 1..RESV_LEAF_MAX rows, an inner node 1..RESV_FANOUT children of one
 * height. Rows are only ever added at the end (the largest seq): appends go down the
 * right spine and a full node there gets a new right neighbour. Every node off the right
 * spine, except the root, holds at least a quarter of its maximum: a removal that leaves
 * less merges the node with a neighbour (or evens the two out when they do not fit in
 * one). An inner node with a single child is only found on the right spine; the root is
 * never one.
 */
#define RESV_LEAF_MAX 128
#define RESV_FANOUT 32
#define RESV_LEAF_MIN (RESV_LEAF_MAX / 4)
#define RESV_INNER_MIN (RESV_FANOUT / 4)

struct resv_node {
    atomic_uint refs;
    unsigned height; /* 0: a struct resv_leaf, else a struct resv_inner */
    unsigned n;      /* rows (leaf) or children (inner) */
};

struct status_resv_row {
    uint64_t seq;
    int64_t kib;
    int32_t domid;
    uint32_t id, session; /* offsets in the leaf's pool */
};

/* The rows' JSON, "{...},{...}", built once. */
struct resv_bytes {
    size_t len;
    char text[];
};

struct resv_leaf {
    struct resv_node h;
    _Atomic(struct resv_bytes *) json; /* NULL until first read */
    char *pool;                        /* ids and sessions, after the rows (same block) */
    struct status_resv_row rows[];     /* h.n of them, by seq */
};

struct resv_inner {
    struct resv_node h;
    /* Child i holds the seqs in [lo[i], lo[i + 1]) (lo[0] is not used for routing). */
    uint64_t lo[RESV_FANOUT];
    struct resv_node *kids[RESV_FANOUT];
};

struct status_resvs {
    atomic_uint refs;
    struct resv_node *root; /* NULL: none */
    size_t n;               /* rows */
};

struct status_picture {
    atomic_uint refs;
    struct status_input in; /* ops, totals, waits, bounds, running point into the below */
    struct status_op ops[STATUS_MAX_OPS];
    struct status_total totals[STATUS_MAX_TOTALS];
    struct status_wait waits[STATUS_MAX_WAITS];
    double bounds_s[STATUS_MAX_BOUNDS];
    struct status_running running;

    pthread_mutex_t mu;   /* held while the bytes are built */
    _Atomic(char *) json; /* NULL until built */
    size_t json_len;
    _Atomic(char *) memo[STATUS_MEMO_SLOTS];
    size_t memo_len[STATUS_MEMO_SLOTS];
};

/* ---- the shared parts ---------------------------------------------------------------- */

/* Copy text into d's pool: its offset, or NO_TEXT for NULL. */
static size_t pool_add(struct status_domains *d, const char *text)
{
    if (text == NULL)
        return NO_TEXT;
    size_t n = strlen(text) + 1;
    if (d->pool_len + n > d->pool_cap) {
        size_t cap = d->pool_cap ? d->pool_cap : 1024;
        while (cap < d->pool_len + n)
            cap *= 2;
        d->pool = xreallocarray(d->pool, cap, 1);
        d->pool_cap = cap;
    }
    memcpy(d->pool + d->pool_len, text, n);
    d->pool_len += n;
    return d->pool_len - n;
}

struct status_domains *status_domains_new(const struct domcache_snapshot *snap,
                                          status_flags_fn flags, const void *ctx,
                                          status_ident_fn ident, void *ident_ctx)
{
    struct status_domains *d = xcalloc(1, sizeof(*d));
    atomic_init(&d->refs, 1);
    d->n = snap != NULL ? snap->host.n_domains : 0;
    if (snap != NULL && snap->n_excluded > 0) {
        d->n_excluded = snap->n_excluded;
        d->excluded = xcalloc(d->n_excluded, sizeof(*d->excluded));
        memcpy(d->excluded, snap->excluded, d->n_excluded * sizeof(*d->excluded));
    }
    if (d->n == 0)
        return d;
    d->rows = xcalloc(d->n, sizeof(*d->rows));
    bool *stuck = xcalloc(2 * d->n, sizeof(bool));
    bool *uncoop = stuck + d->n;
    if (flags != NULL)
        flags(ctx, snap, stuck, uncoop);
    for (size_t i = 0; i < d->n; i++) {
        struct status_domain_row *r = &d->rows[i];
        r->pd = snap->domains[i];
        r->type = snap->extra[i].type;
        r->booting = snap->extra[i].booting;
        r->stuck = stuck[i];
        r->uncooperative = uncoop[i];
        const char *name = NULL, *uuid = NULL;
        r->stuck_since_wall_ms = -1;
        if (ident != NULL)
            ident(ident_ctx, r->pd.domid, &name, &uuid, &r->stuck_since_wall_ms);
        r->name = pool_add(d, name);
        r->uuid = pool_add(d, uuid);
    }
    free(stuck);
    return d;
}

void status_domains_unref(struct status_domains *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    free(d->rows);
    free(d->pool);
    free(d->excluded);
    free(d);
}

/* ---- the reservations: a persistent B+ tree (see struct status_resvs) ------------------ */

/* A row as it is copied from: a leaf's row with its pool, or a reservation. */
struct row_ref {
    uint64_t seq;
    int64_t kib;
    int32_t domid;
    const char *id, *session;
};

static struct row_ref row_of_leaf(const struct resv_leaf *l, unsigned i)
{
    const struct status_resv_row *r = &l->rows[i];
    return (struct row_ref){.seq = r->seq,
                            .kib = r->kib,
                            .domid = r->domid,
                            .id = l->pool + r->id,
                            .session = l->pool + r->session};
}

static struct row_ref row_of(const struct reservation *x)
{
    return (struct row_ref){
        .seq = x->seq, .kib = x->kib, .domid = x->domid, .id = x->id, .session = x->session};
}

static struct resv_node *node_ref(struct resv_node *n)
{
    if (n != NULL)
        atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
    return n;
}

static void node_unref(struct resv_node *n)
{
    if (n == NULL || atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (n->height == 0) {
        free(atomic_load_explicit(&((struct resv_leaf *)n)->json, memory_order_acquire));
    } else {
        struct resv_inner *in = (struct resv_inner *)n;
        for (unsigned i = 0; i < n->n; i++)
            node_unref(in->kids[i]);
    }
    free(n);
}

static unsigned node_min(const struct resv_node *n)
{
    return n->height == 0 ? RESV_LEAF_MIN : RESV_INNER_MIN;
}

/* A new leaf holding copies of rows (0 .. RESV_LEAF_MAX, by seq): one allocation. A
 * session's name is stored once for a run of rows of that session. */
static struct resv_node *leaf_new(const struct row_ref *rows, unsigned n)
{
    assert(n <= RESV_LEAF_MAX);
    size_t pool_len = 0;
    for (unsigned i = 0; i < n; i++) {
        pool_len += strlen(rows[i].id) + 1;
        if (i == 0 || strcmp(rows[i].session, rows[i - 1].session) != 0)
            pool_len += strlen(rows[i].session) + 1;
    }
    size_t head = offsetof(struct resv_leaf, rows) + n * sizeof(struct status_resv_row);
    if (head < sizeof(struct resv_leaf))
        head = sizeof(struct resv_leaf);
    struct resv_leaf *l = xmalloc(head + pool_len);
    atomic_init(&l->h.refs, 1);
    l->h.height = 0;
    l->h.n = n;
    atomic_init(&l->json, NULL);
    l->pool = (char *)l + head;
    size_t at = 0;
    for (unsigned i = 0; i < n; i++) {
        struct status_resv_row *r = &l->rows[i];
        assert(i == 0 || rows[i - 1].seq < rows[i].seq);
        r->seq = rows[i].seq;
        r->kib = rows[i].kib;
        r->domid = rows[i].domid;
        size_t k = strlen(rows[i].id) + 1;
        memcpy(l->pool + at, rows[i].id, k);
        r->id = (uint32_t)at;
        at += k;
        if (i > 0 && strcmp(rows[i].session, rows[i - 1].session) == 0) {
            r->session = l->rows[i - 1].session;
        } else {
            k = strlen(rows[i].session) + 1;
            memcpy(l->pool + at, rows[i].session, k);
            r->session = (uint32_t)at;
            at += k;
        }
    }
    return &l->h;
}

/* The rows of leaf n as references into it (valid while it lives); how many. */
static unsigned leaf_rows(const struct resv_node *n, struct row_ref *out)
{
    const struct resv_leaf *l = (const struct resv_leaf *)n;
    for (unsigned i = 0; i < n->n; i++)
        out[i] = row_of_leaf(l, i);
    return n->n;
}

/* The index of seq's row in leaf n, or -1. */
static int leaf_find(const struct resv_node *n, uint64_t seq)
{
    const struct resv_leaf *l = (const struct resv_leaf *)n;
    unsigned lo = 0, hi = n->n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (l->rows[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n->n && l->rows[lo].seq == seq ? (int)lo : -1;
}

static struct resv_inner *inner_alloc(unsigned height)
{
    struct resv_inner *in = xcalloc(1, sizeof(*in));
    atomic_init(&in->h.refs, 1);
    in->h.height = height;
    return in;
}

/* A copy of in that shares its children. */
static struct resv_inner *inner_copy(const struct resv_inner *in)
{
    struct resv_inner *c = inner_alloc(in->h.height);
    c->h.n = in->h.n;
    memcpy(c->lo, in->lo, in->h.n * sizeof(*c->lo));
    for (unsigned i = 0; i < in->h.n; i++)
        c->kids[i] = node_ref(in->kids[i]);
    return c;
}

/* Child i of c becomes kid (c takes that reference); the one it replaces is released. */
static void inner_set(struct resv_inner *c, unsigned i, struct resv_node *kid)
{
    node_unref(c->kids[i]);
    c->kids[i] = kid;
}

static void inner_drop(struct resv_inner *c, unsigned i)
{
    node_unref(c->kids[i]);
    memmove(&c->kids[i], &c->kids[i + 1], (c->h.n - i - 1) * sizeof(*c->kids));
    memmove(&c->lo[i], &c->lo[i + 1], (c->h.n - i - 1) * sizeof(*c->lo));
    c->h.n--;
}

/* The child of in whose range holds seq. */
static unsigned inner_route(const struct resv_inner *in, uint64_t seq)
{
    unsigned lo = 1, hi = in->h.n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (in->lo[mid] <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

/* An inner node of height over kids[0 .. n) (each gets one more reference). */
static struct resv_node *inner_of(unsigned height, struct resv_node *const *kids,
                                  const uint64_t *lo, unsigned n)
{
    struct resv_inner *in = inner_alloc(height);
    in->h.n = n;
    for (unsigned i = 0; i < n; i++) {
        in->kids[i] = node_ref(kids[i]);
        in->lo[i] = lo[i];
    }
    return &in->h;
}

/* Children i and i + 1 of c (a copy: changed in place) become one child when their
 * entries fit in one, else two children with half of them each. */
static void inner_rebalance(struct resv_inner *c, unsigned i)
{
    struct resv_node *a = c->kids[i], *b = c->kids[i + 1];
    struct resv_node *x, *y = NULL;
    uint64_t split = 0;
    if (a->height == 0) {
        struct row_ref rows[2 * RESV_LEAF_MAX];
        unsigned n = leaf_rows(a, rows);
        n += leaf_rows(b, rows + n);
        if (n <= RESV_LEAF_MAX) {
            x = leaf_new(rows, n);
        } else {
            x = leaf_new(rows, n / 2);
            y = leaf_new(rows + n / 2, n - n / 2);
            split = rows[n / 2].seq;
        }
    } else {
        const struct resv_inner *ia = (const struct resv_inner *)a;
        const struct resv_inner *ib = (const struct resv_inner *)b;
        struct resv_node *kids[2 * RESV_FANOUT];
        uint64_t lo[2 * RESV_FANOUT];
        unsigned n = 0;
        for (unsigned k = 0; k < ia->h.n; k++, n++) {
            kids[n] = ia->kids[k];
            lo[n] = ia->lo[k];
        }
        for (unsigned k = 0; k < ib->h.n; k++, n++) {
            kids[n] = ib->kids[k];
            lo[n] = k == 0 ? c->lo[i + 1] : ib->lo[k]; /* b's own lo[0] may be stale */
        }
        if (n <= RESV_FANOUT) {
            x = inner_of(a->height, kids, lo, n);
        } else {
            x = inner_of(a->height, kids, lo, n / 2);
            y = inner_of(a->height, kids + n / 2, lo + n / 2, n - n / 2);
            split = lo[n / 2];
        }
    }
    /* Only now may a and b go: x and y were copied from them. */
    inner_set(c, i, x);
    if (y != NULL) {
        inner_set(c, i + 1, y);
        c->lo[i + 1] = split;
    } else {
        inner_drop(c, i + 1);
    }
}

/* node with row x added at its end (x's seq is larger than any in it): a new reference.
 * When node is full, it comes back unchanged and *over is a new node of the same height
 * holding x, to go right after it. */
static struct resv_node *append_rec(struct resv_node *node, const struct row_ref *x,
                                    struct resv_node **over)
{
    *over = NULL;
    if (node->height == 0) {
        struct row_ref rows[RESV_LEAF_MAX];
        unsigned n = leaf_rows(node, rows);
        assert(n == 0 || rows[n - 1].seq < x->seq);
        if (n == RESV_LEAF_MAX) {
            *over = leaf_new(x, 1);
            return node_ref(node);
        }
        rows[n] = *x;
        return leaf_new(rows, n + 1);
    }
    const struct resv_inner *in = (const struct resv_inner *)node;
    struct resv_node *o;
    struct resv_node *last = append_rec(in->kids[in->h.n - 1], x, &o);
    struct resv_inner *c = inner_copy(in);
    inner_set(c, c->h.n - 1, last);
    if (o != NULL && c->h.n < RESV_FANOUT) {
        c->lo[c->h.n] = x->seq;
        c->kids[c->h.n++] = o;
    } else if (o != NULL) {
        struct resv_inner *w = inner_alloc(in->h.height);
        w->lo[0] = x->seq;
        w->kids[0] = o;
        w->h.n = 1;
        *over = &w->h;
    }
    return &c->h;
}

/* node with x's row (same seq) replaced by x, a new reference; NULL if it has no such row. */
static struct resv_node *set_rec(struct resv_node *node, const struct row_ref *x)
{
    if (node->height == 0) {
        int i = leaf_find(node, x->seq);
        if (i < 0)
            return NULL;
        struct row_ref rows[RESV_LEAF_MAX];
        unsigned n = leaf_rows(node, rows);
        rows[i] = *x;
        return leaf_new(rows, n);
    }
    const struct resv_inner *in = (const struct resv_inner *)node;
    unsigned i = inner_route(in, x->seq);
    struct resv_node *kid = set_rec(in->kids[i], x);
    if (kid == NULL)
        return NULL;
    struct resv_inner *c = inner_copy(in);
    inner_set(c, i, kid);
    return &c->h;
}

/* node without seq's row, a new reference (which may be empty: n == 0); NULL if it has no
 * such row. A child left below its minimum is merged with or evened out against a
 * neighbour. */
static struct resv_node *remove_rec(struct resv_node *node, uint64_t seq)
{
    if (node->height == 0) {
        int i = leaf_find(node, seq);
        if (i < 0)
            return NULL;
        struct row_ref rows[RESV_LEAF_MAX];
        unsigned n = leaf_rows(node, rows);
        memmove(&rows[i], &rows[i + 1], (n - (unsigned)i - 1) * sizeof(*rows));
        return leaf_new(rows, n - 1);
    }
    const struct resv_inner *in = (const struct resv_inner *)node;
    unsigned i = inner_route(in, seq);
    struct resv_node *kid = remove_rec(in->kids[i], seq);
    if (kid == NULL)
        return NULL;
    struct resv_inner *c = inner_copy(in);
    inner_set(c, i, kid);
    if (kid->n == 0)
        inner_drop(c, i);
    else if (kid->n < node_min(kid) && c->h.n > 1)
        inner_rebalance(c, i > 0 ? i - 1 : i);
    return &c->h;
}

static struct status_resvs *resvs_wrap(struct resv_node *root, size_t n)
{
    struct status_resvs *v = xcalloc(1, sizeof(*v));
    atomic_init(&v->refs, 1);
    v->root = root;
    v->n = n;
    return v;
}

struct status_resvs *status_resvs_new(const struct reservations *r)
{
    size_t n = r != NULL ? reservations_count(r) : 0;
    size_t n_nodes = (n + RESV_LEAF_MAX - 1) / RESV_LEAF_MAX;
    if (n_nodes == 0)
        return resvs_wrap(NULL, 0);
    /* Full leaves in order, then full levels above them: the last node of each level (on
     * the right spine) may be less than full. */
    struct resv_node **level = xcalloc(n_nodes, sizeof(*level));
    uint64_t *lo = xcalloc(n_nodes, sizeof(*lo));
    struct row_ref rows[RESV_LEAF_MAX];
    unsigned k = 0;
    size_t at = 0, count = 0;
    for (const struct reservation *x = reservations_first(r); x != NULL;
         x = reservations_next(r, x)) {
        rows[k++] = row_of(x);
        count++;
        if (k == RESV_LEAF_MAX || reservations_next(r, x) == NULL) {
            lo[at] = rows[0].seq;
            level[at++] = leaf_new(rows, k);
            k = 0;
        }
    }
    assert(at == n_nodes && count == n);
    unsigned height = 0;
    while (n_nodes > 1) {
        height++;
        size_t up = 0;
        for (size_t i = 0; i < n_nodes; i += RESV_FANOUT, up++) {
            size_t m = n_nodes - i < RESV_FANOUT ? n_nodes - i : RESV_FANOUT;
            struct resv_node *node = inner_of(height, level + i, lo + i, (unsigned)m);
            for (size_t j = i; j < i + m; j++)
                node_unref(level[j]); /* inner_of took its own */
            level[up] = node;
            lo[up] = lo[i];
        }
        n_nodes = up;
    }
    struct status_resvs *v = resvs_wrap(level[0], n);
    free(level);
    free(lo);
    return v;
}

struct status_resvs *status_resvs_add(const struct status_resvs *v, const struct reservation *x)
{
    struct row_ref row = row_of(x);
    if (v->root == NULL)
        return resvs_wrap(leaf_new(&row, 1), 1);
    struct resv_node *over;
    struct resv_node *root = append_rec(v->root, &row, &over);
    if (over != NULL) {
        struct resv_inner *w = inner_alloc(root->height + 1);
        w->kids[0] = root;
        w->kids[1] = over;
        w->lo[1] = row.seq;
        w->h.n = 2;
        root = &w->h;
    }
    return resvs_wrap(root, v->n + 1);
}

struct status_resvs *status_resvs_set(const struct status_resvs *v, const struct reservation *x)
{
    struct row_ref row = row_of(x);
    struct resv_node *root = v->root != NULL ? set_rec(v->root, &row) : NULL;
    return resvs_wrap(root != NULL ? root : node_ref(v->root), v->n);
}

struct status_resvs *status_resvs_remove(const struct status_resvs *v, uint64_t seq)
{
    struct resv_node *root = v->root != NULL ? remove_rec(v->root, seq) : NULL;
    if (root == NULL)
        return resvs_wrap(node_ref(v->root), v->n);
    /* A root with one child (or none) gives way to it. */
    while (root != NULL && root->height > 0 && root->n <= 1) {
        struct resv_node *kid =
            root->n == 1 ? node_ref(((struct resv_inner *)root)->kids[0]) : NULL;
        node_unref(root);
        root = kid;
    }
    if (root != NULL && root->n == 0) {
        node_unref(root);
        root = NULL;
    }
    return resvs_wrap(root, v->n - 1);
}

size_t status_resvs_count(const struct status_resvs *v)
{
    return v != NULL ? v->n : 0;
}

struct status_resvs *status_resvs_ref(struct status_resvs *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void status_resvs_unref(struct status_resvs *v)
{
    if (v == NULL || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    node_unref(v->root);
    free(v);
}

/* Walk the tree checking what the header of struct status_resvs promises. */
struct check_state {
    size_t rows;
    bool have_last;
    uint64_t last_seq;
    const char *why;
};

static void check_node(const struct resv_node *n, bool is_root, bool right_spine, bool has_lo,
                       uint64_t lo, bool has_hi, uint64_t hi, struct check_state *st)
{
    if (st->why != NULL)
        return;
    if (atomic_load(&((struct resv_node *)n)->refs) == 0) {
        st->why = "a node with no reference";
        return;
    }
    unsigned max = n->height == 0 ? RESV_LEAF_MAX : RESV_FANOUT;
    if (n->n == 0 || n->n > max) {
        st->why = "a node empty or over its maximum";
        return;
    }
    if (!is_root && !right_spine && n->n < node_min(n)) {
        st->why = "a node off the right spine below its minimum";
        return;
    }
    if (is_root && n->height > 0 && n->n < 2) {
        st->why = "a root with one child";
        return;
    }
    if (n->height == 0) {
        const struct resv_leaf *l = (const struct resv_leaf *)n;
        for (unsigned i = 0; i < n->n; i++) {
            uint64_t s = l->rows[i].seq;
            if ((st->have_last && s <= st->last_seq) || (has_lo && s < lo) ||
                (has_hi && s >= hi)) {
                st->why = "rows out of order or outside their range";
                return;
            }
            st->have_last = true;
            st->last_seq = s;
            st->rows++;
        }
        return;
    }
    const struct resv_inner *in = (const struct resv_inner *)n;
    for (unsigned i = 0; i < n->n; i++) {
        if (in->kids[i]->height + 1 != n->height) {
            st->why = "children of another height";
            return;
        }
        if (i > 1 && in->lo[i] <= in->lo[i - 1]) {
            st->why = "ranges out of order";
            return;
        }
        bool klo = i > 0 || has_lo, khi = i + 1 < n->n || has_hi;
        uint64_t vlo = i > 0 ? in->lo[i] : lo, vhi = i + 1 < n->n ? in->lo[i + 1] : hi;
        check_node(in->kids[i], false, right_spine && i + 1 == n->n, klo, vlo, khi, vhi, st);
    }
}

int status_resvs_check(const struct status_resvs *v, unsigned *height, const char **why)
{
    struct check_state st = {0};
    if (v->root != NULL)
        check_node(v->root, true, true, false, 0, false, 0, &st);
    if (st.why == NULL && st.rows != v->n)
        st.why = "a count that is not the number of rows";
    *height = v->root != NULL ? v->root->height + 1 : 0;
    *why = st.why;
    return st.why != NULL ? -1 : 0;
}

/* ---- pictures ------------------------------------------------------------------------- */

static struct status_picture *picture_alloc(void)
{
    struct status_picture *p = xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    atomic_init(&p->json, NULL);
    for (unsigned k = 0; k < STATUS_MEMO_SLOTS; k++)
        atomic_init(&p->memo[k], NULL);
    return p;
}

struct status_picture *status_picture_new(const struct status_input *in)
{
    struct status_picture *p = picture_alloc();
    p->in = *in;
    size_t n_ops = in->n_ops < STATUS_MAX_OPS ? in->n_ops : STATUS_MAX_OPS;
    size_t n_totals = in->n_totals < STATUS_MAX_TOTALS ? in->n_totals : STATUS_MAX_TOTALS;
    if (n_ops > 0)
        memcpy(p->ops, in->ops, n_ops * sizeof(*p->ops));
    if (n_totals > 0)
        memcpy(p->totals, in->totals, n_totals * sizeof(*p->totals));
    for (size_t i = 0; i < n_ops; i++) {
        p->ops[i].dbg = p->ops[i].dbg != NULL ? xstrdup(p->ops[i].dbg) : NULL;
        p->ops[i].session = p->ops[i].session != NULL ? xstrdup(p->ops[i].session) : NULL;
        p->ops[i].breakdown = p->ops[i].breakdown != NULL ? xstrdup(p->ops[i].breakdown) : NULL;
    }
    size_t n_waits = in->n_waits < STATUS_MAX_WAITS ? in->n_waits : STATUS_MAX_WAITS;
    size_t n_bounds = in->n_bounds < STATUS_MAX_BOUNDS ? in->n_bounds : STATUS_MAX_BOUNDS;
    if (n_waits > 0)
        memcpy(p->waits, in->waits, n_waits * sizeof(*p->waits));
    if (n_bounds > 0)
        memcpy(p->bounds_s, in->bounds_s, n_bounds * sizeof(*p->bounds_s));
    p->in.ops = p->ops;
    p->in.n_ops = n_ops;
    p->in.totals = p->totals;
    p->in.n_totals = n_totals;
    p->in.waits = p->waits;
    p->in.n_waits = n_waits;
    p->in.bounds_s = p->bounds_s;
    p->in.n_bounds = n_bounds;
    if (in->running != NULL) {
        p->running = *in->running;
        p->running.dbg = in->running->dbg != NULL ? xstrdup(in->running->dbg) : NULL;
        p->running.session =
            in->running->session != NULL ? xstrdup(in->running->session) : NULL;
        p->in.running = &p->running;
    }
    if (in->domains != NULL)
        atomic_fetch_add(&in->domains->refs, 1);
    if (in->resvs != NULL)
        atomic_fetch_add(&in->resvs->refs, 1);
    return p;
}

struct status_picture *status_picture_from_json(const char *json, size_t len)
{
    struct status_picture *p = picture_alloc();
    char *copy = xmalloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = '\0';
    p->json_len = len;
    atomic_store(&p->json, copy);
    return p;
}

struct status_picture *status_picture_ref(struct status_picture *p)
{
    atomic_fetch_add(&p->refs, 1);
    return p;
}

void status_picture_unref(struct status_picture *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    status_domains_unref(p->in.domains);
    status_resvs_unref(p->in.resvs);
    for (size_t i = 0; i < p->in.n_ops; i++) {
        free((char *)p->ops[i].dbg);
        free((char *)p->ops[i].session);
        free((char *)p->ops[i].breakdown);
    }
    if (p->in.running != NULL) {
        free((char *)p->running.dbg);
        free((char *)p->running.session);
    }
    free(atomic_load(&p->json));
    for (unsigned k = 0; k < STATUS_MEMO_SLOTS; k++)
        free(atomic_load(&p->memo[k]));
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- the JSON --------------------------------------------------------------------------- */

struct jbuf {
    char *p;
    size_t len, cap;
};

static void jb_reserve(struct jbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = xreallocarray(b->p, cap, 1);
    b->cap = cap;
}

static void jb_raw(struct jbuf *b, const char *s)
{
    size_t n = strlen(s);
    jb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jb_int(struct jbuf *b, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp);
    char *s = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--s = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--s = '-';
    size_t n = (size_t)(e - s);
    jb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* A string, escaped as JSON (control characters as \u00XX). */
static void jb_str(struct jbuf *b, const char *s)
{
    jb_reserve(b, 2 + 6 * strlen(s));
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        } else if (*c < 0x20) {
            o += sprintf(o, "\\u%04x", *c);
        } else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->p);
}

/* ,"key": (the comma unless first) */
static void jb_key(struct jbuf *b, const char *key, bool first)
{
    if (!first)
        jb_raw(b, ",");
    jb_str(b, key);
    jb_raw(b, ":");
}

static void jb_kint(struct jbuf *b, const char *key, int64_t v, bool first)
{
    jb_key(b, key, first);
    jb_int(b, v);
}

static void jb_kbool(struct jbuf *b, const char *key, bool v)
{
    jb_key(b, key, false);
    jb_raw(b, v ? "true" : "false");
}

static void jb_kstr(struct jbuf *b, const char *key, const char *v, bool first)
{
    jb_key(b, key, first);
    jb_str(b, v);
}

/* As jansson writes a real: %.17g, with ".0" when that looks like an integer. */
static void jb_real(struct jbuf *b, double v)
{
    char tmp[40];
    snprintf(tmp, sizeof(tmp), "%.17g", v);
    jb_raw(b, tmp);
    if (strpbrk(tmp, ".eEin") == NULL)
        jb_raw(b, ".0");
}

void status_iso_utc(int64_t unix_ms, char buf[64])
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}

static void jb_kiso(struct jbuf *b, const char *key, int64_t unix_ms)
{
    char buf[64];
    status_iso_utc(unix_ms, buf);
    jb_kstr(b, key, buf, false);
}

static void jb_buckets(struct jbuf *b, const uint64_t *buckets, size_t n)
{
    jb_key(b, "buckets", false);
    jb_raw(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            jb_raw(b, ",");
        jb_int(b, (int64_t)buckets[i]);
    }
    jb_raw(b, "]");
}

/* A domain left out of the snapshot: the same fields, its sizes all what Xen says it
 * holds (it is left as it is), and "excluded" saying why. */
static void write_excluded(struct jbuf *b, const struct domcache_excluded *x)
{
    jb_kint(b, "domid", x->domid, true);
    jb_kstr(b, "type", domain_type_name(x->type), false);
    jb_kbool(b, "can_balloon", false);
    jb_kbool(b, "booting", false);
    jb_kbool(b, "paused", false);
    jb_kint(b, "dynamic_min_kib", x->actual_kib, false);
    jb_kint(b, "dynamic_max_kib", x->actual_kib, false);
    jb_kint(b, "target_kib", x->actual_kib, false);
    jb_kint(b, "actual_kib", x->actual_kib, false);
    jb_kint(b, "maxmem_kib", x->maxmem_kib, false);
    jb_kbool(b, "stuck", false);
    jb_kbool(b, "uncooperative", false);
    char reason[sizeof(x->reason) + 1];
    memcpy(reason, x->reason, sizeof(x->reason));
    reason[sizeof(x->reason)] = '\0';
    jb_kstr(b, "excluded", reason, false);
}

static void write_domains(struct jbuf *b, const struct status_domains *d)
{
    jb_raw(b, "[");
    size_t k = 0; /* the next excluded domain, merged in domid order */
    bool first = true;
    for (size_t i = 0; d != NULL && i < d->n; i++) {
        const struct status_domain_row *r = &d->rows[i];
        for (; k < d->n_excluded && d->excluded[k].domid < r->pd.domid; k++) {
            jb_raw(b, first ? "{" : ",{");
            first = false;
            write_excluded(b, &d->excluded[k]);
            jb_raw(b, "}");
        }
        jb_raw(b, first ? "{" : ",{");
        first = false;
        jb_kint(b, "domid", r->pd.domid, true);
        jb_kstr(b, "type", domain_type_name(r->type), false);
        jb_kbool(b, "can_balloon", r->pd.can_balloon);
        jb_kbool(b, "booting", r->booting);
        jb_kbool(b, "paused", r->pd.paused);
        jb_kint(b, "dynamic_min_kib", r->pd.dynamic_min_kib, false);
        jb_kint(b, "dynamic_max_kib", r->pd.dynamic_max_kib, false);
        jb_kint(b, "target_kib", r->pd.target_kib, false);
        jb_kint(b, "actual_kib", r->pd.actual_kib, false);
        jb_kint(b, "maxmem_kib", r->pd.maxmem_kib, false);
        jb_kbool(b, "stuck", r->stuck);
        jb_kbool(b, "uncooperative", r->uncooperative);
        if (r->name != NO_TEXT)
            jb_kstr(b, "name", d->pool + r->name, false);
        if (r->uuid != NO_TEXT)
            jb_kstr(b, "uuid", d->pool + r->uuid, false);
        if (r->stuck_since_wall_ms >= 0)
            jb_kiso(b, "stuck_since", r->stuck_since_wall_ms);
        jb_raw(b, "}");
    }
    for (; d != NULL && k < d->n_excluded; k++) {
        jb_raw(b, first ? "{" : ",{");
        first = false;
        write_excluded(b, &d->excluded[k]);
        jb_raw(b, "}");
    }
    jb_raw(b, "]");
}

/* The rows of leaf n as JSON objects separated by commas: built on the first call (by
 * whichever thread reads first; a thread that loses the race frees its own copy). */
static const struct resv_bytes *leaf_json(struct resv_node *n)
{
    struct resv_leaf *l = (struct resv_leaf *)n;
    struct resv_bytes *j = atomic_load_explicit(&l->json, memory_order_acquire);
    if (j != NULL)
        return j;
    struct jbuf b = {0};
    jb_reserve(&b, 128 * (size_t)n->n);
    for (unsigned i = 0; i < n->n; i++) {
        const struct status_resv_row *r = &l->rows[i];
        jb_raw(&b, i == 0 ? "{" : ",{");
        jb_kstr(&b, "id", l->pool + r->id, true);
        jb_kstr(&b, "session", l->pool + r->session, false);
        jb_kint(&b, "kib", r->kib, false);
        if (r->domid >= 0)
            jb_kint(&b, "domid", r->domid, false);
        jb_raw(&b, "}");
    }
    struct resv_bytes *mine = xmalloc(sizeof(*mine) + b.len + 1);
    mine->len = b.len;
    memcpy(mine->text, b.p, b.len);
    mine->text[b.len] = '\0';
    free(b.p);
    struct resv_bytes *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&l->json, &expected, mine, memory_order_acq_rel,
                                                memory_order_acquire))
        return mine;
    free(mine);
    return expected;
}

static void write_resv_node(struct jbuf *b, struct resv_node *n, bool *first)
{
    if (n->height > 0) {
        struct resv_inner *in = (struct resv_inner *)n;
        for (unsigned i = 0; i < n->n; i++)
            write_resv_node(b, in->kids[i], first);
        return;
    }
    if (n->n == 0)
        return;
    const struct resv_bytes *j = leaf_json(n);
    jb_reserve(b, j->len + 1);
    if (!*first)
        b->p[b->len++] = ',';
    memcpy(b->p + b->len, j->text, j->len);
    b->len += j->len;
    b->p[b->len] = '\0';
    *first = false;
}

static void write_resvs(struct jbuf *b, const struct status_resvs *v)
{
    bool first = true;
    jb_raw(b, "[");
    if (v != NULL && v->root != NULL)
        write_resv_node(b, v->root, &first);
    jb_raw(b, "]");
}

char *status_resvs_json(const struct status_resvs *v, size_t *len)
{
    struct jbuf b = {0};
    write_resvs(&b, v);
    *len = b.len;
    return b.p;
}

static char *build_json(const struct status_input *in, size_t *len)
{
    struct jbuf b = {0};
    size_t rows =
        (in->domains != NULL ? in->domains->n : 0) + (in->resvs != NULL ? in->resvs->n : 0);
    jb_reserve(&b, 4096 + 256 * rows);
    jb_raw(&b, "{\"host\":{");
    bool h = in->have_host;
    jb_kint(&b, "free_kib", h ? in->free_kib : 0, true);
    jb_kint(&b, "reserved_kib", in->reserved_kib, false);
    jb_kint(&b, "total_kib", h ? in->total_kib : 0, false);
    jb_kint(&b, "xen_free_kib", h ? in->xen_free_kib : 0, false);
    jb_kint(&b, "scrub_kib", h ? in->scrub_kib : 0, false);
    jb_kint(&b, "reservations_kib", h ? in->reservations_kib : 0, false);
    jb_kint(&b, "booting_unused_kib", h ? in->booting_unused_kib : 0, false);
    jb_kint(&b, "claims_kib", h ? in->claims_kib : 0, false);
    jb_raw(&b, "},\"domains\":");
    write_domains(&b, in->domains);
    jb_raw(&b, ",\"reservations\":");
    write_resvs(&b, in->resvs);
    jb_raw(&b, ",\"operations\":[");
    for (size_t i = 0; i < in->n_ops; i++) {
        const struct status_op *o = &in->ops[i];
        jb_raw(&b, i == 0 ? "{" : ",{");
        jb_kstr(&b, "kind", o->kind, true);
        jb_kint(&b, "kib", o->kib, false);
        jb_kstr(&b, "outcome", o->outcome, false);
        jb_kiso(&b, "started", o->started_wall_ms);
        jb_kint(&b, "waited_ms", o->waited_ms, false);
        jb_kint(&b, "duration_ms", o->duration_ms, false);
        jb_kint(&b, "rounds", o->rounds, false);
        jb_kint(&b, "at_ms", o->at_ms, false);
        jb_kint(&b, "wait_ms", o->wait_ms, false);
        jb_kint(&b, "reservations", o->reservations, false);
        if (o->dbg != NULL)
            jb_kstr(&b, "dbg", o->dbg, false);
        if (o->session != NULL)
            jb_kstr(&b, "session", o->session, false);
        if (o->breakdown != NULL) {
            jb_key(&b, "breakdown", false);
            jb_raw(&b, o->breakdown); /* JSON already (json_dumps) */
        }
        jb_raw(&b, "}");
    }
    jb_raw(&b, "],\"operation_totals\":[");
    for (size_t i = 0; i < in->n_totals; i++) {
        const struct status_total *t = &in->totals[i];
        jb_raw(&b, i == 0 ? "{" : ",{");
        jb_kstr(&b, "kind", t->kind, true);
        jb_kstr(&b, "outcome", t->outcome, false);
        jb_kint(&b, "count", (int64_t)t->count, false);
        jb_kint(&b, "duration_ms_sum", t->duration_ms_sum, false);
        jb_buckets(&b, t->buckets, in->n_bounds);
        jb_raw(&b, "}");
    }
    jb_raw(&b, "],\"cache\":{");
    jb_kint(&b, "xenstore_reads", (int64_t)in->cache.xenstore_reads, true);
    jb_kint(&b, "xenstore_writes", (int64_t)in->cache.xenstore_writes, false);
    jb_kint(&b, "watch_events", (int64_t)in->cache.watch_events, false);
    jb_kint(&b, "hypercalls", (int64_t)in->cache.hypercalls, false);
    jb_kint(&b, "snapshots", (int64_t)in->cache.snapshots, false);
    jb_kint(&b, "rebuilds", (int64_t)in->cache.rebuilds, false);
    jb_kbool(&b, "watching", in->watching);
    jb_raw(&b, "},\"daemon\":{");
    jb_kstr(&b, "version", in->version != NULL ? in->version : "", true);
    jb_kstr(&b, "backend", in->backend != NULL ? in->backend : "", false);
    jb_kstr(&b, "clock", in->clock != NULL ? in->clock : "", false);
    jb_kbool(&b, "busy", in->busy);
    jb_kint(&b, "now_ms", in->now_ms, false);
    jb_key(&b, "uptime_s", false);
    jb_real(&b, in->uptime_s);
    jb_raw(&b, "},\"client_waits\":[");
    for (size_t i = 0; i < in->n_waits; i++) {
        const struct status_wait *w = &in->waits[i];
        jb_raw(&b, i == 0 ? "{" : ",{");
        jb_kstr(&b, "method", w->method, true);
        jb_kint(&b, "count", (int64_t)w->count, false);
        jb_kint(&b, "wait_ms_sum", w->wait_ms_sum, false);
        jb_buckets(&b, w->buckets, in->n_bounds);
        jb_raw(&b, "}");
    }
    jb_raw(&b, "],\"histogram_bounds_s\":[");
    for (size_t i = 0; i < in->n_bounds; i++) {
        if (i > 0)
            jb_raw(&b, ",");
        jb_real(&b, in->bounds_s[i]);
    }
    jb_raw(&b, "]");
    const struct status_running *r = in->running;
    if (r != NULL) {
        jb_raw(&b, ",\"running\":{");
        jb_kstr(&b, "kind", r->kind, true);
        jb_kint(&b, "kib", r->kib, false);
        jb_kiso(&b, "started", r->started_wall_ms);
        jb_kint(&b, "started_ms", r->started_ms, false);
        jb_kint(&b, "waiting", r->waiting, false);
        if (r->has_max)
            jb_kint(&b, "max_kib", r->max_kib, false);
        if (r->dbg != NULL)
            jb_kstr(&b, "dbg", r->dbg, false);
        if (r->session != NULL)
            jb_kstr(&b, "session", r->session, false);
        if (r->has_progress) {
            jb_raw(&b, ",\"progress\":{");
            jb_kint(&b, "freed_kib", r->freed_kib, true);
            jb_kint(&b, "needed_kib", r->needed_kib, false);
            jb_raw(&b, "}");
        }
        jb_raw(&b, "}");
    }
    jb_raw(&b, "}");
    *len = b.len;
    return b.p;
}

const char *status_picture_json(struct status_picture *p, size_t *len)
{
    char *j = atomic_load_explicit(&p->json, memory_order_acquire);
    if (j == NULL) {
        pthread_mutex_lock(&p->mu);
        j = atomic_load_explicit(&p->json, memory_order_relaxed);
        if (j == NULL) {
            j = build_json(&p->in, &p->json_len);
            atomic_store_explicit(&p->json, j, memory_order_release);
        }
        pthread_mutex_unlock(&p->mu);
    }
    *len = p->json_len;
    return j;
}

const char *status_picture_memo(struct status_picture *p, unsigned slot, status_build_fn build,
                                size_t *len)
{
    if (slot >= STATUS_MEMO_SLOTS)
        return NULL;
    char *m = atomic_load_explicit(&p->memo[slot], memory_order_acquire);
    if (m == NULL) {
        size_t jlen;
        const char *json = status_picture_json(p, &jlen);
        pthread_mutex_lock(&p->mu);
        m = atomic_load_explicit(&p->memo[slot], memory_order_relaxed);
        if (m == NULL) {
            m = build(json, jlen);
            if (m != NULL) {
                p->memo_len[slot] = strlen(m);
                atomic_store_explicit(&p->memo[slot], m, memory_order_release);
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (m == NULL)
            return NULL;
    }
    *len = p->memo_len[slot];
    return m;
}
