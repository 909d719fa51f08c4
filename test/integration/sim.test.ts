// `gridlet sim` as an operator runs it: a gateway process (`gridlet gateway --broker …`) on a Mosquitto
// of our own (ephemeral port, temporary config), and 200 simulated meters paired through the gateway's
// API, reporting for 30 s. The report line must show every record stored exactly once.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGatewayChild, startMosquitto, type Child, type GatewayChild } from '../../scripts/scale.js';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
let mosquitto: Child;
let gateway: GatewayChild;

test.before(async () => {
  mosquitto = await startMosquitto();
  gateway = await startGatewayChild({ broker: mosquitto.url });
});

test.after(async () => {
  await gateway?.stop();
  await mosquitto?.stop();
});

function sim(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(root, 'bin', 'gridlet.js'), 'sim', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test('200 meters for 30 s through Mosquitto: nothing lost, nothing duplicated', async () => {
  const r = await sim(['--meters', '200', '--broker', mosquitto.url, '--gateway', gateway.httpUrl, '--duration', '30', '--grace', '60']);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 1, `exactly one stdout line, got: ${r.stdout}`);
  const m = /^sim report meters=(\d+) sent=(\d+) acked=(\d+) lost=(\d+) dup=(\d+) p50_ms=(\d+) p99_ms=(\d+)$/.exec(lines[0]);
  assert.ok(m, `report line: ${lines[0]}\n${r.stderr.slice(-2000)}`);
  const [meters, sent, acked, lost, dup] = m!.slice(1, 6).map(Number);
  assert.is(meters, 200);
  // 200 meters × 3 readings (30 s at 10 s) × 4 channels at least, plus power-up events.
  assert.ok(sent >= 200 * 3 * 4, `sent=${sent}`);
  assert.is(acked, sent);
  assert.is(lost, 0);
  assert.is(dup, 0);
  assert.is(r.code, 0);
  assert.match(r.stderr, /pair +\[#+\] 200\/200/, 'a pairing progress bar on stderr');
});

test('bad arguments get a clear error and exit status 2', async () => {
  const r = await sim(['--meters', 'many', '--broker', mosquitto.url, '--gateway', gateway.httpUrl]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /--meters must be a whole number/);
  assert.is(r.stdout, '');
});

test.run();
