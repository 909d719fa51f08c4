// A pseudo-terminal for the host agent's technician console, so that any program that opens a serial
// port (`gridlet console`, the serialport package, screen, picocom, pyserial) can talk to the agent
// at /dev/pts/N as it would to a meter at /dev/ttyUSB0.
//
// How: node-pty's native `open` (openpty(3)) gives the master and slave descriptors. The agent reads
// and writes the master. This process also keeps the slave open without reading it, so that the
// master never sees a hang-up (EIO) while no client is connected and clients may come and go; and it
// puts the slave in raw mode (no echo, no line editing, no signals, no CR/NL translation on input)
// before any client opens it, so a client that sets no termios of its own still sees only the
// console's bytes. The speed a client sets (115200) is accepted and means nothing on a pty.
//
// Output that no client reads stays queued in the kernel until a client reads it or flushes
// (`tcflush`, which serialport's `flush()` and `gridlet console` do on opening).

import { write as fsWrite } from 'node:fs';
import { createRequire } from 'node:module';
import tty from 'node:tty';

interface NativePty {
  open(cols: number, rows: number): { master: number; slave: number; pty: string };
}

/** Bytes queued for a client that is not reading, beyond which output is dropped (a UART would lose it too). */
const MAX_QUEUED_BYTES = 1 << 20;
const RETRY_MS = 10;

export class Pty {
  /** The slave device a client opens, e.g. /dev/pts/3. */
  readonly path: string;
  #master: number;
  #reader: tty.ReadStream;
  #holder: tty.ReadStream;
  #onData: ((bytes: Uint8Array) => void) | undefined;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #closed = false;
  /** Bytes dropped because no client read them. */
  dropped = 0;

  constructor(native: NativePty) {
    const t = native.open(80, 24);
    this.path = t.pty;
    this.#master = t.master;
    this.#holder = new tty.ReadStream(t.slave);
    this.#holder.setRawMode(true);
    this.#holder.unref();
    this.#reader = new tty.ReadStream(t.master);
    this.#reader.on('data', (chunk: Buffer) => {
      this.#onData?.(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    });
    // EIO cannot happen while the slave is held open; any other error ends the console, not the agent.
    this.#reader.on('error', () => this.close());
  }

  /** Where bytes from the client go; a later call replaces the earlier receiver. */
  onData(callback: (bytes: Uint8Array) => void): void {
    this.#onData = callback;
  }

  /** Queues bytes for the client, in order. */
  write(bytes: Uint8Array): void {
    if (this.#closed || bytes.length === 0) return;
    if (this.#queued + bytes.length > MAX_QUEUED_BYTES) {
      this.dropped += bytes.length;
      return;
    }
    this.#queue.push(bytes.slice());
    this.#queued += bytes.length;
    if (!this.#writing) this.#flush();
  }

  #flush(): void {
    const next = this.#queue[0];
    if (!next || this.#closed) {
      this.#writing = false;
      return;
    }
    this.#writing = true;
    fsWrite(this.#master, next, 0, next.length, null, (err, written) => {
      if (this.#closed) return;
      if (err) {
        // The master is non-blocking: EAGAIN means the kernel's buffer is full; try again shortly.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') setTimeout(() => this.#flush(), RETRY_MS).unref();
        else this.close();
        return;
      }
      if (written < next.length) this.#queue[0] = next.subarray(written);
      else this.#queue.shift();
      this.#queued -= written;
      this.#flush();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#onData = undefined;
    // Each stream closes its descriptor (master and slave) when its handle closes.
    this.#reader.destroy();
    this.#holder.destroy();
  }
}

/** Opens a new pseudo-terminal (Linux and macOS). */
export function openPty(): Pty {
  if (process.platform === 'win32') throw new Error('--console-pty needs a Unix pseudo-terminal; on Windows use a real serial port');
  let native: NativePty | null;
  try {
    native = (createRequire(import.meta.url)('node-pty') as { native: NativePty | null }).native;
  } catch (e) {
    throw new Error(`cannot load node-pty for --console-pty (${(e as Error).message.split('\n')[0]}); run npm install`);
  }
  if (!native) throw new Error('node-pty has no native pty on this platform');
  return new Pty(native);
}
