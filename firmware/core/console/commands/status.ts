// `status`: firmware, uptime, paired gateway, link, records buffered/dropped, heap used.

import { never, type Command } from './command.js';

export const status: Command = {
  name: 'status',
  help: [['status', 'firmware, uptime, gateway, link, records buffered/dropped, heap', false]],
  tech: never,
  run(s, args, _rest, r) {
    if (args.length) {
      r.err('usage', 'status takes no arguments');
      return;
    }
    const st = s.host.status();
    if (r.json) {
      r.data('', {
        firmware: st.firmware, model: st.model, uptime_s: st.uptimeS, paired: st.paired, gateway: st.gatewayId,
        link: st.activeLink, buffered: st.buffered, dropped: st.dropped, heap_used: st.heapUsed,
        relays: st.relays.map((x) => ({ id: x.id, on: x.on, lock: x.lock })),
      });
    } else {
      r.data(`firmware  ${st.firmware} (${st.model})`, null);
      r.data(`uptime    ${st.uptimeS} s`, null);
      r.data(`gateway   ${st.paired ? `${st.gatewayId} (paired)` : 'none (unpaired)'}`, null);
      r.data(`link      ${st.activeLink || 'none up'}`, null);
      r.data(`records   ${st.buffered} buffered, ${st.dropped} dropped`, null);
      r.data(`heap      ${st.heapUsed} bytes used`, null);
      for (const x of st.relays) {
        r.data(`relay ${x.id}   ${x.on ? 'on' : 'off'}${x.lock ? ` (technician lock: ${x.lock})` : ''}`, null);
      }
    }
    r.ok();
  },
};
