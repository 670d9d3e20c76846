// SPDX-License-Identifier: LGPL-2.1-only
// Checks openapi.json: valid OpenAPI (a real validator), every $ref resolves, every
// component schema compiles as JSON Schema 2020-12, and the examples in the document
// (params of every JSON-RPC method, requests built from them, the /status example)
// match their schemas. With --live URL it also checks real replies of a running daemon
// (simulated host, virtual clock, scenarios/e2e-stuck.json): every method called with
// success and with errors, in both styles and in a batch; each result against its
// method's result schema, each error against ErrorData and the method's error list, and
// GET /status against Status. Prints one "PASS: name" or "FAIL: name reason" line per
// check; exits 1 if any failed.
// Usage: node validate.mjs path/to/openapi.json [--live http://127.0.0.1:PORT
//        [--token-file FILE]] (the daemon's bearer token: changing calls over TCP need it)
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";

const file = process.argv[2];
let failed = 0;
const pass = (name) => console.log(`PASS: ${name}`);
const fail = (name, why) => {
    failed++;
    console.log(`FAIL: ${name} ${why}`);
};

if (!file) {
    fail("openapi: arguments", "usage: node validate.mjs openapi.json");
    process.exit(1);
}

let doc;
try {
    doc = JSON.parse(readFileSync(file, "utf8"));
    pass("openapi: openapi.json is JSON");
} catch (e) {
    fail("openapi: openapi.json is JSON", String(e.message));
    process.exit(1);
}

const validator = new Validator();
const res = await validator.validate(doc);
if (res.valid) {
    pass(`openapi: valid OpenAPI ${validator.version}`);
} else {
    fail("openapi: valid OpenAPI", JSON.stringify(res.errors, null, 1).slice(0, 3000));
}

// Every local $ref points somewhere.
function pointer(root, ref) {
    let node = root;
    for (const raw of ref.slice(2).split("/")) {
        const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
        if (node === null || typeof node !== "object" || !(key in node)) return undefined;
        node = node[key];
    }
    return node;
}
const badRefs = [];
(function walk(node) {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== "object") return;
    for (const [k, v] of Object.entries(node)) {
        if (k === "$ref" && typeof v === "string") {
            if (!v.startsWith("#/") || pointer(doc, v) === undefined) badRefs.push(v);
        } else {
            walk(v);
        }
    }
})(doc);
if (badRefs.length === 0) pass("openapi: every $ref resolves");
else fail("openapi: every $ref resolves", badRefs.join(", "));

// The component schemas as one JSON Schema 2020-12 document.
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addKeyword("example");
ajv.addFormat("date-time", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
const schemas = (doc.components && doc.components.schemas) || {};
try {
    ajv.addSchema({ $id: "doc", components: { schemas } });
    for (const name of Object.keys(schemas)) ajv.getSchema(`doc#/components/schemas/${name}`);
    pass("openapi: component schemas compile (JSON Schema 2020-12)");
} catch (e) {
    fail("openapi: component schemas compile (JSON Schema 2020-12)", String(e.message));
    process.exit(1);
}
const check = (name, schemaRef, value) => {
    const v = ajv.getSchema(`doc${schemaRef}`);
    if (!v) return fail(name, `no schema ${schemaRef}`);
    if (v(value)) pass(name);
    else fail(name, `${JSON.stringify(value)}: ${ajv.errorsText(v.errors)}`);
};
const checkNot = (name, schemaRef, value) => {
    const v = ajv.getSchema(`doc${schemaRef}`);
    if (v && !v(value)) pass(name);
    else fail(name, `${JSON.stringify(value)} should not match ${schemaRef}`);
};

// Component examples match their own schemas.
for (const [name, s] of Object.entries(schemas)) {
    if (s && typeof s === "object" && "example" in s)
        check(`openapi: example of ${name}`, `#/components/schemas/${name}`, s.example);
}

// Each method: its params' examples, and requests built from them in every form.
const methods = doc["x-jsonrpc-methods"] || {};
if (Object.keys(methods).length === 0) fail("openapi: x-jsonrpc-methods", "missing or empty");
for (const [name, m] of Object.entries(methods)) {
    const reqRef = `#/components/schemas/Request_${name.replace(".", "_")}`;
    const params = (m.params || []).filter((p) => p.name !== "dbg");
    const missing = params.filter((p) => !("example" in p));
    if (missing.length) {
        fail(`openapi: ${name} params have examples`, missing.map((p) => p.name).join(", "));
        continue;
    }
    const values = params.map((p) => p.example);
    const named = Object.fromEntries(params.map((p) => [p.name, p.example]));
    check(`openapi: ${name} xapi request`, reqRef, { method: name, params: ["dbg", ...values], id: 1 });
    check(`openapi: ${name} 2.0 positional request`, reqRef, {
        jsonrpc: "2.0",
        method: name,
        params: ["dbg", ...values],
        id: 1,
    });
    check(`openapi: ${name} 2.0 named request`, reqRef, { jsonrpc: "2.0", method: name, params: named, id: "x" });
    check(`openapi: ${name} request is a Request`, "#/components/schemas/Request", {
        jsonrpc: "2.0",
        method: name,
        params: { dbg: "d", ...named },
        id: 2,
    });
    if (m.sim) check(`openapi: ${name} request without dbg`, reqRef, { method: name, params: values });
    checkNot(`openapi: ${name} refuses an unknown named param`, reqRef, {
        jsonrpc: "2.0",
        method: name,
        params: { ...named, no_such_param: 1 },
        id: 1,
    });
    if (!Array.isArray(m.errors)) fail(`openapi: ${name} lists its errors`, "no errors array");
    if (!m.result) fail(`openapi: ${name} has a result schema`, "no result");
}

// The replies in the document's examples are replies.
for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
        const content = op.responses && op.responses["200"] && op.responses["200"].content;
        for (const [type, media] of Object.entries(content || {})) {
            const s = media.schema;
            for (const [ex, e] of Object.entries(media.examples || {}))
                if (s && s.$ref) check(`openapi: ${method.toUpperCase()} ${path} example ${ex}`, s.$ref, e.value);
        }
    }
}


// ---- real replies of a running daemon --------------------------------------------
const liveAt = process.argv.indexOf("--live");
if (liveAt > 0) {
    const base = process.argv[liveAt + 1];
    const tokenAt = process.argv.indexOf("--token-file");
    const token = tokenAt > 0 ? readFileSync(process.argv[tokenAt + 1], "utf8").trim() : "";
    const post = async (body, withToken = true) => {
        const headers = { "Content-Type": "application/json" };
        if (token && withToken) headers.Authorization = `Bearer ${token}`;
        const r = await fetch(base + "/", {
            method: "POST",
            headers,
            body: JSON.stringify(body),
            signal: AbortSignal.timeout(20000),
        });
        const text = await r.text();
        return { status: r.status, body: text ? JSON.parse(text) : null };
    };
    // Every method's result is a $ref into the components (checked here too).
    const validator = (schema) =>
        (schema && schema.$ref && ajv.getSchema(`doc${schema.$ref}`)) ||
        Object.assign(() => false, { errors: [{ message: "the result schema is not a $ref" }] });
    const resultChecked = new Set();
    const errorsSeen = new Set();
    // One call, checked: the envelope (RpcReply), then the result against the method's
    // result schema, or the error against ErrorData and the method's errors.
    const call = async (label, method, params, v2 = true, expect = "any") => {
        const req = v2 ? { jsonrpc: "2.0", method, params, id: label } : { method, params, id: label };
        let rep;
        try {
            rep = await post(req);
        } catch (e) {
            return fail(`live: ${label}`, String(e));
        }
        const name = `live: ${label} (${method}, ${v2 ? "2.0" : "xapi"})`;
        const envelope = ajv.getSchema("doc#/components/schemas/RpcReply");
        if (rep.status !== 200 || !envelope(rep.body))
            return fail(name, `HTTP ${rep.status} ${JSON.stringify(rep.body)}: ${ajv.errorsText(envelope.errors)}`);
        const m = methods[method];
        const err = v2 ? rep.body.error : rep.body.error;
        if (err === undefined || err === null) {
            if (expect === "error") return fail(name, `expected an error, got ${JSON.stringify(rep.body)}`);
            const v = validator(m.result);
            if (!v(rep.body.result))
                return fail(name, `result ${JSON.stringify(rep.body.result)}: ${ajv.errorsText(v.errors)}`);
            resultChecked.add(method);
            pass(`${name}: result matches its schema`);
            return rep.body.result;
        }
        if (expect === "ok") return fail(name, `expected a result, got ${JSON.stringify(err)}`);
        const variant = v2 ? err.data : err;
        const tag = Array.isArray(variant) ? variant[0] : variant;
        if (v2) {
            const v = ajv.getSchema("doc#/components/schemas/ErrorData");
            if (!v(err.data)) return fail(name, `data ${JSON.stringify(err.data)}: ${ajv.errorsText(v.errors)}`);
        }
        if (v2 && err.code !== -32000) {
            pass(`${name}: error ${err.code} is documented`);
            return err;
        }
        if (!(m.errors || []).includes(tag))
            return fail(name, `error ${tag} is not among ${method}'s documented errors ${JSON.stringify(m.errors)}`);
        errorsSeen.add(`${method}/${tag}`);
        pass(`${name}: error ${tag} is documented and matches its schema`);
        return err;
    };

    await call("login", "login", ["d", "xenopsd"], true, "ok");
    await call("login-xapi", "login", ["d", "xenopsd"], false, "ok");
    const id = await call("reserve", "reserve_memory", ["d", "xenopsd", 1024], true, "ok");
    await call("reserve-xapi", "reserve_memory", { session_id: "xenopsd", kib: 2048 }, true, "ok");
    const range = await call("range", "reserve_memory_range",
        { dbg: "d", session_id: "xenopsd", min_kib: 4096, max_kib: 8192 }, true, "ok");
    await call("query-none", "query_reservation_of_domain", ["d", "xenopsd", 1], true, "error");
    await call("transfer", "transfer_reservation_to_domain", ["d", "xenopsd", id, 1], true, "ok");
    await call("query", "query_reservation_of_domain", ["d", "xenopsd", 1], false, "ok");
    if (Array.isArray(range))
        await call("delete", "delete_reservation", ["d", "xenopsd", range[0]], true, "ok");
    await call("delete-unknown", "delete_reservation",
        ["d", "xenopsd", "0b7e2a52-54c5-4f0e-9d43-1b7a1f6ac2d1"], true, "error");
    await call("transfer-unknown", "transfer_reservation_to_domain",
        ["d", "xenopsd", "0b7e2a52-54c5-4f0e-9d43-1b7a1f6ac2d1", 1], false, "error");
    await call("reserve-invalid", "reserve_memory", ["d", "xenopsd", -5], true, "error");
    await call("reserve-unknown-session", "reserve_memory", ["d", "nobody", 1024], true, "error");
    const refused = await call("reserve-refused", "reserve_memory", ["d", "xenopsd", 1572864], true, "error");
    check("live: a refused reservation's data carries the Breakdown", "#/components/schemas/Breakdown",
        refused && refused.data && refused.data[2]);
    await call("reserve-refused-xapi", "reserve_memory", ["d", "xenopsd", 1572864], false, "error");
    // Guest 2 (stuck) holds nothing above its dynamic-min any more: nobody to blame.
    await call("sim-range-2", "sim.set_dynamic_range", [2, 2097152, 2097152], true, "ok");
    const short = await call("range-cannot-free", "reserve_memory_range",
        ["d", "xenopsd", 4194304, 4194304], true, "error");
    check("live: a reservation short of memory: its data carries the Breakdown",
        "#/components/schemas/Breakdown", short && short.data && short.data[2]);
    await call("balance", "balance_memory", ["d"], true, "ok");
    for (const m of ["get_diagnostics", "get_host_reserved_memory", "get_host_initial_free_memory",
        "get_domain_zero_policy", "sim.state"]) {
        await call(m, m, ["d"], true, "ok");
        await call(`${m}-xapi`, m, ["d"], false, "ok");
    }
    await call("sim-create", "sim.create_domain", [methods["sim.create_domain"].params.find((p) => p.name === "domain").example], true, "ok");
    await call("sim-range", "sim.set_dynamic_range", [5, 262144, 262144], true, "ok");
    await call("sim-balloon", "sim.set_balloon", [5, { model: "ideal", rate_kib_s: 100 }], true, "ok");
    await call("sim-advance", "sim.advance", [5], true, "ok");
    await call("sim-claim", "sim.set_claim", [5, 1024], true, "ok");
    await call("sim-claim-clear", "sim.set_claim", [5, 0], true, "ok");
    await call("sim-pause", "sim.pause_domain", [5, true], true, "ok");
    await call("sim-unpause", "sim.pause_domain", [5, false], true, "ok");
    await call("sim-destroy", "sim.destroy_domain", [5], true, "ok");
    await call("sim-destroy-again", "sim.destroy_domain", [5], true, "error");

    // A batch: replies in order, each an RpcReply, the notification left out.
    const b = await post([
        { jsonrpc: "2.0", method: "get_host_reserved_memory", params: ["b"], id: 1 },
        { jsonrpc: "2.0", method: "balance_memory", params: ["b"] },
        { method: "get_domain_zero_policy", params: ["b"], id: 2 },
        7,
    ]);
    check("live: a batch's reply is a BatchReply", "#/components/schemas/BatchReply", b.body);
    if (Array.isArray(b.body) && b.body.length === 3 && b.body[0].id === 1 && b.body[1].id === 2)
        pass("live: a batch: three replies in order, the notification left out");
    else fail("live: a batch: three replies in order", JSON.stringify(b.body));
    const nb = await post([{ jsonrpc: "2.0", method: "balance_memory", params: ["b"] }]);
    if (nb.status === 204 && nb.body === null) pass("live: a batch of notifications: 204, no body");
    else fail("live: a batch of notifications: 204, no body", `${nb.status} ${JSON.stringify(nb.body)}`);

    // Without the token a changing call is refused: 403, the documented envelope, and
    // the error Internal_error (a documented error of every changing method).
    const anon = await post({ method: "balance_memory", params: ["anon"], id: 9 }, false);
    const envelope = ajv.getSchema("doc#/components/schemas/RpcReply");
    const r403 = doc.paths["/"].post.responses["403"];
    if (!token) pass("live: a changing call without the token (no token configured: skipped)");
    else if (anon.status === 403 && r403 && envelope(anon.body) && Array.isArray(anon.body.error) &&
        anon.body.error[0] === "Internal_error" && /^permission denied/.test(anon.body.error[1]))
        pass("live: a changing call without the token: 403 as documented");
    else fail("live: a changing call without the token: 403 as documented",
        `${anon.status} ${JSON.stringify(anon.body)}`);

    const st = await fetch(base + "/status", { signal: AbortSignal.timeout(20000) }).then((r) => r.json());
    check("live: GET /status is a Status", "#/components/schemas/Status", st);
    const missing = Object.keys(methods).filter((m) => !resultChecked.has(m));
    if (missing.length === 0) pass("live: every method's result checked on a real reply");
    else fail("live: every method's result checked on a real reply", missing.join(", "));
    for (const want of ["reserve_memory/Domains_refused_to_cooperate", "reserve_memory_range/Cannot_free_this_much_memory",
        "reserve_memory/Invalid_memory_value", "query_reservation_of_domain/No_reservation",
        "delete_reservation/Unknown_reservation", "reserve_memory/Internal_error"])
        if (errorsSeen.has(want)) pass(`live: error ${want} seen and checked`);
        else fail(`live: error ${want} seen and checked`, "not seen");
}

console.log(`${failed === 0 ? "openapi.json is valid" : `${failed} check(s) failed`}`);
process.exit(failed === 0 ? 0 : 1);
