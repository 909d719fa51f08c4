// ARCHITECTURE.md "Exposure": loopback binds need no token, any other bind requires --api-token
// (bearer); every request must name the gateway's own address in Host (no DNS rebinding) and every
// state-changing one must be application/json (no CSRF from a web page in the operator's browser).

import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { constantTimeEqual, utf8Encode } from '../../firmware/core/bytes.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `HOST:PORT` (`[v6]:PORT` for IPv6). Port 0 picks a free port. */
export function parseListen(text: string, flag: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${flag} "${text}" must be HOST:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free port)`);
  return { host: m[1] ?? m[2], port };
}

export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function hostPort(host: string, port: number): string {
  return (isIP(host) === 6 ? `[${host}]` : host).toLowerCase() + `:${port}`;
}

/** The Host header values that name this gateway once it is bound to `port`. */
export function allowedHosts(host: string, port: number): Set<string> {
  const names = new Set<string>([host]);
  if (isLoopback(host) || isWildcard(host)) {
    names.add('localhost');
    names.add('127.0.0.1');
    names.add('::1');
  }
  if (isWildcard(host)) {
    names.add(hostname());
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(a.address.replace(/%.*$/, ''));
  }
  const out = new Set<string>();
  for (const n of names) {
    out.add(hostPort(n, port));
    if (port === 80) out.add((isIP(n) === 6 ? `[${n}]` : n).toLowerCase());
  }
  return out;
}

export function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  return !!m && constantTimeEqual(utf8Encode(m[1]), utf8Encode(token));
}

export function isJson(contentType: string | undefined): boolean {
  return !!contentType && contentType.split(';')[0].trim().toLowerCase() === 'application/json';
}
