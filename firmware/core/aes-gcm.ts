// AES-128 (FIPS 197, the forward cipher only) and GCM (NIST SP 800-38D) for meters that cipher their
// customer port: DLMS General Global Ciphering and Luxembourg's Smarty P1. Small and allocation-free
// per call, for XS on an ESP32.
//
// Constant-time enough: nothing branches on the key, the hash key H or the data. The round function
// uses one 1 KiB table indexed by state bytes and GHASH multiplies by H with a precomputed table of
// H·x^i walked in full for every block with masks; on the ESP32 both live in internal RAM, which has no
// data cache, so a lookup takes the same time whatever its index. (On a desktop CPU the table lookups
// leak through the cache to a local attacker; a meter's frames give a remote one nothing to time.)
// Tags are compared in constant time.

// ---------------------------------------------------------------- AES-128

const SBOX = new Uint8Array(256);
/** T0[x] = the MixColumns column of S(x): bytes 2·S, S, S, 3·S (big-endian word). */
const T0 = new Uint32Array(256);

(function tables() {
  // S-box from the multiplicative inverse in GF(2^8) and the affine map, walking generator 3.
  let p = 1;
  let q = 1;
  do {
    p = p ^ ((p << 1) & 0xff) ^ (p & 0x80 ? 0x1b : 0); // p · 3
    q ^= q << 1; // q / 3
    q ^= q << 2;
    q ^= q << 4;
    q &= 0xff;
    if (q & 0x80) q ^= 0x09;
    const s = q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4) ^ 0x63;
    SBOX[p] = s;
  } while (p !== 1);
  SBOX[0] = 0x63;
  for (let x = 0; x < 256; x++) {
    const s = SBOX[x];
    const s2 = xtime(s);
    T0[x] = ((s2 << 24) | (s << 16) | (s << 8) | (s2 ^ s)) >>> 0;
  }
})();

function rotl8(x: number, n: number): number {
  return ((x << n) | (x >>> (8 - n))) & 0xff;
}

function xtime(x: number): number {
  return ((x << 1) ^ (((x >>> 7) & 1) * 0x1b)) & 0xff;
}

function ror8(w: number): number {
  return (w >>> 8) | (w << 24);
}

/** AES-128 with its key schedule expanded once. */
export class Aes128 {
  readonly #rk = new Uint32Array(44);

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new RangeError(`an AES-128 key is 16 bytes, not ${key.length}`);
    const rk = this.#rk;
    for (let i = 0; i < 4; i++) rk[i] = ((key[4 * i] << 24) | (key[4 * i + 1] << 16) | (key[4 * i + 2] << 8) | key[4 * i + 3]) >>> 0;
    let rcon = 1;
    for (let i = 4; i < 44; i++) {
      let t = rk[i - 1];
      if (i % 4 === 0) {
        t = ((SBOX[(t >>> 16) & 0xff] << 24) | (SBOX[(t >>> 8) & 0xff] << 16) | (SBOX[t & 0xff] << 8) | SBOX[t >>> 24]) ^ (rcon << 24);
        rcon = xtime(rcon);
      }
      rk[i] = (rk[i - 4] ^ t) >>> 0;
    }
  }

  /** Encrypts the 16 bytes at src[s] into out[o] (they may be the same place). */
  encryptBlock(src: Uint8Array, s: number, out: Uint8Array, o: number): void {
    const rk = this.#rk;
    let a = ((src[s] << 24) | (src[s + 1] << 16) | (src[s + 2] << 8) | src[s + 3]) ^ rk[0];
    let b = ((src[s + 4] << 24) | (src[s + 5] << 16) | (src[s + 6] << 8) | src[s + 7]) ^ rk[1];
    let c = ((src[s + 8] << 24) | (src[s + 9] << 16) | (src[s + 10] << 8) | src[s + 11]) ^ rk[2];
    let d = ((src[s + 12] << 24) | (src[s + 13] << 16) | (src[s + 14] << 8) | src[s + 15]) ^ rk[3];
    let k = 4;
    for (let round = 1; round < 10; round++) {
      // T1..T3 are T0 rotated: one table instead of four keeps 3 KiB off the heap.
      const a2 = T0[a >>> 24] ^ ror8(T0[(b >>> 16) & 0xff]) ^ ror8(ror8(T0[(c >>> 8) & 0xff])) ^ ror8(ror8(ror8(T0[d & 0xff]))) ^ rk[k];
      const b2 = T0[b >>> 24] ^ ror8(T0[(c >>> 16) & 0xff]) ^ ror8(ror8(T0[(d >>> 8) & 0xff])) ^ ror8(ror8(ror8(T0[a & 0xff]))) ^ rk[k + 1];
      const c2 = T0[c >>> 24] ^ ror8(T0[(d >>> 16) & 0xff]) ^ ror8(ror8(T0[(a >>> 8) & 0xff])) ^ ror8(ror8(ror8(T0[b & 0xff]))) ^ rk[k + 2];
      const d2 = T0[d >>> 24] ^ ror8(T0[(a >>> 16) & 0xff]) ^ ror8(ror8(T0[(b >>> 8) & 0xff])) ^ ror8(ror8(ror8(T0[c & 0xff]))) ^ rk[k + 3];
      a = a2;
      b = b2;
      c = c2;
      d = d2;
      k += 4;
    }
    const w0 = ((SBOX[a >>> 24] << 24) | (SBOX[(b >>> 16) & 0xff] << 16) | (SBOX[(c >>> 8) & 0xff] << 8) | SBOX[d & 0xff]) ^ rk[40];
    const w1 = ((SBOX[b >>> 24] << 24) | (SBOX[(c >>> 16) & 0xff] << 16) | (SBOX[(d >>> 8) & 0xff] << 8) | SBOX[a & 0xff]) ^ rk[41];
    const w2 = ((SBOX[c >>> 24] << 24) | (SBOX[(d >>> 16) & 0xff] << 16) | (SBOX[(a >>> 8) & 0xff] << 8) | SBOX[b & 0xff]) ^ rk[42];
    const w3 = ((SBOX[d >>> 24] << 24) | (SBOX[(a >>> 16) & 0xff] << 16) | (SBOX[(b >>> 8) & 0xff] << 8) | SBOX[c & 0xff]) ^ rk[43];
    putWord(out, o, w0);
    putWord(out, o + 4, w1);
    putWord(out, o + 8, w2);
    putWord(out, o + 12, w3);
  }
}

function putWord(out: Uint8Array, o: number, w: number): void {
  out[o] = w >>> 24;
  out[o + 1] = (w >>> 16) & 0xff;
  out[o + 2] = (w >>> 8) & 0xff;
  out[o + 3] = w & 0xff;
}

function getWord(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

// ---------------------------------------------------------------- GCM

/**
 * AES-128-GCM with one key. The IV is 12 bytes (J0 = IV ‖ 0x00000001); tags of 4–16 bytes (DLMS
 * uses 12). `open` authenticates and decrypts; `decryptOnly` is the keystream alone, for frames that
 * are encrypted without a tag (DLMS security control 0x20). Nothing is allocated per call.
 */
export class AesGcm {
  readonly #aes: Aes128;
  /** H·x^i for i = 0…127, four words each: GHASH multiplies by walking all of them. */
  readonly #hx = new Uint32Array(512);
  readonly #y = new Uint32Array(4);
  readonly #part = new Uint8Array(16);
  #partLen = 0;
  readonly #ctr = new Uint8Array(16);
  readonly #ks = new Uint8Array(16);
  readonly #s = new Uint8Array(16);

  constructor(key: Uint8Array) {
    this.#aes = new Aes128(key);
    const h = new Uint8Array(16);
    this.#aes.encryptBlock(h, 0, h, 0);
    let v0 = getWord(h, 0), v1 = getWord(h, 4), v2 = getWord(h, 8), v3 = getWord(h, 12);
    const hx = this.#hx;
    for (let i = 0; i < 128; i++) {
      hx[4 * i] = v0;
      hx[4 * i + 1] = v1;
      hx[4 * i + 2] = v2;
      hx[4 * i + 3] = v3;
      // V · x: shift right one bit (GCM's reflected order), reducing by R = 0xE1 ‖ 0^120.
      const carry = -(v3 & 1);
      v3 = ((v3 >>> 1) | (v2 << 31)) >>> 0;
      v2 = ((v2 >>> 1) | (v1 << 31)) >>> 0;
      v1 = ((v1 >>> 1) | (v0 << 31)) >>> 0;
      v0 = ((v0 >>> 1) ^ (0xe1000000 & carry)) >>> 0;
    }
  }

  /**
   * Decrypts src[start, end) into out[o…] and checks `tagLength` bytes of tag at tag[t…] over
   * aad ‖ ciphertext. Returns false (out then holds unauthenticated bytes: discard them) when the tag
   * does not match. `aad2` continues the additional data (DLMS authenticates SC ‖ AK ‖ plaintext when
   * it does not encrypt).
   */
  open(iv: Uint8Array, aad: Uint8Array, aadStart: number, aadEnd: number, src: Uint8Array, start: number, end: number,
    tag: Uint8Array, t: number, tagLength: number, out: Uint8Array, o: number): boolean {
    this.#begin(iv);
    this.#ghash(aad, aadStart, aadEnd);
    this.#pad();
    this.#ghash(src, start, end);
    this.#pad();
    this.#crypt(src, start, end, out, o);
    this.#finish(aadEnd - aadStart, end - start);
    let d = 0;
    const s = this.#s;
    for (let i = 0; i < tagLength; i++) d |= s[i] ^ tag[t + i];
    return d === 0 && tagLength >= 4 && tagLength <= 16;
  }

  /**
   * Authentication only (GMAC): the tag over aad ‖ more, where `more` is not encrypted. True when the
   * `tagLength` bytes at tag[t…] match.
   */
  verify(iv: Uint8Array, aad: Uint8Array, aadStart: number, aadEnd: number, more: Uint8Array, start: number, end: number,
    tag: Uint8Array, t: number, tagLength: number): boolean {
    this.#begin(iv);
    this.#ghash(aad, aadStart, aadEnd);
    this.#ghash(more, start, end);
    this.#pad();
    this.#finish(aadEnd - aadStart + end - start, 0);
    let d = 0;
    const s = this.#s;
    for (let i = 0; i < tagLength; i++) d |= s[i] ^ tag[t + i];
    return d === 0 && tagLength >= 4 && tagLength <= 16;
  }

  /** The GCM keystream applied to src[start, end) into out[o…], with no tag (also encrypts). */
  decryptOnly(iv: Uint8Array, src: Uint8Array, start: number, end: number, out: Uint8Array, o: number): void {
    this.#begin(iv);
    this.#crypt(src, start, end, out, o);
  }

  /**
   * Encrypts src[start, end) into out[o…] and writes the tag's first `tagLength` bytes to tag[t…]
   * (tests, benchmarks and test frames; meters only decrypt).
   */
  seal(iv: Uint8Array, aad: Uint8Array, aadStart: number, aadEnd: number, src: Uint8Array, start: number, end: number,
    out: Uint8Array, o: number, tag: Uint8Array, t: number, tagLength: number): void {
    this.#begin(iv);
    this.#ghash(aad, aadStart, aadEnd);
    this.#pad();
    this.#crypt(src, start, end, out, o);
    this.#ghash(out, o, o + end - start);
    this.#pad();
    this.#finish(aadEnd - aadStart, end - start);
    for (let i = 0; i < tagLength; i++) tag[t + i] = this.#s[i];
  }

  #begin(iv: Uint8Array): void {
    if (iv.length !== 12) throw new RangeError(`a GCM IV here is 12 bytes, not ${iv.length}`);
    const ctr = this.#ctr;
    for (let i = 0; i < 12; i++) ctr[i] = iv[i];
    ctr[12] = 0;
    ctr[13] = 0;
    ctr[14] = 0;
    ctr[15] = 1;
    // E(K, J0) masks the tag; counting starts at J0 + 1.
    this.#aes.encryptBlock(ctr, 0, this.#s, 0);
    this.#y.fill(0);
    this.#partLen = 0;
  }

  /** XORs the keystream from inc32(J0) onwards over src into out. */
  #crypt(src: Uint8Array, start: number, end: number, out: Uint8Array, o: number): void {
    const ctr = this.#ctr;
    const ks = this.#ks;
    const aes = this.#aes;
    for (let i = start; i < end; i += 16) {
      // inc32: the last four bytes count, modulo 2^32.
      for (let j = 15; j >= 12; j--) {
        ctr[j] = (ctr[j] + 1) & 0xff;
        if (ctr[j] !== 0) break;
      }
      aes.encryptBlock(ctr, 0, ks, 0);
      const n = end - i < 16 ? end - i : 16;
      for (let j = 0; j < n; j++) out[o + i - start + j] = src[i + j] ^ ks[j];
    }
  }

  /** Feeds bytes to GHASH, keeping a partial block until 16 bytes or #pad(). */
  #ghash(b: Uint8Array, start: number, end: number): void {
    const part = this.#part;
    let i = start;
    if (this.#partLen > 0) {
      while (i < end && this.#partLen < 16) part[this.#partLen++] = b[i++];
      if (this.#partLen < 16) return;
      this.#block(part, 0);
      this.#partLen = 0;
    }
    for (; i + 16 <= end; i += 16) this.#block(b, i);
    while (i < end) part[this.#partLen++] = b[i++];
  }

  /** Ends a GHASH section: a partial block is zero-padded. */
  #pad(): void {
    if (this.#partLen === 0) return;
    this.#part.fill(0, this.#partLen);
    this.#block(this.#part, 0);
    this.#partLen = 0;
  }

  /** Y = (Y ⊕ X) · H, walking every H·x^i with a mask for bit i of Y ⊕ X. */
  #block(b: Uint8Array, o: number): void {
    const y = this.#y;
    const hx = this.#hx;
    let z0 = 0, z1 = 0, z2 = 0, z3 = 0;
    for (let w = 0; w < 4; w++) {
      const x = (y[w] ^ getWord(b, o + 4 * w)) >>> 0;
      let k = 128 * w;
      for (let bit = 31; bit >= 0; bit--) {
        const m = -((x >>> bit) & 1);
        z0 ^= hx[k] & m;
        z1 ^= hx[k + 1] & m;
        z2 ^= hx[k + 2] & m;
        z3 ^= hx[k + 3] & m;
        k += 4;
      }
    }
    y[0] = z0 >>> 0;
    y[1] = z1 >>> 0;
    y[2] = z2 >>> 0;
    y[3] = z3 >>> 0;
  }

  /** The length block, then the tag S = E(K, J0) ⊕ GHASH into #s. */
  #finish(aadBytes: number, textBytes: number): void {
    const len = this.#part;
    lengthBits(len, 0, aadBytes);
    lengthBits(len, 8, textBytes);
    this.#block(len, 0);
    const s = this.#s;
    const y = this.#y;
    for (let w = 0; w < 4; w++) {
      const v = y[w];
      s[4 * w] ^= v >>> 24;
      s[4 * w + 1] ^= (v >>> 16) & 0xff;
      s[4 * w + 2] ^= (v >>> 8) & 0xff;
      s[4 * w + 3] ^= v & 0xff;
    }
  }
}

/** A byte count as a 64-bit big-endian count of bits. */
function lengthBits(out: Uint8Array, o: number, bytes: number): void {
  const hi = Math.floor(bytes / 0x20000000);
  const lo = (bytes * 8) >>> 0;
  putWord(out, o, hi);
  putWord(out, o + 4, lo);
}
