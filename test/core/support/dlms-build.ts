// Encoders for what meters send, so tests can make frames a capture does not have (segmented HDLC,
// M-Bus segments, block transfers, ciphering with chosen keys) from the real payloads. Portable to XS.

import { AesGcm } from '../../../firmware/core/aes-gcm.js';
import { concat, fromHex } from '../../../firmware/core/bytes.js';
import { fcs16 } from '../../../firmware/core/meter/hdlc.js';
import { mbusChecksum } from '../../../firmware/core/meter/mbus.js';
import { DLMS_FIXTURES } from './dlms-fixtures.js';

/** Bytes one after another (the core's concat). */
export const cat = concat;

/** A fixture's frames as bytes. */
export function fixtureFrames(name: string): Uint8Array[] {
  const f = DLMS_FIXTURES[name];
  if (!f) throw new Error(`no fixture ${name}`);
  return f.frames.map((h) => fromHex(h));
}

/** A fixture's bytes, frames one after another. */
export function fixtureBytes(name: string): Uint8Array {
  return cat(...fixtureFrames(name));
}

export function fixtureKeys(name: string): { key?: Uint8Array; authKey?: Uint8Array } {
  const f = DLMS_FIXTURES[name];
  return { key: f.key ? fromHex(f.key) : undefined, authKey: f.authKey ? fromHex(f.authKey) : undefined };
}

/** One HDLC frame around `info` (IEC 62056-46): UI frame from server 0x0883 to client 0x41 by default. */
export function hdlcFrame(info: Uint8Array, o: { segmented?: boolean; dst?: number[]; src?: number[]; control?: number } = {}): Uint8Array {
  const dst = o.dst ?? [0x41];
  const src = o.src ?? [0x08, 0x83];
  const header = 2 + dst.length + src.length + 1;
  const length = header + (info.length ? 2 + info.length : 0) + 2;
  if (length > 2047) throw new RangeError(`an HDLC frame of ${length} bytes does not fit the 11-bit length`);
  const f = new Uint8Array(length + 2);
  f[0] = 0x7e;
  f[1] = 0xa0 | (o.segmented ? 0x08 : 0) | (length >> 8);
  f[2] = length & 0xff;
  f.set(dst, 3);
  f.set(src, 3 + dst.length);
  f[header] = o.control ?? 0x13;
  let p = 1 + header;
  if (info.length) {
    const hcs = fcs16(f, 1, p);
    f[p++] = hcs & 0xff;
    f[p++] = hcs >> 8;
    f.set(info, p);
    p += info.length;
  }
  const fcs = fcs16(f, 1, p);
  f[p++] = fcs & 0xff;
  f[p++] = fcs >> 8;
  f[p] = 0x7e;
  return f;
}

/** A message split over HDLC frames of at most `size` information bytes, the S bit on all but the last. */
export function hdlcSegments(message: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < message.length; i += size) {
    const end = Math.min(message.length, i + size);
    out.push(hdlcFrame(message.subarray(i, end), { segmented: end < message.length }));
  }
  return out;
}

/** An APDU in M-Bus long frames of at most `size` APDU bytes each, CI = segment | 0x10 on the last. */
export function mbusFrames(apdu: Uint8Array, size: number, o: { c?: number; a?: number; tsap?: number[] } = {}): Uint8Array[] {
  const out: Uint8Array[] = [];
  const tsap = o.tsap ?? [0x01, 0x67];
  let seq = 0;
  for (let i = 0; i < apdu.length || i === 0; i += size) {
    const end = Math.min(apdu.length, i + size);
    const data = apdu.subarray(i, end);
    const L = 3 + tsap.length + data.length;
    if (L > 255) throw new RangeError('an M-Bus long frame holds 255 bytes after its header');
    const f = new Uint8Array(L + 6);
    f.set([0x68, L, L, 0x68, o.c ?? 0x53, o.a ?? 0xff, (seq & 0x0f) | (end >= apdu.length ? 0x10 : 0)]);
    f.set(tsap, 7);
    f.set(data, 7 + tsap.length);
    f[4 + L] = mbusChecksum(f, 4, 4 + L);
    f[5 + L] = 0x16;
    out.push(f);
    seq++;
    if (end >= apdu.length) break;
  }
  return out;
}

/** An APDU as general-block-transfer blocks of at most `size` bytes (streaming, numbered from 1). */
export function gbtBlocks(apdu: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let n = 1;
  for (let i = 0; i < apdu.length; i += size) {
    const end = Math.min(apdu.length, i + size);
    const len = end - i;
    const lengthBytes = len < 0x80 ? [len] : len < 0x100 ? [0x81, len] : [0x82, len >> 8, len & 0xff];
    const last = end >= apdu.length;
    out.push(cat(Uint8Array.of(0xe0, (last ? 0x80 : 0) | 0x40, n >> 8, n & 0xff, 0, 0), Uint8Array.from(lengthBytes), apdu.subarray(i, end)));
    n++;
  }
  return out;
}

/** A BER length. */
function berLength(n: number): number[] {
  return n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
}

/**
 * General-glo-ciphering around `plain`: security control 0x30 (encrypted and authenticated, 12-byte
 * tag), 0x20 (encrypted) or 0x10 (authenticated), as a meter with these keys would send it.
 */
export function glo(plain: Uint8Array, o: { key: Uint8Array; authKey?: Uint8Array; title: Uint8Array; counter: number; sc?: number }): Uint8Array {
  const sc = o.sc ?? 0x30;
  const auth = (sc & 0x10) !== 0;
  const enc = (sc & 0x20) !== 0;
  const iv = new Uint8Array(12);
  iv.set(o.title, 0);
  iv[8] = o.counter >>> 24;
  iv[9] = (o.counter >>> 16) & 0xff;
  iv[10] = (o.counter >>> 8) & 0xff;
  iv[11] = o.counter & 0xff;
  const aad = new Uint8Array(17);
  aad[0] = sc;
  if (auth) aad.set(o.authKey!, 1);
  const gcm = new AesGcm(o.key);
  const tag = new Uint8Array(12);
  let text: Uint8Array;
  if (enc) {
    text = new Uint8Array(plain.length);
    gcm.seal(iv, aad, 0, 17, plain, 0, plain.length, text, 0, tag, 0, 12);
  } else {
    text = plain.slice();
    // Authentication only: the tag over SC ‖ AK ‖ plaintext with nothing encrypted.
    const all = cat(aad, plain);
    gcm.seal(iv, all, 0, all.length, new Uint8Array(0), 0, 0, new Uint8Array(0), 0, tag, 0, 12);
  }
  const body = cat(Uint8Array.of(sc, iv[8], iv[9], iv[10], iv[11]), text, auth ? tag : new Uint8Array(0));
  return cat(Uint8Array.of(0xdb, 8), o.title, Uint8Array.from(berLength(body.length)), body);
}

/** Text as latin-1 bytes. */
export function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}
