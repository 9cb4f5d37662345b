/**
 * End to end: admission with the administrator account, the 10-machine group bound, removing a device,
 * mixed protocol versions, and the shell's coded errors.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { AgentProcess, freePort, joinClient, shell, startServer } from '../helpers/agents.js';
import { tempDir } from '../helpers/tmp.js';

test('wrong administrator credentials are refused with AUTH_INCORRECT and the role stays', async (t) => {
  const { server, port } = await startServer(t, { adminPassword: 'right' });
  const a = await AgentProcess.spawn(t, { name: 'A' });
  const wrong = await a.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'admin', '--password', 'wrong');
  t.is(wrong.code, 4);
  t.regex(wrong.stderr, /^error AUTH_INCORRECT: /);
  const wrongUser = await a.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'root', '--password', 'right');
  t.regex(wrongUser.stderr, /^error AUTH_INCORRECT: /);
  t.is((await a.ok<{ role: string }>('status')).role, 'standalone');
  const noCreds = await a.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`);
  t.is(noCreds.code, 2);
  t.regex(noCreds.stderr, /^error USAGE: .*administrator account/);
  // Nothing of A reached the server.
  t.deepEqual((await server.ok<{ devices: unknown[] }>('devices', 'list')).devices.length, 1);
  const errors = await server.ok<{ entries: { code: string }[] }>('log', '--level', 'error');
  t.true(errors.entries.filter((e) => e.code === 'AUTH_INCORRECT').length >= 2);
  // The right password admits it.
  await joinClient(a, port, 'right');
  t.is((await a.ok<{ client: { state: string } }>('status')).client.state, 'live');
});

test('an unreachable server is ADDRESS_INCORRECT', async (t) => {
  const a = await AgentProcess.spawn(t, { name: 'A' });
  const r = await a.sh('role', 'set', 'client', '--server', '127.0.0.1:1', '--user', 'admin', '--password', 'x');
  t.is(r.code, 5);
  t.regex(r.stderr, /^error ADDRESS_INCORRECT: /);
  t.is((await a.ok<{ role: string }>('status')).role, 'standalone');
});

test('the 11th machine is refused with GROUP_FULL; removing a device frees its slot', async (t) => {
  t.timeout(120_000);
  const { server, port } = await startServer(t);
  const clients = await Promise.all(Array.from({ length: 9 }, (_, i) => AgentProcess.spawn(t, { name: `c${i + 1}` })));
  for (const c of clients) await joinClient(c, port);
  const eleventh = await AgentProcess.spawn(t, { name: 'c10' });
  const refused = await eleventh.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'admin', '--password', 'secret-pw');
  t.is(refused.code, 4);
  t.regex(refused.stderr, /^error GROUP_FULL: the group already has 10 machines/);

  const { devices } = await server.ok<{ devices: { id: string; name: string; state: string; serial: string; location: string }[] }>('devices', 'list');
  t.is(devices.length, 10);
  t.is(devices.filter((d) => d.state === 'operating').length, 9);
  const filtered = await server.ok<{ devices: { name: string }[] }>('devices', 'list', '--filter', 'SN-c3');
  t.deepEqual(filtered.devices.map((d) => d.name), ['c3']);

  const victim = clients[2]!;
  const victimId = String(victim.ready!.deviceId);
  const mark = victim.events.length;
  await server.ok('devices', 'remove', victimId);
  const refusedEvent = await victim.waitFor((e) => e.event === 'sync-state' && e.state === 'refused', 15_000, mark);
  t.like(refusedEvent, { error: { code: 'DEVICE_REMOVED' } });
  const gone = await server.sh('devices', 'remove', victimId);
  t.is(gone.code, 7);
  t.regex(gone.stderr, /^error NOT_FOUND: /);
  // The removed machine asked to connect again without the administrator account: the same refusal, code
  // and exit, whether it is still in client role or was set to standalone first.
  const again = await victim.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`);
  t.is(again.code, 4);
  t.regex(again.stderr, /^error DEVICE_REMOVED: /);
  await victim.ok('role', 'set', 'standalone');
  const fromStandalone = await victim.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`);
  t.is(fromStandalone.code, 4);
  t.regex(fromStandalone.stderr, /^error DEVICE_REMOVED: /);

  await joinClient(eleventh, port);
  t.is((await server.ok<{ devices: unknown[] }>('devices', 'list')).devices.length, 10);
});

test('a client of an older protocol is not sent newer items, and its join deletes none of them', async (t) => {
  const { server, port } = await startServer(t);
  const modern = await AgentProcess.spawn(t, { name: 'new' });
  const old = await AgentProcess.spawn(t, { name: 'old', protocol: 1 });
  await joinClient(modern, port);
  await modern.ok('user', 'set', 'kay', 'keychain', '{"place-7f3a":{"user":"kay","host":"nas"}}');
  await modern.ok('user', 'set', 'kay', 'language', '{"display":"en"}');
  await old.ok('user', 'set', 'kay', 'language', '{"display":"nl"}');
  await joinClient(old, port);
  // The old client took the server's copy of what it knows…
  t.deepEqual(await old.value('user', 'kay', 'language'), { display: 'en' });
  // …and the server still has the keychain the old client does not know.
  t.deepEqual(await server.value('user', 'kay', 'keychain'), { 'place-7f3a': { user: 'kay', host: 'nas' } });
  const mark = old.events.length;
  await modern.ok('user', 'set', 'kay', 'keychain', '{}');
  await modern.ok('user', 'set', 'kay', 'home', '{"v":2}');
  await old.waitRemote('kay', 'home', mark);
  t.false(old.events.slice(mark).some((e) => e.item === 'keychain'), 'the keychain was never sent to the old client');
  await old.ok('user', 'set', 'kay', 'language', '{"display":"de"}');
  await old.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark);
  t.deepEqual(await server.value('user', 'kay', 'keychain'), {});
  t.deepEqual(await server.value('user', 'kay', 'language'), { display: 'de' });
});

test('the shell answers bad input with coded errors and exit codes', async (t) => {
  const dir = tempDir(t);
  const notRunning = await shell(dir, 'status');
  t.is(notRunning.code, 3);
  t.deepEqual(notRunning.json, { error: { code: 'AGENT_NOT_RUNNING', message: notRunning.stderr.replace(/^error AGENT_NOT_RUNNING: /, '').trim() } });
  const usage = await shell(dir, 'frobnicate');
  t.is(usage.code, 2);
  t.regex(usage.stderr, /^error USAGE: /);

  const a = await AgentProcess.spawn(t, { name: 'A' });
  // Only the agent's owner can reach its control socket.
  t.is(statSync(a.dataDir).mode & 0o777, 0o700);
  t.is(statSync(join(a.dataDir, 'control.sock')).mode & 0o777, 0o600);
  t.is(statSync(join(a.dataDir, 'config.json')).mode & 0o777, 0o600);
  const again = await a.sh('init', '--name', 'x');
  t.regex(again.stderr, /^error ALREADY_INITIALIZED: /);
  const badJson = await a.sh('user', 'set', 'u', 'language', '{nope');
  t.is(badJson.code, 2);
  t.regex(badJson.stderr, /^error INVALID_ARGUMENT: not valid JSON/);
  const unknown = await a.sh('user', 'set', 'u', 'favourite-colour', '"red"');
  t.regex(unknown.stderr, /^error UNKNOWN_ITEM: /);
  const bigFile = join(dir, 'big.json');
  writeFileSync(bigFile, JSON.stringify({ blob: 'x'.repeat(300_000) }));
  const big = await a.sh('user', 'set', 'u', 'home', `@${bigFile}`);
  t.regex(big.stderr, /^error VALUE_TOO_LARGE: /);
  const okFile = join(dir, 'ok.json');
  writeFileSync(okFile, JSON.stringify(Array.from({ length: 500 }, (_, i) => ({ name: `n${i}`, email: `n${i}@example.com` }))));
  await a.ok('user', 'set', 'v', 'address-list', `@${okFile}`);
  t.is(((await a.value('user', 'v', 'address-list')) as unknown[]).length, 500);
  const noFile = await a.sh('user', 'set', 'u', 'home', '@/nonexistent.json');
  t.regex(noFile.stderr, /^error INVALID_ARGUMENT: cannot read/);
  const badName = await a.sh('user', 'set', '', 'home', '{}');
  t.regex(badName.stderr, /^error INVALID_ARGUMENT: /);
  const notServer = await a.sh('devices', 'list');
  t.is(notServer.code, 6);
  t.regex(notServer.stderr, /^error WRONG_ROLE: /);
  const missing = await a.sh('user', 'get', 'ghost');
  t.regex(missing.stderr, /^error NOT_FOUND: /);
  const noConfirm = await a.sh('users', 'delete', 'u');
  t.regex(noConfirm.stderr, /^error USAGE: .*--yes/);
  const badRole = await a.sh('role', 'set', 'emperor');
  t.regex(badRole.stderr, /^error USAGE: /);
  const badAddress = await a.sh('role', 'set', 'client', '--server', 'host:99999', '--user', 'admin', '--password', 'x');
  t.regex(badAddress.stderr, /^error INVALID_ARGUMENT: not an address/);
  // None of the refused commands changed anything: only v exists.
  t.deepEqual((await a.ok<{ users: { id: string }[] }>('users', 'list')).users.map((u) => u.id), ['v']);
});

test('Delete User Data on the server deletes the user on the clients that hold it', async (t) => {
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  await a.ok('user', 'set', 'olga', 'home', '{}');
  await a.ok('user', 'set', 'oscar', 'home', '{}');
  await a.ok('user', 'set', 'pia', 'home', '{}');
  await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0);
  const listed = await server.ok<{ users: { id: string }[] }>('users', 'list', '--search', 'O');
  t.deepEqual(listed.users.map((u) => u.id).sort(), ['olga', 'oscar']);
  const mark = a.events.length;
  const deleted = await server.ok<{ deleted: string[] }>('users', 'delete', '--search', 'o', '--yes');
  t.deepEqual(deleted.deleted.sort(), ['olga', 'oscar']);
  await Promise.all(['olga', 'oscar'].map((id) => a.waitFor((e) => e.event === 'entity-deleted' && e.id === id, 15_000, mark)));
  t.is((await a.sh('user', 'get', 'olga')).code, 7);
  t.deepEqual(await a.value('user', 'pia', 'home'), {});
  // On a client, Delete User Data deletes this machine's copy only (SPEC §8): the server keeps pia.
  t.deepEqual((await a.ok<{ deleted: string[] }>('users', 'delete', 'pia', '--yes')).deleted, ['pia']);
  t.is((await a.sh('user', 'get', 'pia')).code, 7);
  t.deepEqual(await server.value('user', 'pia', 'home'), {});
});

test('Department IDs: the registered sets are compared by digest; a different set is AUTH_SETTINGS_MISMATCH naming it', async (t) => {
  const dir = tempDir(t);
  const list = (name: string, text: string) => {
    const path = join(dir, `${name}.txt`);
    writeFileSync(path, text);
    return path;
  };
  const dept = (file?: string) => ['--department-ids', 'on', ...(file ? ['--department-id-list', file] : [])];
  const [{ server, port }, same, fewer, none] = await Promise.all([
    startServer(t, { initArgs: dept(list('server', '1\n2\n3\n')) }),
    // The same set, in another order, with a comment, commas and leading zeros: the same digest.
    AgentProcess.spawn(t, { name: 'same', initArgs: dept(list('same', '# accounting, sales, print room\n0000003\n2, 1\n\n')) }),
    AgentProcess.spawn(t, { name: 'fewer', initArgs: dept(list('fewer', '1\n2\n')) }),
    // No list: a data directory as made before lists (no list, no digest in config.json).
    AgentProcess.spawn(t, { name: 'none', initArgs: dept() }),
  ]);
  const config = JSON.parse(readFileSync(join(none.dataDir, 'config.json'), 'utf8')) as { settings: Record<string, unknown>; departmentIdList?: unknown };
  t.deepEqual(config.settings, { loginService: 'user-authentication', departmentIds: true });
  t.is(config.departmentIdList, undefined);

  await joinClient(same, port);
  for (const [agent, why] of [[fewer, /Department IDs differ: server digest [0-9a-f]{12}, client digest [0-9a-f]{12}/], [none, /Department IDs differ: server digest [0-9a-f]{12}, client none registered/]] as const) {
    const r = await agent.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'admin', '--password', 'secret-pw');
    t.is(r.code, 4, r.stderr);
    t.regex(r.stderr, /^error AUTH_SETTINGS_MISMATCH: /);
    t.regex(r.stderr, why);
    t.is((await agent.ok<{ role: string }>('status')).role, 'standalone');
  }
  const { devices } = await server.ok<{ devices: { name: string }[] }>('devices', 'list');
  t.deepEqual(devices.map((d) => d.name).sort(), ['same', 'server']);

  // The registered IDs change with the agent stopped (it reads them at start); then the client is admitted.
  const fixed = list('fixed', '3\n2\n1\n');
  const running = await fewer.sh('settings', 'department-ids', 'on', '--list', fixed);
  t.is(running.code, 3);
  t.regex(running.stderr, /^error AGENT_RUNNING: stop the agent first/);
  await fewer.kill();
  const changed = await shell(fewer.dataDir, 'settings', 'department-ids', 'on', '--list', fixed);
  t.is(changed.code, 0, changed.stderr);
  t.like(changed.json, { departmentIds: true, registered: 3 });
  await fewer.start();
  await joinClient(fewer, port);

  // A server made without a list (before lists) takes the client without one: both are the empty set.
  const { port: port2 } = await startServer(t, { name: 'server-2', initArgs: dept() });
  await joinClient(none, port2);
  t.is((await none.ok<{ client: { state: string } }>('status')).client.state, 'live');
});

test('init refuses a bad Department ID list with INVALID_ARGUMENT and creates nothing', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'ids.txt');
  writeFileSync(file, '1\n12a\n');
  const cases: [string[], RegExp][] = [
    [['--department-ids', 'on', '--department-id-list', file], /Department ID 2 \("12a"\) is not 1-7 digits/],
    [['--department-ids', 'on', '--department-id-list', join(dir, 'missing.txt')], /cannot read the Department ID list/],
    [['--department-id-list', file], /needs Department ID management on/],
  ];
  for (const [i, [args, why]] of cases.entries()) {
    const data = join(dir, `d${i}`);
    const r = await shell(data, 'init', '--name', 'x', '--admin-password', 'pw', ...args);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, /^error INVALID_ARGUMENT: /);
    t.regex(r.stderr, why);
    t.false(existsSync(join(data, 'config.json')));
  }
});

test('a running client that finds a machine of another group at its server\'s address retries, red, and follows the group\'s server when it is back', async (t) => {
  t.timeout(90_000);
  const port = await freePort();
  const { server } = await startServer(t, { port });
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  // The server is replaced at its address by a machine serving a group of its own (a replacement
  // started before its restore): the client is refused at the challenge, before it sends anything.
  await server.kill('SIGTERM');
  const mark = a.events.length;
  const { server: other } = await startServer(t, { name: 'other', port });
  await a.waitFor((e) => e.event === 'sync-state' && (e.error as { code?: string } | undefined)?.code === 'GROUP_MISMATCH', 30_000, mark);
  const status = await a.ok<{ role: string; health: string; healthReasons: { level: string; code: string }[]; client: { state: string } }>('status');
  t.is(status.role, 'client');
  t.not(status.client.state, 'refused', 'it keeps retrying: the manual lets a replacement at the same address be found without touching the clients');
  t.is(status.health, 'red');
  t.true(status.healthReasons.some((r) => r.level === 'red' && r.code === 'GROUP_MISMATCH'));
  const errors = (await a.ok<{ entries: { code: string }[] }>('log', '--level', 'error')).entries.filter((e) => e.code === 'GROUP_MISMATCH');
  t.is(errors.length, 1, 'one Error, not one per retry');
  // Nothing of A reached the other machine.
  t.is((await other.ok<{ devices: unknown[] }>('devices', 'list')).devices.length, 1);
  // The group's server is back at the address: the client follows it on its own and turns green.
  await other.kill('SIGTERM');
  const back = a.events.length;
  await server.start();
  await a.waitFor((e) => e.event === 'sync-state' && e.state === 'live', 60_000, back);
  t.is((await a.ok<{ health: string }>('status')).health, 'green');
  // And on a live client the same role set is a no-op that reports the status.
  t.is((await a.ok<{ client: { state: string } }>('role', 'set', 'client', '--server', `127.0.0.1:${port}`)).client.state, 'live');
});
