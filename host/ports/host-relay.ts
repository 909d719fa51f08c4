// The Relay port on a host: a load switch with no hardware behind it, whose state a test, the console
// or the demo can read. Each switch is logged, so a person watching the agent sees what guests did.

import type { Logger, Relay } from '../../firmware/core/ports.js';

export class HostRelay implements Relay {
  #on = false;
  switches = 0;
  constructor(readonly id: number, readonly logger?: Logger) {}
  get(): boolean {
    return this.#on;
  }
  set(on: boolean): void {
    if (on === this.#on) return;
    this.#on = on;
    this.switches++;
    this.logger?.log('info', `relay ${this.id} switched ${on ? 'on' : 'off'}`);
  }
}
