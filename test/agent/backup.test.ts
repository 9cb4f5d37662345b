/**
 * End to end: backup and restore (SPEC §10) with agents as real processes — to the device slot, to
 * a real Samba share and to a folder (a USB stick); every DBBU/DBRS code produced by a real fault (a
 * 1 MB tmpfs, a folder that cannot be made or does not exist, a read-only or full medium, an unknown
 * host, wrong credentials, a read-only share, a missing, truncated, damaged or foreign file), each
 * leaving the server's data as it was; the [Device] slot deleted by a backup to either destination;
 * restore refused with a client connected; a server whose storage was replaced restoring its own
 * backup with the administrator's password as it was, its own account admitting new clients after.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { serverKeyOf } from '../../agent/identity.js';
import { decodeBackupFile } from '../../storage/backup-file.js';
import { userRecord } from '../../tools/bench/records.js';
import { AgentProcess, freePort, joinClient, startServer } from '../helpers/agents.js';
import { startSamba } from '../helpers/samba.js';
import { fillUp, mountTmpfs } from '../helpers/tmpfs.js';
import { tempDir } from '../helpers/tmp.js';

type Err = { error: { code: string; message: string } };

async function seedUsers(server: AgentProcess, n: number, variant = 0): Promise<void> {
  for (let i = 0; i < n; i++) {
    const rec = userRecord(`user${i}`, variant);
    for (const item of ['address-list', 'job-defaults', 'language'] as const) await server.control('item.set', { kind: 'user', id: `user${i}`, item, value: rec[item] });
  }
}

async function refused(agent: AgentProcess, code: string, ...args: string[]): Promise<string> {
  const r = await agent.sh(...args);
  const got = (r.json as Err | undefined)?.error;
  if (got?.code !== code) throw new Error(`mfpsync ${args.join(' ')}: expected ${code}, got ${r.code} ${r.stderr}`);
  return got.message;
}

test('device backup and restore; DBBU01, DBBU03, DBBU06 and DBRS01 from real faults leave the data as it was', async (t) => {
  const slot = tempDir(t);
  const { server } = await startServer(t, { runArgs: ['--backup-dir', slot] });
  await seedUsers(server, 40);
  const backup = await server.ok<{ path: string; bytes: number; counts: { users: number } }>('backup', '--to', 'device');
  t.is(backup.path, join(slot, 'mfpsync-backup.mfpb'));
  t.is(backup.counts.users, 40);
  const original = await server.value('user', 'user3', 'address-list');

  // Changed after the backup, then restored: the backup's value is back, as a new epoch.
  const epoch = (await server.ok<{ group: { epoch: string } }>('status')).group.epoch;
  await server.ok('user', 'set', 'user3', 'address-list', '[{"name":"changed"}]');
  const restored = await server.ok<{ seq: number; counts: { users: number } }>('restore', '--from', 'device');
  t.is(restored.counts.users, 40);
  t.deepEqual(await server.value('user', 'user3', 'address-list'), original);
  t.not((await server.ok<{ group: { epoch: string } }>('status')).group.epoch, epoch, 'a restore starts a new epoch');
  t.is((await server.sh('restore', '--from', 'device')).code, 1, 'the slot is deleted by a restore');

  // A damaged, a truncated and a foreign file: DBRS01, nothing changed.
  await server.ok('backup', '--to', 'device');
  const good = readFileSync(backup.path);
  await server.ok('user', 'set', 'user3', 'address-list', '[{"name":"after"}]');
  const damaged = Buffer.from(good);
  damaged[damaged.length >> 1]! ^= 0x40;
  writeFileSync(backup.path, damaged);
  t.regex(await refused(server, 'DBRS01', 'restore', '--from', 'device'), /damaged/);
  writeFileSync(backup.path, good.subarray(0, good.length - 100));
  t.regex(await refused(server, 'DBRS01', 'restore', '--from', 'device'), /truncated/);
  const { server: stranger } = await startServer(t, { name: 'stranger', runArgs: ['--backup-dir', tempDir(t)] });
  const foreign = await stranger.ok<{ path: string }>('backup', '--to', 'device');
  writeFileSync(backup.path, readFileSync(foreign.path));
  t.regex(await refused(server, 'DBRS01', 'restore', '--from', 'device'), /group|recipient/);
  t.deepEqual(await server.value('user', 'user3', 'address-list'), [{ name: 'after' }], 'no refused restore changed anything');

  // DBBU01: the slot's folder cannot be made (a file stands where it should be).
  const blocked = join(tempDir(t), 'file');
  writeFileSync(blocked, 'x');
  const { server: s2 } = await startServer(t, { name: 's2', runArgs: ['--backup-dir', join(blocked, 'backup')] });
  await refused(s2, 'DBBU01', 'backup', '--to', 'device');

  // DBBU03 and DBBU06 on a real small filesystem.
  const tiny = await mountTmpfs(t, 1024 * 1024);
  if (!tiny) return;
  const { server: s3 } = await startServer(t, { name: 's3', runArgs: ['--backup-dir', tiny] });
  await seedUsers(s3, 150);
  t.regex(await refused(s3, 'DBBU03', 'backup', '--to', 'device'), /bytes/);
  const log = await s3.ok<{ runs: { op: string; result: string; place: string }[] }>('backup', 'log');
  t.like(log.runs.at(-1), { op: 'backup', result: 'DBBU03' });
  t.deepEqual(await s3.value('user', 'user1', 'language'), userRecord('user1').language);

  // DBBU06: the file system turns read-only (as a failing card does): the backup cannot be saved.
  const ro = await mountTmpfs(t, 64 * 1024 * 1024);
  if (!ro) return;
  const { server: s4 } = await startServer(t, { name: 's4', runArgs: ['--backup-dir', ro] });
  await s4.ok('backup', '--to', 'device');
  execFileSync('mount', ['-o', 'remount,ro', ro]);
  await refused(s4, 'DBBU06', 'backup', '--to', 'device');
  t.true(existsSync(join(ro, 'mfpsync-backup.mfpb')), 'the previous backup is still there');
});

test('network backup and restore on a real Samba share; DBBU02-05 and DBRS02-04 from real faults', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backups' }, { name: 'readonly', readOnly: true }] });
  if (!smb) return;
  const url = `smb://${smb.host}:${smb.port}/backups`;
  const creds = ['--user', smb.user, '--password', smb.password];
  // restore's --user/--password are the group administrator's; the share's are --share-user/--share-password.
  const shareCreds = ['--share-user', smb.user, '--share-password', smb.password];
  const slot = tempDir(t);
  const { server } = await startServer(t, { runArgs: ['--backup-dir', slot] });
  await seedUsers(server, 30);
  // The [Device] slot is deleted by the next backup, to the network too (manual 002).
  await server.ok('backup', '--to', 'device');
  t.true(existsSync(join(slot, 'mfpsync-backup.mfpb')));
  const done = await server.ok<{ destination: string; bytes: number }>('backup', '--to', url, ...creds);
  t.false(existsSync(join(slot, 'mfpsync-backup.mfpb')), 'a network backup deletes the device slot');
  t.regex(done.destination, /^smb:\/\/127\.0\.0\.1:\d+\/backups\/mfpsync-\S+\.mfpb$/);
  t.false(done.destination.includes(smb.password));
  const original = await server.value('user', 'user2', 'job-defaults');
  await server.ok('user', 'set', 'user2', 'job-defaults', '{"copy":{"copies":9}}');
  await server.ok('restore', '--from', url, ...shareCreds);
  t.deepEqual(await server.value('user', 'user2', 'job-defaults'), original);

  await refused(server, 'DBBU04', 'backup', '--to', 'smb://no-such-host.invalid/backups', ...creds);
  await refused(server, 'DBBU05', 'backup', '--to', url, '--user', smb.user, '--password', 'wrong');
  await refused(server, 'DBBU05', 'backup', '--to', `smb://${smb.host}:${smb.port}/readonly`, ...creds);
  await refused(server, 'DBBU04', 'backup', '--to', `smb://${smb.host}:${smb.port}/no-such-share`, ...creds);
  await refused(server, 'DBRS03', 'restore', '--from', `smb://${smb.host}:${smb.port}/readonly`, ...shareCreds);
  await refused(server, 'DBRS04', 'restore', '--from', url, '--share-user', smb.user, '--share-password', 'wrong');
  // A file damaged on the share: DBRS02, nothing changed.
  const file = join(smb.dir('backups'), done.destination.split('/').at(-1)!);
  appendFileSync(file, 'junk');
  await server.ok('user', 'set', 'user2', 'language', '{"display":"ja","keyboard":"ja-JP"}');
  t.regex(await refused(server, 'DBRS02', 'restore', '--from', url, ...shareCreds), /bytes after|damaged|truncated/);
  t.deepEqual(await server.value('user', 'user2', 'language'), { display: 'ja', keyboard: 'ja-JP' });
  const log = await server.ok<{ runs: { op: string; result: string; place: string }[] }>('backup', 'log');
  t.deepEqual(log.runs.map((r) => `${r.op} ${r.result}`), [
    'backup ok', 'backup ok', 'restore ok', 'backup DBBU04', 'backup DBBU05', 'backup DBBU05', 'backup DBBU04', 'restore DBRS03', 'restore DBRS04', 'restore DBRS02',
  ]);
  t.true(log.runs.every((r) => !r.place.includes(smb.password)), 'credentials never reach the log');
});

test('restore is refused while a client is connected (CLIENTS_ACTIVE)', async (t) => {
  const { server, port } = await startServer(t, { runArgs: ['--backup-dir', tempDir(t)] });
  await server.ok('backup', '--to', 'device');
  const client = await AgentProcess.spawn(t, { name: 'c' });
  await joinClient(client, port);
  t.regex(await refused(server, 'CLIENTS_ACTIVE', 'restore', '--from', 'device'), /1 client/);
  t.regex(await refused(client, 'WRONG_ROLE', 'backup', '--to', 'device'), /server/);
});

test('backup to a folder (a USB stick) and restore from its file; DBBU03-05, DBRS01 and DBRS03 from real folders; the device slot goes', async (t) => {
  const slot = tempDir(t);
  const { server } = await startServer(t, { runArgs: ['--backup-dir', slot] });
  await seedUsers(server, 20);
  const group = (await server.ok<{ group: { groupId: string } }>('status')).group.groupId;
  await server.ok('backup', '--to', 'device');
  const stick = tempDir(t);
  const done = await server.ok<{ destination: string; path: string; counts: { users: number } }>('backup', '--to', stick);
  t.is(done.path, join(stick, `mfpsync-${group}.mfpb`));
  t.is(done.counts.users, 20);
  t.true(existsSync(done.path));
  t.false(existsSync(join(slot, 'mfpsync-backup.mfpb')), 'a backup to a folder deletes the device slot');
  // A file name given is used as it is.
  const named = join(stick, 'monday.mfpb');
  t.is((await server.ok<{ path: string }>('backup', '--to', named)).path, named);

  // Restored from the file (and from the folder holding the group's file), the backup's values are back.
  const original = await server.value('user', 'user4', 'address-list');
  await server.ok('user', 'set', 'user4', 'address-list', '[{"name":"changed"}]');
  t.is((await server.ok<{ source: string }>('restore', '--from', done.path)).source, done.path);
  t.deepEqual(await server.value('user', 'user4', 'address-list'), original);
  await server.ok('user', 'set', 'user4', 'address-list', '[{"name":"changed"}]');
  await server.ok('backup', '--to', 'device');
  await server.ok('restore', '--from', stick);
  t.deepEqual(await server.value('user', 'user4', 'address-list'), original);
  t.false(existsSync(join(slot, 'mfpsync-backup.mfpb')), 'a restore from a folder deletes the device slot');

  // A stick that is not mounted: the folder does not exist, and nothing is made in its place.
  const unmounted = join(tempDir(t), 'media', 'usb0');
  t.regex(await refused(server, 'DBBU04', 'backup', '--to', unmounted), /does not exist/);
  t.false(existsSync(unmounted));
  t.regex(await refused(server, 'DBRS03', 'restore', '--from', join(unmounted, `mfpsync-${group}.mfpb`)), /no backup/);
  const empty = tempDir(t);
  t.regex(await refused(server, 'DBRS03', 'restore', '--from', empty), /no backup file/);
  // A damaged file: DBRS01, nothing changed.
  await server.ok('user', 'set', 'user4', 'language', '{"display":"ja","keyboard":"ja-JP"}');
  const damaged = join(empty, 'damaged.mfpb');
  const bytes = readFileSync(done.path);
  bytes[bytes.length >> 1]! ^= 0x40;
  writeFileSync(damaged, bytes);
  t.regex(await refused(server, 'DBRS01', 'restore', '--from', damaged), /damaged/);
  t.deepEqual(await server.value('user', 'user4', 'language'), { display: 'ja', keyboard: 'ja-JP' });

  // A read-only medium (a locked card) is not accessible; a full one has no room.
  const ro = await mountTmpfs(t, 8 * 1024 * 1024);
  if (!ro) return;
  execFileSync('mount', ['-o', 'remount,ro', ro]);
  t.regex(await refused(server, 'DBBU05', 'backup', '--to', ro), /not writable/);
  const full = await mountTmpfs(t, 1024 * 1024);
  if (!full) return;
  await fillUp(full);
  t.regex(await refused(server, 'DBBU03', 'backup', '--to', full), /bytes|space/);
  const log = await server.ok<{ runs: { op: string; result: string }[] }>('backup', 'log');
  t.deepEqual(log.runs.map((r) => `${r.op} ${r.result}`), [
    'backup ok', 'backup ok', 'backup ok', 'restore ok', 'backup ok', 'restore ok', 'backup DBBU04', 'restore DBRS03', 'restore DBRS03', 'restore DBRS01', 'backup DBBU05', 'backup DBBU03',
  ]);
});

test('a server whose storage was replaced restores its own backup from a stick with the password as it was; its own account admits new clients', async (t) => {
  const port = await freePort();
  const { server } = await startServer(t, { port });
  const client = await AgentProcess.spawn(t, { name: 'c' });
  await joinClient(client, port);
  const mark0 = client.events.length;
  await client.ok('user', 'set', 'alice', 'language', JSON.stringify({ display: 'de', keyboard: 'de-DE' }));
  await client.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark0);
  const group = (await server.ok<{ group: { groupId: string } }>('status')).group.groupId;
  const stick = tempDir(t);
  const made = await server.ok<{ path: string }>('backup', '--to', stick);
  // The manual's order: the clients are stopped while the server is changed.
  await client.kill('SIGTERM');
  await server.kill('SIGTERM');

  // The storage is replaced: the same machine (name, address) starts from a new data directory, and
  // its administrator password was set anew.
  const { server: again } = await startServer(t, { name: 'server', port, adminPassword: 'new-pw' });
  const before = await again.ok<{ group: { groupId: string; seq: number } }>('status');
  t.not(before.group.groupId, group);
  t.regex(await refused(again, 'DBRS01', 'restore', '--from', made.path), /sealed for the administrator account "admin" .* with the password it had then/);
  t.regex(await refused(again, 'DBRS01', 'restore', '--from', made.path, '--user', 'admin', '--password', 'new-pw'), /does not open its group key.*nothing was changed/);
  t.deepEqual((await again.ok<{ group: { groupId: string; seq: number } }>('status')).group, before.group, 'a refused restore changes nothing');
  const restored = await again.ok<{ admits: string; sealedFor: string }>('restore', '--from', made.path, '--user', 'admin', '--password', 'secret-pw');
  t.like(restored, { admits: 'admin', sealedFor: 'admin' });
  t.is((await again.ok<{ group: { groupId: string } }>('status')).group.groupId, group);
  t.deepEqual(await again.value('user', 'alice', 'language'), { display: 'de', keyboard: 'de-DE' });

  // The old client, at the same address, follows without a password or a new address.
  await client.start();
  const mark = client.events.length;
  await again.ok('user', 'set', 'alice', 'language', JSON.stringify({ display: 'it', keyboard: 'it-IT' }));
  await client.waitRemote('alice', 'language', mark);
  t.deepEqual(await client.value('user', 'alice', 'language'), { display: 'it', keyboard: 'it-IT' });

  // A new client is admitted with this machine's account (its new password), not the backup's.
  const newcomer = await AgentProcess.spawn(t, { name: 'new' });
  const old = await newcomer.sh('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'admin', '--password', 'secret-pw');
  t.is((old.json as Err).error.code, 'AUTH_INCORRECT');
  await newcomer.ok('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'admin', '--password', 'new-pw');
  await newcomer.ok('login', 'alice');
  t.deepEqual(await newcomer.value('user', 'alice', 'language'), { display: 'it', keyboard: 'it-IT' });
  // And the next backup is sealed for that account: the new password opens it, the old one no longer.
  const next = readFileSync((await again.ok<{ path: string }>('backup', '--to', stick)).path);
  const opener = (password: string) => ({ adminKey: (_user: string, salt: Uint8Array) => serverKeyOf(password, salt), deviceId: '', secretKey: new Uint8Array(64), trustedGroupKeys: [] });
  t.is(decodeBackupFile(next, opener('new-pw')).header.groupId, group);
  t.throws(() => decodeBackupFile(next, opener('secret-pw')), { message: /does not open/ });
});
