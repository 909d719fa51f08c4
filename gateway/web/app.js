// The gridlet dashboard: a single page over the gateway's JSON API (ARCHITECTURE.md "Operator
// interface") and its live stream GET /api/events. No build step, no libraries: ES modules served as
// they are — this router, a small kit (kit.js), the API client (api.js), the live fleet (live.js), one
// module per page (pages/: fleet, device, pair, guests, firmware, dr) — and /shared.js, the rules and
// WIRE.md numbers the CLI and the gateway use (gateway/web/shared.ts, bundled by the gateway).
// Everything shown from the API goes into text nodes, never into HTML.

import { whenSignedIn } from './api.js';
import { fill, h, parseData, sleep } from './kit.js';
import { fleet, listeners, loadDevices, stream } from './live.js';
import { devicePage } from './pages/device.js';
import { drPage } from './pages/dr.js';
import { firmwarePage } from './pages/firmware.js';
import { fleetPage } from './pages/fleet.js';
import { guestsPage } from './pages/guests.js';
import { pairPage } from './pages/pair.js';

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
