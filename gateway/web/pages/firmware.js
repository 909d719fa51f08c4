// The firmware page (#/firmware, #/firmware/:rollout): upload a signed release, roll it out to a device or
// a label group with a canary stage and a stop limit, and follow each device's state with its percent and
// the reason when it rolled back or failed (the page polls: fw-status is not streamed).

import { api, errorText, getJson, path } from '../api.js';
import { append, base64, dateTimeText, fill, h, say, shortCid, toast } from '../kit.js';
import { listeners } from '../live.js';
import { targetPicker } from './targets.js';

/** Device states of a rollout that are over (gateway/store/firmware.ts TERMINAL). */
const FW_DONE = new Set(['confirmed', 'rolled-back', 'failed', 'cancelled']);
const FW_POLL_MS = 2000;

export function firmwarePage(root, openId) {
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
            const f = fileIn.files?.[0];
            if (!f) return say(upOut, 'error', 'Choose a release file.');
            say(upOut, 'pending', 'uploading…');
            const r = await api('POST', '/api/firmware', { release: base64(new Uint8Array(await f.arrayBuffer())) });
            say(upOut, r.ok ? 'ok' : 'error', r.ok ? `✓ ${r.json.version} for ${r.json.models.join(', ')} (${r.json.size.toLocaleString()} B) stored as ${r.json.cid}` : `✗ ${errorText(r)}`);
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
