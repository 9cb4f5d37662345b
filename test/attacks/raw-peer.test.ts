/**
 * The attacker's tool itself: a scripted device (test/helpers/raw-peer.ts) against a real server
 * process. The attack suites rest on it doing the handshake exactly as the wire format says, so it is
 * checked against the agent: with the administrator account it is admitted and joins; with a wrong
 * password it is refused with AUTH_INCORRECT and learns nothing.
 */
import test from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { startServer } from '../helpers/agents.js';
import { RawPeer } from '../helpers/raw-peer.js';

test('a raw peer with the administrator account is admitted, joins and fetches a user', async (t) => {
  const { server, port } = await startServer(t);
  await server.ok('user', 'set', 'ann', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  const peer = await RawPeer.open({ port, localAddress: '127.0.0.2' });
  const welcome = await peer.hello({ admission: { user: 'admin', password: 'secret-pw' } });
  t.is(welcome.resume, 'join');
  peer.send({ type: 'join-offer', entities: [] });
  const plan = await peer.receive('join-plan');
  t.deepEqual(plan.upload, []);
  const snapshot = await peer.receive('snapshot');
  t.true(snapshot.final);
  // A login: the user's items by version.
  peer.send({ type: 'fetch', e: 'u:ann', have: [] });
  const fetched = await peer.receive('snapshot');
  t.is(fetched.reason, 'fetch');
  t.deepEqual(fetched.items.map(([e, n, , val]) => [e, n, val]), [['u:ann', 'language', { display: 'fr', keyboard: 'fr-FR' }]]);
  const devices = await server.ok<{ devices: { id: string; session: string | null }[] }>('devices', 'list');
  t.is(devices.devices.find((d) => d.id === peer.identity.deviceId)?.session, 'live');
  await peer.close();
});

test('a raw peer with a wrong password is refused with AUTH_INCORRECT', async (t) => {
  const { port } = await startServer(t);
  const peer = await RawPeer.open({ port });
  const err = await t.throwsAsync(peer.hello({ admission: { user: 'admin', password: 'wrong' } }), { instanceOf: MfpError });
  t.is(err?.code, 'AUTH_INCORRECT');
  t.is(peer.welcome, undefined);
});
