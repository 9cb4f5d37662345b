/**
 * The key layout, built here and nowhere else. Every key is `TAG \x00 part [\x00 part]`; names never
 * contain \x00 (catalog.checkName), so a range of one parent is `[parent \x00, parent \x01)` — never a
 * bare prefix, which would let `u:al` match `u:alice`.
 */
import type { KvRange } from './kv.js';

const SEP = '\x00';
const END = '\x01';

/** Fixed-width hex so that sequence numbers sort numerically as strings (48 bits is plenty). */
export function seqPart(n: number): string {
  return n.toString(16).padStart(12, '0');
}

/** Parses a seqPart back. */
export function parseSeqPart(s: string): number {
  return parseInt(s, 16);
}

function key(...parts: string[]): string {
  return parts.join(SEP);
}

function children(...parent: string[]): KvRange {
  const p = key(...parent);
  return { gt: p + SEP, lt: p + END };
}

/** The key layout of a store. */
export const Keys = {
  /** Singletons: seq, epoch, identity, role, cursor, … */
  meta: (name: string) => key('M', name),
  /** Where earlier builds kept the index snapshot (store.ts); machine-local, never part of an image. */
  indexSnapshot: () => key('M', 'index-snapshot'),
  /** An item of an entity: `I\0u:alice\0job-defaults`. */
  item: (entity: string, item: string) => key('I', entity, item),
  itemsOf: (entity: string) => children('I', entity),
  allItems: () => children('I'),
  /** The items of every entity from `first` to `last`, both included. */
  itemsBetween: (first: string, last: string): KvRange => ({ gt: key('I', first) + SEP, lt: key('I', last) + END }),
  /** Change log entry by sequence number. */
  log: (seq: number) => key('L', seqPart(seq)),
  logAfter: (seq: number): KvRange => ({ gt: key('L', seqPart(seq)), lt: key('L') + END }),
  /** Per-user bookkeeping (last use) for the 1,000-user bound. */
  user: (name: string) => key('U', name),
  allUsers: () => children('U'),
  /** A machine of the group (server side). */
  device: (id: string) => key('D', id),
  allDevices: () => children('D'),
  /** Marker of a removed device: refused until re-admitted. */
  removed: (id: string) => key('R', id),
  /** Failed administrator logins of one source address or account (`src:ADDR`, `acct:USER`). */
  authFailures: (subject: string) => key('A', subject),
  /** A device's own copy of a device-scope item of a user (SPEC §4): `P\0device\0user\0item`. */
  copy: (device: string, user: string, item: string) => key('P', device, user, item),
  copiesOf: (device: string) => children('P', device),
  allCopies: () => children('P'),
  /** Which entities a client holds (server side). */
  hold: (device: string, entity: string) => key('H', device, entity),
  holdsOf: (device: string) => children('H', device),
  allHolds: () => children('H'),
  /** Outbound change queue of a client, by change counter. */
  queue: (counter: number) => key('Q', seqPart(counter)),
  allQueue: () => children('Q'),
  /** Conflict log, by time then a tie-breaker. */
  conflict: (at: number, n: number) => key('C', seqPart(at), seqPart(n)),
  allConflicts: () => children('C'),
  /** Sync log, by time then a tie-breaker. */
  syncLog: (at: number, n: number) => key('S', seqPart(at), seqPart(n)),
  allSyncLog: () => children('S'),
  /** Splits a key into its parts (tag first). */
  split: (k: string) => k.split(SEP),
} as const;
