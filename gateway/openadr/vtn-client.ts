// An OpenADR 3 VTN as the VEN sees it: OAuth2 client credentials (POST {vtn}/auth/token, form body,
// client id and secret in HTTP Basic auth, RFC 6749 2.3.1), a bearer token refreshed before it expires,
// JSON requests with a timeout, pages of at most 50 objects (skip/limit), and every answer checked
// against the version's OpenAPI schema. Every failure is a VtnError of one kind, which is what the VEN
// counts (gridlet_openadr_errors_total{kind}) and shows.

import { OpenAdrSpec, problemText, type OpenAdrSpecVersion, type Problem } from './schema.js';

export const ERROR_KINDS = ['unreachable', 'timeout', 'auth', 'server', 'http', 'json', 'schema', 'event', 'report', 'internal'] as const;
/**
 * unreachable: no connection (refused, reset, DNS); timeout: no answer in time; auth: the token endpoint
 * refused the credentials, or the VTN refused the token (401, 403); server: a 5xx answer; http: another
 * unexpected status; json: an answer that is not JSON; schema: JSON that does not match the OpenAPI
 * schema; event: an event gridlet cannot act on (a level out of range, no start); report: a report the
 * VTN refused; internal: a fault in gridlet itself (logged with its stack).
 */
export type ErrorKind = (typeof ERROR_KINDS)[number];

export class VtnError extends Error {
  constructor(readonly kind: ErrorKind, message: string, readonly status?: number) {
    super(message);
    this.name = 'VtnError';
  }
}

/** The largest page a VTN must serve (the `limit` parameter's maximum in both documents). */
export const PAGE = 50;
/** At most this many pages of one list are read (10,000 objects). */
export const MAX_PAGES = 200;

export interface VtnClientOptions {
  /** The VTN's base URL (its OpenAPI server URL), without a trailing slash. */
  url: string;
  clientId: string;
  clientSecret: string;
  version: OpenAdrSpecVersion;
  /** Per request, default 10 s. */
  timeoutMs?: number;
  /** Unix ms. */
  now(): number;
}

export interface ListResult<T> {
  items: T[];
  /** Objects of the list that do not match the schema: where, and why. */
  invalid: { index: number; id?: string; problems: Problem[] }[];
}

export class VtnClient {
  readonly spec: OpenAdrSpec;
  readonly #o: VtnClientOptions;
  #token: string | undefined;
  /** Aborts what is in flight when the gateway closes. */
  #abort = new AbortController();
  /** Unix ms after which the token is fetched again. */
  #refreshAt = 0;
  /** Unix ms the current token expires (for status). */
  expiresAt: number | undefined;
  tokensFetched = 0;

  constructor(o: VtnClientOptions) {
    this.#o = { ...o, url: o.url.replace(/\/+$/, '') };
    this.spec = OpenAdrSpec.load(o.version);
  }

  get url(): string {
    return this.#o.url;
  }

  /** Ends the requests in flight (they fail as `timeout`); later requests run again. */
  abort(): void {
    this.#abort.abort();
    this.#abort = new AbortController();
  }

  /** Forgets the token (the VTN refused it): the next request fetches another. */
  dropToken(): void {
    this.#token = undefined;
  }

  async token(): Promise<string> {
    if (this.#token && this.#o.now() < this.#refreshAt) return this.#token;
    const basic = Buffer.from(`${encodeURIComponent(this.#o.clientId)}:${encodeURIComponent(this.#o.clientSecret)}`).toString('base64');
    const res = await this.#fetch('POST', '/auth/token', {
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: 'grant_type=client_credentials',
    });
    const json = await this.#json(res, 'POST /auth/token');
    if (res.status === 400 || res.status === 401 || res.status === 403) {
      const e = json as { error?: unknown; error_description?: unknown; detail?: unknown; title?: unknown };
      const why = [e?.error, e?.error_description ?? e?.detail ?? e?.title].filter((x) => typeof x === 'string').join(': ');
      throw new VtnError('auth', `the VTN's token endpoint refused client ${this.#o.clientId} (${res.status}${why ? ` ${why}` : ''}); check --openadr-client-id and the secret`, res.status);
    }
    this.#status(res, 'POST /auth/token', [200]);
    const problems = this.spec.validate('clientCredentialResponse', json);
    if (problems.length) throw new VtnError('schema', `POST /auth/token: the answer is not an OpenADR ${this.#o.version} clientCredentialResponse: ${problemText(problems)}`);
    const t = json as { access_token: string; expires_in?: number };
    const now = this.#o.now();
    const life = typeof t.expires_in === 'number' && t.expires_in > 0 ? t.expires_in * 1000 : undefined;
    this.#token = t.access_token;
    // Refreshed a tenth of its life (at most a minute) before it expires; without expires_in, when refused.
    this.#refreshAt = life === undefined ? Number.POSITIVE_INFINITY : now + life - Math.min(60_000, life / 10);
    this.expiresAt = life === undefined ? undefined : now + life;
    this.tokensFetched++;
    return t.access_token;
  }

  /**
   * One request with the bearer token. A 401 fetches a new token once and repeats the request; the
   * answer's JSON is checked against `schema` (a component schema name) when given.
   */
  async request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, o: { body?: unknown; schema?: string; ok?: number[] } = {}): Promise<unknown> {
    const what = `${method} ${path.replace(/\?.*$/, '')}`;
    for (let attempt = 0; ; attempt++) {
      const token = await this.token();
      const res = await this.#fetch(method, path, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
      });
      if ((res.status === 401) && attempt === 0) {
        await res.body?.cancel();
        this.dropToken();
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        if (res.status === 401) this.dropToken();
        throw new VtnError('auth', `${what}: the VTN refused the token (${res.status}); the client may lack the scope for it`, res.status);
      }
      this.#status(res, what, o.ok ?? [200, 201]);
      if (method === 'DELETE' && o.schema === undefined) {
        await res.body?.cancel();
        return undefined;
      }
      const json = await this.#json(res, what);
      if (o.schema) {
        const problems = this.spec.validate(o.schema, json);
        if (problems.length) throw new VtnError('schema', `${what}: the answer is not an OpenADR ${this.#o.version} ${o.schema}: ${problemText(problems)}`);
      }
      return json;
    }
  }

  /**
   * Every object of a list (GET with skip/limit, page after page), each checked against `schema`: the
   * ones that do not match are returned apart, so that one bad object does not hide the others.
   */
  async list<T>(path: string, schema: string, query: { [k: string]: string } = {}): Promise<ListResult<T>> {
    const out: ListResult<T> = { items: [], invalid: [] };
    for (let page = 0; page < MAX_PAGES; page++) {
      const q = new URLSearchParams({ ...query, skip: String(page * PAGE), limit: String(PAGE) });
      const json = await this.request('GET', `${path}?${q}`);
      if (!Array.isArray(json)) throw new VtnError('schema', `GET ${path}: the answer is not a list of ${schema} objects`);
      json.forEach((x, i) => {
        const problems = this.spec.validate(schema, x);
        if (problems.length === 0) out.items.push(x as T);
        else {
          const id = typeof (x as { id?: unknown })?.id === 'string' ? (x as { id: string }).id : undefined;
          out.invalid.push({ index: page * PAGE + i, id, problems });
        }
      });
      if (json.length < PAGE) return out;
    }
    return out;
  }

  async #fetch(method: string, path: string, init: { headers: { [k: string]: string }; body?: string }): Promise<Response> {
    try {
      const timeout = AbortSignal.timeout(this.#o.timeoutMs ?? 10_000);
      const signal = typeof AbortSignal.any === 'function' ? AbortSignal.any([timeout, this.#abort.signal]) : timeout;
      return await fetch(this.#o.url + path, { method, ...init, redirect: 'error', signal });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      if (err.name === 'TimeoutError' || err.name === 'AbortError') {
        throw new VtnError('timeout', `${method} ${path.replace(/\?.*$/, '')}: no answer from the VTN within ${(this.#o.timeoutMs ?? 10_000) / 1000} s`);
      }
      throw new VtnError('unreachable', `cannot reach the VTN at ${this.#o.url} (${err.cause?.code ?? err.cause?.message ?? err.message})`);
    }
  }

  #status(res: Response, what: string, ok: number[]): void {
    if (ok.includes(res.status)) return;
    void res.body?.cancel().catch(() => {});
    if (res.status >= 500) throw new VtnError('server', `${what}: the VTN answered ${res.status}`, res.status);
    throw new VtnError('http', `${what}: the VTN answered ${res.status}`, res.status);
  }

  async #json(res: Response, what: string): Promise<unknown> {
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw new VtnError('unreachable', `${what}: the answer broke off (${(e as Error).message})`);
    }
    try {
      return text === '' ? null : JSON.parse(text);
    } catch {
      if (res.status >= 500) throw new VtnError('server', `${what}: the VTN answered ${res.status}`, res.status);
      throw new VtnError('json', `${what}: the VTN answered ${res.status} with a body that is not JSON (${JSON.stringify(text.slice(0, 40))}…)`, res.status);
    }
  }
}
