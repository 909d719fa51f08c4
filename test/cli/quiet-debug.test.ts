// Switched-off `debug` loggers allocate nothing under gridlet's commands (host/cli/quiet-debug.ts), and
// DEBUG still shows them. Each case runs in a fresh node process: the swap only works before
// mqtt-packet is first loaded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

// Swaps the loggers, then writes and parses a QoS 1 PUBLISH through mqtt-packet as the broker and
// mqtt.js do, and prints what came out with what the parser's logger is.
const SCRIPT = `
import { createRequire } from 'node:module';
import { quietDebug } from './host/cli/quiet-debug.ts';
const took = quietDebug();
const require = createRequire(import.meta.url);
const mqttPacket = require('mqtt-packet');
const log = createRequire(require.resolve('mqtt-packet'))('debug')('mqtt-packet:parser');
const bytes = mqttPacket.generate({ cmd: 'publish', topic: 'gl/v1/d/abc/up', payload: Buffer.from([1, 2, 3]), qos: 1, messageId: 7, retain: false, dup: false });
const parser = mqttPacket.parser({ protocolVersion: 4 });
const got = [];
parser.on('packet', (p) => got.push({ cmd: p.cmd, topic: p.topic, payload: [...p.payload], messageId: p.messageId }));
parser.parse(bytes);
// Switching debug on from code reaches only loggers debug itself made: the swapped ones stay silent.
createRequire(require.resolve('mqtt-packet'))('debug').enable('mqtt-packet:*');
parser.parse(bytes);
console.log(JSON.stringify({ took, got, enabled: log.enabled, returns: log('x %d', 1) ?? null, extended: log.extend('sub').namespace }));
`;

const publish = { cmd: 'publish', topic: 'gl/v1/d/abc/up', payload: [1, 2, 3], messageId: 7 };

function run(env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    cwd: root, encoding: 'utf8', env: { ...process.env, DEBUG: '', DEBUG_COLORS: 'no', ...env }, timeout: 60_000,
  });
  assert.is(r.status, 0, r.stderr);
  return { out: JSON.parse(r.stdout.trim().split('\n').pop()!), stderr: r.stderr };
}

test('without DEBUG the loggers mqtt-packet makes are off for good, and packets still go through', () => {
  const { out, stderr } = run({});
  assert.is(out.took, true);
  assert.equal(out.got, [publish, publish]);
  assert.is(out.enabled, false, 'off even after debug.enable()');
  assert.is(out.returns, null);
  assert.is(out.extended, 'mqtt-packet:parser:sub');
  assert.is(stderr, '', 'nothing logged');
});

test('with DEBUG set nothing is swapped: mqtt-packet still says what it parses', () => {
  const { out, stderr } = run({ DEBUG: 'mqtt-packet:*' });
  assert.is(out.took, false);
  assert.equal(out.got, [publish, publish]);
  assert.is(out.enabled, true);
  assert.match(stderr, /mqtt-packet:parser/);
});

test.run();
