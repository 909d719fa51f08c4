// The core's own tests on Moddable's runtime, with the core preloaded as on a meter (run by
// test/firmware/core-tests.test.ts under `npm run test:firmware`).
//
//   coreTestsOnModdable({ dir, log })            all of it: build, run, and a debug rerun of failures for stacks
//   buildCoreTests({ out, files, debug, log })   bundles and builds one lin app → { so, files, bundles, … }
//   runCoreTests({ app, dir, testTimeoutMs })    runs it in the simulator → per file, per test results
//   coreTestFiles()                              the test files it runs; NOT_ON_MODDABLE, those it cannot
//
// The app (build/firmware-core-tests/src/manifest.json, generated):
//   gridlet/core           firmware/core as ONE module, bundled as build-firmware.js bundles core.js
//                          (each core module's exports as one namespace: agent_agent, wire_frame, …) and
//                          PRELOADED: every core module's top level runs when mcconfig builds the app, and
//                          what it leaves is in flash, frozen, as on a meter;
//   core-tests/<n>         one module per test file, not preloaded: its imports of firmware/core/* are
//                          rewritten to gridlet/core's namespaces; the Moddable adapters' tests keep their
//                          fakes (fakes.json) bundled in, and the adapters themselves are bundled into the
//                          test module (preloaded adapters are test/firmware/image.test.ts's business);
//   uvu, uvu/assert        the shims of `npm run test:xs` (scripts/xs/uvu.js, assert.js) around the shared
//                          registry (scripts/xs/registry.js → gridlet-test/registry);
//   main                   scripts/firmware/core-tests-main.js: imports each test file in turn and runs
//                          its tests, one trace line per test.
// With the lin image's heaps and a meter's stack (creation() below). Built once (mcconfig's make is
// incremental in `out`), run in one simulator launch; a crash inside a test ends that launch, and the
// next one starts after that test.

import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { build } from 'esbuild';
import { bundleEsm, coreDir, coreEntrySource, coreModules, coreNamespace, fakeModules, fakesFor, preloadCheck, root } from './bundle.js';
import { buildImage, SimImage } from './sdk.js';
import { lineTable } from '../xs/xsnap.js';

/**
 * Test files that cannot run on Moddable's runtime, and why. Listed, never skipped silently: the
 * suite prints each one.
 */
export const NOT_ON_MODDABLE = {};

function walk(dir) {
  let out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** The test files run on Moddable (paths relative to the repository), and those that are not. */
export function coreTestFiles() {
  const all = [...walk(join(root, 'test', 'core')), ...walk(join(root, 'firmware', 'moddable', 'test'))].map((f) => relative(root, f));
  return { run: all.filter((f) => !Object.hasOwn(NOT_ON_MODDABLE, f)), notRun: all.filter((f) => Object.hasOwn(NOT_ON_MODDABLE, f)) };
}

const CORE_MODULE = 'gridlet/core';
const REGISTRY_MODULE = 'gridlet-test/registry';
const registryFile = join(root, 'scripts', 'xs', 'registry.js');

/** Every core module's value exports, by namespace (from esbuild's metafile; types are not exports). */
async function coreExports() {
  const files = coreModules();
  const r = await build({
    entryPoints: files, bundle: false, format: 'esm', write: false, metafile: true, outdir: join(root, 'build', 'core-exports'),
    outbase: coreDir, logLevel: 'silent', absWorkingDir: root,
  });
  const byNs = new Map();
  for (const o of Object.values(r.metafile.outputs)) {
    if (o.entryPoint) byNs.set(coreNamespace(resolve(root, o.entryPoint)), o.exports);
  }
  return byNs;
}

/**
 * esbuild plugin: an import of a module in firmware/core becomes its namespace in the preloaded
 * gridlet/core (`export const { Agent, AgentState } = agent_agent`), so that the test uses the very
 * objects that live in flash.
 */
function preloadedCore(exportsByNs) {
  return {
    name: 'preloaded-core',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        const path = resolve(args.resolveDir, args.path).replace(/\.js$/, '.ts');
        if (!path.startsWith(coreDir + '/')) return undefined;
        const ns = coreNamespace(path);
        if (!exportsByNs.has(ns)) return { errors: [{ text: `${relative(root, path)} is not a core module` }] };
        return { path: ns, namespace: 'gridlet-core' };
      });
      b.onLoad({ filter: /.*/, namespace: 'gridlet-core' }, (args) => {
        const names = exportsByNs.get(args.path);
        const plain = names.filter((n) => n !== 'default');
        const lines = [`import { ${args.path} as core } from ${JSON.stringify(CORE_MODULE)};`];
        if (plain.length) lines.push(`export const { ${plain.join(', ')} } = core;`);
        if (names.includes('default')) lines.push('export default core.default;');
        if (!names.length) lines.push('export {};');
        return { contents: lines.join('\n'), loader: 'js' };
      });
    },
  };
}

/** esbuild plugin: the shared test registry stays one module (gridlet-test/registry) for the shims and main. */
const sharedRegistry = {
  name: 'shared-registry',
  setup(b) {
    b.onResolve({ filter: /registry\.js$/ }, (args) =>
      resolve(args.resolveDir, args.path) === registryFile ? { path: REGISTRY_MODULE, external: true } : undefined);
  },
};

/** The smallest XS stack of the meters' manifests (esp32, esp32c3, esp32s3), in slots. */
export function meterStackSlots() {
  return Math.min(...['esp32', 'esp32c3', 'esp32s3'].map(
    (t) => JSON.parse(readFileSync(join(root, 'manifests', t, 'manifest.json'), 'utf8')).creation.stack));
}

function creation() {
  // The lin image's heaps (manifests/lin/manifest.json): small, grown in small steps, so that XS
  // collects garbage before every growth — thousands of times in a run, with the core's objects in
  // flash referenced from the heap, as on a meter. And a meter's stack (the smallest of the ESP32
  // manifests; the same count of slots holds the same frames on a 64-bit simulator): the core
  // overflowing it aborts the machine there ("XS abort: JavaScript stack overflow"), and so it does
  // here. Under a test sit only the runner's runEntry and the promise job that resumed it.
  return {
    static: 0,
    chunk: { initial: 16384, incremental: 2048 },
    heap: { initial: 512, incremental: 64 },
    stack: meterStackSlots(),
    keys: { initial: 4096, incremental: 1024, name: 127, symbol: 7 },
    main: 'main',
  };
}

/**
 * Bundles the core, the shims, every test file and the runner into `out`/src, writes the app's
 * manifest there, and builds it with mcconfig into `out`/mc. Returns the mc.so, the test files with
 * their bundles and source maps (to map stacks), and the build's seconds.
 */
export async function buildCoreTests({ out = join(root, 'build', 'firmware-core-tests'), files = coreTestFiles().run, debug = false, log = () => {} } = {}) {
  const started = Date.now();
  const src = join(out, 'src');
  mkdirSync(src, { recursive: true });
  const modules = {};
  const bundles = [];
  const add = async (specifier, name, options) => {
    const outfile = join(src, `${name}.js`);
    const b = await bundleEsm({ outfile, ...options });
    modules[specifier] = `./${name}`;
    bundles.push({ specifier, outfile, map: JSON.parse(readFileSync(`${outfile}.map`, 'utf8')) });
    return b;
  };

  const core = await add(CORE_MODULE, 'gridlet-core', { stdin: { contents: coreEntrySource(), resolveDir: coreDir, sourcefile: 'core-entry.ts', loader: 'ts' } });
  if (core.imports.length) throw new Error(`the core imports ${core.imports.join(', ')}: firmware/core must import nothing platform-specific`);
  preloadCheck(core.code, 'gridlet/core');
  await add(REGISTRY_MODULE, 'registry', { entryPoints: [registryFile] });
  await add('uvu', 'uvu', { entryPoints: [join(root, 'scripts', 'xs', 'uvu.js')], plugins: [sharedRegistry] });
  await add('uvu/assert', 'assert', { entryPoints: [join(root, 'scripts', 'xs', 'assert.js')] });

  const exportsByNs = await coreExports();
  const tests = [];
  for (const [i, rel] of files.entries()) {
    const file = join(root, rel);
    const fakes = fakesFor(file);
    const b = await add(`core-tests/${i}`, `test-${i}`, {
      entryPoints: [file],
      external: [CORE_MODULE, 'uvu', 'uvu/assert'],
      loader: { '.wasm': 'binary' },
      plugins: [preloadedCore(exportsByNs), ...(fakes ? [fakeModules(fakes)] : [])],
    });
    if (b.imports.some((m) => ![CORE_MODULE, 'uvu', 'uvu/assert'].includes(m))) {
      throw new Error(`${rel} imports ${b.imports.join(', ')}: only the core, uvu and fakes can be bundled for Moddable`);
    }
    tests.push({ rel, specifier: `core-tests/${i}` });
  }
  const mainEntry = `import { start } from ${JSON.stringify(join(root, 'scripts', 'firmware', 'core-tests-main.js'))};\n` +
    `export default function main() {\n  start(${JSON.stringify(tests.map((t) => t.specifier))});\n}\n`;
  await add('main', 'main', {
    stdin: { contents: mainEntry, resolveDir: root, sourcefile: 'core-tests-entry.js', loader: 'js' },
    external: ['gridlet/settings'], plugins: [sharedRegistry],
  });

  const manifest = {
    '//': 'Generated by scripts/firmware/core-tests.js: the core preloaded as on a meter, and its tests loaded at run time.',
    include: ['$(MODDABLE)/examples/manifest_base.json', '$(MODDABLE)/modules/files/file/manifest.json'],
    modules: { ...modules, 'gridlet/settings': join(root, 'firmware', 'moddable', 'lin', 'settings') },
    preload: [CORE_MODULE, 'gridlet/settings'],
    creation: creation(),
    config: { file: { root: './' } },
    strip: '*',
  };
  const manifestFile = join(src, 'manifest.json');
  const text = JSON.stringify(manifest, null, 2);
  let before;
  try {
    before = readFileSync(manifestFile, 'utf8');
  } catch {}
  if (before !== text) writeFileSync(manifestFile, text);
  const bundled = (Date.now() - started) / 1000;
  log(`bundled the core and ${tests.length} test files in ${bundled.toFixed(1)} s`);
  const image = buildImage({ manifest: manifestFile, out: join(out, 'mc'), debug, wasm3: false, log });
  return { so: image.so, files: tests, bundles, seconds: (Date.now() - started) / 1000, buildSeconds: image.seconds, warnings: image.warnings };
}

// --------------------------------------------------------------------------------------------- running

const MARK = '@@core-tests ';

/** Reads the runner's report lines (joining the pieces of long ones) from the simulator's output. */
export function parseReport(lines) {
  const out = [];
  let pending = '';
  for (const line of lines) {
    if (!line.startsWith(MARK)) continue;
    const rest = line.slice(MARK.length);
    const space = rest.indexOf(' ');
    const kind = rest.slice(0, space);
    if (kind === 'more') {
      pending += rest.slice(space + 1);
      continue;
    }
    const json = pending + rest.slice(space + 1);
    pending = '';
    try {
      out.push({ kind, ...JSON.parse(json) });
    } catch {
      // a line the runtime's death cut short: the test it reported stays "not finished"
    }
  }
  return out;
}

/** "at f (/…/src/test-3.js:120)" frames → "at f (test/core/x.test.ts:45)", through the bundles' source maps. */
export function mapStack(stack, bundles) {
  const tables = new Map();
  const frames = [];
  for (const raw of String(stack ?? '').split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('at ')) continue;
    const m = /^at (.*?)\s*\((.*):(\d+)\)$/.exec(line);
    const b = m && bundles.find((x) => x.outfile === m[2]);
    if (!b) {
      if (line !== 'at ()') frames.push(line); // a release build's frames name the function only
      continue;
    }
    if (!tables.has(b)) tables.set(b, lineTable(b.map));
    const hit = tables.get(b)[Number(m[3])];
    if (!hit) continue;
    const file = relative(root, resolve(join(b.outfile, '..'), hit[0]));
    if (file.startsWith('scripts/')) continue; // the runner and the uvu shims
    frames.push(`at ${m[1] || '<anonymous>'} (${file}:${hit[1]})`);
  }
  return frames.join('\n');
}

/**
 * Runs the app in the simulator (in `dir`) until its runner reports the end. When the runtime dies,
 * or a test reports nothing for `testTimeoutMs`, that test fails with what the runtime printed, and a
 * new launch starts after it. Returns { files: [{ rel, loadError, tests: [{ name, ok, ms, error }] }],
 * launches, seconds, output }.
 */
export async function runCoreTests({ app, dir, testTimeoutMs = 60_000, maxLaunches = 25 }) {
  const started = Date.now();
  const files = app.files.map((f) => ({ rel: f.rel, loadError: undefined, tests: [] }));
  const output = [];
  let from = { file: 0, test: 0 };
  let launches = 0;
  for (;;) {
    if (++launches > maxLaunches) throw new Error(`more than ${maxLaunches} launches of the simulator: the runtime keeps dying\n${output.slice(-30).join('\n')}`);
    const sim = new SimImage({ so: app.so, dir: join(dir, `launch-${launches}`), settings: { coreTestsFrom: `${from.file}:${from.test}` } });
    let seen = 0;
    let lastProgress = Date.now();
    let timedOut = false;
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      if (sim.lines.length !== seen) {
        seen = sim.lines.length;
        lastProgress = Date.now();
      }
      const ended = sim.lines.some((l) => l.startsWith(`${MARK}end `));
      // "XS abort: …" (a JavaScript stack overflow, memory full): the machine is dead, the process idles.
      if (ended || sim.exitCode !== undefined || sim.signal || sim.aborts().length) break;
      if (Date.now() - lastProgress > testTimeoutMs) {
        timedOut = true;
        break;
      }
    }
    await sim.kill('SIGKILL');
    output.push(`--- launch ${launches} from ${from.file}:${from.test}`, ...sim.lines);
    const report = parseReport(sim.lines);
    let current; // the test or file the runtime was in when it stopped
    let ended = false;
    for (const r of report) {
      if (r.kind === 'file') current = { f: r.f };
      else if (r.kind === 'load') {
        files[r.f].loadError = r.error;
        current = undefined;
      } else if (r.kind === 'start') current = { f: r.f, t: r.t, name: r.name };
      else if (r.kind === 'result') {
        files[r.f].tests[r.t] = { name: r.name, ok: r.ok, ms: r.ms, error: r.error };
        current = { f: r.f, after: r.t };
      } else if (r.kind === 'end') ended = true;
    }
    if (ended) break;
    const abort = sim.aborts()[0];
    const why = abort ? `the runtime stopped: ${abort}`
      : timedOut ? `nothing from the runtime for ${testTimeoutMs / 1000} s (a loop that never ends, or a promise that never settles)`
      : `the runtime died (${sim.signal ?? `exit ${sim.exitCode}`})`;
    const printed = sim.lines.filter((l) => !l.startsWith(MARK) && l !== abort).slice(-12);
    const said = printed.length ? `; before that it printed:\n${printed.join('\n')}` : '';
    if (!current) throw new Error(`the app stopped before running a test: ${why}${said}`);
    if (current.name !== undefined) {
      files[current.f].tests[current.t] = { name: current.name, ok: false, error: { name: 'Error', message: `${why}${said}`, stack: '' } };
      from = { file: current.f, test: current.t + 1 };
    } else if (current.after !== undefined) {
      // Died between tests (in an after hook, or loading the next file): go on with the next file.
      files[current.f].loadError = { name: 'Error', message: `after its last reported test, ${why}${said}`, stack: '' };
      from = { file: current.f + 1, test: 0 };
    } else {
      files[current.f].loadError = { name: 'Error', message: `while loading, ${why}${said}`, stack: '' };
      from = { file: current.f + 1, test: 0 };
    }
  }
  return { files, launches, seconds: (Date.now() - started) / 1000, output };
}

/**
 * Everything test/firmware/core-tests.test.ts needs: builds the app (release, as the image), runs it,
 * and when tests fail, builds the failing files again as a debug app (-d: XS keeps line numbers) and
 * runs them once more, to give each failure a stack mapped to the TypeScript sources. Returns
 * runCoreTests' result, failures carrying `where` (the mapped stack), plus the timings.
 */
export async function coreTestsOnModdable({ dir, out = join(root, 'build', 'firmware-core-tests'), log = () => {} }) {
  const app = await buildCoreTests({ out, log });
  log(`built the app in ${app.buildSeconds.toFixed(1)} s (mcconfig)`);
  const run = await runCoreTests({ app, dir: join(dir, 'release') });
  log(`ran ${run.files.length} test files in ${run.seconds.toFixed(1)} s, ${run.launches} launch(es) of the simulator`);
  for (const f of run.files) {
    for (const t of f.tests) if (t && !t.ok) t.error.where = mapStack(t.error.stack, app.bundles);
    if (f.loadError) f.loadError.where = mapStack(f.loadError.stack, app.bundles);
  }
  const failing = run.files.filter((f) => f.loadError || f.tests.some((t) => t && !t.ok));
  let debugSeconds = 0;
  if (failing.length) {
    const started = Date.now();
    try {
      const dbg = await buildCoreTests({ out: `${out}-debug`, files: failing.map((f) => f.rel), debug: true, log });
      const again = await runCoreTests({ app: dbg, dir: join(dir, 'debug') });
      for (const f of again.files) {
        const first = run.files.find((x) => x.rel === f.rel);
        if (f.loadError && first.loadError) first.loadError.where = mapStack(f.loadError.stack, dbg.bundles) || first.loadError.where;
        for (const t of f.tests) {
          const same = t && !t.ok && first.tests.find((x) => x && !x.ok && x.name === t.name);
          if (same) same.error.where = mapStack(t.error.stack, dbg.bundles) || same.error.where;
        }
      }
    } catch (e) {
      log(`no debug stacks: ${String(e.message).split('\n')[0]}`);
    }
    debugSeconds = (Date.now() - started) / 1000;
  }
  return { ...run, buildSeconds: app.seconds, debugSeconds };
}
