// The dispatch table: the first word of a console line → its command family (CONSOLE.md "Commands").

import type { Command } from './command.js';
import { help, json } from './session.js';
import { id } from './identity.js';
import { status } from './status.js';
import { readings } from './readings.js';
import { buffer } from './buffer.js';
import { guest, guests } from './guests.js';
import { relay } from './relay.js';
import { link } from './link.js';
import { confirm, pair, unpair } from './pairing.js';
import { config } from './config.js';
import { log } from './log.js';
import { ask } from './ask.js';
import { auth } from './auth.js';
import { reboot } from './reboot.js';

/** In help order. */
export const COMMAND_LIST: readonly Command[] = [
  help, id, status, readings, buffer, guests, guest, relay, link, pair, unpair, confirm, config, log, ask, auth,
  reboot, json,
];

const table = new Map<string, Command>();
for (const c of COMMAND_LIST) table.set(c.name, c);

export function findCommand(name: string): Command | undefined {
  return table.get(name);
}

/** Commands that still answer while the console is locked out. */
export const ALLOWED_WHILE_LOCKED: readonly string[] = ['help', 'json'];
