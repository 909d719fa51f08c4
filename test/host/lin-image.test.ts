// The lin simulator's release images (host/ota/lin-image.ts, `gridlet firmware lin-image`): the config
// line and the gzipped mc.so come back as they went in, bad input is refused with its reason, and the
// launcher's bootloader finds the image a FlashUpdater wrote and marked pending.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryFlash } from '../../firmware/core/log/memory-flash.js';
import { FACTORY_SLOT, FlashUpdater } from '../../firmware/core/update/boot-control.js';
import { firmwareMain } from '../../host/cli/firmware.js';
import { bootLinSlot, makeLinImage, parseLinImage } from '../../host/ota/lin-image.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-lin-image-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in shared object: an ELF header and bytes that do not compress to nothing. */
function fakeSo(n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set([0x7f, 0x45, 0x4c, 0x46], 0);
  let x = 7;
  for (let i = 4; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

test('an image carries its config keys and mc.so; the launcher boots it from the slot a FlashUpdater wrote', () => {
  const so = fakeSo(20_000);
  const img = makeLinImage({ firmwareVersion: '0.2.0', broker: '127.0.0.1:9' }, so);
  const back = parseLinImage(img);
  assert.equal(back.config, { firmwareVersion: '0.2.0', broker: '127.0.0.1:9' });
  assert.equal(back.so, so);

  const flash = new MemoryFlash({ blocks: 2 + 2 * 16, blockSize: 4096 });
  assert.equal(bootLinSlot(flash), { slot: FACTORY_SLOT, trial: false }, 'nothing in the slots: the factory image');
  const u = new FlashUpdater(flash);
  for (let at = 0; at < img.length; at += 1024) u.write(at, img.subarray(at, Math.min(img.length, at + 1024)));
  u.setPending(img.length);
  const b = bootLinSlot(flash);
  assert.is(b.slot, 0);
  assert.ok(b.trial, 'a new image boots on trial');
  assert.equal(b.image!.config.firmwareVersion, '0.2.0');
  assert.equal(b.image!.so, so);
  assert.equal(bootLinSlot(flash).slot, FACTORY_SLOT, 'not confirmed by the next boot: the previous image returns');

  assert.throws(() => parseLinImage(new TextEncoder().encode('gridlet-host-image v1 {}\n')), /not a lin image/);
  const broken = img.slice(0, img.length - 100);
  assert.throws(() => parseLinImage(broken), /does not unzip/);
});

test('gridlet firmware lin-image writes an image and refuses what is not a lin mc.so', async () => {
  const run = async (...argv: string[]) => {
    let out = '', err = '';
    const code = await firmwareMain(argv, { out: (l) => (out += l + '\n'), err: (l) => (err += l + '\n') });
    return { code, out, err };
  };
  const so = join(dir, 'mc.so');
  writeFileSync(so, fakeSo(5000));
  const ok = await run('lin-image', '--so', so, '--version', '0.3.0', '--config', 'trialS=30', '-o', join(dir, 'v3.img'));
  assert.is(ok.code, 0, ok.err);
  assert.match(ok.out, /lin image 0\.3\.0: .*v3\.img, \d+ bytes \(5000 bytes of mc\.so, gzipped\)/);
  assert.equal(parseLinImage(new Uint8Array(readFileSync(join(dir, 'v3.img')))).config, { firmwareVersion: '0.3.0', trialS: '30' });
  writeFileSync(join(dir, 'text.so'), 'not an ELF file');
  const bad = await run('lin-image', '--so', join(dir, 'text.so'), '--version', '0.3.0', '-o', join(dir, 'x.img'));
  assert.is(bad.code, 2);
  assert.match(bad.err, /not a shared object/);
  const noVersion = await run('lin-image', '--so', so, '-o', join(dir, 'x.img'));
  assert.match(noVersion.err, /needs --version X\.Y\.Z/);
  const badKey = await run('lin-image', '--so', so, '--version', '0.3.0', '--config', 'no equals', '-o', join(dir, 'x.img'));
  assert.match(badKey.err, /write KEY=VALUE/);
});

test.run();
