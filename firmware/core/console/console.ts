// The technician's serial console (CONSOLE.md): a line discipline over the SerialPort port and the
// framing of replies. Bytes are taken one at a time into a fixed 256-byte line buffer and checked as
// strict UTF-8 on the way in; nothing is allocated per byte. A complete line is decoded once and
// dispatched by its first word through the table in commands/index.ts.
//
// Line discipline (what a terminal or script may send):
//   `\r`, `\n` or `\r\n` ends a line; an empty line just shows the prompt again.
//   A line longer than 256 bytes, or with bytes that are not UTF-8, or with control characters (C0, C1), is
//   refused with `ERR usage` once its end arrives (the rest of an overlong line is discarded).
//   Backspace (0x08 or 0x7f) removes the last character. Tab counts as a space.
//   Ctrl-C (0x03) discards the partial line and stops a streaming answer.
//   A partial line left alone for 30 s is discarded (a cable unplugged mid-line).
// Replies: data lines, then exactly one final line `OK` or `ERR <code> <message>`, then the prompt
// `gridlet> `; lines end with `\r\n`. In `json on` mode: one JSON object per line, no prompt.

import { utf8Decode, utf8Encode } from '../bytes.js';
import type { Clock, KeyValue, SerialPort, Timers } from '../ports.js';
import type { ConsoleHost } from './console-host.js';
import { ALLOWED_WHILE_LOCKED, COMMAND_LIST, findCommand } from './commands/index.js';
import type { ErrCode, HelpLine, Reply, Session, StreamReply } from './commands/command.js';
import { TechAuth } from './tech-auth.js';
import { duration, oneLine, stripControl, type JsonValue } from './text.js';

export const MAX_LINE_BYTES = 256;
export const PROMPT = 'gridlet> ';
export const IDLE_DISCARD_MS = 30_000;

/** Why the line being received will be refused (numbers, STYLE.md). */
const Fault = { none: 0, tooLong: 1, utf8: 2, control: 3 } as const;
const FAULT_TEXT = ['', `line longer than ${MAX_LINE_BYTES} bytes`, 'line is not valid UTF-8', 'control characters in line'];

export interface ConsoleOptions {
  port: SerialPort;
  host: ConsoleHost;
  /** Keeps the failed-PIN count and the lockout across reboots. */
  kv: KeyValue;
  clock: Clock;
  timers: Timers;
}

export class Console implements Reply, Session {
  readonly host: ConsoleHost;
  readonly auth: TechAuth;
  #port: SerialPort;
  #clock: Clock;
  #timers: Timers;

  // Line discipline state.
  #line = new Uint8Array(MAX_LINE_BYTES);
  #len = 0;
  #fault: number = Fault.none;
  /** Where the byte that caused the fault sits (backspacing over it clears the fault). */
  #faultAt = 0;
  /** UTF-8 continuation bytes still expected, and the range the next one must fall in. */
  #need = 0;
  #lo = 0x80;
  #hi = 0xbf;
  /** The lead byte was 0xc2: a continuation byte below 0xa0 makes a C1 control character. */
  #c2 = false;
  #lastCR = false;
  #lastByteAt = 0;

  // Session state.
  #json = false;
  #confirmWanted = '';
  #confirmPending = '';
  #final = true;
  #stream: Stream | undefined;
  #streamTimer = -1;
  /** Text mode: a streamed chunk left the cursor mid-line. */
  #midLine = false;

  constructor(o: ConsoleOptions) {
    this.host = o.host;
    this.#port = o.port;
    this.#clock = o.clock;
    this.#timers = o.timers;
    this.auth = new TechAuth(o.kv, o.clock, () => this.#lockedOut());
    o.port.onReadable((bytes) => this.receive(bytes));
  }

  get json(): boolean {
    return this.#json;
  }

  /** Shows the prompt (at boot, so a technician already connected sees the console is there). */
  start(): void {
    if (!this.#json) this.#write('\r\n' + PROMPT);
  }

  /** Bytes from the serial line. Never throws: nothing on the line can take the agent down. */
  receive(bytes: Uint8Array): void {
    try {
      const now = this.#clock.monotonic();
      if ((this.#len || this.#fault) && now - this.#lastByteAt > IDLE_DISCARD_MS) this.#resetLine();
      this.#lastByteAt = now;
      for (let i = 0; i < bytes.length; i++) this.#byte(bytes[i]);
    } catch (e) {
      this.#resetLine();
      try {
        if (!this.#final) this.err('internal', (e as Error)?.message ?? 'error');
      } catch {
        // The port itself failed: nothing more to say on it.
      }
    }
  }

  // ------------------------------------------------------------------ line discipline

  #byte(b: number): void {
    if (this.#lastCR) {
      this.#lastCR = false;
      if (b === 0x0a) return;
    }
    if (b === 0x0d || b === 0x0a) {
      this.#lastCR = b === 0x0d;
      this.#endLine();
      return;
    }
    if (b === 0x03) {
      this.#interrupt();
      return;
    }
    if (b === 0x08 || b === 0x7f) {
      this.#backspace();
      return;
    }
    if (this.#fault === Fault.tooLong) return; // discarding to the end of the line
    if (this.#len === MAX_LINE_BYTES) {
      this.#fault = Fault.tooLong;
      return;
    }
    if (this.#need > 0) {
      if (b < this.#lo || b > this.#hi) this.#setFault(Fault.utf8);
      else {
        if (this.#c2 && b < 0xa0) this.#setFault(Fault.control);
        this.#need--;
        this.#lo = 0x80;
        this.#hi = 0xbf;
      }
      this.#c2 = false;
    } else if (b >= 0x80) {
      this.#lo = 0x80;
      this.#hi = 0xbf;
      this.#c2 = b === 0xc2;
      if (b >= 0xc2 && b <= 0xdf) this.#need = 1;
      else if (b >= 0xe0 && b <= 0xef) {
        this.#need = 2;
        if (b === 0xe0) this.#lo = 0xa0; // no overlong forms
        else if (b === 0xed) this.#hi = 0x9f; // no surrogates
      } else if (b >= 0xf0 && b <= 0xf4) {
        this.#need = 3;
        if (b === 0xf0) this.#lo = 0x90;
        else if (b === 0xf4) this.#hi = 0x8f; // nothing above U+10FFFF
      } else this.#setFault(Fault.utf8);
    } else if (b === 0x09) b = 0x20;
    else if (b < 0x20) this.#setFault(Fault.control);
    this.#line[this.#len++] = b;
  }

  #setFault(f: number): void {
    if (this.#fault !== Fault.none) return;
    this.#fault = f;
    this.#faultAt = this.#len;
    this.#need = 0;
  }

  #backspace(): void {
    if (this.#fault === Fault.tooLong || this.#len === 0) return;
    // Remove one whole character: its continuation bytes, then its lead byte.
    while (this.#len > 0 && (this.#line[this.#len - 1] & 0xc0) === 0x80) this.#len--;
    if (this.#len > 0) this.#len--;
    this.#need = 0;
    this.#c2 = false;
    if (this.#fault !== Fault.none && this.#len <= this.#faultAt) this.#fault = Fault.none;
  }

  #resetLine(): void {
    this.#len = 0;
    this.#fault = Fault.none;
    this.#need = 0;
    this.#c2 = false;
  }

  #interrupt(): void {
    this.#resetLine();
    if (this.#stream) {
      const s = this.#stream;
      s.cancel();
      s.err('busy', 'answer stopped (Ctrl-C)');
      return;
    }
    if (!this.#json) this.#write('^C\r\n' + PROMPT);
  }

  #endLine(): void {
    let fault = this.#fault;
    if (fault === Fault.none && this.#need > 0) fault = Fault.utf8; // a character cut short
    const len = this.#len;
    this.#resetLine();
    if (fault !== Fault.none) {
      this.#refuse(FAULT_TEXT[fault]);
      return;
    }
    let blank = true;
    for (let i = 0; i < len; i++) if (this.#line[i] !== 0x20) blank = false;
    if (blank) {
      if (!this.#json && !this.#stream) this.#write(PROMPT);
      return;
    }
    const text = utf8Decode(this.#line, 0, len);
    if (text === undefined) this.#refuse(FAULT_TEXT[Fault.utf8]);
    else this.#execute(text);
  }

  /** A line refused before it became a command: one final line, like any command. */
  #refuse(message: string): void {
    if (this.#stream) this.#busyLine();
    else this.#begin().err('usage', message);
  }

  // ------------------------------------------------------------------ dispatch

  #begin(): this {
    this.#final = false;
    this.#confirmPending = this.#confirmWanted;
    this.#confirmWanted = '';
    return this;
  }

  #execute(text: string): void {
    if (this.#stream) {
      this.#busyLine();
      return;
    }
    this.#begin();
    const words = text.split(' ').filter((w) => w.length > 0);
    const name = words[0].toLowerCase();
    const cmd = findCommand(name);
    if (!cmd) {
      this.err('notfound', `unknown command "${name.length > 40 ? name.slice(0, 40) + '…' : name}"; \`help\` lists the commands`);
      return;
    }
    const lockedMs = this.auth.lockedForMs();
    if (lockedMs > 0 && ALLOWED_WHILE_LOCKED.indexOf(name) < 0) {
      this.err('locked', `console locked for ${duration(lockedMs)} after 5 wrong PINs`);
      return;
    }
    const args = words.slice(1);
    if (cmd.tech(args) && !this.auth.isUnlocked()) {
      this.err('auth', `${name} is a technician command: \`auth <pin>\` first`);
      return;
    }
    const rest = text.replace(/^\s*\S+\s?/, '');
    try {
      cmd.run(this, args, rest, this);
    } catch (e) {
      if (!this.#final) this.err('internal', `${name} failed: ${(e as Error)?.message ?? String(e)}`);
      return;
    }
    if (!this.#final && !this.#stream) this.err('internal', `${name} gave no answer`);
  }

  /** A line that arrived while an answer is streaming: refused, outside that command's reply. */
  #busyLine(): void {
    const line = this.#json
      ? '{"ok":false,"code":"busy","message":"an answer is still streaming; Ctrl-C stops it"}'
      : 'ERR busy an answer is still streaming; Ctrl-C stops it';
    this.#line_(line);
  }

  // ------------------------------------------------------------------ Session

  setJson(on: boolean): void {
    this.#json = on;
  }

  expectConfirm(what: string): void {
    this.#confirmWanted = what;
  }

  confirmed(what: string): boolean {
    return this.#confirmPending === what;
  }

  stream(cancel: () => void, timeoutMs: number): StreamReply {
    const s = new Stream(this, cancel, timeoutMs);
    this.#stream = s;
    this.#armStreamTimer(timeoutMs);
    return s;
  }

  help(): readonly HelpLine[] {
    const out: HelpLine[] = [];
    for (const c of COMMAND_LIST) for (const h of c.help) out.push(h);
    return out;
  }

  // ------------------------------------------------------------------ Reply

  data(text: string, value: JsonValue): void {
    if (this.#final) return;
    this.#line_(this.#json ? '{"data":' + JSON.stringify(value) + '}' : text);
  }

  confirm(what: string, text: string): void {
    if (this.#final) return;
    this.#line_(this.#json ? '{"confirm":' + JSON.stringify(what) + '}' : text);
  }

  ok(): void {
    if (this.#final) return;
    this.#finish(this.#json ? '{"ok":true}' : 'OK');
  }

  err(code: ErrCode, message: string): void {
    if (this.#final) return;
    const m = oneLine(message);
    this.#finish(this.#json ? `{"ok":false,"code":"${code}","message":${JSON.stringify(m)}}` : `ERR ${code} ${m}`);
  }

  // ------------------------------------------------------------------ streams (used by Stream)

  /** @internal */
  streamChunk(s: Stream, text: string): void {
    if (this.#stream !== s || this.#final) return;
    const clean = stripControl(text, true);
    this.#armStreamTimer(s.timeoutMs);
    if (!clean) return;
    if (this.#json) this.#line_('{"chunk":' + JSON.stringify(clean) + '}');
    else {
      this.#write(clean.split('\n').join('\r\n'));
      this.#midLine = clean[clean.length - 1] !== '\n';
    }
  }

  /** @internal */
  streamEnd(s: Stream, code: ErrCode | '', message: string): void {
    if (this.#stream !== s) return;
    if (code) this.err(code, message);
    else this.ok();
  }

  /** @internal */
  streamTimedOut(): void {
    const s = this.#stream;
    if (!s) return;
    this.#streamTimer = -1;
    s.cancel();
    s.err('offline', `no answer from the gateway within ${duration(s.timeoutMs)}`);
  }

  #armStreamTimer(ms: number): void {
    if (this.#streamTimer >= 0) this.#timers.clear(this.#streamTimer);
    this.#streamTimer = this.#timers.set(() => this.streamTimedOut(), ms);
  }

  // ------------------------------------------------------------------ output

  #finish(line: string): void {
    if (this.#stream) {
      this.#stream = undefined;
      if (this.#streamTimer >= 0) this.#timers.clear(this.#streamTimer);
      this.#streamTimer = -1;
    }
    this.#final = true;
    this.#line_(line);
    if (!this.#json) this.#write(PROMPT);
  }

  #line_(line: string): void {
    if (this.#midLine) {
      this.#midLine = false;
      this.#write('\r\n' + line + '\r\n');
    } else this.#write(line + '\r\n');
  }

  #write(text: string): void {
    this.#port.write(utf8Encode(text));
  }

  #lockedOut(): void {
    try {
      this.host.recordEvent('console-lockout');
    } catch {
      // Recording the event must not change the reply.
    }
  }
}

/** One streaming answer; dead once it has ended, so late chunks from the host are dropped. */
class Stream implements StreamReply {
  #c: Console;
  #cancel: () => void;
  #live = true;
  readonly timeoutMs: number;
  constructor(c: Console, cancel: () => void, timeoutMs: number) {
    this.#c = c;
    this.#cancel = cancel;
    this.timeoutMs = timeoutMs;
  }
  chunk(text: string): void {
    if (this.#live) this.#c.streamChunk(this, text);
  }
  ok(): void {
    if (!this.#live) return;
    this.#live = false;
    this.#c.streamEnd(this, '', '');
  }
  err(code: ErrCode, message: string): void {
    if (!this.#live) return;
    this.#live = false;
    this.#c.streamEnd(this, code, message);
  }
  cancel(): void {
    if (!this.#live) return;
    try {
      this.#cancel();
    } catch {
      // A failed cancel leaves only a job the gateway finishes for nobody.
    }
  }
}
