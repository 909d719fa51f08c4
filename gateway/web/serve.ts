// The dashboard's files (index.html, app.css and the ES modules beside this module and in pages/): no
// build step and no CDN, so a gateway on an offline site serves everything the page needs. Each file is
// read once, kept with a content hash as its ETag (read again when the file changes), and revalidated by
// the browser on every load (no-cache + 304). /shared.js is shared.ts — WIRE.md's numbers and the
// rules the CLI uses — bundled for the page the first time it is asked for.
// The HTML carries a strict Content-Security-Policy: scripts and styles from this origin only, no
// inline script, no framing.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reply, Route } from '../http/server.js';

export const WEB_DIR = dirname(fileURLToPath(import.meta.url));

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

interface StaticFile {
  body: Buffer;
  etag: string;
  mtimeMs: number;
  contentType: string;
}

const JS = 'text/javascript; charset=utf-8';

/** URL path → file under WEB_DIR: the page, its style sheet and every module (the page's own, no others). */
function files(): { [path: string]: [file: string, contentType: string] } {
  const out: { [path: string]: [string, string] } = {
    '/': ['index.html', 'text/html; charset=utf-8'],
    '/app.css': ['app.css', 'text/css; charset=utf-8'],
  };
  for (const dir of ['', 'pages/']) {
    for (const name of readdirSync(join(WEB_DIR, dir))) if (name.endsWith('.js')) out[`/${dir}${name}`] = [`${dir}${name}`, JS];
  }
  return out;
}

const etagOf = (body: Buffer): string => `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;

function load(file: string, contentType: string, cached: StaticFile | undefined): StaticFile {
  const path = join(WEB_DIR, file);
  const mtimeMs = statSync(path).mtimeMs;
  if (cached && cached.mtimeMs === mtimeMs) return cached;
  const body = readFileSync(path);
  return { body, etag: etagOf(body), contentType, mtimeMs };
}

let shared: Promise<StaticFile> | undefined;

/** shared.ts and what it imports as one ES module for the browser (esbuild, once per process). */
function sharedModule(): Promise<StaticFile> {
  shared ??= import('esbuild').then(async ({ build }) => {
    const r = await build({
      entryPoints: [join(WEB_DIR, 'shared.ts')], bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
      write: false, logLevel: 'silent', legalComments: 'none',
    });
    const body = Buffer.from(r.outputFiles[0].contents);
    return { body, etag: etagOf(body), contentType: JS, mtimeMs: 0 };
  });
  return shared;
}

/** GET /, /app.css, the page's modules and /shared.js; public (no token): the page asks for the token and sends it on API calls. */
export function dashboardRoutes(): Route[] {
  const cache = new Map<string, StaticFile>();
  const routes = Object.entries(files()).map(([path, [file, contentType]]): [string, () => Promise<StaticFile>] => [path, async () => {
    const f = load(file, contentType, cache.get(path));
    cache.set(path, f);
    return f;
  }]);
  routes.push(['/shared.js', sharedModule]);
  return routes.map(([path, get]): Route => ({
    method: 'GET',
    pattern: new RegExp(`^${path.replace(/[.]/g, '\\.')}$`),
    public: true,
    async handle(req): Promise<Reply> {
      const f = await get();
      const contentType = f.contentType;
      const headers: { [k: string]: string } = {
        etag: f.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer',
      };
      if (path === '/') Object.assign(headers, { 'content-security-policy': CONTENT_SECURITY_POLICY, 'x-frame-options': 'DENY' });
      const inm = req.headers['if-none-match'];
      if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === f.etag)) {
        return { status: 304, text: '', contentType, headers };
      }
      return { status: 200, text: f.body, contentType, headers };
    },
  }));
}
