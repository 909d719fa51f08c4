// A TEST DOUBLE of an OpenAI-compatible LLM server on 127.0.0.1: POST /v1/chat/completions with
// `stream: true` answered in the real server-sent-events format (`data: {chat.completion.chunk}` events,
// then `data: [DONE]`), written in small TCP pieces that split multi-byte UTF-8 characters. What it does
// for a request is up to the test (`behave`): stream an answer, hang, send garbage, fail.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  body: {
    model?: string; stream?: boolean; max_tokens?: number;
    messages: { role: string; content: string }[];
  };
  /** performance.now() when the request was read, and when the first token was written. */
  receivedAt: number;
  firstTokenAt?: number;
  /** The client went away before the answer ended (a cancel or timeout on the gateway's side). */
  aborted: boolean;
}

export type Behaviour = (req: FakeRequest, res: FakeResponse) => Promise<void> | void;

export interface FakeResponse {
  raw: ServerResponse;
  /** Sends the event-stream headers. */
  start(): void;
  /** One chat.completion.chunk with this content (or exactly this JSON text with `raw`). */
  token(content: string): Promise<void>;
  event(data: string): Promise<void>;
  done(finish?: string): Promise<void>;
  /** Bytes as they are, in pieces of `piece` bytes (splitting characters), for malformed streams. */
  write(text: string | Uint8Array): Promise<void>;
  closed(): boolean;
}

export interface FakeLlm {
  url: string;
  requests: FakeRequest[];
  behave: Behaviour;
  close(): Promise<void>;
}

/** Streams `text` as events of `per` characters (by code point), ending with [DONE]. */
export function streamText(text: string, o: { per?: number; delayMs?: number; ttftMs?: number } = {}): Behaviour {
  return async (req, res) => {
    res.start();
    if (o.ttftMs) await sleep(o.ttftMs);
    const cps = [...text];
    const per = o.per ?? 3;
    for (let i = 0; i < cps.length && !res.closed(); i += per) {
      await res.token(cps.slice(i, i + per).join(''));
      if (o.delayMs) await sleep(o.delayMs);
    }
    if (!res.closed()) await res.done();
  };
}

export async function startFakeLlm(behave: Behaviour, o: { piece?: number } = {}): Promise<FakeLlm> {
  const requests: FakeRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const piece = o.piece ?? 7;
  const fake: FakeLlm = { url: '', requests, behave, close: async () => {} };
  const server: Server = createServer(async (inc: IncomingMessage, out: ServerResponse) => {
    let text = '';
    for await (const c of inc) text += c;
    const req: FakeRequest = { body: JSON.parse(text), receivedAt: performance.now(), aborted: false };
    requests.push(req);
    let ended = false;
    out.on('close', () => {
      if (!ended) req.aborted = true;
    });
    const write = async (data: string | Uint8Array) => {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
      // Small pieces, so that characters and events straddle TCP segments as they do in real life.
      for (let i = 0; i < bytes.length && !out.destroyed; i += piece) {
        out.write(bytes.subarray(i, i + piece));
        await new Promise((r) => setImmediate(r));
      }
    };
    const res: FakeResponse = {
      raw: out,
      start() {
        out.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
        out.flushHeaders();
      },
      async token(content) {
        req.firstTokenAt ??= performance.now();
        await res.event(JSON.stringify({
          id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: req.body.model ?? 'fake',
          choices: [{ index: 0, delta: { content }, finish_reason: null }],
        }));
      },
      async event(data) {
        await write(`data: ${data}\n\n`);
      },
      async done(finish = 'stop') {
        await res.event(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: finish }] }));
        await write('data: [DONE]\n\n');
        ended = true;
        out.end();
      },
      write,
      closed: () => out.destroyed || out.writableEnded,
    };
    try {
      await fake.behave(req, res);
    } catch {
      out.destroy();
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return fake;
}

/** A port on 127.0.0.1 where nothing listens (connection refused). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
