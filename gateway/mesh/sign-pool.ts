// Ed25519 signatures of the gateway's mesh messages on worker threads, so that signing one readings
// message per frame (MESH.md) does not take the event loop that accepts frames and sends acks. The
// message is encoded and its CID computed on the event loop (message.ts); only the signature, which
// is most of the cost, is made on a thread: requests made in one turn of the event loop go to a thread
// together in one message, their signatures come back together. Threads are given the identity's
// seed; libsodium (sodium-native) signs there when it loads, else node:crypto (the same bytes:
// Ed25519 signatures are deterministic).
//
// A thread costs ~14 MiB of memory, and a signature sent to one costs the event loop a few µs and the
// signer a round trip: signatures go to a thread only while the event loop is busy (at least `busyShare`
// of the last second) and a turn asks for `minBatch` or more; otherwise they are made on the event loop.
// Threads start with the first such turn and end after `idleMs` without work. (10,000 meters reporting
// every 10 s keep the event loop about a third busy: no thread, no memory for one.)
// Nothing is lost when a thread fails: what it was asked to sign, and everything after, is signed on
// the event loop by the signer the pool was made from.

import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { busy } from '../busy.js';
import type { Signer } from './message.js';

/** Threads at most by default: the cores but one (the event loop's), at most 2; none on one core. */
export const DEFAULT_SIGN_THREADS = Math.max(0, Math.min(2, availableParallelism() - 1));

// CommonJS, evaluated by the worker: the gateway's TypeScript loader is not registered in workers.
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const seed = new Uint8Array(workerData.seed);
let sign;
try {
  if (!workerData.sodium) throw new Error('off');
  const sodium = require(workerData.sodium);
  const pk = new Uint8Array(32);
  const sk = new Uint8Array(64);
  sodium.crypto_sign_seed_keypair(pk, sk, seed);
  sign = (data, out) => sodium.crypto_sign_detached(out, data, sk);
} catch {
  const crypto = require('node:crypto');
  const PKCS8 = Buffer.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
  const key = crypto.createPrivateKey({ key: Buffer.concat([PKCS8, Buffer.from(seed)]), format: 'der', type: 'pkcs8' });
  sign = (data, out) => out.set(crypto.sign(null, data, key));
}
seed.fill(0);
parentPort.on('message', (m) => {
  if (m === 'close') {
    parentPort.close();
    return;
  }
  // m.data: the messages one after another; m.ends: where each ends.
  const data = new Uint8Array(m.data);
  const out = new Uint8Array(64 * m.ends.length);
  let at = 0;
  for (let i = 0; i < m.ends.length; i++) {
    sign(data.subarray(at, m.ends[i]), out.subarray(64 * i, 64 * i + 64));
    at = m.ends[i];
  }
  parentPort.postMessage({ id: m.id, sigs: out.buffer }, [out.buffer]);
});
`;

interface Request {
  data: Uint8Array;
  resolve: (sig: Uint8Array) => void;
}

interface Thread {
  worker: Worker;
  /** Batches sent, not yet answered, by id. */
  sent: Map<number, Request[]>;
  dead: boolean;
  /** When it last answered or was started (performance.now()). */
  used: number;
}

/** What the pool has done (metrics, tests). */
export interface SignPoolStats {
  /** Threads running now. */
  threads: number;
  /** Signatures made on threads; on the event loop in small turns; on it because a thread failed. */
  signed: number;
  inline: number;
  fallback: number;
  batches: number;
  /** Threads started and stopped for lack of work. */
  started: number;
  idled: number;
}

export interface SignPoolOptions {
  /** Threads at most (0: every signature on the event loop). */
  threads: number;
  /** The fewest signatures asked in one turn that go to a thread (default 8). */
  minBatch?: number;
  /** The share of the last second the event loop must have been busy for threads to be used (default 0.75). */
  busyShare?: number;
  /** A thread without work this long ends (default 30 s). */
  idleMs?: number;
  /** The threads' code (tests: a thread that fails); default the signer above. */
  source?: string;
}

/** Signs with the key of `seed` on up to `threads` worker threads; `sync` is the same key on the event loop. */
export class SignPool {
  readonly publicKey: Uint8Array;
  readonly #sync: Signer;
  readonly #seed: Uint8Array;
  readonly #max: number;
  readonly #minBatch: number;
  readonly #idleMs: number;
  readonly #busyShare: number;
  /** The event loop's utilization over the last whole second it was measured, and since when it is measured. */
  #busy = 0;
  #elu = performance.eventLoopUtilization();
  #eluAt = performance.now();
  readonly #sodium: string | undefined;
  readonly #source: string;
  #threads: Thread[] = [];
  #queue: Request[] = [];
  #scheduled = false;
  #next = 0;
  #id = 0;
  #closed = false;
  #idleTimer: NodeJS.Timeout | undefined;
  readonly stats: SignPoolStats = { threads: 0, signed: 0, inline: 0, fallback: 0, batches: 0, started: 0, idled: 0 };

  constructor(seed: Uint8Array, sync: Signer, o: SignPoolOptions) {
    if (seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
    if (!Number.isInteger(o.threads) || o.threads < 0) throw new Error('threads: a whole number, 0 or more');
    this.publicKey = sync.publicKey;
    this.#sync = sync;
    this.#seed = Uint8Array.from(seed);
    this.#max = o.threads;
    this.#minBatch = o.minBatch ?? 8;
    this.#idleMs = o.idleMs ?? 30_000;
    this.#busyShare = o.busyShare ?? 0.75;
    this.#source = o.source ?? SOURCE;
    if (process.env.GRIDLET_NO_SODIUM !== '1') {
      try {
        this.#sodium = createRequire(import.meta.url).resolve('sodium-native');
      } catch {
        this.#sodium = undefined;
      }
    }
  }

  #start(): void {
    // A thread's allocations are a batch's buffers, all short-lived: a young generation of 2 MiB instead
    // of V8's 16 (or more) keeps ~3.5 MiB less per thread at the same speed.
    const worker = new Worker(this.#source, {
      eval: true, workerData: { seed: Uint8Array.from(this.#seed).buffer, sodium: this.#sodium }, resourceLimits: { maxYoungGenerationSizeMb: 2 },
    });
    // Only a batch under way keeps the process alive.
    worker.unref();
    const t: Thread = { worker, sent: new Map(), dead: false, used: performance.now() };
    worker.on('message', (m: { id: number; sigs: ArrayBuffer }) => this.#answered(t, m));
    worker.on('error', () => this.#lost(t));
    worker.on('exit', () => this.#lost(t));
    this.#threads.push(t);
    this.stats.started++;
    this.stats.threads = this.#threads.length;
    this.#idleTimer ??= setInterval(() => this.#idle(), Math.max(1000, this.#idleMs / 2)).unref();
  }

  /** Ends the threads that had no work for idleMs. */
  #idle(): void {
    const now = performance.now();
    for (const t of this.#threads) {
      if (t.dead || t.sent.size || now - t.used < this.#idleMs) continue;
      t.dead = true;
      t.worker.postMessage('close');
      this.stats.idled++;
    }
    this.#threads = this.#threads.filter((t) => !t.dead);
    this.stats.threads = this.#threads.length;
    if (!this.#threads.length && this.#idleTimer) {
      clearInterval(this.#idleTimer);
      this.#idleTimer = undefined;
    }
  }

  /** The signature of `data`, made on a thread (or on the event loop if none is left). */
  sign(data: Uint8Array): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve) => {
      this.#queue.push({ data, resolve });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Sends what was asked in this turn to the next live thread, as one batch. */
  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (!batch.length) return;
    if (batch.length < this.#minBatch || this.#closed || !this.#loaded()) return this.#signHere(batch, 'inline');
    if (this.#threads.length < this.#max && this.#threads.every((x) => x.sent.size > 0)) this.#start();
    const t = this.#pick();
    if (!t) return this.#signHere(batch, 'inline');
    let size = 0;
    for (const r of batch) size += r.data.length;
    const data = new Uint8Array(size);
    const ends: number[] = [];
    let at = 0;
    for (const r of batch) {
      data.set(r.data, at);
      at += r.data.length;
      ends.push(at);
    }
    const id = ++this.#id;
    t.sent.set(id, batch);
    if (t.sent.size === 1) t.worker.ref();
    this.stats.batches++;
    t.worker.postMessage({ id, data: data.buffer, ends }, [data.buffer]);
  }

  /** Whether the event loop was busy enough over the last second to be spared the signatures. */
  #loaded(): boolean {
    if (this.#busyShare <= 0) return true;
    const now = performance.now();
    if (now - this.#eluAt >= 1000) {
      this.#busy = performance.eventLoopUtilization(this.#elu).utilization;
      this.#elu = performance.eventLoopUtilization();
      this.#eluAt = now;
    }
    return this.#busy >= this.#busyShare;
  }

  #pick(): Thread | undefined {
    for (let i = 0; i < this.#threads.length; i++) {
      const t = this.#threads[(this.#next + i) % this.#threads.length];
      if (!t.dead) {
        this.#next = (this.#next + i + 1) % this.#threads.length;
        return t;
      }
    }
    return undefined;
  }

  #answered(t: Thread, m: { id: number; sigs: ArrayBuffer }): void {
    const batch = t.sent.get(m.id);
    if (!batch) return;
    t.sent.delete(m.id);
    if (!t.sent.size) t.worker.unref();
    t.used = performance.now();
    const sigs = new Uint8Array(m.sigs);
    this.stats.signed += batch.length;
    for (let i = 0; i < batch.length; i++) batch[i].resolve(sigs.subarray(64 * i, 64 * i + 64));
  }

  /** A thread failed or ended: what it was asked to sign is signed here. */
  #lost(t: Thread): void {
    const i = this.#threads.indexOf(t);
    if (i >= 0) this.#threads.splice(i, 1);
    this.stats.threads = this.#threads.length;
    if (t.dead && !t.sent.size) return;
    t.dead = true;
    for (const batch of t.sent.values()) this.#signHere(batch, 'fallback');
    t.sent.clear();
  }

  #signHere(batch: Request[], why: 'inline' | 'fallback'): void {
    const t0 = performance.now();
    for (const r of batch) r.resolve(this.#sync.sign(r.data));
    busy('sign', t0);
    this.stats[why] += batch.length;
  }

  /** Ends the threads once what they were asked is answered; later requests are signed on the event loop. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#idleTimer) clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#seed.fill(0);
    await Promise.all(this.#threads.map(async (t) => {
      while (t.sent.size && !t.dead) await new Promise((r) => setTimeout(r, 5));
      if (t.dead) return;
      const exited = new Promise<void>((r) => t.worker.once('exit', () => r()));
      t.dead = true;
      // Held until it has ended.
      t.worker.ref();
      t.worker.postMessage('close');
      await exited;
    }));
    this.#threads = [];
    this.stats.threads = 0;
    if (this.#queue.length) this.#flush();
  }
}
