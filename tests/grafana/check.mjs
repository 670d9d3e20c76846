// SPDX-License-Identifier: LGPL-2.1-only
// Checks contrib/grafana/squeezed.json offline:
//  1. against Grafana's own dashboard model: the JSON, as a TypeScript object literal,
//     must satisfy @grafana/schema's `Dashboard` type (tsc --strict; excess properties,
//     wrong types and missing required fields fail);
//  2. its layout (unique panel ids, 24-column grid, no overlapping panels), its variables
//     (every $var used is defined) and data source references;
//  3. that it asks only for the metric names below, the names /metrics is to have once
//     it follows Prometheus' conventions (base units);
//  4. that every PromQL expression parses (promtool check rules, when promtool is there).
// Prints PASS:/FAIL: lines; exit 1 on any failure.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] || join(here, "../../contrib/grafana/squeezed.json");
let failed = 0;
const pass = (n) => console.log("PASS: grafana: " + n);
const fail = (n, why) => { failed++; console.log("FAIL: grafana: " + n + " " + why); };
const check = (n, ok, why) => (ok ? pass(n) : fail(n, why || ""));

// The metric names the dashboard is built on (see contrib/grafana/README.md).
export const METRICS = new Set([
    "squeezed_info", "squeezed_busy", "squeezed_reservations",
    "squeezed_host_total_bytes", "squeezed_host_free_bytes", "squeezed_host_xen_free_bytes",
    "squeezed_host_reserved_bytes", "squeezed_host_reservations_bytes",
    "squeezed_host_booting_unused_bytes",
    "squeezed_domain_actual_bytes", "squeezed_domain_target_bytes",
    "squeezed_domain_dynamic_min_bytes", "squeezed_domain_dynamic_max_bytes",
    "squeezed_domain_stuck", "squeezed_domain_uncooperative", "squeezed_domain_booting",
    "squeezed_operations_total", "squeezed_operation_duration_seconds_bucket",
    "squeezed_client_wait_seconds_bucket",
    "squeezed_cache_xenstore_reads_total", "squeezed_cache_hypercalls_total",
    "squeezed_cache_watch_events_total", "squeezed_cache_rebuilds_total",
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
]);

const text = readFileSync(file, "utf8");
let dash;
try {
    dash = JSON.parse(text);
    pass("the file is JSON");
} catch (e) {
    fail("the file is JSON", e.message);
    process.exit(1);
}

// 1. Grafana's schema, by its TypeScript types. The generated file goes into
// node_modules (it must sit where @grafana/schema is found from), not into the source tree,
// which the deb stage may be copying meanwhile.
const gen = join(here, "node_modules", ".squeezed-gen");
mkdirSync(gen, { recursive: true });
writeFileSync(join(gen, "dashboard.ts"),
    'import type { Dashboard } from "@grafana/schema";\n' +
    // The schema's string enums (ThresholdsMode, ...) as the strings JSON holds.
    "type J<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T :\n" +
    "    T extends Array<infer U> ? Array<J<U>> : T extends object ? { [K in keyof T]: J<T[K]> } : T;\n" +
    "export const dashboard = " + text.trim() + " satisfies J<Dashboard>;\n");
try {
    execFileSync(process.execPath, [join(here, "node_modules/typescript/lib/tsc.js"), "--noEmit",
        "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler",
        "--skipLibCheck", join(gen, "dashboard.ts")], { cwd: here, stdio: "pipe" });
    pass("it satisfies @grafana/schema's Dashboard type (tsc --strict)");
} catch (e) {
    fail("it satisfies @grafana/schema's Dashboard type (tsc --strict)",
        String(e.stdout || e.message).split("\n").slice(0, 8).join(" | "));
}
rmSync(gen, { recursive: true, force: true });

// 2. Layout, variables, data sources.
check("schemaVersion is a current one (>= 36)", dash.schemaVersion >= 36, dash.schemaVersion);
check("it has a uid and a title", !!dash.uid && !!dash.title, "");
const panels = dash.panels || [];
const ids = panels.map((p) => p.id);
check("panel ids are unique", new Set(ids).size === ids.length, ids.join(","));
const boxes = [];
let layoutErr = [];
for (const p of panels) {
    const g = p.gridPos || {};
    if (!(g.w > 0 && g.h > 0 && g.x >= 0 && g.y >= 0 && g.x + g.w <= 24))
        layoutErr.push(`${p.title}: gridPos ${JSON.stringify(g)}`);
    for (const b of boxes)
        if (g.x < b.x + b.w && b.x < g.x + g.w && g.y < b.y + b.h && b.y < g.y + g.h)
            layoutErr.push(`${p.title} overlaps ${b.title}`);
    boxes.push({ ...g, title: p.title });
}
check("panels fit the 24-column grid without overlapping", layoutErr.length === 0,
    layoutErr.slice(0, 4).join("; "));
const vars = new Set((dash.templating?.list || []).map((v) => v.name));
const builtin = new Set(["__rate_interval", "__interval", "__range"]);
const exprs = [];
const dsErr = [];
for (const p of panels) {
    if (p.type === "row") continue;
    if (p.datasource?.uid !== "${datasource}") dsErr.push(p.title);
    const refs = new Set();
    for (const t of p.targets || []) {
        exprs.push({ panel: p.title, expr: t.expr });
        if (refs.has(t.refId)) dsErr.push(`${p.title}: refId ${t.refId} twice`);
        refs.add(t.refId);
        if (t.datasource?.uid !== "${datasource}") dsErr.push(`${p.title} ${t.refId}`);
    }
    if (!(p.targets || []).length) dsErr.push(`${p.title}: no query`);
}
check("every panel and query uses the $datasource variable, refIds unique", dsErr.length === 0,
    dsErr.join("; "));
const varErr = [];
for (const v of dash.templating?.list || []) {
    const q = typeof v.query === "string" ? v.query : v.query?.query || "";
    exprs.push({ panel: "variable " + v.name, expr: q, variable: true });
}
for (const { panel, expr } of exprs)
    for (const m of expr.matchAll(/\$\{?(\w+)/g))
        if (!vars.has(m[1]) && !builtin.has(m[1])) varErr.push(`${panel}: $${m[1]}`);
check("every variable used is defined", varErr.length === 0, varErr.join("; "));

// 3. Metric names.
const unknown = [];
const used = new Set();
for (const { panel, expr } of exprs) {
    for (const m of expr.matchAll(/\b((?:squeezed|process)_[a-z_]+)\b/g)) {
        used.add(m[1]);
        if (!METRICS.has(m[1])) unknown.push(`${panel}: ${m[1]}`);
    }
}
check("only the agreed metric names are queried", unknown.length === 0, unknown.join("; "));
check("no metric is in KiB any more", ![...used].some((n) => /_kib\b/.test(n)), [...used].join(","));

// 4. PromQL syntax, with promtool.
let promtool = null;
for (const p of ["/usr/bin/promtool", "/usr/local/bin/promtool"]) if (existsSync(p)) promtool = p;
if (promtool) {
    const rules = exprs.filter((e) => !e.variable).map((e, i) => ({
        record: `grafana_check:expr_${i}`,
        expr: e.expr.replaceAll("$__rate_interval", "5m").replace(/\$\{?(\w+)\}?/g, ".+"),
    }));
    const lines = ["groups:", "  - name: squeezed-dashboard", "    rules:"];
    for (const r of rules)
        lines.push(`      - record: ${r.record}`, `        expr: ${JSON.stringify(r.expr)}`);
    const rd = mkdtempSync(join(tmpdir(), "squeezed-grafana-"));
    const rf = join(rd, "rules.yml");
    writeFileSync(rf, lines.join("\n") + "\n");
    try {
        execFileSync(promtool, ["check", "rules", rf], { stdio: "pipe" });
        pass(`every PromQL expression parses (promtool check rules, ${rules.length} expressions)`);
    } catch (e) {
        fail("every PromQL expression parses", String(e.stdout || "") + String(e.stderr || ""));
    }
    rmSync(rd, { recursive: true, force: true });
} else {
    console.log("# promtool not found: PromQL syntax not checked");
}
process.exit(failed ? 1 : 0);
