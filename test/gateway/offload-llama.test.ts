// Offload on the embedded backend: node-llama-cpp running a tiny GGUF model that the test
// writes itself (llama architecture, random weights, a few dozen tokens): real loading and real
// inference, no download. The answers are gibberish made of the model's vocabulary.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body, type JobResult } from '../../firmware/core/wire/bodies.js';
import { LlamaBackend } from '../../gateway/offload/llama.js';
import { TINY_VOCAB, writeTinyGguf } from '../../gateway/offload/tiny-gguf.js';
import { answer } from './job-results.js';
import { pairDevice, startTestGateway } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-gguf-'));
const model = join(dir, 'tiny.gguf');
const bytes = writeTinyGguf(model, { seed: 7 });

// node-llama-cpp is an optional install (`npm install node-llama-cpp`): typed loosely here, and imported
// through a variable so that type-checking does not need it present.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Lib = any;
const LLAMA_PACKAGE: string = 'node-llama-cpp';
let lib: Lib | undefined;
try {
  lib = await import(LLAMA_PACKAGE);
} catch (e) {
  console.log(`PENDING node-llama-cpp is not installed (${(e as Error).message.split('\n')[0]}): the embedded-backend tests are skipped; \`npm install --no-save node-llama-cpp\` runs them`);
}

/** What the tiny model can say: its vocabulary decoded (Ġ is a space, Ċ a newline). */
const SAYABLE = new Set([...TINY_VOCAB.slice(2).join('').replace(/Ġ/g, ' ').replace(/Ċ/g, '\n')]);

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the generated GGUF is a valid v3 file with the llama metadata llama.cpp needs', async () => {
  assert.ok(bytes > 50_000 && bytes < 500_000, `${bytes} bytes`);
  if (!lib) return;
  const info = await lib.readGgufFileInfo(model);
  assert.is(info.version, 3);
  const m = info.metadata as unknown as { general: { architecture: string }; llama: { block_count: number; embedding_length: number }; tokenizer: { ggml: { model: string; tokens: string[] } } };
  assert.is(m.general.architecture, 'llama');
  assert.is(m.llama.block_count, 2);
  assert.is(m.llama.embedding_length, 32);
  assert.is(m.tokenizer.ggml.model, 'gpt2');
  assert.is(m.tokenizer.ggml.tokens.length, TINY_VOCAB.length);
  assert.is(info.tensorInfo?.length, 3 + 2 * 9);
});

test('the backend streams exactly what the model generates (compared with node-llama-cpp run directly)', async () => {
  if (!lib) return;
  const req = { system: 'You answer questions about a smart meter.', prompt: 'how is the power now?', maxTokens: 60, deviceId: 'test' };
  const backend = new LlamaBackend({ path: model, threads: 1 });
  const pieces: string[] = [];
  try {
    await backend.generate(req, new AbortController().signal, (t) => pieces.push(t));
  } finally {
    await backend.close();
  }
  assert.ok(pieces.length > 5, `${pieces.length} pieces streamed`);

  const llama = await lib.getLlama({ build: 'never', logLevel: lib.LlamaLogLevel.error });
  const m = await llama.loadModel({ modelPath: model });
  const ctx = await m.createContext({ contextSize: 512, threads: 1 });
  const session = new lib.LlamaChatSession({ contextSequence: ctx.getSequence(), systemPrompt: req.system });
  const direct = await session.prompt(req.prompt, { maxTokens: req.maxTokens });
  await m.dispose();
  assert.ok(direct.length > 0);
  assert.is(pieces.join(''), direct, 'the same greedy answer, unaltered');
  for (const ch of direct) assert.ok(SAYABLE.has(ch), `"${ch}" is in the model's vocabulary`);
});

test('`ask` through a gateway with --llm-gguf: a streamed answer from the real model; cancel stops it', async () => {
  if (!lib) return;
  const t = await startTestGateway({
    llmGguf: model,
    offload: { llama: { threads: 1, contextSize: 4096 }, queue: { firstTokenTimeoutMs: 60_000, chunkIntervalMs: 20, maxTokens: 150 } },
  });
  try {
    const d = await pairDevice(t);
    await d.send({ type: Body.readings, first: 1, records: [[1_700_000_000, 3, 420]] });
    await d.waitAck(1);
    const t0 = Date.now();
    await d.send({ type: Body.job, job: 1, kind: 'llm.generate', input: { prompt: 'why is my bill high?' } });
    const a = await answer(d, 1, 60_000);
    assert.is(a.error, undefined);
    assert.ok(a.text.length > 100, `an answer of ${a.text.length} characters`);
    assert.ok(a.parts.length >= 2, `${a.parts.length} chunks`);
    for (const ch of a.text) assert.ok(SAYABLE.has(ch), `"${ch}" comes from the model's vocabulary`);
    console.log(`     (tiny GGUF: ${a.text.length} characters in ${a.parts.length} chunks, ${Date.now() - t0} ms including the lazy load)`);

    await d.send({ type: Body.job, job: 2, kind: 'llm.generate', input: { prompt: 'talk for long', max_tokens: 1024 } });
    await d.until(() => (d.bodies(Body.jobResult) as JobResult[]).some((b) => b.job === 2), 10_000, 'job 2 streaming');
    await d.send({ type: Body.job, job: 3, kind: 'job.cancel', input: { job: 2 } });
    const c = await answer(d, 2, 5000);
    assert.is(c.error, 'cancelled');
    // The model is free again: the next job runs.
    await d.send({ type: Body.job, job: 4, kind: 'llm.generate', input: { prompt: 'and now?', max_tokens: 20 } });
    assert.is((await answer(d, 4, 10_000)).error, undefined);
  } finally {
    await t.close();
  }
});

test('without node-llama-cpp installed the device is told how to install it', async () => {
  const t = await startTestGateway({ offload: { backend: new LlamaBackend({ path: model, module: 'node-llama-cpp-not-installed' }) } });
  try {
    const d = await pairDevice(t);
    await d.send({ type: Body.job, job: 1, kind: 'llm.generate', input: { prompt: 'hi' } });
    const a = await answer(d, 1);
    assert.match(a.error!, /^the embedded LLM backend \(--llm-gguf\) needs the optional package node-llama-cpp: run `npm install node-llama-cpp`/);
  } finally {
    await t.close();
  }
});

test.run();
