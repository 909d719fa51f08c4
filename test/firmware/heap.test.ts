// The heap budget on Moddable's own runtime: the lin image, paired and reading its P1 port, then with
// two guests running on wasm3, reports what its XS machine holds (gridlet/xs-heap). What it needed
// must fit the ESP32 manifest's fixed creation with room to spare, and its stack peak the ESP32's
// stack. The figures are printed (MEASURED lines) for docs/firmware.md.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPty, type Pty } from '../../host/console/pty.js';
import { builtImage, freePort, GatewayProcess, pendingReason, SimImage, sleep, telegram, until } from './support.js';

const pending = pendingReason();
if (pending) console.log(`PENDING heap budget: ${pending}`);

const dir = mkdtempSync(join(tmpdir(), 'gridlet-heap-'));
let gateway: GatewayProcess | undefined;
let image: SimImage | undefined;
let p1: Pty | undefined;
let feeder: ReturnType<typeof setInterval> | undefined;

interface Heap { slot: number; slots: number; slotsPeak: number; slotsAllocated: number; chunks: number; chunksPeak: number; chunksAllocated: number; stackPeak: number; stack: number }

async function heapNow(sim: SimImage): Promise<Heap> {
  const from = sim.lines.length;
  const m = (await sim.waitFor(/^heap (.*)$/, { from, timeoutMs: 10_000 }))!;
  const h = Object.fromEntries(m[1].split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)])) as unknown as Heap;
  h.stackPeak = stackPeakBytes(sim);
  return h;
}

/**
 * The deepest the XS stack has been since boot, in bytes: an instrumented simulator prints its
 * instruments every second ("instruments key: …" names them), and "Stack used" is each second's peak.
 */
function stackPeakBytes(sim: SimImage): number {
  const key = sim.lines.find((l) => l.startsWith('instruments key: '));
  assert.ok(key, 'the image is an instrumented build (mcconfig -i): it prints its instruments');
  const column = key!.slice('instruments key: '.length).split(',').indexOf('Stack used');
  let peak = 0;
  for (const l of sim.lines) {
    if (l.startsWith('instruments: ')) peak = Math.max(peak, Number(l.slice('instruments: '.length).split(',')[column]));
  }
  return peak;
}

function describe(h: Heap): string {
  return `${h.slotsAllocated} slots held (${h.slots} in use, peak ${h.slotsPeak}), ${(h.chunksAllocated / 1024).toFixed(1)} KB of chunks held ` +
    `(${(h.chunks / 1024).toFixed(1)} KB in use, peak ${(h.chunksPeak / 1024).toFixed(1)} KB), stack peak ${h.stackPeak / h.slot} of ${h.stack / h.slot} slots`;
}

test.after(async () => {
  if (feeder) clearInterval(feeder);
  await image?.kill('SIGKILL');
  await gateway?.stop();
  p1?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('paired and reading, then with two guests on wasm3: the heaps and the stack fit the ESP32 manifest', async () => {
  if (pending) return;
  gateway = await new GatewayProcess(join(dir, 'gw'), await freePort()).start();
  p1 = openPty();
  image = new SimImage({
    so: builtImage()!, dir: join(dir, 'meter'),
    // A meter in the field trusts a release key: the update machinery (Updates, its slots) is on the heap.
    settings: { broker: `127.0.0.1:${gateway.mqttPort}`, p1Device: p1.path, traceHeapS: 2, releaseKeys: '11'.repeat(32) },
  });
  const [, deviceId, code] = (await image.waitFor(/gridlet \S+ id (\w{16}) pair code (\S+)/))!;
  let wh = 5_000_000;
  feeder = setInterval(() => p1!.write(telegram(Math.floor(Date.now() / 1000), (wh += 300), 1200)), 1000);
  await until('the Hello', () => gateway!.api('GET', `/api/devices/${deviceId}`), (r) => r.status === 200);
  assert.is((await gateway.api('POST', '/api/pairings', { deviceId, code })).status, 201);
  await until('readings acked', () => gateway!.api('GET', `/api/devices/${deviceId}`), (r) => r.json.ackedSeq >= 20);
  await sleep(4000);
  const agentOnly = await heapNow(image);
  console.log(`MEASURED lin heap, paired, P1 telegrams each second, no guests: ${describe(agentOnly)}`);

  for (const name of ['peak-guard', 'tamper-watch']) {
    const wasm = readFileSync(`guests/dist/${name}.wasm`);
    const manifest = JSON.parse(readFileSync(`manifests/guests/${name}.json`, 'utf8'));
    const up = await gateway.api('POST', '/api/guests', { wasm: wasm.toString('base64'), manifest });
    assert.is(up.status, 201, up.text);
    assert.is((await gateway.api('POST', `/api/devices/${deviceId}/guests`, { cid: up.json.cid })).status, 202);
  }
  await until('both guests running', () => gateway!.api('GET', `/api/devices/${deviceId}/guests`),
    (r) => (r.json.guests ?? []).filter((g: { state: string }) => g.state === 'running').length === 2, 60_000);
  await sleep(20_000); // a few guest periods with readings flowing
  const withGuests = await heapNow(image);
  console.log(`MEASURED lin heap, paired, P1 telegrams each second, two guests: ${describe(withGuests)}`);
  assert.equal(image.aborts(), [], image.tail());

  // The ESP32's fixed creation must hold what the simulator needed. Slot counts carry over as they
  // are; chunks hold more on a 64-bit simulator (8-byte pointers, 32-byte slots in arrays), so the
  // simulator's chunk bytes are an upper bound of the ESP32's.
  for (const target of ['esp32', 'esp32c3', 'esp32s3']) {
    const c = JSON.parse(readFileSync(`manifests/${target}/manifest.json`, 'utf8')).creation;
    assert.ok(withGuests.slotsAllocated * 1.25 <= c.heap.initial, `${target}: ${c.heap.initial} slots for a measured ${withGuests.slotsAllocated} (needs 25 % spare)`);
    assert.ok(withGuests.chunksAllocated <= c.chunk.initial, `${target}: ${c.chunk.initial} bytes of chunks for a measured ${withGuests.chunksAllocated}`);
    assert.ok((withGuests.stackPeak / withGuests.slot) * 1.25 <= c.stack, `${target}: stack of ${c.stack} slots for a measured peak of ${withGuests.stackPeak / withGuests.slot}`);
  }
});

test.run();
