// UTF-8 without TextEncoder, the same on every XS. Moddable's runtime keeps strings as UTF-8: there a
// character beyond U+FFFF is one index of a string (charCodeAt gives its code point), where V8 and
// xsnap see a surrogate pair. Console lines, CBOR text and config values go through these two. The
// test app of test/firmware/core-tests.test.ts runs this file on that runtime with a meter's stack.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex, utf8Decode, utf8Encode } from '../../firmware/core/bytes.js';

test('characters beyond U+FFFF are four bytes, however the engine indexes them', () => {
  assert.is(toHex(utf8Encode('𝄞')), 'f09d849e');
  assert.is(toHex(utf8Encode('a\u{10151}b')), '61f090859162');
  assert.is(toHex(utf8Encode(String.fromCodePoint(0x10ffff))), 'f48fbfbf');
  assert.is(toHex(utf8Encode('zä水𝄞')), '7ac3a4e6b0b4f09d849e');
  assert.is(utf8Decode(Uint8Array.of(0x61, 0xf0, 0x9d, 0x84, 0x9e, 0x62)), 'a𝄞b');
});

// Thousands of characters: the decoder hands them to fromCharCode in small batches, each an argument on
// the XS stack (a meter's has 512 slots; 1024 arguments aborted it).
test('a long text survives the round trip, on a meter\'s stack too', () => {
  const text = 'ü𝄞水'.repeat(700) + '𐅑';
  const bytes = utf8Encode(text);
  assert.is(bytes.length, 700 * (2 + 4 + 3) + 4);
  assert.is(utf8Decode(bytes), text);
});

test('a lone surrogate becomes U+FFFD, as TextEncoder makes it', () => {
  assert.is(toHex(utf8Encode('\ud800x')), 'efbfbd78');
  assert.is(toHex(utf8Encode('x\udc00')), '78efbfbd');
});

test.run();
