#!/usr/bin/env node
// `npm run build:firmware`: everything about the firmware that can be checked without the Moddable
// SDK or a meter.
//   1. type-check firmware/ (core, Moddable adapters, main.ts) with firmware/tsconfig.json: ES2022
//      plus @moddable/typings and no Node or DOM types, so a Node-only API fails the build;
//   2. bundle it with esbuild into XS-loadable ES modules in build/firmware/:
//        core.js  the platform-neutral core with tweetnacl inlined (no imports),
//                 loaded once in XS (xsnap) to prove it evaluates as a module there;
//        main.js  the firmware entry (main.ts + firmware/moddable + core), importing only Moddable
//                 and gridlet native modules; the manifests in manifests/ build it into the image;
//   3. syntax-check the native C (wasm3 binding, random, ota) against the XS headers that ship in
//      @agoric/xsnap and a declaration-only wasm3.h (firmware/moddable/wasm3/syntax), and against
//      the real wasm3 headers too when a wasm3 checkout is at ../shared/toolchains/wasm3 or $WASM3;
//      and the host's wasm3 glue (host/guests/wasm3/glue.c) against guest-core.h.
//
//   node scripts/build-firmware.js [--check-only] [--extra FILE.ts]…
// --check-only stops after the type check; --extra adds files to it (test/host uses it to prove
// that a Node-only API is refused).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleEsm, coreDir, coreEntrySource, moduleLetCheck, preloadCheck } from './firmware/bundle.js';
import { sdkSource, wasm3Source } from './firmware/sdk.js';

const root = resolve(fileURLToPath(import.meta.url), '..', '..');
const out = join(root, 'build', 'firmware');
const args = process.argv.slice(2);
const checkOnly = args.includes('--check-only');
const extra = args.flatMap((a, i) => (a === '--extra' ? [resolve(args[i + 1])] : []));

/** Modules the firmware imports from the Moddable SDK or gridlet's own native code: left as imports. */
const MODDABLE_MODULES = [
  'embedded:*', 'timer', 'time', 'preference', 'wifi', 'sntp', 'net', 'instrumentation', 'mc/config', 'gridlet/*',
];

let failed = false;
function step(name, fn) {
  const started = Date.now();
  return Promise.resolve()
    .then(fn)
    .then((detail) => console.log(`ok   ${name}${detail ? ` — ${detail}` : ''} (${((Date.now() - started) / 1000).toFixed(1)}s)`))
    .catch((e) => {
      failed = true;
      console.log(`FAIL ${name}\n${String(e.message ?? e).split('\n').map((l) => '    ' + l).join('\n')}`);
    });
}

// ---------------------------------------------------------------- 1. type check

function typecheck() {
  let project = join(root, 'firmware', 'tsconfig.json');
  let temp;
  if (extra.length) {
    // Same options and files, plus the extra ones.
    temp = mkdtempSync(join(tmpdir(), 'gridlet-fw-'));
    const base = JSON.parse(readFileSync(project, 'utf8'));
    const include = base.include.map((p) => resolve(root, 'firmware', p));
    project = join(temp, 'tsconfig.json');
    writeFileSync(project, JSON.stringify({
      extends: join(root, 'firmware', 'tsconfig.json'),
      include: [...include, ...extra],
      exclude: (base.exclude ?? []).map((p) => resolve(root, 'firmware', p)),
    }));
  }
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project, '--pretty', 'false'], {
    cwd: root, encoding: 'utf8',
  });
  if (temp) rmSync(temp, { recursive: true, force: true });
  if (r.status !== 0) {
    const text = (r.stdout + r.stderr).trim();
    const hint = /Cannot find name '(Buffer|process|require|setTimeout|setInterval|console|TextEncoder|TextDecoder|__dirname)'|Cannot find module 'node:/.test(text)
      ? '\nfirmware/ runs on XS: Node (and DOM) APIs do not exist there. Use a port (firmware/core/ports.ts) or a Moddable module.'
      : '';
    throw new Error(text + hint);
  }
  return 'firmware/ against @moddable/typings, no Node types';
}

// ---------------------------------------------------------------- 2. bundles

async function bundle(options, name) {
  return bundleEsm({ outfile: join(out, name), ...options });
}

async function bundles() {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const core = await bundle({ stdin: { contents: coreEntrySource(), resolveDir: coreDir, sourcefile: 'core-entry.ts', loader: 'ts' } }, 'core.js');
  if (core.imports.length) throw new Error(`core.js imports ${core.imports.join(', ')}: firmware/core must import nothing platform-specific`);
  const main = await bundle({ entryPoints: [join(root, 'firmware', 'main.ts')], external: MODDABLE_MODULES }, 'main.js');
  preloadCheck(readFileSync(join(out, 'main.js'), 'utf8'), 'main.js');
  const lets = moduleLetCheck([join(root, 'firmware', 'core'), join(root, 'firmware', 'moddable')]).map((l) => relative(root, l));
  if (lets.length) throw new Error(`firmware code that cannot run preloaded on Moddable (a module variable cannot be assigned at run time; Error.prototype is frozen):\n  ${lets.join('\n  ')}`);
  return `core.js ${(core.bytes / 1024).toFixed(1)} KB; main.js ${(main.bytes / 1024).toFixed(1)} KB importing ${main.imports.join(', ')}`;
}

/** Evaluates build/firmware/core.js as an ES module in XS: every core module's top level runs. */
async function loadOnXS() {
  const probe = mkdtempSync(join(tmpdir(), 'gridlet-fw-xs-'));
  const file = join(probe, 'core.js');
  writeFileSync(file, readFileSync(join(out, 'core.js'), 'utf8') + '\nglobalThis.gridletCoreLoaded = true;\n');
  const { startWorker } = await import('./xs/xsnap.js');
  const w = await startWorker({ name: 'gridlet-core-module' });
  try {
    await w.import(file);
    const { reply } = await w.evaluate('new TextEncoder().encode(String(globalThis.gridletCoreLoaded === true)).buffer');
    if (new TextDecoder().decode(reply) !== 'true') throw new Error('core.js did not finish evaluating on XS');
  } catch (e) {
    throw new Error(`core.js does not load as a module on XS: ${e.message}`);
  } finally {
    await w.terminate().catch(() => {});
    rmSync(probe, { recursive: true, force: true });
  }
  return 'build/firmware/core.js evaluates as an ES module in xsnap';
}

// ---------------------------------------------------------------- 3. C syntax

function compiler() {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean)) {
    const r = spawnSync(cc, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return cc;
  }
  throw new Error('no C compiler (cc, gcc or clang) on PATH; install one or set CC');
}

function syntaxCheck() {
  const cc = compiler();
  const xs = join(root, 'node_modules', '@agoric', 'xsnap', 'moddable', 'xs');
  if (!existsSync(join(xs, 'includes', 'xsmc.h'))) throw new Error(`no XS headers at ${relative(root, xs)}: is @agoric/xsnap installed?`);
  const wasm3 = join(root, 'firmware', 'moddable', 'wasm3');
  // The platform header a Moddable build puts first defines size_t & co.; stddef.h stands in for it.
  const common = ['-fsyntax-only', '-std=gnu99', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror', '-include', 'stddef.h',
    `-I${join(xs, 'includes')}`, `-I${join(xs, 'platforms')}`];
  const checks = [
    { file: join(wasm3, 'guest-engine.c'), flags: [`-I${join(wasm3, 'syntax')}`], what: 'wasm3 binding vs declared wasm3 API' },
    { file: join(wasm3, 'guest-core.c'), flags: [`-I${join(wasm3, 'syntax')}`], what: 'wasm3 guest core vs declared wasm3 API' },
    { file: join(root, 'host', 'guests', 'wasm3', 'glue.c'), flags: [`-I${wasm3}`, '-Wno-attributes'], what: "host wasm3 build's glue" },
    { file: join(root, 'firmware', 'moddable', 'native', 'random.c'), flags: [], what: 'random (lin)' },
    { file: join(root, 'firmware', 'moddable', 'native', 'random.c'), flags: ['-DESP32=1', `-I${join(wasm3, 'syntax', 'esp')}`], what: 'random (esp32)' },
    { file: join(root, 'firmware', 'moddable', 'native', 'ota.c'), flags: [], what: 'ota (lin)' },
    { file: join(root, 'firmware', 'moddable', 'native', 'ota.c'), flags: ['-DESP32=1', `-I${join(wasm3, 'syntax', 'esp')}`], what: 'ota (esp32, against ESP-IDF 5\'s declared OTA API)' },
    { file: join(root, 'firmware', 'moddable', 'native', 'xs-heap.c'), flags: [`-I${join(xs, 'sources')}`], what: 'xs-heap' },
  ];
  // The SDK's own XS headers define more than xsnap's (macros such as xsImport): check against them too.
  const sdk = sdkSource();
  if (sdk) {
    const sdkXs = ['-fsyntax-only', '-std=gnu99', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror', '-include', 'stddef.h',
      `-I${join(sdk, 'xs', 'includes')}`, `-I${join(sdk, 'xs', 'platforms')}`, `-I${join(wasm3, 'syntax')}`];
    checks.push({ file: join(wasm3, 'guest-engine.c'), flags: sdkXs, what: `wasm3 binding vs the XS headers of ${sdk}`, replace: true });
  }
  const real = wasm3Source();
  if (real) {
    checks.push({ file: join(wasm3, 'guest-engine.c'), flags: [`-I${real}`], what: `wasm3 binding vs ${real}` });
    checks.push({ file: join(wasm3, 'guest-core.c'), flags: [`-I${real}`], what: `wasm3 guest core vs ${real}` });
  }
  const errors = [];
  for (const c of checks) {
    const r = spawnSync(cc, [...(c.replace ? [] : common), ...c.flags, c.file], { encoding: 'utf8' });
    if (r.status !== 0) errors.push(`${relative(root, c.file)} (${c.what}):\n${(r.stderr || r.stdout).trim()}`);
  }
  if (errors.length) throw new Error(errors.join('\n'));
  return `${checks.map((c) => c.what).join('; ')} with ${cc}`;
}

// ---------------------------------------------------------------- run

await step('type-check firmware/', typecheck);
if (!checkOnly && !failed) {
  await step('bundle build/firmware/', bundles);
  if (!failed) await step('load core.js on XS', loadOnXS);
  await step('syntax-check native C', syntaxCheck);
}
console.log(failed ? 'build:firmware failed' : 'build:firmware ok');
process.exit(failed ? 1 : 0);
