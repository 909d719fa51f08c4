// The gateway's offload part: picks the backend from the operator's options (--llm-url / --llm-model or
// --llm-gguf), feeds `job` bodies to the queue with the device's context, and lets the mesh route
// jobs to a peer when this gateway has no backend of its own.

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { JobResult, TextMap } from '../../firmware/core/wire/bodies.js';
import type { Store } from '../store/store.js';
import type { OffloadBackend, PeerRouter } from './backend.js';
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

  constructor(config: OffloadConfig, deps: OffloadDeps) {
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
   * The mesh sets this: for a kind this gateway has no backend for, a peer that promised it. Its
   * backend gets requests with this gateway's context already in them (the peer has no device data).
   *
   * TODO(mesh): gateway/mesh/ does not advertise capabilities yet, so nothing calls this. What routing
   * needs from it: (1) put `capabilities()` into this gateway's signed identity message and keep, per
   * peer, the kinds it promised (MESH.md "Capabilities"); (2) a libp2p request/response protocol such as
   * `/gridlet/offload/1` — request CBOR {kind, system, prompt, max_tokens, device}, response a stream of
   * CBOR text pieces ending in {end} or {error}; the serving gateway runs it with
   * `backend.generate(request, signal, onText)` under its own limits per peer, and aborts the signal
   * when the stream closes; (3) `setPeerRouter(kind => an OffloadBackend whose generate() opens that
   * stream to a connected peer that promised kind)`. The queue then treats the peer like a local backend
   * (timeouts, cancellation, chunking and errors are the same).
   */
  setPeerRouter(router: PeerRouter | undefined): void {
    this.#peers = router;
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
