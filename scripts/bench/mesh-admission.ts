// Admission to the mesh (mesh-admission-v2): how long a gateway of a trusted operator takes from its
// dial to being admitted (Noise, Yamux, then the /gridlet/admit/2 exchange: both identities checked —
// the operator's Ed25519 signature and the XEdDSA proof of the X25519 key), how long a gateway of an
// operator not trusted takes to be refused, and how long the check of one identity takes on its own.
// One gateway in this process; the peers are bare libp2p nodes (test/gateway/mesh-support.ts).

import { pino } from 'pino';
import { rmSync } from 'node:fs';
import { startGateway } from '../../gateway/gateway.js';
import { checkEnrollment, checkPossession } from '../../gateway/mesh/operator.js';
import { openMessage } from '../../gateway/mesh/message.js';
import { parseIdentityV2 } from '../../gateway/mesh/protocols.js';
import { eventually, tempDir } from '../../test/gateway/support.js';
import { KeyGateway, operator, peerNode } from '../../test/gateway/mesh-support.js';

const PEERS = Number(process.env.GRIDLET_BENCH_ADMISSION_PEERS ?? 10);
const CHECKS = 200;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const round = (x: number) => Math.round(x * 10) / 10;

export async function run(): Promise<object> {
  const x = operator('x');
  const y = operator('y');
  const dir = tempDir();
  const gw = await startGateway({
    dataDir: dir, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', meshListen: '/ip4/127.0.0.1/tcp/0', operatorKey: x.file,
    trustOperators: [y.pub], logger: pino({ level: 'silent' }),
  });
  const closers: (() => Promise<void>)[] = [];
  try {
    const admitted: number[] = [];
    for (let i = 0; i < PEERS; i++) {
      const t0 = performance.now();
      const p = await peerNode(new KeyGateway(i % 2 ? y.key : x.key), [gw.meshAddr!]);
      closers.push(() => p.node.close());
      await eventually(() => gw.mesh.node!.isAdmitted(p.node.peerId) && p.node.admittedPeers().length === 1, 10_000, 'admitted');
      admitted.push(performance.now() - t0);
    }
    const refused: number[] = [];
    for (let i = 0; i < PEERS; i++) {
      const before = gw.mesh.refused.operator ?? 0;
      const t0 = performance.now();
      const p = await peerNode(new KeyGateway(operator(`z${i}`).key), [gw.meshAddr!]);
      closers.push(() => p.node.close());
      await eventually(() => (gw.mesh.refused.operator ?? 0) > before, 10_000, 'refused');
      refused.push(performance.now() - t0);
    }
    // One identity's checks alone: parse, the operator's signature, the XEdDSA proof.
    const g = new KeyGateway(x.key);
    const t0 = performance.now();
    for (let i = 0; i < CHECKS; i++) {
      const m = openMessage(g.identityMessage.bytes);
      const id = parseIdentityV2(m.payload, m.kid);
      if (typeof id === 'string' || checkEnrollment({ ...id, signature: id.enrollment }) || !checkPossession(id, id.possession)) throw new Error('identity does not hold');
    }
    const checkMs = (performance.now() - t0) / CHECKS;
    return {
      peers: PEERS,
      admittedMs: { p50: round(pct(admitted, 50)), max: round(Math.max(...admitted)) },
      untrustedRefusedMs: { p50: round(pct(refused, 50)), max: round(Math.max(...refused)) },
      identityCheckMs: Math.round(checkMs * 100) / 100,
    };
  } finally {
    for (const c of closers) await c().catch(() => {});
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
