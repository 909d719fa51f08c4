// The gateway's HTTP API as the client commands use it: where it is, its token, requests and their errors.

import { readFileSync, statSync } from 'node:fs';
import { UsageError, type Options, type Values } from './args.js';

export const DEFAULT_GATEWAY = 'http://127.0.0.1:8080';

export async function api(base: string, token: string | undefined, method: string, path: string, body?: unknown, timeoutMs = 10_000):
  Promise<{ status: number; json: unknown }> {
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : base + '/');
  } catch {
    throw new UsageError(`--gateway "${base}" is not a URL such as ${DEFAULT_GATEWAY}`);
  }
  const headers: { [k: string]: string } = { accept: 'application/json' };
  // The gateway takes state-changing requests only as JSON (ARCHITECTURE.md "Exposure"), DELETE included.
  if (body !== undefined || method !== 'GET') headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
    throw new Error(`cannot reach the gateway at ${base} (${cause}); is \`gridlet gateway\` running there? (--gateway URL)`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { error: `the gateway answered ${res.status} with a body that is not JSON` };
  }
  return { status: res.status, json };
}

export function errorOf(json: unknown, status: number): string {
  const e = (json as { error?: unknown } | null)?.error;
  return typeof e === 'string' ? e : `the gateway answered ${status}`;
}


/** The options every client command takes. */
export const CLIENT_OPTIONS: Options = {
  gateway: { type: 'string' }, 'api-token': { type: 'string' }, 'api-token-file': { type: 'string' }, json: { type: 'boolean' },
};

export const CLIENT_HELP = `  --gateway URL     the gateway's HTTP API (default ${DEFAULT_GATEWAY}, or set GRIDLET_GATEWAY)
  --api-token-file F  the gateway's bearer token, read from file F (or set GRIDLET_API_TOKEN);
                    --api-token T gives it on the command line, where every user of the machine sees it`;

/**
 * The API token from `--api-token-file FILE` (its first line), `--api-token TOKEN`, or GRIDLET_API_TOKEN.
 * A token on the command line is readable by every user in the process list (/proc/PID/cmdline):
 * `warn` is told so.
 */
export function apiToken(v: Values, warn?: (line: string) => void): string | undefined {
  const file = v['api-token-file'] as string | undefined;
  const inline = v['api-token'] as string | undefined;
  if (file !== undefined && inline !== undefined) throw new UsageError('give either --api-token-file FILE or --api-token TOKEN, not both');
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`--api-token-file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const token = text.split(/\r?\n/)[0].trim();
    if (!token) throw new UsageError(`--api-token-file ${file} is empty: put the token on its first line`);
    if (warn && (statSync(file).mode & 0o077) !== 0) warn(`warning: --api-token-file ${file} is readable by other users; chmod 600 it`);
    return token;
  }
  if (inline !== undefined) {
    warn?.('warning: --api-token puts the token in the process list, where every user of this machine can read it; ' +
      'use --api-token-file FILE (mode 600) or GRIDLET_API_TOKEN instead');
    return inline;
  }
  return process.env.GRIDLET_API_TOKEN || undefined;
}

/** The gateway and token a client command talks to: flags first, then GRIDLET_GATEWAY / GRIDLET_API_TOKEN. */
export function client(v: Values): { base: string; token: string | undefined } {
  return {
    base: (v.gateway as string | undefined) ?? (process.env.GRIDLET_GATEWAY || DEFAULT_GATEWAY),
    token: apiToken(v),
  };
}
