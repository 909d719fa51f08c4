#!/usr/bin/env node
// Runs one test suite with uvu under tsx and ends with the plain "N passed, N failed" line.
//   node scripts/test.js unit          firmware core, host and gateway tests (no external services)
//   node scripts/test.js integration   tests against Mosquitto, PostgreSQL and other real services
//   node scripts/test.js hil           the hardware-in-the-loop suite alone (HIL_PORT=/dev/ttyUSB0 for a real meter)
//   node scripts/test.js browser       the dashboard in headless Chromium (/usr/bin/chromium; skipped, PENDING, without it)
//   node scripts/test.js firmware      the firmware image on Moddable's simulator (run through scripts/test-firmware.js)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const suites = {
  unit: ['test/core', 'test/host', 'test/gateway', 'test/cli', 'test/architecture', 'hil-tests'],
  integration: ['test/integration'],
  hil: ['hil-tests'],
  browser: ['test/browser'],
  firmware: ['test/firmware'],
};
const suite = process.argv[2] ?? 'unit';
const only = process.argv[3];
if (!suites[suite]) {
  console.error(`unknown suite "${suite}"; use one of: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}

function walk(dir) {
  let out = [];
  let names;
  try { names = readdirSync(dir); } catch { return out; }
  for (const name of names.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

const files = suites[suite].flatMap((d) => walk(join(root, d))).filter((f) => !only || f.includes(only));
let passed = 0;
let failed = 0;
const failures = [];
for (const file of files) {
  const rel = relative(root, file);
  const started = Date.now();
  // One process per file: a test that leaks a socket or a timer cannot hang or skew another.
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/uvu-file.js'), file], {
    cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000,
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  const m = /Total:\s+(\d+)[\s\S]*?Passed:\s+(\d+)/.exec(out);
  const total = m ? Number(m[1]) : 0;
  const ok = m ? Number(m[2]) : 0;
  const fileFailed = r.status !== 0 || !m || ok !== total;
  passed += ok;
  failed += fileFailed ? Math.max(1, total - ok) : 0;
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`${fileFailed ? 'FAIL' : 'ok  '} ${rel} (${ok}/${total}, ${secs}s)`);
  // Tests a suite skips because something is not there yet say so with a PENDING line; what a test
  // measured for the record (heap, stack, times) with a MEASURED line.
  if (!fileFailed) for (const l of out.split('\n')) if (l.startsWith('PENDING ') || l.startsWith('MEASURED ')) console.log(`     ${l}`);
  if (fileFailed) {
    failures.push(rel);
    console.log(out.split('\n').map((l) => '    ' + l).join('\n'));
    if (r.error) console.log(`    ${r.error.message}`);
  }
}
if (files.length === 0) {
  console.log(`no test files in ${suites[suite].join(', ')}`);
  process.exit(1);
}
if (failures.length) console.log(`\nfailed files:\n  ${failures.join('\n  ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
