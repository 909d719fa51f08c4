// The core's own tests (test/core, and the Moddable adapters' tests over their fakes) on Moddable's
// runtime, with the core PRELOADED as on a meter: one lin app (scripts/firmware/core-tests.js) whose
// gridlet/core module is firmware/core bundled as the image bundles it, its top level run when mcconfig
// builds the app and its objects frozen in flash; the test files are loaded at run time and run one
// after another in one simulator launch. One test here per test file: it fails with each failing
// test's name, error and stack (mapped to the sources through a debug build of the failing files).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreTestFiles, coreTestsOnModdable, NOT_ON_MODDABLE } from '../../scripts/firmware/core-tests.js';
import { pendingReason } from './support.js';

const pending = pendingReason();
if (pending) console.log(`PENDING core tests on Moddable's runtime: ${pending}`);

const { run: files, notRun } = coreTestFiles();
for (const rel of notRun) console.log(`NOT ON MODDABLE ${rel}: ${NOT_ON_MODDABLE[rel as keyof typeof NOT_ON_MODDABLE]}`);

const dir = mkdtempSync(join(tmpdir(), 'gridlet-core-tests-'));
let result: Awaited<ReturnType<typeof coreTestsOnModdable>> | undefined;

test.before(async () => {
  if (pending) return;
  result = await coreTestsOnModdable({ dir, log: (line: string) => console.log(`     ${line}`) });
  const tests = result.files.reduce((n, f) => n + f.tests.filter(Boolean).length, 0);
  console.log(`MEASURED core tests on Moddable: ${tests} tests in ${result.files.length} files; bundle and build ${result.buildSeconds.toFixed(1)} s, ` +
    `run ${result.seconds.toFixed(1)} s in ${result.launches} launch(es)${result.debugSeconds ? `, debug rerun for stacks ${result.debugSeconds.toFixed(1)} s` : ''}`);
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function describe(e: { name: string; message: string; actual?: string; expects?: string; where?: string }): string {
  let text = `${e.name}: ${e.message}`;
  if (e.actual !== undefined) text += `\n  actual:   ${e.actual}\n  expected: ${e.expects}`;
  if (e.where) text += `\n  ${e.where.split('\n').slice(0, 8).join('\n  ')}`;
  return text;
}

for (const rel of files) {
  test(`${rel} passes on Moddable's runtime with the core preloaded`, () => {
    if (pending) return;
    const f = result!.files.find((x) => x.rel === rel)!;
    if (f.loadError) assert.unreachable(`${rel} does not load on Moddable: ${describe(f.loadError)}`);
    const ran = f.tests.filter((t): t is NonNullable<typeof t> => t !== undefined);
    assert.ok(ran.length > 0, `${rel} registered no tests on Moddable`);
    const failed = ran.filter((t) => !t.ok);
    assert.ok(failed.length === 0, `${failed.length} of ${ran.length} tests of ${rel} fail on Moddable:\n` +
      failed.map((t) => `✘ ${t.name}\n  ${describe(t.error!).split('\n').join('\n  ')}`).join('\n'));
  });
}

test.run();
