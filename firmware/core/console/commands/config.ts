// `config get <key>` / `config set <key> <value>` (set needs a technician). Values are the text form
// of what WIRE.md config bodies carry. The PIN hash is never shown and only the gateway sets it. The
// meter's keys (meter.key, meter.auth_key) are set here or by the gateway and never shown back;
// meter.type is checked against the types the firmware knows.

import { checkMeterConfig, isMeterSecret, METER_TYPE } from '../../meter/keys.js';
import { PIN_CONFIG_KEY } from '../pin.js';
import { stripControl } from '../text.js';
import { type Command } from './command.js';

// A function, not a module constant: a RegExp preloaded into the image's flash crashes exec() on XS.
const isKey = (key: string) => /^[a-z0-9][a-z0-9_.-]{0,63}$/.test(key);
export const MAX_CONFIG_VALUE = 200;

export const config: Command = {
  name: 'config',
  help: [
    ['config get <key>', 'a configuration value', false],
    ['config set <key> <value>', 'sets a configuration value', true],
  ],
  tech: (args) => args[0] === 'set',
  run(s, args, rest, r) {
    const op = args[0];
    const key = args[1];
    if ((op !== 'get' && op !== 'set') || key === undefined || (op === 'get' && args.length !== 2)) {
      r.err('usage', 'config get <key> | config set <key> <value>');
      return;
    }
    if (!isKey(key)) {
      r.err('usage', 'a config key is 1-64 of a-z 0-9 _ . - (for example tz)');
      return;
    }
    if (op === 'get') {
      const v = s.host.configGet(key);
      if (v === undefined) {
        r.err('notfound', `config ${key} is not set`);
        return;
      }
      const shown = key === PIN_CONFIG_KEY || isMeterSecret(key) ? '(set, hidden)' : stripControl(v);
      r.data(`${key} = ${shown}`, { key, value: shown });
      r.ok();
      return;
    }
    // The value is the rest of the line after the key, spaces kept.
    const value = rest.replace(/^\s*set\s+\S+\s?/, '');
    if (!value.trim() || value.length > MAX_CONFIG_VALUE) {
      r.err('usage', `config set <key> <value>, a value of 1 to ${MAX_CONFIG_VALUE} characters`);
      return;
    }
    if (key === PIN_CONFIG_KEY) {
      r.err('usage', `${PIN_CONFIG_KEY} is set by the gateway, not on the console`);
      return;
    }
    const wrong = checkMeterConfig(key, value);
    if (wrong) {
      r.err('usage', wrong);
      return;
    }
    s.host.configSet(key, value);
    if (isMeterSecret(key)) {
      const shown = value.trim() === 'none' ? '(removed)' : '(set, hidden)';
      r.data(`${key} = ${shown}`, { key, value: shown });
    } else if (key === METER_TYPE) {
      r.data(`${key} = ${value} (read at the next restart)`, { key, value });
    } else r.data(`${key} = ${value}`, { key, value });
    r.ok();
  },
};
