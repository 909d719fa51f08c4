// The WASI subset (GUESTS.md "WASI"): what validation accepts and refuses (any other WASI function by
// name), one-shot jobs against ticked guests, and the functions themselves over a guest memory:
// fd_write as the guest's log within its limits, the clocks, random_get, args/environ, proc_exit.
// Runs on Node and inside XS (no WebAssembly API involved).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateGuest } from '../../firmware/core/guests/validate.js';
import {
  Errno, GuestLog, LOG_LINES_PER_CALL, LOG_LINES_PER_JOB, LOG_SCAN_BYTES, nanosLE, wasiImports, WASI_IMPORTS, WASI_MODULE,
} from '../../firmware/core/guests/wasi.js';
import type { GuestInstance } from '../../firmware/core/ports.js';
import { GuestTrap, TrapKind } from '../../firmware/core/ports.js';
import { assemble, i32c, meteredGuest, T, trapOf } from './support/guests.js';
import { FLOOD_CHUNK, FLOOD_WRITES, wasiFlood, wasiProbes, wasiUnlisted } from './support/wasi-world-guests.js';
import { instrumentMetering } from '../../guests/tools/instrument.js';

const manifest = { name: 'wasi-guest', version: '1.0.0', period_s: 5, fuel_per_call: 100_000, memory_bytes: 4096, capabilities: [] };

function reason(bytes: Uint8Array): string {
  const r = validateGuest(bytes, manifest);
  if (r.ok) throw new Error('expected a refusal, but the module was accepted');
  return r.reason;
}

test('the subset is accepted and listed; a job exports _start, a ticked guest init and tick', () => {
  const probes = validateGuest(wasiProbes(), manifest);
  if (!probes.ok) throw new Error(probes.reason);
  assert.equal(probes.info.wasi.slice().sort(), Object.keys(WASI_IMPORTS).sort());
  assert.is(probes.info.job, false);
  const flood = validateGuest(wasiFlood(), manifest);
  if (!flood.ok) throw new Error(flood.reason);
  assert.is(flood.info.job, true);
  assert.equal(flood.info.wasi, ['fd_write']);
});

test('any other WASI function is refused at validation, by its name', () => {
  for (const name of ['fd_read', 'path_open', 'sock_accept', 'poll_oneoff', 'fd_seek', 'fd_close', 'sched_yield']) {
    assert.match(reason(wasiUnlisted(name)), new RegExp(`import wasi_snapshot_preview1\\.${name} is a WASI function gridlet does not provide; a guest may use fd_write, clock_time_get`));
  }
  const other = meteredGuest({ otherImports: [['wasi_unstable', 'fd_write', [T.i32, T.i32, T.i32, T.i32], [T.i32]]] });
  assert.match(reason(other), /from WASI module "wasi_unstable"; gridlet provides a subset of wasi_snapshot_preview1/);
  const wrong = meteredGuest({ otherImports: [[WASI_MODULE, 'fd_write', [T.i32, T.i32], [T.i32]]] });
  assert.match(reason(wrong), /fd_write has signature \(i32, i32\) -> \(i32\); WASI gives \(i32, i32, i32, i32\) -> \(i32\)/);
});

test('a job may not also be ticked, nor a command and a reactor at once', () => {
  const both = instrumentMetering(assemble({
    funcs: [{ code: [] }, { results: [T.i32], code: i32c(0) }],
    exports: [['memory', 2, 0], ['_start', 0, 0], ['init', 0, 1], ['tick', 0, 1]],
  })).wasm;
  assert.match(reason(both), /exports both "_start" and "init": a guest is either a one-shot job .* linked as a reactor/);
  const reactor = instrumentMetering(assemble({
    funcs: [{ code: [] }],
    exports: [['memory', 2, 0], ['_start', 0, 0], ['_initialize', 0, 0]],
  })).wasm;
  assert.match(reason(reactor), /exports both "_start" and "_initialize"/);
  const neither = instrumentMetering(assemble({ funcs: [{ code: [] }], exports: [['memory', 2, 0]] })).wasm;
  assert.match(reason(neither), /does not export "init"; .* \(or, as a one-shot job, _start \(\) -> \(\)\)/);
  const badStart = instrumentMetering(assemble({ funcs: [{ results: [T.i32], code: i32c(0) }], exports: [['memory', 2, 0], ['_start', 0, 0]] })).wasm;
  assert.match(reason(badStart), /export "_start" has signature \(\) -> \(i32\)/);
});

test('log lines: cut at 120 bytes, 4 a call (32 for a job), partial lines at the end of the call, 2048 bytes looked at', () => {
  const lines: string[] = [];
  const log = new GuestLog((bytes, fd) => {
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    lines.push(`${fd}:${s}`);
  });
  const bytes = (s: string) => {
    const b = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
    return b;
  };
  log.begin();
  log.write(1, bytes('one\ntw'));
  log.write(2, bytes('err\n'));
  log.write(1, bytes(`o\n${'z'.repeat(130)}\nlast`));
  log.end();
  assert.equal(lines, ['1:one', '2:err', '1:two', `1:${'z'.repeat(120)}`]);
  assert.is(log.droppedLines, 1, 'the fifth line (the partial "last") was over the limit');
  lines.length = 0;
  log.begin(true);
  for (let i = 0; i < 40; i++) log.write(1, bytes(`${i}\n`));
  log.end();
  assert.is(lines.length, LOG_LINES_PER_JOB);
  log.begin();
  assert.is(log.scan(5000), LOG_SCAN_BYTES);
  assert.is(log.scan(10), 0);
  assert.ok(LOG_LINES_PER_CALL < LOG_LINES_PER_JOB);
});

test('nanoseconds: unsigned 64-bit little-endian (modulo 2^64, as WASI has it), exact for whole milliseconds', () => {
  const read = (b: Uint8Array) => {
    let v = 0n;
    for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    return v;
  };
  for (const ms of [0, 1, 999, 4294967295, 4294967296, 1_700_000_000_123, 2 ** 52]) {
    assert.is(read(nanosLE(ms)), (BigInt(ms) * 1_000_000n) % (1n << 64n), String(ms));
  }
});

/** A guest memory the functions read and write through, capped like an engine's. */
function memoryInstance(cap: number): GuestInstance & { mem: Uint8Array } {
  const mem = new Uint8Array(cap);
  const check = (ptr: number, len: number, what: string) => {
    if (ptr < 0 || len < 0 || ptr + len > cap) throw new GuestTrap(TrapKind.memory, `${what} bytes ${ptr}..${ptr + len} is outside memory_bytes ${cap}`);
  };
  return {
    mem,
    fuelUsed: 0,
    call: () => 0,
    hasExport: () => true,
    readMemory(ptr, len) { check(ptr, len, 'reading'); return mem.slice(ptr, ptr + len); },
    writeMemory(ptr, b) { check(ptr, b.length, 'writing'); mem.set(b, ptr); },
    fuelLeft: () => 0,
    charge() {},
    dispose() {},
  };
}

function u32(mem: Uint8Array, at: number): number {
  return (mem[at] | (mem[at + 1] << 8) | (mem[at + 2] << 16) | (mem[at + 3] << 24)) >>> 0;
}

function setU32(mem: Uint8Array, at: number, v: number): void {
  mem[at] = v & 0xff;
  mem[at + 1] = (v >>> 8) & 0xff;
  mem[at + 2] = (v >>> 16) & 0xff;
  mem[at + 3] = (v >>> 24) & 0xff;
}

function host(cap = 4096, clock = { now: () => 1_700_000_000_250, monotonic: () => 42_000 }) {
  const instance = memoryInstance(cap);
  const lines: string[] = [];
  let exited: number | undefined;
  const out = new GuestLog((b, fd) => {
    let s = '';
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    lines.push(`${fd}:${s}`);
  });
  let seed = 7;
  const w = wasiImports({
    instance: () => instance, clock, out, exit: (code) => { exited = code; },
    random: { fill: (b) => { for (let i = 0; i < b.length; i++) b[i] = (seed = (seed * 31 + 7) & 0xff); } },
  });
  return { instance, lines, out, w, exited: () => exited };
}

test('fd_write: stdout and stderr become log lines, the count is written back, other descriptors are EBADF', () => {
  const h = host();
  const text = 'hello\nworld\n';
  for (let i = 0; i < text.length; i++) h.instance.mem[1000 + i] = text.charCodeAt(i);
  setU32(h.instance.mem, 16, 1000);
  setU32(h.instance.mem, 20, 6);
  setU32(h.instance.mem, 24, 1006);
  setU32(h.instance.mem, 28, 6);
  h.out.begin();
  assert.is(h.w.fd_write(1, 16, 2, 40), Errno.success);
  assert.is(u32(h.instance.mem, 40), 12);
  assert.is(h.w.fd_write(2, 16, 1, 40), Errno.success);
  assert.is(h.w.fd_write(3, 16, 1, 40), Errno.badf);
  assert.is(h.w.fd_write(0, 16, 1, 40), Errno.badf);
  assert.is(h.w.fd_write(1, 16, 65, 40), Errno.inval, 'more iovecs than a guest may pass');
  h.out.end();
  assert.equal(h.lines, ['1:hello', '1:world', '2:hello']);
  // A buffer reaching past memory_bytes is a memory breach, as any access is.
  setU32(h.instance.mem, 16, 4000);
  setU32(h.instance.mem, 20, 200);
  assert.is(trapOf(() => h.w.fd_write(1, 16, 1, 40)).kind, TrapKind.memory);
  assert.is(trapOf(() => h.w.fd_write(1, 4092, 1, 40)).kind, TrapKind.memory, 'the iovec itself past the cap');
});

test('fd_write of 1 MiB: the log takes its lines and 2 KiB; the rest is counted, never read', () => {
  const h = host();
  let reads = 0;
  const read = h.instance.readMemory;
  h.instance.readMemory = (ptr, len) => { reads += len; return read(ptr, len); };
  for (let i = 0; i < FLOOD_CHUNK; i++) h.instance.mem[1024 + i] = i % 64 === 63 ? 10 : 120;
  setU32(h.instance.mem, 16, 1024);
  setU32(h.instance.mem, 20, FLOOD_CHUNK);
  h.out.begin();
  for (let i = 0; i < FLOOD_WRITES; i++) assert.is(h.w.fd_write(1, 16, 1, 24), Errno.success);
  h.out.end();
  assert.is(u32(h.instance.mem, 24), FLOOD_CHUNK, 'every write is reported as written: the guest does not retry');
  assert.is(h.lines.length, LOG_LINES_PER_CALL);
  assert.is(h.out.droppedBytes, FLOOD_CHUNK * FLOOD_WRITES - LOG_SCAN_BYTES);
  assert.ok(reads < LOG_SCAN_BYTES + FLOOD_WRITES * 8 + 64, `read ${reads} bytes of guest memory for 1 MiB written`);
});

test('clocks, random, args and environ, proc_exit', () => {
  const h = host();
  assert.is(h.w.clock_time_get(0, 1000n as unknown as number, 64), Errno.success);
  assert.equal([...h.instance.mem.slice(64, 72)], [...nanosLE(1_700_000_000_250)]);
  assert.is(h.w.clock_time_get(1, 0, 64), Errno.success);
  assert.equal([...h.instance.mem.slice(64, 72)], [...nanosLE(42_000)]);
  assert.is(h.w.clock_time_get(2, 0, 64), Errno.inval, 'no process CPU clock');
  assert.is(trapOf(() => h.w.clock_time_get(0, 0, 4090)).kind, TrapKind.memory);
  const noClock = host(4096, { now: () => NaN, monotonic: () => 1 });
  assert.is(noClock.w.clock_time_get(0, 0, 64), Errno.notsup, 'before the meter has a clock');
  assert.is(h.w.random_get(128, 16), Errno.success);
  assert.ok(h.instance.mem.slice(128, 144).some((b) => b !== 0));
  assert.is(h.w.random_get(128, 257), Errno.inval);
  const noRandom = wasiImports({ instance: () => h.instance, clock: { now: () => 0, monotonic: () => 0 }, random: undefined, out: h.out, exit() {} });
  assert.is(noRandom.random_get(128, 4), Errno.nosys);
  h.instance.mem.fill(0xff, 200, 216);
  assert.equal([h.w.args_sizes_get(200, 204), h.w.environ_sizes_get(208, 212), h.w.args_get(0, 0), h.w.environ_get(0, 0)], [0, 0, 0, 0]);
  assert.equal([u32(h.instance.mem, 200), u32(h.instance.mem, 204), u32(h.instance.mem, 208), u32(h.instance.mem, 212)], [0, 0, 0, 0]);
  const t = trapOf(() => h.w.proc_exit(3));
  assert.is(t.message, 'proc_exit(3)');
  assert.is(h.exited(), 3);
});

test.run();
