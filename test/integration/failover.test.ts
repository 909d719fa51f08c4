// Failover between two real brokers. The meter prefers a Mosquitto broker and falls back to
// the gateway's embedded aedes broker. Stop Mosquitto: readings continue via aedes with none lost;
// bring it back: the meter returns to it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../../gateway/gateway.js';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-failover-'));
let mosquitto: ChildProcess | undefined;
let gw: Gateway | undefined;
let host: HostAgent | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startMosquitto(port: number): Promise<void> {
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  mosquitto = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true)); // in use: mosquitto is listening
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error('mosquitto did not start');
}

test('readings fail over to the second broker with none lost, and return to the preferred one', async () => {
  const port = await freePort();
  await startMosquitto(port);
  const mosqUrl = `mqtt://127.0.0.1:${port}`;
  gw = await startGateway({ dataDir: join(dir, 'gw'), mqttListen: '127.0.0.1:0', broker: [mosqUrl], httpListen: '127.0.0.1:0', logger: { log() {} } });
  const lines = [];
  for (let i = 0; i < 400; i++) lines.push(JSON.stringify({ t: 1_700_000_000 + i, values: [[3, 1000 + i]] }));
  writeFileSync(join(dir, 'meter.jsonl'), lines.join('\n'));
  host = createHostAgent({ dataDir: join(dir, 'agent'), brokers: [mosqUrl, gw.mqttUrl], meter: `replay:${join(dir, 'meter.jsonl')}`, intervalMs: 100 });
  const a = host.agent;
  a.start();
  for (let i = 0; ; i++) {
    const r = await fetch(`${gw.httpUrl}/api/pairings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: a.deviceId, code: a.identity.pairCode }) });
    if (r.status === 201) break;
    assert.ok(i < 40, `pairing: ${r.status} ${await r.text()}`);
    await sleep(250);
  }
  const active = () => a.links.status().find((l) => l.active)?.name;
  await sleep(3000);
  assert.is(active(), 'link1', 'on the preferred broker (Mosquitto)');

  mosquitto!.kill('SIGKILL');
  const stoppedAt = Date.now();
  while (active() !== 'link2' && Date.now() - stoppedAt < 20_000) await sleep(100);
  const failoverS = (Date.now() - stoppedAt) / 1000;
  assert.is(active(), 'link2', 'failed over to aedes');
  assert.ok(failoverS <= 15, `failover took ${failoverS} s`);
  await sleep(4000);

  await startMosquitto(port);
  const back = Date.now();
  while (active() !== 'link1' && Date.now() - back < 40_000) await sleep(200);
  assert.is(active(), 'link1', `returned to the preferred broker after ${(Date.now() - back) / 1000} s`);

  // Wait for the replay to finish and everything to be acked, then compare.
  const deadline = Date.now() + 60_000;
  let values: number[] = [];
  while (Date.now() < deadline) {
    const r = await fetch(`${gw.httpUrl}/api/devices/${a.deviceId}/readings?limit=10000`);
    const { records } = (await r.json()) as { records: unknown[][] };
    values = records.filter((x) => typeof x[2] === 'number').map((x) => x[3] as number);
    if (values.length >= 400) break;
    await sleep(500);
  }
  assert.equal(values, Array.from({ length: 400 }, (_, i) => 1000 + i), 'every reading once, in order');
  const events = (await (await fetch(`${gw.httpUrl}/api/devices/${a.deviceId}/readings?limit=10000`)).json() as { records: unknown[][] })
    .records.filter((x) => x[2] === 'event' && x[3] === 'link-failover').map((x) => x[4]);
  assert.equal(events, [{ from: 'link1', to: 'link2' }, { from: 'link2', to: 'link1' }], 'both failovers reported');
  console.log(`failover in ${failoverS.toFixed(1)} s`);
});

test.after(async () => {
  host?.stop();
  await gw?.close();
  mosquitto?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test.run();
