// Backend: any OpenAI-compatible server (llama.cpp's llama-server, Ollama, vLLM, …) through
// POST /v1/chat/completions with `stream: true`. The answer arrives as server-sent events: `data:`
// lines holding chat.completion.chunk JSON, ended by `data: [DONE]`; an `error` object (or an
// `event: error`) is the server's failure. Anything else is reported as a malformed stream, never
// passed on as text.

import { BackendError, type GenerateRequest, type OffloadBackend } from './backend.js';
import { truncateUtf8 } from './chunker.js';

export interface OpenAiOptions {
  /** The server: `http://host:8080`, `http://host:11434/v1` or the full …/chat/completions URL. */
  url: string;
  /** `model` in the request (Ollama and vLLM need it; llama-server serves its one model without it). */
  model?: string;
  /** Sent as a bearer token (GRIDLET_LLM_API_KEY) for servers that want one. */
  apiKey?: string;
  /** Jobs sent to the server at once (default 4). */
  concurrency?: number;
}

/** A line longer than this is not a chat completion chunk. */
const MAX_LINE = 1 << 20;

export class OpenAiBackend implements OffloadBackend {
  readonly name: string;
  readonly concurrency: number;
  readonly endpoint: string;
  readonly #o: OpenAiOptions;

  constructor(o: OpenAiOptions) {
    this.endpoint = chatCompletionsUrl(o.url);
    this.name = `LLM server ${new URL(this.endpoint).origin}`;
    this.concurrency = o.concurrency ?? 4;
    this.#o = o;
  }

  async generate(req: GenerateRequest, signal: AbortSignal, onText: (text: string) => void): Promise<void> {
    const headers: { [k: string]: string } = { 'content-type': 'application/json', accept: 'text/event-stream' };
    if (this.#o.apiKey) headers.authorization = `Bearer ${this.#o.apiKey}`;
    const body = JSON.stringify({
      ...(this.#o.model !== undefined ? { model: this.#o.model } : {}),
      messages: [{ role: 'system', content: req.system }, { role: 'user', content: req.prompt }],
      stream: true,
      max_tokens: req.maxTokens,
    });
    let res: Response;
    try {
      res = await fetch(this.endpoint, { method: 'POST', headers, body, signal });
    } catch (e) {
      if (signal.aborted) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new BackendError(`cannot reach the ${this.name} (${cause?.code ?? cause?.message ?? (e as Error).message}); is it running? (--llm-url)`);
    }
    if (!res.ok) {
      const text = await readSome(res, 4096).catch(() => '');
      const detail = errorText(text);
      throw new BackendError(`the ${this.name} answered HTTP ${res.status}${detail ? `: ${detail}` : ''}` +
        (res.status === 404 && this.#o.model !== undefined ? ` (is model "${this.#o.model}" there? --llm-model)` : ''));
    }
    const type = res.headers.get('content-type') ?? '';
    if (/application\/json/i.test(type)) return this.#whole(res, onText);
    if (!/text\/event-stream/i.test(type)) {
      await res.body?.cancel().catch(() => {});
      throw new BackendError(`the ${this.name} did not answer with an event stream (content-type "${type || 'none'}"); is --llm-url an OpenAI-compatible server?`);
    }
    const decoder = new TextDecoder('utf-8');
    const sse = new SseParser();
    let finished = false;
    const handle = (ev: SseEvent): boolean => {
      if (ev.event === 'error') throw new BackendError(`the ${this.name} reported an error: ${errorText(ev.data) || 'no detail'}`);
      if (ev.data === '[DONE]') return true;
      let chunk: unknown;
      try {
        chunk = JSON.parse(ev.data);
      } catch {
        throw new BackendError(`the ${this.name} sent a malformed event (not JSON): ${JSON.stringify(truncateUtf8(ev.data, 60))}`);
      }
      const c = chunk as { error?: unknown; choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[] };
      if (c === null || typeof c !== 'object') throw new BackendError(`the ${this.name} sent a malformed event: ${JSON.stringify(truncateUtf8(ev.data, 60))}`);
      if (c.error !== undefined) throw new BackendError(`the ${this.name} reported an error: ${errorText(JSON.stringify(c)) || 'no detail'}`);
      if (!Array.isArray(c.choices)) throw new BackendError(`the ${this.name} sent an event that is not a chat completion chunk: ${JSON.stringify(truncateUtf8(ev.data, 60))}`);
      const choice = c.choices[0];
      if (choice === undefined) return false; // e.g. a usage-only chunk
      const content = choice.delta?.content;
      if (content !== undefined && content !== null && typeof content !== 'string') {
        throw new BackendError(`the ${this.name} sent a chunk whose content is not text`);
      }
      if (content) onText(content);
      if (choice.finish_reason) finished = true;
      return false;
    };
    try {
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        for (const ev of sse.push(decoder.decode(bytes, { stream: true }))) {
          if (handle(ev)) return;
        }
      }
      for (const ev of sse.push(decoder.decode() + '\n\n')) if (handle(ev)) return;
    } catch (e) {
      if (signal.aborted || e instanceof BackendError) throw e;
      throw new BackendError(`the ${this.name} broke off the answer (${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message})`);
    } finally {
      // After [DONE] or a failure: let go of the response.
      res.body?.cancel().catch(() => {});
    }
    if (!finished) throw new BackendError(`the ${this.name} closed the stream before the answer was complete (no [DONE])`);
  }

  /** A server that ignored `stream: true` and sent the whole completion. */
  async #whole(res: Response, onText: (text: string) => void): Promise<void> {
    const text = await res.text();
    let content: unknown;
    try {
      content = (JSON.parse(text) as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
    } catch {
      throw new BackendError(`the ${this.name} sent malformed JSON: ${JSON.stringify(truncateUtf8(text, 60))}`);
    }
    if (typeof content !== 'string') throw new BackendError(`the ${this.name} sent JSON that is not a chat completion`);
    if (content) onText(content);
  }

  async close(): Promise<void> {}
}

/** `http://h:8080` → `http://h:8080/v1/chat/completions`; `…/v1` → `…/v1/chat/completions`; a full URL stays. */
export function chatCompletionsUrl(base: string): string {
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    throw new Error(`--llm-url "${base}" is not a URL such as http://127.0.0.1:8080`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--llm-url "${base}" must be an http:// or https:// URL`);
  const path = u.pathname.replace(/\/+$/, '');
  if (/\/chat\/completions$/.test(path)) return u.href;
  u.pathname = /\/v1$/.test(path) ? `${path}/chat/completions` : `${path}/v1/chat/completions`;
  return u.href;
}

export interface SseEvent {
  event: string;
  data: string;
}

/** The event-stream format (WHATWG HTML "Server-sent events"): lines end in CRLF, LF or CR; `data:`
 *  lines accumulate; a blank line dispatches; `:` lines are comments. */
export class SseParser {
  #buf = '';
  #data: string[] = [];
  #event = '';
  /** A CR ended the last piece: an LF starting the next one belongs to it. */
  #cr = false;

  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.#cr && text.startsWith('\n')) text = text.slice(1);
    this.#cr = false;
    this.#buf += text;
    let start = 0;
    for (;;) {
      const m = /\r\n|\r|\n/g;
      m.lastIndex = start;
      const hit = m.exec(this.#buf);
      if (!hit) break;
      if (hit[0] === '\r' && hit.index === this.#buf.length - 1) this.#cr = true;
      this.#line(this.#buf.slice(start, hit.index), out);
      start = hit.index + hit[0].length;
    }
    this.#buf = this.#buf.slice(start);
    if (this.#buf.length > MAX_LINE) throw new BackendError('the LLM server sent a line longer than 1 MiB: not an event stream');
    return out;
  }

  #line(line: string, out: SseEvent[]): void {
    if (line === '') {
      if (this.#data.length) out.push({ event: this.#event || 'message', data: this.#data.join('\n') });
      this.#data = [];
      this.#event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
  }
}

/** The first `max` bytes of a response body (an error page can be large). */
async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const b of res.body as unknown as AsyncIterable<Uint8Array>) {
    parts.push(b);
    n += b.length;
    if (n >= max) break;
  }
  await res.body.cancel().catch(() => {});
  return new TextDecoder().decode(Buffer.concat(parts).subarray(0, max));
}

/** The message of an OpenAI-style error body (`{"error": {"message"}}` or `{"error": "…"}`), or the text. */
function errorText(text: string): string {
  let msg = text.trim();
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    const e = j.error ?? j.message ?? j.detail;
    if (typeof e === 'string') msg = e;
    else if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') msg = (e as { message: string }).message;
  } catch {
    // not JSON: the text itself
  }
  return truncateUtf8(msg.replace(/\s+/g, ' '), 120);
}
