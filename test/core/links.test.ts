import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Agent, AgentState } from '../../firmware/core/agent/agent.js';
import { reconnectDelay } from '../../firmware/core/agent/links.js';
import { RamLog } from '../../firmware/core/log/ram-log.js';
import { BusTransport, MemoryBus, MemoryKV, SeededRandom, SimTime, simTimers } from './support/sim-world.js';
import { MiniGateway } from './support/mini-gateway.js';

function twoLinks() {
  const a = new MemoryBus(), b = new MemoryBus();
  const time = new SimTime();
  const log = new RamLog();
  const agent = new Agent({
    kv: new MemoryKV(), random: new SeededRandom(5), clock: time, timers: simTimers(time), log,
    uplinks: [new BusTransport(a, 'primary'), new BusTransport(b, 'backup')], model: 'm', firmware: 'f',
  });
  const gw = new MiniGateway([a, b]);
  const run = (ms: number) => time.advance(ms, () => { while (a.deliver() + b.deliver()); });
  agent.start();
  run(10);
  gw.pair(agent.deviceId, agent.identity.pairCode);
  run(10);
  return { a, b, time, log, agent, gw, run };
}

test('only the preferred link is used while it is up', () => {
  const { agent, b, run } = twoLinks();
  assert.is(agent.state, AgentState.paired);
  for (let i = 0; i < 10; i++) { agent.recordReadings(NaN, [[3, i]]); run(1000); }
  assert.is(b.log.length, 0, 'the backup broker saw nothing');
  assert.is(agent.links.status().filter((l) => l.active)[0].name, 'primary');
});

test('when the preferred link dies, readings continue on the backup within 15 s with none lost, and return', () => {
  const { agent, a, b, gw, log, run } = twoLinks();
  let value = 0;
  const every = (ms: number, total: number) => {
    for (let t = 0; t < total; t += ms) { agent.recordReadings(NaN, [[3, value++]]); run(ms); }
  };
  every(1000, 5000);
  a.setUp(false);
  const failedAt = value;
  every(1000, 15_000);
  const viaBackup = b.log.filter((m) => m.topic.endsWith('/up')).length;
  assert.ok(viaBackup > 0, 'frames went out on the backup');
  assert.is(agent.links.status().find((l) => l.active)?.name, 'backup');
  // everything up to 3 s before now is stored at the gateway
  const stored = gw.stored(agent.deviceId).filter((r) => r.kind === 1).map((r) => r.b as number);
  assert.ok(stored.includes(failedAt + 5), 'readings taken after the failover arrived');
  a.setUp(true);
  every(1000, 20_000);
  assert.is(agent.links.status().find((l) => l.active)?.name, 'primary', 'back on the preferred link');
  const all = gw.stored(agent.deviceId).filter((r) => r.kind === 1).map((r) => r.b);
  assert.equal(all, Array.from({ length: value }, (_, i) => i), 'none lost, none duplicated, in order');
  assert.is(log.stats().buffered, 0);
  const events = gw.stored(agent.deviceId).filter((r) => r.kind === 2 && r.a === 'link-failover').map((r) => r.b);
  assert.equal(events, [{ from: 'primary', to: 'backup' }, { from: 'backup', to: 'primary' }]);
});

test('reconnect backoff is jittered and exponential, capped at a minute', () => {
  assert.ok(reconnectDelay(0, 0) >= 500 && reconnectDelay(0, 0.999) < 1000);
  assert.ok(reconnectDelay(3, 0.5) >= 4000 && reconnectDelay(3, 0.5) < 8000);
  assert.ok(reconnectDelay(50, 0.999) < 60_000 && reconnectDelay(50, 0) >= 30_000);
});

test.run();
