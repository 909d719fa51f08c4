// The gateway's offload part: picks the backend from the operator's options (--llm-url / --llm-model or
// --llm-gguf), feeds `job` bodies to the queue with the device's context, and lets the mesh route
// jobs to a peer when this gateway has no backend of its own.

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { JobResult, TextMap } from '../../firmware/core/wire/bodies.js';
import type { Store } from '../store/store.js';
import { BackendError, type GenerateRequest, type OffloadBackend, type PeerRouter } from './backend.js';
import { buildRequest, type ContextOptions } from './context.js';
import { LlamaBackend, type LlamaOptions } from './llama.js';
import { OpenAiBackend } from './openai.js';
import { OffloadQueue, type QueueOptions } from './queue.js';

export interface OffloadConfig {
  /** An OpenAI-compatible server (--llm-url). */
  llmUrl?: string;
  /** The model name sent to it (--llm-model). */
  llmModel?: string;
  /** Bearer token for the server (GRIDLET_LLM_API_KEY). */
  llmApiKey?: string;
  /** A local GGUF file run by node-llama-cpp (--llm-gguf). */
  llmGguf?: string;
  /** Bounds and timeouts; tests shorten them. */
  queue?: Partial<QueueOptions>;
  context?: ContextOptions;
  llama?: Omit<LlamaOptions, 'path' | 'log'>;
  /** Jobs sent to the OpenAI-compatible server at once. */
  llmConcurrency?: number;
  /** A backend object instead of the options above (tests, or a mesh peer's server side). */
  backend?: OffloadBackend;
}

/** The backend the options name, or undefined; throws a usage message for a wrong combination. */
export function backendFromConfig(c: OffloadConfig, log?: Logger): OffloadBackend | undefined {
  if (c.backend) return c.backend;
  if (c.llmUrl !== undefined && c.llmGguf !== undefined) throw new Error('give either --llm-url (a server) or --llm-gguf (a local model), not both');
  if (c.llmModel !== undefined && c.llmUrl === undefined) throw new Error('--llm-model names a model on the --llm-url server; give --llm-url too');
  if (c.llmUrl !== undefined) return new OpenAiBackend({ url: c.llmUrl, model: c.llmModel, apiKey: c.llmApiKey, concurrency: c.llmConcurrency });
  if (c.llmGguf !== undefined) return new LlamaBackend({ path: c.llmGguf, log, ...c.llama });
  return undefined;
}

export interface OffloadDeps {
  store: Store;
  gatewayId: string;
  /** The gateway's sendDownlink. */
  send(deviceId: string, body: JobResult): Promise<void>;
  now(): number;
  log: Logger;
  registry?: Registry;
}

export class Offload {
  readonly backend: OffloadBackend | undefined;
  readonly queue: OffloadQueue;
  #peers?: PeerRouter;
  #serving = 0;
  readonly #log: Logger;

  constructor(config: OffloadConfig, deps: OffloadDeps) {
    this.#log = deps.log;
    this.backend = backendFromConfig(config, deps.log);
    const { store, gatewayId } = deps;
    this.queue = new OffloadQueue({
      backend: this.backend,
      peers: (kind) => this.#peers?.(kind),
      send: deps.send,
      async prepare(deviceId, prompt, maxTokens) {
        const device = await store.getDevice(deviceId);
        if (!device) throw new Error(`device ${deviceId} is not known here`);
        return buildRequest(store, device, gatewayId, prompt, maxTokens, config.context);
      },
      now: deps.now,
      quota: store.quota,
      log: deps.log,
      gatewayId,
      registry: deps.registry,
    }, config.queue);
  }

  /** What this gateway can run for others (MESH.md "Capabilities"): `llm.generate` with a backend. */
  capabilities(): string[] {
    return this.queue.capabilities();
  }

  /**
   * The mesh sets this (gateway.ts, when this gateway has no backend): for a kind this gateway cannot
   * run, a connected peer that announced it (gateway/mesh/offload.ts, /gridlet/offload/1). Its backend
   * gets requests with this gateway's context already in them (the peer has no device data); the queue
   * treats it like a local backend (timeouts, cancellation, chunking and errors are the same).
   */
  setPeerRouter(router: PeerRouter | undefined): void {
    this.#peers = router;
  }

  /**
   * A mesh peer's job (/gridlet/offload/1): run on this gateway's own backend, at most `concurrency`
   * peer jobs at once and each within the queue's job time limit. Rejects with a message for the peer.
   */
  async serve(peer: string, req: GenerateRequest, signal: AbortSignal, onText: (text: string) => void): Promise<void> {
    const backend = this.backend;
    if (!backend) throw new BackendError('this gateway has no LLM backend any more');
    const o = this.queue.o;
    if (this.#serving >= o.concurrency) throw new BackendError(`the gateway is busy (${this.#serving} mesh jobs running); ask again later`);
    const maxTokens = Math.min(req.maxTokens, o.maxTokensLimit);
    this.#serving++;
    const ac = new AbortController();
    const stop = () => ac.abort(signal.reason);
    signal.addEventListener('abort', stop, { once: true });
    const timer = setTimeout(() => ac.abort(new Error('time')), o.jobTimeoutMs);
    const stopped = new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => {
      reject(new BackendError(signal.aborted ? 'cancelled' : `the job ran out of time (${Math.round(o.jobTimeoutMs / 1000)} s) on the serving gateway`));
    }, { once: true }));
    stopped.catch(() => {});
    this.#log.info({ peer, deviceId: req.deviceId, backend: backend.name }, 'offload job for a mesh peer');
    try {
      const generation = backend.generate({ ...req, maxTokens }, ac.signal, (t) => {
        if (!ac.signal.aborted) onText(t);
      });
      generation.catch(() => {});
      await Promise.race([generation, stopped]);
    } catch (e) {
      throw e instanceof BackendError ? e : new BackendError(`the ${backend.name} failed: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
      ac.abort();
      this.#serving--;
    }
  }

  /** A `job` body from a paired device (after its frame was committed). */
  submit(deviceId: string, job: number, kind: string, input: TextMap): void {
    this.queue.submit(deviceId, job, kind, input);
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.backend?.close();
  }
}
