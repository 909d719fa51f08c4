// `npm run test:xs` must fail loudly on XS incompatibilities: run it over fixtures that pass and
// fail in known ways, and check what a developer would read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

function runXS(...filters: string[]) {
  const r = spawnSync(process.execPath, ['scripts/xs/run.js', '--dir', 'test/fixtures/xs', '--limit', '100000000', ...filters], {
    cwd: root, encoding: 'utf8', timeout: 120_000,
  });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

test('a passing file reports ok with its count and the final tally', () => {
  const { status, out } = runXS('passing');
  assert.is(status, 0, out);
  assert.match(out, /^ok {3}test\/fixtures\/xs\/passing\.test\.ts \(6\/6, /m);
  assert.match(out, /^6 passed, 0 failed$/m);
});

test('failures name the test, the values, and the source line, and the exit code is non-zero', () => {
  const { status, out } = runXS('failing');
  assert.is(status, 1);
  assert.match(out, /^FAIL test\/fixtures\/xs\/failing\.test\.ts \(1\/4, /m);
  assert.match(out, /✘ assertion with bytes\n\s+Assertion: counter bytes\n\s+actual:\s+Uint8Array\(2\)\[0100\]\n\s+expected: Uint8Array\(2\)\[0101\]/);
  assert.match(out, /at .*\(test\/fixtures\/xs\/failing\.test\.ts:10\)/);
  assert.match(out, /✘ throws a TypeError\n\s+TypeError: .*undefined/);
  assert.match(out, /✘ never settles\n\s+Error: did not finish/);
  assert.match(out, /^1 passed, 3 failed$/m);
});

test('a file that cannot load on XS, or imports Node, or never stops, fails', () => {
  const { status, out } = runXS('load-throws', 'node-import', 'loop');
  assert.is(status, 1);
  assert.match(out, /FAIL test\/fixtures\/xs\/load-throws\.test\.ts[^\n]*\n\s+throws while loading on XS: ReferenceError: .*Intl/);
  assert.match(out, /load-throws\.test\.ts:5\)/);
  assert.match(out, /FAIL test\/fixtures\/xs\/node-import\.test\.ts[^\n]*\n\s+does not bundle for XS:\n.*Could not resolve "node:fs"/);
  assert.match(out, /✘ spins\n\s+Error: the XS worker exited \(too much computation\)/);
  assert.match(out, /✘ not reached\n\s+not run:/);
  assert.match(out, /^0 passed, 4 failed$/m);
});

test.run();
