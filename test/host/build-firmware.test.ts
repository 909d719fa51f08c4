// `npm run build:firmware` is the firmware's gate in CI: it must pass on the tree as it is, and it
// must refuse firmware code that uses a Node-only API (which does not exist on the meter's XS).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

function buildFirmware(...args: string[]) {
  const r = spawnSync(process.execPath, ['scripts/build-firmware.js', ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

test('firmware code that uses Buffer, process or node:fs fails the type check, naming the API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-node-probe-'));
  try {
    const probe = join(dir, 'uses-node.ts');
    writeFileSync(probe, [
      "import { readFileSync } from 'node:fs';",
      "export const frame = Buffer.from([1, 2, 3]);",
      "export const home = process.env.HOME;",
      "export const read = readFileSync;",
    ].join('\n'));
    const { status, out } = buildFirmware('--check-only', '--extra', probe);
    assert.is(status, 1, out);
    assert.match(out, /FAIL type-check firmware\//);
    assert.match(out, /uses-node\.ts.*Cannot find name 'Buffer'/);
    assert.match(out, /uses-node\.ts.*Cannot find name 'process'/);
    assert.match(out, /uses-node\.ts.*Cannot find module 'node:fs'/);
    assert.match(out, /Node \(and DOM\) APIs do not exist there/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the firmware type-checks, bundles into XS modules, loads on XS, and its C passes the syntax check', () => {
  const { status, out } = buildFirmware();
  assert.is(status, 0, out);
  assert.match(out, /^ok {3}type-check firmware\//m);
  assert.match(out, /^ok {3}bundle build\/firmware\//m);
  assert.match(out, /^ok {3}load core\.js on XS/m);
  assert.match(out, /^ok {3}syntax-check native C/m);
  assert.ok(existsSync(join(root, 'build', 'firmware', 'core.js')));
  assert.ok(existsSync(join(root, 'build', 'firmware', 'main.js')));
});

test.run();
