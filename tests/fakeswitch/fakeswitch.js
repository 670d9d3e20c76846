#!/usr/bin/env node
// SPDX-License-Identifier: LGPL-2.1-only
// A small message-switch for the tests: the frames of xapi-project/xen-api
// ocaml/message-switch (core/protocol.ml In.of_request / Out.to_response, the switch's
// switch/mswitch.ml process_request and switch/q.ml), served over HTTP/1.1 on a unix
// socket, with sessions per connection, persistent and transient queues, long-poll
// transfer, send (request/response), ack, list and diagnostics. Queues live in memory
// only (the real switch keeps them in a redo log with --statedir).
//
// Every frame is logged to --log: "> cN METHOD PATH" with the headers and body as
// received, "< cN STATUS" with the body sent.
//
// usage: fakeswitch.js --path SOCK --log FILE [--stall-response N]
//   --stall-response N: the N-th POST /response is carried out (the reply is queued)
//   but never answered, as if its sender died before it could ack; the log says
//   "STALLED". For the at-most-once test.
'use strict';
const http = require('http');
const fs = require('fs');

const args = process.argv.slice(2);
function opt(name, dflt) {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
}
const sockPath = opt('--path');
const logPath = opt('--log', '/dev/null');
const stallAt = parseInt(opt('--stall-response', '0'), 10);
if (!sockPath) {
    process.stderr.write('usage: fakeswitch.js --path SOCK --log FILE [--stall-response N]\n');
    process.exit(2);
}
const log = fs.openSync(logPath, 'a');
function logf(s) {
    fs.writeSync(log, s.endsWith('\n') ? s : s + '\n');
}

// name -> { owner: session|null, msgs: Map<id, {payload, kind}>, nextId }
const queues = new Map();
// connection id -> session
const sessions = new Map();
let waiters = []; // blocked transfers
let responses = 0;
let connCount = 0;

function kindJson(kind) {
    return kind.request !== undefined ? ['Request', kind.request] : ['Response', kind.response];
}

function transferOf(from, names) {
    const out = [];
    for (const name of names) {
        const q = queues.get(name);
        if (!q) continue;
        const ids = [...q.msgs.keys()].filter((id) => id > from).sort((a, b) => a - b);
        // q.ml folds the map in increasing order consing: the list comes out decreasing.
        for (const id of ids.reverse()) {
            const m = q.msgs.get(id);
            out.push([[name, id], { payload: m.payload, kind: kindJson(m.kind) }]);
        }
    }
    return out;
}

function wake() {
    const still = [];
    for (const w of waiters) {
        const msgs = transferOf(w.from, w.queues);
        if (msgs.length > 0) {
            clearTimeout(w.timer);
            w.done(msgs);
        } else {
            still.push(w);
        }
    }
    waiters = still;
}

function answer(res, conn, status, body) {
    logf(`< c${conn} ${status} ${body}`);
    res.writeHead(status, { 'content-length': Buffer.byteLength(body) });
    res.end(body);
}

function seg(s) {
    return decodeURIComponent(s);
}

const server = http.createServer((req, res) => {
    const conn = req.socket.connId;
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const hdrs = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2)
            hdrs.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        logf(`> c${conn} ${req.method} ${req.url} HTTP/${req.httpVersion} [${hdrs.join('; ')}] ${body}`);
        const parts = req.url.split('/'); // "" first
        const session = sessions.get(conn);
        const m = req.method;
        if (m === 'GET' && parts[1] === 'login' && parts.length === 3) {
            sessions.set(conn, seg(parts[2]));
            return answer(res, conn, 200, '');
        }
        if (m === 'GET' && req.url === '/') {
            return answer(res, conn, 200, JSON.stringify({ queues: [...queues.keys()] }));
        }
        if (session === undefined) return answer(res, conn, 404, 'Please log in.');
        if (m === 'GET' && (parts[1] === 'persistent' || parts[1] === 'transient') && parts.length === 3) {
            const name = seg(parts[2]);
            if (!queues.has(name))
                queues.set(name, { owner: parts[1] === 'transient' ? session : null, msgs: new Map(), nextId: 0 });
            return answer(res, conn, 200, name);
        }
        if (m === 'GET' && parts[1] === 'destroy' && parts.length === 3) {
            queues.delete(seg(parts[2]));
            return answer(res, conn, 200, '');
        }
        if (m === 'GET' && parts[1] === 'ack' && parts.length === 4) {
            const q = queues.get(seg(parts[2]));
            if (q) q.msgs.delete(parseInt(parts[3], 10));
            return answer(res, conn, 200, '');
        }
        if (m === 'GET' && parts[1] === 'list' && parts.length === 3) {
            const p = seg(parts[2]);
            return answer(res, conn, 200, JSON.stringify([...queues.keys()].filter((n) => n.startsWith(p))));
        }
        if (m === 'POST' && req.url === '/transfer') {
            let t;
            try {
                t = JSON.parse(body);
            } catch (e) {
                return answer(res, conn, 404, '');
            }
            const from = t.from === undefined || t.from === null ? -1 : parseInt(t.from, 10);
            const names = t.queues || [];
            const reply = (msgs) => {
                let next = from;
                for (const [[, id]] of msgs) next = Math.max(next, id);
                answer(res, conn, 200, JSON.stringify({ messages: msgs, next: String(next) }));
            };
            const now = transferOf(from, names);
            if (now.length > 0) return reply(now);
            const w = { from, queues: names, done: reply };
            w.timer = setTimeout(() => {
                waiters = waiters.filter((x) => x !== w);
                reply([]);
            }, Math.max(0, (t.timeout || 0) * 1000));
            waiters.push(w);
            req.socket.on('close', () => {
                clearTimeout(w.timer);
                waiters = waiters.filter((x) => x !== w);
            });
            return;
        }
        if (m === 'POST' && (parts[1] === 'request' || parts[1] === 'response')) {
            const name = seg(parts[2]);
            const q = queues.get(name);
            let kind;
            if (parts[1] === 'request' && parts.length === 4) kind = { request: seg(parts[3]) };
            else if (parts[1] === 'response' && parts.length === 5)
                kind = { response: [parts[3], parseInt(parts[4], 10)] };
            else return answer(res, conn, 404, '');
            let out = '[]';
            if (q) {
                const id = q.nextId++;
                q.msgs.set(id, { payload: body, kind });
                out = JSON.stringify([[name, id]]);
                setImmediate(wake);
            }
            if (parts[1] === 'response' && ++responses === stallAt) {
                logf(`STALLED c${conn} response ${responses} (queued as ${out}; no answer sent)`);
                return;
            }
            return answer(res, conn, 200, out);
        }
        if (m === 'POST' && req.url === '/shutdown') {
            answer(res, conn, 200, '');
            setTimeout(() => process.exit(0), 100);
            return;
        }
        return answer(res, conn, 404, '');
    });
});
server.keepAliveTimeout = 0;
server.headersTimeout = 0;
server.requestTimeout = 0;
server.on('connection', (sock) => {
    sock.connId = ++connCount;
    logf(`+ c${sock.connId}`);
    sock.on('close', () => {
        const s = sessions.get(sock.connId);
        sessions.delete(sock.connId);
        logf(`- c${sock.connId}`);
        // As the switch's conn_closed: a session with no connection left loses its
        // transient queues.
        if (s !== undefined && ![...sessions.values()].includes(s))
            for (const [name, q] of queues) if (q.owner === s) queues.delete(name);
    });
});
try {
    fs.unlinkSync(sockPath);
} catch (e) {
    /* none */
}
server.listen(sockPath, () => {
    logf(`fakeswitch listening on ${sockPath}`);
    process.stdout.write(`fakeswitch: ready on ${sockPath}\n`);
});
process.on('SIGTERM', () => process.exit(0));
