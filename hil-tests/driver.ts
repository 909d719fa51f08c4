// The hardware-in-the-loop driver: talks to a meter only through its serial console (CONSOLE.md), as a
// technician's script would — open the port at 115200 8N1, switch the session to `json on`, send one
// line, read JSON lines until the final one. Nothing here knows about the agent's insides.

import { SerialPort } from 'serialport';

export interface Reply {
  ok: boolean;
  code?: string;
  message?: string;
  /** `{"data": …}` lines, in order. */
  data: unknown[];
  /** `{"chunk": …}` lines (a streamed answer), in order. */
  chunks: string[];
  /** `{"confirm": …}`, if the command asked for one. */
  confirm?: string;
}

const PROMPT = 'gridlet> ';

export class ConsoleDriver {
  #port: SerialPort;
  #buffer = '';
  #current: { reply: Reply; resolve: (r: Reply) => void } | undefined;
  /** Every line received, for a failure's message. */
  transcript: string[] = [];

  private constructor(port: SerialPort) {
    this.#port = port;
    port.on('data', (b: Buffer) => this.#onData(b.toString('utf8')));
  }

  /** Opens the console and switches it to json mode (Ctrl-C first clears a half-typed line). */
  static async open(path: string, baudRate = 115200): Promise<ConsoleDriver> {
    const port = new SerialPort({ path, baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(new Error(`cannot open ${path}: ${e.message}`)) : resolve())));
    await new Promise<void>((resolve) => port.flush(() => resolve()));
    const d = new ConsoleDriver(port);
    port.write('\x03');
    const r = await d.cmd('json on');
    if (!r.ok) throw new Error(`the console at ${path} did not switch to json mode: ${JSON.stringify(r)}`);
    return d;
  }

  #onData(text: string): void {
    this.#buffer += text;
    for (let nl = this.#buffer.indexOf('\n'); nl >= 0; nl = this.#buffer.indexOf('\n')) {
      // Before `json on` took effect the meter may have written a prompt or Ctrl-C's echo.
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '').split(PROMPT).join('');
      this.#buffer = this.#buffer.slice(nl + 1);
      this.transcript.push(line);
      if (this.transcript.length > 200) this.transcript.shift();
      let o: { [k: string]: unknown };
      try {
        o = JSON.parse(line);
      } catch {
        continue;
      }
      const c = this.#current;
      if (!c || !o || typeof o !== 'object') continue;
      if ('data' in o) c.reply.data.push(o.data);
      else if ('chunk' in o) c.reply.chunks.push(String(o.chunk));
      else if ('confirm' in o) c.reply.confirm = String(o.confirm);
      else if ('ok' in o) {
        c.reply.ok = o.ok === true;
        if (typeof o.code === 'string') c.reply.code = o.code;
        if (typeof o.message === 'string') c.reply.message = o.message;
        this.#current = undefined;
        c.resolve(c.reply);
      }
    }
  }

  /** Sends one command line and resolves with its reply once the final line has arrived. */
  cmd(line: string, timeoutMs = 15_000): Promise<Reply> {
    if (this.#current) return Promise.reject(new Error(`"${line}" sent while a command is still running`));
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#current = undefined;
        reject(new Error(`no final line for "${line}" within ${timeoutMs} ms; last lines: ${this.transcript.slice(-5).join(' | ')}`));
      }, timeoutMs);
      this.#current = {
        reply: { ok: false, data: [], chunks: [] },
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      this.#port.write(line + '\r\n');
    });
  }

  /** The first data object of a command that must succeed. */
  async data<T>(line: string): Promise<T> {
    const r = await this.cmd(line);
    if (!r.ok) throw new Error(`"${line}" failed: ERR ${r.code} ${r.message}`);
    return r.data[0] as T;
  }

  async close(): Promise<void> {
    if (!this.#port.isOpen) return;
    await new Promise<void>((resolve) => this.#port.close(() => resolve()));
  }
}

/** Polls `probe` until it returns a value `done` accepts, or fails after `ms`. */
export async function eventually<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, ms = 30_000, every = 250): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s; last seen ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
