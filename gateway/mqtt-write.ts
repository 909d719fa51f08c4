// The two packets the gateway's MQTT client writes per frame, a PUBLISH (the frame's ack) and a PUBACK
// (the frame's own), as one buffer each. mqtt-packet writes a packet to the socket in five to seven
// pieces (header, length, topic length, topic, message id, properties, payload): each piece is a write
// the stream buffers while corked (ingress.ts) and an entry of the `writev` that follows. The bytes are
// the same (test/gateway/mqtt-write.test.ts compares them with mqtt-packet's for both protocol versions);
// a packet these encoders do not cover (MQTT 5 properties, a PUBACK with a reason) returns undefined and
// goes to mqtt-packet as before.

/** The PUBLISH and PUBACK fields mqtt.js hands to its writer. */
export interface WritablePacket {
  cmd: string;
  topic?: unknown;
  payload?: unknown;
  qos?: number;
  dup?: boolean;
  retain?: boolean;
  messageId?: number;
  properties?: unknown;
  reasonCode?: number;
}

/** Largest remaining length MQTT can say (four bytes of variable length). */
const MAX_REMAINING = 268_435_455;

function varIntLength(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

function putVarInt(out: Buffer, at: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out[at++] = b;
  } while (n > 0);
  return at;
}

/** A QoS 0 or 1 PUBLISH with a text topic, bytes of payload and no properties; else undefined. */
function publish(p: WritablePacket, version: number): Buffer | undefined {
  const qos = p.qos ?? 0;
  if (typeof p.topic !== 'string' || p.topic.length === 0 || !Buffer.isBuffer(p.payload) || (qos !== 0 && qos !== 1)) return undefined;
  if (p.properties !== undefined || (qos === 1 && (typeof p.messageId !== 'number' || p.messageId < 0 || p.messageId > 0xffff))) return undefined;
  const topicBytes = Buffer.byteLength(p.topic);
  if (topicBytes > 0xffff) return undefined;
  const remaining = 2 + topicBytes + (qos ? 2 : 0) + (version === 5 ? 1 : 0) + p.payload.length;
  if (remaining > MAX_REMAINING) return undefined;
  const out = Buffer.allocUnsafe(1 + varIntLength(remaining) + remaining);
  out[0] = 0x30 | (p.dup ? 0x08 : 0) | (qos << 1) | (p.retain ? 0x01 : 0);
  let at = putVarInt(out, 1, remaining);
  out.writeUInt16BE(topicBytes, at);
  at += 2;
  at += out.write(p.topic, at, 'utf8');
  if (qos) {
    out.writeUInt16BE(p.messageId!, at);
    at += 2;
  }
  if (version === 5) out[at++] = 0; // no properties
  p.payload.copy(out, at);
  return out;
}

/** A PUBACK that says success and carries no properties; else undefined. */
function puback(p: WritablePacket, version: number): Buffer | undefined {
  if (typeof p.messageId !== 'number' || p.messageId < 0 || p.messageId > 0xffff || p.properties !== undefined) return undefined;
  if (version === 5 && p.reasonCode !== 0) return undefined;
  const out = Buffer.allocUnsafe(4);
  out[0] = 0x40;
  out[1] = 2;
  out.writeUInt16BE(p.messageId, 2);
  return out;
}

/** The packet's bytes in one buffer when it is a PUBLISH or PUBACK these encoders cover; else undefined. */
export function encodePacket(p: WritablePacket, version: number): Buffer | undefined {
  if (version !== 4 && version !== 5) return undefined;
  if (p.cmd === 'publish') return publish(p, version);
  if (p.cmd === 'puback') return puback(p, version);
  return undefined;
}
