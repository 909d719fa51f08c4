// The file-backed flash the host agent keeps its log in: NOR rules enforced, data kept across opens,
// and the flash log surviving power cuts on it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFlash } from '../../host/flash/file-flash.js';
import { FlashLog } from '../../firmware/core/log/flash-log.js';
import { simulate } from '../../host/sim/flash-log-sim.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-flash-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a new flash file is all erased blocks', () => {
  const path = join(dir, 'new.bin');
  const f = new FileFlash(path, { blocks: 4, blockSize: 512 });
  assert.is(statSync(path).size, 2048);
  assert.ok(readFileSync(path).every((b) => b === 0xff));
  assert.equal(f.read(100, 3), new Uint8Array([0xff, 0xff, 0xff]));
  f.close();
});

test('writes may only clear bits, like NOR flash; erase sets them again', () => {
  const f = new FileFlash(join(dir, 'nor.bin'), { blocks: 2, blockSize: 512, sync: false });
  f.write(10, new Uint8Array([0x0f, 0xf0]));
  f.write(10, new Uint8Array([0x0e, 0x00])); // clearing more bits is fine
  assert.equal(f.read(10, 2), new Uint8Array([0x0e, 0x00]));
  assert.throws(() => f.write(10, new Uint8Array([0x0f])), /would set bits .*erase the block first/);
  f.eraseBlock(0);
  f.write(10, new Uint8Array([0x0f]));
  assert.throws(() => f.write(2040, new Uint8Array(16)), /outside/);
  f.close();
});

test('alignment is enforced when the flash declares it', () => {
  const f = new FileFlash(join(dir, 'aligned.bin'), { blocks: 2, blockSize: 512, writeAlign: 16, sync: false });
  assert.throws(() => f.write(8, new Uint8Array(16)), /not aligned/);
  assert.throws(() => f.write(16, new Uint8Array(8)), /not aligned/);
  f.write(16, new Uint8Array(16));
  f.close();
});

test('the log in a flash file survives closing and reopening', () => {
  const path = join(dir, 'log.bin');
  let f = new FileFlash(path, { blocks: 8, blockSize: 4096, sync: false });
  let log = new FlashLog(f);
  for (let i = 0; i < 500; i++) log.appendReadings(1_700_000_000 + 10 * i, [[1, 1000 + i], [3, 400 + (i % 9)]]);
  log.appendEvent(1_700_005_000, 'power-restored', { off_s: 42 });
  log.ack(600);
  const backlog = log.read(0, 1000);
  f.close();
  f = new FileFlash(path, { blocks: 8, blockSize: 4096, sync: false });
  log = new FlashLog(f);
  assert.equal(log.read(0, 1000), backlog);
  assert.is(log.stats().ackedSeq, 600);
  f.close();
  assert.throws(() => new FileFlash(path, { blocks: 16, blockSize: 4096 }), /holds 32768 bytes but 16 blocks of 4096 need 65536/);
});

test('power cuts on a flash file: the simulation holds there too', () => {
  let n = 0;
  for (let seed = 1; seed <= 3; seed++) {
    const r = simulate(seed, {
      cuts: 150,
      makeFlash: (blocks, blockSize, writeAlign) => new FileFlash(join(dir, `sim-${seed}-${n++}.bin`), { blocks, blockSize, writeAlign, sync: false }),
    });
    assert.is(r.cuts, 150);
  }
});

test.run();
