// The gateway's privacy service: which sharing policy applies to a device (its own, else the
// first group whose selector matches its labels, highest priority first, else DEFAULT_POLICY), the
// operator's changes to policies, notification of every change to whoever enforces them (the mesh),
// the config downlink that tells the device its policy (`config get privacy` on the console), and the
// audit log of disclosures.
//
//   ctx.privacy.effectivePolicy(id)            → the policy in force for a device (never throws)
//   ctx.privacy.resolve(id)                    → { policy, source: 'device' | 'group:<selector>' | 'default' }
//   ctx.privacy.onChange((ids | 'all') => …)   → called after each change, with the devices it affects
//   ctx.privacy.recordDisclosure(d)            → appends to the audit log (never throws)

import type { Logger } from 'pino';
import { MAX_CONFIG_VALUE } from '../../firmware/core/console/commands/config.js';
import { Body, type DownBody } from '../../firmware/core/wire/bodies.js';
import type { Disclosure, GroupPolicy, Labels, Store } from '../store/store.js';
import { DEFAULT_POLICY, matchesSelector, PolicyError, summary, type PrivacyPolicy } from './policy.js';
import { same } from '../slab.js';

/** The config key the device keeps its policy summary under (CONSOLE.md `config get privacy`). */
export const PRIVACY_CONFIG_KEY = 'privacy';

/** What a selector may look like: a label key, or `key=value` (registry.ts's label grammar, loosely). */
const SELECTOR = /^[A-Za-z0-9._/-]{1,63}(=[^\s=]{0,63})?$/;

/** How long group policies read from the store are reused (a replica's change is seen within this). */
export const GROUPS_TTL_MS = 500;

export type PolicySource = 'device' | `group:${string}` | 'default';

export interface ResolvedPolicy {
  policy: PrivacyPolicy;
  source: PolicySource;
}

export type ChangeListener = (devices: string[] | 'all') => void;

export interface PrivacyServiceOptions {
  store: Store;
  log: Logger;
  /** Unix ms. */
  now(): number;
  /** Sends a body to a paired device (kept until acknowledged): the gateway's downlink. */
  send?: (deviceId: string, body: DownBody) => Promise<void>;
}

export function checkSelector(selector: unknown): string {
  if (typeof selector !== 'string' || !SELECTOR.test(selector)) {
    throw new PolicyError('"selector" is a label key or key=value, e.g. "feeder=F12" or "pilot"');
  }
  return selector;
}

export function resolveWith(labels: Labels, own: PrivacyPolicy | undefined, groups: GroupPolicy[]): ResolvedPolicy {
  if (own) return { policy: own, source: 'device' };
  for (const g of groups) if (matchesSelector(labels, g.selector)) return { policy: g.policy, source: `group:${g.selector}` };
  return { policy: DEFAULT_POLICY, source: 'default' };
}

export class PrivacyService {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #listeners = new Set<ChangeListener>();
  /** The summary this process last sent each device. */
  readonly #told = new Map<string, string>();
  /** Group policies as last read, and when (performance.now()): re-read after GROUPS_TTL_MS, as replicas share the store. */
  #groups: { list: GroupPolicy[]; at: number } | undefined;
  /** Sends a body to a paired device (kept until acknowledged); none: policies are only stored. */
  send?: (deviceId: string, body: DownBody) => Promise<void>;

  constructor(o: PrivacyServiceOptions) {
    this.#store = o.store;
    this.#log = o.log;
    this.#now = o.now;
    this.send = o.send;
  }

  async #groupPolicies(): Promise<GroupPolicy[]> {
    const now = performance.now();
    if (!this.#groups || now - this.#groups.at > GROUPS_TTL_MS) this.#groups = { list: await this.#store.privacy.groupPolicies(), at: now };
    return this.#groups.list;
  }

  /** The policy in force for a device and where it comes from. Unknown devices get the group/default policy for no labels. */
  async resolve(deviceId: string): Promise<ResolvedPolicy> {
    const [own, device, groups] = await Promise.all([
      this.#store.privacy.devicePolicy(deviceId), this.#store.getDevice(deviceId), this.#groupPolicies(),
    ]);
    return resolveWith(device?.labels ?? {}, own?.policy, groups);
  }

  /** The policy in force for a device; on a store failure the default (least sharing) policy. */
  async effectivePolicy(deviceId: string): Promise<PrivacyPolicy> {
    try {
      return (await this.resolve(deviceId)).policy;
    } catch (e) {
      this.#log.error({ device: deviceId, err: (e as Error).message }, 'privacy: policy not readable; using the default');
      return DEFAULT_POLICY;
    }
  }

  /** Subscribes to policy changes; returns the unsubscribe function. */
  onChange(f: ChangeListener): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }

  /** Appends a disclosure to the audit log (who, what, why); errors are logged, never thrown. */
  async recordDisclosure(d: Disclosure | Disclosure[]): Promise<void> {
    const list = Array.isArray(d) ? d : [d];
    if (list.length === 0) return;
    try {
      await this.#store.privacy.addAudit(this.#now(), list);
    } catch (e) {
      this.#log.error({ err: (e as Error).message, n: list.length }, 'privacy: audit entries not recorded');
    }
  }

  async setDevicePolicy(deviceId: string, policy: PrivacyPolicy): Promise<void> {
    await this.#store.privacy.setDevicePolicy(deviceId, policy, this.#now());
    await this.#changed([deviceId]);
  }

  async deleteDevicePolicy(deviceId: string): Promise<boolean> {
    const had = await this.#store.privacy.deleteDevicePolicy(deviceId);
    if (had) await this.#changed([deviceId]);
    return had;
  }

  async setGroupPolicy(selector: string, priority: number, policy: PrivacyPolicy): Promise<GroupPolicy> {
    checkSelector(selector);
    const g: GroupPolicy = { selector, priority, policy, updatedAt: this.#now() };
    await this.#groupChange(async () => {
      await this.#store.privacy.setGroupPolicy(g);
      return true;
    });
    return g;
  }

  async deleteGroupPolicy(selector: string): Promise<boolean> {
    let had = false;
    await this.#groupChange(async () => {
      had = await this.#store.privacy.deleteGroupPolicy(selector);
      return had;
    });
    return had;
  }

  async groupPolicies(): Promise<GroupPolicy[]> {
    return this.#groupPolicies();
  }

  /** A device's labels changed (registry): its group policy may have changed with them. */
  async labelsChanged(deviceId: string): Promise<void> {
    await this.#changed([deviceId]);
  }

  /** A device was paired: it is told the policy it is under. */
  async paired(deviceId: string): Promise<void> {
    await this.#tellDevice(deviceId, true);
  }

  /** A group change: the devices whose policy summary moved are notified and told. */
  async #groupChange(apply: () => Promise<boolean>): Promise<void> {
    const devices = await this.#store.listDevices();
    const before = new Map<string, string>();
    // A device whose own stored policy is unreadable keeps being reported by resolve(); here it only counts as moved.
    const key = async (id: string) => this.resolve(id).then((r) => `${r.source}\u0000${summary(r.policy)}`, () => 'unreadable');
    for (const d of devices) before.set(d.id, await key(d.id));
    let changed: boolean;
    try {
      changed = await apply();
    } finally {
      this.#groups = undefined;
    }
    if (!changed) return;
    const moved: string[] = [];
    for (const d of devices) {
      if (before.get(d.id) !== (await key(d.id))) moved.push(d.id);
    }
    // Devices this gateway only knows from the mesh may be affected too.
    this.#emit('all');
    for (const id of moved) await this.#tellDevice(id);
  }

  async #changed(ids: string[]): Promise<void> {
    this.#emit(ids);
    for (const id of ids) await this.#tellDevice(id);
  }

  #emit(ids: string[] | 'all'): void {
    for (const f of this.#listeners) {
      try {
        f(ids);
      } catch (e) {
        this.#log.error({ err: (e as Error).message }, 'privacy: change listener failed');
      }
    }
  }

  /**
   * Sends the policy summary as config key `privacy` to a device paired on this gateway (kept until
   * acked), unless this process already sent it that same text (a label edit that moved nothing).
   */
  async #tellDevice(deviceId: string, force = false): Promise<void> {
    if (!this.send) return;
    try {
      const d = await this.#store.getDevice(deviceId);
      if (d?.state !== 'paired') return;
      let text = summary(await this.effectivePolicy(deviceId));
      // A config value is at most 200 characters (WIRE.md, the console's `config set`).
      if (text.length > MAX_CONFIG_VALUE) text = text.slice(0, MAX_CONFIG_VALUE - 1) + '…';
      if (!force && this.#told.get(deviceId) === text) return;
      await this.send(deviceId, { type: Body.config, values: { [PRIVACY_CONFIG_KEY]: text } });
      // Most devices are told the same text: one copy of it (a fleet kept 10,000 of ~100 bytes).
      this.#told.set(deviceId, same(text));
    } catch (e) {
      this.#log.error({ device: deviceId, err: (e as Error).message }, 'privacy: policy not sent to the device');
    }
  }
}
