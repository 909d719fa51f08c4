// The WASI subset a guest may import (GUESTS.md "WASI"): module `wasi_snapshot_preview1`, answered by
// the agent itself as host functions, the same JavaScript on every engine (V8 on a host, wasm3 on the
// meter and wasm3 compiled to WebAssembly), so results, fuel and traps agree:
//   fd_write         stdout (1) and stderr (2) become the guest's log, line by line, within the log
//                    limits (120 bytes per line; 4 lines and 2048 bytes looked at per call, 32 lines
//                    and 8192 bytes for a one-shot job's run); any other descriptor is EBADF. The
//                    guest is told everything was written.
//   clock_time_get   realtime (0) from the meter's clock (ENOTSUP before it has one), monotonic (1);
//                    other clocks EINVAL
//   random_get       the platform's Random, at most 256 bytes per call (EINVAL beyond)
//   proc_exit        ends the call: a one-shot job's exit code
//   args_*, environ_* empty
// Everything else in WASI is refused when the module is checked, by name (validate.ts).
// Memory is read and written through the instance, so the memory cap holds: a pointer outside
// memory_bytes is a memory breach, as for the `log` import.

import type { Clock, GuestImport, GuestInstance, Random } from '../ports.js';
import { GuestTrap, TrapKind } from '../ports.js';
import type { FuncType } from './wasm.js';

export const WASI_MODULE = 'wasi_snapshot_preview1';

const I32 = 0x7f;
const I64 = 0x7e;

/** The WASI functions gridlet provides, with their signatures. */
export const WASI_IMPORTS: { readonly [name: string]: FuncType } = {
  fd_write: { params: [I32, I32, I32, I32], results: [I32] },
  clock_time_get: { params: [I32, I64, I32], results: [I32] },
  random_get: { params: [I32, I32], results: [I32] },
  proc_exit: { params: [I32], results: [] },
  args_sizes_get: { params: [I32, I32], results: [I32] },
  args_get: { params: [I32, I32], results: [I32] },
  environ_sizes_get: { params: [I32, I32], results: [I32] },
  environ_get: { params: [I32, I32], results: [I32] },
};

/** WASI errno values (wasi_snapshot_preview1) the subset answers. */
export const Errno = { success: 0, badf: 8, inval: 28, nosys: 52, notsup: 58 } as const;

/** Log limits shared by the `log` import and fd_write (GUESTS.md). */
export const LOG_MAX_BYTES = 120;
export const LOG_LINES_PER_CALL = 4;
/** Bytes of stdout/stderr looked at per call; the rest is counted and dropped unread. */
export const LOG_SCAN_BYTES = 2048;
/** The same for the one call of a one-shot job (`_start`): its report. */
export const LOG_LINES_PER_JOB = 32;
export const LOG_SCAN_BYTES_JOB = 8192;
export const RANDOM_MAX_BYTES = 256;
/** iovecs one fd_write may pass. */
export const IOVECS_MAX = 64;

/** What the WASI functions need from the one who runs the guest. */
export interface WasiHost {
  /** The running instance (undefined while it is being loaded). */
  instance(): GuestInstance | undefined;
  clock: Clock;
  random: Random | undefined;
  /** The guest's log, fd 1 or 2. */
  out: GuestLog;
  /** proc_exit: records the code; the import then ends the call. */
  exit(code: number): void;
}

/** Thrown by proc_exit through the engine; the one who called the guest reads the code from its host. */
export function exitTrap(code: number): GuestTrap {
  return new GuestTrap(TrapKind.trap, `proc_exit(${code})`);
}

/**
 * A guest's log: lines from the `log` import and from stdout/stderr, within the per-call limits. Each
 * descriptor keeps its partial line until a newline, 120 bytes (the rest of that line is dropped) or
 * the end of the call.
 */
export class GuestLog {
  /** Lines given to `sink` in this call, and lines and bytes dropped ever. */
  lines = 0;
  droppedLines = 0;
  droppedBytes = 0;
  // Plain (TypeScript-private) fields: on XS a class's first `#field` costs every instance a slot more.
  private linesMax = LOG_LINES_PER_CALL;
  private scanLeft = LOG_SCAN_BYTES;
  /** stdout's and stderr's partial lines, made on the first write (most guests never write). */
  private out: { buf: Uint8Array[]; length: number[]; cut: boolean[] } | undefined = undefined;

  /**
   * `sink(bytes, fd, log)` takes each line: fd 0 for the `log` import, 1 stdout, 2 stderr; `log` is this
   * log (a guest that is its own log, so one sink serves every guest).
   */
  constructor(readonly sink: (bytes: Uint8Array, fd: number, log: any) => void) {}

  /** A new call starts: the per-call limits start afresh (a job's run has the larger ones). */
  begin(job = false): void {
    this.lines = 0;
    this.linesMax = job ? LOG_LINES_PER_JOB : LOG_LINES_PER_CALL;
    this.scanLeft = job ? LOG_SCAN_BYTES_JOB : LOG_SCAN_BYTES;
  }

  /** The call ended: partial lines are written out. */
  end(): void {
    const out = this.out;
    if (!out) return;
    for (let k = 0; k < 2; k++) {
      if (out.length[k] > 0 && !out.cut[k]) this.lineIfRoom(out.buf[k].subarray(0, out.length[k]), k + 1);
      out.length[k] = 0;
      out.cut[k] = false;
    }
  }

  /** Whether another line fits this call (counting it as dropped when not). */
  take(): boolean {
    if (this.lines >= this.linesMax) {
      this.droppedLines++;
      return false;
    }
    this.lines++;
    return true;
  }

  /** A line from the `log` import (fd 0) or a whole line of stdout/stderr. */
  line(bytes: Uint8Array, fd: number): void {
    this.sink(bytes, fd, this);
  }

  /** (A prototype method: XS installs a `#method` on every instance.) */
  private lineIfRoom(bytes: Uint8Array, fd: number): void {
    if (this.take()) this.sink(bytes, fd, this);
  }

  /** Bytes written to fd 1 or 2 (what `scan` allowed of them). */
  write(fd: number, bytes: Uint8Array): void {
    const k = fd - 1;
    const out = this.out ?? (this.out = { buf: [new Uint8Array(LOG_MAX_BYTES), new Uint8Array(LOG_MAX_BYTES)], length: [0, 0], cut: [false, false] });
    const buf = out.buf[k];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0x0a) {
        if (!out.cut[k]) this.lineIfRoom(buf.subarray(0, out.length[k]), fd);
        out.length[k] = 0;
        out.cut[k] = false;
      } else if (!out.cut[k]) {
        buf[out.length[k]++] = b;
        if (out.length[k] === LOG_MAX_BYTES) {
          this.lineIfRoom(buf, fd);
          out.length[k] = 0;
          out.cut[k] = true;
        }
      }
    }
  }

  /** How many of `n` bytes may still be looked at in this call (and takes them). */
  scan(n: number): number {
    const k = n < this.scanLeft ? n : this.scanLeft;
    this.scanLeft -= k;
    this.droppedBytes += n - k;
    return k;
  }
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  b[0] = v & 0xff;
  b[1] = (v >>> 8) & 0xff;
  b[2] = (v >>> 16) & 0xff;
  b[3] = (v >>> 24) & 0xff;
  return b;
}

function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** `ms` milliseconds as unsigned 64-bit nanoseconds, little-endian (exact for whole ms below 2^53). */
export function nanosLE(ms: number): Uint8Array {
  const whole = Math.floor(ms);
  const hi = Math.floor(whole / 4294967296);
  const lo = whole - hi * 4294967296;
  const loNs = lo * 1_000_000; // < 2^52: exact
  const carry = Math.floor(loNs / 4294967296);
  const out = new Uint8Array(8);
  out.set(u32le(loNs - carry * 4294967296), 0);
  out.set(u32le((hi * 1_000_000 + carry) >>> 0), 4);
  return out;
}

function running(host: WasiHost): GuestInstance {
  const i = host.instance();
  // Only a start function could call before the instance exists; it has no memory to give us yet.
  if (!i) throw new GuestTrap(TrapKind.trap, 'a WASI function was called before the guest was loaded');
  return i;
}

/** The WASI functions of one guest, over `host`. */
export function wasiImports(host: WasiHost): Record<string, GuestImport> {
  const zero = u32le(0);
  /** args_sizes_get and environ_sizes_get: no entries, no bytes. */
  const none = (count: number, size: number) => {
    const i = running(host);
    i.writeMemory(count >>> 0, zero);
    i.writeMemory(size >>> 0, zero);
    return Errno.success;
  };
  return {
    fd_write: (fd: number, iovs: number, count: number, nwritten: number) => {
      if (fd !== 1 && fd !== 2) return Errno.badf;
      if (count < 0 || count > IOVECS_MAX) return Errno.inval;
      const instance = running(host);
      const vec = instance.readMemory(iovs >>> 0, count * 8);
      let total = 0;
      for (let i = 0; i < count; i++) {
        const ptr = readU32(vec, i * 8);
        const len = readU32(vec, i * 8 + 4);
        // The whole buffer must lie within the cap (a zero-length read at its end checks it).
        instance.readMemory(ptr + len, 0);
        total += len;
        const look = host.out.scan(len);
        if (look > 0) host.out.write(fd, instance.readMemory(ptr, look));
      }
      if (total > 0xffffffff) return Errno.inval;
      instance.writeMemory(nwritten >>> 0, u32le(total));
      return Errno.success;
    },
    clock_time_get: (id: number, _precision: number | bigint, at: number) => {
      let ms: number;
      if (id === 0) ms = host.clock.now();
      else if (id === 1) ms = host.clock.monotonic();
      else return Errno.inval;
      if (ms !== ms) return Errno.notsup;
      running(host).writeMemory(at >>> 0, nanosLE(ms));
      return Errno.success;
    },
    random_get: (at: number, len: number) => {
      if (!host.random) return Errno.nosys;
      if (len < 0 || len > RANDOM_MAX_BYTES) return Errno.inval;
      const bytes = new Uint8Array(len);
      host.random.fill(bytes);
      running(host).writeMemory(at >>> 0, bytes);
      return Errno.success;
    },
    proc_exit: (code: number) => {
      host.exit(code | 0);
      throw exitTrap(code | 0);
    },
    args_sizes_get: none,
    args_get: () => Errno.success,
    environ_sizes_get: none,
    environ_get: () => Errno.success,
  };
}
