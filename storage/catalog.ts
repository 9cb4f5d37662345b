/**
 * The item catalog of SPEC §2: every synchronized item, in one table. Everything else (validation,
 * capability negotiation, sharing scope, defaults) reads this table and nothing else.
 *
 * Data belongs to an *entity*: a user (`u:NAME`), a user group (`g:ID`) or the device-wide shared set
 * (`d:`). An entity holds items by name; the same name may exist for two kinds (`address-list`).
 */
import { createRequire } from 'node:module';
import type { TSchema } from '@sinclair/typebox';
import { MfpError } from '../protocol/errors.js';
import { MAX_NAME_BYTES } from '../protocol/limits.js';
import { ITEM_CHECKS } from './item-checks.gen.js';

/** Which kind of entity an item belongs to. */
export type ItemKind = 'user' | 'group' | 'device';

/** One catalog row. */
export interface CatalogItem {
  readonly name: string;
  readonly kind: ItemKind;
  /** Value of the item on a machine that never had it set. */
  readonly defaultValue: unknown;
  /** Whether the administrator may make it device-specific (SPEC §4). */
  readonly scopeConfigurable: boolean;
  /** Oldest protocol version that knows this item; older peers are never sent it. */
  readonly minProtocol: number;
  /** Paths inside the value that are blanked on the server and kept per machine (send destinations). */
  readonly localPaths?: readonly (readonly string[])[];
  /**
   * The value's shape, as JSON Schema (TypeBox): a value that does not match is refused where it enters
   * the group (a local write, an import, a change the server applies). Maps are open: fields this build
   * does not know (a newer firmware's) are kept as they are, within the value's depth and size bounds.
   */
  readonly schema: TSchema;
  /** Whether a value matches `schema` (generated from it: storage/item-checks.gen.ts). */
  readonly check: (value: unknown) => boolean;
}

const SEND_DESTINATIONS = [
  ['fax', 'destinations'],
  ['scan-and-send', 'destinations'],
] as const;

/** The catalog. Order is presentation order. */
export const CATALOG: readonly CatalogItem[] = [
  { name: 'language', kind: 'user', defaultValue: { display: 'en', keyboard: 'en-US' }, scopeConfigurable: false, minProtocol: 1, ...checked('user:language') },
  { name: 'accessibility', kind: 'user', defaultValue: {}, scopeConfigurable: false, minProtocol: 1, ...checked('user:accessibility') },
  { name: 'screen-after-login', kind: 'user', defaultValue: 'home', scopeConfigurable: false, minProtocol: 1, ...checked('user:screen-after-login') },
  { name: 'home', kind: 'user', defaultValue: {}, scopeConfigurable: false, minProtocol: 1, ...checked('user:home') },
  { name: 'personal-buttons', kind: 'user', defaultValue: [], scopeConfigurable: false, minProtocol: 1, ...checked('user:personal-buttons') },
  { name: 'timeline', kind: 'user', defaultValue: [], scopeConfigurable: true, minProtocol: 1, ...checked('user:timeline') },
  { name: 'network', kind: 'user', defaultValue: {}, scopeConfigurable: false, minProtocol: 1, ...checked('user:network') },
  { name: 'job-defaults', kind: 'user', defaultValue: {}, scopeConfigurable: true, minProtocol: 1, localPaths: SEND_DESTINATIONS, ...checked('user:job-defaults') },
  { name: 'shortcuts', kind: 'user', defaultValue: [], scopeConfigurable: false, minProtocol: 2, ...checked('user:shortcuts') },
  { name: 'previous-settings', kind: 'user', defaultValue: {}, scopeConfigurable: true, minProtocol: 1, localPaths: SEND_DESTINATIONS, ...checked('user:previous-settings') },
  { name: 'address-list', kind: 'user', defaultValue: [], scopeConfigurable: false, minProtocol: 1, ...checked('user:address-list') },
  { name: 'list-order', kind: 'user', defaultValue: {}, scopeConfigurable: false, minProtocol: 1, ...checked('user:list-order') },
  { name: 'auto-print', kind: 'user', defaultValue: false, scopeConfigurable: false, minProtocol: 1, ...checked('user:auto-print') },
  // Keychain entries are keyed by a stable network-place id, so registration order never matters.
  { name: 'keychain', kind: 'user', defaultValue: {}, scopeConfigurable: false, minProtocol: 2, ...checked('user:keychain') },
  { name: 'address-list', kind: 'group', defaultValue: [], scopeConfigurable: false, minProtocol: 1, ...checked('group:address-list') },
  { name: 'shared-buttons', kind: 'device', defaultValue: [], scopeConfigurable: false, minProtocol: 1, ...checked('device:shared-buttons') },
];

/** A catalog row's schema and its checker, compiled ahead of time (storage/item-schemas.ts). */
function checked(capability: string): { schema: TSchema; check: (value: unknown) => boolean } {
  const c = ITEM_CHECKS[capability];
  if (!c) throw new Error(`storage/item-checks.gen.ts has no ${capability}: run npm run gen`);
  return c;
}

const require = createRequire(import.meta.url);

/**
 * Why a value does not match its item's schema — the item, the path inside the value (a JSON pointer,
 * `/0/email`) and what was expected — or undefined when it matches. A match is decided by the generated
 * checker alone; only a refusal loads TypeBox (its CommonJS build, synchronously) to say why.
 */
export function valueProblem(item: CatalogItem, value: unknown): string | undefined {
  if (item.check(value)) return undefined;
  const { Value } = require('@sinclair/typebox/value') as typeof import('@sinclair/typebox/value');
  const first = Value.Errors(item.schema, value).First();
  const where = first?.path ? `at ${first.path}` : 'as a whole';
  return `${item.kind} item ${item.name}: the value ${where} does not match: ${first?.message ?? 'wrong shape'}`;
}

/** Checks a value against its item's schema; INVALID_ARGUMENT naming the item and the path. */
export function checkItemValue(item: CatalogItem, value: unknown): void {
  const problem = valueProblem(item, value);
  if (problem) throw new MfpError('INVALID_ARGUMENT', problem, { item: item.name });
}

const KIND_PREFIX = { user: 'u', group: 'g', device: 'd' } as const satisfies Record<ItemKind, string>;
const PREFIX_KIND: Record<string, ItemKind> = { u: 'user', g: 'group', d: 'device' };

/** Capability string of an item, as exchanged in the hello: `user:keychain`. */
export function capabilityOf(item: CatalogItem): string {
  return `${item.kind}:${item.name}`;
}

/** The capabilities of a peer speaking `protocol`, i.e. the items it knows. */
export function capabilitiesFor(protocol: number): string[] {
  return CATALOG.filter((i) => i.minProtocol <= protocol).map(capabilityOf);
}

const BY_CAPABILITY = new Map(CATALOG.map((i) => [capabilityOf(i), i]));

/** Looks up an item by kind and name, or throws UNKNOWN_ITEM. */
export function catalogItem(kind: ItemKind, name: string): CatalogItem {
  const item = BY_CAPABILITY.get(`${kind}:${name}`);
  if (!item) throw new MfpError('UNKNOWN_ITEM', `no ${kind} item named ${JSON.stringify(String(name).slice(0, 64))}; the ${kind} items are: ${itemsOfKind(kind).map((i) => i.name).join(', ')}`, { item: name });
  return item;
}

/** Items of one kind. */
export function itemsOfKind(kind: ItemKind): CatalogItem[] {
  return CATALOG.filter((i) => i.kind === kind);
}

/** An entity reference: `u:alice`, `g:01`, `d:`. */
export type EntityKey = string;

/** Parsed entity key. */
export interface Entity {
  kind: ItemKind;
  id: string;
}

/** Checks a user name or group id: non-empty, no control characters, bounded length. */
export function checkName(id: string, what: string): string {
  // Control characters are excluded because the key layout uses \x00 as its separator.
  // eslint-disable-next-line no-control-regex
  if (typeof id !== 'string' || id.length === 0 || /[\x00-\x1f\x7f]/.test(id) || Buffer.byteLength(id) > MAX_NAME_BYTES) {
    throw new MfpError('INVALID_ARGUMENT', `${what} must be 1-${MAX_NAME_BYTES} bytes without control characters`);
  }
  return id;
}

/** The user groups whose address lists are kept: 01–50 (SPEC §2). */
export const MAX_GROUP_ID = 50;

/** A group ID as kept: 01–50, two digits ("7" is "07"); anything else is INVALID_ARGUMENT. */
export function checkGroupId(id: string): string {
  const n = /^\d{1,2}$/.test(id) ? Number(id) : NaN;
  if (!(n >= 1 && n <= MAX_GROUP_ID)) throw new MfpError('INVALID_ARGUMENT', `group ID must be 01-${MAX_GROUP_ID} (the user groups of the address book), not ${JSON.stringify(id.slice(0, 32))}`);
  return String(n).padStart(2, '0');
}

/** Builds an entity key. */
export function entityKey(kind: ItemKind, id = ''): EntityKey {
  if (kind === 'device') return 'd:';
  return kind === 'user' ? `${KIND_PREFIX.user}:${checkName(id, 'user name')}` : `${KIND_PREFIX.group}:${checkGroupId(id)}`;
}

/**
 * The kind an entity key names by its prefix, undefined for an unknown one; the rest of the key is not
 * checked (parseEntity does that). For keys already checked or stored, on the hot paths.
 */
export function kindOfKey(key: EntityKey): ItemKind | undefined {
  return key[1] === ':' ? PREFIX_KIND[key[0]!] : undefined;
}

/** Parses an entity key, or returns undefined for a malformed one. */
export function parseEntity(key: string): Entity | undefined {
  if (typeof key !== 'string' || key.length < 2 || key[1] !== ':') return undefined;
  const kind = PREFIX_KIND[key[0]!];
  if (!kind) return undefined;
  const id = key.slice(2);
  if (kind === 'device') return id === '' ? { kind, id } : undefined;
  try {
    checkName(id, 'id');
  } catch {
    return undefined;
  }
  return { kind, id };
}

/** Blanks the machine-local parts of a value (send destinations) for the group's copy. */
export function blankLocalParts(item: CatalogItem, value: unknown): unknown {
  if (!item.localPaths || !isPlainObject(value)) return value;
  let out: Record<string, unknown> = value;
  for (const path of item.localPaths) out = setPath(out, path, (cur) => (cur === undefined ? undefined : []));
  return out;
}

/** Keeps this machine's local parts (send destinations) when a group value replaces a local one. */
export function keepLocalParts(item: CatalogItem, incoming: unknown, local: unknown): unknown {
  if (!item.localPaths || !isPlainObject(incoming) || !isPlainObject(local)) return incoming;
  let out: Record<string, unknown> = incoming;
  for (const path of item.localPaths) {
    const mine = getPath(local, path);
    if (mine !== undefined) out = setPath(out, path, () => mine);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function getPath(obj: Record<string, unknown>, path: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, p)) return undefined;
    cur = cur[p];
  }
  return cur;
}

/** Copy-on-write set of a nested path; leaves the object alone where the path does not exist. */
function setPath(obj: Record<string, unknown>, path: readonly string[], f: (cur: unknown) => unknown): Record<string, unknown> {
  const [head, ...rest] = path;
  if (head === undefined || !Object.hasOwn(obj, head)) return obj;
  const child = obj[head];
  if (rest.length === 0) {
    const next = f(child);
    return next === undefined ? obj : { ...obj, [head]: next };
  }
  if (!isPlainObject(child)) return obj;
  const next = setPath(child, rest, f);
  return next === child ? obj : { ...obj, [head]: next };
}
