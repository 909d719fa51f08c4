// Guest manifests (GUESTS.md "Manifest"): JSON in the repository, a CBOR map in guest-offer.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode } from '../../firmware/core/cbor.js';
import {
  channelGranted, manifestToMap, parseManifest, parseManifestJson, relayGranted, signalGranted,
} from '../../firmware/core/guests/manifest.js';
import { Body, decodeBody, encodeBody } from '../../firmware/core/wire/bodies.js';

const example = {
  name: 'peak-guard', version: '1.0.0', period_s: 5, fuel_per_call: 200000, memory_bytes: 8192,
  capabilities: ['channel:*', 'signal:*', 'relay:1', 'emit', 'kv:8'],
};

function refused(v: unknown): string {
  const r = parseManifest(v);
  if (r.ok) throw new Error('expected a refusal');
  return r.reason;
}

test("GUESTS.md's example manifest parses into grants", () => {
  const r = parseManifestJson(JSON.stringify(example));
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.manifest, example);
  assert.ok(r.grants.channelAll && r.grants.signalAll && r.grants.emit);
  assert.equal(r.grants.relays, [1]);
  assert.is(r.grants.kvSlots, 8);
});

test('narrow capabilities grant exactly what they name', () => {
  const r = parseManifest({ ...example, capabilities: ['channel:3', 'channel:5', 'signal:2', 'relay:2', 'relay:3'] });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.ok(channelGranted(r.grants, 3) && channelGranted(r.grants, 5));
  assert.not.ok(channelGranted(r.grants, 4));
  assert.ok(signalGranted(r.grants, 2));
  assert.not.ok(signalGranted(r.grants, 1));
  assert.ok(relayGranted(r.grants, 3));
  assert.not.ok(relayGranted(r.grants, 1));
  assert.not.ok(r.grants.emit);
  assert.is(r.grants.kvSlots, 0);
});

test('the CBOR map of a guest-offer round-trips through the wire codec', () => {
  const r = parseManifest(example);
  assert.ok(r.ok);
  if (!r.ok) return;
  const offer = encodeBody({ type: Body.guestOffer, name: 'peak-guard', cid: new Uint8Array(36), manifest: manifestToMap(r.manifest), size: 1200 });
  const back = decodeBody(offer);
  assert.is(back.type, Body.guestOffer);
  const again = parseManifest((back as { manifest: unknown }).manifest);
  assert.ok(again.ok);
  if (again.ok) assert.equal(again.manifest, r.manifest);
  assert.equal(decode(encode(manifestToMap(r.manifest))), manifestToMap(r.manifest));
});

test('fields are checked with reasons', () => {
  assert.match(refused({ ...example, name: 'Peak Guard' }), /"name" must be 1–32 characters of a-z/);
  assert.match(refused({ ...example, version: 'one' }), /"version" must be a version/);
  assert.match(refused({ ...example, period_s: 0 }), /"period_s" is 0; it must be between 1 and 86400/);
  assert.match(refused({ ...example, period_s: 1.5 }), /"period_s" must be an integer/);
  assert.match(refused({ ...example, fuel_per_call: 1e9 }), /"fuel_per_call" is 1000000000/);
  assert.match(refused({ ...example, memory_bytes: 65537 }), /"memory_bytes" is 65537; it must be between 1 and 65536/);
  assert.match(refused({ ...example, colour: 'red' }), /unknown field "colour"/);
  assert.match(refused({ ...example, capabilities: 'relay:1' }), /"capabilities" must be a list/);
  assert.match(refused([]), /must be a map/);
  assert.match(parseManifestJson('{').ok ? '' : (parseManifestJson('{') as { reason: string }).reason, /not valid JSON/);
});

test('the capability grammar: channel:*|N, signal:*|N, relay:N, emit, kv:N', () => {
  assert.match(refused({ ...example, capabilities: ['wifi'] }), /capability "wifi" is not one of/);
  assert.match(refused({ ...example, capabilities: ['relay:*'] }), /"relay:\*" is not allowed/);
  assert.match(refused({ ...example, capabilities: ['kv:*'] }), /kv needs a number of slots/);
  assert.match(refused({ ...example, capabilities: ['kv:65'] }), /at most 64 kv slots/);
  assert.match(refused({ ...example, capabilities: ['channel:0'] }), /channel must be 1–255/);
  assert.match(refused({ ...example, capabilities: ['channel:3 '] }), /not one of/);
  assert.match(refused({ ...example, capabilities: [7] }), /capability 7 is not text/);
});

test.run();
