// Station-mode Wi-Fi over Moddable's `wifi` module, kept connected: after a disconnect it tries again
// with the core's backoff, and it tells the agent's side (transports, SNTP) when an address arrives.

import WiFi from 'wifi';
import Timer from 'timer';
import { reconnectDelay } from '../core/agent/links.js';

export interface WifiOptions {
  ssid: string;
  password?: string;
  random01: () => number;
  onUp(): void;
  onDown(reason: string): void;
}

export class WifiStation {
  up = false;
  #o: WifiOptions;
  #attempt = 0;
  #retry: Timer | undefined;
  #wifi: WiFi | undefined;

  constructor(o: WifiOptions) {
    this.#o = o;
  }

  start(): void {
    if (!this.#o.ssid) {
      this.#o.onDown('no Wi-Fi configured (set ssid and password: docs/firmware.md)');
      return;
    }
    this.#wifi = new WiFi({ ssid: this.#o.ssid, password: this.#o.password }, (message) => {
      if (message === WiFi.gotIP) {
        this.up = true;
        this.#attempt = 0;
        this.#o.onUp();
      } else if (message === WiFi.disconnected || message === WiFi.lostIP) {
        const was = this.up;
        this.up = false;
        if (was) this.#o.onDown(`Wi-Fi ${message}`);
        this.#schedule();
      }
    });
  }

  #schedule(): void {
    if (this.#retry !== undefined) return;
    this.#retry = Timer.set(() => {
      this.#retry = undefined;
      WiFi.connect({ ssid: this.#o.ssid, password: this.#o.password });
    }, reconnectDelay(this.#attempt++, this.#o.random01()));
  }

  stop(): void {
    if (this.#retry !== undefined) Timer.clear(this.#retry);
    this.#retry = undefined;
    this.#wifi?.close();
    WiFi.disconnect();
  }
}
