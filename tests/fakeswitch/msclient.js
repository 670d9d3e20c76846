#!/usr/bin/env node
// SPDX-License-Identifier: LGPL-2.1-only
// A Memory client speaking the frames xenopsd's Memory_client sends through the
// message-switch: xapi-idl Xcp_client.json_switch_rpc over message-switch
// unix/protocol_unix.ml Client.connect / Client.rpc, written byte for byte as cohttp
// writes them (request line, host / user-agent / content-length / connection headers).
//
//   connection A: GET /login/TOKEN, connection B: GET /login/TOKEN,
//   A: GET /transient/TOKEN (the reply queue), B: POST /transfer long-poll on it;
//   per call: A: GET /persistent/org.xen.xapi.memory,
//             A: POST /request/org.xen.xapi.memory/TOKEN with the JSON-RPC v1 call,
//             then B's transfer brings the Response; B: GET /ack/TOKEN/ID.
//
// usage: msclient.js SOCK CALLS.json [--timeout-s N]
//   CALLS.json: [["method", [params...]], ...]; the JSON call is
//   {"method":M,"params":[...],"id":N} (Jsonrpc.string_of_call, V1, ids from 1).
//   A parameter "$N" (a whole string) is replaced by the result of call N (from 0), so
//   a reservation id can be passed on. Prints one line per call: "METHOD PAYLOAD".
'use strict';
const net = require('net');
const fs = require('fs');

const [sockPath, callsPath] = process.argv.slice(2);
const ti = process.argv.indexOf('--timeout-s');
const timeoutS = ti > 0 ? parseFloat(process.argv[ti + 1]) : 60;
const QUEUE = 'org.xen.xapi.memory';
const token = `xenopsd-test:${process.pid}`;
const calls = JSON.parse(fs.readFileSync(callsPath, 'utf8'));

// Uri.make ~path: keep unreserved, sub-delims, ':' '@'.
function enc(s) {
    return s.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@]/g, (c) =>
        [...Buffer.from(c)].map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''));
}

class Conn {
    constructor(path) {
        this.sock = net.createConnection(path);
        this.buf = Buffer.alloc(0);
        this.pending = [];
        this.sock.on('data', (d) => {
            this.buf = Buffer.concat([this.buf, d]);
            this.parse();
        });
        this.sock.on('error', (e) => this.failAll(e));
        this.sock.on('close', () => this.failAll(new Error('connection closed')));
    }
    failAll(e) {
        for (const p of this.pending) p.reject(e);
        this.pending = [];
    }
    parse() {
        for (;;) {
            const end = this.buf.indexOf('\r\n\r\n');
            if (end < 0 || this.pending.length === 0) return;
            const head = this.buf.slice(0, end).toString('latin1');
            const status = parseInt(head.split(' ')[1], 10);
            const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
            const len = m ? parseInt(m[1], 10) : 0;
            if (this.buf.length < end + 4 + len) return;
            const body = this.buf.slice(end + 4, end + 4 + len).toString('utf8');
            this.buf = this.buf.slice(end + 4 + len);
            this.pending.shift().resolve({ status, body });
        }
    }
    // In.to_request + In.headers + cohttp's Request.make (host) and Request.write.
    frame(meth, path, body) {
        const b = Buffer.from(body || '', 'utf8');
        const head =
            `${meth} ${path} HTTP/1.1\r\nhost: localhost\r\nuser-agent: cohttp\r\n` +
            `content-length: ${b.length}\r\nconnection: keep-alive\r\n\r\n`;
        return new Promise((resolve, reject) => {
            this.pending.push({ resolve, reject });
            this.sock.write(Buffer.concat([Buffer.from(head, 'latin1'), b]));
        }).then((r) => {
            if (r.status !== 200) throw new Error(`${meth} ${path}: HTTP ${r.status} ${r.body}`);
            return r.body;
        });
    }
    close() {
        this.sock.destroy();
    }
}

async function main() {
    const a = new Conn(sockPath);
    await a.frame('GET', `/login/${enc(token)}`);
    const b = new Conn(sockPath);
    await b.frame('GET', `/login/${enc(token)}`);
    const replyQueue = await a.frame('GET', `/transient/${enc(token)}`);
    const wakers = new Map(); // "queue,id" -> resolve
    const early = new Map();
    let from = null;
    let stop = false;
    (async () => {
        while (!stop) {
            const t = from === null
                ? `{"timeout":30.0,"queues":[${JSON.stringify(replyQueue)}]}`
                : `{"from":${JSON.stringify(from)},"timeout":30.0,"queues":[${JSON.stringify(replyQueue)}]}`;
            let r;
            try {
                r = JSON.parse(await b.frame('POST', '/transfer', t));
            } catch (e) {
                if (!stop) {
                    process.stderr.write(`msclient: transfer: ${e.message}\n`);
                    process.exit(1);
                }
                return;
            }
            const msgs = r.messages.slice().sort((x, y) => x[0][1] - y[0][1]);
            for (const [[q, id], m] of msgs) {
                if (m.kind[0] !== 'Response') continue;
                const key = `${m.kind[1][0]},${m.kind[1][1]}`;
                await b.frame('GET', `/ack/${enc(q)}/${id}`);
                const w = wakers.get(key);
                if (w) {
                    wakers.delete(key);
                    w(m.payload);
                } else {
                    // As Protocol_unix: "no wakener for id": a second answer, acked, dropped.
                    process.stderr.write(`msclient: no wakener for id ${key}\n`);
                    early.set(key, m.payload);
                }
            }
            if (msgs.length > 0) from = r.next;
        }
    })();
    let id = 0;
    const results = [];
    const subst = (v) =>
        typeof v === 'string' && /^\$\d+$/.test(v) ? results[parseInt(v.slice(1), 10)]
            : Array.isArray(v) ? v.map(subst)
            : v !== null && typeof v === 'object'
                ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, subst(x)]))
                : v;
    for (const [method, rawParams] of calls) {
        const params = subst(rawParams);
        const call = JSON.stringify({ method, params, id: ++id });
        await a.frame('GET', `/persistent/${enc(QUEUE)}`);
        const sent = JSON.parse(await a.frame('POST', `/request/${enc(QUEUE)}/${enc(replyQueue)}`, call));
        if (sent.length === 0) throw new Error('queue deleted');
        const key = `${sent[0][0]},${sent[0][1]}`;
        const payload = await new Promise((resolve, reject) => {
            wakers.set(key, resolve);
            setTimeout(() => reject(new Error(`${method}: no reply in ${timeoutS} s`)), timeoutS * 1000);
        });
        process.stdout.write(`${method} ${payload}\n`);
        try {
            results.push(JSON.parse(payload).result);
        } catch (e) {
            results.push(null);
        }
    }
    stop = true;
    a.close();
    b.close();
    process.exit(0);
}
main().catch((e) => {
    process.stderr.write(`msclient: ${e.message}\n`);
    process.exit(1);
});
