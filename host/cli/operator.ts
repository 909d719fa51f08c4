// `gridlet operator init|show|enroll` (docs/operator.md "Operators and trust"): operator keys, and
// enrollment certificates signed offline for gateways that do not hold their operator's key.
// Exit codes: 0 done, 1 failed (the reason is printed), 2 usage error.

import { existsSync, writeFileSync } from 'node:fs';
import { parse, processIo, run, UsageError, type Io } from './args.js';
import {
  certificateJson, enrol, isOperatorName, newOperatorKey, parseTrust, readEnrollmentRequest, readOperatorKey, writeOperatorKey,
} from '../../gateway/mesh/operator.js';

const HELP = `usage: gridlet operator init --out FILE [--name NAME] [--json]
       gridlet operator show FILE [--json]
       gridlet operator enroll REQUEST --key FILE --out CERT [--json]

An operator is a key: gateways enrolled by the same operator key are one operator, whatever they are
called, and share everything with each other; other operators' gateways are admitted only where an
operator trusts them (gridlet gateway --trust-operator ID_OR_FILE), and get of each meter what its
sharing policy grants them.

  init     makes an operator key: FILE (secret, mode 600: keep it offline, back it up) and FILE.pub (its
           id and name, to give to partners, who trust it with --trust-operator FILE.pub); prints the id
    --name NAME   the operator's name, shown to people (default: FILE's base name); trust is by key
  show     prints the id and name in an operator key, public file or enrollment certificate
  enroll   signs a gateway's enrollment request (gridlet gateway identity --data DIR --out REQUEST, made
           on the gateway) with the operator key, offline: the certificate CERT goes back to the gateway,
           which runs with --operator-cert CERT and never holds the operator key
  --json   print the result as JSON`;

export async function operatorMain(argv: string[], io: Io = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    (sub ? io.out : io.err)(HELP);
    return sub ? 0 : 2;
  }
  return run(`operator ${sub}`, HELP, io, async () => {
    if (sub === 'init') {
      const { values: v, positionals } = parse(rest, { out: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } }, false);
      if (v.help) return help(io);
      void positionals;
      const out = v.out as string | undefined;
      if (!out) throw new UsageError('give --out FILE: where the operator key goes');
      const name = (v.name as string | undefined) ?? out.replace(/^.*\//, '').replace(/\.[^.]*$/, '');
      if (!isOperatorName(name)) throw new UsageError(`operator name "${name.slice(0, 80)}" must be 1-64 characters A-Z a-z 0-9 . _ - (give --name NAME)`);
      if (existsSync(out)) throw new Error(`${out} already exists; an operator key is never overwritten (choose another --out)`);
      const { key, seed } = newOperatorKey(name);
      const pub = writeOperatorKey(out, key, seed);
      if (v.json) io.out(JSON.stringify({ id: key.id, name: key.name, key: out, public: pub }));
      else {
        io.out(`operator ${key.id} name=${key.name}`);
        io.out(`secret key ${out} (mode 600: keep it offline and back it up); public file ${pub}`);
      }
      return 0;
    }
    if (sub === 'show') {
      const { values: v, positionals: p } = parse(rest, { json: { type: 'boolean' } }, true);
      if (v.help) return help(io);
      if (p.length !== 1) throw new UsageError('expected one file: an operator key, its .pub file, or an enrollment certificate');
      const t = parseTrust(p[0]);
      if (v.json) io.out(JSON.stringify({ id: t.id, name: t.name ?? null }));
      else io.out(`operator ${t.id}${t.name ? ` name=${t.name}` : ''}`);
      return 0;
    }
    if (sub === 'enroll') {
      const { values: v, positionals: p } = parse(rest, { key: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } }, true);
      if (v.help) return help(io);
      if (p.length !== 1) throw new UsageError('expected one enrollment request (made on the gateway by gridlet gateway identity --out FILE)');
      if (!v.key || !v.out) throw new UsageError('give --key FILE (the operator key) and --out CERT (where the certificate goes)');
      const key = readOperatorKey(v.key as string);
      const req = readEnrollmentRequest(p[0]);
      const cert = certificateJson(enrol(key, req, Date.now()));
      if (existsSync(v.out as string)) throw new Error(`${v.out} already exists; give another --out`);
      writeFileSync(v.out as string, JSON.stringify(cert, null, 2) + '\n', { mode: 0o644, flag: 'wx' });
      if (v.json) io.out(JSON.stringify(cert));
      else io.out(`enrolled gateway ${req.gateway} (peer ${req.peer}) for operator ${key.id} name=${key.name}: ${v.out}`);
      return 0;
    }
    throw new UsageError(`unknown subcommand "${sub}"; use init, show or enroll`);
  });
}

function help(io: Io): number {
  io.out(HELP);
  return 0;
}
