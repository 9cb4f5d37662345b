/**
 * End to end, agents as real processes (SPEC §8, "If the Data in a Specific Client Machine Differs from
 * the Server Machine"): a client that cannot give a logging-in user current data — its copy differs from
 * the server's by checksum, or the fetch failed (the fault proxy partitions or cuts the link) — reports
 * `Synchronize Custom Settings: Log in again for synchronization.` (a `login-again` event and a line in
 * `status`), and the next login repairs it; `users delete USER --yes` on a client deletes that machine's
 * copy only, and the next login fetches it again.
 */
import test from 'ava';
import { FaultProxy } from '../../tools/proxy.js';
import { AgentProcess, humanShell, joinClient, startServer, type AgentEvent } from '../helpers/agents.js';

const MESSAGE = 'Synchronize Custom Settings: Log in again for synchronization.';

type Status = { client: { state: string; loginAgain?: { user: string; reason: string }[] }; healthReasons: { code: string; message: string }[] };

const loginAgain = (user: string, required: boolean) => (e: AgentEvent) => e.event === 'login-again' && e.user === user && e.required === required;

/** Each entity's checksum on a machine (what `users list --checksums` shows), through the control socket. */
async function checksums(agent: AgentProcess): Promise<Record<string, string | null>> {
  const { users } = await agent.control<{ users: { kind: string; id: string; checksum: string | null }[] }>('users.list', { search: '', checksums: true });
  return Object.fromEntries(users.map((u) => [`${u.kind}:${u.id}`, u.checksum]));
}

/** The agent's status, through the control socket (the shell's own line is checked once). */
const statusOf = (agent: AgentProcess) => agent.control<Status>('status');
/** A user logs in on the panel, through the control socket. */
const login = (agent: AgentProcess, user: string) => agent.control('login', { user });
/** One item's value, through the control socket. */
async function valueOf(agent: AgentProcess, kind: 'user' | 'group', id: string, item: string): Promise<unknown> {
  return (await agent.control<{ items: Record<string, { value: unknown }> }>('item.get', { kind, id, item })).items[item]!.value;
}

test('a client copy that differs from the server\'s: the login says log in again, the next login repairs it; users delete on the client deletes its copy only', async (t) => {
  const { server, port } = await startServer(t);
  const [a, b] = await Promise.all([AgentProcess.spawn(t, { name: 'A' }), AgentProcess.spawn(t, { name: 'B' })]);
  await Promise.all([joinClient(a, port), joinClient(b, port)]);
  await b.ok('user', 'set', 'alice', 'language', '{"display":"ja","keyboard":"ja-JP"}');
  await b.ok('user', 'set', 'alice', 'address-list', '[{"name":"Legal","email":"legal@example.com"}]');
  await b.ok('user', 'set', 'alice', 'job-defaults', '{"fax":{"destinations":["0312345678"]}}');
  await b.ok('user', 'set', 'bob', 'home', '{"wallpaper":"blue"}');
  await b.waitFor((e) => e.event === 'changes-acked' && e.queued === 0);
  let mark = a.events.length;
  await login(a, 'alice');
  await login(a, 'bob');
  await Promise.all([a.waitRemote('alice', 'address-list', mark), a.waitRemote('bob', 'home', mark)]);
  t.deepEqual((await checksums(a))['user:alice'], (await checksums(server))['user:alice']);
  // A's own send destinations stay on A (blanked in the group's copy): not a difference.
  await a.ok('user', 'set', 'alice', 'job-defaults', '{"fax":{"destinations":["0398765432"]}}');
  await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark);
  await login(a, 'alice');
  await login(a, 'bob');
  // (Checked at the end: these logins, whose copies equal the server's, asked for nothing.)

  // Changes made while A's synchronization was stopped never reach the server: A's copy diverges.
  await a.ok('role', 'set', 'standalone');
  await a.ok('user', 'set', 'alice', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  await a.ok('user', 'set', 'alice', 'auto-print', 'true');
  await a.ok('user', 'set', 'bob', 'home', '{"wallpaper":"red"}');
  await a.ok('role', 'set', 'client', '--server', `127.0.0.1:${port}`);
  t.is((await statusOf(a)).client.state, 'live');
  t.deepEqual(await valueOf(a, 'user', 'alice', 'language'), { display: 'fr', keyboard: 'fr-FR' }, 'resumed by cursor: the copy still differs');
  const serverBefore = await checksums(server);
  const bBefore = await checksums(b);
  t.not((await checksums(a))['user:alice'], serverBefore['user:alice']);

  // The login fetches by version (nothing newer) and finds the copy differs by checksum.
  mark = a.events.length;
  await login(a, 'alice');
  const required = await a.waitFor(loginAgain('alice', true), 15_000, mark);
  t.like(required, { reason: 'checksum', message: MESSAGE });
  const status = await statusOf(a);
  t.like(status.client.loginAgain, [{ user: 'alice', reason: 'checksum' }]);
  t.true(status.healthReasons.some((r) => r.code === 'LOGIN_AGAIN' && r.message.includes(MESSAGE)));
  t.true((await humanShell(a.dataDir, 'status')).stdout.includes(`${MESSAGE} (user alice: this machine's copy differs from the server's`));

  // Logging in again repairs it: the server's whole copy replaces A's; what A loses is in its conflict log.
  mark = a.events.length;
  await login(a, 'alice');
  await a.waitFor(loginAgain('alice', false), 15_000, mark);
  t.deepEqual(await valueOf(a, 'user', 'alice', 'language'), { display: 'ja', keyboard: 'ja-JP' });
  t.false((await a.ok<{ items: Record<string, { set: boolean }> }>('user', 'get', 'alice')).items['auto-print']!.set);
  t.is((await checksums(a))['user:alice'], serverBefore['user:alice']);
  t.is((await statusOf(a)).client.loginAgain, undefined);
  t.false((await statusOf(a)).healthReasons.some((r) => r.code === 'LOGIN_AGAIN'));
  const { conflicts } = await a.ok<{ conflicts: { entity: string; item: string; reason: string; value: unknown }[] }>('conflicts', 'list');
  t.deepEqual(
    conflicts.filter((c) => c.entity === 'u:alice').map((c) => [c.item, c.reason, c.value]).sort(),
    [['auto-print', 'resync', true], ['language', 'resync', { display: 'fr', keyboard: 'fr-FR' }]],
  );

  // Deleting User Data on the client deletes A's copy of bob only; the next login fetches it again.
  const deleted = await a.ok<{ deleted: string[] }>('users', 'delete', 'bob', '--yes');
  t.deepEqual(deleted.deleted, ['bob']);
  t.is((await a.sh('user', 'get', 'bob')).code, 7);
  t.deepEqual(await checksums(server), serverBefore, 'the server keeps its copy');
  t.deepEqual(await checksums(b), bBefore, 'the other client keeps its copy');
  mark = a.events.length;
  await login(a, 'bob');
  await a.waitRemote('bob', 'home', mark);
  t.deepEqual(await valueOf(a, 'user', 'bob', 'home'), { wallpaper: 'blue' });
  t.is((await checksums(a))['user:bob'], serverBefore['user:bob']);
  t.false(a.events.slice(mark).some((e) => e.event === 'login-again'), 'a fetch after a delete is whole: nothing to repair');

  // A user group, which every client holds, is fetched again at once.
  await b.ok('group', 'set', '07', 'address-list', '[{"name":"Sales","email":"sales@example.com"}]');
  await a.waitFor((e) => e.event === 'item-changed' && e.kind === 'group' && e.id === '07');
  mark = a.events.length;
  t.deepEqual((await a.ok<{ deleted: string[] }>('users', 'delete', 'g:07', '--yes')).deleted, ['07']);
  await a.waitFor((e) => e.event === 'item-changed' && e.kind === 'group' && e.id === '07' && e.source === 'remote', 15_000, mark);
  t.deepEqual(await valueOf(a, 'group', '07', 'address-list'), [{ name: 'Sales', email: 'sales@example.com' }]);

  // Every login-again A reported: only alice's divergence, and its repair (the answers to the logins
  // above came on the same session before the later ones, so they are all in by now).
  t.deepEqual(
    a.events.filter((e) => e.event === 'login-again').map((e) => [e.user, e.required, e.reason]),
    [['alice', true, 'checksum'], ['alice', false, undefined]],
  );

  // On a pure server there is no copy of its own: --local is WRONG_ROLE; without it, the group's delete.
  const local = await server.sh('users', 'delete', 'bob', '--local', '--yes');
  t.is(local.code, 6);
  t.regex(local.stderr, /^error WRONG_ROLE: a server has no copy of its own/);
});

test('a login whose fetch fails (server unreachable, or the session cut before the answer) says log in again; the next login clears it', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  const proxy = await FaultProxy.start({ targetPort: port });
  t.teardown(() => proxy.close());
  await joinClient(a, proxy.port);
  await server.ok('user', 'set', 'carol', 'home', '{"wallpaper":"green"}');
  await server.ok('user', 'set', 'dave', 'home', '{"wallpaper":"grey"}');

  // The server is unreachable (a partition): the login is told at once.
  let mark = a.events.length;
  proxy.refusing = true;
  proxy.cutAll();
  await a.waitFor((e) => e.event === 'sync-state' && e.state === 'offline', 15_000, mark);
  mark = a.events.length;
  await login(a, 'carol');
  t.like(await a.waitFor(loginAgain('carol', true), 15_000, mark), { reason: 'fetch-failed', message: MESSAGE });
  t.like((await statusOf(a)).client.loginAgain, [{ user: 'carol', reason: 'fetch-failed' }]);

  // Back online, the fetch is retried — but the logged-in user got old data: the message stays until a login.
  mark = a.events.length;
  proxy.refusing = false;
  await a.waitRemote('carol', 'home', mark);
  t.like((await statusOf(a)).client.loginAgain, [{ user: 'carol' }]);
  mark = a.events.length;
  await login(a, 'carol');
  await a.waitFor(loginAgain('carol', false), 15_000, mark);
  t.deepEqual(await valueOf(a, 'user', 'carol', 'home'), { wallpaper: 'green' });
  t.is((await statusOf(a)).client.loginAgain, undefined);

  // The link stalls with the fetch in flight and is cut: the login's data never arrived.
  proxy.stall();
  mark = a.events.length;
  await login(a, 'dave');
  proxy.cutAll();
  proxy.resume();
  t.like(await a.waitFor(loginAgain('dave', true), 15_000, mark), { reason: 'fetch-failed' });
  await a.waitFor((e) => e.event === 'sync-state' && e.state === 'live', 30_000, mark);
  mark = a.events.length;
  await login(a, 'dave');
  await a.waitFor(loginAgain('dave', false), 15_000, mark);
  t.deepEqual(await valueOf(a, 'user', 'dave', 'home'), { wallpaper: 'grey' });
  t.is((await statusOf(a)).client.loginAgain, undefined);
});

test('on a server-client, users delete is the group\'s; --local deletes its own client\'s copy only', async (t) => {
  const sc = await AgentProcess.spawn(t, { name: 'SC' });
  await sc.ok('role', 'set', 'server-client');
  await sc.ok('user', 'set', 'erin', 'home', '{"wallpaper":"teal"}');
  await sc.ok('user', 'set', 'finn', 'home', '{"wallpaper":"navy"}');
  await sc.waitFor((e) => e.event === 'changes-acked' && e.queued === 0);
  const ids = async () => (await sc.ok<{ users: { id: string }[] }>('users', 'list')).users.map((u) => u.id).sort();
  t.deepEqual(await ids(), ['erin', 'finn']);

  t.deepEqual((await sc.ok<{ deleted: string[] }>('users', 'delete', 'erin', '--local', '--yes')).deleted, ['erin']);
  t.is((await sc.sh('user', 'get', 'erin')).code, 7, 'this machine\'s own copy is gone');
  t.deepEqual(await ids(), ['erin', 'finn'], 'the group keeps erin');
  const mark = sc.events.length;
  await login(sc, 'erin');
  await sc.waitRemote('erin', 'home', mark);
  t.deepEqual(await valueOf(sc, 'user', 'erin', 'home'), { wallpaper: 'teal' });

  // Without --local: Delete User Data across the group, as on a server.
  t.deepEqual((await sc.ok<{ deleted: string[] }>('users', 'delete', 'finn', '--yes')).deleted, ['finn']);
  t.deepEqual(await ids(), ['erin']);
});
