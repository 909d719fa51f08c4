// The offload parts on their own: the chunker (≤ 200 bytes, character boundaries, order, no change to
// the text), the event-stream parser, the --llm-url forms, and the context block's bounds and fence.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Chunker, truncateUtf8, utf8Length } from '../../gateway/offload/chunker.js';
import { deviceData } from '../../gateway/offload/context.js';
import { chatCompletionsUrl, SseParser } from '../../gateway/offload/openai.js';
import { backendFromConfig } from '../../gateway/offload/offload.js';
import type { DeviceRow, StoredRecord } from '../../gateway/store/store.js';

/** A tiny seeded PRNG so that a failure replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ['a', ' ', '\n', 'é', 'ß', '€', '漢', 'か', '😀', '🔌', '\u0301', '\u{10ffff}'];

test('the chunker: any text cut into pieces comes out whole, in ≤ 200-byte chunks on character boundaries', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const r = rng(seed);
    const n = Math.floor(r() * 1500);
    let text = '';
    for (let i = 0; i < n; i++) text += ALPHABET[Math.floor(r() * ALPHABET.length)];
    // The backend's pieces may cut anywhere, even between the halves of a surrogate pair.
    const c = new Chunker();
    const out: string[] = [];
    for (let i = 0; i < text.length;) {
      const k = 1 + Math.floor(r() * 40);
      c.push(text.slice(i, i + k));
      i += k;
      if (r() < 0.5) for (let x = c.take(); x; x = c.take()) out.push(x);
    }
    for (let x = c.take(true); x; x = c.take(true)) out.push(x);
    assert.is(out.join(''), text, `seed ${seed}: the text is unaltered`);
    for (const x of out) {
      assert.ok(x.length > 0 && utf8Length(x) <= 200, `seed ${seed}: chunk of ${utf8Length(x)} bytes`);
      assert.is(Buffer.byteLength(x, 'utf8'), utf8Length(x));
      assert.not.match(x, /^[\udc00-\udfff]|[\ud800-\udbff]$/, `seed ${seed}: no surrogate pair is split`);
    }
  }
});

test('the chunker fills chunks to 200 bytes and holds half a surrogate pair until the other half', () => {
  const c = new Chunker();
  c.push('€'.repeat(100)); // 300 bytes
  assert.ok(c.full);
  assert.is(utf8Length(c.take()), 198, '66 three-byte characters fit, a 67th would not');
  c.take(true);
  c.push('ok \ud83d');
  assert.is(c.take(), 'ok ');
  assert.is(c.take(), '', 'the high half waits');
  c.push('\udd0c');
  assert.is(c.take(), '🔌');
  assert.is(truncateUtf8('x'.repeat(300)), 'x'.repeat(197) + '…');
  assert.is(utf8Length(truncateUtf8('漢'.repeat(100))), 198, '65 × 3 bytes and the 3 of …');
});

test('the event-stream parser: LF, CRLF and CR line ends, cut anywhere; comments; multi-line data', () => {
  const stream = ': keep-alive\r\ndata: {"a":1}\r\n\r\nevent: error\ndata: line 1\ndata: line 2\n\ndata:no space\r\rdata: [DONE]\n\n';
  const expected = [
    { event: 'message', data: '{"a":1}' }, { event: 'error', data: 'line 1\nline 2' },
    { event: 'message', data: 'no space' }, { event: 'message', data: '[DONE]' },
  ];
  for (let cut = 1; cut < 12; cut++) {
    const p = new SseParser();
    const got = [];
    for (let i = 0; i < stream.length; i += cut) got.push(...p.push(stream.slice(i, i + cut)));
    assert.equal(got, expected, `pieces of ${cut}`);
  }
});

test('--llm-url forms, and option combinations that make no sense', () => {
  assert.is(chatCompletionsUrl('http://127.0.0.1:8080'), 'http://127.0.0.1:8080/v1/chat/completions');
  assert.is(chatCompletionsUrl('http://h:11434/v1/'), 'http://h:11434/v1/chat/completions');
  assert.is(chatCompletionsUrl('https://h/api/v1/chat/completions'), 'https://h/api/v1/chat/completions');
  assert.throws(() => chatCompletionsUrl('localhost:8080'), /--llm-url "localhost:8080" (is not a URL|must be an http)/);
  assert.throws(() => chatCompletionsUrl('ftp://h'), /must be an http:\/\/ or https:\/\/ URL/);
  assert.throws(() => backendFromConfig({ llmUrl: 'http://h', llmGguf: '/x.gguf' }), /either --llm-url .* or --llm-gguf/);
  assert.throws(() => backendFromConfig({ llmModel: 'm' }), /--llm-model names a model on the --llm-url server/);
  assert.throws(() => backendFromConfig({ llmGguf: '/nonexistent/model.gguf' }), /--llm-gguf \/nonexistent\/model\.gguf: cannot read it \(ENOENT\)/);
  assert.is(backendFromConfig({}), undefined);
});

const device: DeviceRow = {
  id: 'abcdefghijklmnop', state: 'paired', publicKey: new Uint8Array(32), ks: new Uint8Array(32), gatewayId: 'g',
  model: 'm', firmware: '1', capabilities: [], labels: { site: 'x' }, firstSeen: 0, pairedAt: 0, revokedAt: null,
  lastSeen: null, upHighest: 0, upBits: [0, 0], downCounter: 0, ackedSeq: 0, status: null, guests: {},
};

test('the context is bounded: the oldest readings go first, the latest value per channel stays', () => {
  const records: StoredRecord[] = [];
  for (let i = 1; i <= 200; i++) records.push({ kind: 1, seq: i, t: 1_700_000_000 + i, gatewayTimed: false, channel: 1 + (i % 4), value: i * 1000 });
  records.push({ kind: 2, seq: 201, t: 1_700_000_300, gatewayTimed: false, event: 'power-restored', data: { off_s: 12 } });
  for (const max of [600, 1500, 3000]) {
    const json = deviceData(device, records, max);
    assert.ok(utf8Length(json) <= max, `${utf8Length(json)} ≤ ${max}`);
    const d = JSON.parse(json);
    assert.is(d.latest.length, 4, 'the latest value of every channel');
    assert.is(d.latest.find((l: { channel: number }) => l.channel === 1).value, 200_000);
  }
  const roomy = JSON.parse(deviceData(device, records, 3000));
  assert.is(roomy.recent_readings.length, 30);
  assert.equal(roomy.recent_events, [['2023-11-14T22:18:20Z', 'power-restored', { off_s: 12 }]]);
});

test.run();
