#!/usr/bin/env node
// The import rules of krata's layout, checked on the TypeScript sources (`npm run lint`):
//   - no import cycle between modules;
//   - layers: lib < crds < contracts < workloads < programs. A module imports its own layer or lower ones; lib imports only
//     lib, node: built-ins and npm packages;
//   - a program (kratactl/, kubectl-krata/, krata-api/, operator/, node-agent/, guest-init/) never imports another program;
//   - production code (any file but *.test.ts outside test/ and bench/) never imports test/;
//   - inside node-agent: xen/ is its lowest layer (imports nothing of node-agent outside xen/), and net/ imports
//     nothing outside net/ but lib, crds and contracts. Their tests may use the rest of the agent to build fixtures.
//     The agent's folders are layered too (AGENT_LAYERS): production code imports only folders of a lower layer;
//     code outside xen/ reaches xen/ only through its entry, xen/index.ts; reconcile/ never imports xen/ (it
//     reaches Xen through runtime/'s Hypervisor).
// test/ and bench/ may import anything. Imports are read with the TypeScript compiler API: import and export
// declarations (type-only ones too), import(), import type nodes and `import x = require()`.
// Usage: node scripts/check-layers.mjs [ROOT]; prints one line per violation and exits 1 if there is any.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const LAYERS = {
  lib: 0,
  crds: 1,
  contracts: 2,
  workloads: 3,
  kratactl: 4,
  operator: 4,
  'node-agent': 4,
  'guest-init': 4,
  'kubectl-krata': 4,
  'krata-api': 4,
};
const LAYER_NAMES = ['lib', 'crds', 'contracts', 'workloads', 'a program'];
// node-agent's folders, lowest first ('' = the files at its root: main.ts, flags.ts, the image command).
const AGENT_LAYERS = {
  xen: 0,
  channel: 0,
  runtime: 1,
  store: 1,
  image: 1,
  net: 1,
  guest: 1,
  reconcile: 2,
  usage: 2,
  probe: 2,
  controller: 3,
  follower: 3,
  service: 3,
  api: 4,
  container: 5,
  '': 6,
};
const FREE = new Set(['test', 'bench']);
const SKIP = new Set(['node_modules', 'dist', 'target', 'kernel']);

/** Every .ts/.mts file under root, as '/'-separated paths relative to it. */
function sources(root, dir = root, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || SKIP.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(root, p, out);
    else if (/\.m?ts$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(relative(root, p).split(sep).join('/'));
  }
  return out.sort();
}

/** The module specifiers `file` imports, with their 1-based lines. */
function imports(root, file) {
  const text = readFileSync(join(root, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const add = (node) => {
    if (node && ts.isStringLiteralLike(node))
      found.push({ spec: node.text, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** The repository file a relative specifier names ('./x.js' is written for './x.ts'), or null for a package. */
function target(file, spec, known) {
  if (!spec.startsWith('.')) return null;
  const p = join(dirname(file), spec).split(sep).join('/');
  for (const c of [p, p.replace(/\.js$/, '.ts'), p.replace(/\.mjs$/, '.mts')]) if (known.has(c)) return c;
  return p;
}

const top = (f) => (f.includes('/') ? f.slice(0, f.indexOf('/')) : '');
const isTest = (f) => /\.test\.m?ts$/.test(f);
const under = (f, dir) => f.startsWith(dir + '/');
/** The node-agent folder a file is in ('' for its root files). */
const agentFolder = (f) => {
  const rest = f.slice('node-agent/'.length);
  return rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : '';
};

/** The rule `from` importing `to` breaks, or null. */
function violation(from, to) {
  const a = top(from);
  const b = top(to);
  if (FREE.has(a)) return null;
  if (b === 'test') return isTest(from) ? null : 'production code imports test/';
  if (b === 'bench') return 'only bench/ imports bench/';
  const la = LAYERS[a];
  const lb = LAYERS[b];
  if (lb === undefined) return la === undefined ? null : `${a}/ imports ${b || 'the repository root'}/, which is in no layer`;
  if (la === undefined) return null;
  if (la < lb) return `${LAYER_NAMES[la]} imports ${LAYER_NAMES[lb]} (${b}/): a lower layer imports a higher one`;
  if (la === 4 && lb === 4 && a !== b) return `program ${a}/ imports program ${b}/`;
  if (a === 'node-agent' && b === 'node-agent' && !isTest(from)) {
    if (under(from, 'node-agent/xen') && !under(to, 'node-agent/xen')) return 'node-agent/xen/ imports node-agent outside xen/';
    if (under(from, 'node-agent/net') && !under(to, 'node-agent/net')) return 'node-agent/net/ imports node-agent outside net/';
    const fa = agentFolder(from);
    const fb = agentFolder(to);
    if (fa !== fb) {
      if (fb === 'xen' && fa === 'reconcile') return 'node-agent/reconcile/ imports xen/: it reaches Xen through runtime/';
      if (fb === 'xen' && to !== 'node-agent/xen/index.ts')
        return `node-agent/${fa ? fa + '/' : ''} imports xen/ past its entry, xen/index.ts`;
      const ra = AGENT_LAYERS[fa];
      const rb = AGENT_LAYERS[fb];
      if (ra === undefined || rb === undefined)
        return `node-agent/${ra === undefined ? fa : fb}/ is in no layer of the agent (AGENT_LAYERS)`;
      if (ra <= rb) return `node-agent/${fa ? fa + '/' : ''} imports node-agent/${fb ? fb + '/' : ''}: not a lower layer of the agent`;
    }
  }
  return null;
}

/** Strongly connected components with more than one module (or a module importing itself), by Tarjan. */
function cycles(graph) {
  let next = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const connect = (v) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc = [];
    let w;
    do {
      w = stack.pop();
      on.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || graph.get(v).has(v)) out.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return out;
}

export function check(root) {
  const files = sources(root);
  const known = new Set(files);
  const problems = [];
  const graph = new Map();
  for (const file of files) {
    const edges = new Set();
    graph.set(file, edges);
    for (const { spec, line } of imports(root, file)) {
      const to = target(file, spec, known);
      if (to === null) {
        if (spec.startsWith('/')) problems.push(`${file}:${line}: imports an absolute path ${spec}`);
        continue;
      }
      if (!known.has(to)) continue; // a .json or a file outside the sources: not a module of ours
      edges.add(to);
      const why = violation(file, to);
      if (why) problems.push(`${file}:${line}: ${why} (${spec})`);
    }
  }
  for (const scc of cycles(graph)) problems.push(`import cycle: ${scc.join(' -> ')}`);
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = check(root);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`check-layers: ${problems.length} violation(s)`);
    process.exit(1);
  }
  console.log('check-layers: no violations');
}
