// An HTTP call to a gateway's API as the tests make it: JSON in, status, JSON (when it is) and text out.

export interface ApiReply { status: number; json: any; text: string }

export async function apiCall(base: string, method: string, path: string, body?: unknown, headers: { [k: string]: string } = {}): Promise<ApiReply> {
  const h: { [k: string]: string } = { ...headers };
  if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  const res = await fetch(base + path, {
    method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}
