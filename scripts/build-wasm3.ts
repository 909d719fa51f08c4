// `npm run build:wasm3`: builds host/guests/wasm3/wasm3.wasm, the wasm3 guest engine for Node
// (host/guests/wasm3-engine.ts): wasm3 v0.5's source (not in this repository: ../shared/toolchains/wasm3
// beside this checkout, or $WASM3, a wasm3 checkout with source/wasm3.h), the platform-neutral core
// the firmware image runs (firmware/moddable/wasm3/guest-core.c) and host/guests/wasm3/glue.c,
// compiled with emscripten to one standalone WebAssembly module. Writes beside it wasm3's MIT license
// (LICENSE-wasm3) and build.json (the versions, flags and the hash of gridlet's C it was built from,
// which test/host/guests-wasm3.test.ts checks).
//
//   npm run build:wasm3            (emcc on PATH; Debian: apt-get install emscripten)

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { root, wasm3Source } from './firmware/sdk.js';

export const OUT_DIR = join(root, 'host', 'guests', 'wasm3');
export const CORE_DIR = join(root, 'firmware', 'moddable', 'wasm3');
/** gridlet's C in the artifact: build.json records its hash. */
export const OWN_SOURCES = [join(CORE_DIR, 'guest-core.h'), join(CORE_DIR, 'guest-core.c'), join(OUT_DIR, 'glue.c')];
/** wasm3's C files, as in firmware/moddable/wasm3/manifest.json. */
export const WASM3_FILES = ['m3_bind', 'm3_code', 'm3_compile', 'm3_core', 'm3_emit', 'm3_env', 'm3_exec', 'm3_function', 'm3_info', 'm3_module', 'm3_parse'];
/**
 * -O3 with tail calls (wasm3's interpreter chains its operations as tail calls; Node ≥ 20 runs
 * return_call), standalone (no emscripten JavaScript: the module imports only gridlet.host_import
 * and a memory-growth notice), growable memory for the guests' heaps.
 */
export const EMCC_FLAGS = ['-O3', '-mtail-call', '-DNDEBUG', '-s', 'STANDALONE_WASM=1', '--no-entry', '-s', 'ALLOW_MEMORY_GROWTH=1', '-s', 'ERROR_ON_UNDEFINED_SYMBOLS=0'];
export const EXPECTED_IMPORTS = ['env.emscripten_notify_memory_growth', 'gridlet.host_import'];

/** "module.name" of each import of a WebAssembly module, sorted. */
export function moduleImports(bytes: Uint8Array): string[] {
  const WA = (globalThis as unknown as { WebAssembly: { Module: { new (b: Uint8Array): object; imports(m: object): { module: string; name: string }[] } } }).WebAssembly;
  return WA.Module.imports(new WA.Module(bytes)).map((i) => `${i.module}.${i.name}`).sort();
}

/** Hash of gridlet's C sources (what build.json's `sources` must equal). */
export function ownSourcesHash(): string {
  const h = createHash('sha256');
  for (const f of OWN_SOURCES) h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

function emcc(): { env: NodeJS.ProcessEnv; version: string } | undefined {
  // Not node_modules/.bin first on PATH (as npm run puts it): binaryen's newer wasm-opt there would
  // replace emscripten's own and change the output.
  const PATH = (process.env.PATH ?? '').split(':').filter((p) => !p.includes('node_modules')).join(':');
  const env = { ...process.env, PATH, NODE_PATH: process.env.NODE_PATH ?? '/usr/share/nodejs' };
  const r = spawnSync('emcc', ['--version'], { env, encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return { env, version: r.stdout.split('\n')[0].trim() };
}

export function buildWasm3({ log = console.log }: { log?: (line: string) => void } = {}) {
  const source = wasm3Source();
  if (!source) {
    throw new Error('no wasm3 source: put a wasm3 v0.5 checkout at ../shared/toolchains/wasm3 beside this checkout, or set WASM3=/path/to/wasm3 (the folder with source/wasm3.h); https://github.com/wasm3/wasm3/releases/tag/v0.5.0');
  }
  const version = /#define M3_VERSION\s+"([^"]+)"/.exec(readFileSync(join(source, 'wasm3.h'), 'utf8'))?.[1];
  const cc = emcc();
  if (!cc) throw new Error('no emcc on PATH: install emscripten (Debian: apt-get install emscripten; or activate an emsdk)');
  const license = join(dirname(source), 'LICENSE');
  if (!existsSync(license)) throw new Error(`wasm3's LICENSE is not at ${license}: the artifact must ship with it`);
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, 'wasm3.wasm');
  const temp = join(OUT_DIR, 'wasm3.partial.wasm');
  const files = [...OWN_SOURCES.filter((f) => f.endsWith('.c')), ...WASM3_FILES.map((f) => join(source, `${f}.c`))];
  const started = Date.now();
  log(`emcc ${cc.version}: wasm3 ${version} from ${source}`);
  const r = spawnSync('emcc', [...EMCC_FLAGS, `-I${source}`, `-I${CORE_DIR}`, ...files, '-o', temp], { env: cc.env, encoding: 'utf8' });
  const text = (r.stdout ?? '') + (r.stderr ?? '');
  if (r.status !== 0 || !existsSync(temp)) throw new Error(`emcc failed:\n${text.trim()}`);
  const bytes = readFileSync(temp);
  const imports = moduleImports(bytes);
  if (imports.join() !== EXPECTED_IMPORTS.join()) {
    rmSync(temp, { force: true });
    throw new Error(`wasm3.wasm imports ${imports.join(', ')}; expected only ${EXPECTED_IMPORTS.join(', ')} (an undefined C symbol?)\n${text.trim()}`);
  }
  renameSync(temp, out);
  writeFileSync(join(OUT_DIR, 'LICENSE-wasm3'), readFileSync(license));
  const info = {
    wasm3: version,
    emcc: cc.version,
    flags: EMCC_FLAGS,
    files: files.map((f) => (f.startsWith(source) ? `wasm3/source/${relative(source, f)}` : relative(root, f))),
    sources: ownSourcesHash(),
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
  writeFileSync(join(OUT_DIR, 'build.json'), JSON.stringify(info, null, 2) + '\n');
  log(`wrote ${relative(root, out)} (${bytes.length} bytes) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return info;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  try {
    buildWasm3();
  } catch (e) {
    console.error(`build:wasm3: ${(e as Error).message}`);
    process.exit(1);
  }
}
