// Firmware over the air on the lin image (Moddable's simulator, the real XS runtime): the meter's app
// slots are its file partition ./gridota.bin, written by the core's update state machine through the
// FlashUpdater; its `restart` ends the simulator, and the launcher here plays the bootloader on that
// file (core/update/boot-control.ts, as ESP-IDF's does on otadata) and starts the chosen slot's image —
// a lin image, the simulator's mc.so with its config line (host/ota/lin-image.ts).
// Through a real `gridlet gateway` and the operator's `gridlet firmware` commands: v2 is downloaded
// while telegrams keep arriving, booted on trial and confirmed; v3, whose broker points nowhere, never
// reaches its gateway and returns to v2 by itself (`rolled-back`); a release signed by another key is
// refused by the meter, one for another model and a truncated one by the gateway, with their reasons,
// while v2 keeps running; and every record the meter logged reaches the gateway once, in order.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firmwareMain } from '../../host/cli/firmware.js';
import { decodeReleaseFile, encodeReleaseFile } from '../../firmware/core/update/release.js';
import { FACTORY_SLOT } from '../../firmware/core/update/boot-control.js';
import { FileFlash } from '../../host/flash/file-flash.js';
import { openPty, type Pty } from '../../host/console/pty.js';
import { bootLinSlot } from '../../host/ota/lin-image.js';
import { builtImage, freePort, GatewayProcess, pendingReason, SimImage, telegram, until } from './support.js';

const pending = pendingReason();
if (pending) console.log(`PENDING firmware updates on the image: ${pending}`);

const dir = mkdtempSync(join(tmpdir(), 'gridlet-ota-image-'));
const meterDir = join(dir, 'meter');
let gateway: GatewayProcess | undefined;
let p1: Pty | undefined;
let feeder: ReturnType<typeof setInterval> | undefined;
const images: SimImage[] = [];
let current: SimImage | undefined;
let stopped = false;
/** What each boot ran: version, slot (-1 the factory image), trial. */
const boots: { version: string; slot: number; trial: boolean }[] = [];
let base: { [k: string]: string | number | boolean } = {};
const meter = { wh: 3_808_351, w: 900, sent: 0 };

/** Plays the bootloader on ./gridota.bin and starts what it chose; a restart (exit 0) boots again. */
function launch(): SimImage {
  let so = builtImage()!;
  let settings = { ...base };
  let boot = { version: String(base.firmwareVersion ?? '0.1.0'), slot: FACTORY_SLOT, trial: false };
  const otaFile = join(meterDir, 'gridota.bin');
  if (existsSync(otaFile)) {
    const flash = new FileFlash(otaFile, { blocks: statSync(otaFile).size / 4096, blockSize: 4096 });
    try {
      const b = bootLinSlot(flash);
      if (b.image) {
        so = join(meterDir, `slot${b.slot}.so`);
        writeFileSync(so, b.image.so);
        settings = { ...settings, ...b.image.config };
        boot = { version: String(b.image.config.firmwareVersion), slot: b.slot, trial: b.trial };
      }
    } finally {
      flash.close();
    }
  }
  boots.push(boot);
  const sim = new SimImage({ so, dir: meterDir, settings });
  images.push(sim);
  current = sim;
  void sim.exited.then(({ code }) => {
    if (!stopped && code === 0 && sim.lines.some((l) => l.includes('gridlet: restart'))) launch();
  });
  return sim;
}

async function fw(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let o = '', e = '';
  const code = await firmwareMain([...argv, ...(['upload', 'deploy', 'status', 'stop'].includes(argv[0]) ? ['--gateway', gateway!.httpUrl] : [])],
    { out: (l) => (o += l + '\n'), err: (l) => (e += l + '\n') });
  return { code, out: o, err: e };
}

const rollout = async (id: number) => (await gateway!.api('GET', `/api/firmware/rollouts/${id}`)).json;
const tails = () => images.map((i, n) => `boot ${n} (${boots[n]?.version} slot ${boots[n]?.slot}${boots[n]?.trial ? ' trial' : ''}):\n${i.tail(15)}`).join('\n');

test.after(async () => {
  stopped = true;
  if (feeder) clearInterval(feeder);
  for (const i of images) await i.kill('SIGKILL');
  await gateway?.stop();
  p1?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the image takes v2 through the gateway and confirms it; v3 that never reconnects rolls back by itself; bad releases are refused; no record is lost', async () => {
  if (pending) return;
  gateway = await new GatewayProcess(join(dir, 'gw'), await freePort()).start();
  p1 = openPty();
  const key = join(dir, 'release');
  assert.is((await fw('keygen', '--out', key)).code, 0);
  assert.is((await fw('keygen', '--out', join(dir, 'other'))).code, 0);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  base = {
    broker: `127.0.0.1:${gateway.mqttPort}`, p1Device: p1.path, relayMinDwellS: 1, model: 'gridlet-sim',
    releaseKeys: pub, trialS: 25,
  };
  const signed = async (v: string, config: { [k: string]: string }, k = key, model = 'gridlet-sim') => {
    const img = join(dir, `${v}.img`);
    const made = await fw('lin-image', '--so', builtImage()!, '--version', v, ...Object.entries(config).flatMap(([c, x]) => ['--config', `${c}=${x}`]), '-o', img);
    assert.is(made.code, 0, made.err);
    const out = join(dir, `${v}-${model}-${k === key ? 'k' : 'o'}.release`);
    const r = await fw('sign', img, '--key', `${k}.key`, '--version', v, '--model', model, '-o', out);
    assert.is(r.code, 0, r.err);
    return out;
  };

  const first = launch();
  const [, id, code] = (await first.waitFor(/gridlet 0\.1\.0 id (\w{16}) pair code (\S+)/))!;
  feeder = setInterval(() => {
    meter.wh += Math.round(meter.w / 3600);
    p1!.write(telegram(Math.floor(Date.now() / 1000), meter.wh, meter.w));
    meter.sent++;
  }, 1000);
  await until('the Hello', () => gateway!.api('GET', `/api/devices/${id}`), (r) => r.status === 200);
  const paired = await gateway.api('POST', '/api/pairings', { deviceId: id, code });
  assert.is(paired.status, 201, paired.text);
  const dev = await until('the ota capability', () => gateway!.api('GET', `/api/devices/${id}`), (r) => r.json.capabilities?.includes('ota'));
  assert.is(dev.json.firmware, '0.1.0');

  // v2: uploaded, deployed, downloaded while telegrams keep arriving, restarted into on trial, confirmed.
  const v2 = await signed('0.2.0', {});
  const up = await fw('upload', v2);
  assert.is(up.code, 0, up.err);
  const dep = await fw('deploy', '--device', id, '0.2.0');
  assert.is(dep.code, 0, dep.err);
  const rid = Number(/rollout (\d+)/.exec(dep.out)![1]);
  const readingsBefore = (await gateway.records(id)).filter((r) => r[2] === 1).length;
  const downloading = await until('downloading', () => rollout(rid), (r) => r.devices[0].state !== 'offered', 60_000);
  const done = await until('v2 confirmed', () => rollout(rid), (r) => ['confirmed', 'failed', 'rolled-back'].includes(r.devices[0].state), 240_000)
    .catch((e) => { throw new Error(`${e.message}\n${tails()}`); });
  assert.is(done.devices[0].state, 'confirmed', `${JSON.stringify(done)}\n${tails()}`);
  assert.is(done.state, 'done');
  assert.ok(['downloading', 'verified', 'rebooting', 'confirmed'].includes(downloading.devices[0].state));
  assert.equal(boots.map((b) => `${b.version} ${b.slot}${b.trial ? ' trial' : ''}`), ['0.1.0 -1', '0.2.0 0 trial']);
  await until('v2 on the gateway', () => gateway!.api('GET', `/api/devices/${id}`), (r) => r.json.firmware === '0.2.0');
  const during = (await gateway.records(id)).filter((r) => r[2] === 1).length;
  assert.ok(during > readingsBefore + 3, `telegrams kept being stored through the download (${readingsBefore} → ${during})`);

  // v3's broker points nowhere: it never reaches its gateway, gives itself up after its trial, and v2 returns.
  const v3 = await signed('0.3.0', { broker: '127.0.0.1:9' });
  assert.is((await fw('upload', v3)).code, 0);
  const rid3 = Number(/rollout (\d+)/.exec((await fw('deploy', '--device', id, '0.3.0')).out)![1]);
  const rolled = await until('v3 rolled back', () => rollout(rid3), (r) => ['rolled-back', 'confirmed', 'failed'].includes(r.devices[0].state), 300_000)
    .catch((e) => { throw new Error(`${e.message}\n${tails()}`); });
  assert.is(rolled.devices[0].state, 'rolled-back', `${JSON.stringify(rolled)}\n${tails()}`);
  assert.match(rolled.devices[0].reason, /0\.3\.0 did not reach its gateway and have a record acknowledged within 25 s/);
  assert.is(rolled.state, 'stopped');
  assert.equal(boots.slice(2).map((b) => `${b.version} ${b.slot}${b.trial ? ' trial' : ''}`), ['0.3.0 1 trial', '0.2.0 0']);
  const st = await fw('status', String(rid3));
  assert.match(st.out, /rolled-back/);

  // Refused with their reasons while v2 keeps running: another key's signature (by the meter), another
  // model (by the gateway, at deploy), a truncated image (by the gateway, at upload).
  const forged = await signed('0.4.0', {}, join(dir, 'other'));
  assert.is((await fw('upload', forged)).code, 0);
  const rid4 = Number(/rollout (\d+)/.exec((await fw('deploy', '--device', id, '0.4.0')).out)![1]);
  const bad = await until('the forged release refused', () => rollout(rid4), (r) => r.devices[0].state === 'failed', 60_000);
  assert.match(bad.devices[0].reason, /^bad signature: release key [0-9a-f]{16} is not one this firmware trusts/);
  const other = await signed('0.5.0', {}, key, 'gridlet-esp32');
  assert.is((await fw('upload', other)).code, 0);
  const dep5 = await fw('deploy', '--device', id, '0.5.0');
  assert.match(dep5.out, /wrong model: the release is for gridlet-esp32, this device is gridlet-sim/);
  const parsed = decodeReleaseFile(new Uint8Array(readFileSync(await signed('0.6.0', {}))));
  const truncated = join(dir, 'truncated.release');
  writeFileSync(truncated, encodeReleaseFile(parsed.release, parsed.image.subarray(0, parsed.image.length - 4096)));
  const up6 = await fw('upload', truncated);
  assert.is(up6.code, 1);
  assert.match(up6.err, /release refused: truncated image/);
  assert.is(boots.length, 4, 'no restart for a refused release');
  await current!.waitFor(/firmware offer refused: bad signature/);
  assert.is((await gateway.api('GET', `/api/devices/${id}`)).json.firmware, '0.2.0', 'v2 keeps running');

  // Every telegram the meter was sent, across three restarts, is a reading at the gateway; every record
  // the meter logged reached it once, in order.
  clearInterval(feeder);
  feeder = undefined;
  const recs = await until(`${meter.sent} readings stored`, () => gateway!.records(id), (rs) => rs.filter((r) => r[2] === 1).length >= meter.sent, 60_000);
  const seqs = recs.map((r) => r[0] as number);
  assert.equal(seqs, seqs.map((_, i) => i + 1), 'every seq from 1, once, none missing');
  assert.not.ok(recs.some((r) => r[2] === 'gap'), 'no gap: nothing the meter logged was lost');
  const energy = recs.filter((r) => r[2] === 1).map((r) => r[3] as number);
  assert.is(energy.length, meter.sent, 'one reading per telegram: none lost to the downloads, restarts or the rollback');
  assert.ok(energy.every((v, i) => i === 0 || v >= energy[i - 1]), 'energy only grows');
  const events = recs.filter((r) => r[2] === 'event' && r[3] === 'firmware').map((r) => `${r[4].state} ${r[4].version}`);
  assert.equal(events, ['confirmed 0.2.0', 'rolled-back 0.3.0', 'failed 0.4.0']);
  for (const i of images) assert.equal(i.aborts(), [], `no XS abort:\n${i.tail()}`);
  console.log(`ota on the lin image: image ${parsed.image.length} bytes; ${meter.sent} telegrams sent, ${energy.length} readings stored, boots ${boots.map((b) => b.version).join(' → ')}`);
});

test.run();
