/**
 * Mixed firmware (SPEC §3.7), in-process agents on real sockets: an older client (protocol 1, no
 * shortcuts or keychain) keeps fields it does not know inside items it knows, and deletes nothing newer;
 * a protocol-2 client (item names, no codes) and a current one exchange live changes through the server,
 * and so do a protocol-3 client (tweetnacl's XSalsa20-Poly1305) and a current one (ChaCha20-Poly1305).
 */
import test, { type ExecutionContext } from 'ava';
import { PROTOCOL_VERSION } from '../../protocol/limits.js';
import { admit, openAgent, openServer, remoteChange } from '../helpers/inprocess.js';

/** A server, a client of this build and a client speaking an older protocol, both admitted. */
async function mixedGroup(t: ExecutionContext, protocol: number) {
  const server = await openServer(t);
  const modern = await openAgent(t, 'modern');
  const old = await openAgent(t, `v${protocol}`, { protocol });
  await admit(modern, server.port);
  await admit(old, server.port);
  return { server, modern, old };
}

test('unknown fields inside a known item survive a round trip through an older peer', async (t) => {
  const { server, modern, old } = await mixedGroup(t, 1);
  // A newer model writes job defaults with a field the older one does not know, and a keychain.
  const fromNew = { copy: { copies: 2, staple: 'top-left', quietMode: { level: 3, since: '2026-01' } } };
  await modern.setItem('user', 'ines', 'job-defaults', fromNew);
  await modern.setItem('user', 'ines', 'keychain', { 'place-1': { host: 'nas', user: 'ines' } });
  const got = remoteChange(old, 'ines', 'job-defaults');
  await old.login('ines');
  await got;
  const seen = (await old.getItems('user', 'ines', 'job-defaults')).items['job-defaults']!.value as typeof fromNew;
  t.deepEqual(seen, fromNew, 'the older peer holds the unknown fields as they are');
  t.false(old.local.itemStates('u:ines')!.has('keychain'), 'the keychain was never sent to the older peer');
  // It edits the part it knows and writes the whole value back: the newer fields come through intact.
  const back = remoteChange(modern, 'ines', 'job-defaults');
  await old.setItem('user', 'ines', 'job-defaults', { ...seen, copy: { ...seen.copy, copies: 5 } });
  await back;
  const after = (await modern.getItems('user', 'ines', 'job-defaults')).items['job-defaults']!.value;
  t.deepEqual(after, { copy: { copies: 5, staple: 'top-left', quietMode: { level: 3, since: '2026-01' } } });
  const keychain = (await server.getItems('user', 'ines', 'keychain')).items.keychain!.value;
  t.deepEqual(keychain, { 'place-1': { host: 'nas', user: 'ines' } }, 'the server still has the keychain');
});

test('a protocol-2 client is sent item names, a current one codes: live changes flow both ways', async (t) => {
  const { modern, old: v2 } = await mixedGroup(t, 2);
  await modern.login('jo');
  await v2.login('jo');
  // A code sent to the protocol-2 client would be refused there (MESSAGE_INVALID) and nothing would arrive.
  const toV2 = remoteChange(v2, 'jo', 'job-defaults');
  await modern.setItem('user', 'jo', 'job-defaults', { copy: { copies: 3 } });
  await toV2;
  const toModern = remoteChange(modern, 'jo', 'keychain');
  await v2.setItem('user', 'jo', 'keychain', { 'place-9': { host: 'nas9' } });
  await toModern;
  t.deepEqual((await v2.getItems('user', 'jo', 'job-defaults')).items['job-defaults']!.value, { copy: { copies: 3 } });
  t.deepEqual((await modern.getItems('user', 'jo', 'keychain')).items.keychain!.value, { 'place-9': { host: 'nas9' } });
});

test('a protocol-3 client seals with XSalsa20-Poly1305, a current one with ChaCha20-Poly1305: live changes flow both ways', async (t) => {
  const { modern, old: v3 } = await mixedGroup(t, 3);
  t.like(modern.status().client, { state: 'live', session: { protocol: PROTOCOL_VERSION, cipher: 'chacha20-poly1305' } });
  t.like(v3.status().client, { state: 'live', session: { protocol: 3, cipher: 'xsalsa20-poly1305' } });
  await modern.login('kai');
  await v3.login('kai');
  const toV3 = remoteChange(v3, 'kai', 'job-defaults');
  await modern.setItem('user', 'kai', 'job-defaults', { copy: { copies: 4 } });
  await toV3;
  const toModern = remoteChange(modern, 'kai', 'home');
  await v3.setItem('user', 'kai', 'home', { 'start-screen': 'copy' });
  await toModern;
  t.deepEqual((await v3.getItems('user', 'kai', 'job-defaults')).items['job-defaults']!.value, { copy: { copies: 4 } });
  t.deepEqual((await modern.getItems('user', 'kai', 'home')).items.home!.value, { 'start-screen': 'copy' });
});
