// Shared by the XS test runner and the XS bench: bundling code for the xsnap worker (esbuild, one
// classic script, no module loader needed), starting a worker, and mapping XS stack lines back to
// the TypeScript sources.
//
// `@endo/init` (which @agoric/xsnap's Node API needs) locks down the whole Node realm, so only the
// dedicated processes scripts/xs/run.js and scripts/xs/bench-worker.js call `startWorker`.

import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { fakeModules, fakesFor, naclCryptoStub, XS_TARGET } from '../firmware/bundle.js';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const here = join(root, 'scripts', 'xs');

/**
 * Bundles ES module source (`contents`, resolved from `resolveDir`) into one strict classic script
 * for XS. `uvu` and `uvu/assert` resolve to the XS shims. Returns `{ code, map, name }` or throws
 * with esbuild's messages.
 */
export async function bundleForXS(contents, { name, resolveDir = root, fakes } = {}) {
  const outfile = join(root, 'build', 'xs', name.replace(/[^\w.-]+/g, '_') + '.js');
  const result = await build({
    ...XS_TARGET,
    stdin: { contents, resolveDir, sourcefile: '<xs-entry>', loader: 'ts' },
    format: 'iife',
    write: false,
    outfile,
    banner: { js: '"use strict";' },
    // Built guests are embedded as bytes (the XS bench runs two of them in the agent), and a P1
    // telegram as text (the meter parsers' bench).
    loader: { '.wasm': 'binary', '.txt': 'text' },
    alias: { uvu: join(here, 'uvu.js'), 'uvu/assert': join(here, 'assert.js') },
    plugins: fakes ? [naclCryptoStub, fakeModules(fakes)] : [naclCryptoStub],
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.map'));
  return { code: js.text, map: map ? JSON.parse(map.text) : undefined, name, outfile };
}

/**
 * Bundles one test file together with the XS harness, harness first. A `fakes.json` beside the
 * file maps module specifiers to fakes (firmware/moddable/test: the Moddable modules).
 */
export function bundleTestFile(file) {
  const rel = relative(root, file);
  const contents = `import ${JSON.stringify(join(here, 'harness.js'))};\nimport ${JSON.stringify(file)};\n`;
  return bundleForXS(contents, { name: rel, fakes: fakesFor(file) });
}

/** Formats esbuild's error object as plain lines naming file and line. */
export function esbuildErrorText(e) {
  if (!e || !Array.isArray(e.errors)) return String(e && e.message ? e.message : e);
  return e.errors
    .map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ` : '') + m.text)
    .join('\n');
}

// --- source maps: enough to turn "(bundle:123)" from an XS stack into "(firmware/core/x.ts:45)".

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** For each generated line (1-based), the first original [source, line] it maps to. */
export function lineTable(map) {
  const table = [undefined];
  if (!map) return table;
  let src = 0;
  let line = 0;
  for (const group of map.mappings.split(';')) {
    let first;
    for (const seg of group.split(',')) {
      if (!seg) continue;
      const vals = [];
      let v = 0;
      let shift = 0;
      for (const ch of seg) {
        const d = B64.indexOf(ch);
        v += (d & 31) << shift;
        if (d & 32) shift += 5;
        else {
          vals.push(v & 1 ? -(v >>> 1) : v >>> 1);
          v = 0;
          shift = 0;
        }
      }
      if (vals.length >= 4) {
        src += vals[1];
        line += vals[2];
        if (!first) first = [src, line];
      }
    }
    table.push(first ? [map.sources[first[0]], first[1] + 1] : undefined);
  }
  return table;
}

/** The `at …` frames of an XS stack, with bundle lines `(name:line)` mapped to repository source paths. */
export function mapStack(stack, bundle, table) {
  if (!stack) return '';
  const mapDir = dirname(bundle.outfile);
  const out = [];
  for (const raw of String(stack).split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (!line.startsWith('at ')) continue; // the "Name: message" head; callers print it
    const m = /^at (.*?)\s*\((.*):(\d+)\)$/.exec(line);
    if (!m) {
      if (!/\(\)$/.test(line)) out.push(line); // frames without a location are native glue
      continue;
    }
    if (m[2] !== bundle.name) {
      if (m[2] === '' || /^#\d+$/.test(m[2])) continue; // the runner's own eval frames
      out.push(line);
      continue;
    }
    const hit = table[Number(m[3])];
    if (!hit) continue; // bundler glue (the IIFE wrapper, module init helpers)
    const file = relative(root, resolve(mapDir, hit[0]));
    if (file.startsWith('scripts/xs/')) continue; // the harness and the uvu shims
    out.push(`at ${m[1] || '<anonymous>'} (${file}:${hit[1]})`);
  }
  return out.join('\n');
}

// --- the worker

/**
 * Starts an xsnap worker. `meteringLimit` 0 means no per-crank computron limit; `spawn` may start
 * another build of the worker (scripts/xs/meter-worker.js).
 */
export async function startWorker({ meteringLimit = 0, name = 'gridlet-xs', handleCommand, spawn } = {}) {
  await import('@endo/init');
  const { xsnap } = await import('@agoric/xsnap');
  spawn ??= (await import('node:child_process')).spawn;
  const os = await import('node:os');
  const fs = await import('node:fs');
  return xsnap({
    os: os.type(),
    spawn,
    fs: { ...fs, ...fs.promises },
    name,
    meteringLimit,
    stdout: 'inherit',
    stderr: 'inherit',
    handleCommand: handleCommand ?? (async () => new Uint8Array(0)),
  });
}

const encoder = new TextEncoder();
export const toBytes = (s) => encoder.encode(s);
export const fromBytes = (b) => new TextDecoder().decode(b);

/**
 * Evaluates a bundle inside the worker without letting an exception kill it; resolves to
 * undefined, or `{ message, stack }` of what the script threw while loading.
 */
export async function loadBundle(worker, bundle) {
  const src = bundle.code + `\n//# sourceURL=${bundle.name}\n`;
  const wrapper = `(() => {
    try { (1, eval)(${JSON.stringify(src)}); return undefined; }
    catch (e) {
      const r = JSON.stringify({ name: String(e && e.name), message: String(e && e.message !== undefined ? e.message : e), stack: String(e && e.stack || '') });
      return new TextEncoder().encode(r).buffer;
    }
  })()`;
  const { reply } = await worker.evaluate(wrapper);
  return reply.length ? JSON.parse(fromBytes(reply)) : undefined;
}

export function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}
