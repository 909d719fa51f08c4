// `gridlet gateway` as a child process, as the integration tests run it: started with the arguments
// given (from the checkout's root), ready once it prints its ready line (its URLs and id), stopped with
// SIGTERM as a service manager would (SIGKILL if it has not exited 10 s later).

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

export interface GatewayChild {
  child: ChildProcess;
  mqtt: string;
  http: string;
  id: string;
  /** The mesh listen address, when the gateway was given one. */
  mesh?: string;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
}

/** Starts `node bin/gridlet.js gateway …args`; rejects if it exits or prints no ready line within 60 s. */
export function startGatewayChild(args: string[]): Promise<GatewayChild> {
  const child = spawn(process.execPath, ['bin/gridlet.js', 'gateway', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let all = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway printed no ready line within 60 s:\n${all}`));
    }, 60_000);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      all += chunk;
      const m = /^gateway ready mqtt=(\S+) http=(\S+) id=(\S+)(?: mesh=(\S+))?/m.exec(all);
      if (m) {
        clearTimeout(timer);
        resolve({ child, mqtt: m[1]!, http: m[2]!, id: m[3]!, mesh: m[4], output: () => all });
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { all += chunk; });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code ?? signal}) before its ready line:\n${all}`));
    });
  });
}

/** Stops a child process with `signal` (SIGKILL if it has not exited 10 s later); at once if it already has. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
