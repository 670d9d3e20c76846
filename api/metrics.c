/* SPDX-License-Identifier: LGPL-2.1-only */
/* GET /metrics: the /status picture in the Prometheus text exposition format 0.0.4. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/metrics.h"
#include "common/xalloc.h"

/* One number of a JSON object as a sample value; false if missing or not a number. */
static bool sample_value(const json_t *obj, const char *key, double scale, char *buf,
                         size_t size)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_integer(v) && scale == 1.0) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(buf, size, "%d", json_is_true(v) ? 1 : 0);
    } else if (json_is_number(v)) {
        double d = json_number_value(v) * scale;
        if (isnan(d))
            snprintf(buf, size, "NaN");
        else if (isinf(d))
            snprintf(buf, size, "%sInf", d > 0 ? "+" : "-");
        else
            snprintf(buf, size, "%.15g", d);
    } else {
        return false;
    }
    return true;
}

/* A label value with \, " and newlines escaped; non-strings are "". */
static void put_label_value(FILE *out, const json_t *v)
{
    const char *s = json_string_value(v);

    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct field {
    const char *key;    /* in the /status object */
    const char *metric; /* the metric family name */
    const char *type;   /* gauge or counter */
    const char *help;
};

/* One family per field of a single object: "name value". */
static void plain_fields(FILE *out, const json_t *obj, const struct field *fields, size_t n)
{
    char val[64];

    for (size_t i = 0; i < n; i++) {
        family(out, fields[i].metric, fields[i].type, fields[i].help);
        if (sample_value(obj, fields[i].key, 1.0, val, sizeof(val)))
            fprintf(out, "%s %s\n", fields[i].metric, val);
    }
}

static const struct field host_fields[] = {
    {"free_kib", "squeezed_host_free_kib", "gauge",
     "Host free memory as the policy sees it (free + scrub - booting unused - "
     "untransferred reservations), KiB."},
    {"reserved_kib", "squeezed_host_reserved_kib", "gauge",
     "Host memory never given to guests (the slush fund), KiB."},
    {"total_kib", "squeezed_host_total_kib", "gauge", "Host total memory, KiB."},
    {"xen_free_kib", "squeezed_host_xen_free_kib", "gauge", "Xen's free memory, KiB."},
    {"scrub_kib", "squeezed_host_scrub_kib", "gauge", "Memory waiting to be scrubbed, KiB."},
    {"reservations_kib", "squeezed_host_reservations_kib", "gauge",
     "Memory held by reservations not yet transferred to a domain, KiB."},
    {"booting_unused_kib", "squeezed_host_booting_unused_kib", "gauge",
     "Memory booting domains may still allocate, KiB."},
};

static const struct field domain_fields[] = {
    {"target_kib", "squeezed_domain_target_kib", "gauge", "Balloon target written, KiB."},
    {"actual_kib", "squeezed_domain_actual_kib", "gauge", "Memory the domain has, KiB."},
    {"dynamic_min_kib", "squeezed_domain_dynamic_min_kib", "gauge",
     "Lower end of the domain's dynamic range, KiB."},
    {"dynamic_max_kib", "squeezed_domain_dynamic_max_kib", "gauge",
     "Upper end of the domain's dynamic range, KiB."},
    {"maxmem_kib", "squeezed_domain_maxmem_kib", "gauge", "Xen maxmem of the domain, KiB."},
    {"stuck", "squeezed_domain_stuck", "gauge",
     "1 if the balloon driver has not moved towards its target for too long."},
    {"uncooperative", "squeezed_domain_uncooperative", "gauge",
     "1 if the domain is marked memory/uncooperative."},
    {"can_balloon", "squeezed_domain_can_balloon", "gauge",
     "1 if the guest advertises a balloon driver."},
    {"booting", "squeezed_domain_booting", "gauge", "1 while the domain has not booted."},
};

static const struct field cache_fields[] = {
    {"xenstore_reads", "squeezed_cache_xenstore_reads_total", "counter",
     "Xenstore reads made."},
    {"xenstore_writes", "squeezed_cache_xenstore_writes_total", "counter",
     "Xenstore writes made."},
    {"watch_events", "squeezed_cache_watch_events_total", "counter",
     "Xenstore watch events received."},
    {"hypercalls", "squeezed_cache_hypercalls_total", "counter", "Hypercalls made."},
    {"snapshots", "squeezed_cache_snapshots_total", "counter", "Host snapshots taken."},
    {"rebuilds", "squeezed_cache_rebuilds_total", "counter",
     "Times the cache was emptied and rebuilt."},
    {"watching", "squeezed_cache_watching", "gauge", "1 while the xenstore watches are set."},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void domains(FILE *out, const json_t *doms)
{
    char val[64];

    for (size_t f = 0; f < N(domain_fields); f++) {
        size_t i;
        const json_t *d;
        family(out, domain_fields[f].metric, domain_fields[f].type, domain_fields[f].help);
        json_array_foreach(doms, i, d)
        {
            const json_t *domid = json_object_get(d, "domid");
            if (!json_is_integer(domid))
                continue;
            if (sample_value(d, domain_fields[f].key, 1.0, val, sizeof(val)))
                fprintf(out, "%s{domid=\"%lld\"} %s\n", domain_fields[f].metric,
                        (long long)json_integer_value(domid), val);
        }
    }
}

static void reservations(FILE *out, const json_t *resv)
{
    long long kib = 0;
    size_t i;
    const json_t *r;

    json_array_foreach(resv, i, r) kib +=
        (long long)json_integer_value(json_object_get(r, "kib"));
    family(out, "squeezed_reservations", "gauge", "Reservations held (transferred or not).");
    if (json_is_array(resv))
        fprintf(out, "squeezed_reservations %zu\n", json_array_size(resv));
    family(out, "squeezed_reservations_kib", "gauge", "Memory held by reservations, KiB.");
    if (json_is_array(resv))
        fprintf(out, "squeezed_reservations_kib %lld\n", kib);
}

static void operation_labels(FILE *out, const json_t *t)
{
    fputs("{kind=\"", out);
    put_label_value(out, json_object_get(t, "kind"));
    fputs("\",outcome=\"", out);
    put_label_value(out, json_object_get(t, "outcome"));
    fputs("\"}", out);
}

static void operations(FILE *out, const json_t *totals)
{
    char val[64];
    size_t i;
    const json_t *t;

    family(out, "squeezed_operations_total", "counter",
           "Squeeze operations finished, by kind and outcome.");
    json_array_foreach(totals, i, t)
    {
        if (!sample_value(t, "count", 1.0, val, sizeof(val)))
            continue;
        fputs("squeezed_operations_total", out);
        operation_labels(out, t);
        fprintf(out, " %s\n", val);
    }
    family(out, "squeezed_operation_duration_seconds", "summary",
           "Time spent in squeeze operations (backend clock), by kind and outcome.");
    json_array_foreach(totals, i, t)
    {
        if (!sample_value(t, "duration_ms_sum", 0.001, val, sizeof(val)))
            continue;
        fputs("squeezed_operation_duration_seconds_sum", out);
        operation_labels(out, t);
        fprintf(out, " %s\n", val);
        if (!sample_value(t, "count", 1.0, val, sizeof(val)))
            continue;
        fputs("squeezed_operation_duration_seconds_count", out);
        operation_labels(out, t);
        fprintf(out, " %s\n", val);
    }
}

static void daemon_info(FILE *out, const json_t *d)
{
    char val[64];

    family(out, "squeezed_busy", "gauge", "1 while a squeeze operation is running.");
    if (sample_value(d, "busy", 1.0, val, sizeof(val)))
        fprintf(out, "squeezed_busy %s\n", val);
    family(out, "squeezed_uptime_seconds", "gauge", "Seconds since the daemon started.");
    if (sample_value(d, "uptime_s", 1.0, val, sizeof(val)))
        fprintf(out, "squeezed_uptime_seconds %s\n", val);
    family(out, "squeezed_backend_clock_seconds", "gauge",
           "The backend's clock (virtual with the simulated host), seconds.");
    if (sample_value(d, "now_ms", 0.001, val, sizeof(val)))
        fprintf(out, "squeezed_backend_clock_seconds %s\n", val);
    family(out, "squeezed_info", "gauge", "Version, backend and clock of the daemon.");
    if (json_is_object(d)) {
        fputs("squeezed_info{version=\"", out);
        put_label_value(out, json_object_get(d, "version"));
        fputs("\",backend=\"", out);
        put_label_value(out, json_object_get(d, "backend"));
        fputs("\",clock=\"", out);
        put_label_value(out, json_object_get(d, "clock"));
        fputs("\"} 1\n", out);
    }
}

char *metrics_render(const json_t *status)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    if (out == NULL)
        xalloc_die("open_memstream");
    plain_fields(out, json_object_get(status, "host"), host_fields, N(host_fields));
    domains(out, json_object_get(status, "domains"));
    reservations(out, json_object_get(status, "reservations"));
    operations(out, json_object_get(status, "operation_totals"));
    plain_fields(out, json_object_get(status, "cache"), cache_fields, N(cache_fields));
    daemon_info(out, json_object_get(status, "daemon"));
    if (fclose(out) != 0 || buf == NULL)
        xalloc_die("the metrics text");
    return buf;
}
