// Shared by the firmware suite (npm run test:firmware): the lin image that the runner built, a real
// `gridlet gateway` as a child process, DSMR telegrams for the image's P1 port, and the technician's
// console over a pseudo-terminal.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { crc16arc } from '../../firmware/core/meter/dsmr.js';
import type { Pty } from '../../host/console/pty.js';
import { root, sdkSource } from '../../scripts/firmware/sdk.js';
import { apiCall, type ApiReply } from '../support/http.js';

export { SimImage, ensureSdk, buildImage } from '../../scripts/firmware/sdk.js';

/** The image `npm run test:firmware` built, or undefined (then the suite says PENDING). */
export function builtImage(): string | undefined {
  return process.env.GRIDLET_FIRMWARE_IMAGE;
}

/** Why the suite cannot run here, or undefined when it can. */
export function pendingReason(): string | undefined {
  if (!sdkSource()) return 'no Moddable SDK at ../shared/toolchains/moddable (or $GRIDLET_MODDABLE_SRC)';
  if (!builtImage()) return 'no image: run the suite with `npm run test:firmware`, which builds it';
  return undefined;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, f: () => Promise<T> | T, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}: ${JSON.stringify(v)?.slice(0, 500)}`);
    await sleep(100);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** `gridlet gateway` in a child process, as an operator runs it. */
export class GatewayProcess {
  child!: ChildProcess;
  httpUrl = '';
  output = '';
  constructor(readonly dataDir: string, readonly mqttPort: number) {}

  async start(): Promise<this> {
    this.output = '';
    this.child = spawn(process.execPath, [join(root, 'bin', 'gridlet.js'), 'gateway', '--data', this.dataDir,
      '--mqtt-listen', `127.0.0.1:${this.mqttPort}`, '--http-listen', '127.0.0.1:0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer) => {
        this.output += b.toString();
        const m = /gateway ready .*http=(\S+)/.exec(this.output);
        if (m && !this.httpUrl) {
          this.httpUrl = m[1];
          resolve();
        }
      };
      this.child.stdout!.on('data', onData);
      this.child.stderr!.on('data', onData);
      this.child.on('exit', (code) => reject(new Error(`gridlet gateway exited (${code}):\n${this.output}`)));
    });
    this.httpUrl = '';
    await ready;
    return this;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }

  api(method: string, path: string, body?: unknown): Promise<ApiReply> {
    return apiCall(this.httpUrl, method, path, body);
  }

  /** Every record the gateway stored for a device: [seq, t, kind, a, b], oldest first. */
  async records(deviceId: string): Promise<any[][]> {
    const out: any[][] = [];
    for (let from = 1; ;) {
      const r = await this.api('GET', `/api/devices/${deviceId}/readings?from=${from}&limit=1000`);
      if (r.status !== 200) throw new Error(`readings: ${r.status} ${r.text}`);
      const page = r.json.records as any[][];
      out.push(...page);
      if (page.length < 1000) return out;
      from = page[page.length - 1][0] + 1;
    }
  }
}

/**
 * A DSMR 5 telegram (the shape of an Iskra AM550's) at unix seconds `t`, with energy imported `wh`
 * and power imported `w`, and its CRC.
 */
export function telegram(t: number, wh: number, w: number): Uint8Array {
  const d = new Date(t * 1000 + 3600_000); // the meter's local winter time (CET)
  const p2 = (n: number) => String(n).padStart(2, '0');
  const clock = `${p2(d.getUTCFullYear() % 100)}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}W`;
  const kwh = (x: number) => (x / 1000).toFixed(3).padStart(10, '0');
  const kw = (x: number) => (x / 1000).toFixed(3).padStart(6, '0');
  const body = [
    '/ISK5\\2M550T-1011', '', '1-3:0.2.8(50)', `0-0:1.0.0(${clock})`, '0-0:96.1.1(4530303334303036383130353136343136)',
    `1-0:1.8.1(${kwh(wh)}*kWh)`, '1-0:1.8.2(002948.827*kWh)', '1-0:2.8.1(001285.951*kWh)', '1-0:2.8.2(002876.514*kWh)',
    '0-0:96.14.0(0002)', `1-0:1.7.0(${kw(w)}*kW)`, '1-0:2.7.0(00.000*kW)', '1-0:32.7.0(236.0*V)', '1-0:31.7.0(002*A)', '!',
  ].join('\r\n');
  const bytes = new TextEncoder().encode(body);
  const crc = crc16arc(bytes).toString(16).toUpperCase().padStart(4, '0');
  return new TextEncoder().encode(`${body}${crc}\r\n`);
}

/** The technician's console on the master side of a pty whose slave the image opened. */
export class ConsoleClient {
  #buf = '';
  constructor(readonly pty: Pty) {
    pty.onData((b) => (this.#buf += new TextDecoder().decode(b)));
  }

  /** Sends one command line; resolves with the reply up to the next prompt. */
  async command(line: string, ms = 10_000): Promise<string> {
    this.#buf = '';
    this.pty.write(new TextEncoder().encode(`${line}\r`));
    const end = Date.now() + ms;
    while (!this.#buf.includes('gridlet> ')) {
      if (Date.now() > end) throw new Error(`no prompt after "${line}" within ${ms / 1000} s; got ${JSON.stringify(this.#buf)}`);
      await sleep(20);
    }
    const out = this.#buf;
    this.#buf = '';
    return out;
  }
}
