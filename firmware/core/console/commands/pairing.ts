// `pair pin <gatewayId>`, `unpair` and its `confirm unpair` (WIRE.md "Pairing": a technician can pin a
// gateway id beforehand; the device then accepts only that gateway).

import { UnpairOutcome } from '../console-host.js';
import { isDeviceId } from '../../wire/topics.js';
import { always, type Command } from './command.js';

export const pair: Command = {
  name: 'pair',
  help: [
    ['pair pin <gatewayId>', 'accept only that gateway when pairing (`pair pin off` removes it)', true],
  ],
  tech: always,
  run(s, args, _rest, r) {
    if (args.length !== 2 || args[0] !== 'pin') {
      r.err('usage', 'pair pin <gatewayId> | pair pin off');
      return;
    }
    if (args[1] === 'off') {
      s.host.pinGateway('');
      r.data('no gateway pinned: any gateway with the pair code can pair this meter', { pinned: '' });
      r.ok();
      return;
    }
    const gw = args[1].toLowerCase();
    if (!isDeviceId(gw)) {
      r.err('usage', `"${args[1]}" is not a gateway id (16 base32 characters, as \`gridlet gateway\` prints it)`);
      return;
    }
    s.host.pinGateway(gw);
    r.data(`gateway ${gw} pinned: only it can pair this meter`, { pinned: gw });
    r.ok();
  },
};

export const unpair: Command = {
  name: 'unpair',
  help: [['unpair', 'forgets the gateway (asks for `confirm unpair` next)', true]],
  tech: always,
  run(s, args, _rest, r) {
    if (args.length) {
      r.err('usage', 'unpair takes no arguments');
      return;
    }
    const st = s.host.status();
    if (!st.paired) {
      r.err('notfound', 'this meter is not paired');
      return;
    }
    s.expectConfirm('unpair');
    r.confirm('unpair', `type \`confirm unpair\` to forget gateway ${st.gatewayId} and return to pairing`);
    r.ok();
  },
};

export const confirm: Command = {
  name: 'confirm',
  help: [['confirm unpair', 'carries out `unpair`', true]],
  tech: always,
  run(s, args, _rest, r) {
    if (args.length !== 1 || args[0] !== 'unpair') {
      r.err('usage', 'confirm unpair');
      return;
    }
    if (!s.confirmed('unpair')) {
      r.err('usage', 'nothing to confirm: `unpair` first, then `confirm unpair` as the next command');
      return;
    }
    const outcome = s.host.unpair();
    if (outcome === UnpairOutcome.done) {
      r.data('unpaired: the meter forgot its gateway and is back to pairing', { paired: false });
      r.ok();
    } else if (outcome === UnpairOutcome.notPaired) r.err('notfound', 'this meter is not paired');
    else r.err('internal', 'unpair is not available in this firmware build');
  },
};
