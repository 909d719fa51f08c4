// The Moddable SDK and its Linux simulator for gridlet's firmware tests and builds, without touching
// the SDK's own folder: the SDK source (read-only, e.g. ../shared/toolchains/moddable beside this
// checkout, or $GRIDLET_MODDABLE_SRC) is copied into a cache keyed by the hash of its content, its
// Linux tools are built there once (mcconfig, xsc, xsl, mcsim), and images are built from it into
// folders of this repository.
//
//   sdkSource()                 where the SDK source is, or undefined
//   ensureSdk({ log })          the built SDK: { moddable, bin, env } (builds it the first time)
//   buildImage({ manifest, out, config, log })   mcconfig for lin → { so, seconds }
//   startImage({ so, dir, settings, env })       runs an image under Xvfb: a SimImage (lines, waitFor, kill)
//   wasm3Source()               wasm3's source folder (../shared/toolchains/wasm3, or $WASM3)

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

/** The Moddable SDK source: $GRIDLET_MODDABLE_SRC, else the toolchains folder beside this checkout. */
export function sdkSource() {
  const candidates = [process.env.GRIDLET_MODDABLE_SRC, join(root, '..', 'shared', 'toolchains', 'moddable')].filter(Boolean);
  return candidates.find((p) => existsSync(join(p, 'build', 'makefiles', 'lin')));
}

/** wasm3's source folder (with wasm3.h): $WASM3/source, else the toolchains folder beside this checkout. */
export function wasm3Source() {
  const candidates = [process.env.WASM3, join(root, '..', 'shared', 'toolchains', 'wasm3')].filter(Boolean);
  const found = candidates.find((p) => existsSync(join(p, 'source', 'wasm3.h')));
  return found && join(found, 'source');
}

/** What the simulator needs from Debian, and the packages that provide it. */
export function missingSystemTools() {
  const missing = [];
  const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  if (!has('make')) missing.push('build-essential');
  if (!has('pkg-config', ['--exists', 'gtk+-3.0'])) missing.push('pkg-config libgtk-3-dev');
  if (spawnSync('sh', ['-c', 'command -v Xvfb'], { stdio: 'ignore' }).status !== 0) missing.push('xvfb');
  return missing;
}

function walk(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** A hash of every file's path and bytes under `dir`. */
export function contentHash(dir) {
  const h = createHash('sha256');
  for (const file of walk(dir)) {
    h.update(relative(dir, file));
    h.update('\0');
    h.update(readFileSync(file));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

function cacheRoot() {
  return process.env.GRIDLET_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'gridlet');
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `fn` holding a lock directory (mkdir is atomic); another process waits for it. */
function withLock(path, fn) {
  mkdirSync(dirname(path), { recursive: true });
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(path);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      // A lock older than 15 minutes belongs to a build that died.
      if (Date.now() - statSync(path).mtimeMs > 15 * 60_000) rmSync(path, { recursive: true, force: true });
      if (Date.now() - started > 20 * 60_000) throw new Error(`waited 20 min for ${path}; remove it if no build is running`);
      sleep(500);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}

function environment(moddable) {
  const bin = join(moddable, 'build', 'bin', 'lin', 'release');
  return { moddable, bin, env: { ...process.env, MODDABLE: moddable, PATH: `${bin}:${process.env.PATH}` } };
}

/**
 * The SDK, built: copied from its source into the cache (keyed by content) and its Linux tools made
 * there, the first time only (about 90 s on 2 cores). `log` gets progress lines.
 */
export function ensureSdk({ log = () => {} } = {}) {
  const source = sdkSource();
  if (!source) throw new Error('no Moddable SDK: put it at ../shared/toolchains/moddable beside this checkout or set GRIDLET_MODDABLE_SRC (docs/firmware.md)');
  const missing = missingSystemTools();
  if (missing.length) throw new Error(`the Moddable simulator needs Debian packages: apt-get install ${missing.join(' ')}`);
  const hash = contentHash(source);
  const dir = join(cacheRoot(), `moddable-${hash}`);
  const done = join(dir, '.gridlet-built');
  if (existsSync(done)) return environment(dir);
  return withLock(`${dir}.lock`, () => {
    if (existsSync(done)) return environment(dir);
    const started = Date.now();
    log(`building the Moddable SDK's Linux tools in ${dir} (once per SDK version; about 90 s)`);
    const temp = `${dir}.partial`;
    rmSync(temp, { recursive: true, force: true });
    cpSync(source, temp, { recursive: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(temp, dir);
    const { env } = environment(dir);
    const r = spawnSync('make', [], { cwd: join(dir, 'build', 'makefiles', 'lin'), env, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) {
      throw new Error(`building the Moddable SDK failed (make in ${join(dir, 'build', 'makefiles', 'lin')}):\n${(r.stdout + r.stderr).split('\n').slice(-30).join('\n')}`);
    }
    writeFileSync(done, `${new Date().toISOString()} ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    log(`Moddable SDK built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return environment(dir);
  });
}

/**
 * Builds an image for the simulator (mcconfig -m -p lin) into `out`; `config` adds key=value pairs
 * to the manifest's config; `instrument` makes an instrumented release build (-i), whose XS machine
 * keeps its stack peak; `debug` a debug build (-d: line numbers in stacks, C at -O0). `wasm3` is the
 * wasm3 source for manifests that build it (the firmware's); false for one that does not. Returns
 * the path of its mc.so and how long the build took.
 */
export function buildImage({ manifest, out, config = {}, instrument = false, debug = false, wasm3 = wasm3Source(), log = () => {} }) {
  const sdk = ensureSdk({ log });
  if (wasm3 === undefined) throw new Error('no wasm3 source: put it at ../shared/toolchains/wasm3 beside this checkout or set WASM3');
  mkdirSync(out, { recursive: true });
  const started = Date.now();
  const args = ['-m', ...(debug ? ['-d'] : instrument ? ['-i'] : []), '-p', 'lin', '-o', out, resolve(manifest), ...Object.entries(config).map(([k, v]) => `${k}=${v}`)];
  const r = spawnSync(join(sdk.bin, 'mcconfig'), args, {
    cwd: root, env: { ...sdk.env, ...(wasm3 ? { WASM3: dirname(wasm3) } : {}) }, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  const text = (r.stdout ?? '') + (r.stderr ?? '');
  // mcconfig names the build after the manifest's folder (manifests/lin → lin).
  const so = join(out, 'bin', 'lin', 'mc', debug ? 'debug' : instrument ? 'instrument' : 'release', basename(dirname(resolve(manifest))), 'mc.so');
  if (r.status !== 0 || !existsSync(so)) {
    const interesting = text.split('\n').filter((l) => !l.startsWith('# ')).slice(-40).join('\n');
    throw new Error(`mcconfig ${relative(root, manifest)} failed:\n${interesting}`);
  }
  const warnings = text.split('\n').filter((l) => l.startsWith('### warning'));
  return { so, seconds: (Date.now() - started) / 1000, warnings, log: text };
}

/** A virtual display for the simulator's window: one Xvfb, shared by the images of one process. */
let display;
function virtualDisplay() {
  if (display) return display;
  const r = spawnSync('sh', ['-c', 'command -v Xvfb'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('no Xvfb: apt-get install xvfb');
  for (let n = 90 + (process.pid % 400); ; n++) {
    if (existsSync(`/tmp/.X${n}-lock`)) continue;
    const child = spawn('Xvfb', [`:${n}`, '-screen', '0', '640x480x24', '-nolisten', 'tcp'], { stdio: 'ignore', detached: false });
    child.unref();
    const until = Date.now() + 10_000;
    while (!existsSync(`/tmp/.X11-unix/X${n}`) && Date.now() < until && child.exitCode === null) sleep(50);
    if (child.exitCode !== null) continue;
    display = { name: `:${n}`, child };
    process.once('exit', () => child.kill('SIGKILL'));
    return display;
  }
}

/**
 * A running image: the simulator (mcsim) with `so`, started in `dir` (its flash, preferences and
 * gridlet-sim.json live there; `settings` is written to gridlet-sim.json first).
 */
export class SimImage {
  lines = [];
  #waiters = [];
  #partial = '';
  exited;
  constructor({ so, dir, settings, env = process.env, sdk = ensureSdk() }) {
    mkdirSync(dir, { recursive: true });
    if (settings) writeFileSync(join(dir, 'gridlet-sim.json'), JSON.stringify(settings, null, 2));
    const d = virtualDisplay();
    this.dir = dir;
    this.exited = new Promise((resolveExit) => {
      this.child = spawn('stdbuf', ['-oL', join(sdk.bin, 'mcsim'), so], {
        cwd: dir, env: { ...env, DISPLAY: d.name, NO_AT_BRIDGE: '1', GTK_A11Y: 'none' }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      const onData = (chunk) => {
        this.#partial += chunk.toString('utf8');
        let i;
        while ((i = this.#partial.indexOf('\n')) >= 0) {
          const line = this.#partial.slice(0, i);
          this.#partial = this.#partial.slice(i + 1);
          this.lines.push(line);
          for (const w of [...this.#waiters]) w.check(line);
        }
      };
      this.child.stdout.on('data', onData);
      this.child.stderr.on('data', onData);
      this.child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        for (const w of [...this.#waiters]) w.fail(new Error(`the image exited (${signal ?? code}) before printing ${w.pattern}\n${this.tail()}`));
        resolveExit({ code, signal });
      });
    });
    process.once('exit', () => this.child.kill('SIGKILL'));
  }

  /** The last lines the image printed. */
  tail(n = 30) {
    return this.lines.slice(-n).map((l) => `  | ${l}`).join('\n');
  }

  /** Resolves with the first line (from `from`, default the start) matching `pattern`. */
  waitFor(pattern, { timeoutMs = 30_000, from = 0 } = {}) {
    const re = pattern instanceof RegExp ? pattern : new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    const seen = this.lines.slice(from).find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(re.exec(seen));
    if (this.exitCode !== undefined || this.signal) return Promise.reject(new Error(`the image has exited; it never printed ${re}\n${this.tail()}`));
    return new Promise((resolveWait, reject) => {
      const w = {
        pattern: re,
        check: (line) => {
          const m = re.exec(line);
          if (m) done(() => resolveWait(m));
        },
        fail: (e) => done(() => reject(e)),
      };
      const timer = setTimeout(() => w.fail(new Error(`no line matching ${re} within ${timeoutMs / 1000} s\n${this.tail()}`)), timeoutMs);
      const done = (f) => {
        clearTimeout(timer);
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        f();
      };
      this.#waiters.push(w);
    });
  }

  /** Lines that say the runtime aborted (XS abort, a boot failure). */
  aborts() {
    return this.lines.filter((l) => /XS abort|boot failed/.test(l));
  }

  kill(signal = 'SIGTERM') {
    if (this.exitCode === undefined && !this.signal) this.child.kill(signal);
    return this.exited;
  }
}
