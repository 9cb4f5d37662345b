/**
 * The codec: bytes ↔ validated messages, and nothing else (no sockets, no storage). msgpackr runs with
 * records off and maps as plain objects: shared structures between peers that disagree would silently
 * decode wrong data. structuredClone is off: its shared-reference extensions would let a few hundred
 * bytes stand for a tree of 2^depth nodes. Every decoded frame is validated by its family's reader
 * before anyone sees it.
 */
import { addExtension, Packr } from 'msgpackr';
import { MfpError } from './errors.js';
import { HeartbeatType, readHeartbeatMessage, type HeartbeatMessage } from './heartbeat.js';
import { MAX_FRAME_BYTES } from './limits.js';
import { readReplicationMessage, ReplicationType, type ReplicationMessage } from './replication.js';
import { readSessionMessage, SessionType, type SessionMessage } from './session.js';
import { readSyncMessage, SyncType, withItemCodes, type SyncMessage } from './sync.js';
import { describeValue, isFields } from './validate.js';

/** Every message of the protocol. */
export type Message = SessionMessage | SyncMessage | HeartbeatMessage | ReplicationMessage;
/** Every message type string. */
export type MessageType = Message['type'];

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, int64AsType: 'number' });
/** The same decoder with maps as Map: its keys are the keys as sent, where `packr` would rename `__proto__`. */
const mapPackr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false, structuredClone: false, int64AsType: 'number' });

/**
 * A value already encoded as MessagePack (a stored item's value, see storage/records.ts
 * `splitItemRecord`): packed into a frame as those very bytes, where the value would be, so the peer
 * decodes it like any other and the wire does not change. A server sends stored values on this way
 * without decoding them and encoding them again. The bytes must be one complete MessagePack value.
 */
export class EncodedValue {
  constructor(readonly bytes: Uint8Array) {}
}

/** A stored value as it goes on the wire: its stored bytes as they are (`splitItemRecord`), neither decoded nor encoded again. */
export function wireValue(rec: { valBytes: Uint8Array } | { val: unknown }): unknown {
  return 'valBytes' in rec ? new EncodedValue(rec.valBytes) : rec.val;
}

/**
 * msgpackr has no public way to embed encoded bytes, but an extension's `pack` may write into the
 * frame itself through the `allocate` it is given and return nothing, and then no extension header is
 * written (msgpackr writes its own typed arrays this way). The extension's type code therefore never
 * reaches the wire; a frame that carries it anyway is refused like any unknown extension type.
 */
const ENCODED_VALUE_TYPE = 0x7e;
addExtension({
  Class: EncodedValue,
  type: ENCODED_VALUE_TYPE,
  pack(value: EncodedValue, allocate: (size: number) => { target: Uint8Array; position: number }): undefined {
    const { target, position } = allocate(value.bytes.length);
    target.set(value.bytes, position);
    return undefined;
  },
  unpack(): never {
    throw new Error(`Unknown extension type ${ENCODED_VALUE_TYPE}`);
  },
} as unknown as Parameters<typeof addExtension>[0]);

const FAMILY = new Map<string, (o: Record<string, unknown>) => Message>([
  ...Object.values(SessionType).map((t) => [t, readSessionMessage] as const),
  ...Object.values(SyncType).map((t) => [t, readSyncMessage] as const),
  ...Object.values(HeartbeatType).map((t) => [t, readHeartbeatMessage] as const),
  ...Object.values(ReplicationType).map((t) => [t, readReplicationMessage] as const),
]);

/**
 * On the wire a message's type is a one-byte code rather than its name (7 bytes saved on a change
 * frame). The table is append-only: a code never changes meaning. Names are still accepted.
 */
const WIRE_TYPES: readonly MessageType[] = [
  'challenge', 'hello', 'welcome', 'refuse',
  'join-offer', 'join-plan', 'upload', 'upload-ack', 'snapshot', 'fetch', 'changes', 'ack', 'deltas', 'release',
  'ping', 'pong',
  'sleep',
  'repl-challenge', 'repl-hello', 'repl-welcome', 'repl-state', 'repl-data', 'repl-commit', 'repl-done', 'repl-pull',
];
const TYPE_CODE = new Map(WIRE_TYPES.map((t, i) => [t, i]));

const PROTO_KEY = Buffer.from('__proto__');

/**
 * Whether MessagePack bytes hold a map key `__proto__` (SPEC §6: only map keys are checked; the text
 * inside a string is text). msgpackr would rename such a key to `__proto_` rather than let it reach a
 * prototype: a silent change of data, so the caller refuses it. A key is a string, so its UTF-8 bytes
 * lie in the frame as they are: a native byte search finds none in almost every frame and decides
 * alone; only bytes that do contain them are decoded again with maps as Map and their keys walked.
 * Bytes that do not decode are left to the caller's own decoding (false here).
 */
export function hasProtoKey(bytes: Uint8Array): boolean {
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(PROTO_KEY) < 0) return false;
  let root: unknown;
  try {
    root = mapPackr.unpack(bytes);
  } catch {
    return false;
  }
  // A stack rather than recursion: the nesting is whatever the sender made it.
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v instanceof Map) {
      for (const [k, x] of v) {
        if (k === '__proto__') return true;
        stack.push(x);
      }
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
    }
  }
  return false;
}

const SYNC_TYPES = new Set<string>(Object.values(SyncType));

/**
 * Encodes a message into one frame. `itemCodes`: the session reads item codes (protocol 3 or later on
 * both sides), so `changes` and `deltas` entries name their items by code.
 */
export function encodeMessage(message: Message, itemCodes = false): Uint8Array {
  const body = itemCodes && SYNC_TYPES.has(message.type) ? withItemCodes(message as SyncMessage) : message;
  return packr.pack({ ...body, type: TYPE_CODE.get(message.type) ?? message.type });
}

/** Encodes a plain value (message bodies that get signed). */
export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes a plain value; malformed bytes are FRAME_MALFORMED. */
export function decodeValue(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (err) {
    throw new MfpError('FRAME_MALFORMED', `not a complete MessagePack value: ${(err as Error).message}`, { cause: err });
  }
}

/** Decodes and validates one frame; `itemCodes` as for encodeMessage (a code on a session without is MESSAGE_INVALID). */
export function decodeMessage(bytes: Uint8Array, maxBytes = MAX_FRAME_BYTES, itemCodes = false): Message {
  if (bytes.length > maxBytes) throw new MfpError('FRAME_TOO_LARGE', `frame of ${bytes.length} bytes exceeds ${maxBytes}`);
  // A map key `__proto__` would be renamed by msgpackr: the frame is refused instead. Text is text.
  if (hasProtoKey(bytes)) throw new MfpError('MESSAGE_INVALID', 'a frame must not hold the map key __proto__');
  const o = decodeValue(bytes);
  if (!isFields(o)) throw new MfpError('MESSAGE_INVALID', 'a frame must be a map');
  if (typeof o.type === 'number' && Number.isInteger(o.type) && o.type >= 0 && o.type < WIRE_TYPES.length) o.type = WIRE_TYPES[o.type];
  const read = typeof o.type === 'string' ? FAMILY.get(o.type) : undefined;
  if (!read) throw new MfpError('MESSAGE_UNKNOWN', `unknown message type ${describeValue(o.type)}`);
  return read === readSyncMessage ? readSyncMessage(o, itemCodes) : read(o);
}

/** Narrows a message to one type. */
export function isMessage<T extends MessageType>(m: Message, type: T): m is Extract<Message, { type: T }> {
  return m.type === type;
}
