// Mesh signatures on worker threads (gateway/mesh/sign-pool.ts), with real threads: what a user would
// notice is a message signed differently, lost or never finished — under load, in quiet times, when a
// thread fails and when the gateway closes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import nacl from 'tweetnacl';
import { equal } from '../../firmware/core/bytes.js';
import { assembleMessage, encodeMessage, messageSignable, sigStructure, signerFromSeed, verifySignature, decodeMessage } from '../../gateway/mesh/message.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { SignPool } from '../../gateway/mesh/sign-pool.js';

const seed = new Uint8Array(32).map((_, i) => i * 7 + 1);
const signer = signerFromSeed(seed, nacl.sign.keyPair.fromSeed(seed).publicKey);
const data = (i: number) => new TextEncoder().encode(`message ${i} `.repeat(1 + (i % 13)));

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

test('many signatures asked at once are made on a thread, each the one the event loop would make', async () => {
  const pool = new SignPool(seed, signer, { threads: 2, minBatch: 8, busyShare: 0 });
  try {
    const sigs = await Promise.all(Array.from({ length: 500 }, (_, i) => pool.sign(data(i))));
    sigs.forEach((s, i) => assert.ok(equal(s, signer.sign(data(i))), `signature ${i}`));
    assert.is(pool.stats.signed, 500, 'all on threads');
    assert.is(pool.stats.inline + pool.stats.fallback, 0);
    assert.ok(pool.stats.started >= 1 && pool.stats.started <= 2);
    // A message assembled from a thread's signature is the message encodeMessage makes.
    const { pcid } = protocols().readings;
    const payload = { device: 'dev1aaaaaaaaaaaa', gateway: 'gw', records: [[1, 2, 3]] };
    const signable = messageSignable(pcid, payload);
    const [sig] = await Promise.all([pool.sign(sigStructure(signable)), ...Array.from({ length: 9 }, (_, i) => pool.sign(data(i)))]);
    const m = assembleMessage(pcid, payload, signable, signer.publicKey, sig);
    assert.ok(equal(m.bytes, encodeMessage(pcid, payload, signer).bytes));
    assert.ok(verifySignature(decodeMessage(m.bytes)));
  } finally {
    await pool.close();
  }
});

test('a few signatures at a time are made on the event loop, and no thread is started for them', async () => {
  const pool = new SignPool(seed, signer, { threads: 2, minBatch: 8, busyShare: 0 });
  try {
    for (let i = 0; i < 50; i++) {
      const s = await Promise.all([pool.sign(data(i)), pool.sign(data(i + 1))]);
      assert.ok(equal(s[0], signer.sign(data(i))) && equal(s[1], signer.sign(data(i + 1))));
    }
    assert.equal([pool.stats.inline, pool.stats.signed, pool.stats.started], [100, 0, 0]);
  } finally {
    await pool.close();
  }
});

test('threads only while the event loop is busy: at rest even many signatures at once stay on it, under load they go to a thread', async () => {
  const pool = new SignPool(seed, signer, { threads: 1, minBatch: 8 });
  try {
    await sleep(1100);
    await Promise.all(Array.from({ length: 50 }, (_, i) => pool.sign(data(i))));
    assert.equal([pool.stats.inline, pool.stats.signed, pool.stats.started], [50, 0, 0], 'an idle event loop signs itself');
    // A second of a busy event loop (busy work in short turns, as frames are).
    const until = performance.now() + 1100;
    while (performance.now() < until) {
      const t = performance.now() + 20;
      while (performance.now() < t);
      await new Promise((r) => setImmediate(r));
    }
    const sigs = await Promise.all(Array.from({ length: 50 }, (_, i) => pool.sign(data(i))));
    sigs.forEach((s, i) => assert.ok(equal(s, signer.sign(data(i)))));
    assert.equal([pool.stats.signed, pool.stats.started], [50, 1], 'a loaded one hands them to a thread');
  } finally {
    await pool.close();
  }
});

test('a thread that fails loses nothing: what it was asked is signed on the event loop, later work on a new thread', async () => {
  // A thread that ends as soon as it is asked anything.
  const failing = `require('node:worker_threads').parentPort.on('message', () => process.exit(1));`;
  const pool = new SignPool(seed, signer, { threads: 1, minBatch: 4, busyShare: 0, source: failing });
  try {
    const sigs = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.sign(data(i))));
    sigs.forEach((s, i) => assert.ok(equal(s, signer.sign(data(i))), `signature ${i}`));
    assert.is(pool.stats.fallback, 20);
    assert.is(pool.stats.threads, 0, 'the failed thread is gone');
    const again = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.sign(data(i + 100))));
    again.forEach((s, i) => assert.ok(equal(s, signer.sign(data(i + 100)))));
    assert.is(pool.stats.started, 2, 'a new thread for the next batch');
  } finally {
    await pool.close();
  }
});

test('threads without work end; the next load starts one again', async () => {
  const pool = new SignPool(seed, signer, { threads: 1, minBatch: 4, busyShare: 0, idleMs: 300 });
  try {
    await Promise.all(Array.from({ length: 40 }, (_, i) => pool.sign(data(i))));
    assert.is(pool.stats.threads, 1);
    await sleep(1500);
    assert.equal([pool.stats.threads, pool.stats.idled], [0, 1]);
    const sigs = await Promise.all(Array.from({ length: 40 }, (_, i) => pool.sign(data(i))));
    sigs.forEach((s, i) => assert.ok(equal(s, signer.sign(data(i)))));
    assert.equal([pool.stats.threads, pool.stats.started, pool.stats.signed], [1, 2, 80]);
  } finally {
    await pool.close();
  }
});

test('close waits for the signatures under way; what is asked after is signed on the event loop', async () => {
  const pool = new SignPool(seed, signer, { threads: 2, minBatch: 4, busyShare: 0 });
  const pending = Array.from({ length: 300 }, (_, i) => pool.sign(data(i)));
  await sleep(0);
  const closing = pool.close();
  const late = pool.sign(data(1000));
  await closing;
  const sigs = await Promise.all([...pending, late]);
  sigs.slice(0, 300).forEach((s, i) => assert.ok(equal(s, signer.sign(data(i)))));
  assert.ok(equal(sigs[300], signer.sign(data(1000))));
  assert.is(pool.stats.threads, 0);
});

test.run();
