// Technician auth (CONSOLE.md `auth`): the PIN hash format, the 10-minute unlock, the lockout after 5
// wrong PINs, and that the count and the lockout survive a reboot.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromHex, toHex, utf8Decode, utf8Encode } from '../../firmware/core/bytes.js';
import { pbkdf2Sha256, useRandom } from '../../firmware/core/crypto.js';
import {
  checkPin, DEFAULT_PIN_ITERATIONS, FACTORY_PIN_KEY, makePinHash, newFactoryPin, parsePinHash, provisionFactoryPin,
} from '../../firmware/core/console/pin.js';
import { AUTH_STATE_KEY, LOCKOUT_MS, UNLOCK_MS } from '../../firmware/core/console/tech-auth.js';
import { consoleWorld, FakeHost, GATEWAY_ID, jsonLines, lines, TEST_PIN } from './support/console-world.js';
import { MemoryKV, SeededRandom, SimTime } from './support/sim-world.js';

const SALT = fromHex('000102030405060708090a0b0c0d0e0f');

test('PBKDF2-HMAC-SHA256 matches RFC 7914 §11', () => {
  const dk = pbkdf2Sha256(utf8Encode('passwd'), utf8Encode('salt'), 1, 64);
  assert.is(toHex(dk), '55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783');
});

test('the stored PIN format: pbkdf2-sha256$<iterations>$<salt hex>$<key hex>, default 1000 iterations', () => {
  const h = makePinHash('123456', DEFAULT_PIN_ITERATIONS, SALT);
  assert.is(h, 'pbkdf2-sha256$1000$000102030405060708090a0b0c0d0e0f$6e3849111be8d3070634220666e93c55dbfd75e923f34d35716805464c0a7eaf');
  assert.is(checkPin('123456', h), true);
  assert.is(checkPin('123457', h), false);
  assert.is(checkPin('12 456', h), false);
  const p = parsePinHash(h)!;
  assert.is(p.iterations, 1000);
  assert.is(p.salt.length, 16);
  for (const bad of ['', 'pbkdf2-sha256$1000$00$00', 'pbkdf2-sha1$1000$000102030405060708090a0b0c0d0e0f$' + '0'.repeat(64),
    'pbkdf2-sha256$0$000102030405060708090a0b0c0d0e0f$' + '0'.repeat(64),
    'pbkdf2-sha256$100001$000102030405060708090a0b0c0d0e0f$' + '0'.repeat(64),
    'pbkdf2-sha256$1000$000102030405060708090A0B0C0D0E0F$' + '0'.repeat(64),
    'pbkdf2-sha256$1000$000102030405060708090a0b0c0d0e0f$' + '0'.repeat(63)]) {
    assert.is(parsePinHash(bad), undefined, bad);
    assert.is(checkPin('123456', bad), undefined, bad);
  }
});

test('a factory PIN is 8 digits, stored once as a hash', () => {
  useRandom(new SeededRandom(5));
  const kv = new MemoryKV();
  const pin = provisionFactoryPin(kv)!;
  assert.match(pin, /^[0-9]{8}$/);
  assert.is(provisionFactoryPin(kv), undefined, 'a second boot keeps the first');
  const stored = utf8Decode(kv.get(FACTORY_PIN_KEY)!)!;
  assert.is(checkPin(pin, stored), true);
  assert.not.ok(stored.includes(pin));
  assert.is.not(newFactoryPin(), newFactoryPin());
});

test('auth unlocks tech commands for 10 minutes, then they need auth again', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('reboot')), ['ERR auth reboot is a technician command: `auth <pin>` first']);
  assert.equal(lines(w.say(`auth ${TEST_PIN}`)), ['technician commands unlocked for 10 min', 'OK']);
  w.time.advance(UNLOCK_MS - 1000);
  assert.equal(lines(w.say('config set a 1')).pop(), 'OK');
  w.time.advance(1000);
  assert.equal(lines(w.say('config set a 2')), ['ERR auth config is a technician command: `auth <pin>` first']);
  assert.is(w.host.config.get('a'), '1');
});

test('a wrong PIN says how many tries are left and ends an unlocked session', () => {
  const w = consoleWorld();
  w.say(`auth ${TEST_PIN}`);
  assert.equal(lines(w.say('auth 000000')), ['ERR auth wrong PIN; 4 more before a 15 min lockout']);
  assert.equal(lines(w.say('reboot')), ['ERR auth reboot is a technician command: `auth <pin>` first']);
  assert.equal(lines(w.say('auth 1')), ['ERR auth wrong PIN; 3 more before a 15 min lockout'], 'a malformed PIN counts too');
  assert.equal(lines(w.say('auth')), ['ERR usage auth <pin>'], 'a usage error does not');
  assert.equal(lines(w.say(`auth ${TEST_PIN}`)).pop(), 'OK');
  assert.equal(lines(w.say('auth 000000')), ['ERR auth wrong PIN; 4 more before a 15 min lockout'], 'a right PIN resets the count');
});

test('5 wrong PINs lock the console for 15 minutes, record console-lockout, and the right PIN does not help', () => {
  const w = consoleWorld();
  for (let i = 0; i < 4; i++) w.say('auth 999999');
  assert.equal(lines(w.say('auth 999999')), ['ERR locked wrong PIN; console locked for 15 min']);
  assert.equal(w.host.events.map((e) => e.kind), ['console-lockout']);
  assert.equal(lines(w.say(`auth ${TEST_PIN}`)), ['ERR locked console locked for 15 min after 5 wrong PINs']);
  assert.equal(lines(w.say('id')), ['ERR locked console locked for 15 min after 5 wrong PINs']);
  assert.equal(lines(w.say('help')).pop(), 'OK', 'help still answers');
  assert.is(w.say('json on'), '{"ok":true}\r\n', 'and so does json');
  assert.equal(jsonLines(w.say('status')), [{ ok: false, code: 'locked', message: 'console locked for 15 min after 5 wrong PINs' }]);
  w.say('json off');
  w.time.advance(LOCKOUT_MS - 60_000);
  assert.equal(lines(w.say(`auth ${TEST_PIN}`)), ['ERR locked console locked for 60 s after 5 wrong PINs']);
  w.time.advance(60_000);
  assert.equal(lines(w.say(`auth ${TEST_PIN}`)).pop(), 'OK', 'the lockout ends after 15 minutes');
  assert.is(w.host.events.length, 1);
});

test('the failed count survives a reboot', () => {
  const w = consoleWorld();
  for (let i = 0; i < 3; i++) w.say('auth 999999');
  w.reboot();
  assert.equal(lines(w.say('auth 999999')), ['ERR auth wrong PIN; 1 more before a 15 min lockout']);
  w.reboot();
  assert.equal(lines(w.say('auth 999999')), ['ERR locked wrong PIN; console locked for 15 min']);
});

test('an attempt counts before its PIN is checked: power cut during the check, it is still a wrong one', () => {
  // The PIN check (PBKDF2) takes a while on a meter; what KeyValue holds when it starts is what a power
  // cut at that moment leaves. The host hands the hash over only as the check starts, and keeps a copy
  // of KeyValue then.
  const kv = new MemoryKV();
  const host = new FakeHost();
  const hash = host.pinHash!;
  let atCheck: MemoryKV | undefined;
  host.pinRecord = () => ({
    factory: false,
    get hash() {
      atCheck = new MemoryKV();
      for (const [k, v] of kv.map) atCheck.set(k, v);
      return hash;
    },
  });
  const w = consoleWorld({ kv, host });
  for (let i = 0; i < 3; i++) w.say('auth 999999');
  w.say('auth 999998');
  // Power is cut while the fourth wrong PIN is being checked: after the reboot it has counted.
  const cut = consoleWorld({ kv: atCheck!, host: new FakeHost() });
  assert.equal(lines(cut.say('auth 999999')), ['ERR locked wrong PIN; console locked for 15 min']);
  // Cut during the fifth: the console is locked when it comes back.
  w.say('auth 999997');
  const locked = consoleWorld({ kv: atCheck!, host: new FakeHost(), time: new SimTime(0, false) });
  assert.equal(lines(locked.say('id')), ['ERR locked console locked for 15 min after 5 wrong PINs']);
  // A right PIN checked to the end clears what was counted for it.
  const again = consoleWorld({ host: new FakeHost() });
  again.say('auth 999999');
  assert.equal(lines(again.say(`auth ${TEST_PIN}`)).pop(), 'OK');
  assert.is(again.kv.get(AUTH_STATE_KEY)![1], 0);
});

test('a lockout survives a reboot: the rest of it by the wall clock, or all of it without one', () => {
  const kv = new MemoryKV();
  const host = new FakeHost();
  const w = consoleWorld({ kv, host });
  for (let i = 0; i < 5; i++) w.say('auth 999999');
  w.time.advance(5 * 60_000);
  // Reboot with the wall clock running on: 10 minutes left.
  const after = consoleWorld({ kv, host, time: new SimTime(1_700_000_000_000 + 5 * 60_000) });
  assert.equal(lines(after.say('id')), ['ERR locked console locked for 10 min after 5 wrong PINs']);
  // Reboot with no valid clock: a whole lockout again (a power cycle never shortens one).
  const noClock = consoleWorld({ kv, host, time: new SimTime(0, false) });
  assert.equal(lines(noClock.say('id')), ['ERR locked console locked for 15 min after 5 wrong PINs']);
  noClock.time.advance(LOCKOUT_MS);
  assert.equal(lines(noClock.say(`auth ${TEST_PIN}`)).pop(), 'OK');
  // Reboot long after the lockout ended: not locked, a fresh count.
  const later = consoleWorld({ kv: new MemoryKV(), host, time: new SimTime() });
  for (let i = 0; i < 5; i++) later.say('auth 999999');
  const much = consoleWorld({ kv: later.kv, host, time: new SimTime(1_700_000_000_000 + LOCKOUT_MS + 1) });
  assert.equal(lines(much.say('auth 999999')), ['ERR auth wrong PIN; 4 more before a 15 min lockout']);
  assert.is(much.kv.get(AUTH_STATE_KEY)![1], 1);
});

test('no PIN set on a paired meter: auth explains who sets it, and every attempt counts toward the lockout', () => {
  const host = new FakeHost();
  host.pinHash = undefined;
  const w = consoleWorld({ host });
  assert.equal(lines(w.say('auth 123456')), ['ERR auth no technician PIN is set on this meter; the gateway sets console.pin_hash (4 more tries before a 15 min lockout)']);
  host.pinHash = 'pbkdf2-sha256$garbage';
  assert.equal(lines(w.say('auth 123456')), ['ERR auth the stored PIN hash is malformed; the gateway must set console.pin_hash again (3 more tries before a 15 min lockout)']);
  w.say('auth 1');
  w.say('auth 2');
  assert.equal(lines(w.say('auth 3')), ['ERR locked wrong PIN; console locked for 15 min']);
  assert.is(host.events.length, 1);
});

test('the factory PIN works on an unpaired meter and says so', () => {
  useRandom(new SeededRandom(3));
  const host = new FakeHost();
  host.paired = false;
  host.pinHash = undefined;
  host.factoryHash = makePinHash('13572468', 10);
  const w = consoleWorld({ host });
  assert.equal(lines(w.say('auth 13572468')), ['technician commands unlocked for 10 min (factory PIN)', 'OK']);
  assert.equal(lines(w.say(`pair pin ${GATEWAY_ID}`)).pop(), 'OK');
});

test.run();
