// Frame acceptance (WIRE.md "Frames") for messages on d/<id>/up: find the session, parse, check the
// replay window BEFORE opening, open, decode an uplink body, check it; only then does the body's
// handler commit the counter together with the body's effects. A dropped frame is counted and never
// acted on.

import { Body, BodyError, decodeBody, UPLINK_TYPES, type Paired, type UpBody } from '../firmware/core/wire/bodies.js';
import { Direction, openBox, parseFrame, ReplayWindow, type ParsedFrame } from '../firmware/core/wire/frame.js';
import { uplinkHandlers } from './handlers/index.js';
import type { AcceptedFrame, HandlerContext, UplinkHandler } from './handlers/handler.js';
import { FrameDropReason, type FrameDropReasonValue } from './metrics.js';
import { busy } from './busy.js';
import type { Pairing } from './pairing.js';
import type { DeviceRow } from './store/store.js';

/** Thrown by AcceptedFrame.commit when the frame must be dropped after all. */
export class FrameDropped extends Error {
  constructor(readonly reason: FrameDropReasonValue) {
    super(`frame dropped: ${reason}`);
  }
}

export class Frames {
  readonly #gw: HandlerContext;
  readonly #pairing: Pairing;
  /** Called after every accepted frame (connection tracking, resends). */
  readonly #onHeard: (device: DeviceRow) => void;

  constructor(gw: HandlerContext, pairing: Pairing, onHeard: (device: DeviceRow) => void = () => {}) {
    this.#gw = gw;
    this.#pairing = pairing;
    this.#onHeard = onHeard;
  }

  async onUp(id: string, payload: Uint8Array, receivedAt: number): Promise<void> {
    const gw = this.#gw;
    gw.metrics.frameReceived();
    const device = await gw.store.getDevice(id);
    const pending = await this.#pairing.pending(id, device);
    if (!pending && !device) return this.#drop(id, FrameDropReason.unknownDevice);
    if (!pending && device!.state === 'revoked') {
      this.#drop(id, FrameDropReason.revoked);
      // The device still thinks it is paired: it has not received its unpair yet.
      await gw.downlink.heard(device!);
      return;
    }
    const t0 = performance.now();
    const parsed = parseFrame(payload);
    if (typeof parsed === 'string') return this.#drop(id, parsed);
    const ks = pending ? pending.ks : device!.ks;
    const window = pending ? pending.window : ReplayWindow.from(device!.upHighest, device!.upBits);
    if (!window.check(parsed.counter)) return this.#drop(id, FrameDropReason.replay);
    const plain = openBox(parsed, ks, Direction.up);
    if (!plain) {
      // While re-pairing, a frame under the revoked session's key is from the revoked session.
      if (pending && device?.state === 'revoked' && openBox(parsed, device.ks, Direction.up)) {
        return this.#drop(id, FrameDropReason.revoked);
      }
      return this.#drop(id, FrameDropReason.forged);
    }
    let body: UpBody;
    try {
      body = decodeBody(plain, UPLINK_TYPES) as UpBody;
    } catch (e) {
      if (!(e instanceof BodyError)) throw e;
      gw.log.debug({ device: id, why: e.message }, 'frame body refused');
      return this.#drop(id, FrameDropReason.body);
    }
    const handler = uplinkHandlers[body.type] as UplinkHandler<UpBody>;
    const why = handler.check?.(body);
    busy('frame', t0);
    if (why) {
      gw.log.debug({ device: id, why }, 'frame body refused');
      return this.#drop(id, FrameDropReason.body);
    }

    if (pending) {
      // Pairing completes with the session's first frame, which carries `paired` (WIRE.md "Pairing" 5).
      if (body.type !== Body.paired) return this.#drop(id, FrameDropReason.body);
      const paired = await this.#pairing.complete(pending, parsed.counter, body as Paired);
      if (!paired) return this.#drop(id, FrameDropReason.replay);
      gw.metrics.frameAccepted(body.type);
      this.#onHeard(paired);
      return;
    }

    const frame = this.#accepted(device!, parsed, receivedAt);
    try {
      await handler.apply(frame, body, gw);
      if (!frame.committed) await frame.commit();
    } catch (e) {
      if (e instanceof FrameDropped) return this.#drop(id, e.reason);
      throw e;
    }
    gw.metrics.frameAccepted(body.type);
    this.#onHeard(device!);
    await gw.downlink.heard(device!);
  }

  #accepted(device: DeviceRow, parsed: ParsedFrame, receivedAt: number): AcceptedFrame & { committed: boolean } {
    const store = this.#gw.store;
    const gw = this.#gw;
    const frame = {
      device,
      counter: parsed.counter,
      receivedAt,
      committed: false,
      async commit(effects = {}) {
        if (frame.committed) throw new Error('a frame is committed once');
        const r = await store.commitFrame({ ...effects, deviceId: device.id, ks: device.ks, counter: parsed.counter, now: gw.now() });
        if (!r.ok) throw new FrameDropped(r.why === 'replay' ? FrameDropReason.replay : FrameDropReason.revoked);
        frame.committed = true;
        return r;
      },
    };
    return frame;
  }

  #drop(id: string, reason: FrameDropReasonValue): void {
    this.#gw.metrics.dropFrame(reason);
    this.#gw.events.emit('drop', { deviceId: id, reason });
    this.#gw.log.debug({ device: id, reason }, 'frame dropped');
  }
}
