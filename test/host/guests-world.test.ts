// Worlds on a simulated meter (GUESTS.md "Microworlds"), on V8 and on wasm3: shed-world deployed
// over the wire runs as one unit and sheds; a new version replaces it as a unit, and one that cannot
// start leaves the old running; a fault in either member stops the whole world with its relays in
// their safe state and, after five in an hour, quarantines it; relays are held by the world alone; a
// world comes back after a reboot and is removed with its modules and slots.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { cidToText, worldCid } from '../../firmware/core/guests/cid.js';
import { decodeWorld, worldManifestToMap } from '../../firmware/core/guests/world.js';
import type { GuestEngine } from '../../firmware/core/ports.js';
import { Body, decodeBody, DOWNLINK_TYPES, encodeBody, type GuestAck, type GuestChunk, type GuestOffer } from '../../firmware/core/wire/bodies.js';
import { GuestSim, MemoryKeyValue } from '../../host/guests/guest-sim.js';
import { NodeGuestEngine } from '../../host/guests/wasm-engine.js';
import { Wasm3HostEngine } from '../../host/guests/wasm3-engine.js';
import { relayWorld } from '../core/support/wasi-world-guests.js';

const engines: [string, () => GuestEngine][] = [['v8', () => new NodeGuestEngine()], ['wasm3', () => new Wasm3HostEngine()]];
const shedWorld = new Uint8Array(readFileSync(join(DIST_DIR, 'shed-world.world')));
const manifestOf = (n: string) => JSON.parse(readFileSync(join(MANIFEST_DIR, `${n}.json`), 'utf8'));
const wasmOf = (n: string) => new Uint8Array(readFileSync(join(DIST_DIR, `${n}.wasm`)));

/** The downlink bodies that deploy a world (through the wire codec and back). */
function worldBodies(bundle: Uint8Array, manifest?: { [k: string]: unknown }): (GuestOffer | GuestChunk)[] {
  const d = decodeWorld(bundle);
  if (!d.ok) throw new Error(d.reason);
  const cid = worldCid(bundle);
  const bodies: (GuestOffer | GuestChunk)[] = [
    { type: Body.guestOffer, name: d.world.name, cid, manifest: (manifest ?? worldManifestToMap(d.world)) as GuestOffer['manifest'], size: bundle.length },
  ];
  for (let offset = 0; offset < bundle.length; offset += 1024) bodies.push({ type: Body.guestChunk, cid, offset, bytes: bundle.slice(offset, offset + 1024) });
  return bodies.map((b) => decodeBody(encodeBody(b), DOWNLINK_TYPES) as GuestOffer | GuestChunk);
}

function deliver(sim: GuestSim, bodies: (GuestOffer | GuestChunk)[]): GuestAck[] {
  const acks: GuestAck[] = [];
  for (const b of bodies) {
    const a = b.type === Body.guestOffer ? sim.supervisor.offer(b) : sim.supervisor.chunk(b);
    if (a) acks.push(a);
  }
  return acks;
}

/** A meter whose loads are powered after a power cut (safe state on) and no restore delay. */
function meter(engine: GuestEngine, kv?: MemoryKeyValue): GuestSim {
  return new GuestSim({ engine, kv, relays: [1, 2, 3, 4].map((id) => ({ id, safeOn: true })), restoreWindowS: 0 });
}

const world = (sim: GuestSim, name: string) => sim.supervisor.status().filter((s) => s.world === name);

for (const [engineName, make] of engines) {
  test(`${engineName}: shed-world deployed over the wire runs as one unit and sheds at the limit its setpoint computes`, () => {
    const sim = meter(make());
    const acks = deliver(sim, worldBodies(shedWorld));
    assert.equal(acks.map((a) => [a.state, cidToText(a.cid)]), [['running', cidToText(worldCid(shedWorld))]], acks[0]?.reason);
    assert.equal(sim.supervisor.statusEntries().map(([n, c, s]) => [n, cidToText(c), s]), [['shed-world', cidToText(worldCid(shedWorld)), 'running']]);
    assert.equal(world(sim, 'shed-world').map((s) => [s.name, s.state]), [['shed-world.setpoint', 'running'], ['shed-world.shedder', 'running']]);
    sim.supervisor.setSignal(3, 4000);
    sim.supervisor.setChannel(3, 3000);
    sim.advance(120);
    assert.ok(sim.relay(1).on, 'under the limit: the load stays on');
    // Demand response at level 2: the setpoint halves the limit (2 kW), and the shedder sheds.
    sim.supervisor.setSignal(2, 2);
    sim.advance(60);
    assert.not.ok(sim.relay(1).on, 'over the limit the setpoint now computes: the load is shed');
    assert.ok(sim.eventsOf('guest.shed-world.shedder.1').length >= 1);
    assert.ok(sim.logs.some((l) => l.guest === 'shed-world.shedder' && /shed at limit W 2000/.test(l.text)), JSON.stringify(sim.logs));
    const shedder = world(sim, 'shed-world').find((s) => s.name === 'shed-world.shedder')!;
    assert.ok(shedder.ticks >= 30 && shedder.faults === 0);
    sim.dispose();
  });

  test(`${engineName}: a new version replaces the world as a unit; one that cannot start leaves the old one running`, () => {
    const sim = meter(make());
    sim.advance(61); // past the relays' dwell after power-up
    assert.is(sim.installWorld(relayWorld('none')).state, 'running');
    assert.not.ok(sim.relay(1).on, 'app switched its relay off from init');
    sim.advance(30);
    const v2 = relayWorld('none', '1.1.0');
    const ack = sim.installWorld(v2);
    assert.is(ack.state, 'running', ack.reason);
    const now = world(sim, 'relay-world');
    assert.equal(now.map((s) => [s.name, s.version, cidToText(s.unitCid)]), [
      ['relay-world.lib', '1.1.0', cidToText(worldCid(v2))], ['relay-world.app', '1.1.0', cidToText(worldCid(v2))],
    ]);
    assert.ok(now.every((s) => s.ticks === 0), 'both members are new instances');
    sim.advance(30);
    const bad = sim.installWorld(relayWorld('none', '1.2.0', true));
    assert.is(bad.state, 'rejected');
    assert.match(bad.reason!, /^app: init returned 9: the guest refused to start$/);
    assert.equal(world(sim, 'relay-world').map((s) => [s.version, s.state]), [['1.1.0', 'running'], ['1.1.0', 'running']]);
    assert.is(sim.interlocks.holder(1), 'relay-world', 'the relay stays with the running version');
    sim.advance(30);
    assert.ok(world(sim, 'relay-world').every((s) => s.ticks >= 6 && s.faults === 0));
    sim.dispose();
  });

  for (const faulty of ['lib', 'app'] as const) {
    test(`${engineName}: a fault in ${faulty} stops the whole world with its relay safe, and five quarantine it`, () => {
      const sim = meter(make());
      sim.install(wasmOf('tamper-watch'), manifestOf('tamper-watch'));
      sim.advance(61);
      assert.is(sim.installWorld(relayWorld(faulty)).state, 'running');
      assert.not.ok(sim.relay(1).on, 'app switched its load off');
      sim.advance(5);
      const faults = sim.eventsOf('guest-fault');
      assert.equal(faults.map((e) => e.data), [{ name: 'relay-world', why: `${faulty}: tick: trap: tick: ${engineName === 'v8' ? 'unreachable' : '[trap] unreachable executed'}` }]);
      assert.ok(sim.relay(1).on, 'the world stopped: its relay went to its safe state at once');
      assert.equal(world(sim, 'relay-world').map((s) => s.state), ['backoff', 'backoff'], 'both members stopped');
      sim.advance(3600);
      assert.equal(world(sim, 'relay-world').map((s) => s.state), ['quarantined', 'quarantined']);
      assert.is(sim.eventsOf('guest-fault').length, 5);
      assert.is(sim.eventsOf('guest-quarantine').length, 1);
      assert.equal(sim.acks.map((a) => [a.state, cidToText(a.cid)]), [['rejected', cidToText(worldCid(relayWorld(faulty)))]]);
      assert.match(sim.acks[0].reason!, /quarantined after 5 faults in an hour/);
      assert.ok(sim.relay(1).on, 'quarantined with its relay in the safe state');
      assert.is(sim.interlocks.holder(1), undefined, 'and released');
      const tamper = sim.supervisor.status().find((s) => s.name === 'tamper-watch')!;
      assert.equal([tamper.state, tamper.faults], ['running', 0], 'the other guests go on');
      sim.dispose();
    });
  }

  test(`${engineName}: relays are held by the world alone; names are a guest's or a world's`, () => {
    const sim = meter(make());
    assert.is(sim.installWorld(relayWorld('none')).state, 'running');
    const shed = sim.install(wasmOf('load-shed'), manifestOf('load-shed'));
    assert.equal([shed.state, shed.reason], ['rejected', 'relay 1 is held by running world relay-world; at most one guest holds a relay']);
    const named = sim.install(wasmOf('tamper-watch'), { ...manifestOf('tamper-watch'), name: 'relay-world' });
    assert.match(named.reason!, /relay-world is a world on this meter; remove it \(guest-remove relay-world\) before deploying a guest of that name/);
    assert.is(sim.install(wasmOf('tou-cost'), manifestOf('tou-cost')).state, 'running');
    const bodies = worldBodies(relayWorld('none'));
    const offer = bodies[0] as GuestOffer;
    const clash = sim.supervisor.offer({ ...offer, name: 'tou-cost', manifest: { ...offer.manifest, name: 'tou-cost' } });
    assert.match(clash!.reason!, /tou-cost is a guest on this meter/);
    sim.dispose();
  });

  test(`${engineName}: a world comes back after a reboot as it was, and is removed with its modules and slots`, () => {
    const kv = new MemoryKeyValue();
    const before = meter(make(), kv);
    assert.is(before.installWorld(shedWorld).state, 'running');
    before.supervisor.setSignal(1, 0.3);
    before.advance(120);
    before.dispose();
    const after = meter(make(), kv);
    assert.equal(after.supervisor.restore(), ['shed-world']);
    assert.equal(after.supervisor.statusEntries().map(([n, c, s]) => [n, cidToText(c), s]), [['shed-world', cidToText(worldCid(shedWorld)), 'running']]);
    assert.is(after.slots('shed-world.setpoint')[1], 0.3, 'the setpoint\'s learned price average survived');
    after.advance(60);
    assert.ok(world(after, 'shed-world').every((s) => s.ticks > 0));
    const ack = after.supervisor.remove({ type: Body.guestRemove, name: 'shed-world' });
    assert.equal([ack.state, cidToText(ack.cid)], ['removed', cidToText(worldCid(shedWorld))]);
    assert.equal(after.supervisor.status(), []);
    assert.is(after.interlocks.holder(1), undefined);
    assert.equal([...kv.map.keys()].filter((k) => k.includes('shed-world')), [], 'its manifest, modules and slots are gone');
    after.dispose();
  });

  test(`${engineName}: a world whose bytes or manifest are not what was offered is refused, and what runs stays`, () => {
    const sim = meter(make());
    assert.is(sim.installWorld(relayWorld('none')).state, 'running');
    const v2 = relayWorld('none', '1.1.0');
    const bodies = worldBodies(v2);
    // The bytes of another version under v2's CID.
    const other = relayWorld('none', '1.2.0');
    const forged = bodies.map((b) => (b.type === Body.guestChunk ? { ...b, bytes: other.slice(b.offset, b.offset + b.bytes.length) } : { ...b, size: other.length }));
    assert.match(deliver(sim, forged)[0].reason!, /hash mismatch: the received \d+ bytes hash to bafyrei\w+, not the offered bafyrei\w+; the running guest is unchanged/);
    // An offer whose manifest differs from the one in the bundle.
    const offered = (bodies[0] as GuestOffer).manifest as { modules: { period_s: number }[] };
    const lying = worldBodies(v2, { ...offered, modules: offered.modules.map((m) => ({ ...m, period_s: 60 })) });
    assert.match(deliver(sim, lying)[0].reason!, /the world bundle's manifest is not the one offered/);
    // A world CID with a guest's manifest.
    const guestish = sim.supervisor.offer({ ...(bodies[0] as GuestOffer), manifest: manifestOf('tou-cost') });
    assert.match(guestish!.reason!, /world manifest: unknown field "period_s"/);
    assert.equal(world(sim, 'relay-world').map((s) => [s.version, s.state]), [['1.0.0', 'running'], ['1.0.0', 'running']]);
    sim.dispose();
  });
}

test.run();
