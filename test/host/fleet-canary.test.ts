// A canary rollout to 100 simulated meters (`gridlet sim`'s fleet, with A/B slots) against a real
// gateway: the release is an image that never reaches its gateway, the canary stage is 10 meters and
// the rollout may fail 3 times. It stops itself after 3 rollbacks, the other 90 meters are never
// offered the image, and every meter ends on its old firmware with its readings intact.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeManifest, encodeReleaseFile, imageCid, keyIdOf, releaseKeyPair, signManifest } from '../../firmware/core/update/release.js';
import { makeHostImage } from '../../host/ota/host-image.js';
import { Fleet } from '../../host/sim/fleet.js';
import { startTestGateway, type TestGateway } from '../gateway/support.js';

let t: TestGateway;
test.before(async () => {
  t = await startTestGateway({ tuning: { pairTimeoutMs: 15_000 } });
});
test.after(async () => {
  await t.close();
});

test('a canary rollout of a bad image to 100 meters stops itself after 3 rollbacks; the rest are never offered it', async () => {
  const key = releaseKeyPair(new Uint8Array(32).fill(3));
  const image = makeHostImage({ version: '0.2.0', fault: 'no-reconnect' }, 12_000);
  const manifest = encodeManifest({
    cid: imageCid(image), size: image.length, version: '0.2.0', models: ['gridlet-sim'], minVersion: '0.0.0',
    keyId: keyIdOf(key.publicKey), created: 1_700_000_000,
  });
  const file = encodeReleaseFile({ manifest, signature: signManifest(manifest, key.secretKey) }, image);
  let rollout: Promise<number> | undefined;
  let stoppedDuringRun: any;
  const fleet = new Fleet({
    meters: 100, broker: t.gw.mqttUrl, gateway: t.gw.httpUrl, durationS: 30, intervalMs: 2000, graceS: 30, seed: 11,
    topicPrefix: t.prefix, releaseKeys: [key.publicKey], trialMs: 3000,
    onProgress: (p) => {
      if (p.phase === 'run' && !rollout) {
        rollout = (async () => {
          const up = await t.api('POST', '/api/firmware', { release: Buffer.from(file).toString('base64') });
          assert.is(up.status, 201, up.text);
          const ids = fleet.members.map((m) => m.agent.deviceId);
          const r = await t.api('POST', '/api/firmware/rollouts', { release: '0.2.0', devices: ids, canary: 10, maxFailures: 3 });
          assert.is(r.status, 201, r.text);
          return r.json.id as number;
        })();
      }
      if (p.phase === 'run' && rollout && !stoppedDuringRun) {
        void rollout.then(async (id) => {
          const r = await t.api('GET', `/api/firmware/rollouts/${id}`);
          if (r.json.state === 'stopped') stoppedDuringRun = r.json;
        });
      }
    },
  });
  try {
    const report = await fleet.run();
    const id = await rollout!;
    const r = (await t.api('GET', `/api/firmware/rollouts/${id}`)).json;
    assert.ok(stoppedDuringRun, `the rollout stopped while the fleet ran: ${JSON.stringify(r.counts)}`);
    assert.is(r.state, 'stopped');
    assert.match(r.reason, /failed or rolled back .*the limit is 3\) in the canary stage/);
    const canary = r.devices.filter((d: any) => d.stage === 'canary');
    const rest = r.devices.filter((d: any) => d.stage === 'rest');
    assert.is(canary.length, 10);
    assert.is(rest.length, 90);
    assert.ok(canary.filter((d: any) => d.state === 'rolled-back').length >= 3, JSON.stringify(r.counts));
    assert.ok(rest.every((d: any) => d.state === 'cancelled'), 'the other 90 were never offered the image');
    assert.ok(rest.every((d: any) => /rollout stopped/.test(d.reason)));
    // Every meter runs its old firmware again, and its readings arrived.
    assert.equal(fleet.members.filter((m) => m.firmware !== '0.1.0').map((m) => m.agent.deviceId), []);
    assert.ok(fleet.members.filter((m) => m.boots > 1).length >= 3, 'canary meters restarted into the image and back');
    assert.ok(fleet.members.filter((m) => m.boots > 1).length <= 10, 'only canary meters ever restarted');
    assert.is(report.lost, 0, 'no reading lost, the canaries included');
    assert.is(report.dup, 0);
    const metrics = await (await fetch(`${t.gw.httpUrl}/metrics`)).text();
    assert.match(metrics, /gridlet_firmware_outcomes_total\{state="rolled-back"\} ([3-9]|10)\b/);
    assert.match(metrics, /gridlet_firmware_rollouts_stopped_total 1\b/);
  } finally {
    fleet.stop();
  }
});

test.run();
