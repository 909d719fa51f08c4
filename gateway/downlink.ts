// Downlink frames (WIRE.md "Frames", "Records and acks"): sealed with the device's Ks under a
// persisted per-device counter and fresh salt, published on d/<id>/down at QoS 1. Bodies that change
// the device's state are kept until a down-ack covers the counter they were last sent with, and are
// re-sealed under a new counter when the device is next heard.

import { randomBytes } from './random.js';
import { Body, encodeBody, type DownBody } from '../firmware/core/wire/bodies.js';
import { Direction, sealFrame } from '../firmware/core/wire/frame.js';
import { topics } from '../firmware/core/wire/topics.js';
import type { GatewayContext } from './context.js';
import { busy } from './busy.js';

/** WIRE.md: config, guest-*, dr-event, unpair, tariff, fw-offer, fw-cancel. */
export const KEPT_BODIES: ReadonlySet<number> = new Set([
  Body.config, Body.guestOffer, Body.guestChunk, Body.guestRemove, Body.drEvent, Body.unpair, Body.tariff, Body.fwOffer, Body.fwCancel,
]);

export interface Addressee {
  id: string;
  ks: Uint8Array;
}

export class Downlink {
  readonly #ctx: GatewayContext;

  constructor(ctx: GatewayContext) {
    this.#ctx = ctx;
  }

  /** Sends a body; a state-changing one is kept until acknowledged. Returns the counter used. */
  async send(to: Addressee, body: DownBody): Promise<number> {
    const bytes = encodeBody(body);
    if (KEPT_BODIES.has(body.type)) {
      const kept = await this.#ctx.store.addDownlink(to.id, body.type, bytes, this.#ctx.now());
      this.#publish(to, kept.counter, body.type, bytes);
      return kept.counter;
    }
    const counter = await this.#ctx.store.nextDownCounter(to.id);
    this.#publish(to, counter, body.type, bytes);
    return counter;
  }

  /** Sends a body under a counter already reserved (an ack's, reserved with the records' commit). */
  sendWithCounter(to: Addressee, counter: number, body: DownBody): void {
    this.#publish(to, counter, body.type, encodeBody(body));
  }

  /** The device was heard: resend what it has not acknowledged, each at most once per resend interval. */
  async heard(to: Addressee): Promise<void> {
    const now = this.#ctx.now();
    const pending = await this.#ctx.store.pendingDownlinks(to.id);
    for (const d of pending) {
      if (now - d.sentAt < this.#ctx.tuning.resendIntervalMs) continue;
      // Replicas may hear the device at once: only one of them resends.
      const again = await this.#ctx.store.resendDownlink(d.id, now, now - this.#ctx.tuning.resendIntervalMs + 1);
      if (again) this.#publish(to, again.counter, again.type, again.body);
    }
  }

  #publish(to: Addressee, counter: number, type: number, body: Uint8Array): void {
    // The counter is persisted before we get here (store), so a crash never reuses it.
    const t0 = performance.now();
    const frame = sealFrame(body, counter, randomBytes(8), to.ks, Direction.down);
    this.#ctx.publish(topics.down(this.#ctx.prefix, to.id), frame, to.id);
    this.#ctx.metrics.downlinkSent(type);
    busy('ack', t0);
  }
}
