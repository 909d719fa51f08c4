// The parts of sharing on the mesh without a network: aggregate values (last for registers, mean rounded
// half to even for instantaneous channels), the aggregates and consent payloads (built, parsed, refused),
// what each share lets an audience have, which aggregate chains a policy needs, and which consent wins.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cidOf } from '../../gateway/mesh/cid.js';
import { encodeMessage, openMessage, signerFromSeed } from '../../gateway/mesh/message.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { aggregatePayload, consentPayload, parseAggregate, parseConsent, readingsPayload, type Aggregate } from '../../gateway/mesh/protocols.js';
import { checkSources, meanHalfEven, summarise, windowStart } from '../../gateway/privacy/aggregate.js';
import { ConsentBook, consentOf, mayHave, policyOf, samePolicy, selectionsFor } from '../../gateway/privacy/consent.js';
import { DEFAULT_POLICY, parsePolicy } from '../../gateway/privacy/policy.js';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';

const DEVICE = 'aaaaaaaaaaaaaaaa';
const GATEWAY = 'bbbbbbbbbbbbbbbb';
const DAY = 1_700_006_400;

function signer() {
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }));
  const pub = new Uint8Array(createPublicKey(createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' })).subarray(12);
  return signerFromSeed(der.subarray(16), pub);
}

test('a mean is rounded half to even; registers and other channels take their last reading', () => {
  assert.equal([meanHalfEven(1201, 2), meanHalfEven(1203, 2), meanHalfEven(2401, 4), meanHalfEven(-3, 2), meanHalfEven(-5, 2), meanHalfEven(7, 3)], [600, 602, 600, -2, -2, 2]);
  const values = summarise([
    { seq: 2, t: DAY + 20, channel: 1, value: 1003 }, { seq: 1, t: DAY + 10, channel: 1, value: 1000 },
    { seq: 3, t: DAY + 10, channel: 3, value: 500 }, { seq: 4, t: DAY + 20, channel: 3, value: 701 },
    { seq: 5, t: DAY + 30, channel: 12, value: 2 }, { seq: 6, t: DAY + 30, channel: 12, value: 1 },
  ]);
  assert.equal(values, [[1, 'last', 1003, 2], [3, 'mean', 600, 2], [12, 'last', 1, 2]]);
  assert.is(windowStart(DAY + 899, 900), DAY);
  assert.is(windowStart(DAY + 900, 900), DAY + 900);
  assert.is(windowStart(DAY + 86_399, 86_400), DAY);
});

test('an aggregates payload round-trips; a malformed one is refused with the reason', () => {
  const src = cidOf(new Uint8Array([1, 2, 3]));
  const a: Aggregate = { device: DEVICE, gateway: GATEWAY, resolution: 900, start: DAY, channels: [1, 3], values: [[1, 'last', 5, 1], [3, 'mean', 7, 2]], sources: [src], prev: null };
  const p = aggregatePayload(a);
  assert.equal(parseAggregate(p), a);
  const bad: [string, object, RegExp][] = [
    ['start not on a window', { start: DAY + 1 }, /multiple of resolution/],
    ['odd resolution', { resolution: 60 }, /900 or 86400/],
    ['a mean for a register', { values: [[1, 'mean', 5, 1]] }, /summarised by "last"/],
    ['a channel outside the list', { values: [[2, 'last', 5, 1]] }, /not among channels/],
    ['values out of order', { values: [[3, 'mean', 7, 2], [1, 'last', 5, 1]] }, /increasing channel order/],
    ['a count of zero', { values: [[1, 'last', 5, 0]] }, /\[channel, method, value, count\]/],
    ['no sources', { sources: [] }, /sources/],
    ['an extra key', { purposes: ['billing'] }, /payload keys/],
  ];
  for (const [what, change, why] of bad) {
    const r = parseAggregate({ ...p, ...change } as any);
    assert.type(r, 'string', what);
    assert.match(r as string, why, what);
  }
});

test('checkSources recomputes an aggregate from its readings messages and names a value that differs', () => {
  const s = signer();
  const readings = encodeMessage(protocols().readings.pcid, readingsPayload({
    device: DEVICE, gateway: GATEWAY, prev: [], records: [[1, DAY + 10, 3, 100], [2, DAY + 20, 3, 301], [3, DAY + 900, 3, 999], [4, DAY + 30, 'event', 'power-up', {}]],
  }), s);
  const good: Aggregate = { device: DEVICE, gateway: GATEWAY, resolution: 900, start: DAY, channels: null, values: [[3, 'mean', 200, 2]], sources: [readings.cid], prev: null };
  assert.equal(checkSources(good, [readings.bytes]), []);
  assert.match(checkSources({ ...good, values: [[3, 'mean', 201, 2]] }, [readings.bytes])[0], /not those of the sources/);
  assert.match(checkSources(good, [undefined])[0], /not held/);
  assert.match(checkSources({ ...good, sources: [cidOf(new Uint8Array([9]))] }, [readings.bytes])[0], /does not hash/);
  // A signed aggregate opens and parses as what was signed.
  const m = openMessage(encodeMessage(protocols().aggregates.pcid, aggregatePayload(good), s).bytes);
  assert.equal(parseAggregate(m.payload), good);
});

test('what each share lets an audience have', () => {
  const share = (x: object) => parsePolicy({ mesh: x }).mesh;
  const raw = { kind: 'readings' } as const;
  const q = (channels: number[] | null) => ({ kind: 'aggregate', resolution: 900, channels }) as const;
  const day = (channels: number[] | null) => ({ kind: 'aggregate', resolution: 86400, channels }) as const;
  const table: [object, boolean[]][] = [
    // raw, 15min all, daily all, 15min [1], daily [1], 15min [1,3]
    [{ level: 'none' }, [false, false, false, false, false, false]],
    [{ level: 'daily' }, [false, false, true, false, true, false]],
    [{ level: '15min' }, [false, true, true, true, true, true]],
    [{ level: 'full' }, [true, true, true, true, true, true]],
    [{ level: 'full', channels: [1] }, [false, false, false, true, true, false]],
    [{ level: 'daily', channels: [1, 3] }, [false, false, false, false, true, false]],
  ];
  for (const [s, want] of table) {
    const sh = share(s);
    assert.equal([raw, q(null), day(null), q([1]), day([1]), q([1, 3])].map((b) => mayHave(sh, b)), want, JSON.stringify(s));
  }
  assert.equal(selectionsFor(DEFAULT_POLICY), [], 'the default policy needs no aggregates');
  assert.equal(selectionsFor(parsePolicy({
    peers: { a: { level: 'daily' }, b: { level: 'full', channels: [1] }, c: { level: '15min' }, d: { level: 'full' } }, mesh: { level: 'daily' },
  })), [{ resolution: 86400, channels: null }, { resolution: 900, channels: [1] }, { resolution: 900, channels: null }]);
});

test('a consent payload carries a policy exactly; the latest stamp wins, then the greatest CID', () => {
  const policy = parsePolicy({ peers: { 'community-grid': { level: '15min', purposes: ['research'], channels: [3, 1] } }, mesh: 'daily', retentionDays: 30 });
  const c = { device: DEVICE, gateway: GATEWAY, ...consentOf(policy), hlc: [1000, 0] as [number, number] };
  const parsed = parseConsent(consentPayload(c));
  assert.ok(typeof parsed !== 'string', String(parsed));
  assert.ok(samePolicy(policyOf(parsed as any), policy));
  assert.is((parsed as any).retention, 30 * 86400);
  assert.not.ok(samePolicy(policy, DEFAULT_POLICY));
  const p = consentPayload(c);
  assert.match(parseConsent({ ...p, policy: { operator: { level: 'full', purposes: [] }, mesh: { level: 'all', purposes: [] }, peers: {} } }) as string, /level/);
  assert.match(parseConsent({ ...p, retention: -1 }) as string, /retention/);
  assert.match(parseConsent({ ...p, hlc: [1] }) as string, /hlc/);

  const book = new ConsentBook();
  const at = (ms: number, n: number, byte: number, level: string) => ({
    cid: cidOf(new Uint8Array([byte])), hlc: [ms, n] as [number, number], gateway: GATEWAY, policy: parsePolicy({ mesh: level }),
  });
  assert.is(book.policy(DEVICE), DEFAULT_POLICY, 'no consent: the least sharing');
  assert.ok(book.add(DEVICE, at(2000, 0, 1, 'full')));
  assert.not.ok(book.add(DEVICE, at(1000, 5, 2, 'none')), 'an older stamp loses');
  assert.ok(book.add(DEVICE, at(2000, 1, 3, 'daily')));
  assert.is(book.policy(DEVICE).mesh.level, 'daily');
});

test.run();
