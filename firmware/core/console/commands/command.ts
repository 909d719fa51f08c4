// The shape of one console command family (CONSOLE.md "Commands"): what the dispatch table holds, and
// what a handler may do with the session and the reply.

import type { ConsoleHost } from '../console-host.js';
import type { TechAuth } from '../tech-auth.js';
import type { JsonValue } from '../text.js';

/** CONSOLE.md final-line codes. */
export type ErrCode = 'usage' | 'auth' | 'locked' | 'notfound' | 'busy' | 'offline' | 'internal';

/** How a handler answers. Exactly one of `ok` / `err` ends every command. */
export interface Reply {
  /** The session is in `json on` mode (handlers may skip building text that would not be shown). */
  readonly json: boolean;
  /** One data line: `text` on a terminal, `{"data": value}` in json mode. */
  data(text: string, value: JsonValue): void;
  /** A confirmation request: `text` on a terminal, `{"confirm": what}` in json mode. */
  confirm(what: string, text: string): void;
  ok(): void;
  err(code: ErrCode, message: string): void;
}

/** A command whose answer streams in after its handler returns (`ask`). */
export interface StreamReply {
  /** Shows part of the answer (the console strips control characters). */
  chunk(text: string): void;
  ok(): void;
  err(code: ErrCode, message: string): void;
}

export interface Session {
  readonly host: ConsoleHost;
  readonly auth: TechAuth;
  setJson(on: boolean): void;
  /** The next command must be `confirm <what>`; any other command forgets the request. */
  expectConfirm(what: string): void;
  /** True when the previous command asked for `confirm <what>`. */
  confirmed(what: string): boolean;
  /**
   * The command goes on after its handler returns: other commands get `ERR busy` until the stream
   * ends; Ctrl-C or `timeoutMs` without a chunk calls `cancel` and ends it.
   */
  stream(cancel: () => void, timeoutMs: number): StreamReply;
  /** The help table: every command's usage lines. */
  help(): readonly HelpLine[];
}

/** [usage, summary, needs a technician] */
export type HelpLine = readonly [usage: string, summary: string, tech: boolean];

export interface Command {
  /** The first word of the command line. */
  readonly name: string;
  readonly help: readonly HelpLine[];
  /** Whether these arguments need an unlocked technician session (`auth <pin>`). */
  tech(args: readonly string[]): boolean;
  /**
   * `args` are the words after the command's name; `rest` is the line after the name with its
   * spacing kept (free text: `ask`, `config set`).
   */
  run(s: Session, args: readonly string[], rest: string, r: Reply): void;
}

export const always = (): boolean => true;
export const never = (): boolean => false;

/** Parses a count argument: undefined when absent, NaN when malformed or out of 1..max. */
export function count(arg: string | undefined, max: number): number | undefined {
  if (arg === undefined) return undefined;
  if (!/^[0-9]{1,6}$/.test(arg)) return NaN;
  const n = Number(arg);
  return n >= 1 && n <= max ? n : NaN;
}
