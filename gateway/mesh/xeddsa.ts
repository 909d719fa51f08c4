// XEdDSA (Signal, "The XEdDSA and VXEdDSA Signature Schemes", rev. 1, 2016): signatures made with an
// X25519 key pair, verifiable as Ed25519 signatures under the Edwards form of its public key. A gateway
// proves with it that it holds the X25519 key its gateway id is the hash of (gateway-identity-v2).
//
// Signing: k = the X25519 secret, clamped; A = kB with its sign bit made 0 (a = -k when it was 1);
// r = SHA-512(0xFE ‖ 0xFF×31 ‖ a ‖ M ‖ Z) mod L, Z 64 random bytes; R = rB; h = SHA-512(R ‖ A ‖ M)
// mod L; s = r + h·a mod L; the signature is R ‖ s. Verifying: u (the X25519 public key, < p) gives
// y = (u − 1)/(u + 1) mod p; A is y little-endian with the sign bit 0; the signature must verify as
// Ed25519 under A. Point arithmetic is @noble/curves'; verification is node:crypto's Ed25519.

import { createHash, randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ed25519Verify } from './message.js';

const { Point } = ed25519;
const P = (1n << 255n) - 19n;
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function le(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function leBytes(n: bigint, length = 32): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
}

function sha512mod(...parts: Uint8Array[]): bigint {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return le(new Uint8Array(h.digest())) % L;
}

function modp(n: bigint): bigint {
  const r = n % P;
  return r < 0n ? r + P : r;
}


/** The Edwards public key (sign bit 0) an X25519 public key stands for; undefined for an invalid one. */
export function edwardsOf(x25519Public: Uint8Array): Uint8Array | undefined {
  if (x25519Public.length !== 32) return undefined;
  const u = le(x25519Public);
  if (u >= P) return undefined;
  const d = modp(u + 1n);
  if (d === 0n) return undefined;
  return leBytes(modp((u - 1n) * Point.Fp.inv(d)));
}

/** Signs `message` with an X25519 secret key (32 bytes). */
export function xeddsaSign(x25519Secret: Uint8Array, message: Uint8Array, z: Uint8Array = new Uint8Array(randomBytes(64))): Uint8Array {
  if (x25519Secret.length !== 32 || z.length !== 64) throw new Error('XEdDSA takes a 32-byte X25519 secret and 64 random bytes');
  const k = new Uint8Array(x25519Secret);
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
  let a = le(k) % L;
  let A = Point.BASE.multiply(a).toBytes();
  if (A[31] & 0x80) {
    a = (L - a) % L;
    A = Point.BASE.multiply(a).toBytes();
  }
  const prefix = new Uint8Array(32).fill(0xff);
  prefix[0] = 0xfe;
  const r = sha512mod(prefix, leBytes(a), message, z);
  const R = Point.BASE.multiply(r === 0n ? L : r).toBytes();
  const h = sha512mod(R, A, message);
  const s = (r + h * a) % L;
  const sig = new Uint8Array(64);
  sig.set(R, 0);
  sig.set(leBytes(s), 32);
  return sig;
}

/** Does `signature` verify for `message` under the X25519 public key? */
export function xeddsaVerify(x25519Public: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  const A = edwardsOf(x25519Public);
  return A !== undefined && ed25519Verify(A, message, signature);
}
