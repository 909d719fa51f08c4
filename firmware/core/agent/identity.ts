// The device's identity (WIRE.md "Identity and the pair secret") and its pairing session,
// both kept in the KeyValue port so they survive reboots.

import { utf8Decode, utf8Encode, readU64BE, writeU64BE } from '../bytes.js';
import { boxKeyPair, boxKeyPairFromSecret, randomBytes, withStrongEntropy, type BoxKeyPair } from '../crypto.js';
import type { KeyValue } from '../ports.js';
import { formatPairCode, idFromPublicKey, pairKey, pairSecretFromRandom } from '../wire/pairing.js';
import { decode, encode, type CborValue } from '../cbor.js';

export interface Identity {
  keys: BoxKeyPair;
  deviceId: string;
  /** 10 lower-case base32 characters. */
  pairSecret: string;
  /** `XXXXX-XXXXX` for people. */
  pairCode: string;
  pairKey: Uint8Array;
}

const K_SECRET = 'id.sk';
const K_PAIR = 'id.pair';

/** Loads the identity, creating it on first boot (from the Random port's strongest entropy). */
export function loadIdentity(kv: KeyValue): Identity {
  let sk = kv.get(K_SECRET);
  let keys: BoxKeyPair;
  if (sk && sk.length === 32) keys = boxKeyPairFromSecret(sk);
  else {
    keys = withStrongEntropy(boxKeyPair);
    kv.set(K_SECRET, keys.secretKey);
  }
  let secretBytes = kv.get(K_PAIR);
  let secret = secretBytes ? utf8Decode(secretBytes) : undefined;
  if (!secret || !/^[a-z2-7]{10}$/.test(secret)) {
    secret = pairSecretFromRandom(withStrongEntropy(() => randomBytes(7)));
    kv.set(K_PAIR, utf8Encode(secret));
  }
  return {
    keys,
    deviceId: idFromPublicKey(keys.publicKey),
    pairSecret: secret,
    pairCode: formatPairCode(secret),
    pairKey: pairKey(secret),
  };
}

/** What the device keeps of its gateway once paired. */
export interface Session {
  gatewayPublicKey: Uint8Array;
  gatewayId: string;
  ks: Uint8Array;
  /**
   * The gateway has answered a frame of this session (any authentic downlink): pairing is complete
   * on its side too. Until then the device says `paired` on every connection (WIRE.md step 5).
   */
  confirmed?: boolean;
}

const K_SESSION = 'ses';
const K_UP = 'ses.up';
const K_DOWN = 'ses.down';

export function loadSession(kv: KeyValue): Session | undefined {
  const b = kv.get(K_SESSION);
  if (!b) return undefined;
  try {
    const m = decode(b);
    if (!(m instanceof Map)) return undefined;
    const pk = m.get(1), id = m.get(2), ks = m.get(3);
    if (!(pk instanceof Uint8Array) || typeof id !== 'string' || !(ks instanceof Uint8Array)) return undefined;
    return { gatewayPublicKey: pk, gatewayId: id, ks, confirmed: m.get(4) === true };
  } catch {
    return undefined;
  }
}

function encodeSession(s: Session): Uint8Array {
  const m = new Map<number, CborValue>([[1, s.gatewayPublicKey], [2, s.gatewayId], [3, s.ks]]);
  if (s.confirmed) m.set(4, true);
  return encode(m);
}

/** Stores a new session, with fresh frame counters. */
export function saveSession(kv: KeyValue, s: Session): void {
  kv.set(K_SESSION, encodeSession(s));
  kv.delete(K_UP);
  kv.delete(K_DOWN);
}

/** Marks the stored session confirmed by its gateway (counters untouched). */
export function confirmSession(kv: KeyValue, s: Session): void {
  s.confirmed = true;
  kv.set(K_SESSION, encodeSession(s));
}

export function forgetSession(kv: KeyValue): void {
  kv.delete(K_SESSION);
  kv.delete(K_UP);
  kv.delete(K_DOWN);
}

/**
 * The uplink frame counter. It reserves counters in blocks: the persisted value is a high-water mark,
 * and after a reboot the counter continues from it, so a counter is never reused (WIRE.md allows the gap).
 */
export class UpCounter {
  #next: number;
  #reserved: number;
  constructor(readonly kv: KeyValue, readonly block = 64) {
    const b = kv.get(K_UP);
    this.#reserved = b && b.length === 8 ? readU64BE(b, 0) : 0;
    this.#next = this.#reserved + 1;
  }
  take(): number {
    const n = this.#next++;
    if (n > this.#reserved) {
      this.#reserved = n + this.block - 1;
      const b = new Uint8Array(8);
      writeU64BE(b, 0, this.#reserved);
      this.kv.set(K_UP, b);
    }
    return n;
  }
}

/** The highest downlink counter accepted and its window bits, persisted so replays stay refused after a reboot. */
export function loadDownWindow(kv: KeyValue): [number, number[]] {
  const b = kv.get(K_DOWN);
  if (!b || b.length !== 16) return [0, [0, 0]];
  const u32 = (o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  return [readU64BE(b, 0), [u32(8), u32(12)]];
}

export function saveDownWindow(kv: KeyValue, highest: number, bits: [number, number]): void {
  const b = new Uint8Array(16);
  writeU64BE(b, 0, highest);
  for (let i = 0; i < 2; i++) {
    const w = bits[i] >>> 0;
    b[8 + i * 4] = w >>> 24;
    b[9 + i * 4] = (w >>> 16) & 0xff;
    b[10 + i * 4] = (w >>> 8) & 0xff;
    b[11 + i * 4] = w & 0xff;
  }
  kv.set(K_DOWN, b);
}

