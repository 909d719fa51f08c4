// A tiny GGUF v3 model that llama.cpp (and so node-llama-cpp) loads and runs for real: the llama
// architecture with a few layers, random weights from a seed, f32 tensors, and a GPT-2-style BPE
// vocabulary of a few dozen tokens. Its answers are gibberish made of those tokens; it exists so that
// the embedded backend can be tested and demonstrated without downloading a model.
//
// Format (ggml docs/gguf.md): "GGUF", version 3, tensor count, metadata count, the metadata key/values,
// the tensor infos (name, dims with the fastest-varying first, type, offset), padding to
// general.alignment, then the tensor data, each tensor at an aligned offset. Little-endian throughout.
//
// Metadata llama.cpp needs for `general.architecture = llama` (llama-model-loader / llama-model.cpp
// load_hparams, llama-vocab.cpp load):
//   llama.context_length, llama.embedding_length, llama.block_count, llama.feed_forward_length,
//   llama.attention.head_count, llama.attention.head_count_kv, llama.rope.dimension_count,
//   llama.attention.layer_norm_rms_epsilon, llama.vocab_size,
//   tokenizer.ggml.model = "gpt2" (byte-level BPE: characters not in the vocabulary are dropped when
//   tokenizing instead of failing, unlike "llama"/SPM without its 256 byte tokens), tokenizer.ggml.pre,
//   tokenizer.ggml.tokens, tokenizer.ggml.token_type, tokenizer.ggml.merges (required for gpt2),
//   tokenizer.ggml.bos_token_id / eos_token_id (gpt2 defaults to 11, which must exist).
// Tensors (llama): token_embd, output_norm, output, and per block attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up.

import { writeFileSync } from 'node:fs';
import { mulberry32 } from '../../firmware/core/prng.js';

export interface TinyGgufOptions {
  /** Seed of the weights (default 1). */
  seed?: number;
  layers?: number;
  /** Embedding width (default 32); a multiple of `heads`. */
  embedding?: number;
  heads?: number;
  /** Key/value heads (default `heads`; fewer makes it grouped-query attention). */
  kvHeads?: number;
  feedForward?: number;
  contextLength?: number;
  name?: string;
}

// GGUF metadata value types (docs/gguf.md).
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;
/** ggml_type GGML_TYPE_F32. */
const GGML_F32 = 0;
const ALIGNMENT = 32;
/** tokenizer.ggml.token_type values (llama_token_type). */
const TOKEN_NORMAL = 1;
const TOKEN_CONTROL = 3;

type MetaValue =
  | { type: typeof T.u32 | typeof T.i32 | typeof T.f32; value: number }
  | { type: typeof T.bool; value: boolean }
  | { type: typeof T.string; value: string }
  | { type: typeof T.array; of: typeof T.string; value: string[] }
  | { type: typeof T.array; of: typeof T.i32 | typeof T.f32; value: number[] };

/** The vocabulary: two control tokens, then single characters and a few words, in GPT-2 byte-level
 *  form (`Ġ` is a space, `Ċ` a newline; printable ASCII stands for itself). */
export const TINY_VOCAB: readonly string[] = [
  '<|startoftext|>', '<|endoftext|>',
  'Ġ', 'Ċ', '.', ',', '?', '!', '-', ':',
  ...'abcdefghijklmnopqrstuvwxyz0123456789'.split(''),
  'Ġt', 'Ġth', 'ok', 'Ġthe', 'Ġmeter', 'Ġpower', 'Ġgrid', 'ĠkWh', 'Ġvolt', 'Ġwatt', 'Ġok', 'Ġlow', 'Ġhigh', 'Ġnow', 'Ġuse',
];
/** Every merge makes a token of the vocabulary (a merged symbol that is not one would be dropped). */
const MERGES = ['Ġ t', 'Ġt h', 'Ġth e', 'o k', 'Ġ ok'];

/** Writes the model to `path`; returns its size in bytes. */
export function writeTinyGguf(path: string, o: TinyGgufOptions = {}): number {
  const bytes = tinyGguf(o);
  writeFileSync(path, bytes);
  return bytes.length;
}

export function tinyGguf(o: TinyGgufOptions = {}): Uint8Array {
  const nLayer = o.layers ?? 2;
  const nEmbd = o.embedding ?? 32;
  const nHead = o.heads ?? 4;
  const nHeadKv = o.kvHeads ?? nHead;
  const nFf = o.feedForward ?? 2 * nEmbd;
  const nCtx = o.contextLength ?? 4096;
  if (nEmbd % nHead !== 0 || nHead % nHeadKv !== 0) throw new Error('embedding must divide by heads, and heads by kvHeads');
  const headDim = nEmbd / nHead;
  const nVocab = TINY_VOCAB.length;
  const bos = 0;
  const eos = 1;

  const meta: [string, MetaValue][] = [
    ['general.architecture', { type: T.string, value: 'llama' }],
    ['general.name', { type: T.string, value: o.name ?? 'gridlet-tiny' }],
    ['general.alignment', { type: T.u32, value: ALIGNMENT }],
    ['general.file_type', { type: T.u32, value: 0 }], // all f32
    ['llama.context_length', { type: T.u32, value: nCtx }],
    ['llama.embedding_length', { type: T.u32, value: nEmbd }],
    ['llama.block_count', { type: T.u32, value: nLayer }],
    ['llama.feed_forward_length', { type: T.u32, value: nFf }],
    ['llama.attention.head_count', { type: T.u32, value: nHead }],
    ['llama.attention.head_count_kv', { type: T.u32, value: nHeadKv }],
    ['llama.rope.dimension_count', { type: T.u32, value: headDim }],
    ['llama.rope.freq_base', { type: T.f32, value: 10000 }],
    ['llama.attention.layer_norm_rms_epsilon', { type: T.f32, value: 1e-5 }],
    ['llama.vocab_size', { type: T.u32, value: nVocab }],
    ['tokenizer.ggml.model', { type: T.string, value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: T.string, value: 'gpt-2' }],
    ['tokenizer.ggml.tokens', { type: T.array, of: T.string, value: [...TINY_VOCAB] }],
    ['tokenizer.ggml.token_type', { type: T.array, of: T.i32, value: TINY_VOCAB.map((_, i) => (i === bos || i === eos ? TOKEN_CONTROL : TOKEN_NORMAL)) }],
    ['tokenizer.ggml.merges', { type: T.array, of: T.string, value: MERGES }],
    ['tokenizer.ggml.bos_token_id', { type: T.u32, value: bos }],
    ['tokenizer.ggml.eos_token_id', { type: T.u32, value: eos }],
    ['tokenizer.ggml.add_bos_token', { type: T.bool, value: true }],
  ];

  // Tensor shapes, fastest-varying dimension first (ggml's ne[0]).
  const tensors: { name: string; dims: number[]; fill: 'ones' | 'random' | 'output' }[] = [
    { name: 'token_embd.weight', dims: [nEmbd, nVocab], fill: 'random' },
    { name: 'output_norm.weight', dims: [nEmbd], fill: 'ones' },
    { name: 'output.weight', dims: [nEmbd, nVocab], fill: 'output' },
  ];
  for (let i = 0; i < nLayer; i++) {
    const b = `blk.${i}.`;
    tensors.push(
      { name: b + 'attn_norm.weight', dims: [nEmbd], fill: 'ones' },
      { name: b + 'attn_q.weight', dims: [nEmbd, nEmbd], fill: 'random' },
      { name: b + 'attn_k.weight', dims: [nEmbd, headDim * nHeadKv], fill: 'random' },
      { name: b + 'attn_v.weight', dims: [nEmbd, headDim * nHeadKv], fill: 'random' },
      { name: b + 'attn_output.weight', dims: [nEmbd, nEmbd], fill: 'random' },
      { name: b + 'ffn_norm.weight', dims: [nEmbd], fill: 'ones' },
      { name: b + 'ffn_gate.weight', dims: [nEmbd, nFf], fill: 'random' },
      { name: b + 'ffn_down.weight', dims: [nFf, nEmbd], fill: 'random' },
      { name: b + 'ffn_up.weight', dims: [nEmbd, nFf], fill: 'random' },
    );
  }

  const w = new Writer();
  w.raw(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(meta.length);
  for (const [key, v] of meta) {
    w.str(key);
    w.u32(v.type);
    w.value(v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_F32);
    w.u64(offset);
    offsets.push(offset);
    offset = align(offset + 4 * count(t.dims));
  }
  w.pad();
  const rand = mulberry32(o.seed ?? 1);
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    const n = count(t.dims);
    const data = new Float32Array(n);
    // Uniform in ±1/sqrt(fan-in) keeps activations in range through the layers.
    const scale = 1 / Math.sqrt(t.dims[0]);
    for (let j = 0; j < n; j++) data[j] = t.fill === 'ones' ? 1 : (rand() * 2 - 1) * scale * (t.fill === 'output' ? 4 : 1);
    // The control tokens' output rows are zero: their logit is 0 while the best of the others is
    // almost surely above it, so greedy sampling does not end an answer before it starts.
    if (t.fill === 'output') for (const tok of [bos, eos]) data.fill(0, tok * nEmbd, (tok + 1) * nEmbd);
    w.raw(new Uint8Array(data.buffer));
    w.pad();
    if (w.length - w.dataStart !== (offsets[i + 1] ?? align(offset))) throw new Error('tiny-gguf: tensor offsets out of step');
  }
  return w.bytes();
}

function count(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function align(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}


class Writer {
  #chunks: Uint8Array[] = [];
  length = 0;
  /** Where tensor data starts (set by the first pad after the tensor infos). */
  dataStart = -1;
  readonly #enc = new TextEncoder();

  raw(b: Uint8Array): void {
    this.#chunks.push(b);
    this.length += b.length;
  }

  u32(n: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    this.raw(b);
  }

  i32(n: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, n, true);
    this.raw(b);
  }

  f32(n: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, n, true);
    this.raw(b);
  }

  u64(n: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    this.raw(b);
  }

  str(s: string): void {
    const b = this.#enc.encode(s);
    this.u64(b.length);
    this.raw(b);
  }

  value(v: MetaValue): void {
    switch (v.type) {
      case T.u32: return this.u32(v.value);
      case T.i32: return this.i32(v.value);
      case T.f32: return this.f32(v.value);
      case T.bool: return this.raw(new Uint8Array([v.value ? 1 : 0]));
      case T.string: return this.str(v.value);
      case T.array:
        this.u32(v.of);
        this.u64(v.value.length);
        if (v.of === T.string) for (const s of v.value as string[]) this.str(s);
        else for (const n of v.value as number[]) (v.of === T.i32 ? this.i32(n) : this.f32(n));
    }
  }

  pad(): void {
    const n = align(this.length) - this.length;
    if (n) this.raw(new Uint8Array(n));
    if (this.dataStart < 0) this.dataStart = this.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.#chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
