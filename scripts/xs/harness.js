// The XS side of `npm run test:xs`: bundled first into every test bundle, it runs inside the
// xsnap worker. The worker has no console, no timers, no crypto.getRandomValues and no module
// loader; this file supplies what tests (not the core) lean on, and answers the Node runner's
// commands (`plan`, `run`) through the worker's `handleCommand` channel. The test registry itself is
// registry.js, which the Moddable runner shares.
//
// What it adds is deliberately for the tests' sake only. The core is kept honest elsewhere:
// `npm run build:firmware` type-checks firmware/ without Node or DOM types, so a core file using
// `console`, `setTimeout`, `TextEncoder` or `Error.captureStackTrace` fails there.

import { errorReport, format, plan, runEntry, say, takeLines } from './registry.js';

export { format, say };

const G = globalThis;
const nativeSetImmediate = G.setImmediate;
const nativeDateNow = Date.now;
const Encoder = G.TextEncoder;
const Decoder = G.TextDecoder;

function consoleMethod(level) {
  return (...args) => say((level ? level + ': ' : '') + args.map((a) => format(a)).join(' '));
}

if (typeof G.console === 'undefined') {
  G.console = {
    log: consoleMethod(''), info: consoleMethod(''), debug: consoleMethod(''),
    warn: consoleMethod('warn'), error: consoleMethod('error'), trace: consoleMethod('trace'),
  };
}
if (typeof G.print === 'function' && typeof G.trace === 'undefined') G.trace = (s) => say(s); // Moddable's trace()

// ---------------------------------------------------------------------------------------------
// Timers on a virtual clock. Callbacks run in due order, each one only after the promise jobs
// have drained (the worker runs setImmediate jobs then), and Date.now() jumps forward to the due
// time, so `await sleep(60_000)` costs nothing. Timers only run while a test or hook is running.

const timers = [];
let timerSeq = 0;
let pumping = false;
let active = false;
let skew = 0;
let firings = 0;
const MAX_FIRINGS = 200000;
let timerError = null;

Date.now = () => nativeDateNow() + skew;
if (G.performance && typeof G.performance.now === 'function') {
  const nativePerfNow = G.performance.now;
  G.performance = { now: () => nativePerfNow() + skew };
}

function addTimer(fn, ms, args, repeat) {
  if (typeof fn !== 'function') throw new TypeError('timer callback must be a function');
  const id = ++timerSeq;
  const delay = Math.max(0, Number(ms) || 0);
  timers.push({ id, due: Date.now() + delay, fn, args, repeat: repeat ? Math.max(1, delay) : 0 });
  schedulePump();
  return id;
}

function clearTimer(id) {
  const handle = typeof id === 'object' && id !== null ? id.id : id;
  for (let i = 0; i < timers.length; i++) {
    if (timers[i].id === handle) {
      timers.splice(i, 1);
      return;
    }
  }
}

function schedulePump() {
  if (pumping || !active || timers.length === 0) return;
  pumping = true;
  nativeSetImmediate(pump);
}

function pump() {
  pumping = false;
  if (!active || timers.length === 0) return;
  let k = 0;
  for (let i = 1; i < timers.length; i++) {
    if (timers[i].due < timers[k].due || (timers[i].due === timers[k].due && timers[i].id < timers[k].id)) k = i;
  }
  const t = timers[k];
  const due = t.due;
  if (t.repeat) t.due += t.repeat;
  else timers.splice(k, 1);
  const now = Date.now();
  if (due > now) skew += due - now;
  if (++firings > MAX_FIRINGS) {
    timerError = timerError || new Error(`more than ${MAX_FIRINGS} timer callbacks in one test: a timer loop that never ends?`);
    timers.length = 0;
    return;
  }
  try {
    t.fn(...(t.args || []));
  } catch (e) {
    timerError = timerError || e;
  }
  schedulePump();
}

if (typeof G.setTimeout === 'undefined') {
  G.setTimeout = (fn, ms, ...args) => addTimer(fn, ms, args, false);
  G.setInterval = (fn, ms, ...args) => addTimer(fn, ms, args, true);
  G.clearTimeout = clearTimer;
  G.clearInterval = clearTimer;
}
if (typeof G.queueMicrotask === 'undefined') {
  G.queueMicrotask = (fn) => {
    Promise.resolve().then(fn);
  };
}

// ---------------------------------------------------------------------------------------------
// Small gaps between XS and V8 that test code (not the core) may fall into.

if (typeof Error.captureStackTrace !== 'function') {
  // V8-only; uvu-style Assertion classes call it when present.
  Error.captureStackTrace = (target) => {
    if (target && typeof target === 'object' && !('stack' in target)) target.stack = new Error().stack;
  };
}

if (typeof G.structuredClone === 'undefined') {
  G.structuredClone = function structuredClone(value) {
    const seen = new Map();
    const clone = (v) => {
      if (v === null || typeof v !== 'object') {
        if (typeof v === 'function' || typeof v === 'symbol') throw new TypeError(`${String(v)} could not be cloned`);
        return v;
      }
      if (seen.has(v)) return seen.get(v);
      let out;
      if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) {
        const buf = clone(v.buffer);
        out = v instanceof DataView ? new DataView(buf, v.byteOffset, v.byteLength) : new v.constructor(buf, v.byteOffset, v.length);
      } else if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof Map) {
        out = new Map();
        seen.set(v, out);
        for (const [k, x] of v) out.set(clone(k), clone(x));
        return out;
      } else if (v instanceof Set) {
        out = new Set();
        seen.set(v, out);
        for (const x of v) out.add(clone(x));
        return out;
      } else if (Array.isArray(v)) {
        out = [];
        seen.set(v, out);
        for (let i = 0; i < v.length; i++) out[i] = clone(v[i]);
        return out;
      } else if (v instanceof Error) {
        out = new Error(v.message);
        out.name = v.name;
      } else {
        out = {};
        seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      }
      seen.set(v, out);
      return out;
    };
    return clone(value);
  };
}

// crypto.getRandomValues from a seeded generator (xorshift128), so a failing run replays exactly.
// The runner passes the seed in `__GRIDLET_XS_SEED` and prints it with any failure.
let seed = (G.__GRIDLET_XS_SEED >>> 0) || 0x2545f491;
const rng = [seed, seed ^ 0x9e3779b9, seed ^ 0x7f4a7c15, seed ^ 0x6a09e667];
function nextRandom() {
  let t = rng[3];
  const s = rng[0];
  rng[3] = rng[2];
  rng[2] = rng[1];
  rng[1] = s;
  t ^= t << 11;
  t ^= t >>> 8;
  rng[0] = (t ^ s ^ (s >>> 19)) >>> 0;
  return rng[0];
}
for (let i = 0; i < 16; i++) nextRandom();
// tweetnacl picks its default PRNG at load from `self.crypto.getRandomValues` (browsers) or
// `require('crypto')` (Node). Test doubles (a test's own gateway, say) may make keys before any
// useRandom() call, which works on Node; `self` gives them the seeded generator here. The core
// itself installs the platform's Random (crypto.ts useRandom), as it must on the meter.
if (typeof G.self === 'undefined') G.self = G;
if (typeof G.crypto === 'undefined') {
  G.crypto = {
    getRandomValues(view) {
      if (!ArrayBuffer.isView(view)) throw new TypeError('getRandomValues needs an integer typed array');
      const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      for (let i = 0; i < bytes.length; i++) bytes[i] = nextRandom() & 0xff;
      return view;
    },
  };
}

function bytesOf(text) {
  const u8 = new Encoder().encode(text);
  return u8.buffer.byteLength === u8.length ? u8.buffer : u8.slice().buffer;
}

G.handleCommand = function handleCommand(message) {
  const cmd = JSON.parse(new Decoder().decode(new Uint8Array(message)));
  const reply = {};
  if (cmd.op === 'plan') {
    reply.result = bytesOf(JSON.stringify({ tests: plan(), lines: takeLines() }));
  } else if (cmd.op === 'run') {
    active = true;
    firings = 0;
    schedulePump();
    runEntry(cmd.entry).then((r) => {
      active = false;
      if (r.ok && timerError) r = { ok: false, error: errorReport(timerError, 'timer callback: ') };
      timerError = null;
      r.lines = takeLines();
      reply.result = bytesOf(JSON.stringify(r));
    });
  } else {
    reply.result = bytesOf(JSON.stringify({ error: { message: `unknown command ${cmd.op}` } }));
  }
  return reply;
};

// ---------------------------------------------------------------------------------------------
// Moddable freezes every built-in once the image's modules are preloaded; xsnap does not. Freeze
// them here too, so that core code that writes to a built-in (`this.name = …` in an Error
// subclass assigns to the frozen Error.prototype's `name`, and throws on a meter) fails here.

for (const name of Object.getOwnPropertyNames(G)) {
  const v = G[name];
  if (typeof v !== 'function' || !/^[A-Z]/.test(name) || !v.prototype) continue;
  Object.freeze(v.prototype);
  Object.freeze(v);
}
for (const v of [Object.getPrototypeOf(function* () {}), Object.getPrototypeOf(async function () {}),
  Object.getPrototypeOf([][Symbol.iterator]()), Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())),
  Object.getPrototypeOf(Uint8Array), Object.getPrototypeOf(Uint8Array.prototype), Math, JSON, Reflect]) Object.freeze(v);
