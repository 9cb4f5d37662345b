/**
 * Attack: a stolen client. The attacker holds a member machine's data directory — its device key, its
 * own administrator account, its pinned group key, its stores — and a backup file of the group, and
 * wants the group's secret key, with which it could pose as the server to every other client. What
 * must hold (SPEC §6, §10): only the server holds the group's secret key; clients hold its public key
 * only, and nothing in their data directory opens a backup; the backup's key opens with the group
 * administrator's password, on any machine (the restored server is followed by the old clients
 * without a password); a wrong password is refused with its DBRS code and changes nothing. And at
 * rest: every file under a data directory is 0600 (folders 0700), after serving and compacting.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { readPin } from '../../agent/client.js';
import { dataPaths, readConfig } from '../../agent/config.js';
import { BackupFileError, decodeBackupFile } from '../../storage/backup-file.js';
import { GroupStore } from '../../storage/group-store.js';
import { LevelKv } from '../../storage/level-kv.js';
import { LocalStore } from '../../storage/local-store.js';
import { AgentProcess, joinClient, startServer } from '../helpers/agents.js';
import { tempDir } from '../helpers/tmp.js';

type Err = { error: { code: string; message: string } };

/** Every file under a directory, with its mode. */
function walk(dir: string): { path: string; dir: boolean; mode: number }[] {
  const out: { path: string; dir: boolean; mode: number }[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    out.push({ path, dir: entry.isDirectory(), mode: statSync(path).mode & 0o777 });
    if (entry.isDirectory()) out.push(...walk(path));
  }
  return out;
}

/** Whether any file under `dir` contains one of `needles`. */
function holds(dir: string, needles: Buffer[]): string[] {
  return walk(dir).filter((f) => !f.dir && !f.path.endsWith('.sock')).filter((f) => {
    const bytes = readFileSync(f.path);
    return needles.some((n) => bytes.indexOf(n) >= 0);
  }).map((f) => f.path);
}

async function groupSecret(dataDir: string): Promise<Uint8Array> {
  const store = await GroupStore.open({ kv: new LevelKv(dataPaths(dataDir).group) });
  try {
    return Buffer.from((await store.getMeta<{ secretKey: string }>('groupKey'))!.secretKey, 'base64');
  } finally {
    await store.close();
  }
}

test('a stolen client\'s data directory opens no backup and holds nothing of the group\'s secret key', async (t) => {
  const slot = tempDir(t);
  const { server, port } = await startServer(t, { runArgs: ['--backup-dir', slot] });
  const client = await AgentProcess.spawn(t, { name: 'stolen' });
  await joinClient(client, port);
  await client.ok('user', 'set', 'alice', 'language', JSON.stringify({ display: 'de', keyboard: 'de-DE' }));
  await server.ok('backup', '--to', 'device');
  const backup = readFileSync(join(slot, 'mfpsync-backup.mfpb'));
  await client.kill('SIGTERM');
  await server.kill('SIGTERM');
  const secret = await groupSecret(server.dataDir);

  // Everything the stolen machine holds: its device key, its own administrator account, its pin.
  const { config, identity } = readConfig(client.dataDir);
  const local = await LocalStore.open({ kv: new LevelKv(dataPaths(client.dataDir).local) });
  const pin = await readPin(local);
  await local.close();
  t.truthy(pin, 'the client joined and pinned the group');
  const pinned = Buffer.from(pin!.groupKey, 'base64');
  t.deepEqual(pinned, Buffer.from(secret.subarray(32)), 'it pinned the group\'s public key');
  const ownServerKey = Buffer.from(config.admin.serverKey, 'base64');
  const attempts = {
    'its own account, as a server opens its own backups': (user: string, salt: Uint8Array) =>
      user === config.admin.user && Buffer.from(config.admin.salt, 'base64').equals(salt) ? ownServerKey : undefined,
    'its own server key, whatever the file names': () => ownServerKey,
    'its device secret key': () => identity.secretKey.subarray(0, 32),
  };
  for (const [what, adminKey] of Object.entries(attempts)) {
    const err = t.throws(() => decodeBackupFile(backup, { adminKey, deviceId: identity.deviceId, secretKey: identity.secretKey, trustedGroupKeys: [pinned] }), { instanceOf: BackupFileError }, what);
    t.true(err?.reason === 'no-account' || err?.reason === 'wrong-password', `${what}: ${err?.reason}`);
  }
  // Nothing of the secret is in the client's files; the same search finds it in the server's.
  const needles = [Buffer.from(secret.subarray(0, 32)), Buffer.from(Buffer.from(secret).toString('base64')), Buffer.from(Buffer.from(secret.subarray(0, 32)).toString('base64').slice(0, 40))];
  t.deepEqual(holds(client.dataDir, needles), []);
  t.true(holds(server.dataDir, needles).length > 0, 'the search finds the key where it is');
});

test('the administrator password opens a backup on a fresh server; the old clients follow it without a password; a wrong one changes nothing', async (t) => {
  const slot = tempDir(t);
  const { server, port } = await startServer(t, { runArgs: ['--backup-dir', slot] });
  const client = await AgentProcess.spawn(t, { name: 'c' });
  await joinClient(client, port);
  const mark0 = client.events.length;
  await client.ok('user', 'set', 'alice', 'language', JSON.stringify({ display: 'de', keyboard: 'de-DE' }));
  // The change is on the server once acknowledged; then the server is backed up and lost.
  await client.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000, mark0);
  const group = (await server.ok<{ group: { groupId: string } }>('status')).group.groupId;
  await server.ok('backup', '--to', 'device');
  await server.kill('SIGTERM');

  // A machine that was never in the group, with an administrator password of its own.
  const freshSlot = tempDir(t);
  const { server: fresh, port: freshPort } = await startServer(t, { name: 'fresh', adminPassword: 'fresh-pw', runArgs: ['--backup-dir', freshSlot] });
  mkdirSync(freshSlot, { recursive: true });
  copyFileSync(join(slot, 'mfpsync-backup.mfpb'), join(freshSlot, 'mfpsync-backup.mfpb'));
  const before = await fresh.ok<{ group: { groupId: string; seq: number } }>('status');
  t.not(before.group.groupId, group);
  const refusals: [string[], RegExp][] = [
    [[], /give that account \(--user ID --password PW\)/],
    [['--user', 'admin', '--password', 'wrong'], /administrator account given does not open its group key/],
    [['--user', 'admin', '--password', 'fresh-pw'], /does not open/],
    [['--user', 'root', '--password', 'secret-pw'], /sealed for the administrator account "admin"/],
  ];
  for (const [args, message] of refusals) {
    const r = await fresh.sh('restore', '--from', 'device', ...args);
    const e = (r.json as Err | undefined)?.error;
    t.is(e?.code, 'DBRS01', args.join(' '));
    t.regex(e?.message ?? '', message, args.join(' '));
    t.regex(e?.message ?? '', /nothing was changed/);
  }
  const after = await fresh.ok<{ group: { groupId: string; seq: number } }>('status');
  t.deepEqual(after.group, before.group, 'no refused restore changed the server');
  t.is((await fresh.sh('user', 'get', 'alice')).code === 0, false, 'nor brought the backup\'s users');
  const log = await fresh.ok<{ runs: { result: string }[] }>('backup', 'log');
  t.deepEqual(log.runs.map((r) => r.result), ['DBRS01', 'DBRS01', 'DBRS01', 'DBRS01']);

  const restored = await fresh.ok<{ format: number }>('restore', '--from', 'device', '--user', 'admin', '--password', 'secret-pw');
  t.is(restored.format, 2);
  t.is((await fresh.ok<{ group: { groupId: string } }>('status')).group.groupId, group);
  t.deepEqual(await fresh.value('user', 'alice', 'language'), { display: 'de', keyboard: 'de-DE' });

  // The old client follows the restored server at its new address without a password.
  const moved = await client.ok<{ client: { state: string; groupId: string } }>('role', 'set', 'client', '--server', `127.0.0.1:${freshPort}`);
  t.is(moved.client.state, 'live');
  t.is(moved.client.groupId, group);
  const mark = client.events.length;
  await fresh.ok('user', 'set', 'alice', 'language', JSON.stringify({ display: 'it', keyboard: 'it-IT' }));
  await client.waitRemote('alice', 'language', mark);
  t.deepEqual(await client.value('user', 'alice', 'language'), { display: 'it', keyboard: 'it-IT' });
});

test('files at rest: everything under a server\'s and a client\'s data directory is 0600 (folders 0700), after serving and compacting', async (t) => {
  const { server, port } = await startServer(t);
  const client = await AgentProcess.spawn(t, { name: 'c' });
  await joinClient(client, port);
  // Over LevelDB's 4 MiB write buffer: the log is flushed to tables and compacted while serving.
  const list = JSON.stringify(Array.from({ length: 1200 }, (_, i) => ({ name: `Contact ${i}`, email: `contact${i}@example.com`, fax: `03-5555-${i}` })));
  for (let u = 0; u < 60; u++) await server.control('item.set', { kind: 'user', id: `user${u}`, item: 'address-list', value: JSON.parse(list) });
  // A restart flushes what the log still holds into a table as well.
  await server.kill('SIGTERM');
  await server.start();
  await client.kill('SIGTERM');
  for (const agent of [server, client]) {
    const files = walk(agent.dataDir);
    const loose = files.filter((f) => f.mode !== (f.dir ? 0o700 : 0o600)).map((f) => `${f.path} ${f.mode.toString(8)}`);
    t.deepEqual(loose, [], agent.options.name);
  }
  const tables = walk(server.dataDir).filter((f) => f.path.includes(`${join(server.dataDir, 'group')}/`) && f.path.endsWith('.ldb'));
  t.true(tables.length > 0, 'the group store has tables (the key at rest)');
  t.log(`${walk(server.dataDir).length} entries under the server's data directory, ${tables.length} group tables`);
});
