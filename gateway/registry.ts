// The device registry as operators see it: paired and revoked devices from the store, and devices
// `seen` (Hello received, not paired) from this gateway's Hello table (ARCHITECTURE.md).

import { Body } from '../firmware/core/wire/bodies.js';
import { isDeviceId } from '../firmware/core/wire/topics.js';
import type { GatewayContext } from './context.js';
import type { Downlink } from './downlink.js';
import { isoTime } from './json.js';
import type { HelloEntry, Pairing } from './pairing.js';
import { LABEL_KEY, matchesSelector, type Labels, type Selector } from './labels.js';
import type { DeviceRow } from './store/store.js';

export interface DeviceJson {
  id: string;
  state: 'paired' | 'revoked' | 'seen';
  gateway: string | null;
  labels: Labels;
  model: string;
  firmware: string;
  capabilities: string[];
  firstSeen: string | null;
  lastSeen: string | null;
  pairedAt: string | null;
  revokedAt: string | null;
  ackedSeq: number;
  connected: boolean;
  status: DeviceRow['status'];
  guests: DeviceRow['guests'];
  /**
   * Pairings by gateways of another operator made while the device's pairing stood (device-registry-v2):
   * they displace nothing and unpair nothing; the operators settle it.
   */
  conflicts: PairingConflictJson[];
}

export interface PairingConflictJson {
  gateway: string;
  /** The operator's id, and the name this gateway knows it by. */
  operator: string;
  operatorName: string | null;
  pairedAt: string | null;
}

const MAX_LABELS = 64;
const MAX_LABEL_VALUE = 256;

/** Validates a labels object; returns it or the reason it is refused. */
export function checkLabels(v: unknown): Labels | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'labels must be an object of "key": "value" text pairs';
  const keys = Object.keys(v);
  if (keys.length > MAX_LABELS) return `at most ${MAX_LABELS} labels per device`;
  const out: Labels = {};
  for (const k of keys) {
    const val = (v as { [k: string]: unknown })[k];
    if (!LABEL_KEY.test(k)) return `label key "${k.slice(0, 80)}" must be 1-63 characters A-Z a-z 0-9 . _ / - starting with a letter or digit`;
    if (typeof val !== 'string' || val.length > MAX_LABEL_VALUE) return `label "${k}" must have a text value of at most ${MAX_LABEL_VALUE} characters`;
    out[k] = val;
  }
  return out;
}

/** What the mesh's device registry says about a device: the same on every gateway of a mesh (MESH.md). */
export interface MeshRegistryView {
  deviceState(id: string): MeshDeviceView | undefined;
  devices(): MeshDeviceView[];
  /** Revokes through the mesh: 'forbidden' when this gateway may not revoke the device's pairing. */
  revokeDevice(id: string): Promise<'revoked' | 'forbidden' | undefined>;
  /** The name this gateway knows an operator (id) by. */
  nameOf(id: string): string | undefined;
}

export interface MeshDeviceView {
  id: string;
  state: 'paired' | 'revoked';
  gateway: string;
  operator: string;
  conflicts: { gateway: string; operator: string; pairedAt: number }[];
  model: string;
  firmware: string;
  /** Unix ms. */
  pairedAt: number;
  revokedAt: number | null;
}

export class Registry {
  /** The mesh's registry, once the gateway has one: state and pairing gateway come from it. */
  readonly #mesh: () => MeshRegistryView | undefined;
  readonly #ctx: GatewayContext;
  readonly #pairing: Pairing;
  readonly #downlink: Downlink;
  readonly #connected: (id: string) => boolean;

  constructor(
    ctx: GatewayContext, pairing: Pairing, downlink: Downlink, connected: (id: string) => boolean,
    mesh: () => MeshRegistryView | undefined = () => undefined,
  ) {
    this.#mesh = mesh;
    this.#ctx = ctx;
    this.#pairing = pairing;
    this.#downlink = downlink;
    this.#connected = connected;
  }

  deviceJson(d: DeviceRow): DeviceJson {
    // This gateway's own latest pairing is described by its row; another gateway's by the mesh.
    const cur = this.#mesh()?.deviceState(d.id);
    const m = cur && cur.gateway !== this.#ctx.identity.id ? cur : undefined;
    return {
      id: d.id, state: m?.state ?? d.state, gateway: m?.gateway ?? d.gatewayId, labels: d.labels, model: d.model, firmware: d.firmware,
      capabilities: d.capabilities, firstSeen: isoTime(d.firstSeen), lastSeen: isoTime(d.lastSeen),
      pairedAt: isoTime(d.pairedAt), revokedAt: isoTime(d.revokedAt), ackedSeq: d.ackedSeq,
      connected: this.#connected(d.id), status: d.status, guests: d.guests, conflicts: this.#conflicts(cur),
    };
  }

  #conflicts(m: MeshDeviceView | undefined): PairingConflictJson[] {
    return (m?.conflicts ?? []).map((c) => ({
      gateway: c.gateway, operator: c.operator, operatorName: this.#mesh()?.nameOf(c.operator) ?? null, pairedAt: isoTime(c.pairedAt),
    }));
  }

  /** A device this gateway knows only from the mesh. */
  meshJson(m: MeshDeviceView): DeviceJson {
    return {
      id: m.id, state: m.state, gateway: m.gateway, labels: {}, model: m.model, firmware: m.firmware, capabilities: [],
      firstSeen: null, lastSeen: null, pairedAt: isoTime(m.pairedAt), revokedAt: isoTime(m.revokedAt), ackedSeq: 0,
      connected: false, status: null, guests: {}, conflicts: this.#conflicts(m),
    };
  }

  seenJson(e: HelloEntry): DeviceJson {
    return {
      id: e.id, state: 'seen', gateway: this.#ctx.identity.id, labels: {}, model: e.hello.model,
      firmware: e.hello.firmware, capabilities: e.hello.capabilities, firstSeen: isoTime(e.firstSeen),
      lastSeen: isoTime(e.receivedAt), pairedAt: null, revokedAt: null, ackedSeq: 0,
      connected: this.#connected(e.id), status: null, guests: {}, conflicts: [],
    };
  }

  async list(selector: Selector = []): Promise<DeviceJson[]> {
    const rows = await this.#ctx.store.listDevices();
    const known = new Set(rows.map((r) => r.id));
    const all = rows.map((r) => this.deviceJson(r));
    for (const m of this.#mesh()?.devices() ?? []) if (!known.has(m.id)) known.add(m.id), all.push(this.meshJson(m));
    for (const e of await this.#pairing.seen()) if (!known.has(e.id)) all.push(this.seenJson(e));
    all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return all.filter((d) => matchesSelector(d.labels, selector));
  }

  async get(id: string): Promise<DeviceJson | undefined> {
    if (!isDeviceId(id)) return undefined;
    const row = await this.#ctx.store.getDevice(id);
    if (row) return this.deviceJson(row);
    const m = this.#mesh()?.deviceState(id);
    if (m) return this.meshJson(m);
    const e = await this.#pairing.hello(id);
    return e && this.seenJson(e);
  }

  async countByState(): Promise<{ paired: number; revoked: number; seen: number }> {
    const c = await this.#ctx.store.countDevices();
    const hellos = await this.#pairing.seen();
    if (!hellos.length) return { ...c, seen: 0 };
    // One read of the device table, not one look-up per Hello: a fleet coming up has thousands.
    const known = new Set(await this.#ctx.store.deviceIds());
    let seen = 0;
    for (const e of hellos) if (!known.has(e.id)) seen++;
    return { ...c, seen };
  }

  /**
   * Revokes a device: it is refused from now on, and an `unpair` sealed with its last session key
   * is kept and resent while the device still speaks that session (until it Hellos again).
   */
  async revoke(id: string, o: { fromMesh?: boolean } = {}): Promise<DeviceJson | 'forbidden' | undefined> {
    if (!isDeviceId(id)) return undefined;
    const before = await this.#ctx.store.getDevice(id);
    if (before?.state !== 'paired' && this.#mesh()?.deviceState(id)?.state === 'paired') {
      // Paired through another gateway: revoked by a signed revocation every gateway applies.
      if ((await this.#mesh()!.revokeDevice(id)) === 'forbidden') return 'forbidden';
    }
    if (!before) {
      const m = this.#mesh()?.deviceState(id);
      return m && this.meshJson(m);
    }
    const row = (await this.#ctx.store.revoke(id, this.#ctx.now()))!;
    if (before.state === 'paired') {
      // The signed revocation goes out at once: every gateway of the mesh refuses the device within 2 s.
      const signed = o.fromMesh ? undefined : this.#mesh()?.revokeDevice(id).catch((e: Error) => {
        this.#ctx.log.error({ device: id, err: e.message }, 'mesh: revocation message not signed');
      });
      await this.#downlink.send(row, { type: Body.unpair });
      await signed;
      this.#ctx.events.emit('revoked', { deviceId: id });
      this.#ctx.log.info({ device: id }, 'device revoked');
    }
    return this.deviceJson(row);
  }

  async setLabels(id: string, labels: Labels): Promise<DeviceJson | 'not-paired' | undefined> {
    if (!isDeviceId(id)) return undefined;
    const row = await this.#ctx.store.setLabels(id, labels);
    // Group policies follow labels: the device's sharing policy may have changed with them.
    if (row) await this.#ctx.privacy.labelsChanged(id);
    if (row) return this.deviceJson(row);
    return (await this.#pairing.hello(id)) ? 'not-paired' : undefined;
  }
}
