/**
 * The SMB backup destination (agent/smb.ts) against a real Samba server started per test
 * (test/helpers/samba.ts): round trips, replacement, and every fault the backup must name — unknown
 * host, closed port, a port that is not SMB, a port that never answers, missing share, missing
 * directory, wrong password, read-only share, a full disk (a 1 MB tmpfs), a missing file — with the
 * password never in a message. The first tests read smbclient's recorded output without a server.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ManualClock } from '../../agent/clock.js';
import {
  classifySmbOutput, formatSmbUrl, parseSmbListing, parseSmbUrl, SmbError, smbErrorCode, SmbShare, type SmbFailure,
} from '../../agent/smb.js';
import { withChecklist } from '../../agent/backup.js';
import { MfpError, type ErrorCode } from '../../protocol/errors.js';
import { rng } from '../../tools/bench/records.js';
import { freePort } from '../helpers/agents.js';
import { haveSamba, startSamba, type Samba } from '../helpers/samba.js';
import { tempDir } from '../helpers/tmp.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

/** A file of seeded pseudo-random bytes (the same on every run, so a failure can be replayed). */
function randomFile(dir: string, name: string, bytes: number, seed: number): { path: string; data: Buffer } {
  const next = rng(seed);
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) data.writeUInt32LE(Math.floor(next() * 2 ** 32) >>> 0, Math.min(i, bytes - 4));
  const path = join(dir, name);
  writeFileSync(path, data);
  return { path, data };
}

/** Asserts an operation fails with an SmbError of `kind` whose message and stack keep the password out. */
async function fails(t: ExecutionContext, op: Promise<unknown>, kind: SmbFailure, password: string): Promise<SmbError> {
  const err = await t.throwsAsync(op, { instanceOf: SmbError });
  if (!err) throw new Error('no SmbError');
  t.is(err.kind, kind, err.message);
  t.false(err.message.includes(password), 'the password is in the message');
  t.false(String(err.stack).includes(password), 'the password is in the stack');
  for (const op of ['backup', 'restore'] as const) t.false(smbErrorCode(err, op).message.includes(password));
  return err;
}

function share(smb: Samba, name: string, dir?: string, password = smb.password): SmbShare {
  return new SmbShare({ url: smb.url(name, dir), user: smb.user, password });
}

/** A TCP server on 127.0.0.1 that does what `onSocket` says with each connection; closed after the test. */
async function listener(t: ExecutionContext, onSocket: (s: Socket) => void): Promise<{ port: number; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as { port: number }).port, server };
}

// ------------------------------------------------------------------------------------------ URLs

test('parseSmbUrl reads host, port, share and directory', (t) => {
  t.deepEqual(parseSmbUrl('smb://nas/backup'), { host: 'nas', port: 445, share: 'backup', dir: '' });
  t.deepEqual(parseSmbUrl('smb://nas.example.com/backup/'), { host: 'nas.example.com', port: 445, share: 'backup', dir: '' });
  t.deepEqual(parseSmbUrl('SMB://10.0.0.5:4450/backup/mfp/site 1/'), { host: '10.0.0.5', port: 4450, share: 'backup', dir: 'mfp/site 1' });
  t.deepEqual(parseSmbUrl('smb://[fe80::1]:139/C$/a%20b'), { host: 'fe80::1', port: 139, share: 'C$', dir: 'a b' });
  t.deepEqual(parseSmbUrl('smb://[::1]/s'), { host: '::1', port: 445, share: 's', dir: '' });
});

test('formatSmbUrl writes what parseSmbUrl reads, without credentials', (t) => {
  for (const url of ['smb://nas/backup', 'smb://10.0.0.5:4450/backup/mfp/site 1', 'smb://[fe80::1]:139/C$/a', 'smb://h/s/100%25/x%23y']) {
    t.is(formatSmbUrl(parseSmbUrl(url)), url);
  }
  const location = { host: '::1', port: 445, share: 's', dir: '50%/a#b' };
  t.is(formatSmbUrl(location), 'smb://[::1]/s/50%25/a%23b');
  t.deepEqual(parseSmbUrl(formatSmbUrl(location)), location);
});

test('parseSmbUrl refuses anything else with INVALID_ARGUMENT', (t) => {
  for (const url of [
    '', 'nas/backup', 'http://nas/backup', 'smb:/nas/backup', 'smb://nas', 'smb://nas/', 'smb:///backup', 'smb://nas:0/b',
    'smb://nas:65536/b', 'smb://nas:44a/b', 'smb://nas:/b', 'smb://::1/b', 'smb://[::zz]/b', 'smb://[10.0.0.1]/b', 'smb://na s/b',
    'smb://-nas/b', 'smb://nas/b/../c', 'smb://nas/b/./c', 'smb://nas/b//c', 'smb://nas/b/c:d', 'smb://nas/b/c%5Cd', 'smb://nas/b/%zz',
    'smb://nas/b?x=1', 'smb://nas/b#x', 'smb://nas/b/c\nd', 'smb://nas/a*',
  ]) {
    const err = t.throws(() => parseSmbUrl(url), { instanceOf: MfpError }, JSON.stringify(url));
    t.is(err?.code, 'INVALID_ARGUMENT', JSON.stringify(url));
  }
});

test('a URL with credentials is refused without echoing them', (t) => {
  for (const url of ['smb://admin:S3cret!@nas/backup', 'smb://S3cret!@nas/backup', 'smb://admin:S3cret!@[::1]:445/backup']) {
    const err = t.throws(() => parseSmbUrl(url), { instanceOf: MfpError });
    t.is(err?.code, 'INVALID_ARGUMENT');
    t.false(err?.message.includes('S3cret'));
    t.regex(err?.message ?? '', /--user and --password/);
  }
});

// ---------------------------------------------------------------------- smbclient's output, recorded

/** What smbclient 4.17 printed for each fault (stdout and stderr together). */
const RECORDED: [string, SmbFailure, string | undefined][] = [
  ['do_connect: Connection to no-such-host.invalid failed (Error NT_STATUS_UNSUCCESSFUL)', 'not-found', 'NT_STATUS_UNSUCCESSFUL'],
  ['do_connect: Connection to 127.0.0.1 failed (Error NT_STATUS_CONNECTION_REFUSED)', 'not-found', 'NT_STATUS_CONNECTION_REFUSED'],
  ['do_connect: Connection to [::1] failed (Error NT_STATUS_NOT_FOUND)', 'not-found', 'NT_STATUS_NOT_FOUND'],
  ['protocol negotiation failed: NT_STATUS_IO_TIMEOUT', 'not-found', 'NT_STATUS_IO_TIMEOUT'],
  ['protocol negotiation failed: NT_STATUS_CONNECTION_DISCONNECTED', 'not-found', 'NT_STATUS_CONNECTION_DISCONNECTED'],
  ['tree connect failed: NT_STATUS_BAD_NETWORK_NAME', 'not-found', 'NT_STATUS_BAD_NETWORK_NAME'],
  ['cd \\nodir\\: NT_STATUS_OBJECT_NAME_NOT_FOUND', 'not-found', 'NT_STATUS_OBJECT_NAME_NOT_FOUND'],
  ['cd \\a\\b\\: NT_STATUS_OBJECT_PATH_NOT_FOUND', 'not-found', 'NT_STATUS_OBJECT_PATH_NOT_FOUND'],
  ['session setup failed: NT_STATUS_LOGON_FAILURE', 'access', 'NT_STATUS_LOGON_FAILURE'],
  ['session setup failed: NT_STATUS_ACCOUNT_DISABLED', 'access', 'NT_STATUS_ACCOUNT_DISABLED'],
  ['tree connect failed: NT_STATUS_ACCESS_DENIED', 'access', 'NT_STATUS_ACCESS_DENIED'],
  ['NT_STATUS_ACCESS_DENIED opening remote file \\x.partial\nNT_STATUS_OBJECT_NAME_NOT_FOUND renaming files \\x.partial -> \\x ', 'access', 'NT_STATUS_ACCESS_DENIED'],
  ['NT_STATUS_MEDIA_WRITE_PROTECTED opening remote file \\x.partial', 'access', 'NT_STATUS_MEDIA_WRITE_PROTECTED'],
  ['tree connect failed: NT_STATUS_NETWORK_ACCESS_DENIED', 'access', 'NT_STATUS_NETWORK_ACCESS_DENIED'],
  ['cli_push returned NT_STATUS_DISK_FULL\nputting file /tmp/f as \\full\\big.partial (390617.4 kb/s) (average 390625.0 kb/s)', 'space', 'NT_STATUS_DISK_FULL'],
  ['NT_STATUS_OBJECT_NAME_NOT_FOUND opening remote file \\nofile', 'missing-file', 'NT_STATUS_OBJECT_NAME_NOT_FOUND'],
  ['NT_STATUS_NO_SUCH_FILE listing \\sub dir\\x\\nofile', 'missing-file', 'NT_STATUS_NO_SUCH_FILE'],
  ['NT_STATUS_SHARING_VIOLATION opening remote file \\x', 'other', 'NT_STATUS_SHARING_VIOLATION'],
];

test('smbclient output is classified by its first failure', (t) => {
  for (const [output, kind, status] of RECORDED) {
    t.like(classifySmbOutput(output), { kind, status }, output);
  }
  t.is(classifySmbOutput('putting file /tmp/f3 as \\a b.partial (366206.5 kb/s) (average 366210.9 kb/s)\n'), undefined);
  t.is(classifySmbOutput(''), undefined);
});

test('a listing gives the files with size and time, without directories', (t) => {
  const output = [
    '  .                                   D        0  Sat Nov 21 07:08:18 2026',
    '  ..                                  D        0  Sat Nov 21 07:08:29 2026',
    '  sub dir                             D        0  Sat Nov 21 07:08:18 2026',
    '  a b                                 A  3000000  Sat Nov 21 07:08:08 2026',
    '  mfpsync-2026-01-02T03-04-05Z-backup.mfpb      A 123456789  Fri Jan  2 03:04:05 2026',
    '  plain                               N        7  Thu Feb 29 23:59:59 2024',
    '',
    '\t\t264212084 blocks of size 1024. 82699756 blocks available',
  ].join('\n');
  t.deepEqual(parseSmbListing(output), [
    { name: 'a b', size: 3_000_000, mtime: Date.UTC(2026, 10, 21, 7, 8, 8) },
    { name: 'mfpsync-2026-01-02T03-04-05Z-backup.mfpb', size: 123_456_789, mtime: Date.UTC(2026, 0, 2, 3, 4, 5) },
    { name: 'plain', size: 7, mtime: Date.UTC(2024, 1, 29, 23, 59, 59) },
  ]);
});

test('smbErrorCode maps each kind to the backup and restore codes', (t) => {
  const expected: Record<SmbFailure, [ErrorCode, ErrorCode]> = {
    'not-found': ['DBBU04', 'DBRS03'],
    access: ['DBBU05', 'DBRS04'],
    space: ['DBBU03', 'DBRS02'],
    'missing-file': ['DBBU02', 'DBRS03'],
    other: ['DBBU02', 'DBRS02'],
  };
  for (const [kind, [backup, restore]] of Object.entries(expected) as [SmbFailure, [ErrorCode, ErrorCode]][]) {
    const err = new SmbError(kind, 'smb://nas/b', 'put x: something');
    const b = smbErrorCode(err, 'backup');
    t.true(b instanceof MfpError);
    t.is(b.code, backup, kind);
    t.is(b.message, 'smb://nas/b: put x: something');
    t.is(b.cause, err);
    t.is(smbErrorCode(err, 'restore').code, restore, kind);
  }
  t.is(smbErrorCode(new Error('boom'), 'backup').code, 'DBBU02');
  t.is(smbErrorCode('boom', 'restore').code, 'DBRS02');
  const coded = new MfpError('INVALID_ARGUMENT', 'bad url');
  t.is(smbErrorCode(coded, 'backup'), coded);
});

test('DBBU02 and DBRS02 show the manual\'s checklist with smbclient\'s detail beneath it; the other codes stay as they are', (t) => {
  const err = new SmbError('other', 'smb://nas/b', 'put x: NT_STATUS_CONNECTION_RESET');
  const b = withChecklist(smbErrorCode(err, 'backup'));
  t.is(b.code, 'DBBU02');
  t.is(b.message, 'Failed to generate the backup file (network). An error with an unidentified cause may have occurred. Check the following: whether the settings are entered correctly; the access privileges for the SMB server; the network environment.\n  detail: smb://nas/b: put x: NT_STATUS_CONNECTION_RESET');
  t.is(b.cause, err);
  const r = withChecklist(smbErrorCode(err, 'restore'));
  t.is(r.code, 'DBRS02');
  t.regex(r.message, /^Failed to restore data from the network destination\. .*SMB server.*\n {2}detail: smb:\/\/nas\/b: put x: NT_STATUS_CONNECTION_RESET$/s);
  const known = smbErrorCode(new SmbError('access', 'smb://nas/b', 'NT_STATUS_LOGON_FAILURE'), 'backup');
  t.is(withChecklist(known), known);
});

test('names, local paths and users that would break out of the smbclient command are refused', async (t) => {
  const s = new SmbShare({ url: 'smb://127.0.0.1:1/s', user: 'root', password: 'pw' });
  for (const name of ['', '.', '..', 'a"b', 'a;b', 'a\nb', 'a/b', 'a\\b', '*', 'a?', '-f', 'a|b', 'a:b']) {
    for (const op of [s.put('/etc/hostname', name), s.get(name, '/tmp/x'), s.remove(name)]) {
      const err = await t.throwsAsync(op, { instanceOf: MfpError }, JSON.stringify(name));
      t.is(err?.code, 'INVALID_ARGUMENT');
    }
  }
  for (const local of ['/tmp/a"b', '/tmp/a;b', '/tmp/a\nb']) {
    t.is((await t.throwsAsync(s.get('x', local), { instanceOf: MfpError }))?.code, 'INVALID_ARGUMENT');
  }
  for (const user of ['', 'root%pw', 'a\nb']) {
    t.is(t.throws(() => new SmbShare({ url: 'smb://nas/s', user, password: 'pw' }), { instanceOf: MfpError })?.code, 'INVALID_ARGUMENT');
  }
  t.is(new SmbShare({ url: 'smb://nas:445/s/d/', user: 'root', password: 'pw' }).url, 'smb://nas/s/d');
});

test('a missing smbclient is an error of kind other, not a crash', async (t) => {
  const s = new SmbShare({ url: 'smb://127.0.0.1/s', user: 'root', password: 'pw-no-client', smbclient: '/nonexistent/smbclient' });
  const err = await fails(t, s.list(), 'other', 'pw-no-client');
  t.regex(err.message, /\/nonexistent\/smbclient is not installed/);
  t.is(smbErrorCode(err, 'restore').code, 'DBRS02');
});

// ------------------------------------------------------------------------------------- real Samba

test('put, list, get and remove round-trip a file byte-exact', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backup' }] });
  if (!smb) return;
  mkdirSync(join(smb.dir('backup'), 'mfp', 'site 1'), { recursive: true });
  const local = tempDir(t);
  const { path, data } = randomFile(local, 'db.bin', 3 * 1024 * 1024 + 5, 1);
  const s = share(smb, 'backup', 'mfp/site 1');

  const before = Date.now();
  await s.put(path, 'backup 2026.mfpb');
  t.deepEqual(readdirSync(join(smb.dir('backup'), 'mfp', 'site 1')), ['backup 2026.mfpb']);
  const [file, ...more] = await s.list();
  t.deepEqual(more, []);
  t.is(file?.name, 'backup 2026.mfpb');
  t.is(file?.size, data.length);
  t.true(Math.abs((file?.mtime ?? 0) - before) < 60_000, `mtime ${file?.mtime} vs ${before}`);

  await s.get('backup 2026.mfpb', join(local, 'back.bin'));
  t.true(readFileSync(join(local, 'back.bin')).equals(data));
  t.false(existsSync(join(local, 'back.bin.partial')));

  await s.remove('backup 2026.mfpb');
  t.deepEqual(await s.list(), []);
  t.deepEqual(readdirSync(join(smb.dir('backup'), 'mfp', 'site 1')), []);
});

test('a second put of the same name replaces the file', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backup' }] });
  if (!smb) return;
  const local = tempDir(t);
  const first = randomFile(local, 'a.bin', 2 * 1024 * 1024, 2);
  const second = randomFile(local, 'b.bin', 1024 * 1024 + 3, 3);
  const s = share(smb, 'backup');
  await s.put(first.path, 'db.mfpb');
  await s.put(second.path, 'db.mfpb');
  t.deepEqual(readdirSync(smb.dir('backup')), ['db.mfpb']);
  t.deepEqual((await s.list()).map((f) => [f.name, f.size]), [['db.mfpb', second.data.length]]);
  await s.get('db.mfpb', join(local, 'back.bin'));
  t.true(readFileSync(join(local, 'back.bin')).equals(second.data));
});

test('an unknown host is not found: DBBU04 on backup, DBRS03 on restore', async (t) => {
  if (!haveSamba(t, ['smbclient'])) return;
  const s = new SmbShare({ url: 'smb://no-such-host.invalid/share', user: 'root', password: 'pw-unknown-host-71' });
  const err = await fails(t, s.list(), 'not-found', 'pw-unknown-host-71');
  t.regex(err.message, /^smb:\/\/no-such-host\.invalid\/share: list: .*Connection to no-such-host\.invalid failed/);
  t.is(smbErrorCode(err, 'backup').code, 'DBBU04');
  t.is(smbErrorCode(err, 'restore').code, 'DBRS03');
  await fails(t, s.get('db.mfpb', join(tempDir(t), 'x')), 'not-found', 'pw-unknown-host-71');
});

test('a port where nothing listens is not found', async (t) => {
  if (!haveSamba(t, ['smbclient'])) return;
  const port = await freePort();
  const err = await fails(t, new SmbShare({ url: `smb://127.0.0.1:${port}/share`, user: 'root', password: 'pw-closed-port' }).list(), 'not-found', 'pw-closed-port');
  t.is(err.status, 'NT_STATUS_CONNECTION_REFUSED');
  t.is(smbErrorCode(err, 'backup').code, 'DBBU04');
});

test('a port that does not speak SMB is not found', async (t) => {
  if (!haveSamba(t, ['smbclient'])) return;
  const { port } = await listener(t, (s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  const err = await fails(t, new SmbShare({ url: `smb://127.0.0.1:${port}/share`, user: 'root', password: 'pw-http' }).list(), 'not-found', 'pw-http');
  t.is(err.status, 'NT_STATUS_CONNECTION_DISCONNECTED');
});

test('smbclient is killed when the destination never answers within timeoutMs', async (t) => {
  if (!haveSamba(t, ['smbclient'])) return;
  let connected!: () => void;
  const connection = new Promise<void>((r) => (connected = r));
  const { port } = await listener(t, () => connected()); // accepts and stays silent: smbclient would wait 20 s
  const clock = new ManualClock();
  const s = new SmbShare({ url: `smb://127.0.0.1:${port}/share`, user: 'root', password: 'pw-silent', timeoutMs: 5_000, clock });
  const op = s.list();
  await connection;
  t.is(clock.pending, 1);
  clock.advance(4_999);
  t.is(clock.pending, 1);
  clock.advance(1);
  const err = await fails(t, op, 'other', 'pw-silent');
  t.regex(err.message, /no result within 5000 ms/);
  t.is(smbErrorCode(err, 'backup').code, 'DBBU02');
  t.is(clock.pending, 0);
});

test('a missing share is not found', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backup' }] });
  if (!smb) return;
  const err = await fails(t, share(smb, 'nope').list(), 'not-found', smb.password);
  t.is(err.status, 'NT_STATUS_BAD_NETWORK_NAME');
  t.is(smbErrorCode(err, 'restore').code, 'DBRS03');
});

test('a missing directory is not found, and nothing is written to the share root instead', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backup' }] });
  if (!smb) return;
  const { path } = randomFile(tempDir(t), 'db.bin', 64 * 1024, 4);
  const s = share(smb, 'backup', 'no/such dir');
  const err = await fails(t, s.put(path, 'db.mfpb'), 'not-found', smb.password);
  t.regex(err.status ?? '', /^NT_STATUS_OBJECT_(NAME|PATH)_NOT_FOUND$/);
  t.is(smbErrorCode(err, 'backup').code, 'DBBU04');
  await fails(t, s.list(), 'not-found', smb.password);
  t.deepEqual(readdirSync(smb.dir('backup')), []);
});

test('a wrong password is refused: DBBU05 on backup, DBRS04 on restore, and is never in the message', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backup' }] });
  if (!smb) return;
  const wrong = `wrong-${smb.password}`;
  const s = share(smb, 'backup', undefined, wrong);
  const { path } = randomFile(tempDir(t), 'db.bin', 1024, 5);
  const err = await fails(t, s.put(path, 'db.mfpb'), 'access', wrong);
  t.is(err.status, 'NT_STATUS_LOGON_FAILURE');
  t.is(smbErrorCode(err, 'backup').code, 'DBBU05');
  const restore = await fails(t, s.get('db.mfpb', join(tempDir(t), 'x')), 'access', wrong);
  t.is(smbErrorCode(restore, 'restore').code, 'DBRS04');
  t.false(smbErrorCode(restore, 'restore').message.includes(smb.password));
  t.deepEqual(readdirSync(smb.dir('backup')), []);
});

test('a put on a read-only share is refused (DBBU05) and leaves nothing', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'archive', readOnly: true }] });
  if (!smb) return;
  const { path } = randomFile(tempDir(t), 'db.bin', 64 * 1024, 6);
  const err = await fails(t, share(smb, 'archive').put(path, 'db.mfpb'), 'access', smb.password);
  t.is(err.status, 'NT_STATUS_ACCESS_DENIED');
  t.is(smbErrorCode(err, 'backup').code, 'DBBU05');
  t.deepEqual(readdirSync(smb.dir('archive')), []);
});

test('a full share is DBBU03, and neither the partial nor the final file is left', async (t) => {
  const mount = await mountTmpfs(t, 1024 * 1024);
  if (!mount) return;
  const smb = await startSamba(t, { shares: [{ name: 'small', path: mount }] });
  if (!smb) return;
  const seen = new Set<string>();
  let marker!: () => void;
  const markerSeen = new Promise<void>((r) => (marker = r));
  const watcher = watch(mount, (_event, name) => {
    if (name) seen.add(name.toString());
    if (name?.toString() === 'flush-marker') marker();
  });
  t.teardown(() => watcher.close());

  const { path } = randomFile(tempDir(t), 'db.bin', 2 * 1024 * 1024, 7);
  const err = await fails(t, share(smb, 'small').put(path, 'db.mfpb'), 'space', smb.password);
  t.is(err.status, 'NT_STATUS_DISK_FULL');
  t.is(smbErrorCode(err, 'backup').code, 'DBBU03');
  t.deepEqual(readdirSync(mount), []);

  // inotify reports in order: once the marker is seen, every earlier event has been too.
  writeFileSync(join(mount, 'flush-marker'), '');
  await markerSeen;
  t.true(seen.has('db.mfpb.partial'), 'the upload went to the partial name');
  t.false(seen.has('db.mfpb'), 'the final name appeared');
});

test('getting a missing file is DBRS03 and leaves no local file', async (t) => {
  const smb = await startSamba(t, { shares: [{ name: 'backup' }] });
  if (!smb) return;
  const local = tempDir(t);
  const s = share(smb, 'backup');
  const err = await fails(t, s.get('db.mfpb', join(local, 'db.bin')), 'missing-file', smb.password);
  t.is(err.status, 'NT_STATUS_OBJECT_NAME_NOT_FOUND');
  t.is(smbErrorCode(err, 'restore').code, 'DBRS03');
  t.deepEqual(readdirSync(local), []);
  const gone = await fails(t, s.remove('db.mfpb'), 'missing-file', smb.password);
  t.is(gone.status, 'NT_STATUS_NO_SUCH_FILE');
});
