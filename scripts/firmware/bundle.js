// How gridlet's firmware JavaScript is bundled for XS, shared by `npm run build:firmware`
// (scripts/build-firmware.js: build/firmware/core.js and main.js), `npm run test:xs` (scripts/xs/) and
// the core's tests on Moddable's runtime (scripts/firmware/core-tests.js).
//
//   XS_TARGET               the esbuild options every bundle for XS shares
//   bundleEsm(options)      esbuild → one XS-loadable ES module file; { bytes, imports, code }
//   coreModules()           every module of firmware/core, sorted
//   coreNamespace(file)     the name a core module's exports have in the core bundle ("wire/frame" → wire_frame)
//   coreEntrySource()       the entry of the core bundle: each core module's exports as one namespace
//   naclCryptoStub          the esbuild plugin that keeps tweetnacl from asking for Node's crypto
//   preloadCheck(code)      refuses what a preloaded module cannot hold (module-level RegExps)
//   fakesFor(testFile)      the fakes of Moddable modules a test file's folder declares (fakes.json)
//   fakeModules(map)        the esbuild plugin that bundles those fakes in place of the modules

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
export const coreDir = join(root, 'firmware', 'core');

/**
 * tweetnacl probes `require('crypto')` for a default PRNG; on XS there is none, and the core installs
 * its own through useRandom(). Anything else asking for a Node module must still fail the bundle.
 */
export const naclCryptoStub = {
  name: 'tweetnacl-crypto-stub',
  setup(b) {
    b.onResolve({ filter: /^(node:)?crypto$/ }, (a) =>
      /[\\/]tweetnacl[\\/]/.test(a.importer) ? { path: 'crypto', namespace: 'xs-empty' } : undefined);
    b.onLoad({ filter: /.*/, namespace: 'xs-empty' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

/** Every module of firmware/core (not .d.ts, not tests), sorted. */
export function coreModules(dir = coreDir) {
  let files = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'test') files = files.concat(coreModules(p));
    } else if (name.endsWith('.ts') && !name.endsWith('.d.ts') && !name.endsWith('.test.ts')) files.push(p);
  }
  return files;
}

/** The namespace a core module's exports get in the core bundle: its path in firmware/core as an identifier. */
export function coreNamespace(file) {
  return relative(coreDir, file).replace(/\.[jt]s$/, '').replace(/[^A-Za-z0-9]+/g, '_');
}

/**
 * The core bundle's entry: `export * as <namespace> from './<module>.ts'` for every core module, so
 * that two modules exporting the same name never clash. Refuses two modules whose paths give the same
 * namespace (a-b.ts beside a_b.ts).
 */
export function coreEntrySource() {
  const seen = new Map();
  return coreModules()
    .map((f) => {
      const ns = coreNamespace(f);
      if (seen.has(ns)) throw new Error(`firmware/core/${relative(coreDir, f)} and firmware/core/${relative(coreDir, seen.get(ns))} both bundle as "${ns}": rename one`);
      seen.set(ns, f);
      return `export * as ${ns} from ${JSON.stringify('./' + relative(coreDir, f))};`;
    })
    .join('\n');
}

/**
 * What every bundle for XS shares: everything inlined, ES2022 for no particular platform, UTF-8 as
 * is, and an external source map without a sourceMappingURL comment (XS follows that comment when
 * loading a module, and skips the module silently when the map is missing).
 */
export const XS_TARGET = {
  bundle: true,
  platform: 'neutral',
  mainFields: ['module', 'main'],
  conditions: ['import', 'module'],
  target: 'es2022',
  sourcemap: 'external',
  sourcesContent: false,
  charset: 'utf8',
  logLevel: 'silent',
};

/**
 * Bundles with esbuild into one ES module that XS loads (`outfile`): ES2022, every dependency inlined
 * except `external`, an external source map. Returns its size, the specifiers it still imports, and
 * the esbuild result.
 */
export async function bundleEsm({ outfile, plugins = [], ...options }) {
  const result = await build({
    ...XS_TARGET,
    format: 'esm',
    outfile,
    legalComments: 'inline',
    metafile: true,
    plugins: [naclCryptoStub, ...plugins],
    ...options,
  });
  const code = readFileSync(outfile, 'utf8');
  // A CommonJS require esbuild could not inline becomes a runtime __require that throws on XS.
  if (/\b__require\(/.test(code)) throw new Error(`${relative(root, outfile)} still calls require(): a dependency needs a Node module`);
  const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
  return { bytes: Buffer.byteLength(code), imports: [...new Set(imports)].sort(), code, result };
}

/**
 * mcconfig preloads the firmware's modules: their top level runs at build time and what it leaves is
 * frozen into flash. Some objects cannot live there (Moddable's docs: "XS linker warnings",
 * "preload"): a RegExp made at module level crashes exec() at run time, a generator object cannot be
 * stored at all. Refused here, with the name, so that no image meets them. `name` names the bundle.
 */
export function preloadCheck(code, name) {
  const bad = [];
  for (const line of code.split('\n')) {
    const m = /^(?:var|let|const) ([\w$]+) = (\/(?![/*])|new RegExp\()/.exec(line) ?? /^\s+static ([\w$]+) = (\/(?![/*])|new RegExp\()/.exec(line);
    if (m) bad.push(`${m[1]}: a RegExp made when the module loads (make it inside the function that uses it)`);
  }
  if (bad.length) throw new Error(`${name} is preloaded into flash, where these cannot live:\n  ${bad.join('\n  ')}`);
}

/**
 * Rules read in the TypeScript sources, where esbuild has not yet turned every top-level `const` into
 * `var`: a module-level `let` is state that code assigns at run time, which a preloaded module cannot
 * do on XS ("set x: const") — keep such state in an object or an instance; and an Error subclass that
 * assigns `this.name` throws on Moddable, whose Error.prototype is frozen. Returns the offending
 * `file:line` entries.
 */
export function moduleLetCheck(dirs) {
  const bad = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (name !== 'test') walk(p);
      } else if (/\.(ts|js)$/.test(name) && !name.endsWith('.d.ts')) {
        const text = readFileSync(p, 'utf8');
        const errorClass = /extends Error\b/.test(text);
        text.split('\n').forEach((line, i) => {
          if (/^(export\s+)?(let|var)\s/.test(line)) bad.push(`${p}:${i + 1}: ${line.trim()}`);
          // Error.prototype is frozen on Moddable: assigning `name` throws "set name: not writable".
          if (errorClass && /^\s+this\.name\s*=/.test(line)) bad.push(`${p}:${i + 1}: ${line.trim()} (define name on the prototype)`);
        });
      }
    }
  };
  for (const d of dirs) walk(d);
  return bad;
}

/**
 * A `fakes.json` beside a test file maps module specifiers (Moddable's `timer`, `embedded:…`) to fake
 * implementations (firmware/moddable/test: the SDK's modules): specifier → absolute path, or undefined.
 */
export function fakesFor(testFile) {
  const fakesFile = join(dirname(testFile), 'fakes.json');
  if (!existsSync(fakesFile)) return undefined;
  const fakes = {};
  for (const [k, v] of Object.entries(JSON.parse(readFileSync(fakesFile, 'utf8')))) {
    if (k !== '//') fakes[k] = resolve(dirname(fakesFile), v);
  }
  return fakes;
}

/** Resolves the module specifiers of `map` (fakesFor) to their fakes. */
export function fakeModules(map) {
  return {
    name: 'moddable-fakes',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => (Object.hasOwn(map, args.path) ? { path: map[args.path] } : undefined));
    },
  };
}
