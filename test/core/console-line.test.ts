// The console's line discipline and framing (CONSOLE.md "Framing"): what a technician's terminal or a
// script may send, and the shape of every reply.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { utf8Encode } from '../../firmware/core/bytes.js';
import { IDLE_DISCARD_MS, MAX_LINE_BYTES, PROMPT } from '../../firmware/core/console/console.js';
import { consoleWorld, jsonLines, lines } from './support/console-world.js';

const bytes = (s: string) => Array.from(utf8Encode(s));

test('start shows the prompt; a command ends with OK and the prompt again; lines end with \\r\\n', () => {
  const w = consoleWorld();
  w.console.start();
  assert.is(w.port.take(), '\r\n' + PROMPT);
  const out = w.say('id');
  assert.ok(out.endsWith('OK\r\n' + PROMPT), out);
  assert.equal(lines(out), ['id    qrstuvwxyz234567', 'code  ABCDE-FGH23', 'OK']);
});

test('\\n, \\r and \\r\\n all end a line, and \\r\\n counts once', () => {
  const w = consoleWorld();
  for (const end of ['\n', '\r', '\r\n']) {
    const out = w.say('buffer', end);
    assert.is(out.split('OK\r\n').length, 2, JSON.stringify(end));
  }
  // A CR at the end of one chunk and its LF at the start of the next are still one line end.
  assert.ok(w.bytes(bytes('id\r')).endsWith('OK\r\n' + PROMPT));
  assert.is(w.bytes([0x0a]), '');
  // Two empty lines: two prompts, no reply.
  assert.is(w.bytes(bytes('\n\n')), PROMPT + PROMPT);
});

test('a command may arrive one byte at a time, split anywhere', () => {
  const w = consoleWorld();
  w.port.take();
  let out = '';
  for (const b of bytes('status\r\n')) out += w.bytes([b]);
  assert.ok(out.includes('firmware  9.9.9 (test-meter)'), out);
  assert.ok(out.endsWith('OK\r\n' + PROMPT));
});

test('a line of exactly 256 bytes is read; 257 bytes is refused with ERR usage and the rest discarded', () => {
  const w = consoleWorld();
  const exact = 'ask ' + 'x'.repeat(MAX_LINE_BYTES - 4);
  assert.is(utf8Encode(exact).length, 256);
  w.host.online = false; // so that ask answers at once
  assert.equal(lines(w.say(exact)), ['ERR offline no gateway link is up; `link` shows why']);
  const long = 'ask ' + 'x'.repeat(MAX_LINE_BYTES - 3);
  assert.equal(lines(w.say(long)), [`ERR usage line longer than ${MAX_LINE_BYTES} bytes`]);
  // Far longer, with a valid command hidden after byte 256: still one refusal, nothing run.
  const huge = 'x'.repeat(5000) + ' reboot';
  assert.equal(lines(w.say(huge)), [`ERR usage line longer than ${MAX_LINE_BYTES} bytes`]);
  assert.is(w.host.reboots, 0);
  // The next line is read normally.
  assert.equal(lines(w.say('id')).pop(), 'OK');
});

test('multi-byte characters count in bytes, and one that crosses the limit makes the line too long', () => {
  const w = consoleWorld();
  const line = 'config get ' + 'é'.repeat(123); // 11 + 246 = 257 bytes
  assert.is(utf8Encode(line).length, 257);
  assert.equal(lines(w.say(line)), [`ERR usage line longer than ${MAX_LINE_BYTES} bytes`]);
});

test('bytes that are not UTF-8 are refused: stray continuation, overlong, surrogate, > U+10FFFF, cut short', () => {
  const w = consoleWorld();
  const bad: number[][] = [
    [0x80], [0xc0, 0xaf], [0xc1, 0xbf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80],
    [0xf5, 0x80, 0x80, 0x80], [0xff], [0xfe], [0xc3], [0xe2, 0x82], [0xc3, 0x41],
  ];
  for (const seq of bad) {
    const out = w.bytes([...bytes('id '), ...seq, 0x0d, 0x0a]);
    assert.equal(lines(out), ['ERR usage line is not valid UTF-8'], seq.join(','));
  }
  // Well-formed multi-byte text is fine (here: an unknown command, named back in the reply).
  assert.equal(lines(w.say('zählerstand')), ['ERR notfound unknown command "zählerstand"; `help` lists the commands']);
  assert.equal(lines(w.say('config get 𝄞')), ['ERR usage a config key is 1-64 of a-z 0-9 _ . - (for example tz)']);
});

test('control characters refuse the line; tab is a space; backspace edits, across a multi-byte character', () => {
  const w = consoleWorld();
  assert.equal(lines(w.bytes([...bytes('id'), 0x1b, ...bytes('[A\r\n')])), ['ERR usage control characters in line']);
  assert.equal(lines(w.bytes([...bytes('i'), 0x00, ...bytes('d\r\n')])), ['ERR usage control characters in line']);
  // C1 controls are UTF-8 but still controls (U+009B is the 8-bit CSI); U+00A0 and up are text.
  assert.equal(lines(w.bytes([...bytes('config get a'), 0xc2, 0x9b, ...bytes('2J\r\n')])), ['ERR usage control characters in line']);
  assert.equal(lines(w.bytes([...bytes('config get a'), 0xc2, 0xa0, 0x0d])), ['ERR usage a config key is 1-64 of a-z 0-9 _ . - (for example tz)']);
  assert.equal(lines(w.bytes(bytes('readings\t2\r\n'))).pop(), 'OK');
  // "idx" + BS → "id"; "idé" + DEL → "id" (both bytes of é go).
  assert.equal(lines(w.bytes([...bytes('idx'), 0x08, 0x0d])).pop(), 'OK');
  assert.equal(lines(w.bytes([...bytes('idé'), 0x7f, 0x0d])).pop(), 'OK');
  // Backspacing over the control character clears the refusal; backspace on an empty line does nothing.
  assert.equal(lines(w.bytes([0x7f, 0x7f, ...bytes('id'), 0x1b, 0x7f, 0x0d])).pop(), 'OK');
});

test('Ctrl-C discards the partial line', () => {
  const w = consoleWorld();
  assert.is(w.bytes([...bytes('reb'), 0x03]), '^C\r\n' + PROMPT);
  assert.equal(lines(w.say('id')).pop(), 'OK');
  // And in the middle of an overlong line.
  w.bytes(bytes('x'.repeat(400)));
  w.bytes([0x03]);
  assert.equal(lines(w.say('id')).pop(), 'OK');
});

test('a partial line left for 30 s is discarded (a cable unplugged mid-line)', () => {
  const w = consoleWorld();
  w.bytes(bytes('rebo'));
  w.time.advance(IDLE_DISCARD_MS + 1);
  assert.equal(lines(w.say('id')).pop(), 'OK');
  // Within the idle time the line goes on.
  w.bytes(bytes('sta'));
  w.time.advance(5000);
  assert.ok(w.say('tus').includes('uptime'));
});

test('unknown commands and blank lines', () => {
  const w = consoleWorld();
  assert.equal(lines(w.say('frobnicate now')), ['ERR notfound unknown command "frobnicate"; `help` lists the commands']);
  assert.is(w.say('    '), PROMPT);
  assert.equal(lines(w.say('  ID  ')).pop(), 'OK', 'command names in any case, surrounded by spaces');
});

test('json on: one JSON object per line, no prompt, exactly one final line; json off switches back', () => {
  const w = consoleWorld();
  assert.is(w.say('json on'), '{"ok":true}\r\n');
  assert.equal(jsonLines(w.say('id')), [
    { data: { id: 'qrstuvwxyz234567', code: 'ABCDE-FGH23', model: 'test-meter', firmware: '9.9.9' } }, { ok: true },
  ]);
  assert.equal(jsonLines(w.say('nope')), [{ ok: false, code: 'notfound', message: 'unknown command "nope"; `help` lists the commands' }]);
  assert.equal(jsonLines(w.bytes([0xff, 0x0a])), [{ ok: false, code: 'usage', message: 'line is not valid UTF-8' }]);
  assert.is(w.say(''), '', 'a blank line gets nothing in json mode');
  assert.is(w.bytes([0x03]), '', 'nor does Ctrl-C');
  assert.is(w.say('json off'), 'OK\r\n' + PROMPT);
  assert.equal(lines(w.say('json maybe')), ['ERR usage json on|off']);
});

test('every reply line in json mode is one JSON object, whatever the command', () => {
  const w = consoleWorld();
  w.say('json on');
  for (const cmd of ['help', 'id', 'status', 'readings', 'buffer', 'guests', 'link', 'log', 'config get tz', 'relay 1 on', 'auth 1', 'x']) {
    const out = jsonLines(w.say(cmd));
    const finals = out.filter((o) => 'ok' in o);
    assert.is(finals.length, 1, cmd);
    assert.is(out[out.length - 1], finals[0], `${cmd}: the final line is last`);
    for (const o of out.slice(0, -1)) assert.ok('data' in o || 'confirm' in o || 'chunk' in o, cmd);
  }
});

test.run();
