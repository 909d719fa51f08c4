// `gridlet console <serial path>`: the technician's client for a meter's serial console (CONSOLE.md),
// or for a host agent's pseudo-terminal (`gridlet agent --console-pty`).
//
// On a terminal: line editing and history (~/.gridlet_console_history), tab-completion of commands,
// OK in green and ERR in red (not when NO_COLOR is set or output is not a terminal), Ctrl-C stops a
// streaming answer, and the session survives the cable being unplugged and plugged back in.
// For scripts (stdin not a terminal, or --json): one command per input line, each sent when the
// previous one has its final line; with --json the session is switched to `json on` and the meter's
// JSON lines are passed through as they are. The exit code is 1 if any command ended with ERR.

import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as readline from 'node:readline';
import { SerialPort } from 'serialport';
import { COMMAND_LIST } from '../../firmware/core/console/commands/index.js';
import { PROMPT } from '../../firmware/core/console/console.js';
import { stripControl } from '../../firmware/core/console/text.js';
import { parse, run, UsageError } from './args.js';

const HELP = `usage: gridlet console <serial path> [--baud 115200] [--json]

Talks to a meter's technician console over a serial port (115200 8N1), e.g. /dev/ttyUSB0, or to a
host agent's pseudo-terminal (the console=/dev/pts/N that \`gridlet agent --console-pty\` prints).
Type \`help\` for the meter's commands; tech commands need \`auth <pin>\` first. Ctrl-C stops a
streaming answer, Ctrl-D or \`exit\` leaves. When the cable is unplugged the console waits for it.

  --baud N      line speed (default 115200)
  --json        for scripts: switches the meter to \`json on\`, reads one command per line from stdin
                and prints the meter's JSON lines as they come; exit code 1 if any command failed

With stdin not a terminal, commands are read from it the same way, in text mode.`;

export interface ConsoleIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (on: boolean) => void };
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: { [name: string]: string | undefined };
}

const processIo = (): ConsoleIo => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });

/** Words completed after a command's name. */
const SUBWORDS: { [command: string]: string[] } = {
  json: ['on', 'off'], guest: ['stop', 'start'], relay: ['lock'], config: ['get', 'set'], pair: ['pin'], confirm: ['unpair'],
};
const HISTORY_FILE = '.gridlet_console_history';
const HISTORY_KEPT = 500;
const RECONNECT_MS = 1000;
/** A script's command without a final line for this long fails (the meter gives up on `ask` at 60 s). */
const SCRIPT_COMMAND_TIMEOUT_MS = 90_000;

export function completer(line: string): [string[], string] {
  const words = line.split(' ');
  if (words.length <= 1) {
    const names = COMMAND_LIST.map((c) => c.name).concat(['exit']);
    const hits = names.filter((n) => n.startsWith(line));
    return [hits.length ? hits.map((h) => h + ' ') : names, line];
  }
  if (words.length === 2) {
    const options = SUBWORDS[words[0]] ?? [];
    const hits = options.filter((o) => o.startsWith(words[1]));
    return [hits.map((h) => h + ' '), words[1]];
  }
  return [[], line];
}

/** A serial port that reopens itself when it disappears and comes back (a replugged cable). */
class Line {
  #path: string;
  #baud: number;
  #port: SerialPort | undefined;
  #closing = false;
  #retry: NodeJS.Timeout | undefined;
  onData: (text: string) => void = () => {};
  onOpen: (again: boolean) => void = () => {};
  onLost: (why: string) => void = () => {};
  #opened = false;
  #decoder = new TextDecoder('utf-8');
  /** Sent on every (re)connection after the flush: Ctrl-C (clears a half-typed line) and the session mode. */
  readonly hello: string;

  constructor(path: string, baud: number, json: boolean) {
    this.#path = path;
    this.#baud = baud;
    this.hello = json ? '\x03json on\n' : '\x03json off\n';
  }

  /** Opens the port the first time; rejects if it cannot (a wrong path is a mistake, not a replug). */
  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#tryOpen((err) => (err ? reject(err) : resolve()));
    });
  }

  #tryOpen(done: (err?: Error) => void): void {
    const port = new SerialPort({ path: this.#path, baudRate: this.#baud, autoOpen: false });
    port.open((err) => {
      if (err) {
        done(err);
        return;
      }
      this.#port = port;
      port.on('data', (b: Buffer) => this.onData(this.#decoder.decode(b, { stream: true })));
      port.on('close', (e: (Error & { disconnected?: boolean }) | null) => this.#closed(e));
      port.on('error', () => {});
      // Drop what was queued for nobody, then put the session in the mode this client speaks.
      port.flush(() => {
        port.write(this.hello);
        const again = this.#opened;
        this.#opened = true;
        this.onOpen(again);
        done();
      });
    });
  }

  #closed(e: (Error & { disconnected?: boolean }) | null): void {
    this.#port = undefined;
    if (this.#closing) return;
    this.onLost(e?.message ?? 'closed');
    this.#scheduleReopen();
  }

  #scheduleReopen(): void {
    if (this.#closing) return;
    this.#retry = setTimeout(() => {
      if (!existsSync(this.#path)) {
        this.#scheduleReopen();
        return;
      }
      this.#tryOpen((err) => {
        if (err) this.#scheduleReopen();
      });
    }, RECONNECT_MS);
  }

  get isOpen(): boolean {
    return this.#port !== undefined;
  }

  write(text: string): boolean {
    if (!this.#port) return false;
    this.#port.write(text);
    return true;
  }

  close(): Promise<void> {
    this.#closing = true;
    if (this.#retry) clearTimeout(this.#retry);
    const p = this.#port;
    if (!p) return Promise.resolve();
    return new Promise((resolve) => p.drain(() => p.close(() => resolve())));
  }
}

/**
 * Splits the meter's text-mode output into reply lines and the prompt that follows a final line.
 * Text is passed on as soon as it arrives (streamed answers), except a tail that may be the start of
 * the prompt.
 */
export class TextReplies {
  #pending = '';
  #atLineStart = true;
  constructor(readonly onText: (text: string) => void, readonly onLine: (line: string) => void, readonly onPrompt: () => void) {}

  push(text: string): void {
    let s = this.#pending + text;
    this.#pending = '';
    for (;;) {
      if (this.#atLineStart) {
        if (s.startsWith(PROMPT)) {
          s = s.slice(PROMPT.length);
          this.onPrompt();
          continue;
        }
        if (s.length < PROMPT.length && PROMPT.startsWith(s)) {
          this.#pending = s;
          return;
        }
      }
      const nl = s.indexOf('\r\n');
      if (nl < 0) {
        if (s) {
          this.onText(s);
          this.#atLineStart = false;
        }
        return;
      }
      const line = s.slice(0, nl);
      const whole = this.#atLineStart;
      s = s.slice(nl + 2);
      this.#atLineStart = true;
      if (whole) this.onLine(line);
      else {
        this.onText(line);
        this.onLine('');
      }
    }
  }
}

export async function consoleMain(argv: string[], io: ConsoleIo = processIo()): Promise<number> {
  const lines = { out: (l: string) => void io.stdout.write(l + '\n'), err: (l: string) => void io.stderr.write(l + '\n') };
  return run('console', HELP, lines, async () => {
    const r = parse(argv, { baud: { type: 'string' }, json: { type: 'boolean' } }, true);
    if (r.values.help) {
      lines.out(HELP);
      return 0;
    }
    const [path, ...extra] = r.positionals;
    if (!path || extra.length) throw new UsageError(`expected one serial path`);
    const baud = r.values.baud === undefined ? 115200 : Number(r.values.baud);
    if (!Number.isInteger(baud) || baud < 300 || baud > 4_000_000) throw new UsageError('--baud must be a line speed such as 115200');
    const json = !!r.values.json;
    const line = new Line(path, baud, json);
    const open = async () => {
      try {
        await line.open();
      } catch (e) {
        throw new Error(`cannot open ${path}: ${(e as Error).message}; check the cable and the path (ls /dev/ttyUSB* /dev/ttyACM*)`);
      }
    };
    if (json || !io.stdin.isTTY) return script(line, open, io, json);
    return interactive(line, open, io, path);
  });
}

// ------------------------------------------------------------------ scripts

async function script(line: Line, open: () => Promise<void>, io: ConsoleIo, json: boolean): Promise<number> {
  let failed = false;
  /** While syncing with the meter, its output is not the script's. */
  let quiet = true;
  let waiting: ((ok: boolean) => void) | undefined;
  const finish = (ok: boolean) => {
    const w = waiting;
    waiting = undefined;
    w?.(ok);
  };
  let lastLine = '';
  let buffer = '';
  const text = new TextReplies(
    (t) => {
      if (!quiet) io.stdout.write(t);
    },
    (l) => {
      if (!quiet) io.stdout.write(l + '\n');
      lastLine = l;
    },
    () => {
      // While syncing, only the prompt after `json off`'s OK counts (Ctrl-C's prompt may come first).
      if (quiet && lastLine !== 'OK') return;
      finish(lastLine === 'OK');
      lastLine = '';
    },
  );
  line.onData = (chunk) => {
    if (!json) {
      text.push(chunk);
      return;
    }
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      // A prompt may stand before the first JSON line (the meter was in text mode until `json on`).
      const l = buffer.slice(0, nl).replace(/\r$/, '').split(PROMPT).join('');
      buffer = buffer.slice(nl + 1);
      let o: unknown;
      try {
        o = JSON.parse(l);
      } catch {
        continue; // the echo of Ctrl-C from before json mode: not for the script
      }
      if (!o || typeof o !== 'object') continue;
      if (!quiet) io.stdout.write(l + '\n');
      if ('ok' in o) finish((o as { ok: unknown }).ok === true);
    }
  };
  line.onLost = (why) => {
    io.stderr.write(`gridlet console: the serial line closed (${why})\n`);
    finish(false);
  };
  const send = (cmd: string) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        io.stderr.write(`gridlet console: no final line for "${cmd}" within ${SCRIPT_COMMAND_TIMEOUT_MS / 1000} s\n`);
        finish(false);
      }, SCRIPT_COMMAND_TIMEOUT_MS);
      waiting = (ok) => {
        clearTimeout(timer);
        resolve(ok);
      };
      if (!line.write(cmd + '\n')) finish(false);
    });
  // Sync: the reply to the hello the line sends on opening (`json on` or `json off`).
  const synced = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => finish(false), 5000);
    waiting = (ok) => {
      clearTimeout(timer);
      resolve(ok);
    };
  });
  await open();
  if (!(await synced)) throw new Error(`the meter did not answer \`${line.hello.slice(1).trim()}\`; is this a gridlet console?`);
  quiet = false;
  const rl = readline.createInterface({ input: io.stdin, terminal: false });
  for await (const raw of rl) {
    const cmd = raw.trim();
    if (!cmd || cmd.startsWith('#')) continue;
    if (cmd === 'exit' || cmd === 'quit') break;
    if (!line.isOpen) {
      failed = true;
      break;
    }
    if (!(await send(cmd))) failed = true;
  }
  await line.close();
  return failed ? 1 : 0;
}

// ------------------------------------------------------------------ a technician at a terminal

function loadHistory(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((l) => l).slice(-HISTORY_KEPT).reverse();
  } catch {
    return [];
  }
}

/**
 * Whether a command line may go into the history (file and up-arrow): not one that carries a secret,
 * the technician's PIN or a meter key.
 */
export function keptInHistory(cmd: string): boolean {
  return !/^auth\s/i.test(cmd) && !/^config\s+set\s+meter\.(key|auth_key)\s/i.test(cmd);
}

function saveHistory(file: string, entry: string): void {
  try {
    appendFileSync(file, entry + '\n', { mode: 0o600 });
    const all = readFileSync(file, 'utf8').split('\n').filter((l) => l);
    if (all.length > HISTORY_KEPT * 2) writeFileSync(file, all.slice(-HISTORY_KEPT).join('\n') + '\n');
  } catch {
    // No history is no reason to stop.
  }
}

async function interactive(line: Line, open: () => Promise<void>, io: ConsoleIo, path: string): Promise<number> {
  const colour = !!io.stdout.isTTY && !io.env.NO_COLOR;
  const green = (s: string) => (colour ? `\x1b[32m${s}\x1b[0m` : s);
  const red = (s: string) => (colour ? `\x1b[31m${s}\x1b[0m` : s);
  const dim = (s: string) => (colour ? `\x1b[2m${s}\x1b[0m` : s);
  const historyFile = join(io.env.HOME ?? homedir(), HISTORY_FILE);
  const rl = readline.createInterface({
    input: io.stdin, output: io.stdout, terminal: true, completer, history: loadHistory(historyFile), historySize: HISTORY_KEPT,
    removeHistoryDuplicates: true, prompt: PROMPT,
  });
  let busy = true; // until the meter's first prompt
  /** Until the prompt after the OK of the hello's `json off`, the meter's output is not shown. */
  let syncing = true;
  let lastLine = '';
  const out = (s: string) => {
    if (io.stdout.isTTY) {
      readline.clearLine(io.stdout, 0);
      readline.cursorTo(io.stdout, 0);
    }
    io.stdout.write(s);
  };
  // The meter already strips control characters from text that comes from elsewhere; a client that
  // does it too cannot be driven by a meter that does not.
  const text = new TextReplies(
    (t) => io.stdout.write(stripControl(t, true)),
    (l) => {
      lastLine = l;
      if (syncing || l === '^C') return;
      const clean = stripControl(l);
      if (clean === 'OK') out(green(clean) + '\n');
      else if (clean.startsWith('ERR ')) out(red(clean) + '\n');
      else out(clean + '\n');
    },
    () => {
      if (syncing && lastLine !== 'OK') return;
      syncing = false;
      busy = false;
      rl.prompt(true);
    },
  );
  line.onData = (chunk) => text.push(chunk);
  line.onOpen = (again) => {
    syncing = true;
    if (again) out(dim(`reconnected to ${path}`) + '\n');
  };
  line.onLost = () => {
    busy = true;
    out(dim(`${path} went away; waiting for it to come back (Ctrl-D leaves)…`) + '\n');
  };
  await open();
  out(dim(`connected to ${path}; \`help\` lists the commands, Ctrl-D leaves`) + '\n');
  return new Promise<number>((resolve) => {
    rl.on('line', (input) => {
      const cmd = input.trim();
      if (cmd === 'exit' || cmd === 'quit') {
        rl.close();
        return;
      }
      if (cmd && keptInHistory(cmd)) saveHistory(historyFile, cmd);
      else if (cmd) (rl as unknown as { history: string[] }).history.shift(); // nor on the up-arrow
      if (!line.write(input + '\n')) {
        out(dim('not connected; the command was not sent') + '\n');
        rl.prompt();
        return;
      }
      busy = true;
    });
    rl.on('SIGINT', () => {
      if (busy) line.write('\x03'); // stops a streaming answer
      else {
        rl.write('', { ctrl: true, name: 'u' });
        io.stdout.write('\n');
        rl.prompt();
      }
    });
    rl.on('close', () => {
      io.stdout.write('\n');
      void line.close().then(() => resolve(0));
    });
  });
}
