// The offload job queue: `job` bodies in, `job-result` bodies out (WIRE.md bodies 4 and 22).
// Every job the queue accepts or refuses ends with exactly one final job-result on the device — an
// answer, or an error that says what went wrong and what to do — except a job the device replaced by
// reusing its id (it no longer waits for the old one). Bounded everywhere: queue length (overall and per
// device), jobs at once, a token-bucket rate and a daily quota per device, the wait in the queue, the
// time to the first token, silences between tokens, and each job's total time. The daily quota is
// counted in the store (it survives a restart, and replicas share it); the rate's token buckets stay in
// this process: a restart refills them and each replica has its own, which the daily quota still bounds.

import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CborValue } from '../../firmware/core/cbor.js';
import { Body, type JobResult, type TextMap } from '../../firmware/core/wire/bodies.js';
import { TokenBuckets } from '../rate.js';
import type { QuotaStore } from '../store/store.js';
import { BackendError, type GenerateRequest, type OffloadBackend, type PeerRouter } from './backend.js';
import { Chunker, truncateUtf8 } from './chunker.js';

export const LLM_GENERATE = 'llm.generate';
export const JOB_CANCEL = 'job.cancel';

export interface QueueOptions {
  /** Jobs waiting at most, over all devices (default 64). */
  maxQueued: number;
  /** Jobs one device may have waiting or running (default 2). */
  maxPerDevice: number;
  /** Jobs running at once at most (each backend may allow fewer). */
  concurrency: number;
  /** Per device: `rateBurst` jobs in a row, then one per `rateIntervalMs`. */
  rateBurst: number;
  rateIntervalMs: number;
  /** Jobs per device per UTC day (0: no quota). */
  dailyQuota: number;
  /** Longest wait in the queue before a job starts. */
  queueTimeoutMs: number;
  /** Longest wait from the start of a job to its first text. */
  firstTokenTimeoutMs: number;
  /** Longest silence between two pieces of text. */
  idleTimeoutMs: number;
  /** Longest a job runs. */
  jobTimeoutMs: number;
  /** max_tokens when the device gives none, and the most it may ask for. */
  maxTokens: number;
  maxTokensLimit: number;
  /** After the first chunk, text is gathered for up to this long (or until 200 bytes) per chunk. */
  chunkIntervalMs: number;
}

export const DEFAULT_QUEUE_OPTIONS: QueueOptions = {
  maxQueued: 64,
  maxPerDevice: 2,
  concurrency: 4,
  rateBurst: 5,
  rateIntervalMs: 12_000,
  dailyQuota: 500,
  queueTimeoutMs: 60_000,
  firstTokenTimeoutMs: 60_000,
  idleTimeoutMs: 30_000,
  jobTimeoutMs: 300_000,
  maxTokens: 256,
  maxTokensLimit: 1024,
  chunkIntervalMs: 100,
};

export interface QueueDeps {
  /** The gateway's own backend, if it has one. */
  backend?: OffloadBackend;
  /** Mesh peers that promised a kind, for a gateway without its own backend. */
  peers?: PeerRouter;
  /** Delivers a job-result body to the device (the gateway's sendDownlink). */
  send(deviceId: string, body: JobResult): Promise<void>;
  /** Turns the meter's prompt into a request with the gateway's context (context.ts). */
  prepare(deviceId: string, prompt: string, maxTokens: number): Promise<GenerateRequest>;
  /** For the rate limit and the daily quota (unix ms; tests move it). */
  now: () => number;
  /** Where the daily quota is counted (the gateway's store). */
  quota: QuotaStore;
  log: Logger;
  gatewayId: string;
  registry?: Registry;
}

/** Why a job ended; the metric label, and for aborts, the message the device gets. */
type Ending =
  | 'ok' | 'backend-error' | 'no-backend' | 'invalid' | 'busy' | 'rate-limited' | 'quota' | 'cancelled'
  | 'timeout' | 'shutdown' | 'undeliverable' | 'replaced';

interface Entry {
  key: string;
  deviceId: string;
  job: number;
  kind: string;
  prompt: string;
  maxTokens: number;
  acceptedAt: number;
  state: 'queued' | 'running' | 'done';
  queueTimer?: NodeJS.Timeout;
  /** Set while running: stops the job with a reason. */
  abort?: (why: Ending, message: string) => void;
  /** No result goes out any more (the device replaced the job). */
  silent: boolean;
  backend?: OffloadBackend;
  /** Resolves when the job's final result is out. */
  ended?: Promise<void>;
}

export class OffloadQueue {
  readonly o: QueueOptions;
  readonly #d: QueueDeps;
  readonly #entries = new Map<string, Entry>();
  readonly #queue: Entry[] = [];
  readonly #running = new Map<OffloadBackend, number>();
  #runningTotal = 0;
  /** In memory, per process (see the top of the file). */
  readonly #rate: TokenBuckets;
  /** Per device, its last admission: a device's jobs and cancels are admitted one at a time, in order. */
  readonly #admitting = new Map<string, Promise<void>>();
  /** Admissions past the busy checks that wait for the store: they count as jobs waiting. */
  #counting = 0;
  /** The UTC day whose older quota rows were last pruned. */
  #prunedDay = '';
  #closing = false;
  readonly #metrics?: {
    jobs: Counter<'kind' | 'result'>;
    firstChunk: Histogram;
    duration: Histogram;
  };

  constructor(deps: QueueDeps, o: Partial<QueueOptions> = {}) {
    this.#d = deps;
    this.o = { ...DEFAULT_QUEUE_OPTIONS, ...o };
    this.#rate = new TokenBuckets(this.o.rateBurst, this.o.rateIntervalMs, deps.now);
    const registers = deps.registry ? [deps.registry] : [];
    if (deps.registry) {
      const self = this;
      new Gauge({
        name: 'gridlet_offload_jobs_queued', help: 'Offload jobs waiting in the queue.', registers,
        collect() { this.set(self.#queue.length); },
      });
      new Gauge({
        name: 'gridlet_offload_jobs_running', help: 'Offload jobs running.', registers,
        collect() { this.set(self.#runningTotal); },
      });
      this.#metrics = {
        jobs: new Counter({
          name: 'gridlet_offload_jobs_total', help: 'Offload jobs by kind and how they ended (ok, timeout, cancelled, rate-limited, …).',
          labelNames: ['kind', 'result'], registers,
        }),
        firstChunk: new Histogram({
          name: 'gridlet_offload_first_chunk_seconds', help: 'Time from accepting a job to sending its first job-result chunk.',
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
        }),
        duration: new Histogram({
          name: 'gridlet_offload_job_seconds', help: 'Time from accepting a job to its final job-result.',
          buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers,
        }),
      };
    }
  }

  /** The kinds this gateway runs itself (what it may advertise on the mesh). */
  capabilities(): string[] {
    return this.#d.backend ? [LLM_GENERATE] : [];
  }

  stats(): { queued: number; running: number } {
    return { queued: this.#queue.length, running: this.#runningTotal };
  }

  /** A `job` body from a device. Never throws; the outcome reaches the device as job-result bodies. */
  submit(deviceId: string, job: number, kind: string, input: TextMap): void {
    // The quota check waits for the store: a device's later job (or cancel) waits for its earlier one.
    const admitted = (this.#admitting.get(deviceId) ?? Promise.resolve())
      .then(() => this.#admit(deviceId, job, kind, input))
      .catch((e) => this.#d.log.error({ deviceId, job, kind, err: (e as Error).message }, 'offload job not admitted'));
    this.#admitting.set(deviceId, admitted);
    void admitted.then(() => {
      if (this.#admitting.get(deviceId) === admitted) this.#admitting.delete(deviceId);
    });
  }

  async #admit(deviceId: string, job: number, kind: string, input: TextMap): Promise<void> {
    if (kind === JOB_CANCEL) {
      const target = input.job;
      if (typeof target === 'number') this.cancel(deviceId, target);
      return;
    }
    const refuse = (result: Ending, error: string): Promise<void> => {
      this.#count(kind, result);
      this.#d.log.info({ deviceId, job, kind, result, error }, 'offload job refused');
      return this.#deliver(deviceId, { type: Body.jobResult, job, index: 0, text: '', final: true, error: truncateUtf8(error) })
        .catch((e) => this.#d.log.warn({ deviceId, job, err: (e as Error).message }, 'job-result not delivered'));
    };
    const shutdown = 'the gateway is shutting down; ask again in a minute';
    if (this.#closing) return refuse('shutdown', shutdown);
    if (kind !== LLM_GENERATE) return refuse('invalid', `unknown job kind "${truncateUtf8(kind, 40)}"; this gateway runs ${LLM_GENERATE}`);
    const prompt = input.prompt;
    if (typeof prompt !== 'string' || prompt.trim() === '') return refuse('invalid', `${LLM_GENERATE} needs input {"prompt": text} with some text`);
    const maxTokens = tokens(input.max_tokens, this.o);
    if (maxTokens === undefined) return refuse('invalid', `max_tokens must be a whole number from 1 to ${this.o.maxTokensLimit}`);
    if (!this.#d.backend && !this.#d.peers?.(kind)) {
      return refuse('no-backend', `gateway ${this.#d.gatewayId} has no LLM backend: start it with --llm-url URL or --llm-gguf PATH, or peer it with a gateway that offers ${LLM_GENERATE}`);
    }

    const key = `${deviceId}/${job}`;
    // A device that reuses a job id has forgotten the old job (a reboot restarts its ids).
    const old = this.#entries.get(key);
    if (old) this.#replace(old);

    let mine = 0;
    for (const e of this.#entries.values()) if (e.deviceId === deviceId) mine++;
    if (mine >= this.o.maxPerDevice) return refuse('busy', `this meter already has ${mine} jobs at the gateway; wait for an answer (or cancel one) and ask again`);
    const waiting = this.#queue.length + this.#counting;
    if (waiting >= this.o.maxQueued) return refuse('busy', `the gateway is busy (${waiting} jobs waiting); ask again in a minute`);
    this.#counting++;
    const refusal = await this.#take(deviceId, job).finally(() => this.#counting--);
    if (refusal) return refuse(...refusal);
    if (this.#closing) return refuse('shutdown', shutdown);

    const entry: Entry = { key, deviceId, job, kind, prompt, maxTokens, acceptedAt: performance.now(), state: 'queued', silent: false };
    this.#entries.set(key, entry);
    this.#queue.push(entry);
    entry.queueTimer = setTimeout(() => {
      if (entry.state !== 'queued') return;
      this.#unqueue(entry);
      this.#end(entry, 'busy', `the gateway is busy: the job waited ${secs(this.o.queueTimeoutMs)} in its queue; ask again later`);
    }, this.o.queueTimeoutMs);
    this.#dispatch();
  }

  /** Takes a job from the device's daily quota and a token from its bucket, or says why not (quota first). */
  async #take(deviceId: string, job: number): Promise<[Ending, string] | undefined> {
    const limit = this.o.dailyQuota;
    const used: [Ending, string] = ['quota', `this meter has used its ${limit} jobs for today; the quota resets at 00:00 UTC`];
    const day = new Date(this.#d.now()).toISOString().slice(0, 10);
    try {
      if (limit > 0) {
        this.#prune(day);
        if ((await this.#d.quota.used(deviceId, day)) >= limit) return used;
      }
      if (!this.#rate.take(deviceId)) {
        return ['rate-limited', `too many jobs from this meter: ${this.o.rateBurst} in a row, then one per ${Math.ceil(this.o.rateIntervalMs / 1000)} s; ask again shortly`];
      }
      // The take decides: another replica may have granted the meter's last job of the day meanwhile.
      if (limit > 0 && !(await this.#d.quota.take(deviceId, day, limit)).granted) return used;
      return undefined;
    } catch (e) {
      this.#d.log.warn({ deviceId, job, err: (e as Error).message }, 'offload quota not counted');
      return ['busy', `the gateway could not count this meter's daily quota (${(e as Error).message}); ask again in a minute`];
    }
  }

  /** Once a day (and after a start): the quota rows of earlier days go. */
  #prune(day: string): void {
    if (this.#prunedDay === day) return;
    this.#prunedDay = day;
    this.#d.quota.prune(day).catch((e) => this.#d.log.warn({ err: (e as Error).message }, 'old offload quota rows not pruned'));
  }

  /** `job.cancel`: a queued job ends at once, a running one as soon as its backend stops. */
  cancel(deviceId: string, job: number): void {
    const e = this.#entries.get(`${deviceId}/${job}`);
    if (!e) return;
    if (e.state === 'queued') {
      this.#unqueue(e);
      this.#end(e, 'cancelled', 'cancelled');
    } else if (e.state === 'running') e.abort?.('cancelled', 'cancelled');
  }

  /** Ends every job with a "shutting down" error and waits (briefly) for those results to go out. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    // Admissions under way refuse their job once the store answers; those refusals go out too.
    const ended: Promise<void>[] = [...this.#admitting.values()];
    for (const e of [...this.#entries.values()]) {
      if (e.state === 'queued') {
        this.#unqueue(e);
        this.#end(e, 'shutdown', 'the gateway is shutting down; ask again in a minute');
      } else e.abort?.('shutdown', 'the gateway is shutting down; ask again in a minute');
      if (e.ended) ended.push(e.ended);
    }
    await Promise.race([Promise.allSettled(ended), new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  #replace(old: Entry): void {
    old.silent = true;
    if (old.state === 'queued') {
      this.#unqueue(old);
      this.#end(old, 'replaced', '');
    } else old.abort?.('replaced', '');
    // Its slot is free for the new job now, whatever the old backend still does.
    this.#entries.delete(old.key);
  }

  #unqueue(e: Entry): void {
    const i = this.#queue.indexOf(e);
    if (i >= 0) this.#queue.splice(i, 1);
    clearTimeout(e.queueTimer);
  }

  #backendFor(kind: string): OffloadBackend | undefined {
    return this.#d.backend ?? this.#d.peers?.(kind);
  }

  /** Starts queued jobs, in order, while their backends have room. */
  #dispatch(): void {
    for (let i = 0; i < this.#queue.length && this.#runningTotal < this.o.concurrency;) {
      const e = this.#queue[i];
      const backend = this.#backendFor(e.kind);
      if (!backend) {
        this.#unqueue(e);
        this.#end(e, 'no-backend', `gateway ${this.#d.gatewayId} has no LLM backend any more (its mesh peer went away); ask again later`);
        continue;
      }
      if ((this.#running.get(backend) ?? 0) >= Math.max(1, backend.concurrency)) {
        i++;
        continue;
      }
      this.#unqueue(e);
      void this.#run(e, backend);
    }
  }

  async #run(e: Entry, backend: OffloadBackend): Promise<void> {
    e.state = 'running';
    e.backend = backend;
    this.#running.set(backend, (this.#running.get(backend) ?? 0) + 1);
    this.#runningTotal++;
    const stream = new ResultStream(this, e);
    const ac = new AbortController();
    let stopped: { why: Ending; message: string } | undefined;
    let onStop!: () => void;
    const stoppedP = new Promise<void>((r) => (onStop = r));
    e.abort = (why, message) => {
      if (stopped) return;
      stopped = { why, message };
      ac.abort(new Error(message || why));
      onStop();
    };
    const total = setTimeout(() => e.abort!('timeout', `the job ran out of time (${secs(this.o.jobTimeoutMs)}); ask a shorter question or again later`), this.o.jobTimeoutMs);
    let progress = setTimeout(() => e.abort!('timeout', `the ${backend.name} gave no answer within ${secs(this.o.firstTokenTimeoutMs)}; it may be overloaded or stuck`), this.o.firstTokenTimeoutMs);
    let ending: Ending = 'ok';
    let error: string | undefined;
    try {
      const req = await this.#d.prepare(e.deviceId, e.prompt, e.maxTokens).catch((x: Error) => {
        throw new BackendError(`the gateway could not read this meter's data (${x.message})`);
      });
      const generation = backend.generate(req, ac.signal, (text) => {
        if (stopped || !text) return;
        clearTimeout(progress);
        progress = setTimeout(() => e.abort!('timeout', `the ${backend.name} stopped answering for ${secs(this.o.idleTimeoutMs)}`), this.o.idleTimeoutMs);
        stream.push(text);
      });
      // A backend that ignores the abort is left behind: the job ends now either way.
      generation.catch(() => {});
      await Promise.race([generation, stoppedP]);
      if (stopped) throw new Error('stopped');
    } catch (x) {
      if (stopped) {
        ending = stopped.why;
        error = stopped.message;
      } else {
        ending = 'backend-error';
        error = x instanceof BackendError ? x.message : `the ${backend.name} failed: ${(x as Error).message}`;
        this.#d.log.warn({ deviceId: e.deviceId, job: e.job, backend: backend.name, err: (x as Error).message }, 'offload job failed');
      }
    } finally {
      clearTimeout(total);
      clearTimeout(progress);
      this.#running.set(backend, (this.#running.get(backend) ?? 1) - 1);
      this.#runningTotal--;
      this.#dispatch();
    }
    await this.#end(e, ending, error, stream);
  }

  /** Sends the job's final result (after any text still held) and forgets it. */
  #end(e: Entry, ending: Ending, error: string | undefined, stream?: ResultStream): Promise<void> {
    if (e.state === 'done') return e.ended ?? Promise.resolve();
    e.state = 'done';
    clearTimeout(e.queueTimer);
    if (this.#entries.get(e.key) === e) this.#entries.delete(e.key);
    this.#count(e.kind, ending);
    this.#metrics?.duration.observe((performance.now() - e.acceptedAt) / 1000);
    if (ending !== 'ok') this.#d.log.info({ deviceId: e.deviceId, job: e.job, result: ending, error }, 'offload job ended');
    const s = stream ?? new ResultStream(this, e);
    e.ended = s.finish(ending === 'ok' ? undefined : truncateUtf8(error || ending));
    return e.ended;
  }

  #count(kind: string, result: Ending): void {
    this.#metrics?.jobs.inc({ kind: kind === LLM_GENERATE ? kind : 'other', result });
  }

  /** @internal used by ResultStream */
  firstChunkSent(e: Entry): void {
    this.#metrics?.firstChunk.observe((performance.now() - e.acceptedAt) / 1000);
  }

  /** @internal used by ResultStream: a send that fails stops the job (the device is gone or revoked). */
  deliver(e: Entry, body: JobResult): Promise<void> {
    if (e.silent) return Promise.resolve();
    return this.#deliver(e.deviceId, body).catch((x: Error) => {
      this.#d.log.warn({ deviceId: e.deviceId, job: e.job, err: x.message }, 'job-result not delivered; stopping the job');
      e.silent = true;
      e.abort?.('undeliverable', x.message);
    });
  }

  #deliver(deviceId: string, body: JobResult): Promise<void> {
    return this.#d.send(deviceId, body);
  }
}

/**
 * One job's text on its way out: the first chunk as soon as there is text (time to first chunk is what
 * a technician waits for), then chunks of up to 200 bytes gathered for at most `chunkIntervalMs`, one
 * send at a time so that chunk order is counter order. The last one is final.
 */
class ResultStream {
  readonly #q: OffloadQueue;
  readonly #e: Entry;
  readonly #chunker = new Chunker();
  #index = 0;
  #busy?: Promise<void>;
  #timer?: NodeJS.Timeout;
  #lastSent = 0;
  #finishing = false;

  constructor(q: OffloadQueue, e: Entry) {
    this.#q = q;
    this.#e = e;
  }

  push(text: string): void {
    this.#chunker.push(text);
    this.#kick();
  }

  #kick(): void {
    if (this.#busy || this.#finishing || this.#chunker.pendingBytes === 0) return;
    const wait = this.#index === 0 || this.#chunker.full ? 0 : this.#lastSent + this.#q.o.chunkIntervalMs - performance.now();
    if (wait > 0) {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.#kick();
      }, wait);
      return;
    }
    const text = this.#chunker.take(false);
    if (!text) return; // only half a surrogate pair so far
    this.#busy = this.#send(text, false).finally(() => {
      this.#busy = undefined;
      this.#kick();
    });
  }

  async #send(text: string, final: boolean, error?: string): Promise<void> {
    const index = this.#index++;
    this.#lastSent = performance.now();
    const body: JobResult = { type: Body.jobResult, job: this.#e.job, index, text, final };
    if (error !== undefined) body.error = error;
    await this.#q.deliver(this.#e, body);
    if (index === 0) this.#q.firstChunkSent(this.#e);
  }

  /** Sends what is held, the last chunk final (with the error, if the job failed). */
  async finish(error?: string): Promise<void> {
    this.#finishing = true;
    clearTimeout(this.#timer);
    while (this.#busy) await this.#busy;
    const rest: string[] = [];
    for (let c = this.#chunker.take(true); c; c = this.#chunker.take(true)) rest.push(c);
    if (rest.length === 0) rest.push('');
    for (let i = 0; i < rest.length; i++) {
      const last = i === rest.length - 1;
      await this.#send(rest[i], last, last ? error : undefined);
    }
  }
}

function tokens(v: CborValue, o: QueueOptions): number | undefined {
  if (v === undefined || v === null) return o.maxTokens;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) return undefined;
  return Math.min(n, o.maxTokensLimit);
}

function secs(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}
