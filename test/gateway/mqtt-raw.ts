// MQTT 3.1.1 packets as bytes, and a reader of the packets a broker sends, for tests that speak to the
// broker below any client library (a flood of connects, a meter that goes silent after its CONNECT, the
// exact order of what a resumed session gets).
import { concat, utf8Decode, utf8Encode } from '../../firmware/core/bytes.js';
import { leb } from '../core/support/guests.js';

/** MQTT's remaining length is a LEB128 (as WebAssembly's), and its strings are length-prefixed. */
const varint = leb;
const str = (s: string) => {
  const b = utf8Encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
};

/**
 * A CONNECT as `id` (keepalive 60 s unless given; a clean session unless `clean` is false). With
 * `password`: the user name is the id. With `will`: a QoS 1 will with an empty payload on that topic.
 */
export function connectPacket(o: { id: string; keepaliveS?: number; password?: string; will?: string; clean?: boolean }): Uint8Array {
  const keepalive = o.keepaliveS ?? 60;
  const flags = (o.clean === false ? 0 : 0x02) | (o.password !== undefined ? 0x80 | 0x40 : 0) | (o.will !== undefined ? 0x08 | 0x04 : 0);
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

/** A SUBSCRIBE to one filter at QoS 1. */
export function subscribePacket(messageId: number, filter: string): Uint8Array {
  const body = [messageId >> 8, messageId & 0xff, ...str(filter), 1];
  return Uint8Array.from([0x82, ...varint(body.length), ...body]);
}

/** The PUBACK of a QoS 1 PUBLISH. */
export function pubackPacket(messageId: number): Uint8Array {
  return Uint8Array.from([0x40, 2, messageId >> 8, messageId & 0xff]);
}

export const DISCONNECT = Uint8Array.from([0xe0, 0]);

/** A packet as read: its type (1 CONNECT … 14 DISCONNECT), and for a PUBLISH its topic, id and payload. */
export interface RawPacket {
  type: number;
  flags: number;
  body: Uint8Array;
  topic?: string;
  messageId?: number;
  payload?: Uint8Array;
}

/** Splits the bytes a broker sends into packets (any chunking). */
export class PacketReader {
  #buf = new Uint8Array(0);

  push(chunk: Uint8Array): RawPacket[] {
    const all = concat(this.#buf, chunk);
    const out: RawPacket[] = [];
    let at = 0;
    for (;;) {
      let length = 0;
      let i = at + 1;
      let shift = 0;
      for (; i < all.length; i++, shift += 7) {
        length += (all[i]! & 0x7f) * 2 ** shift;
        if (!(all[i]! & 0x80)) break;
      }
      if (i >= all.length || i + 1 + length > all.length) break;
      const first = all[at]!;
      const body = all.subarray(i + 1, i + 1 + length);
      const p: RawPacket = { type: first >> 4, flags: first & 0x0f, body };
      if (p.type === 3) {
        const n = (body[0]! << 8) | body[1]!;
        p.topic = utf8Decode(body, 2, 2 + n);
        let k = 2 + n;
        if (p.flags & 0x06) {
          p.messageId = (body[k]! << 8) | body[k + 1]!;
          k += 2;
        }
        p.payload = body.subarray(k);
      }
      out.push(p);
      at = i + 1 + length;
    }
    this.#buf = all.slice(at);
    return out;
  }
}
