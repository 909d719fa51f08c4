// A meter's type and keys on the device (CONSOLE.md `config`, WIRE.md config body). The type is plain
// configuration (`cfg.meter.type`, shown by `config get`); the keys are secrets: kept in the KeyValue
// port as their 16 bytes, apart from the `cfg.` values, like the session key (agent/identity.ts), and
// never shown back — `config get meter.key` says only whether one is set. Setting one bumps a version
// the meter parser checks before each ciphered frame, so it applies from the next frame.

import type { KeyValue } from '../ports.js';
import { utf8Decode } from '../bytes.js';
import type { DlmsKeys } from './dlms.js';
import { isMeterType, METER_TYPES, type MeterType } from './types.js';

/** The encryption key (GUEK) the network operator hands the customer. */
export const METER_KEY = 'meter.key';
/** The authentication key (GAK), for meters that authenticate their frames. */
export const METER_AUTH_KEY = 'meter.auth_key';
/** dsmr, smarty, dlms or mbus: chooses the serial settings and framings (meter.ts); read at boot. */
export const METER_TYPE = 'meter.type';

const STORE: { [name: string]: string } = { [METER_KEY]: 'meter.ek', [METER_AUTH_KEY]: 'meter.ak' };

/**
 * Bumped whenever a key is set or removed in this process. A property, not a module variable: on a
 * meter this module is preloaded into flash, where a module variable cannot be assigned at run time.
 */
const changes = { version: 0 };

/** Changes whenever a key is set or removed in this process (MeterParserOptions.keysVersion). */
export function meterKeysVersion(): number {
  return changes.version;
}

/** Whether a config key names a meter secret (never shown, stored apart). */
export function isMeterSecret(key: string): boolean {
  return key === METER_KEY || key === METER_AUTH_KEY;
}

/**
 * A key as people are given it: 32 hex digits, in any case, with or without `0x`, spaces, colons or
 * dashes between them. Returns the 16 bytes, or a message saying what is wrong.
 */
export function parseMeterKey(name: string, text: string): Uint8Array | string {
  let hex = text.trim();
  if (/^0x/i.test(hex)) hex = hex.slice(2);
  hex = hex.replace(/[\s:-]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    return `${name} is 32 hex digits (16 bytes), as the network operator gives it${hex.length !== 32 && /^[0-9a-fA-F]*$/.test(hex) ? `; this has ${hex.length}` : ''}`;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

/**
 * Checks a meter config value (`meter.type`, `meter.key`, `meter.auth_key`; `none` removes a key).
 * Returns a message saying what is wrong, or undefined.
 */
export function checkMeterConfig(key: string, value: string): string | undefined {
  if (key === METER_TYPE) {
    return isMeterType(value) && value !== 'auto' ? undefined : `${METER_TYPE} is one of ${METER_TYPES.filter((t) => t !== 'auto').join(', ')}`;
  }
  if (isMeterSecret(key)) {
    if (value.trim() === 'none') return undefined;
    const k = parseMeterKey(key, value);
    return typeof k === 'string' ? k : undefined;
  }
  return undefined;
}

/** Stores a meter key (`none` removes it). Returns a message when the value is not a key. */
export function setMeterSecret(kv: KeyValue, key: string, value: string): string | undefined {
  const where = STORE[key];
  if (!where) return `${key} is not a meter key`;
  if (value.trim() === 'none') {
    kv.delete(where);
    changes.version++;
    return undefined;
  }
  const k = parseMeterKey(key, value);
  if (typeof k === 'string') return k;
  kv.set(where, k);
  changes.version++;
  return undefined;
}

/** Whether a meter key is set. */
export function hasMeterSecret(kv: KeyValue, key: string): boolean {
  const where = STORE[key];
  const b = where ? kv.get(where) : undefined;
  return !!b && b.length === 16;
}

/** The keys the meter parser asks for. */
export function loadMeterKeys(kv: KeyValue): DlmsKeys {
  const key = kv.get(STORE[METER_KEY]);
  const authKey = kv.get(STORE[METER_AUTH_KEY]);
  return {
    key: key && key.length === 16 ? key : undefined,
    authKey: authKey && authKey.length === 16 ? authKey : undefined,
  };
}

/** The meter type set by `config set meter.type` (or a config body), else `fallback`. */
export function configuredMeterType(kv: KeyValue, fallback: MeterType): MeterType {
  const b = kv.get('cfg.' + METER_TYPE);
  const t = b ? utf8Decode(b) : undefined;
  return t !== undefined && isMeterType(t) && t !== 'auto' ? t : fallback;
}
