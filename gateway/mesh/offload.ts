// Offloaded work on the mesh (MESH.md "Capabilities"): a gateway announces the job kinds it can run for
// others, and a gateway without a backend streams a job to a connected peer that announced its kind.
//
// Capability announcement. The gateway identity document (docs/protocols/gateway-identity-v1.md) is
// frozen and says its payload has *exactly* six keys, so capabilities cannot ride in it without a new
// protocol document. They travel instead as a small announcement signed by the gateway's Ed25519 key,
// carried in the public part of a summary's gossip map next to `blocks` and `have` (mesh-admission-v2; peers that do not know the key
// ignore it): `{"caps": bstr}` where the byte string is the CBOR array
//   [signed: bstr, kid: bstr(32), sig: bstr(64)]
//   signed = deterministic CBOR {"capabilities": [text…], "gateway": gatewayId, "peer": peerId, "t": unix ms}
//   sig    = Ed25519(kid, "gridlet capabilities v1\0" ‖ signed)
// It is trusted only when an accepted identity message binds kid to that gateway id and peer id; of
// several from one peer the latest t holds; t more than 5 minutes ahead is refused. It is not a grid
// message (no pCID): it is ephemeral state, re-sent with every summary, never stored.
//
// /gridlet/offload/1 (libp2p stream). Both directions carry frames: a 4-byte big-endian length, then
// that many bytes of one CBOR map. The requester sends one frame
//   {"kind": "llm.generate", "system": text, "prompt": text, "max_tokens": uint, "device": text}
// (system: the context the requesting gateway built for its device; at most 256 KiB), keeping its side
// open. The server answers with frames {"text": text} (pieces of the answer, in order, ≤ 64 KiB each),
// then exactly one of {"end": true} or {"error": text}, and closes. The requester cancels by aborting
// (resetting) the stream; the server then aborts the job. The request must arrive within 10 s.

import type { Stream } from '@libp2p/interface';
import { decode, encode, type CborValue } from '../../firmware/core/cbor.js';
import { frames, write } from './frames.js';
import { concat, utf8Encode } from '../../firmware/core/bytes.js';
import { BackendError, type GenerateRequest, type OffloadBackend } from '../offload/backend.js';
import { ed25519Verify, type Signer } from './message.js';

export const OFFLOAD_PROTOCOL = '/gridlet/offload/1';
export const MAX_REQUEST_FRAME = 256 * 1024;
export const MAX_RESPONSE_FRAME = 64 * 1024;
const REQUEST_TIMEOUT_MS = 10_000;
const CAPS_DOMAIN = utf8Encode('gridlet capabilities v1\0');
const MAX_CAPS = 16;

// ------------------------------------------------------------------ capability announcement

export interface Capabilities {
  capabilities: string[];
  gateway: string;
  peer: string;
  t: number;
}

export function signCapabilities(c: Capabilities, signer: Signer): Uint8Array {
  const signed = encode({ capabilities: c.capabilities, gateway: c.gateway, peer: c.peer, t: c.t });
  return encode([signed, signer.publicKey, signer.sign(concat(CAPS_DOMAIN, signed))]);
}

/** The announcement's signer and content, or why it is refused (the caller checks the signer's identity). */
export function openCapabilities(bytes: Uint8Array): { kid: Uint8Array; caps: Capabilities } | string {
  if (bytes.length > 4096) return 'too large';
  let v: CborValue;
  try {
    v = decode(bytes, { maxDepth: 2 });
  } catch {
    return 'malformed';
  }
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => x instanceof Uint8Array)) return 'not [signed, kid, sig]';
  const [signed, kid, sig] = v as Uint8Array[];
  if (kid.length !== 32 || sig.length !== 64) return 'kid must be 32 bytes and sig 64';
  let p: CborValue;
  try {
    p = decode(signed, { maxDepth: 2 });
  } catch {
    return 'malformed';
  }
  if (p === null || typeof p !== 'object' || Array.isArray(p) || p instanceof Uint8Array || p instanceof Map) return 'not a map';
  const o = p as { [k: string]: CborValue };
  const caps = o.capabilities;
  if (!Array.isArray(caps) || caps.length > MAX_CAPS || !caps.every((c) => typeof c === 'string' && c.length > 0 && c.length <= 64)) {
    return `capabilities must be at most ${MAX_CAPS} names`;
  }
  if (typeof o.gateway !== 'string' || typeof o.peer !== 'string' || typeof o.t !== 'number' || !Number.isSafeInteger(o.t) || o.t < 0) {
    return 'gateway, peer and t are needed';
  }
  if (!ed25519Verify(kid, concat(CAPS_DOMAIN, signed), sig)) return 'signature';
  return { kid, caps: { capabilities: caps as string[], gateway: o.gateway, peer: o.peer, t: o.t } };
}

// ------------------------------------------------------------------ requester

/** Opens a stream to a peer; the mesh node's dialProtocol. */
export type Dial = (peer: string, protocol: string, signal: AbortSignal) => Promise<Stream>;

/** A mesh peer that announced `llm.generate`, as the offload queue sees a backend. */
export class PeerBackend implements OffloadBackend {
  readonly name: string;
  readonly concurrency = 4;

  constructor(readonly peer: string, readonly gateway: string, readonly dial: Dial) {
    this.name = `mesh peer ${gateway}`;
  }

  async generate(req: GenerateRequest, signal: AbortSignal, onText: (text: string) => void): Promise<void> {
    const stream = await this.dial(this.peer, OFFLOAD_PROTOCOL, AbortSignal.any([signal, AbortSignal.timeout(5000)]))
      .catch((e: Error) => {
        throw new BackendError(`the mesh peer ${this.gateway} that offers llm.generate cannot be reached (${e.message}); ask again later`);
      });
    const onAbort = () => stream.abort(new Error('cancelled by the requester'));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await write(stream, { kind: 'llm.generate', system: req.system, prompt: req.prompt, max_tokens: req.maxTokens, device: req.deviceId }, signal);
      for await (const f of frames(stream, MAX_RESPONSE_FRAME)) {
        if (typeof f.text === 'string') onText(f.text);
        else if (f.end === true) {
          await stream.close({ signal: AbortSignal.timeout(2000) }).catch(() => stream.abort(new Error('closed')));
          return;
        } else if (typeof f.error === 'string') {
          stream.abort(new Error('peer error'));
          throw new BackendError(`the mesh peer ${this.gateway}: ${f.error.slice(0, 300)}`);
        } else throw new Error('it sent a frame that is neither text, end nor error');
      }
      throw new Error('it closed the stream before the answer ended');
    } catch (e) {
      if (stream.status === 'open') stream.abort(e as Error);
      throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {}
}

// ------------------------------------------------------------------ server

/** Runs a peer's job with this gateway's backend; rejects with a message for the peer. */
export type ServeOffload = (peer: string, req: GenerateRequest, signal: AbortSignal, onText: (text: string) => void) => Promise<void>;

export async function serveOffloadStream(stream: Stream, peer: string, serve: ServeOffload): Promise<void> {
  const ac = new AbortController();
  // The requester cancels by resetting the stream.
  stream.addEventListener('close', () => ac.abort(new Error('the requester closed the stream')), { once: true });
  const it = frames(stream, MAX_REQUEST_FRAME)[Symbol.asyncIterator]();
  let pending = Promise.resolve();
  try {
    const timer = setTimeout(() => stream.abort(new Error(`no request within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    const first = await it.next().finally(() => clearTimeout(timer));
    if (first.done) return;
    const req = parseRequest(first.value);
    if (typeof req === 'string') {
      await write(stream, { error: `bad ${OFFLOAD_PROTOCOL} request: ${req}` });
    } else {
      let failed: string | undefined;
      try {
        await serve(peer, req, ac.signal, (text) => {
          // Pieces go out in order; a big one is cut below the frame bound (at a character edge).
          for (const piece of split(text)) pending = pending.then(() => write(stream, { text: piece }, ac.signal));
        });
      } catch (e) {
        failed = (e as Error).message;
      }
      await pending;
      if (ac.signal.aborted) return;
      await write(stream, failed === undefined ? { end: true } : { error: failed.slice(0, 1000) });
    }
    await stream.close({ signal: AbortSignal.timeout(5000) });
  } catch (e) {
    stream.abort(e as Error);
  } finally {
    ac.abort();
    void it.return?.(undefined);
  }
}

function parseRequest(f: { [k: string]: CborValue }): GenerateRequest | string {
  if (f.kind !== 'llm.generate') return `unknown kind "${String(f.kind).slice(0, 40)}"; this gateway serves llm.generate`;
  if (typeof f.system !== 'string' || typeof f.prompt !== 'string' || f.prompt.length === 0) return 'system and prompt must be text';
  if (typeof f.max_tokens !== 'number' || !Number.isInteger(f.max_tokens) || f.max_tokens < 1) return 'max_tokens must be a whole number ≥ 1';
  if (typeof f.device !== 'string' || f.device.length > 64) return 'device must be a device id';
  return { system: f.system, prompt: f.prompt, maxTokens: f.max_tokens, deviceId: f.device };
}

function split(text: string): string[] {
  const max = 16 * 1024; // characters: at most 64 KiB of UTF-8
  if (text.length <= max) return [text];
  const out: string[] = [];
  for (let i = 0; i < text.length;) {
    let j = Math.min(text.length, i + max);
    if (j < text.length && /[\ud800-\udbff]/.test(text[j - 1])) j--;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}
