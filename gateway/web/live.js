// The fleet as the page knows it, kept live from GET /api/events (Server-Sent Events read through fetch,
// so that the bearer token goes with them); pages listen for changes.

import { api, authHeaders, getJson, path, showLogin, whenSignedIn } from './api.js';
import { parseData, pool, sleep, unixMs } from './kit.js';

export const fleet = {
  gateway: '',
  /** id → device JSON (GET /api/devices) plus `last` {t, channel, value} and `lastSeq`. */
  devices: new Map(),
  loaded: false,
  guests: [],
  dr: [],
};

export const listeners = new Set();

function changed(what, data) {
  for (const f of listeners) f(what, data);
}

export async function loadDevices() {
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
export function refreshDevice(id) {
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
export async function stream() {
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
