// The shape of a protocol handler (one module per protocol of docs/protocols/, aedes-style, behind the
// dispatch table in index.ts): it judges a message whose envelope and signature already verified, keeps
// it in the block store when it holds, and acts on it.

import type { From, MeshCore, Received } from '../core.js';
import type { GridMessage } from '../message.js';

/** What the mesh lets a handler call back into (fetching a message's ancestors, registry and consent effects). */
export interface MeshHooks {
  /** Fetches a block from peers (the hinted one first) as an ancestor of a held message. */
  fetchAncestor(cid: Uint8Array, peer: string | undefined): void;
  /** A device's registry state changed: this gateway refuses it if it no longer holds its pairing. */
  registryChanged(deviceId: string): Promise<void>;
  /** A device's consent changed: what this gateway may no longer keep goes. */
  consentChanged(deviceId: string): Promise<void>;
  /** Keeps a message aside until a pairing of its device is known ('pending'). */
  awaitPairing(deviceId: string, m: GridMessage, from: From): Received;
}

export interface ProtocolHandler {
  apply(core: MeshCore, hooks: MeshHooks, m: GridMessage, from: From): Promise<Received>;
}

/** The block-store entry for a message. */
export function blockOf(core: MeshCore, m: GridMessage, kind: 'readings' | 'registry' | 'identity' | 'guest' | 'opaque' | 'aggregate' | 'consent', deviceId: string | null = null) {
  return { cid: m.cid, bytes: m.bytes, kind, deviceId, receivedAt: core.ctx.now() };
}

/**
 * Judges a message that writes a device's history (readings, aggregates; device-registry-v2 "History"):
 * its signer bound to the gateway it names, of the operator holding the device's pairing (any that held
 * it, for an ancestor), not a replaced key, the device not revoked. Undefined when it may be kept.
 */
export function judgeHistory(core: MeshCore, hooks: MeshHooks, m: GridMessage, from: From, device: string, gateway: string): Received | undefined {
  if (!core.ids.bound(m.kid, gateway)) return 'untrusted';
  const writes = core.writes(device, m.kid, !!from.ancestor);
  if (writes === 'unknown') return hooks.awaitPairing(device, m, from);
  if (writes !== 'yes') return writes;
  if (core.crdt.state(device)?.state === 'revoked' && !from.ancestor) return 'revoked';
  return undefined;
}
