// What the operator routes that send state-changing downlinks share (guests, demand response, tariff,
// config): finding a paired device, checking a body fits one frame, turning a FieldError into a 400.
// The bodies go through Downlink.send, which keeps them until a down-ack covers them (WIRE.md).
// ops-routes.ts puts the routes together.

import type { Logger } from 'pino';
import { CborError } from '../../firmware/core/cbor.js';
import { encodeBody, type DownBody } from '../../firmware/core/wire/bodies.js';
import { Direction, MAX_COUNTER, MAX_FRAME_BYTES, sealFrame } from '../../firmware/core/wire/frame.js';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { FieldError } from '../dr/field.js';
import { NothingToSend } from '../dr/openadr.js';
import type { Downlink } from '../downlink.js';
import type { Registry } from '../registry.js';
import type { DeviceRow, Store } from '../store/store.js';
import { HttpError } from './server.js';

export interface DeviceOpsDeps {
  registry: Registry;
  store: Store;
  downlink: Downlink;
  log: Logger;
  /** Unix ms. */
  now(): number;
}

export const ID = '([^/]+)';

export function deviceIdParam(text: string): string {
  if (!isDeviceId(text)) throw new HttpError(404, `no device "${text.slice(0, 40)}": a device id is 16 characters a-z and 2-7`);
  return text;
}

/** The device row to send to: 404 when unknown, 409 when it is not paired (seen only, or revoked). */
export async function pairedDevice(d: DeviceOpsDeps, idText: string): Promise<DeviceRow> {
  const id = deviceIdParam(idText);
  const row = await d.store.getDevice(id);
  if (row?.state === 'paired') return row;
  if (row) throw new HttpError(409, `device ${id} is revoked; pair it again before sending it anything`);
  if (await d.registry.get(id)) throw new HttpError(409, `device ${id} is not paired (only its Hello was seen); pair it first: gridlet pair ${id} <code>`);
  throw new HttpError(404, `no device ${id} on this gateway`);
}

export function objectBody(body: unknown, what: string): { [k: string]: unknown } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, `${what}: the body must be a JSON object`);
  return body as { [k: string]: unknown };
}

const PROBE_KEY = new Uint8Array(32);
const PROBE_SALT = new Uint8Array(8);

/** Size of the frame that carries `body` at the largest counter, or undefined when it is over 2048 bytes. */
export function frameSize(body: DownBody): number | undefined {
  try {
    return sealFrame(encodeBody(body, 2 * MAX_FRAME_BYTES), MAX_COUNTER, PROBE_SALT, PROBE_KEY, Direction.down).length;
  } catch (e) {
    if (e instanceof RangeError || e instanceof CborError) return undefined;
    throw e;
  }
}

/** Refuses (400) a body a device could not receive in one frame: a kept downlink would fail on every resend. */
export function checkFits(body: DownBody, what: string): void {
  if (frameSize(body) === undefined) throw new HttpError(400, `${what} does not fit one ${MAX_FRAME_BYTES}-byte frame (WIRE.md); send less at once`);
}

/** Runs a parser of the operator's JSON: FieldError → 400 naming the field, NothingToSend → 422. */
export function parsed<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof FieldError) throw new HttpError(400, what ? `${what}: ${e.message}` : e.message);
    if (e instanceof NothingToSend) throw new HttpError(422, e.message);
    throw e;
  }
}

/** Sends bodies in order to one device (each kept until acknowledged). */
export async function sendAll(d: DeviceOpsDeps, device: DeviceRow, bodies: DownBody[]): Promise<void> {
  for (const b of bodies) await d.downlink.send(device, b);
}
