// The gateway's events: what happened, for the parts that act on it (the mesh signs records, the live
// stream shows changes, OpenADR and privacy follow pairings). One typed map names every event and what
// it carries; records travel as stored (CBOR values), and become JSON only at the HTTP edge.

import { EventEmitter } from 'node:events';
import type { MeshRecord } from './mesh/protocols.js';

/** A frame's records after their commit: every record, and the same frame by frame (`frames.flat()` equals `records`). */
export interface RecordsEvent {
  deviceId: string;
  /** `[seq, t, channel, value] | [seq, t, "event", kind, data] | [seq, t, "gap", last, reason]`, event data as the CBOR map stored. */
  records: MeshRecord[];
  frames: MeshRecord[][];
}

/** A summary of heads sent to peers (mesh/sync.ts). */
export interface SummaryEvent {
  /** 'public' (identities, registry, consents), or the operator id whose gateways the heads went to. */
  audience: string;
  peers: string[];
  kind: 'full' | 'delta';
  /** Its index among the parts of the summary for this audience, and how many parts there are. */
  part: number;
  parts: number;
  have: Uint8Array[];
  bytes: number;
}

export interface GatewayEventMap {
  records: RecordsEvent;
  /** The device's contiguous prefix acked up to `seq`. */
  ack: { deviceId: string; seq: number };
  hello: { deviceId: string; model: string; firmware: string; state: string };
  /** `device`: the device as GET /api/devices/:id shows it. */
  paired: { deviceId: string; device: object };
  revoked: { deviceId: string };
  /** The device's MQTT session ended without a goodbye (its will). */
  lwt: { deviceId: string };
  status: { deviceId: string; status: object };
  'guest-ack': { deviceId: string; cid: string; [field: string]: unknown };
  /** A frame refused (frames.ts: why). */
  drop: { deviceId: string; reason: string };
  /** A mesh message kept here: signed here, or received from `from` (a peer id). */
  'mesh-message': { protocol: string; deviceId: string; cid: string; from?: string };
  'mesh-summary': SummaryEvent;
  consent: { deviceId: string; cid: string; from?: string };
  'consent-deleted': { deviceId: string; deleted: number };
  /** Another operator's gateway paired this gateway's meter. */
  'pairing-conflict': { deviceId: string };
}

export type GatewayEventName = keyof GatewayEventMap;

/** An event emitter that only takes the events of GatewayEventMap, each with its own payload. */
export class GatewayEvents {
  readonly #e = new EventEmitter();

  on<K extends GatewayEventName>(event: K, listener: (e: GatewayEventMap[K]) => void): this {
    this.#e.on(event, listener);
    return this;
  }

  once<K extends GatewayEventName>(event: K, listener: (e: GatewayEventMap[K]) => void): this {
    this.#e.once(event, listener);
    return this;
  }

  off<K extends GatewayEventName>(event: K, listener: (e: GatewayEventMap[K]) => void): this {
    this.#e.off(event, listener);
    return this;
  }

  /** Whether anything listens to `event`: an event nobody hears need not be made (one per frame). */
  listens(event: GatewayEventName): boolean {
    return this.#e.listenerCount(event) > 0;
  }

  emit<K extends GatewayEventName>(event: K, e: GatewayEventMap[K]): boolean {
    return this.#e.emit(event, e);
  }

  /** Every listener of `event`, or of every event (closing). */
  removeAllListeners(event?: GatewayEventName): this {
    this.#e.removeAllListeners(event);
    return this;
  }

  listenerCount(event: GatewayEventName): number {
    return this.#e.listenerCount(event);
  }
}
