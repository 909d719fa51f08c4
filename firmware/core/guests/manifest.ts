// A guest's manifest (GUESTS.md "Manifest"): JSON in the repository, a CBOR map with text keys in a
// guest-offer. Parsing checks every field and turns the capabilities into grants the supervisor
// consults on each import call without string work.

import type { CborValue } from '../cbor.js';

export interface GuestManifest {
  name: string;
  version: string;
  period_s: number;
  fuel_per_call: number;
  memory_bytes: number;
  capabilities: string[];
}

/** What the capabilities grant, in the form the import checks use. */
export interface Grants {
  channelAll: boolean;
  channels: number[];
  signalAll: boolean;
  signals: number[];
  relays: number[];
  emit: boolean;
  /** kv slots 0 ≤ slot < kvSlots */
  kvSlots: number;
}

export type ManifestResult =
  | { ok: true; manifest: GuestManifest; grants: Grants }
  | { ok: false; reason: string };

/** Bounds a manifest field may take. */
export const MANIFEST_LIMITS = {
  nameLength: 32,
  versionLength: 32,
  periodMin: 1,
  periodMax: 86_400,
  fuelMin: 1_000,
  fuelMax: 10_000_000,
  /** One page: a guest declares at most one. */
  memoryMax: 65_536,
  capabilities: 32,
  idMax: 255,
  kvMax: 64,
} as const;

// Functions, not module constants: a RegExp preloaded into the image's flash crashes exec() on XS.
const isName = (s: string) => /^[a-z][a-z0-9-]*$/.test(s);
const isVersion = (s: string) => /^\d{1,6}\.\d{1,6}\.\d{1,6}(?:[-+][0-9A-Za-z.-]+)?$/.test(s);
const capability = (s: string) => /^(channel|signal|relay|kv):(\*|\d{1,5})$/.exec(s);

export const CAPABILITY_GRAMMAR = '`channel:*`, `channel:N`, `signal:*`, `signal:N`, `relay:N`, `emit`, `kv:N`';

function fail(reason: string): ManifestResult {
  return { ok: false, reason: `manifest: ${reason}` };
}

function intField(o: { [k: string]: unknown }, key: string, min: number, max: number): number | string {
  const v = o[key];
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) return `"${key}" must be an integer`;
  if (n < min || n > max) return `"${key}" is ${n}; it must be between ${min} and ${max}`;
  return n;
}

/** Checks a manifest given as a parsed JSON object or a decoded CBOR text map. */
export function parseManifest(value: unknown): ManifestResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    return fail('must be a map (JSON object) with text keys');
  }
  const o = value as { [k: string]: unknown };
  const known = ['name', 'version', 'period_s', 'fuel_per_call', 'memory_bytes', 'capabilities'];
  for (const k of Object.keys(o)) {
    if (known.indexOf(k) < 0) return fail(`unknown field "${k}" (fields: ${known.join(', ')})`);
  }
  const name = o.name;
  if (typeof name !== 'string' || name.length === 0 || name.length > MANIFEST_LIMITS.nameLength || !isName(name)) {
    return fail(`"name" must be 1–${MANIFEST_LIMITS.nameLength} characters of a-z, 0-9 and "-", starting with a letter (it becomes part of event kinds guest.<name>.<kind>)`);
  }
  const version = o.version;
  if (typeof version !== 'string' || version.length > MANIFEST_LIMITS.versionLength || !isVersion(version)) {
    return fail(`"version" must be a version like "1.0.0"`);
  }
  const period = intField(o, 'period_s', MANIFEST_LIMITS.periodMin, MANIFEST_LIMITS.periodMax);
  if (typeof period === 'string') return fail(period);
  const fuel = intField(o, 'fuel_per_call', MANIFEST_LIMITS.fuelMin, MANIFEST_LIMITS.fuelMax);
  if (typeof fuel === 'string') return fail(fuel);
  const memory = intField(o, 'memory_bytes', 1, MANIFEST_LIMITS.memoryMax);
  if (typeof memory === 'string') return fail(memory);
  const caps = o.capabilities;
  if (!Array.isArray(caps)) return fail(`"capabilities" must be a list of ${CAPABILITY_GRAMMAR}`);
  if (caps.length > MANIFEST_LIMITS.capabilities) return fail(`more than ${MANIFEST_LIMITS.capabilities} capabilities`);
  const grants: Grants = { channelAll: false, channels: [], signalAll: false, signals: [], relays: [], emit: false, kvSlots: 0 };
  const capabilities: string[] = [];
  for (const c of caps) {
    if (typeof c !== 'string') return fail(`capability ${JSON.stringify(c)} is not text`);
    const reason = grant(grants, c);
    if (reason) return fail(reason);
    capabilities.push(c);
  }
  return {
    ok: true,
    manifest: { name, version, period_s: period, fuel_per_call: fuel, memory_bytes: memory, capabilities },
    grants,
  };
}

function grant(g: Grants, c: string): string | undefined {
  if (c === 'emit') {
    g.emit = true;
    return undefined;
  }
  const m = capability(c);
  if (!m) return `capability "${c}" is not one of ${CAPABILITY_GRAMMAR}`;
  const kind = m[1];
  const all = m[2] === '*';
  const n = all ? -1 : Number(m[2]);
  switch (kind) {
    case 'channel':
      if (all) g.channelAll = true;
      else if (n < 1 || n > MANIFEST_LIMITS.idMax) return `capability "${c}": channel must be 1–${MANIFEST_LIMITS.idMax}`;
      else if (g.channels.indexOf(n) < 0) g.channels.push(n);
      return undefined;
    case 'signal':
      if (all) g.signalAll = true;
      else if (n < 1 || n > MANIFEST_LIMITS.idMax) return `capability "${c}": signal must be 1–${MANIFEST_LIMITS.idMax}`;
      else if (g.signals.indexOf(n) < 0) g.signals.push(n);
      return undefined;
    case 'relay':
      if (all) return `capability "${c}": a relay must be named (relay:N); "relay:*" is not allowed`;
      if (n > MANIFEST_LIMITS.idMax) return `capability "${c}": relay must be 0–${MANIFEST_LIMITS.idMax}`;
      if (g.relays.indexOf(n) < 0) g.relays.push(n);
      return undefined;
    default: // kv
      if (all) return `capability "${c}": kv needs a number of slots (kv:N)`;
      if (n > MANIFEST_LIMITS.kvMax) return `capability "${c}": at most ${MANIFEST_LIMITS.kvMax} kv slots`;
      if (n > g.kvSlots) g.kvSlots = n;
      return undefined;
  }
}

/** Parses manifest JSON text (a file in manifests/guests/). */
export function parseManifestJson(text: string): ManifestResult {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON: ${(e as Error).message}`);
  }
  return parseManifest(v);
}

/** The manifest as the text-keyed map a guest-offer carries (field 3). */
export function manifestToMap(m: GuestManifest): { [key: string]: CborValue } {
  return {
    name: m.name,
    version: m.version,
    period_s: m.period_s,
    fuel_per_call: m.fuel_per_call,
    memory_bytes: m.memory_bytes,
    capabilities: m.capabilities.slice(),
  };
}

export function channelGranted(g: Grants, ch: number): boolean {
  return g.channelAll || g.channels.indexOf(ch) >= 0;
}

export function signalGranted(g: Grants, id: number): boolean {
  return g.signalAll || g.signals.indexOf(id) >= 0;
}

export function relayGranted(g: Grants, id: number): boolean {
  return g.relays.indexOf(id) >= 0;
}
