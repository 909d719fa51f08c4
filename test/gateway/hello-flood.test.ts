// A stream of Hellos under ever new device ids from one address (any well-formed id is admitted to
// Hello) must not push real meters' Hellos out of the gateway's Hello table, nor take every connection
// of the embedded broker: the table is shared out by source address and clients without a session are
// bounded, in all and per address. The flood comes from 127.0.0.2, the real meters from 127.0.0.1.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as tcpConnect, type Socket } from 'node:net';
import { boxKeyPair, randomBytes } from '../../firmware/core/crypto.js';
import { encodeHello, idFromPublicKey } from '../../firmware/core/wire/pairing.js';
import { topics } from '../../firmware/core/wire/topics.js';
import { helloSeen, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import { connectPacket, publishPacket } from './mqtt-raw.js';

/** A raw MQTT client from `localAddress`: connects as `id`; resolves with the CONNACK return code and the socket. */
function rawConnect(url: string, id: string, localAddress: string): Promise<{ code: number; socket: Socket }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: u.hostname, port: Number(u.port), localAddress }, () => socket.write(connectPacket({ id })));
    socket.once('data', (b: Buffer) => resolve({ code: b[0] === 0x20 ? b[3] : -1, socket }));
    socket.once('error', reject);
  });
}

/** A fresh device id and its Hello. */
function freshHello(): { id: string; hello: Uint8Array } {
  const keys = boxKeyPair();
  const hello = encodeHello({ version: 1, publicKey: keys.publicKey, model: 'flood', firmware: '0', capabilities: [], bootNonce: randomBytes(16) });
  return { id: idFromPublicKey(keys.publicKey), hello };
}

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway({ tuning: { helloTableSize: 40, unpairedConnections: 60, unpairedPerSource: 25 } });
});

test.after(async () => {
  await t.close();
});

test('Hellos of ever new ids from one address push out only that address\'s Hellos', async () => {
  const real = t.device();
  await real.connect(t.gw.mqttUrl);
  await real.hello();
  await helloSeen(t, real);
  // Ten times the table, one connection (and one Hello) per fresh id, as fast as the broker takes them.
  let last = '';
  for (let i = 0; i < 400; i++) {
    const f = freshHello();
    const { code, socket } = await rawConnect(t.gw.mqttUrl, f.id, '127.0.0.2');
    assert.is(code, 0);
    socket.end(publishPacket(topics.hello(t.prefix, f.id), f.hello));
    last = f.id;
  }
  await helloSeen(t, { id: last } as never, 5000);
  assert.is((await t.api('GET', `/api/devices/${real.id}`)).json?.state, 'seen', 'the real meter\'s Hello is still there');
  const seen = (await t.api('GET', '/api/devices')).json.filter((d: { state: string }) => d.state === 'seen').length;
  assert.is(seen, 40, 'the table keeps its bound');
  // And the real meter pairs.
  real.autoPair = true;
  const r = await t.api('POST', '/api/pairings', { deviceId: real.id, code: real.code });
  assert.is(r.status, 201, r.text);
  await real.close();
  await sleep(100);
});

test('clients without a session are bounded per address and in all; paired meters still connect', async () => {
  const paired = await pairDevice(t);
  await paired.close();
  const open: Socket[] = [];
  try {
    const codes: number[] = [];
    for (let i = 0; i < 30; i++) {
      const { code, socket } = await rawConnect(t.gw.mqttUrl, freshHello().id, '127.0.0.3');
      codes.push(code);
      open.push(socket);
    }
    assert.equal(codes.slice(0, 25), Array(25).fill(0), 'the first 25 from one address are admitted');
    assert.equal(codes.slice(25), Array(5).fill(3), 'the rest are told the server is unavailable');
    for (let i = 0; i < 40; i++) {
      const { code, socket } = await rawConnect(t.gw.mqttUrl, freshHello().id, `127.0.1.${i + 1}`);
      codes.push(code);
      open.push(socket);
    }
    assert.is(codes.slice(30).filter((c) => c === 0).length, 35, 'at most 60 in all');
    assert.ok(await t.metric('gridlet_broker_refusals_total', { action: 'connect', reason: 'unpaired-limit' }) >= 10);
    // A paired meter has a session: it is not counted against these bounds.
    await paired.connect(t.gw.mqttUrl, { credentials: true });
    await paired.close();
    // Closing them frees their places.
    for (const s of open.splice(0)) s.destroy();
    await sleep(200);
    const { code, socket } = await rawConnect(t.gw.mqttUrl, freshHello().id, '127.0.0.3');
    open.push(socket);
    assert.is(code, 0);
  } finally {
    for (const s of open) s.destroy();
  }
});

test.run();
