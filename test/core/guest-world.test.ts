// Worlds (GUESTS.md "Microworlds"): the manifest's rules (members, at most one holding relays, what
// a member may offer), the bundle and its CID, and validation of members against what the others
// offer (signatures, cycles). The supervisor's side runs on real engines in
// test/host/guests-world.test.ts. Runs on Node and inside XS.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../firmware/core/cbor.js';
import { cidMatches, cidToText, deployableCidFromText, cidFromText, guestCid, isGuestCid, isWorldCid, worldCid } from '../../firmware/core/guests/cid.js';
import { instrumentMetering } from '../../guests/tools/instrument.js';
import {
  decodeWorld, encodeWorld, parseWorldManifest, validateWorld, worldManifestToMap, WORLD_LIMITS,
} from '../../firmware/core/guests/world.js';
import { assemble, call, i32c, i64c, T } from './support/guests.js';
import { PROBE_WORLD_MANIFEST, probeWorld, probeWorldApp, probeWorldLib } from './support/wasi-world-guests.js';

type Member = { name: string; period_s: number; fuel_per_call: number; memory_bytes: number; capabilities: string[]; exports?: string[] };

function manifest(members: Member[]) {
  return { name: 'w', version: '1.0.0', modules: members };
}

const member = (name: string, extra: Partial<Member> = {}): Member =>
  ({ name, period_s: 5, fuel_per_call: 10_000, memory_bytes: 1024, capabilities: [], ...extra });

function why(value: unknown): string {
  const r = parseWorldManifest(value);
  if (r.ok) throw new Error('expected a refusal');
  return r.reason;
}

test('a world manifest: members with a guest\'s fields, what they offer, one relay holder', () => {
  const r = parseWorldManifest(PROBE_WORLD_MANIFEST);
  if (!r.ok) throw new Error(r.reason);
  assert.equal(r.world.members.map((m) => [m.name, m.manifest.version, m.exports]), [['lib', '1.0.0', ['spin', 'boom']], ['app', '1.0.0', []]]);
  assert.equal(worldManifestToMap(r.world), PROBE_WORLD_MANIFEST, 'the map round-trips (an empty "exports" is left out)');
  assert.match(why(manifest([member('a', { capabilities: ['relay:1'] }), member('b', { capabilities: ['relay:2'] })])),
    /members "a" and "b" both hold relays; at most one member of a world holds relays/);
  assert.match(why(manifest([member('a'), member('a')])), /two members are named "a"/);
  assert.match(why(manifest([member('gridlet')])), /"gridlet" is the name of a module the agent provides/);
  assert.match(why(manifest([member('a', { exports: ['tick'] })])), /"tick" is called by the agent and cannot be offered/);
  assert.match(why(manifest([member('a', { exports: ['no-dash'] })])), /export "no-dash" is not a function name/);
  assert.match(why(manifest([])), /"modules" must list 1–4 members/);
  assert.match(why(manifest(new Array(WORLD_LIMITS.members + 1).fill(0).map((_, i) => member(`m${i}`)))), /1–4 members/);
  assert.match(why({ ...manifest([member('a')]), extra: 1 }), /unknown field "extra"/);
  assert.match(why(manifest([{ ...member('a'), version: '2.0.0' } as Member])), /modules\[0\]: unknown field "version"/);
  assert.match(why(manifest([member('a', { period_s: 0 })])), /modules\[0\]: "period_s" is 0/);
  assert.match(why({ name: 'Bad', version: '1.0.0', modules: [member('a')] }), /"name" must be 1–32 characters/);
});

test('the bundle: deterministic CBOR of manifest and modules, named by a dag-cbor CID', () => {
  const bundle = probeWorld();
  const d = decodeWorld(bundle);
  if (!d.ok) throw new Error(d.reason);
  assert.equal(d.modules.map((m) => m.length), [probeWorldLib().length, probeWorldApp().length]);
  assert.equal([...encodeWorld(d.world, d.modules)], [...bundle], 'encoding is deterministic');
  const cid = worldCid(bundle);
  assert.ok(isWorldCid(cid) && !isGuestCid(cid));
  assert.equal([cid[0], cid[1], cid[2], cid[3]], [0x01, 0x71, 0x12, 0x20]);
  assert.ok(cidMatches(cid, bundle));
  assert.not.ok(cidMatches(cid, probeWorld({ ...PROBE_WORLD_MANIFEST, version: '1.0.1' })), 'another version is another CID');
  assert.ok(cidToText(cid).startsWith('bafyrei'));
  assert.equal(deployableCidFromText(cidToText(cid)), cid);
  assert.is(cidFromText(cidToText(cid)), undefined, 'a guest CID it is not');
  assert.equal(deployableCidFromText(cidToText(guestCid(probeWorldLib()))), guestCid(probeWorldLib()));
  // Not in deterministic form (the longer key first), extra fields, one module too few.
  const unsorted = new Uint8Array([0xa2, 0x68, ...[...'manifest'].map((c) => c.charCodeAt(0)), 0xa0, 0x67, ...[...'modules'].map((c) => c.charCodeAt(0)), 0x80]);
  const u = decodeWorld(unsorted);
  assert.ok(!u.ok && /not deterministic CBOR/.test(u.reason));
  const extra = decodeWorld(encode({ manifest: PROBE_WORLD_MANIFEST, modules: [probeWorldLib(), probeWorldApp()], x: 1 }));
  assert.ok(!extra.ok && /unknown field "x"/.test(extra.reason));
  const short = decodeWorld(encode({ manifest: PROBE_WORLD_MANIFEST, modules: [probeWorldLib()] }));
  assert.ok(!short.ok && /one \.wasm per member \(2\)/.test(short.reason));
});

function validate(m: unknown, modules: Uint8Array[]): string | number[] {
  const r = parseWorldManifest(m);
  if (!r.ok) return r.reason;
  const v = validateWorld({ world: r.world, modules });
  return v.ok ? v.order : v.reason;
}

/** A member module: exports init, tick and `offers` (each (i32) -> i32), imports `calls` [member, fn]. */
function module(offers: string[] = [], calls: [string, string][] = [], offerType: { params: number[]; results: number[] } = { params: [T.i32], results: [T.i32] }): Uint8Array {
  return instrumentMetering(assemble({
    imports: calls.map(([m, f]): [string, string, number[], number[]] => [m, f, [T.i32], [T.i32]]),
    funcs: [
      { results: [T.i32], code: i32c(0) },
      { results: [T.i32], code: calls.length ? [...i32c(1), ...call(0)] : i32c(0) },
      ...offers.map(() => ({ params: offerType.params, results: offerType.results, code: offerType.results.length ? (offerType.results[0] === T.i64 ? i64c(1) : i32c(1)) : [] })),
    ],
    exports: [['memory', 2, 0], ['init', 0, calls.length], ['tick', 0, calls.length + 1],
      ...offers.map((o, i): [string, number, number] => [o, 0, calls.length + 2 + i])],
  })).wasm;
}

test('members are checked against what the others offer, and loaded callees first', () => {
  assert.equal(validate(PROBE_WORLD_MANIFEST, [probeWorldLib(), probeWorldApp()]), [0, 1]);
  // app first in the manifest: still loaded after lib, which it calls.
  const swapped = { ...PROBE_WORLD_MANIFEST, modules: [PROBE_WORLD_MANIFEST.modules[1], PROBE_WORLD_MANIFEST.modules[0]] };
  assert.equal(validate(swapped, [probeWorldApp(), probeWorldLib()]), [1, 0]);
  const m = manifest([member('a', { exports: ['f'] }), member('b')]);
  assert.match(String(validate(m, [module(['f']), module([], [['a', 'g']])])), /member "b": import a\.g: world member "a" does not export "g" to the others \(it exports f\)/);
  assert.match(String(validate(m, [module([]), module()])), /member "a" offers "f" but its module exports no function of that name/);
  assert.match(String(validate(m, [module(['f'], [], { params: [T.i64], results: [T.i32] }), module()])), /offers "f" with signature \(i64\) -> \(i32\); an offered function takes at most 4 i32, f32 or f64/);
  assert.match(String(validate(manifest([member('a'), member('b')]), [module(), module([], [['c', 'f']])])), /member "b": import c\.f is from module "c"; .* the members of its world \(a\)/);
  const f64Sig = assemble({
    imports: [['a', 'f', [T.f64], [T.i32]]],
    funcs: [{ results: [T.i32], code: i32c(0) }, { results: [T.i32], code: i32c(0) }],
    exports: [['memory', 2, 0], ['init', 0, 1], ['tick', 0, 2]],
  });
  assert.match(String(validate(m, [module(['f']), instrumentMetering(f64Sig).wasm])), /member "b": import a\.f has signature \(f64\) -> \(i32\); member "a" exports it as \(i32\) -> \(i32\)/);
});

test('calls between members form no cycle; a member is a ticked guest, not a job', () => {
  const cycle = manifest([member('a', { exports: ['f'] }), member('b', { exports: ['g'] })]);
  assert.match(String(validate(cycle, [module(['f'], [['b', 'g']]), module(['g'], [['a', 'f']])])), /the members call each other in a cycle \(a → b → a\)/);
  const job = instrumentMetering(assemble({ funcs: [{ code: [] }], exports: [['memory', 2, 0], ['_start', 0, 0]] })).wasm;
  assert.match(String(validate(manifest([member('a')]), [job])), /member "a" is a one-shot job \(_start\); world members are ticked guests/);
  assert.match(String(validate(manifest([member('a')]), [new Uint8Array(5000)])), /member "a": module is 5000 bytes; a guest is at most 4096 bytes/);
});

test.run();
