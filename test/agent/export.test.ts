/**
 * End to end: import / export (SPEC §7) with agents as real processes, driven through the shell —
 * standalone to standalone, refused while client synchronization runs, a server-client's prepared
 * window, and an import on the server reaching a client that holds the user.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { ExportResult, ImportResult, PrepareResult } from '../../agent/export.js';
import { decodeExportFile, encodeExportFile, type ExportBody } from '../../storage/export-file.js';
import { AgentProcess, humanShell as human, joinClient, startServer } from '../helpers/agents.js';
import { tempDir } from '../helpers/tmp.js';

type Items = { items: Record<string, { value: unknown; set: boolean }> };

/** Writes an export file as another machine would have made it. */
function exportFile(path: string, body: ExportBody): string {
  writeFileSync(path, encodeExportFile({ software: '0.1.0', createdAt: Date.UTC(2026, 0, 2), source: { deviceId: 'elsewhere', name: 'other', role: 'standalone' }, selection: 'all' }, body));
  return path;
}

test('export on a standalone machine and import on another give the same data', async (t) => {
  const dir = tempDir(t);
  const [a, b] = await Promise.all([AgentProcess.spawn(t, { name: 'A' }), AgentProcess.spawn(t, { name: 'B' })]);
  await a.ok('user', 'set', 'alice', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  await a.ok('user', 'set', 'alice', 'job-defaults', '{"fax":{"destinations":["0311"],"resolution":"fine"}}');
  await a.ok('user', 'set', 'bob', 'address-list', '[{"name":"Carol","email":"carol@example.com"}]');
  await a.ok('user', 'set', 'bob', 'keychain', '{"place-7f3a":{"user":"bob","host":"nas"}}');
  await a.ok('group', 'set', '01', 'address-list', '[{"name":"Sales","fax":"0123"}]');
  await a.ok('shared', 'set', 'shared-buttons', '[{"id":"s1","label":"Copy A3"}]');
  await b.ok('user', 'set', 'alice', 'language', '{"display":"de","keyboard":"de-DE"}');
  await b.ok('user', 'set', 'alice', 'home', '{"wallpaper":"green"}');

  const file = join(dir, 'users.mfpx');
  const exported = await a.ok<ExportResult>('export', '--out', file);
  t.like(exported, { path: file, selection: 'all', counts: { users: 2, groups: 1, shared: 1, items: 6 } });
  const imported = await b.ok<ImportResult>('import', file);
  t.like(imported, { applied: 6, counts: exported.counts, source: { deviceId: String(a.ready!.deviceId), name: 'A' } });

  for (const [kind, id] of [['user', 'alice'], ['user', 'bob'], ['group', '01']] as const) {
    const mine = await a.ok<Items>(kind, 'get', id);
    const theirs = await b.ok<Items>(kind, 'get', id);
    for (const [item, v] of Object.entries(mine.items)) if (v.set) t.deepEqual(theirs.items[item]!.value, v.value, `${kind} ${id} ${item}`);
  }
  t.deepEqual((await b.ok<Items>('shared', 'get')).items['shared-buttons']!.value, [{ id: 's1', label: 'Copy A3' }]);
  t.deepEqual(await b.value('user', 'alice', 'language'), { display: 'fr', keyboard: 'fr-FR' }, 'the file\'s item replaced B\'s');
  t.deepEqual(await b.value('user', 'alice', 'home'), { wallpaper: 'green' }, 'an item the file lacks is kept');

  // What the technician reads.
  const shown = await human(b.dataDir, 'import', file);
  t.is(shown.code, 0);
  t.regex(shown.stdout, /^imported 2 users, 1 user group, the Shared buttons \(6 items\) from .*users\.mfpx, exported by A \(/);

  // A truncated copy: refused with its code, B unchanged.
  await b.ok('user', 'set', 'alice', 'language', '{"display":"nl"}');
  const before = await b.ok<{ users: unknown[] }>('users', 'list');
  const truncated = join(dir, 'truncated.mfpx');
  writeFileSync(truncated, readFileSync(file).subarray(0, 200));
  const refused = await b.sh('import', truncated);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^error IMPORT_INVALID: not a valid export file: truncated/);
  t.like(refused.json, { error: { code: 'IMPORT_INVALID' } });
  t.deepEqual(await b.value('user', 'alice', 'language'), { display: 'nl' });
  t.deepEqual(await b.ok<{ users: unknown[] }>('users', 'list'), before);
  const usage = await b.sh('export');
  t.is(usage.code, 2);
  t.regex(usage.stderr, /^error USAGE: export needs --out FILE/);
});

test('a client refuses export and import with SYNC_RESTRICTED while it synchronizes', async (t) => {
  const dir = tempDir(t);
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await a.ok('user', 'set', 'alice', 'language', '{"display":"fr"}');
  const early = join(dir, 'early.mfpx');
  await a.ok('export', '--out', early); // standalone: allowed
  await a.ok('user', 'set', 'alice', 'language', '{"display":"de"}');
  await joinClient(a, port);

  const out = join(dir, 'during-sync.mfpx');
  const exp = await a.sh('export', '--out', out);
  t.is(exp.code, 1);
  t.regex(exp.stderr, /^error SYNC_RESTRICTED: export of synchronized data is refused while client synchronization runs \(role client\)/);
  t.false(existsSync(out), 'no file was written');
  const imp = await a.sh('import', early);
  t.regex(imp.stderr, /^error SYNC_RESTRICTED: import of synchronized data is refused/);
  t.like(imp.json, { error: { code: 'SYNC_RESTRICTED' } });
  t.deepEqual(await a.value('user', 'alice', 'language'), { display: 'de' });
  t.deepEqual(await server.value('user', 'alice', 'language'), { display: 'de' });
  const prepare = await a.sh('export', 'prepare');
  t.is(prepare.code, 6);
  t.regex(prepare.stderr, /^error WRONG_ROLE: export prepare is for a server-client/);

  // The server itself exports the group's copy (administrator data handling).
  const fromServer = join(dir, 'server.mfpx');
  t.like(await server.ok<ExportResult>('export', '--out', fromServer), { counts: { users: 1 } });
  t.deepEqual(decodeExportFile(readFileSync(fromServer)).body.users, [{ id: 'alice', items: { language: { display: 'de' } } }]);
});

test('server-client: export prepare opens a 15-minute window for the prepared users only', async (t) => {
  const dir = tempDir(t);
  const sc = await AgentProcess.spawn(t, { name: 'SC' });
  const { port } = await sc.ok<{ port: number }>('role', 'set', 'server-client');
  const b = await AgentProcess.spawn(t, { name: 'B' });
  await joinClient(b, port);
  const mark = b.events.length;
  await b.ok('user', 'set', 'alice', 'language', '{"display":"ja"}');
  await b.ok('user', 'set', 'bob', 'home', '{"wallpaper":"blue"}');
  await b.ok('group', 'set', '03', 'address-list', '[{"name":"Ops"}]');
  await b.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark);

  const out = join(dir, 'sc.mfpx');
  const before = await sc.sh('export', '--out', out);
  t.regex(before.stderr, /^error SYNC_RESTRICTED: .*mfpsync export prepare/);

  const from = Date.now();
  const prepared = await sc.ok<PrepareResult>('export', 'prepare', '--users', 'alice', '--groups', '03');
  const to = Date.now();
  t.deepEqual([prepared.users, prepared.groups], [['alice'], ['03']]);
  t.is(prepared.endsAt - prepared.openedAt, 15 * 60_000);
  t.true(prepared.endsAt >= from + 15 * 60_000 && prepared.endsAt <= to + 15 * 60_000, 'the window ends 15 minutes from now');
  t.regex(prepared.warning, /log in .* during the window may overwrite the prepared data/);
  const shown = await human(sc.dataDir, 'export', 'prepare', '--users', 'alice');
  t.regex(shown.stdout, /^prepared 1 user \(alice\) and 0 user groups \(none\)\nexport and import of them are allowed until \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\nwarning: users who log in .* may overwrite the prepared data\n$/);
  const again = await sc.ok<PrepareResult>('export', 'prepare', '--users', 'alice', '--groups', '03');
  t.true(again.endsAt >= prepared.endsAt, 'a new preparation replaces the window');

  // Export inside the window: the prepared selection, current.
  t.like(await sc.ok<ExportResult>('export', '--out', out), { selection: 'prepared', counts: { users: 1, groups: 1, shared: 0 }, window: { endsAt: again.endsAt } });
  const { body } = decodeExportFile(readFileSync(out));
  t.deepEqual(body.users, [{ id: 'alice', items: { language: { display: 'ja' } } }]);
  t.deepEqual(body.groups, [{ id: '03', items: { 'address-list': [{ name: 'Ops' }] } }]);

  // Import inside the window: the prepared user, through the group to B, which holds her.
  const mark2 = b.events.length;
  const alice = exportFile(join(dir, 'alice.mfpx'), { users: [{ id: 'alice', items: { language: { display: 'ko' } } }], groups: [], shared: null });
  t.like(await sc.ok<ImportResult>('import', alice), { applied: 1 });
  await b.waitRemote('alice', 'language', mark2);
  t.deepEqual(await b.value('user', 'alice', 'language'), { display: 'ko' });

  // An unprepared user is refused, and nothing of that file is applied.
  const both = exportFile(join(dir, 'both.mfpx'), {
    users: [{ id: 'alice', items: { language: { display: 'zh' } } }, { id: 'bob', items: { home: { wallpaper: 'red' } } }],
    groups: [],
    shared: null,
  });
  const refused = await sc.sh('import', both);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^error SYNC_RESTRICTED: the export window allows only the prepared users and groups; the file also holds user bob/);
  t.deepEqual(await sc.value('user', 'alice', 'language'), { display: 'ko' });
  t.is((await sc.sh('user', 'get', 'bob')).code, 7, 'bob never reached this machine');
  const shared = exportFile(join(dir, 'shared.mfpx'), { users: [], groups: [], shared: { items: { 'shared-buttons': [] } } });
  t.regex((await sc.sh('import', shared)).stderr, /^error SYNC_RESTRICTED: .*the Shared buttons/);

  const tooMany = await sc.sh('export', 'prepare', '--users', Array.from({ length: 501 }, (_, i) => `u${i}`).join(','));
  t.is(tooMany.code, 2);
  t.regex(tooMany.stderr, /^error INVALID_ARGUMENT: You can select up to 500 users and 50 user groups\. Users logged in from the control panel are also included\. At most 500 users can be prepared at once; 501 are selected/);
  const ghost = await sc.sh('export', 'prepare', '--users', 'ghost');
  t.regex(ghost.stderr, /^error NOT_FOUND: not in the group: user ghost/);
});

test('an import on the server reaches a client holding the user', async (t) => {
  const dir = tempDir(t);
  const { server, port } = await startServer(t);
  const a = await AgentProcess.spawn(t, { name: 'A' });
  await joinClient(a, port);
  const mark = a.events.length;
  await a.ok('user', 'set', 'alice', 'language', '{"display":"fr"}');
  await a.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark);

  const file = exportFile(join(dir, 'import.mfpx'), {
    users: [{ id: 'alice', items: { language: { display: 'pt' }, 'auto-print': true } }, { id: 'nina', items: { home: {} } }],
    groups: [{ id: '09', items: { 'address-list': [{ name: 'HR' }] } }],
    shared: null,
  });
  const mark2 = a.events.length;
  t.like(await server.ok<ImportResult>('import', file), { applied: 4, conflicts: 0 });
  await Promise.all([a.waitRemote('alice', 'language', mark2), a.waitRemote('alice', 'auto-print', mark2), a.waitRemote('09', 'address-list', mark2)]);
  t.deepEqual(await a.value('user', 'alice', 'language'), { display: 'pt' });
  t.deepEqual(await server.value('user', 'alice', 'language'), { display: 'pt' });
  t.deepEqual(await server.value('user', 'nina', 'home'), {});
  t.false(a.events.slice(mark2).some((e) => e.id === 'nina'), 'a user the client does not hold is not sent to it');
  const log = await server.ok<{ entries: { code: string; message: string }[] }>('log');
  t.true(log.entries.some((e) => e.code === 'IMPORTED' && e.message.includes('exported by other elsewhere')));
});

test('address lists export as individual files, [Personal Address List (All)] and [User Group Address List (All)], and import back', async (t) => {
  const dir = tempDir(t);
  const [a, b] = await Promise.all([AgentProcess.spawn(t, { name: 'A' }), AgentProcess.spawn(t, { name: 'B' })]);
  await a.ok('user', 'set', 'alice', 'address-list', '[{"name":"Legal","email":"legal@example.com"}]');
  await a.ok('user', 'set', 'alice', 'language', '{"display":"ja","keyboard":"ja-JP"}');
  await a.ok('user', 'set', 'bob', 'address-list', '[{"name":"Print room","fax":"03-1234-5678"}]');
  await a.ok('user', 'set', 'carl', 'language', '{"display":"de","keyboard":"de-DE"}');
  await a.ok('group', 'set', '01', 'address-list', '[{"name":"Sales","email":"sales@example.com"}]');
  await a.ok('shared', 'set', 'shared-buttons', '[{"id":"s1","label":"Scan"}]');

  const personal = join(dir, 'personal.mfpx');
  const p = await a.ok<ExportResult>('export', '--address-list', 'personal', '--out', personal);
  t.like(p, { addressList: 'personal', counts: { users: 2, groups: 0, shared: 0, items: 2 } });
  const pf = decodeExportFile(readFileSync(personal));
  t.is(pf.header.addressList, 'personal');
  t.deepEqual(pf.body, {
    users: [
      { id: 'alice', items: { 'address-list': [{ name: 'Legal', email: 'legal@example.com' }] } },
      { id: 'bob', items: { 'address-list': [{ name: 'Print room', fax: '03-1234-5678' }] } },
    ],
    groups: [],
    shared: null,
  });
  const groups = join(dir, 'groups.mfpx');
  t.regex((await human(a.dataDir, 'export', '--address-list', 'groups', '--out', groups)).stdout, /^exported \[User Group Address List \(All\)\]: /);
  t.deepEqual(decodeExportFile(readFileSync(groups)).body, { users: [], groups: [{ id: '01', items: { 'address-list': [{ name: 'Sales', email: 'sales@example.com' }] } }], shared: null });

  const bad = await a.sh('export', '--address-list', 'all', '--out', join(dir, 'x.mfpx'));
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^error INVALID_ARGUMENT: --address-list takes personal \(\[Personal Address List \(All\)\]\) or groups/);
  t.false(existsSync(join(dir, 'x.mfpx')));

  // B has its own alice: the personal file replaces her address list and keeps her other items.
  await b.ok('user', 'set', 'alice', 'address-list', '[{"name":"Old"}]');
  await b.ok('user', 'set', 'alice', 'language', '{"display":"ko","keyboard":"ko-KR"}');
  const wrongKind = await b.sh('import', personal, '--address-list', 'groups');
  t.is(wrongKind.code, 1);
  t.regex(wrongKind.stderr, /^error IMPORT_INVALID: not a \[User Group Address List \(All\)\] file: it is a \[Personal Address List \(All\)\] file; nothing was imported/);
  const batch = exportFile(join(dir, 'batch.mfpx'), { users: [{ id: 'x', items: { home: {} } }], groups: [], shared: null });
  t.regex((await b.sh('import', batch, '--address-list', 'personal')).stderr, /^error IMPORT_INVALID: not a \[Personal Address List \(All\)\] file: it is a batch file/);
  t.deepEqual(await b.value('user', 'alice', 'address-list'), [{ name: 'Old' }], 'a refused import changes nothing');

  const imported = await b.ok<ImportResult>('import', personal, '--address-list', 'personal');
  t.like(imported, { addressList: 'personal', applied: 2 });
  t.deepEqual(await b.value('user', 'alice', 'address-list'), [{ name: 'Legal', email: 'legal@example.com' }]);
  t.deepEqual(await b.value('user', 'alice', 'language'), { display: 'ko', keyboard: 'ko-KR' });
  t.is((await b.sh('user', 'get', 'carl')).code, 7, 'carl has no address list: not in the file');
  await b.ok('import', groups);
  t.deepEqual(await b.value('group', '01', 'address-list'), [{ name: 'Sales', email: 'sales@example.com' }]);
  t.false((await b.ok<Items>('shared', 'get')).items['shared-buttons']!.set, 'no Shared buttons in an address-list file');

  // A file that says it holds personal address lists but holds more is refused whole.
  const forged = join(dir, 'forged.mfpx');
  writeFileSync(forged, encodeExportFile(
    { software: '0.1.0', createdAt: Date.UTC(2026, 0, 2), source: { deviceId: 'elsewhere', name: 'other', role: 'standalone' }, selection: 'all', addressList: 'personal' },
    { users: [{ id: 'alice', items: { 'address-list': [], language: { display: 'en' } } }], groups: [], shared: null },
  ));
  t.regex((await b.sh('import', forged)).stderr, /^error IMPORT_INVALID: not a valid export file: a personal address-list file holds other data/);
  t.deepEqual(await b.value('user', 'alice', 'language'), { display: 'ko', keyboard: 'ko-KR' });
});
