// Configuration (WIRE.md body 17 config) and the technician PIN (CONSOLE.md `console.pin_hash`):
//   PUT  /api/devices/:id/config {"key": value, …}   text, integer or boolean values
//   POST /api/devices/:id/console-pin {"pin"}         PBKDF2 hash computed here, sent as console.pin_hash
// The clear PIN is never logged or kept: only its hash leaves this handler. Meter keys (meter.key,
// meter.auth_key) are checked here and never logged or answered back; they travel sealed in the frame.

import { MAX_CONFIG_VALUE } from '../../firmware/core/console/commands/config.js';
import { DEFAULT_PIN_ITERATIONS, isPinShaped, makePinHash, parsePinHash, PIN_CONFIG_KEY } from '../../firmware/core/console/pin.js';
import { checkMeterConfig, isMeterSecret } from '../../firmware/core/meter/keys.js';
import { Body, type Config, type TextMap } from '../../firmware/core/wire/bodies.js';
import { checkFits, ID, objectBody, pairedDevice, sendAll, type DeviceOpsDeps } from './device-ops.js';
import { HttpError, type Route } from './server.js';

/** The console's key grammar (`config set <key>`), so that every key set here can be read there. */
export const CONFIG_KEY = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const MAX_CONFIG_KEYS = 32;

function configValues(b: { [k: string]: unknown }): TextMap {
  const keys = Object.keys(b);
  if (keys.length === 0) throw new HttpError(400, 'give at least one "key": value');
  if (keys.length > MAX_CONFIG_KEYS) throw new HttpError(400, `at most ${MAX_CONFIG_KEYS} keys at once`);
  const values: TextMap = {};
  for (const k of keys) {
    const v = b[k];
    if (!CONFIG_KEY.test(k)) throw new HttpError(400, `${k.slice(0, 70)}: a config key is 1-64 of a-z 0-9 _ . - starting with a letter or digit (for example tz)`);
    if (typeof v === 'string') {
      if (v.length === 0 || v.length > MAX_CONFIG_VALUE) throw new HttpError(400, `${k}: a text value is 1 to ${MAX_CONFIG_VALUE} characters`);
      if (/[\u0000-\u001f\u007f]/.test(v)) throw new HttpError(400, `${k}: a text value must not contain control characters`);
    } else if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new HttpError(400, `${k}: ${String(v).slice(0, 30)} is not an integer; WIRE.md v1 carries no floats (use fixed units, e.g. W or s)`);
    } else if (typeof v !== 'boolean') {
      throw new HttpError(400, `${k}: a value is text, an integer or a boolean, not ${v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v}`);
    }
    if (k === PIN_CONFIG_KEY && (typeof v !== 'string' || !parsePinHash(v))) {
      throw new HttpError(400, `${k}: must be a PIN hash (pbkdf2-sha256$<iterations>$<salt hex>$<key hex>); to set a PIN use POST /api/devices/:id/console-pin {"pin"}`);
    }
    const wrong = checkMeterConfig(k, String(v));
    if (wrong) throw new HttpError(400, `${k}: ${wrong}`);
    values[k] = v as string | number | boolean;
  }
  return values;
}

export function configRoutes(d: DeviceOpsDeps): Route[] {
  return [
    {
      method: 'PUT', pattern: new RegExp(`^/api/devices/${ID}/config$`),
      async handle(req) {
        const b = objectBody(req.body, 'PUT /api/devices/:id/config {"key": value, …}');
        const device = await pairedDevice(d, req.params[0]);
        const body: Config = { type: Body.config, values: configValues(b) };
        checkFits(body, 'the config body');
        await sendAll(d, device, [body]);
        const keys = Object.keys(body.values);
        d.log.info({ device: device.id, keys }, 'config sent');
        const shown = Object.fromEntries(keys.map((k) => [k, k === PIN_CONFIG_KEY || isMeterSecret(k) ? '(hidden)' : body.values[k]]));
        return { status: 202, json: { deviceId: device.id, values: shown } };
      },
    },
    {
      method: 'POST', pattern: new RegExp(`^/api/devices/${ID}/console-pin$`),
      async handle(req) {
        const b = objectBody(req.body, 'POST /api/devices/:id/console-pin {"pin"}');
        for (const k of Object.keys(b)) if (k !== 'pin') throw new HttpError(400, `${k.slice(0, 40)}: unknown field (fields: pin)`);
        const device = await pairedDevice(d, req.params[0]);
        if (typeof b.pin !== 'string' || !isPinShaped(b.pin)) {
          throw new HttpError(400, 'pin: a PIN is 4 to 32 printable ASCII characters without spaces');
        }
        const hash = makePinHash(b.pin, DEFAULT_PIN_ITERATIONS);
        const body: Config = { type: Body.config, values: { [PIN_CONFIG_KEY]: hash } };
        checkFits(body, 'the config body');
        await sendAll(d, device, [body]);
        d.log.info({ device: device.id, key: PIN_CONFIG_KEY }, 'console PIN hash sent');
        return { status: 202, json: { deviceId: device.id, key: PIN_CONFIG_KEY, scheme: 'pbkdf2-sha256', iterations: DEFAULT_PIN_ITERATIONS, saltBytes: 16 } };
      },
    },
  ];
}
