// The fleet page (#/): counts, and every device with its state, link, last reading and labels.

import { matchesSelector, parseSelector } from '../shared.js';
import { ago, append, badge, channelName, fill, guestStates, h, labelChips, onlineDot, stat, unixMs, valueText } from '../kit.js';
import { fleet, listeners } from '../live.js';

/** Rows the fleet table draws; a label filter narrows a larger fleet. */
const FLEET_ROWS_MAX = 500;

export function fleetPage(root) {
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
    filterError.hidden = typeof sel !== 'string';
    filterError.textContent = typeof sel === 'string' ? sel : '';
    const shown = all.filter((d) => typeof sel === 'string' || matchesSelector(d.labels, sel));
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
