// `guests`, `guest stop <name>`, `guest start <name>` (GUESTS.md "Supervision").

import { GuestOutcome } from '../console-host.js';
import { stripControl } from '../text.js';
import { always, never, type Command } from './command.js';

export const guests: Command = {
  name: 'guests',
  help: [['guests', 'name, cid, state, faults, fuel used per call', false]],
  tech: never,
  run(s, args, _rest, r) {
    if (args.length) {
      r.err('usage', 'guests takes no arguments');
      return;
    }
    const list = s.host.guests();
    if (!list.length && !r.json) r.data('(no guests)', null);
    for (const g of list) {
      const name = stripControl(g.name);
      const state = stripControl(g.state);
      const cid = stripControl(g.cid);
      if (r.json) {
        r.data('', { name, cid, state, faults: g.faults, fuel_used: g.fuelUsed, fuel_per_call: g.fuelPerCall });
      } else {
        r.data(`${name}  ${cid}  ${state}  faults ${g.faults}  fuel ${g.fuelUsed}/${g.fuelPerCall} per call`, null);
      }
    }
    r.ok();
  },
};

export const guest: Command = {
  name: 'guest',
  help: [
    ['guest stop <name>', 'stops a guest until `guest start`', true],
    ['guest start <name>', 'starts a stopped guest', true],
  ],
  tech: always,
  run(s, args, _rest, r) {
    if (args.length !== 2 || (args[0] !== 'stop' && args[0] !== 'start')) {
      r.err('usage', 'guest stop <name> | guest start <name>');
      return;
    }
    const name = args[1];
    const res = args[0] === 'stop' ? s.host.guestStop(name) : s.host.guestStart(name);
    if (res.outcome === GuestOutcome.done) {
      r.data(`guest ${name} ${args[0] === 'stop' ? 'stopped' : 'started'}`, { name, state: args[0] === 'stop' ? 'stopped' : 'running' });
      r.ok();
    } else if (res.outcome === GuestOutcome.notFound) r.err('notfound', `no guest named ${name}; \`guests\` lists them`);
    else r.err('busy', `guest ${name} did not start: ${stripControl(res.reason ?? 'refused')}`);
  },
};
