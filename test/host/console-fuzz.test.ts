// Fuzzing the technician console (CONSOLE.md: "nothing the technician types can crash the agent"):
// 150,000 random lines (over 100,000 of them complete, checked lines) and byte runs from a seed — commands with random arguments, wrong PINs, binary
// garbage, invalid UTF-8, overlong lines, control characters, Ctrl-C, backspaces, json on/off, lines cut
// off by an unplugged cable — in random chunks, with the clock jumping so that lockouts come and go.
// Invariants:
// - no exception escapes the console, and no command fails with `ERR internal` (a caught exception);
// - every complete line gets exactly one final line, in the session's mode;
// - without the PIN no tech command is ever carried out: each gets `ERR auth` or `ERR locked`, and the
//   host sees no tech action at all; with the PIN (the control at the end) they do run;
// - everything the console writes is UTF-8.
// A failure names its seed; replay with CONSOLE_FUZZ_SEED=<seed> node scripts/test.js unit console-fuzz.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { utf8Encode } from '../../firmware/core/bytes.js';
import { LOCKOUT_MS } from '../../firmware/core/console/tech-auth.js';
import { consoleWorld, TEST_PIN } from '../core/support/console-world.js';
import { SeededRandom } from '../core/support/sim-world.js';

const SEED = Number(process.env.CONSOLE_FUZZ_SEED ?? 20261122);
const LINES = Number(process.env.CONSOLE_FUZZ_LINES ?? 150_000);

const TECH = [
  'guest stop peak-guard', 'guest start peak-guard', 'relay 1 on', 'relay 1 off', 'relay lock 1 on', 'relay lock 1 release',
  'pair pin abcdefghijklmnop', 'pair pin off', 'unpair', 'confirm unpair', 'config set tz UTC0', 'config set a b c', 'reboot',
  'relay', 'guest', 'pair', 'RELAY 1 ON', 'Reboot', '  reboot  ', 'relay\t1\ton',
];
const OPEN = ['help', 'id', 'status', 'readings', 'readings 3', 'buffer', 'guests', 'link', 'log', 'log 2', 'config get tz',
  'config get console.pin_hash', 'ask what is my tariff', 'json on', 'json off'];
const WORDS = ['relay', 'lock', 'on', 'off', 'auth', 'pin', 'guest', 'config', 'set', 'get', '1', '0', '-1', '999999999',
  'release', 'json', 'confirm', 'unpair', 'reboot', 'ask', '\u00e9', '\u{1f600}', '%s', '$(rm)', '"', '{}'];

class Fuzz {
  r: SeededRandom;
  constructor(seed: number) {
    this.r = new SeededRandom(seed);
  }
  int(n: number): number {
    return this.r.next() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  bytes(n: number, from = 0, to = 256): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(from + this.int(to - from));
    return out;
  }
  /** A PIN that is never the right one. */
  wrongPin(): string {
    for (;;) {
      const len = this.int(12);
      let p = '';
      for (let i = 0; i < len; i++) p += String.fromCharCode(0x21 + this.int(94));
      if (p !== TEST_PIN) return p;
    }
  }
  utf8Text(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) {
      const k = this.int(4);
      const cp = k === 0 ? 0x20 + this.int(0x5f) : k === 1 ? 0xa0 + this.int(0x700) : k === 2 ? 0x800 + this.int(0xd000) : 0x10000 + this.int(0x10000);
      s += String.fromCodePoint(cp);
    }
    return s;
  }
}

interface Item {
  bytes: number[];
  /** Complete lines in it whose reply is checked (0 for raw noise). */
  checked: boolean;
  tech: boolean;
  /** Blank: no final line expected. */
  blank: boolean;
  /** Ends mid-line (the cable was pulled). */
  cut?: boolean;
}

function item(f: Fuzz): Item {
  const line = (s: string, tech = false) => ({ bytes: [...utf8Encode(s), ...(f.int(3) === 0 ? [0x0a] : f.int(2) ? [0x0d, 0x0a] : [0x0d])], checked: true, tech, blank: s.trim() === '' });
  const k = f.int(100);
  if (k < 25) return line(f.pick(TECH), true);
  if (k < 37) return line(f.pick(OPEN));
  if (k < 47) return line(`auth ${f.wrongPin()}`);
  if (k < 55) {
    const n = 1 + f.int(6);
    const words: string[] = [];
    for (let i = 0; i < n; i++) words.push(f.pick(WORDS));
    return line(words.join(' '));
  }
  if (k < 62) return line(f.utf8Text(1 + f.int(60)));
  if (k < 67) return line('x'.repeat(257 + f.int(800)));
  // Noise: terminated, so the next line starts clean (or cut off and left for the idle time).
  if (k < 77) return { bytes: [...f.bytes(1 + f.int(300)), 0x0a], checked: false, tech: false, blank: false };
  if (k < 82) return { bytes: [...f.bytes(1 + f.int(40), 0, 0x20), 0x0a], checked: false, tech: false, blank: false };
  if (k < 86) return { bytes: [0x1b, 0x5b, 0x41 + f.int(4), ...utf8Encode(f.pick(TECH)), 0x0d], checked: false, tech: false, blank: false };
  if (k < 90) return { bytes: [...utf8Encode(f.pick(TECH).slice(0, 1 + f.int(5))), 0x03], checked: false, tech: false, blank: false };
  if (k < 94) return { bytes: [...utf8Encode(f.pick(TECH)), ...f.bytes(1 + f.int(4), 0x7f, 0x80), 0x0a], checked: false, tech: false, blank: false };
  if (k < 97) return { bytes: [...f.bytes(1 + f.int(5), 0x80, 0x100), 0x0a], checked: false, tech: false, blank: false };
  return { bytes: [...utf8Encode(f.pick(TECH).slice(0, 1 + f.int(8)))], checked: false, tech: false, blank: false, cut: true };
}

/** Final lines in either mode (a line may switch the mode: `json on` is answered in json). */
function finals(out: string): string[] {
  return out.split('\r\n')
    .map((l) => l.replace(/^(gridlet> )+/, ''))
    .filter((l) => l === 'OK' || l.startsWith('ERR ') || l.startsWith('{"ok":'));
}

/** A caught exception shows as `ERR internal`; the only expected one relays a gateway's failed answer. */
function internalError(fin: string[]): string | undefined {
  return fin.find((l) => (l.startsWith('ERR internal') || l.includes('"code":"internal"')) && !l.includes('the gateway could not answer'));
}

test(`${LINES.toLocaleString('en')} random lines and byte runs, seed ${SEED}: no crash, framing kept, no tech command without the PIN`, () => {
  const f = new Fuzz(SEED);
  const w = consoleWorld();
  w.host.relays.set(1, { on: false, lock: '' });
  w.host.guestList.push({ name: 'peak-guard', cid: 'b', state: 'running', faults: 0, fuelUsed: 0, fuelPerCall: 1 });
  w.host.config.set('tz', 'UTC0');
  const before = w.host.techActions();
  let lines = 0;
  let bytes = 0;
  const seen = { techRefused: 0, locked: 0, usage: 0, ok: 0, noise: 0 };
  for (let i = 0; i < LINES; i++) {
    const it = item(f);
    const raw = new Uint8Array(it.bytes);
    bytes += raw.length;
    let out = '';
    // In random chunks, as a UART delivers them.
    for (let o = 0; o < raw.length;) {
      const n = 1 + f.int(64);
      try {
        w.port.send(raw.subarray(o, o + n));
      } catch (e) {
        assert.unreachable(`an exception escaped the console at line ${i} (seed ${SEED}): ${(e as Error).message}`);
      }
      o += n;
    }
    try {
      out = w.port.take();
    } catch (e) {
      assert.unreachable(`non-UTF-8 output at line ${i} (seed ${SEED})`);
    }
    // An ask gets an answer at once (with control characters in it), so the next line is not busy.
    const pending = w.host.asks.filter((a) => !a.cancelled && !(a as { done?: boolean }).done);
    for (const a of pending) {
      a.sink.chunk(`answer \x1b[2J${i}\x07\n`);
      a.sink.end(f.int(4) === 0 ? 'model unavailable' : undefined);
      (a as { done?: boolean }).done = true;
      const more = w.port.take();
      assert.not.ok(more.includes('\x1b'), 'control characters from an answer reached the terminal');
      out += more;
    }
    const fin = finals(out);
    assert.is(internalError(fin), undefined, `line ${i} (seed ${SEED}): ${JSON.stringify(out)}`);
    if (it.checked) {
      lines++;
      if (it.blank) assert.is(fin.length, 0);
      else assert.is(fin.length, 1, `line ${i} (seed ${SEED}) got ${fin.length} final lines: ${JSON.stringify(out)}`);
      if (it.tech) {
        assert.ok(/^ERR (auth|locked) |^\{"ok":false,"code":"(auth|locked)"/.test(fin[0]), `tech line ${i} answered ${fin[0]} (seed ${SEED})`);
        seen.techRefused++;
      }
    } else seen.noise++;
    for (const l of fin) {
      if (l.includes('locked')) seen.locked++;
      if (l.includes('usage')) seen.usage++;
      if (l === 'OK' || l === '{"ok":true}') seen.ok++;
    }
    // Time moves: mostly a little, sometimes past the idle discard or a whole lockout.
    const jump = f.int(1000);
    w.time.advance(jump < 980 ? f.int(2000) : jump < 995 ? 31_000 : LOCKOUT_MS);
    if (it.cut) w.time.advance(31_000); // a line cut off by an unplugged cable, plugged back later
  }
  assert.is(w.host.techActions(), before, 'no tech command took effect without the PIN');
  assert.ok(lines >= LINES * 0.6, `lines checked: ${lines}`);
  assert.ok(seen.techRefused > LINES / 6, `tech lines: ${seen.techRefused}`);
  assert.ok(w.host.events.length > 10, `lockouts: ${w.host.events.length}`);
  assert.ok(seen.usage > 1000 && seen.ok > 1000, JSON.stringify(seen));
  // The control: with the PIN, tech commands do run on this same console.
  w.time.advance(LOCKOUT_MS);
  w.port.send(utf8Encode('\x03json off\r\n'));
  w.port.take();
  assert.ok(w.say(`auth ${TEST_PIN}`).includes('OK'));
  assert.ok(w.say('reboot').includes('OK'));
  assert.is(w.host.reboots, 1);
  console.log(`console fuzz: ${LINES} items (${lines} checked lines), ${(bytes / 1e6).toFixed(1)} MB, ` +
    `${seen.techRefused} tech commands refused, ${w.host.events.length} lockouts, seed ${SEED}`);
});

test.run();
