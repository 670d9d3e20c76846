/* SPDX-License-Identifier: LGPL-2.1-only */
/* GET /metrics: the /status picture and the process in the Prometheus text format 0.0.4. */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/metrics.h"
#include "common/xalloc.h"

/*
 * Prometheus' conventions (https://prometheus.io/docs/practices/naming/): base units
 * (bytes, seconds) named in the metric, _total on counters, histograms for durations.
 * The picture holds KiB and ms: they are converted here, nowhere else.
 */

#define KIB 1024.0

/* One number of a JSON object times scale as a sample value; false if missing or not a
 * number. */
static bool sample_value(const json_t *obj, const char *key, double scale, char *buf,
                         size_t size)
{
    const json_t *v = json_object_get(obj, key);

    if (json_is_integer(v) && scale == 1.0) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    } else if (json_is_integer(v) && scale == KIB &&
               llabs((long long)json_integer_value(v)) < (1LL << 52)) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(v) * 1024);
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
    double scale;       /* KIB for a size in KiB, 1 otherwise */
    const char *help;
};

/* One family per field of a single object: "name value". */
static void plain_fields(FILE *out, const json_t *obj, const struct field *fields, size_t n)
{
    char val[64];

    for (size_t i = 0; i < n; i++) {
        family(out, fields[i].metric, fields[i].type, fields[i].help);
        if (sample_value(obj, fields[i].key, fields[i].scale, val, sizeof(val)))
            fprintf(out, "%s %s\n", fields[i].metric, val);
    }
}

static const struct field host_fields[] = {
    {"free_kib", "squeezed_host_free_bytes", "gauge", KIB,
     "Host free memory as the policy sees it (free + scrub - booting unused - claims - "
     "untransferred reservations), bytes."},
    {"reserved_kib", "squeezed_host_reserved_bytes", "gauge", KIB,
     "Host memory never given to guests (the host reserve, or slush fund), bytes."},
    {"total_kib", "squeezed_host_total_bytes", "gauge", KIB, "Host total memory, bytes."},
    {"xen_free_kib", "squeezed_host_xen_free_bytes", "gauge", KIB, "Xen's free memory, bytes."},
    {"scrub_kib", "squeezed_host_scrub_bytes", "gauge", KIB,
     "Memory waiting to be scrubbed, bytes."},
    {"reservations_kib", "squeezed_host_reservations_bytes", "gauge", KIB,
     "Memory held by reservations not yet transferred to a domain, bytes."},
    {"booting_unused_kib", "squeezed_host_booting_unused_bytes", "gauge", KIB,
     "Memory booting domains may still allocate, bytes."},
    {"claims_kib", "squeezed_host_claims_bytes", "gauge", KIB,
     "Outstanding Xen claims not already counted as booting unused, bytes."},
};

static const struct field domain_fields[] = {
    {"target_kib", "squeezed_domain_target_bytes", "gauge", KIB,
     "Balloon target written (memory/target), bytes."},
    {"actual_kib", "squeezed_domain_actual_bytes", "gauge", KIB,
     "Memory the domain has, bytes."},
    {"dynamic_min_kib", "squeezed_domain_dynamic_min_bytes", "gauge", KIB,
     "Lower end of the domain's dynamic range, bytes."},
    {"dynamic_max_kib", "squeezed_domain_dynamic_max_bytes", "gauge", KIB,
     "Upper end of the domain's dynamic range, bytes."},
    {"maxmem_kib", "squeezed_domain_maxmem_bytes", "gauge", KIB,
     "Xen maxmem of the domain, bytes."},
    {"stuck", "squeezed_domain_stuck", "gauge", 1.0,
     "1 if the balloon driver has not moved towards its target for too long."},
    {"uncooperative", "squeezed_domain_uncooperative", "gauge", 1.0,
     "1 if the domain is marked memory/uncooperative."},
    {"can_balloon", "squeezed_domain_can_balloon", "gauge", 1.0,
     "1 if the guest advertises a balloon driver."},
    {"booting", "squeezed_domain_booting", "gauge", 1.0, "1 while the domain has not booted."},
};

static const struct field cache_fields[] = {
    {"xenstore_reads", "squeezed_cache_xenstore_reads_total", "counter", 1.0,
     "Xenstore reads made."},
    {"xenstore_writes", "squeezed_cache_xenstore_writes_total", "counter", 1.0,
     "Xenstore writes made."},
    {"watch_events", "squeezed_cache_watch_events_total", "counter", 1.0,
     "Xenstore watch events received."},
    {"hypercalls", "squeezed_cache_hypercalls_total", "counter", 1.0, "Hypercalls made."},
    {"snapshots", "squeezed_cache_snapshots_total", "counter", 1.0, "Host snapshots taken."},
    {"rebuilds", "squeezed_cache_rebuilds_total", "counter", 1.0,
     "Times the cache was emptied and rebuilt."},
    {"watching", "squeezed_cache_watching", "gauge", 1.0,
     "1 while the xenstore watches are set."},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A domain's labels: domid, and the VM's name and uuid where xenstore has them (a domid
 * is reused by Xen; the uuid is not). */
static void domain_labels(FILE *out, const json_t *d)
{
    fprintf(out, "{domid=\"%lld\"", (long long)json_integer_value(json_object_get(d, "domid")));
    const char *keys[] = {"name", "uuid"};
    for (size_t k = 0; k < N(keys); k++) {
        const json_t *v = json_object_get(d, keys[k]);
        if (!json_is_string(v))
            continue;
        fprintf(out, ",%s=\"", keys[k]);
        put_label_value(out, v);
        fputc('"', out);
    }
    fputc('}', out);
}

static void domains(FILE *out, const json_t *doms)
{
    char val[64];

    for (size_t f = 0; f < N(domain_fields); f++) {
        size_t i;
        const json_t *d;
        family(out, domain_fields[f].metric, domain_fields[f].type, domain_fields[f].help);
        json_array_foreach(doms, i, d)
        {
            if (!json_is_integer(json_object_get(d, "domid")))
                continue;
            if (!sample_value(d, domain_fields[f].key, domain_fields[f].scale, val,
                              sizeof(val)))
                continue;
            fputs(domain_fields[f].metric, out);
            domain_labels(out, d);
            fprintf(out, " %s\n", val);
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
    family(out, "squeezed_reservations_bytes", "gauge", "Memory held by reservations, bytes.");
    if (json_is_array(resv))
        fprintf(out, "squeezed_reservations_bytes %lld\n", kib * 1024);
}

/* {a="..",b=".."} from two string members of t; extra (NULL: none) is appended raw. */
static void labels2(FILE *out, const json_t *t, const char *a, const char *b, const char *extra)
{
    fprintf(out, "{%s=\"", a);
    put_label_value(out, json_object_get(t, a));
    fputc('"', out);
    if (b != NULL) {
        fprintf(out, ",%s=\"", b);
        put_label_value(out, json_object_get(t, b));
        fputc('"', out);
    }
    if (extra != NULL)
        fprintf(out, ",%s", extra);
    fputc('}', out);
}

/* One histogram's samples from a /status entry: cumulative "buckets" aligned with bounds
 * (left out if they do not match), +Inf = count, the sum in seconds from sum_key (ms). */
static void histogram(FILE *out, const char *name, const json_t *t, const char *a,
                      const char *b, const json_t *bounds, const char *sum_key)
{
    char val[64];
    const json_t *buckets = json_object_get(t, "buckets");

    if (!sample_value(t, "count", 1.0, val, sizeof(val)))
        return;
    if (json_is_array(bounds) && json_is_array(buckets) &&
        json_array_size(bounds) == json_array_size(buckets)) {
        for (size_t i = 0; i < json_array_size(bounds); i++) {
            const json_t *le = json_array_get(bounds, i);
            const json_t *n = json_array_get(buckets, i);
            if (!json_is_number(le) || !json_is_integer(n))
                continue;
            char extra[64];
            snprintf(extra, sizeof(extra), "le=\"%g\"", json_number_value(le));
            fprintf(out, "%s_bucket", name);
            labels2(out, t, a, b, extra);
            fprintf(out, " %lld\n", (long long)json_integer_value(n));
        }
    }
    fprintf(out, "%s_bucket", name);
    labels2(out, t, a, b, "le=\"+Inf\"");
    fprintf(out, " %s\n", val);
    fprintf(out, "%s_count", name);
    labels2(out, t, a, b, NULL);
    fprintf(out, " %s\n", val);
    if (sample_value(t, sum_key, 0.001, val, sizeof(val))) {
        fprintf(out, "%s_sum", name);
        labels2(out, t, a, b, NULL);
        fprintf(out, " %s\n", val);
    }
}

static void operations(FILE *out, const json_t *totals, const json_t *waits,
                       const json_t *bounds)
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
        labels2(out, t, "kind", "outcome", NULL);
        fprintf(out, " %s\n", val);
    }
    family(out, "squeezed_operation_duration_seconds", "histogram",
           "Time squeeze operations took, from their first round to their verdict "
           "(backend clock), by kind and outcome.");
    json_array_foreach(totals, i, t) histogram(out, "squeezed_operation_duration_seconds", t,
                                               "kind", "outcome", bounds, "duration_ms_sum");
    family(out, "squeezed_client_wait_seconds", "histogram",
           "Time clients' calls waited in the queue before they started (behind other "
           "operations), by method.");
    json_array_foreach(waits, i, t) histogram(out, "squeezed_client_wait_seconds", t, "method",
                                              NULL, bounds, "wait_ms_sum");
}

static void daemon_info(FILE *out, const json_t *d, const json_t *running)
{
    char val[64];

    family(out, "squeezed_busy", "gauge", "1 while a squeeze operation is running.");
    if (sample_value(d, "busy", 1.0, val, sizeof(val)))
        fprintf(out, "squeezed_busy %s\n", val);
    family(out, "squeezed_clients_waiting", "gauge",
           "Clients' calls queued behind the running operation.");
    if (json_is_object(d))
        fprintf(out, "squeezed_clients_waiting %lld\n",
                (long long)json_integer_value(json_object_get(running, "waiting")));
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

/* ---- the process, from /proc/self (the names of Prometheus' client libraries) ---- */

/* Fields 14, 15 (utime, stime, ticks), 22 (starttime, ticks since boot) and 23 (vsize,
 * bytes) of /proc/self/stat. */
static bool read_stat(unsigned long long *utime, unsigned long long *stime,
                      unsigned long long *start, unsigned long long *vsize)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
    if (p == NULL)
        return false;
    /* after ") ": field 3 (state) onwards */
    return sscanf(p + 2,
                  "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                  "%*d %llu %llu",
                  utime, stime, start, vsize) == 4;
}

static long long boot_time_s(void)
{
    char line[256];
    long long btime = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* not the one opendir holds */
}

static void process(FILE *out)
{
    unsigned long long utime, stime, start, vsize;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    bool stat_ok = read_stat(&utime, &stime, &start, &vsize) && ticks > 0;

    family(out, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    if (stat_ok)
        fprintf(out, "process_cpu_seconds_total %.15g\n", (double)(utime + stime) / ticks);
    family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    if (stat_ok)
        fprintf(out, "process_virtual_memory_bytes %llu\n", vsize);
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size, resident;
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &size, &resident) == 2 && page > 0)
            fprintf(out, "process_resident_memory_bytes %llu\n",
                    resident * (unsigned long long)page);
        fclose(f);
    }
    family(out, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    long long btime = boot_time_s();
    if (stat_ok && btime >= 0)
        fprintf(out, "process_start_time_seconds %.15g\n",
                (double)btime + (double)start / ticks);
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    long long fds = open_fds();
    if (fds >= 0)
        fprintf(out, "process_open_fds %lld\n", fds);
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur == RLIM_INFINITY)
            fputs("process_max_fds +Inf\n", out);
        else
            fprintf(out, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

/* The text of what out wrote (closed here). */
static char *finish(FILE *out, char **buf)
{
    if (fclose(out) != 0 || *buf == NULL)
        xalloc_die("the metrics text");
    return *buf;
}

char *metrics_render_status(const json_t *status)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    if (out == NULL)
        xalloc_die("open_memstream");
    plain_fields(out, json_object_get(status, "host"), host_fields, N(host_fields));
    domains(out, json_object_get(status, "domains"));
    reservations(out, json_object_get(status, "reservations"));
    operations(out, json_object_get(status, "operation_totals"),
               json_object_get(status, "client_waits"),
               json_object_get(status, "histogram_bounds_s"));
    plain_fields(out, json_object_get(status, "cache"), cache_fields, N(cache_fields));
    daemon_info(out, json_object_get(status, "daemon"), json_object_get(status, "running"));
    return finish(out, &buf);
}

char *metrics_render_process(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    if (out == NULL)
        xalloc_die("open_memstream");
    process(out);
    return finish(out, &buf);
}

char *metrics_render(const json_t *status)
{
    char *a = metrics_render_status(status);
    char *b = metrics_render_process();
    char *both = xasprintf("%s%s", a, b);
    free(a);
    free(b);
    return both;
}
