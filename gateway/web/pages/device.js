// One device's page (#/devices/:id): its readings drawn live, status, guests, DR history and actions.

import { isDeviceId } from '../shared.js';
import { api, errorText, getJson, path } from '../api.js';
import { ago, append, axisText, badge, channelName, dateTimeText, detailsText, fill, h, labelChips, onlineDot, s, shortCid, stat, timeText, toast, unixMs, uptimeText, valueText } from '../kit.js';
import { fleet, listeners, refreshDevice } from '../live.js';
import { pairForm } from './pair.js';

const CHART_WINDOWS = [5, 15, 60];

const CHART_POINTS_MAX = 5000;

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

export function devicePage(root, id) {
  if (!isDeviceId(id)) {
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
