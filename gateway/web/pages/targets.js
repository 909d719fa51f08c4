// Choosing what a deployment or an event goes to: one paired device, or a label selector (the CLI's rules).

import { parseSelector } from '../shared.js';
import { getJson, path } from '../api.js';
import { fill, h } from '../kit.js';
import { fleet } from '../live.js';

export function targetPicker(prefix) {
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
      if (typeof s2 === 'string') return s2;
      if (!s2.length) return 'give a label selector: key or key=value, comma-separated';
      const list = await getJson(path`/api/devices?label=${text}`);
      const ids = list.filter((d) => d.state === 'paired').map((d) => d.id);
      return ids.length ? ids : `no paired device matches ${text}`;
    },
    selector: () => (mode.value === 'label' ? sel.value.trim() : undefined),
  };
}
