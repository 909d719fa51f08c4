// Firmware over the air on the core (WIRE.md "Firmware updates"): a meter with A/B slots against a
// gateway that serves the image chunk by chunk, in virtual time.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import { BootState } from '../../firmware/core/ports.js';
import { bootloader, FACTORY_SLOT, FlashUpdater, OtaFlash, OtaState } from '../../firmware/core/update/boot-control.js';
import { checkRelease, compareVersions, decodeManifest, isVersion } from '../../firmware/core/update/release.js';
import { OTHER_KEY, OtaWorld, release, RELEASE_KEY, testImage } from './support/ota-world.js';

test('release versions compare as numbers and malformed ones are refused', () => {
  assert.ok(compareVersions('0.10.0', '0.9.9') > 0);
  assert.ok(compareVersions('1.0.0', '1.0.0') === 0);
  for (const bad of ['1.0', '01.0.0', '1.0.0-rc1', 'a.b.c', '1..0', '']) assert.not.ok(isVersion(bad), bad);
});

test('a meter checks the signature, model, version, minimum and size of a release before anything else', () => {
  const image = testImage('0.2.0');
  const c = { running: '0.1.0', model: 'test-meter', keys: [RELEASE_KEY.publicKey], slotSize: 64 * 1024 };
  assert.ok(checkRelease(release(image, { version: '0.2.0' }), c).ok);
  const reason = (r: ReturnType<typeof checkRelease>) => (r.ok ? 'accepted' : r.reason);
  assert.match(reason(checkRelease(release(image, { version: '0.2.0', key: OTHER_KEY }), c)), /^bad signature: release key [0-9a-f]{16} is not one this firmware trusts/);
  const forged = release(image, { version: '0.2.0' });
  forged.signature[5] ^= 1;
  assert.match(reason(checkRelease(forged, c)), /^bad signature: the release is not signed by key/);
  assert.match(reason(checkRelease(release(image, { version: '0.2.0', models: ['other'] }), c)), /^wrong model: the release is for other, this meter is test-meter/);
  assert.match(reason(checkRelease(release(image, { version: '0.1.0' }), c)), /not newer than the running 0\.1\.0/);
  assert.match(reason(checkRelease(release(image, { version: '0.2.0', minVersion: '0.1.5' }), c)), /needs at least 0\.1\.5 running/);
  assert.match(reason(checkRelease(release(testImage('0.2.0', 70_000), { version: '0.2.0' }), c)), /does not fit the 65536-byte update slot/);
  assert.match(reason(checkRelease(release(image, { version: '0.2.0' }), { ...c, keys: [] })), /no release key built in/);
  assert.is(decodeManifest(release(image, { version: '0.2.0' }).manifest).size, image.length);
});

test('boot control: a pending image boots once on trial; unconfirmed, the next boot returns to the old one', () => {
  const flash = new MemoryFlash({ blocks: 10, blockSize: 4096 });
  assert.equal(bootloader(flash), { slot: FACTORY_SLOT, size: 0, trial: false });
  const u = new FlashUpdater(flash);
  u.write(0, new Uint8Array(5000).fill(1));
  u.setPending(5000);
  assert.equal(bootloader(flash), { slot: 0, size: 5000, trial: true });
  const trial = new FlashUpdater(flash);
  assert.is(trial.bootState, BootState.trial);
  assert.equal(bootloader(flash), { slot: FACTORY_SLOT, size: 0, trial: false }, 'restarted without confirming: given up');
  assert.ok(new FlashUpdater(flash).rejected);
  // A confirmed image keeps booting; the next update goes to the other slot.
  const again = new FlashUpdater(flash);
  again.write(0, new Uint8Array(100).fill(2));
  again.setPending(100);
  bootloader(flash);
  new FlashUpdater(flash).confirm();
  assert.equal(bootloader(flash), { slot: 0, size: 100, trial: false });
  assert.equal(bootloader(flash), { slot: 0, size: 100, trial: false });
  assert.is(new FlashUpdater(flash).inactiveSlot, 1);
});

test('boot control: an entry torn by a power cut leaves the one before it in charge', () => {
  const flash = new MemoryFlash({ blocks: 10, blockSize: 4096 });
  const u = new FlashUpdater(flash);
  u.setPending(10);
  const ota = new OtaFlash(flash);
  const before = ota.current()!;
  // The next entry goes to the other block: half of it programmed, then the power went.
  const other = 1 - before.block;
  flash.eraseBlock(other);
  flash.write(other * 4096, new Uint8Array([0x47, 0x4c, 0x4f, 0x31, 0, 0, 0, 9, 1]));
  assert.equal(ota.current(), before);
  assert.is(ota.current()!.entry.state, OtaState.new);
});

test('deploy v2: the meter downloads it while readings flow, restarts into it, confirms once its gateway acks, and loses no reading', () => {
  const w = new OtaWorld();
  w.pair();
  const image = testImage('0.2.0', 50_000);
  // A lossy link: some chunks never arrive and are asked for again.
  let dropped = 0;
  w.gw.dropChunk = (at) => {
    if (at % 7168 !== 3072 || dropped >= 3) return false;
    dropped++;
    return true;
  };
  w.offer(image, release(image, { version: '0.2.0' }));
  for (let i = 0; i < 120; i++) {
    w.take();
    w.run(500);
  }
  assert.is(dropped, 3);
  assert.equal(w.boots.map((b) => `${b.version}${b.trial ? ' trial' : ''}`), ['0.1.0', '0.2.0 trial']);
  assert.is(w.version, '0.2.0');
  const states = w.states();
  for (const s of ['downloading', 'verified', 'rebooting', 'confirmed']) assert.ok(states.includes(s), `${s} in ${states}`);
  assert.is(states[states.length - 1], 'confirmed');
  assert.equal(bootloader(w.ota), { slot: 0, size: image.length, trial: false }, 'confirmed: it keeps booting');
  assert.equal(w.firmwareEvents().map((e) => [e.state, e.version, e.from]), [['confirmed', '0.2.0', '0.1.0']]);
  for (let i = 0; i < 5; i++) { w.take(); w.run(1000); }
  assert.equal(w.storedValues(), w.taken, 'every reading, once, in order');
  assert.is(w.device.updates!.state, 'idle');
  // The same release offered again (a resent offer whose answer was lost): the meter says it runs it.
  const seen = w.gw.fwStatus.length;
  w.offer(image, release(image, { version: '0.2.0' }));
  w.run(1000);
  assert.equal(w.gw.fwStatus.slice(seen).map((s) => [s.state, s.reason]), [['confirmed', undefined]]);
  assert.is(w.device.updates!.counters.offersRefused, 0);
});

test('the release offered again while the meter runs it on trial is answered `rebooting`, not refused; it confirms as usual', () => {
  const w = new OtaWorld();
  w.pair();
  // No acks for now: the new image stays on trial (it confirms once a record of its boot is acked).
  w.gw.sendAcks = false;
  const image = testImage('0.2.0', 20_000);
  const r = release(image, { version: '0.2.0' });
  w.offer(image, r);
  for (let i = 0; i < 60 && !w.boots.some((b) => b.trial); i++) { w.take(); w.run(500); }
  assert.equal(w.boots.map((b) => `${b.version}${b.trial ? ' trial' : ''}`), ['0.1.0', '0.2.0 trial']);
  // The gateway resends its offer (its down-ack was lost): the meter runs that release, on trial.
  const seen = w.gw.fwStatus.length;
  w.offer(image, r);
  w.run(1000);
  assert.equal(w.gw.fwStatus.slice(seen).map((s) => [s.state, s.reason]), [['rebooting', undefined]]);
  assert.is(w.device.updates!.counters.offersRefused, 0);
  w.gw.sendAcks = true;
  for (let i = 0; i < 5; i++) { w.take(); w.run(1000); }
  assert.is(w.states()[w.states().length - 1], 'confirmed');
  assert.equal(w.firmwareEvents().map((e) => [e.state, e.version, e.from]), [['confirmed', '0.2.0', '0.1.0']], 'no `failed` outcome recorded');
  assert.equal(w.storedValues(), w.taken, 'every reading, once, in order');
});

test('an image that never reaches its gateway gives itself up; the old one returns and reports `rolled-back` with the reason', () => {
  const w = new OtaWorld(30_000);
  w.pair();
  const image = testImage('0.2.0', 20_000, 'no-reconnect');
  w.offer(image, release(image, { version: '0.2.0' }));
  for (let i = 0; i < 100; i++) { w.take(); w.run(1000); }
  assert.equal(w.boots.map((b) => `${b.version}${b.trial ? ' trial' : ''}`), ['0.1.0', '0.2.0 trial', '0.1.0']);
  assert.is(w.version, '0.1.0');
  const last = w.gw.fwStatus[w.gw.fwStatus.length - 1];
  assert.is(last.state, 'rolled-back');
  assert.match(last.reason!, /0\.2\.0 did not reach its gateway and have a record acknowledged within 30 s/);
  const ev = w.firmwareEvents();
  assert.equal(ev.map((e) => [e.state, e.version, e.running]), [['rolled-back', '0.2.0', '0.1.0']]);
  assert.equal(w.storedValues(), w.taken.filter((v) => w.storedValues().includes(v)));
  // Readings taken by the trial image while it was cut off are in the shared log: they reach the gateway too.
  assert.equal(w.storedValues(), w.taken, 'nothing lost across the trial and the rollback');
});

test('a restart in the middle of a download resumes it from the last kept erase unit', () => {
  const w = new OtaWorld();
  w.pair();
  const image = testImage('0.2.0', 60_000);
  w.offer(image, release(image, { version: '0.2.0' }));
  // About half arrives (the gateway serves nothing past 30,000 bytes), then the power goes.
  w.gw.dropChunk = (at) => at >= 30_000;
  w.run(2000);
  const before = w.gw.fwStatus.length;
  w.restart();
  w.gw.dropChunk = undefined;
  w.run(10);
  const resumed = w.gw.fwStatus.slice(before).find((s) => s.state === 'downloading')!;
  assert.is(resumed.offset, 16384, 'the last 16 KiB boundary kept before the cut');
  for (let i = 0; i < 60; i++) w.run(1000);
  assert.is(w.version, '0.2.0');
  assert.is(w.states().pop(), 'confirmed');
});

test('refused releases leave v1 running and say why: bad signature, wrong model, an image that does not hash to its CID', () => {
  const w = new OtaWorld();
  w.pair();
  const image = testImage('0.2.0', 8000);
  w.offer(image, release(image, { version: '0.2.0', key: OTHER_KEY }));
  w.run(1000);
  w.offer(image, release(image, { version: '0.2.0', models: ['gridlet-esp32'] }));
  w.run(1000);
  // The gateway serves other bytes than the release names (a corrupted store, a man in the middle).
  const r = release(image, { version: '0.2.0' });
  const corrupted = image.slice();
  corrupted[5000] ^= 0xff;
  w.offer(image, r);
  w.gw.images.set([...w.gw.images.keys()][0], corrupted);
  for (let i = 0; i < 20; i++) w.run(1000);
  const failed = w.gw.fwStatus.filter((s) => s.state === 'failed').map((s) => s.reason);
  assert.is(failed.length, 3, JSON.stringify(w.gw.fwStatus));
  assert.match(failed[0]!, /^bad signature/);
  assert.match(failed[1]!, /^wrong model/);
  assert.match(failed[2]!, /^image hash mismatch/);
  assert.equal(w.boots.map((b) => b.version), ['0.1.0'], 'never restarted');
  assert.equal(bootloader(w.ota), { slot: FACTORY_SLOT, size: 0, trial: false });
  assert.equal(w.firmwareEvents().map((e) => e.state), ['failed', 'failed', 'failed']);
});

test('a slot that refuses the bytes (ESP-IDF: not an app image, a flash error) fails the update with the reason; v1 runs on', () => {
  const w = new OtaWorld();
  w.pair();
  w.refuseWrite = (offset) => (offset >= 4096 ? new Error('esp_ota_write: ESP_ERR_OTA_VALIDATE_FAILED') : undefined);
  const image = testImage('0.2.0', 20_000);
  w.offer(image, release(image, { version: '0.2.0' }));
  for (let i = 0; i < 20; i++) { w.take(); w.run(500); }
  const last = w.gw.fwStatus[w.gw.fwStatus.length - 1];
  assert.is(last.state, 'failed');
  assert.is(last.reason, 'the update slot refused the bytes at offset 4096: esp_ota_write: ESP_ERR_OTA_VALIDATE_FAILED');
  assert.equal(w.boots.map((b) => b.version), ['0.1.0'], 'no restart');
  assert.is(w.device.updates!.state, 'idle');
  for (let i = 0; i < 5; i++) { w.take(); w.run(1000); }
  assert.equal(w.storedValues(), w.taken, 'readings flowed throughout');
});

test.run();
