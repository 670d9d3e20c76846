// SPDX-License-Identifier: LGPL-2.1-only
// Checks openapi.json: valid OpenAPI (a real validator), every $ref resolves, every
// component schema compiles as JSON Schema 2020-12, and the examples in the document
// (params of every JSON-RPC method, requests built from them, the /status example)
// match their schemas. Prints one "PASS: name" or "FAIL: name reason" line per check;
// exits 1 if any failed.
// Usage: node validate.mjs path/to/openapi.json
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

console.log(`${failed === 0 ? "openapi.json is valid" : `${failed} check(s) failed`}`);
process.exit(failed === 0 ? 0 : 1);
