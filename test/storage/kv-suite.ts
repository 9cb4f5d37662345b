/**
 * The KvStore contract, as one suite that every backend runs in one line (habit 4: the model is
 * abstract-level's shared suite). The backend is handed over unopened; the suite opens it and closes it
 * when the test ends. Keys are compared in UTF-8 byte order, so every ordering assertion is checked
 * against `Buffer.compare` of the encoded keys rather than against a hand-written list alone.
 */
import test, { type ExecutionContext } from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { compareKeys, type KvOp, type KvRange, type KvStore } from '../../storage/kv.js';

/** Makes a fresh, unopened backend for one test. */
export type MakeKv = (t: ExecutionContext) => Promise<KvStore>;

const enc = new TextEncoder();
const dec = new TextDecoder();

function bytes(s: string): Uint8Array {
  return enc.encode(s);
}

function text(v: Uint8Array | undefined): string | undefined {
  return v === undefined ? undefined : dec.decode(v);
}

function put(key: string, value = `v:${key}`): KvOp {
  return { type: 'put', key, value: bytes(value) };
}

function utf8Order(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function keysOf(kv: KvStore, range: KvRange): Promise<string[]> {
  const out: string[] = [];
  for await (const [k] of kv.entries(range)) out.push(k);
  return out;
}

/** Deterministic PRNG (mulberry32), so a failing random case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random string of valid code points drawn from every UTF-8 length class (no lone surrogates). */
function randomKey(rand: () => number): string {
  const pools: [number, number][] = [
    [0x01, 0x7f], // 1 byte
    [0x80, 0x7ff], // 2 bytes
    [0x800, 0xd7ff], // 3 bytes, below the surrogates
    [0xe000, 0xffff], // 3 bytes, above the surrogates: UTF-16 sorts these above astral, UTF-8 below
    [0x10000, 0x10ffff], // 4 bytes: a surrogate pair in UTF-16
  ];
  const len = 1 + Math.floor(rand() * 6);
  let s = '';
  for (let i = 0; i < len; i++) {
    const [lo, hi] = pools[Math.floor(rand() * pools.length)]!;
    s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
  }
  return s;
}

const sign = (n: number) => Math.sign(n);

/** Registers the KvStore contract tests for one backend. */
export function kvSuite(name: string, make: MakeKv): void {
  async function open(t: ExecutionContext): Promise<KvStore> {
    const kv = await make(t);
    await kv.open();
    t.teardown(() => kv.close());
    return kv;
  }

  test(`${name}: get of a missing key is undefined; put then get returns the bytes; del removes`, async (t) => {
    const kv = await open(t);
    t.is(await kv.get('nope'), undefined);
    await kv.write([put('k', 'hello')], { sync: true });
    t.is(text(await kv.get('k')), 'hello');
    await kv.write([put('k', 'again')], { sync: false });
    t.is(text(await kv.get('k')), 'again');
    await kv.write([{ type: 'del', key: 'k' }], { sync: true });
    t.is(await kv.get('k'), undefined);
    t.deepEqual(await keysOf(kv, {}), []);
    // Deleting what is not there is not an error.
    await t.notThrowsAsync(kv.write([{ type: 'del', key: 'never' }], { sync: false }));
    await t.notThrowsAsync(kv.write([], { sync: true }));
  });

  test(`${name}: a stored value does not change when the caller reuses its buffer`, async (t) => {
    const kv = await open(t);
    const buf = bytes('abc');
    await kv.write([{ type: 'put', key: 'k', value: buf }], { sync: false });
    buf[0] = 0x7a;
    t.is(text(await kv.get('k')), 'abc');
  });

  for (const size of ['small', 'large', 'bulky'] as const) {
    // A large batch (1,200 more keys) or a bulky one (8 values of 16 KB) goes to LevelDB in another form
    // than a small one.
    const filler = (): KvOp[] => {
      if (size === 'large') return Array.from({ length: 1200 }, (_, i) => put(`z${String(i).padStart(4, '0')}`));
      if (size === 'bulky') return Array.from({ length: 8 }, (_, i) => put(`z${i}`, String(i).repeat(16 * 1024)));
      return [];
    };
    test(`${name}: a ${size} batch applies every op, in order, and all are visible once it resolves`, async (t) => {
      const kv = await open(t);
      await kv.write([put('a'), put('b'), put('c')], { sync: true });
      await kv.write(
        [
          put('d'),
          { type: 'del', key: 'b' },
          put('a', 'a2'),
          // Later ops of a batch win over earlier ones on the same key.
          put('e', 'first'),
          { type: 'del', key: 'e' },
          { type: 'del', key: 'f' },
          put('f', 'back'),
          ...filler(),
        ],
        { sync: true },
      );
      t.is(text(await kv.get('a')), 'a2');
      t.is(await kv.get('b'), undefined);
      t.is(text(await kv.get('c')), 'v:c');
      t.is(text(await kv.get('d')), 'v:d');
      t.is(await kv.get('e'), undefined);
      t.is(text(await kv.get('f')), 'back');
      t.deepEqual(await keysOf(kv, { lt: 'z' }), ['a', 'c', 'd', 'f']);
      t.is((await keysOf(kv, { gte: 'z' })).length, filler().length);
    });

    test(`${name}: a ${size} batch with an invalid op is refused whole: nothing of it is applied`, async (t) => {
      const kv = await open(t);
      await kv.write([put('keep', 'old')], { sync: true });
      const bad: KvOp[] = [put('keep', 'new'), put('x1'), ...filler(), { type: 'put', key: 'x2', value: null as unknown as Uint8Array }];
      await t.throwsAsync(kv.write(bad, { sync: true }), { instanceOf: Error });
      t.is(text(await kv.get('keep')), 'old', 'the first op of the refused batch was applied');
      t.is(await kv.get('x1'), undefined, 'an op before the invalid one was applied');
      t.deepEqual(await keysOf(kv, {}), ['keep']);
    });
  }

  test(`${name}: a snapshot keeps reading the data as it was, across several reads, until closed`, async (t) => {
    const kv = await open(t);
    await kv.write([put('a', 'a1'), put('b', 'b1'), put('c', 'c1')], { sync: true });
    const snap = kv.snapshot();
    await kv.write([put('a', 'a2'), { type: 'del', key: 'b' }, put('d', 'd1')], { sync: true });
    const read = async (range: KvRange) => {
      const out: string[] = [];
      for await (const [k, v] of snap.entries(range)) out.push(`${k}=${text(v)}`);
      return out;
    };
    t.deepEqual(await read({}), ['a=a1', 'b=b1', 'c=c1']);
    await kv.write([put('c', 'c2')], { sync: true });
    // A second read of the same snapshot, after more writes, still agrees with the first.
    t.deepEqual(await read({ gte: 'b' }), ['b=b1', 'c=c1']);
    await snap.close();
    t.deepEqual(await keysOf(kv, {}), ['a', 'c', 'd']);
    t.is(text(await kv.get('c')), 'c2');
  });

  test(`${name}: entries honour gt, gte, lt, lte, reverse and limit`, async (t) => {
    const kv = await open(t);
    const all = ['a', 'b', 'ba', 'bb', 'c', 'd'];
    // Written out of order, in two batches: the order comes from the store, not from the writes.
    await kv.write([put('d'), put('ba'), put('a')], { sync: false });
    await kv.write([put('c'), put('bb'), put('b')], { sync: false });
    const cases: [KvRange, string[]][] = [
      [{}, all],
      [{ gt: 'b' }, ['ba', 'bb', 'c', 'd']],
      [{ gte: 'b' }, ['b', 'ba', 'bb', 'c', 'd']],
      [{ lt: 'c' }, ['a', 'b', 'ba', 'bb']],
      [{ lte: 'c' }, ['a', 'b', 'ba', 'bb', 'c']],
      [{ gt: 'a', lt: 'c' }, ['b', 'ba', 'bb']],
      [{ gte: 'b', lte: 'bb' }, ['b', 'ba', 'bb']],
      // Bounds need not be keys.
      [{ gt: 'b\x00', lt: 'b\x01' }, []],
      [{ gt: 'az', lt: 'bab' }, ['b', 'ba']],
      [{ gte: 'bz' }, ['c', 'd']],
      [{ gt: 'z' }, []],
      [{ gt: 'c', lt: 'b' }, []],
      [{ reverse: true }, [...all].reverse()],
      [{ gt: 'a', lte: 'c', reverse: true }, ['c', 'bb', 'ba', 'b']],
      [{ limit: 2 }, ['a', 'b']],
      [{ limit: 0 }, []],
      [{ limit: 100 }, all],
      // Limit counts from the start of the iteration: with reverse, the last keys of the range.
      [{ reverse: true, limit: 2 }, ['d', 'c']],
      [{ gte: 'b', lt: 'd', reverse: true, limit: 3 }, ['c', 'bb', 'ba']],
      [{ gt: 'a', limit: 2 }, ['b', 'ba']],
    ];
    for (const [range, expected] of cases) t.deepEqual(await keysOf(kv, range), expected, JSON.stringify(range));
    const values: [string, string | undefined][] = [];
    for await (const [k, v] of kv.entries({ gte: 'bb', lte: 'c' })) values.push([k, text(v)]);
    t.deepEqual(values, [
      ['bb', 'v:bb'],
      ['c', 'v:c'],
    ]);
  });

  test(`${name}: keys are ordered by their UTF-8 bytes, astral characters above U+FFFD`, async (t) => {
    const kv = await open(t);
    // In UTF-16 code units 'a\u{1F600}' (a, 0xD83D, …) sorts below 'a\uFFFD'; in UTF-8 (F0 9F … vs EF BF BD) above.
    const keys = ['a\uFFFD', 'a\u{1F600}', 'a\uE000', 'a\uD7FF', 'a\u00E9', 'a~', 'a', 'a\u{10FFFF}', 'a\u{10000}', 'b', 'a\u{1F600}x'];
    await kv.write(keys.map((k) => put(k)), { sync: false });
    const expected = [...keys].sort(utf8Order);
    t.deepEqual(expected, ['a', 'a~', 'a\u00E9', 'a\uD7FF', 'a\uE000', 'a\uFFFD', 'a\u{10000}', 'a\u{1F600}', 'a\u{1F600}x', 'a\u{10FFFF}', 'b']);
    t.deepEqual(await keysOf(kv, {}), expected);
    t.deepEqual(await keysOf(kv, { gt: 'a\uFFFD' }), ['a\u{10000}', 'a\u{1F600}', 'a\u{1F600}x', 'a\u{10FFFF}', 'b']);
    t.deepEqual(await keysOf(kv, { lt: 'a\u{1F600}', gte: 'a\uE000' }), ['a\uE000', 'a\uFFFD', 'a\u{10000}']);
    t.deepEqual(await keysOf(kv, { lte: 'a\u{1F600}', gt: 'a\uFFFD', reverse: true }), ['a\u{1F600}', 'a\u{10000}']);
    t.true(compareKeys('a\u{1F600}', 'a\uFFFD') > 0);
    t.true(compareKeys('a\uFFFD', 'a\u{1F600}') < 0);
    t.is(compareKeys('a\u{1F600}', 'a\u{1F600}'), 0);
  });

  test(`${name}: compareKeys and the store agree with Buffer.compare on random strings`, async (t) => {
    const kv = await open(t);
    const rand = prng(0x5eed);
    const keys = new Set<string>();
    while (keys.size < 400) {
      const k = randomKey(rand);
      keys.add(k);
      // Prefix pairs: a key and its extension must order by length.
      if (rand() < 0.2) keys.add(k + randomKey(rand));
    }
    const list = [...keys];
    let disagreements = 0;
    for (let i = 0; i < list.length; i++) {
      for (let j = 0; j < list.length; j += 7) {
        if (sign(compareKeys(list[i]!, list[j]!)) !== sign(utf8Order(list[i]!, list[j]!))) disagreements++;
      }
    }
    t.is(disagreements, 0);
    await kv.write(list.map((k) => put(k)), { sync: false });
    const sorted = [...list].sort(utf8Order);
    t.deepEqual(await keysOf(kv, {}), sorted);
    // A range whose bounds are random keys returns exactly the keys between them in byte order.
    const lo = sorted[57]!;
    const hi = sorted[301]!;
    t.deepEqual(await keysOf(kv, { gt: lo, lte: hi }), sorted.slice(58, 302));
    t.deepEqual(await keysOf(kv, { gte: lo, lt: hi, reverse: true, limit: 10 }), sorted.slice(291, 301).reverse());
  });

  test(`${name}: an iteration sees the keys present when it started, whatever is written meanwhile`, async (t) => {
    const kv = await open(t);
    const start = ['k1', 'k2', 'k3', 'k4', 'k5'];
    await kv.write(start.map((k) => put(k)), { sync: false });
    const seen: [string, string | undefined][] = [];
    for await (const [k, v] of kv.entries({ gte: 'k', lt: 'l' })) {
      seen.push([k, text(v)]);
      if (k === 'k1') {
        // Ahead of the iteration: a new key, a deleted key and an overwritten value.
        await kv.write([put('k2a'), { type: 'del', key: 'k4' }, put('k5', 'changed'), put('k0')], { sync: false });
      }
    }
    t.deepEqual(
      seen,
      start.map((k) => [k, `v:${k}`]),
    );
    // The writes did happen: a new iteration sees them.
    t.deepEqual(await keysOf(kv, { gte: 'k', lt: 'l' }), ['k0', 'k1', 'k2', 'k2a', 'k3', 'k5']);
    t.is(text(await kv.get('k5')), 'changed');
  });

  test(`${name}: recover with no failed write changes nothing: reads, snapshots and writes go on`, async (t) => {
    const kv = await open(t);
    await kv.write([put('a'), put('b')], { sync: true });
    const snap = kv.snapshot();
    t.teardown(() => snap.close());
    await kv.recover();
    await kv.recover();
    t.is(text(await kv.get('a')), 'v:a');
    const seen: string[] = [];
    for await (const [k] of snap.entries({})) seen.push(k);
    t.deepEqual(seen, ['a', 'b'], 'a snapshot taken before is still open');
    await kv.write([put('c')], { sync: false });
    t.deepEqual(await keysOf(kv, {}), ['a', 'b', 'c']);
  });

  test(`${name}: reads and writes after close reject with STORE_CLOSED`, async (t) => {
    const kv = await open(t);
    await kv.write([put('k')], { sync: true });
    await kv.close();
    const closed = (err: unknown) => {
      t.true(err instanceof MfpError, `expected an MfpError, got ${String(err)}`);
      t.is((err as MfpError).code, 'STORE_CLOSED');
      t.regex((err as Error).message, /closed|not open/);
    };
    closed(await t.throwsAsync(kv.get('k')));
    closed(await t.throwsAsync(kv.write([put('k2')], { sync: true })));
  });

  test(`${name}: iterating after close rejects with STORE_CLOSED`, async (t) => {
    const kv = await open(t);
    await kv.write([put('k')], { sync: true });
    await kv.close();
    const err = await t.throwsAsync(keysOf(kv, {}));
    t.true(err instanceof MfpError, `expected an MfpError, got ${err?.constructor.name}: ${(err as { code?: string })?.code} ${err?.message}`);
    t.is((err as MfpError).code, 'STORE_CLOSED');
    t.regex(err!.message, /closed|not open/);
  });
}
