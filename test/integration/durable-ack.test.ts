// WIRE.md: no ack leaves the gateway before the frame's records are durably stored. A test inside the
// process can only see that a promise resolved; this one watches the real `gridlet gateway` from the
// kernel's side with strace: the WAL page that holds a frame's readings is written (pwrite64), a sync
// of that WAL file (fdatasync or fsync) returns, and only then is the ack PUBLISH written to the
// device's socket. strace holds each sync 100 ms before it returns, so an ack released early would be
// seen. Needs Debian's strace and ptrace (.ci/run installs strace); skipped with a PENDING line
// otherwise. KEEP_TRACE=<file> keeps the strace log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useRandom } from '../../firmware/core/crypto.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { WireDevice } from '../gateway/wire-device.js';
import { startGatewayChild, stopProc, type GatewayChild } from '../../scripts/scale.js';

useRandom({ fill: (b) => randomFillSync(b) });

const PREFIX = 'gl';

function straceMissing(): string | null {
  const r = spawnSync('strace', ['-qq', '-e', 'trace=none', 'true'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) return `strace cannot run (apt-get install strace): ${r.error.message}`;
  if (r.status !== 0) return `strace cannot trace here: ${(r.stderr ?? '').trim().split('\n').pop()}`;
  return null;
}

/** strace attached to every thread of `pid` (and those it starts), writing to `file`; resolves once attached. */
function attach(pid: number, file: string): Promise<ChildProcess> {
  // Each sync of a file is held 100 ms before it returns, so that an ack released before its sync
  // returned would be written while the sync is still under way (on an idle disk a sync takes well
  // under a millisecond, and an early ack could still come after it by chance).
  const s = spawn('strace', ['-f', '-ttt', '-T', '-yy', '-xx', '-s', '8192', '-e', 'trace=pwrite64,pwritev,write,writev,sendmsg,fsync,fdatasync',
    '-e', `inject=fsync,fdatasync:delay_exit=${SYNC_DELAY_S * 1e6}`, '-o', file, '-p', String(pid)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`strace did not attach within 10 s: ${err}`)), 10_000);
    s.stderr!.setEncoding('utf8').on('data', (c: string) => {
      err += c;
      if (/attached/.test(err)) {
        clearTimeout(timer);
        resolve(s);
      }
    });
    s.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`strace exited (${code}): ${err}`));
    });
  });
}

/** The bytes strace printed with -xx in the first quoted string of `line` ("\x32\x0a…"), as lower-case hex. */
function hexOf(line: string): string {
  const m = /"((?:\\x[0-9a-f]{2})*)"/.exec(line);
  return m ? m[1]!.replaceAll('\\x', '') : '';
}

/** What strace adds to each sync of a file before it returns (attach()). */
const SYNC_DELAY_S = 0.1;

/** A call seen in the trace: when it was entered and when it returned (seconds, strace -ttt -T). */
interface TraceEvent { kind: 'wal-write' | 'wal-synced' | 'publish'; start: number; end: number; line: number; hex: string }

/**
 * The calls of an strace log (-f -ttt -T -yy -xx) that matter here: writes to the WAL file, syncs of
 * it that returned 0, and MQTT PUBLISH packets written to the socket whose peer port is `devicePort`.
 * A call another thread interrupted in the log ("<unfinished ...>") is completed by its "<... resumed>"
 * line: it started at the first line's time and returned at the second's.
 */
function traceEvents(text: string, devicePort: number): TraceEvent[] {
  const out: TraceEvent[] = [];
  const pending = new Map<string, { start: number; line: number; call: string }>();
  const socket = new RegExp(`^(write|writev|sendmsg)\\(\\d+<TCP:\\[[^\\]]*->[^\\]]*:${devicePort}\\]>`);
  // With -xx a file's path is printed in hex too: the WAL's ends in "-wal".
  const wal = String.raw`\d+<(?:\\x[0-9a-f]{2})*\\x2d\\x77\\x61\\x6c>`;
  const walSync = new RegExp(String.raw`^(fdatasync|fsync)\(${wal}`);
  const walWrite = new RegExp(String.raw`^(pwrite64|pwritev)\(${wal}`);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/.exec(lines[i]!);
    if (!m) continue;
    const pid = m[1]!;
    const at = Number(m[2]);
    let call = m[3]!;
    let start = at;
    let line = i;
    if (call.endsWith('<unfinished ...>')) {
      pending.set(pid, { start: at, line: i, call });
      continue;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(call);
    if (resumed) {
      const p = pending.get(pid);
      if (!p) continue;
      pending.delete(pid);
      call = p.call.replace(/\s*<unfinished \.\.\.>$/, '') + resumed[1];
      start = p.start;
      line = p.line;
    }
    // -T is the time in the kernel; a delay strace injected at the exit comes on top of it.
    const took = /<(\d+\.\d+)>$/.exec(call);
    const delayed = / \(DELAYED\) <[\d.]+>$/.test(call) ? SYNC_DELAY_S : 0;
    const end = (resumed ? at : start + (took ? Number(took[1]) : 0)) + delayed;
    if (walSync.test(call)) {
      if (/\) = 0(?: \(DELAYED\))? <[\d.]+>$/.test(call)) out.push({ kind: 'wal-synced', start, end, line, hex: '' });
    } else if (walWrite.test(call)) {
      out.push({ kind: 'wal-write', start, end, line, hex: hexOf(call) });
    } else if (socket.test(call)) {
      // Every MQTT packet in the write: a PUBLISH has 0x3 in its first byte's high nibble.
      const hex = call.startsWith('writev') ? [...call.matchAll(/iov_base="((?:\\x[0-9a-f]{2})*)"/g)].map((x) => x[1]!.replaceAll('\\x', '')).join('') : hexOf(call);
      for (let k = 0; k < hex.length;) {
        const type = parseInt(hex.slice(k, k + 2), 16);
        let len = 0;
        let mul = 1;
        let p = k + 2;
        for (;;) {
          const b = parseInt(hex.slice(p, p + 2), 16);
          p += 2;
          len += (b & 0x7f) * mul;
          mul *= 128;
          if (!(b & 0x80) || Number.isNaN(b)) break;
        }
        if ((type & 0xf0) === 0x30) out.push({ kind: 'publish', start, end, line, hex: hex.slice(k, p + 2 * len) });
        k = p + 2 * len;
      }
    }
  }
  return out.sort((x, y) => x.start - y.start);
}

/** A reading value whose four big-endian bytes mark frame `k` wherever they are written. */
const marker = (k: number) => 0x5a000000 + k * 0x010101;

const missing = straceMissing();
const maybe = missing ? test.skip : test;
if (missing) console.log(`PENDING durable-ack: ${missing}`);

maybe('each ack is written to the device only after a sync of the WAL that holds its frame returned', async () => {
  const traceDir = mkdtempSync(join(tmpdir(), 'gridlet-durable-ack-'));
  const traceFile = join(traceDir, 'strace.log');
  let gw: GatewayChild | undefined;
  let tracer: ChildProcess | undefined;
  const d = new WireDevice(PREFIX);
  try {
    gw = await startGatewayChild();
    // Pair as a technician would (POST /api/pairings with the code), then connect with credentials.
    await d.connect(gw.mqttUrl);
    await d.hello();
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(`${gw.httpUrl}/api/pairings`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: d.id, code: d.code }),
      });
      if (r.status === 201) break;
      assert.ok(attempt < 40, `pairing failed: ${r.status} ${await r.text()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await d.until(() => d.ks, 10_000, 'the PairAccept');
    await d.close();
    await d.connect(gw.mqttUrl, { credentials: true });
    const devicePort = (d.client!.stream as unknown as { localPort: number }).localPort;
    // What pairing sends the device arrives first: the frames below are the only traffic after it.
    let seen = -1;
    while (seen !== d.downlinks.length) {
      seen = d.downlinks.length;
      await new Promise((r) => setTimeout(r, 1000));
    }

    tracer = await attach(gw.proc.pid!, traceFile);
    const FRAMES = 6;
    for (let k = 1; k <= FRAMES; k++) {
      // One frame in flight at a time: its ack is the first PUBLISH to the device after its readings hit the WAL.
      const first = (k - 1) * 2 + 1;
      await d.send({ type: Body.readings, first, records: [[1_700_000_000 + k, 1, marker(k)], [1_700_000_000 + k, 2, marker(k) + 1]] });
      await d.waitAck(first + 1, 15_000);
    }
    await stopProc(tracer, 'SIGINT');
    tracer = undefined;

    if (process.env.KEEP_TRACE) copyFileSync(traceFile, process.env.KEEP_TRACE);
    const events = traceEvents(readFileSync(traceFile, 'utf8'), devicePort);
    const publishes = events.filter((e) => e.kind === 'publish').length;
    assert.ok(publishes >= FRAMES, `${publishes} PUBLISH packets seen on the device's socket, ${FRAMES} acks expected`);
    for (let k = 1; k <= FRAMES; k++) {
      const hex = (marker(k) >>> 0).toString(16).padStart(8, '0');
      const written = events.find((e) => e.kind === 'wal-write' && e.hex.includes(hex));
      assert.ok(written, `frame ${k}: its readings (${hex}) were never written to the WAL`);
      const ack = events.find((e) => e.kind === 'publish' && e.start >= written.end);
      assert.ok(ack, `frame ${k}: no PUBLISH to the device after its readings were written`);
      // A sync covers what was written before it began: one that began after the write and returned before the ack.
      const synced = events.some((e) => e.kind === 'wal-synced' && e.start >= written.end && e.end <= ack.start);
      assert.ok(synced, `frame ${k}: its ack was written to the device (strace line ${ack.line + 1}) before a sync of the WAL begun after its readings were written (line ${written.line + 1}) returned`);
    }
    console.log(`MEASURED durable-ack: ${FRAMES} frames, each ack written only after a sync of the WAL, begun after its readings' WAL write, had returned (${events.filter((e) => e.kind === 'wal-synced').length} syncs, ${events.filter((e) => e.kind === 'wal-write').length} WAL writes traced)`);
  } finally {
    await d.close();
    if (tracer) await stopProc(tracer, 'SIGINT');
    if (gw) await gw.stop();
    rmSync(traceDir, { recursive: true, force: true });
  }
});

test.run();
