// The dashboard's static files (index.html, app.js, app.css beside this module): no build step and no
// CDN, so a gateway on an offline site serves everything the page needs. Each file is read once, kept
// with a content hash as its ETag (read again when the file changes), and revalidated by the browser
// on every load (no-cache + 304).
// The HTML carries a strict Content-Security-Policy: scripts and styles from this origin only, no
// inline script, no framing.

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
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

const FILES: { [path: string]: [file: string, contentType: string] } = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8'],
};

function load(file: string, contentType: string, cached: StaticFile | undefined): StaticFile {
  const path = join(WEB_DIR, file);
  const mtimeMs = statSync(path).mtimeMs;
  if (cached && cached.mtimeMs === mtimeMs) return cached;
  const body = readFileSync(path);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, etag, contentType, mtimeMs };
}

/** GET /, /app.js, /app.css; public (no token): the page asks for the token and sends it on API calls. */
export function dashboardRoutes(): Route[] {
  const cache = new Map<string, StaticFile>();
  return Object.entries(FILES).map(([path, [file, contentType]]): Route => ({
    method: 'GET',
    pattern: new RegExp(`^${path.replace(/[.]/g, '\\.')}$`),
    public: true,
    async handle(req): Promise<Reply> {
      const f = load(file, contentType, cache.get(path));
      cache.set(path, f);
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
