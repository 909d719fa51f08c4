// Technician authorisation (CONSOLE.md `auth`): a right PIN unlocks tech commands for 10 minutes;
// 5 wrong PINs in a row lock the console for 15 minutes. The failed count and the lockout are kept in
// KeyValue so that a power cycle neither resets the count nor ends a lockout early; an attempt is
// counted before its PIN is checked, so cutting power before the answer does not undo it.

import { readU64BE, writeU64BE } from '../bytes.js';
import type { Clock, KeyValue } from '../ports.js';
import { checkPin } from './pin.js';
import type { PinRecord } from './console-host.js';

export const UNLOCK_MS = 10 * 60_000;
export const LOCKOUT_MS = 15 * 60_000;
export const MAX_FAILED_PINS = 5;
/** KeyValue key: [1 version, failed count, locked 0|1, 0, lockout end as unix ms (u64 BE, 0 = unknown)]. */
export const AUTH_STATE_KEY = 'console.auth';

export const AuthResult = {
  unlocked: 0,
  /** Wrong PIN; `triesLeft` before the lockout. */
  wrong: 1,
  /** Wrong PIN that started the lockout, or a PIN tried while locked out. */
  locked: 2,
  /** No PIN is set (paired meter whose gateway has not set `console.pin_hash`) or it is malformed. */
  noPin: 3,
} as const;
export type AuthResultValue = (typeof AuthResult)[keyof typeof AuthResult];

export class TechAuth {
  #kv: KeyValue;
  #clock: Clock;
  #fails = 0;
  /** Monotonic ms the lockout ends, or 0. */
  #lockedUntil = 0;
  /** Monotonic ms the unlock ends, or 0. */
  #unlockedUntil = 0;
  #onLockout: () => void;

  constructor(kv: KeyValue, clock: Clock, onLockout: () => void) {
    this.#kv = kv;
    this.#clock = clock;
    this.#onLockout = onLockout;
    this.#load();
  }

  get failedCount(): number {
    return this.#fails;
  }

  /** True while tech commands are allowed. */
  isUnlocked(): boolean {
    if (this.#unlockedUntil === 0) return false;
    if (this.#clock.monotonic() < this.#unlockedUntil) return true;
    this.#unlockedUntil = 0;
    return false;
  }

  /** Milliseconds of lockout left, 0 when not locked out. */
  lockedForMs(): number {
    if (this.#lockedUntil === 0) return 0;
    const left = this.#lockedUntil - this.#clock.monotonic();
    if (left > 0) return left;
    // The lockout is over: a fresh run of attempts.
    this.#lockedUntil = 0;
    this.#fails = 0;
    this.#save();
    return 0;
  }

  unlockedForMs(): number {
    return this.isUnlocked() ? this.#unlockedUntil - this.#clock.monotonic() : 0;
  }

  /** Ends an unlocked session (a wrong PIN does too). */
  relock(): void {
    this.#unlockedUntil = 0;
  }

  /**
   * Checks a PIN. With no (well-formed) PIN set, every attempt is wrong and counts like one: the
   * lockout does not depend on what the gateway has configured. The attempt is counted (and the
   * lockout it would start recorded) in KeyValue before the PIN is checked: a power cut during the
   * check, which takes a noticeable time (PBKDF2), the attempt still counts as a wrong one.
   */
  attempt(pin: string, record: PinRecord | undefined): AuthResultValue {
    if (this.lockedForMs() > 0) return AuthResult.locked;
    this.#unlockedUntil = 0;
    this.#fails++;
    const locks = this.#fails >= MAX_FAILED_PINS;
    if (locks) this.#lockedUntil = this.#clock.monotonic() + LOCKOUT_MS;
    this.#save();
    const ok = record ? checkPin(pin, record.hash) : undefined;
    if (ok) {
      this.#unlockedUntil = this.#clock.monotonic() + UNLOCK_MS;
      this.#fails = 0;
      this.#lockedUntil = 0;
      this.#save();
      return AuthResult.unlocked;
    }
    if (locks) {
      this.#onLockout();
      return AuthResult.locked;
    }
    return ok === undefined ? AuthResult.noPin : AuthResult.wrong;
  }

  get triesLeft(): number {
    return MAX_FAILED_PINS - this.#fails;
  }

  #wallNow(): number {
    const now = this.#clock.now();
    return Number.isNaN(now) ? 0 : now;
  }

  #save(): void {
    const b = new Uint8Array(12);
    b[0] = 1;
    b[1] = this.#fails;
    b[2] = this.#lockedUntil ? 1 : 0;
    const wall = this.#wallNow();
    if (this.#lockedUntil && wall) writeU64BE(b, 4, wall + (this.#lockedUntil - this.#clock.monotonic()));
    this.#kv.set(AUTH_STATE_KEY, b);
  }

  #load(): void {
    const b = this.#kv.get(AUTH_STATE_KEY);
    if (!b || b.length !== 12 || b[0] !== 1) return;
    this.#fails = Math.min(b[1], MAX_FAILED_PINS);
    if (b[2] !== 1) return;
    // After a reboot the monotonic clock restarts: the lockout goes on for what is left by the wall
    // clock when both it and the stored end are known, and for a whole lockout otherwise.
    const end = readU64BE(b, 4);
    const wall = this.#wallNow();
    let left = LOCKOUT_MS;
    if (end && wall) left = Math.min(LOCKOUT_MS, Math.max(0, end - wall));
    if (left > 0) this.#lockedUntil = this.#clock.monotonic() + left;
    else {
      this.#fails = 0;
      this.#save();
    }
  }
}
