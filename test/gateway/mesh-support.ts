// Operators and gateways for the mesh tests (MESH.md "Trust, version 2"): operator key files in a
// temporary directory, and gateways that exist only as keys (they sign identity, registry and readings
// messages; with peer() they also connect as a bare libp2p node and present themselves).

import { mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { pino } from 'pino';
import { base32 } from '../../firmware/core/bytes.js';
import { sha256 } from '../../firmware/core/crypto.js';
import { encodeMessage, signerFromSeed, type GridMessage, type Payload, type Signer } from '../../gateway/mesh/message.js';
import { MeshNode } from '../../gateway/mesh/node.js';
import { enrol, newOperatorKey, provePossession, writeOperatorKey, type OperatorKey } from '../../gateway/mesh/operator.js';
import { protocols, type ProtocolName } from '../../gateway/mesh/pcid.js';
import { identityV2Payload, peerIdOf } from '../../gateway/mesh/protocols.js';
import type { GatewayIdentity } from '../../gateway/identity.js';
import { idFromPublicKey } from '../../firmware/core/wire/pairing.js';

export interface TestOperator {
  key: OperatorKey;
  /** The secret key file (--operator-key) and the public one (--trust-operator). */
  file: string;
  pub: string;
  id: string;
}

/** An operator key written to a temporary directory. */
export function operator(name: string): TestOperator {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-operator-'));
  const { key, seed } = newOperatorKey(name);
  const file = join(dir, `${name}.key`);
  const pub = writeOperatorKey(file, key, seed);
  return { key, file, pub, id: key.id };
}

/** A gateway that exists as keys only, enrolled by `op` (or by nobody, with a v1-style identity left out). */
export class KeyGateway {
  readonly seed = new Uint8Array(randomBytes(32));
  readonly signer: Signer;
  readonly box = nacl.box.keyPair();
  readonly identity: GatewayIdentity;
  readonly gateway: string;
  readonly peer: string;
  identityMessage: GridMessage;

  /**
   * `squat` makes it claim another gateway's id and X25519 key: its operator signs that gladly, but the
   * proof of possession it can make is with its own X25519 key.
   */
  constructor(readonly op: OperatorKey, o: { enrolled?: number; squat?: { gateway: string; x25519: Uint8Array }; t?: number } = {}) {
    const sign = nacl.sign.keyPair.fromSeed(this.seed);
    this.signer = signerFromSeed(this.seed, sign.publicKey);
    this.identity = { id: idFromPublicKey(this.box.publicKey), box: this.box, sign };
    this.gateway = o.squat?.gateway ?? this.identity.id;
    this.peer = peerIdOf(sign.publicKey);
    this.identityMessage = this.enrolled(o.enrolled ?? Date.now(), o.squat, o.t);
  }

  /** An identity message enrolled at `enrolled`. */
  enrolled(enrolled: number, squat?: { gateway: string; x25519: Uint8Array }, t = Date.now()): GridMessage {
    const gateway = squat?.gateway ?? this.identity.id;
    const x25519 = squat?.x25519 ?? this.box.publicKey;
    const e = enrol(this.op, { gateway, x25519, ed25519: this.signer.publicKey, peer: this.peer }, enrolled);
    return encodeMessage(protocols().identity2.pcid, identityV2Payload({
      gateway, x25519, ed25519: this.signer.publicKey, peer: this.peer, t, operator: this.op.publicKey, name: this.op.name, enrolled,
      enrollment: e.signature, possession: provePossession({ ...this.identity, id: gateway }, this.op.publicKey, enrolled),
    }), this.signer);
  }

  sign(protocol: ProtocolName, payload: Payload): GridMessage {
    return encodeMessage(protocols()[protocol].pcid, payload, this.signer);
  }
}

/** A device id and its key, for registry messages. */
export function deviceKey(): { id: string; key: Uint8Array } {
  const key = nacl.box.keyPair().publicKey;
  return { id: base32(sha256(key).subarray(0, 10)), key };
}

/**
 * A bare libp2p node with `g`'s key that dials `peers` and presents `g`'s identity message: what a
 * gateway of that operator (or a stranger, with an untrusted one) looks like on the wire. It records
 * every gossip frame it receives, and admits whoever presents any identity.
 */
export async function peerNode(g: KeyGateway, peers: string[], o: { listen?: boolean } = {}) {
  const gossip: { from: string; data: Uint8Array }[] = [];
  const node = await MeshNode.start({
    seed: g.seed, peers, listen: o.listen ? '/ip4/127.0.0.1/tcp/0' : undefined, log: pino({ level: 'silent' }),
    identity: () => g.identityMessage.bytes,
    admit: async () => ({ ok: true }),
    refuseEarly: () => undefined,
    onRefused: () => {},
    onAdmitted: () => {},
    onGone: () => {},
    onGossip: (data, from) => void gossip.push({ from, data }),
    serveBlock: async () => undefined,
  });
  return { node, gossip };
}
