// Cuts a job's streamed output into job-result texts (WIRE.md body 22, field 3): at most 200 bytes of
// UTF-8 each, split only between characters, in order, never altering the text. Backends hand over
// text in pieces of any size, and a piece may end in the first half of a surrogate pair (a server that
// escapes an astral character as two \u escapes across two events): that half waits for the rest.

/** WIRE.md: job-result text is at most 200 bytes. */
export const MAX_CHUNK_BYTES = 200;

export class Chunker {
  #pending = '';
  #pendingBytes = 0;
  readonly #max: number;

  constructor(maxBytes = MAX_CHUNK_BYTES) {
    if (maxBytes < 4) throw new Error('a chunk must hold at least one character (4 bytes)');
    this.#max = maxBytes;
  }

  /** Text held, not yet taken. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  push(text: string): void {
    this.#pending += text;
    // Counted whole: a surrogate pair split across pieces is 4 bytes, not 3 + 3.
    this.#pendingBytes = utf8Length(this.#pending);
  }

  /** True when a whole chunk is ready (so it is worth sending without waiting for more). */
  get full(): boolean {
    return this.#pendingBytes >= this.#max;
  }

  /**
   * Takes up to one chunk from the front. Without `end`, a trailing high surrogate stays behind for
   * its other half; with `end` everything held may go. Returns '' when nothing can be taken.
   */
  take(end = false): string {
    const s = this.#pending;
    let bytes = 0;
    let i = 0;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      let units = 1;
      let size: number;
      if (c < 0x80) size = 1;
      else if (c < 0x800) size = 2;
      else if (c >= 0xd800 && c <= 0xdbff) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : -1;
        if (d >= 0xdc00 && d <= 0xdfff) {
          size = 4;
          units = 2;
        } else if (d === -1 && !end) break; // its low half may come with the next piece
        else size = 3; // a lone surrogate: it travels as U+FFFD
      } else size = 3;
      if (bytes + size > this.#max) break;
      bytes += size;
      i += units;
    }
    const out = s.slice(0, i);
    this.#pending = s.slice(i);
    this.#pendingBytes = utf8Length(this.#pending);
    return out;
  }
}

/** Bytes of `s` in UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD, as TextEncoder writes it). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Cuts `s` to at most `max` bytes of UTF-8 on a character boundary, marking a cut with "…". */
export function truncateUtf8(s: string, max = MAX_CHUNK_BYTES): string {
  if (utf8Length(s) <= max) return s;
  const c = new Chunker(max - 3);
  c.push(s);
  return c.take(true) + '…';
}
