/**
 * Record encoding: an item record built from its value's existing encoding (encodeItemRecord) is the
 * record encodeRecord writes, and hashAndSize says when its bytes encode the value itself.
 */
import test from 'ava';
import { canonicalBytes, decodeRecord, encodeItemRecord, encodeRecord, hashAndSize, valueHash } from '../../storage/records.js';

const VALUES: [string, unknown][] = [
  ['a sorted object', { a: 1, b: [1, 2, { c: 'x', d: null }], e: true }],
  ['an array', [{ k: 1 }, 'two', 3.5]],
  ['a string', 'home'],
  ['null', null],
  ['binary of 70 KB', new Uint8Array(70_000).fill(7)],
  ['an object of 300 keys', Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${String(i).padStart(3, '0')}`, i]))],
];

for (const [title, val] of VALUES) {
  test(`encodeItemRecord with the value's bytes writes what encodeRecord writes: ${title}`, (t) => {
    const rec = { v: 12345678901, h: 'abcdef0123456789', by: 'server', at: 1_763_000_000_123, val };
    const { bytes, exact } = hashAndSize(val);
    t.true(exact, 'already canonical');
    const built = encodeItemRecord(rec, bytes);
    t.deepEqual(Buffer.from(built), Buffer.from(encodeRecord(rec)));
    t.deepEqual(decodeRecord(built, 'k'), rec);
  });
}

test('encodeItemRecord keeps every other field, in any order, and the value last', (t) => {
  const val = { x: [1, 2] };
  const rec = { val, at: 5, extra: { note: 'kept' }, v: 2, h: '00', by: 'copy' };
  const built = encodeItemRecord(rec, hashAndSize(val).bytes);
  t.deepEqual(decodeRecord(built, 'k'), rec);
  t.deepEqual(Object.keys(decodeRecord<object>(built, 'k')), ['at', 'extra', 'v', 'h', 'by', 'val']);
});

test('hashAndSize: one encoding gives the hash, the canonical bytes, and whether they encode the value itself', (t) => {
  const unsorted = { b: 1, a: { d: 2, c: 3 } };
  const sorted = { a: { c: 3, d: 2 }, b: 1 };
  const u = hashAndSize(unsorted);
  const s = hashAndSize(sorted);
  t.false(u.exact, 'unsorted keys: the canonical bytes are not its own encoding');
  t.true(s.exact);
  t.is(u.h, s.h);
  t.is(u.h, valueHash(unsorted));
  t.deepEqual(Buffer.from(u.bytes), Buffer.from(canonicalBytes(unsorted)));
  t.deepEqual(Buffer.from(s.bytes), Buffer.from(encodeRecord(sorted)));
  t.is(u.size, u.bytes.length);
});
