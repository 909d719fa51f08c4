// `gridlet` — one command line for the whole system. Each command lives in its own module and is
// loaded only when used, so `gridlet console` does not pay for the gateway's dependencies.

type Main = (argv: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Main> }> = {
  demo: { summary: 'a gateway and simulated meters on this machine, with a live view', load: async () => (await import('../demo.js')).demoMain },
  gateway: { summary: 'run a gateway', load: async () => (await import('../../gateway/cli.js')).gatewayMain },
  agent: { summary: 'run one host agent (a simulated or replayed meter)', load: async () => (await import('./agent.js')).agentMain },
  sim: { summary: 'a fleet of simulated meters against a gateway, with a loss/latency report', load: async () => (await import('./sim.js')).simMain },
  pair: { summary: 'pair a device with a gateway', load: async () => (await import('../../gateway/cli.js')).pairMain },
  devices: { summary: 'list the devices a gateway knows (`devices show ID` for one)', load: async () => (await import('../../gateway/cli.js')).devicesMain },
  revoke: { summary: 'revoke paired devices', load: async () => (await import('../../gateway/cli-fleet.js')).revokeMain },
  labels: { summary: "show or edit a device's labels (groups are label selectors)", load: async () => (await import('../../gateway/cli-fleet.js')).labelsMain },
  console: { summary: "a technician's console on a meter's serial port (or an agent's pty)", load: async () => (await import('./console.js')).consoleMain },
  guest: { summary: 'guest tools: build, check, run and deploy WebAssembly guests', load: async () => (await import('./guest.js')).guestMain },
  dr: { summary: "send demand-response events (gridlet or OpenADR 3) to devices; list a device's DR history", load: async () => (await import('../../gateway/cli-ops.js')).drMain },
  meter: { summary: 'meter tools: `gridlet meter parse FILE` prints a P1 telegram\'s channels as JSON', load: async () => meterMain },
  operator: { summary: 'operator keys: init, show, enroll a gateway offline (trust on the mesh is by operator key)', load: async () => (await import('../../gateway/mesh/operator-cli.js')).operatorMain },
  mesh: { summary: 'mesh tools: `gridlet mesh pcids` prints the protocols\' pCIDs', load: async () => (await import('../../gateway/mesh/cli.js')).meshMain },
  verify: { summary: "verify a device's signed history from any gateway of the mesh", load: async () => (await import('../../gateway/mesh/cli.js')).verifyMain },
  privacy: { summary: "show or set devices' sharing policies; run retention now", load: async () => (await import('../../gateway/cli-privacy.js')).privacyMain },
  audit: { summary: 'the audit log: every disclosure of a device\'s data (who, what, why)', load: async () => (await import('../../gateway/cli-privacy.js')).auditMain },
};

const METER_HELP = `usage: gridlet meter parse <telegram file>

Parses one DSMR P1 / e-MUCS / HAN text telegram (as the meter sends it, from / to !CRC) and prints its
WIRE.md channels as JSON, or a one-line reason it was refused (CRC mismatch, malformed line, …).`;

async function meterMain(argv: string[]): Promise<number> {
  const [sub, file, ...extra] = argv;
  if (sub === '--help' || sub === '-h') {
    console.log(METER_HELP);
    return 0;
  }
  if (sub !== 'parse' || !file || extra.length) {
    console.error(`gridlet meter: ${sub === 'parse' ? 'expected one telegram file' : `unknown subcommand "${sub ?? ''}"`}\n\n${METER_HELP}`);
    return 2;
  }
  const { meterParse } = await import('../meter/dsmr-cli.js');
  return meterParse(file);
}

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'usage: gridlet <command> [options]   (gridlet <command> --help for its options)',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 2;
  }
  if (cmd === '--version') {
    const { FIRMWARE_VERSION } = await import('../agent-host.js');
    console.log(FIRMWARE_VERSION);
    return 0;
  }
  const c = commands[cmd];
  if (!c) {
    console.error(`gridlet: unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  return (await c.load())(rest);
}
