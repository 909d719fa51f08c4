// `relay <id> on|off` (through the interlocks) and `relay lock <id> on|off|release` (the technician
// lock that overrides every guest until released) — GUESTS.md "Supervision".

import { RelayLockMode, RelayOutcome, type RelayResult } from '../console-host.js';
import { stripControl } from '../text.js';
import { always, type Command, type Reply } from './command.js';

function relayId(arg: string): number {
  return /^[0-9]{1,3}$/.test(arg) ? Number(arg) : NaN;
}

function refuse(id: number, res: RelayResult, r: Reply): void {
  const retry = res.retryS ? ` (allowed again in ${res.retryS} s)` : '';
  switch (res.outcome) {
    case RelayOutcome.noRelay:
      r.err('notfound', `no relay ${id} on this meter`);
      return;
    case RelayOutcome.dwell:
      r.err('busy', `relay ${id} refused by interlock: minimum dwell not over${retry}`);
      return;
    case RelayOutcome.toggles:
      r.err('busy', `relay ${id} refused by interlock: at most 6 toggles an hour${retry}`);
      return;
    case RelayOutcome.critical:
      r.err('locked', `relay ${id} is a critical circuit and is never switched`);
      return;
    case RelayOutcome.heldByGuest:
      r.err('busy', `relay ${id} is held by guest ${stripControl(res.holder ?? '?')}; \`relay lock ${id} on|off\` overrides every guest`);
      return;
    case RelayOutcome.techLock:
      r.err('locked', `relay ${id} is held by the technician lock; \`relay lock ${id} release\` first`);
      return;
    default:
      r.err('internal', `relay ${id}: unexpected outcome ${res.outcome}`);
  }
}

export const relay: Command = {
  name: 'relay',
  help: [
    ['relay <id> on|off', 'switches a relay through the interlocks', true],
    ['relay lock <id> on|off|release', 'technician lock: overrides every guest until released', true],
  ],
  tech: always,
  run(s, args, _rest, r) {
    if (args.length === 3 && args[0] === 'lock') {
      const id = relayId(args[1]);
      const mode = args[2] === 'on' ? RelayLockMode.on : args[2] === 'off' ? RelayLockMode.off : args[2] === 'release' ? RelayLockMode.release : -1;
      if (Number.isNaN(id) || mode < 0) {
        r.err('usage', 'relay lock <id> on|off|release');
        return;
      }
      const res = s.host.relayLock(id, mode as 0 | 1 | 2);
      if (res.outcome !== RelayOutcome.done) {
        refuse(id, res, r);
        return;
      }
      const lock = mode === RelayLockMode.release ? '' : args[2];
      r.data(lock ? `relay ${id} locked ${lock}` : `relay ${id} released to its guest`, { id, lock });
      r.ok();
      return;
    }
    const id = args.length === 2 ? relayId(args[0]) : NaN;
    if (Number.isNaN(id) || (args[1] !== 'on' && args[1] !== 'off')) {
      r.err('usage', 'relay <id> on|off | relay lock <id> on|off|release');
      return;
    }
    const on = args[1] === 'on';
    const res = s.host.relaySet(id, on);
    if (res.outcome !== RelayOutcome.done) {
      refuse(id, res, r);
      return;
    }
    r.data(`relay ${id} ${args[1]}`, { id, on });
    r.ok();
  },
};
