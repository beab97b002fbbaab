#!/usr/bin/env node
// Validates Kubernetes manifests offline against the Kubernetes OpenAPI schemas, as the API
// server would on `kubectl apply` (with its default strict field validation):
//
//   node tests/node/validate_k8s.js deploy/kubernetes/deployment.yaml [more.yaml ...]
//
// Each YAML document must have an apiVersion and a kind that kubernetes-models (the
// Kubernetes API) or @kubernetes-models/prometheus-operator (ServiceMonitor, ...) knows; it
// is checked twice:
//   1. the kind's schema validator (types, required fields, enums, formats), and
//   2. unknown fields: every key must be one the schema declares (a misspelt
//      `readinessprobe` is an error, as it is for the API server; the schema validators
//      alone let unknown keys through). The declared fields are read from the packages'
//      TypeScript declarations (.d.ts), which list every field of every type.
// An unknown kind, a document without apiVersion/kind and a YAML error are failures too,
// never skipped.
//
// Prints one line per document ("ok FILE#N apiVersion kind name" or "FAIL FILE#N ...: why"),
// then a JSON summary {"validated": N, "failed": M, "objects": [...]}. Exit 0 when every
// document passed, 1 otherwise, 2 on bad usage.
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const PACKAGES = ["kubernetes-models", "@kubernetes-models/prometheus-operator"];

// ------------------------------------------------------------------ the model classes

function findModel(apiVersion, kind) {
  if (typeof apiVersion !== "string" || !/^([a-z0-9]([a-z0-9.-]*[a-z0-9])?\/)?v[0-9]+((alpha|beta)[0-9]+)?$/.test(apiVersion)) {
    return { error: `invalid apiVersion ${JSON.stringify(apiVersion)}` };
  }
  if (typeof kind !== "string" || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    return { error: `invalid kind ${JSON.stringify(kind)}` };
  }
  for (const pkg of PACKAGES) {
    const spec = `${pkg}/${apiVersion}/${kind}`;
    let file;
    try {
      file = require.resolve(spec);
    } catch (e) {
      continue;
    }
    const mod = require(file);
    if (typeof mod[kind] === "function") return { cls: mod[kind], dts: file.replace(/\.js$/, ".d.ts") };
  }
  return { error: `unknown kind ${kind} in ${apiVersion} (not in ${PACKAGES.join(", ")})` };
}

// ------------------------------------------------------------------ .d.ts field lists
//
// A small parser for the declaration files these packages generate: interfaces, object
// literal types, Array<T>, index signatures ({[key: string]: T}), unions, imports and
// `export { A as B }` aliases. Types are nodes:
//   {k: "obj", props: Map(name -> node), index: node|null}  {k: "arr", of: node}
//   {k: "ref", name, file}  {k: "leaf"}

function tokenize(src) {
  src = src.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
  const re = /\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_$][\w$]*|-?[0-9][0-9.eE+-]*|=>|\.\.\.|[{}\[\]<>():;?|&,=.])/y;
  const out = [];
  let m;
  let at = 0;
  while (at < src.length && (m = re.exec(src))) {
    out.push(m[1]);
    at = re.lastIndex;
  }
  if (/\S/.test(src.slice(at))) throw new Error(`cannot tokenize near ${JSON.stringify(src.slice(at, at + 40))}`);
  return out;
}

function unquote(t) {
  return t[0] === '"' || t[0] === "'" ? JSON.parse(t[0] === "'" ? `"${t.slice(1, -1)}"` : t) : t;
}

class TypeParser {
  constructor(tokens, file) {
    this.t = tokens;
    this.i = 0;
    this.file = file;
  }
  peek(o = 0) { return this.t[this.i + o]; }
  next() { return this.t[this.i++]; }
  expect(tok) {
    const got = this.next();
    if (got !== tok) throw new Error(`${this.file}: expected ${tok}, got ${got}`);
  }
  type() {
    if (this.peek() === "|") this.next();
    const first = this.primary();
    if (this.peek() !== "|" && this.peek() !== "&") return first;
    while (this.peek() === "|" || this.peek() === "&") {
      this.next();
      this.primary();
    }
    return { k: "leaf" }; // unions of literals (enums) and IntOrString-like types
  }
  primary() {
    let node;
    const tok = this.next();
    if (tok === "Array" && this.peek() === "<") {
      this.next();
      node = { k: "arr", of: this.type() };
      this.expect(">");
    } else if (tok === "{") {
      node = this.members("}");
    } else if (tok === "(") {
      node = this.type();
      this.expect(")");
    } else if (/^[A-Za-z_$]/.test(tok)) {
      node = { k: "ref", name: tok, file: this.file };
      if (this.peek() === "<") this.skipBalanced("<", ">"); // generic arguments: not followed
      while (this.peek() === "[" && this.peek(1) !== "]") { // Indexed["access"]
        this.skipBalanced("[", "]");
        node = { k: "leaf" };
      }
    } else {
      node = { k: "leaf" }; // string or number literal type
    }
    while (this.peek() === "[" && this.peek(1) === "]") {
      this.next();
      this.next();
      node = { k: "arr", of: node };
    }
    return node;
  }
  skipBalanced(open, close) {
    let depth = 0;
    do {
      const tok = this.next();
      if (tok === undefined) throw new Error(`${this.file}: unbalanced ${open}`);
      if (tok === open) depth++;
      else if (tok === close) depth--;
    } while (depth > 0);
  }
  // Members up to `end` (the opening brace already read).
  members(end) {
    const node = { k: "obj", props: new Map(), index: null };
    while (this.peek() !== end) {
      if (this.peek() === undefined) throw new Error(`${this.file}: unterminated object type`);
      if (this.peek() === "[") { // [key: string]: T
        this.skipBalanced("[", "]");
        this.expect(":");
        node.index = this.type();
      } else {
        const name = unquote(this.next());
        if (this.peek() === "?") this.next();
        if (this.peek() === "(") { // a method: not data
          this.skipBalanced("(", ")");
          this.expect(":");
          this.type();
        } else {
          this.expect(":");
          node.props.set(name, this.type());
        }
      }
      while (this.peek() === ";" || this.peek() === ",") this.next();
    }
    this.next();
    return node;
  }
}

const dtsCache = new Map();

// {decls: Map(local name -> node), imports: Map(local -> {spec, name}), exports: Map(exported -> local)}
function loadDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  const info = { file, decls: new Map(), imports: new Map(), exports: new Map() };
  const p = new TypeParser(tokenize(fs.readFileSync(file, "utf8")), file);
  while (p.peek() !== undefined) {
    const tok = p.next();
    if (tok === "import" && p.peek() === "{") {
      p.next();
      const names = [];
      while (p.peek() !== "}") {
        const name = p.next();
        let local = name;
        if (p.peek() === "as") { p.next(); local = p.next(); }
        names.push([name, local]);
        if (p.peek() === ",") p.next();
      }
      p.next();
      p.expect("from");
      const spec = unquote(p.next());
      for (const [name, local] of names) info.imports.set(local, { spec, name });
    } else if (tok === "export" && p.peek() === "{") {
      p.next();
      while (p.peek() !== "}") {
        const local = p.next();
        let exported = local;
        if (p.peek() === "as") { p.next(); exported = p.next(); }
        info.exports.set(exported, local);
        if (p.peek() === ",") p.next();
      }
      p.next();
    } else if (tok === "interface") {
      const name = p.next();
      const bases = [];
      if (p.peek() === "<") p.skipBalanced("<", ">");
      if (p.peek() === "extends") {
        p.next();
        while (p.peek() !== "{") {
          const b = p.next();
          if (b !== ",") bases.push(b);
          if (p.peek() === "<") p.skipBalanced("<", ">");
        }
      }
      p.expect("{");
      const node = p.members("}");
      if (bases.includes("TypeMeta")) {
        if (!node.props.has("apiVersion")) node.props.set("apiVersion", { k: "leaf" });
        if (!node.props.has("kind")) node.props.set("kind", { k: "leaf" });
      }
      info.decls.set(name, node);
    } else if (tok === "type" && /^[A-Za-z_$]/.test(p.peek() || "") && (p.peek(1) === "=" || p.peek(1) === "<")) {
      const name = p.next();
      if (p.peek() === "<") p.skipBalanced("<", ">");
      p.expect("=");
      info.decls.set(name, p.type());
    }
    // classes, functions and the rest: skipped token by token
  }
  dtsCache.set(file, info); // only once parsed whole: a failure is reported every time
  return info;
}

function moduleDts(spec, fromFile) {
  if (spec.startsWith(".")) return path.resolve(path.dirname(fromFile), spec) + ".d.ts";
  try {
    return require.resolve(spec).replace(/\.js$/, ".d.ts");
  } catch (e) {
    return null;
  }
}

const PRIMITIVES = new Set(["string", "number", "boolean", "any", "unknown", "object", "null", "undefined", "never", "Date"]);

// The node a ref stands for (following imports and aliases), or a leaf.
function resolveRef(name, file, seen = 0) {
  if (PRIMITIVES.has(name) || seen > 20) return { k: "leaf" };
  const info = loadDts(file);
  if (info.decls.has(name)) return info.decls.get(name);
  if (info.exports.has(name) && info.exports.get(name) !== name) return resolveRef(info.exports.get(name), file, seen + 1);
  const imp = info.imports.get(name);
  if (imp) {
    const target = moduleDts(imp.spec, file);
    if (target && fs.existsSync(target)) return resolveRef(imp.name, target, seen + 1);
  }
  return { k: "leaf" }; // Quantity, IntOrString, Time, ...: scalars
}

function deref(node) {
  let n = node;
  for (let i = 0; n && n.k === "ref" && i < 20; i++) n = resolveRef(n.name, n.file);
  return n && n.k !== "ref" ? n : { k: "leaf" };
}

function unknownFields(value, node, where, errors) {
  node = deref(node);
  if (value === null || value === undefined) return;
  if (node.k === "arr") {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, node.of, `${where}/${i}`, errors));
    return;
  }
  if (node.k !== "obj" || typeof value !== "object" || Array.isArray(value)) return; // types: the schema's job
  for (const [key, v] of Object.entries(value)) {
    const at = `${where}/${key}`;
    if (node.props.has(key)) unknownFields(v, node.props.get(key), at, errors);
    else if (node.index) unknownFields(v, node.index, at, errors);
    else errors.push(`${at}: unknown field "${key}"`);
  }
}

// ------------------------------------------------------------------ main

function describeErrors(e) {
  const list = e && (e.errors || (e.details && e.details.errors));
  if (Array.isArray(list) && list.length) {
    return list.map((x) => `${x.instancePath || "/"} ${x.message}${x.params && x.params.allowedValues ? ` (${x.params.allowedValues.join(", ")})` : ""}`);
  }
  return [String(e && e.message ? e.message : e)];
}

function validateDoc(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return { errors: ["not a mapping"] };
  const found = findModel(obj.apiVersion, obj.kind);
  if (found.error) return { errors: [found.error] };
  const errors = [];
  try {
    new found.cls(obj).validate();
  } catch (e) {
    errors.push(...describeErrors(e));
  }
  try {
    unknownFields(obj, { k: "ref", name: `I${obj.kind}`, file: found.dts }, "", errors);
  } catch (e) {
    errors.push(`cannot check fields: ${e.message}`);
  }
  return { errors };
}

function main(files) {
  if (!files.length) {
    process.stderr.write("usage: node validate_k8s.js FILE.yaml [FILE.yaml ...]\n");
    return 2;
  }
  const objects = [];
  let failed = 0;
  for (const file of files) {
    let docs;
    try {
      // YAML 1.1, as the API server and kubectl read manifests (sigs.k8s.io/yaml): 0440 is
      // octal, `on`/`yes` are booleans.
      docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { version: "1.1" });
    } catch (e) {
      console.log(`FAIL ${file}: ${e.message}`);
      failed++;
      continue;
    }
    let n = 0;
    for (const doc of docs) {
      const where = `${file}#${n + 1}`;
      if (doc.errors.length) {
        console.log(`FAIL ${where}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
        failed++;
        n++;
        continue;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue; // an empty document (a trailing ---)
      n++;
      const name = obj.metadata && obj.metadata.name;
      const { errors } = validateDoc(obj);
      objects.push({ file, index: n, apiVersion: obj.apiVersion, kind: obj.kind, name, ok: errors.length === 0 });
      if (errors.length) {
        failed++;
        console.log(`FAIL ${where} ${obj.apiVersion} ${obj.kind} ${name}:`);
        for (const e of errors) console.log(`    ${e}`);
      } else {
        console.log(`ok   ${where} ${obj.apiVersion} ${obj.kind} ${name}`);
      }
    }
    if (n === 0) {
      console.log(`FAIL ${file}: no document`);
      failed++;
    }
  }
  const validated = objects.filter((o) => o.ok).length;
  console.log(JSON.stringify({ validated, failed, objects }));
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
