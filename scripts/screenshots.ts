// `npm run screenshots`: the dashboard pages as the operator and technician guides show them.
// Starts a demo gateway with simulated meters (four paired and labelled, one left to pair), lets
// readings flow, uploads and deploys a guest, sends a demand-response event, then opens each page in
// headless Chromium at 1280x800 and writes docs/img/dashboard-*.png.
//   node --import tsx scripts/screenshots.ts [--seconds S]   (readings collected before the shots, default 40)

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway } from '../gateway/gateway.js';
import { createHostAgent, type HostAgent } from '../host/agent-host.js';
import { chromiumMissing, launch } from '../test/browser/support.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'docs', 'img');
const arg = process.argv.indexOf('--seconds');
const SECONDS = arg > 0 ? Number(process.argv[arg + 1]) : 40;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const missing = chromiumMissing();
  if (missing) throw new Error(`cannot take screenshots: ${missing}`);
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-shots-'));
  const gw = await startGateway({ dataDir: join(dir, 'gw'), mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} } });
  const hosts: HostAgent[] = [];
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(gw.httpUrl + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: (await res.json().catch(() => undefined)) as any };
  };
  const sites = ['north', 'north', 'south', 'south'];
  try {
    for (let i = 0; i < 5; i++) {
      const host = createHostAgent({
        dataDir: join(dir, `meter-${i}`), brokers: [gw.mqttUrl], meter: 'sim', intervalMs: 1000, model: 'gridlet-sim',
        guests: i < 4 ? ['tamper-watch'] : [],
      });
      host.agent.start();
      hosts.push(host);
    }
    for (const [i, h] of hosts.slice(0, 4).entries()) {
      for (let tries = 0; ; tries++) {
        const r = await api('POST', '/api/pairings', { deviceId: h.agent.deviceId, code: h.agent.identity.pairCode });
        if (r.status === 201) break;
        if (tries > 100) throw new Error(`pairing ${h.agent.deviceId}: ${r.status} ${JSON.stringify(r.json)}`);
        await sleep(200);
      }
      await api('PUT', `/api/devices/${h.agent.deviceId}/labels`, { labels: { site: sites[i], feeder: `f${(i % 2) + 1}` } });
    }
    const wasm = readFileSync(join(ROOT, 'guests/dist/peak-guard.wasm'));
    const manifest = JSON.parse(readFileSync(join(ROOT, 'manifests/guests/peak-guard.json'), 'utf8'));
    const up = await api('POST', '/api/guests', { wasm: wasm.toString('base64'), manifest });
    const main = hosts[0].agent.deviceId;
    console.log(`gateway ${gw.httpUrl}; collecting ${SECONDS} s of readings from ${hosts.length - 1} paired meters`);
    await sleep(Math.max(5, SECONDS - 10) * 1000);
    for (const h of hosts.slice(0, 2)) await api('POST', `/api/devices/${h.agent.deviceId}/guests`, { cid: up.json.cid });
    const now = Math.floor(Date.now() / 1000);
    await api('POST', '/api/dr-events?label=site=north', { id: 'evening-peak', start: now + 2, duration: 5, level: 2, limitW: 2500 });
    await sleep(10_000);

    mkdirSync(OUT, { recursive: true });
    const b = await launch();
    try {
      const { page } = b;
      const shot = async (name: string, hash: string, ready: () => Promise<unknown>, fullPage = false) => {
        await page.goto(`${gw.httpUrl}/${hash}`);
        await ready();
        await sleep(600);
        const file = join(OUT, `dashboard-${name}.png`);
        writeFileSync(file, await page.screenshot({ fullPage }));
        console.log(`wrote ${file}`);
      };
      await shot('fleet', '#/', () => page.waitForSelector('#fleet tr[data-device] td.last .value'));
      await shot('device', `#/devices/${main}`, () => page.waitForSelector('svg.chart path.line'), true);
      // The last meter paired from a CSV delivery note, which also holds a mistyped line and a meter never heard.
      const last = hosts[4].agent;
      const csv = `deviceId,code\n${last.deviceId},${last.identity.pairCode}\n${last.deviceId.slice(0, 15)},ABCDE-FGHIJ\nqqqqqqqqqqqqqqqq,ABCDE-FGHIJ\n`;
      await shot('pairing', '#/pair', async () => {
        await page.waitForSelector('ul.seen li');
        await page.setInputFiles('#csv-file', { name: 'delivery.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
        await page.waitForSelector('#csv-summary:not([hidden])', { timeout: 30_000 });
      });
      await page.goto(`${gw.httpUrl}/#/guests`);
      await page.waitForSelector('#guest-list td.mono');
      await page.selectOption('#deploy-mode', 'label');
      await page.fill('#deploy-selector', 'site=north');
      await page.click('#deploy-submit');
      await page.waitForSelector('#deploy-results .chip');
      await sleep(2500);
      writeFileSync(join(OUT, 'dashboard-guests.png'), await page.screenshot());
      console.log(`wrote ${join(OUT, 'dashboard-guests.png')}`);
      await shot('dr', `#/dr/${main}`, () => page.waitForSelector('#dr-form'));
      if (b.errors.length) console.log(`page errors:\n  ${b.errors.join('\n  ')}`);
    } finally {
      await b.close();
    }
  } finally {
    for (const h of hosts) h.stop();
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e: Error) => {
  console.error(`screenshots failed: ${e.message}`);
  process.exit(1);
});
