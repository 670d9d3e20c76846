// SPDX-License-Identifier: LGPL-2.1-only
// Soak: many concurrent clients against the real daemon (simulated host, virtual clock)
// for a bounded time, checking after every step and at quiescent points that no
// reservation is lost or counted twice and that the memory reserved is really free.
// Node's built-in http only. Prints "PASS: soak: ..." / "FAIL: soak: ..." lines and a
// "# figures: ..." line; exits 0, or 1 if anything failed.
//
// node tests/soak/soak.mjs --port P --pid PID [--seconds 20] [--clients 8] [--seed N]
//                          [--token T]  (the bearer token: changing calls need it over TCP)
//     [--scale 1]
//
// The clients (one keep-alive connection each):
//  - workers soak-w<i>: reserve (memory or a range); then give it up at once, or keep it
//    as a crashed client would (their next login must purge it), or build a domain the
//    way xenopsd does: sim.create_domain with initial_reservation_kib, transfer, query,
//    delete the reservation; the domain boots and joins the ballooned guests; each
//    worker keeps at most three and destroys the oldest. Logins now and then.
//  - chaos soak-chaos: advances the virtual clock, stalls balloons and lets them go
//    again (sim.set_balloon stuck / intermittent / ideal), changes dynamic ranges,
//    balances, and creates a domain on a reservation that it destroys while it still
//    boots and holds the transferred reservation (which then never counts again: its
//    memory comes back as Xen's free memory, issue 11), then deletes the reservation.
//
// After every step a client checks what it can alone: the reply is well-formed, its own
// reservations are listed exactly once while held and never after their delete (by it,
// or by its login), and a login purged exactly its own. Every BARRIER_MS all clients
// stop between two requests (the virtual clock only moves on request, so the host is
// then still) and the exact checks run on one sim.state and one /status:
//  - /status lists exactly the reservations the clients hold (id, session, size, domid);
//  - its reservations_kib is exactly the sum of the untransferred ones (a transferred
//    one counts through its domain while it lives, and not at all once it is gone);
//  - the memory: host reserve + every reservation not held by a live domain it was made
//    for <= free_kib (the sim's truth) - what every domain may still take, where a
//    domain still booting may take up to min(initial reservation, maxmem), one with its
//    balloon driver up to min(target + 4, maxmem) (the inaccuracy the daemon allows),
//    one without a driver (dom0) nothing. A reservation whose domain has been created
//    is held by that domain (its allocation is counted instead, transferred or not);
//    once the domain is gone, an untransferred one counts again, a transferred one not. Nothing can move between
//    the two reads, so this is exact: no tolerance. (It is the daemon's own promise in
//    the host's terms: a driver that will stop short of its target - stop_short,
//    ceiling, floor, stuck - is counted as reaching it, since the daemon cannot know.
//    The smallest margin seen is printed: a few pages per guest when memory is tight.)
//    Between quiescent points the check cannot be made: the two reads are not atomic
//    and other clients' requests move the host in between;
//  - the simulated host recorded no violation.
// The daemon's RSS (VmRSS) is read after the warm-up, at the end of the load, and once
// the clients have hung up and the daemon's connection threads are gone (with them what
// the allocator keeps per thread, which grows with their number and life): that last
// figure may exceed the warm one by at most RSS_TOLERANCE_KIB + RSS_TOLERANCE_PCT %.
// The warm-up is half the run (at most 10 s): the normal build sits near 16 MiB (the
// history's buffers are allocated whole at start) but its RSS rises in steps of up to
// 2.5 MiB during the first seconds of churn, at a moment that varies from run to run (the
// simulated host's tables and the allocator's per-thread arenas reaching their size; seen
// with the code before this round too): after a 5 s warm-up the end figure was 1.0-2.7 MiB
// above it, after 10 s 0.1-0.9 MiB (4 runs). 1 MiB + 5 % (about 1.8 MiB) over the second
// half of a default run (20,000-40,000 requests) catches a leak of some 50-90 bytes per
// request. Under valgrind (a 150 MiB base) its own memory grows with
// the threads the daemon starts (one per JSON-RPC call since issue 11): +6 % measured over
// a default run, so it gets RSS_TOLERANCE_PCT_VALGRIND; memcheck itself fails the
// valgrind stage on any definite leak.
// Under AddressSanitizer the sanitizer's own allocator grows for about a minute before
// it levels off (measured: +12 % over 120 s, flat after the first 50 s; +2 % to +24 % over
// a default run), so there the figure is printed, not checked: leaks are LeakSanitizer's
// to find at the clean stop (test_soak.sh fails on any sanitizer report in the log).
import fs from 'node:fs';
import http from 'node:http';

// ---- options ---------------------------------------------------------------------------
const opts = { port: 0, pid: 0, seconds: 20, clients: 8, seed: Date.now() % 1000000, scale: 1,
               token: '' };
for (let i = 2; i < process.argv.length; i += 2) {
    const k = process.argv[i].replace(/^--/, '');
    if (!(k in opts) || i + 1 >= process.argv.length) {
        console.log(`FAIL: soak: bad argument ${process.argv[i]}`);
        process.exit(2);
    }
    opts[k] = k === 'token' ? process.argv[i + 1] : Number(process.argv[i + 1]);
}
const BARRIER_MS = 400;
const WARMUP_S = Math.max(2, Math.min(10, opts.seconds / 2));
const RSS_TOLERANCE_KIB = 1024;
const RSS_TOLERANCE_PCT = 5;
const RSS_TOLERANCE_PCT_VALGRIND = 20;
const REQUEST_TIMEOUT_MS = 15000 * opts.scale;
const MIB = 1024;
const PAGE = 4;

// ---- a seeded random source (mulberry32), so a failing run can be replayed ---------------
let seedState = opts.seed >>> 0;
function rand() {
    seedState = (seedState + 0x6d2b79f5) >>> 0;
    let t = seedState;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const pages = (kib) => kib - (kib % PAGE);
const pick = (a) => a[Math.floor(rand() * a.length)];

// ---- results ----------------------------------------------------------------------------
const checks = new Map(); // name -> { ok, failed, first: [details] }
function check(name, ok, detail) {
    let c = checks.get(name);
    if (c === undefined) {
        c = { ok: 0, failed: 0, first: [] };
        checks.set(name, c);
    }
    if (ok) {
        c.ok++;
    } else {
        c.failed++;
        if (c.first.length < 3) c.first.push(typeof detail === 'function' ? detail() : detail);
    }
    return ok;
}
const figures = { ops: 0, granted: 0, cannot_free: 0, refused: 0, domains_created: 0,
                  domains_destroyed: 0, logins: 0, purged: 0, barriers: 0,
                  min_margin_kib: Infinity };

// ---- HTTP -------------------------------------------------------------------------------
function request(agent, method, path, body) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : Buffer.from(body);
        const req = http.request({
            host: '127.0.0.1', port: opts.port, method, path, agent,
            headers: Object.assign(
                opts.token ? { 'Authorization': `Bearer ${opts.token}` } : {},
                data ? { 'Content-Type': 'application/json', 'Content-Length': data.length }
                     : {}),
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode,
                                          text: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
        });
        req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('timed out')));
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
    });
}

// ---- the barrier: clients stop between requests while the exact checks run -------------
let stopping = false;
let pause = null; // { parked, resume: Promise, allParked: fn }
let active = 0;   // clients still running their loop

async function gate() {
    if (pause === null) return;
    const p = pause;
    p.parked++;
    if (p.parked === active) p.allParked();
    await p.resume;
}

// A client's loop ended: a pause waiting for it waits no more.
function leave() {
    active--;
    if (pause !== null && pause.parked === active) pause.allParked();
}

// Order of events across clients: a request sent after a reservation was gone (its
// delete answered) must not list it.
let tick = 0;

// ---- the clients' shared knowledge -----------------------------------------------------
const held = new Map();     // id -> { id, session, kib, domid (transferred to), dom (made for) }
const gone = new Map();     // id -> ms when its delete (or purging login) was answered
const sessions = new Map(); // session -> { loginEpoch }
const booting = new Map();  // domid -> initial reservation, for soak-made domains

const KNOWN_ERRORS = new Set(['Cannot_free_this_much_memory', 'Domains_refused_to_cooperate',
                              'Unknown_reservation', 'No_reservation', 'Invalid_memory_value',
                              'Internal_error']);

// Well-formed xapi-style reply: {result, error, id}, exactly one of them set, a known
// error variant. Returns the parsed reply or null.
function wellFormed(method, sent, res) {
    let j;
    try {
        j = JSON.parse(res.text);
    } catch (e) {
        check('every reply is well-formed', false, `${method}: not JSON: ${res.text.slice(0, 200)}`);
        return null;
    }
    const keys = j && typeof j === 'object' ? Object.keys(j).sort().join(',') : '';
    let ok = res.status === 200 && keys === 'error,id,result' && j.id === sent;
    if (ok && j.error !== null) {
        const e = j.error;
        const name = Array.isArray(e) ? e[0] : e;
        ok = j.result === null && KNOWN_ERRORS.has(name) &&
             (name === 'No_reservation' ? e === name : Array.isArray(e) && e.length === 2);
    }
    check('every reply is well-formed', ok, () => `${method}: HTTP ${res.status}: ${res.text.slice(0, 200)}`);
    return ok ? j : null;
}

let nextId = 1;
const allClients = [];
class Client {
    constructor(name) {
        allClients.push(this);
        this.name = name;
        this.session = name;
        this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        sessions.set(this.session, { loginEpoch: 0 });
    }

    // One JSON-RPC call (xapi style) after the gate. Returns the parsed reply or null.
    async call(method, params, raw = false) {
        if (!raw) await gate();
        const id = nextId++;
        const body = JSON.stringify({ method, params, id });
        let res;
        try {
            res = await request(this.agent, 'POST', '/', body);
        } catch (e) {
            check('every request is answered', false, `${method}: ${e.message}`);
            return null;
        }
        figures.ops++;
        check('every request is answered', true);
        return wellFormed(method, id, res);
    }

    async get(path, raw = false) {
        if (!raw) await gate();
        let res;
        const sentAt = ++tick;
        try {
            res = await request(this.agent, 'GET', path);
        } catch (e) {
            check('every request is answered', false, `GET ${path}: ${e.message}`);
            return null;
        }
        figures.ops++;
        check('every request is answered', true);
        if (path !== '/status') {
            check('every reply is well-formed', res.status === 200, `GET ${path}: ${res.status}`);
            return res.text;
        }
        let j;
        try {
            j = JSON.parse(res.text);
        } catch (e) {
            j = null;
        }
        const ok = res.status === 200 && j !== null && ['cache', 'daemon', 'domains', 'host',
            'operation_totals', 'operations', 'reservations'].every((k) => k in j);
        check('every reply is well-formed', ok, () => `GET /status: ${res.text.slice(0, 200)}`);
        if (ok) j.sentAt = sentAt;
        return ok ? j : null;
    }

    // A result that is not an error; anything else is a failed check.
    expectOk(what, reply) {
        if (reply === null) return false;
        return check('no unexpected error', reply.error === null,
                     () => `${this.name}: ${what}: ${JSON.stringify(reply.error)}`);
    }

    // After a step: every reservation this client holds is listed exactly once, as it
    // knows it; none that was gone before the request was sent is listed.
    checkOwn(st) {
        if (st === null) return;
        const count = new Map();
        for (const r of st.reservations) count.set(r.id, (count.get(r.id) || 0) + 1);
        for (const r of held.values()) {
            if (r.session !== this.session) continue;
            const listed = st.reservations.find((x) => x.id === r.id);
            const want = `${r.kib}:${r.domid === undefined ? '-' : r.domid}:${r.session}`;
            const got = listed && `${listed.kib}:${listed.domid === undefined ? '-' : listed.domid}:${listed.session}`;
            check('own reservations listed exactly once while held',
                  count.get(r.id) === 1 && got === want,
                  () => `${this.name}: ${r.id} listed ${count.get(r.id) || 0} times as ${got}, want ${want}`);
        }
        for (const r of st.reservations) {
            const t = gone.get(r.id);
            check('a reservation deleted or purged is never listed again',
                  t === undefined || t > st.sentAt,
                  () => `${this.name}: ${r.id} (${r.session}) listed after it was gone`);
        }
    }

    async status() {
        const st = await this.get('/status');
        this.checkOwn(st);
        return st;
    }

    async login() {
        const mine = [...held.values()].filter((r) => r.session === this.session);
        const others = [...held.values()].filter((r) => r.session !== this.session && !r.deleting)
            .map((r) => ({ r, epoch: sessions.get(r.session).loginEpoch }));
        sessions.get(this.session).loginEpoch++;
        for (const r of mine) r.deleting = true; // going, with this login
        const reply = await this.call('login', ['soak', this.session]);
        if (!this.expectOk('login', reply)) return;
        figures.logins++;
        const now = ++tick;
        for (const r of mine) {
            held.delete(r.id);
            gone.set(r.id, now);
            figures.purged++;
        }
        const st = await this.status();
        if (st === null) return;
        check('login purges exactly that service\'s reservations',
              !st.reservations.some((x) => x.session === this.session),
              () => `${this.name}: still listed after login: ${JSON.stringify(st.reservations.filter((x) => x.session === this.session))}`);
        for (const { r, epoch } of others) {
            if (r.deleting || !held.has(r.id) || sessions.get(r.session).loginEpoch !== epoch)
                continue;
            check('login purges exactly that service\'s reservations',
                  st.reservations.some((x) => x.id === r.id),
                  () => `${this.name}: login lost ${r.session}'s ${r.id}`);
        }
    }

    // reserve_memory or reserve_memory_range; returns the reservation or null.
    async reserve(maxKib) {
        let reply;
        let kib;
        if (rand() < 0.5) {
            kib = pages(between(16 * MIB, maxKib));
            reply = await this.call('reserve_memory', ['soak', this.session, kib]);
        } else {
            const min = pages(between(16 * MIB, maxKib / 2));
            const max = pages(between(min, maxKib));
            reply = await this.call('reserve_memory_range', ['soak', this.session, min, max]);
            if (reply !== null && reply.error === null) {
                const ok = Array.isArray(reply.result) && reply.result.length === 2 &&
                           typeof reply.result[0] === 'string' && Number.isInteger(reply.result[1]) &&
                           reply.result[1] >= min && reply.result[1] <= max;
                check('every reply is well-formed', ok,
                      () => `reserve_memory_range ${min}..${max}: ${JSON.stringify(reply.result)}`);
                if (!ok) return null;
                kib = reply.result[1];
                reply = { result: reply.result[0], error: null };
            }
        }
        if (reply === null) return null;
        if (reply.error !== null) {
            const name = reply.error[0];
            if (name === 'Cannot_free_this_much_memory') figures.cannot_free++;
            else if (name === 'Domains_refused_to_cooperate') figures.refused++;
            else check('no unexpected error', false, `${this.name}: reserve: ${JSON.stringify(reply.error)}`);
            await this.status();
            return null;
        }
        const id = reply.result;
        check('every reply is well-formed', typeof id === 'string' && /^[0-9a-f-]{36}$/.test(id),
              () => `reserve: ${JSON.stringify(id)}`);
        check('a new reservation id is new', !held.has(id) && !gone.has(id), () => `${this.name}: ${id} again`);
        const r = { id, session: this.session, kib };
        held.set(id, r);
        figures.granted++;
        await this.status();
        return r;
    }

    async remove(r) {
        r.deleting = true;
        const reply = await this.call('delete_reservation', ['soak', this.session, r.id]);
        if (!this.expectOk(`delete ${r.id}`, reply)) return;
        held.delete(r.id);
        gone.set(r.id, ++tick);
        await this.status();
    }

    // Make a domain for r as xenopsd does. bootAfter: seconds.
    async makeDomain(domid, r, bootAfter, rate) {
        const min = pages(Math.max(PAGE, Math.floor(r.kib / 2)));
        const reply = await this.call('sim.create_domain', [{
            domid, type: pick(['hvm', 'pv', 'pvinpvh']), dynamic_min_kib: min,
            dynamic_max_kib: r.kib, target_kib: r.kib, maxmem_kib: r.kib,
            initial_reservation_kib: r.kib, boot_after_s: bootAfter,
            balloon: { model: 'ideal', rate_kib_s: rate },
        }]);
        if (!this.expectOk(`create domain ${domid}`, reply)) return false;
        booting.set(domid, r.kib);
        r.dom = domid;
        figures.domains_created++;
        return true;
    }

    async transfer(r, domid) {
        const reply = await this.call('transfer_reservation_to_domain',
                                      ['soak', this.session, r.id, domid]);
        if (!this.expectOk(`transfer ${r.id} to ${domid}`, reply)) return false;
        r.domid = domid;
        await this.status();
        return true;
    }

    async destroy(domid) {
        const reply = await this.call('sim.destroy_domain', [domid]);
        if (!this.expectOk(`destroy domain ${domid}`, reply)) return;
        booting.delete(domid);
        for (const r of held.values())
            if (r.dom === domid) r.domGone = true;
        figures.domains_destroyed++;
    }
}

// ---- the workers ------------------------------------------------------------------------
async function worker(i) {
    try {
        await workerLoop(i);
    } finally {
        leave();
    }
}

async function workerLoop(i) {
    const c = new Client(`soak-w${i}`);
    const domids = [];
    let seq = 0;
    await c.login();
    while (!stopping) {
        const roll = rand();
        if (roll < 0.07) {
            await c.login();
            continue;
        }
        const r = await c.reserve(512 * MIB);
        if (r === null) continue;
        const what = rand();
        if (what < 0.35) {
            await c.remove(r);
        } else if (what < 0.5) {
            // Kept, as by a client that crashed: its next login purges it.
        } else {
            let domid;
            do {
                domid = 100 + i * 200 + (seq++ % 200);
            } while (domids.includes(domid));
            if (!(await c.makeDomain(domid, r, between(1, 40) / 10, between(256, 2048) * MIB)))
                continue;
            domids.push(domid);
            if (!(await c.transfer(r, domid))) continue;
            const q = await c.call('query_reservation_of_domain', ['soak', c.session, domid]);
            if (c.expectOk(`query ${domid}`, q))
                check('query_reservation_of_domain finds the reservation', q.result === r.id,
                      () => `${c.name}: domain ${domid}: ${JSON.stringify(q.result)}, want ${r.id}`);
            await c.remove(r);
            while (domids.length > 3) await c.destroy(domids.shift());
        }
    }
}

// ---- chaos ------------------------------------------------------------------------------
const GUESTS = [1, 2, 3, 4, 5, 6];
async function chaos() {
    try {
        await chaosLoop();
    } finally {
        leave();
    }
}

async function chaosLoop() {
    const c = new Client('soak-chaos');
    await c.login();
    let seq = 0;
    while (!stopping) {
        const roll = rand();
        if (roll < 0.4) {
            const r = await c.call('sim.advance', [between(5, 200) / 100]);
            c.expectOk('sim.advance', r);
        } else if (roll < 0.55) {
            const m = rand();
            const balloon = m < 0.3 ? { model: 'stuck' }
                : m < 0.6 ? { model: 'intermittent', rate_kib_s: between(128, 1024) * MIB,
                              period_s: between(5, 30) / 10 }
                : { model: 'ideal', rate_kib_s: between(64, 1024) * MIB };
            c.expectOk('sim.set_balloon', await c.call('sim.set_balloon', [pick(GUESTS), balloon]));
        } else if (roll < 0.65) {
            const min = pages(between(256 * MIB, 1024 * MIB));
            const max = pages(between(min, 2048 * MIB));
            c.expectOk('sim.set_dynamic_range',
                       await c.call('sim.set_dynamic_range', [pick(GUESTS), min, max]));
        } else if (roll < 0.72) {
            const r = await c.call('balance_memory', ['soak']);
            if (r !== null && r.error !== null && r.error[0] !== 'Cannot_free_this_much_memory' &&
                r.error[0] !== 'Domains_refused_to_cooperate')
                check('no unexpected error', false, `balance_memory: ${JSON.stringify(r.error)}`);
        } else if (roll < 0.85) {
            // A domain destroyed while it boots on its transferred reservation.
            const r = await c.reserve(256 * MIB);
            if (r === null) continue;
            const domid = 9000 + (seq++ % 500);
            if (!(await c.makeDomain(domid, r, 3600, between(64, 512) * MIB))) continue;
            if (!(await c.transfer(r, domid))) continue;
            if (rand() < 0.5) c.expectOk('sim.advance', await c.call('sim.advance', [0.1]));
            await c.destroy(domid);
            await c.status();
            await c.remove(r);
        } else if (roll < 0.9) {
            for (const p of ['/metrics', '/healthz']) await c.get(p);
            await c.status();
        } else {
            const w = await c.call('sim.state', []);
            if (c.expectOk('sim.state', w))
                check('no violation recorded by the simulated host', w.result.violations.length === 0,
                      () => JSON.stringify(w.result.violations.slice(0, 3)));
        }
    }
}

// ---- the exact checks at quiescent points ----------------------------------------------
const checker = new Client('soak-check');
sessions.delete('soak-check');

function memoryCheck(st, world) {
    const live = new Set(world.domains.map((d) => d.domid));
    // What the clients hold.
    const want = [...held.values()].map((r) => `${r.id}:${r.session}:${r.kib}:${r.domid === undefined ? '-' : r.domid}`).sort();
    const got = st.reservations.map((r) => `${r.id}:${r.session}:${r.kib}:${r.domid === undefined ? '-' : r.domid}`).sort();
    check('status lists exactly the reservations held (quiescent points)',
          want.join(',') === got.join(','),
          () => `held ${want.length}, listed ${got.length}; only held: ${want.filter((x) => !got.includes(x)).slice(0, 3)}; only listed: ${got.filter((x) => !want.includes(x)).slice(0, 3)}`);
    // The daemon's own figure: the untransferred reservations (server/reservations.h).
    let daemonFigure = 0;
    for (const r of held.values())
        if (r.domid === undefined) daemonFigure += r.kib;
    check('status reservations_kib is exact (quiescent points)',
          st.host.reservations_kib === daemonFigure,
          () => `status ${st.host.reservations_kib}, held ${daemonFigure}`);
    // The memory.
    let reserved = 0;
    for (const r of held.values())
        if (r.domid === undefined && (r.dom === undefined || r.domGone || !live.has(r.dom)))
            reserved += r.kib;
    let grow = 0;
    for (const d of world.domains) {
        let reach = d.actual_kib;
        if (!d.can_balloon && booting.has(d.domid)) reach = Math.min(booting.get(d.domid), d.maxmem_kib);
        // A balloon driver never grows past its target (issue 10): only the part of the
        // target not yet reached can still be taken.
        else if (d.can_balloon) reach = Math.min(d.target_kib, d.maxmem_kib);
        grow += Math.max(0, reach - d.actual_kib);
    }
    const need = reserved + st.host.reserved_kib;
    const have = world.free_kib - grow;
    figures.min_margin_kib = Math.min(figures.min_margin_kib, have - need);
    check('reservations + host reserve <= the host\'s guaranteed free memory (quiescent points)',
          need <= have,
          () => `t=${world.time_s}s: reservations ${reserved} + reserve ${st.host.reserved_kib} = ${need} KiB > free ${world.free_kib} - growth ${grow} = ${have} KiB`);
    check('no violation recorded by the simulated host', world.violations.length === 0,
          () => JSON.stringify(world.violations.slice(0, 3)));
    for (const d of world.domains)
        if (d.can_balloon) booting.delete(d.domid);
}

async function quiescentCheck() {
    let release;
    const p = { parked: 0 };
    p.resume = new Promise((r) => { release = r; });
    const all = new Promise((r) => { p.allParked = r; });
    pause = p;
    if (p.parked === active) p.allParked();
    await all;
    const w = await checker.call('sim.state', [], true);
    const st = await checker.get('/status', true);
    if (w !== null && st !== null && checker.expectOk('sim.state', w)) {
        memoryCheck(st, w.result);
        figures.barriers++;
    }
    pause = null;
    release();
}

// A figure of /proc/PID/status (VmRSS in KiB, Threads), NaN if unreadable.
function procStatus(key) {
    try {
        const m = new RegExp(`${key}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${opts.pid}/status`, 'utf8'));
        return m ? Number(m[1]) : NaN;
    } catch (e) {
        return NaN;
    }
}
const rssKib = () => procStatus('VmRSS');

// ---- run ------------------------------------------------------------------------------
async function main() {
    const t0 = Date.now();
    const threadsIdle = procStatus('Threads'); // before any client connected
    const runners = [];
    active = opts.clients + 1;
    for (let i = 0; i < opts.clients; i++) runners.push(worker(i));
    runners.push(chaos());
    let rssStart = NaN;
    let opsAtWarm = 0;
    let tWarm = t0;
    while (Date.now() - t0 < opts.seconds * 1000) {
        await new Promise((r) => setTimeout(r, BARRIER_MS));
        await quiescentCheck();
        if (Number.isNaN(rssStart) && Date.now() - t0 >= WARMUP_S * 1000) {
            rssStart = rssKib();
            opsAtWarm = figures.ops;
            tWarm = Date.now();
        }
    }
    stopping = true;
    const ended = Promise.all(runners);
    // Clients finish their step; one may be parked: let it through.
    await ended;
    await quiescentCheck();
    const rssBusy = rssKib();
    const secs = (Date.now() - t0) / 1000;

    // Every reservation left can be deleted; afterwards none is listed.
    const owners = new Map();
    for (const r of [...held.values()]) {
        if (!owners.has(r.session)) owners.set(r.session, new Client(r.session));
        await owners.get(r.session).remove(r);
    }
    const st = await checker.get('/status', true);
    check('status lists exactly the reservations held (quiescent points)',
          st !== null && st.reservations.length === 0, () => `left: ${st && st.reservations.length}`);

    // The clients hang up; once the daemon's connection threads are gone (and with them
    // what the allocator keeps per thread, which grows with their number and life), what
    // is left is what the daemon holds: that is the end figure.
    for (const c of allClients) c.agent.destroy();
    for (let t = 0; t < 60 * opts.scale && procStatus('Threads') > threadsIdle; t++)
        await new Promise((r) => setTimeout(r, 50));
    const rssEnd = rssKib();
    check('RSS measured', !Number.isNaN(rssStart) && !Number.isNaN(rssEnd),
          `start ${rssStart}, end ${rssEnd}`);
    let asan = false, vg = false;
    try {
        const maps = fs.readFileSync(`/proc/${opts.pid}/maps`, 'utf8');
        asan = /libasan/.test(maps);
        vg = /vgpreload/.test(maps);
    } catch (e) {
        asan = vg = false;
    }
    const pct = vg ? RSS_TOLERANCE_PCT_VALGRIND : RSS_TOLERANCE_PCT;
    const limit = rssStart + RSS_TOLERANCE_KIB + Math.floor((rssStart * pct) / 100);
    if (asan) {
        // The sanitizer's allocator, not the daemon, sets this figure: over a default run
        // it ended +2 % to +24 % above the warm-up figure in four fresh-clone runs. Leaks
        // are LeakSanitizer's: test_soak.sh fails on any sanitizer report at the stop.
        console.log(`# soak: RSS under AddressSanitizer (not checked): warm ${rssStart} KiB, ` +
                    `end ${rssEnd} KiB`);
    } else {
        check(`the daemon's RSS stays flat (end <= warm + ${RSS_TOLERANCE_KIB} KiB + ${pct}%${vg ? ', valgrind' : ''})`,
              rssEnd <= limit, `warm ${rssStart} KiB, end ${rssEnd} KiB, limit ${limit} KiB`);
    }
    check('the soak did real work', figures.ops >= 200 && figures.granted >= 20 &&
          figures.barriers >= 5 && figures.domains_created >= 5,
          JSON.stringify(figures));

    const perKop = (figures.ops - opsAtWarm) > 0
        ? ((rssEnd - rssStart) * 1000) / (figures.ops - opsAtWarm) : 0;
    console.log(`# figures: ${figures.ops} operations in ${secs.toFixed(1)} s ` +
                `(${(figures.ops / secs).toFixed(0)} ops/s), ${opts.clients} workers + chaos, ` +
                `seed ${opts.seed}; RSS ${rssStart} KiB after ${WARMUP_S} s warm-up, ` +
                `${rssBusy} KiB at the end of the load, ${rssEnd} KiB once the clients hung up ` +
                `(${(rssEnd - rssStart) >= 0 ? '+' : ''}${rssEnd - rssStart} KiB, ` +
                `${perKop.toFixed(1)} KiB per 1000 ops since warm-up, ` +
                `${((Date.now() - tWarm) / 1000).toFixed(1)} s)`);
    console.log(`# figures: reservations granted ${figures.granted}, cannot_free ${figures.cannot_free}, ` +
                `refused ${figures.refused}, logins ${figures.logins} (purged ${figures.purged}), ` +
                `domains created ${figures.domains_created}, destroyed ${figures.domains_destroyed}, ` +
                `quiescent checks ${figures.barriers} (smallest margin of guaranteed free memory ` +
                `over reservations + reserve: ${figures.min_margin_kib} KiB)`);
    let failed = 0;
    for (const [name, c] of checks) {
        if (c.failed === 0) {
            console.log(`PASS: soak: ${name} (${c.ok} checks)`);
        } else {
            failed++;
            console.log(`FAIL: soak: ${name}: ${c.failed} of ${c.ok + c.failed} failed; first: ` +
                        c.first.join(' | '));
        }
    }
    process.exit(failed ? 1 : 0);
}

main().catch((e) => {
    console.log(`FAIL: soak: ${e.stack}`);
    process.exit(1);
});
