/**
 * The codec fed straight with bytes, no socket (STYLE habits 3 and 9): round trips of every fixture,
 * every truncated prefix, trailing bytes, hostile lengths, the size limit, wrong shapes per message type,
 * random mutations, and the signed hello/welcome bodies.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import test, { type ExecutionContext } from 'ava';
import { decodeMessage, decodeValue, EncodedValue, encodeMessage, encodeValue, hasProtoKey, isMessage, type Message, type MessageType } from '../../protocol/codec.js';
import { MfpError, type ErrorCode } from '../../protocol/errors.js';
import { HeartbeatType } from '../../protocol/heartbeat.js';
import { MAX_FRAME_BYTES, MAX_LIST_ENTRIES, MAX_NAME_BYTES, MAX_VALUE_DEPTH, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { readHelloBody, readWelcomeBody, SessionType } from '../../protocol/session.js';
import { chunk, ITEM_CODES, SyncType } from '../../protocol/sync.js';
import {
  FIXTURES, fixture, helloBody, helloBodyBytes, MESSAGES, welcomeBody, welcomeBodyBytes,
} from './fixtures.js';
// Seeded (mulberry32): the same inputs on every run, so a failure is reproducible.
import { rng } from '../../tools/bench/records.js';

type Obj = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------- helpers

/** Copies a decoded value with every Uint8Array (msgpackr hands back Buffers) as a plain Uint8Array. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Asserts a coded error: class, code and message, each on its own. */
function coded(t: ExecutionContext, fn: () => unknown, code: ErrorCode, message: RegExp): MfpError {
  const err = t.throws(fn, { instanceOf: MfpError });
  t.is(err.code, code);
  t.regex(err.message, message);
  return err;
}

type Outcome = { kind: 'message' } | { kind: 'coded'; code: ErrorCode; message: string } | { kind: 'other'; name: string; message: string };

/** What one decode does, without asserting (for loops over thousands of inputs). */
function outcome(fn: () => unknown): Outcome {
  try {
    fn();
    return { kind: 'message' };
  } catch (err) {
    if (err instanceof MfpError) return { kind: 'coded', code: err.code, message: err.message };
    const e = err as Error;
    return { kind: 'other', name: e?.constructor?.name ?? typeof err, message: String(e?.message ?? err) };
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const concat = (...parts: ArrayLike<number>[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
const u32 = (n: number): number[] => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

/** A mutable deep copy of a fixture message, to break one field of. */
function copyOf(type: MessageType): Obj {
  return structuredClone(fixture(type).message) as unknown as Obj;
}

/** `n` nested arrays around a scalar: the scalar sits at depth n. */
function nest(n: number): unknown {
  let v: unknown = 'x';
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

const tupleOf = (o: Obj, k: string, i = 0): unknown[] => (o[k] as unknown[][])[i]!;
const listOf = (o: Obj, k: string): unknown[] => o[k] as unknown[];

/** Garbage collection for the memory test, when V8 allows turning it on at run time. */
function gcFunction(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}


// A 129-byte name three ways: ASCII, 2-byte and 3-byte UTF-8 characters. The last two are short in UTF-16
// (65 and 43 code units) but over MAX_NAME_BYTES in UTF-8, which is what the limit measures.
const LONG_ASCII = 'a'.repeat(MAX_NAME_BYTES + 1);
const LONG_2BYTE = 'é'.repeat(65);
const LONG_KANJI = 'u:' + '田'.repeat(43);

// ------------------------------------------------------------------------------------------ fixtures

test('there is one fixture per message type of every family', (t) => {
  const all = [...Object.values(SessionType), ...Object.values(SyncType), ...Object.values(HeartbeatType)].sort();
  t.deepEqual(FIXTURES.map((f) => f.type).sort(), all);
  t.is(all.length, 17);
});

test('the multi-byte names used below are short in UTF-16 but over the limit in UTF-8', (t) => {
  t.true(LONG_2BYTE.length <= MAX_NAME_BYTES);
  t.true(LONG_KANJI.length <= MAX_NAME_BYTES);
  t.is(Buffer.byteLength(LONG_2BYTE), 130);
  t.is(Buffer.byteLength(LONG_KANJI), 131);
});

// ---------------------------------------------------------------------------------------- round trip

for (const f of FIXTURES) {
  test(`${f.type}: decode(encode(m)) equals m`, (t) => {
    const decoded = decodeMessage(f.bytes);
    t.is(decoded.type, f.type);
    t.true(isMessage(decoded, f.type));
    t.deepEqual(plain(decoded), plain(f.message));
    // What a peer relays (re-encodes) decodes to the same message. Bytes may differ: readers rebuild
    // the object in their own key order, which is why signed bodies travel as bytes.
    t.deepEqual(plain(decodeMessage(encodeMessage(decoded))), plain(f.message));
  });
}

test('hello and welcome bodies decode back to what was signed', (t) => {
  t.deepEqual(plain(readHelloBody(decodeValue(helloBodyBytes))), plain(helloBody));
  t.deepEqual(plain(readWelcomeBody(decodeValue(welcomeBodyBytes))), plain(welcomeBody));
});

// ------------------------------------------------------------------------------------ truncation

// Every frame starts with a map header announcing its entries, so no strict prefix is a complete value:
// all of them, the empty one included, must be FRAME_MALFORMED. (A complete value followed by more bytes
// is the trailing-garbage case below.)
for (const f of FIXTURES) {
  test(`${f.type}: every strict prefix (0..${f.bytes.length - 1} bytes) is FRAME_MALFORMED`, (t) => {
    const wrong: string[] = [];
    for (let n = 0; n < f.bytes.length; n++) {
      const o = outcome(() => decodeMessage(f.bytes.subarray(0, n)));
      if (o.kind !== 'coded' || o.code !== 'FRAME_MALFORMED' || !o.message.startsWith('not a complete MessagePack value: ')) {
        wrong.push(`${n}: ${JSON.stringify(o)}`);
      }
    }
    t.deepEqual(wrong, []);
    // One prefix asserted the long way, so that a regression shows class, code and message.
    const err = coded(t, () => decodeMessage(f.bytes.subarray(0, f.bytes.length - 1)), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
    t.true(err.cause instanceof Error);
  });
}

test('every strict prefix of the signed hello and welcome bodies is FRAME_MALFORMED', (t) => {
  for (const body of [helloBodyBytes, welcomeBodyBytes]) {
    const wrong: string[] = [];
    for (let n = 0; n < body.length; n++) {
      const o = outcome(() => decodeValue(body.subarray(0, n)));
      if (o.kind !== 'coded' || o.code !== 'FRAME_MALFORMED') wrong.push(`${n}: ${JSON.stringify(o)}`);
    }
    t.deepEqual(wrong, []);
  }
});

// ---------------------------------------------------------------------------------- trailing bytes

for (const f of FIXTURES) {
  test(`${f.type}: bytes after a complete frame are FRAME_MALFORMED`, (t) => {
    coded(t, () => decodeMessage(concat(f.bytes, [0x00])), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
    coded(t, () => decodeMessage(concat(f.bytes, [0xc0])), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
    // Two frames glued together are not one frame.
    coded(t, () => decodeMessage(concat(f.bytes, f.bytes)), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
  });
}

// ---------------------------------------------------------------------------------- hostile lengths

const HOSTILE_HEADERS: [string, number[]][] = [
  ['array32 of 2^32-1', [0xdd, 0xff, 0xff, 0xff, 0xff]],
  ['map32 of 2^32-1', [0xdf, 0xff, 0xff, 0xff, 0xff]],
  ['str32 of 2^32-1 bytes', [0xdb, 0xff, 0xff, 0xff, 0xff]],
  ['bin32 of 2^32-1 bytes', [0xc6, 0xff, 0xff, 0xff, 0xff]],
  ['ext32 of 2^32-1 bytes', [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01]],
  ['array16 of 65535', [0xdc, 0xff, 0xff]],
  ['map16 of 65535', [0xde, 0xff, 0xff]],
];

/** A valid `changes` frame whose list is replaced by the hostile header (the length sits inside a map). */
function insideChanges(header: number[]): Uint8Array {
  const prefix = encodeValue({ type: 'changes', list: null });
  assertSetup(prefix[prefix.length - 1] === 0xc0);
  return concat(prefix.subarray(0, prefix.length - 1), header);
}
function assertSetup(ok: boolean): void {
  if (!ok) throw new Error('test setup: the changes prefix does not end with nil');
}

for (const [name, header] of HOSTILE_HEADERS) {
  test(`hostile length: ${name} fails with FRAME_MALFORMED, alone, inside a frame, and before 1 MB of filler`, (t) => {
    coded(t, () => decodeMessage(Uint8Array.from(header)), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
    coded(t, () => decodeMessage(insideChanges(header)), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
    // Filler up to the frame limit: the claimed length still exceeds what the frame holds.
    const big = new Uint8Array(MAX_FRAME_BYTES).fill(0xc0);
    big.set(header);
    coded(t, () => decodeMessage(big), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
  });
}

test('hostile lengths: 10,000 bare headers and 10,000 inside a frame fail fast with bounded memory', (t) => {
  const gc = gcFunction();
  const frames = HOSTILE_HEADERS.flatMap(([, h]) => [Uint8Array.from(h), insideChanges(h)]);
  const usage = (): number => {
    gc?.();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = usage();
  const started = performance.now();
  const counts = new Map<string, number>();
  const rounds = Math.ceil(10_000 / HOSTILE_HEADERS.length);
  for (let i = 0; i < rounds; i++) {
    for (const f of frames) {
      const o = outcome(() => decodeMessage(f));
      const key = o.kind === 'coded' ? o.code : `${o.kind}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  const elapsed = performance.now() - started;
  const growth = usage() - before;
  t.log(`${rounds * frames.length} decodes in ${elapsed.toFixed(0)} ms, memory ${(growth / 1048576).toFixed(2)} MB (gc ${gc ? 'on' : 'off'})`);
  t.deepEqual([...counts], [['FRAME_MALFORMED', rounds * frames.length]]);
  // A hang detector, not a benchmark: 20,000 decodes take a fraction of a second.
  t.true(elapsed < 5_000, `took ${elapsed.toFixed(0)} ms`);
  t.true(growth < 20 * 1024 * 1024, `memory grew by ${(growth / 1048576).toFixed(1)} MB (gc ${gc ? 'on' : 'off'})`);
});

test('nesting as deep as a full frame allows is FRAME_MALFORMED, and the codec still works afterwards', (t) => {
  const arrays = new Uint8Array(MAX_FRAME_BYTES).fill(0x91);
  coded(t, () => decodeMessage(arrays), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
  const maps = new Uint8Array(MAX_FRAME_BYTES);
  for (let i = 0; i < maps.length; i += 2) maps.set([0x81, 0xa0], i);
  coded(t, () => decodeMessage(maps), 'FRAME_MALFORMED', /^not a complete MessagePack value: /);
  const ping = fixture('ping');
  t.deepEqual(decodeMessage(ping.bytes), ping.message);
});

/**
 * msgpackr decodes its structured-clone extensions (0x69 "id" / 0x70 "pointer") unless told not to, so a
 * few hundred bytes can describe a value in which each level points twice at the level below: a DAG that
 * the depth check walks (and a store re-encodes) as a tree of 2^depth leaves. Shared references are not
 * part of the protocol; such a frame must be refused, not validated for 2^depth steps.
 */
function referenceBomb(depth: number): number[] {
  let out = [0xd6, 0x69, ...u32(0), 0x92, 1, 2];
  for (let k = 1; k <= depth; k++) out = [0xd6, 0x69, ...u32(k), 0x92, ...out, 0xd6, 0x70, ...u32(k - 1)];
  return out;
}

/**
 * A `deltas` frame carrying raw value bytes as the value of its one entry (its values are checked by
 * the reader; a `changes` entry's value is checked where it is applied, test/attacks/poison-values).
 */
function changeWithRawValue(value: number[]): Uint8Array {
  const head = encodeValue({ type: 'deltas', seq: 1, list: [[1, 'u:alice', 'home', null]] });
  assertSetup(head[head.length - 1] === 0xc0);
  return concat(head.subarray(0, head.length - 1), value);
}

test('shared references (msgpackr structured-clone extension) are refused, not expanded', (t) => {
  const frame = changeWithRawValue(referenceBomb(20));
  t.true(frame.length < 400);
  const started = performance.now();
  const o = outcome(() => decodeMessage(frame));
  const elapsed = performance.now() - started;
  t.true(elapsed < 1_000, `took ${elapsed.toFixed(0)} ms for ${frame.length} bytes`);
  t.is(o.kind, 'coded', `a ${frame.length}-byte frame whose value expands to 2^20 leaves was accepted`);
  if (o.kind === 'coded') t.true(o.code === 'FRAME_MALFORMED' || o.code === 'MESSAGE_INVALID', o.code);
});

// Values must survive a relay: the server decodes a change, stores it and sends it on. msgpackr's built-in
// extensions decode to JavaScript types that do not re-encode to the same value (or do not re-encode).
const FOREIGN_VALUES: [string, number[]][] = [
  ['a BigInt over 64 bits (ext 0x42)', [0xc7, 9, 0x42, 1, 0, 0, 0, 0, 0, 0, 0, 0]],
  ['a RegExp (ext 0x78)', [0xd4, 0x78, 0x00, 0x92, 0xa2, 0x61, 0x2a, 0xa0]],
  ['a Set (ext 0x73)', [0xd4, 0x73, 0x00, 0x92, 0x01, 0x02]],
  ['a Float64Array (ext 0x74)', [0xc7, 9, 0x74, 8, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]],
];
for (const [name, value] of FOREIGN_VALUES) {
  test(`an item value holding ${name} is refused with a coded error`, (t) => {
    const o = outcome(() => decodeMessage(changeWithRawValue(value)));
    t.is(o.kind, 'coded', `accepted: ${JSON.stringify(o)}`);
    if (o.kind === 'coded') t.true(o.code === 'FRAME_MALFORMED' || o.code === 'MESSAGE_INVALID', o.code);
  });
}

test('undefined (ext 0 / fixext1) as an item value is MESSAGE_INVALID', (t) => {
  coded(t, () => decodeMessage(changeWithRawValue([0xd4, 0x00, 0x00])), 'MESSAGE_INVALID', /^deltas\.list holds undefined; item values are plain data$/);
});

test('a message type that is a BigInt, a Date or a map is MESSAGE_UNKNOWN with a short quote, never an uncoded TypeError', (t) => {
  // Found by the fuzz test: fixext2 of msgpackr's BigInt type (0x42) as the type made JSON.stringify throw.
  const frame = (typeHex: string) => Buffer.from(`81a474797065${typeHex}`, 'hex');
  coded(t, () => decodeMessage(frame('d5420000')), 'MESSAGE_UNKNOWN', /^unknown message type 0n$/);
  coded(t, () => decodeMessage(frame('d6ff00000000')), 'MESSAGE_UNKNOWN', /^unknown message type "1970-01-01T00:00:00\.000Z"$/);
  coded(t, () => decodeMessage(frame(`81a178${'d9ff' + '61'.repeat(255)}`)), 'MESSAGE_UNKNOWN', /^unknown message type \{"x":"a{50,}\.\.\.$/);
});

test('a value passed as its encoding (EncodedValue) makes the very frame the value itself makes', (t) => {
  const { message } = fixture('snapshot');
  const snapshot = message as Extract<Message, { type: 'snapshot' }>;
  const values: unknown[] = [...snapshot.items.map((i) => i[3]), new Uint8Array(70_000).fill(7), 'x'.repeat(300), null, -1.5, { a: { b: [1, { c: 'd' }] } }];
  for (const [codes, val] of values.flatMap((v) => [[false, v], [true, v]] as const)) {
    const items: typeof snapshot.items = [['u:alice', 'home', 9, val], ...snapshot.items];
    const direct = encodeMessage({ ...snapshot, items }, codes);
    const passed = encodeMessage({ ...snapshot, items: [['u:alice', 'home', 9, new EncodedValue(encodeValue(val))], ...snapshot.items.map(([e, n, v, x]) => [e, n, v, new EncodedValue(encodeValue(x))] as typeof items[number])] }, codes);
    t.deepEqual(Buffer.from(passed), Buffer.from(direct));
    t.deepEqual(plain((decodeMessage(passed, MAX_FRAME_BYTES, codes) as typeof snapshot).items[0]![3]), plain(val));
  }
});

test('the extension type that carries EncodedValue inside the encoder is refused on the wire like any unknown one', (t) => {
  coded(t, () => decodeMessage(changeWithRawValue([0xd4, 0x7e, 0x00])), 'FRAME_MALFORMED', /extension/i);
  coded(t, () => decodeValue(Uint8Array.of(0xc7, 0x02, 0x7e, 0x01, 0x02)), 'FRAME_MALFORMED', /extension/i);
});

// ------------------------------------------------------------------------------------- size limit

test('a frame over the size limit is FRAME_TOO_LARGE before it is decoded', (t) => {
  const { bytes, message } = fixture('changes');
  t.deepEqual(plain(decodeMessage(bytes, bytes.length)), plain(message));
  coded(t, () => decodeMessage(bytes, bytes.length - 1), 'FRAME_TOO_LARGE', new RegExp(`^frame of ${bytes.length} bytes exceeds ${bytes.length - 1}$`));
  // Garbage over the limit is refused for its size: nothing of it is parsed.
  coded(t, () => decodeMessage(new Uint8Array(101).fill(0xc1), 100), 'FRAME_TOO_LARGE', /^frame of 101 bytes exceeds 100$/);
});

test('the default limit is MAX_FRAME_BYTES', (t) => {
  const fit = encodeMessage({ type: 'changes', list: [[1, 'u:alice', 'home', 0, 'x'.repeat(MAX_FRAME_BYTES - 64)]] });
  t.true(fit.length <= MAX_FRAME_BYTES);
  t.is(decodeMessage(fit).type, 'changes');
  const over = encodeMessage({ type: 'changes', list: [[1, 'u:alice', 'home', 0, 'x'.repeat(MAX_FRAME_BYTES)]] });
  coded(t, () => decodeMessage(over), 'FRAME_TOO_LARGE', new RegExp(`^frame of ${over.length} bytes exceeds ${MAX_FRAME_BYTES}$`));
});

// --------------------------------------------------------------------------------- frame envelope

const NOT_MAPS: [string, unknown][] = [
  ['an array', [1, 2, 3]],
  ['an array that looks like a message', ['ping', 1, 2]],
  ['a number', 42],
  ['nil', null],
  ['a string', 'ping'],
  ['a boolean', true],
  ['binary', new Uint8Array([1, 2, 3])],
];
for (const [name, value] of NOT_MAPS) {
  test(`a frame that is ${name} is MESSAGE_INVALID`, (t) => {
    coded(t, () => decodeMessage(encodeValue(value)), 'MESSAGE_INVALID', /^a frame must be a map$/);
  });
}

test('on the wire every message type is a one-byte code, and both codes and names decode', (t) => {
  const codes = new Set<number>();
  for (const m of MESSAGES) {
    const raw = decodeValue(encodeMessage(m)) as { type: unknown };
    t.is(typeof raw.type, 'number', m.type);
    t.true((raw.type as number) >= 0 && (raw.type as number) < 128, `${m.type} fits a positive fixint`);
    codes.add(raw.type as number);
    t.is(decodeMessage(encodeValue({ ...(raw as object), type: m.type })).type, m.type, 'the name is accepted too');
  }
  t.is(codes.size, new Set(MESSAGES.map((m) => m.type)).size, 'one code per type');
});

test('a map with an unknown, missing or non-string type is MESSAGE_UNKNOWN', (t) => {
  coded(t, () => decodeMessage(encodeValue({ type: 'gossip', list: [] })), 'MESSAGE_UNKNOWN', /^unknown message type "gossip"$/);
  coded(t, () => decodeMessage(encodeValue({ at: 1, cursor: 2 })), 'MESSAGE_UNKNOWN', /^unknown message type undefined$/);
  coded(t, () => decodeMessage(encodeValue({})), 'MESSAGE_UNKNOWN', /^unknown message type undefined$/);
  coded(t, () => decodeMessage(encodeValue({ type: 99 })), 'MESSAGE_UNKNOWN', /^unknown message type 99$/);
  coded(t, () => decodeMessage(encodeValue({ type: -1 })), 'MESSAGE_UNKNOWN', /^unknown message type -1$/);
  coded(t, () => decodeMessage(encodeValue({ type: 1.5 })), 'MESSAGE_UNKNOWN', /^unknown message type 1.5$/);
  coded(t, () => decodeMessage(encodeValue({ type: ['ping'] })), 'MESSAGE_UNKNOWN', /^unknown message type \["ping"\]$/);
  // Names that exist on every object must not be mistaken for a family.
  coded(t, () => decodeMessage(encodeValue({ type: 'constructor' })), 'MESSAGE_UNKNOWN', /^unknown message type "constructor"$/);
  // __proto__ as text is text; as a map key it is refused (msgpackr would silently rename such a key).
  coded(t, () => decodeMessage(encodeValue({ type: '__proto__' })), 'MESSAGE_UNKNOWN', /^unknown message type "__proto__"$/);
  coded(t, () => decodeMessage(encodeValue(JSON.parse('{"type":"ping","__proto__":1}'))), 'MESSAGE_INVALID', /^a frame must not hold the map key __proto__$/);
  coded(t, () => decodeMessage(encodeValue({ type: 'PING', at: 1, cursor: 2 })), 'MESSAGE_UNKNOWN', /^unknown message type "PING"$/);
});

test('__proto__ inside text decodes as the text it is; as a map key, at any depth, it is MESSAGE_INVALID', (t) => {
  const text = { type: 'changes', list: [[1, 'u:pp', 'address-list', 0, [{ email: '__proto__@example.com', note: 'a __proto__ b' }]]] } as Message;
  for (const codes of [false, true]) t.deepEqual(plain(decodeMessage(encodeMessage(text, codes), MAX_FRAME_BYTES, codes)), plain(text));
  // A real key `__proto_` beside such text is a key like any other.
  const near = { type: 'deltas', seq: 2, list: [[2, 'u:pp', 'home', { __proto_: '__proto__' }]] } as Message;
  t.deepEqual(plain(decodeMessage(encodeMessage(near))), plain(near));
  const deep = JSON.parse('{"type":"deltas","seq":1,"list":[[1,"u:pp","home",{"a":[{"b":1},{"__proto__":{"x":1}}]}]]}');
  coded(t, () => decodeMessage(encodeValue(deep)), 'MESSAGE_INVALID', /^a frame must not hold the map key __proto__$/);
  t.false(hasProtoKey(encodeValue(text)));
  t.true(hasProtoKey(encodeValue(deep)));
  // Bytes that do not decode are left to the decoder, which names them.
  const cut = encodeValue(deep).subarray(0, 40);
  t.false(hasProtoKey(cut));
  coded(t, () => decodeMessage(cut), 'FRAME_MALFORMED', /./);
});

// ------------------------------------------------------------------------------------ wrong shapes

interface ShapeCase {
  type: MessageType;
  title: string;
  mutate: (o: Obj) => void;
  /** The field the message must name, after `type.`. */
  field: string;
  why: RegExp;
}

const INT_RANGE = /must be an integer in \[/;

const SHAPES: ShapeCase[] = [
  // challenge
  { type: 'challenge', title: 'protocol 0', mutate: (o) => { o.protocol = 0; }, field: 'protocol', why: /must be an integer in \[1, 65535\]/ },
  { type: 'challenge', title: 'minProtocol as a string', mutate: (o) => { o.minProtocol = '1'; }, field: 'minProtocol', why: INT_RANGE },
  { type: 'challenge', title: 'serverId missing', mutate: (o) => { delete o.serverId; }, field: 'serverId', why: /must be a string/ },
  { type: 'challenge', title: 'groupId of 129 ASCII bytes', mutate: (o) => { o.groupId = LONG_ASCII; }, field: 'groupId', why: /exceeds 128 bytes/ },
  { type: 'challenge', title: 'groupId of 65 two-byte characters', mutate: (o) => { o.groupId = LONG_2BYTE; }, field: 'groupId', why: /exceeds 128 bytes/ },
  { type: 'challenge', title: 'nonce of 31 bytes', mutate: (o) => { o.nonce = new Uint8Array(31); }, field: 'nonce', why: /must be 32 bytes/ },
  { type: 'challenge', title: 'salt as a string', mutate: (o) => { o.salt = 'c2FsdA=='; }, field: 'salt', why: /must be binary/ },
  // hello / welcome envelopes
  { type: 'hello', title: 'body missing', mutate: (o) => { delete o.body; }, field: 'body', why: /must be binary/ },
  { type: 'hello', title: 'body over 64 KiB', mutate: (o) => { o.body = new Uint8Array(64 * 1024 + 1); }, field: 'body', why: /exceeds 65536 bytes/ },
  { type: 'hello', title: 'sig of 63 bytes', mutate: (o) => { o.sig = new Uint8Array(63); }, field: 'sig', why: /must be 64 bytes/ },
  { type: 'welcome', title: 'body as a map instead of bytes', mutate: (o) => { o.body = { protocol: 2 }; }, field: 'body', why: /must be binary/ },
  { type: 'welcome', title: 'sig as an array', mutate: (o) => { o.sig = Array.from(o.sig as Uint8Array); }, field: 'sig', why: /must be binary/ },
  // refuse
  { type: 'refuse', title: 'code missing', mutate: (o) => { delete o.code; }, field: 'code', why: /must be a string/ },
  { type: 'refuse', title: 'code as a number', mutate: (o) => { o.code = 4; }, field: 'code', why: /must be a string/ },
  { type: 'refuse', title: 'message of 1026 bytes in 342 characters', mutate: (o) => { o.message = 'あ'.repeat(342); }, field: 'message', why: /exceeds 1024 bytes/ },
  // join-offer
  { type: 'join-offer', title: 'entities as a map', mutate: (o) => { o.entities = { 'u:alice': 'h' }; }, field: 'entities', why: /must be an array/ },
  { type: 'join-offer', title: 'a 3-tuple entry', mutate: (o) => { tupleOf(o, 'entities').push('extra'); }, field: 'entities', why: /entries must be 2-tuples/ },
  { type: 'join-offer', title: 'an entity over 128 UTF-8 bytes', mutate: (o) => { tupleOf(o, 'entities')[0] = LONG_KANJI; }, field: 'entities', why: /exceeds 128 bytes/ },
  { type: 'join-offer', title: 'a hash as binary', mutate: (o) => { tupleOf(o, 'entities')[1] = new Uint8Array(32); }, field: 'entities', why: /must be a string/ },
  {
    type: 'join-offer', title: `${MAX_LIST_ENTRIES + 1} entries`, field: 'entities', why: /has more than 4096 entries/,
    mutate: (o) => { o.entities = Array.from({ length: MAX_LIST_ENTRIES + 1 }, (_, i) => [`u:${i}`, 'h']); },
  },
  // join-plan
  { type: 'join-plan', title: 'upload missing', mutate: (o) => { delete o.upload; }, field: 'upload', why: /must be an array/ },
  { type: 'join-plan', title: 'a replace entry as a number', mutate: (o) => { listOf(o, 'replace')[1] = 42; }, field: 'replace', why: /must be a string/ },
  {
    type: 'join-plan', title: `${MAX_LIST_ENTRIES + 1} upload entries`, field: 'upload', why: /has more than 4096 entries/,
    mutate: (o) => { o.upload = Array.from({ length: MAX_LIST_ENTRIES + 1 }, (_, i) => `u:${i}`); },
  },
  // upload
  { type: 'upload', title: 'final missing', mutate: (o) => { delete o.final; }, field: 'final', why: /must be a boolean/ },
  { type: 'upload', title: 'final as 1', mutate: (o) => { o.final = 1; }, field: 'final', why: /must be a boolean/ },
  { type: 'upload', title: 'an entity without items', mutate: (o) => { listOf(o, 'entities')[0] = { e: 'u:x' }; }, field: 'entities', why: /entries must be \{e, items\}/ },
  { type: 'upload', title: 'an entity as a tuple', mutate: (o) => { listOf(o, 'entities')[0] = ['u:x', {}]; }, field: 'entities', why: /entries must be \{e, items\}/ },
  { type: 'upload', title: 'entity name over 128 bytes', mutate: (o) => { (listOf(o, 'entities')[0] as Obj).e = LONG_KANJI; }, field: 'e', why: /exceeds 128 bytes/ },
  {
    type: 'upload', title: 'an entity with 65 items', field: 'entities', why: /entry has more than 64 items/,
    mutate: (o) => { (listOf(o, 'entities')[0] as Obj).items = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`item-${i}`, i])); },
  },
  {
    type: 'upload', title: `a value nested ${MAX_VALUE_DEPTH + 1} deep`, field: 'entities', why: /nests deeper than 32/,
    mutate: (o) => { ((listOf(o, 'entities')[0] as Obj).items as Obj).home = nest(MAX_VALUE_DEPTH + 1); },
  },
  // upload-ack
  { type: 'upload-ack', title: 'created as a string', mutate: (o) => { o.created = 'u:田中'; }, field: 'created', why: /must be an array/ },
  { type: 'upload-ack', title: 'a skipped entry as nil', mutate: (o) => { o.skipped = [null]; }, field: 'skipped', why: /must be a string/ },
  // snapshot
  { type: 'snapshot', title: 'reason "resume"', mutate: (o) => { o.reason = 'resume'; }, field: 'reason', why: /must be one of join, fetch, checksum/ },
  { type: 'snapshot', title: 'seq missing', mutate: (o) => { delete o.seq; }, field: 'seq', why: INT_RANGE },
  { type: 'snapshot', title: 'a negative item version', mutate: (o) => { tupleOf(o, 'items')[2] = -3; }, field: 'items', why: INT_RANGE },
  { type: 'snapshot', title: 'a 3-tuple item', mutate: (o) => { tupleOf(o, 'items').pop(); }, field: 'items', why: /entries must be 4-tuples/ },
  { type: 'snapshot', title: `an item value nested ${MAX_VALUE_DEPTH + 1} deep`, mutate: (o) => { tupleOf(o, 'items')[3] = { a: nest(MAX_VALUE_DEPTH) }; }, field: 'items', why: /nests deeper than 32/ },
  { type: 'snapshot', title: 'an item name over 128 bytes', mutate: (o) => { tupleOf(o, 'items')[1] = LONG_ASCII; }, field: 'items', why: /exceeds 128 bytes/ },
  { type: 'snapshot', title: 'a versions entry with a string version', mutate: (o) => { tupleOf(o, 'versions')[2] = '4'; }, field: 'versions', why: INT_RANGE },
  { type: 'snapshot', title: 'a delete over 128 bytes', mutate: (o) => { o.deletes = [LONG_2BYTE]; }, field: 'deletes', why: /exceeds 128 bytes/ },
  { type: 'snapshot', title: 'a checks entry with a numeric checksum', mutate: (o) => { o.checks = [['u:alice', 7]]; }, field: 'checks', why: /must be a string/ },
  { type: 'snapshot', title: 'a 1-tuple checks entry', mutate: (o) => { o.checks = [['u:alice']]; }, field: 'checks', why: /entries must be 2-tuples/ },
  {
    type: 'snapshot', title: `${MAX_LIST_ENTRIES * 4 + 1} items`, field: 'items', why: /has more than 16384 entries/,
    mutate: (o) => { o.items = Array.from({ length: MAX_LIST_ENTRIES * 4 + 1 }, () => ['u:a', 'home', 1, 0]); },
  },
  // fetch
  { type: 'fetch', title: 'e missing', mutate: (o) => { delete o.e; }, field: 'e', why: /must be a string/ },
  { type: 'fetch', title: 'have with 65 entries', mutate: (o) => { o.have = Array.from({ length: 65 }, (_, i) => [`item-${i}`, 1]); }, field: 'have', why: /has more than 64 entries/ },
  { type: 'fetch', title: 'a have version of -1', mutate: (o) => { tupleOf(o, 'have')[1] = -1; }, field: 'have', why: INT_RANGE },
  { type: 'fetch', title: 'a have item name as a number', mutate: (o) => { tupleOf(o, 'have')[0] = 3; }, field: 'have', why: /must be a string/ },
  // changes
  { type: 'changes', title: 'a negative counter', mutate: (o) => { tupleOf(o, 'list')[0] = -1; }, field: 'list', why: /must be an integer in \[0, / },
  { type: 'changes', title: 'a fractional counter', mutate: (o) => { tupleOf(o, 'list')[0] = 1.5; }, field: 'list', why: INT_RANGE },
  { type: 'changes', title: 'base version -2', mutate: (o) => { tupleOf(o, 'list')[3] = -2; }, field: 'list', why: /must be an integer in \[-1, / },
  { type: 'changes', title: 'a 4-tuple', mutate: (o) => { tupleOf(o, 'list').pop(); }, field: 'list', why: /entries must be 5-tuples/ },
  { type: 'changes', title: 'an entry as a map', mutate: (o) => { listOf(o, 'list')[0] = { c: 1 }; }, field: 'list', why: /entries must be 5-tuples/ },
  { type: 'changes', title: 'an entity of 43 kanji (131 UTF-8 bytes)', mutate: (o) => { tupleOf(o, 'list')[1] = LONG_KANJI; }, field: 'list', why: /exceeds 128 bytes/ },
  { type: 'changes', title: 'an item name as nil', mutate: (o) => { tupleOf(o, 'list')[2] = null; }, field: 'list', why: /must be a string/ },
  {
    type: 'changes', title: `${MAX_LIST_ENTRIES + 1} entries`, field: 'list', why: /has more than 4096 entries/,
    mutate: (o) => { o.list = Array.from({ length: MAX_LIST_ENTRIES + 1 }, (_, i) => [i, 'u:a', 'home', 0, 0]); },
  },
  // ack
  { type: 'ack', title: 'status 4', mutate: (o) => { tupleOf(o, 'list')[1] = 4; }, field: 'list', why: /must be an integer in \[0, 3\]/ },
  { type: 'ack', title: 'a 3-tuple', mutate: (o) => { tupleOf(o, 'list').pop(); }, field: 'list', why: /entries must be 4-tuples/ },
  { type: 'ack', title: 'a version as a string', mutate: (o) => { tupleOf(o, 'list')[2] = 'v6'; }, field: 'list', why: INT_RANGE },
  { type: 'ack', title: 'list missing', mutate: (o) => { delete o.list; }, field: 'list', why: /must be an array/ },
  // The server value of a duplicate/conflict becomes the client's local value, like a delta's.
  { type: 'ack', title: `a conflict value nested ${MAX_VALUE_DEPTH + 1} deep`, mutate: (o) => { tupleOf(o, 'list', 2)[3] = nest(MAX_VALUE_DEPTH + 1); }, field: 'list', why: /nests deeper than 32/ },
  // deltas
  { type: 'deltas', title: 'seq missing', mutate: (o) => { delete o.seq; }, field: 'seq', why: INT_RANGE },
  { type: 'deltas', title: 'a negative seq in an entry', mutate: (o) => { tupleOf(o, 'list')[0] = -5; }, field: 'list', why: INT_RANGE },
  { type: 'deltas', title: 'an item code on a session without codes', mutate: (o) => { tupleOf(o, 'list')[2] = 12; }, field: 'list', why: /item codes need protocol 3 on both sides/ },
  { type: 'changes', title: 'an item code on a session without codes', mutate: (o) => { tupleOf(o, 'list')[2] = 0; }, field: 'list', why: /item codes need protocol 3 on both sides/ },
  { type: 'deltas', title: `a value nested ${MAX_VALUE_DEPTH + 1} deep`, mutate: (o) => { tupleOf(o, 'list')[3] = nest(MAX_VALUE_DEPTH + 1); }, field: 'list', why: /nests deeper than 32/ },
  { type: 'deltas', title: 'a 5-tuple', mutate: (o) => { tupleOf(o, 'list').push(0); }, field: 'list', why: /entries must be 4-tuples/ },
  // release
  { type: 'release', title: 'entities as nil', mutate: (o) => { o.entities = null; }, field: 'entities', why: /must be an array/ },
  { type: 'release', title: 'an entity of 65 two-byte characters', mutate: (o) => { listOf(o, 'entities')[0] = LONG_2BYTE; }, field: 'entities', why: /exceeds 128 bytes/ },
  // ping / pong
  { type: 'ping', title: 'a negative at', mutate: (o) => { o.at = -1; }, field: 'at', why: INT_RANGE },
  { type: 'ping', title: 'cursor as a string', mutate: (o) => { o.cursor = '1044'; }, field: 'cursor', why: INT_RANGE },
  { type: 'ping', title: 'at beyond 2^53 (uint64 on the wire)', mutate: (o) => { o.at = 2 ** 60; }, field: 'at', why: INT_RANGE },
  { type: 'pong', title: 'echo missing', mutate: (o) => { delete o.echo; }, field: 'echo', why: INT_RANGE },
  { type: 'pong', title: 'a fractional at', mutate: (o) => { o.at = 1717146000131.5; }, field: 'at', why: INT_RANGE },
  // sleep
  { type: 'sleep', title: 'at missing', mutate: (o) => { delete o.at; }, field: 'at', why: INT_RANGE },
  { type: 'sleep', title: 'at as a date string', mutate: (o) => { o.at = '2024-05-31T09:00:00Z'; }, field: 'at', why: INT_RANGE },
];

test('the wrong-shape table has at least two cases per message type', (t) => {
  for (const f of FIXTURES) t.true(SHAPES.filter((c) => c.type === f.type).length >= 2, f.type);
});

for (const c of SHAPES) {
  test(`${c.type}: ${c.title} is MESSAGE_INVALID naming ${c.type}.${c.field}`, (t) => {
    const o = copyOf(c.type);
    c.mutate(o);
    const err = t.throws(() => decodeMessage(encodeValue(o)), { instanceOf: MfpError });
    t.is(err.code, 'MESSAGE_INVALID');
    t.true(err.message.startsWith(`${c.type}.${c.field} `), `message "${err.message}" does not name ${c.type}.${c.field}`);
    t.regex(err.message, c.why);
  });
}

test('limits are inclusive: a name of exactly 128 UTF-8 bytes and a value exactly 32 deep are accepted', (t) => {
  const name = 'u:' + '田'.repeat(42);
  t.is(Buffer.byteLength(name), MAX_NAME_BYTES);
  const m = decodeMessage(encodeValue({ type: 'changes', list: [[0, name, 'home', -1, nest(MAX_VALUE_DEPTH)]] }));
  t.deepEqual(m, { type: 'changes', list: [[0, name, 'home', -1, nest(MAX_VALUE_DEPTH)]] });
  const ack = decodeMessage(encodeValue({ type: 'ack', list: [[1, 3, 0, ['VALUE_TOO_LARGE', 'too large']]] }));
  t.true(isMessage(ack, 'ack'));
  const full = decodeMessage(encodeValue({ type: 'release', entities: Array.from({ length: MAX_LIST_ENTRIES }, (_, i) => `u:${i}`) }));
  t.is(isMessage(full, 'release') ? full.entities.length : -1, MAX_LIST_ENTRIES);
});

test('a refuse with a code this build does not know arrives as PEER_GONE, its message kept', (t) => {
  const m = decodeMessage(encodeValue({ type: 'refuse', code: 'SOMETHING_NEW', message: 'from a newer peer' }));
  t.deepEqual(m, { type: 'refuse', code: 'PEER_GONE', message: 'from a newer peer' });
});

test('a deleted entity travels as a delta with a nil item and no value check', (t) => {
  const m = decodeMessage(encodeValue({ type: 'deltas', seq: 9, list: [[9, 'u:dave', null, null]] }));
  t.deepEqual(m, { type: 'deltas', seq: 9, list: [[9, 'u:dave', null, null]] });
});

// ------------------------------------------------------------------------------------- item codes

test('on a session with item codes, changes and deltas name known items by a one-byte code and decode to names', (t) => {
  const changes: Message = { type: 'changes', list: [[7, 'u:alice', 'job-defaults', 3, { copy: 1 }], [8, 'u:alice', 'x-vendor-item', -1, 'v']] };
  const deltas: Message = { type: 'deltas', seq: 12, list: [[11, 'u:alice', 'keychain', {}], [12, 'u:bob', null, null]] };
  for (const m of [changes, deltas]) {
    const named = encodeMessage(m);
    const coded_ = encodeMessage(m, true);
    t.deepEqual(decodeMessage(coded_, MAX_FRAME_BYTES, true), m, `${m.type} round trip with codes`);
    t.deepEqual(decodeMessage(named, MAX_FRAME_BYTES, true), m, `${m.type}: names are still read on a session with codes`);
    const item = m.list[0]![2]!;
    t.is(named.length - coded_.length, Buffer.byteLength(item), `${m.type}: "${item}" (1 + ${Buffer.byteLength(item)} B) became a 1-byte code`);
    t.is(Buffer.from(coded_).indexOf(item), -1);
    // Without codes negotiated, a coded frame is refused rather than guessed at.
    coded(t, () => decodeMessage(coded_), 'MESSAGE_INVALID', /item codes need protocol 3 on both sides/);
  }
  // Other messages are unchanged by the option.
  const ack: Message = { type: 'ack', list: [[7, 0, 4, null]] };
  t.deepEqual(encodeMessage(ack, true), encodeMessage(ack));
});

test('an item code outside the table, or not an integer, is MESSAGE_INVALID', (t) => {
  for (const bad of [ITEM_CODES.length, -1, 1.5]) {
    const bytes = encodeValue({ type: 'changes', list: [[1, 'u:alice', bad, 0, 'v']] });
    coded(t, () => decodeMessage(bytes, MAX_FRAME_BYTES, true), 'MESSAGE_INVALID', new RegExp(`unknown item code ${bad}`));
  }
});

// ------------------------------------------------------------------------------------------ chunk

test('chunk: empty input gives one empty chunk', (t) => {
  t.deepEqual(chunk([], () => 1), [[]]);
  t.deepEqual(chunk([], () => 1, 10, 2), [[]]);
});

test('chunk: splits by byte budget, an exact fit stays in the chunk', (t) => {
  t.deepEqual(chunk([100, 100, 100], (x) => x, 250), [[100, 100], [100]]);
  t.deepEqual(chunk([50, 50, 50], (x) => x, 100), [[50, 50], [50]]);
  t.deepEqual(chunk([60, 50], (x) => x, 100), [[60], [50]]);
});

test('chunk: an entry larger than the budget travels alone, with no empty chunk around it', (t) => {
  t.deepEqual(chunk([10, 1000, 10], (x) => x, 100), [[10], [1000], [10]]);
  t.deepEqual(chunk([1000], (x) => x, 100), [[1000]]);
  t.deepEqual(chunk([1000, 1000], (x) => x, 100), [[1000], [1000]]);
});

test('chunk: splits by count', (t) => {
  const xs = Array.from({ length: 10 }, (_, i) => i);
  t.deepEqual(chunk(xs, () => 1, 1000, 3), [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
  t.deepEqual(chunk(xs, () => 0, 0, 5), [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]);
});

test('chunk: the defaults are CHUNK_BYTES and MAX_LIST_ENTRIES', (t) => {
  const small = chunk(Array.from({ length: 5000 }, (_, i) => i), () => 1);
  t.deepEqual(small.map((c) => c.length), [MAX_LIST_ENTRIES, 5000 - MAX_LIST_ENTRIES]);
  const big = chunk(Array.from({ length: 5 }, (_, i) => i), () => 100 * 1024);
  t.deepEqual(big.map((c) => c.length), [2, 2, 1]);
});

test('chunk: random inputs keep order, never yield an empty chunk, and respect both bounds greedily', (t) => {
  const random = rng(0xc4a1);
  for (let round = 0; round < 500; round++) {
    const n = Math.floor(random() * 60);
    const sizes = Array.from({ length: n }, () => Math.floor(random() * 120));
    const entries = sizes.map((size, i) => ({ i, size }));
    const maxBytes = 1 + Math.floor(random() * 300);
    const maxCount = 1 + Math.floor(random() * 8);
    const out = chunk(entries, (e) => e.size, maxBytes, maxCount);
    const where = `round ${round}: sizes ${JSON.stringify(sizes)} maxBytes ${maxBytes} maxCount ${maxCount}`;
    t.deepEqual(out.flat(), entries, where);
    if (n === 0) {
      t.deepEqual(out, [[]], where);
      continue;
    }
    for (const [k, c] of out.entries()) {
      const sum = c.reduce((s, e) => s + e.size, 0);
      t.true(c.length >= 1 && c.length <= maxCount, where);
      t.true(c.length === 1 || sum <= maxBytes, where);
      const next = out[k + 1];
      // Greedy: a chunk was closed only because the next entry did not fit.
      if (next) t.true(c.length === maxCount || sum + next[0]!.size > maxBytes, where);
    }
  }
});

// ------------------------------------------------------------------------------- random mutations

/** One random mutation of a frame: flip, overwrite with a length-ish byte, insert, delete, truncate. */
function mutate(random: () => number, src: Uint8Array): Uint8Array {
  const bytes = Array.from(src);
  const pos = () => Math.floor(random() * (bytes.length + 1));
  const byte = () => Math.floor(random() * 256);
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const op = Math.floor(random() * 6);
    const p = Math.min(pos(), Math.max(bytes.length - 1, 0));
    if (op === 0 && bytes.length > 0) bytes[p] = bytes[p]! ^ (1 << Math.floor(random() * 8));
    else if (op === 1 && bytes.length > 0) bytes[p] = byte();
    else if (op === 2 && bytes.length > 0) bytes[p] = [0xdd, 0xdf, 0xdb, 0xc6, 0xc9, 0xdc, 0xde, 0xff, 0x00, 0xc1, 0x7f, 0x80][Math.floor(random() * 12)]!;
    else if (op === 3) bytes.splice(pos(), 0, ...Array.from({ length: 1 + Math.floor(random() * 4) }, byte));
    else if (op === 4) bytes.splice(pos(), 1 + Math.floor(random() * 4));
    else bytes.length = Math.floor(random() * bytes.length);
  }
  return Uint8Array.from(bytes);
}

test('20,000 random mutations of the fixtures decode to a message or throw MfpError, nothing else', (t) => {
  const random = rng(0x5eed);
  const counts = new Map<string, number>();
  const others: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    const f = FIXTURES[Math.floor(random() * FIXTURES.length)]!;
    const bytes = mutate(random, f.bytes);
    const o = outcome(() => decodeMessage(bytes));
    const key = o.kind === 'coded' ? o.code : o.kind;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (o.kind === 'other' && others.length < 5) others.push(`#${i} ${f.type} ${hex(bytes)}: ${o.name}: ${o.message}`);
  }
  t.log(Object.fromEntries(counts));
  t.deepEqual(others, []);
  t.true((counts.get('message') ?? 0) > 0, 'no mutation decoded to a message');
  t.true((counts.get('FRAME_MALFORMED') ?? 0) > 0, 'no mutation was FRAME_MALFORMED');
  t.true((counts.get('MESSAGE_INVALID') ?? 0) > 0, 'no mutation was MESSAGE_INVALID');
  const codes = [...counts.keys()].filter((k) => k !== 'message');
  t.true(codes.every((k) => ['FRAME_MALFORMED', 'MESSAGE_INVALID', 'MESSAGE_UNKNOWN'].includes(k)), codes.join());
});

test('a mutated frame that decodes re-encodes to a frame that decodes to the same message', (t) => {
  const random = rng(0xbead);
  const unstable: string[] = [];
  let decoded = 0;
  for (let i = 0; i < 20_000 && unstable.length < 5; i++) {
    const bytes = mutate(random, FIXTURES[Math.floor(random() * FIXTURES.length)]!.bytes);
    let m;
    try {
      m = decodeMessage(bytes);
    } catch {
      continue;
    }
    decoded++;
    const again = outcome(() => {
      const back = decodeMessage(encodeMessage(m));
      if (hex(encodeMessage(back)) !== hex(encodeMessage(m))) throw new Error('re-encoded frame differs');
    });
    if (again.kind !== 'message') unstable.push(`#${i} ${hex(bytes)}: ${JSON.stringify(again)}`);
  }
  t.true(decoded > 0);
  t.deepEqual(unstable, []);
});

// ------------------------------------------------------------------------------ hello/welcome bodies

interface BodyCase {
  title: string;
  mutate: (o: Obj) => void;
  field: RegExp;
  why: RegExp;
}

const settingsOf = (o: Obj): Obj => o.settings as Obj;
const admissionOf = (o: Obj): Obj => o.admission as Obj;

const HELLO_CASES: BodyCase[] = [
  { title: 'protocol 0', mutate: (o) => { o.protocol = 0; }, field: /^hello\.protocol /, why: /\[1, 65535\]/ },
  { title: 'minProtocol 65536', mutate: (o) => { o.minProtocol = 65536; }, field: /^hello\.minProtocol /, why: new RegExp(`\\[1, ${PROTOCOL_VERSION}\\]`) },
  { title: 'minProtocol above protocol', mutate: (o) => { o.protocol = 1; o.minProtocol = 2; }, field: /^hello\.minProtocol /, why: /\[1, 1\]/ },
  { title: 'capabilities as a string', mutate: (o) => { o.capabilities = 'user:language'; }, field: /^hello\.capabilities /, why: /must be an array/ },
  { title: '257 capabilities', mutate: (o) => { o.capabilities = Array.from({ length: 257 }, (_, i) => `user:x${i}`); }, field: /^hello\.capabilities /, why: /more than 256 entries/ },
  { title: 'a capability of 65 bytes', mutate: (o) => { (o.capabilities as string[])[0] = 'user:' + 'x'.repeat(60); }, field: /^hello\.capabilities /, why: /exceeds 64 bytes/ },
  { title: 'deviceId of 65 bytes', mutate: (o) => { o.deviceId = 'd'.repeat(65); }, field: /^hello\.deviceId /, why: /exceeds 64 bytes/ },
  { title: 'publicKey of 31 bytes', mutate: (o) => { o.publicKey = new Uint8Array(31); }, field: /^hello\.publicKey /, why: /must be 32 bytes/ },
  { title: 'name missing', mutate: (o) => { delete o.name; }, field: /^hello\.name /, why: /must be a string/ },
  { title: 'serial as a number', mutate: (o) => { o.serial = 4077120; }, field: /^hello\.serial /, why: /must be a string/ },
  { title: 'location of 43 kanji', mutate: (o) => { o.location = '田'.repeat(43); }, field: /^hello\.location /, why: /exceeds 128 bytes/ },
  { title: 'software of 65 bytes', mutate: (o) => { o.software = 's'.repeat(65); }, field: /^hello\.software /, why: /exceeds 64 bytes/ },
  { title: 'groupId as a number', mutate: (o) => { o.groupId = 1; }, field: /^hello\.groupId /, why: /must be a string/ },
  { title: 'epoch of 65 bytes', mutate: (o) => { o.epoch = 'e'.repeat(65); }, field: /^hello\.epoch /, why: /exceeds 64 bytes/ },
  { title: 'cursor -1', mutate: (o) => { o.cursor = -1; }, field: /^hello\.cursor /, why: INT_RANGE },
  { title: 'heartbeat 0', mutate: (o) => { o.heartbeat = 0; }, field: /^hello\.heartbeat /, why: /\[1, 3600\]/ },
  { title: 'heartbeat 3601', mutate: (o) => { o.heartbeat = 3601; }, field: /^hello\.heartbeat /, why: /\[1, 3600\]/ },
  { title: 'settings missing', mutate: (o) => { delete o.settings; }, field: /^hello\.settings /, why: /must be a map/ },
  { title: 'settings.loginService missing', mutate: (o) => { delete settingsOf(o).loginService; }, field: /^hello\.(settings\.)?loginService /, why: /must be a string/ },
  { title: 'settings.departmentIds as "yes"', mutate: (o) => { settingsOf(o).departmentIds = 'yes'; }, field: /^hello\.(settings\.)?departmentIds /, why: /must be a boolean/ },
  { title: 'settings.departmentIdsDigest not a digest', mutate: (o) => { settingsOf(o).departmentIdsDigest = 'ab'.repeat(31) + 'zz'; }, field: /^hello\.settings\.departmentIdsDigest /, why: /must be 64 hex digits/ },
  { title: 'admission as a string', mutate: (o) => { o.admission = 'admin:secret'; }, field: /^hello\.admission /, why: /must be a map/ },
  { title: 'admission.user missing', mutate: (o) => { delete admissionOf(o).user; }, field: /^hello\.(admission\.)?user /, why: /must be a string/ },
  { title: 'admission.proof of 31 bytes', mutate: (o) => { admissionOf(o).proof = new Uint8Array(31); }, field: /^hello\.(admission\.)?proof /, why: /must be 32 bytes/ },
];

const WELCOME_CASES: BodyCase[] = [
  { title: 'protocol 0', mutate: (o) => { o.protocol = 0; }, field: /^welcome\.protocol /, why: new RegExp(`\\[1, ${PROTOCOL_VERSION}\\]`) },
  { title: `protocol ${PROTOCOL_VERSION + 1} (newer than this build)`, mutate: (o) => { o.protocol = PROTOCOL_VERSION + 1; }, field: /^welcome\.protocol /, why: new RegExp(`\\[1, ${PROTOCOL_VERSION}\\]`) },
  { title: 'capabilities missing', mutate: (o) => { delete o.capabilities; }, field: /^welcome\.capabilities /, why: /must be an array/ },
  { title: 'a capability as a number', mutate: (o) => { (o.capabilities as unknown[])[0] = 1; }, field: /^welcome\.capabilities /, why: /must be a string/ },
  { title: 'groupId of 65 bytes', mutate: (o) => { o.groupId = 'g'.repeat(65); }, field: /^welcome\.groupId /, why: /exceeds 64 bytes/ },
  { title: 'groupKey of 33 bytes', mutate: (o) => { o.groupKey = new Uint8Array(33); }, field: /^welcome\.groupKey /, why: /must be 32 bytes/ },
  { title: 'epoch missing', mutate: (o) => { delete o.epoch; }, field: /^welcome\.epoch /, why: /must be a string/ },
  { title: 'seq -1', mutate: (o) => { o.seq = -1; }, field: /^welcome\.seq /, why: INT_RANGE },
  { title: 'lastCounter 1.5', mutate: (o) => { o.lastCounter = 1.5; }, field: /^welcome\.lastCounter /, why: INT_RANGE },
  { title: 'resume "full"', mutate: (o) => { o.resume = 'full'; }, field: /^welcome\.resume /, why: /must be one of join, cursor, checksum/ },
];

test('hello body: the fixture passes, and one without admission or group reads them as null', (t) => {
  t.deepEqual(plain(readHelloBody(decodeValue(helloBodyBytes))), plain(helloBody));
  const later = decodeValue(encodeValue({ ...helloBody, admission: null, epoch: 'ep-1', cursor: 88 })) as Obj;
  delete later.groupId;
  const read = readHelloBody(later);
  t.is(read.admission, null);
  t.is(read.groupId, null);
  t.is(read.epoch, 'ep-1');
  t.is(read.cursor, 88);
});

test('hello and welcome bodies that are not maps are MESSAGE_INVALID', (t) => {
  for (const v of [null, [], 'hello', new Uint8Array(4), 7]) {
    coded(t, () => readHelloBody(v), 'MESSAGE_INVALID', /^hello body must be a map$/);
    coded(t, () => readWelcomeBody(v), 'MESSAGE_INVALID', /^welcome body must be a map$/);
  }
});

for (const [name, base, read, cases] of [
  ['hello', helloBodyBytes, readHelloBody, HELLO_CASES],
  ['welcome', welcomeBodyBytes, readWelcomeBody, WELCOME_CASES],
] as const) {
  for (const c of cases) {
    test(`${name} body: ${c.title} is MESSAGE_INVALID naming the field`, (t) => {
      // The body as the peer receives it: decoded from bytes, then broken.
      const o = decodeValue(base) as Obj;
      c.mutate(o);
      const err = t.throws(() => read(decodeValue(encodeValue(o))), { instanceOf: MfpError });
      t.is(err.code, 'MESSAGE_INVALID');
      t.regex(err.message, c.field);
      t.regex(err.message, c.why);
    });
  }
}
