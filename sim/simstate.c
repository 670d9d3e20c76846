/* SPDX-License-Identifier: LGPL-2.1-only */
/* Saving and loading the simulated host (--sim-state): one JSON file, replaced atomically. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sim/sim.h"
#include "sim/simspec.h"
#include "sim/simworld.h"
#include "sim/xstree.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"

/*
 * The file: { "format": "squeezed-sim-state", "version": 1, "name", "now_ms", "host":
 * {total_kib, free_kib, scrub_kib}, "xs_generation", "domains": [ every field of the
 * domain's record ], "violations": [text], "xenstore": NODE }, where NODE is a leaf's
 * value as a string, or [VALUE, { child name: NODE, ... }], and VALUE is a string or,
 * for a value that is not UTF-8, {"hex": "..."}. Nesting keeps big worlds small: a path
 * prefix is written once. Watches are not saved: a restarted daemon registers its own.
 *
 * Writing goes through a plain buffer rather than a jansson tree: a 32,000-domain world
 * has some 400,000 nodes.
 *
 * The journal, <file>.journal: a first line {"journal": EPOCH}, then one line per change
 * (one call into the world): {"now_ms", "free_kib", "scrub_kib", "xs_generation",
 * "xs": [[path, VALUE] or [path] (removed), ... in order], "domains": [records of the
 * domains that changed], "gone": [domids destroyed], "violations": [new lines]}. A line
 * is written with one write(2); loading applies the lines in order and stops at the
 * first one that is not a whole JSON object ending in a newline (a torn append).
 * The file carries "journal_epoch"; a journal of another epoch is left unapplied: a
 * compaction writes the file with a new epoch, then resets the journal, so a crash
 * in between leaves records the file already holds.
 */

#define JOURNAL_MIN_COMPACT_BYTES ((size_t)8 << 20) /* compact past max(this, 2 x file) */
#define JOURNAL_SYNC_MS 1000                        /* unsynced records at most this old */

#define STATE_FORMAT "squeezed-sim-state"
#define STATE_VERSION 1

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = xreallocarray(b->p, cap, 1);
    b->cap = cap;
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *t = xvasprintf(fmt, ap);
    va_end(ap);
    sb_put(b, t, strlen(t));
    free(t);
}

/* A double that reads back exactly. */
static void sb_double(struct sbuf *b, double v)
{
    sb_printf(b, "%.17g", v);
}

/* Strict UTF-8 (what jansson accepts back): no overlongs, surrogates or > U+10FFFF. */
static bool utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

/* s as a JSON string; s must be valid UTF-8. */
static void sb_str(struct sbuf *b, const char *s)
{
    sb_reserve(b, strlen(s) + 2);
    b->p[b->len++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void hex_encode(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool hex_decode(const char *s, uint8_t *b, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return false;
        if (i % 2 == 0)
            b[i / 2] = (uint8_t)(v << 4);
        else
            b[i / 2] |= (uint8_t)v;
    }
    return true;
}

/* A xenstore value: a JSON string, or {"hex": ...} when it is not UTF-8. */
static void sb_value(struct sbuf *b, const char *v)
{
    if (utf8_valid((const unsigned char *)v)) {
        sb_str(b, v);
        return;
    }
    size_t n = strlen(v);
    char *hex = xmalloc(2 * n + 1);
    hex_encode((const uint8_t *)v, n, hex);
    sb_puts(b, "{\"hex\":\"");
    sb_puts(b, hex);
    sb_puts(b, "\"}");
    free(hex);
}

static void save_enter(void *ctx, const char *name, const char *value, size_t index,
                       size_t n_children)
{
    struct sbuf *b = ctx;
    if (index > 0)
        sb_put(b, ",", 1);
    if (name[0] != '\0') {
        sb_str(b, name);
        sb_put(b, ":", 1);
    }
    if (n_children == 0 && utf8_valid((const unsigned char *)value)) {
        sb_str(b, value);
        return;
    }
    sb_put(b, "[", 1);
    sb_value(b, value);
    sb_put(b, ",{", 2);
    if (n_children == 0)
        sb_put(b, "}]", 2);
}

static void save_leave(void *ctx, size_t n_children)
{
    if (n_children > 0)
        sb_put(ctx, "}]", 2);
}

static void save_balloon(struct sbuf *b, const struct sim_balloon *bl)
{
    sb_printf(b, "{\"model\":\"%s\",\"rate_kib_s\":", sim_balloon_model_name(bl->model));
    sb_double(b, bl->rate_kib_s);
    sb_printf(b, ",\"stop_short_kib\":%" PRId64, bl->stop_short_kib);
    if (bl->model == SIM_BALLOON_FLOOR)
        sb_printf(b, ",\"floor_kib\":%" PRId64, bl->floor_kib);
    if (bl->model == SIM_BALLOON_CEILING)
        sb_printf(b, ",\"ceiling_kib\":%" PRId64, bl->ceiling_kib);
    if (bl->model == SIM_BALLOON_INTERMITTENT) {
        sb_puts(b, ",\"period_s\":");
        sb_double(b, bl->period_s);
    }
    sb_put(b, "}", 1);
}

static void save_domain(struct sbuf *b, const struct sim_dom *d)
{
    char handle[33];
    hex_encode(d->handle, sizeof(d->handle), handle);
    sb_printf(b,
              "{\"domid\":%u,\"type\":\"%s\",\"tot_kib\":%" PRId64 ",\"max_kib\":%" PRId64
              ",\"memory_offset_kib\":%" PRId64 ",\"initial_reservation_kib\":%" PRId64
              ",\"booted\":%s,\"created_ms\":%" PRId64 ",\"shadow_mib\":%u,\"handle\":\"%s\""
              ",\"free_limited\":%s,\"boot_after_s\":",
              d->domid, domain_type_name(d->type), d->tot_kib, d->max_kib, d->memory_offset_kib,
              d->initial_reservation_kib, d->booted ? "true" : "false", d->created_ms,
              d->shadow_mib, handle, d->free_limited ? "true" : "false");
    sb_double(b, d->boot_after_s);
    sb_puts(b, ",\"frac_kib\":");
    sb_double(b, d->frac_kib);
    sb_printf(b, ",\"claim_kib\":%" PRId64 ",\"paused\":%s", d->claim_kib,
              d->paused ? "true" : "false");
    sb_puts(b, ",\"balloon\":");
    save_balloon(b, &d->balloon);
    sb_put(b, "}", 1);
}

struct simjournal {
    int fd;           /* the journal, O_APPEND */
    char *path;       /* <state file>.journal */
    uint64_t epoch;   /* the state file's journal_epoch */
    size_t size;      /* bytes in the journal */
    size_t base_size; /* bytes of the last full save */
    struct sbuf xs;   /* the "xs" items of the record being gathered */
    bool xs_durable;  /* a reservation node is among them */
    uint32_t *dirty;  /* domids changed or destroyed since the last record */
    size_t n_dirty, cap_dirty;
    size_t violations_saved; /* violations already in the file or journal */
    bool unsynced;
    int64_t synced_wall_ms;
    bool failed; /* an append failed: the next commit saves in full */
};

static void save_world(struct sim *s, struct sbuf *b)
{
    sb_printf(b, "{\"format\":\"%s\",\"version\":%d,\"journal_epoch\":%" PRIu64 ",\"name\":",
              STATE_FORMAT, STATE_VERSION, s->journal != NULL ? s->journal->epoch : 0);
    sb_str(b, s->name);
    sb_printf(b,
              ",\n\"now_ms\":%" PRId64 ",\"host\":{\"total_kib\":%" PRId64
              ",\"free_kib\":%" PRId64 ",\"scrub_kib\":%" PRId64 "},\"xs_generation\":%" PRIu64
              ",\n\"domains\":[",
              s->now_ms, s->total_kib, s->free_kib, s->scrub_kib, xstree_generation(s->xs));
    for (size_t i = 0; i < s->n_doms; i++) {
        if (i > 0)
            sb_puts(b, ",\n");
        save_domain(b, s->doms[i]);
    }
    sb_puts(b, "],\n\"violations\":[");
    for (size_t i = 0; i < s->n_violations; i++) {
        if (i > 0)
            sb_put(b, ",", 1);
        sb_str(b, s->violations[i]);
    }
    sb_puts(b, "],\n\"xenstore\":");
    const struct xstree_walker w = {.enter = save_enter, .leave = save_leave};
    xstree_walk(s->xs, &w, b);
    sb_puts(b, "}\n");
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* A new file next to path, created with O_EXCL|O_NOFOLLOW (never an existing file or a
 * planted link), mode 0600. *tmp_out is its name. */
static int create_temp(const char *path, char **tmp_out)
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
            r = (uint64_t)clock_monotonic_ms() * 2654435761u + (uint64_t)tries;
        char *tmp = xasprintf("%s.tmp.%016" PRIx64, path, r);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        int e = errno;
        free(tmp);
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

/* fsync the directory holding path (a rename or a creation in it is then durable). */
static int sync_dir(const char *path)
{
    char *copy = xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int journal_reset(struct simjournal *j);

int sim_save(struct sim *s, const char *path)
{
    int rc = 0;
    int fd = -1;
    char *tmp = NULL;
    struct sbuf b = {0};
    bool compaction =
        s->journal != NULL && s->state_file != NULL && strcmp(path, s->state_file) == 0;
    uint64_t old_epoch = compaction ? s->journal->epoch : 0;
    if (compaction)
        s->journal->epoch++;
    save_world(s, &b);
    fd = create_temp(path, &tmp);
    if (fd < 0) {
        rc = fd;
        fd = -1;
        goto out;
    }
    if ((rc = write_all(fd, b.p, b.len)) < 0)
        goto out;
    /* The rename must never expose a file whose data is not yet on disk. */
    if (fsync(fd) < 0) {
        rc = -errno;
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto out;
    }
    free(tmp);
    tmp = NULL;
    if ((rc = sync_dir(path)) < 0)
        goto out;
    if (compaction) {
        struct simjournal *j = s->journal;
        j->base_size = b.len;
        j->violations_saved = s->n_violations;
        j->xs.len = 0;
        j->xs_durable = false;
        for (size_t i = 0; i < j->n_dirty; i++) {
            struct sim_dom *d = simworld_dom_find(s, j->dirty[i]);
            if (d != NULL)
                d->journal_dirty = false;
        }
        j->n_dirty = 0;
        /* The file now holds everything: a journal of the old epoch is ignored on load
         * even if the reset below does not happen. */
        rc = journal_reset(j);
        j->failed = rc < 0;
    }
out:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    if (rc < 0 && compaction && s->journal->epoch != old_epoch && !s->journal->failed)
        s->journal->failed = true; /* the next commit tries a full save again */
    free(b.p);
    return rc;
}

/* ---- the journal ------------------------------------------------------------------------ */

/* Empty the journal and write its first line (the epoch), durably. */
static int journal_reset(struct simjournal *j)
{
    char head[64];
    int n = snprintf(head, sizeof(head), "{\"journal\":%" PRIu64 "}\n", j->epoch);
    if (ftruncate(j->fd, 0) < 0)
        return -errno;
    int rc = write_all(j->fd, head, (size_t)n);
    if (rc < 0)
        return rc;
    if (fdatasync(j->fd) < 0)
        return -errno;
    j->size = (size_t)n;
    j->unsynced = false;
    j->synced_wall_ms = wall_ms();
    return 0;
}

void simjournal_close(struct simjournal *j)
{
    if (j == NULL)
        return;
    if (j->fd >= 0) {
        if (j->unsynced && fdatasync(j->fd) < 0)
            log_warn("sim: %s", j->path);
        close(j->fd);
    }
    free(j->path);
    free(j->xs.p);
    free(j->dirty);
    free(j);
}

/* Open (or create) the journal file: never through a symbolic link, a regular file. */
static int open_journal_file(const char *jpath, int flags)
{
    int fd = open(jpath, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == ELOOP ? -ELOOP : -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    return fd;
}

int simjournal_open(struct sim *s, const char *path)
{
    struct simjournal *j = xcalloc(1, sizeof(*j));
    j->path = xasprintf("%s.journal", path);
    j->fd = open_journal_file(j->path, O_RDWR | O_CREAT | O_APPEND);
    if (j->fd < 0) {
        int rc = j->fd;
        j->fd = -1;
        simjournal_close(j);
        return rc;
    }
    j->epoch = s->journal_epoch_loaded;
    s->journal = j;
    for (size_t i = 0; i < s->n_doms; i++)
        s->doms[i]->journal_dirty = false;
    /* A full save with a new epoch, then an empty journal. */
    return sim_save(s, path);
}

void simjournal_note_dom(struct sim *s, struct sim_dom *d)
{
    struct simjournal *j = s->journal;
    if (j == NULL || d == NULL || d->journal_dirty)
        return;
    d->journal_dirty = true;
    if (j->n_dirty == j->cap_dirty) {
        j->cap_dirty = j->cap_dirty ? 2 * j->cap_dirty : 64;
        j->dirty = xreallocarray(j->dirty, j->cap_dirty, sizeof(*j->dirty));
    }
    j->dirty[j->n_dirty++] = d->domid;
}

void simjournal_note_gone(struct sim *s, uint32_t domid)
{
    struct simjournal *j = s->journal;
    if (j == NULL)
        return;
    if (j->n_dirty == j->cap_dirty) {
        j->cap_dirty = j->cap_dirty ? 2 * j->cap_dirty : 64;
        j->dirty = xreallocarray(j->dirty, j->cap_dirty, sizeof(*j->dirty));
    }
    j->dirty[j->n_dirty++] = domid;
}

void simjournal_note_xs(struct sim *s, const char *path, const char *value)
{
    struct simjournal *j = s->journal;
    if (j == NULL)
        return;
    if (j->xs.len > 0)
        sb_put(&j->xs, ",", 1);
    sb_put(&j->xs, "[", 1);
    sb_str(&j->xs, path); /* paths are checked ASCII */
    if (value != NULL) {
        sb_put(&j->xs, ",", 1);
        sb_value(&j->xs, value);
    }
    sb_put(&j->xs, "]", 1);
    if (strncmp(path, "/squeezed/", 10) == 0 || strcmp(path, "/squeezed") == 0)
        j->xs_durable = true;
}

int simjournal_commit(struct sim *s, bool durable)
{
    struct simjournal *j = s->journal;
    if (j == NULL)
        return 0;
    if (j->failed || j->fd < 0) {
        /* An earlier append failed: only a full save brings the file back in step. */
        int rc = sim_save(s, s->state_file);
        return rc < 0 ? rc : 0;
    }
    struct sbuf b = {0};
    sb_printf(&b,
              "{\"now_ms\":%" PRId64 ",\"free_kib\":%" PRId64 ",\"scrub_kib\":%" PRId64
              ",\"xs_generation\":%" PRIu64 ",\"xs\":[",
              s->now_ms, s->free_kib, s->scrub_kib, xstree_generation(s->xs));
    if (j->xs.len > 0)
        sb_put(&b, j->xs.p, j->xs.len);
    sb_puts(&b, "],\"domains\":[");
    bool first = true;
    for (size_t i = 0; i < j->n_dirty; i++) {
        struct sim_dom *d = simworld_dom_find(s, j->dirty[i]);
        if (d == NULL || !d->journal_dirty)
            continue;
        if (!first)
            sb_put(&b, ",", 1);
        first = false;
        save_domain(&b, d);
        d->journal_dirty = false;
    }
    sb_puts(&b, "],\"gone\":[");
    first = true;
    for (size_t i = 0; i < j->n_dirty; i++) {
        if (simworld_dom_find(s, j->dirty[i]) != NULL)
            continue;
        sb_printf(&b, "%s%" PRIu32, first ? "" : ",", j->dirty[i]);
        first = false;
    }
    sb_puts(&b, "],\"violations\":[");
    for (size_t i = j->violations_saved; i < s->n_violations; i++) {
        if (i > j->violations_saved)
            sb_put(&b, ",", 1);
        sb_str(&b, s->violations[i]);
    }
    sb_puts(&b, "]}\n");
    bool must_sync = durable || j->xs_durable;
    j->xs.len = 0;
    j->xs_durable = false;
    j->n_dirty = 0;
    j->violations_saved = s->n_violations;

    int rc = write_all(j->fd, b.p, b.len);
    free(b.p);
    if (rc < 0) {
        j->failed = true;
        return rc;
    }
    j->size += b.len;
    j->unsynced = true;
    if (j->size > JOURNAL_MIN_COMPACT_BYTES && j->size > 2 * j->base_size)
        return sim_save(s, s->state_file) < 0 ? -EIO : 0;
    if (must_sync || wall_ms() - j->synced_wall_ms >= JOURNAL_SYNC_MS)
        return sim_flush(s);
    return 0;
}

int sim_flush(struct sim *s)
{
    struct simjournal *j = s->journal;
    if (j == NULL)
        return s->state_file != NULL ? -EIO : 0;
    if (j->failed && simjournal_commit(s, true) < 0)
        return -EIO;
    if (!j->unsynced)
        return 0;
    if (fdatasync(j->fd) < 0) {
        j->failed = true;
        return -errno;
    }
    j->unsynced = false;
    j->synced_wall_ms = wall_ms();
    return 0;
}

/* Strict readers for the state file: *err names the field. */
static bool load_int(const json_t *o, const char *key, int64_t *out, const char *where,
                     char **err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        *err = xasprintf("%s.%s: missing or not an integer", where, key);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static bool load_num(const json_t *o, const char *key, double *out, const char *where,
                     char **err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) {
        *err = xasprintf("%s.%s: missing or not a number", where, key);
        return false;
    }
    *out = json_number_value(v);
    return true;
}

static bool load_bool(const json_t *o, const char *key, bool *out, const char *where,
                      char **err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v)) {
        *err = xasprintf("%s.%s: missing or not a boolean", where, key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

static bool load_domain(struct sim *s, const json_t *o, const char *where, char **err)
{
    int64_t domid, tot, max, off, initres, created, shadow;
    double boot_after, frac;
    bool booted, free_limited;
    enum domain_type type;
    uint8_t handle[16];
    struct sim_balloon b;

    if (!json_is_object(o)) {
        *err = xasprintf("%s: not an object", where);
        return false;
    }
    if (!load_int(o, "domid", &domid, where, err) ||
        !load_int(o, "tot_kib", &tot, where, err) ||
        !load_int(o, "max_kib", &max, where, err) ||
        !load_int(o, "memory_offset_kib", &off, where, err) ||
        !load_int(o, "initial_reservation_kib", &initres, where, err) ||
        !load_int(o, "created_ms", &created, where, err) ||
        !load_int(o, "shadow_mib", &shadow, where, err) ||
        !load_num(o, "boot_after_s", &boot_after, where, err) ||
        !load_num(o, "frac_kib", &frac, where, err) ||
        !load_bool(o, "booted", &booted, where, err) ||
        !load_bool(o, "free_limited", &free_limited, where, err))
        return false;
    if (domid < 0 || domid > LIMIT_DOMID_MAX || simworld_dom_find(s, (uint32_t)domid) != NULL) {
        *err = xasprintf("%s.domid: bad or duplicate domid %lld", where, (long long)domid);
        return false;
    }
    if (tot < 0 || max < 0 || off < 0 || initres < 0 || shadow < 0 || shadow > UINT32_MAX) {
        *err = xasprintf("%s: negative or absurd size", where);
        return false;
    }
    const char *tname = json_string_value(json_object_get(o, "type"));
    if (domain_type_parse(tname, &type) < 0) {
        *err = xasprintf("%s.type: missing or unknown", where);
        return false;
    }
    const char *hex = json_string_value(json_object_get(o, "handle"));
    if (hex == NULL || !hex_decode(hex, handle, sizeof(handle))) {
        *err = xasprintf("%s.handle: missing or not 32 hex digits", where);
        return false;
    }
    char *bwhere = xasprintf("%s.balloon", where);
    int rc = sim_balloon_from_json(json_object_get(o, "balloon"), bwhere, &b, err);
    free(bwhere);
    if (rc < 0)
        return false;

    struct sim_dom *d = simworld_dom_insert(s, (uint32_t)domid);
    d->type = type;
    d->tot_kib = tot;
    d->max_kib = max;
    d->memory_offset_kib = off;
    d->initial_reservation_kib = initres;
    d->boot_after_s = boot_after;
    d->booted = booted;
    d->created_ms = created;
    d->shadow_mib = (uint32_t)shadow;
    memcpy(d->handle, handle, sizeof(handle));
    d->balloon = b;
    d->frac_kib = frac;
    d->free_limited = free_limited;
    /* Absent from files saved before claims and pausing were modelled. */
    int64_t claim = 0;
    bool paused = false;
    if (json_object_get(o, "claim_kib") != NULL &&
        !load_int(o, "claim_kib", &claim, where, err))
        return false;
    if (json_object_get(o, "paused") != NULL && !load_bool(o, "paused", &paused, where, err))
        return false;
    if (claim < 0 || claim > LIMIT_KIB_MAX) {
        *err = xasprintf("%s.claim_kib: negative or absurd", where);
        return false;
    }
    d->claim_kib = claim;
    d->paused = paused;
    s->claimed_kib += claim;
    simworld_dom_listed(s, d);
    return true;
}

struct pathbuf {
    char *p;
    size_t len, cap;
};

static void pb_set_len(struct pathbuf *pb, size_t len)
{
    pb->len = len;
    pb->p[len] = '\0';
}

static void pb_append(struct pathbuf *pb, const char *name)
{
    size_t n = strlen(name);
    if (pb->len + n + 2 > pb->cap) {
        pb->cap = (pb->len + n + 2) * 2;
        pb->p = xreallocarray(pb->p, pb->cap, 1);
    }
    if (pb->len != 1) /* not after the root "/" */
        pb->p[pb->len++] = '/';
    memcpy(pb->p + pb->len, name, n);
    pb_set_len(pb, pb->len + n);
}

/* A saved xenstore VALUE (a string or {"hex": ...}) as a new string; NULL if malformed. */
static char *decode_value(const json_t *value)
{
    const char *v = json_string_value(value);
    if (v != NULL)
        return xstrdup(v);
    const char *hex = json_string_value(json_object_get(value, "hex"));
    size_t n = hex ? strlen(hex) / 2 : 0;
    char *bytes = xmalloc(n + 1);
    if (hex == NULL || !hex_decode(hex, (uint8_t *)bytes, n) || memchr(bytes, 0, n)) {
        free(bytes);
        return NULL;
    }
    bytes[n] = '\0';
    return bytes;
}

/* One NODE of the saved tree at path pb (the root when pb is empty). */
static bool load_node(struct sim *s, const json_t *node, struct pathbuf *pb, char **err)
{
    bool root = pb->len == 0;
    if (root) {
        pb->cap = 64;
        pb->p = xmalloc(pb->cap);
        pb->p[0] = '/';
        pb_set_len(pb, 1);
    }
    const json_t *value = node, *kids = NULL;
    if (json_is_array(node)) {
        value = json_array_get(node, 0);
        kids = json_array_get(node, 1);
        if (json_array_size(node) != 2 || !json_is_object(kids)) {
            *err = xasprintf("xenstore %s: expected [value, {children}]", pb->p);
            return false;
        }
    }
    char *bytes = NULL;
    const char *v = json_string_value(value);
    if (v == NULL) {
        const char *hex = json_string_value(json_object_get(value, "hex"));
        size_t n = hex ? strlen(hex) / 2 : 0;
        bytes = xmalloc(n + 1);
        if (hex == NULL || !hex_decode(hex, (uint8_t *)bytes, n) || memchr(bytes, 0, n)) {
            free(bytes);
            *err = xasprintf("xenstore %s: a value is a string or {\"hex\": ...}", pb->p);
            return false;
        }
        bytes[n] = '\0';
        v = bytes;
    }
    int rc = xstree_write(s->xs, pb->p, v);
    free(bytes);
    if (rc < 0) {
        *err = xasprintf("xenstore %s: not a valid path", pb->p);
        return false;
    }
    if (kids == NULL)
        return true;
    const char *name;
    const json_t *kid;
    size_t len = pb->len;
    json_object_foreach((json_t *)kids, name, kid)
    {
        if (name[0] == '\0' || strchr(name, '/') != NULL) {
            *err = xasprintf("xenstore %s: bad child name '%s'", pb->p, name);
            return false;
        }
        pb_append(pb, name);
        bool ok = load_node(s, kid, pb, err);
        pb_set_len(pb, len);
        if (!ok)
            return false;
    }
    return true;
}

static bool state_from_json(struct sim *s, const json_t *root, char **err)
{
    int64_t version, now, total, free_kib, scrub, gen;
    if (!json_is_object(root)) {
        *err = xstrdup("not a JSON object");
        return false;
    }
    const json_t *je = json_object_get(root, "journal_epoch");
    s->journal_epoch_loaded = json_is_integer(je) && json_integer_value(je) > 0
                                  ? (uint64_t)json_integer_value(je)
                                  : 0;
    const char *format = json_string_value(json_object_get(root, "format"));
    if (format == NULL || strcmp(format, STATE_FORMAT) != 0) {
        *err = xstrdup("format: not a squeezed simulated-host state file");
        return false;
    }
    if (!load_int(root, "version", &version, "state", err))
        return false;
    if (version != STATE_VERSION) {
        *err = xasprintf("version: %lld is not supported (expected %d)", (long long)version,
                         STATE_VERSION);
        return false;
    }
    const json_t *host = json_object_get(root, "host");
    if (!load_int(root, "now_ms", &now, "state", err) ||
        !load_int(root, "xs_generation", &gen, "state", err) ||
        !load_int(host, "total_kib", &total, "host", err) ||
        !load_int(host, "free_kib", &free_kib, "host", err) ||
        !load_int(host, "scrub_kib", &scrub, "host", err))
        return false;
    if (now < 0 || total < 0 || free_kib < 0 || scrub < 0 || gen < 0) {
        *err = xstrdup("state: negative time or size");
        return false;
    }
    const char *name = json_string_value(json_object_get(root, "name"));
    s->name = xstrdup(name ? name : "unnamed");
    s->now_ms = now;
    s->total_kib = total;
    s->free_kib = free_kib;
    s->scrub_kib = scrub;

    struct pathbuf pb = {0};
    bool ok = load_node(s, json_object_get(root, "xenstore"), &pb, err);
    free(pb.p);
    if (!ok)
        return false;
    xstree_set_generation(s->xs, (uint64_t)gen);
    size_t i;

    const json_t *doms = json_object_get(root, "domains");
    if (!json_is_array(doms)) {
        *err = xstrdup("domains: missing or not an array");
        return false;
    }
    const json_t *o;
    json_array_foreach(doms, i, o)
    {
        char where[32];
        snprintf(where, sizeof(where), "domains[%zu]", i);
        if (!load_domain(s, o, where, err))
            return false;
    }

    const json_t *viol = json_object_get(root, "violations");
    if (!json_is_array(viol)) {
        *err = xstrdup("violations: missing or not an array");
        return false;
    }
    json_array_foreach(viol, i, o)
    {
        if (!json_is_string(o)) {
            *err = xasprintf("violations[%zu]: not a string", i);
            return false;
        }
        simworld_add_violation_text(s, xstrdup(json_string_value(o)));
    }
    return true;
}

/* Apply one journal record. */
static bool replay_record(struct sim *s, const json_t *rec, char **err)
{
    int64_t now, free_kib, scrub, gen;
    if (!json_is_object(rec) || !load_int(rec, "now_ms", &now, "record", err) ||
        !load_int(rec, "free_kib", &free_kib, "record", err) ||
        !load_int(rec, "scrub_kib", &scrub, "record", err) ||
        !load_int(rec, "xs_generation", &gen, "record", err)) {
        if (*err == NULL)
            *err = xstrdup("not an object");
        return false;
    }
    const json_t *xs = json_object_get(rec, "xs"), *doms = json_object_get(rec, "domains"),
                 *gone = json_object_get(rec, "gone"),
                 *viol = json_object_get(rec, "violations");
    if (!json_is_array(xs) || !json_is_array(doms) || !json_is_array(gone) ||
        !json_is_array(viol)) {
        *err = xstrdup("xs, domains, gone or violations missing");
        return false;
    }
    size_t i;
    const json_t *o;
    json_array_foreach(xs, i, o)
    {
        const char *path = json_string_value(json_array_get(o, 0));
        size_t n = json_array_size(o);
        if (path == NULL || xstree_check_path(path) < 0 || (n != 1 && n != 2)) {
            *err = xasprintf("xs[%zu]: expected [path] or [path, value]", i);
            return false;
        }
        if (n == 1) {
            (void)xstree_rm(s->xs, path); /* absent already: nothing to do */
            continue;
        }
        char *v = decode_value(json_array_get(o, 1));
        if (v == NULL || xstree_write(s->xs, path, v) < 0) {
            free(v);
            *err = xasprintf("xs[%zu]: bad value", i);
            return false;
        }
        free(v);
    }
    json_array_foreach(doms, i, o)
    {
        const json_t *id = json_object_get(o, "domid");
        if (json_is_integer(id) && json_integer_value(id) >= 0 &&
            json_integer_value(id) <= LIMIT_DOMID_MAX)
            simworld_dom_remove(s, (uint32_t)json_integer_value(id));
        char where[32];
        snprintf(where, sizeof(where), "domains[%zu]", i);
        if (!load_domain(s, o, where, err))
            return false;
    }
    json_array_foreach(gone, i, o)
    {
        if (json_is_integer(o) && json_integer_value(o) >= 0 &&
            json_integer_value(o) <= LIMIT_DOMID_MAX)
            simworld_dom_remove(s, (uint32_t)json_integer_value(o));
    }
    json_array_foreach(viol, i, o)
    {
        if (json_is_string(o))
            simworld_add_violation_text(s, xstrdup(json_string_value(o)));
    }
    if (now < 0 || free_kib < 0 || scrub < 0 || gen < 0) {
        *err = xstrdup("negative time or size");
        return false;
    }
    s->now_ms = now;
    s->free_kib = free_kib;
    s->scrub_kib = scrub;
    xstree_set_generation(s->xs, (uint64_t)gen);
    return true;
}

/* Apply path's journal (if any, of the file's epoch). A record that is torn or does not
 * parse ends the replay: it and what follows are dropped (and logged). -ELOOP if the
 * journal is a symbolic link; other errors reading it are returned too. */
static int replay_journal(struct sim *s, const char *path)
{
    char *jpath = xasprintf("%s.journal", path);
    char *buf = NULL;
    int rc = 0;
    int fd = open_journal_file(jpath, O_RDONLY);
    if (fd == -ENOENT)
        goto out;
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    size_t cap = (size_t)st.st_size, len = 0;
    buf = xmalloc(cap + 1);
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    size_t at = 0, records = 0;
    bool head = true;
    while (at < len) {
        char *nl = memchr(buf + at, '\n', len - at);
        if (nl == NULL) {
            log_warnx("sim: %s: dropping a torn last record (%zu bytes at offset %zu)", jpath,
                      len - at, at);
            break;
        }
        json_t *rec = json_loadb(buf + at, (size_t)(nl - (buf + at)), 0, NULL);
        char *why = NULL;
        bool ok = rec != NULL;
        if (ok && head) {
            const json_t *e = json_object_get(rec, "journal");
            if (!json_is_integer(e) ||
                (uint64_t)json_integer_value(e) != s->journal_epoch_loaded) {
                log_info("sim: %s is of another epoch than %s: left unapplied", jpath, path);
                json_decref(rec);
                break;
            }
        } else if (ok) {
            ok = replay_record(s, rec, &why);
        }
        json_decref(rec);
        if (!ok) {
            log_warnx("sim: %s: record at offset %zu %s%s; it and what follows are dropped",
                      jpath, at, why != NULL ? "is bad: " : "does not parse",
                      why != NULL ? why : "");
            free(why);
            break;
        }
        if (!head)
            records++;
        head = false;
        at = (size_t)(nl - buf) + 1;
    }
    if (records > 0)
        log_info("sim: %s: %zu records applied", jpath, records);
    /* Targets are read again from the replayed tree. */
    for (size_t i = 0; i < s->n_doms; i++)
        s->doms[i]->target_epoch = UINT64_MAX;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    free(jpath);
    return rc;
}

struct sim *sim_load(const char *path, enum sim_clock_mode clock, char **err)
{
    json_error_t jerr;
    char *why = NULL;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        /* Messages do not repeat the path: callers name the file themselves. */
        if (err != NULL)
            *err = jerr.line > 0
                       ? xasprintf("line %d, column %d: %s", jerr.line, jerr.column, jerr.text)
                       : xstrdup(jerr.text);
        return NULL;
    }
    struct sim *s = simworld_alloc(clock);
    bool ok = state_from_json(s, root, &why);
    json_decref(root);
    if (ok) {
        int rc = replay_journal(s, path);
        if (rc < 0) {
            why = xasprintf("%s.journal: %s", path,
                            rc == -ELOOP ? "is a symbolic link; refusing it" : strerror(-rc));
            ok = false;
        }
    }
    if (!ok) {
        if (err != NULL)
            *err = why;
        else
            free(why);
        sim_free(s);
        return NULL;
    }
    /* Time goes on from the saved instant. */
    s->origin_ms = clock_monotonic_ms() - s->now_ms;
    return s;
}
