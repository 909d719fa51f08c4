// The dashboard's small kit: the element helper that keeps data from the gateway as text, formatting
// of values and times, toasts, a bounded pool for bulk work and the widgets several pages share.

import { CHANNELS } from './shared.js';

/** Units shown with a k prefix from 10,000 up. */
const KILO = { Wh: 'kWh', W: 'kW', varh: 'kvarh', var: 'kvar' };

export const BULK_CONCURRENCY = 4;

/**
 * Every object parsed from the gateway's answers and stream (parseData) carries this mark: it is data
 * — a meter may have written it — and h() never takes it for attributes, only shows it as text.
 */
const DATA = Symbol('data');

/** JSON from the gateway, every object in it marked as data. */
export function parseData(text) {
  return JSON.parse(text, (_k, v) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) v[DATA] = true;
    return v;
  });
}

/** Properties h() may set directly (anything else is an attribute); never one that parses HTML. */
const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'multiple', 'required', 'readOnly', 'colSpan', 'rowSpan', 'open']);

/** Attributes written in this file's code: a plain object literal, never data from the gateway. */
function isAttrs(a) {
  return a !== null && typeof a === 'object' && Object.getPrototypeOf(a) === Object.prototype && !(DATA in a);
}

/** h('div.card#x', {onclick}, child…): an element; strings become text nodes. */
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/.exec(spec);
  const el = document.createElement(m ? m[1] : 'div');
  if (m) for (const part of m[2].match(/[.#][\w-]+/g) ?? []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs !== undefined && attrs !== null && !isAttrs(attrs)) {
    children.unshift(attrs);
    attrs = undefined;
  }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    } else if (k === 'class') el.className = String(v);
    else if (PROPS.has(k) && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(typeof c === 'object' ? detailsText(c) : String(c)));
  }
  return el;
}

/** Replaces an element's children (nothing for undefined, null and false, unlike replaceChildren). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

const svgNs = 'http://www.w3.org/2000/svg';

export function s(tag, attrs) {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) el.setAttribute(k, String(v));
  return el;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const unixMs = (t) => (t < 1e11 ? t * 1000 : t);

export function ago(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '—';
  const d = Math.max(0, Date.now() - ms) / 1000;
  if (d < 5) return 'just now';
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

export const timeText = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

export const dateTimeText = (ms) => (ms ? new Date(ms).toLocaleString([], { hour12: false }) : '—');

export function valueText(channel, v) {
  const unit = channelUnit(channel);
  if (unit === 'mV') return `${(v / 1000).toFixed(1)} V`;
  if (unit === 'mA') return `${(v / 1000).toFixed(2)} A`;
  if ((unit === 'Wh' || unit === 'varh') && Math.abs(v) >= 10_000) return `${(v / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} ${KILO[unit]}`;
  if ((unit === 'W' || unit === 'var') && Math.abs(v) >= 10_000) return `${(v / 1000).toFixed(1)} ${KILO[unit]}`;
  return `${v.toLocaleString()}${unit ? ' ' + unit : ''}`;
}

/** An axis tick in the unit valueText uses, with as many decimals as the tick step needs. */
export function axisText(channel, v, step) {
  const unit = channelUnit(channel);
  const [div, shown] = unit === 'mV' ? [1000, 'V'] : unit === 'mA' ? [1000, 'A'] : KILO[unit] && Math.abs(v) >= 10_000 ? [1000, KILO[unit]] : [1, unit];
  const decimals = Math.min(3, Math.max(0, Math.ceil(-Math.log10(Math.max(step / div, 1e-9)))));
  return `${(v / div).toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals })}${shown ? ' ' + shown : ''}`;
}

/** An event's data as `key=value …` (nested values as JSON). */
export function detailsText(data) {
  if (data === null || typeof data !== 'object') return data === null || data === undefined ? '' : String(data);
  return Object.entries(data).map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`).join(' ');
}

export function uptimeText(sec) {
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${sec % 60} s`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
  return `${Math.floor(sec / 86400)} d ${Math.floor((sec % 86400) / 3600)} h`;
}

export const channelName = (c) => CHANNELS[c]?.[1] || `Channel ${c}`;

/** A channel's unit as people read it (WIRE.md writes dm3). */
const channelUnit = (c) => (CHANNELS[c]?.[2] ?? '').replace('dm3', 'dm³');

export const shortCid = (cid) => (cid && cid.length > 16 ? `${cid.slice(0, 8)}…${cid.slice(-6)}` : cid ?? '');

/** Shows a form's result line: `kind` is ok, error or pending. */
export function say(el, kind, text) {
  el.hidden = false;
  el.className = `result ${kind}`;
  el.textContent = text;
}

export function toast(text, kind = 'info') {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = `toast ${kind}`;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

/** Runs `f` over items with at most `n` at once, calling `progress(done)` after each. */
export async function pool(items, n, f, progress) {
  let next = 0;
  let done = 0;
  const results = new Array(items.length);
  async function worker() {
    while (next < items.length) {
      const i = next++;
      results[i] = await f(items[i], i);
      progress?.(++done);
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return results;
}

export function badge(state) {
  return h(`span.badge.state-${state}`, state);
}

export function onlineDot(d) {
  const on = !!d.connected;
  return h(`span.dot.${on ? 'online' : 'offline'}`, { title: on ? 'connected to the broker' : 'not connected' }, on ? 'online' : 'offline');
}

export function guestStates(d) {
  const reported = d.status?.guests ?? [];
  if (reported.length) return reported.map(([name, , st]) => h(`span.chip.g-${st}`, `${name}: ${st}`));
  const known = Object.values(d.guests ?? {}).filter((g) => g.name);
  return known.length ? known.map((g) => h(`span.chip.g-${g.state}`, `${g.name}: ${g.state}`)) : h('span.muted', '—');
}

export function labelChips(labels) {
  const e = Object.entries(labels ?? {});
  return e.length ? e.map(([k, v]) => h('span.chip.label', v === '' ? k : `${k}=${v}`)) : h('span.muted', '—');
}

export function stat(label, value, extra) {
  return h('div.stat', h('div.stat-value', value), h('div.stat-label', label), extra);
}

/** Bytes as base64 (the API's JSON carries modules and releases so). */
export function base64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}
