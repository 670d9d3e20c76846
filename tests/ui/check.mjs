// SPDX-License-Identifier: LGPL-2.1-only
// The dashboard (GET /ui) in a real headless Chromium, against a running daemon on the
// simulated host (virtual clock): the page must show the domains and figures /status
// reports, a reservation made meanwhile, plots from /history, and raise no JavaScript
// error. Saves a screenshot. Prints PASS:/FAIL:/# lines; exit 1 on any failure.
//
//   node check.mjs --url http://127.0.0.1:PORT --out DIR [--mode demo|thousand]
//                  [--chromium /usr/bin/chromium]
import puppeteer from "puppeteer-core";

const args = Object.fromEntries(
    process.argv.slice(2).reduce((acc, a, i, all) => {
        if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
        return acc;
    }, []));
const base = args.url;
const out = args.out || "build/ui";
const mode = args.mode || "demo";
const chromium = args.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
let failed = 0;

const pass = (n) => console.log("PASS: ui " + mode + ": " + n);
const fail = (n, why) => {
    failed++;
    console.log("FAIL: ui " + mode + ": " + n + " " + why);
};
const note = (t) => console.log("# " + t);
const check = (n, ok, why) => (ok ? pass(n) : fail(n, why || ""));

async function getJSON(path) {
    const r = await fetch(base + path, { signal: AbortSignal.timeout(10000) });
    return r.json();
}
async function rpc(method, params) {
    const r = await fetch(base + "/", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ method, params, id: 1 }),
        signal: AbortSignal.timeout(30000),
    });
    return r.json();
}
async function advance(seconds) {
    const r = await fetch(base + "/", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", method: "sim.advance", params: { seconds }, id: 1 }),
        signal: AbortSignal.timeout(30000),
    });
    return r.json();
}

// "1.5 GiB" -> KiB. Independent of the page's own formatting code.
function parseSize(text) {
    const m = /^(−|-)?([0-9]+(?:\.[0-9]+)?) (KiB|MiB|GiB)$/.exec(text.trim());
    if (!m) return NaN;
    const mult = { KiB: 1, MiB: 1024, GiB: 1048576 }[m[3]];
    return (m[1] ? -1 : 1) * parseFloat(m[2]) * mult;
}
// Shown to 3 significant figures at least: within 0.5 % (or exact below a MiB).
const close = (shown, kib) => Math.abs(shown - kib) <= Math.max(0.5, Math.abs(kib) * 0.005);

const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--no-default-browser-check", "--disable-extensions"],
    defaultViewport: { width: 1440, height: 1000, deviceScaleFactor: 1 },
    timeout: 60000,
});
const errors = [];
const foreign = [];
try {
    const page = await browser.newPage();
    page.on("console", (m) => {
        if (m.type() === "error") errors.push("console: " + m.text());
    });
    page.on("pageerror", (e) => errors.push("pageerror: " + (e && e.message ? e.message : e)));
    page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
    page.on("request", (r) => {
        if (!r.url().startsWith(base)) foreign.push(r.url());
    });

    if (mode === "demo") await advance(20); // some history before the page opens

    const t0 = Date.now();
    const resp = await page.goto(base + "/ui", { waitUntil: "load", timeout: 30000 });
    check("GET /ui answers 200 text/html", resp.status() === 200 &&
        /text\/html/.test(resp.headers()["content-type"] || ""),
        `status ${resp.status()} ${resp.headers()["content-type"]}`);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
    const firstRenderMs = Date.now() - t0;

    // Every domain of /status has its row with its figures.
    const st = await getJSON("/status");
    await page.waitForFunction((n) => document.querySelectorAll("#drows .drow").length === n,
        { timeout: 15000 }, st.domains.length).catch(() => {});
    const rows = await page.$$eval("#drows .drow", (els) => els.map((e) => ({
        domid: Number(e.dataset.domid),
        min: e.querySelector(".c-min").textContent,
        target: e.querySelector(".c-target").textContent,
        actual: e.querySelector(".c-actual").textContent,
        max: e.querySelector(".c-max").textContent,
        flags: e.querySelector(".flags").textContent,
    })));
    check(`one row per domain (${st.domains.length})`, rows.length === st.domains.length,
        `${rows.length} rows`);
    const byId = new Map(rows.map((r) => [r.domid, r]));
    let bad = [];
    for (const d of st.domains) {
        const r = byId.get(d.domid);
        if (!r) { bad.push(`domid ${d.domid}: no row`); continue; }
        for (const [k, key] of [["min", "dynamic_min_kib"], ["target", "target_kib"],
            ["actual", "actual_kib"], ["max", "dynamic_max_kib"]]) {
            if (!close(parseSize(r[k]), d[key]))
                bad.push(`domid ${d.domid} ${k}: shows '${r[k]}', /status ${d[key]} KiB`);
        }
        const want = [d.stuck && "stuck", d.uncooperative && "uncooperative", d.booting && "booting"]
            .filter(Boolean);
        for (const w of want) if (!r.flags.includes(w)) bad.push(`domid ${d.domid}: no '${w}' mark`);
    }
    check("each row shows /status's dynamic-min, target, actual, dynamic-max and marks",
        bad.length === 0, bad.slice(0, 5).join("; "));

    const total = await page.$eval("#hosttotal", (e) => e.textContent);
    check("the host bar shows the host's total", close(parseSize(total), st.host.total_kib),
        `shows '${total}', /status ${st.host.total_kib}`);
    const free = await page.$eval("#card-free", (e) => e.textContent);
    check("the free card shows host.free_kib", close(parseSize(free), st.host.free_kib),
        `shows '${free}', /status ${st.host.free_kib}`);

    if (mode === "demo") {
        // A reservation made now appears, with its session, and the plots have lines.
        const login = await rpc("login", ["ui-test", "ui-check"]);
        check("login", login.result === "ui-check", JSON.stringify(login));
        await advance(5);
        const res = await rpc("reserve_memory", ["ui-test", "ui-check", 6291456]);
        const id = res.result;
        check("reserve_memory 6 GiB", typeof id === "string", JSON.stringify(res));
        await advance(15);
        let shown = null;
        try {
            await page.waitForSelector(`#resv tr[data-id="${id}"]`, { timeout: 10000 });
            shown = await page.$eval(`#resv tr[data-id="${id}"]`, (e) => e.textContent);
        } catch (e) { /* reported below */ }
        check("the new reservation shows up with its session and size",
            shown !== null && shown.includes("ui-check") && shown.includes("6 GiB"),
            `row: ${shown}`);
        const resvPart = await page.$eval('#hostbar [data-part="resv"]', (e) => e.style.width);
        check("the host bar has a reserved segment", parseFloat(resvPart) > 0, `width ${resvPart}`);
        const recent = await page.$eval("#recent tbody", (e) => e.textContent);
        check("the recent operations list the reserve", /reserve/.test(recent), recent.slice(0, 200));
        // The plots: /history has several points by now.
        await page.waitForFunction(() => {
            const p = document.querySelector("#freeplot path");
            return p && (p.getAttribute("d").match(/V/g) || []).length >= 1;
        }, { timeout: 10000 }).then(() => pass("the host free plot has a changing line"),
            () => fail("the host free plot has a changing line", "no step in the path"));
        const domPaths = await page.$$eval("#domplot path", (ps) => ps.length);
        check("the domain plot draws target and actual of the plotted domains", domPaths >= 2,
            `${domPaths} paths`);
        // Rows follow the change: compare again after the squeeze.
        const st2 = await getJSON("/status");
        await new Promise((r) => setTimeout(r, 2000));
        const rows2 = await page.$$eval("#drows .drow", (els) => els.map((e) => [
            Number(e.dataset.domid), e.querySelector(".c-actual").textContent]));
        const m2 = new Map(rows2);
        bad = st2.domains.filter((d) => !close(parseSize(m2.get(d.domid) || ""), d.actual_kib))
            .map((d) => `domid ${d.domid}: '${m2.get(d.domid)}' vs ${d.actual_kib}`);
        check("rows follow /status after the squeeze", bad.length === 0, bad.slice(0, 5).join("; "));
        await page.screenshot({ path: out + "/dashboard.png", fullPage: true });
        note(`screenshot: ${out}/dashboard.png`);
        await page.setViewport({ width: 800, height: 900 });
        await new Promise((r) => setTimeout(r, 500));
        await page.screenshot({ path: out + "/dashboard-narrow.png", fullPage: false });
    } else {
        // Render cost with many domains: the page's own timings of render() (all panels).
        await new Promise((r) => setTimeout(r, 8000));
        const ms = await page.evaluate(() => window.__squeezed.renderMs.slice());
        note(`${st.domains.length} domains: first render after ${firstRenderMs} ms ` +
            `(navigation to rows on screen); render() median ${median(ms).toFixed(1)} ms, ` +
            `max ${Math.max(...ms).toFixed(1)} ms over ${ms.length} updates`);
        check("renders were timed", ms.length >= 3, `${ms.length} timings`);
        // A filter narrows the rows at once.
        await page.type("#filter", "999");
        await new Promise((r) => setTimeout(r, 300));
        const n = await page.$$eval("#drows .drow", (els) => els.length);
        check("the filter narrows 1,000 rows to the matching domain", n === 1, `${n} rows`);
        await page.screenshot({ path: out + "/dashboard-thousand.png", fullPage: false });
    }
    check("the page loaded nothing from another origin", foreign.length === 0,
        foreign.slice(0, 3).join(", "));
} catch (e) {
    fail("the browser run", e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : String(e));
} finally {
    check("no JavaScript error (console errors, uncaught exceptions, failed requests)",
        errors.length === 0, errors.slice(0, 5).join(" | "));
    await browser.close();
}
process.exit(failed ? 1 : 0);
