// The gateway must interoperate with anything that follows WIRE.md: run an independent device written
// in Python from the spec alone (test/interop/wire_device.py, scenario.py) against a real
// `gridlet gateway` with its embedded broker. Needs Debian's python3-nacl, python3-cbor2 and
// python3-paho-mqtt under /usr/bin/python3 (.ci/run installs them); skipped with a message otherwise.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGatewayChild, type GatewayChild } from '../../scripts/scale.js';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const PYTHON = '/usr/bin/python3';

function pythonMissing(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import nacl.public, nacl.bindings, nacl.secret, cbor2, paho.mqtt.client'], {
    encoding: 'utf8', timeout: 30_000,
  });
  if (r.error) return `${PYTHON} cannot run: ${r.error.message}`;
  if (r.status !== 0) {
    return `${PYTHON} lacks the Debian modules (apt-get install python3-nacl python3-cbor2 python3-paho-mqtt): `
      + (r.stderr ?? '').trim().split('\n').pop();
  }
  return null;
}

function runScenario(args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(PYTHON, ['test/interop/scenario.py', ...args], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    p.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    const timer = setTimeout(() => { out += '\n(scenario timed out after 240 s)'; p.kill('SIGKILL'); }, 240_000);
    p.on('close', (status) => { clearTimeout(timer); resolve({ status, out }); });
  });
}

const missing = pythonMissing();
const maybe = missing ? test.skip : test;
if (missing) console.log(`skipping the Python interop tests: ${missing}`);

maybe('the device self-test (CBOR determinism, nonce layout, key derivations) passes', () => {
  const r = spawnSync(PYTHON, ['test/interop/wire_device.py', '--self-test'], {
    cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
  assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /self-test: all passed/);
});

maybe('an independent Python device pairs, reports and is revoked by `gridlet gateway` as WIRE.md says', async () => {
  let gw: GatewayChild | undefined;
  try {
    gw = await startGatewayChild();
    const { status, out } = await runScenario(['--mqtt', gw.mqttUrl, '--http', gw.httpUrl, '--gateway-id', gw.id]);
    // The checks that failed come first: a long log may be cut in the middle where it is shown.
    const failed = out.split('\n').filter((l) => l.startsWith('FAIL ')).join('\n');
    assert.is(status, 0, `scenario failed:\n${failed}\n--- scenario output ---\n${out}\n--- gateway output ---\n${gw.output().slice(-8000)}`);
    assert.match(out, / 0 failed/);
  } finally {
    if (gw) await gw.stop();
  }
});

test.run();
