/**
 * The export file format fed straight with bytes (STYLE habit 9): a round trip; every truncated prefix
 * and every flipped byte of a real file; a wrong magic, a future format version, trailing bytes; files
 * of other programs; and files whose checksum is right but whose content is not (a crafted file) —
 * each IMPORT_INVALID, class, code and message asserted apart. And the atomic write.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { MfpError, type ErrorCode } from '../../protocol/errors.js';
import { MAX_VALUE_BYTES } from '../../protocol/limits.js';
import {
  changesOf, decodeExportFile, encodeExportFile, EXPORT_FORMAT, EXPORT_MAGIC, readExportFile, writeExportFile, type ExportBody,
} from '../../storage/export-file.js';
import { tempDir } from '../helpers/tmp.js';
import { craftFile, packr, type CraftOptions } from './fixtures/craft.js';

const HEADER = { software: '0.1.0', createdAt: Date.UTC(2026, 2, 3, 4, 5, 6), source: { deviceId: 'aaaabbbbccccdddd', name: 'MFP-3F', role: 'standalone' }, selection: 'all' as const };

const BODY: ExportBody = {
  users: [
    { id: 'alice', items: { language: { display: 'fr', keyboard: 'fr-FR' }, 'job-defaults': { fax: { destinations: ['0311'], resolution: 'fine' } } } },
    { id: 'bob', items: { 'address-list': [{ name: 'Carol', email: 'carol@example.com' }], 'auto-print': true, keychain: { 'place-1': { user: 'bob' } } } },
    { id: 'ユーザー', items: { home: { wallpaper: 'blue', bytes: new Uint8Array([1, 2, 3]) } } },
  ],
  groups: [{ id: '01', items: { 'address-list': [{ name: 'Sales', fax: '0123' }] } }],
  shared: { items: { 'shared-buttons': [{ id: 's1', label: 'Copy A3' }] } },
};

/** Asserts a coded error: class, code and message, each on its own. */
function coded(t: ExecutionContext, fn: () => unknown, code: ErrorCode, message: RegExp, label?: string): MfpError {
  const err = t.throws(fn, { instanceOf: MfpError }, label);
  t.is(err?.code, code, label);
  t.regex(err?.message ?? '', message, label);
  return err!;
}

/** Copies a decoded value with every Uint8Array (msgpackr hands back Buffers) as a plain Uint8Array. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Frames raw header and body values as a writer would, with a correct checksum: a crafted file. */
function craft(header: unknown, body: unknown, options: CraftOptions = {}): Buffer {
  return craftFile(EXPORT_MAGIC, EXPORT_FORMAT, header, body, options);
}

const COUNTS = { users: 3, groups: 1, shared: 1, items: 8 };

test('round trip: what is written reads back, header and body', (t) => {
  const bytes = encodeExportFile(HEADER, BODY);
  t.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x4d, 0x46, 0x50, 0x58, 0x0d, 0x0a, 0x1a]);
  const file = decodeExportFile(bytes);
  t.is(file.format, 1);
  t.deepEqual(file.header, { ...HEADER, counts: COUNTS });
  t.deepEqual(plain(file.body), plain(BODY));
  t.deepEqual(changesOf(file.body).map((c) => `${c.e} ${c.n}`), [
    'u:alice language', 'u:alice job-defaults', 'u:bob address-list', 'u:bob auto-print', 'u:bob keychain', 'u:ユーザー home',
    'g:01 address-list', 'd: shared-buttons',
  ]);
  // An empty export is a valid file too.
  t.deepEqual(decodeExportFile(encodeExportFile(HEADER, { users: [], groups: [], shared: null })).header.counts, { users: 0, groups: 0, shared: 0, items: 0 });
  // The crafted framing is the real one (so the crafted faults below differ from a real file only where meant).
  t.deepEqual(craft({ ...HEADER, counts: COUNTS }, BODY), Buffer.from(bytes));
});

test('every truncated prefix of a real file is IMPORT_INVALID', (t) => {
  const bytes = encodeExportFile(HEADER, BODY);
  for (let n = 0; n < bytes.length; n++) {
    const err = t.throws(() => decodeExportFile(bytes.subarray(0, n)), { instanceOf: MfpError }, `prefix of ${n} bytes`);
    t.is(err?.code, 'IMPORT_INVALID', `prefix of ${n} bytes`);
  }
  coded(t, () => decodeExportFile(bytes.subarray(0, 100)), 'IMPORT_INVALID', /truncated/);
  coded(t, () => decodeExportFile(bytes.subarray(0, bytes.length - 1)), 'IMPORT_INVALID', /truncated: \d+ of \d+ bytes/);
});

test('every flipped byte of a real file is IMPORT_INVALID', (t) => {
  const bytes = encodeExportFile(HEADER, BODY);
  for (let i = 0; i < bytes.length; i++) {
    for (const mask of [0x01, 0x80]) {
      const bad = Uint8Array.from(bytes);
      bad[i]! ^= mask;
      const err = t.throws(() => decodeExportFile(bad), { instanceOf: MfpError }, `byte ${i} ^ ${mask}`);
      t.is(err?.code, 'IMPORT_INVALID', `byte ${i} ^ ${mask}`);
    }
  }
  // A flip in the body (past the header) is caught by the checksum.
  const bad = Uint8Array.from(bytes);
  bad[bytes.length - 60]! ^= 0x04;
  coded(t, () => decodeExportFile(bad), 'IMPORT_INVALID', /checksum does not match/);
});

test('a wrong magic, a future format version and trailing bytes are IMPORT_INVALID', (t) => {
  const bytes = Buffer.from(encodeExportFile(HEADER, BODY));
  const wrongMagic = Buffer.from(bytes);
  wrongMagic.write('MFPX', 0, 'latin1');
  coded(t, () => decodeExportFile(wrongMagic), 'IMPORT_INVALID', /not an mfpsync export file/);
  const future = craft({ ...HEADER, counts: COUNTS }, BODY, { format: EXPORT_FORMAT + 1 });
  coded(t, () => decodeExportFile(future), 'IMPORT_INVALID', /format version 2 is newer than this build reads \(1\)/);
  coded(t, () => decodeExportFile(craft({ ...HEADER, counts: COUNTS }, BODY, { format: 0 })), 'IMPORT_INVALID', /unknown format version 0/);
  coded(t, () => decodeExportFile(Buffer.concat([bytes, Buffer.from([0])])), 'IMPORT_INVALID', /1 bytes after the end/);
  const huge = Buffer.from(bytes);
  huge.writeUInt32BE(0xffffffff, 10);
  coded(t, () => decodeExportFile(huge), 'IMPORT_INVALID', /header claims 4294967295 bytes/);
});

test('files of other programs are IMPORT_INVALID', (t) => {
  const others: [string, Uint8Array][] = [
    ['empty', new Uint8Array()],
    ['JSON', Buffer.from(JSON.stringify({ users: BODY.users }))],
    ['a MessagePack map', packr.pack({ ...HEADER, body: BODY })],
    ['a PNG signature', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])],
    ['text', Buffer.from('mfpsync export\n')],
  ];
  for (let i = 0; i < 20; i++) others.push([`random ${i}`, randomBytes(1 + i * 97)]);
  // Random bytes behind the right magic: caught by lengths, decoding or the checksum.
  for (let i = 0; i < 20; i++) others.push([`magic + random ${i}`, Buffer.concat([EXPORT_MAGIC, randomBytes(6 + i * 53)])]);
  for (const [what, bytes] of others) {
    const err = t.throws(() => decodeExportFile(bytes), { instanceOf: MfpError }, what);
    t.is(err?.code, 'IMPORT_INVALID', what);
    t.regex(err?.message ?? '', /^not a valid export file: /, what);
  }
});

test('a file with a right checksum but wrong content is IMPORT_INVALID', (t) => {
  const header = (counts: Partial<typeof COUNTS>) => ({ ...HEADER, counts: { ...COUNTS, ...counts } });
  const one = (items: Record<string, unknown>, id = 'alice') => ({ users: [{ id, items }], groups: [], shared: null });
  const c1 = header({ users: 1, groups: 0, shared: 0, items: 1 });
  const cases: [string, Buffer, RegExp][] = [
    ['unknown item', craft(c1, one({ 'favourite-colour': 'red' })), /u:alice favourite-colour: no user item named "favourite-colour"; the user items are: language, .* \(UNKNOWN_ITEM\)/],
    ['group item on a user', craft(c1, one({ 'shared-buttons': [] })), /UNKNOWN_ITEM/],
    ['a Date value', craft(c1, one({ home: { at: new Date(0) } })), /holds a Date object.*\(INVALID_ARGUMENT\)/],
    ['a value over the size limit', craft(c1, one({ home: { blob: 'x'.repeat(MAX_VALUE_BYTES) } })), /\(VALUE_TOO_LARGE\)/],
    ['a __proto__ key', craft(c1, one({ home: JSON.parse('{"__proto__":{"admin":true}}') })), /holds the key __proto__/],
    ['a value its item\'s schema refuses', craft(c1, one({ 'auto-print': 10 })), /u:alice auto-print: user item auto-print: the value as a whole does not match: Expected boolean \(INVALID_ARGUMENT\)/],
    ['a control character in a name', craft(c1, one({ home: {} }, 'al\x00ice')), /user "al\\u0000ice"/],
    ['a user twice', craft(header({ users: 2, groups: 0, shared: 0, items: 2 }), { users: [{ id: 'a', items: { home: {} } }, { id: 'a', items: { home: {} } }], groups: [], shared: null }), /user "a" appears twice/],
    ['counts that disagree', craft(header({ users: 2, groups: 0, shared: 0, items: 1 }), one({ home: {} })), /header counts 2 users, the body holds 1/],
    ['items that are not a map', craft(c1, { users: [{ id: 'alice', items: [1] }], groups: [], shared: null }), /body.users\[0\].items must be a map/],
    ['no groups list', craft(c1, { users: [], shared: null }), /body.groups must be an array/],
    ['a header without source', craft({ ...HEADER, source: undefined, counts: COUNTS }, BODY), /header.source must be a map/],
    ['an unknown selection', craft({ ...HEADER, selection: 'some', counts: COUNTS }, BODY), /header.selection must be one of all, prepared/],
    ['a header that is no map', craft(undefined, BODY, { headerBytes: packr.pack([1, 2]) }), /the header must be a map/],
    ['a body that is not MessagePack', craft({ ...HEADER, counts: COUNTS, bodyBytes: 3 }, undefined, { bodyBytes: Uint8Array.from([0xdc, 0xff, 0xff]), headerBytes: packr.pack({ ...HEADER, counts: COUNTS, bodyBytes: 3 }) }), /body is not one complete MessagePack value/],
  ];
  for (const [what, bytes, message] of cases) coded(t, () => decodeExportFile(bytes), 'IMPORT_INVALID', message, what);
});

test('text holding __proto__ is text: such a file imports, and a real `__proto_` key beside it is kept', (t) => {
  const c1 = { ...HEADER, counts: { ...COUNTS, users: 1, groups: 0, shared: 0, items: 1 } };
  const items = { 'address-list': [{ email: '__proto__@example.com', __proto_: 'a key like any other' }] };
  const file = decodeExportFile(craft(c1, { users: [{ id: 'pp', items }], groups: [], shared: null }));
  t.deepEqual(file.body.users[0]?.items, items);
});

test('a body an import would refuse is not written: EXPORT_FAILED', (t) => {
  coded(t, () => encodeExportFile(HEADER, { users: [{ id: 'a', items: { nope: 1 } }], groups: [], shared: null }), 'EXPORT_FAILED', /an import would refuse: .*UNKNOWN_ITEM/);
});

test('files are written atomically (0600, replacing the old one, no temporary left) and read back', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'users.mfpx');
  writeFileSync(path, 'old content');
  const bytes = encodeExportFile(HEADER, BODY);
  await writeExportFile(path, bytes);
  t.deepEqual(readdirSync(dir), ['users.mfpx']);
  t.is(statSync(path).mode & 0o777, 0o600);
  t.deepEqual(readFileSync(path), Buffer.from(bytes));
  t.deepEqual((await readExportFile(path)).header.counts, COUNTS);

  // A directory that does not exist: EXPORT_FAILED, nothing written anywhere.
  const missing = join(dir, 'no', 'such', 'dir', 'x.mfpx');
  const err = await t.throwsAsync(writeExportFile(missing, bytes), { instanceOf: MfpError });
  t.is(err?.code, 'EXPORT_FAILED');
  t.regex(err?.message ?? '', /cannot write .*x\.mfpx/);
  // The target is a directory: the rename fails, the temporary file is removed.
  const target = join(dir, 'adir');
  mkdirSync(target);
  writeFileSync(join(target, 'keep'), '');
  const err2 = await t.throwsAsync(writeExportFile(target, bytes), { instanceOf: MfpError });
  t.is(err2?.code, 'EXPORT_FAILED');
  t.deepEqual(readdirSync(dir).sort(), ['adir', 'users.mfpx']);

  for (const [what, p, message] of [['a missing file', join(dir, 'nope.mfpx'), /cannot read .*ENOENT/], ['a directory', target, /is not a file/]] as const) {
    const e = await t.throwsAsync(readExportFile(p), { instanceOf: MfpError }, what);
    t.is(e?.code, 'IMPORT_INVALID', what);
    t.regex(e?.message ?? '', message, what);
  }
  t.false(existsSync(join(dir, 'nope.mfpx')));
});
