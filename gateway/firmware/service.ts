// Firmware rollouts on the gateway (WIRE.md "Firmware updates"): releases are kept by image CID; a
// rollout offers one to a set of devices, first to a canary stage, then to the rest, and stops itself
// when too many devices roll back or fail. Each device's progress comes from its fw-status bodies
// (best effort: chunk requests, percent) and its `firmware` event records (durable outcomes). Chunks
// are sent only when a device asks for them, a window at a time, and are not kept: a device asks again
// for what it lacks, so a rollout to many devices holds no per-chunk state here.

import type { Logger } from 'pino';
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import { base32, toHex } from '../../firmware/core/bytes.js';
import { cidFromText } from '../../firmware/core/guests/cid.js';
import { decodeReleaseFile, imageMismatch } from '../../firmware/core/update/release.js';
import { FW_CHUNK_MAX } from '../../firmware/core/update/updates.js';
import { Body, type FwStatus } from '../../firmware/core/wire/bodies.js';
import type { Downlink } from '../downlink.js';
import type { DeviceRow, Store } from '../store/store.js';
import { TERMINAL, type FirmwareRelease, type Rollout, type RolloutTarget, type TargetState } from '../store/firmware.js';

/** Most chunks sent for one request (a device asks for FW_WINDOW). */
const MAX_WANT = 32;
/** Images kept in memory for chunking (the most recently used). */
const IMAGE_CACHE = 4;
/** A target not heard from for this long in a non-final state is shown as stalled. */
export const STALL_MS = 5 * 60_000;
const DEVICE_STATES: ReadonlySet<string> = new Set(['downloading', 'verified', 'rebooting', 'confirmed', 'rolled-back', 'failed', 'cancelled']);

export class FirmwareError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface DeployRequest {
  /** A version (X.Y.Z) or a release's text CID. */
  release: string;
  devices?: string[];
  label?: { key: string; value?: string }[];
  labelText?: string;
  canary?: number;
  maxFailures?: number;
}

export interface FirmwareServiceDeps {
  store: Store;
  downlink: Downlink;
  log: Logger;
  now(): number;
  registry: PromRegistry;
  /** Paired devices matching a selector (registry order). */
  devicesMatching(selector: { key: string; value?: string }[]): Promise<string[]>;
  /** Last time each device was heard, for `stalled` notes. */
}

export class FirmwareService {
  readonly #d: FirmwareServiceDeps;
  readonly #images = new Map<string, Uint8Array>();
  readonly #outcomes: Counter<'state'>;
  readonly #chunks: Counter;
  readonly #stopped: Counter;
  readonly #targets: Gauge<'state'>;
  /** Serialises rollout decisions (canary promotion, stops) so two outcomes arriving at once decide once. */
  #decide: Promise<void> = Promise.resolve();

  constructor(d: FirmwareServiceDeps) {
    this.#d = d;
    this.#outcomes = new Counter({
      name: 'gridlet_firmware_outcomes_total', help: 'Firmware update outcomes reported by devices (confirmed, rolled-back, failed, cancelled).',
      labelNames: ['state'], registers: [d.registry],
    });
    this.#chunks = new Counter({ name: 'gridlet_firmware_chunk_bytes_total', help: 'Firmware image bytes sent in fw-chunk bodies.', registers: [d.registry] });
    this.#stopped = new Counter({
      name: 'gridlet_firmware_rollouts_stopped_total', help: 'Rollouts that stopped themselves (too many rollbacks or failures) or were stopped.',
      registers: [d.registry],
    });
    const store = d.store;
    this.#targets = new Gauge({
      name: 'gridlet_firmware_rollout_devices', help: 'Devices in rollouts that are not over, by state.', labelNames: ['state'], registers: [d.registry],
      async collect() {
        this.reset();
        for (const r of await store.firmware.rollouts()) {
          if (r.state === 'done') continue;
          for (const t of await store.firmware.targets(r.id)) this.inc({ state: t.state });
        }
      },
    });
  }

  // ------------------------------------------------------------ releases

  /** Keeps a release file (gridlet firmware sign); refuses one whose image is not the manifest's. */
  async addRelease(file: Uint8Array): Promise<{ release: FirmwareRelease; outcome: 'added' | 'unchanged' }> {
    let parsed;
    try {
      parsed = decodeReleaseFile(file);
    } catch (e) {
      throw new FirmwareError(422, `release refused: ${(e as Error).message}`);
    }
    const bad = imageMismatch(parsed.manifest, parsed.image);
    if (bad) throw new FirmwareError(422, `release refused: ${bad}`);
    if (parsed.release.signature.length !== 64) throw new FirmwareError(422, 'release refused: the signature must be 64 bytes (Ed25519)');
    const m = parsed.manifest;
    const release: FirmwareRelease = {
      cid: 'b' + base32(m.cid), version: m.version, models: m.models, minVersion: m.minVersion, size: m.size, keyId: toHex(m.keyId),
      created: m.created, manifest: parsed.release.manifest, signature: parsed.release.signature, addedAt: this.#d.now(),
    };
    const outcome = await this.#d.store.firmware.putRelease(release, parsed.image);
    this.#d.log.info({ cid: release.cid, version: release.version, size: release.size, outcome }, 'firmware release stored');
    return { release, outcome };
  }

  async #releaseFor(text: string): Promise<FirmwareRelease> {
    const fw = this.#d.store.firmware;
    if (text.startsWith('b') && cidFromText(text)) {
      const r = await fw.release(text);
      if (!r) throw new FirmwareError(404, `no firmware release ${text} on this gateway; upload it first (gridlet firmware upload FILE)`);
      return r;
    }
    const list = await fw.releaseByVersion(text);
    if (!list.length) throw new FirmwareError(404, `no firmware release ${text.slice(0, 40)} on this gateway; upload it first (gridlet firmware upload FILE)`);
    if (list.length > 1) throw new FirmwareError(409, `${list.length} releases are version ${text} (${list.map((r) => r.cid).join(', ')}); name one by its CID`);
    return list[0];
  }

  async #image(cid: string): Promise<Uint8Array | undefined> {
    let b = this.#images.get(cid);
    if (b) {
      this.#images.delete(cid);
      this.#images.set(cid, b);
      return b;
    }
    b = await this.#d.store.firmware.image(cid);
    if (!b) return undefined;
    this.#images.set(cid, b);
    while (this.#images.size > IMAGE_CACHE) this.#images.delete(this.#images.keys().next().value!);
    return b;
  }

  // ------------------------------------------------------------ rollouts

  async deploy(req: DeployRequest): Promise<Rollout> {
    const release = await this.#releaseFor(req.release);
    const store = this.#d.store;
    let ids: string[];
    let selector: string;
    if (req.devices?.length) {
      ids = [...new Set(req.devices)];
      selector = ids.join(',');
    } else if (req.label) {
      ids = await this.#d.devicesMatching(req.label);
      selector = `label ${req.labelText ?? ''}`;
      if (!ids.length) throw new FirmwareError(404, `no paired device matches label ${req.labelText ?? ''}`);
    } else throw new FirmwareError(400, 'name the devices (devices: [ids]) or a label selector (label: "key=value")');
    const canary = req.canary ?? 0;
    const maxFailures = req.maxFailures ?? 1;
    if (!Number.isSafeInteger(canary) || canary < 0) throw new FirmwareError(400, 'canary must be a whole number of devices (0: no canary stage)');
    if (!Number.isSafeInteger(maxFailures) || maxFailures < 0) throw new FirmwareError(400, 'maxFailures must be a whole number (0: never stop)');
    const rows: DeviceRow[] = [];
    for (const id of ids) {
      const row = await store.getDevice(id);
      if (!row || row.state !== 'paired') throw new FirmwareError(409, `device ${id} is not paired on this gateway; pair it first or leave it out`);
      rows.push(row);
    }
    const now = this.#d.now();
    const inCanary = canary > 0 && canary < rows.length ? canary : 0;
    const targets: Omit<RolloutTarget, 'rolloutId'>[] = rows.map((row, i) => {
      const stage: RolloutTarget['stage'] = inCanary && i >= inCanary ? 'rest' : 'canary';
      const cannot = !row.capabilities.includes('ota')
        ? `this device does not take firmware over the air (no "ota" capability in its Hello; it runs ${row.firmware})`
        : !release.models.includes(row.model) ? `wrong model: the release is for ${release.models.join(', ')}, this device is ${row.model}` : null;
      return {
        deviceId: row.id, stage, state: cannot ? 'failed' : 'pending', offset: 0, reason: cannot, fromVersion: row.firmware, updatedAt: now,
      };
    });
    const rollout = await store.firmware.createRollout({
      cid: release.cid, version: release.version, canary: inCanary, maxFailures, state: inCanary ? 'canary' : 'running', reason: null,
      selector, createdAt: now, updatedAt: now,
    }, targets);
    this.#d.log.info({ rollout: rollout.id, version: release.version, devices: rows.length, canary: inCanary }, 'firmware rollout started');
    for (const t of targets) if (t.state === 'pending' && (!inCanary || t.stage === 'canary')) await this.#offer(rollout, release, t.deviceId);
    await this.#evaluate(rollout.id);
    return (await store.firmware.rollout(rollout.id))!;
  }

  async #offer(rollout: Rollout, release: FirmwareRelease, deviceId: string): Promise<void> {
    const row = await this.#d.store.getDevice(deviceId);
    if (!row || row.state !== 'paired') {
      await this.#d.store.firmware.setTarget(rollout.id, deviceId, 'failed', 0, 'the device is no longer paired', this.#d.now());
      return;
    }
    await this.#d.downlink.send(row, { type: Body.fwOffer, manifest: release.manifest, signature: release.signature });
    await this.#d.store.firmware.setTarget(rollout.id, deviceId, 'offered', 0, null, this.#d.now());
  }

  /** Stops a rollout: nothing more is offered; devices still downloading are told to stop. */
  async stop(id: number, reason: string): Promise<Rollout> {
    const fw = this.#d.store.firmware;
    const r = await fw.rollout(id);
    if (!r) throw new FirmwareError(404, `no rollout ${id} on this gateway (gridlet firmware status lists them)`);
    if (r.state === 'stopped' || r.state === 'done') return r;
    await this.#halt(r, reason);
    return (await fw.rollout(id))!;
  }

  async #halt(r: Rollout, reason: string): Promise<void> {
    const fw = this.#d.store.firmware;
    const now = this.#d.now();
    await fw.updateRollout(r.id, 'stopped', reason, now);
    this.#stopped.inc();
    this.#d.log.warn({ rollout: r.id, version: r.version, reason }, 'firmware rollout stopped');
    const cid = cidFromText(r.cid)!;
    for (const t of await fw.targets(r.id)) {
      if (t.state === 'pending') await fw.setTarget(r.id, t.deviceId, 'cancelled', 0, `rollout stopped: ${reason}`, now);
      else if (t.state === 'offered' || t.state === 'downloading' || t.state === 'verified') {
        const row = await this.#d.store.getDevice(t.deviceId);
        if (row?.state === 'paired') await this.#d.downlink.send(row, { type: Body.fwCancel, cid });
      }
    }
  }

  /** Promotes a finished canary stage, stops on too many failures, closes a rollout whose devices all ended. */
  #evaluate(id: number): Promise<void> {
    const next = this.#decide.then(async () => {
      const fw = this.#d.store.firmware;
      const r = await fw.rollout(id);
      if (!r || r.state === 'stopped' || r.state === 'done') return;
      const targets = await fw.targets(id);
      const bad = targets.filter((t) => t.state === 'rolled-back' || (t.state === 'failed' && t.reason !== null && !t.reason.startsWith('this device does not take'))).length;
      const rolledBack = targets.filter((t) => t.state === 'rolled-back').length;
      if (r.maxFailures > 0 && bad >= r.maxFailures) {
        await this.#halt(r, `${bad} device${bad === 1 ? '' : 's'} failed or rolled back (${rolledBack} rolled back; the limit is ${r.maxFailures})${r.state === 'canary' ? ' in the canary stage' : ''}`);
        return;
      }
      if (r.state === 'canary' && targets.filter((t) => t.stage === 'canary').every((t) => TERMINAL.has(t.state))) {
        await fw.updateRollout(id, 'running', null, this.#d.now());
        this.#d.log.info({ rollout: id }, 'firmware canary stage passed; offering to the rest');
        const release = await fw.release(r.cid);
        if (release) for (const t of targets) if (t.stage === 'rest' && t.state === 'pending') await this.#offer({ ...r, state: 'running' }, release, t.deviceId);
        return;
      }
      if (targets.every((t) => TERMINAL.has(t.state))) await fw.updateRollout(id, 'done', null, this.#d.now());
    });
    this.#decide = next.catch(() => {});
    return next;
  }

  // ------------------------------------------------------------ from devices

  /** A fw-status body: progress, a request for chunks, or an outcome. */
  async onStatus(device: DeviceRow, b: FwStatus): Promise<void> {
    const cid = b.cid.length ? 'b' + base32(b.cid) : '';
    if (b.want > 0 && cid) {
      const image = await this.#image(cid);
      if (image) {
        const want = Math.min(b.want, MAX_WANT);
        for (let i = 0, at = b.offset; i < want && at < image.length; i++, at += FW_CHUNK_MAX) {
          const bytes = image.subarray(at, Math.min(image.length, at + FW_CHUNK_MAX));
          await this.#d.downlink.send(device, { type: Body.fwChunk, cid: b.cid, offset: at, bytes });
          this.#chunks.inc(bytes.length);
        }
      }
    }
    if (!cid || !DEVICE_STATES.has(b.state)) return;
    await this.#apply(device.id, cid, b.state as TargetState, b.offset, b.reason ?? null);
  }

  /** A `firmware` event record (durable outcome). */
  async onEvent(deviceId: string, data: { [k: string]: unknown } | undefined): Promise<void> {
    if (!data || typeof data.state !== 'string' || typeof data.version !== 'string') return;
    const state = data.state;
    if (!TERMINAL.has(state)) return;
    const reason = typeof data.reason === 'string' ? data.reason : null;
    for (const t of await this.#d.store.firmware.activeTargets(deviceId)) {
      const r = await this.#d.store.firmware.rollout(t.rolloutId);
      if (r?.version === data.version) await this.#apply(deviceId, r.cid, state as TargetState, 0, reason);
    }
  }

  async #apply(deviceId: string, cid: string, state: TargetState, offset: number, reason: string | null): Promise<void> {
    const fw = this.#d.store.firmware;
    for (const t of await fw.activeTargets(deviceId)) {
      const r = await fw.rollout(t.rolloutId);
      if (!r || r.cid !== cid) continue;
      if (TERMINAL.has(t.state)) {
        // Said again (a resent status, then the durable event): nothing new.
        if (t.state === state) return;
        // A device that confirmed may still report later that a bad trial rolled back, never the reverse.
        if (!(t.state === 'cancelled' && state !== 'cancelled')) return;
      }
      await fw.setTarget(t.rolloutId, deviceId, state, state === 'downloading' ? offset : TERMINAL.has(state) ? 0 : t.offset, reason, this.#d.now());
      if (TERMINAL.has(state)) {
        this.#outcomes.inc({ state });
        this.#d.log.info({ device: deviceId, rollout: t.rolloutId, version: r.version, state, reason }, 'firmware update ended');
        await this.#evaluate(t.rolloutId);
      }
      return;
    }
  }

  // ------------------------------------------------------------ views

  async releasesJson(): Promise<unknown[]> {
    return (await this.#d.store.firmware.releases()).map(releaseJson);
  }

  async rolloutJson(id: number): Promise<unknown> {
    const fw = this.#d.store.firmware;
    const r = await fw.rollout(id);
    if (!r) throw new FirmwareError(404, `no rollout ${id} on this gateway (gridlet firmware status lists them)`);
    const release = await fw.release(r.cid);
    const now = this.#d.now();
    const devices = [];
    const counts: { [state: string]: number } = {};
    for (const t of await fw.targets(id)) {
      counts[t.state] = (counts[t.state] ?? 0) + 1;
      const row = await this.#d.store.getDevice(t.deviceId);
      const percent = t.state === 'downloading' && release ? Math.floor((t.offset / release.size) * 100)
        : t.state === 'verified' || t.state === 'rebooting' || t.state === 'confirmed' ? 100 : null;
      devices.push({
        deviceId: t.deviceId, stage: t.stage, state: t.state, percent, reason: t.reason, from: t.fromVersion, running: row?.firmware ?? null,
        updatedAt: new Date(t.updatedAt).toISOString(), lastSeen: row?.lastSeen ? new Date(row.lastSeen).toISOString() : null,
        note: note(t, row, now),
      });
    }
    return { ...rolloutBase(r), counts, devices };
  }

  async rolloutsJson(): Promise<unknown[]> {
    const out = [];
    for (const r of await this.#d.store.firmware.rollouts()) {
      const counts: { [state: string]: number } = {};
      for (const t of await this.#d.store.firmware.targets(r.id)) counts[t.state] = (counts[t.state] ?? 0) + 1;
      out.push({ ...rolloutBase(r), counts });
    }
    return out;
  }
}

function rolloutBase(r: Rollout) {
  return {
    id: r.id, cid: r.cid, version: r.version, state: r.state, reason: r.reason, canary: r.canary, maxFailures: r.maxFailures,
    selector: r.selector, createdAt: new Date(r.createdAt).toISOString(), updatedAt: new Date(r.updatedAt).toISOString(),
  };
}

export function releaseJson(r: FirmwareRelease) {
  return {
    cid: r.cid, version: r.version, models: r.models, minVersion: r.minVersion, size: r.size, keyId: r.keyId,
    created: new Date(r.created * 1000).toISOString(), addedAt: new Date(r.addedAt).toISOString(),
  };
}

/** Why a device is where it is, for a rollout that seems stuck (the operator's first question). */
function note(t: RolloutTarget, row: DeviceRow | undefined, now: number): string | null {
  if (TERMINAL.has(t.state)) return null;
  if (t.state === 'pending') return 'waiting for the canary stage to end';
  const seen = row?.lastSeen ?? 0;
  const ago = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 3_600_000)} h`);
  if (seen < t.updatedAt && now - t.updatedAt > 60_000) return `the device has not been heard since ${t.state === 'offered' ? 'the offer' : `it reported ${t.state}`} (${ago(now - t.updatedAt)} ago): offline?`;
  if (now - t.updatedAt > STALL_MS) {
    if (t.state === 'offered') return `offered ${ago(now - t.updatedAt)} ago; the device is heard but has not answered the offer (does it run a firmware that takes updates?)`;
    if (t.state === 'downloading') return `stalled: no chunk asked for in ${ago(now - t.updatedAt)}`;
    if (t.state === 'rebooting') return `restarting into the new image for ${ago(now - t.updatedAt)}: it has a trial period to reach this gateway`;
  }
  return null;
}
