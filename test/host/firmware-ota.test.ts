// Firmware over the air, end to end on the host: a real gateway, `gridlet agent` as a child process with
// its A/B slots in --data, and the operator's `gridlet firmware` commands. v2 is installed and confirmed;
// an image that never reaches its gateway rolls back to v2 by itself; a release signed by another key,
// one for another model and a truncated one are refused with their reasons while v2 keeps running; and
// the meter's readings keep their sequence through it all.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../../gateway/gateway.js';
import { firmwareMain } from '../../host/cli/firmware.js';
import { decodeReleaseFile, encodeReleaseFile } from '../../firmware/core/update/release.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-ota-'));
let gw: Gateway;
let child: ChildProcess | undefined;
let out = '';

async function fw(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let o = '', e = '';
  const code = await firmwareMain([...argv, ...(['upload', 'deploy', 'status', 'stop'].includes(argv[0]) ? ['--gateway', gw.httpUrl] : [])],
    { out: (l) => (o += l + '\n'), err: (l) => (e += l + '\n') });
  return { code, out: o, err: e };
}

async function until<T>(what: string, f: () => Promise<T> | T, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)?.slice(0, 800)}\nagent:\n${out.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function rollout(id: number): Promise<any> {
  return (await fetch(`${gw.httpUrl}/api/firmware/rollouts/${id}`)).json();
}

test.after(async () => {
  child?.kill('SIGKILL');
  await gw?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('v2 through the gateway is confirmed; an image that never reconnects rolls back; bad releases are refused with their reasons', async () => {
  gw = await startGateway({ dataDir: join(dir, 'gw'), mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} } });
  const key = join(dir, 'release');
  assert.is((await fw('keygen', '--out', key)).code, 0);
  assert.is((await fw('keygen', '--out', join(dir, 'other'))).code, 0);
  const image = (v: string, fault?: string) => {
    const f = join(dir, `host-${v}.img`);
    return fw('host-image', '--version', v, '--size', '200000', '-o', f, ...(fault ? ['--fault', fault] : [])).then(() => f);
  };
  const signed = async (img: string, v: string, k = key, model = 'gridlet-host') => {
    const r = await fw('sign', img, '--key', `${k}.key`, '--version', v, '--model', model, '-o', join(dir, `${v}-${model}-${k === key ? 'k' : 'o'}.release`));
    assert.is(r.code, 0, r.err);
    return join(dir, `${v}-${model}-${k === key ? 'k' : 'o'}.release`);
  };

  child = spawn(process.execPath, ['bin/gridlet.js', 'agent', '--data', join(dir, 'agent'), '--broker', gw.mqttUrl, '--meter', 'sim',
    '--interval', '250', '--release-key', `${key}.pub`, '--trial-s', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const [, id, code, firmware] = await until('agent ready', () => /agent ready id=(\S+) code=(\S+) console=\S+ firmware=(\S+)/.exec(out), (m) => m !== null) as RegExpExecArray;
  assert.is(firmware, '0.1.0');
  await until('its Hello', () => fetch(`${gw.httpUrl}/api/devices/${id}`).then((r) => r.status), (s) => s === 200);
  const p = await fetch(`${gw.httpUrl}/api/pairings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: id, code }) });
  assert.is(p.status, 201);
  await until('the device to report its version', () => fetch(`${gw.httpUrl}/api/devices/${id}`).then((r) => r.json()), (d: any) => d.capabilities.includes('ota'));

  // v2: uploaded, deployed, downloaded while readings flow, restarted into on trial, confirmed.
  const v2 = await signed(await image('0.2.0'), '0.2.0');
  const up = await fw('upload', v2);
  assert.is(up.code, 0, up.err);
  assert.match(up.out, /uploaded 0\.2\.0 for gridlet-host/);
  const dep = await fw('deploy', '--device', id, '0.2.0');
  assert.is(dep.code, 0, dep.err);
  const rid = Number(/rollout (\d+)/.exec(dep.out)![1]);
  const done = await until('v2 confirmed', () => rollout(rid), (r) => r.devices[0].state === 'confirmed' || r.devices[0].state === 'failed');
  assert.is(done.devices[0].state, 'confirmed', JSON.stringify(done));
  assert.is(done.state, 'done');
  assert.match(out, /agent booted firmware=0\.2\.0 slot=0 trial/);
  const dev: any = await until("the new version on the gateway", () => fetch(`${gw.httpUrl}/api/devices/${id}`).then((r) => r.json()), (d: any) => d.firmware === "0.2.0");
  assert.is(dev.firmware, '0.2.0');
  const st = await fw('status', String(rid));
  assert.match(st.out, new RegExp(`${id}\\s+canary\\s+confirmed\\s+0\\.2\\.0`));

  // v3 never reaches its gateway: after its 4 s trial the old image returns and says why.
  const v3 = await signed(await image('0.3.0', 'no-reconnect'), '0.3.0');
  assert.is((await fw('upload', v3)).code, 0);
  const dep3 = await fw('deploy', '--device', id, '0.3.0');
  const rid3 = Number(/rollout (\d+)/.exec(dep3.out)![1]);
  const rolled = await until('v3 rolled back', () => rollout(rid3), (r) => ['rolled-back', 'confirmed', 'failed'].includes(r.devices[0].state), 90_000);
  assert.is(rolled.devices[0].state, 'rolled-back', JSON.stringify(rolled));
  assert.match(rolled.devices[0].reason, /0\.3\.0 did not reach its gateway and have a record acknowledged within 4 s/);
  assert.is(rolled.state, 'stopped', 'one rollback stops the rollout (--max-failures 1 by default)');
  assert.match(out, /agent booted firmware=0\.3\.0 slot=1 trial[\s\S]*agent booted firmware=0\.2\.0 slot=0\b/);
  const st3 = await fw('status', String(rid3), '--json');
  assert.is(JSON.parse(st3.out).devices[0].running, '0.2.0');

  // Refused: another key's signature (by the meter), another model (by the gateway), a truncated image (at upload).
  const forged = await signed(await image('0.4.0'), '0.4.0', join(dir, 'other'));
  assert.is((await fw('upload', forged)).code, 0);
  const rid4 = Number(/rollout (\d+)/.exec((await fw('deploy', '--device', id, '0.4.0')).out)![1]);
  const bad = await until('the forged release refused', () => rollout(rid4), (r) => r.devices[0].state === 'failed');
  assert.match(bad.devices[0].reason, /^bad signature: release key [0-9a-f]{16} is not one this firmware trusts/);
  const esp = await signed(await image('0.5.0'), '0.5.0', key, 'gridlet-esp32');
  assert.is((await fw('upload', esp)).code, 0);
  const dep5 = await fw('deploy', '--device', id, '0.5.0');
  assert.match(dep5.out, /wrong model: the release is for gridlet-esp32, this device is gridlet-host/);
  const parsed = decodeReleaseFile(new Uint8Array(readFileSync(await signed(await image('0.6.0'), '0.6.0'))));
  const truncated = join(dir, 'truncated.release');
  writeFileSync(truncated, encodeReleaseFile(parsed.release, parsed.image.subarray(0, 150_000)));
  const up6 = await fw('upload', truncated);
  assert.is(up6.code, 1);
  assert.match(up6.err, /release refused: truncated image: 150000 bytes, the manifest says 200000/);
  const after = await fetch(`${gw.httpUrl}/api/devices/${id}`).then((r) => r.json()) as any;
  assert.is(after.firmware, '0.2.0', 'v2 keeps running');

  // Readings flowed through downloads, restarts and the rollback: one sequence, no gap.
  const recs = (await (await fetch(`${gw.httpUrl}/api/devices/${id}/readings?limit=10000`)).json() as any).records as any[][];
  const seqs = recs.map((r) => r[0]);
  assert.equal(seqs, seqs.map((_, i) => i + 1), 'every seq once, none missing');
  assert.not.ok(recs.some((r) => r[2] === 'gap'));
  const kinds = recs.filter((r) => r[2] === 'event' && r[3] === 'firmware').map((r) => `${r[4].state} ${r[4].version}`);
  assert.equal(kinds, ['confirmed 0.2.0', 'rolled-back 0.3.0', 'failed 0.4.0']);
});

test.run();
