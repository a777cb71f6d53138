// Validates Kubernetes objects (multi-document YAML, e.g. `kubectl kustomize`
// output) against the Kubernetes API schemas, offline, with the npm package
// kubernetes-models: types, required fields and enums by its JSON-schema
// validators, and, since those accept unknown fields, every field name
// checked against the API's type declarations that ship with it (a typo such
// as `readOnlyRootFileSystem` is an error, as `kubectl --validate=strict`
// would make it).
//
//   node validate.mjs FILE.yaml     prints "ok KIND NAME" per object, or
//                                   "error KIND NAME: PATH: message"; exit 1
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const modelsDir = path.dirname(require.resolve("kubernetes-models/package.json"));
const machineryDir = path.dirname(require.resolve("@kubernetes-models/apimachinery/package.json",
    { paths: [modelsDir] }));

// ---- field names from the .d.ts declarations ---------------------------------

const ifaceCache = new Map();

// Parses the interface declared in a .d.ts file: {fields: name -> type text,
// imports: type name -> .d.ts path}.
function loadIface(dts) {
    if (ifaceCache.has(dts)) return ifaceCache.get(dts);
    const text = fs.readFileSync(dts, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/import \{ ([^}]+) \} from "([^"]+)";/g)) {
        for (const name of m[1].split(",").map((s) => s.trim())) {
            let target = m[2];
            if (target.startsWith("@kubernetes-models/apimachinery/")) {
                target = path.join(machineryDir, target.slice("@kubernetes-models/apimachinery/".length));
            } else if (target.startsWith(".")) {
                target = path.join(path.dirname(dts), target);
            } else {
                continue;
            }
            imports.set(name, target.replace(/\.js$/, "") + ".d.ts");
        }
    }
    const body = text.match(/export interface I\w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/);
    const fields = new Map();
    if (body) {
        // Fields start at 4 spaces of indent; a type may span lines (maps).
        // Doc comments are dropped first.
        const src = body[1].replace(/\/\*\*[\s\S]*?\*\//g, "");
        const starts = [...src.matchAll(/^ {4}"([^"]+)"\??: /gm)];
        starts.forEach((m, i) => {
            const end = i + 1 < starts.length ? starts[i + 1].index : src.length;
            const type = src.slice(m.index + m[0].length, end).replace(/\s+/g, " ").trim().replace(/;$/, "");
            fields.set(m[1], type);
        });
    }
    const iface = { fields, imports, open: !body };
    ifaceCache.set(dts, iface);
    return iface;
}

// The .d.ts of the object type a field's type text names (after Array<...> and
// maps), or null for strings, numbers, unions of literals, free-form objects.
function refOf(type, iface) {
    let t = type.trim();
    let m;
    for (;;) {
        if ((m = t.match(/^Array<(.+)>$/))) t = m[1].trim();
        else if ((m = t.match(/^\{\s*\[key: string\]: (.+?);?\s*\}$/))) t = m[1].trim();
        else break;
    }
    return iface.imports.get(t) || null;
}

function strictFields(obj, dts, where, errors) {
    if (obj === null || typeof obj !== "object") return;
    const iface = loadIface(dts);
    if (iface.open) return;
    if (Array.isArray(obj)) {
        obj.forEach((v, i) => strictFields(v, dts, `${where}[${i}]`, errors));
        return;
    }
    for (const [k, v] of Object.entries(obj)) {
        const type = iface.fields.get(k);
        if (type === undefined) {
            errors.push(`${where}.${k}: unknown field (not in ${path.basename(dts, ".d.ts")})`);
            continue;
        }
        const ref = refOf(type, iface);
        if (!ref) continue;
        const isMap = /^\{\s*\[key: string\]/.test(type.trim());
        if (isMap && v && typeof v === "object") {
            for (const [mk, mv] of Object.entries(v)) strictFields(mv, ref, `${where}.${k}.${mk}`, errors);
        } else {
            strictFields(v, ref, `${where}.${k}`, errors);
        }
    }
}

// ---- one object ------------------------------------------------------------

async function validateObject(obj) {
    const name = `${obj.kind} ${obj.metadata && obj.metadata.name}`;
    if (!obj.apiVersion || !obj.kind) return [`${name}: no apiVersion or kind`];
    const dir = obj.apiVersion.includes("/") ? obj.apiVersion : `v1`;
    const modelJs = path.join(modelsDir, dir, `${obj.kind}.js`);
    if (!fs.existsSync(modelJs)) return [`${name}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`];
    const mod = await import(modelJs);
    const Model = mod[obj.kind] || mod.default;
    const errors = [];
    try {
        new Model(obj).validate();
    } catch (e) {
        const details = (e.errors || []).map((x) => `${x.instancePath || "/"}: ${x.message}` +
            (x.params && x.params.allowedValues ? ` ${JSON.stringify(x.params.allowedValues)}` : ""));
        errors.push(...(details.length ? details : [e.message]));
    }
    strictFields(obj, modelJs.replace(/\.js$/, ".d.ts"), obj.kind, errors);
    return errors.map((x) => `${name}: ${x}`);
}

const file = process.argv[2];
if (!file) {
    console.error("usage: node validate.mjs FILE.yaml");
    process.exit(2);
}
const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
let bad = 0;
let n = 0;
for (const doc of docs) {
    if (doc.errors.length) {
        console.log(`error YAML: ${doc.errors[0].message}`);
        bad++;
        continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    n++;
    const errors = await validateObject(obj);
    if (errors.length) {
        bad++;
        for (const e of errors) console.log(`error ${e}`);
    } else {
        console.log(`ok ${obj.kind} ${obj.metadata.name} (${obj.apiVersion})`);
    }
}
if (n === 0) {
    console.log("error: no object in " + file);
    bad++;
}
process.exit(bad ? 1 : 0);
