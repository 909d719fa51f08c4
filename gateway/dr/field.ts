// A refusal that names the field of the operator's JSON it is about, so that a 400 says where to look
// (`intervals[1].intervalPeriod.duration: …`). The HTTP routes turn it into {"error": message}.

export class FieldError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'FieldError';
  }
}

/** A JSON value shown in a message, cut short. */
export function shown(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

export function isObject(v: unknown): v is { [k: string]: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Refuses fields other than `known` (a misspelt optional field would otherwise be silently ignored). */
export function onlyFields(o: { [k: string]: unknown }, known: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new FieldError(where ? `${where}.${k}` : k, `unknown field (fields: ${known.join(', ')})`);
  }
}
