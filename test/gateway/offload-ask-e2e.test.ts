// The offload path end to end and through the CLI as a person runs it: `gridlet gateway` with
// --llm-url (an OpenAI-compatible server) or --llm-gguf (the generated tiny model), `gridlet agent
// --console-pty` paired with it, and `ask` typed on the agent's console streams the answer.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeTinyGguf, TINY_VOCAB } from '../../gateway/offload/tiny-gguf.js';
import { ConsoleDriver } from '../../hil-tests/driver.js';
import { startFakeLlm, streamText, type FakeLlm } from './fake-llm.js';

/** node-llama-cpp is optional; a variable keeps the type checker from requiring it. */
const LLAMA_PACKAGE: string = 'node-llama-cpp';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'gridlet-ask-'));
const children = new Set<ChildProcess>();
const ANSWER = 'Your meter drew 1234 W at 18:00 — normal for cooking. Ünïcödé 漢字 😀 ok. '.repeat(6);

let llamaInstalled = true;
try {
  await import(LLAMA_PACKAGE);
} catch {
  llamaInstalled = false;
  console.log('PENDING ask with --llm-gguf: node-llama-cpp is not installed (install it with `npm install --no-save node-llama-cpp`)');
}

function launch(args: string[], ready: RegExp): Promise<{ child: ChildProcess; m: RegExpMatchArray; err: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'gridlet.js'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GRIDLET_LOG_LEVEL: 'warn' } });
    children.add(child);
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`not ready: ${args.join(' ')}\n${out}\n${err.slice(-2000)}`)), 60_000);
    child.stdout!.on('data', (b) => {
      out += b;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, m, err: () => err });
      }
    });
    child.stderr!.on('data', (b) => (err += b));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${args.join(' ')}\n${out}\n${err.slice(-2000)}`));
    });
  });
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => new Promise<void>((r) => {
    if (c.exitCode !== null || c.signalCode !== null) return r();
    const k = setTimeout(() => c.kill('SIGKILL'), 10_000);
    c.once('exit', () => {
      clearTimeout(k);
      r();
    });
    c.kill('SIGTERM');
  })));
  children.clear();
}

/** A gateway with the given LLM flags, an agent paired with it, and the agent's console in json mode. */
async function bench(name: string, llmFlags: string[]): Promise<ConsoleDriver> {
  const gw = await launch(['gateway', '--data', join(dir, name, 'gw'), '--mqtt-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', ...llmFlags],
    /gateway ready mqtt=(\S+) http=(\S+) id=(\S+)/);
  const agent = await launch(['agent', '--console-pty', '--data', join(dir, name, 'agent'), '--broker', gw.m[1], '--interval', '500'],
    /agent ready id=(\S+) code=(\S+) console=(\S+)/);
  for (let i = 0; ; i++) {
    const res = await fetch(`${gw.m[2]}/api/pairings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: agent.m[1], code: agent.m[2] }) });
    await res.text();
    if (res.status === 201) break;
    if (res.status !== 404 || i > 40) throw new Error(`pairing answered ${res.status}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const con = await ConsoleDriver.open(agent.m[3]);
  // The agent reconnects with its session after pairing: wait until its link is up.
  for (let i = 0; i < 100; i++) {
    const s = await con.data<{ paired: boolean; link: string }>('status');
    if (s.paired && s.link && s.link !== '-' && s.link !== 'none') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return con;
}

let fake: FakeLlm;

test.before(async () => {
  fake = await startFakeLlm(streamText(ANSWER, { per: 2, delayMs: 2 }));
});

test.after(async () => {
  await stopAll();
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

test('ask on the console of a host agent streams the answer of an OpenAI-compatible server (--llm-url)', async () => {
  const con = await bench('openai', ['--llm-url', fake.url, '--llm-model', 'tiny-test']);
  try {
    const r = await con.cmd('ask why is my bill high?', 30_000);
    assert.ok(r.ok, `ask failed: ${r.code} ${r.message}`);
    assert.ok(r.chunks.length >= 3, `${r.chunks.length} chunks streamed`);
    assert.is(r.chunks.join(''), ANSWER, 'the answer as the server streamed it');
    const req = fake.requests[fake.requests.length - 1];
    assert.is(req.body.messages[1].content, 'why is my bill high?');
    assert.match(req.body.messages[0].content, /<<meter-data [0-9a-f]+>>/);
  } finally {
    await con.close();
    await stopAll();
  }
});

test('ask on the console of a host agent streams the answer of the embedded GGUF model (--llm-gguf)', async () => {
  if (!llamaInstalled) return;
  const model = join(dir, 'tiny.gguf');
  writeTinyGguf(model, { seed: 3 });
  const con = await bench('gguf', ['--llm-gguf', model]);
  try {
    const r = await con.cmd('ask how much power do I use?', 60_000);
    assert.ok(r.ok, `ask failed: ${r.code} ${r.message}`);
    const text = r.chunks.join('');
    assert.ok(text.length > 20, `answer: ${JSON.stringify(text)}`);
    const sayable = new Set([...TINY_VOCAB.slice(2).join('').replace(/Ġ/g, ' ').replace(/Ċ/g, '\n')]);
    for (const ch of text) assert.ok(sayable.has(ch), `"${ch}" comes from the tiny model's vocabulary`);
  } finally {
    await con.close();
    await stopAll();
  }
});

test.run();
