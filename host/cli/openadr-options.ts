// `gridlet gateway`'s OpenADR flags. Each --openadr-vtn URL starts a group; the --openadr-* flags after it
// (until the next --openadr-vtn) belong to that VTN. The client secret never appears on the command line
// (where `ps` shows it): it comes from --openadr-client-secret-file PATH or GRIDLET_OPENADR_CLIENT_SECRET.

import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { OpenAdrVtnOptions } from '../../gateway/openadr/service.js';

export const OPENADR_CLI_OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  'openadr-vtn': { type: 'string', multiple: true },
  'openadr-client-id': { type: 'string', multiple: true },
  'openadr-client-secret-file': { type: 'string', multiple: true },
  // Refused with an explanation (below), rather than as an unknown flag.
  'openadr-client-secret': { type: 'string', multiple: true },
  'openadr-version': { type: 'string', multiple: true },
  'openadr-ven-name': { type: 'string', multiple: true },
  'openadr-poll-s': { type: 'string', multiple: true },
  'openadr-callback-url': { type: 'string', multiple: true },
};

export const OPENADR_HELP = `  --openadr-vtn URL       be an OpenADR 3 VEN of this VTN (its base URL): register, take its events to
                          the meters they target, report usage back. Repeat the group for several VTNs
                          (a utility and an aggregator); the flags below apply to the --openadr-vtn
                          before them
  --openadr-client-id ID  the OAuth2 client id the VTN's operator gave you; the secret comes from
                          GRIDLET_OPENADR_CLIENT_SECRET or --openadr-client-secret-file PATH (never a flag)
  --openadr-version V     3.0.1 or 3.1.0 (default 3.1.0)
  --openadr-ven-name N    the VEN's name on the VTN (default: the gateway id)
  --openadr-poll-s N      seconds between polls of programs and events (default 30)
  --openadr-callback-url URL
                          where the VTN reaches this gateway's HTTP listener, for a webhook subscription
                          (events in well under a second); without it, only a VTN on this machine
                          subscribes (both on loopback); "none": never subscribe, poll only`;

export class OpenAdrUsageError extends Error {}

/**
 * The VTN groups of a command line, in order. `secretFromEnv` is GRIDLET_OPENADR_CLIENT_SECRET; a group
 * with --openadr-client-secret-file reads its own.
 */
export function openAdrGroups(argv: string[], secretFromEnv: string | undefined, readFile = (p: string) => readFileSync(p, 'utf8')): OpenAdrVtnOptions[] {
  const { tokens } = parseArgs({ args: argv, options: OPENADR_CLI_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  const groups: (OpenAdrVtnOptions & { secretFile?: string })[] = [];
  const seen: { [flag: string]: boolean }[] = [];
  for (const t of tokens ?? []) {
    if (t.kind !== 'option' || !t.name.startsWith('openadr-')) continue;
    const value = typeof t.value === 'string' ? t.value : undefined;
    if (t.name === 'openadr-client-secret') {
      throw new OpenAdrUsageError('--openadr-client-secret is not taken: a secret on the command line shows in `ps` and shell history; set GRIDLET_OPENADR_CLIENT_SECRET or give --openadr-client-secret-file PATH');
    }
    if (value === undefined) throw new OpenAdrUsageError(`--${t.name} needs a value`);
    if (t.name === 'openadr-vtn') {
      groups.push({ url: value, clientId: '', clientSecret: '' });
      seen.push({});
      continue;
    }
    const g = groups[groups.length - 1];
    if (!g) throw new OpenAdrUsageError(`--${t.name} belongs to a VTN: give --openadr-vtn URL before it`);
    if (seen[seen.length - 1][t.name]) throw new OpenAdrUsageError(`--${t.name} is given twice for --openadr-vtn ${g.url}`);
    seen[seen.length - 1][t.name] = true;
    switch (t.name) {
      case 'openadr-client-id': g.clientId = value; break;
      case 'openadr-client-secret-file': g.secretFile = value; break;
      case 'openadr-version': g.version = value; break;
      case 'openadr-ven-name': g.venName = value; break;
      case 'openadr-callback-url': g.callbackUrl = value; break;
      case 'openadr-poll-s':
        if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 3600) {
          throw new OpenAdrUsageError(`--openadr-poll-s must be a whole number of seconds from 1 to 3600, not "${value}"`);
        }
        g.pollS = Number(value);
        break;
      default: throw new OpenAdrUsageError(`unknown flag --${t.name}`);
    }
  }
  return groups.map(({ secretFile, ...g }) => {
    if (!g.clientId) throw new OpenAdrUsageError(`--openadr-vtn ${g.url} needs --openadr-client-id ID after it`);
    let secret = secretFromEnv;
    if (secretFile !== undefined) {
      try {
        secret = readFile(secretFile).replace(/\r?\n$/, '');
      } catch (e) {
        throw new Error(`cannot read --openadr-client-secret-file ${secretFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      if (!secret) throw new Error(`--openadr-client-secret-file ${secretFile} is empty`);
    }
    if (!secret) {
      throw new OpenAdrUsageError(`--openadr-vtn ${g.url} needs its client secret: set GRIDLET_OPENADR_CLIENT_SECRET or give --openadr-client-secret-file PATH`);
    }
    return { ...g, clientSecret: secret };
  });
}
