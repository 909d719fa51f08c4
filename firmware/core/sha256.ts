// SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104) and PBKDF2-HMAC-SHA256 (RFC 8018) for the core.
// All working state lives in the hasher object, made when it is needed: on a meter the core's
// modules are preloaded into flash, where a module-level scratch array could not be written.

const K = Object.freeze([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = Object.freeze([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

/** An incremental SHA-256: update() any number of times, then digest(); reset() to start again. */
export class Sha256 {
  #h = new Int32Array(8);
  #w = new Int32Array(64);
  #block = new Uint8Array(64);
  #fill = 0;
  #length = 0;

  constructor() {
    this.reset();
  }

  reset(): this {
    for (let i = 0; i < 8; i++) this.#h[i] = IV[i];
    this.#fill = 0;
    this.#length = 0;
    return this;
  }

  update(data: Uint8Array): this {
    const block = this.#block;
    let i = 0;
    this.#length += data.length;
    if (this.#fill) {
      while (i < data.length && this.#fill < 64) block[this.#fill++] = data[i++];
      if (this.#fill < 64) return this;
      this.#compress(block, 0);
      this.#fill = 0;
    }
    for (; i + 64 <= data.length; i += 64) this.#compress(data, i);
    while (i < data.length) block[this.#fill++] = data[i++];
    return this;
  }

  /** Writes the hash into `out` (32 bytes, new by default) and resets the hasher. */
  digest(out: Uint8Array = new Uint8Array(32)): Uint8Array {
    const block = this.#block;
    const bits = this.#length * 8;
    block[this.#fill++] = 0x80;
    if (this.#fill > 56) {
      block.fill(0, this.#fill);
      this.#compress(block, 0);
      this.#fill = 0;
    }
    block.fill(0, this.#fill, 56);
    const hi = Math.floor(bits / 4294967296);
    block[56] = hi >>> 24; block[57] = hi >>> 16; block[58] = hi >>> 8; block[59] = hi;
    block[60] = bits >>> 24; block[61] = bits >>> 16; block[62] = bits >>> 8; block[63] = bits;
    this.#compress(block, 0);
    const h = this.#h;
    for (let i = 0; i < 8; i++) {
      out[i * 4] = h[i] >>> 24;
      out[i * 4 + 1] = h[i] >>> 16;
      out[i * 4 + 2] = h[i] >>> 8;
      out[i * 4 + 3] = h[i];
    }
    this.reset();
    return out;
  }

  #compress(p: Uint8Array, at: number): void {
    const w = this.#w;
    for (let i = 0; i < 16; i++, at += 4) w[i] = (p[at] << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3];
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15];
      const b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    const h = this.#h;
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
  }
}

/** HMAC-SHA256 with a key fixed once: mac() as often as needed (PBKDF2 calls it thousands of times). */
export class HmacSha256 {
  #inner = new Sha256();
  #outer = new Sha256();
  #ipad = new Uint8Array(64);
  #opad = new Uint8Array(64);
  #mid = new Uint8Array(32);

  constructor(key: Uint8Array) {
    const k = key.length > 64 ? new Sha256().update(key).digest() : key;
    for (let i = 0; i < 64; i++) {
      const b = i < k.length ? k[i] : 0;
      this.#ipad[i] = b ^ 0x36;
      this.#opad[i] = b ^ 0x5c;
    }
  }

  /** HMAC of the concatenated parts, into `out` (32 bytes, new by default). */
  mac(parts: readonly Uint8Array[], out: Uint8Array = new Uint8Array(32)): Uint8Array {
    const inner = this.#inner.update(this.#ipad);
    for (const p of parts) inner.update(p);
    inner.digest(this.#mid);
    return this.#outer.update(this.#opad).update(this.#mid).digest(out);
  }
}

/** PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2). */
export function pbkdf2HmacSha256(password: Uint8Array, salt: Uint8Array, iterations: number, dkLen: number): Uint8Array {
  if (!(Number.isInteger(iterations) && iterations >= 1)) throw new RangeError(`PBKDF2 needs at least 1 iteration, not ${iterations}`);
  if (!(Number.isInteger(dkLen) && dkLen >= 1 && dkLen <= 32 * 255)) throw new RangeError(`PBKDF2 key length ${dkLen} is out of range`);
  const prf = new HmacSha256(password);
  const out = new Uint8Array(dkLen);
  const index = new Uint8Array(4);
  const u = new Uint8Array(32);
  const t = new Uint8Array(32);
  for (let block = 1, at = 0; at < dkLen; block++, at += 32) {
    index[0] = block >>> 24; index[1] = block >>> 16; index[2] = block >>> 8; index[3] = block;
    prf.mac([salt, index], u);
    t.set(u);
    for (let i = 1; i < iterations; i++) {
      prf.mac([u], u);
      for (let j = 0; j < 32; j++) t[j] ^= u[j];
    }
    out.set(t.subarray(0, Math.min(32, dkLen - at)), at);
  }
  return out;
}
