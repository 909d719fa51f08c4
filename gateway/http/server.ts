// The operator HTTP API (ARCHITECTURE.md "Operator interface") on node:http. Every answer is JSON
// (`{"error": "..."}` on failure) except /metrics and the page at /; never a stack trace.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { allowedHosts, bearerMatches, isJson, type ListenAddress } from './security.js';

export const MAX_BODY_BYTES = 64 * 1024;

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface Request {
  method: string;
  path: string;
  query: URLSearchParams;
  params: string[];
  /** Parsed JSON body of a state-changing request. */
  body: unknown;
  headers: IncomingHttpHeaders;
}

export type Reply =
  | { status: number; json: unknown }
  /** `text` is sent as is: a string as UTF-8, bytes (application/wasm, application/cbor) unchanged. */
  | { status: number; text: string | Uint8Array; contentType: string; headers?: { [k: string]: string } }
  /** A long-lived answer (Server-Sent Events): the route writes the head and the body itself. */
  | { status: number; stream(res: ServerResponse): void };

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  pattern: RegExp;
  handle(req: Request): Promise<Reply>;
  /** Served without the bearer token: the dashboard's static files, which hold no data. */
  public?: boolean;
  /**
   * Called by another server (an OpenADR VTN's notifications): served under any Host name and without the
   * API token; the route checks the caller's own credentials.
   */
  webhook?: boolean;
  /** Largest request body, bytes (default MAX_BODY_BYTES). */
  maxBody?: number;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

export interface HttpOptions {
  listen: ListenAddress;
  apiToken?: string;
  routes: Route[];
  log: Logger;
}

export class HttpServer {
  readonly url: string;
  readonly #server: Server;

  private constructor(server: Server, url: string) {
    this.#server = server;
    this.url = url;
  }

  static async start(o: HttpOptions): Promise<HttpServer> {
    let hosts = new Set<string>();
    const server = createServer((req, res) => {
      handle(req, res, o, hosts).catch((e: Error) => {
        o.log.error({ err: e.message, stack: e.stack }, 'HTTP handler failed');
        if (!res.headersSent) send(res, 500, { error: 'internal error; see the gateway log' });
        else res.destroy();
      });
    });
    server.headersTimeout = 20_000;
    server.requestTimeout = 60_000;
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.listen.port, o.listen.host, () => {
        server.removeListener('error', reject);
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : o.listen.port);
      });
    });
    hosts = allowedHosts(o.listen.host, port);
    const h = o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host;
    return new HttpServer(server, `http://${h}:${port}`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

function send(res: ServerResponse, status: number, json: unknown, headers: { [k: string]: string } = {}): void {
  const body = JSON.stringify(json) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(body);
}

async function handle(req: IncomingMessage, res: ServerResponse, o: HttpOptions, hosts: Set<string>): Promise<void> {
  const method = req.method ?? 'GET';
  const host = (req.headers.host ?? '').toLowerCase();
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://gateway');
  } catch {
    return refuse(req, res, 400, 'malformed request URL');
  }
  const path = url.pathname;
  // A webhook is called by another server, at whatever name it was given, and checks its own credentials.
  const webhook = o.routes.some((r) => r.webhook && r.method === method && r.pattern.test(path));
  if (!hosts.has(host) && !webhook) {
    return refuse(req, res, 421, `Host "${host.slice(0, 100)}" is not this gateway's address; use ${[...hosts][0]}`);
  }
  const isPublic = (method === 'GET' || method === 'HEAD') && (path === '/api/health' || o.routes.some((r) => r.public && r.pattern.test(path)));
  if (o.apiToken && !isPublic && !webhook && !bearerMatches(req.headers.authorization, o.apiToken)) {
    return refuse(req, res, 401, 'this gateway requires "Authorization: Bearer <token>" (its --api-token-file or GRIDLET_API_TOKEN)', { 'www-authenticate': 'Bearer' });
  }
  let params: string[] | undefined;
  let route: Route | undefined;
  let pathMatched = false;
  for (const r of o.routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (r.method === method || (method === 'HEAD' && r.method === 'GET')) {
      route = r;
      try {
        params = m.slice(1).map((p) => decodeURIComponent(p));
      } catch {
        return refuse(req, res, 400, `malformed percent-encoding in ${path.slice(0, 200)}`);
      }
      break;
    }
  }
  if (!route) {
    const allowed = o.routes.filter((r) => r.pattern.test(path)).map((r) => r.method);
    if (pathMatched) return refuse(req, res, 405, `${method} is not supported on ${path}; use ${[...new Set(allowed)].join(' or ')}`, { allow: allowed.join(', ') });
    return refuse(req, res, 404, `no such resource: ${method} ${path.slice(0, 200)}`);
  }
  let body: unknown;
  if (STATE_CHANGING.has(method)) {
    if (!isJson(req.headers['content-type'])) {
      return refuse(req, res, 415, `${method} requests must have Content-Type: application/json`);
    }
    const limit = route.maxBody ?? MAX_BODY_BYTES;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) return refuse(req, res, 413, `request body over ${limit} bytes`);
    const raw = await readBody(req, limit);
    if (raw === undefined) return refuse(req, res, 413, `request body over ${limit} bytes`);
    if (raw.length === 0 && method === 'DELETE') body = undefined;
    else {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch (e) {
        return send(res, 400, { error: `request body is not valid JSON: ${(e as Error).message}` });
      }
    }
  }
  let reply: Reply;
  try {
    reply = await route.handle({ method, path, query: url.searchParams, params: params!, body, headers: req.headers });
  } catch (e) {
    if (e instanceof HttpError) return send(res, e.status, { error: e.message });
    throw e;
  }
  if ('json' in reply) return send(res, reply.status, reply.json);
  if ('stream' in reply) return reply.stream(res);
  res.writeHead(reply.status, { 'content-type': reply.contentType, 'cache-control': 'no-store', ...reply.headers });
  res.end(method === 'HEAD' ? undefined : reply.text);
}

/** Answers an error without reading the body; the connection is closed if a body is still coming. */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, error: string, headers: { [k: string]: string } = {}): void {
  const pendingBody = !req.complete && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined);
  send(res, status, { error }, pendingBody ? { ...headers, connection: 'close' } : headers);
  if (pendingBody) req.resume();
}

/** Reads at most `limit` bytes; undefined when the body is larger. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      n += c.length;
      if (n > limit) {
        over = true;
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}
