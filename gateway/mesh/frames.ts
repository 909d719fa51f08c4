// Length-prefixed CBOR frames on libp2p streams (mesh-admission-v2, offload.ts): a 4-byte big-endian
// length, then that many bytes of one CBOR map.

import type { Stream } from '@libp2p/interface';
import { decode, encode, type CborValue } from '../../firmware/core/cbor.js';
import { concat } from '../../firmware/core/bytes.js';

export type FrameMap = { [k: string]: CborValue };

export function frame(value: CborValue): Uint8Array {
  return prefixed(encode(value));
}

/** Bytes already encoded (a CBOR map) as one frame. */
export function prefixed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/** The frames' bodies a stream carries, one at a time; throws on a frame over `max` or a cut one. */
export async function* rawFrames(src: AsyncIterable<{ subarray(): Uint8Array }>, max: number): AsyncGenerator<Uint8Array> {
  let buf: Uint8Array = new Uint8Array(0);
  for await (const chunk of src) {
    buf = buf.length ? concat(buf, chunk.subarray()) : chunk.subarray();
    while (buf.length >= 4) {
      const n = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0);
      if (n > max) throw new Error(`a frame of ${n} bytes (at most ${max})`);
      if (buf.length < 4 + n) break;
      const body = buf.slice(4, 4 + n);
      buf = buf.subarray(4 + n);
      yield body;
    }
  }
  if (buf.length) throw new Error('the stream ended inside a frame');
}

/** The CBOR maps a stream carries, one per frame; throws on a frame over `max`, a cut one, or one that is not a map. */
export async function* frames(src: AsyncIterable<{ subarray(): Uint8Array }>, max: number): AsyncGenerator<FrameMap> {
  for await (const body of rawFrames(src, max)) {
    const v = decode(body, { maxDepth: 6 });
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array || v instanceof Map) throw new Error('a frame is not a CBOR map');
    yield v as FrameMap;
  }
}

/** Writes one frame, waiting for the stream to drain when it is full. */
export async function write(stream: Stream, value: CborValue, signal?: AbortSignal): Promise<void> {
  if (!stream.send(frame(value))) await stream.onDrain({ signal });
}

/** Writes bytes already framed. */
export async function writeRaw(stream: Stream, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain({ signal });
}

/** Reads a whole stream (at most `max` bytes; undefined beyond), aborting it when `signal` fires. */
export async function readAll(stream: Stream, max: number, signal: AbortSignal): Promise<Uint8Array | undefined> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const onAbort = () => stream.abort(new Error('timed out'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      const b = chunk.subarray();
      n += b.length;
      if (n > max) {
        stream.abort(new Error(`more than ${max} bytes`));
        return undefined;
      }
      parts.push(b);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return concat(...parts);
}
