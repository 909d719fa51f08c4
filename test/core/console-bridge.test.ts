// The console on a real Agent (agent-bridge.ts) in the simulated world: what the technician reads is
// what the agent does, and what the technician sets reaches the agent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { utf8Encode } from '../../firmware/core/bytes.js';
import type { CborValue } from '../../firmware/core/cbor.js';
import { Agent, AgentState, type AgentOptions } from '../../firmware/core/agent/agent.js';
import { AgentBridge, PAIRED_ONCE_KEY, type JobResultPart } from '../../firmware/core/console/agent-bridge.js';
import { Console } from '../../firmware/core/console/console.js';
import { LogRing } from '../../firmware/core/console/log-ring.js';
import { FACTORY_PIN_KEY, makePinHash } from '../../firmware/core/console/pin.js';
import { ReadingsRing } from '../../firmware/core/console/readings-ring.js';
import { RamLog } from '../../firmware/core/log/ram-log.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { fromHex } from '../../firmware/core/bytes.js';
import { configuredMeterType, loadMeterKeys, meterKeysVersion } from '../../firmware/core/meter/keys.js';
import { jsonLines, lines, MemorySerial } from './support/console-world.js';
import { MiniGateway } from './support/mini-gateway.js';
import { BusTransport, MemoryBus, MemoryKV, SeededRandom, SimTime, simTimers } from './support/sim-world.js';

/** An Agent with the job API the console asks the lead for (AgentConsoleApi), simulated here. */
class JobAgent extends Agent {
  jobs: { id: number; kind: string; input: { [key: string]: CborValue }; onResult: (p: JobResultPart) => void }[] = [];
  cancelled: number[] = [];
  override submitJob(kind: string, input: { [key: string]: CborValue }, onResult: (p: JobResultPart) => void): number {
    if (!this.online) return -1;
    const id = this.jobs.length + 1;
    this.jobs.push({ id, kind, input, onResult });
    return id;
  }
  override cancelJob(id: number): void {
    this.cancelled.push(id);
  }
}

function world(o: { jobs?: boolean; seed?: number } = {}) {
  const bus = new MemoryBus();
  const time = new SimTime();
  const random = new SeededRandom(o.seed ?? 11);
  const kv = new MemoryKV();
  const log = new RamLog();
  const readings = new ReadingsRing();
  const logRing = new LogRing(time);
  const timers = simTimers(time);
  const opts: AgentOptions = {
    kv, random, clock: time, timers, log, uplinks: [new BusTransport(bus, 'primary')], model: 'test-meter', firmware: '1.2.3',
    logger: logRing, onEvent: (name, detail) => readings.onAgentEvent(name, detail), heapUsed: () => 777,
  };
  const agent = o.jobs ? new JobAgent(opts) : new Agent(opts);
  // A factory PIN as provisionFactoryPin stores it, with few iterations so XS runs stay quick.
  const factoryPin = '24681357';
  kv.set(FACTORY_PIN_KEY, utf8Encode(makePinHash(factoryPin, 10)));
  let rebooted = 0;
  const bridge = new AgentBridge({
    agent, kv, log, clock: time, timers, model: 'test-meter', firmware: '1.2.3', heapUsed: () => 777, readings, logRing,
    reboot: () => rebooted++,
  });
  const port = new MemorySerial();
  const console_ = new Console({ port, host: bridge, kv, clock: time, timers });
  const gw = new MiniGateway(bus);
  const run = (ms: number) => time.advance(ms, () => { while (bus.deliver()); });
  const say = (line: string) => {
    port.take();
    port.send(utf8Encode(line + '\r\n'));
    return port.take();
  };
  agent.start();
  run(10);
  return { bus, time, kv, log, agent, gw, run, say, port, console: console_, factoryPin, rebooted: () => rebooted };
}

test('id and status show the agent as it is, before and after pairing', () => {
  const w = world();
  assert.equal(lines(w.say('id')), [`id    ${w.agent.deviceId}`, `code  ${w.agent.identity.pairCode}`, 'OK']);
  let st = lines(w.say('status'));
  assert.ok(st.includes('gateway   none (unpaired)'), st.join('\n'));
  assert.ok(st.includes('firmware  1.2.3 (test-meter)'));
  assert.ok(st.includes('heap      777 bytes used'));
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  assert.is(w.agent.state, AgentState.paired);
  st = lines(w.say('status'));
  assert.ok(st.includes(`gateway   ${w.gw.id} (paired)`), st.join('\n'));
  assert.ok(st.includes('link      primary'));
});

test('readings and buffer move with the meter; the buffer grows while the gateway is away and shrinks on its return', () => {
  const w = world();
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  w.agent.recordReadings(NaN, [[1, 5000], [3, 420]]);
  w.run(100);
  w.say('json on');
  const r1 = jsonLines(w.say('readings 2')).map((o) => o.data as { seq: number; channel: number; value: number });
  assert.equal(r1.slice(0, 2).map((x) => [x.channel, x.value]), [[1, 5000], [3, 420]]);
  assert.is(r1[1].seq, r1[0].seq + 1);
  const before = (jsonLines(w.say('buffer'))[0].data as { buffered: number; acked_seq: number });
  assert.is(before.buffered, 0);
  w.bus.setUp(false);
  for (let i = 0; i < 10; i++) w.agent.recordReadings(NaN, [[3, 400 + i]]);
  w.run(1000);
  const away = jsonLines(w.say('buffer'))[0].data as { buffered: number; newest_seq: number; acked_seq: number };
  assert.is(away.buffered, 10);
  assert.is(away.newest_seq - away.acked_seq, 10);
  const r2 = jsonLines(w.say('readings 1'))[0].data as { seq: number; value: number };
  assert.is(r2.value, 409);
  assert.ok(r2.seq > r1[1].seq);
  w.bus.setUp(true);
  w.run(2000);
  const back = jsonLines(w.say('buffer'))[0].data as { buffered: number; acked_seq: number; newest_seq: number };
  assert.is(back.buffered, 0);
  assert.is(back.acked_seq, back.newest_seq);
});

test('link shows the uplink going down with its error and coming back', () => {
  const w = world();
  assert.match(lines(w.say('link'))[0], /^primary  up  \(carrying frames\)$/);
  w.bus.setUp(false);
  w.run(10);
  assert.equal(lines(w.say('link'))[0], 'primary  down  last error: link down');
});

test('the factory PIN works until the first pairing; then the gateway\'s console.pin_hash does', () => {
  const w = world();
  assert.equal(lines(w.say(`auth ${w.factoryPin}`)), ['technician commands unlocked for 10 min (factory PIN)', 'OK']);
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  w.say('status');
  assert.ok(w.kv.get(PAIRED_ONCE_KEY));
  assert.equal(lines(w.say(`auth ${w.factoryPin}`)), ['ERR auth no technician PIN is set on this meter; the gateway sets console.pin_hash (4 more tries before a 15 min lockout)']);
  w.gw.send(w.agent.deviceId, { type: Body.config, values: { 'console.pin_hash': makePinHash('90210', 10) } });
  w.run(100);
  assert.equal(lines(w.say('auth 90210')).pop(), 'OK');
  assert.equal(lines(w.say(`auth ${w.factoryPin}`))[0], 'ERR auth wrong PIN; 4 more before a 15 min lockout', 'the right PIN reset the count');
});

test('pair pin: the agent then refuses a PairAccept from any other gateway', () => {
  const w = world();
  w.say(`auth ${w.factoryPin}`);
  assert.equal(lines(w.say('pair pin aaaaaaaaaaaaaaaa')).pop(), 'OK');
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  assert.is(w.agent.state, AgentState.unpaired);
  assert.equal(lines(w.say(`pair pin ${w.gw.id}`)).pop(), 'OK');
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  assert.is(w.agent.state, AgentState.paired);
});

test('config set by the technician is what the agent keeps for a config body; config get reads the gateway\'s', () => {
  const w = world();
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  w.gw.send(w.agent.deviceId, { type: Body.config, values: { tz: 'CET-1CEST,M3.5.0,M10.5.0/3', period: 5 } });
  w.run(100);
  assert.equal(lines(w.say('config get tz')), ['tz = CET-1CEST,M3.5.0,M10.5.0/3', 'OK']);
  assert.equal(lines(w.say('config get period')), ['period = 5', 'OK']);
});

test('meter keys: set on the console or by the gateway, stored apart, used by the meter, never shown back', () => {
  const w = world();
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  const key = '00112233445566778899AABBCCDDEEFF';
  assert.equal(lines(w.say(`config set meter.key ${key}`)), ['ERR auth config is a technician command: `auth <pin>` first']);
  w.gw.send(w.agent.deviceId, { type: Body.config, values: { 'console.pin_hash': makePinHash('90210', 10) } });
  w.run(100);
  w.say('auth 90210');
  const before = meterKeysVersion();
  const set = w.say(`config set meter.key ${key}`);
  assert.equal(lines(set), ['meter.key = (set, hidden)', 'OK']);
  assert.ok(meterKeysVersion() > before, 'the meter parser is told to ask again');
  assert.equal(lines(w.say('config get meter.key')), ['meter.key = (set, hidden)', 'OK']);
  assert.equal(lines(w.say('config get meter.auth_key')), ['ERR notfound config meter.auth_key is not set']);
  assert.equal(loadMeterKeys(w.kv).key, fromHex(key), 'the 16 bytes, for the meter parser');
  assert.is(w.kv.get('cfg.meter.key'), undefined, 'not among the readable config values');
  assert.equal(lines(w.say('config set meter.key 0011223344')), ['ERR usage meter.key is 32 hex digits (16 bytes), as the network operator gives it; this has 10']);
  assert.equal(lines(w.say('config set meter.type gas')), ['ERR usage meter.type is one of dsmr, smarty, dlms, mbus']);
  assert.is(configuredMeterType(w.kv, 'dsmr'), 'dsmr', 'the firmware\'s default until one is set');
  assert.equal(lines(w.say('config set meter.type dlms')), ['meter.type = dlms (read at the next restart)', 'OK']);
  assert.is(configuredMeterType(w.kv, 'dsmr'), 'dlms', 'what the firmware reads at boot');
  // From the gateway: the auth key in the operator's format, and a wrong one refused with a log line that does not show it.
  w.gw.send(w.agent.deviceId, { type: Body.config, values: { 'meter.auth_key': '0x ff ee dd cc bb aa 99 88 77 66 55 44 33 22 11 00', 'meter.key': 'nonsense-key' } });
  w.run(100);
  assert.equal(loadMeterKeys(w.kv).authKey, fromHex('ffeeddccbbaa99887766554433221100'));
  assert.equal(loadMeterKeys(w.kv).key, fromHex(key), 'the refused key left the old one');
  const log = lines(w.say('log 20')).join('\n');
  assert.match(log, /config meter\.key from the gateway refused: meter\.key is 32 hex digits/);
  assert.not.ok(log.includes('nonsense-key') || log.toLowerCase().includes('ffeeddcc'), 'no key in the log');
  assert.equal(lines(w.say('config set meter.key none')), ['meter.key = (removed)', 'OK']);
  assert.is(loadMeterKeys(w.kv).key, undefined);
});

test('5 wrong PINs: console-lockout reaches the gateway as an event record', () => {
  const w = world();
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  w.gw.send(w.agent.deviceId, { type: Body.config, values: { 'console.pin_hash': makePinHash('90210', 10) } });
  w.run(100);
  for (let i = 0; i < 5; i++) w.say('auth 11111');
  w.run(100);
  assert.ok(w.gw.stored(w.agent.deviceId).some((r) => r.kind === 2 && r.a === 'console-lockout'));
});

test('log shows the agent\'s own log lines', () => {
  const w = world();
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  const out = lines(w.say('log 3'));
  assert.match(out.join('\n'), new RegExp(`info  paired with gateway ${w.gw.id}`));
});

test('ask through the real Agent: the job reaches the gateway and the answer streams back as it arrives', () => {
  const w = world();
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  w.say('json on');
  w.say('ask why is my bill high?');
  w.run(10);
  const sent = w.gw.bodies.find((b) => b.body.type === Body.job);
  assert.ok(sent && sent.body.type === Body.job, 'a job body reached the gateway');
  const job = sent!.body.type === Body.job ? sent!.body.job : 0;
  w.gw.send(w.agent.deviceId, { type: Body.jobResult, job, index: 0, text: 'The heater ', final: false });
  w.run(10);
  assert.equal(jsonLines(w.port.take()), [{ chunk: 'The heater ' }], 'shown before the answer is complete');
  w.gw.send(w.agent.deviceId, { type: Body.jobResult, job, index: 1, text: 'ran all night.', final: true });
  w.run(10);
  assert.equal(jsonLines(w.port.take()), [{ chunk: 'ran all night.' }, { ok: true }]);
});

test('ask with the job API: an llm.generate job, chunks shown in index order, cancel on Ctrl-C', () => {
  const w = world({ jobs: true });
  const agent = w.agent as JobAgent;
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  w.say('json on');
  w.say('ask how much did I use today?');
  assert.equal(agent.jobs[0].kind, 'llm.generate');
  assert.equal(agent.jobs[0].input, { prompt: 'how much did I use today?' });
  const send = agent.jobs[0].onResult;
  send({ index: 1, text: 'world', final: false });
  assert.is(w.port.take(), '', 'chunk 1 waits for chunk 0');
  send({ index: 0, text: 'hello ', final: false });
  send({ index: 2, text: '!', final: true });
  assert.equal(jsonLines(w.port.take()), [{ chunk: 'hello ' }, { chunk: 'world' }, { chunk: '!' }, { ok: true }]);
  w.say('ask again');
  w.port.send(new Uint8Array([3]));
  assert.equal(agent.cancelled, [2]);
  assert.equal(jsonLines(w.port.take()), [{ ok: false, code: 'busy', message: 'answer stopped (Ctrl-C)' }]);
  w.bus.setUp(false);
  w.run(10);
  assert.equal(jsonLines(w.say('ask offline?')), [{ ok: false, code: 'offline', message: 'no gateway link is up; `link` shows why' }]);
});

test('confirm unpair makes the meter forget its gateway and Hello again; reboot runs the platform\'s restart', () => {
  const w = world();
  w.gw.pair(w.agent.deviceId, w.agent.identity.pairCode);
  w.run(100);
  w.gw.send(w.agent.deviceId, { type: Body.config, values: { 'console.pin_hash': makePinHash('90210', 10) } });
  w.run(100);
  w.say('auth 90210');
  w.say('unpair');
  const hellos = () => w.bus.log.filter((m) => m.topic.startsWith('gl/v1/hello/')).length;
  const before = hellos();
  const out = lines(w.say('confirm unpair'));
  assert.is(out[out.length - 1], 'OK', out.join('\n'));
  w.run(100);
  assert.is(w.agent.state, AgentState.unpaired);
  assert.ok(hellos() > before, 'Hellos again');
  assert.equal(lines(w.say('reboot')), ['rebooting', 'OK']);
  assert.is(w.rebooted(), 0);
  w.run(500);
  assert.is(w.rebooted(), 1);
});

test.run();
