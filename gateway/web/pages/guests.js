// The guests page (#/guests): upload a module, deploy it to a device or a label group, watch the acks.

import { api, errorText, getJson, path } from '../api.js';
import { BULK_CONCURRENCY, append, base64, dateTimeText, fill, h, pool, say, shortCid } from '../kit.js';
import { fleet, listeners } from '../live.js';
import { targetPicker } from './targets.js';

export function guestsPage(root) {
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
            const f = wasmIn.files?.[0];
            if (!f) return say(upOut, 'error', 'Choose the guest\'s .wasm file.');
            let manifest;
            try { manifest = JSON.parse(manText.value); } catch (e) {
              return say(upOut, 'error', `The manifest is not JSON: ${e.message}`);
            }
            say(upOut, 'pending', 'uploading…');
            const r = await api('POST', '/api/guests', { wasm: base64(new Uint8Array(await f.arrayBuffer())), manifest });
            say(upOut, r.ok ? 'ok' : 'error', r.ok ? `✓ ${r.json.name} ${r.json.version} stored as ${r.json.cid}${r.json.instrumented ? ' (metered by the gateway)' : ''}` : `✗ ${errorText(r)}`);
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
