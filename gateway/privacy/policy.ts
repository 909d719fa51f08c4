// A device's sharing policy: for each audience, what of its data may leave the gateway, for which
// purposes, and how long the gateway keeps it. Policies are set per device and per group (a label
// selector); the one that applies to a device is its own if it has one, else the first matching group
// policy in priority order, else DEFAULT_POLICY.
//
// Audiences:
// - `operator`: the operating utility — the gateways of this gateway's own operator (MESH.md: same
//   `--operator`) and the operator's HTTP API.
// - `peers`: named mesh peers of other operators, by operator name (`peers["community-grid"]`).
// - `mesh`: everyone else on the mesh.
//
// Levels, from least to most: `none` (nothing), `daily` (daily totals), `15min` (15-minute
// aggregates), `full` (every record at its own resolution).

import type { Labels } from '../labels.js';

export const LEVELS = ['none', 'daily', '15min', 'full'] as const;
export type Level = (typeof LEVELS)[number];

export const PURPOSES = ['billing', 'grid-operations', 'research'] as const;
export type Purpose = (typeof PURPOSES)[number];

export interface Share {
  level: Level;
  /** Channel numbers that may be shared; absent = every channel. */
  channels?: number[];
  /** What the audience may use the data for. */
  purposes: Purpose[];
}

export interface PrivacyPolicy {
  operator: Share;
  /** Other operators named by their operator name. */
  peers: { [operator: string]: Share };
  mesh: Share;
  /** How many days raw records (and raw readings messages) are kept; null = until removed by hand. */
  retentionDays: number | null;
}

/**
 * The least sharing that still lets the gateway operate the meter: the operator's own gateways get full
 * records for grid operations and billing (MESH.md: one operator's gateways share with each other), no
 * other operator gets anything, and raw records are kept for 13 months (a year of bills plus a month).
 */
export const DEFAULT_POLICY: PrivacyPolicy = Object.freeze({
  operator: Object.freeze({ level: 'full', purposes: ['grid-operations', 'billing'] }) as Share,
  peers: Object.freeze({}) as PrivacyPolicy['peers'],
  mesh: Object.freeze({ level: 'none', purposes: [] }) as Share,
  retentionDays: 396,
}) as PrivacyPolicy;

export class PolicyError extends Error {}

/** Checks an untrusted JSON value (HTTP body, CLI file) and returns a clean policy, or throws PolicyError. */
export function parsePolicy(v: unknown): PrivacyPolicy {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new PolicyError('a policy is a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['operator', 'peers', 'mesh', 'retentionDays'].includes(k)) throw new PolicyError(`unknown policy field "${k}"`);
  }
  const peersIn = o.peers ?? {};
  if (typeof peersIn !== 'object' || peersIn === null || Array.isArray(peersIn)) throw new PolicyError('"peers" is an object of operator name → share');
  const peers: PrivacyPolicy['peers'] = {};
  for (const [name, s] of Object.entries(peersIn)) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new PolicyError(`peer operator name "${name}" is not a valid operator name`);
    peers[name] = parseShare(s, `peers.${name}`);
  }
  let retentionDays: number | null = DEFAULT_POLICY.retentionDays;
  if (o.retentionDays !== undefined) {
    if (o.retentionDays === null) retentionDays = null;
    else if (typeof o.retentionDays === 'number' && Number.isFinite(o.retentionDays) && o.retentionDays > 0 && o.retentionDays <= 36_500) retentionDays = o.retentionDays;
    else throw new PolicyError('"retentionDays" is a number of days (above 0, at most 36500) or null');
  }
  return {
    operator: o.operator === undefined ? { ...DEFAULT_POLICY.operator } : parseShare(o.operator, 'operator'),
    peers,
    mesh: o.mesh === undefined ? { ...DEFAULT_POLICY.mesh } : parseShare(o.mesh, 'mesh'),
    retentionDays,
  };
}

function parseShare(v: unknown, where: string): Share {
  if (typeof v === 'string') v = { level: v };
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new PolicyError(`"${where}" is a share: {"level", "purposes", "channels"}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['level', 'channels', 'purposes'].includes(k)) throw new PolicyError(`unknown field "${where}.${k}"`);
  }
  if (!LEVELS.includes(o.level as Level)) throw new PolicyError(`"${where}.level" is one of ${LEVELS.join(', ')}`);
  const level = o.level as Level;
  const purposes = o.purposes ?? (level === 'none' ? [] : ['grid-operations']);
  if (!Array.isArray(purposes) || purposes.some((p) => !PURPOSES.includes(p as Purpose))) {
    throw new PolicyError(`"${where}.purposes" is a list of ${PURPOSES.join(', ')}`);
  }
  const share: Share = { level, purposes: [...new Set(purposes as Purpose[])] };
  if (o.channels !== undefined) {
    if (!Array.isArray(o.channels) || o.channels.some((c) => !Number.isInteger(c) || (c as number) < 0 || (c as number) > 65535)) {
      throw new PolicyError(`"${where}.channels" is a list of channel numbers`);
    }
    share.channels = [...new Set(o.channels as number[])].sort((a, b) => a - b);
  }
  return share;
}

/** The share a gateway of `operator` gets under `policy`, seen from a gateway of `ownOperator`. */
export function shareFor(policy: PrivacyPolicy, ownOperator: string, operator: string): Share {
  if (operator === ownOperator) return policy.operator;
  return policy.peers[operator] ?? policy.mesh;
}

/** Whether a share lets an audience have records at `resolution` ('full', '15min' or 'daily'). */
export function allows(share: Share, level: Exclude<Level, 'none'>): boolean {
  return LEVELS.indexOf(share.level) >= LEVELS.indexOf(level);
}

/** Whether a share lets an audience see a channel. */
export function allowsChannel(share: Share, channel: number): boolean {
  return share.level !== 'none' && (!share.channels || share.channels.includes(channel));
}

/** Does a device with these labels match a group selector (`key=value` or `key`)? */
export function matchesSelector(labels: Labels, selector: string): boolean {
  const eq = selector.indexOf('=');
  if (eq < 0) return Object.prototype.hasOwnProperty.call(labels, selector);
  return labels[selector.slice(0, eq)] === selector.slice(eq + 1);
}

/**
 * The one-line text a technician sees with `config get privacy` (sent to the device as config key
 * `privacy`), e.g. `operator=full(grid-operations,billing) peers=none mesh=none retention=396d`.
 */
export function summary(p: PrivacyPolicy): string {
  const s = (x: Share) => (x.level === 'none' ? 'none' : `${x.level}(${x.purposes.join(',')}${x.channels ? `;ch=${x.channels.join(',')}` : ''})`);
  const peers = Object.entries(p.peers);
  return [
    `operator=${s(p.operator)}`,
    `peers=${peers.length ? peers.map(([n, x]) => `${n}:${s(x)}`).join('/') : 'none'}`,
    `mesh=${s(p.mesh)}`,
    `retention=${p.retentionDays === null ? 'forever' : `${p.retentionDays}d`}`,
  ].join(' ');
}
