// MQTT 3.1.1 packets as bytes, for tests that speak to the broker below any client library (a flood of
// connects, a meter that goes silent after its CONNECT).
import { utf8Encode } from '../../firmware/core/bytes.js';
import { leb } from '../core/support/guests.js';

/** MQTT's remaining length is a LEB128 (as WebAssembly's), and its strings are length-prefixed. */
const varint = leb;
const str = (s: string) => {
  const b = utf8Encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
};

/**
 * A clean-session CONNECT as `id` (keepalive 60 s unless given). With `password`: the user name is the
 * id. With `will`: a QoS 1 will with an empty payload on that topic.
 */
export function connectPacket(o: { id: string; keepaliveS?: number; password?: string; will?: string }): Uint8Array {
  const keepalive = o.keepaliveS ?? 60;
  const flags = 0x02 | (o.password !== undefined ? 0x80 | 0x40 : 0) | (o.will !== undefined ? 0x08 | 0x04 : 0);
  const body = [...str('MQTT'), 4, flags, keepalive >> 8, keepalive & 0xff, ...str(o.id)];
  if (o.will !== undefined) body.push(...str(o.will), 0, 0);
  if (o.password !== undefined) body.push(...str(o.id), ...str(o.password));
  return Uint8Array.from([0x10, ...varint(body.length), ...body]);
}

/** A QoS 0 PUBLISH. */
export function publishPacket(topic: string, payload: Uint8Array): Uint8Array {
  const body = [...str(topic), ...payload];
  return Uint8Array.from([0x30, ...varint(body.length), ...body]);
}
