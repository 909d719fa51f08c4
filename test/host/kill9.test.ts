// `kill -9` of a running `gridlet agent` at random moments, restarted on the same --data, loses
// nothing: the gateway ends with every reading of the replayed meter exactly once, in order.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../../gateway/gateway.js';
import { Prng } from '../../firmware/core/prng.js';

const LINES = 240;
const seed = Number(process.env.GRIDLET_SEED ?? Date.now() % 100000);
const prng = new Prng(seed);
const dir = mkdtempSync(join(tmpdir(), 'gridlet-kill9-'));
let gw: Gateway;
let child: ChildProcess | undefined;

function startAgent(replay: string): Promise<{ id: string; code: string }> {
  child = spawn(process.execPath, ['bin/gridlet.js', 'agent', '--data', join(dir, 'agent'), '--broker', gw.mqttUrl,
    '--meter', `replay:${replay}`, '--interval', '15'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const c = child;
  let err = '';
  c.stderr!.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    c.stdout!.on('data', (d) => {
      out += d;
      const m = /agent ready id=(\S+) code=(\S+)/.exec(out);
      if (m) resolve({ id: m[1], code: m[2] });
    });
    c.once('exit', (code) => reject(new Error(`agent exited ${code} before ready: ${err}`)));
  });
}

async function readings(id: string): Promise<number[][]> {
  const out: number[][] = [];
  let from = 1;
  for (;;) {
    const r = await fetch(`${gw.httpUrl}/api/devices/${id}/readings?from=${from}&limit=5000`);
    const { records } = (await r.json()) as { records: unknown[][] };
    if (!records.length) return out;
    for (const rec of records) if (typeof rec[2] === 'number') out.push(rec as number[]);
    from = (records[records.length - 1][0] as number) + 1;
  }
}

test(`kill -9 at random moments loses and duplicates nothing (seed ${seed})`, async () => {
  gw = await startGateway({ dataDir: join(dir, 'gw'), mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} } });
  const replay = join(dir, 'meter.jsonl');
  const expected: [number, number, number][] = [];
  const lines: string[] = [];
  let energy = 5_000_000;
  for (let i = 0; i < LINES; i++) {
    const t = 1_700_000_000 + i * 10;
    const power = 200 + prng.int(3000);
    energy += prng.int(10);
    lines.push(JSON.stringify({ t, values: [[1, energy], [3, power]] }));
    expected.push([t, 1, energy], [t, 3, power]);
  }
  writeFileSync(replay, lines.join('\n') + '\n');

  const { id, code } = await startAgent(replay);
  for (let i = 0; ; i++) {
    const r = await fetch(`${gw.httpUrl}/api/pairings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: id, code }) });
    if (r.status === 201) break;
    assert.ok(i < 50, `pairing did not succeed: ${r.status} ${await r.text()}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  let kills = 0;
  for (; kills < 8; kills++) {
    await new Promise((res) => setTimeout(res, 250 + prng.int(900)));
    child!.kill('SIGKILL');
    await new Promise((res) => child!.once('exit', res));
    await startAgent(replay);
  }
  const deadline = Date.now() + 60_000;
  let got: number[][] = [];
  while (Date.now() < deadline) {
    got = await readings(id);
    if (got.length >= expected.length) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  child!.kill('SIGTERM');
  const values = got.map((r) => [r[1], r[2], r[3]]);
  assert.is(values.length, expected.length, `every reading exactly once after ${kills} kills (seed ${seed})`);
  assert.equal(values, expected, `in order, none invented (seed ${seed})`);
  const seqs = got.map((r) => r[0]);
  assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), 'seqs increase');
});

test.after(async () => {
  child?.kill('SIGKILL');
  await gw?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.run();
