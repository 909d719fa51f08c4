// Text the console shows: what comes from elsewhere (ask answers, guest log lines, config values set
// by the gateway) is cleaned of control characters, so nothing can drive the technician's terminal.

/** JSON data of a `{"data": …}` line. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Removes C0 controls, DEL and C1 controls (which include the 8-bit CSI). `keepNewlines` keeps `\n`
 * (multi-line answers); tabs become spaces.
 */
export function stripControl(text: string, keepNewlines = false): string {
  let clean = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      clean = false;
      break;
    }
  }
  if (clean) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x09) out += ' ';
    else if (c === 0x0a && keepNewlines) out += '\n';
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) continue;
    else out += text[i];
  }
  return out;
}

/** One line for `ERR <code> <message>`: no control characters, no line breaks, bounded. */
export function oneLine(text: string, max = 200): string {
  const s = stripControl(text);
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

/** `12 min` / `45 s`, rounding up so "0 min" is never shown while something is still running. */
export function duration(ms: number): string {
  if (ms >= 120_000) return `${Math.ceil(ms / 60_000)} min`;
  return `${Math.max(1, Math.ceil(ms / 1000))} s`;
}

/** Unix seconds as ISO 8601 UTC, or `no-clock` for t = 0 (records taken before the clock was set). */
export function isoTime(t: number): string {
  if (!t) return 'no-clock';
  return new Date(t * 1000).toISOString().replace('.000Z', 'Z');
}
