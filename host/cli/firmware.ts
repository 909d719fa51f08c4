// `gridlet firmware`: release keys, signing, and rollouts through a gateway's HTTP API (docs/operator.md
// "Firmware updates"). Exit codes: 0 done, 1 failed (the reason is printed), 2 usage error.

import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { fromHex, toHex } from '../../firmware/core/bytes.js';
import {
  encodeManifest, encodeReleaseFile, imageCid, isVersion, keyIdOf, releaseKeyPair, signManifest,
} from '../../firmware/core/update/release.js';
import { cidToText } from '../../firmware/core/guests/cid.js';
import { HOST_FAULTS, makeHostImage, type HostFault } from '../ota/host-image.js';
import { parse, processIo, run, UsageError, type Io } from './args.js';
import { api, CLIENT_HELP, CLIENT_OPTIONS, client, errorOf } from './client.js';
import { makeLinImage, type LinImage } from '../ota/lin-image.js';

const HELP = `usage: gridlet firmware <command> …

Firmware over the air: sign releases with a release key whose public half is built into the firmware,
upload them to a gateway, roll them out with a canary stage, and watch each device's progress.

  keygen --out NAME                         a release key pair: NAME.key (secret, keep it offline) and NAME.pub
  sign IMAGE --key NAME.key --version X.Y.Z --model M [--model M]… [--min-version X.Y.Z] [-o FILE]
                                            a signed release file (default IMAGE-X.Y.Z.release)
  upload FILE                               keep a release on the gateway (POST /api/firmware)
  deploy (--device ID… | --label SEL) VERSION|CID [--canary N] [--max-failures K]
                                            offer a release; with --canary, to N devices first and to the
                                            rest only when all N confirmed; stops itself once K devices
                                            rolled back or failed (default 1; 0: never)
  status [ROLLOUT] [--json]                 rollouts, or one rollout's devices: state, percent, reason
  stop ROLLOUT                              stop a rollout: nothing more is offered, downloads stop
  host-image --version X.Y.Z [--fault no-reconnect] [--size BYTES] -o FILE
                                            an image for host agents (gridlet agent, gridlet sim)
  lin-image --so mc.so --version X.Y.Z [--config KEY=VALUE]… -o FILE
                                            an image for the lin simulator's slots: its mc.so and config keys
                                            (docs/firmware.md "Firmware updates")

Client options (upload, deploy, status, stop):
${CLIENT_HELP}
  --json            machine-readable output`;

export async function firmwareMain(argv: string[], io: Io = processIo): Promise<number> {
  const [cmd, ...rest] = argv;
  return run('firmware', HELP, io, async () => {
    switch (cmd) {
      case 'keygen': return keygen(rest, io);
      case 'sign': return sign(rest, io);
      case 'upload': return upload(rest, io);
      case 'deploy': return deploy(rest, io);
      case 'status': return status(rest, io);
      case 'stop': return stop(rest, io);
      case 'host-image': return hostImage(rest, io);
      case 'lin-image': return linImage(rest, io);
      case undefined: case '--help': case '-h': case 'help':
        io.out(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  });
}

function help(v: { help?: unknown }, io: Io): boolean {
  if (v.help) io.out(HELP);
  return v.help === true;
}

function readFile(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A release key file: `gridlet-release-key v1 <hex seed>`. */
export function readReleaseKey(path: string): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const text = new TextDecoder().decode(readFile(path, 'release key')).trim();
  const m = /^gridlet-release-key v1 ([0-9a-f]{64})$/.exec(text);
  if (!m) throw new Error(`${path} is not a release key (gridlet firmware keygen writes one); a .pub file is the public half`);
  return releaseKeyPair(fromHex(m[1]));
}

/** A public release key: a .pub file (hex) or the hex itself. */
export function readReleasePublicKey(spec: string): Uint8Array {
  const hex = /^[0-9a-f]{64}$/i.test(spec) ? spec : new TextDecoder().decode(readFile(spec, 'release public key')).trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${spec} is not a release public key (64 hex digits, as gridlet firmware keygen writes to NAME.pub)`);
  return fromHex(hex.toLowerCase());
}

function keygen(argv: string[], io: Io): number {
  const { values: v } = parse(argv, { out: { type: 'string', short: 'o' } }, false);
  if (help(v, io)) return 0;
  if (typeof v.out !== 'string' || !v.out) throw new UsageError('keygen needs --out NAME');
  const seed = new Uint8Array(randomBytes(32));
  const keys = releaseKeyPair(seed);
  writeFileSync(`${v.out}.key`, `gridlet-release-key v1 ${toHex(seed)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(`${v.out}.key`, 0o600);
  writeFileSync(`${v.out}.pub`, `${toHex(keys.publicKey)}\n`, { flag: 'wx' });
  io.out(`release key ${toHex(keyIdOf(keys.publicKey))}: secret in ${v.out}.key (keep it offline), public in ${v.out}.pub`);
  io.out(`build it into the firmware: releaseKeys=${toHex(keys.publicKey)} (mcconfig), or gridlet agent --release-key ${v.out}.pub`);
  return 0;
}

function sign(argv: string[], io: Io): number {
  const { values: v, positionals } = parse(argv, {
    key: { type: 'string' }, version: { type: 'string' }, model: { type: 'string', multiple: true },
    'min-version': { type: 'string' }, out: { type: 'string', short: 'o' }, json: { type: 'boolean' },
  }, true);
  if (help(v, io)) return 0;
  if (positionals.length !== 1) throw new UsageError('sign needs one IMAGE file');
  if (typeof v.key !== 'string') throw new UsageError('sign needs --key NAME.key (gridlet firmware keygen)');
  const version = v.version as string | undefined;
  if (!version || !isVersion(version)) throw new UsageError('sign needs --version X.Y.Z');
  const models = (v.model as string[] | undefined) ?? [];
  if (!models.length) throw new UsageError('sign needs --model M (the model the meters report, e.g. gridlet-esp32); repeat for several');
  const minVersion = (v['min-version'] as string | undefined) ?? '0.0.0';
  if (!isVersion(minVersion)) throw new UsageError('--min-version must be X.Y.Z');
  const image = readFile(positionals[0], 'image');
  if (!image.length) throw new Error(`${positionals[0]} is empty`);
  const key = readReleaseKey(v.key);
  const manifest = encodeManifest({
    cid: imageCid(image), size: image.length, version, models, minVersion, keyId: keyIdOf(key.publicKey), created: Math.floor(Date.now() / 1000),
  });
  const signature = signManifest(manifest, key.secretKey);
  const out = (v.out as string | undefined) ?? `${positionals[0]}-${version}.release`;
  writeFileSync(out, encodeReleaseFile({ manifest, signature }, image));
  const cid = cidToText(imageCid(image));
  if (v.json) io.out(JSON.stringify({ file: out, cid, version, models, minVersion, size: image.length, keyId: toHex(keyIdOf(key.publicKey)) }));
  else io.out(`signed ${version} for ${models.join(', ')}: ${out} (image ${cid}, ${image.length} bytes, key ${toHex(keyIdOf(key.publicKey))})`);
  return 0;
}

async function upload(argv: string[], io: Io): Promise<number> {
  const { values: v, positionals } = parse(argv, { ...CLIENT_OPTIONS }, true);
  if (help(v, io)) return 0;
  if (positionals.length !== 1) throw new UsageError('upload needs one release FILE (gridlet firmware sign)');
  const file = readFile(positionals[0], 'release file');
  const { base, token } = client(v);
  const r = await api(base, token, 'POST', 'api/firmware', { release: Buffer.from(file).toString('base64') }, 120_000);
  if (r.status !== 200 && r.status !== 201) {
    io.err(`gridlet firmware upload: ${errorOf(r.json, r.status)}`);
    return 1;
  }
  const j = r.json as { cid: string; version: string; size: number; models: string[] };
  if (v.json) io.out(JSON.stringify(j));
  else io.out(`${r.status === 201 ? 'uploaded' : 'already on the gateway:'} ${j.version} for ${j.models.join(', ')} (${j.cid}, ${j.size} bytes)`);
  return 0;
}

async function deploy(argv: string[], io: Io): Promise<number> {
  const { values: v, positionals } = parse(argv, {
    ...CLIENT_OPTIONS, device: { type: 'string', multiple: true }, label: { type: 'string' },
    canary: { type: 'string' }, 'max-failures': { type: 'string' },
  }, true);
  if (help(v, io)) return 0;
  if (positionals.length !== 1) throw new UsageError('deploy needs one VERSION (or release CID)');
  const devices = v.device as string[] | undefined;
  if (!devices?.length === !v.label) throw new UsageError('deploy needs --device ID (repeatable) or --label SEL, not both');
  const whole = (x: unknown, flag: string) => {
    if (x === undefined) return undefined;
    if (!/^\d{1,9}$/.test(String(x))) throw new UsageError(`${flag} must be a whole number, not "${x}"`);
    return Number(x);
  };
  const { base, token } = client(v);
  const r = await api(base, token, 'POST', 'api/firmware/rollouts', {
    release: positionals[0], ...(devices?.length ? { devices } : { label: v.label }),
    ...(v.canary === undefined ? {} : { canary: whole(v.canary, '--canary') }),
    ...(v['max-failures'] === undefined ? {} : { maxFailures: whole(v['max-failures'], '--max-failures') }),
  });
  if (r.status !== 201) {
    io.err(`gridlet firmware deploy: ${errorOf(r.json, r.status)}`);
    return 1;
  }
  const j = r.json as RolloutJson;
  if (v.json) io.out(JSON.stringify(j, null, 2));
  else {
    io.out(`rollout ${j.id}: ${j.version} to ${j.devices.length} device${j.devices.length === 1 ? '' : 's'}${j.canary ? `, ${j.canary} in the canary stage` : ''}; stops at ${j.maxFailures || 'no'} failure${j.maxFailures === 1 ? '' : 's'}`);
    for (const d of j.devices) if (d.state === 'failed') io.out(`  ${d.deviceId}: ${d.reason}`);
    io.out(`follow it: gridlet firmware status ${j.id}`);
  }
  return 0;
}

interface RolloutJson {
  id: number; version: string; state: string; reason: string | null; canary: number; maxFailures: number; selector: string;
  counts: { [state: string]: number }; createdAt: string;
  devices: { deviceId: string; stage: string; state: string; percent: number | null; reason: string | null; running: string | null; note: string | null; updatedAt: string }[];
}

function countsText(c: { [state: string]: number }): string {
  return Object.entries(c).map(([k, n]) => `${n} ${k}`).join(', ') || 'no devices';
}

async function status(argv: string[], io: Io): Promise<number> {
  const { values: v, positionals } = parse(argv, { ...CLIENT_OPTIONS }, true);
  if (help(v, io)) return 0;
  const { base, token } = client(v);
  if (positionals.length > 1) throw new UsageError('status takes at most one ROLLOUT id');
  if (positionals.length === 0) {
    const r = await api(base, token, 'GET', 'api/firmware/rollouts');
    if (r.status !== 200) {
      io.err(`gridlet firmware status: ${errorOf(r.json, r.status)}`);
      return 1;
    }
    const list = r.json as RolloutJson[];
    if (v.json) io.out(JSON.stringify(list, null, 2));
    else if (!list.length) io.out('no rollouts (gridlet firmware deploy starts one)');
    else for (const x of list) io.out(`${x.id}\t${x.version}\t${x.state}${x.reason ? ` (${x.reason})` : ''}\t${countsText(x.counts)}`);
    return 0;
  }
  if (!/^\d{1,9}$/.test(positionals[0])) throw new UsageError(`ROLLOUT must be a rollout id (a number), not "${positionals[0]}"`);
  const r = await api(base, token, 'GET', `api/firmware/rollouts/${positionals[0]}`);
  if (r.status !== 200) {
    io.err(`gridlet firmware status: ${errorOf(r.json, r.status)}`);
    return 1;
  }
  const j = r.json as RolloutJson;
  if (v.json) {
    io.out(JSON.stringify(j, null, 2));
    return 0;
  }
  io.out(`rollout ${j.id}: ${j.version}, ${j.state}${j.reason ? ` — ${j.reason}` : ''}; ${countsText(j.counts)}`);
  for (const d of j.devices) {
    const state = d.state === 'downloading' && d.percent !== null ? `downloading ${d.percent} %` : d.state;
    const why = d.reason ?? d.note;
    io.out(`  ${d.deviceId}  ${d.stage.padEnd(6)}  ${state.padEnd(16)}  ${d.running ?? '-'}${why ? `  ${why}` : ''}`);
  }
  return 0;
}

async function stop(argv: string[], io: Io): Promise<number> {
  const { values: v, positionals } = parse(argv, { ...CLIENT_OPTIONS, reason: { type: 'string' } }, true);
  if (help(v, io)) return 0;
  if (positionals.length !== 1 || !/^\d{1,9}$/.test(positionals[0])) throw new UsageError('stop needs one ROLLOUT id');
  const { base, token } = client(v);
  const r = await api(base, token, 'POST', `api/firmware/rollouts/${positionals[0]}/stop`, v.reason ? { reason: v.reason } : {});
  if (r.status !== 200) {
    io.err(`gridlet firmware stop: ${errorOf(r.json, r.status)}`);
    return 1;
  }
  const j = r.json as RolloutJson;
  if (v.json) io.out(JSON.stringify(j, null, 2));
  else io.out(`rollout ${j.id}: ${j.state}${j.reason ? ` — ${j.reason}` : ''}`);
  return 0;
}

function hostImage(argv: string[], io: Io): number {
  const { values: v } = parse(argv, { version: { type: 'string' }, fault: { type: 'string' }, size: { type: 'string' }, out: { type: 'string', short: 'o' } }, false);
  if (help(v, io)) return 0;
  if (typeof v.version !== 'string' || !isVersion(v.version)) throw new UsageError('host-image needs --version X.Y.Z');
  if (v.fault !== undefined && !HOST_FAULTS.includes(v.fault as HostFault)) throw new UsageError(`--fault must be one of ${HOST_FAULTS.join(', ')}`);
  if (typeof v.out !== 'string') throw new UsageError('host-image needs -o FILE');
  const size = v.size === undefined ? 0 : Number(v.size);
  if (!Number.isSafeInteger(size) || size < 0 || size > 1 << 20) throw new UsageError('--size must be a number of bytes up to 1048576 (a host slot)');
  const image = makeHostImage({ version: v.version, ...(v.fault ? { fault: v.fault as HostFault } : {}) }, size);
  writeFileSync(v.out, image);
  io.out(`host image ${v.version}${v.fault ? ` (${v.fault})` : ''}: ${v.out}, ${image.length} bytes`);
  return 0;
}

function linImage(argv: string[], io: Io): number {
  const { values: v } = parse(argv, {
    so: { type: 'string' }, version: { type: 'string' }, config: { type: 'string', multiple: true }, out: { type: 'string', short: 'o' },
  }, false);
  if (help(v, io)) return 0;
  if (typeof v.so !== 'string') throw new UsageError('lin-image needs --so PATH (the mc.so mcconfig built for lin)');
  if (typeof v.version !== 'string' || !isVersion(v.version)) throw new UsageError('lin-image needs --version X.Y.Z');
  if (typeof v.out !== 'string') throw new UsageError('lin-image needs -o FILE');
  const config: LinImage['config'] = { firmwareVersion: v.version };
  for (const kv of (v.config as string[] | undefined) ?? []) {
    const m = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(kv);
    if (!m) throw new UsageError(`--config ${kv}: write KEY=VALUE (a config key of docs/firmware.md)`);
    if (m[1] === 'firmwareVersion') throw new UsageError('give the version with --version');
    config[m[1]] = m[2];
  }
  let so: Uint8Array;
  try {
    so = new Uint8Array(readFileSync(v.so));
  } catch (e) {
    throw new UsageError(`cannot read ${v.so}: ${(e as Error).message}`);
  }
  if (so.length < 4 || so[0] !== 0x7f || so[1] !== 0x45 || so[2] !== 0x4c || so[3] !== 0x46) throw new UsageError(`${v.so} is not a shared object (no ELF header): give the mc.so of a lin build`);
  const image = makeLinImage(config, so);
  writeFileSync(v.out, image);
  io.out(`lin image ${v.version}: ${v.out}, ${image.length} bytes (${so.length} bytes of mc.so, gzipped)`);
  return 0;
}
