/* SPDX-License-Identifier: LGPL-2.1-only */
/* An in-memory xenstore: a tree of keys with values, a generation counter, watches. */
#include "sim/xstree.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/xalloc.h"

#define XSTREE_PATH_MAX 3072 /* XENSTORE_ABS_PATH_MAX */
#define XSTREE_DEFAULT_QUEUE_LIMIT 65536

struct xwatch {
    char *token;
    uint64_t id;
    struct xwatch *next;
};

/* A node of either tree: the data tree (value) or the watch trie (watches). */
struct pnode {
    char *path;
    size_t path_len;
    uint64_t hash;
    const char *name; /* points into path, after the last '/' ("" for the root) */
    struct pnode *parent;
    struct pnode **kids;
    size_t n_kids, cap_kids;
    size_t index;           /* position in parent->kids */
    char *value;            /* data tree: never NULL */
    struct xwatch *watches; /* watch trie */
};

/* Every node of one tree by full path: open addressing, linear probing. */
struct ptree {
    struct pnode **slots;
    size_t cap; /* power of two */
    size_t count;
    struct pnode *root;
};

struct xevent {
    char *path;
    char *token;
    uint64_t watch_id;
    struct xevent *next;
};

struct swatch {
    char *path; /* "@introduceDomain", "@releaseDomain" */
    struct xwatch w;
    struct swatch *next;
};

struct xstree {
    struct ptree data;
    struct ptree watches;
    struct swatch *special;
    size_t n_watches;
    uint64_t next_watch_id;
    uint64_t generation;

    struct xevent *head, *tail;
    size_t n_events;
    size_t queue_limit;
    bool overflow;
    int efd;
    bool efd_armed;
};

static uint64_t hash_path(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct pnode *ptree_lookup(const struct ptree *pt, const char *path, size_t len)
{
    uint64_t h = hash_path(path, len);
    size_t mask = pt->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct pnode *n = pt->slots[i];
        if (n == NULL)
            return NULL;
        if (n->hash == h && n->path_len == len && memcmp(n->path, path, len) == 0)
            return n;
    }
}

static void ptree_slot_insert(struct pnode **slots, size_t cap, struct pnode *n)
{
    size_t mask = cap - 1;
    size_t i = n->hash & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = n;
}

static void ptree_map_add(struct ptree *pt, struct pnode *n)
{
    if ((pt->count + 1) * 2 > pt->cap) {
        size_t ncap = pt->cap * 2;
        struct pnode **ns = xcalloc(ncap, sizeof(*ns));
        for (size_t i = 0; i < pt->cap; i++)
            if (pt->slots[i] != NULL)
                ptree_slot_insert(ns, ncap, pt->slots[i]);
        free(pt->slots);
        pt->slots = ns;
        pt->cap = ncap;
    }
    ptree_slot_insert(pt->slots, pt->cap, n);
    pt->count++;
}

static void ptree_map_del(struct ptree *pt, struct pnode *n)
{
    size_t mask = pt->cap - 1;
    size_t i = n->hash & mask;
    while (pt->slots[i] != n)
        i = (i + 1) & mask;
    pt->slots[i] = NULL;
    pt->count--;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        struct pnode *m = pt->slots[j];
        if (m == NULL)
            break;
        size_t home = m->hash & mask;
        /* m may move to i if its home is not cyclically within (i, j]. */
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            pt->slots[i] = m;
            pt->slots[j] = NULL;
            i = j;
        }
    }
}

static struct pnode *pnode_new(const char *path, size_t len, struct pnode *parent)
{
    struct pnode *n = xcalloc(1, sizeof(*n));
    n->path = xmalloc(len + 1);
    memcpy(n->path, path, len);
    n->path[len] = '\0';
    n->path_len = len;
    n->hash = hash_path(path, len);
    const char *slash = strrchr(n->path, '/');
    n->name = slash ? slash + 1 : n->path;
    n->parent = parent;
    if (parent != NULL) {
        if (parent->n_kids == parent->cap_kids) {
            parent->cap_kids = parent->cap_kids ? parent->cap_kids * 2 : 4;
            parent->kids = xreallocarray(parent->kids, parent->cap_kids, sizeof(*parent->kids));
        }
        n->index = parent->n_kids;
        parent->kids[parent->n_kids++] = n;
    }
    return n;
}

static void ptree_init(struct ptree *pt, bool with_value)
{
    pt->cap = 64;
    pt->slots = xcalloc(pt->cap, sizeof(*pt->slots));
    pt->count = 0;
    pt->root = pnode_new("/", 1, NULL);
    pt->root->name = "";
    if (with_value)
        pt->root->value = xstrdup("");
    ptree_map_add(pt, pt->root);
}

static size_t parent_len(const char *path, size_t len)
{
    size_t i = len;
    while (i > 0 && path[i - 1] != '/')
        i--;
    /* i is just after the last '/'; the parent of "/a" is "/" (length 1). */
    return i > 1 ? i - 1 : 1;
}

/* Find or create path (and its missing ancestors). */
static struct pnode *ptree_ensure(struct ptree *pt, const char *path, size_t len,
                                  bool with_value)
{
    struct pnode *n = ptree_lookup(pt, path, len);
    if (n != NULL)
        return n;
    struct pnode *parent = ptree_ensure(pt, path, parent_len(path, len), with_value);
    n = pnode_new(path, len, parent);
    if (with_value)
        n->value = xstrdup("");
    ptree_map_add(pt, n);
    return n;
}

static void pnode_detach(struct pnode *n)
{
    struct pnode *p = n->parent;
    if (p == NULL)
        return;
    struct pnode *last = p->kids[p->n_kids - 1];
    p->kids[n->index] = last;
    last->index = n->index;
    p->n_kids--;
    n->parent = NULL;
}

static void watches_free(struct xwatch *w)
{
    while (w != NULL) {
        struct xwatch *next = w->next;
        free(w->token);
        free(w);
        w = next;
    }
}

/* Free n and its subtree, removing them from the map (n must be detached); pt NULL when
 * the whole map is going away anyway. */
static void ptree_free_subtree(struct ptree *pt, struct pnode *n)
{
    for (size_t i = 0; i < n->n_kids; i++)
        ptree_free_subtree(pt, n->kids[i]);
    if (pt != NULL)
        ptree_map_del(pt, n);
    free(n->kids);
    free(n->value);
    watches_free(n->watches);
    free(n->path);
    free(n);
}

static void ptree_destroy(struct ptree *pt)
{
    if (pt->root != NULL)
        ptree_free_subtree(NULL, pt->root);
    free(pt->slots);
    pt->slots = NULL;
    pt->root = NULL;
}

static int cmp_node_name(const void *a, const void *b)
{
    const struct pnode *x = *(struct pnode *const *)a;
    const struct pnode *y = *(struct pnode *const *)b;
    return strcmp(x->name, y->name);
}

/* A sorted copy of n's children (caller frees the array). */
static struct pnode **sorted_kids(const struct pnode *n)
{
    struct pnode **v = xcalloc(n->n_kids + 1, sizeof(*v));
    if (n->n_kids > 0) {
        memcpy(v, n->kids, n->n_kids * sizeof(*v));
        qsort(v, n->n_kids, sizeof(*v), cmp_node_name);
    }
    return v;
}

/* ---- the tree ---- */

int xstree_check_path(const char *path)
{
    if (path == NULL || path[0] != '/')
        return -EINVAL;
    size_t len = strlen(path);
    if (len > XSTREE_PATH_MAX)
        return -EINVAL;
    if (len == 1)
        return 0;
    if (path[len - 1] == '/')
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '/') {
            if (i > 0 && path[i - 1] == '/')
                return -EINVAL;
        } else if (!isalnum(c) && c != '-' && c != '_' && c != '@') {
            /* The characters xenstored accepts in node names. */
            return -EINVAL;
        }
    }
    return 0;
}

struct xstree *xstree_new(void)
{
    struct xstree *t = xcalloc(1, sizeof(*t));
    ptree_init(&t->data, true);
    ptree_init(&t->watches, false);
    t->queue_limit = XSTREE_DEFAULT_QUEUE_LIMIT;
    t->next_watch_id = 1;
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return t;
}

static void events_clear(struct xstree *t)
{
    struct xevent *e = t->head;
    while (e != NULL) {
        struct xevent *next = e->next;
        free(e->path);
        free(e->token);
        free(e);
        e = next;
    }
    t->head = t->tail = NULL;
    t->n_events = 0;
}

static void efd_arm(struct xstree *t)
{
    if (t->efd_armed || t->efd < 0)
        return;
    uint64_t one = 1;
    if (write(t->efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
        t->efd_armed = true;
}

static void efd_drain(struct xstree *t)
{
    if (!t->efd_armed || t->efd < 0)
        return;
    uint64_t v;
    if (read(t->efd, &v, sizeof(v)) < 0) {
        /* EAGAIN: already drained; nothing else can go wrong with an eventfd. */
    }
    t->efd_armed = false;
}

static void special_free(struct swatch *s)
{
    while (s != NULL) {
        struct swatch *next = s->next;
        free(s->path);
        free(s->w.token);
        free(s);
        s = next;
    }
}

void xstree_free(struct xstree *t)
{
    if (t == NULL)
        return;
    ptree_destroy(&t->data);
    ptree_destroy(&t->watches);
    special_free(t->special);
    events_clear(t);
    if (t->efd >= 0)
        close(t->efd);
    free(t);
}

const char *xstree_get(struct xstree *t, const char *path)
{
    if (xstree_check_path(path) < 0)
        return NULL;
    struct pnode *n = ptree_lookup(&t->data, path, strlen(path));
    return n ? n->value : NULL;
}

int xstree_read(struct xstree *t, const char *path, char **value)
{
    if (xstree_check_path(path) < 0)
        return -EINVAL;
    struct pnode *n = ptree_lookup(&t->data, path, strlen(path));
    if (n == NULL)
        return -ENOENT;
    *value = xstrdup(n->value);
    return 0;
}

bool xstree_exists(struct xstree *t, const char *path)
{
    return xstree_get(t, path) != NULL;
}

uint64_t xstree_generation(const struct xstree *t)
{
    return t->generation;
}

void xstree_set_generation(struct xstree *t, uint64_t gen)
{
    t->generation = gen;
}

static void enqueue(struct xstree *t, const char *path, const struct xwatch *w)
{
    if (t->overflow)
        return;
    if (t->n_events >= t->queue_limit) {
        /* The reader is told once and rebuilds; what is queued is now moot. */
        t->overflow = true;
        events_clear(t);
        efd_arm(t);
        return;
    }
    struct xevent *e = xcalloc(1, sizeof(*e));
    e->path = xstrdup(path);
    e->token = xstrdup(w->token);
    e->watch_id = w->id;
    if (t->tail != NULL)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    t->n_events++;
    efd_arm(t);
}

static void fire_node(struct xstree *t, const struct pnode *wn, const char *path)
{
    for (const struct xwatch *w = wn->watches; w != NULL; w = w->next)
        enqueue(t, path, w);
}

/* Fire the watches on path and on each of its ancestors, with event path `path`. */
static void fire_ancestors(struct xstree *t, const char *path)
{
    size_t len = strlen(path);
    fire_node(t, t->watches.root, path);
    for (size_t i = 2; i <= len; i++) { /* i = 1 would be the root again */
        if (i == len || path[i] == '/') {
            struct pnode *wn = ptree_lookup(&t->watches, path, i);
            if (wn == NULL)
                return; /* no watch trie node: nothing deeper is watched either */
            fire_node(t, wn, path);
        }
    }
}

/* Fire every watch strictly below wn, each with its own path (an ancestor was removed). */
static void fire_below(struct xstree *t, const struct pnode *wn)
{
    for (size_t i = 0; i < wn->n_kids; i++) {
        const struct pnode *k = wn->kids[i];
        fire_node(t, k, k->path);
        fire_below(t, k);
    }
}

int xstree_write(struct xstree *t, const char *path, const char *value)
{
    if (xstree_check_path(path) < 0 || value == NULL)
        return -EINVAL;
    struct pnode *n = ptree_ensure(&t->data, path, strlen(path), true);
    char *v = xstrdup(value);
    free(n->value);
    n->value = v;
    t->generation++;
    fire_ancestors(t, path);
    return 0;
}

int xstree_rm(struct xstree *t, const char *path)
{
    if (xstree_check_path(path) < 0)
        return -EINVAL;
    size_t len = strlen(path);
    if (len == 1)
        return -EINVAL; /* xenstored refuses to remove the root */
    struct pnode *n = ptree_lookup(&t->data, path, len);
    if (n == NULL)
        return 0;
    pnode_detach(n);
    ptree_free_subtree(&t->data, n);
    t->generation++;
    fire_ancestors(t, path);
    struct pnode *wn = ptree_lookup(&t->watches, path, len);
    if (wn != NULL)
        fire_below(t, wn);
    return 0;
}

int xstree_directory(struct xstree *t, const char *path, char ***entries, size_t *n)
{
    if (xstree_check_path(path) < 0)
        return -EINVAL;
    struct pnode *node = ptree_lookup(&t->data, path, strlen(path));
    if (node == NULL)
        return -ENOENT;
    struct pnode **kids = sorted_kids(node);
    char **v = xcalloc(node->n_kids + 1, sizeof(*v));
    for (size_t i = 0; i < node->n_kids; i++)
        v[i] = xstrdup(kids[i]->name);
    free(kids);
    *entries = v;
    *n = node->n_kids;
    return 0;
}

static void walk_node(struct pnode *n, size_t index, const struct xstree_walker *w, void *ctx)
{
    w->enter(ctx, n->name, n->value, index, n->n_kids);
    if (n->n_kids > 0) {
        struct pnode **kids = sorted_kids(n);
        for (size_t i = 0; i < n->n_kids; i++)
            walk_node(kids[i], i, w, ctx);
        free(kids);
    }
    w->leave(ctx, n->n_kids);
}

void xstree_walk(struct xstree *t, const struct xstree_walker *w, void *ctx)
{
    walk_node(t->data.root, 0, w, ctx);
}

/* ---- watches ---- */

static bool is_special(const char *path)
{
    return path != NULL && path[0] == '@';
}

static struct xwatch *watch_new(struct xstree *t, const char *token)
{
    struct xwatch *w = xcalloc(1, sizeof(*w));
    w->token = xstrdup(token);
    w->id = t->next_watch_id++;
    return w;
}

int xstree_watch(struct xstree *t, const char *path, const char *token)
{
    if (token == NULL)
        return -EINVAL;
    if (is_special(path)) {
        if (strcmp(path, "@introduceDomain") != 0 && strcmp(path, "@releaseDomain") != 0)
            return -EINVAL;
        for (struct swatch *s = t->special; s != NULL; s = s->next)
            if (strcmp(s->path, path) == 0 && strcmp(s->w.token, token) == 0)
                return -EEXIST;
        struct swatch *s = xcalloc(1, sizeof(*s));
        s->path = xstrdup(path);
        s->w.token = xstrdup(token);
        s->w.id = t->next_watch_id++;
        s->next = t->special;
        t->special = s;
        t->n_watches++;
        enqueue(t, path, &s->w);
        return 0;
    }
    if (xstree_check_path(path) < 0)
        return -EINVAL;
    struct pnode *wn = ptree_ensure(&t->watches, path, strlen(path), false);
    struct xwatch **pp = &wn->watches;
    for (; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->token, token) == 0)
            return -EEXIST;
    struct xwatch *w = watch_new(t, token);
    *pp = w; /* appended: watches on one path fire in registration order */
    t->n_watches++;
    enqueue(t, path, w);
    return 0;
}

static void purge_events(struct xstree *t, uint64_t watch_id)
{
    struct xevent **pp = &t->head;
    t->tail = NULL;
    while (*pp != NULL) {
        struct xevent *e = *pp;
        if (e->watch_id == watch_id) {
            *pp = e->next;
            free(e->path);
            free(e->token);
            free(e);
            t->n_events--;
        } else {
            t->tail = e;
            pp = &e->next;
        }
    }
    if (t->n_events == 0 && !t->overflow)
        efd_drain(t);
}

/* Remove trie nodes that hold no watch and lead to none. */
static void prune(struct xstree *t, struct pnode *wn)
{
    while (wn != NULL && wn != t->watches.root && wn->watches == NULL && wn->n_kids == 0) {
        struct pnode *parent = wn->parent;
        pnode_detach(wn);
        ptree_free_subtree(&t->watches, wn);
        wn = parent;
    }
}

int xstree_unwatch(struct xstree *t, const char *path, const char *token)
{
    if (token == NULL || path == NULL)
        return -EINVAL;
    if (is_special(path)) {
        for (struct swatch **pp = &t->special; *pp != NULL; pp = &(*pp)->next) {
            struct swatch *s = *pp;
            if (strcmp(s->path, path) == 0 && strcmp(s->w.token, token) == 0) {
                *pp = s->next;
                purge_events(t, s->w.id);
                s->next = NULL;
                special_free(s);
                t->n_watches--;
                return 0;
            }
        }
        return -ENOENT;
    }
    if (xstree_check_path(path) < 0)
        return -EINVAL;
    struct pnode *wn = ptree_lookup(&t->watches, path, strlen(path));
    if (wn == NULL)
        return -ENOENT;
    for (struct xwatch **pp = &wn->watches; *pp != NULL; pp = &(*pp)->next) {
        struct xwatch *w = *pp;
        if (strcmp(w->token, token) == 0) {
            *pp = w->next;
            purge_events(t, w->id);
            w->next = NULL;
            watches_free(w);
            t->n_watches--;
            prune(t, wn);
            return 0;
        }
    }
    return -ENOENT;
}

void xstree_fire_special(struct xstree *t, const char *special)
{
    /* Registration order: the list is newest first, so walk it into a small array. */
    size_t n = 0;
    for (struct swatch *s = t->special; s != NULL; s = s->next)
        n++;
    if (n == 0)
        return;
    struct swatch **v = xcalloc(n, sizeof(*v));
    size_t i = n;
    for (struct swatch *s = t->special; s != NULL; s = s->next)
        v[--i] = s;
    for (i = 0; i < n; i++)
        if (strcmp(v[i]->path, special) == 0)
            enqueue(t, special, &v[i]->w);
    free(v);
}

int xstree_read_watch(struct xstree *t, struct backend_watch_event *ev)
{
    if (t->overflow) {
        t->overflow = false;
        events_clear(t);
        efd_drain(t);
        return BACKEND_EOVERFLOW;
    }
    struct xevent *e = t->head;
    if (e == NULL) {
        efd_drain(t);
        return 0;
    }
    t->head = e->next;
    if (t->head == NULL)
        t->tail = NULL;
    t->n_events--;
    ev->path = e->path;
    ev->token = e->token;
    free(e);
    if (t->n_events == 0)
        efd_drain(t);
    return 1;
}

int xstree_watch_fd(struct xstree *t)
{
    return t->efd;
}

void xstree_set_watch_queue_limit(struct xstree *t, size_t limit)
{
    t->queue_limit = limit;
}

void xstree_drop_watches(struct xstree *t)
{
    ptree_destroy(&t->watches);
    ptree_init(&t->watches, false);
    special_free(t->special);
    t->special = NULL;
    t->n_watches = 0;
    events_clear(t);
    t->overflow = false;
    efd_drain(t);
}
