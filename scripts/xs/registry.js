// The test registry that the uvu shim (uvu.js) fills, shared by the XS runners: the xsnap harness
// (harness.js, npm run test:xs) and the Moddable runtime's runner (scripts/firmware/core-tests-main.js,
// npm run test:firmware). Plain ES2022, no host API: it runs on any XS.

// ---------------------------------------------------------------------------------------------
// Output: everything a test prints is kept (bounded) and returned with its result.

const MAX_LINES = 200;
let lines = [];
let linesDropped = 0;

export function say(text) {
  if (lines.length >= MAX_LINES) {
    linesDropped++;
    return;
  }
  lines.push(String(text).slice(0, 2000));
}

/** The lines printed since the last call. */
export function takeLines() {
  const out = lines;
  if (linesDropped) out.push(`… ${linesDropped} more lines dropped`);
  lines = [];
  linesDropped = 0;
  return out;
}

/** A compact, cycle-safe rendering that shows bytes as hex and Maps as maps. */
export function format(v, depth = 0, seen = []) {
  if (typeof v === 'string') return depth ? JSON.stringify(v) : v;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'symbol') return v.toString();
  if (typeof v === 'function') return `[Function ${v.name || 'anonymous'}]`;
  if (v === null || typeof v !== 'object') return Object.is(v, -0) ? '-0' : String(v);
  if (seen.indexOf(v) >= 0) return '[Circular]';
  if (depth > 6) return '[…]';
  seen = seen.concat([v]);
  const f = (x) => format(x, depth + 1, seen);
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const name = v.constructor && v.constructor.name;
    if (v instanceof Uint8Array) {
      let hex = '';
      const n = Math.min(v.length, 64);
      for (let i = 0; i < n; i++) hex += (v[i] < 16 ? '0' : '') + v[i].toString(16);
      return `${name}(${v.length})[${hex}${v.length > n ? '…' : ''}]`;
    }
    return `${name}(${v.length})[${Array.prototype.slice.call(v, 0, 32).join(', ')}${v.length > 32 ? ', …' : ''}]`;
  }
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength})`;
  if (v instanceof Map) return `Map(${v.size}) {${Array.from(v, ([k, x]) => `${f(k)} => ${f(x)}`).join(', ')}}`;
  if (v instanceof Set) return `Set(${v.size}) {${Array.from(v, f).join(', ')}}`;
  if (v instanceof Date) return `Date(${isNaN(v.getTime()) ? 'Invalid' : v.toISOString()})`;
  if (v instanceof RegExp) return String(v);
  if (Array.isArray(v)) return `[${v.map(f).join(', ')}]`;
  const proto = Object.getPrototypeOf(v);
  const name = proto && proto !== Object.prototype && proto.constructor ? proto.constructor.name + ' ' : '';
  return `${name}{${Object.keys(v).map((k) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${f(v[k])}`).join(', ')}}`;
}

// ---------------------------------------------------------------------------------------------
// The registry that the uvu shim fills, and running its tests one at a time.

const suites = [];
let anyOnly = false;

/** Forgets every registered suite (a runner that loads test files one after another in one VM). */
export function resetSuites() {
  suites.length = 0;
  anyOnly = false;
}

export function registerSuite(suite) {
  suites.push(suite);
  if (suite.only.length) anyOnly = true;
}

/** Every registered test, in order, as entries that runEntry takes. */
export function plan() {
  const out = [];
  suites.forEach((s, si) => {
    const list = anyOnly ? s.only : s.tests;
    list.forEach((t, ti) => out.push({ suite: si, index: ti, name: s.name ? `${s.name} › ${t.name}` : t.name, first: ti === 0, last: ti === list.length - 1 }));
    s.skipped.forEach((name) => out.push({ suite: si, index: -1, name, skip: true }));
  });
  return out;
}

/** What a runner reports of an error: name, message, stack, and for assertions what was compared. */
export function errorReport(e, phase) {
  if (e === null || typeof e !== 'object') return { message: `${phase}threw ${format(e)}`, name: 'Error', stack: '' };
  const report = { name: String(e.name || 'Error'), message: phase + String(e.message), stack: String(e.stack || '') };
  if (e.name === 'Assertion') {
    report.operator = e.operator;
    if (e.operator !== 'ok' && e.operator !== 'not' && e.operator !== 'unreachable' && e.operator !== 'throws' && e.operator !== 'not.throws') {
      report.actual = format(e.actual, 1);
      report.expects = format(e.expects, 1);
    }
  }
  return report;
}

async function runHooks(hooks, ctx) {
  for (let i = 0; i < hooks.length; i++) await hooks[i](ctx);
}

/** Runs one planned test with its hooks; resolves to `{ ok, error }`, never rejects. */
export async function runEntry(entry) {
  const s = suites[entry.suite];
  const list = anyOnly ? s.only : s.tests;
  const t = list[entry.index];
  let error = null;
  let phase = '';
  try {
    if (entry.first) {
      phase = 'before hook: ';
      await runHooks(s.before, s.context);
    }
    phase = 'before.each hook: ';
    await runHooks(s.beforeEach, s.context);
    phase = '';
    await t.fn(s.context);
    phase = 'after.each hook: ';
    await runHooks(s.afterEach, s.context);
  } catch (e) {
    error = errorReport(e, phase);
  }
  if (entry.last) {
    try {
      await runHooks(s.after, s.context);
    } catch (e) {
      error = error || errorReport(e, 'after hook: ');
    }
  }
  return { ok: !error, error };
}
