// A VTN for tests, built from the OpenADR 3 OpenAPI documents (gateway/openadr/schema/, 3.0.1 or 3.1.0):
// its routes are the documents' paths and operations, every request body is checked against the
// operation's request schema (a bad one is refused with 400 and kept in `badRequests`) and every answer
// against the response schema (a VTN bug is kept in `badResponses`). It keeps programs, events, VENs,
// resources, reports and subscriptions in memory, issues OAuth2 client-credentials tokens that expire,
// calls subscribers' webhooks when the business logic (the test) changes events, and can be taken down,
// slowed or made to answer garbage.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { OpenAdrSpec, problemText, type Operation, type OpenAdrSpecVersion } from '../../gateway/openadr/schema.js';

type Obj = { [k: string]: unknown };

/** What the next requests (other than for a token) get instead of a proper answer. */
export type Fault = 'drop' | '500' | '503' | 'not-json' | 'schema' | 'slow';

const COLLECTIONS = ['programs', 'events', 'reports', 'subscriptions', 'vens', 'resources'] as const;
type Collection = (typeof COLLECTIONS)[number];
const OBJECT_TYPE: { [c in Collection]: string } = {
  programs: 'PROGRAM', events: 'EVENT', reports: 'REPORT', subscriptions: 'SUBSCRIPTION', vens: 'VEN', resources: 'RESOURCE',
};

export interface TestVtnOptions {
  version: OpenAdrSpecVersion;
  /** client id → secret (default {ven1: 'secret1'}); `bl` is the business logic's own client. */
  clients?: { [id: string]: string };
  /** Token lifetime, default 3600 s. */
  tokenTtlS?: number;
  /** How long a 'slow' fault waits, default 5 s. */
  slowMs?: number;
}

export class TestVtn {
  readonly version: OpenAdrSpecVersion;
  readonly spec: OpenAdrSpec;
  readonly data: { [c in Collection]: Map<string, Obj> } = {
    programs: new Map(), events: new Map(), reports: new Map(), subscriptions: new Map(), vens: new Map(), resources: new Map(),
  };
  /** Every request: method, path (without the base), status. */
  readonly requests: { method: string; path: string; status: number; at: number }[] = [];
  readonly badRequests: string[] = [];
  readonly badResponses: string[] = [];
  readonly notifications: { url: string; status: number; body: Obj; at: number }[] = [];
  /** Faults the next requests get, first first. */
  faults: Fault[] = [];
  tokenTtlS: number;
  tokensIssued = 0;
  url = '';
  readonly #clients: { [id: string]: string };
  readonly #tokens = new Map<string, { client: string; expires: number }>();
  readonly #ops: Operation[];
  readonly #slowMs: number;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port = 0;
  #next = 1;
  readonly #base: string;

  private constructor(o: TestVtnOptions) {
    this.version = o.version;
    this.spec = OpenAdrSpec.load(o.version);
    this.#ops = this.spec.operations();
    this.#clients = { ...(o.clients ?? { ven1: 'secret1' }) };
    this.tokenTtlS = o.tokenTtlS ?? 3600;
    this.#slowMs = o.slowMs ?? 5000;
    this.#base = `/openadr3/${o.version}`;
  }

  static async start(o: TestVtnOptions): Promise<TestVtn> {
    const v = new TestVtn(o);
    await v.resume();
    return v;
  }

  /** Listens again (on the same port after stop()). */
  async resume(): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
    this.url = `http://127.0.0.1:${this.#port}${this.#base}`;
  }

  /** Stops listening and drops every connection: the VTN is down (connections are refused). */
  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    for (const sock of this.#sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  close(): Promise<void> {
    return this.stop();
  }

  // ---------------------------------------------------------------- business logic (the test)

  #stamp(c: Collection, body: Obj, client?: string): Obj {
    const now = new Date().toISOString();
    const id = String(this.#next++);
    const o: Obj = { ...body, id, createdDateTime: now, modificationDateTime: now, objectType: OBJECT_TYPE[c] };
    if (this.version === '3.1.0' && ['vens', 'resources', 'reports', 'subscriptions'].includes(c)) o.clientID = body.clientID ?? client ?? 'bl';
    return o;
  }

  #checkRequest(schema: string, body: Obj): void {
    const p = this.spec.validate(schema, body);
    if (p.length) throw new Error(`the test's ${schema} is not valid OpenADR ${this.version}: ${problemText(p)}`);
  }

  addProgram(body: Obj): Obj {
    this.#checkRequest(this.version === '3.1.0' ? 'programRequest' : 'program', body);
    const o = this.#stamp('programs', body);
    this.data.programs.set(o.id as string, o);
    return o;
  }

  async addEvent(body: Obj): Promise<Obj> {
    this.#checkRequest(this.version === '3.1.0' ? 'eventRequest' : 'event', body);
    const o = this.#stamp('events', body);
    this.data.events.set(o.id as string, o);
    await this.#notify('EVENT', 'CREATE', o);
    return o;
  }

  async updateEvent(id: string, body: Obj): Promise<Obj> {
    const old = this.data.events.get(id);
    if (!old) throw new Error(`no event ${id}`);
    this.#checkRequest(this.version === '3.1.0' ? 'eventRequest' : 'event', body);
    const o: Obj = { ...body, id, createdDateTime: old.createdDateTime, modificationDateTime: new Date().toISOString(), objectType: 'EVENT' };
    this.data.events.set(id, o);
    await this.#notify('EVENT', 'UPDATE', o);
    return o;
  }

  async deleteEvent(id: string): Promise<void> {
    const o = this.data.events.get(id);
    if (!o) throw new Error(`no event ${id}`);
    this.data.events.delete(id);
    await this.#notify('EVENT', 'DELETE', o);
  }

  /** Grants targets to a VEN or resource object (only business logic may). */
  grant(c: 'vens' | 'resources', id: string, targets: unknown[]): void {
    const o = this.data[c].get(id);
    if (!o) throw new Error(`no ${c} ${id}`);
    o.targets = targets;
  }

  /** Adds or changes a client's secret. */
  setClient(id: string, secret: string): void {
    this.#clients[id] = secret;
  }

  count(method: string, pathPrefix: string): number {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(pathPrefix)).length;
  }

  async #notify(objectType: string, op: 'CREATE' | 'UPDATE' | 'DELETE', object: Obj): Promise<void> {
    const operation = this.version === '3.1.0' ? op : { CREATE: 'POST', UPDATE: 'PUT', DELETE: 'DELETE' }[op];
    for (const sub of this.data.subscriptions.values()) {
      if (sub.programID && sub.programID !== object.programID) continue;
      for (const oo of sub.objectOperations as { objects: string[]; operations: string[]; callbackUrl: string; bearerToken?: string }[]) {
        if (!oo.objects.includes(objectType) || !oo.operations.includes(op)) continue;
        const body = { objectType, operation, object };
        const problems = this.spec.validate('notification', body);
        if (problems.length) this.badResponses.push(`notification: ${problemText(problems)}`);
        let status = 0;
        try {
          const r = await fetch(oo.callbackUrl, {
            method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(5000),
            headers: { 'content-type': 'application/json', ...(oo.bearerToken ? { authorization: `Bearer ${oo.bearerToken}` } : {}) },
          });
          status = r.status;
          await r.body?.cancel();
        } catch {
          status = 0;
        }
        this.notifications.push({ url: oo.callbackUrl, status, body, at: Date.now() });
      }
    }
  }

  // ---------------------------------------------------------------- HTTP

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://vtn');
    const method = req.method ?? 'GET';
    const path = url.pathname.startsWith(this.#base) ? url.pathname.slice(this.#base.length) : url.pathname;
    const send = (status: number, body: unknown, contentType = 'application/json') => {
      this.requests.push({ method, path, status, at: Date.now() });
      res.writeHead(status, { 'content-type': contentType });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const problem = (status: number, detail: string) => send(status, { title: detail, status, detail });
    const op = this.#ops.find((o) => o.method === method && o.pattern.test(path));
    if (!op) return problem(404, `no operation ${method} ${path}`);
    const params = Object.fromEntries(op.params.map((p, i) => [p, decodeURIComponent(op.pattern.exec(path)![i + 1])]));

    if (op.operationId === 'fetchToken') return this.#token(req, raw, op, send);
    if (op.operationId === 'getAuthServerInfo') return send(200, { tokenURL: `${this.url}/auth/token` });

    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const token = auth ? this.#tokens.get(auth[1]) : undefined;
    if (!token || token.expires < Date.now()) return problem(401, token ? 'the token expired' : 'a bearer token is required');

    const fault = this.faults.shift();
    if (fault === 'drop') {
      this.requests.push({ method, path, status: 0, at: Date.now() });
      return void req.socket.destroy();
    }
    if (fault === '500' || fault === '503') return problem(Number(fault), 'the VTN failed');
    if (fault === 'not-json') return send(200, '<html><body>Bad gateway</body></html>', 'text/html');
    if (fault === 'schema') return send(200, method === 'GET' && !op.params.length ? [{ programID: 7, intervals: 'none', id: 'x y' }] : { id: 7 });
    if (fault === 'slow') await new Promise((r) => setTimeout(r, this.#slowMs));

    let body: Obj | undefined;
    if (method === 'POST' || method === 'PUT') {
      try {
        body = JSON.parse(raw) as Obj;
      } catch {
        this.badRequests.push(`${method} ${path}: the body is not JSON`);
        return problem(400, 'the body is not JSON');
      }
      const schema = this.spec.requestSchema(op);
      const problems = schema ? this.spec.check(schema, body) : [];
      if (problems.length) {
        this.badRequests.push(`${method} ${path}: ${problemText(problems)}`);
        return problem(400, problemText(problems));
      }
    }
    const [status, answer] = this.#operate(op, params, url.searchParams, body, token.client);
    const schema = this.spec.responseSchema(op, status);
    if (schema) {
      const problems = this.spec.check(schema, answer);
      if (problems.length) this.badResponses.push(`${method} ${path} ${status}: ${problemText(problems)}`);
    }
    send(status, answer);
  }

  #token(req: IncomingMessage, raw: string, op: Operation, send: (s: number, b: unknown) => void): void {
    this.tokensIssued++;
    const form = Object.fromEntries(new URLSearchParams(raw));
    // RFC 6749 2.3.1: a client authenticated with HTTP Basic need not repeat its credentials in the body.
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, secret] = Buffer.from(basic[1], 'base64').toString('utf8').split(':').map(decodeURIComponent);
      form.client_id ??= id;
      form.client_secret ??= secret;
    }
    const schema = this.spec.requestSchema(op, 'application/x-www-form-urlencoded');
    const problems = schema ? this.spec.check(schema, form) : [];
    if (problems.length) {
      this.badRequests.push(`POST /auth/token: ${problemText(problems)}`);
      return send(400, { error: 'invalid_request', error_description: problemText(problems) });
    }
    if (this.#clients[form.client_id] !== form.client_secret) return send(401, { error: 'invalid_client', error_description: 'unknown client or wrong secret' });
    const token = randomBytes(16).toString('hex');
    this.#tokens.set(token, { client: form.client_id, expires: Date.now() + this.tokenTtlS * 1000 });
    send(200, { access_token: token, token_type: 'Bearer', expires_in: this.tokenTtlS });
  }

  #operate(op: Operation, params: { [k: string]: string }, q: URLSearchParams, body: Obj | undefined, client: string): [number, unknown] {
    const segs = op.path.split('/').filter(Boolean);
    const c = (segs[0] === 'vens' && segs[2] === 'resources' ? 'resources' : segs[0]) as Collection;
    if (c === ('notifiers' as Collection)) return op.path === '/notifiers' ? [200, { WEBHOOK: true }] : [501, { title: 'MQTT notifications are not offered', status: 501 }];
    const store = this.data[c];
    const idParam = op.params.find((p) => p !== 'venID' || c === 'vens');
    const id = idParam ? params[idParam] : undefined;
    const notFound: [number, unknown] = [404, { title: `no ${c.slice(0, -1)} ${id}`, status: 404 }];
    if (!id) {
      if (op.method === 'GET') {
        const filters: [string, string | null][] = [
          ['programID', q.get('programID')], ['eventID', q.get('eventID')], ['clientName', q.get('clientName')],
          ['venName', q.get('venName')], ['resourceName', q.get('resourceName')], ['venID', params.venID ?? q.get('venID')],
        ];
        const all = [...store.values()].filter((o) => filters.every(([k, v]) => v === null || !(k in o) || o[k] === v));
        const skip = Number(q.get('skip') ?? 0);
        const limit = Math.min(50, Number(q.get('limit') ?? 50));
        return [200, all.slice(skip, skip + limit)];
      }
      // POST: create.
      const o = this.#stamp(c, { ...body }, client);
      if (c === 'vens' || c === 'resources') o.objectType = OBJECT_TYPE[c];
      if (params.venID) o.venID = params.venID;
      if (c === 'vens' && [...store.values()].some((x) => x.venName === o.venName)) return [409, { title: `a VEN named ${String(o.venName)} exists`, status: 409 }];
      store.set(o.id as string, o);
      return [201, o];
    }
    const old = store.get(id);
    if (!old || (c === 'resources' && params.venID && old.venID !== params.venID)) return notFound;
    if (op.method === 'GET') return [200, old];
    if (op.method === 'DELETE') {
      store.delete(id);
      return [200, old];
    }
    const o: Obj = { ...old, ...body, id, createdDateTime: old.createdDateTime, modificationDateTime: new Date().toISOString(), objectType: old.objectType };
    store.set(id, o);
    return [200, o];
  }
}
