// Which of this gateway's meters an OpenADR 3 event is for. A target names
//   - the VEN (its venName): every paired meter of the gateway;
//   - a resource (its resourceName, which is the meter's device id): that meter;
//   - a label group: `label:key=value` (3.1.0 target strings; `label:key` for any value), or in 3.0.1
//     a valuesMap {"type": "GROUP", "values": ["key=value"]};
//   - anything the VTN's business logic granted to the VEN object (every meter) or to a resource
//     object (that meter), as OpenADR 3.1.0 targeting grants targets.
// 3.0.1 valuesMaps are read as VEN_NAME, RESOURCE_NAME and GROUP; other types only match what was
// granted. An event names the union of its targets' meters; an event without targets is for all of
// them. A target that names nothing here is reported, not an error: it may be for another VEN.

import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { matchesSelector } from '../privacy/policy.js';
import type { Labels } from '../store/store.js';
import type { OpenAdrSpecVersion } from './schema.js';

export type Target =
  /** A 3.1.0 string: a VEN name or a resource name. */
  | { kind: 'name'; name: string }
  | { kind: 'ven'; name: string }
  | { kind: 'resource'; name: string }
  | { kind: 'label'; selector: string }
  /** Anything else, as text (3.0.1: `TYPE:value`): it matches only granted targets. */
  | { kind: 'other'; text: string };

export const LABEL_PREFIX = 'label:';

/** Reads an object's `targets` as the version has them; null or absent is []. Malformed entries are skipped. */
export function readTargets(v: unknown, version: OpenAdrSpecVersion): Target[] {
  if (!Array.isArray(v)) return [];
  const out: Target[] = [];
  for (const t of v) {
    if (version === '3.1.0') {
      if (typeof t !== 'string' || !t) continue;
      if (t.startsWith(LABEL_PREFIX) && t.length > LABEL_PREFIX.length) out.push({ kind: 'label', selector: t.slice(LABEL_PREFIX.length) });
      else out.push({ kind: 'name', name: t });
    } else {
      if (typeof t !== 'object' || t === null || typeof (t as { type?: unknown }).type !== 'string') continue;
      const { type, values } = t as { type: string; values?: unknown };
      for (const x of Array.isArray(values) ? values : []) {
        if (typeof x !== 'string' && typeof x !== 'number') continue;
        const s = String(x);
        if (type === 'VEN_NAME') out.push({ kind: 'ven', name: s });
        else if (type === 'RESOURCE_NAME') out.push({ kind: 'resource', name: s });
        else if (type === 'GROUP' && s) out.push({ kind: 'label', selector: s });
        else out.push({ kind: 'other', text: `${type}:${s}` });
      }
    }
  }
  return out;
}

/** A target as text, for status and messages: 3.1.0's string form. */
export function targetText(t: Target): string {
  switch (t.kind) {
    case 'label': return LABEL_PREFIX + t.selector;
    case 'other': return t.text;
    default: return t.name;
  }
}

/** Granted targets as comparable texts (3.1.0 strings; 3.0.1 `TYPE:value`). */
export function grantedTexts(v: unknown, version: OpenAdrSpecVersion): string[] {
  return readTargets(v, version).map((t) => {
    if (version === '3.1.0') return targetText(t);
    switch (t.kind) {
      case 'ven': return `VEN_NAME:${t.name}`;
      case 'resource': return `RESOURCE_NAME:${t.name}`;
      case 'label': return `GROUP:${t.selector}`;
      default: return targetText(t);
    }
  });
}

export interface TargetContext {
  venName: string;
  /** This gateway's paired meters. */
  devices: { id: string; labels: Labels }[];
  /** Targets granted to the VEN object (grantedTexts form): they name every meter. */
  venGranted?: string[];
  /** Targets granted to each meter's resource object. */
  resourceGranted?: Map<string, string[]>;
}

export interface Resolution {
  /** Device ids, sorted. */
  devices: string[];
  /** Targets that named no meter of this gateway. */
  unmatched: string[];
}

export function resolveTargets(targets: Target[], version: OpenAdrSpecVersion, ctx: TargetContext): Resolution {
  const all = ctx.devices.map((d) => d.id).sort();
  if (targets.length === 0) return { devices: all, unmatched: [] };
  const ids = new Set(all);
  const chosen = new Set<string>();
  const unmatched: string[] = [];
  const granted = (text: string): boolean => {
    if (ctx.venGranted?.includes(text)) {
      for (const id of all) chosen.add(id);
      return true;
    }
    let any = false;
    for (const [id, list] of ctx.resourceGranted ?? []) {
      if (ids.has(id) && list.includes(text)) chosen.add(id), (any = true);
    }
    return any;
  };
  for (const t of targets) {
    const before = chosen.size;
    let named = false;
    switch (t.kind) {
      case 'name':
      case 'ven':
      case 'resource':
        if (t.kind !== 'resource' && t.name === ctx.venName) {
          for (const id of all) chosen.add(id);
          named = true;
        } else if (t.kind !== 'ven' && isDeviceId(t.name) && ids.has(t.name)) {
          chosen.add(t.name);
          named = true;
        }
        break;
      case 'label':
        for (const d of ctx.devices) if (matchesSelector(d.labels, t.selector)) chosen.add(d.id), (named = true);
        break;
    }
    const text = version === '3.1.0' ? targetText(t) : grantedTexts([legacy(t)], '3.0.1')[0] ?? targetText(t);
    if (granted(text)) named = true;
    if (!named && chosen.size === before) unmatched.push(targetText(t));
  }
  return { devices: [...chosen].sort(), unmatched };
}

/** A target back as a 3.0.1 valuesMap (for its granted-text form). */
function legacy(t: Target): { type: string; values: string[] } {
  switch (t.kind) {
    case 'ven': return { type: 'VEN_NAME', values: [t.name] };
    case 'resource': return { type: 'RESOURCE_NAME', values: [t.name] };
    case 'label': return { type: 'GROUP', values: [t.selector] };
    case 'name': return { type: 'VEN_NAME', values: [t.name] };
    default: {
      const i = t.text.indexOf(':');
      return { type: t.text.slice(0, i), values: [t.text.slice(i + 1)] };
    }
  }
}
