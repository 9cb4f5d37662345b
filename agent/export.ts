/**
 * Import / export of personalized data (SPEC §7), the parts the Agent delegates: which data an export
 * reads, and the export window that "Prepare for User Data Export" opens on a server-client. The file
 * format is storage/export-file.ts.
 *
 * While client synchronization runs, export and import are refused (SYNC_RESTRICTED), because the
 * group would overwrite what an import wrote and an export would not be the group's current data.
 * A server-client may prepare a selection: its client fetches the selected users from its own server
 * (the login path) until they are current, and for 15 minutes export and import of exactly that
 * selection are allowed. Users who log in meanwhile may overwrite the prepared data.
 */
import { MfpError } from '../protocol/errors.js';
import { parseEntity } from '../storage/catalog.js';
import { ADDRESS_LIST_KINDS, type AddressListKind, type ExportBody, type ExportCounts, type ExportEntity, type ExportHeader } from '../storage/export-file.js';
import type { Store } from '../storage/store.js';
import type { Clock, Timer } from './clock.js';

/** Most users one preparation selects. */
export const PREPARE_MAX_USERS = 500;
/** Most user groups one preparation selects. */
export const PREPARE_MAX_GROUPS = 50;
/** How long a prepared selection may be exported and imported. */
export const EXPORT_WINDOW_MS = 15 * 60_000;
/** How long a preparation waits for the selected users to be current. */
export const PREPARE_TIMEOUT_MS = 60_000;
/** The manual's words on the selection's bounds (003, Prepare for User Data Export, step 5). */
export const PREPARE_LIMIT_NOTE = 'You can select up to 500 users and 50 user groups. Users logged in from the control panel are also included.';

/**
 * Refuses a selection over the bounds (INVALID_ARGUMENT, with the manual's words). The users logged
 * in on this machine's panel count toward the 500 (manual 002: "users who are logged in via the touch
 * panel display are included in the count"), each once, whether selected or not: their data is brought
 * up to date on this machine all the same, and may overwrite the prepared data.
 */
export function checkPrepareLimits(selection: { users: readonly string[]; groups: readonly string[]; loggedIn: Iterable<string>; blank: boolean }): void {
  const selected = new Set(selection.users);
  const extra = [...new Set(selection.loggedIn)].filter((u) => !selected.has(u)).sort();
  const blank = selection.blank ? ' (a blank selection selects every user and group of the group)' : '';
  const count = selected.size + extra.length;
  if (count > PREPARE_MAX_USERS) {
    const shown = extra.slice(0, 5).join(', ') + (extra.length > 5 ? `, … (${extra.length})` : '');
    const panel = extra.length > 0 ? ` and ${extra.length} more logged in on the touch panel (${shown}): log them out or select fewer` : `${blank}: name them with --users`;
    throw new MfpError('INVALID_ARGUMENT', `${PREPARE_LIMIT_NOTE} At most ${PREPARE_MAX_USERS} users can be prepared at once; ${selected.size} are selected${panel}`);
  }
  if (new Set(selection.groups).size > PREPARE_MAX_GROUPS) {
    throw new MfpError('INVALID_ARGUMENT', `${PREPARE_LIMIT_NOTE} At most ${PREPARE_MAX_GROUPS} user groups can be prepared at once; ${new Set(selection.groups).size} are selected${blank}: name them with --groups`);
  }
}

/** What the prepare command tells the technician. */
export const PREPARE_WARNING = 'users who log in on any machine of the group during the window may overwrite the prepared data';

/** Users and user groups, by id. */
export interface Selection {
  users: ReadonlySet<string>;
  groups: ReadonlySet<string>;
}

/** An open export window: a selection, until `endsAt`. Its timer is on the injected clock. */
export class ExportWindow implements Selection {
  readonly users: ReadonlySet<string>;
  readonly groups: ReadonlySet<string>;
  readonly openedAt: number;
  readonly endsAt: number;
  readonly #clock: Clock;
  #timer: Timer | undefined;

  /** Opens a window; `onExpire` runs once when it ends by time (not when closed). */
  constructor(clock: Clock, selection: { users: Iterable<string>; groups: Iterable<string> }, onExpire: (w: ExportWindow) => void) {
    this.#clock = clock;
    this.users = new Set(selection.users);
    this.groups = new Set(selection.groups);
    this.openedAt = clock.now();
    this.endsAt = this.openedAt + EXPORT_WINDOW_MS;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      onExpire(this);
    }, EXPORT_WINDOW_MS);
  }

  /** Whether the window is still open (also checked by time, should the timer be late). */
  get open(): boolean {
    return this.#timer !== undefined && this.#clock.now() < this.endsAt;
  }

  /** Closes the window early and cancels its timer. */
  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** The selection as the shell shows it. */
  describe(): { users: string[]; groups: string[]; openedAt: number; endsAt: number } {
    return { users: [...this.users], groups: [...this.groups], openedAt: this.openedAt, endsAt: this.endsAt };
  }
}

/**
 * Reads what an export carries from a store: every user, user group and the Shared buttons — or, with
 * a selection, only its users and groups. Entities are read one by one (a change committed meanwhile
 * may or may not be in the file) in key order, so equal stores give equal bodies.
 */
export async function readExportBody(store: Store, selection?: Selection): Promise<ExportBody> {
  const body: ExportBody = { users: [], groups: [], shared: null };
  for (const e of store.entities().sort()) {
    const entity = parseEntity(e);
    if (!entity) continue;
    if (selection && (entity.kind === 'device' || !(entity.kind === 'user' ? selection.users : selection.groups).has(entity.id))) continue;
    const items: Record<string, unknown> = {};
    for (const [n, rec] of await store.readEntity(e)) items[n] = rec.val;
    if (Object.keys(items).length === 0) continue;
    if (entity.kind === 'device') body.shared = { items };
    else (entity.kind === 'user' ? body.users : body.groups).push({ id: entity.id, items } satisfies ExportEntity);
  }
  return body;
}

/** The manual's names of the two address-list files ([Address List] on the export screen). */
export const ADDRESS_LIST_NAMES: Record<AddressListKind, string> = {
  personal: 'Personal Address List (All)',
  groups: 'User Group Address List (All)',
};

/** Checks an `addressList` option: `personal`, `groups` or absent (the batch file). */
export function checkAddressList(kind: unknown): AddressListKind | undefined {
  if (kind === undefined) return undefined;
  if (typeof kind === 'string' && (ADDRESS_LIST_KINDS as readonly string[]).includes(kind)) return kind as AddressListKind;
  throw new MfpError('INVALID_ARGUMENT', `--address-list takes personal ([${ADDRESS_LIST_NAMES.personal}]) or groups ([${ADDRESS_LIST_NAMES.groups}]), not ${JSON.stringify(kind)}`);
}

/**
 * The address lists of one kind out of a body (manual: "export personal address lists or user group
 * address lists as individual files"): users' or user groups' `address-list` items only; entities
 * without one are left out, and the Shared buttons never go in.
 */
export function addressListsOf(body: ExportBody, kind: AddressListKind): ExportBody {
  const only = (xs: ExportEntity[]) =>
    xs.filter((x) => x.items['address-list'] !== undefined).map((x) => ({ id: x.id, items: { 'address-list': x.items['address-list'] } }));
  return kind === 'personal' ? { users: only(body.users), groups: [], shared: null } : { users: [], groups: only(body.groups), shared: null };
}

/** Refuses to import a file that is not the address-list file asked for (IMPORT_INVALID). */
export function checkImportKind(header: ExportHeader, kind: AddressListKind | undefined): void {
  if (kind === undefined || header.addressList === kind) return;
  const is = header.addressList ? `a [${ADDRESS_LIST_NAMES[header.addressList]}] file` : 'a batch file of personalized data';
  throw new MfpError('IMPORT_INVALID', `not a [${ADDRESS_LIST_NAMES[kind]}] file: it is ${is}; nothing was imported`);
}

/** The users and groups of a body outside a selection (an import inside a window may not touch them). */
export function outside(body: ExportBody, selection: Selection): string[] {
  return [
    ...body.users.filter((u) => !selection.users.has(u.id)).map((u) => `user ${u.id}`),
    ...body.groups.filter((g) => !selection.groups.has(g.id)).map((g) => `group ${g.id}`),
    ...(body.shared ? ['the Shared buttons'] : []),
  ];
}

/** What `export --out` answers. */
export interface ExportResult {
  path: string;
  bytes: number;
  createdAt: number;
  selection: 'all' | 'prepared';
  /** An address-list file: which kind (absent: the batch file). */
  addressList?: AddressListKind;
  counts: ExportCounts;
  /** The export window the file was made in (a server-client's prepared selection). */
  window?: ReturnType<ExportWindow['describe']>;
}

/** What `import` answers. */
export interface ImportResult {
  path: string;
  source: ExportHeader['source'];
  createdAt: number;
  software: string;
  /** The file was an address-list file of this kind. */
  addressList?: AddressListKind;
  counts: ExportCounts;
  /** Items written. */
  applied: number;
  /** Items a change from another machine overtook while the import was applied (on a server: kept in the conflict log). */
  conflicts: number;
}

/** What `export prepare` answers. */
export interface PrepareResult {
  users: string[];
  groups: string[];
  openedAt: number;
  endsAt: number;
  warning: string;
}


/** Whether a client's destination is this machine's own server (a server-client's client). */
export function isOwnServer(server: { host: string; port: number }, port: number): boolean {
  return ['localhost', '127.0.0.1', '::1'].includes(server.host.toLowerCase()) && server.port === port;
}
