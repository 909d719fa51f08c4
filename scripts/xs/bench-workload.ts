// The XS side of the XS bench (scripts/xs/bench-worker.js drives it): workloads over the real
// firmware core, run N at a time per crank so the worker's meters price one unit of work.
//   reading        encode one readings body of 4 channels (what a reading costs the codec)
//   frame          encode that body and seal it into a frame (what one live uplink costs)
//   backlogFrame   encode and seal a full backlog frame of 120 records (backlogEncode + backlogSeal)
//   agentReading   Agent.recordReadings with 4 channels, paired and linked: log, pump, seal, publish
//   agentAck       the agent opening a downlink ack frame and trimming its log
// Bundled on its own (core only) and, with `agent` in the entry, together with the Agent.

import { useRandom } from '../../firmware/core/crypto.js';
import { Body, encodeBody, type ReadingRecord } from '../../firmware/core/wire/bodies.js';
import { Direction, sealFrame } from '../../firmware/core/wire/frame.js';

declare const gc: () => void;
/** Only in the metered worker (scripts/xs/meter-worker.js): collect before every allocation. */
declare const gridletStress: ((on: number) => void) | undefined;

type Workload = () => void;
export const workloads: { [name: string]: Workload } = { noop: () => {} };
export const setups: { [name: string]: () => string | void } = {};
let keep: unknown[] | undefined;

// Deterministic randomness (xorshift32): the bench measures work, not entropy.
let seed = 0x6d2b79f5;
export const random = {
  fill(b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      b[i] = seed & 0xff;
    }
  },
};
useRandom(random);

const key = new Uint8Array(32).fill(7);
const salt = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
let counter = 1;
let seq = 1;
let t = 1_767_225_600;

/** One reading of a typical electricity meter: energy in/out totals, power in/out. */
export function fourChannels(): ReadingRecord[] {
  t += 10;
  return [[t, 1, 12_345_678 + seq], [t, 2, 1_234_567], [t, 3, 1_840 + (seq % 50)], [t, 4, 0]];
}

workloads.reading = () => {
  const body = encodeBody({ type: Body.readings, first: seq, records: fourChannels() });
  seq += 4;
  if (keep) keep.push(body);
};

workloads.frame = () => {
  const body = encodeBody({ type: Body.readings, first: seq, records: fourChannels() });
  seq += 4;
  const frame = sealFrame(body, counter++, salt, key, Direction.up);
  if (keep) keep.push(frame);
};

workloads.backlogFrame = () => {
  const records: ReadingRecord[] = [];
  for (let i = 0; i < 30; i++) records.push(...fourChannels());
  const body = encodeBody({ type: Body.readings, first: seq, records }, 4096);
  seq += 120;
  const frame = sealFrame(body, counter++, salt, key, Direction.up);
  if (keep) keep.push(frame);
};

// The two halves of a backlog frame, to show where its cost goes.
let backlogBody: Uint8Array | undefined;
workloads.backlogEncode = () => {
  const records: ReadingRecord[] = [];
  for (let i = 0; i < 30; i++) records.push(...fourChannels());
  backlogBody = encodeBody({ type: Body.readings, first: seq, records }, 4096);
  seq += 120;
  if (keep) keep.push(backlogBody);
};
workloads.backlogSeal = () => {
  if (!backlogBody) workloads.backlogEncode();
  const frame = sealFrame(backlogBody!, counter++, salt, key, Direction.up);
  if (keep) keep.push(frame);
};

function bytesOf(text: string): ArrayBuffer {
  const u8 = new TextEncoder().encode(text);
  return u8.buffer.byteLength === u8.length ? (u8.buffer as ArrayBuffer) : (u8.slice().buffer as ArrayBuffer);
}

interface Command { op: string; name?: string; n?: number; keep?: boolean; stress?: boolean }

(globalThis as unknown as { handleCommand: (m: ArrayBuffer) => ArrayBuffer }).handleCommand = (message) => {
  const cmd = JSON.parse(new TextDecoder().decode(new Uint8Array(message))) as Command;
  let out: unknown = null;
  if (cmd.op === 'gc') {
    keep = undefined;
    gc();
  } else if (cmd.op === 'setup') {
    out = setups[cmd.name!]?.() ?? null;
  } else if (cmd.op === 'run') {
    const w = workloads[cmd.name!];
    if (!w) throw new Error(`no workload ${cmd.name}`);
    keep = cmd.keep ? [] : undefined;
    const stress = cmd.stress && typeof gridletStress === 'function';
    if (stress) gridletStress!(1);
    try {
      for (let i = 0; i < cmd.n!; i++) w();
    } finally {
      if (stress) gridletStress!(0);
    }
  } else if (cmd.op === 'list') {
    out = Object.keys(workloads);
  }
  return bytesOf(JSON.stringify(out));
};
