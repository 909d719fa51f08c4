// The gridlet dashboard: a single page over the gateway's JSON API (ARCHITECTURE.md "Operator
// interface") and its live stream GET /api/events. No build step, no libraries: a tiny element helper,
// hash routing (#/, #/devices/:id, #/pair, #/guests, #/firmware, #/dr) and SVG charts drawn here.
// Everything shown from the API goes into text nodes, never into HTML.

const TOKEN_KEY = 'gridlet.apiToken';
const DEVICE_ID = /^[a-z2-7]{16}$/;
const CHANNELS = {
  1: ['Energy imported', 'Wh'], 2: ['Energy exported', 'Wh'], 3: ['Power imported', 'W'], 4: ['Power exported', 'W'],
  5: ['Voltage L1', 'mV'], 6: ['Voltage L2', 'mV'], 7: ['Voltage L3', 'mV'], 8: ['Current L1', 'mA'], 9: ['Current L2', 'mA'],
  10: ['Current L3', 'mA'], 11: ['Gas delivered', 'dm³'], 12: ['Tariff indicator', ''],
  13: ['Reactive energy imported', 'varh'], 14: ['Reactive energy exported', 'varh'], 15: ['Reactive power imported', 'var'],
  16: ['Reactive power exported', 'var'], 17: ['Power imported L1', 'W'], 18: ['Power imported L2', 'W'], 19: ['Power imported L3', 'W'],
  20: ['Power exported L1', 'W'], 21: ['Power exported L2', 'W'], 22: ['Power exported L3', 'W'],
};
/** Units shown with a k prefix from 10,000 up. */
const KILO = { Wh: 'kWh', W: 'kW', varh: 'kvarh', var: 'kvar' };
const PAIR_OUTCOMES = {
  201: 'Paired. The meter now sends its readings to this gateway.',
  403: 'The meter refused the code: check the pair code on its label.',
  404: 'No Hello seen from this id: is the meter powered and connected to this gateway\'s broker?',
  409: 'Already paired.',
  504: 'The meter did not answer within 15 s: check its link and try again.',
};
const CHART_WINDOWS = [5, 15, 60];
const CHART_POINTS_MAX = 5000;
const BULK_CONCURRENCY = 4;
/** Rows the fleet table draws; a label filter narrows a larger fleet. */
const FLEET_ROWS_MAX = 500;

// ---- small helpers ---------------------------------------------------------------------------------

/**
 * Every object parsed from the gateway's answers and stream (parseData) carries this mark: it is data
 * — a meter may have written it — and h() never takes it for attributes, only shows it as text.
 */
const DATA = Symbol('data');
/** JSON from the gateway, every object in it marked as data. */
function parseData(text) {
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
function h(spec, attrs, ...children) {
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
function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(typeof c === 'object' ? detailsText(c) : String(c)));
  }
  return el;
}
/** Replaces an element's children (nothing for undefined, null and false, unlike replaceChildren). */
function fill(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}
const svgNs = 'http://www.w3.org/2000/svg';
function s(tag, attrs) {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) el.setAttribute(k, String(v));
  return el;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const unixMs = (t) => (t < 1e11 ? t * 1000 : t);
function ago(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '—';
  const d = Math.max(0, Date.now() - ms) / 1000;
  if (d < 5) return 'just now';
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}
const timeText = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
const dateTimeText = (ms) => (ms ? new Date(ms).toLocaleString([], { hour12: false }) : '—');
function valueText(channel, v) {
  const unit = CHANNELS[channel]?.[1] ?? '';
  if (unit === 'mV') return `${(v / 1000).toFixed(1)} V`;
  if (unit === 'mA') return `${(v / 1000).toFixed(2)} A`;
  if ((unit === 'Wh' || unit === 'varh') && Math.abs(v) >= 10_000) return `${(v / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })} ${KILO[unit]}`;
  if ((unit === 'W' || unit === 'var') && Math.abs(v) >= 10_000) return `${(v / 1000).toFixed(1)} ${KILO[unit]}`;
  return `${v.toLocaleString()}${unit ? ' ' + unit : ''}`;
}
/** An axis tick in the unit valueText uses, with as many decimals as the tick step needs. */
function axisText(channel, v, step) {
  const unit = CHANNELS[channel]?.[1] ?? '';
  const [div, shown] = unit === 'mV' ? [1000, 'V'] : unit === 'mA' ? [1000, 'A'] : KILO[unit] && Math.abs(v) >= 10_000 ? [1000, KILO[unit]] : [1, unit];
  const decimals = Math.min(3, Math.max(0, Math.ceil(-Math.log10(Math.max(step / div, 1e-9)))));
  return `${(v / div).toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals })}${shown ? ' ' + shown : ''}`;
}
/** An event's data as `key=value …` (nested values as JSON). */
function detailsText(data) {
  if (data === null || typeof data !== 'object') return data === null || data === undefined ? '' : String(data);
  return Object.entries(data).map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`).join(' ');
}
function uptimeText(sec) {
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${sec % 60} s`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
  return `${Math.floor(sec / 86400)} d ${Math.floor((sec % 86400) / 3600)} h`;
}
const channelName = (c) => CHANNELS[c]?.[0] ?? `Channel ${c}`;
const shortCid = (cid) => (cid && cid.length > 16 ? `${cid.slice(0, 8)}…${cid.slice(-6)}` : cid ?? '');

function toast(text, kind = 'info') {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = `toast ${kind}`;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

/** Splits a label selector `k=v,k2` as the gateway does; undefined when it is malformed. */
function parseSelector(text) {
  const out = [];
  for (const part of text.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    const key = eq < 0 ? p : p.slice(0, eq);
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/.test(key)) return undefined;
    out.push(eq < 0 ? { key } : { key, value: p.slice(eq + 1) });
  }
  return out;
}
const matches = (d, sel) => sel.every((x) => x.key in (d.labels ?? {}) && (x.value === undefined || d.labels[x.key] === x.value));

/** Runs `f` over items with at most `n` at once, calling `progress(done)` after each. */
async function pool(items, n, f, progress) {
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

// ---- the API ---------------------------------------------------------------------------------------

let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
const authHeaders = () => (token ? { authorization: `Bearer ${token}` } : {});

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * An API path: every value interpolated becomes exactly one encoded path segment (or query value), so
 * text from a meter (a guest's name, an id) can never add segments or climb with `..`.
 */
function path(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    const seg = String(v);
    if (seg === '' || seg === '.' || seg === '..') throw new Error(`"${seg}" cannot be part of a gateway URL`);
    out += encodeURIComponent(seg) + strings[i + 1];
  });
  return out;
}

/** A JSON API call: {status, ok, json}. 401 opens the sign-in form. Network errors throw. */
async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json;
  try {
    json = parseData(await res.text());
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    showLogin(token ? 'That token was not accepted.' : undefined);
    throw new ApiError(401, 'the gateway needs its API token');
  }
  return { status: res.status, ok: res.ok, json };
}
const errorText = (r) => r.json?.error ?? `HTTP ${r.status}`;

async function getJson(path) {
  const r = await api('GET', path);
  if (!r.ok) throw new ApiError(r.status, errorText(r));
  return r.json;
}

// ---- sign-in (non-loopback gateways) ---------------------------------------------------------------

let loginWaiters = [];
function showLogin(error) {
  const box = document.getElementById('login');
  box.hidden = false;
  const e = document.getElementById('login-error');
  e.hidden = !error;
  e.textContent = error ?? '';
  document.getElementById('login-token').focus();
}
function whenSignedIn() {
  return new Promise((r) => loginWaiters.push(r));
}
document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  token = document.getElementById('login-token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await getJson('/api/devices');
  } catch {
    return;
  }
  document.getElementById('login').hidden = true;
  const w = loginWaiters;
  loginWaiters = [];
  for (const f of w) f();
});

// ---- fleet state, kept live ------------------------------------------------------------------------

const fleet = {
  gateway: '',
  /** id → device JSON (GET /api/devices) plus `last` {t, channel, value} and `lastSeq`. */
  devices: new Map(),
  loaded: false,
  guests: [],
  dr: [],
};
const listeners = new Set();
function changed(what, data) {
  for (const f of listeners) f(what, data);
}

async function loadDevices() {
  const list = await getJson('/api/devices');
  const seen = new Set();
  for (const d of list) {
    seen.add(d.id);
    const old = fleet.devices.get(d.id);
    fleet.devices.set(d.id, { ...d, last: old?.last, lastSeq: old?.lastSeq });
  }
  for (const id of [...fleet.devices.keys()]) if (!seen.has(id)) fleet.devices.delete(id);
  fleet.loaded = true;
  changed('devices');
  void loadLastReadings(list.filter((d) => d.state === 'paired' && d.ackedSeq > 0 && !fleet.devices.get(d.id)?.last).slice(0, 200));
}

/** The latest reading of each device, for the fleet table (the stream keeps it current afterwards). */
async function loadLastReadings(list) {
  await pool(list, 4, async (d) => {
    try {
      const r = await getJson(path`/api/devices/${d.id}/readings?from=${Math.max(1, d.ackedSeq - 16)}&limit=32`);
      const dev = fleet.devices.get(d.id);
      if (!dev) return;
      for (const rec of r.records) if (typeof rec[2] === 'number') noteReading(dev, rec[1], rec[2], rec[3], rec[0]);
    } catch { /* shown as no reading yet */ }
  });
  changed('devices');
}

/** The fleet table shows power when the meter has it, else its first channel. */
function noteReading(dev, t, channel, value, seq) {
  const prefer = !dev.last || channel === 3 || dev.last.channel !== 3;
  if (prefer || unixMs(t) > unixMs(dev.last.t) + 60_000) dev.last = { t, channel, value };
  if (seq !== undefined) dev.lastSeq = Math.max(dev.lastSeq ?? 0, seq);
}

const refreshTimers = new Map();
/** Re-reads one device after a change the stream announced (coalesced per device). */
function refreshDevice(id) {
  if (refreshTimers.has(id)) return;
  refreshTimers.set(id, setTimeout(async () => {
    refreshTimers.delete(id);
    const r = await api('GET', path`/api/devices/${id}`).catch(() => undefined);
    if (!r) return;
    if (r.status === 404) fleet.devices.delete(id);
    else if (r.ok) {
      const old = fleet.devices.get(id);
      fleet.devices.set(id, { ...r.json, last: old?.last, lastSeq: old?.lastSeq });
    }
    changed('device', id);
  }, 250));
}

function onStreamEvent(type, data) {
  if (type === 'records') {
    const dev = fleet.devices.get(data.deviceId);
    if (dev) {
      for (const [ch, [t, v]] of Object.entries(data.latest)) noteReading(dev, t, Number(ch), v);
      dev.lastSeq = Math.max(dev.lastSeq ?? 0, data.lastSeq);
      dev.ackedSeq = Math.max(dev.ackedSeq ?? 0, data.lastSeq);
      dev.lastSeen = new Date().toISOString();
    } else refreshDevice(data.deviceId);
    changed('records', data);
  } else if (type === 'device') {
    refreshDevice(data.deviceId);
    changed('change', data);
  } else if (type === 'dr') {
    fleet.dr.unshift(data);
    fleet.dr.length = Math.min(fleet.dr.length, 200);
    changed('dr', data);
  }
}

function setLive(on, text) {
  const el = document.getElementById('live');
  el.className = `live ${on ? 'on' : 'off'}`;
  el.textContent = text ?? (on ? 'live' : 'reconnecting…');
}

/** GET /api/events through fetch (so the bearer token goes with it), parsed as Server-Sent Events. */
async function stream() {
  for (let attempt = 0; ; attempt++) {
    // The gateway sends a heartbeat every 15 s: a stream silent for 45 s is dead, so start another.
    const abort = new AbortController();
    let watchdog;
    const alive = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => abort.abort(), 45_000);
    };
    try {
      alive();
      const res = await fetch('/api/events', { headers: authHeaders(), signal: abort.signal });
      if (res.status === 401) {
        showLogin();
        await whenSignedIn();
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      attempt = 0;
      setLive(true);
      await loadDevices(); // whatever happened while disconnected
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        alive();
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let type = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          if (!data.length) continue;
          try {
            onStreamEvent(type, parseData(data.join('\n')));
          } catch (e) {
            console.error('dashboard: bad stream event', type, e);
          }
        }
      }
    } catch (e) {
      console.warn('dashboard: live stream lost', e);
    }
    clearTimeout(watchdog);
    setLive(false);
    await sleep(Math.min(10_000, 1000 * 2 ** Math.min(attempt, 4)));
  }
}

// ---- views ----------------------------------------------------------------------------------------

let current = { dispose() {} };
const viewEl = () => document.getElementById('view');

function route() {
  current.dispose?.();
  listeners.clear();
  const hash = location.hash || '#/';
  const parts = hash.slice(1).split('/').filter(Boolean).map(decodeURIComponent);
  const nav = parts[0] === 'devices' || !parts[0] ? 'fleet' : parts[0];
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
  const root = viewEl();
  fill(root);
  if (parts[0] === 'devices' && parts[1]) current = devicePage(root, parts[1]);
  else if (parts[0] === 'pair') current = pairPage(root, parts[1]);
  else if (parts[0] === 'guests') current = guestsPage(root);
  else if (parts[0] === 'firmware') current = firmwarePage(root, parts[1]);
  else if (parts[0] === 'dr') current = drPage(root, parts[1]);
  else current = fleetPage(root);
  window.scrollTo(0, 0);
}

function badge(state) {
  return h(`span.badge.state-${state}`, state);
}
function onlineDot(d) {
  const on = !!d.connected;
  return h(`span.dot.${on ? 'online' : 'offline'}`, { title: on ? 'connected to the broker' : 'not connected' }, on ? 'online' : 'offline');
}
function guestStates(d) {
  const reported = d.status?.guests ?? [];
  if (reported.length) return reported.map(([name, , st]) => h(`span.chip.g-${st}`, `${name}: ${st}`));
  const known = Object.values(d.guests ?? {}).filter((g) => g.name);
  return known.length ? known.map((g) => h(`span.chip.g-${g.state}`, `${g.name}: ${g.state}`)) : h('span.muted', '—');
}
function labelChips(labels) {
  const e = Object.entries(labels ?? {});
  return e.length ? e.map(([k, v]) => h('span.chip.label', v === '' ? k : `${k}=${v}`)) : h('span.muted', '—');
}

function stat(label, value, extra) {
  return h('div.stat', h('div.stat-value', value), h('div.stat-label', label), extra);
}

// Fleet -----------------------------------------------------------------------------------------------
function fleetPage(root) {
  let filter = sessionStorage.getItem('gridlet.filter') ?? '';
  const counts = h('div.stats');
  const tbody = h('tbody');
  const filterInput = h('input#label-filter', { type: 'search', placeholder: 'label selector, e.g. site=north', value: filter });
  const filterError = h('span.error', { hidden: true });
  const empty = h('div.empty', { hidden: true });
  append(root,
    h('div.page-head', h('h1', 'Fleet'), h('div.actions', h('a.button.primary', { href: '#/pair' }, 'Pair meters'))),
    counts,
    h('div.card',
      h('div.toolbar', h('label.filter', 'Filter by label ', filterInput), filterError, h('span#fleet-shown.muted')),
      h('div.table-wrap', h('table.fleet#fleet',
        h('thead', h('tr', ['Device', 'State', 'Link', 'Last reading', 'Backlog', 'Guests', 'Labels', ''].map((x) => h('th', x)))),
        tbody)),
      empty));
  filterInput.addEventListener('input', () => {
    filter = filterInput.value;
    sessionStorage.setItem('gridlet.filter', filter);
    render();
  });

  function render() {
    const all = [...fleet.devices.values()];
    const c = { paired: 0, online: 0, seen: 0, revoked: 0 };
    let backlog = 0;
    for (const d of all) {
      c[d.state] = (c[d.state] ?? 0) + 1;
      if (d.connected && d.state === 'paired') c.online++;
      backlog += d.status?.buffered ?? 0;
    }
    fill(counts, 
      stat('paired', c.paired), stat('online', [String(c.online), h('span.muted', ` of ${c.paired}`)]),
      stat('waiting to pair', c.seen), stat('revoked', c.revoked), stat('records buffered on meters', backlog.toLocaleString()));
    const sel = parseSelector(filter);
    filterError.hidden = !!sel;
    filterError.textContent = sel ? '' : 'not a label selector (key or key=value, comma-separated)';
    const shown = all.filter((d) => !sel || matches(d, sel));
    document.getElementById('fleet-shown').textContent = shown.length > FLEET_ROWS_MAX
      ? `first ${FLEET_ROWS_MAX} of ${shown.length} matching, ${all.length} device(s) in all: filter by label to narrow`
      : `${shown.length} of ${all.length} device(s)`;
    const order = { seen: 0, paired: 1, revoked: 2 };
    shown.sort((a, b) => (order[a.state] - order[b.state]) || (a.id < b.id ? -1 : 1));
    fill(tbody, ...shown.slice(0, FLEET_ROWS_MAX).map((d) => {
      const open = () => { location.hash = `#/devices/${d.id}`; };
      const link = d.status?.link;
      return h(`tr.row.state-${d.state}`, { 'data-device': d.id, onclick: open },
        h('td', h('a.devid', { href: `#/devices/${d.id}` }, d.id), h('div.sub', `${d.model} · ${d.firmware}`)),
        h('td', badge(d.state)),
        h('td', onlineDot(d), link ? h('div.sub', link) : null),
        h('td.last', d.last ? [h('span.value', valueText(d.last.channel, d.last.value)), h('div.sub', `${channelName(d.last.channel)} · ${ago(unixMs(d.last.t))}`)]
          : h('span.muted', d.state === 'paired' ? 'no reading yet' : '—')),
        h('td.num', d.status ? String(d.status.buffered) : h('span.muted', '—')),
        h('td', guestStates(d)),
        h('td', labelChips(d.labels)),
        h('td.act', d.state === 'seen'
          ? h('button.primary.small', { 'data-pair': d.id, onclick: (ev) => { ev.stopPropagation(); location.hash = `#/pair/${d.id}`; } }, 'Pair…')
          : null));
    }));
    empty.hidden = all.length > 0;
    fill(empty, h('p', 'No meters yet. A meter appears here as soon as its Hello reaches this gateway\'s broker; then pair it with the code on its label.'));
  }
  let t;
  listeners.add(() => {
    if (!t) t = setTimeout(() => { t = undefined; render(); }, 200);
  });
  const tick = setInterval(render, 5000);
  render();
  return { dispose() { clearInterval(tick); clearTimeout(t); } };
}

// Charts ---------------------------------------------------------------------------------------------
/** A line chart of [ms, value] points over the last `windowMin` minutes, drawn into an SVG. */
function drawChart(svg, points, windowMin, channel) {
  const W = 560, H = 180, R = 12, T = 12, B = 26;
  let L = 56;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  fill(svg);
  const now = Date.now();
  const pts = points.filter((p) => p[0] >= now - windowMin * 60_000);
  // A meter paired a minute ago fills the chart instead of a sliver at its right edge.
  const t0 = pts.length ? Math.min(pts[0][0], now - 60_000) : now - windowMin * 60_000;
  svg.dataset.points = String(pts.length);
  const g = s('g');
  svg.append(g);
  if (!pts.length) {
    const tx = s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' });
    tx.textContent = 'waiting for readings…';
    g.append(tx);
    return;
  }
  let lo = Math.min(...pts.map((p) => p[1]));
  let hi = Math.max(...pts.map((p) => p[1]));
  if (hi === lo) { hi += Math.max(1, Math.abs(hi) * 0.05); lo -= Math.max(1, Math.abs(lo) * 0.05); }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  const ticks = [0, 1, 2, 3, 4].map((i) => lo + ((hi - lo) * i) / 4);
  const tickText = ticks.map((v) => axisText(channel, v, (hi - lo) / 4));
  L = Math.max(L, 12 + 6.2 * Math.max(...tickText.map((x) => x.length)));
  const x = (t) => L + ((t - t0) / (now - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  ticks.forEach((v, i) => {
    g.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    const tx = s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' });
    tx.textContent = tickText[i];
    g.append(tx);
  });
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((now - t0) * i) / 4;
    const tx = s('text', { x: x(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'axis' });
    tx.textContent = now - t0 < 600_000 ? timeText(t) : timeText(t).slice(0, 5);
    g.append(tx);
  }
  const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
  const area = `${d}L${x(pts[pts.length - 1][0]).toFixed(1)},${H - B}L${x(pts[0][0]).toFixed(1)},${H - B}Z`;
  g.append(s('path', { d: area, class: 'area' }), s('path', { d, class: 'line' }));
  const last = pts[pts.length - 1];
  g.append(s('circle', { cx: x(last[0]), cy: y(last[1]), r: 3.5, class: 'last' }));
}

// Device ---------------------------------------------------------------------------------------------
function devicePage(root, id) {
  if (!DEVICE_ID.test(id)) {
    append(root, h('div.card', h('h1', 'No such device'), h('p', `"${id}" is not a device id (16 characters a-z and 2-7).`)));
    return {};
  }
  const series = new Map(); // channel → [[ms, value]…]
  const events = [];
  let windowMin = Number(sessionStorage.getItem('gridlet.window')) || 15;
  const head = h('div.page-head');
  const statsEl = h('div.stats');
  const charts = h('div.charts');
  const eventsEl = h('tbody');
  const drEl = h('tbody');
  const guestsEl = h('div');
  const labelsEl = h('div');
  const privacyEl = h('div');
  const actionsEl = h('div');
  const windowSel = h('div.segmented', CHART_WINDOWS.map((m) => h('button.small', {
    'data-window': m, class: m === windowMin ? 'small on' : 'small',
    onclick: () => { windowMin = m; sessionStorage.setItem('gridlet.window', String(m)); for (const b of windowSel.children) b.classList.toggle('on', Number(b.dataset.window) === m); renderCharts(); },
  }, `${m} min`)));
  append(root,
    h('a.back', { href: '#/' }, '← Fleet'),
    head, statsEl,
    h('div.card', h('div.card-head', h('h2', 'Live readings'), windowSel), charts),
    h('div.grid2',
      h('div.card', h('h2', 'Events'), h('div.table-wrap.scroll', h('table#events', h('thead', h('tr', h('th', 'Time'), h('th', 'Seq'), h('th', 'Event'), h('th', 'Details'))), eventsEl))),
      h('div.card', h('h2', 'Demand response'), h('div.table-wrap.scroll', h('table#dr-history', h('thead', h('tr', h('th', 'Time'), h('th', 'Event'), h('th', 'Phase'))), drEl)),
        h('p', h('a.button.small', { href: `#/dr/${id}` }, 'Send a demand-response event…')))),
    h('div.grid2', h('div.card', h('h2', 'Guests'), guestsEl), h('div.card', h('h2', 'Labels'), labelsEl)),
    h('div.grid2', h('div.card', h('h2', 'Privacy policy'), privacyEl), h('div.card', h('h2', 'Pairing'), actionsEl)));

  const dev = () => fleet.devices.get(id);
  function renderHead() {
    const d = dev();
    if (!d) {
      fill(head, h('h1', h('code', id)), h('span.muted', fleet.loaded ? 'not known to this gateway' : 'loading…'));
      fill(statsEl);
      return;
    }
    fill(head, 
      h('div', h('h1.devtitle', h('code', d.id), ' ', badge(d.state), ' ', onlineDot(d)),
        h('div.sub', `${d.model} · firmware ${d.firmware}` + (d.pairedAt ? ` · paired ${dateTimeText(Date.parse(d.pairedAt))}` : '') +
          (d.gateway && d.gateway !== fleet.gateway ? ` · by gateway ${d.gateway}` : '')),
        // Pairings by another operator's gateways while this one's stood: recorded, shown, never acted on.
        (d.conflicts ?? []).map((c) => h('div.conflict.error', { 'data-conflict': c.gateway },
          `Pairing conflict: gateway ${c.gateway} of operator ${c.operatorName ?? c.operator} paired this meter` +
          (c.pairedAt ? ` at ${dateTimeText(Date.parse(c.pairedAt))}` : '') + ' while it was paired here. It displaced nothing; settle it with that operator.'))));
    const st = d.status;
    fill(statsEl, 
      stat('last reading', d.last ? valueText(d.last.channel, d.last.value) : '—', h('div.sub', d.last ? `${channelName(d.last.channel)} · ${ago(unixMs(d.last.t))}` : '')),
      stat('records stored (acked seq)', (d.ackedSeq ?? 0).toLocaleString()),
      stat('backlog on the meter', st ? st.buffered.toLocaleString() : '—', h('div.sub', st ? `${st.dropped} dropped` : '')),
      stat('link', st?.link ?? (d.connected ? 'up' : '—'), h('div.sub', `last seen ${ago(d.lastSeen ? Date.parse(d.lastSeen) : undefined)}`)),
      stat('uptime at last status', st ? uptimeText(st.uptime) : '—', h('div.sub', st ? `heap ${(st.heap / 1024).toFixed(0)} KiB · status ${ago(st.receivedAt)}` : '')));
    renderActions(d);
  }

  function renderCharts() {
    const chans = [...series.keys()].sort((a, b) => a - b);
    if (!chans.length) {
      fill(charts, h('p.muted.chart-none', dev()?.state === 'paired' ? 'Waiting for the first readings…' : 'Readings appear here once the meter is paired.'));
      return;
    }
    fill(charts, ...chans.map((c) => {
      const pts = series.get(c);
      const last = pts[pts.length - 1];
      const svg = s('svg', { class: 'chart', role: 'img', 'aria-label': channelName(c), 'data-channel': c });
      drawChart(svg, pts, windowMin, c);
      return h('div.chart-box', h('div.chart-title', h('span', channelName(c)), h('span.chart-value', { 'data-channel-value': c }, last ? valueText(c, last[1]) : '')), svg);
    }));
  }
  function addRecords(records) {
    for (const r of records) {
      if (typeof r[2] === 'number') {
        let p = series.get(r[2]);
        if (!p) series.set(r[2], (p = []));
        p.push([unixMs(r[1]), r[3]]);
        if (p.length > CHART_POINTS_MAX) p.splice(0, p.length - CHART_POINTS_MAX);
      } else events.unshift(r);
    }
    if (events.length > 200) events.length = 200;
  }
  function renderEvents() {
    fill(eventsEl, ...(events.length ? events.slice(0, 100).map((r) => {
      const [seq, t, kind] = r;
      const isGap = kind === 'gap';
      const name = isGap ? 'gap' : r[3];
      const data = isGap ? `records up to ${r[3]} lost: ${r[4]}` : detailsText(r[4]);
      return h('tr', h('td.nowrap', dateTimeText(unixMs(t))), h('td.num', seq), h('td', h(`span.chip.ev-${name}`, name)), h('td.mono', data));
    }) : [h('tr', h('td.muted', { colSpan: 4 }, 'No events yet.'))]));
  }
  function renderDr(list) {
    fill(drEl, ...(list.length ? list.map((e) => h('tr', h('td.nowrap', dateTimeText(unixMs(e.t))), h('td', e.event ?? ''), h('td', h(`span.chip.dr-${e.phase}`, e.phase ?? ''))))
      : [h('tr', h('td.muted', { colSpan: 3 }, 'No demand-response events reported by this meter.'))]));
  }
  let drList = [];

  async function loadReadings() {
    const d = dev();
    if (!d || d.state === 'seen') return renderCharts();
    const from = Math.max(1, (d.ackedSeq ?? 0) - 4000 + 1);
    try {
      const r = await getJson(path`/api/devices/${id}/readings?from=${from}&limit=5000`);
      series.clear();
      events.length = 0;
      addRecords(r.records);
    } catch (e) {
      fill(charts, h('p.error', `Readings could not be loaded: ${e.message}`));
      return;
    }
    renderCharts();
    renderEvents();
  }
  async function loadDr() {
    const r = await api('GET', path`/api/devices/${id}/dr-events`).catch(() => undefined);
    drList = r?.ok ? r.json.events.slice().reverse() : [];
    renderDr(drList);
  }

  async function loadGuests() {
    const [dg, all] = await Promise.all([api('GET', path`/api/devices/${id}/guests`).catch(() => undefined), api('GET', '/api/guests').catch(() => undefined)]);
    const d = dev();
    const rows = [];
    const reported = new Map((dg?.json?.reported ?? []).map((g) => [g.name, g]));
    for (const g of dg?.json?.guests ?? []) {
      const rep = reported.get(g.name);
      reported.delete(g.name);
      rows.push({ name: g.name, cid: g.cid, state: rep && rep.cid === g.cid ? rep.state : g.state, reason: g.reason });
    }
    for (const g of reported.values()) rows.push({ name: g.name, cid: g.cid, state: g.state });
    const select = h('select#deploy-cid', (all?.json ?? []).map((m) => h('option', { value: m.cid }, `${m.name} ${m.version} (${shortCid(m.cid)})`)));
    const out = h('span.muted');
    fill(guestsEl, 
      h('table#device-guests', h('thead', h('tr', h('th', 'Guest'), h('th', 'CID'), h('th', 'State'), h('th', ''))),
        h('tbody', rows.length ? rows.map((g) => h('tr', { 'data-guest': g.name },
          h('td', g.name), h('td.mono', { title: g.cid }, shortCid(g.cid)), h('td', h(`span.chip.g-${g.state}`, g.state), g.reason ? h('div.sub', g.reason) : null),
          h('td.act', d?.state === 'paired' ? h('button.small', {
            onclick: async () => {
              if (!confirm(`Remove guest ${g.name} from ${id}?`)) return;
              const r = await api('DELETE', path`/api/devices/${id}/guests/${g.name}`, {});
              toast(r.ok ? `Removal of ${g.name} sent` : errorText(r), r.ok ? 'ok' : 'error');
              void loadGuests();
            },
          }, 'Remove') : null))) : h('tr', h('td.muted', { colSpan: 4 }, 'No guests reported yet.')))),
      d?.state === 'paired' ? h('div.inline-form', (all?.json ?? []).length ? [select, h('button.primary.small#deploy', {
        onclick: async () => {
          out.textContent = 'sending…';
          const r = await api('POST', path`/api/devices/${id}/guests`, { cid: select.value });
          out.textContent = r.ok ? `sent in ${r.json.chunks} chunk(s); waiting for the meter's acknowledgement` : errorText(r);
          out.className = r.ok ? 'ok' : 'error';
          void loadGuests();
        },
      }, 'Deploy'), out] : h('span.muted', 'Upload a guest on the ', h('a', { href: '#/guests' }, 'Guests'), ' page to deploy it here.')) : null);
  }

  function renderLabels() {
    const d = dev();
    if (!d) return fill(labelsEl);
    if (d.state !== 'paired') return fill(labelsEl, h('p.muted', 'Labels can be set once the meter is paired.'), labelChips(d.labels));
    const rows = Object.entries(d.labels ?? {}).map(([k, v]) => [k, v]);
    const list = h('div.label-rows');
    const addRow = (k = '', v = '') => list.append(h('div.label-row',
      h('input.lk', { value: k, placeholder: 'key', 'aria-label': 'label key' }), h('span', '='), h('input.lv', { value: v, placeholder: 'value', 'aria-label': 'label value' }),
      h('button.small.ghost', { type: 'button', title: 'remove', onclick: (ev) => ev.target.closest('.label-row').remove() }, '×')));
    for (const [k, v] of rows) addRow(k, v);
    const msg = h('span');
    fill(labelsEl, list, h('div.inline-form',
      h('button.small', { type: 'button', onclick: () => addRow() }, 'Add label'),
      h('button.small.primary#save-labels', {
        type: 'button',
        onclick: async () => {
          const labels = {};
          for (const row of list.children) {
            const k = row.querySelector('.lk').value.trim();
            if (k) labels[k] = row.querySelector('.lv').value;
          }
          const r = await api('PUT', path`/api/devices/${id}/labels`, { labels });
          msg.className = r.ok ? 'ok' : 'error';
          msg.textContent = r.ok ? 'saved' : errorText(r);
          if (r.ok) { fleet.devices.set(id, { ...dev(), labels: r.json.labels }); }
        },
      }, 'Save labels'), msg));
  }

  /** GET/PUT/DELETE /api/devices/:id/privacy: the policy in force, where it comes from, and an editor. */
  async function loadPrivacy() {
    const r = await api('GET', path`/api/devices/${id}/privacy`).catch(() => undefined);
    if (!r || (r.status === 404 && /no such resource/.test(r.json?.error ?? ''))) {
      fill(privacyEl, h('p.muted', 'This gateway has no privacy policy API (GET/PUT /api/devices/:id/privacy).'));
      return;
    }
    if (!r.ok) return fill(privacyEl, h('p.muted', errorText(r)));
    const { policy, source } = r.json;
    const text = h('textarea#privacy-json.mono', { rows: 10, spellcheck: 'false' });
    text.value = JSON.stringify(policy, null, 2);
    const msg = h('span#privacy-msg');
    const from = source === 'device' ? 'set for this meter' : source === 'default' ? 'the gateway\'s default' : `from the group ${source.replace(/^group:/, '')}`;
    const share = (x) => (x.level === 'none' ? 'nothing' : `${x.level}${x.purposes?.length ? ` for ${x.purposes.join(', ')}` : ''}${x.channels ? ` (channels ${x.channels.join(', ')})` : ''}`);
    const peers = Object.entries(policy.peers ?? {});
    const after = (p) => {
      msg.className = p.ok ? 'ok' : 'error';
      msg.textContent = p.ok ? 'saved' : errorText(p);
      if (p.ok) setTimeout(() => void loadPrivacy(), 800);
    };
    fill(privacyEl,
      h('table.kv#privacy-summary', h('tbody',
        h('tr', h('th', 'Policy'), h('td', from)),
        h('tr', h('th', 'Operator'), h('td', share(policy.operator))),
        h('tr', h('th', 'Peers'), h('td', peers.length ? peers.map(([n, x]) => `${n}: ${share(x)}`).join('; ') : 'nothing')),
        h('tr', h('th', 'Mesh'), h('td', share(policy.mesh))),
        h('tr', h('th', 'Retention'), h('td', policy.retentionDays === null ? 'kept forever' : `${policy.retentionDays} days`)))),
      h('details', h('summary', 'Edit this meter\'s policy'), text,
        h('div.inline-form',
          h('button.small.primary', {
            onclick: async () => {
              let body;
              try { body = JSON.parse(text.value); } catch (e) { msg.className = 'error'; msg.textContent = `not JSON: ${e.message}`; return; }
              after(await api('PUT', path`/api/devices/${id}/privacy`, body));
            },
          }, 'Save policy'),
          source === 'device' ? h('button.small', { onclick: async () => after(await api('DELETE', path`/api/devices/${id}/privacy`, {})) }, 'Use the group or default policy') : null,
          msg)));
  }

  function renderActions(d) {
    if (d.state === 'seen') {
      fill(actionsEl, h('p', 'This meter has said Hello but is not paired. Enter the pair code from its label.'), pairForm(id));
    } else if (d.state === 'paired') {
      fill(actionsEl, h('p', 'Revoking ends this meter\'s pairing: the gateway forgets its session and drops what it would still send it. ' +
        'The meter keeps its readings until it is paired again.'),
      h('button.danger#revoke', {
        onclick: async () => {
          if (!confirm(`Revoke ${id}? It stops being served by this gateway until it is paired again.`)) return;
          const r = await api('DELETE', path`/api/devices/${id}`, {});
          toast(r.ok ? `${id} revoked` : errorText(r), r.ok ? 'ok' : 'error');
          refreshDevice(id);
        },
      }, 'Revoke pairing…'));
    } else {
      fill(actionsEl, h('p', `Revoked ${dateTimeText(d.revokedAt ? Date.parse(d.revokedAt) : 0)}. To use it again, pair it with its code.`), pairForm(id));
    }
  }

  let lastState = dev()?.state;
  listeners.add((what, data) => {
    if (what === 'records' && data.deviceId === id) {
      addRecords(data.readings.map((x) => x).concat(data.events.map(([seq, t, kind, d]) => (kind === 'gap' ? [seq, t, 'gap', d.last, d.reason] : [seq, t, 'event', kind, d]))));
      renderCharts();
      renderEvents();
      renderHead();
    } else if (what === 'dr' && data.deviceId === id) {
      drList.unshift(data);
      renderDr(drList);
    } else if ((what === 'device' && data === id) || what === 'devices') {
      const st = dev()?.state;
      renderHead();
      if (st !== lastState) {
        lastState = st;
        renderLabels();
        void loadReadings();
        void loadGuests();
      }
    } else if (what === 'change' && data.deviceId === id && (data.change === 'guest-ack' || data.change === 'status')) {
      setTimeout(() => void loadGuests(), 300);
    }
  });
  const tick = setInterval(() => { renderCharts(); renderHead(); }, 10_000);
  renderHead();
  renderLabels();
  renderEvents();
  renderDr([]);
  void loadReadings();
  void loadGuests();
  void loadDr();
  void loadPrivacy();
  return { dispose() { clearInterval(tick); } };
}

// Pairing --------------------------------------------------------------------------------------------
function pairOutcome(status, json) {
  return PAIR_OUTCOMES[status] ?? json?.error ?? `HTTP ${status}`;
}

/** The id + code form; `fixedId` when the page is about one device. */
function pairForm(fixedId, onDone) {
  const idIn = h('input#pair-id', { name: 'deviceId', placeholder: '16 characters a-z 2-7', value: fixedId ?? '', required: true, autocomplete: 'off', spellcheck: 'false' });
  const codeIn = h('input#pair-code', { name: 'code', placeholder: 'code from the label', required: true, autocomplete: 'off', spellcheck: 'false' });
  const out = h('div#pair-result.result', { hidden: true, role: 'status' });
  const btn = h('button.primary#pair-submit', { type: 'submit' }, 'Pair');
  const form = h('form.pair-form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const deviceId = idIn.value.trim();
      const code = codeIn.value.trim();
      out.hidden = false;
      if (!DEVICE_ID.test(deviceId)) {
        out.className = 'result error';
        out.textContent = 'A device id is 16 characters a-z and 2-7 (it is printed on the meter and shown in the fleet list).';
        return;
      }
      btn.disabled = true;
      out.className = 'result pending';
      out.textContent = `Asking ${deviceId} to accept the code… (the meter answers within 15 s)`;
      try {
        const r = await api('POST', '/api/pairings', { deviceId, code });
        out.className = `result ${r.status === 201 ? 'ok' : 'error'}`;
        out.dataset.status = String(r.status);
        out.textContent = `${r.status === 201 ? '✓' : '✗'} ${pairOutcome(r.status, r.json)}`;
        if (r.status === 201) {
          codeIn.value = '';
          refreshDevice(deviceId);
          onDone?.(deviceId);
        }
      } catch (e) {
        out.className = 'result error';
        out.textContent = `The gateway did not answer: ${e.message}`;
      } finally {
        btn.disabled = false;
      }
    },
  },
  h('label', 'Device id', idIn), h('label', 'Pair code', codeIn), btn, out);
  if (fixedId) idIn.readOnly = true;
  return form;
}

/** CSV of `id,code` per line; a header line is optional; blank lines and # comments are ignored. */
function parsePairCsv(text) {
  const rows = [];
  const bad = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const n = i + 1;
    if (!line || line.startsWith('#')) return;
    const cells = line.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
    if (rows.length === 0 && bad.length === 0 && /^(device[ _-]?id|id)$/i.test(cells[0]) && /^(pair[ _-]?)?code$/i.test(cells[1] ?? '')) return;
    if (cells.length !== 2) return bad.push({ line: n, text: line, reason: `expected 2 fields "id,code", found ${cells.length}` });
    const [id, code] = cells;
    if (!DEVICE_ID.test(id)) return bad.push({ line: n, text: line, reason: `"${id.slice(0, 40)}" is not a device id (16 characters a-z and 2-7)` });
    if (!code) return bad.push({ line: n, text: line, reason: 'the code is empty' });
    if (rows.some((r) => r.id === id)) return bad.push({ line: n, text: line, reason: `${id} is listed twice` });
    rows.push({ line: n, id, code });
  });
  return { rows, bad };
}

function pairPage(root, preset) {
  const seenList = h('div');
  const fileIn = h('input#csv-file', { type: 'file', accept: '.csv,text/csv,text/plain' });
  const progress = h('progress#csv-progress', { max: 1, value: 0, hidden: true });
  const progressText = h('span#csv-progress-text.muted');
  const results = h('tbody');
  const table = h('table#csv-results', { hidden: true }, h('thead', h('tr', h('th', 'Line'), h('th', 'Device'), h('th', 'Result'))), results);
  const summary = h('p#csv-summary', { hidden: true });
  append(root,
    h('div.page-head', h('h1', 'Pair meters')),
    h('div.grid2',
      h('div.card', h('h2', 'One meter'), h('p.muted', 'The device id and pair code are on the meter\'s label (a simulated meter prints them).'), pairForm(undefined)),
      h('div.card', h('h2', 'Waiting to pair'), h('p.muted', 'Meters whose Hello reached this gateway but that are not paired yet.'), seenList)),
    h('div.card',
      h('h2', 'Many meters from a CSV file'),
      h('p.muted', 'One meter per line: ', h('code', 'device id,code'), '. A header line is optional. Lines that cannot be read are listed, never skipped silently.'),
      h('div.inline-form', fileIn, progress, progressText),
      summary, h('div.table-wrap', table)));
  if (preset && DEVICE_ID.test(preset)) {
    root.querySelector('#pair-id').value = preset;
    root.querySelector('#pair-code').focus();
  }

  fileIn.addEventListener('change', async () => {
    const f = fileIn.files?.[0];
    if (!f) return;
    const { rows, bad } = parsePairCsv(await f.text());
    fill(results);
    table.hidden = false;
    const rowEls = new Map();
    const all = [...rows.map((r) => ({ ...r })), ...bad.map((b) => ({ ...b, bad: true }))].sort((a, b) => a.line - b.line);
    for (const r of all) {
      const res = h('td', r.bad ? h('span.error', `not sent: ${r.reason}`) : h('span.muted', 'waiting'));
      const tr = h(`tr${r.bad ? '.bad' : ''}`, { 'data-line': r.line }, h('td.num', r.line), h('td.mono', r.bad ? r.text : r.id), res);
      rowEls.set(r.line, res);
      results.append(tr);
    }
    progress.hidden = false;
    progress.max = Math.max(1, rows.length);
    progress.value = 0;
    let ok = 0;
    const update = (done) => {
      progress.value = done;
      progressText.textContent = `${done} of ${rows.length} paired or answered`;
    };
    update(0);
    summary.hidden = true;
    fileIn.disabled = true;
    await pool(rows, BULK_CONCURRENCY, async (r) => {
      rowEls.get(r.line).replaceChildren(h('span.muted', 'pairing…'));
      let text;
      let cls = 'error';
      try {
        const p = await api('POST', '/api/pairings', { deviceId: r.id, code: r.code });
        text = `${p.status} ${pairOutcome(p.status, p.json)}`;
        if (p.status === 201) { ok++; cls = 'ok'; refreshDevice(r.id); }
      } catch (e) {
        text = `not answered: ${e.message}`;
      }
      rowEls.get(r.line).replaceChildren(h(`span.${cls}`, text));
    }, update);
    fileIn.disabled = false;
    fileIn.value = '';
    summary.hidden = false;
    summary.className = ok === rows.length && !bad.length ? 'ok' : 'error';
    summary.textContent = `${ok} of ${rows.length} meter(s) paired` + (bad.length ? `; ${bad.length} line(s) could not be read` : '') + '.';
  });

  function renderSeen() {
    const seen = [...fleet.devices.values()].filter((d) => d.state === 'seen');
    fill(seenList, seen.length ? h('ul.seen', seen.map((d) => h('li', h('code', d.id), h('span.muted', ` ${d.model} · ${ago(d.lastSeen ? Date.parse(d.lastSeen) : undefined)}`),
      h('button.small', { 'data-use': d.id, onclick: () => { root.querySelector('#pair-id').value = d.id; root.querySelector('#pair-code').focus(); } }, 'Use')))) : h('p.muted', 'None right now.'));
  }
  listeners.add(() => renderSeen());
  renderSeen();
  return {};
}

// Guests ---------------------------------------------------------------------------------------------
function base64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function targetPicker(prefix) {
  const mode = h(`select#${prefix}-mode`, h('option', { value: 'device' }, 'one device'), h('option', { value: 'label' }, 'devices with a label'));
  const dev = h(`select#${prefix}-device`);
  const sel = h(`input#${prefix}-selector`, { placeholder: 'e.g. site=north', hidden: true });
  const refill = () => {
    const cur = dev.value;
    fill(dev, ...[...fleet.devices.values()].filter((d) => d.state === 'paired').map((d) => h('option', { value: d.id }, `${d.id}${Object.keys(d.labels ?? {}).length ? ' (' + Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(', ') + ')' : ''}`)));
    if (cur) dev.value = cur;
  };
  mode.addEventListener('change', () => { dev.hidden = mode.value !== 'device'; sel.hidden = mode.value !== 'label'; });
  refill();
  return {
    el: h('div.target', mode, dev, sel), fill: refill,
    set(id) { mode.value = 'device'; dev.hidden = false; sel.hidden = true; refill(); dev.value = id; },
    /** The paired device ids chosen, or an error text. */
    async devices() {
      if (mode.value === 'device') return dev.value ? [dev.value] : 'no paired device to choose';
      const text = sel.value.trim();
      const s2 = parseSelector(text);
      if (!s2 || !s2.length) return 'give a label selector: key or key=value, comma-separated';
      const list = await getJson(path`/api/devices?label=${text}`);
      const ids = list.filter((d) => d.state === 'paired').map((d) => d.id);
      return ids.length ? ids : `no paired device matches ${text}`;
    },
    selector: () => (mode.value === 'label' ? sel.value.trim() : undefined),
  };
}

function guestsPage(root) {
  const wasmIn = h('input#guest-wasm', { type: 'file', accept: '.wasm,application/wasm', required: true });
  const manIn = h('input#guest-manifest-file', { type: 'file', accept: '.json,application/json' });
  const manText = h('textarea#guest-manifest.mono', { rows: 7, placeholder: '{"name": "peak-guard", "version": "1.0.0", "period_s": 5, …}', spellcheck: 'false' });
  const upOut = h('div#guest-upload-result.result', { hidden: true });
  const list = h('tbody');
  const guestSel = h('select#deploy-guest');
  const target = targetPicker('deploy');
  const depOut = h('p#deploy-summary', { hidden: true });
  const depRows = h('tbody');
  const depTable = h('table#deploy-results', { hidden: true }, h('thead', h('tr', h('th', 'Device'), h('th', 'Sent'), h('th', 'Meter says'))), depRows);
  const depProgress = h('progress#deploy-progress', { hidden: true, max: 1, value: 0 });
  append(root,
    h('div.page-head', h('h1', 'Guests')),
    h('div.grid2',
      h('div.card', h('h2', 'Upload a guest'),
        h('form#guest-upload', {
          onsubmit: async (ev) => {
            ev.preventDefault();
            upOut.hidden = false;
            const f = wasmIn.files?.[0];
            if (!f) { upOut.className = 'result error'; upOut.textContent = 'Choose the guest\'s .wasm file.'; return; }
            let manifest;
            try { manifest = JSON.parse(manText.value); } catch (e) {
              upOut.className = 'result error'; upOut.textContent = `The manifest is not JSON: ${e.message}`; return;
            }
            upOut.className = 'result pending';
            upOut.textContent = 'uploading…';
            const r = await api('POST', '/api/guests', { wasm: base64(new Uint8Array(await f.arrayBuffer())), manifest });
            upOut.className = `result ${r.ok ? 'ok' : 'error'}`;
            upOut.textContent = r.ok ? `✓ ${r.json.name} ${r.json.version} stored as ${r.json.cid}${r.json.instrumented ? ' (metered by the gateway)' : ''}` : `✗ ${errorText(r)}`;
            if (r.ok) { void loadGuests(r.json.cid); }
          },
        },
        h('label', 'Module (.wasm)', wasmIn), h('label', 'Manifest (.json file or text)', manIn), manText,
        h('button.primary#guest-upload-submit', { type: 'submit' }, 'Upload'), upOut)),
      h('div.card', h('h2', 'Deploy'),
        h('form#guest-deploy', {
          onsubmit: async (ev) => {
            ev.preventDefault();
            const cid = guestSel.value;
            depOut.hidden = false;
            if (!cid) { depOut.className = 'error'; depOut.textContent = 'Upload a guest first.'; return; }
            const ids = await target.devices().catch((e) => e.message);
            if (typeof ids === 'string') { depOut.className = 'error'; depOut.textContent = ids; return; }
            depTable.hidden = false;
            depProgress.hidden = false;
            depProgress.max = ids.length;
            depProgress.value = 0;
            fill(depRows, ...ids.map((id) => h('tr', { 'data-device': id }, h('td', h('a.mono', { href: `#/devices/${id}` }, id)), h('td.sent', 'waiting'), h('td.acked', '—'))));
            deployed.clear();
            let ok = 0;
            await pool(ids, BULK_CONCURRENCY, async (id) => {
              const r = await api('POST', path`/api/devices/${id}/guests`, { cid }).catch((e) => ({ ok: false, json: { error: e.message } }));
              const cell = depRows.querySelector(`tr[data-device="${id}"] .sent`);
              cell.textContent = r.ok ? `sent (${r.json.chunks} chunks)` : errorText(r);
              cell.className = `sent ${r.ok ? 'ok' : 'error'}`;
              if (r.ok) { ok++; deployed.set(id, cid); }
            }, (n) => { depProgress.value = n; });
            depOut.className = ok === ids.length ? 'ok' : 'error';
            depOut.textContent = `Sent to ${ok} of ${ids.length} device(s); the last column follows what each meter reports.`;
            for (const id of deployed.keys()) void ackState(id);
          },
        },
        h('label', 'Guest', guestSel), h('label', 'To', target.el), h('button.primary#deploy-submit', { type: 'submit' }, 'Deploy'), depProgress, depOut),
        h('div.table-wrap', depTable))),
    h('div.card', h('h2', 'Guests on this gateway'),
      h('div.table-wrap', h('table#guest-list', h('thead', h('tr', ['Name', 'Version', 'Size', 'CID', 'Uploaded'].map((x) => h('th', x)))), list))));
  manIn.addEventListener('change', async () => {
    const f = manIn.files?.[0];
    if (f) manText.value = await f.text();
  });
  const deployed = new Map();
  async function ackState(id) {
    const cid = deployed.get(id);
    const r = await api('GET', path`/api/devices/${id}/guests`).catch(() => undefined);
    const g = r?.json?.guests?.find((x) => x.cid === cid);
    const rep = r?.json?.reported?.find((x) => x.cid === cid);
    const cell = depRows.querySelector(`tr[data-device="${id}"] .acked`);
    if (!cell) return;
    const state = rep?.state ?? g?.state ?? 'deploying';
    fill(cell, h(`span.chip.g-${state}`, state), g?.reason ? h('div.sub', g.reason) : null);
  }
  async function loadGuests(select) {
    const all = await getJson('/api/guests').catch(() => []);
    fleet.guests = all;
    fill(list, ...(all.length ? all.map((m) => h('tr', h('td', m.name), h('td', m.version), h('td.num', `${m.size.toLocaleString()} B`),
      h('td.mono', { title: m.cid }, shortCid(m.cid)), h('td.nowrap', dateTimeText(Date.parse(m.addedAt)))))
      : [h('tr', h('td.muted', { colSpan: 5 }, 'No guests uploaded yet.'))]));
    const cur = select ?? guestSel.value;
    fill(guestSel, ...all.map((m) => h('option', { value: m.cid }, `${m.name} ${m.version} (${shortCid(m.cid)})`)));
    if (cur) guestSel.value = cur;
  }
  listeners.add((what, data) => {
    if (what === 'devices' || what === 'device') target.fill();
    if (what === 'change' && deployed.has(data.deviceId) && (data.change === 'guest-ack' || data.change === 'status')) void ackState(data.deviceId);
  });
  void loadGuests();
  return {};
}

// Firmware -------------------------------------------------------------------------------------------
/** Device states of a rollout that are over (gateway/store/firmware.ts TERMINAL). */
const FW_DONE = new Set(['confirmed', 'rolled-back', 'failed', 'cancelled']);
const FW_POLL_MS = 2000;

function firmwarePage(root, openId) {
  const fileIn = h('input#fw-file', { type: 'file', accept: '.release,application/octet-stream', required: true });
  const upOut = h('div#fw-upload-result.result', { hidden: true });
  const releases = h('tbody');
  const relSel = h('select#fw-release');
  const target = targetPicker('fw');
  const canaryIn = h('input#fw-canary', { type: 'number', min: 0, value: 0 });
  const maxIn = h('input#fw-max-failures', { type: 'number', min: 0, value: 1 });
  const depOut = h('p#fw-deploy-result', { hidden: true });
  const rollouts = h('tbody');
  const detail = h('div#fw-rollout');
  let open = openId ? Number(openId) : undefined;
  let timer = 0;
  let disposed = false;

  append(root,
    h('div.page-head', h('h1', 'Firmware')),
    h('div.grid2',
      h('div.card', h('h2', 'Upload a release'),
        h('p.muted', 'A release file from ', h('code', 'gridlet firmware sign'), ': the image and its manifest, signed by a release key the meters trust.'),
        h('form#fw-upload', {
          onsubmit: async (ev) => {
            ev.preventDefault();
            upOut.hidden = false;
            const f = fileIn.files?.[0];
            if (!f) { upOut.className = 'result error'; upOut.textContent = 'Choose a release file.'; return; }
            upOut.className = 'result pending';
            upOut.textContent = 'uploading…';
            const r = await api('POST', '/api/firmware', { release: base64(new Uint8Array(await f.arrayBuffer())) });
            upOut.className = `result ${r.ok ? 'ok' : 'error'}`;
            upOut.textContent = r.ok ? `✓ ${r.json.version} for ${r.json.models.join(', ')} (${r.json.size.toLocaleString()} B) stored as ${r.json.cid}` : `✗ ${errorText(r)}`;
            if (r.ok) void loadReleases(r.json.cid);
          },
        }, h('label', 'Release file', fileIn), h('button.primary#fw-upload-submit', { type: 'submit' }, 'Upload'), upOut)),
      h('div.card', h('h2', 'Roll out'),
        h('form#fw-deploy', {
          onsubmit: async (ev) => {
            ev.preventDefault();
            depOut.hidden = false;
            const release = relSel.value;
            if (!release) { depOut.className = 'error'; depOut.textContent = 'Upload a release first.'; return; }
            const body = { release, canary: Number(canaryIn.value) || 0, maxFailures: Number(maxIn.value) || 0 };
            const selector = target.selector();
            if (selector !== undefined) body.label = selector;
            else {
              const ids = await target.devices().catch((e) => e.message);
              if (typeof ids === 'string') { depOut.className = 'error'; depOut.textContent = ids; return; }
              body.devices = ids;
            }
            const r = await api('POST', '/api/firmware/rollouts', body);
            depOut.className = r.ok ? 'ok' : 'error';
            depOut.textContent = r.ok ? `Rollout ${r.json.id} of ${r.json.version} started (${r.json.devices.length} device(s)${r.json.canary ? `, ${r.json.canary} in the canary stage` : ''}).` : errorText(r);
            if (r.ok) { open = r.json.id; history.replaceState(null, '', `#/firmware/${r.json.id}`); void refresh(); }
          },
        },
        h('label', 'Release', relSel), h('label', 'To', target.el),
        h('label', 'Canary stage (devices first; 0: none)', canaryIn),
        h('label', 'Stop after this many roll back or fail (0: never)', maxIn),
        h('button.primary#fw-deploy-submit', { type: 'submit' }, 'Roll out'), depOut))),
    h('div.card', h('h2', 'Releases on this gateway'),
      h('div.table-wrap', h('table#fw-releases', h('thead', h('tr', ['Version', 'Models', 'Size', 'Min. version', 'CID', 'Key', 'Uploaded'].map((x) => h('th', x)))), releases))),
    h('div.card', h('h2', 'Rollouts'),
      h('div.table-wrap', h('table#fw-rollouts', h('thead', h('tr', ['#', 'Version', 'State', 'Devices', 'Devices by state', 'Started', ''].map((x) => h('th', x)))), rollouts))),
    detail);

  const countsText = (counts) => Object.entries(counts ?? {}).map(([k, v]) => `${v} ${k}`).join(', ') || '—';
  async function loadReleases(select) {
    const all = await getJson('/api/firmware').catch(() => []);
    fill(releases, ...(all.length ? all.map((r) => h('tr', { 'data-cid': r.cid }, h('td', r.version), h('td', r.models.join(', ')), h('td.num', `${r.size.toLocaleString()} B`),
      h('td', r.minVersion), h('td.mono', { title: r.cid }, shortCid(r.cid)), h('td.mono', r.keyId), h('td.nowrap', dateTimeText(Date.parse(r.addedAt)))))
      : [h('tr', h('td.muted', { colSpan: 7 }, 'No releases uploaded yet.'))]));
    const cur = select ?? relSel.value;
    fill(relSel, ...all.map((r) => h('option', { value: r.cid }, `${r.version} for ${r.models.join(', ')} (${shortCid(r.cid)})`)));
    if (cur) relSel.value = cur;
  }
  async function loadRollouts() {
    const all = await getJson('/api/firmware/rollouts').catch(() => []);
    fill(rollouts, ...(all.length ? [...all].reverse().map((r) => h('tr', { 'data-rollout': String(r.id), class: r.id === open ? 'selected' : '' },
      h('td', h('a', { href: `#/firmware/${r.id}` }, String(r.id))), h('td', r.version), h('td', h(`span.badge.fw-${r.state}`, r.state)),
      h('td.num', String(Object.values(r.counts ?? {}).reduce((a, b) => a + b, 0))), h('td', countsText(r.counts)),
      h('td.nowrap', dateTimeText(Date.parse(r.createdAt))), h('td', h('a.button.small', { href: `#/firmware/${r.id}` }, 'Devices'))))
      : [h('tr', h('td.muted', { colSpan: 7 }, 'No rollouts yet.'))]));
  }
  async function loadRollout() {
    if (open === undefined) { fill(detail); return; }
    const r = await api('GET', path`/api/firmware/rollouts/${String(open)}`).catch((e) => ({ ok: false, json: { error: e.message } }));
    if (!r.ok) { fill(detail, h('div.card', h('p.error', errorText(r)))); return; }
    const ro = r.json;
    const stop = ro.state === 'canary' || ro.state === 'running'
      ? h('button.danger.small#fw-stop', {
        onclick: async () => {
          if (!confirm(`Stop rollout ${ro.id}? Nothing more is offered; devices still downloading are told to stop.`)) return;
          const s = await api('POST', path`/api/firmware/rollouts/${String(ro.id)}/stop`, { reason: 'stopped from the dashboard' });
          toast(s.ok ? `Rollout ${ro.id} stopped.` : errorText(s), s.ok ? 'info' : 'error');
          void refresh();
        },
      }, 'Stop rollout')
      : null;
    fill(detail, h('div.card',
      h('div.page-head', h('h2', `Rollout ${ro.id}: ${ro.version} `, h(`span.badge.fw-${ro.state}`, ro.state)), h('div.actions', stop)),
      h('p#fw-rollout-summary', `${ro.selector} · canary ${ro.canary || 'none'} · stops after ${ro.maxFailures || 'no'} failure(s) · ${countsText(ro.counts)}`),
      ro.reason ? h('p.error#fw-rollout-reason', ro.reason) : null,
      h('div.table-wrap', h('table#fw-devices',
        h('thead', h('tr', ['Device', 'Stage', 'State', 'Progress', 'Runs', 'Why', 'Updated'].map((x) => h('th', x)))),
        h('tbody', ...ro.devices.map((d) => h('tr', { 'data-device': d.deviceId, 'data-state': d.state },
          h('td', h('a.mono', { href: `#/devices/${d.deviceId}` }, d.deviceId)), h('td', d.stage),
          h('td', h(`span.badge.fw-${d.state}`, d.state)),
          h('td.progress', d.percent === null ? h('span.muted', '—') : [h('progress', { max: 100, value: d.percent }), h('span.pct', ` ${d.percent} %`)]),
          h('td', d.running ?? '—'),
          h('td.why', d.reason ?? d.note ?? ''),
          h('td.nowrap', dateTimeText(Date.parse(d.updatedAt))))))))));
  }
  async function refresh() {
    clearTimeout(timer);
    await Promise.all([loadRollouts(), loadRollout()]);
    // Follow the rollout until every device has ended (the dashboard polls; fw-status is not streamed).
    if (!disposed) timer = setTimeout(refresh, FW_POLL_MS);
  }
  listeners.add((what) => { if (what === 'devices' || what === 'device') target.fill(); });
  void loadReleases();
  void refresh();
  return { dispose() { disposed = true; clearTimeout(timer); } };
}

// Demand response ------------------------------------------------------------------------------------
function drPage(root, preset) {
  const target = targetPicker('dr');
  const pad = (n) => String(n).padStart(2, '0');
  const nowLocal = () => { const d = new Date(Date.now() + 60_000); return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`; };
  const idIn = h('input#dr-id', { value: `dr-${new Date().toISOString().slice(0, 16).replace(/[-:T]/g, '')}`, required: true });
  const levelIn = h('select#dr-level', [[0, '0 — normal operation (cancel)'], [1, '1 — moderate'], [2, '2 — high'], [3, '3 — the strongest request']].map(([v, t]) => h('option', { value: v }, t)));
  levelIn.value = '2';
  const startIn = h('input#dr-start', { type: 'datetime-local', value: nowLocal(), required: true });
  const durIn = h('input#dr-duration', { type: 'number', min: 0, value: 30, required: true });
  const limitIn = h('input#dr-limit', { type: 'number', min: 0, placeholder: 'optional, W' });
  const out = h('div#dr-result.result', { hidden: true });
  const recent = h('tbody');
  const openadr = openAdrPanel();
  append(root,
    h('div.page-head', h('h1', 'Demand response')),
    h('div.grid2',
      h('div.card', h('h2', 'Send an event'),
        h('form#dr-form.stack', {
          onsubmit: async (ev) => {
            ev.preventDefault();
            out.hidden = false;
            const start = Math.floor(new Date(startIn.value).getTime() / 1000);
            if (!Number.isFinite(start)) { out.className = 'result error'; out.textContent = 'Give a start time.'; return; }
            const body = { id: idIn.value.trim(), start, duration: Math.round(Number(durIn.value) * 60), level: Number(levelIn.value) };
            if (limitIn.value !== '') body.limitW = Math.round(Number(limitIn.value));
            const sel = target.selector();
            let r;
            if (sel !== undefined) {
              if (!parseSelector(sel)?.length) { out.className = 'result error'; out.textContent = 'Give a label selector: key or key=value.'; return; }
              r = await api('POST', path`/api/dr-events?label=${sel}`, body);
            } else {
              const ids = await target.devices();
              if (typeof ids === 'string') { out.className = 'result error'; out.textContent = ids; return; }
              r = await api('POST', path`/api/devices/${ids[0]}/dr-events`, body);
            }
            out.className = `result ${r.ok ? 'ok' : 'error'}`;
            out.textContent = r.ok ? `✓ Event ${body.id} sent to ${r.json.devices ? `${r.json.devices.length} device(s)` : r.json.deviceId}; meters report start and end below.` : `✗ ${errorText(r)}`;
          },
        },
        h('label', 'To', target.el), h('label', 'Event id', idIn), h('label', 'Level', levelIn),
        h('div.row2', h('label', 'Start', startIn), h('label', 'Duration (minutes)', durIn)), h('label', 'Power limit (W)', limitIn),
        h('button.primary#dr-submit', { type: 'submit' }, 'Send event'), out)),
      h('div.card', h('h2', 'Reported by meters'), h('p.muted', 'Start, end and missed events as meters report them, newest first (live).'),
        h('div.table-wrap.scroll', h('table#dr-recent', h('thead', h('tr', h('th', 'Time'), h('th', 'Device'), h('th', 'Event'), h('th', 'Phase'))), recent)))),
    openadr.el);
  if (preset && DEVICE_ID.test(preset)) target.set(preset);
  /** What meters reported before the page opened: the first DR_PAGE_DEVICES paired meters' histories. */
  async function loadRecent() {
    const paired = [...fleet.devices.values()].filter((d) => d.state === 'paired').slice(0, 50);
    const lists = await pool(paired, BULK_CONCURRENCY, async (d) => {
      const r = await api('GET', path`/api/devices/${d.id}/dr-events`).catch(() => undefined);
      return r?.ok ? r.json.events.map((e) => ({ ...e, deviceId: d.id })) : [];
    });
    const have = new Set(fleet.dr.map((e) => `${e.deviceId}/${e.seq}`));
    for (const e of lists.flat()) if (!have.has(`${e.deviceId}/${e.seq}`)) fleet.dr.push(e);
    fleet.dr.sort((a, b) => unixMs(b.t) - unixMs(a.t));
    fleet.dr.length = Math.min(fleet.dr.length, 200);
    renderRecent();
  }
  function renderRecent() {
    fill(recent, ...(fleet.dr.length ? fleet.dr.map((e) => h('tr', h('td.nowrap', dateTimeText(unixMs(e.t))), h('td', h('a.mono', { href: `#/devices/${e.deviceId}` }, e.deviceId)),
      h('td', e.event ?? ''), h('td', h(`span.chip.dr-${e.phase}`, e.phase ?? '')))) : [h('tr', h('td.muted', { colSpan: 4 }, 'No meter has reported a demand-response event.'))]));
  }
  listeners.add((what) => {
    if (what === 'dr') renderRecent();
    if (what === 'devices') target.fill();
  });
  renderRecent();
  void loadRecent();
  return { dispose: openadr.dispose };
}

/** The utilities' VTNs the gateway is an OpenADR 3 VEN of (GET /api/openadr), refreshed every 5 s. */
function openAdrPanel() {
  const body = h('div#openadr-links');
  const el = h('div.card#openadr', h('h2', 'Utility programs (OpenADR 3)'), body);
  const when = (iso) => (iso ? dateTimeText(Date.parse(iso)) : '—');
  function render(st) {
    if (!st) return fill(body, h('p.muted', 'The gateway did not answer GET /api/openadr.'));
    if (!st.vtns.length) {
      return fill(body, h('p.muted', 'This gateway is not connected to a VTN. Start it with ', h('code', '--openadr-vtn URL --openadr-client-id ID'),
        ' to take a utility\'s demand-response events to the meters they target and report usage back.'));
    }
    fill(body, ...st.vtns.map((v) => h('div.vtn', { 'data-vtn': v.key, 'data-link': v.link },
      h('p', h(`span.chip.vtn-${v.link}`, v.link), ' ', h('span.mono', v.vtn), ` · OpenADR ${v.version} · VEN `, h('span.mono', v.venName),
        ` · ${v.resources} resource(s) · last poll ${when(v.lastPoll)}`, v.webhook.state === 'subscribed' ? ' · webhook' : ''),
      v.failing.length ? h('p.error', v.failing.map((f) => `${f.kind}: ${f.message} (${f.count}× since ${when(f.since)})`).join(' · ')) : null,
      h('div.table-wrap.scroll', h('table.openadr-events',
        h('thead', h('tr', h('th', 'Event'), h('th', 'Program'), h('th', 'State'), h('th', 'Start'), h('th', 'End'), h('th', 'Meters'), h('th', 'Report'))),
        h('tbody', ...(v.events.length ? v.events.map((e) => h('tr', { 'data-event': e.key },
          h('td', h('span.mono', e.id ?? e.key), e.name ? ` ${e.name}` : '', e.error ? h('div.error', e.error) : null),
          h('td', e.program ?? e.programID),
          h('td', h(`span.chip.oadr-${e.state}`, e.state)),
          h('td.nowrap', when(e.start)), h('td.nowrap', when(e.end)),
          h('td', { title: e.devices.join(' ') }, String(e.devices.length)),
          h('td', e.report ? `${e.report.intervals} interval(s)${e.report.missing ? `, ${e.report.missing} missing` : ''}${e.report.sentAt ? ` · ${when(e.report.sentAt)}` : ''}` : '—')))
          : [h('tr', h('td.muted', { colSpan: 7 }, 'No events from this VTN.'))])))))));
  }
  async function load() {
    const r = await api('GET', '/api/openadr').catch(() => undefined);
    render(r?.ok ? r.json : undefined);
  }
  void load();
  const tick = setInterval(load, 5000);
  return { el, dispose() { clearInterval(tick); } };
}

// ---- start ----------------------------------------------------------------------------------------

async function start() {
  const health = await fetch('/api/health').then(async (r) => parseData(await r.text())).catch(() => undefined);
  fleet.gateway = health?.gateway ?? '';
  document.getElementById('gateway-id').textContent = fleet.gateway ? `gateway ${fleet.gateway}` : '';
  window.addEventListener('hashchange', route);
  for (;;) {
    try {
      await loadDevices();
      break;
    } catch (e) {
      if (e.status === 401) await whenSignedIn();
      else { fill(viewEl(), h('p.error', `The gateway did not answer: ${e.message}`)); await sleep(3000); }
    }
  }
  route();
  void stream();
}
void start();
