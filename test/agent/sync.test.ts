/**
 * End to end: agents as real processes on 127.0.0.1, real LevelDB folders, driven through the shell.
 * SPEC §3: join (server wins, client-only users uploaded, first client wins), login fetch, live deltas.
 */
import test from 'ava';
import { AgentProcess, freePort, joinClient, startServer } from '../helpers/agents.js';

test('seed scenario: the first client to connect wins; the second gets its data and uploads the rest', async (t) => {
  const { server, port } = await startServer(t);
  const [a, b] = await Promise.all([AgentProcess.spawn(t, { name: 'A' }), AgentProcess.spawn(t, { name: 'B' })]);
  // Before synchronizing, each client has its own data.
  await a.ok('user', 'set', 'user1', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  await a.ok('user', 'set', 'user1', 'address-list', '[{"name":"Alice","email":"alice@example.com"}]');
  await a.ok('user', 'set', 'user2', 'home', '{"wallpaper":"blue"}');
  await b.ok('user', 'set', 'user1', 'language', '{"display":"de","keyboard":"de-DE"}');
  await b.ok('user', 'set', 'user3', 'job-defaults', '{"copy":{"copies":2}}');

  await joinClient(a, port);
  await joinClient(b, port);

  // The server and B hold A's user1; user2 and user3 were uploaded by their clients.
  t.deepEqual(await server.value('user', 'user1', 'language'), { display: 'fr', keyboard: 'fr-FR' });
  t.deepEqual(await b.value('user', 'user1', 'language'), { display: 'fr', keyboard: 'fr-FR' });
  t.deepEqual(await b.value('user', 'user1', 'address-list'), [{ name: 'Alice', email: 'alice@example.com' }]);
  t.deepEqual(await server.value('user', 'user2', 'home'), { wallpaper: 'blue' });
  t.deepEqual(await server.value('user', 'user3', 'job-defaults'), { copy: { copies: 2 } });
  t.deepEqual(await b.value('user', 'user3', 'job-defaults'), { copy: { copies: 2 } });
  // A keeps its own data; it never received user3 (nobody logged it in on A).
  t.deepEqual(await a.value('user', 'user1', 'language'), { display: 'fr', keyboard: 'fr-FR' });
  t.is((await a.sh('user', 'get', 'user3')).code, 7);

  // B's replaced value is not silently dropped: it is in B's conflict log.
  const { conflicts } = await b.ok<{ conflicts: { entity: string; item: string; value: unknown; reason: string }[] }>('conflicts', 'list');
  t.deepEqual(
    conflicts.map((c) => [c.entity, c.item, c.reason, c.value]),
    [['u:user1', 'language', 'join', { display: 'de', keyboard: 'de-DE' }]],
  );

  const { users } = await server.ok<{ users: { id: string }[] }>('users', 'list');
  t.deepEqual(users.map((u) => u.id).sort(), ['user1', 'user2', 'user3']);
});

test('live delta reaches a client where the user logged in, and only there', async (t) => {
  const { server, port } = await startServer(t);
  const [a, b, c] = await Promise.all(['A', 'B', 'C'].map((name) => AgentProcess.spawn(t, { name })));
  await Promise.all([a, b, c].map((x) => joinClient(x, port)));
  await a.ok('user', 'set', 'alice', 'personal-buttons', '[{"id":"b1","label":"Scan to me"}]');

  // Login on B fetches alice's current data (by version).
  const mark = b.events.length;
  await b.ok('login', 'alice');
  await b.waitRemote('alice', 'personal-buttons', mark);
  t.deepEqual(await b.value('user', 'alice', 'personal-buttons'), [{ id: 'b1', label: 'Scan to me' }]);

  // A change on A is pushed to B as a delta.
  const mark2 = b.events.length;
  await a.ok('user', 'set', 'alice', 'language', '{"display":"ja","keyboard":"ja-JP"}');
  await b.waitRemote('alice', 'language', mark2);
  t.deepEqual(await b.value('user', 'alice', 'language'), { display: 'ja', keyboard: 'ja-JP' });
  t.deepEqual(await server.value('user', 'alice', 'language'), { display: 'ja', keyboard: 'ja-JP' });

  // C never held alice: it received nothing of hers.
  t.false(c.events.some((e) => e.event === 'item-changed' && e.id === 'alice'));
  t.is((await c.sh('user', 'get', 'alice')).code, 7);

  // A change on the server itself (administrator) reaches both holders.
  const markA = a.events.length;
  const markB = b.events.length;
  await server.ok('user', 'set', 'alice', 'auto-print', 'true');
  await Promise.all([a.waitRemote('alice', 'auto-print', markA), b.waitRemote('alice', 'auto-print', markB)]);
  t.is(await a.value('user', 'alice', 'auto-print'), true);
});

test('group address lists and Shared buttons reach every client', async (t) => {
  const { server, port } = await startServer(t);
  const [a, b] = await Promise.all(['A', 'B'].map((name) => AgentProcess.spawn(t, { name })));
  await a.ok('group', 'set', '01', 'address-list', '[{"name":"Sales","fax":"0123"}]');
  await joinClient(a, port);
  await joinClient(b, port);
  t.deepEqual(await b.value('group', '01', 'address-list'), [{ name: 'Sales', fax: '0123' }]);

  const mark = a.events.length;
  await b.ok('shared', 'set', 'shared-buttons', '[{"id":"s1","label":"Copy A3"}]');
  await a.waitFor((e) => e.event === 'item-changed' && e.kind === 'device' && e.item === 'shared-buttons', 15_000, mark);
  const shared = await a.ok<{ items: Record<string, { value: unknown }> }>('shared', 'get', 'shared-buttons');
  t.deepEqual(shared.items['shared-buttons']!.value, [{ id: 's1', label: 'Copy A3' }]);
  t.truthy(server);
});

test('send destinations in job defaults stay on their machine', async (t) => {
  const { server, port } = await startServer(t);
  const [a, b] = await Promise.all(['A', 'B'].map((name) => AgentProcess.spawn(t, { name })));
  await Promise.all([joinClient(a, port), joinClient(b, port)]);
  await a.ok('user', 'set', 'dan', 'job-defaults', '{"fax":{"destinations":["0311"],"resolution":"fine"}}');
  const mark = b.events.length;
  await b.ok('login', 'dan');
  await b.waitRemote('dan', 'job-defaults', mark);
  t.deepEqual(await server.value('user', 'dan', 'job-defaults'), { fax: { destinations: [], resolution: 'fine' } });
  t.deepEqual(await b.value('user', 'dan', 'job-defaults'), { fax: { destinations: [], resolution: 'fine' } });
  t.deepEqual(await a.value('user', 'dan', 'job-defaults'), { fax: { destinations: ['0311'], resolution: 'fine' } });
});

test('beyond the user bound the server deletes the least recently used user, on its holders too', async (t) => {
  // The users are made while the server's clock reads a day earlier: by its restart, a day has passed
  // since their last use, so the bound may delete them (a user used within the last day never goes).
  const { server, port } = await startServer(t, { maxUsers: 3, port: await freePort(), runArgs: ['--clock-skew', String(-86_400_000)] });
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  for (const u of ['old', 'mid', 'new']) {
    const m = a.events.length;
    await a.ok('user', 'set', u, 'home', '{}');
    await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, m);
  }
  await server.kill();
  server.options.runArgs = [];
  await server.start();
  await server.ok('login', 'old'); // 'old' is used again: 'mid' is now the least recently used
  const mark = a.events.length;
  await a.ok('user', 'set', 'newest', 'home', '{}');
  await a.waitFor((e) => e.event === 'entity-deleted' && e.id === 'mid', 15_000, mark);
  const { users } = await server.ok<{ users: { id: string }[] }>('users', 'list');
  t.deepEqual(users.map((u) => u.id).sort(), ['new', 'newest', 'old']);
  t.is((await a.sh('user', 'get', 'mid')).code, 7);
  const errors = await server.ok<{ entries: { code: string; message: string }[] }>('log', '--level', 'error');
  t.true(errors.entries.some((e) => e.code === 'USER_LIMIT_EXCEEDED' && e.message.includes('mid')));
});
