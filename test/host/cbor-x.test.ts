// The core's CBOR codec against cbor-x (WIRE.md: `useRecords: false`, `tagUint8Array: false`, maps
// given pre-sorted): byte-identical on every body type and on random values; and a decoder fuzz.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder, Encoder } from 'cbor-x';
import { decode, encode, CborError, Tagged, type CborValue } from '../../firmware/core/cbor.js';
import { Body, decodeBody, encodeBody, BodyError, type AnyBody } from '../../firmware/core/wire/bodies.js';
import { Prng } from '../../firmware/core/prng.js';

/** Integer in [lo, hi). */
const rint = (p: Prng, lo: number, hi: number) => lo + p.int(hi - lo);

const cx = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: false, variableMapSize: true } as never);
const cxd = new Decoder({ useRecords: false, mapsAsObjects: false } as never);

function keyBytes(k: CborValue): Buffer {
  return Buffer.from(encode(k));
}

/** The value as cbor-x must be given it: maps pre-sorted bytewise, integers beyond 32 bits as BigInt. */
function forCborX(v: CborValue): unknown {
  if (typeof v === 'number') return Math.abs(v) > 0xffffffff ? BigInt(v) : v;
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(forCborX);
  if (v instanceof Tagged) throw new Error('no tags here');
  const entries: [CborValue, CborValue][] = v instanceof Map ? [...v.entries()] : Object.entries(v);
  entries.sort((a, b) => Buffer.compare(keyBytes(a[0]), keyBytes(b[0])));
  return new Map(entries.map(([k, x]) => [forCborX(k), forCborX(x)]));
}

function randomText(p: Prng): string {
  const pool = ['a', 'Z', '0', ' ', 'é', 'ß', '水', '€', '😀', '\u0000', '"', 'gridlet'];
  let s = '';
  const n = rint(p, 0, 12);
  for (let i = 0; i < n; i++) s += pool[rint(p, 0, pool.length)];
  return s;
}

function randomInt(p: Prng): number {
  const scale = [1, 24, 256, 65536, 2 ** 32, 2 ** 53 - 1][rint(p, 0, 6)];
  const v = Math.floor(p.float() * scale);
  return p.float() < 0.3 ? -v : v;
}

function randomValue(p: Prng, depth: number): CborValue {
  const k = rint(p, 0, depth > 3 ? 5 : 8);
  switch (k) {
    case 0: case 1: return randomInt(p);
    case 2: return randomText(p);
    case 3: return Uint8Array.from({ length: rint(p, 0, 40) }, () => rint(p, 0, 256));
    case 4: return [true, false, null][rint(p, 0, 3)];
    case 5: return Array.from({ length: rint(p, 0, 6) }, () => randomValue(p, depth + 1));
    case 6: {
      const m = new Map<number, CborValue>();
      const n = rint(p, 0, 6);
      for (let i = 0; i < n; i++) m.set(rint(p, 0, 2) ? rint(p, 0, 30) : randomInt(p), randomValue(p, depth + 1));
      return m;
    }
    default: {
      const o: { [k: string]: CborValue } = {};
      const n = rint(p, 0, 6);
      for (let i = 0; i < n; i++) o[randomText(p) + i] = randomValue(p, depth + 1);
      return o;
    }
  }
}

function sampleBodies(p: Prng): AnyBody[] {
  const cid = () => Uint8Array.from({ length: 36 }, () => rint(p, 0, 256));
  const u = () => Math.abs(randomInt(p));
  const t = () => rint(p, 0, 2) ? 0 : 1_700_000_000 + rint(p, 0, 1e8);
  const data = () => (rint(p, 0, 2) ? { value: randomInt(p), why: randomText(p) } : {});
  return [
    { type: Body.readings, first: u() + 1, records: Array.from({ length: rint(p, 1, 100) }, () => [t(), rint(p, 1, 13), randomInt(p)] as [number, number, number]) },
    { type: Body.event, seq: u(), t: t(), kind: 'guest.peak-guard.' + rint(p, 0, 99), data: data() },
    { type: Body.status, t: t(), uptime: u(), buffered: u(), dropped: u(), heap: u(), guests: [['peak-guard', cid(), 'running'], ['x', cid(), 'stopped']], link: 'link1' },
    { type: Body.job, job: u(), kind: 'llm.generate', input: { prompt: randomText(p), max_tokens: rint(p, 1, 500) } },
    { type: Body.paired, firmware: '0.1.0', model: randomText(p) },
    { type: Body.guestAck, cid: cid(), state: 'rejected', reason: randomText(p) },
    { type: Body.gap, first: u(), last: u(), reason: 'full' },
    { type: Body.downAck, counter: u() },
    { type: Body.ack, seq: u() },
    { type: Body.config, values: { tz: 'CET-1CEST,M3.5.0,M10.5.0/3', 'console.pin_hash': randomText(p), n: randomInt(p) } },
    { type: Body.guestOffer, name: 'peak-guard', cid: cid(), manifest: { name: 'peak-guard', period_s: 5, capabilities: ['relay:1', 'emit'] }, size: rint(p, 1, 4096) },
    { type: Body.guestChunk, cid: cid(), offset: rint(p, 0, 4096), bytes: Uint8Array.from({ length: rint(p, 0, 1024) }, () => rint(p, 0, 256)) },
    { type: Body.guestRemove, name: randomText(p) },
    { type: Body.drEvent, id: randomText(p), start: t(), duration: rint(p, 0, 7200), level: rint(p, 0, 4), limit: rint(p, 0, 20000), modification: rint(p, 0, 9), window: rint(p, 0, 900) },
    { type: Body.jobResult, job: u(), index: rint(p, 0, 50), text: randomText(p), final: rint(p, 0, 2) === 1, error: 'backend down' },
    { type: Body.time, time: t() },
    { type: Body.unpair },
    { type: Body.tariff, price: randomInt(p), currency: 'EUR', from: t(), until: t() },
  ] as AnyBody[];
}

test('every body type encodes byte-identically to cbor-x (1,000 random instances of each)', () => {
  const p = new Prng(42);
  const seen = new Set<number>();
  for (let round = 0; round < 1000; round++) {
    for (const body of sampleBodies(p)) {
      seen.add(body.type);
      const mine = encodeBody(body, 1 << 16);
      const m = decode(mine) as Map<number, CborValue>;
      const theirs = Buffer.from(cx.encode(forCborX(m)));
      assert.is(Buffer.from(mine).toString('hex'), theirs.toString('hex'), `body type ${body.type}`);
      assert.equal(decodeBody(mine), body);
    }
  }
  assert.is(seen.size, 18, 'all 18 body types of WIRE.md v1');
});

test('random values: same bytes as cbor-x, and each decodes the other (20,000 values)', () => {
  const p = new Prng(7);
  for (let i = 0; i < 20_000; i++) {
    const v = randomValue(p, 0);
    let mine: Uint8Array;
    try {
      mine = encode(v);
    } catch (e) {
      // duplicate keys after random generation are legitimately refused
      assert.match((e as Error).message, /duplicate map key/);
      continue;
    }
    const theirs = Buffer.from(cx.encode(forCborX(v)));
    assert.is(Buffer.from(mine).toString('hex'), theirs.toString('hex'), JSON.stringify(v, (_, x) => typeof x === 'bigint' ? String(x) : x));
    const back = decode(theirs);
    assert.is(Buffer.from(encode(back)).toString('hex'), theirs.toString('hex'));
  }
});

test('decoder fuzz: mutated and random inputs either decode as cbor-x does or fail with CborError', () => {
  const p = new Prng(99);
  const seeds = sampleBodies(p).map((b) => encodeBody(b, 1 << 16));
  let accepted = 0, refused = 0;
  for (let i = 0; i < 50_000; i++) {
    let bytes: Uint8Array;
    if (i % 5 === 0) bytes = Uint8Array.from({ length: rint(p, 0, 64) }, () => rint(p, 0, 256));
    else {
      bytes = seeds[rint(p, 0, seeds.length)].slice();
      const muts = rint(p, 1, 4);
      for (let m = 0; m < muts; m++) {
        const op = rint(p, 0, 4);
        const at = rint(p, 0, Math.max(1, bytes.length));
        if (op === 0 && bytes.length) bytes[at % bytes.length] ^= 1 << rint(p, 0, 8);
        else if (op === 1) bytes = bytes.slice(0, at);
        else if (op === 2) bytes = Uint8Array.from([...bytes.slice(0, at), rint(p, 0, 256), ...bytes.slice(at)]);
        else if (bytes.length) bytes[at % bytes.length] = [0x1b, 0x9b, 0xbb, 0x5b, 0x7f, 0xff][rint(p, 0, 6)];
      }
    }
    let mine: CborValue;
    try {
      mine = decode(bytes);
    } catch (e) {
      if (!(e instanceof CborError)) throw new Error(`non-CborError ${e} for ${Buffer.from(bytes).toString('hex')}`);
      refused++;
      continue;
    }
    accepted++;
    // Body decoding on top must also only ever fail with BodyError.
    try { decodeBody(bytes); } catch (e) { if (!(e instanceof BodyError)) throw e; }
    const hasTag = (v: CborValue): boolean => v instanceof Tagged || (Array.isArray(v) && v.some(hasTag)) ||
      (v instanceof Map && [...v.values()].some(hasTag)) ||
      (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof Map) && !Array.isArray(v) && Object.values(v).some(hasTag));
    if (hasTag(mine)) continue;
    let theirs: unknown;
    try {
      theirs = cxd.decode(Buffer.from(bytes));
    } catch {
      throw new Error(`accepted input that cbor-x refuses: ${Buffer.from(bytes).toString('hex')}`);
    }
    const norm = (v: unknown): unknown => {
      if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
      if (v instanceof Uint8Array) return 'h' + Buffer.from(v).toString('hex');
      if (Array.isArray(v)) return v.map(norm);
      if (v instanceof Map) return [...v.entries()].map(([k, x]) => [norm(k), norm(x)]);
      if (v && typeof v === 'object') return Object.entries(v).map(([k, x]) => [k, norm(x)]);
      return v;
    };
    assert.equal(norm(mine), norm(theirs), Buffer.from(bytes).toString('hex'));
  }
  assert.ok(accepted > 1000 && refused > 1000, `both paths exercised (${accepted} accepted, ${refused} refused)`);
});

test.run();
