// `gridlet agent`: one host agent.

import { createHostAgent, type HostAgent, type HostAgentOptions } from '../agent-host.js';
import { openPty } from '../console/pty.js';
import { isGuestEngineName } from '../guests/engines.js';
import { streamLogger } from '../ports/node-platform.js';
import { readReleasePublicKey } from './firmware.js';
import { parse, processIo, run, UsageError } from './args.js';

const HELP = `usage: gridlet agent [--data DIR] --broker URL [--broker URL]… [--meter sim|replay:FILE|TYPE:SERIALPATH]
                     [--interval MS] [--guest NAME|FILE.wasm]… [--guest-engine v8|wasm3] [--console-pty]
                     [--release-key FILE|HEX]… [--trial-s S] [--prefix gl] [--verbose]

Runs one meter agent on this machine. It prints
  agent ready id=<deviceId> code=<pair code> console=<pty path or ->
then Hellos to the gateway until an operator pairs it (gridlet pair <id> <code>).

  --data DIR        keep identity, pairing, counters and the record log here (default: in memory)
  --broker URL      MQTT broker, e.g. mqtt://127.0.0.1:1883; repeat for fallbacks in order of preference
  --meter SPEC      sim (default: a real household day, shifted and scaled), replay:FILE (JSON lines
                    {"t": unix s, "values": [[channel, value], …]}), or a meter's serial port:
                      dsmr:/dev/ttyUSB0    P1 text telegrams, 115200 8N1 (@9600: DSMR 2.2/3.0, 7E1)
                      smarty:/dev/ttyUSB0  Luxembourg Smarty, 115200 8N1, ciphered
                      dlms:/dev/ttyUSB0    NO/SE/DK HAN, DLMS in HDLC frames, 2400 8E1
                      mbus:/dev/ttyUSB0    AT customer interface, DLMS in M-Bus frames, 2400 8E1
                    (…@BAUD or …@BAUD-8N1|-8E1|-7E1 overrides the line). A ciphering meter's keys:
                    config set meter.key / meter.auth_key on the console, or the gateway's
                    PUT /api/devices/:id/config
  --interval MS     milliseconds between readings (sim default 10000, replay default 1000)
  --guest G         install a guest at start: a built one by name (peak-guard, dr-responder,
                    tamper-watch, tou-cost) or FILE.wasm[:MANIFEST.json]; repeatable
  --guest-engine E  v8 (default: Node's WebAssembly) or wasm3 (the meter's engine, compiled to
                    WebAssembly): same results, fuel and traps, wasm3 as the meter runs them
  --console-pty     open the technician console on a pseudo-terminal
  --release-key K   a release public key this agent trusts for firmware over the air (NAME.pub from
                    gridlet firmware keygen, or its hex); repeatable. Without one it refuses every offer
  --trial-s S       how long a new firmware image has to reach its gateway before it gives itself up
                    and the previous one returns (default 600)
  --prefix P        topic prefix (default gl)
  --verbose         log debug lines to stderr`;

export async function agentMain(argv: string[]): Promise<number> {
  return run('agent', HELP, processIo, async () => {
    const r = parse(argv, {
      data: { type: 'string' },
      broker: { type: 'string', multiple: true },
      meter: { type: 'string' },
      interval: { type: 'string' },
      'console-pty': { type: 'boolean' },
      prefix: { type: 'string' },
      verbose: { type: 'boolean' },
      guest: { type: 'string', multiple: true },
      'guest-engine': { type: 'string' },
      'release-key': { type: 'string', multiple: true },
      'trial-s': { type: 'string' },
    }, false);
    if (r.values.help) {
      console.log(HELP);
      return 0;
    }
    const v = r.values;
    const brokers = (v.broker as string[] | undefined) ?? [];
    if (!brokers.length) throw new UsageError(`--broker URL is required`);
    for (const b of brokers) if (!/^(mqtts?|wss?|tcp):\/\//.test(b)) throw new UsageError(`--broker ${b}: expected mqtt://HOST:PORT`);
    const engine = v['guest-engine'] ?? 'v8';
    if (!isGuestEngineName(engine)) throw new UsageError(`--guest-engine ${engine}: expected v8 or wasm3`);
    const interval = v.interval === undefined ? undefined : Number(v.interval);
    if (interval !== undefined && !(interval >= 10)) throw new UsageError('--interval must be at least 10 ms');
    const logger = streamLogger('agent', v.verbose ? 'debug' : 'info');
    const releaseKeys = ((v['release-key'] as string[] | undefined) ?? []).map(readReleasePublicKey);
    const trialS = v['trial-s'] === undefined ? undefined : Number(v['trial-s']);
    if (trialS !== undefined && !(trialS >= 1)) throw new UsageError('--trial-s must be at least 1');
    // --- technician console: the pty outlives the agent across a console `reboot`.
    const pty = v['console-pty'] ? openPty() : undefined;
    const options: HostAgentOptions = {
      dataDir: v.data as string | undefined, brokers, meter: (v.meter as string | undefined) ?? 'sim', guests: v.guest as string[] | undefined,
      guestEngine: engine,
      intervalMs: interval, topicPrefix: v.prefix as string | undefined, logger,
      consolePty: pty, onReboot: () => reboot(), releaseKeys, trialMs: trialS === undefined ? undefined : trialS * 1000,
    };
    let host: HostAgent = createHostAgent(options);
    const reboot = () => {
      logger.log('warn', 'rebooting');
      host.stop();
      // A restart takes the time a meter's takes; the bootloader then chooses the slot (a new image boots on trial).
      setTimeout(() => {
        host = createHostAgent(options);
        const f = host.firmware;
        console.log(`agent booted firmware=${f.version} slot=${f.slot}${f.trial ? ' trial' : ''}`);
        host.agent.start();
      }, 200);
    };
    const a = host.agent;
    // Listening for the signals before saying ready (gateway.ts: a stop right after the ready line).
    const stopped = new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    console.log(`agent ready id=${a.deviceId} code=${a.identity.pairCode} console=${pty?.path ?? '-'} firmware=${host.firmware.version}`);
    if (host.factoryPin) console.error(`console factory PIN ${host.factoryPin} (until the first pairing)`);
    a.start();
    await stopped;
    host.stop();
    pty?.close();
    return 0;
  });
}
