// Microworlds (GUESTS.md "Microworlds"): several guests deployed, run, swapped and supervised as one
// unit, under one CID. A world's manifest lists its members, each with the fields of a guest's
// manifest (its own capabilities) and the functions it offers the others (`exports`); a member
// calls another's through an import from the module named after it, answered by the agent, with the
// callee's fuel charged to the caller. At most one member holds relays; the calls between members
// form no cycle.
//
// On the wire and on disk a world is its bundle: the deterministic CBOR map
//   {"manifest": <world manifest map>, "modules": [<member .wasm bytes>, … in manifest order]}
// named by CIDv1 dag-cbor sha2-256 of those bytes (cid.ts worldCid).

import { CborError, decode, encode, type CborValue } from '../cbor.js';
import type { GuestImport, GuestInstance } from '../ports.js';
import { GuestTrap, TrapKind } from '../ports.js';
import { parseManifest, type GuestManifest, type Grants } from './manifest.js';
import { GUEST_MAX_BYTES, validateGuest, type GuestInfo, type PeerExports } from './validate.js';
import { ExternKind, funcType, parseModule, signatureText, WasmError, type FuncType } from './wasm.js';

type TextMap = { [key: string]: CborValue };

export const WORLD_LIMITS = {
  members: 4,
  exports: 8,
  exportParams: 4,
  nameLength: 32,
} as const;
/** A bundle: up to 4 members of 4 KiB and the manifest. */
export const WORLD_MAX_BYTES = WORLD_LIMITS.members * GUEST_MAX_BYTES + 2048;

/** Member names a module could not import from: the modules the agent itself provides. */
const RESERVED = ['gridlet', 'metering', 'env'];
/** Exports a member may not offer the others: the agent calls these itself. */
const AGENT_EXPORTS = ['init', 'tick', 'on_signal', '_start', '_initialize', 'memory'];

export interface WorldMember {
  /** Its name in the world; the supervisor runs it as `<world>.<member>`. */
  name: string;
  manifest: GuestManifest;
  grants: Grants;
  /** Functions it offers the other members. */
  exports: string[];
}

export interface WorldManifest {
  name: string;
  version: string;
  members: WorldMember[];
}

export type WorldManifestResult = { ok: true; world: WorldManifest } | { ok: false; reason: string };

function fail(reason: string): { ok: false; reason: string } {
  return { ok: false, reason: `world manifest: ${reason}` };
}

// Functions, not module constants: a RegExp preloaded into the image's flash crashes exec() on XS.
const isExportName = (s: string) => /^[A-Za-z_][A-Za-z0-9_]{0,31}$/.test(s);

const MEMBER_FIELDS = ['name', 'period_s', 'fuel_per_call', 'memory_bytes', 'capabilities', 'exports'];

/** Checks a world manifest given as parsed JSON or a decoded CBOR text map. */
export function parseWorldManifest(value: unknown): WorldManifestResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    return fail('must be a map (JSON object) with text keys');
  }
  const o = value as { [k: string]: unknown };
  for (const k of Object.keys(o)) {
    if (k !== 'name' && k !== 'version' && k !== 'modules') return fail(`unknown field "${k}" (fields: name, version, modules)`);
  }
  // The world's name and version follow a guest's rules (the name makes event kinds guest.<world>.<member>.<kind>).
  const head = parseManifest({ name: o.name, version: o.version, period_s: 1, fuel_per_call: 1000, memory_bytes: 1, capabilities: [] });
  if (!head.ok) return fail(head.reason.replace('manifest: ', ''));
  const modules = o.modules;
  if (!Array.isArray(modules) || modules.length === 0 || modules.length > WORLD_LIMITS.members) {
    return fail(`"modules" must list 1–${WORLD_LIMITS.members} members, each {${MEMBER_FIELDS.join(', ')}}`);
  }
  const members: WorldMember[] = [];
  let holder = '';
  for (let i = 0; i < modules.length; i++) {
    const m = modules[i] as { [k: string]: unknown };
    if (typeof m !== 'object' || m === null || Array.isArray(m) || m instanceof Uint8Array) return fail(`modules[${i}] must be a map`);
    for (const k of Object.keys(m)) {
      if (MEMBER_FIELDS.indexOf(k) < 0) return fail(`modules[${i}]: unknown field "${k}" (fields: ${MEMBER_FIELDS.join(', ')})`);
    }
    const r = parseManifest({
      name: m.name, version: head.manifest.version, period_s: m.period_s, fuel_per_call: m.fuel_per_call,
      memory_bytes: m.memory_bytes, capabilities: m.capabilities,
    });
    if (!r.ok) return fail(`modules[${i}]: ${r.reason.replace('manifest: ', '')}`);
    const name = r.manifest.name;
    if (RESERVED.indexOf(name) >= 0) return fail(`modules[${i}]: "${name}" is the name of a module the agent provides; choose another`);
    if (head.manifest.name.length + 1 + name.length > 64) return fail(`modules[${i}]: "${head.manifest.name}.${name}" is longer than 64 characters`);
    for (const other of members) if (other.name === name) return fail(`two members are named "${name}"`);
    const ex = m.exports === undefined ? [] : m.exports;
    if (!Array.isArray(ex) || ex.length > WORLD_LIMITS.exports) return fail(`modules[${i}] "${name}": "exports" must list at most ${WORLD_LIMITS.exports} function names`);
    const exports: string[] = [];
    for (const e of ex) {
      if (typeof e !== 'string' || !isExportName(e)) return fail(`modules[${i}] "${name}": export ${JSON.stringify(e)} is not a function name (letters, digits, _; at most 32)`);
      if (AGENT_EXPORTS.indexOf(e) >= 0) return fail(`modules[${i}] "${name}": "${e}" is called by the agent and cannot be offered to other members`);
      if (exports.indexOf(e) < 0) exports.push(e);
    }
    if (r.grants.relays.length) {
      if (holder) return fail(`members "${holder}" and "${name}" both hold relays; at most one member of a world holds relays`);
      holder = name;
    }
    members.push({ name, manifest: r.manifest, grants: r.grants, exports });
  }
  return { ok: true, world: { name: head.manifest.name, version: head.manifest.version, members } };
}

/** The manifest as the text-keyed map a guest-offer and the bundle carry. */
export function worldManifestToMap(w: WorldManifest): TextMap {
  return {
    name: w.name,
    version: w.version,
    modules: w.members.map((m): TextMap => {
      const out: TextMap = {
        name: m.name, period_s: m.manifest.period_s, fuel_per_call: m.manifest.fuel_per_call,
        memory_bytes: m.manifest.memory_bytes, capabilities: m.manifest.capabilities.slice(),
      };
      if (m.exports.length) out.exports = m.exports.slice();
      return out;
    }),
  };
}

/** The bundle's bytes (what the world's CID names). */
export function encodeWorld(w: WorldManifest, modules: Uint8Array[]): Uint8Array {
  return encode({ manifest: worldManifestToMap(w), modules: modules.slice() });
}

export interface WorldBundle {
  world: WorldManifest;
  /** Member modules, in manifest order. */
  modules: Uint8Array[];
}

export type WorldBundleResult = ({ ok: true } & WorldBundle) | { ok: false; reason: string };

/** Reads a bundle: deterministic CBOR, a manifest that parses, one module per member. */
export function decodeWorld(bytes: Uint8Array): WorldBundleResult {
  if (bytes.length > WORLD_MAX_BYTES) return { ok: false, reason: `world bundle is ${bytes.length} bytes; at most ${WORLD_MAX_BYTES}` };
  let v: CborValue;
  try {
    v = decode(bytes, { maxDepth: 6, canonical: true });
  } catch (e) {
    if (e instanceof CborError) return { ok: false, reason: `world bundle is not deterministic CBOR: ${e.message}` };
    throw e;
  }
  if (typeof v !== 'object' || v === null || v instanceof Map || Array.isArray(v) || v instanceof Uint8Array) {
    return { ok: false, reason: 'world bundle must be a map {"manifest", "modules"}' };
  }
  const o = v as TextMap;
  for (const k of Object.keys(o)) if (k !== 'manifest' && k !== 'modules') return { ok: false, reason: `world bundle: unknown field "${k}"` };
  const mr = parseWorldManifest(o.manifest);
  if (!mr.ok) return mr;
  const modules = o.modules;
  if (!Array.isArray(modules) || modules.length !== mr.world.members.length) {
    return { ok: false, reason: `world bundle: "modules" must hold one .wasm per member (${mr.world.members.length})` };
  }
  for (let i = 0; i < modules.length; i++) {
    if (!(modules[i] instanceof Uint8Array)) return { ok: false, reason: `world bundle: module ${i} is not a byte string` };
  }
  return { ok: true, world: mr.world, modules: modules as Uint8Array[] };
}

/** Types of the functions each member offers, read from its module (a missing or unfit one is refused). */
function peerExports(world: WorldManifest, modules: Uint8Array[]): PeerExports {
  const out: { [member: string]: { [name: string]: FuncType } } = {};
  for (let i = 0; i < world.members.length; i++) {
    const member = world.members[i];
    let m;
    try {
      m = parseModule(modules[i]);
    } catch (e) {
      if (e instanceof WasmError) throw new WasmError(`member "${member.name}": ${e.message}`);
      throw e;
    }
    const types: { [name: string]: FuncType } = {};
    for (const name of member.exports) {
      const e = m.exports.find((x) => x.name === name);
      if (!e || e.kind !== ExternKind.func) throw new WasmError(`member "${member.name}" offers "${name}" but its module exports no function of that name`);
      const t = funcType(m, e.index)!;
      if (t.params.length > WORLD_LIMITS.exportParams || t.results.length > 1 ||
          t.params.some((p) => p === 0x7e) || t.results.some((p) => p === 0x7e)) {
        throw new WasmError(`member "${member.name}" offers "${name}" with signature ${signatureText(t)}; an offered function takes at most ${WORLD_LIMITS.exportParams} i32, f32 or f64 and returns at most one (no i64)`);
      }
      types[name] = t;
    }
    out[member.name] = types;
  }
  return out;
}

export interface WorldValidation {
  ok: true;
  world: WorldManifest;
  modules: Uint8Array[];
  infos: GuestInfo[];
  /** Member indices, each after every member it calls (the order to load and initialise them). */
  order: number[];
}

/**
 * Checks a world: every member against GUESTS.md and its own manifest (a member is a ticked guest,
 * not a one-shot job), its imports from other members against what they offer, and the calls
 * between members for cycles.
 */
export function validateWorld(bundle: WorldBundle, options: { maxBytes?: number } = {}): WorldValidation | { ok: false; reason: string } {
  const { world, modules } = bundle;
  const maxBytes = options.maxBytes ?? GUEST_MAX_BYTES;
  for (let i = 0; i < world.members.length; i++) {
    if (modules[i].length > maxBytes) {
      return { ok: false, reason: `member "${world.members[i].name}": module is ${modules[i].length} bytes; a guest is at most ${maxBytes} bytes (GUESTS.md size budget)` };
    }
  }
  let peers: PeerExports;
  try {
    peers = peerExports(world, modules);
  } catch (e) {
    if (e instanceof WasmError) return { ok: false, reason: e.message };
    throw e;
  }
  const infos: GuestInfo[] = [];
  for (let i = 0; i < world.members.length; i++) {
    const member = world.members[i];
    const others: { [member: string]: { readonly [name: string]: FuncType } } = {};
    for (const k of Object.keys(peers)) if (k !== member.name) others[k] = peers[k];
    const v = validateGuest(modules[i], member.manifest, { maxBytes: options.maxBytes, peers: others });
    if (!v.ok) return { ok: false, reason: `member "${member.name}": ${v.reason}` };
    if (v.info.job) return { ok: false, reason: `member "${member.name}" is a one-shot job (_start); world members are ticked guests (init, tick)` };
    infos.push(v.info);
  }
  // Depth-first: a member comes after the members it calls; meeting one on the current path is a cycle.
  const order: number[] = [];
  const mark = new Array<number>(world.members.length).fill(0); // 0 new, 1 on the path, 2 done
  const index = (name: string) => world.members.findIndex((m) => m.name === name);
  const visit = (i: number, path: string[]): string | undefined => {
    if (mark[i] === 2) return undefined;
    if (mark[i] === 1) return `the members call each other in a cycle (${path.concat(world.members[i].name).join(' → ')}); calls between members must form no cycle`;
    mark[i] = 1;
    for (const call of infos[i].peers) {
      const why = visit(index(call.slice(0, call.indexOf('.'))), path.concat(world.members[i].name));
      if (why) return why;
    }
    mark[i] = 2;
    order.push(i);
    return undefined;
  };
  for (let i = 0; i < world.members.length; i++) {
    const why = visit(i, []);
    if (why) return { ok: false, reason: why };
  }
  return { ok: true, world, modules, infos, order };
}

/** Is `w`'s manifest map byte-for-byte the one in `other` (the offer's against the bundle's)? */
export function sameWorldManifest(a: WorldManifest, b: WorldManifest): boolean {
  const x = encode(worldManifestToMap(a));
  const y = encode(worldManifestToMap(b));
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * The import through which `caller` calls `callee`'s export `name` (GUESTS.md "Microworlds"): the
 * callee runs on what is left of the caller's budget, and what it used is charged to the caller, so
 * a call costs the same fuel wherever it runs. A trap in the callee stops the caller with the same
 * kind, its reason prefixed with `label`.
 */
export function peerCall(
  caller: () => GuestInstance | undefined,
  callee: () => GuestInstance | undefined,
  name: string,
  label: string,
  around?: { begin(): boolean; end(): void },
): GuestImport {
  return (...args: number[]) => {
    const c = caller();
    const p = callee();
    if (!c) throw new GuestTrap(TrapKind.trap, `${label}: the caller is not running`);
    if (!p) throw new GuestTrap(TrapKind.trap, `${label}: that member is not running`);
    if (around && !around.begin()) throw new GuestTrap(TrapKind.trap, `${label}: that member is busy (calls between members form no cycle)`);
    let r: number | undefined;
    try {
      r = p.call(name, args, Math.max(0, c.fuelLeft()));
    } catch (e) {
      c.charge(p.fuelUsed, label);
      const t = e as GuestTrap;
      throw new GuestTrap(typeof t.kind === 'number' ? t.kind : TrapKind.trap, `${label}: ${t.message}`);
    } finally {
      around?.end();
    }
    c.charge(p.fuelUsed, label);
    return r === undefined ? 0 : r;
  };
}
