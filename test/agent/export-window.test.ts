/**
 * Import / export through the library API, in-process agents on real sockets and LevelDB folders:
 * what an import replaces, that a damaged file changes nothing, and the server-client's export window
 * — its selection bounds, bringing users up to date, and its 15-minute end on a ManualClock.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { Agent } from '../../agent/agent.js';
import { ManualClock } from '../../agent/clock.js';
import { MfpError, type ErrorCode } from '../../protocol/errors.js';
import { decodeExportFile, encodeExportFile, EXPORT_FORMAT, type ExportBody } from '../../storage/export-file.js';
import type { Store } from '../../storage/store.js';
import { admit, openAgent, syncState } from '../helpers/inprocess.js';
import { tempDir } from '../helpers/tmp.js';

/** Every key and value of a store, to compare before and after. */
async function dump(store: Store): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [k, v] of store.kv.entries({})) out.set(k, Buffer.from(v).toString('hex'));
  return out;
}

/** Asserts a coded rejection: class, code and message, each on its own. */
async function rejects(t: ExecutionContext, p: Promise<unknown>, code: ErrorCode, message: RegExp, label?: string): Promise<void> {
  const err = await t.throwsAsync(p, { instanceOf: MfpError }, label);
  t.is(err?.code, code, label);
  t.regex(err?.message ?? '', message, label);
}

/** Resolves once the agent's queued changes are all acknowledged. */
function drained(agent: Agent): Promise<void> {
  if (agent.local.queueSize === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (a: { queued: number }) => {
      if (a.queued === 0) {
        agent.off('changes-acked', on);
        resolve();
      }
    };
    agent.on('changes-acked', on);
  });
}

/** The manual: "personalized data can be exported for only 15 minutes" (stated here, not read from the code). */
const FIFTEEN_MINUTES = 15 * 60_000;
/** What the prepare command tells the technician: the manual's caution that later logins may overwrite the prepared data. */
const WARNING = 'users who log in on any machine of the group during the window may overwrite the prepared data';

async function value(agent: Agent, kind: 'user' | 'group' | 'device', id: string, item: string): Promise<unknown> {
  return (await agent.getItems(kind, id, item)).items[item]!.value;
}

test('standalone: an import creates users and replaces the items the file holds, keeping the others', async (t) => {
  const dir = tempDir(t);
  const a = await openAgent(t, 'A');
  await a.setItem('user', 'alice', 'language', { display: 'fr', keyboard: 'fr-FR' });
  await a.setItem('user', 'alice', 'job-defaults', { fax: { destinations: ['0311'], resolution: 'fine' } });
  await a.setItem('user', 'bob', 'address-list', [{ name: 'Carol', email: 'carol@example.com' }]);
  await a.setItem('group', '01', 'address-list', [{ name: 'Sales', fax: '0123' }]);
  await a.setItem('device', '', 'shared-buttons', [{ id: 's1', label: 'Copy A3' }]);
  const file = join(dir, 'a.mfpx');
  const exported = await a.exportData(file);
  t.like(exported, { path: file, selection: 'all', counts: { users: 2, groups: 1, shared: 1, items: 5 } });
  t.is(exported.bytes, readFileSync(file).length);
  t.is(decodeExportFile(readFileSync(file)).header.source.deviceId, a.identity.deviceId);

  const b = await openAgent(t, 'B');
  await b.setItem('user', 'alice', 'language', { display: 'de', keyboard: 'de-DE' });
  await b.setItem('user', 'alice', 'home', { wallpaper: 'green' });
  await b.setItem('user', 'zoe', 'auto-print', true);
  const events: string[] = [];
  b.on('item-changed', (e) => events.push(`${e.source} ${e.kind} ${e.id} ${e.item}`));
  const imported = await b.importData(file);
  t.like(imported, { applied: 5, conflicts: 0, counts: exported.counts, source: { deviceId: a.identity.deviceId, name: 'A', role: 'standalone' } });

  for (const [kind, id, item] of [['user', 'alice', 'language'], ['user', 'alice', 'job-defaults'], ['user', 'bob', 'address-list'], ['group', '01', 'address-list'], ['device', '', 'shared-buttons']] as const) {
    t.deepEqual(await value(b, kind, id, item), await value(a, kind, id, item), `${kind} ${id} ${item}`);
  }
  // Send destinations are this machine's data and travel in the file.
  t.deepEqual(await value(b, 'user', 'alice', 'job-defaults'), { fax: { destinations: ['0311'], resolution: 'fine' } });
  // Items and users the file does not hold stay.
  t.deepEqual(await value(b, 'user', 'alice', 'home'), { wallpaper: 'green' });
  t.is(await value(b, 'user', 'zoe', 'auto-print'), true);
  t.deepEqual(b.listUsers().map((u) => u.id).sort(), ['01', 'alice', 'bob', 'zoe']);
  t.is(events.length, 5);
  t.true(events.includes('local user bob address-list'));
  await b.local.flush(); // sync log lines are written in the background
  t.true((await b.syncLog()).some((e) => e.code === 'IMPORTED' && e.message.includes('from ' + file)));
});

test('a damaged, truncated or foreign file is IMPORT_INVALID and changes nothing', async (t) => {
  const dir = tempDir(t);
  const a = await openAgent(t, 'A');
  await a.setItem('user', 'alice', 'language', { display: 'fr' });
  await a.setItem('user', 'bob', 'home', { wallpaper: 'blue' });
  await a.setItem('group', '07', 'address-list', [{ name: 'Ops' }]);
  const good = join(dir, 'good.mfpx');
  await a.exportData(good);
  const bytes = readFileSync(good);

  const b = await openAgent(t, 'B');
  await b.setItem('user', 'alice', 'language', { display: 'de' });
  const before = await dump(b.local);
  const bad = join(dir, 'bad.mfpx');
  const attempt = async (content: Uint8Array, label: string) => {
    writeFileSync(bad, content);
    await rejects(t, b.importData(bad), 'IMPORT_INVALID', /^not a valid export file: /, label);
  };
  for (let n = 0; n < bytes.length; n++) await attempt(bytes.subarray(0, n), `prefix of ${n} bytes`);
  for (let i = 0; i < bytes.length; i++) {
    const flipped = Buffer.from(bytes);
    flipped[i]! ^= 0x20;
    await attempt(flipped, `byte ${i} flipped`);
  }
  const wrongMagic = Buffer.from(bytes);
  wrongMagic[1] = 0x4e;
  await attempt(wrongMagic, 'wrong magic');
  const future = Buffer.from(bytes);
  future.writeUInt16BE(EXPORT_FORMAT + 1, 8);
  await attempt(future, 'future format');
  await attempt(Buffer.from(JSON.stringify({ users: [{ id: 'alice', items: { language: { display: 'xx' } } }] })), 'JSON');
  await attempt(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)), 'other bytes');
  await rejects(t, b.importData(join(dir, 'missing.mfpx')), 'IMPORT_INVALID', /cannot read/);

  t.deepEqual(await dump(b.local), before, 'the store is byte for byte what it was');
  t.deepEqual(await value(b, 'user', 'alice', 'language'), { display: 'de' });
  t.deepEqual(b.listUsers().map((u) => u.id), ['alice']);
  // The same file, intact, imports.
  await b.importData(good);
  t.deepEqual(await value(b, 'user', 'alice', 'language'), { display: 'fr' });
});

test('a server exports and imports the group\'s copy; a damaged file leaves it unchanged', async (t) => {
  const dir = tempDir(t);
  const s = await openAgent(t, 'S');
  await s.setRole('server');
  await s.setItem('user', 'alice', 'language', { display: 'fr' });
  const file = join(dir, 's.mfpx');
  t.like(await s.exportData(file), { counts: { users: 1, items: 1 } });
  const before = await dump(s.group!);
  const body: ExportBody = { users: [{ id: 'alice', items: { language: { display: 'it' } } }, { id: 'nina', items: { home: {} } }], groups: [], shared: null };
  const bytes = encodeExportFile({ software: 'x', createdAt: 1, source: { deviceId: 'd', name: 'n', role: 'standalone' }, selection: 'all' }, body);
  writeFileSync(file, bytes.subarray(0, bytes.length - 1));
  await rejects(t, s.importData(file), 'IMPORT_INVALID', /truncated/);
  t.deepEqual(await dump(s.group!), before);
  const seq = s.group!.seq;
  writeFileSync(file, bytes);
  t.like(await s.importData(file), { applied: 2, conflicts: 0 });
  // Applied as administrator changes of the group's copy: new versions in the change log.
  t.is(s.group!.seq, seq + 2);
  t.deepEqual(await value(s, 'user', 'alice', 'language'), { display: 'it' });
  t.true(s.listUsers().some((u) => u.id === 'nina'));
  t.false(s.local.hasEntity('u:nina'), 'a server does not apply group data to its own users');
});

test('the export window of a server-client closes after 15 minutes on the injected clock; no timer is left', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const sc = await openAgent(t, 'SC', { clock });
  await sc.setItem('user', 'alice', 'language', { display: 'fr' });
  await sc.setItem('user', 'bob', 'home', { wallpaper: 'blue' });
  await sc.setRole('server-client');
  const file = join(dir, 'sc.mfpx');
  await rejects(t, sc.exportData(file), 'SYNC_RESTRICTED', /while client synchronization runs \(role server-client\): prepare the users first/);
  await rejects(t, sc.importData(file), 'SYNC_RESTRICTED', /while client synchronization runs/);

  const opened = clock.now();
  const prepared = await sc.prepareExport({ users: ['alice'] });
  t.deepEqual(prepared, { users: ['alice'], groups: [], openedAt: opened, endsAt: opened + FIFTEEN_MINUTES, warning: WARNING });
  t.is(sc.exportWindow?.endsAt, opened + FIFTEEN_MINUTES);
  const inside = await sc.exportData(file);
  t.like(inside, { selection: 'prepared', counts: { users: 1, groups: 0, shared: 0 }, window: { endsAt: opened + FIFTEEN_MINUTES } });
  t.deepEqual(decodeExportFile(readFileSync(file)).body.users.map((u) => u.id), ['alice']);

  clock.advance(FIFTEEN_MINUTES - 1);
  t.like(await sc.importData(file), { applied: 1 });
  clock.advance(1);
  t.is(sc.exportWindow, undefined);
  await rejects(t, sc.exportData(file), 'SYNC_RESTRICTED', /while client synchronization runs/, 'export after the window');
  await rejects(t, sc.importData(file), 'SYNC_RESTRICTED', /while client synchronization runs/, 'import after the window');
  await sc.local.flush(); // sync log lines are written in the background
  const log = await sc.syncLog();
  t.true(log.some((e) => e.code === 'EXPORT_PREPARED' && e.message.includes('overwrite')));
  t.true(log.some((e) => e.code === 'EXPORT_WINDOW_CLOSED'));

  // A new window, then the agent closes: its timer goes with it.
  await sc.prepareExport({ users: ['bob'] });
  await sc.close();
  t.is(clock.pending, 0, 'no timer is left once the agent is closed');
});

test('a role change closes the export window', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const sc = await openAgent(t, 'SC', { clock });
  await sc.setItem('user', 'alice', 'language', { display: 'fr' });
  await sc.setRole('server-client');
  await sc.prepareExport({ users: ['alice'] });
  t.truthy(sc.exportWindow);
  await sc.setRole('server');
  t.is(sc.exportWindow, undefined);
  await sc.setRole('server-client');
  t.is(sc.exportWindow, undefined, 'it does not come back with the role');
  await rejects(t, sc.exportData(join(tempDir(t), 'x.mfpx')), 'SYNC_RESTRICTED', /prepare/);
});

test('export prepare fetches the selected users from the server until they are current', async (t) => {
  const dir = tempDir(t);
  const sc = await openAgent(t, 'SC');
  await sc.setRole('server-client');
  const b = await openAgent(t, 'B');
  await admit(b, sc.port);
  await b.setItem('user', 'alice', 'language', { display: 'ja' });
  await b.setItem('user', 'alice', 'personal-buttons', [{ id: 'b1' }]);
  await b.setItem('group', '05', 'address-list', [{ name: 'Legal' }]);
  await drained(b);
  t.false(sc.local.hasEntity('u:alice'), 'the server-client\'s own users do not include alice yet');

  await sc.prepareExport({ users: ['alice'], groups: ['05'] });
  for (const e of ['u:alice', 'g:05']) {
    t.deepEqual(
      [...sc.local.itemStates(e)!].map(([n, s]) => [n, s.v]),
      [...sc.group!.itemStates(e)!].map(([n, s]) => [n, s.v]),
      `${e}: this machine holds the server's versions`,
    );
  }
  const file = join(dir, 'p.mfpx');
  await sc.exportData(file);
  const { body } = decodeExportFile(readFileSync(file));
  t.deepEqual(body.users, [{ id: 'alice', items: { language: { display: 'ja' }, 'personal-buttons': [{ id: 'b1' }] } }]);
  t.deepEqual(body.groups, [{ id: '05', items: { 'address-list': [{ name: 'Legal' }] } }]);
  t.is(body.shared, null);
  // The prepared user is held from now on: a later change reaches this machine.
  await b.setItem('user', 'alice', 'language', { display: 'ko' });
  await drained(b);
  await sc.prepareExport({ users: ['alice'] });
  t.deepEqual(await value(sc, 'user', 'alice', 'language'), { display: 'ko' });
  await sc.close();
  await rejects(t, b.prepareExport(), 'WRONG_ROLE', /this machine is client/);
});

test('export prepare selects at most 500 users and 50 user groups; a blank selection selects all', async (t) => {
  const sc = await openAgent(t, 'SC');
  await sc.setRole('server-client');
  const group = sc.group!;
  const changes = [
    ...Array.from({ length: 501 }, (_, i) => ({ c: 0, e: `u:user${String(i).padStart(3, '0')}`, n: 'home', val: { i }, base: 0 })),
    ...Array.from({ length: 50 }, (_, i) => ({ c: 0, e: `g:${String(i + 1).padStart(2, '0')}`, n: 'address-list', val: [{ i }], base: 0 })),
  ];
  await group.applyChanges('admin:test', changes);
  const users = Array.from({ length: 501 }, (_, i) => `user${String(i).padStart(3, '0')}`);
  const groups = Array.from({ length: 50 }, (_, i) => String(i + 1).padStart(2, '0'));

  await rejects(t, sc.prepareExport(), 'INVALID_ARGUMENT', /At most 500 users can be prepared at once; 501 are selected \(a blank selection selects every user/);
  await rejects(t, sc.prepareExport({ users }), 'INVALID_ARGUMENT', /At most 500 users .* 501 are selected: name them with --users$/);
  // Group IDs are 01–50: a 51st group cannot be named (the limit of 50 is the whole range).
  await rejects(t, sc.prepareExport({ groups: [...groups, '51'] }), 'INVALID_ARGUMENT', /group ID must be 01-50/);
  await rejects(t, sc.prepareExport({ users: ['user000'], groups: ['99'] }), 'INVALID_ARGUMENT', /group ID must be 01-50/);
  await rejects(t, sc.prepareExport({ users: ['user000', 'ghost'] }), 'NOT_FOUND', /not in the group: user ghost/);
  await rejects(t, sc.prepareExport({ users: [''] }), 'INVALID_ARGUMENT', /user name must be/);
  t.is(sc.exportWindow, undefined, 'no refused preparation opened a window');

  // Exactly the limits are accepted (duplicates count once).
  const r = await sc.prepareExport({ users: [...users.slice(0, 500), 'user000'], groups: [...groups, '7'] });
  t.is(r.users.length, 500);
  t.is(r.groups.length, 50);
  t.is(sc.local.itemStates('u:user499')?.get('home')?.v, group.itemStates('u:user499')?.get('home')?.v);

  // With one user deleted, the blank selection selects all that is left.
  await sc.deleteUsers({ users: ['user500'], groups: ['50'] });
  const all = await sc.prepareExport();
  t.deepEqual([all.users.length, all.groups.length], [500, 49]);
});

test('users logged in on the panel count toward the 500: 499 selected and 1 logged in pass, 500 and 1 are refused', async (t) => {
  const sc = await openAgent(t, 'SC');
  await sc.setRole('server-client');
  const users = Array.from({ length: 501 }, (_, i) => `user${String(i).padStart(3, '0')}`);
  await sc.group!.applyChanges('admin:test', users.map((u, i) => ({ c: 0, e: `u:${u}`, n: 'home', val: { i }, base: 0 })));
  await sc.login('user500');

  const ok = await sc.prepareExport({ users: users.slice(0, 499) });
  t.is(ok.users.length, 499);
  // A logged-in user who is also selected counts once.
  t.is((await sc.prepareExport({ users: [...users.slice(0, 499), 'user500'] })).users.length, 500);

  const manual = /^You can select up to 500 users and 50 user groups\. Users logged in from the control panel are also included\. /;
  const refused = sc.prepareExport({ users: users.slice(0, 500) });
  await rejects(t, refused, 'INVALID_ARGUMENT', manual);
  await rejects(t, sc.prepareExport({ users: users.slice(0, 500) }), 'INVALID_ARGUMENT', /500 are selected and 1 more logged in on the touch panel \(user500\): log them out or select fewer$/);
  t.is(sc.exportWindow?.users.size, 500, 'the refused preparation left the previous window as it was');

  // Logged out, the user no longer counts.
  await sc.logout('user500');
  t.is((await sc.prepareExport({ users: users.slice(0, 500) })).users.length, 500);
});

test('export prepare is refused on a standalone machine and on a pure server', async (t) => {
  const a = await openAgent(t, 'A');
  await rejects(t, a.prepareExport(), 'WRONG_ROLE', /for a server-client whose client points at its own server.*this machine is standalone/);
  await a.setRole('server');
  await rejects(t, a.prepareExport(), 'WRONG_ROLE', /this machine is server$/);
});

test('export prepare that cannot bring the users up to date is PREPARE_INCOMPLETE and opens no window', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const sc = await openAgent(t, 'SC', { clock, heartbeatSeconds: 10 });
  await sc.setItem('user', 'alice', 'language', { display: 'fr' });
  await sc.setRole('server-client');
  // Three heartbeats of silence: the machine's own client drops its session and waits for its backoff
  // timer, which only moves with the injected clock.
  const offline = syncState(sc, 'offline');
  clock.advance(30_000);
  await offline;
  await sc.setItem('user', 'alice', 'language', { display: 'de' });
  t.true(sc.local.isQueued('u:alice'));
  const prepared = sc.prepareExport({ users: ['alice'] });
  clock.advance(60_000);
  await rejects(t, prepared, 'PREPARE_INCOMPLETE', /^not current after 60 s \(client \w+\): alice; nothing was prepared$/);
  t.is(sc.exportWindow, undefined);
  await rejects(t, sc.exportData(join(tempDir(t), 'x.mfpx')), 'SYNC_RESTRICTED', /prepare/);
});

test('export prepare does not wait for items newer than the protocol its client speaks', async (t) => {
  const sc = await openAgent(t, 'SC', { protocol: 1 });
  await sc.setRole('server-client');
  await sc.group!.applyChanges('admin:test', [
    { c: 0, e: 'u:kay', n: 'language', val: { display: 'en' }, base: 0 },
    { c: 0, e: 'u:kay', n: 'keychain', val: { 'place-1': {} }, base: 0 },
  ]);
  t.like(await sc.prepareExport({ users: ['kay'] }), { users: ['kay'] });
  t.deepEqual([...sc.local.itemStates('u:kay')!.keys()], ['language']);
});
