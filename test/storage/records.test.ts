/**
 * Record encoding: an item record built from its value's existing encoding (encodeItemRecord) is the
 * record encodeRecord writes, and hashAndSize says when its bytes encode the value itself. The index
 * fields read without decoding the value (decodeItemHead) are those decodeRecord gives, and a damaged
 * record fails the same way in both.
 */
import test from 'ava';
import fc from 'fast-check';
import { MfpError } from '../../protocol/errors.js';
import { canonicalBytes, decodeItemHead, decodeRecord, encodeItemRecord, encodeRecord, hashAndSize, readItemHead, splitItemRecord, valueHash } from '../../storage/records.js';

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

/** decodeRecord's index fields, or its error code. */
function viaDecode(bytes: Uint8Array): unknown {
  try {
    const r = decodeRecord<{ v: unknown; h: unknown; by: unknown; at: unknown }>(bytes, 'k');
    return { v: r.v, h: r.h, by: r.by, at: r.at };
  } catch (err) {
    return (err as MfpError).code;
  }
}

function viaHead(bytes: Uint8Array): unknown {
  try {
    return { ...decodeItemHead(bytes, 'k') };
  } catch (err) {
    return (err as MfpError).code;
  }
}

for (const [title, val] of VALUES) {
  test(`decodeItemHead reads the index fields decodeRecord reads, without the value: ${title}`, (t) => {
    const rec = { v: 12345678901, h: 'abcdef0123456789', by: 'sërver-ü', at: 1_763_000_000_123, val };
    const bytes = encodeItemRecord(rec, hashAndSize(val).bytes);
    t.deepEqual(readItemHead(bytes), { v: rec.v, h: rec.h, by: rec.by, at: rec.at }, 'read without decoding the value');
    t.deepEqual(decodeItemHead(bytes, 'k'), { v: rec.v, h: rec.h, by: rec.by, at: rec.at });
    // The value's stored bytes, as a server sends them on: exactly its encoding, a view into the record.
    const split = splitItemRecord(bytes, 'k');
    t.true('valBytes' in split);
    if ('valBytes' in split) {
      t.deepEqual(Buffer.from(split.valBytes), Buffer.from(hashAndSize(val).bytes));
      t.is(split.valBytes.buffer, bytes.buffer, 'not copied');
    }
    // Cut anywhere, the record is STORE_CORRUPT for both readers.
    for (let n = 0; n < bytes.length; n += Math.max(1, Math.floor(bytes.length / 500))) {
      const cut = bytes.subarray(0, n);
      t.is(viaHead(cut), 'STORE_CORRUPT', `cut at ${n} of ${bytes.length}`);
      t.is(viaDecode(cut), 'STORE_CORRUPT');
    }
  });
}

test('decodeItemHead agrees with decodeRecord on any record, in any field order, and on damaged ones', (t) => {
  const field = { v: fc.maxSafeNat(), h: fc.string(), by: fc.string({ unit: 'grapheme' }), at: fc.oneof(fc.maxSafeInteger(), fc.double({ noNaN: true })) };
  const value = fc.oneof(fc.jsonValue(), fc.uint8Array({ maxLength: 300 }));
  fc.assert(
    fc.property(fc.record(field), value, fc.shuffledSubarray(['v', 'h', 'by', 'at', 'val', 'extra'] as const, { minLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), (fields, val, order, damage) => {
      const all: Record<string, unknown> = { ...fields, val, extra: { note: [1, 'two'] } };
      const rec = Object.fromEntries(order.map((k) => [k, all[k]]));
      const bytes = Uint8Array.from(encodeRecord(rec));
      // msgpackr writes -0 as the integer 0: decodeRecord's answer is the reference, and it is the record's fields.
      t.deepEqual(viaHead(bytes), viaDecode(bytes));
      t.not(readItemHead(bytes), undefined, 'a well-formed record is read without decoding its value');
      t.deepEqual(viaHead(bytes), { v: fields.v, h: fields.h, by: fields.by, at: Object.is(fields.at, -0) ? 0 : fields.at });
      for (const [at, byte] of damage) bytes[at % bytes.length] = byte;
      t.deepEqual(viaHead(bytes), viaDecode(bytes));
    }),
    { numRuns: 3000 },
  );
});

test('a record whose fields are not the index\'s types is decoded in full, as before', (t) => {
  const odd = encodeRecord({ v: 'seven', h: 1, by: null, at: [1], val: { x: 1 } });
  t.deepEqual(decodeItemHead(odd, 'k') as unknown, { v: 'seven', h: 1, by: null, at: [1] });
  t.deepEqual(splitItemRecord(odd, 'k') as unknown, { head: { v: 'seven', h: 1, by: null, at: [1] }, val: { x: 1 } }, 'the value decoded');
  const withExtension = encodeRecord({ v: 1, h: 'a', by: 'b', at: 2, val: new Date(5) });
  t.deepEqual({ ...decodeItemHead(withExtension, 'k') }, { v: 1, h: 'a', by: 'b', at: 2 });
  // Values msgpackr refuses or decodes only in full: a map keyed by an array (it makes maps into
  // objects), and nesting deeper than any stored value. The same answer either way.
  const head = { v: 1, h: 'a', by: 'b', at: 2 };
  const arrayKey = encodeItemRecord({ ...head, val: null }, Uint8Array.of(0x81, 0x91, 0x01, 0x02));
  t.is(viaHead(arrayKey), 'STORE_CORRUPT');
  t.is(viaDecode(arrayKey), 'STORE_CORRUPT');
  const deep = encodeItemRecord({ ...head, val: null }, Uint8Array.from([...Array<number>(100).fill(0x91), 0x01]));
  t.is(readItemHead(deep), undefined, 'left to the full decode');
  t.deepEqual(viaHead(deep), head);
  const error = t.throws(() => decodeItemHead(Uint8Array.of(0xde, 0x00), 'k'));
  t.is((error as MfpError).code, 'STORE_CORRUPT');
  t.deepEqual(viaHead(Uint8Array.of(0xc1)), viaDecode(Uint8Array.of(0xc1)), 'a byte no value starts with: what decodeRecord does');
});
