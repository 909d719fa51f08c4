// The gateway's JSON API from the page: requests with the bearer token, paths whose every value is one
// encoded segment, and the sign-in form a non-loopback gateway needs.

import { parseData } from './kit.js';

const TOKEN_KEY = 'gridlet.apiToken';

let token = sessionStorage.getItem(TOKEN_KEY) ?? '';

export const authHeaders = () => (token ? { authorization: `Bearer ${token}` } : {});

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * An API path: every value interpolated becomes exactly one encoded path segment (or query value), so
 * text from a meter (a guest's name, an id) can never add segments or climb with `..`.
 */
export function path(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    const seg = String(v);
    if (seg === '' || seg === '.' || seg === '..') throw new Error(`"${seg}" cannot be part of a gateway URL`);
    out += encodeURIComponent(seg) + strings[i + 1];
  });
  return out;
}

/** A JSON API call: {status, ok, json}. 401 opens the sign-in form. Network errors throw. */
export async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json;
  try {
    json = parseData(await res.text());
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    showLogin(token ? 'That token was not accepted.' : undefined);
    throw new ApiError(401, 'the gateway needs its API token');
  }
  return { status: res.status, ok: res.ok, json };
}

export const errorText = (r) => r.json?.error ?? `HTTP ${r.status}`;

export async function getJson(path) {
  const r = await api('GET', path);
  if (!r.ok) throw new ApiError(r.status, errorText(r));
  return r.json;
}

let loginWaiters = [];

export function showLogin(error) {
  const box = document.getElementById('login');
  box.hidden = false;
  const e = document.getElementById('login-error');
  e.hidden = !error;
  e.textContent = error ?? '';
  document.getElementById('login-token').focus();
}

export function whenSignedIn() {
  return new Promise((r) => loginWaiters.push(r));
}
document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  token = document.getElementById('login-token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await getJson('/api/devices');
  } catch {
    return;
  }
  document.getElementById('login').hidden = true;
  const w = loginWaiters;
  loginWaiters = [];
  for (const f of w) f();
});
