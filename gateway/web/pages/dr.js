// The demand-response page (#/dr): send an event to a device or a label group; the utility programs
// (OpenADR 3) the gateway takes part in.

import { isDeviceId, parseSelector } from '../shared.js';
import { api, errorText, path } from '../api.js';
import { BULK_CONCURRENCY, append, dateTimeText, fill, h, pool, say, unixMs } from '../kit.js';
import { fleet, listeners } from '../live.js';
import { targetPicker } from './targets.js';

// Demand response ------------------------------------------------------------------------------------
export function drPage(root, preset) {
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
            const start = Math.floor(new Date(startIn.value).getTime() / 1000);
            if (!Number.isFinite(start)) return say(out, 'error', 'Give a start time.');
            const body = { id: idIn.value.trim(), start, duration: Math.round(Number(durIn.value) * 60), level: Number(levelIn.value) };
            if (limitIn.value !== '') body.limitW = Math.round(Number(limitIn.value));
            const sel = target.selector();
            let r;
            if (sel !== undefined) {
              if (typeof parseSelector(sel) === 'string' || !parseSelector(sel).length) return say(out, 'error', 'Give a label selector: key or key=value.');
              r = await api('POST', path`/api/dr-events?label=${sel}`, body);
            } else {
              const ids = await target.devices();
              if (typeof ids === 'string') return say(out, 'error', ids);
              r = await api('POST', path`/api/devices/${ids[0]}/dr-events`, body);
            }
            say(out, r.ok ? 'ok' : 'error', r.ok ? `✓ Event ${body.id} sent to ${r.json.devices ? `${r.json.devices.length} device(s)` : r.json.deviceId}; meters report start and end below.` : `✗ ${errorText(r)}`);
          },
        },
        h('label', 'To', target.el), h('label', 'Event id', idIn), h('label', 'Level', levelIn),
        h('div.row2', h('label', 'Start', startIn), h('label', 'Duration (minutes)', durIn)), h('label', 'Power limit (W)', limitIn),
        h('button.primary#dr-submit', { type: 'submit' }, 'Send event'), out)),
      h('div.card', h('h2', 'Reported by meters'), h('p.muted', 'Start, end and missed events as meters report them, newest first (live).'),
        h('div.table-wrap.scroll', h('table#dr-recent', h('thead', h('tr', h('th', 'Time'), h('th', 'Device'), h('th', 'Event'), h('th', 'Phase'))), recent)))),
    openadr.el);
  if (preset && isDeviceId(preset)) target.set(preset);
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
