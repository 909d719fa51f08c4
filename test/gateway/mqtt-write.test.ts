// The gateway's one-buffer PUBLISH and PUBACK (gateway/mqtt-write.ts) are byte for byte what
// mqtt-packet writes, in MQTT 3.1.1 and 5, and what they do not cover is left to mqtt-packet.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqttPacket from 'mqtt-packet';
import { encodePacket, type WritablePacket } from '../../gateway/mqtt-write.js';

function theirs(p: WritablePacket, version: 4 | 5): Buffer {
  return mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: version });
}

const topics = ['a', 'gl/v1/d/k7q2m9x4c3v8b6n1/down', 'gl/v1/d/ünïcødé-€/down', 't/'.repeat(200)];
// Remaining lengths on both sides of each boundary of the variable-length integer.
const payloadSizes = [0, 1, 60, 120, 127, 128, 16_380, 16_383, 16_384, 70_000, 2_097_200];

test('a PUBLISH of QoS 0 or 1 is the bytes mqtt-packet writes, whatever its topic, flags and size', () => {
  let n = 0;
  for (const version of [4, 5] as const) {
    for (const topic of topics) {
      for (const size of payloadSizes) {
        for (const qos of [0, 1]) {
          for (const [dup, retain] of [[false, false], [true, false], [false, true]]) {
            const payload = Buffer.alloc(size, size % 251);
            const p: WritablePacket = { cmd: 'publish', topic, payload, qos, dup, retain, messageId: qos ? (n * 7919) % 65_536 : undefined };
            const mine = encodePacket(p, version);
            assert.ok(mine, `covered: v${version} qos ${qos} size ${size}`);
            assert.ok(mine!.equals(theirs(p, version)), `same bytes: v${version} topic ${topic.slice(0, 20)} qos ${qos} size ${size} dup ${dup} retain ${retain}`);
            // And a parser reads back what was sent.
            const parser = mqttPacket.parser({ protocolVersion: version });
            const got: mqttPacket.IPublishPacket[] = [];
            parser.on('packet', (x) => got.push(x as mqttPacket.IPublishPacket));
            parser.parse(mine!);
            assert.is(got.length, 1);
            assert.is(got[0].topic, topic);
            assert.ok(Buffer.from(got[0].payload as Buffer).equals(payload));
            n++;
          }
        }
      }
    }
  }
  assert.is(n, 2 * topics.length * payloadSizes.length * 2 * 3);
});

test('a PUBACK is the bytes mqtt-packet writes (MQTT 5: success, no reason code written)', () => {
  for (const messageId of [0, 1, 255, 256, 65_535]) {
    const v4: WritablePacket = { cmd: 'puback', messageId };
    assert.ok(encodePacket(v4, 4)!.equals(theirs(v4, 4)), `v4 ${messageId}`);
    const v5: WritablePacket = { cmd: 'puback', messageId, reasonCode: 0 };
    assert.ok(encodePacket(v5, 5)!.equals(theirs(v5, 5)), `v5 ${messageId}`);
  }
});

test('what the encoders do not cover is left to mqtt-packet', () => {
  const payload = Buffer.from([1]);
  const none: [WritablePacket, number][] = [
    [{ cmd: 'publish', topic: 't', payload, qos: 2, messageId: 1 }, 4],
    [{ cmd: 'publish', topic: 't', payload, qos: 1 }, 4],
    [{ cmd: 'publish', topic: 't', payload, qos: 1, messageId: 70_000 }, 4],
    [{ cmd: 'publish', topic: '', payload, qos: 0 }, 4],
    [{ cmd: 'publish', topic: Buffer.from('t'), payload, qos: 0 }, 4],
    [{ cmd: 'publish', topic: 't', payload: 'text', qos: 0 }, 4],
    [{ cmd: 'publish', topic: 't', payload, qos: 1, messageId: 1, properties: { topicAlias: 3 } }, 5],
    [{ cmd: 'publish', topic: 't', payload, qos: 0 }, 3],
    [{ cmd: 'puback', messageId: 1, reasonCode: 16 }, 5],
    [{ cmd: 'puback', messageId: 1 }, 5],
    [{ cmd: 'puback', messageId: 1, reasonCode: 0, properties: { reasonString: 'x' } }, 5],
    [{ cmd: 'puback' }, 4],
    [{ cmd: 'subscribe', messageId: 1 }, 4],
    [{ cmd: 'pingreq' }, 4],
  ];
  for (const [p, v] of none) assert.is(encodePacket(p, v), undefined, JSON.stringify(p));
});

test.run();
