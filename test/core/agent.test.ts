import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent, AgentState, HELLO_EVERY_MS, PAIR_CONFIRM_MS, PAIRED_EVERY_MS, SEND_WINDOW } from '../../firmware/core/agent/agent.js';
import { RamLog } from '../../firmware/core/log/ram-log.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { decodeHello } from '../../firmware/core/wire/pairing.js';
import { BusTransport, MemoryBus, MemoryKV, SeededRandom, SimTime, simTimers } from './support/sim-world.js';
import { MiniGateway } from './support/mini-gateway.js';

function world(seed = 1) {
  const bus = new MemoryBus();
  const time = new SimTime();
  const random = new SeededRandom(seed);
  const kv = new MemoryKV();
  const log = new RamLog();
  const mk = () => new Agent({
    kv, random, clock: time, timers: simTimers(time), log, uplinks: [new BusTransport(bus, 'primary')],
    model: 'test-meter', firmware: '0.1.0',
  });
  const gw = new MiniGateway(bus);
  const run = (ms: number) => time.advance(ms, () => { while (bus.deliver()); });
  return { bus, time, kv, log, gw, mk, run };
}

function pairedWorld(seed = 1) {
  const w = world(seed);
  const agent = w.mk();
  agent.start();
  w.run(10);
  w.gw.pair(agent.deviceId, agent.identity.pairCode);
  w.run(10);
  return { ...w, agent };
}

test('a new meter Hellos on connect and pairs with the code on its label', () => {
  const { agent, gw } = pairedWorld();
  assert.is(agent.state, AgentState.paired);
  assert.is(agent.gatewayId, gw.id);
  assert.ok(gw.sessions.get(agent.deviceId)!.confirmed, 'the gateway received the `paired` body');
  const hello = decodeHello(gw.hellos.get(agent.deviceId)!);
  assert.is(hello.model, 'test-meter');
  assert.is(hello.bootNonce.length, 16);
});

test('readings reach the gateway once, in order, and the log is trimmed by the ack', () => {
  const { agent, gw, log, run } = pairedWorld();
  for (let i = 0; i < 50; i++) {
    agent.recordReadings(NaN, [[1, 1000 + i], [3, 500 - i]]);
    run(1000);
  }
  const stored = gw.stored(agent.deviceId);
  assert.is(stored.length, 1 + 100, 'power-up event + 100 readings');
  assert.equal(stored.map((r) => r.seq), stored.map((_, i) => i + 1));
  assert.is(stored[0].a, 'power-up');
  assert.equal(stored.filter((r) => r.kind === 1 && r.a === 1).map((r) => r.b), Array.from({ length: 50 }, (_, i) => 1000 + i));
  assert.is(log.stats().buffered, 0);
  assert.is(agent.ackedSeq, 101);
});

test('without an ack, records are sent again after 30 s and the gateway stores them once', () => {
  const { agent, gw, bus, run } = pairedWorld();
  gw.sendAcks = false;
  agent.recordReadings(NaN, [[3, 700]]);
  run(5_000);
  const framesBefore = bus.log.filter((m) => m.topic.endsWith('/up')).length;
  run(40_000);
  const framesAfter = bus.log.filter((m) => m.topic.endsWith('/up')).length;
  assert.ok(framesAfter > framesBefore, 'resent');
  assert.ok(agent.counters.resends >= 1);
  gw.sendAcks = true;
  agent.recordReadings(NaN, [[3, 701]]);
  run(1_000);
  const readings = gw.stored(agent.deviceId).filter((r) => r.kind === 1);
  assert.equal(readings.map((r) => r.b), [700, 701]);
  assert.is(agent.ackedSeq, 3);
});

test('while the link is down readings are kept, then sent oldest first', () => {
  const { agent, gw, bus, log, run } = pairedWorld();
  run(100);
  bus.setUp(false);
  for (let i = 0; i < 500; i++) agent.recordReadings(NaN, [[3, i]]);
  run(60_000);
  assert.is(log.stats().buffered, 500, 'the 500 readings taken while offline (power-up was acked before)');
  bus.setUp(true);
  run(60_000);
  const values = gw.stored(agent.deviceId).filter((r) => r.kind === 1).map((r) => r.b);
  assert.equal(values, Array.from({ length: 500 }, (_, i) => i));
  assert.is(log.stats().buffered, 0);
});

test('a backlog goes up at most SEND_WINDOW frames ahead of the acks, also across reconnects', () => {
  const { agent, gw, bus, log, run } = pairedWorld();
  run(100);
  bus.setUp(false);
  for (let i = 0; i < 4000; i++) agent.recordReadings(NaN, [[3, i]]);
  gw.sendAcks = false;
  bus.setUp(true);
  run(10_000);
  const upFrames = () => bus.log.filter((m) => m.topic.endsWith('/up')).length;
  const heard = () => new Set(gw.stored(agent.deviceId).filter((r) => r.kind === 1).map((r) => r.b)).size;
  // At 120 records a frame the backlog is 34 frames; only the window's worth went up unacknowledged.
  assert.ok(heard() > 0 && heard() <= SEND_WINDOW * 120, `readings sent without an ack: ${heard()}`);
  const before = upFrames();
  for (let i = 0; i < 5; i++) {
    bus.setUp(false);
    run(100);
    bus.setUp(true);
    run(2_000);
  }
  // Each reconnect sends `paired`, a status and the window again, not the backlog.
  assert.ok(upFrames() - before <= 5 * (SEND_WINDOW + 2), `frames over 5 reconnects: ${upFrames() - before}`);
  assert.ok(heard() <= SEND_WINDOW * 120);
  gw.sendAcks = true;
  run(60_000);
  const values = gw.stored(agent.deviceId).filter((r) => r.kind === 1).map((r) => r.b);
  assert.equal([...new Set(values)], Array.from({ length: 4000 }, (_, i) => i), 'all of it, in order, once acks come');
  assert.is(log.stats().buffered, 0);
});

test('a wrong pair code is refused and reported in the next Hello; five failures lock pairing out', () => {
  const w = world();
  const agent = w.mk();
  agent.start();
  w.run(10);
  w.gw.pair(agent.deviceId, 'AAAAA-AAAAA');
  w.run(10);
  assert.is(agent.state, AgentState.unpaired);
  assert.is(w.gw.rejectedNonces.length, 1, 'field 7 names the rejected nonce');
  for (let i = 0; i < 4; i++) { w.gw.pair(agent.deviceId, 'AAAAA-AAAAA'); w.run(10); }
  w.gw.pair(agent.deviceId, agent.identity.pairCode);
  w.run(10);
  assert.is(agent.state, AgentState.unpaired, 'locked out for 10 minutes after 5 failures');
  w.run(11 * 60_000);
  w.gw.pair(agent.deviceId, agent.identity.pairCode);
  w.run(10);
  assert.is(agent.state, AgentState.paired);
});

test('replayed and forged downlink frames are ignored', () => {
  const { agent, gw, bus, run } = pairedWorld();
  const frame = gw.send(agent.deviceId, { type: Body.unpair });
  run(10);
  assert.is(agent.state, AgentState.unpaired);
  // pair again, then replay the old unpair frame: it must not act (different session and old counter)
  run(60_000);
  gw.pair(agent.deviceId, agent.identity.pairCode);
  run(10);
  assert.is(agent.state, AgentState.paired);
  const dropped = agent.counters.framesDropped;
  bus.publish({ topic: `gl/v1/d/${agent.deviceId}/down`, payload: frame, from: 'attacker' });
  const forged = gw.send(agent.deviceId, { type: Body.ack, seq: 1 }).slice();
  forged[forged.length - 2] ^= 0x40;
  bus.publish({ topic: `gl/v1/d/${agent.deviceId}/down`, payload: forged, from: 'attacker' });
  run(10);
  assert.is(agent.state, AgentState.paired);
  assert.ok(agent.counters.framesDropped >= dropped + 2);
});

test('identity and pairing survive a reboot; the uplink counter never goes back', () => {
  const w = pairedWorld();
  w.agent.recordReadings(NaN, [[3, 1]]);
  w.run(1000);
  const sessionsBefore = w.gw.sessions.get(w.agent.deviceId)!.window.highest;
  w.agent.stop();
  const again = w.mk();
  assert.is(again.deviceId, w.agent.deviceId);
  assert.is(again.state, AgentState.paired);
  again.start();
  w.run(1000);
  again.recordReadings(NaN, [[3, 2]]);
  w.run(1000);
  const values = w.gw.stored(again.deviceId).filter((r) => r.kind === 1).map((r) => r.b);
  assert.equal(values, [1, 2]);
  assert.ok(w.gw.sessions.get(again.deviceId)!.window.highest > sessionsBefore);
  assert.is(w.gw.dropped, 0, 'no frame of the rebooted agent was refused as a replay');
});

test('a pairing cut short before the gateway heard `paired` is announced again after a reboot', () => {
  const w = world();
  const agent = w.mk();
  agent.start();
  w.run(10);
  w.bus.drop = (topic) => topic.endsWith('/up'); // the `paired` frame is lost (power cut right after PairAccept)
  w.gw.pair(agent.deviceId, agent.identity.pairCode);
  w.run(10);
  assert.is(agent.state, AgentState.paired);
  assert.not.ok(w.gw.sessions.get(agent.deviceId)!.confirmed);
  agent.stop();
  w.bus.drop = undefined;
  const again = w.mk();
  again.start();
  w.run(1000);
  assert.ok(w.gw.sessions.get(again.deviceId)!.confirmed, 'the rebooted meter said `paired` again');
  w.run(PAIR_CONFIRM_MS + 1000);
  assert.is(again.state, AgentState.paired, 'the gateway answered: the pairing stands');
});

test('a paired meter restarted (into a new image) says `paired` with its version, and again every 30 s until the gateway answers', () => {
  const w = pairedWorld();
  w.agent.stop();
  const pairedSaid = () => w.gw.bodies.filter((b) => b.body.type === Body.paired).length;
  // The answer (a time body) is lost for a while: the meter keeps saying it.
  w.bus.drop = (topic) => topic.endsWith('/down');
  const before = pairedSaid();
  const again = w.mk();
  again.start();
  w.run(1000);
  assert.is(pairedSaid(), before + 1, 'said on connecting, though the session was confirmed long ago');
  w.run(PAIRED_EVERY_MS);
  assert.is(pairedSaid(), before + 2, 'said again after 30 s without an answer');
  w.bus.drop = undefined;
  w.run(PAIRED_EVERY_MS);
  assert.is(pairedSaid(), before + 3);
  w.run(3 * PAIRED_EVERY_MS);
  assert.is(pairedSaid(), before + 3, 'answered with the time: not said again');
});

test('a pairing its gateway never confirms is given up, and the meter says Hello again', () => {
  const w = world();
  const agent = w.mk();
  agent.start();
  w.run(10);
  w.bus.drop = (topic) => topic.endsWith('/up'); // the gateway never hears the meter again
  w.gw.pair(agent.deviceId, agent.identity.pairCode);
  w.run(10);
  agent.stop();
  const again = w.mk(); // after a reboot: the stored pairing is still unconfirmed
  again.start();
  assert.is(again.state, AgentState.paired);
  w.run(PAIR_CONFIRM_MS - 1000);
  assert.is(again.state, AgentState.paired);
  w.run(2000);
  assert.is(again.state, AgentState.unpaired);
  w.bus.drop = undefined;
  w.gw.hellos.clear();
  w.run(HELLO_EVERY_MS + 1000);
  assert.ok(w.gw.hellos.has(again.deviceId), 'Hello again, ready to be paired');
  w.gw.pair(again.deviceId, again.identity.pairCode);
  w.run(10);
  assert.is(again.state, AgentState.paired);
  assert.ok(w.gw.sessions.get(again.deviceId)!.confirmed);
});

test('an ack beyond anything written is not trusted', () => {
  const { agent, gw, log, run } = pairedWorld();
  agent.recordReadings(NaN, [[3, 1]]);
  gw.sendAcks = false;
  run(10);
  gw.send(agent.deviceId, { type: Body.ack, seq: 1000 });
  run(10);
  assert.ok(agent.ackedSeq < 1000);
  assert.ok(log.stats().newestSeq >= 2);
});

test('a job goes up and its result chunks come back in order to the one who asked', () => {
  const { agent, gw, run } = pairedWorld();
  const parts: { index: number; text: string; final: boolean; error?: string }[] = [];
  const job = agent.submitJob('llm.generate', { prompt: 'why is my bill high?' }, (p) => parts.push(p));
  assert.ok(job > 0);
  run(10);
  const sent = gw.bodies.find((b) => b.body.type === Body.job);
  assert.ok(sent, 'the gateway received the job body');
  if (sent && sent.body.type === Body.job) {
    assert.is(sent.body.kind, 'llm.generate');
    assert.equal(sent.body.input, { prompt: 'why is my bill high?' });
  }
  gw.send(agent.deviceId, { type: Body.jobResult, job, index: 0, text: 'The heater ', final: false });
  gw.send(agent.deviceId, { type: Body.jobResult, job, index: 1, text: 'ran all night.', final: true });
  gw.send(agent.deviceId, { type: Body.jobResult, job: job + 99, index: 0, text: 'not yours', final: true });
  run(10);
  assert.equal(parts.map((p) => p.text).join(''), 'The heater ran all night.');
  assert.ok(parts[parts.length - 1].final);
});

test('a demand-response event runs on time from flash even while the link is down, and is reported later', () => {
  const { agent, gw, bus, run, time } = pairedWorld();
  const levels: number[] = [];
  agent.attachGuests({
    setChannel() {}, setSignal(id, v) { if (id === 2) levels.push(v); },
    offer: () => undefined, chunk: () => undefined, remove: (b) => ({ type: Body.guestAck, cid: new Uint8Array(0), state: 'removed' }),
    statusEntries: () => [],
  });
  const startAt = Math.floor(time.now() / 1000) + 120;
  gw.send(agent.deviceId, { type: Body.drEvent, id: 'evt-1', start: startAt, duration: 60, level: 2, modification: 0 });
  run(1000);
  bus.setUp(false);
  run(startAt * 1000 - time.now() - 50);
  assert.is(agent.dr.level, 0, 'not yet');
  run(100);
  assert.is(agent.dr.level, 2, 'started on time while offline (within 50 ms)');
  run(60_000);
  assert.is(agent.dr.level, 0, 'ended after 60 s');
  assert.equal(levels.filter((l, i) => i === 0 || l !== levels[i - 1]).slice(-3), [0, 2, 0]);
  bus.setUp(true);
  run(10_000);
  const dr = gw.stored(agent.deviceId).filter((r) => r.kind === 2 && r.a === 'dr').map((r) => r.b);
  assert.equal(dr, [{ event: 'evt-1', phase: 'start' }, { event: 'evt-1', phase: 'end' }]);
});

test('a time body does not set back a meter clock already in its second (DR events start on time); a wrong clock is corrected', () => {
  const { agent, gw, run, time } = pairedWorld();
  const wall = time.now() - time.monotonic(); // the true time is wall + monotonic
  run(1000 - (time.now() % 1000) + 800);
  // 0.8 s into a second, the gateway names that second.
  const second = Math.floor(time.now() / 1000);
  gw.send(agent.deviceId, { type: Body.time, time: second });
  run(10);
  assert.is(time.now(), wall + time.monotonic(), 'the clock is kept, not set back 0.8 s');
  const startAt = second + 5;
  gw.send(agent.deviceId, { type: Body.drEvent, id: 'evt-2', start: startAt, duration: 60, level: 2, modification: 0 });
  run(startAt * 1000 - (wall + time.monotonic()) - 50);
  assert.is(agent.dr.level, 0, 'not yet');
  run(100);
  assert.is(agent.dr.level, 2, 'started on time (within 50 ms)');
  // A clock five minutes behind the gateway is set to the middle of the named second.
  const told = Math.floor(time.now() / 1000) + 300;
  gw.send(agent.deviceId, { type: Body.time, time: told });
  run(1);
  assert.ok(Math.abs(time.now() - (told * 1000 + 500)) <= 5, `clock ${time.now()}, told ${told}`);
});

test('tariffs are kept by their window and the one covering now is the price signal', () => {
  const { agent, gw, run, time } = pairedWorld();
  const prices: number[] = [];
  agent.attachGuests({
    setChannel() {}, setSignal(id, v) { if (id === 1) prices.push(v); },
    offer: () => undefined, chunk: () => undefined, remove: () => ({ type: Body.guestAck, cid: new Uint8Array(0), state: 'removed' }),
    statusEntries: () => [],
  });
  const now = Math.floor(time.now() / 1000);
  gw.send(agent.deviceId, { type: Body.tariff, price: 25000, currency: 'EUR', from: now, until: now + 3600 });
  gw.send(agent.deviceId, { type: Body.tariff, price: 10000, currency: 'EUR', from: now + 3600, until: now + 7200 });
  run(2000);
  assert.is(agent.currentTariff()?.price, 25000);
  assert.is(prices[prices.length - 1], 0.25);
  run(3600_000);
  assert.is(agent.currentTariff()?.price, 10000, 'the second window follows the first');
  assert.is(prices[prices.length - 1], 0.1);
  run(3600_000);
  assert.is(agent.currentTariff(), undefined);
  assert.ok(Number.isNaN(prices[prices.length - 1]), 'no tariff: NaN');
});

test.run();
