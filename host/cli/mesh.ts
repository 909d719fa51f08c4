// `gridlet mesh pcids` and `gridlet verify <deviceId>` (ARCHITECTURE.md "Operator interface").
// Exit codes: 0 done (verify: the history holds), 1 failed or problems found, 2 usage error.

import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { parse, processIo, run, UsageError, type Io } from './args.js';
import { CLIENT_OPTIONS, client, DEFAULT_GATEWAY } from './client.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { httpSource, verifyAggregates, verifyHistory, type Range } from '../../gateway/mesh/verify.js';

const MESH_HELP = `usage: gridlet mesh pcids [--json]

Prints the pCID of every protocol this gateway speaks on the mesh: the CID (CIDv1 raw sha2-256, base32)
of the exact bytes of its document in docs/protocols/.`;

export async function meshMain(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === undefined) {
    (sub ? console.log : console.error)(MESH_HELP);
    return sub ? 0 : 2;
  }
  if (sub !== 'pcids' || rest.some((a) => a !== '--json')) {
    console.error(`gridlet mesh: unknown subcommand or option "${[sub, ...rest].join(' ')}"\n\n${MESH_HELP}`);
    return 2;
  }
  try {
    const p = protocols();
    if (rest.includes('--json')) {
      console.log(JSON.stringify(Object.fromEntries(Object.values(p).map((x) => [x.name, { pcid: x.text, file: `docs/protocols/${x.file}` }])), null, 2));
    } else for (const x of Object.values(p)) console.log(`${x.name.padEnd(10)} ${x.text}  docs/protocols/${x.file}`);
    return 0;
  } catch (e) {
    console.error(`gridlet mesh: ${(e as Error).message}`);
    return 1;
  }
}

const VERIFY_HELP = `usage: gridlet verify <deviceId> [--gateway URL] [--api-token-file FILE] [--json]

Walks a device's history of signed readings messages from any gateway of the mesh: checks every
message's CID, encoding, protocol (pCID), Ed25519 signature and signer (enrolled by its operator, with
proof of its X25519 key), follows prev links to the first message, and reports the seqs covered, holes,
what the meter declared lost, branches and merges. Only messages of gateways whose operator held the
device's pairing (its registry messages, merged again here) count toward what is covered.
It also walks the device's 15-minute and daily aggregate chains the gateway holds (what a gateway of
another operator may have instead of readings), and recomputes their values where it can see the
readings they name.
Exits 0 when the history holds, 1 on any problem (a bad signature or hash, a missing message, a hole).

  --gateway URL     the gateway's HTTP API (default http://127.0.0.1:8080)
  --api-token-file F  bearer token, if the gateway has one, from file F (or GRIDLET_API_TOKEN;
                    --api-token T on the command line)
  --json            print the report as JSON`;

const ranges = (r: Range[]) => r.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ') || 'none';

export async function verifyMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('verify', VERIFY_HELP, io, async () => {
    const r = parse(argv, CLIENT_OPTIONS, true);
    const v = r.values;
    const p = r.positionals;
    if (v.help) {
      io.out(VERIFY_HELP);
      return 0;
    }
    if (p.length !== 1 || !isDeviceId(p[0])) throw new UsageError('expected one device id (16 characters a-z, 2-7)');
    const { base, token } = client(v);
    try {
      new URL(base);
    } catch {
      throw new UsageError(`--gateway "${base}" is not a URL such as ${DEFAULT_GATEWAY}`);
    }
    return verify(p[0], base, token, !!v.json, io);
  });
}

async function verify(device: string, base: string, token: string | undefined, json: boolean, io: Io): Promise<number> {
  const log = (l: string): void => io.out(l);
  const src = httpSource(base, token);
  const r = await verifyHistory(device, src);
  // Aggregate chains (meter-aggregates-v1): what another operator's gateway may hold instead of readings.
  const ag = await verifyAggregates(device, src);
  if (json) log(JSON.stringify({ ...r, aggregates: ag }, null, 2));
  else {
    log(`device ${r.device}: ${r.messages} message(s), ${r.heads.length} head(s), signed by ` +
      (r.signers.map((s) => `${s.gateway} (operator ${s.name} ${s.operator})`).join(', ') || 'nobody'));
    if (r.foreign.length) log(`not counted: ${r.foreign.length} message(s) signed by gateways of operators that never held the device's pairing`);
    log(`seqs covered: ${ranges(r.covered)}; declared lost by the meter: ${ranges(r.declaredLost)}; holes: ${ranges(r.holes)}`);
    if (r.removed.length) {
      log(`removed by retention: ${ranges(r.removed)} (${r.tombstones.length} signed tombstone(s): ` +
        `${r.tombstones.map((t) => `${t.cid} by ${t.gateway}, ${t.removed} message(s)`).join('; ')})`);
    }
    if (r.ackedSeq) log(`acked by this gateway up to seq ${r.ackedSeq}`);
    log(`branches: ${r.branches.length}${r.branches.map((b) => ` (${b.at} → ${b.children.length})`).join('')}; merges: ${r.merges.length}`);
    for (const x of r.problems) log(`problem: ${x}`);
    if (ag.messages) {
      log(`aggregates: ${ag.messages} message(s) in ${ag.chains.length} chain(s) ` +
        `(${ag.chains.map((c) => `${c.resolution} s, channels ${c.channels ? c.channels.join(',') : 'all'}: ${c.windows} window(s)`).join('; ')}); ` +
        `recomputed from their readings: ${ag.sourcesChecked}, readings not visible here: ${ag.sourcesWithheld}`);
      for (const x of ag.problems) log(`problem: ${x}`);
      if (r.messages === 0 && r.removed.length === 0 && r.problems.length === 0) {
        log(ag.problems.length ? `FAILED: ${ag.problems.length} problem(s)` : 'ok: every aggregate verifies (this gateway holds no readings messages of the device)');
      }
    }
    const whole = r.messages > 0 || r.removed.length > 0;
    if (whole || !ag.messages) log(!whole ? 'no history: the gateway has no readings messages of this device' : r.problems.length ? `FAILED: ${r.problems.length} problem(s)` : 'ok: every message verifies and the history is whole');
  }
  if (ag.problems.length) return 1;
  return r.problems.length || (r.messages === 0 && r.removed.length === 0 && ag.messages === 0) ? 1 : 0;
}
