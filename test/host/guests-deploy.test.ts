// Deployment by CID on a running meter (WIRE.md guest-offer / guest-chunk / guest-ack): a new version
// of peak-guard is swapped in between two readings without a missed tick; a deployment whose bytes do
// not hash to the offered CID is rejected and the running version carries on.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { cidFromText, cidToText, guestCid } from '../../firmware/core/guests/cid.js';
import { manifestToMap, parseManifest } from '../../firmware/core/guests/manifest.js';
import type { GuestEngine, GuestImport, GuestInstance, GuestLinks } from '../../firmware/core/ports.js';
import { Body, decodeBody, encodeBody, type GuestAck, type GuestChunk, type GuestOffer } from '../../firmware/core/wire/bodies.js';
import { GuestSim } from '../../host/guests/guest-sim.js';
import { NodeGuestEngine } from '../../host/guests/wasm-engine.js';
import { householdDay } from '../../host/meter/household.js';

const day = householdDay();
const v1 = new Uint8Array(readFileSync(join(DIST_DIR, 'peak-guard.wasm')));
const m1 = JSON.parse(readFileSync(join(MANIFEST_DIR, 'peak-guard.json'), 'utf8'));
// Version 1.1.0: the same code with a custom section naming the version (a different CID).
const v2 = new Uint8Array([...v1, 0x00, 0x0d, 0x07, ...Buffer.from('version'), ...Buffer.from('1.1.0')]);
const m2 = { ...m1, version: '1.1.0' };

/** Records every export call with the simulated time and the module's CID. */
class SpyEngine implements GuestEngine {
  calls: { t: number; cid: string; name: string }[] = [];
  inner = new NodeGuestEngine();
  now = () => 0;
  instantiate(wasm: Uint8Array, imports: Record<string, GuestImport>, limits: { memoryBytes: number; fuel?: number }, links?: GuestLinks): GuestInstance {
    const inst = this.inner.instantiate(wasm, imports, limits, links);
    const cid = cidToText(guestCid(wasm));
    const calls = this.calls;
    const now = () => this.now();
    return {
      get fuelUsed() { return inst.fuelUsed; },
      call(name, args, fuel) { calls.push({ t: now(), cid, name }); return inst.call(name, args, fuel); },
      hasExport: (n) => inst.hasExport(n),
      readMemory: (p, l) => inst.readMemory(p, l),
      writeMemory: (p, b) => inst.writeMemory(p, b),
      fuelLeft: () => inst.fuelLeft(),
      charge: (f, what) => inst.charge(f, what),
      dispose: () => inst.dispose(),
    };
  }
}

/** The downlink bodies a gateway sends for a deployment, through the wire codec and back. */
function downlink(wasm: Uint8Array, manifest: unknown, cid = guestCid(wasm)): (GuestOffer | GuestChunk)[] {
  const r = parseManifest(manifest);
  if (!r.ok) throw new Error(r.reason);
  const bodies: (GuestOffer | GuestChunk)[] = [
    { type: Body.guestOffer, name: r.manifest.name, cid, manifest: manifestToMap(r.manifest), size: wasm.length },
  ];
  for (let off = 0; off < wasm.length; off += 1024) {
    bodies.push({ type: Body.guestChunk, cid, offset: off, bytes: wasm.slice(off, off + 1024) });
  }
  return bodies.map((b) => decodeBody(encodeBody(b)) as GuestOffer | GuestChunk);
}

function meter() {
  const spy = new SpyEngine();
  const sim = new GuestSim({ engine: spy });
  spy.now = () => sim.t;
  sim.supervisor.setSignal(3, 5000);
  assert.is(sim.install(v1, m1).state, 'running');
  // 17:30: a calm start (peak-guard gives the heater back), then the evening peak at 18:43, where the
  // house and the heater together go over 5 kW.
  let minute = 17 * 60 + 30;
  let readings = 0;
  /** One reading every 5 s (and the heater on relay 1 adds 2 kW when it runs). */
  const reading = () => {
    const d = day[Math.floor(minute) % 1440];
    sim.supervisor.setChannel(3, d.powerW + (sim.relay(1).on ? 2000 : 0));
    readings++;
    minute += 5 / 60;
  };
  /** Delivers downlink bodies one per reading interval, halfway between readings. */
  const deliver = (bodies: (GuestOffer | GuestChunk)[]): GuestAck[] => {
    const acks: GuestAck[] = [];
    for (const b of bodies) {
      reading();
      sim.advance(2.5);
      const a = b.type === Body.guestOffer ? sim.supervisor.offer(b) : sim.supervisor.chunk(b);
      if (a) acks.push(decodeBody(encodeBody(a)) as GuestAck);
      sim.advance(2.5);
    }
    return acks;
  };
  const run = (seconds: number) => {
    for (let t = 0; t < seconds; t += 5) {
      reading();
      sim.advance(5);
    }
  };
  return { sim, spy, deliver, run, readings: () => readings };
}

test('a CID names the exact .wasm bytes: CIDv1, raw, sha2-256, base32 "b…"', () => {
  const cid = guestCid(v1);
  assert.equal([...cid.slice(0, 4)], [0x01, 0x55, 0x12, 0x20]);
  assert.match(cidToText(cid), /^bafkrei[a-z2-7]{52}$/);
  assert.equal(cidFromText(cidToText(cid)), cid);
  assert.is(cidFromText('bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'), undefined, 'a dag-pb CID is not a guest CID');
});

test('a new peak-guard is swapped in on a running meter without a missed tick', () => {
  const { sim, spy, deliver, run, readings } = meter();
  run(600);
  const acks = deliver(downlink(v2, m2));
  assert.equal(acks, [{ type: Body.guestAck, cid: guestCid(v2), state: 'running' }]);
  run(4800);
  const s = sim.supervisor.status();
  assert.is(s.length, 1);
  assert.is(s[0].version, '1.1.0');
  assert.is(s[0].cidText, cidToText(guestCid(v2)));
  // Ticks: every 5 s from the first version, then the new one, with no gap longer than a period
  // plus the half period at which the swap landed.
  const ticks = spy.calls.filter((c) => c.name === 'tick');
  const cids = [...new Set(ticks.map((c) => c.cid))];
  assert.equal(cids, [cidToText(guestCid(v1)), cidToText(guestCid(v2))]);
  for (let i = 1; i < ticks.length; i++) assert.ok(ticks[i].t - ticks[i - 1].t <= 7.5, `gap at ${ticks[i].t}`);
  // The old version's last tick came before the new one's first: never two versions at once.
  const lastOld = ticks.filter((c) => c.cid === cids[0]).at(-1)!.t;
  const firstNew = ticks.find((c) => c.cid === cids[1])!.t;
  assert.ok(lastOld < firstNew);
  assert.is(readings(), Math.round(sim.t / 5), 'a reading every 5 s throughout');
  // The new version does the job: it shed the heater in the evening peak and learnt its load.
  const sheds = sim.eventsOf('guest.peak-guard.1');
  assert.ok(sheds.length >= 1 && sheds[0].t > 600);
  const slots = sim.slots('peak-guard');
  assert.is(slots[1], 2000);
  assert.is(slots[2], sheds.length);
});

test('a deployment whose bytes do not match the CID is rejected; the old guest keeps running', () => {
  const { sim, spy, deliver, run } = meter();
  run(60);
  const bodies = downlink(v2, m2);
  // Corrupt one byte in transit (the CID in the offer stays that of v2).
  const chunk = bodies[1] as GuestChunk;
  chunk.bytes = chunk.bytes.slice();
  chunk.bytes[100] ^= 0xff;
  const acks = deliver(bodies);
  assert.is(acks.length, 1);
  assert.is(acks[0].state, 'rejected');
  assert.equal(acks[0].cid, guestCid(v2));
  assert.match(acks[0].reason!, /hash mismatch/);
  run(60);
  const s = sim.supervisor.status()[0];
  assert.is(s.cidText, cidToText(guestCid(v1)));
  assert.is(s.state, 'running');
  const after = spy.calls.filter((c) => c.name === 'tick' && c.t > 60);
  assert.ok(after.length >= 12 && after.every((c) => c.cid === cidToText(guestCid(v1))));
  // An offer whose CID is not even a guest CID is refused before any byte is sent.
  const [offer] = downlink(v2, m2, new Uint8Array(36).fill(7));
  assert.match(sim.supervisor.offer(offer as GuestOffer)!.reason!, /not a CIDv1 raw sha2-256/);
});

test('a new version that fails to start leaves the old one running', () => {
  const { sim, deliver, run } = meter();
  run(30);
  // Same code, but a manifest memory cap below its static data: refused by the validator.
  const [ack] = deliver(downlink(v2, { ...m2, memory_bytes: 1024 }));
  assert.is(ack.state, 'rejected');
  assert.match(ack.reason!, /past the manifest's memory_bytes 1024/);
  run(30);
  assert.is(sim.supervisor.status()[0].cidText, cidToText(guestCid(v1)));
});

test.run();
