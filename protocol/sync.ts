/**
 * Sync messages, after the handshake.
 *
 * Join (a client that starts synchronizing; SPEC §3.1), under the server's join lock:
 *   client → join-offer {[entity, content hash]… it holds}
 *   server → join-plan  {upload: entities the server lacks (reserved for this client), replace: the rest}
 *   client → upload…    {entities with their items; last one final}   server → upload-ack {created, skipped}
 *   server → snapshot…  {items of replaced/skipped entities, replace list; last one final, with seq}
 * Resume by cursor: the server streams `deltas` of its log after the client's cursor, then live ones.
 * Resume by checksum (the server's epoch changed): the same exchange; the offer carries content hashes, so
 *   only entities that differ travel (identical ones get their versions in the snapshot).
 * Login: client → fetch {entity, versions it has}; server → snapshot {newer items} and holds the entity.
 * Live: client → changes {[counter, entity, item, base, value]…}; server → ack {[counter, status, v, x]…};
 *       server → deltas {[seq, entity, item, value]…} to every client holding the entity.
 * A client that drops a user (its own 1,000-user bound) → release {entities}.
 *
 * Hot-path entries are tuples: a one-item change costs its value plus a few dozen bytes. From protocol 3
 * on, their item names travel as one-byte codes (ITEM_CODES).
 */
import { MfpError } from './errors.js';
import { CHUNK_BYTES, MAX_LIST_ENTRIES, MAX_MESSAGE_TEXT_BYTES } from './limits.js';
import { bool, clipText, describeValue, type Fields, int, intValue, invalid, isFields, itemValue, list, oneOf, str, strList, strValue } from './validate.js';

/** Message types of the sync family. */
export const SyncType = {
  JoinOffer: 'join-offer',
  JoinPlan: 'join-plan',
  Upload: 'upload',
  UploadAck: 'upload-ack',
  Snapshot: 'snapshot',
  Fetch: 'fetch',
  Changes: 'changes',
  Ack: 'ack',
  Deltas: 'deltas',
  Release: 'release',
} as const;

/** [entity, content hash] */
export type OfferEntry = [string, string];
export interface JoinOfferMessage { type: typeof SyncType.JoinOffer; entities: OfferEntry[] }
export interface JoinPlanMessage { type: typeof SyncType.JoinPlan; upload: string[]; replace: string[] }
export interface UploadEntity { e: string; items: Record<string, unknown> }
export interface UploadMessage { type: typeof SyncType.Upload; entities: UploadEntity[]; final: boolean }
export interface UploadAckMessage { type: typeof SyncType.UploadAck; created: string[]; skipped: string[] }
/** [entity, item, version, value] */
export type SnapshotItem = [string, string, number, unknown];
export interface SnapshotMessage {
  type: typeof SyncType.Snapshot;
  reason: 'join' | 'fetch' | 'checksum';
  items: SnapshotItem[];
  /** Entities whose local copy is replaced by exactly these items. */
  replace: string[];
  /** Entities the server does not hold (deleted). */
  deletes: string[];
  /** [entity, item, version] of items whose content the client already has: only the version moves. */
  versions: [string, string, number][];
  /** [entity, item, value] this device's own copies of device-scope items (SPEC §4), applied where missing. */
  copies: [string, string, unknown][];
  final: boolean;
  /** The server's seq when the snapshot was taken; the cursor after the final part. */
  seq: number;
  /**
   * A login's fetch: [entity, content hash of the server's copy over the items this client is sent,
   * or null when the server holds none], read with the items. The client compares its own copy's
   * (SPEC §8: a copy that differs asks the user to log in again). Absent from older servers.
   */
  checks?: [string, string | null][];
}
export interface FetchMessage { type: typeof SyncType.Fetch; e: string; have: [string, number][] }
/** [counter, entity, item, base version, value] */
export type ChangeEntry = [number, string, string, number, unknown];
export interface ChangesMessage { type: typeof SyncType.Changes; list: ChangeEntry[] }
/** Ack statuses on the wire. */
export const AckStatus = { Applied: 0, Duplicate: 1, Conflict: 2, Rejected: 3 } as const;
export type AckStatusCode = (typeof AckStatus)[keyof typeof AckStatus];
/** [counter, status, version, server value (duplicate/conflict) | [code, message] (rejected) | null] */
export type AckEntry = [number, AckStatusCode, number, unknown];

/**
 * The ack entry of a rejected change: its code and why, the message cut to what the reader accepts (it
 * may quote the refused value's path or name, which the sender chose).
 */
export function rejectedAck(c: number, code: string, message: string): AckEntry {
  return [c, AckStatus.Rejected, 0, [code, clipText(message, MAX_MESSAGE_TEXT_BYTES)]];
}
export interface AckMessage { type: typeof SyncType.Ack; list: AckEntry[] }
/** [seq, entity, item, value]; item null = the entity was deleted. */
export type DeltaEntry = [number, string, string | null, unknown];
export interface DeltasMessage { type: typeof SyncType.Deltas; list: DeltaEntry[]; seq: number }
export interface ReleaseMessage { type: typeof SyncType.Release; entities: string[] }

export type SyncMessage =
  | JoinOfferMessage | JoinPlanMessage | UploadMessage | UploadAckMessage | SnapshotMessage
  | FetchMessage | ChangesMessage | AckMessage | DeltasMessage | ReleaseMessage;

const MAX_ITEMS = 64;

/** The protocol from which `changes` and `deltas` entries name their item by code. */
export const ITEM_CODES_PROTOCOL = 3;

/**
 * Item names by wire code: in a `changes` or `deltas` entry an item travels as its index here, one byte
 * instead of up to 18 (SPEC §3.7's versions decide who may: a session negotiated at ITEM_CODES_PROTOCOL
 * or later, both ways). Append-only: a code never changes meaning. An item without a code travels by name.
 */
export const ITEM_CODES: readonly string[] = [
  'language', 'accessibility', 'screen-after-login', 'home', 'personal-buttons', 'timeline', 'network',
  'job-defaults', 'shortcuts', 'previous-settings', 'address-list', 'list-order', 'auto-print', 'keychain',
  'shared-buttons',
];
const CODE_OF = new Map(ITEM_CODES.map((n, i) => [n, i]));

/**
 * The wire form of a message for a session that reads item codes: `changes` and `deltas` entries name
 * their items by code. Every other message, and every item without a code, is unchanged.
 */
export function withItemCodes(m: SyncMessage): Record<string, unknown> {
  if (m.type !== SyncType.Changes && m.type !== SyncType.Deltas) return m as unknown as Record<string, unknown>;
  const list = m.list.map((e: ChangeEntry | DeltaEntry) => {
    const code = e[2] === null ? undefined : CODE_OF.get(e[2]);
    if (code === undefined) return e;
    const out: unknown[] = e.slice();
    out[2] = code;
    return out;
  });
  return { ...m, list };
}

/**
 * Validates a decoded sync message. `itemCodes`: the session was negotiated at ITEM_CODES_PROTOCOL or
 * later, so `changes` and `deltas` entries may name items by code (turned back into names here); on an
 * older session a code is MESSAGE_INVALID.
 */
export function readSyncMessage(o: Fields, itemCodes = false): SyncMessage {
  const t = o.type as string;
  switch (o.type) {
    case SyncType.JoinOffer:
      return {
        type: SyncType.JoinOffer,
        entities: list(t, o, 'entities').map((x) => tuple(t, 'entities', x, 2, (a) => { textAt(t, 'entities', a, 0); textAt(t, 'entities', a, 1); }) as OfferEntry),
      };
    case SyncType.JoinPlan:
      return { type: SyncType.JoinPlan, upload: strList(t, o, 'upload'), replace: strList(t, o, 'replace') };
    case SyncType.Upload:
      return {
        type: SyncType.Upload,
        final: bool(t, o, 'final'),
        entities: list(t, o, 'entities').map((x) => {
          if (!isFields(x) || !isFields(x.items)) invalid(t, 'entities', 'entries must be {e, items}');
          str(t, x, 'e');
          if (Object.keys(x.items).length > MAX_ITEMS) invalid(t, 'entities', `entry has more than ${MAX_ITEMS} items`);
          for (const n of Object.keys(x.items)) strValue(t, 'entities', n, 64);
          for (const v of Object.values(x.items)) itemValue(t, 'entities', v);
          return { e: x.e as string, items: x.items };
        }),
      };
    case SyncType.UploadAck:
      return { type: SyncType.UploadAck, created: strList(t, o, 'created'), skipped: strList(t, o, 'skipped') };
    case SyncType.Snapshot:
      return {
        type: SyncType.Snapshot,
        reason: oneOf(t, o, 'reason', ['join', 'fetch', 'checksum'] as const),
        items: list(t, o, 'items', MAX_LIST_ENTRIES * 4).map((x) => tuple(t, 'items', x, 4, (a) => {
          textAt(t, 'items', a, 0);
          textAt(t, 'items', a, 1);
          intValue(t, 'items', a[2]);
          itemValue(t, 'items', a[3]);
        }) as SnapshotItem),
        replace: strList(t, o, 'replace'),
        deletes: strList(t, o, 'deletes'),
        versions: list(t, o, 'versions', MAX_LIST_ENTRIES * 16).map((x) => tuple(t, 'versions', x, 3, (a) => {
          textAt(t, 'versions', a, 0);
          textAt(t, 'versions', a, 1);
          intValue(t, 'versions', a[2]);
        }) as [string, string, number]),
        copies: o.copies === undefined ? [] : list(t, o, 'copies', MAX_LIST_ENTRIES * 4).map((x) => tuple(t, 'copies', x, 3, (a) => {
          textAt(t, 'copies', a, 0);
          textAt(t, 'copies', a, 1);
          itemValue(t, 'copies', a[2]);
        }) as [string, string, unknown]),
        final: bool(t, o, 'final'),
        seq: int(t, o, 'seq'),
        ...(o.checks === undefined ? {} : {
          checks: list(t, o, 'checks', MAX_ITEMS).map((x) => tuple(t, 'checks', x, 2, (a) => {
            textAt(t, 'checks', a, 0);
            if (a[1] !== null) strValue(t, 'checks', a[1], 64);
          }) as [string, string | null]),
        }),
      };
    case SyncType.Fetch:
      return {
        type: SyncType.Fetch,
        e: str(t, o, 'e'),
        have: list(t, o, 'have', MAX_ITEMS).map((x) => tuple(t, 'have', x, 2, (a) => { textAt(t, 'have', a, 0); intValue(t, 'have', a[1]); }) as [string, number]),
      };
    case SyncType.Changes:
      return {
        type: SyncType.Changes,
        // The entries' shape is the frame's; each value is checked where it is applied (the group store),
        // so that a bad value is that one change's rejection and the session goes on (SPEC §6).
        list: list(t, o, 'list').map((x) => tuple(t, 'list', x, 5, (a) => {
          intValue(t, 'list', a[0]);
          textAt(t, 'list', a, 1);
          itemAt(t, a, itemCodes);
          intValue(t, 'list', a[3], -1);
        }) as ChangeEntry),
      };
    case SyncType.Ack:
      return {
        type: SyncType.Ack,
        list: list(t, o, 'list').map((x) => tuple(t, 'list', x, 4, (a) => {
          intValue(t, 'list', a[0]);
          const status = intValue(t, 'list', a[1], 0, 3);
          intValue(t, 'list', a[2]);
          if (status === AckStatus.Duplicate || status === AckStatus.Conflict) itemValue(t, 'list', a[3]);
          else if (status === AckStatus.Rejected) {
            if (!Array.isArray(a[3]) || a[3].length !== 2) invalid(t, 'list', 'a rejection must be [code, message]');
            strValue(t, 'list', a[3][0], 64);
            strValue(t, 'list', a[3][1], MAX_MESSAGE_TEXT_BYTES);
          } else if (a[3] !== null) invalid(t, 'list', 'an applied change carries no value');
        }) as AckEntry),
      };
    case SyncType.Deltas:
      return {
        type: SyncType.Deltas,
        seq: int(t, o, 'seq'),
        list: list(t, o, 'list').map((x) => tuple(t, 'list', x, 4, (a) => {
          intValue(t, 'list', a[0]);
          textAt(t, 'list', a, 1);
          if (a[2] !== null) itemAt(t, a, itemCodes);
          if (a[2] !== null) itemValue(t, 'list', a[3]);
        }) as DeltaEntry),
      };
    case SyncType.Release:
      return { type: SyncType.Release, entities: strList(t, o, 'entities') };
    default:
      throw new MfpError('MESSAGE_UNKNOWN', `unknown sync message ${describeValue(o.type)}`);
  }
}

function tuple(t: string, k: string, x: unknown, n: number, check: (a: unknown[]) => void): unknown[] {
  if (!Array.isArray(x) || x.length !== n) invalid(t, k, `entries must be ${n}-tuples`);
  check(x);
  return x;
}

function textAt(t: string, field: string, a: unknown[], i: number): void {
  strValue(t, field, a[i]);
}

/** The item of a `changes`/`deltas` entry (index 2): a name, or on a session with codes a known code. */
function itemAt(t: string, a: unknown[], itemCodes: boolean): void {
  if (typeof a[2] !== 'number') return textAt(t, 'list', a, 2);
  if (!itemCodes) invalid(t, 'list', 'item codes need protocol 3 on both sides; this session names items');
  const name = Number.isInteger(a[2]) ? ITEM_CODES[a[2]] : undefined;
  if (name === undefined) invalid(t, 'list', `unknown item code ${a[2]}`);
  a[2] = name;
}

/**
 * Cuts a stream of entries into chunks of roughly CHUNK_BYTES (by a size estimate per entry) and at most
 * MAX_LIST_ENTRIES: `add` returns a chunk once it is full, so a sender can send it while reading on.
 */
export class Chunker<T> {
  #cur: T[] = [];
  #bytes = 0;
  constructor(private readonly maxBytes = CHUNK_BYTES, private readonly maxCount = MAX_LIST_ENTRIES) {}

  /** Adds an entry; returns the chunk it completed, if any (the entry starts the next one). */
  add(entry: T, size: number): T[] | undefined {
    let full: T[] | undefined;
    if (this.#cur.length > 0 && (this.#bytes + size > this.maxBytes || this.#cur.length >= this.maxCount)) {
      full = this.#cur;
      this.#cur = [];
      this.#bytes = 0;
    }
    this.#cur.push(entry);
    this.#bytes += size;
    return full;
  }

  /** The last chunk (possibly empty). */
  rest(): T[] {
    const last = this.#cur;
    this.#cur = [];
    this.#bytes = 0;
    return last;
  }
}

/** Splits entries into chunks of roughly CHUNK_BYTES, by a size estimate per entry. */
export function chunk<T>(entries: readonly T[], sizeOf: (e: T) => number, maxBytes = CHUNK_BYTES, maxCount = MAX_LIST_ENTRIES): T[][] {
  const chunker = new Chunker<T>(maxBytes, maxCount);
  const out: T[][] = [];
  for (const e of entries) {
    const full = chunker.add(e, sizeOf(e));
    if (full) out.push(full);
  }
  const last = chunker.rest();
  if (last.length > 0 || out.length === 0) out.push(last);
  return out;
}
