// The firmware image, built by mcconfig for the lin simulator and run on Moddable's own runtime,
// against a real `gridlet gateway`: Hello and pairing through the HTTP API, DSMR telegrams on its P1
// port (a pseudo-terminal) stored and acked, a guest deployed through the gateway running on wasm3 and
// switching a relay through the interlocks, the technician's console on another pseudo-terminal, and
// a kill -9 during a gateway outage that loses no buffered reading; then the C, Rust and WASI guests
// and a world deployed through the gateway running on the meter's wasm3.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPty, type Pty } from '../../host/console/pty.js';
import {
  builtImage, ConsoleClient, freePort, GatewayProcess, pendingReason, SimImage, sleep, telegram, until,
} from './support.js';

const pending = pendingReason();
if (pending) console.log(`PENDING firmware image: ${pending}`);

const dir = mkdtempSync(join(tmpdir(), 'gridlet-image-'));
let gateway: GatewayProcess | undefined;
let image: SimImage | undefined;
const images: SimImage[] = [];
let p1: Pty | undefined;
let con: Pty | undefined;
let feeder: ReturnType<typeof setInterval> | undefined;
let meterId = '';

/** The P1 port's meter: one telegram a second, energy counting up, power as the test sets it. */
const meter = { wh: 3_808_351, w: 1000, sent: 0 };
function feed(): void {
  meter.wh += Math.round(meter.w / 3600);
  p1!.write(telegram(Math.floor(Date.now() / 1000), meter.wh, meter.w));
  meter.sent++;
}

function boot(): SimImage {
  const sim = new SimImage({
    so: builtImage()!, dir: join(dir, 'meter'),
    settings: {
      broker: `127.0.0.1:${gateway!.mqttPort}`, p1Device: p1!.path, consoleDevice: con!.path,
      relayMinDwellS: 1, model: 'gridlet-sim',
    },
  });
  images.push(sim);
  return sim;
}

test.after(async () => {
  if (feeder) clearInterval(feeder);
  for (const i of images) await i.kill('SIGKILL');
  await gateway?.stop();
  p1?.close();
  con?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the image pairs, stores and acks readings, runs a guest on wasm3 that switches a relay, and loses nothing to kill -9', async () => {
  if (pending) return;
  gateway = await new GatewayProcess(join(dir, 'gw'), await freePort()).start();
  p1 = openPty();
  con = openPty();
  image = boot();
  const [, deviceId, code] = (await image.waitFor(/gridlet \S+ id (\w{16}) pair code (\S+)/))!;
  meterId = deviceId;
  await image.waitFor(/factory PIN \d{8}/); // for the label, at first boot; pairing retires it
  feeder = setInterval(feed, 1000);

  // Pairing through the HTTP API, as an operator does: the meter's Hello reached the gateway.
  await until('the Hello', () => gateway!.api('GET', `/api/devices/${deviceId}`), (r) => r.status === 200);
  const paired = await gateway.api('POST', '/api/pairings', { deviceId, code });
  assert.is(paired.status, 201, paired.text);
  await image.waitFor(/paired with gateway/);

  // Telegrams from the P1 port are stored, and acked (the gateway's acked seq reaches the newest record).
  const readings = await until('readings stored', () => gateway!.records(deviceId),
    (rs) => rs.filter((r) => r[2] === 1).length >= 3);
  const energy = readings.filter((r) => r[2] === 1).map((r) => r[3] as number);
  assert.ok(energy.every((v, i) => i === 0 || v >= energy[i - 1]), 'energy imported only grows');
  assert.ok(Math.abs(energy[0] - (3_808_351 + 2_948_827)) < 10_000, `Wh imported over both tariffs, as the telegram says: ${energy[0]}`);
  await until('acks', () => gateway!.api('GET', `/api/devices/${deviceId}`), (r) => r.json.ackedSeq >= 3);

  // The technician's console on its own serial device: the PIN the operator set through the gateway
  // (a config downlink; checked on the meter with PBKDF2) unlocks relay commands.
  const tech = new ConsoleClient(con);
  assert.match(await tech.command('id'), deviceId);
  const pinSet = await gateway.api('POST', `/api/devices/${deviceId}/console-pin`, { pin: '24681357' });
  assert.is(pinSet.status, 202, pinSet.text);
  await until('the console PIN on the meter', () => tech.command('config get console.pin_hash'), (s) => /set, hidden/.test(s));
  const authed = await tech.command('auth 24681357');
  assert.match(authed, /OK/, authed);
  const on = await tech.command('relay 1 on');
  assert.match(on, /OK/, on);
  await image.waitFor('gpio 21 1');

  // peak-guard, deployed through the gateway, runs on wasm3: it reports running and ticks.
  const wasm = readFileSync('guests/dist/peak-guard.wasm');
  const manifest = JSON.parse(readFileSync('manifests/guests/peak-guard.json', 'utf8'));
  const up = await gateway.api('POST', '/api/guests', { wasm: wasm.toString('base64'), manifest });
  assert.is(up.status, 201, up.text);
  const dep = await gateway.api('POST', `/api/devices/${deviceId}/guests`, { cid: up.json.cid });
  assert.is(dep.status, 202, dep.text);
  await until('peak-guard running on the meter', () => gateway!.api('GET', `/api/devices/${deviceId}/guests`),
    (r) => JSON.stringify(r.json).includes(up.json.cid) && JSON.stringify(r.json).includes('running'), 60_000);
  const listed = await until('a tick', () => tech.command('guests'), (s) => /peak-guard\s+\S+\s+running\s+faults 0\s+fuel [1-9]\d*\/20000 per call/.test(s));
  assert.match(listed, /running/);

  // Import above its 5 kW default limit: the guest sheds relay 1 through the interlocks.
  meter.w = 6500;
  await image.waitFor('gpio 21 0', { timeoutMs: 30_000 });
  await until('the shed event at the gateway', () => gateway!.records(deviceId),
    (rs) => rs.some((r) => r[2] === 'event' && r[3] === 'guest.peak-guard.1'));
  meter.w = 800;

  // The gateway goes away; the meter keeps logging telegrams in flash; then kill -9, mid-stream.
  await gateway.stop();
  await sleep(4000);
  const buffer = await tech.command('buffer');
  const newest = Number(/newest\s+seq (\d+)/.exec(buffer)![1]);
  const acked = Number(/acked\s+seq (\d+)/.exec(buffer)![1]);
  assert.ok(newest > acked + 2, `readings buffered while the gateway is away: ${buffer}`);
  await image.kill('SIGKILL');
  assert.is(image.signal, 'SIGKILL');

  // Both come back: everything the meter held reaches the gateway, once, in order.
  await gateway.start();
  image = boot();
  await image.waitFor(/gridlet \S+ id (\w{16})/);
  const all = await until(`records up to seq ${newest}`, () => gateway!.records(deviceId),
    (rs) => rs.length > 0 && rs[rs.length - 1][0] >= newest + 2, 60_000);
  const seqs = all.map((r) => r[0] as number);
  assert.equal(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'every seq from 1, none missing, none twice');
  assert.not.ok(all.some((r) => r[2] === 'gap'), 'no gap: nothing the meter logged was lost');
  const held = all.filter((r) => r[2] === 1 && r[0] > acked && r[0] <= newest);
  assert.ok(held.length >= 2, 'energy readings logged while the gateway was away arrived after the kill');

  for (const i of images) assert.equal(i.aborts(), [], `no XS abort:\n${i.tail()}`);
});

/** Uploads a guest or a world and deploys it to the meter; returns its CID once the meter runs it. */
async function deployed(body: object, what: string): Promise<string> {
  const up = await gateway!.api('POST', '/api/guests', body);
  assert.ok(up.status === 201 || up.status === 200, up.text);
  const dep = await gateway!.api('POST', `/api/devices/${meterId}/guests`, { cid: up.json.cid });
  assert.is(dep.status, 202, dep.text);
  await until(`${what} running on the meter`, () => gateway!.api('GET', `/api/devices/${meterId}/guests`),
    (r) => r.json.guests.some((g: { cid: string; state: string }) => g.cid === up.json.cid && g.state === 'running'), 60_000);
  return up.json.cid;
}

test('the C, Rust and WASI guests and a world, deployed through the gateway, run on the meter\'s wasm3', async () => {
  if (pending) return;
  const guest = (name: string) => ({
    wasm: readFileSync(`guests/dist/${name}.wasm`).toString('base64'),
    manifest: JSON.parse(readFileSync(`manifests/guests/${name}.json`, 'utf8')),
  });
  // The commissioning job (C, WASI): it runs once and its verdict and exit reach the gateway.
  meter.w = 800;
  await deployed(guest('commission'), 'commission');
  const records = await until('the job\'s exit at the gateway', () => gateway!.records(meterId),
    (rs) => rs.some((r) => r[2] === 'event' && r[3] === 'guest-exit'));
  assert.ok(records.some((r) => r[2] === 'event' && r[3] === 'guest.commission.0'), 'its verdict');
  // tariff-opt (Rust) on relay 3.
  await deployed(guest('tariff-opt'), 'tariff-opt');
  // peak-guard holds relay 1: removed, then shed-world (a Rust setpoint, a C shedder) takes it.
  const removed = await gateway!.api('DELETE', `/api/devices/${meterId}/guests/peak-guard`, {});
  assert.is(removed.status, 202, removed.text);
  await until('peak-guard removed', () => gateway!.api('GET', `/api/devices/${meterId}/guests`),
    (r) => r.json.guests.some((g: { name: string; state: string }) => g.name === 'peak-guard' && g.state === 'removed'), 60_000);
  const from = image!.lines.length;
  const world = await deployed({ world: readFileSync('guests/dist/shed-world.world').toString('base64') }, 'shed-world');
  assert.match(world, /^bafyrei/);
  // The shedder restores relay 1 when there is room, and sheds it when the import passes the setpoint's limit.
  await image!.waitFor('gpio 21 1', { from, timeoutMs: 120_000 });
  const high = image!.lines.length;
  meter.w = 6500;
  await image!.waitFor('gpio 21 0', { from: high, timeoutMs: 60_000 });
  await until('the shedder\'s event at the gateway', () => gateway!.records(meterId),
    (rs) => rs.some((r) => r[2] === 'event' && r[3] === 'guest.shed-world.shedder.1'));
  meter.w = 800;
  for (const i of images) assert.equal(i.aborts(), [], `no XS abort:\n${i.tail()}`);
});

test.run();
