#!/usr/bin/env node
// `npm run test:xs`: runs the firmware core's own tests (test/core/**/*.test.ts) inside the real
// XS engine (the xsnap worker that @agoric/xsnap builds), so the core can never drift from XS, and
// the Moddable adapters' tests (firmware/moddable/test, against fakes of the SDK's modules).
//
//   node scripts/xs/run.js [filter…] [--verbose] [--seed N] [--keep] [--limit COMPUTRONS] [--dir DIR]
//
// Each test file is bundled with esbuild into one classic script (scripts/xs/harness.js first,
// `uvu` and `uvu/assert` swapped for the XS shims beside it) and evaluated in a fresh worker.
// The runner then asks the worker for its plan and runs the tests one per crank through the
// command channel, so each test reports its own computrons. A file that does not bundle or throws
// while loading fails: that is an XS incompatibility (or a Node-only import) in the core or test.
// Ends with "N passed, N failed"; exits non-zero on any failure.

import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  bundleTestFile, esbuildErrorText, fromBytes, lineTable, loadBundle, mapStack, root, startWorker, toBytes,
} from './xsnap.js';

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  args.splice(i, 1);
  return true;
};
const option = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const verbose = flag('--verbose') ?? false;
const keep = flag('--keep') ?? false;
const seed = Number(option('--seed') ?? process.env.XS_SEED ?? 0x2545f491) >>> 0;
// Per test (one crank); the worker dies with "too much computation" beyond it. Stops a loop
// that never ends long before a CI timeout does.
const limit = Math.min(2_147_483_647, Number(option('--limit') ?? 2_000_000_000)); // the worker reads it with atoi()
const TEST_TIMEOUT_MS = Number(process.env.XS_TEST_TIMEOUT_MS ?? 120_000);
// The core's tests, and the Moddable adapters' tests (run against fakes of the SDK's modules).
const dirOption = option('--dir');
const dirs = dirOption ? [join(root, dirOption)] : [join(root, 'test', 'core'), join(root, 'firmware', 'moddable', 'test')];
const filters = args;

function walk(dir) {
  let out = [];
  let names;
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

function indent(text, pad) {
  return String(text).split('\n').map((l) => pad + l).join('\n');
}

function computrons(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G';
  if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k';
  return String(n);
}

function withTimeout(promise, ms, onTimeout) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new Error(`no answer within ${ms / 1000} s (wall clock)`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Runs one test file; returns { rel, passed, failed, total, report: string[] }. */
async function runFile(file) {
  const rel = relative(root, file);
  const started = Date.now();
  const report = [];
  let passed = 0;
  let failed = 0;
  let total = 0;
  let compute = 0;

  let bundle;
  try {
    bundle = await bundleTestFile(file);
  } catch (e) {
    report.push(indent(`does not bundle for XS:\n${esbuildErrorText(e)}`, '    '));
    return { rel, passed: 0, failed: 1, total: 0, report, loadFailed: true, secs: (Date.now() - started) / 1000 };
  }
  if (keep) {
    mkdirSync(join(root, 'build', 'xs'), { recursive: true });
    writeFileSync(bundle.outfile, bundle.code);
    writeFileSync(bundle.outfile + '.map', JSON.stringify(bundle.map));
  }
  const table = lineTable(bundle.map);

  let worker;
  try {
    worker = await startWorker({ meteringLimit: limit, name: `xs-${rel.replace(/[^\w.-]+/g, '_')}` });
    await worker.evaluate(`globalThis.__GRIDLET_XS_SEED = ${seed};`);
    const loadError = await withTimeout(loadBundle(worker, bundle), TEST_TIMEOUT_MS, () => worker.terminate());
    if (loadError) {
      report.push(indent(`throws while loading on XS: ${loadError.name}: ${loadError.message}`, '    '));
      const stack = mapStack(loadError.stack, bundle, table);
      if (stack) report.push(indent(stack, '      '));
      return { rel, passed: 0, failed: 1, total: 0, report, loadFailed: true, secs: (Date.now() - started) / 1000 };
    }
    const planned = JSON.parse(fromBytes((await worker.issueCommand(toBytes(JSON.stringify({ op: 'plan' })))).reply));
    if (verbose && planned.lines.length) report.push(indent(planned.lines.join('\n'), '    | '));
    let dead;
    for (const entry of planned.tests) {
      if (entry.skip) {
        if (verbose) report.push(`    - ${entry.name} (skipped)`);
        continue;
      }
      total++;
      if (dead) {
        failed++;
        report.push(`    ✘ ${entry.name}\n      not run: ${dead}`);
        continue;
      }
      let r;
      let crank;
      try {
        crank = await withTimeout(
          worker.issueCommand(toBytes(JSON.stringify({ op: 'run', entry }))), TEST_TIMEOUT_MS, () => worker.terminate());
        compute += crank.meterUsage.compute ?? 0;
        r = crank.reply.length
          ? JSON.parse(fromBytes(crank.reply))
          : { ok: false, error: { name: 'Error', message: 'did not finish: the test awaited something that never settled on XS (I/O or a host callback the worker lacks)', stack: '' }, lines: [] };
      } catch (e) {
        const m = /exited: (.*)$/m.exec(String(e.message));
        dead = m ? `the XS worker exited (${m[1]})` : String(e.message).split('\n')[0];
        r = { ok: false, error: { name: 'Error', message: `${dead}${m && /computation/.test(m[1]) ? ` — more than ${computrons(limit)} computrons in one test` : ''}`, stack: '' }, lines: [] };
      }
      if (r.ok) {
        passed++;
        if (verbose) report.push(`    ✔ ${entry.name} (${computrons(crank.meterUsage.compute)} computrons)`);
      } else {
        failed++;
        const e = r.error;
        let text = `    ✘ ${entry.name}\n      ${e.name}: ${e.message}`;
        if (e.actual !== undefined) text += `\n        actual:   ${e.actual}\n        expected: ${e.expects}`;
        const stack = mapStack(e.stack, bundle, table).split('\n').slice(0, 8).join('\n');
        if (stack) text += '\n' + indent(stack, '        ');
        report.push(text);
      }
      if (r.lines && r.lines.length && (verbose || !r.ok)) report.push(indent(r.lines.join('\n'), '      | '));
    }
    if (total === 0 && !planned.tests.length) report.push('    (no tests registered: does the file call test.run()?)');
  } catch (e) {
    failed = Math.max(1, failed);
    report.push(indent(`XS worker failed: ${String(e.message).split('\n')[0]}`, '    '));
  } finally {
    if (worker) await worker.terminate().catch(() => {});
  }
  return { rel, passed, failed, total, compute, report, secs: (Date.now() - started) / 1000 };
}

const files = dirs.flatMap((d) => walk(d)).filter((f) => !filters.length || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.log(`no test files in ${dirs.map((d) => relative(root, d)).join(', ')}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}

// A few files at a time (each in its own worker process); output stays in file order.
const parallel = Math.max(1, Math.min(4, Number(process.env.XS_JOBS ?? 4)));
const results = new Array(files.length);
let next = 0;
let printed = 0;
function flush() {
  while (printed < files.length && results[printed]) {
    const r = results[printed++];
    const status = r.failed ? 'FAIL' : 'ok  ';
    const meter = r.compute ? `, ${computrons(r.compute)} computrons` : '';
    console.log(`${status} ${r.rel} (${r.passed}/${r.total}, ${r.secs.toFixed(1)}s${meter})`);
    for (const line of r.report) console.log(line);
  }
}
await Promise.all(Array.from({ length: parallel }, async () => {
  while (next < files.length) {
    const i = next++;
    results[i] = await runFile(files[i]);
    flush();
  }
}));

const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
const failedFiles = results.filter((r) => r.failed).map((r) => r.rel);
if (failedFiles.length) {
  console.log(`\nfailed on XS (seed ${seed}):\n  ${failedFiles.join('\n  ')}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
