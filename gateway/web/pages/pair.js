// The pair page (#/pair): one meter by id and code, or many from a CSV file (the CLI's rules).

import { isDeviceId, parsePairCsv } from '../shared.js';
import { api } from '../api.js';
import { BULK_CONCURRENCY, ago, append, fill, h, pool, say } from '../kit.js';
import { fleet, listeners, refreshDevice } from '../live.js';

const PAIR_OUTCOMES = {
  201: 'Paired. The meter now sends its readings to this gateway.',
  403: 'The meter refused the code: check the pair code on its label.',
  404: 'No Hello seen from this id: is the meter powered and connected to this gateway\'s broker?',
  409: 'Already paired.',
  504: 'The meter did not answer within 15 s: check its link and try again.',
};

function pairOutcome(status, json) {
  return PAIR_OUTCOMES[status] ?? json?.error ?? `HTTP ${status}`;
}

/** The id + code form; `fixedId` when the page is about one device. */
export function pairForm(fixedId, onDone) {
  const idIn = h('input#pair-id', { name: 'deviceId', placeholder: '16 characters a-z 2-7', value: fixedId ?? '', required: true, autocomplete: 'off', spellcheck: 'false' });
  const codeIn = h('input#pair-code', { name: 'code', placeholder: 'code from the label', required: true, autocomplete: 'off', spellcheck: 'false' });
  const out = h('div#pair-result.result', { hidden: true, role: 'status' });
  const btn = h('button.primary#pair-submit', { type: 'submit' }, 'Pair');
  const form = h('form.pair-form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const deviceId = idIn.value.trim();
      const code = codeIn.value.trim();
      if (!isDeviceId(deviceId)) {
        return say(out, 'error', 'A device id is 16 characters a-z and 2-7 (it is printed on the meter and shown in the fleet list).');
      }
      btn.disabled = true;
      say(out, 'pending', `Asking ${deviceId} to accept the code… (the meter answers within 15 s)`);
      try {
        const r = await api('POST', '/api/pairings', { deviceId, code });
        out.dataset.status = String(r.status);
        say(out, r.status === 201 ? 'ok' : 'error', `${r.status === 201 ? '✓' : '✗'} ${pairOutcome(r.status, r.json)}`);
        if (r.status === 201) {
          codeIn.value = '';
          refreshDevice(deviceId);
          onDone?.(deviceId);
        }
      } catch (e) {
        say(out, 'error', `The gateway did not answer: ${e.message}`);
      } finally {
        btn.disabled = false;
      }
    },
  },
  h('label', 'Device id', idIn), h('label', 'Pair code', codeIn), btn, out);
  if (fixedId) idIn.readOnly = true;
  return form;
}

export function pairPage(root, preset) {
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
  if (preset && isDeviceId(preset)) {
    root.querySelector('#pair-id').value = preset;
    root.querySelector('#pair-code').focus();
  }

  fileIn.addEventListener('change', async () => {
    const f = fileIn.files?.[0];
    if (!f) return;
    const text = await f.text();
    const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
    const { rows, bad } = parsePairCsv(text);
    fill(results);
    table.hidden = false;
    const rowEls = new Map();
    const all = [...rows.map((r) => ({ ...r })), ...bad.map((b) => ({ ...b, bad: true }))].sort((a, b) => a.line - b.line);
    for (const r of all) {
      const res = h('td', r.bad ? h('span.error', `not sent: ${r.why}`) : h('span.muted', 'waiting'));
      const tr = h(`tr${r.bad ? '.bad' : ''}`, { 'data-line': r.line }, h('td.num', r.line), h('td.mono', r.bad ? lines[r.line - 1].trim() : r.deviceId), res);
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
        const p = await api('POST', '/api/pairings', { deviceId: r.deviceId, code: r.code });
        text = `${p.status} ${pairOutcome(p.status, p.json)}`;
        if (p.status === 201) { ok++; cls = 'ok'; refreshDevice(r.deviceId); }
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
