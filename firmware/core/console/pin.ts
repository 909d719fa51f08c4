// The technician PIN's stored form (CONSOLE.md: PBKDF2-HMAC-SHA256, 16-byte salt, iteration count
// stored beside it, default 1000 so a meter checks a PIN in seconds).
//
// Stored format — one ASCII text value, the same for config `console.pin_hash` (set by the gateway in
// a WIRE.md config body) and for the factory PIN in KeyValue `console.factory_pin`:
//
//     pbkdf2-sha256$<iterations>$<salt>$<key>
//
//   iterations  decimal, 1 ≤ n ≤ 100000 (a larger count would stall a meter's console for minutes)
//   salt        16 bytes as 32 lower-case hex digits
//   key         PBKDF2-HMAC-SHA256(password = the PIN's UTF-8 bytes, salt, iterations, dkLen 32)
//               as 64 lower-case hex digits
//
// Example (PIN "123456", salt 00…0f, 1000 iterations) — see test/core/console-auth.test.ts:
//   pbkdf2-sha256$1000$000102030405060708090a0b0c0d0e0f$<64 hex digits>
//
// A PIN is 4 to 32 printable ASCII characters without spaces (a factory PIN is 8 digits).

import { constantTimeEqual, fromHex, toHex, utf8Encode } from '../bytes.js';
import { pbkdf2Sha256, randomBytes, withStrongEntropy } from '../crypto.js';
import type { KeyValue } from '../ports.js';

export const PIN_HASH_SCHEME = 'pbkdf2-sha256';
export const DEFAULT_PIN_ITERATIONS = 1000;
export const MAX_PIN_ITERATIONS = 100_000;
export const PIN_SALT_BYTES = 16;
export const PIN_KEY_BYTES = 32;
/** KeyValue key of the factory PIN's hash (provisioned at manufacture; on a host at first boot). */
export const FACTORY_PIN_KEY = 'console.factory_pin';
/** Config key the gateway sets. */
export const PIN_CONFIG_KEY = 'console.pin_hash';

export interface PinHash {
  iterations: number;
  salt: Uint8Array;
  key: Uint8Array;
}

export function isPinShaped(pin: string): boolean {
  return /^[\x21-\x7e]{4,32}$/.test(pin);
}

export function parsePinHash(text: string): PinHash | undefined {
  const parts = text.split('$');
  if (parts.length !== 4 || parts[0] !== PIN_HASH_SCHEME) return undefined;
  if (!/^[1-9][0-9]{0,5}$/.test(parts[1])) return undefined;
  const iterations = Number(parts[1]);
  if (iterations > MAX_PIN_ITERATIONS) return undefined;
  if (!/^[0-9a-f]{32}$/.test(parts[2]) || !/^[0-9a-f]{64}$/.test(parts[3])) return undefined;
  return { iterations, salt: fromHex(parts[2]), key: fromHex(parts[3]) };
}

export function formatPinHash(h: PinHash): string {
  return `${PIN_HASH_SCHEME}$${h.iterations}$${toHex(h.salt)}$${toHex(h.key)}`;
}

/** The stored form of `pin` (random salt unless one is given). */
export function makePinHash(pin: string, iterations = DEFAULT_PIN_ITERATIONS, salt = randomBytes(PIN_SALT_BYTES)): string {
  if (!isPinShaped(pin)) throw new Error('a PIN is 4 to 32 printable characters without spaces');
  if (salt.length !== PIN_SALT_BYTES) throw new Error(`a PIN salt is ${PIN_SALT_BYTES} bytes`);
  if (!(iterations >= 1 && iterations <= MAX_PIN_ITERATIONS)) throw new Error(`PIN iterations must be 1..${MAX_PIN_ITERATIONS}`);
  return formatPinHash({ iterations, salt, key: pbkdf2Sha256(utf8Encode(pin), salt, iterations, PIN_KEY_BYTES) });
}

/** True when `pin` matches; undefined when `stored` is not a well-formed PIN hash. */
export function checkPin(pin: string, stored: string): boolean | undefined {
  const h = parsePinHash(stored);
  if (!h) return undefined;
  if (!isPinShaped(pin)) return false;
  return constantTimeEqual(pbkdf2Sha256(utf8Encode(pin), h.salt, h.iterations, PIN_KEY_BYTES), h.key);
}

/** An 8-digit factory PIN from the Random port, uniform (rejection sampling). */
export function newFactoryPin(): string {
  let pin = '';
  while (pin.length < 8) {
    const b = randomBytes(8);
    for (let i = 0; i < b.length && pin.length < 8; i++) if (b[i] < 250) pin += String(b[i] % 10);
  }
  return pin;
}

/**
 * Stores a factory PIN's hash unless one is already there. Returns the new PIN (to print on the label —
 * on a host, to show once on stderr) or undefined when the device already had one. The PIN and its
 * salt come from the Random port's strongest entropy (first boot, before the radio is up).
 */
export function provisionFactoryPin(kv: KeyValue, pin?: string): string | undefined {
  const had = kv.get(FACTORY_PIN_KEY);
  if (had && had.length) return undefined;
  const made = withStrongEntropy(() => {
    const p = pin ?? newFactoryPin();
    return { pin: p, hash: makePinHash(p) };
  });
  kv.set(FACTORY_PIN_KEY, utf8Encode(made.hash));
  return made.pin;
}
