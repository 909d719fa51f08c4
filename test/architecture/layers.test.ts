// The directions imports may run in (docs/architecture.md "Layers"): firmware/core imports only itself;
// host/ and gateway/ import the core and never each other; only the CLI (host/cli/) composes them; and
// gateway/ has no import cycles. Type-only imports count: a type is a dependency too.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LAYERS = ['firmware', 'host', 'gateway', 'guests'];
/** Pure JavaScript packages the core may bundle into the firmware image. */
const CORE_PACKAGES = new Set(['tweetnacl']);

type Tree = Map<string, string>;

function sources(): Tree {
  const tree: Tree = new Map();
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(ROOT, dir))) {
      if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
      const p = join(dir, name);
      if (statSync(join(ROOT, p)).isDirectory()) walk(p);
      else if (/\.(ts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) tree.set(p, readFileSync(join(ROOT, p), 'utf8'));
    }
  };
  for (const l of LAYERS) walk(l);
  return tree;
}

const SPEC = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]|(?:^|[\s;(=])import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;

/** What one file imports: repo paths for relative specifiers, the bare specifier otherwise. */
export function importsOf(file: string, source: string, tree: Tree): string[] {
  const out: string[] = [];
  // Comments and strings of examples are not imports.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  for (const m of code.matchAll(SPEC)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec.startsWith('.')) {
      out.push(spec);
      continue;
    }
    let p = normalize(join(dirname(file), spec));
    if (!tree.has(p) && p.endsWith('.js') && tree.has(p.slice(0, -3) + '.ts')) p = p.slice(0, -3) + '.ts';
    out.push(p);
  }
  return out;
}

const under = (p: string, dir: string): boolean => p === dir || p.startsWith(dir + '/');

/** Every import that runs against the layers' directions, as "file → import: why". */
export function violations(tree: Tree): string[] {
  const bad: string[] = [];
  for (const [file, source] of tree) {
    for (const imp of importsOf(file, source, tree)) {
      const bare = !imp.includes('/') || !LAYERS.some((l) => under(imp, l)) && !imp.startsWith('..');
      let why: string | undefined;
      if (under(file, 'firmware/core')) {
        if (bare ? !CORE_PACKAGES.has(imp) : !under(imp, 'firmware/core')) why = 'firmware/core imports only itself (and pure bundled packages)';
      } else if (under(file, 'gateway')) {
        if (!bare && under(imp, 'host')) why = 'gateway/ never imports host/';
      } else if (under(file, 'host') && !under(file, 'host/cli')) {
        if (!bare && under(imp, 'gateway')) why = 'host/ never imports gateway/ (only the CLI, host/cli/, composes them)';
        else if (!bare && under(imp, 'host/cli')) why = 'nothing below the CLI imports host/cli/';
      } else if (under(file, 'firmware') || under(file, 'guests')) {
        if (!bare && (under(imp, 'gateway') || under(imp, 'host/cli'))) why = `${file.split('/')[0]}/ imports neither the gateway nor the CLI`;
      }
      if (why) bad.push(`${file} → ${imp}: ${why}`);
    }
  }
  return bad;
}

/** Import cycles among the files under `dir` (strongly connected components of more than one file, or a file importing itself). */
export function cycles(tree: Tree, dir: string): string[][] {
  const nodes = [...tree.keys()].filter((f) => under(f, dir));
  const edges = new Map(nodes.map((f) => [f, importsOf(f, tree.get(f)!, tree).filter((i) => tree.has(i) && under(i, dir))]));
  // Tarjan's algorithm.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v)!) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || edges.get(v)!.includes(v)) found.push(scc.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return found;
}

const tree = sources();

test('every import runs in the layers\' directions', () => {
  assert.ok(tree.size > 200, `the sources were found (${tree.size} files)`);
  assert.equal(violations(tree), []);
});

test('gateway/ has no import cycles', () => {
  assert.equal(cycles(tree, 'gateway'), []);
});

/** Every source file `entry` reaches through its imports. */
function reachable(tree: Tree, entry: string): Set<string> {
  const seen = new Set<string>([entry]);
  const queue = [entry];
  while (queue.length) {
    const f = queue.pop()!;
    for (const i of importsOf(f, tree.get(f)!, tree)) {
      if (tree.has(i) && !seen.has(i)) {
        seen.add(i);
        queue.push(i);
      }
    }
  }
  return seen;
}

test('the firmware carries the module reader, never the writer or the instrumenter', () => {
  const image = reachable(tree, 'firmware/main.ts');
  assert.ok(image.has('firmware/core/guests/wasm.ts') && image.has('firmware/core/guests/grow-guard.ts'), 'the image reads and guards modules');
  const tools = [...image].filter((f) => under(f, 'guests'));
  assert.equal(tools, [], 'nothing of guests/tools (module writer, metering instrumenter, admission) is in the image');
  assert.ok(tree.has('guests/tools/wasm-writer.ts') && tree.has('guests/tools/instrument.ts'), 'the tools are where this test looks');
  for (const f of tree.keys()) {
    if (under(f, 'firmware')) assert.not.match(tree.get(f)!, /export (function|class) (rewriteModule|copyInstr|WasmWriter|instrumentMetering)\b/, f);
  }
});

test('the check fails on a host file that imports the gateway, a core file that imports Node, and a cycle', () => {
  const t = new Map(tree);
  t.set('host/sim/x.ts', "import { startGateway } from '../../gateway/gateway.js';\n");
  t.set('firmware/core/y.ts', "import type { Socket } from 'node:net';\nexport const y = 1;\n");
  t.set('gateway/a.ts', "import { b } from './b.js';\nexport const a = 1;\n");
  t.set('gateway/b.ts', "import type { a } from './a.js';\nexport const b = 2;\n");
  const v = violations(t);
  assert.ok(v.some((x) => x.startsWith('host/sim/x.ts → gateway/gateway.ts')), v.join('\n'));
  assert.ok(v.some((x) => x.startsWith('firmware/core/y.ts → node:net')), v.join('\n'));
  assert.ok(cycles(t, 'gateway').some((c) => c.join() === 'gateway/a.ts,gateway/b.ts'));
});

test.run();
