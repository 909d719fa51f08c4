// Every command of CONSOLE.md, as a technician sees it (text) and as a script sees it (json).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RelayOutcome } from '../../firmware/core/console/console-host.js';
import { LinkState } from '../../firmware/core/ports.js';
import { consoleWorld, GATEWAY_ID, jsonLines, lines, TEST_PIN } from './support/console-world.js';

function authed() {
  const w = consoleWorld();
  assert.equal(lines(w.say(`auth ${TEST_PIN}`)), ['technician commands unlocked for 10 min', 'OK']);
  return w;
}

test('help lists every command of CONSOLE.md, marking the tech ones', () => {
  const w = consoleWorld();
  const out = lines(w.say('help'));
  assert.is(out.pop(), 'OK');
  const text = out.join('\n');
  for (const c of ['help', 'id', 'status', 'readings [n]', 'buffer', 'guests', 'guest stop <name>', 'guest start <name>',
    'relay <id> on|off', 'relay lock <id> on|off|release', 'link', 'pair pin <gatewayId>', 'unpair', 'confirm unpair',
    'config get <key>', 'config set <key> <value>', 'log [n]', 'ask <question>', 'auth <pin>', 'reboot', 'json on|off']) {
    assert.ok(text.includes(c), c);
  }
  assert.match(text, /reboot +restarts the meter \(tech\)/);
  assert.match(text, /^id +device id and pair code$/m);
  w.say('json on');
  const j = jsonLines(w.say('help'));
  assert.equal(j[0], { data: { command: 'help', summary: 'the command list', tech: false } });
  assert.ok(j.some((o) => (o.data as { command?: string; tech?: boolean })?.command === 'reboot' && (o.data as { tech: boolean }).tech));
});

test('status: firmware, uptime, gateway, link, records, heap, relays', () => {
  const w = consoleWorld();
  w.host.relays.set(1, { on: true, lock: '' });
  assert.equal(lines(w.say('status')), [
    'firmware  9.9.9 (test-meter)', 'uptime    42 s', `gateway   ${GATEWAY_ID} (paired)`, 'link      primary',
    'records   12 buffered, 0 dropped', 'heap      4096 bytes used', 'relay 1   on', 'OK',
  ]);
  w.host.paired = false;
  w.host.online = false;
  const out = lines(w.say('status'));
  assert.ok(out.includes('gateway   none (unpaired)'));
  assert.ok(out.includes('link      none up'));
  w.say('json on');
  assert.equal(jsonLines(w.say('status'))[0], {
    data: {
      firmware: '9.9.9', model: 'test-meter', uptime_s: 42, paired: false, gateway: '', link: '', buffered: 12, dropped: 0,
      heap_used: 4096, relays: [{ id: 1, on: true, lock: '' }],
    },
  });
});

test('readings [n]: default 5, bounded n, oldest first', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('readings')), ['(no readings yet)', 'OK']);
  for (let i = 1; i <= 8; i++) w.host.readingList.push({ seq: i, t: i === 1 ? 0 : 1_700_000_000 + i, channel: 3, value: 100 + i });
  const out = lines(w.say('readings'));
  assert.is(out.length, 6);
  assert.is(out[0], 'seq 4  2023-11-14T22:13:24Z  power-imported  104 W');
  assert.is(out[4], 'seq 8  2023-11-14T22:13:28Z  power-imported  108 W');
  assert.is(lines(w.say('readings 8'))[0], 'seq 1  no-clock  power-imported  101 W');
  for (const bad of ['readings 0', 'readings 65', 'readings x', 'readings 1 2', 'readings -1']) {
    assert.equal(lines(w.say(bad)), ['ERR usage readings [n], n from 1 to 64'], bad);
  }
  w.say('json on');
  assert.equal(jsonLines(w.say('readings 1')), [
    { data: { seq: 8, t: 1_700_000_008, channel: 3, name: 'power-imported', value: 108, unit: 'W' } }, { ok: true },
  ]);
});

test('buffer: capacity, used, buffered, oldest/newest/acked seq, dropped', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('buffer')), [
    'capacity  65536 bytes', 'used      1200 bytes', 'buffered  12 records', 'oldest    seq 90', 'newest    seq 101',
    'acked     seq 89', 'dropped   0 readings', 'OK',
  ]);
  w.say('json on');
  assert.equal(jsonLines(w.say('buffer'))[0], {
    data: { capacity_bytes: 65536, used_bytes: 1200, buffered: 12, oldest_seq: 90, newest_seq: 101, acked_seq: 89, dropped: 0 },
  });
});

test('guests lists name, cid, state, faults and fuel; guest stop/start need a technician', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('guests')), ['(no guests)', 'OK']);
  w.host.guestList.push({ name: 'peak-guard', cid: 'bafkreiabc', state: 'running', faults: 1, fuelUsed: 1234, fuelPerCall: 200000 });
  w.host.guestList.push({ name: 'evil\x1b[2J', cid: 'bafkreidef', state: 'quarantined', faults: 5, fuelUsed: 0, fuelPerCall: 1000 });
  assert.equal(lines(w.say('guests')), [
    'peak-guard  bafkreiabc  running  faults 1  fuel 1234/200000 per call',
    'evil[2J  bafkreidef  quarantined  faults 5  fuel 0/1000 per call',
    'OK',
  ]);
  assert.equal(lines(w.say('guest stop peak-guard')), ['ERR auth guest is a technician command: `auth <pin>` first']);
  assert.equal(w.host.guestActions, []);
  w.say(`auth ${TEST_PIN}`);
  assert.equal(lines(w.say('guest stop peak-guard')), ['guest peak-guard stopped', 'OK']);
  assert.equal(lines(w.say('guest start peak-guard')), ['guest peak-guard started', 'OK']);
  assert.equal(lines(w.say('guest stop nobody')), ['ERR notfound no guest named nobody; `guests` lists them']);
  assert.equal(lines(w.say('guest pause peak-guard')), ['ERR usage guest stop <name> | guest start <name>']);
  w.host.guestRefusal = 'relay 1 is held by guest other';
  assert.equal(lines(w.say('guest start peak-guard')), ['ERR busy guest peak-guard did not start: relay 1 is held by guest other']);
  assert.equal(w.host.guestActions, ['stop peak-guard', 'start peak-guard']);
});

test('relay: refused without auth; with it, applied through the interlocks and the technician lock', () => {
  const w = consoleWorld();
  w.host.relays.set(1, { on: false, lock: '' });
  w.host.relays.set(2, { on: true, lock: '', critical: true });
  for (const cmd of ['relay 1 on', 'relay lock 1 on', 'relay 1 off', 'relay']) {
    assert.equal(lines(w.say(cmd)), ['ERR auth relay is a technician command: `auth <pin>` first'], cmd);
  }
  assert.equal(w.host.relayActions, []);
  w.say(`auth ${TEST_PIN}`);
  assert.equal(lines(w.say('relay 1 on')), ['relay 1 on', 'OK']);
  w.host.interlock = { outcome: RelayOutcome.dwell, retryS: 42 };
  assert.equal(lines(w.say('relay 1 off')), ['ERR busy relay 1 refused by interlock: minimum dwell not over (allowed again in 42 s)']);
  w.host.interlock = { outcome: RelayOutcome.toggles };
  assert.equal(lines(w.say('relay 1 off')), ['ERR busy relay 1 refused by interlock: at most 6 toggles an hour']);
  assert.equal(lines(w.say('relay 2 off')), ['ERR locked relay 2 is a critical circuit and is never switched']);
  assert.equal(lines(w.say('relay 9 on')), ['ERR notfound no relay 9 on this meter']);
  w.host.interlock = { outcome: RelayOutcome.done };
  assert.equal(lines(w.say('relay lock 1 off')), ['relay 1 locked off', 'OK']);
  assert.equal(lines(w.say('relay 1 on')), ['ERR locked relay 1 is held by the technician lock; `relay lock 1 release` first']);
  assert.equal(lines(w.say('relay lock 1 release')), ['relay 1 released to its guest', 'OK']);
  assert.equal(lines(w.say('relay 1 on')), ['relay 1 on', 'OK']);
  for (const bad of ['relay 1', 'relay 1 toggle', 'relay x on', 'relay lock 1 maybe', 'relay lock on 1', 'relay 1 on now']) {
    assert.match(lines(w.say(bad))[0], /^ERR usage relay/, bad);
  }
  assert.equal(w.host.relayActions, ['set 1 on', 'lock 1 off', 'lock 1 release', 'set 1 on']);
  w.say('json on');
  assert.equal(jsonLines(w.say('relay lock 1 on')), [{ data: { id: 1, lock: 'on' } }, { ok: true }]);
  assert.equal(jsonLines(w.say('relay 2 on')), [{ ok: false, code: 'locked', message: 'relay 2 is a critical circuit and is never switched' }]);
});

test('link: each uplink with its state and last error', () => {
  const w = consoleWorld();
  w.host.linkList = [
    { name: 'link1', state: LinkState.down, lastError: 'connect ECONNREFUSED\x1b]0;x\x07', active: false, drops: 3 },
    { name: 'link2', state: LinkState.up, lastError: '', active: true, drops: 0 },
  ];
  assert.equal(lines(w.say('link')), ['link1  down  last error: connect ECONNREFUSED]0;x', 'link2  up  (carrying frames)', 'OK']);
  w.say('json on');
  assert.equal(jsonLines(w.say('link')), [
    { data: { name: 'link1', state: 'down', active: false, last_error: 'connect ECONNREFUSED]0;x', drops: 3 } },
    { data: { name: 'link2', state: 'up', active: true, last_error: '', drops: 0 } },
    { ok: true },
  ]);
});

test('pair pin <gatewayId> needs a technician and a well-formed gateway id', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say(`pair pin ${GATEWAY_ID}`)), ['ERR auth pair is a technician command: `auth <pin>` first']);
  assert.is(w.host.pinned, '');
  w.say(`auth ${TEST_PIN}`);
  assert.equal(lines(w.say(`pair pin ${GATEWAY_ID.toUpperCase()}`)), [`gateway ${GATEWAY_ID} pinned: only it can pair this meter`, 'OK']);
  assert.is(w.host.pinned, GATEWAY_ID);
  assert.match(lines(w.say('pair pin 1234'))[0], /^ERR usage "1234" is not a gateway id/);
  assert.equal(lines(w.say('pair pin off')).pop(), 'OK');
  assert.is(w.host.pinned, '');
  assert.equal(lines(w.say('pair')), ['ERR usage pair pin <gatewayId> | pair pin off']);
});

test('unpair asks for `confirm unpair` as the very next command', () => {
  const w = authed();
  assert.equal(lines(w.say('unpair')), [`type \`confirm unpair\` to forget gateway ${GATEWAY_ID} and return to pairing`, 'OK']);
  assert.is(w.host.unpaired, 0);
  w.say('id'); // anything else in between forgets the request
  assert.equal(lines(w.say('confirm unpair')), ['ERR usage nothing to confirm: `unpair` first, then `confirm unpair` as the next command']);
  w.say('json on');
  assert.equal(jsonLines(w.say('unpair')), [{ confirm: 'unpair' }, { ok: true }]);
  assert.equal(jsonLines(w.say('confirm unpair')), [{ data: { paired: false } }, { ok: true }]);
  assert.is(w.host.unpaired, 1);
  assert.equal(jsonLines(w.say('unpair')), [{ ok: false, code: 'notfound', message: 'this meter is not paired' }]);
  w.host.paired = true;
  w.host.unpairAvailable = false;
  w.say('unpair');
  assert.equal(jsonLines(w.say('confirm unpair')), [{ ok: false, code: 'internal', message: 'unpair is not available in this firmware build' }]);
});

test('config get is open, config set needs a technician; the PIN hash is never shown nor set here', () => {
  const w = consoleWorld();
  w.host.config.set('tz', 'CET-1CEST,M3.5.0,M10.5.0/3');
  assert.equal(lines(w.say('config get tz')), ['tz = CET-1CEST,M3.5.0,M10.5.0/3', 'OK']);
  assert.equal(lines(w.say('config get nope')), ['ERR notfound config nope is not set']);
  assert.equal(lines(w.say('config get console.pin_hash')), ['console.pin_hash = (set, hidden)', 'OK']);
  assert.equal(lines(w.say('config set tz UTC0')), ['ERR auth config is a technician command: `auth <pin>` first']);
  w.say(`auth ${TEST_PIN}`);
  assert.equal(lines(w.say('config set site.name  Pump house 3 ')), ['site.name =  Pump house 3 ', 'OK']);
  assert.is(w.host.config.get('site.name'), ' Pump house 3 ');
  assert.equal(lines(w.say('config set console.pin_hash pbkdf2-sha256$1$00$00')), ['ERR usage console.pin_hash is set by the gateway, not on the console']);
  assert.equal(lines(w.say('config set Bad/Key 1')), ['ERR usage a config key is 1-64 of a-z 0-9 _ . - (for example tz)']);
  assert.equal(lines(w.say('config set tz')), ['ERR usage config set <key> <value>, a value of 1 to 200 characters']);
  assert.equal(lines(w.say('config get')), ['ERR usage config get <key> | config set <key> <value>']);
  w.host.config.set('motd', 'hi\x1b[31mred');
  assert.equal(lines(w.say('config get motd')), ['motd = hi[31mred', 'OK']);
});

test('log [n]: the last n lines, control characters removed', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('log')), ['(no log lines yet)', 'OK']);
  for (let i = 0; i < 12; i++) w.host.logList.push({ ms: 1500 + i, level: 'info', message: `line ${i}` });
  w.host.logList.push({ ms: 123456, level: 'warn', message: 'guest peak-guard: \x1b[2Jhi\x07' });
  const out = lines(w.say('log'));
  assert.is(out.length, 11);
  assert.is(out[9], '[   123.456] warn  guest peak-guard: [2Jhi');
  assert.is(lines(w.say('log 2'))[0], '[     1.511] info  line 11');
  assert.equal(lines(w.say('log 65')), ['ERR usage log [n], n from 1 to 64']);
});

test('ask streams the answer as it arrives and ends with OK', () => {
  const w = consoleWorld();
  assert.is(w.say('ask what is my tariff?'), '', 'nothing until the first chunk');
  const a = w.host.asks[0];
  assert.is(a.prompt, 'what is my tariff?');
  w.port.take();
  a.sink.chunk('Your tariff ');
  assert.is(w.port.take(), 'Your tariff ');
  a.sink.chunk('is \x1b[31mlow\x1b[0m.\nBye');
  assert.is(w.port.take(), 'is [31mlow[0m.\r\nBye');
  a.sink.end();
  assert.is(w.port.take(), '\r\nOK\r\ngridlet> ');
  a.sink.chunk('late');
  assert.is(w.port.take(), '', 'nothing after the end');
});

test('ask in json mode: chunk lines, then one final line; errors from the gateway', () => {
  const w = consoleWorld();
  w.say('json on');
  w.say('ask hi');
  const a = w.host.asks[0];
  a.sink.chunk('Hel');
  a.sink.chunk('lo\n');
  a.sink.end();
  assert.equal(jsonLines(w.port.take()), [{ chunk: 'Hel' }, { chunk: 'lo\n' }, { ok: true }]);
  w.say('ask hi');
  w.host.asks[1].sink.end('no offload backend configured');
  assert.equal(jsonLines(w.port.take()), [{ ok: false, code: 'internal', message: 'the gateway could not answer: no offload backend configured' }]);
});

test('ask: other commands are busy meanwhile; Ctrl-C stops it and cancels the job; silence times out', () => {
  const w = consoleWorld();
  w.say('ask one');
  assert.equal(lines(w.say('id')), ['ERR busy an answer is still streaming; Ctrl-C stops it']);
  assert.equal(lines(w.bytes([0x03])), ['ERR busy answer stopped (Ctrl-C)']);
  assert.ok(w.host.asks[0].cancelled);
  assert.equal(lines(w.say('id')).pop(), 'OK');
  w.say('ask two');
  w.host.asks[1].sink.chunk('part');
  w.time.advance(59_000);
  w.host.asks[1].sink.chunk('more');
  w.time.advance(59_000);
  assert.is(w.port.take(), 'partmore', 'each chunk restarts the wait');
  w.time.advance(2_000);
  assert.equal(lines(w.port.take()), ['', 'ERR offline no answer from the gateway within 60 s']);
  assert.ok(w.host.asks[1].cancelled);
});

test('ask: offline, unavailable, and usage', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('ask')), ['ERR usage ask <question>']);
  w.host.online = false;
  assert.equal(lines(w.say('ask hello')), ['ERR offline no gateway link is up; `link` shows why']);
  w.host.askAvailable = false;
  assert.equal(lines(w.say('ask hello')), ['ERR internal ask is not available in this firmware build']);
  assert.equal(lines(w.say('id')).pop(), 'OK', 'the console is not left busy');
});

test('reboot needs a technician and answers before the platform restarts', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('reboot')), ['ERR auth reboot is a technician command: `auth <pin>` first']);
  assert.is(w.host.reboots, 0);
  w.say(`auth ${TEST_PIN}`);
  assert.equal(lines(w.say('reboot')), ['rebooting', 'OK']);
  assert.is(w.host.reboots, 1);
  assert.equal(lines(w.say('reboot now')), ['ERR usage reboot takes no arguments']);
  w.host.rebootAvailable = false;
  assert.equal(lines(w.say('reboot')), ['ERR internal this platform cannot reboot from the console']);
});

test('commands that take no arguments say so', () => {
  const w = consoleWorld();
  for (const c of ['id', 'status', 'buffer', 'guests', 'link']) {
    assert.equal(lines(w.say(`${c} extra`)), [`ERR usage ${c} takes no arguments`], c);
  }
});

test.run();
