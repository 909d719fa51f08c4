// The shape of an uplink body handler (one file per WIRE.md body type, aedes-style) and what it sees.

import type { UpBody } from '../../firmware/core/wire/bodies.js';
import type { GatewayContext } from '../context.js';
import type { Downlink } from '../downlink.js';
import type { FirmwareService } from '../firmware/service.js';
import type { Offload } from '../offload/offload.js';
import type { DeviceRow, FrameCommit, FrameCommitResult } from '../store/store.js';

/** A frame that opened and decoded; its counter is accepted only by commit(). */
export interface AcceptedFrame {
  device: DeviceRow;
  counter: number;
  /** Unix ms the message reached the gateway. */
  receivedAt: number;
  /**
   * Accepts the counter and applies the body's effects in one durable transaction. Throws
   * FrameDropped when the counter was taken meanwhile or the device is no longer paired.
   */
  commit(effects?: Omit<FrameCommit, 'deviceId' | 'ks' | 'counter' | 'now'>): Promise<FrameCommitResult & { ok: true }>;
}

export interface HandlerContext extends GatewayContext {
  downlink: Downlink;
  /** The job queue (body 4, job). */
  offload: Offload;
  /** Firmware rollouts (body 9, fw-status; `firmware` events). */
  firmware?: FirmwareService;
  /** Sends a `time` body if the device sent t = 0 and has not had one for an hour. */
  timeSync(device: DeviceRow): Promise<void>;
}

export interface UplinkHandler<B extends UpBody = UpBody> {
  /** Why this body cannot be acted on (the frame is then dropped as `body`), or undefined. */
  check?(body: B): string | undefined;
  /** Acts on the body: commits the frame with its effects, then replies. */
  apply(frame: AcceptedFrame, body: B, gw: HandlerContext): Promise<void>;
}

/** The unix seconds a record stamped t = 0 gets: the gateway's receipt time. */
export function receiptSeconds(frame: AcceptedFrame): number {
  return Math.floor(frame.receivedAt / 1000);
}
