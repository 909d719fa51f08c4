// Backend: llama.cpp embedded through node-llama-cpp, running a local GGUF file (--llm-gguf). The
// package is optional (not in the default install: `npm install --no-save node-llama-cpp`) and is imported only when the first job arrives, so a gateway
// without --llm-gguf never loads it and an install without it still runs everything else.
// node-llama-cpp ships prebuilt llama.cpp binaries in its @node-llama-cpp/* platform packages; this
// backend never lets it compile or download anything at run time (`build: 'never'`).

import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { BackendError, type GenerateRequest, type OffloadBackend } from './backend.js';

export interface LlamaOptions {
  /** The GGUF model file. */
  path: string;
  /** CPU threads per job (default: all cores but one, at least 1; oversubscribing cores makes llama.cpp's
   *  spinning threads many times slower). */
  threads?: number;
  /** Context size in tokens (default: the model's training context, at most 4096). */
  contextSize?: number;
  /** Jobs run at once, each in its own context sequence (default 1: a CPU gives one job all it has). */
  concurrency?: number;
  log?: Logger;
  /** The package to import (default node-llama-cpp; tests name one that is not installed). */
  module?: string;
}

// The little of node-llama-cpp's API used here, written out so that type-checking does not need the
// optional package installed.
interface NodeLlamaCpp {
  getLlama(o: { build: 'never'; logLevel: unknown; logger: (level: unknown, message: string) => void }): Promise<Llama>;
  LlamaLogLevel: { warn: unknown };
  LlamaChatSession: new (o: { contextSequence: unknown; systemPrompt: string; autoDisposeSequence: boolean }) => ChatSession;
}
interface Llama {
  gpu: string | false;
  cpuMathCores: number;
  loadModel(o: { modelPath: string }): Promise<LlamaModel>;
}
interface LlamaModel {
  createContext(o: { contextSize: number | { max: number }; sequences: number; threads: number }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface LlamaContext {
  contextSize: number;
  getSequence(): { dispose(): void };
}
interface ChatSession {
  prompt(text: string, o: { maxTokens: number; signal: AbortSignal; onTextChunk: (text: string) => void }): Promise<string>;
  dispose(): void;
}

/** A variable, so that TypeScript does not look for the optional package. */
const PACKAGE = 'node-llama-cpp';

const INSTALL_HINT = 'the embedded LLM backend (--llm-gguf) needs the optional package node-llama-cpp: run `npm install node-llama-cpp` in the gridlet directory';

/** Checks that the file is there and is a GGUF file, so that a wrong --llm-gguf fails at start. */
export function checkGguf(path: string): string {
  const abs = resolve(path);
  let size: number;
  try {
    const st = statSync(abs);
    if (!st.isFile()) throw Object.assign(new Error(), { code: 'not a file' });
    size = st.size;
  } catch (e) {
    throw new Error(`--llm-gguf ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (size < 8) throw new Error(`--llm-gguf ${path} is not a GGUF model file (${size} bytes)`);
  return abs;
}

export class LlamaBackend implements OffloadBackend {
  readonly name: string;
  readonly concurrency: number;
  readonly #o: LlamaOptions;
  #loading?: Promise<{ lib: NodeLlamaCpp; model: LlamaModel; context: LlamaContext }>;
  #closed = false;

  constructor(o: LlamaOptions) {
    this.#o = { ...o, path: checkGguf(o.path) };
    this.name = `GGUF model ${o.path}`;
    this.concurrency = o.concurrency ?? 1;
  }

  /** Loads node-llama-cpp and the model once; a failed load is retried by the next job. */
  load(): Promise<{ lib: NodeLlamaCpp; model: LlamaModel; context: LlamaContext }> {
    this.#loading ??= this.#load().catch((e) => {
      this.#loading = undefined;
      throw e;
    });
    return this.#loading;
  }

  async #load(): Promise<{ lib: NodeLlamaCpp; model: LlamaModel; context: LlamaContext }> {
    let lib: NodeLlamaCpp;
    try {
      lib = (await import(this.#o.module ?? PACKAGE)) as NodeLlamaCpp;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new BackendError(INSTALL_HINT);
      throw new BackendError(`node-llama-cpp failed to load (${(e as Error).message}); reinstall it with \`npm install node-llama-cpp\``);
    }
    const log = this.#o.log;
    const t0 = Date.now();
    let llama;
    try {
      llama = await lib.getLlama({
        build: 'never',
        logLevel: lib.LlamaLogLevel.warn,
        logger: (level, message) => log?.debug({ level }, `llama.cpp: ${message.trim()}`),
      });
    } catch (e) {
      throw new BackendError(`node-llama-cpp has no llama.cpp binary that runs here (${(e as Error).message}); its prebuilt @node-llama-cpp/* package for this platform may be missing`);
    }
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: this.#o.path });
    } catch (e) {
      throw new BackendError(`cannot load the GGUF model ${this.#o.path} (${(e as Error).message}); is it a llama.cpp GGUF file?`);
    }
    const threads = this.#o.threads ?? Math.max(1, Math.min(llama.cpuMathCores, availableParallelism()) - 1);
    const context = await model.createContext({
      contextSize: this.#o.contextSize ?? { max: 4096 },
      sequences: this.concurrency,
      threads,
    });
    log?.info({ model: this.#o.path, gpu: llama.gpu, threads, contextSize: context.contextSize, ms: Date.now() - t0 }, 'GGUF model loaded');
    if (this.#closed) {
      await model.dispose();
      throw new BackendError('the gateway is shutting down');
    }
    return { lib, model, context };
  }

  async generate(req: GenerateRequest, signal: AbortSignal, onText: (text: string) => void): Promise<void> {
    const { lib, context } = await this.load();
    // The queue runs at most `concurrency` jobs here, but a job it gave up on may still be letting go
    // of its sequence: wait for that rather than fail.
    await this.#slot(signal);
    let sequence: { dispose(): void };
    try {
      sequence = context.getSequence();
    } catch (e) {
      this.#release();
      throw e;
    }
    try {
      const session = new lib.LlamaChatSession({ contextSequence: sequence, systemPrompt: req.system, autoDisposeSequence: false });
      try {
        await session.prompt(req.prompt, { maxTokens: req.maxTokens, signal, onTextChunk: onText });
      } catch (e) {
        if (signal.aborted) throw e;
        throw new BackendError(`the GGUF model failed while answering (${(e as Error).message})`);
      } finally {
        session.dispose();
      }
    } finally {
      sequence.dispose();
      this.#release();
    }
  }

  #busy = 0;
  readonly #waiting: (() => void)[] = [];

  async #slot(signal: AbortSignal): Promise<void> {
    while (this.#busy >= this.concurrency) {
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.#waiting.push(done);
        signal.addEventListener('abort', done);
      });
    }
    signal.throwIfAborted();
    this.#busy++;
  }

  #release(): void {
    this.#busy--;
    // Every waiter looks again (one may have been aborted meanwhile).
    for (const wake of this.#waiting.splice(0)) wake();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const loading = this.#loading;
    this.#loading = undefined;
    const loaded = await loading?.catch(() => undefined);
    await loaded?.model.dispose();
  }
}
