// WAL checkpoints of the SQLite store on a thread of their own. A checkpoint copies the pages the
// WAL holds into the database file and fsyncs it; SQLite's automatic checkpoint does that inside the
// commit that fills the WAL, on the gateway's event loop (in a profile of the gateway at full load,
// 11 % of its CPU and an fsync the event loop waited for). Here a worker thread with a connection of
// its own does it, in two passes: the first while the gateway keeps committing, the second, short one
// while the store holds its next commit back (sqlite.ts), so that the whole WAL is then checkpointed
// and the next commit starts it again from the beginning. Durability is SQLite's: a checkpoint syncs
// the WAL before it copies and the database file before the WAL is reused.

import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';

/** What one checkpoint pass reports (PRAGMA wal_checkpoint), and how long it took. */
export interface CheckpointPass {
  /** 1 when a reader or writer kept it from checkpointing everything. */
  busy: number;
  /** Frames in the WAL. */
  log: number;
  /** Frames of it now in the database file. */
  checkpointed: number;
  ms: number;
}

// CommonJS, evaluated by the worker: the gateway's TypeScript loader is not registered in workers.
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('synchronous = FULL');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  const t0 = performance.now();
  try {
    const r = checkpoint.get();
    parentPort.postMessage({ busy: r.busy, log: r.log, checkpointed: r.checkpointed, ms: performance.now() - t0 });
  } catch (e) {
    parentPort.postMessage({ error: String((e && e.message) || e) });
  }
});
`;

/** What the store needs of a checkpointer. */
export interface WalCheckpointer {
  pass(): Promise<CheckpointPass>;
  close(): Promise<void>;
}

/** A worker thread that checkpoints one database file's WAL when asked. */
export class Checkpointer implements WalCheckpointer {
  readonly #worker: Worker;
  #waiting: ((r: CheckpointPass | Error) => void)[] = [];
  #closed = false;
  #error: Error | undefined;
  readonly #exited: Promise<void>;

  /** Starts the thread on `path` (an existing database in WAL mode). */
  constructor(path: string) {
    const worker = (this.#worker = new Worker(SOURCE, {
      eval: true,
      workerData: { path, module: createRequire(import.meta.url).resolve('better-sqlite3') },
    }));
    // Only a pass under way keeps the process alive.
    worker.unref();
    this.#exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: CheckpointPass | { error: string }) => {
      const w = this.#waiting.shift();
      // A closing thread keeps the process until it has exited.
      if (!this.#waiting.length && !this.#closed) worker.unref();
      w?.('error' in m ? new Error(`WAL checkpoint failed: ${m.error}`) : m);
    });
    worker.on('error', (e: Error) => (this.#error = e));
    worker.on('exit', () => {
      this.#closed = true;
      const e = new Error(`the checkpoint thread stopped${this.#error ? `: ${this.#error.message}` : ''}`);
      for (const w of this.#waiting.splice(0)) w(e);
    });
  }

  /** False once the thread has stopped (closed, or it failed). */
  get running(): boolean {
    return !this.#closed;
  }

  /** One passive checkpoint: copies what the WAL holds now without waiting for the gateway's writes. */
  pass(): Promise<CheckpointPass> {
    if (this.#closed) return Promise.reject(new Error('the checkpoint thread stopped'));
    return new Promise((resolve, reject) => {
      this.#waiting.push((r) => (r instanceof Error ? reject(r) : resolve(r)));
      this.#worker.ref();
      this.#worker.postMessage('pass');
    });
  }

  /** Closes its connection (after the pass under way, if any) and ends the thread. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#worker.ref();
      this.#worker.postMessage('close');
    }
    await this.#exited;
  }
}
