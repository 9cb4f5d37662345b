/**
 * End to end: Data Sharing Details (SPEC §4) through real processes and the shell — a scope change is
 * refused while clients are connected, each transition's resets, device-specific values kept per
 * machine and given back to a machine that lost its store.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { AgentProcess, freePort, joinClient, startServer } from '../helpers/agents.js';

type Devices = { devices: { name: string; session: string | null }[] };

/** Waits until the server sees none of its clients connected (their sockets close asynchronously). */
async function noClients(server: AgentProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { devices } = await server.ok<Devices>('devices', 'list');
    if (!devices.some((d) => d.session !== null)) return;
  }
  throw new Error('clients still connected');
}

const live = (e: Record<string, unknown>) => e.event === 'sync-state' && e.state === 'live';

test('sharing scope: refused while clients run; shared → device keeps values per machine; device → shared resets', async (t) => {
  t.timeout(120_000);
  const port = await freePort();
  const { server } = await startServer(t, { port });
  const [a, b] = await Promise.all(['A', 'B'].map((name) => AgentProcess.spawn(t, { name })));
  await joinClient(a, port);
  await joinClient(b, port);
  const shared = { copy: { copies: 2, sides: 'duplex' } };
  const m0 = b.events.length;
  await a.ok('user', 'set', 'ulla', 'job-defaults', JSON.stringify(shared));
  await a.ok('shared', 'set', 'shared-buttons', '[{"id":"s1","label":"Scan to HR"}]');
  await b.ok('login', 'ulla');
  await b.waitRemote('ulla', 'job-defaults', m0);
  await b.waitFor((e) => e.event === 'item-changed' && e.item === 'shared-buttons', 15_000, m0);

  // Refused while a client is connected.
  const listed = await server.ok<{ items: { item: string; scope: string }[] }>('sharing', 'list');
  t.deepEqual(listed.items.map((i) => `${i.item}:${i.scope}`), ['timeline:shared', 'job-defaults:shared', 'previous-settings:shared']);
  const refused = await server.sh('sharing', 'set', 'job-defaults', 'device');
  t.is(refused.code, 6);
  t.regex(refused.stderr, /^error CLIENTS_ACTIVE: .*stop them/);
  const always = await server.sh('sharing', 'set', 'language', 'device');
  t.regex(always.stderr, /^error INVALID_ARGUMENT: language is always shared/);

  // Stop the clients, change, restart them.
  await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
  await noClients(server);
  const changed = await server.ok<{ items: { item: string; scope: string }[]; reset: number }>('sharing', 'set', 'job-defaults', 'device');
  t.is(changed.items.find((i) => i.item === 'job-defaults')!.scope, 'device');
  t.is(changed.reset, 1, "the server's shared job defaults were reset");
  t.deepEqual(await server.value('user', 'ulla', 'job-defaults'), {});
  await Promise.all([a.start(), b.start()]);
  await Promise.all([a.waitFor(live, 30_000), b.waitFor(live, 30_000)]);
  // Every machine keeps the shared value as its own starting value.
  t.deepEqual(await a.value('user', 'ulla', 'job-defaults'), shared);
  t.deepEqual(await b.value('user', 'ulla', 'job-defaults'), shared);
  t.is((await b.ok<{ items: { item: string; scope: string }[] }>('sharing', 'list')).items.find((i) => i.item === 'job-defaults')!.scope, 'device');

  // Now a change on A stays on A: B receives the language change made after it, not the job defaults.
  const m1 = b.events.length;
  await a.ok('user', 'set', 'ulla', 'job-defaults', '{"copy":{"copies":9}}');
  await a.ok('user', 'set', 'ulla', 'language', '{"display":"sv"}');
  await b.waitRemote('ulla', 'language', m1);
  t.false(b.events.slice(m1).some((e) => e.item === 'job-defaults'), 'B never received A\'s device-specific job defaults');
  t.deepEqual(await b.value('user', 'ulla', 'job-defaults'), shared);
  t.deepEqual(await a.value('user', 'ulla', 'job-defaults'), { copy: { copies: 9 } });
  t.deepEqual(await server.value('user', 'ulla', 'job-defaults'), {}, 'the shared copy is untouched');

  // device → shared: each machine's device-specific values are reset before synchronizing, and so are
  // the Shared buttons.
  await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
  await noClients(server);
  const back = await server.ok<{ reset: number }>('sharing', 'set', 'job-defaults', 'shared');
  t.is(back.reset, 1, 'the Shared buttons were reset');
  t.deepEqual((await server.ok<{ items: Record<string, { value: unknown }> }>('shared', 'get', 'shared-buttons')).items['shared-buttons']!.value, []);
  await Promise.all([a.start(), b.start()]);
  await Promise.all([a.waitFor(live, 30_000), b.waitFor(live, 30_000)]);
  for (const x of [a, b]) {
    t.deepEqual(await x.value('user', 'ulla', 'job-defaults'), {}, `${x.options.name}: reset to the default`);
    const buttons = await x.ok<{ items: Record<string, { value: unknown }> }>('shared', 'get', 'shared-buttons');
    t.deepEqual(buttons.items['shared-buttons']!.value, [], `${x.options.name}: Shared buttons reset`);
  }
  // Shared again: a change on A reaches B.
  const m2 = b.events.length;
  await a.ok('user', 'set', 'ulla', 'job-defaults', '{"copy":{"copies":3}}');
  await b.waitRemote('ulla', 'job-defaults', m2);
  t.deepEqual(await b.value('user', 'ulla', 'job-defaults'), { copy: { copies: 3 } });
});

test('a machine that lost its store gets its shared data from the group and its device-specific data from its copy', async (t) => {
  t.timeout(120_000);
  const port = await freePort();
  const { server } = await startServer(t, { port });
  await server.ok('sharing', 'set', 'previous-settings', 'device');
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  await a.ok('user', 'set', 'vic', 'previous-settings', '{"copy":{"zoom":141}}');
  const m = a.events.length;
  await a.ok('user', 'set', 'vic', 'language', '{"display":"pt"}');
  await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, m);
  t.deepEqual(await server.value('user', 'vic', 'previous-settings'), {}, 'the device-specific value is not shared');

  // The machine's store is lost (its identity survives): restart, admit again.
  await a.kill('SIGTERM');
  rmSync(join(a.dataDir, 'local'), { recursive: true, force: true });
  await a.start();
  t.is((await a.ok<{ role: string }>('status')).role, 'standalone');
  await joinClient(a, port);
  t.deepEqual(await a.value('user', 'vic', 'previous-settings'), { copy: { zoom: 141 } }, 'device-specific data from its copy');
  const m2 = a.events.length;
  await a.ok('login', 'vic');
  await a.waitRemote('vic', 'language', m2);
  t.deepEqual(await a.value('user', 'vic', 'language'), { display: 'pt' }, 'shared data from the group');
});
