// `gridlet` — one command line for the whole system. Each command lives in its own module and is
// loaded only when used, so `gridlet console` does not pay for the gateway's dependencies.

type Main = (argv: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Main> }> = {
  demo: { summary: 'a gateway and simulated meters on this machine, with a live view', load: async () => (await import('./demo.js')).demoMain },
  gateway: { summary: 'run a gateway', load: async () => (await import('./gateway.js')).gatewayMain },
  agent: { summary: 'run one host agent (a simulated or replayed meter)', load: async () => (await import('./agent.js')).agentMain },
  sim: { summary: 'a fleet of simulated meters against a gateway, with a loss/latency report', load: async () => (await import('./sim.js')).simMain },
  pair: { summary: 'pair a device with a gateway', load: async () => (await import('./devices.js')).pairMain },
  devices: { summary: 'list the devices a gateway knows (`devices show ID` for one)', load: async () => (await import('./devices.js')).devicesMain },
  revoke: { summary: 'revoke paired devices', load: async () => (await import('./fleet.js')).revokeMain },
  labels: { summary: "show or edit a device's labels (groups are label selectors)", load: async () => (await import('./fleet.js')).labelsMain },
  console: { summary: "a technician's console on a meter's serial port (or an agent's pty)", load: async () => (await import('./console.js')).consoleMain },
  guest: { summary: 'guest tools: build, check, run and deploy WebAssembly guests', load: async () => (await import('./guest.js')).guestMain },
  firmware: { summary: 'firmware over the air: release keys, signing, rollouts with a canary stage, status', load: async () => (await import('./firmware.js')).firmwareMain },
  dr: { summary: "send demand-response events (gridlet or OpenADR 3) to devices; list a device's DR history", load: async () => (await import('./ops.js')).drMain },
  meter: { summary: 'meter tools: `gridlet meter parse FILE` prints a meter capture\'s channels and registers as JSON', load: async () => meterMain },
  operator: { summary: 'operator keys: init, show, enroll a gateway offline (trust on the mesh is by operator key)', load: async () => (await import('./operator.js')).operatorMain },
  mesh: { summary: 'mesh tools: `gridlet mesh pcids` prints the protocols\' pCIDs', load: async () => (await import('./mesh.js')).meshMain },
  verify: { summary: "verify a device's signed history from any gateway of the mesh", load: async () => (await import('./mesh.js')).verifyMain },
  privacy: { summary: "show or set devices' sharing policies; run retention now", load: async () => (await import('./privacy.js')).privacyMain },
  audit: { summary: 'the audit log: every disclosure of a device\'s data (who, what, why)', load: async () => (await import('./privacy.js')).auditMain },
};

const METER_HELP = `usage: gridlet meter parse FILE [--hex] [--key HEX] [--auth-key HEX] [--type TYPE]

Parses a capture of a meter's output and prints one JSON object per message: its format, the meter's
clock, the WIRE.md channels and every register it held (OBIS code, value, scaler, unit), and for DLMS
its security, system title and frame counter. The format is told by the first bytes:
  P1 text telegrams (DSMR, e-MUCS, Swedish HAN), HDLC frames (Norwegian/Swedish/Danish HAN), M-Bus long
  frames (Austria), a Smarty envelope (0xDB), an LLC PDU (E6 E7 00) or a bare DLMS APDU.
A refusal is one line naming the layer: HDLC FCS mismatch in frame 2, GCM tag does not match: wrong key?

  --hex            the file is hex text (whitespace and # comments ignored), not bytes
  --key HEX        the meter's encryption key (32 hex digits, from the network operator)
  --auth-key HEX   its authentication key, when it authenticates (Smarty's is built in)
  --type TYPE      read only as dsmr, smarty, dlms or mbus (default: auto)`;

async function meterMain(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    console.log(METER_HELP);
    return 0;
  }
  if (sub !== 'parse') {
    console.error(`gridlet meter: unknown subcommand "${sub ?? ''}"`);
    return 2;
  }
  const { parse, processIo, run, UsageError } = await import('./args.js');
  return run('meter', METER_HELP, processIo, async () => {
    const r = parse(rest, { hex: { type: 'boolean' }, key: { type: 'string' }, 'auth-key': { type: 'string' }, type: { type: 'string' } }, true);
    if (r.values.help) {
      console.log(METER_HELP);
      return 0;
    }
    if (r.positionals.length !== 1) throw new UsageError(`meter parse: expected one capture file`);
    const v = r.values;
    const { meterParse, MeterParseUsage } = await import('../meter/meter-cli.js');
    try {
      return await meterParse(r.positionals[0], undefined, {
        hex: v.hex === true, key: v.key as string | undefined, authKey: v['auth-key'] as string | undefined, type: v.type as string | undefined,
      });
    } catch (e) {
      if (e instanceof MeterParseUsage) throw new UsageError(`meter parse: ${e.message}`);
      throw e;
    }
  });
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
  // Before any command loads MQTT: switched-off `debug` loggers that allocate nothing (quiet-debug.ts).
  (await import('./quiet-debug.js')).quietDebug();
  return (await c.load())(rest);
}
