// `auth <pin>`: unlocks tech commands for 10 minutes; 5 wrong PINs lock the console for 15 minutes.

import { AuthResult, LOCKOUT_MS, UNLOCK_MS } from '../tech-auth.js';
import { duration } from '../text.js';
import { never, type Command } from './command.js';

export const auth: Command = {
  name: 'auth',
  help: [['auth <pin>', 'unlocks tech commands for 10 minutes; 5 wrong PINs lock the console for 15', false]],
  tech: never,
  run(s, args, _rest, r) {
    if (args.length !== 1) {
      r.err('usage', 'auth <pin>');
      return;
    }
    const record = s.host.pinRecord();
    switch (s.auth.attempt(args[0], record)) {
      case AuthResult.unlocked:
        r.data(`technician commands unlocked for ${duration(UNLOCK_MS)}${record?.factory ? ' (factory PIN)' : ''}`,
          { unlocked_s: UNLOCK_MS / 1000, factory: record?.factory ?? false });
        r.ok();
        return;
      case AuthResult.wrong:
        r.err('auth', `wrong PIN; ${s.auth.triesLeft} more before a ${duration(LOCKOUT_MS)} lockout`);
        return;
      case AuthResult.locked:
        r.err('locked', `wrong PIN; console locked for ${duration(s.auth.lockedForMs())}`);
        return;
      default:
        r.err('auth', `${record
          ? 'the stored PIN hash is malformed; the gateway must set console.pin_hash again'
          : 'no technician PIN is set on this meter; the gateway sets console.pin_hash'} (${s.auth.triesLeft} more tries before a ${duration(LOCKOUT_MS)} lockout)`);
    }
  },
};
