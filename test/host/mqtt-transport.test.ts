// The host's Transport over MQTT.js against a real broker (aedes on a TCP port): the agent restarts its
// link with new credentials from inside a message handler (after a PairAccept), and the QoS 1 message
// it was handling must still be acknowledged to the broker (it was not, when the old connection ended
// before MQTT.js wrote the PUBACK), and the link must come back up under the new credentials.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { MqttTransport } from '../../host/ports/mqtt-transport.js';
import { LinkState } from '../../firmware/core/ports.js';

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a restart from inside a message handler acknowledges that message and reconnects with the new credentials', async () => {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // aedes lists connected clients by id (not in its typings).
  const clients = () => (broker as unknown as { clients: { [id: string]: { subscriptions?: object } | undefined } }).clients;
  const logins: (string | undefined)[] = [];
  broker.authenticate = (client, username, _password, done) => {
    logins.push(username);
    done(null, true);
  };
  // PUBACKs the broker received, by client id.
  const acked: string[] = [];
  broker.on('ack', (_packet, client) => acked.push(client.id));
  const t = new MqttTransport(url, 'test', 0.001);
  try {
    const base = { clientId: 'dev-1', subscriptions: ['pair/dev-1', 'down/dev-1'] };
    let connects = 0;
    const seen: string[] = [];
    t.start(base, {
      onConnect: () => connects++,
      onDisconnect: () => {},
      onMessage: (topic) => {
        seen.push(topic);
        // As the agent does on a PairAccept: new credentials, at once.
        if (topic === 'pair/dev-1') t.restart({ ...base, username: 'dev-1', password: 'session' });
      },
    });
    await until(() => t.state === LinkState.up && clients()['dev-1'] !== undefined, 5000, 'the first connection');
    // The broker's subscriptions are in place once the client is listed with them.
    const subscribed = () => Object.keys(clients()['dev-1']?.subscriptions ?? {}).length === 2;
    await until(subscribed, 5000, 'the subscriptions');
    const first = clients()['dev-1'];
    // A QoS 1 message to the device, as the gateway sends a PairAccept.
    await new Promise<void>((resolve, reject) => broker.publish({
      cmd: 'publish', topic: 'pair/dev-1', payload: Buffer.from('accept'), qos: 1, retain: false, dup: false,
    }, (e?: Error) => (e ? reject(e) : resolve())));
    await until(() => connects === 2 && t.state === LinkState.up, 5000, 'the link up again with the new credentials');
    assert.equal(seen, ['pair/dev-1']);
    assert.equal(logins, [undefined, 'dev-1'], 'connected first without, then with credentials');
    await until(() => acked.length === 1, 2000, 'the PUBACK of the message handled during the restart');
    assert.equal(acked, ['dev-1']);
    // The new connection works: a message on the other topic arrives.
    await until(() => clients()['dev-1'] !== first && subscribed(), 5000, 'the subscriptions of the new connection');
    await new Promise<void>((resolve) => broker.publish({
      cmd: 'publish', topic: 'down/dev-1', payload: Buffer.from('x'), qos: 1, retain: false, dup: false,
    }, () => resolve()));
    await until(() => seen.length === 2, 5000, 'a message on the new connection');
    assert.equal(seen, ['pair/dev-1', 'down/dev-1']);
  } finally {
    t.stop();
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test.run();
