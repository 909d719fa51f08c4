// The identifiers people type: device ids and pair codes (WIRE.md "Identity", "Pairing"). Pure string
// rules with no dependencies, so that the dashboard runs the same ones (gateway/web/shared.ts).

/** A device id: 16 base32 characters in lower case. */
export function isDeviceId(id: string): boolean {
  return /^[a-z2-7]{16}$/.test(id);
}

/** A pair code as people type it (any case, with or without the dash) in its key form, or undefined. */
export function normalizePairCode(code: string): string | undefined {
  const s = code.trim().replace(/-/g, '').toLowerCase();
  // 10 characters × 5 bits = the 50 bits of the secret exactly, so every symbol is legal everywhere.
  return /^[a-z2-7]{10}$/.test(s) ? s : undefined;
}
