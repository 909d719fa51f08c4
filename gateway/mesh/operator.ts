// Operators are keys (MESH.md "Trust, version 2"; docs/protocols/gateway-identity-v2.md). An operator is
// an Ed25519 key pair; its id is "op" followed by the base32 (lower case, no padding) of its public key.
// It enrols each of its gateways by signing the gateway's names (gateway id, X25519 and Ed25519 keys,
// peer id) with its own name and the time; the gateway proves with an XEdDSA signature (xeddsa.ts) that
// it holds the X25519 key its id is the hash of. "Same operator" means the same operator key.
//
// Files (JSON, written by `gridlet operator` and `gridlet gateway identity`):
//   operator key (secret, 0600)   {"gridlet": "operator-key", "version": 1, "id", "name", "seed": hex}
//   operator public file          {"gridlet": "operator", "version": 1, "id", "name"}
//   enrollment request            {"gridlet": "enrollment-request", "version": 1, "gateway", "x25519", "ed25519", "peer"}
//   enrollment certificate        {"gridlet": "enrollment", "version": 1, "operator", "name", "gateway", "x25519",
//                                  "ed25519", "peer", "enrolled", "signature"}   (keys hex, enrolled unix ms)

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { base32, base32Decode, concat, equal, fromHex, toHex, utf8Encode } from '../../firmware/core/bytes.js';
import { encode } from '../../firmware/core/cbor.js';
import { sha256 } from '../../firmware/core/crypto.js';
import type { GatewayIdentity } from '../identity.js';
import { ed25519Verify, signerFromSeed, type Signer } from './message.js';
import { peerIdOf } from './protocols.js';
import { xeddsaSign, xeddsaVerify } from './xeddsa.js';

/** What the operator's signature covers: this, then CBOR [gateway, x25519, ed25519, peer, name, enrolled]. */
export const ENROLLMENT_DOMAIN = utf8Encode('gridlet enrollment v2\0');
/** What the gateway's X25519 (XEdDSA) signature covers: this, then CBOR [gateway, ed25519, operator, enrolled]. */
export const POSSESSION_DOMAIN = utf8Encode('gridlet possession v2\0');
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

export interface OperatorKey {
  id: string;
  name: string;
  publicKey: Uint8Array;
  signer: Signer;
}

/** What an operator signs to enrol a gateway. */
export interface EnrollmentFields {
  gateway: string;
  x25519: Uint8Array;
  ed25519: Uint8Array;
  peer: string;
  /** The operator's name as it calls itself (shown to people; trust is by key). */
  name: string;
  /** Unix ms. */
  enrolled: number;
}

export interface Enrollment extends EnrollmentFields {
  /** The operator's public key. */
  operator: Uint8Array;
  signature: Uint8Array;
}

export function operatorId(publicKey: Uint8Array): string {
  return 'op' + base32(publicKey);
}

/** The public key an operator id names, or undefined when `text` is not one. */
export function parseOperatorId(text: string): Uint8Array | undefined {
  if (!/^op[a-z2-7]{52}$/.test(text)) return undefined;
  const key = base32Decode(text.slice(2));
  return key && key.length === 32 ? key : undefined;
}

export function isOperatorName(name: string): boolean {
  return NAME.test(name);
}

function operatorFromSeed(seed: Uint8Array, name: string): OperatorKey {
  const publicKey = nacl.sign.keyPair.fromSeed(seed).publicKey;
  return { id: operatorId(publicKey), name, publicKey, signer: signerFromSeed(seed, publicKey) };
}

/** A new operator key. */
export function newOperatorKey(name: string): { key: OperatorKey; seed: Uint8Array } {
  if (!isOperatorName(name)) throw new Error(`operator name "${name.slice(0, 80)}" must be 1-64 characters A-Z a-z 0-9 . _ -`);
  const seed = new Uint8Array(randomBytes(32));
  return { key: operatorFromSeed(seed, name), seed };
}

/**
 * The operator of a gateway given no operator key or certificate: a key of its own, derived from its
 * Ed25519 seed (so replicas sharing the identity share it too). Such a gateway trusts only operators it
 * is told to.
 */
export function selfOperator(identity: GatewayIdentity, name: string): OperatorKey {
  const seed = new Uint8Array(createHash('sha256').update('gridlet self-operator v2\0').update(identity.sign.secretKey.subarray(0, 32)).digest());
  return operatorFromSeed(seed, name);
}

/** Writes an operator key (0600, never over an existing file) and its public file FILE.pub. */
export function writeOperatorKey(file: string, key: OperatorKey, seed: Uint8Array): string {
  if (existsSync(file)) throw new Error(`${file} already exists; an operator key is never overwritten (choose another --out)`);
  writeFileSync(file, JSON.stringify({ gridlet: 'operator-key', version: 1, id: key.id, name: key.name, seed: toHex(seed) }, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  const pub = `${file}.pub`;
  writeFileSync(pub, JSON.stringify({ gridlet: 'operator', version: 1, id: key.id, name: key.name }, null, 2) + '\n', { mode: 0o644 });
  return pub;
}

function readJson(file: string, what: string): { [k: string]: unknown } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as { [k: string]: unknown };
  } catch {
    // below
  }
  throw new Error(`${what} ${file} is not a gridlet JSON file`);
}

/** Reads an operator key file (`gridlet operator init`). */
export function readOperatorKey(file: string): OperatorKey {
  const j = readJson(file, 'operator key');
  if (j.gridlet !== 'operator-key') {
    throw new Error(`${file} is not an operator key (it is ${typeof j.gridlet === 'string' ? `a "${j.gridlet}" file` : 'something else'}); make one with gridlet operator init --out FILE`);
  }
  const seed = typeof j.seed === 'string' && /^[0-9a-f]{64}$/.test(j.seed) ? fromHex(j.seed) : undefined;
  const name = typeof j.name === 'string' && isOperatorName(j.name) ? j.name : undefined;
  if (!seed || !name) throw new Error(`operator key ${file} is damaged (its seed or name is missing); restore it from a backup`);
  const key = operatorFromSeed(seed, name);
  if (j.id !== undefined && j.id !== key.id) throw new Error(`operator key ${file} is damaged: its id does not belong to its seed`);
  return key;
}

/** An operator named in a trust list: its key, and the name this gateway knows it by. */
export interface TrustedOperator {
  id: string;
  publicKey: Uint8Array;
  /** The local name: `NAME=` given with it, else the name in its file; undefined for a bare id. */
  name?: string;
}

/**
 * Reads one `--trust-operator` value: an operator id, a file (an operator's public file, key file or a
 * gateway's enrollment certificate), or NAME=ID_OR_FILE to give it a local name.
 */
export function parseTrust(spec: string): TrustedOperator {
  const m = /^([A-Za-z0-9._-]{1,64})=(.+)$/.exec(spec);
  const alias = m && !existsSync(spec) ? m[1] : undefined;
  const what = alias ? m![2] : spec;
  const key = parseOperatorId(what);
  if (key) return { id: what, publicKey: key, name: alias };
  if (!existsSync(what)) {
    throw new Error(`--trust-operator "${spec.slice(0, 120)}" is neither an operator id (op followed by 52 characters a-z 2-7, as gridlet operator init prints) nor a file`);
  }
  const j = readJson(what, 'operator file');
  let id: unknown = j.id;
  if (j.gridlet === 'enrollment') id = j.operator;
  else if (j.gridlet !== 'operator' && j.gridlet !== 'operator-key') throw new Error(`--trust-operator ${what} is not an operator's file (gridlet operator init writes FILE.pub)`);
  const publicKey = typeof id === 'string' ? parseOperatorId(id) : undefined;
  if (!publicKey) throw new Error(`--trust-operator ${what} holds no valid operator id`);
  const name = alias ?? (typeof j.name === 'string' && isOperatorName(j.name) ? j.name : undefined);
  return { id: id as string, publicKey, name };
}

// ------------------------------------------------------------------ enrollment

export function enrollmentBytes(f: EnrollmentFields): Uint8Array {
  return concat(ENROLLMENT_DOMAIN, encode([f.gateway, f.x25519, f.ed25519, f.peer, f.name, f.enrolled]));
}

export function possessionBytes(p: { gateway: string; ed25519: Uint8Array; operator: Uint8Array; enrolled: number }): Uint8Array {
  return concat(POSSESSION_DOMAIN, encode([p.gateway, p.ed25519, p.operator, p.enrolled]));
}

/** The operator signs a gateway's enrollment. */
export function enrol(key: OperatorKey, req: Omit<EnrollmentFields, 'name' | 'enrolled'>, enrolled: number): Enrollment {
  const f: EnrollmentFields = { ...req, name: key.name, enrolled };
  return { ...f, operator: key.publicKey, signature: key.signer.sign(enrollmentBytes(f)) };
}

/** Why an enrollment does not hold for these keys, or undefined when it does. */
export function checkEnrollment(e: Enrollment): string | undefined {
  if (base32(sha256(e.x25519).subarray(0, 10)) !== e.gateway) return 'the gateway id is not the hash of its X25519 key';
  if (e.peer !== peerIdOf(e.ed25519)) return 'the peer id is not that of the Ed25519 key';
  if (!isOperatorName(e.name)) return 'the operator name must be 1-64 characters A-Z a-z 0-9 . _ -';
  if (!ed25519Verify(e.operator, enrollmentBytes(e), e.signature)) return 'the operator\'s signature does not verify';
  return undefined;
}

/** The gateway's proof that it holds its X25519 key (XEdDSA over possessionBytes). */
export function provePossession(identity: GatewayIdentity, operator: Uint8Array, enrolled: number): Uint8Array {
  return xeddsaSign(identity.box.secretKey, possessionBytes({ gateway: identity.id, ed25519: identity.sign.publicKey, operator, enrolled }));
}

export function checkPossession(p: { gateway: string; x25519: Uint8Array; ed25519: Uint8Array; operator: Uint8Array; enrolled: number }, signature: Uint8Array): boolean {
  return xeddsaVerify(p.x25519, possessionBytes(p), signature);
}

/** A gateway's enrollment request (`gridlet gateway identity`): its public names. */
export function enrollmentRequest(identity: GatewayIdentity): { [k: string]: unknown } {
  return {
    gridlet: 'enrollment-request', version: 1, gateway: identity.id, x25519: toHex(identity.box.publicKey),
    ed25519: toHex(identity.sign.publicKey), peer: peerIdOf(identity.sign.publicKey),
  };
}

function hexField(j: { [k: string]: unknown }, k: string, n: number, file: string): Uint8Array {
  const v = j[k];
  if (typeof v !== 'string' || !new RegExp(`^[0-9a-f]{${2 * n}}$`).test(v)) throw new Error(`${file}: "${k}" must be ${n} bytes in hex`);
  return fromHex(v);
}

/** Reads an enrollment request file. */
export function readEnrollmentRequest(file: string): Omit<EnrollmentFields, 'name' | 'enrolled'> {
  const j = readJson(file, 'enrollment request');
  if (j.gridlet !== 'enrollment-request') throw new Error(`${file} is not an enrollment request; make one on the gateway with gridlet gateway identity --data DIR --out FILE`);
  const req = { gateway: String(j.gateway), x25519: hexField(j, 'x25519', 32, file), ed25519: hexField(j, 'ed25519', 32, file), peer: String(j.peer) };
  if (base32(sha256(req.x25519).subarray(0, 10)) !== req.gateway) throw new Error(`${file}: the gateway id is not the hash of its X25519 key`);
  if (req.peer !== peerIdOf(req.ed25519)) throw new Error(`${file}: the peer id is not that of its Ed25519 key`);
  return req;
}

export function certificateJson(e: Enrollment): { [k: string]: unknown } {
  return {
    gridlet: 'enrollment', version: 1, operator: operatorId(e.operator), name: e.name, gateway: e.gateway, x25519: toHex(e.x25519),
    ed25519: toHex(e.ed25519), peer: e.peer, enrolled: e.enrolled, signature: toHex(e.signature),
  };
}

/** Reads an enrollment certificate (`gridlet operator enroll`) and checks the operator's signature. */
export function readCertificate(file: string): Enrollment {
  const j = readJson(file, 'enrollment certificate');
  if (j.gridlet !== 'enrollment') throw new Error(`${file} is not an enrollment certificate; the operator makes one with gridlet operator enroll`);
  const operator = typeof j.operator === 'string' ? parseOperatorId(j.operator) : undefined;
  if (!operator) throw new Error(`${file}: "operator" is not an operator id`);
  if (typeof j.enrolled !== 'number' || !Number.isSafeInteger(j.enrolled) || j.enrolled < 0) throw new Error(`${file}: "enrolled" must be unix milliseconds`);
  const e: Enrollment = {
    operator, name: String(j.name), gateway: String(j.gateway), x25519: hexField(j, 'x25519', 32, file), ed25519: hexField(j, 'ed25519', 32, file),
    peer: String(j.peer), enrolled: j.enrolled, signature: hexField(j, 'signature', 64, file),
  };
  const why = checkEnrollment(e);
  if (why) throw new Error(`enrollment certificate ${file} does not hold: ${why}`);
  return e;
}

/** Does the certificate enrol this gateway (its keys as they are now)? */
export function certifies(e: Enrollment, identity: GatewayIdentity): boolean {
  return e.gateway === identity.id && equal(e.x25519, identity.box.publicKey) && equal(e.ed25519, identity.sign.publicKey);
}
