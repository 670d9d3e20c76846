/* SPDX-License-Identifier: LGPL-2.1-only */
/* Scenario files for the simulated host (SPEC 6.1): parsing, defaults, validation. */
#include "sim/simspec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define DEFAULT_TARGET_KIB 1048576
#define DEFAULT_RATE_KIB_S 262144.0
#define DEFAULT_PERIOD_S 10.0
#define DEFAULT_HOST_TOTAL_KIB 16777216
#define DEFAULT_HOST_FREE_KIB 1048576

static const char *const model_names[] = {
    [SIM_BALLOON_IDEAL] = "ideal",
    [SIM_BALLOON_FLOOR] = "floor",
    [SIM_BALLOON_CEILING] = "ceiling",
    [SIM_BALLOON_STUCK] = "stuck",
    [SIM_BALLOON_INTERMITTENT] = "intermittent",
    [SIM_BALLOON_NONE] = "none",
};
#define N_MODELS (sizeof(model_names) / sizeof(model_names[0]))

const char *sim_balloon_model_name(enum sim_balloon_model m)
{
    if ((size_t)m < N_MODELS)
        return model_names[m];
    return "unknown";
}

/* Parse a model name; 0 or -EINVAL. */
static int simspec_model_parse(const char *name, enum sim_balloon_model *out)
{
    for (size_t i = 0; i < N_MODELS; i++) {
        if (strcmp(name, model_names[i]) == 0) {
            *out = (enum sim_balloon_model)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* "where.field", or "field" when where is NULL or empty (new string). */
static char *simspec_field(const char *where, const char *field)
{
    if (where == NULL || where[0] == '\0')
        return xstrdup(field);
    return xasprintf("%s.%s", where, field);
}

/* *err = "where.field: <fmt>"; returns -EINVAL. */
static int fail(char **err, const char *where, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char **err, const char *where, const char *field, const char *fmt, ...)
{
    if (err == NULL)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *name = field ? simspec_field(where, field)
                       : xstrdup(where && where[0] ? where : "(top level)");
    *err = xasprintf("%s: %s", name, msg);
    free(name);
    free(msg);
    return -EINVAL;
}

static int check_kib(int64_t v, const char *where, const char *field, char **err)
{
    if (v < 0)
        return fail(err, where, field, "negative size %lld", (long long)v);
    if (v > LIMIT_KIB_MAX)
        return fail(err, where, field, "%lld KiB is absurdly large (at most %lld)",
                    (long long)v, (long long)LIMIT_KIB_MAX);
    return 0;
}

int simspec_validate_balloon(const struct sim_balloon *b, const char *where, char **err)
{
    if ((size_t)b->model >= N_MODELS)
        return fail(err, where, "model", "unknown model %d", (int)b->model);
    if (!(isfinite(b->rate_kib_s) && b->rate_kib_s > 0))
        return fail(err, where, "rate_kib_s", "must be a positive number (got %g)",
                    b->rate_kib_s);
    int rc = check_kib(b->stop_short_kib, where, "stop_short_kib", err);
    if (rc < 0)
        return rc;
    if (b->model == SIM_BALLOON_FLOOR &&
        (rc = check_kib(b->floor_kib, where, "floor_kib", err)) < 0)
        return rc;
    if (b->model == SIM_BALLOON_CEILING && b->ceiling_kib < 0)
        return fail(err, where, "ceiling_kib", "negative size %lld", (long long)b->ceiling_kib);
    if (b->model == SIM_BALLOON_INTERMITTENT && !(isfinite(b->period_s) && b->period_s > 0))
        return fail(err, where, "period_s", "must be a positive number (got %g)", b->period_s);
    return 0;
}

int simspec_validate(const struct sim_domain_spec *d, const char *where, char **err)
{
    int rc;
    if (d->domid > LIMIT_DOMID_MAX)
        return fail(err, where, "domid", "%u out of range (0..%d)", d->domid, LIMIT_DOMID_MAX);
    if (d->type != DOMAIN_TYPE_PV && d->type != DOMAIN_TYPE_HVM &&
        d->type != DOMAIN_TYPE_PVINPVH)
        return fail(err, where, "type", "unknown type %d", (int)d->type);
    static const char *const names[] = {"dynamic_min_kib",
                                        "dynamic_max_kib",
                                        "target_kib",
                                        "actual_kib",
                                        "maxmem_kib",
                                        "memory_offset_kib",
                                        "initial_reservation_kib",
                                        "claim_kib"};
    const int64_t vals[] = {d->dynamic_min_kib,
                            d->dynamic_max_kib,
                            d->target_kib,
                            d->actual_kib,
                            d->maxmem_kib,
                            d->memory_offset_kib,
                            d->initial_reservation_kib,
                            d->claim_kib};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        if ((rc = check_kib(vals[i], where, names[i], err)) < 0)
            return rc;
    if (d->dynamic_min_kib > d->dynamic_max_kib)
        return fail(err, where, "dynamic_min_kib", "%lld is above dynamic_max_kib %lld",
                    (long long)d->dynamic_min_kib, (long long)d->dynamic_max_kib);
    /* Xen lets a domain hold up to its max pages: maxmem plus the per-type slack. */
    int64_t slack = domain_type_xen_offset_kib(d->type);
    if (d->actual_kib > d->maxmem_kib + slack)
        return fail(err, where, "actual_kib",
                    "%lld is above maxmem_kib %lld (+ %lld KiB %s slack): Xen would not "
                    "let the domain hold it",
                    (long long)d->actual_kib, (long long)d->maxmem_kib, (long long)slack,
                    domain_type_name(d->type));
    if (d->initial_reservation_kib > d->maxmem_kib + slack)
        return fail(err, where, "initial_reservation_kib",
                    "%lld is above maxmem_kib %lld (+ %lld KiB %s slack): the domain "
                    "could never finish booting",
                    (long long)d->initial_reservation_kib, (long long)d->maxmem_kib,
                    (long long)slack, domain_type_name(d->type));
    if (!(isfinite(d->boot_after_s) && d->boot_after_s >= 0))
        return fail(err, where, "boot_after_s", "must be a number >= 0 (got %g)",
                    d->boot_after_s);
    char *bwhere = simspec_field(where, "balloon");
    rc = simspec_validate_balloon(&d->balloon, bwhere, err);
    free(bwhere);
    return rc;
}

void sim_domain_spec_default(struct sim_domain_spec *d, uint32_t domid)
{
    memset(d, 0, sizeof(*d));
    d->domid = domid;
    d->type = DOMAIN_TYPE_HVM;
    d->target_kib = DEFAULT_TARGET_KIB;
    d->dynamic_min_kib = DEFAULT_TARGET_KIB;
    d->dynamic_max_kib = DEFAULT_TARGET_KIB;
    d->actual_kib = DEFAULT_TARGET_KIB;
    d->maxmem_kib = DEFAULT_TARGET_KIB;
    d->memory_offset_kib = 0;
    d->initial_reservation_kib = 0;
    d->boot_after_s = 0;
    d->balloon.model = SIM_BALLOON_IDEAL;
    d->balloon.rate_kib_s = DEFAULT_RATE_KIB_S;
    d->balloon.stop_short_kib = 0;
    d->balloon.floor_kib = 0;
    d->balloon.ceiling_kib = INT64_MAX;
    d->balloon.period_s = DEFAULT_PERIOD_S;
}

/* ---- JSON field readers ---- */

static int get_int(const json_t *v, const char *where, const char *field, int64_t *out,
                   char **err)
{
    if (!json_is_integer(v))
        return fail(err, where, field, "expected an integer, got %s",
                    json_is_real(v)      ? "a number with a fraction or exponent"
                    : json_is_string(v)  ? "a string"
                    : json_is_boolean(v) ? "a boolean"
                    : json_is_null(v)    ? "null"
                    : json_is_array(v)   ? "an array"
                                         : "an object");
    *out = json_integer_value(v);
    return 0;
}

static int get_kib(const json_t *v, const char *where, const char *field, int64_t *out,
                   char **err)
{
    int rc = get_int(v, where, field, out, err);
    if (rc < 0)
        return rc;
    return check_kib(*out, where, field, err);
}

static int get_number(const json_t *v, const char *where, const char *field, double *out,
                      char **err)
{
    if (!json_is_number(v))
        return fail(err, where, field, "expected a number");
    *out = json_number_value(v);
    return 0;
}

static int get_string(const json_t *v, const char *where, const char *field, const char **out,
                      char **err)
{
    if (!json_is_string(v))
        return fail(err, where, field, "expected a string");
    *out = json_string_value(v);
    return 0;
}

static void sim_balloon_default(struct sim_balloon *b)
{
    struct sim_domain_spec d;
    sim_domain_spec_default(&d, 0);
    *b = d.balloon;
}

int sim_balloon_from_json(const json_t *obj, const char *where, struct sim_balloon *out,
                          char **err)
{
    struct sim_balloon b;
    int rc;
    sim_balloon_default(&b);
    if (!json_is_object(obj))
        return fail(err, where, NULL, "expected an object");
    const json_t *m = json_object_get(obj, "model");
    if (m != NULL) {
        const char *name = NULL;
        if ((rc = get_string(m, where, "model", &name, err)) < 0)
            return rc;
        if (simspec_model_parse(name, &b.model) < 0)
            return fail(err, where, "model",
                        "unknown model '%s' (expected ideal, floor, ceiling, stuck, "
                        "intermittent, none)",
                        name);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "model") == 0) {
            continue;
        } else if (strcmp(key, "rate_kib_s") == 0) {
            if ((rc = get_number(v, where, key, &b.rate_kib_s, err)) < 0)
                return rc;
            if (!(isfinite(b.rate_kib_s) && b.rate_kib_s > 0))
                return fail(err, where, key, "must be a positive number (got %g)",
                            b.rate_kib_s);
        } else if (strcmp(key, "stop_short_kib") == 0) {
            if ((rc = get_kib(v, where, key, &b.stop_short_kib, err)) < 0)
                return rc;
        } else if (strcmp(key, "floor_kib") == 0) {
            if (b.model != SIM_BALLOON_FLOOR)
                return fail(err, where, key, "only for model floor (model is %s)",
                            sim_balloon_model_name(b.model));
            if ((rc = get_kib(v, where, key, &b.floor_kib, err)) < 0)
                return rc;
        } else if (strcmp(key, "ceiling_kib") == 0) {
            if (b.model != SIM_BALLOON_CEILING)
                return fail(err, where, key, "only for model ceiling (model is %s)",
                            sim_balloon_model_name(b.model));
            if ((rc = get_kib(v, where, key, &b.ceiling_kib, err)) < 0)
                return rc;
        } else if (strcmp(key, "period_s") == 0) {
            if (b.model != SIM_BALLOON_INTERMITTENT)
                return fail(err, where, key, "only for model intermittent (model is %s)",
                            sim_balloon_model_name(b.model));
            if ((rc = get_number(v, where, key, &b.period_s, err)) < 0)
                return rc;
            if (!(isfinite(b.period_s) && b.period_s > 0))
                return fail(err, where, key, "must be a positive number (got %g)", b.period_s);
        } else {
            return fail(err, where, key,
                        "unknown field (expected model, rate_kib_s, stop_short_kib, "
                        "floor_kib, ceiling_kib, period_s)");
        }
    }
    *out = b;
    return 0;
}

/* Which size fields a domain object gave, so defaults can follow the others. */
enum { F_MIN, F_MAX, F_TARGET, F_ACTUAL, F_MAXMEM, F_OFFSET, F_INITRES, F_CLAIM, F_N };
static const char *const kib_fields[F_N] = {
    "dynamic_min_kib",   "dynamic_max_kib",         "target_kib", "actual_kib", "maxmem_kib",
    "memory_offset_kib", "initial_reservation_kib", "claim_kib",
};

int sim_domain_spec_from_json(const json_t *obj, const char *where, struct sim_domain_spec *out,
                              char **err)
{
    struct sim_domain_spec d;
    int64_t kib[F_N] = {0};
    bool have[F_N] = {false};
    bool have_domid = false;
    int rc;

    sim_domain_spec_default(&d, 0);
    if (!json_is_object(obj))
        return fail(err, where, NULL, "expected an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        size_t f;
        for (f = 0; f < F_N; f++)
            if (strcmp(key, kib_fields[f]) == 0)
                break;
        if (f < F_N) {
            if ((rc = get_kib(v, where, key, &kib[f], err)) < 0)
                return rc;
            have[f] = true;
        } else if (strcmp(key, "domid") == 0) {
            int64_t id = 0;
            if ((rc = get_int(v, where, key, &id, err)) < 0)
                return rc;
            if (id < 0 || id > LIMIT_DOMID_MAX)
                return fail(err, where, key, "%lld out of range (0..%d)", (long long)id,
                            LIMIT_DOMID_MAX);
            d.domid = (uint32_t)id;
            have_domid = true;
        } else if (strcmp(key, "type") == 0) {
            const char *name = NULL;
            if ((rc = get_string(v, where, key, &name, err)) < 0)
                return rc;
            if (domain_type_parse(name, &d.type) < 0)
                return fail(err, where, key, "unknown type '%s' (expected hvm, pv, pvinpvh)",
                            name);
        } else if (strcmp(key, "boot_after_s") == 0) {
            if ((rc = get_number(v, where, key, &d.boot_after_s, err)) < 0)
                return rc;
            if (!(isfinite(d.boot_after_s) && d.boot_after_s >= 0))
                return fail(err, where, key, "must be a number >= 0 (got %g)", d.boot_after_s);
        } else if (strcmp(key, "balloon") == 0) {
            char *bwhere = simspec_field(where, "balloon");
            rc = sim_balloon_from_json(v, bwhere, &d.balloon, err);
            free(bwhere);
            if (rc < 0)
                return rc;
        } else {
            return fail(err, where, key,
                        "unknown field (expected domid, type, dynamic_min_kib, "
                        "dynamic_max_kib, target_kib, actual_kib, maxmem_kib, "
                        "memory_offset_kib, initial_reservation_kib, claim_kib, "
                        "boot_after_s, balloon)");
        }
    }
    if (!have_domid)
        return fail(err, where, "domid", "missing (every domain needs one)");

    d.initial_reservation_kib = have[F_INITRES] ? kib[F_INITRES] : 0;
    if (have[F_TARGET])
        d.target_kib = kib[F_TARGET];
    else if (d.initial_reservation_kib > 0)
        d.target_kib = d.initial_reservation_kib;
    else
        d.target_kib = DEFAULT_TARGET_KIB;
    d.dynamic_min_kib = have[F_MIN] ? kib[F_MIN] : d.target_kib;
    d.dynamic_max_kib = have[F_MAX] ? kib[F_MAX] : d.target_kib;
    if (have[F_ACTUAL])
        d.actual_kib = kib[F_ACTUAL];
    else
        d.actual_kib = d.initial_reservation_kib > 0 ? 0 : d.target_kib;
    d.maxmem_kib = have[F_MAXMEM] ? kib[F_MAXMEM] : d.target_kib;
    d.memory_offset_kib = have[F_OFFSET] ? kib[F_OFFSET] : 0;
    d.claim_kib = have[F_CLAIM] ? kib[F_CLAIM] : 0;

    if ((rc = simspec_validate(&d, where, err)) < 0)
        return rc;
    *out = d;
    return 0;
}

void sim_scenario_free(struct sim_scenario *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->domains);
    free(s);
}

static int parse_host(const json_t *obj, struct sim_host_spec *h, char **err)
{
    if (!json_is_object(obj))
        return fail(err, "host", NULL, "expected an object");
    const char *key;
    json_t *v;
    int rc;
    json_object_foreach((json_t *)obj, key, v)
    {
        int64_t *dst;
        if (strcmp(key, "total_kib") == 0)
            dst = &h->total_kib;
        else if (strcmp(key, "free_kib") == 0)
            dst = &h->free_kib;
        else if (strcmp(key, "scrub_kib") == 0)
            dst = &h->scrub_kib;
        else
            return fail(err, "host", key,
                        "unknown field (expected total_kib, free_kib, scrub_kib)");
        if ((rc = get_kib(v, "host", key, dst, err)) < 0)
            return rc;
    }
    return 0;
}

static int scenario_from_json(const json_t *root, struct sim_scenario *sc, char **err)
{
    int rc;
    if (!json_is_object(root))
        return fail(err, NULL, NULL, "a scenario is a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v)
    {
        if (strcmp(key, "name") == 0) {
            const char *name = NULL;
            if ((rc = get_string(v, NULL, key, &name, err)) < 0)
                return rc;
            free(sc->name);
            sc->name = xstrdup(name);
        } else if (strcmp(key, "host") == 0) {
            if ((rc = parse_host(v, &sc->host, err)) < 0)
                return rc;
        } else if (strcmp(key, "domains") == 0) {
            if (!json_is_array(v))
                return fail(err, NULL, key, "expected an array");
            size_t n = json_array_size(v);
            sc->domains = xcalloc(n + 1, sizeof(*sc->domains));
            for (size_t i = 0; i < n; i++) {
                char where[32];
                snprintf(where, sizeof(where), "domains[%zu]", i);
                rc = sim_domain_spec_from_json(json_array_get(v, i), where, &sc->domains[i],
                                               err);
                if (rc < 0)
                    return rc;
                for (size_t j = 0; j < i; j++)
                    if (sc->domains[j].domid == sc->domains[i].domid)
                        return fail(err, where, "domid",
                                    "duplicate domid %u (also domains[%zu])",
                                    sc->domains[i].domid, j);
                sc->n_domains = i + 1;
            }
        } else {
            return fail(err, NULL, key, "unknown field (expected name, host, domains)");
        }
    }
    if (sc->host.free_kib + sc->host.scrub_kib > sc->host.total_kib)
        return fail(err, "host", "free_kib",
                    "free_kib %lld + scrub_kib %lld is more than total_kib %lld",
                    (long long)sc->host.free_kib, (long long)sc->host.scrub_kib,
                    (long long)sc->host.total_kib);
    int64_t used = 0;
    for (size_t i = 0; i < sc->n_domains; i++)
        used += sc->domains[i].actual_kib + sc->domains[i].memory_offset_kib;
    if (used + sc->host.free_kib + sc->host.scrub_kib > sc->host.total_kib)
        return fail(err, NULL, "domains",
                    "the domains hold %lld KiB (actual + memory offset) which with "
                    "host.free_kib %lld and scrub_kib %lld is more than host.total_kib "
                    "%lld",
                    (long long)used, (long long)sc->host.free_kib,
                    (long long)sc->host.scrub_kib, (long long)sc->host.total_kib);
    return 0;
}

int sim_scenario_parse(const char *text, struct sim_scenario **out, char **err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (err != NULL)
            *err = xasprintf("line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return -EINVAL;
    }
    struct sim_scenario *sc = xcalloc(1, sizeof(*sc));
    sc->name = xstrdup("unnamed");
    sc->host.total_kib = DEFAULT_HOST_TOTAL_KIB;
    sc->host.free_kib = DEFAULT_HOST_FREE_KIB;
    sc->host.scrub_kib = 0;
    int rc = scenario_from_json(root, sc, err);
    json_decref(root);
    if (rc < 0) {
        sim_scenario_free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

int sim_scenario_load(const char *path, struct sim_scenario **out, char **err)
{
    /* Messages do not repeat the path: callers name the file themselves. */
    int rc = 0;
    char *text = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        rc = -errno;
        if (err != NULL)
            *err = xstrdup(strerror(-rc));
        goto out;
    }
    size_t cap = 4096, len = 0;
    text = xmalloc(cap);
    for (;;) {
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (len + 1 < cap)
            break;
        cap *= 2;
        text = xreallocarray(text, cap, 1);
    }
    if (ferror(f)) {
        rc = -EIO;
        if (err != NULL)
            *err = xstrdup("read error");
        goto out;
    }
    text[len] = '\0';
    rc = sim_scenario_parse(text, out, err);
out:
    if (f != NULL)
        fclose(f);
    free(text);
    return rc;
}
