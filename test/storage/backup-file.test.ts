/**
 * The backup file format fed straight with bytes (STYLE habit 9): a round trip of a realistic image;
 * the group key sealed for the administrator account (its server key, or its password) and for no
 * member device, another password or another account, and never in clear; a format-1 file (sealed to
 * member devices, written by an older build) still verified and opened by its recipients only; every truncated prefix and
 * seeded flipped bytes of every region; another group's file, a file re-signed by another key, files of
 * other programs, a newer format; crafted files whose checksum and signature are right but whose
 * content is not — each a BackupFileError, class, reason and message asserted apart. Then the encoder's
 * refusals, the atomic write and the bounded read, on real files in a temp dir.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import nacl from 'tweetnacl';
import { readFileSync as readFixture } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createIdentity, identityFromSecret, makeAdminSecret, serverKeyOf, signParts, type Identity } from '../../agent/identity.js';
import { MfpError } from '../../protocol/errors.js';
import {
  BACKUP_FORMAT, BACKUP_MAGIC, BackupFileError, decodeBackupFile, encodeBackupFile, MAX_BACKUP_BYTES, readBackupFile, readBackupHeader,
  writeBackupFile, type BackupFault, type BackupHeader, type BackupInput,
} from '../../storage/backup-file.js';
import { entityKey } from '../../storage/catalog.js';
import { decodeExportFile, encodeExportFile } from '../../storage/export-file.js';
import { Keys } from '../../storage/keys.js';
import { compareKeys } from '../../storage/kv.js';
import { encodeRecord, valueHash } from '../../storage/records.js';
import { rng, userNames, userRecord } from '../../tools/bench/records.js';
import { tempDir } from '../helpers/tmp.js';
import { craftFile, packr } from './fixtures/craft.js';

type Entry = [string, Uint8Array];

const GROUP = nacl.sign.keyPair();
const OTHER_GROUP = nacl.sign.keyPair();
const [A, B, C] = [createIdentity(), createIdentity(), createIdentity()] as [Identity, Identity, Identity];

const accountKey = (user: string, password: string) => {
  const a = makeAdminSecret(user, password);
  return { user, salt: Buffer.from(a.salt, 'base64'), serverKey: Buffer.from(a.serverKey, 'base64') };
};
/** The group administrator's account as the server keeps it (its SCRAM salt and server key). */
const ADMIN = accountKey('admin', 'pw');
const OTHER_ADMIN = accountKey('admin', 'pw');
type Account = typeof ADMIN;
/** The server's own key for its account: opens what that account sealed (no password needed). */
const ownKey = (account: Account) => (user: string, salt: Uint8Array) => (user === account.user && Buffer.from(account.salt).equals(salt) ? account.serverKey : undefined);
/** Opens as the server of ADMIN would; `id` is the device (format 1). */
type AdminKeyOf = (user: string, salt: Uint8Array) => Uint8Array | undefined;
const opener = (id: Identity, trustedGroupKeys: Uint8Array[] = [GROUP.publicKey], adminKey: AdminKeyOf = ownKey(ADMIN)) => ({ adminKey, deviceId: id.deviceId, secretKey: id.secretKey, trustedGroupKeys });
/** Opens with an administrator's user id and password, as `restore --user --password` does. */
const withPassword = (user: string, password: string) => (u: string, salt: Uint8Array) => (u === user ? serverKeyOf(password, salt) : undefined);

/** A backup of `entries`, sealed for ADMIN, by GROUP unless told. */
function input(entries: Entry[], over: Partial<BackupInput> = {}): BackupInput {
  return {
    software: '0.1.0',
    createdAt: Date.UTC(2026, 2, 3, 4, 5, 6),
    groupId: 'grp-7f3a',
    groupKey: GROUP,
    epoch: 'e-20260303',
    seq: 48_213,
    counts: { users: 412, groups: 9, devices: 3, items: 5_870 },
    admin: ADMIN,
    entries,
    ...over,
  };
}

/**
 * A seeded image of a group database: meta records, devices, users' bookkeeping and items, log entries —
 * `count` keys in the store's order, values of 10 B to `maxValue` (log-uniform). Some names are not
 * ASCII, one is astral: UTF-8 and UTF-16 orders differ for them.
 */
function image(seed: number, count: number, maxValue = 64 * 1024): Entry[] {
  const r = rng(seed);
  const names = ['alice', 'bob', 'ユーザー', '\uff21dmin', '\u{1d4d0}lice', 'zoë'];
  const items = ['language', 'home', 'job-defaults', 'address-list', 'personal-buttons', 'timeline', 'keychain', 'shortcuts'];
  const keys = new Set<string>(['seq', 'epoch', 'sharing', 'admin'].map((m) => Keys.meta(m)));
  for (let d = 0; d < 3; d++) keys.add(Keys.device(`dev${d}aaaabbbbcccc`));
  for (let i = 0; keys.size < count; i++) {
    const user = i < names.length ? names[i]! : `u${String(Math.floor(r() * 100_000)).padStart(5, '0')}`;
    keys.add(Keys.user(user));
    for (const item of items) if (keys.size < count && r() < 0.7) keys.add(Keys.item(entityKey('user', user), item));
    if (keys.size < count) keys.add(Keys.log(Math.floor(r() * 1e9)));
  }
  return [...keys].sort(compareKeys).map((k) => {
    const n = Math.floor(10 * (maxValue / 10) ** r());
    const v = new Uint8Array(n);
    for (let i = 0; i < n; i++) v[i] = Math.floor(r() * 256);
    return [k, v];
  });
}

/** Sum of the keys' UTF-8 bytes and the values' bytes. */
function rawBytes(entries: Entry[]): number {
  return entries.reduce((n, [k, v]) => n + Buffer.byteLength(k) + v.length, 0);
}

/** Asserts a BackupFileError: class, reason and message, each on its own. */
function refused(t: ExecutionContext, fn: () => unknown, reason: BackupFault, message: RegExp, label?: string): BackupFileError {
  const err = t.throws(fn, { instanceOf: BackupFileError }, label);
  t.is(err?.reason, reason, label);
  t.regex(err?.message ?? '', message, label);
  return err!;
}

/** Keys of `a` whose pair differs from `b`'s at the same place, or is missing there. */
function differing(a: readonly Entry[], b: readonly Entry[]): string[] {
  const out = a.filter(([k, v], i) => b[i]?.[0] !== k || !Buffer.from(v).equals(b[i]![1])).map(([k]) => k);
  if (b.length !== a.length) out.push(`(${b.length} entries, not ${a.length})`);
  return out;
}

/** Where the regions of a file start and end. */
function regions(bytes: Uint8Array): { bodyStart: number; checksumStart: number; signatureStart: number } {
  const bodyStart = 14 + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(10);
  return { bodyStart, checksumStart: bytes.length - 96, signatureStart: bytes.length - 64 };
}

/** A file framed from raw header and body values, checksummed and signed by `signer`: a crafted file. */
function craft(header: unknown, body: unknown, signer: Uint8Array = GROUP.secretKey, format = BACKUP_FORMAT): Buffer {
  return craftFile(BACKUP_MAGIC, format, header, body, { trailer: (signed) => signParts(signer, signed) });
}

const SMALL = image(3, 60, 2048);
const SMALL_FILE = encodeBackupFile(input(SMALL));
const SMALL_HEADER = readBackupHeader(SMALL_FILE);

test('round trip of a realistic image: the header, every pair and the group key read back', (t) => {
  const entries = image(1, 3_000);
  const bytes = encodeBackupFile(input(entries));
  t.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x4d, 0x46, 0x50, 0x42, 0x0d, 0x0a, 0x1a]);
  const file = decodeBackupFile(bytes, opener(A));
  t.is(file.format, 2);
  const { admin, ...rest } = file.header;
  t.deepEqual(rest, {
    software: '0.1.0', createdAt: Date.UTC(2026, 2, 3, 4, 5, 6), groupId: 'grp-7f3a', groupKey: Uint8Array.from(GROUP.publicKey), epoch: 'e-20260303', seq: 48_213,
    counts: { users: 412, groups: 9, devices: 3, items: 5_870, entries: 3_000 },
  });
  t.is(admin?.user, 'admin');
  t.deepEqual(admin?.salt, Uint8Array.from(ADMIN.salt));
  t.is(file.entries.length, 3_000);
  t.deepEqual(differing(entries, file.entries), []);
  t.deepEqual(Buffer.from(file.groupSecretKey), Buffer.from(GROUP.secretKey));
  t.deepEqual(readBackupHeader(bytes), file.header);
  // The image is what the test means: values from 10 B to 64 KiB, keys in UTF-8 order (not UTF-16's).
  const sizes = entries.map(([, v]) => v.length);
  t.true(Math.min(...sizes) < 20 && Math.max(...sizes) > 40_000, `${Math.min(...sizes)}..${Math.max(...sizes)}`);
  t.notDeepEqual(entries.map(([k]) => k), entries.map(([k]) => k).sort());
  // A pair costs MessagePack's few bytes of framing (array, string and bin headers: at most 9 bytes).
  const raw = rawBytes(entries);
  t.true(bytes.length > raw && bytes.length <= raw + 9 * entries.length + 2_048, `${bytes.length} bytes for ${raw} raw`);
  t.log(`${entries.length} pairs: ${raw} raw bytes, ${bytes.length} in the file`);
  // The crafted framing is the real one (so the crafted faults below differ from a real file only where meant).
  t.deepEqual(craft(SMALL_HEADER, SMALL), Buffer.from(SMALL_FILE));
});

test('a 1,000-user image costs little more than its raw bytes', (t) => {
  const entries: Entry[] = [];
  let seq = 0;
  for (const user of userNames(1_000)) {
    const e = entityKey('user', user);
    entries.push([Keys.user(user), encodeRecord({ lastUsed: 1_760_000_000_000 + seq })]);
    for (const [n, val] of Object.entries(userRecord(user))) {
      seq++;
      entries.push([Keys.item(e, n), encodeRecord({ val, v: seq, h: valueHash(val), by: 'dev0aaaabbbbcccc', at: 1_760_000_000_000 + seq })]);
      entries.push([Keys.log(seq), encodeRecord({ e, n, by: 'dev0aaaabbbbcccc' })]);
    }
  }
  entries.sort(([a], [b]) => compareKeys(a, b));
  const bytes = encodeBackupFile(input(entries, { counts: { users: 1_000, groups: 0, devices: 3, items: seq } }));
  const raw = rawBytes(entries);
  t.log(`1,000 users: ${entries.length} pairs, ${raw} raw bytes, a file of ${bytes.length} bytes (+${((bytes.length / raw - 1) * 100).toFixed(2)} %)`);
  t.true(bytes.length <= raw * 1.03, `${bytes.length} bytes for ${raw} raw`);
  t.deepEqual(differing(entries, decodeBackupFile(bytes, opener(B)).entries), []);
});

test('the group key is sealed for the administrator: its server key or password opens it, no member key, other password or account', (t) => {
  // The server that made it, with the server key it keeps; anyone with the password and the salt written in the file.
  t.deepEqual(Buffer.from(decodeBackupFile(SMALL_FILE, opener(A)).groupSecretKey), Buffer.from(GROUP.secretKey));
  t.deepEqual(Buffer.from(decodeBackupFile(SMALL_FILE, opener(C, [], withPassword('admin', 'pw'))).groupSecretKey), Buffer.from(GROUP.secretKey), 'on a machine that trusts no group key');
  refused(t, () => decodeBackupFile(SMALL_FILE, opener(A, [GROUP.publicKey], withPassword('admin', 'wrong'))), 'wrong-password', /administrator account given does not open its group key \(sealed for "admin" of group grp-7f3a/);
  refused(t, () => decodeBackupFile(SMALL_FILE, opener(A, [GROUP.publicKey], withPassword('root', 'pw'))), 'no-account', /sealed for the administrator account "admin" of group grp-7f3a as it was on 2026-03-03T04:05:06\.000Z: give that account \(--user ID --password PW\) with the password it had then/);
  // Another server's account with the same user id and password: another salt, another server key.
  refused(t, () => decodeBackupFile(SMALL_FILE, opener(A, [GROUP.publicKey], ownKey(OTHER_ADMIN))), 'no-account', /give that account/);
  refused(t, () => decodeBackupFile(SMALL_FILE, opener(A, [GROUP.publicKey], (user) => (user === 'admin' ? OTHER_ADMIN.serverKey : undefined))), 'wrong-password', /does not open/);
  // The seal is bound to its group: moved into another group's (signed) file, it does not open.
  const other = readBackupHeader(encodeBackupFile(input(SMALL, { groupKey: OTHER_GROUP })));
  const moved = craft({ ...other, admin: SMALL_HEADER.admin }, SMALL, OTHER_GROUP.secretKey);
  refused(t, () => decodeBackupFile(moved, opener(A)), 'wrong-password', /does not open/);
});

/** The format-1 fixture: written by mfpsync 0.1.0 before key custody changed, sealed to devices A and B. */
const V1 = (() => {
  const dir = join(fileURLToPath(import.meta.url), '../../../../test/storage/fixtures');
  const keys = JSON.parse(readFixture(join(dir, 'backup-v1.json'), 'utf8')) as { groupPublicKey: string; recipients: { secretKey: string }[]; entries: number };
  return {
    bytes: readFixture(join(dir, 'backup-v1.mfpb')),
    groupKey: Buffer.from(keys.groupPublicKey, 'base64'),
    recipients: keys.recipients.map((r) => identityFromSecret(Buffer.from(r.secretKey, 'base64'))),
    entries: keys.entries,
  };
})();

test('a format-1 backup (sealed to member devices) is verified and opened by its recipients only', (t) => {
  for (const id of V1.recipients) {
    const file = decodeBackupFile(V1.bytes, opener(id, [V1.groupKey]));
    t.is(file.format, 1);
    t.is(file.entries.length, V1.entries);
    t.deepEqual(Buffer.from(file.groupSecretKey.subarray(32)), V1.groupKey);
  }
  const [a] = V1.recipients as [Identity];
  refused(t, () => decodeBackupFile(V1.bytes, opener(C, [V1.groupKey])), 'not-a-recipient', new RegExp(`not to this device \\(${C.deviceId}\\)`));
  refused(t, () => decodeBackupFile(V1.bytes, { ...opener(C, [V1.groupKey]), deviceId: a.deviceId }), 'not-a-recipient', /does not open with this device's key/);
  refused(t, () => decodeBackupFile(V1.bytes, opener(a)), 'foreign-group', /which is not this group's/);
  const damaged = Buffer.from(V1.bytes);
  damaged[damaged.length - 150]! ^= 1;
  refused(t, () => decodeBackupFile(damaged, opener(a, [V1.groupKey])), 'damaged', /checksum does not match/);
  t.is(readBackupHeader(V1.bytes).sealed?.keys.length, 2);
});

test('the group secret key does not occur in the file', (t) => {
  const bytes = Buffer.from(encodeBackupFile(input(image(4, 400, 4096))));
  const seed = Buffer.from(GROUP.secretKey.subarray(0, 32));
  // The search finds what is there: the public key (the secret key's second half) is in the header.
  t.true(bytes.indexOf(Buffer.from(GROUP.publicKey)) > 0);
  t.true(Buffer.concat([bytes, seed.subarray(0, 8)]).indexOf(seed.subarray(0, 8)) >= 0);
  t.is(bytes.indexOf(Buffer.from(GROUP.secretKey)), -1);
  // Nor does any 8 bytes of the seed, which is the whole secret.
  const found: number[] = [];
  for (let i = 0; i + 8 <= 32; i++) if (bytes.indexOf(seed.subarray(i, i + 8)) >= 0) found.push(i);
  t.deepEqual(found, []);
});

test('every truncated prefix is refused as truncated', (t) => {
  const bytes = encodeBackupFile(input(image(5, 300, 8192)));
  const { bodyStart } = regions(bytes);
  const cuts = new Set<number>();
  for (let n = 0; n <= bodyStart + 16; n++) cuts.add(n);
  for (let i = 0; i < 250; i++) cuts.add(bodyStart + Math.floor(((bytes.length - bodyStart) * i) / 250));
  for (let n = bytes.length - 120; n < bytes.length; n++) cuts.add(n);
  t.true(cuts.size > 200 + bodyStart);
  for (const n of cuts) {
    const err = t.throws(() => decodeBackupFile(bytes.subarray(0, n), opener(A)), { instanceOf: BackupFileError }, `prefix of ${n} bytes`);
    t.is(err?.reason, 'truncated', `prefix of ${n} bytes: ${err?.message}`);
  }
  refused(t, () => decodeBackupFile(bytes.subarray(0, 10), opener(A)), 'truncated', /truncated: 10 bytes, not even the file's preamble/);
  refused(t, () => decodeBackupFile(bytes.subarray(0, bodyStart - 1), opener(A)), 'truncated', /end inside the header/);
  refused(t, () => decodeBackupFile(bytes.subarray(0, bytes.length - 1), opener(A)), 'truncated', new RegExp(`truncated: ${bytes.length - 1} of ${bytes.length} bytes`));
});

test('a flipped byte anywhere is refused, for the reason its region gives', (t) => {
  const bytes = encodeBackupFile(input(image(6, 300, 8192)));
  const { bodyStart, checksumStart, signatureStart } = regions(bytes);
  const r = rng(0xb4c0);
  const at = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo));
  // [region, first byte, end, how many flips, the reasons it may give]
  const plan: [string, number, number, number, BackupFault[]][] = [
    ['magic', 0, 8, 16, ['foreign-program']],
    // A flipped format byte may read as format 1, whose header is another: then the checksum says damaged.
    ['format', 8, 10, 8, ['format', 'damaged']],
    ['header length', 10, 14, 16, ['truncated', 'damaged']],
    ['header', 14, bodyStart, 120, ['damaged', 'truncated']],
    ['body', bodyStart, checksumStart, 220, ['damaged']],
    ['checksum', checksumStart, signatureStart, 40, ['damaged']],
    ['signature', signatureStart, bytes.length, 80, ['signature']],
  ];
  t.is(plan.reduce((n, [, , , k]) => n + k, 0), 500);
  for (const [region, lo, hi, count, reasons] of plan) {
    const seen = new Set<BackupFault>();
    for (let i = 0; i < count; i++) {
      const p = at(lo, hi);
      const bad = Uint8Array.from(bytes);
      bad[p]! ^= 1 + Math.floor(r() * 255);
      const err = t.throws(() => decodeBackupFile(bad, opener(A)), { instanceOf: BackupFileError }, `${region} byte ${p}`);
      if (err) seen.add(err.reason);
      t.true(err !== undefined && reasons.includes(err.reason), `${region} byte ${p}: ${err?.reason} (${err?.message})`);
    }
    t.log(`${region}: ${[...seen].join(', ')}`);
  }
  const body = Uint8Array.from(bytes);
  body[bodyStart + 100]! ^= 0x04;
  refused(t, () => decodeBackupFile(body, opener(A)), 'damaged', /checksum does not match the content/);
  const signature = Uint8Array.from(bytes);
  signature[signatureStart + 5]! ^= 0x04;
  refused(t, () => decodeBackupFile(signature, opener(A)), 'signature', /not by the group key the header names/);
});

test('another group\'s file opens only with its own account; a file signed by another key than its header names is not signed', (t) => {
  // Internally valid, but of another group sealed for another account: this server's key opens nothing.
  const other = encodeBackupFile(input(SMALL, { groupKey: OTHER_GROUP, admin: OTHER_ADMIN }));
  refused(t, () => decodeBackupFile(other, opener(A)), 'no-account', /give that account/);
  // Its own administrator opens it anywhere (the seal is the trust, not the key list).
  t.is(decodeBackupFile(other, opener(A, [], ownKey(OTHER_ADMIN))).entries.length, SMALL.length);

  // This group's file re-signed by another key, with a right checksum, naming that key: the seal is
  // bound to the group key, so it does not open.
  const resigned = craft({ ...SMALL_HEADER, groupKey: OTHER_GROUP.publicKey }, SMALL, OTHER_GROUP.secretKey);
  refused(t, () => decodeBackupFile(resigned, opener(A)), 'wrong-password', /does not open/);

  // The header names this group's key but another key signed it.
  const forged = craft(SMALL_HEADER, SMALL, OTHER_GROUP.secretKey);
  refused(t, () => decodeBackupFile(forged, opener(A, [GROUP.publicKey, OTHER_GROUP.publicKey])), 'signature', /not by the group key the header names/);
  // The same file signed by this group's key is the real one.
  t.is(decodeBackupFile(craft(SMALL_HEADER, SMALL), opener(A)).entries.length, SMALL.length);
});

test('files of other programs and of a newer format are refused', (t) => {
  const exportFile = encodeExportFile(
    { software: '0.1.0', createdAt: 0, source: { deviceId: A.deviceId, name: 'MFP-3F', role: 'server' }, selection: 'all' },
    { users: [{ id: 'alice', items: { language: { display: 'fr' } } }], groups: [], shared: null },
  );
  refused(t, () => decodeBackupFile(exportFile, opener(A)), 'foreign-program', /^not a valid backup file: not an mfpsync backup file \(its first bytes are not the backup magic\)$/);
  refused(t, () => readBackupHeader(exportFile), 'foreign-program', /not an mfpsync backup file/);
  // And the other way round: a backup is not an export.
  const err = t.throws(() => decodeExportFile(SMALL_FILE), { instanceOf: MfpError });
  t.is(err?.code, 'IMPORT_INVALID');
  t.regex(err?.message ?? '', /not an mfpsync export file/);
  const r = rng(7);
  const others: [string, Uint8Array][] = [
    ['JSON', Buffer.from(JSON.stringify({ entries: [['a', 'b']] }))],
    ['a MessagePack map', packr.pack({ ...SMALL_HEADER, body: SMALL })],
    ['a PNG signature', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])],
    ['seeded random bytes', Uint8Array.from({ length: 4096 }, () => 1 + Math.floor(r() * 255))],
  ];
  for (const [what, bytes] of others) refused(t, () => decodeBackupFile(bytes, opener(A)), 'foreign-program', /not an mfpsync backup file/, what);

  const newer = Buffer.from(SMALL_FILE);
  newer.writeUInt16BE(BACKUP_FORMAT + 1, 8);
  refused(t, () => decodeBackupFile(newer, opener(A)), 'format', /format version 3 is newer than this build reads \(2\): restore it with a newer mfpsync/);
  refused(t, () => readBackupHeader(newer), 'format', /newer/);
  // Newer and properly signed: the format is still checked first.
  refused(t, () => decodeBackupFile(craft(SMALL_HEADER, SMALL, GROUP.secretKey, 3), opener(A)), 'format', /newer/);
  refused(t, () => decodeBackupFile(craft(SMALL_HEADER, SMALL, GROUP.secretKey, 0), opener(A)), 'format', /unknown format version 0/);
  refused(t, () => decodeBackupFile(Buffer.concat([SMALL_FILE, Buffer.from([0])]), opener(A)), 'damaged', /1 bytes after the end/);
  const huge = Buffer.from(SMALL_FILE);
  huge.writeUInt32BE(0xffffffff, 10);
  refused(t, () => decodeBackupFile(huge, opener(A)), 'damaged', /header claims 4294967295 bytes; at most 65536/);
});

test('a file with a right checksum and signature but wrong content is refused as malformed', (t) => {
  const h = (over: Partial<BackupHeader> & Record<string, unknown>) => ({ ...SMALL_HEADER, ...over });
  const counted = (n: number) => h({ counts: { ...SMALL_HEADER.counts, entries: n } });
  const [first, second] = SMALL as [Entry, Entry];
  const rest = SMALL.slice(2);
  const cases: [string, Buffer, RegExp][] = [
    ['keys out of order', craft(SMALL_HEADER, [second, first, ...rest]), /body\[1\] has the key .* after .*: keys must be strictly increasing/],
    ['a key twice', craft(SMALL_HEADER, [first, first, ...rest]), /body\[1\] has the key .*strictly increasing/],
    ['a value that is a string', craft(SMALL_HEADER, [first, [second[0], 'text'], ...rest]), /body\[1\] has a value that is not binary/],
    ['a key that is a number', craft(SMALL_HEADER, [[1, first[1]], second, ...rest]), /body\[0\] has a key that is not a string/],
    ['a triple', craft(SMALL_HEADER, [[...first, 0], second, ...rest]), /body\[0\] must be a \[key, value\] pair/],
    ['a body that is a map', craft(SMALL_HEADER, Object.fromEntries(SMALL)), /the body must be an array/],
    ['counts that disagree', craft(counted(SMALL.length + 1), SMALL), new RegExp(`header counts ${SMALL.length + 1} entries, the body holds ${SMALL.length}`)],
    ['a __proto__ key in the header', craft(h({ note: JSON.parse('{"__proto__":{"admin":true}}') }), SMALL), /its header holds the key __proto__/],
    ['a header without groupKey', craft(h({ groupKey: undefined }), SMALL), /header\.groupKey must be binary/],
    ['a short group key', craft(h({ groupKey: GROUP.publicKey.subarray(0, 31) }), SMALL), /header\.groupKey must be 32 bytes/],
    ['no administrator seal', craft(h({ admin: undefined }), SMALL), /header\.admin must be a map/],
    ['a short salt', craft(h({ admin: { ...SMALL_HEADER.admin!, salt: ADMIN.salt.subarray(0, 8) } }), SMALL), /header\.admin\.salt must be 16 bytes/],
    ['a format-1 seal in a format-2 file', craft(h({ admin: undefined, sealed: { ephemeral: new Uint8Array(32), keys: [] } }), SMALL), /header\.admin must be a map/],
    ['a header that is no map', craftFile(BACKUP_MAGIC, BACKUP_FORMAT, undefined, SMALL, { headerBytes: packr.pack([1, 2]), trailer: (s) => signParts(GROUP.secretKey, s) }), /the header must be a map/],
  ];
  for (const [what, bytes, message] of cases) refused(t, () => decodeBackupFile(bytes, opener(A)), 'shape', message, what);
  // The same header unreadable and the checksum wrong: damage, not a writer's mistake.
  const damaged = craft(h({ groupKey: undefined }), SMALL);
  damaged[damaged.length - 70]! ^= 1;
  refused(t, () => decodeBackupFile(damaged, opener(A)), 'damaged', /checksum does not match/);
});

test('the encoder refuses misuse with a TypeError and an oversized backup with DBBU06', (t) => {
  const [first, second] = SMALL as [Entry, Entry];
  // UTF-16 order puts the astral 𝓐 before Ａ (U+FF21); the store's UTF-8 order puts it after.
  const utf16 = [[Keys.user('\uff21dmin'), first[1]], [Keys.user('\u{1d4d0}lice'), second[1]]] as Entry[];
  t.notThrows(() => encodeBackupFile(input(utf16)));
  const cases: [string, BackupInput, RegExp][] = [
    ['keys in UTF-16 order', input([...utf16].reverse()), /entries\[1\]: the key .* does not follow .* \(keys must be strictly increasing\)/],
    ['a key twice', input([first, first]), /entries\[1\]: .*strictly increasing/],
    ['a value that is not bytes', input([[first[0], 'x' as unknown as Uint8Array]]), /entries\[0\] must be a \[string, Uint8Array\] pair/],
    ['a lone surrogate', input([['I\x00u:\ud800', first[1]]]), /not well-formed UTF-16/],
    ['no administrator account', input(SMALL, { admin: undefined as unknown as Account }), /admin\.user must be the administrator's user id/],
    ['a short salt', input(SMALL, { admin: { ...ADMIN, salt: ADMIN.salt.subarray(0, 8) } }), /admin\.salt must be the account's 16-byte salt/],
    ['no server key', input(SMALL, { admin: { ...ADMIN, serverKey: new Uint8Array(0) } }), /admin\.serverKey must be the account's 32-byte server key/],
    ['another group\'s secret key', input(SMALL, { groupKey: { publicKey: GROUP.publicKey, secretKey: OTHER_GROUP.secretKey } }), /not the secret half/],
    // The second half of a secret key is a copy of the public key: it proves nothing alone.
    ['a secret key that lies', input(SMALL, { groupKey: { publicKey: GROUP.publicKey, secretKey: Uint8Array.from([...OTHER_GROUP.secretKey.subarray(0, 32), ...GROUP.publicKey]) } }), /not the secret half/],
    ['a header that would not read back', input(SMALL, { software: 'x'.repeat(300) }), /would not read back: header\.software exceeds 256 bytes/],
    ['a negative count', input(SMALL, { counts: { users: -1, groups: 0, devices: 0, items: 0 } }), /header\.counts\.users must be an integer/],
  ];
  for (const [what, bad, message] of cases) t.throws(() => encodeBackupFile(bad), { instanceOf: TypeError, message }, what);

  // 17 × 16 MiB (the same buffer: the bound is checked before anything is copied).
  const big = new Uint8Array(16 * 1024 * 1024);
  const entries = Array.from({ length: 17 }, (_, i): Entry => [Keys.meta(`blob${String(i).padStart(2, '0')}`), big]);
  const err = t.throws(() => encodeBackupFile(input(entries)), { instanceOf: MfpError });
  t.is(err?.code, 'DBBU06');
  t.regex(err?.message ?? '', new RegExp(`the backup would be over \\d+ bytes; the limit is ${MAX_BACKUP_BYTES}`));
});

test('readBackupHeader shows when, how far and how much without opening the file', (t) => {
  const header = readBackupHeader(SMALL_FILE);
  t.is(header.createdAt, Date.UTC(2026, 2, 3, 4, 5, 6));
  t.is(header.seq, 48_213);
  t.deepEqual(header.counts, { users: 412, groups: 9, devices: 3, items: 5_870, entries: SMALL.length });
  t.is(header.admin?.user, 'admin');
  // From the file's first bytes only: preamble and header.
  const { bodyStart } = regions(SMALL_FILE);
  t.deepEqual(readBackupHeader(SMALL_FILE.subarray(0, bodyStart)), header);
  refused(t, () => readBackupHeader(SMALL_FILE.subarray(0, bodyStart - 1)), 'truncated', /end inside the header/);
  refused(t, () => readBackupHeader(craft(SMALL_HEADER, SMALL).subarray(0, 12)), 'truncated', /not even the file's preamble/);
});

test('backups are written atomically (0600, no temporary left) and read back with a size bound', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'group.mfpb');
  writeFileSync(path, 'old backup');
  await writeBackupFile(path, SMALL_FILE);
  t.deepEqual(readdirSync(dir), ['group.mfpb']);
  t.is(statSync(path).mode & 0o777, 0o600);
  t.deepEqual(readFileSync(path), Buffer.from(SMALL_FILE));
  t.deepEqual(differing(SMALL, decodeBackupFile(await readBackupFile(path), opener(B)).entries), []);

  // No such directory: DBBU01, nothing written anywhere.
  const err = await t.throwsAsync(writeBackupFile(join(dir, 'no', 'such', 'dir', 'x.mfpb'), SMALL_FILE), { instanceOf: MfpError });
  t.is(err?.code, 'DBBU01');
  t.regex(err?.message ?? '', /cannot write the backup .*x\.mfpb: ENOENT/);
  // The target is a directory: the rename fails, the temporary file is removed.
  const target = join(dir, 'adir');
  mkdirSync(target);
  const err2 = await t.throwsAsync(writeBackupFile(target, SMALL_FILE), { instanceOf: MfpError });
  t.is(err2?.code, 'DBBU01');
  t.deepEqual(readdirSync(dir).sort(), ['adir', 'group.mfpb']);
  t.deepEqual(readdirSync(target), []);

  // Reading: Node's error as it is for a missing file; BackupFileError for what is not a backup.
  const missing = await t.throwsAsync(readBackupFile(join(dir, 'nope.mfpb')));
  t.false(missing instanceof BackupFileError);
  t.is((missing as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
  const exportPath = join(dir, 'users.mfpx');
  writeFileSync(exportPath, encodeExportFile({ software: '0.1.0', createdAt: 0, source: { deviceId: 'x', name: 'x', role: 'server' }, selection: 'all' }, { users: [], groups: [], shared: null }));
  const empty = join(dir, 'empty.mfpb');
  writeFileSync(empty, '');
  // Over the bound (sparse: nothing is written): foreign or damaged by its first bytes, never read whole.
  const oversized = join(dir, 'oversized.mfpb');
  writeFileSync(oversized, Buffer.from(SMALL_FILE.subarray(0, 64)));
  truncateSync(oversized, MAX_BACKUP_BYTES + 1);
  const foreignOversized = join(dir, 'disk.img');
  writeFileSync(foreignOversized, '');
  truncateSync(foreignOversized, MAX_BACKUP_BYTES + 1);
  const cases: [string, string, BackupFault, RegExp][] = [
    ['an export file', exportPath, 'foreign-program', /not an mfpsync backup file/],
    ['a directory', target, 'foreign-program', /adir is not a file/],
    ['an empty file', empty, 'truncated', /truncated: 0 bytes/],
    ['a backup over the bound', oversized, 'damaged', new RegExp(`is ${MAX_BACKUP_BYTES + 1} bytes; a backup file is at most ${MAX_BACKUP_BYTES}`)],
    ['another program\'s large file', foreignOversized, 'foreign-program', /not an mfpsync backup file/],
  ];
  for (const [what, p, reason, message] of cases) {
    const e = await t.throwsAsync(readBackupFile(p), { instanceOf: BackupFileError }, what);
    t.is(e?.reason, reason, what);
    t.regex(e?.message ?? '', message, what);
  }
});
