/**
 * Import / export of personalized data (SPEC §7) and Prepare for User Data Export: which store they act
 * on for the role, and the export window a server-client opens. The pieces they use (the selection's
 * bounds, the window, the body an export reads) are agent/export.ts; the file format is
 * storage/export-file.ts.
 */
import { MfpError } from '../../protocol/errors.js';
import { catalogItem, checkName, entityKey, parseEntity, type EntityKey } from '../../storage/catalog.js';
import { changesOf, countsOf, encodeExportFile, readExportFile, writeExportFile, type AddressListKind } from '../../storage/export-file.js';
import type { GroupStore } from '../../storage/group-store.js';
import type { Store } from '../../storage/store.js';
import type { SyncClient } from '../client.js';
import { SOFTWARE_VERSION } from '../config.js';
import { describeCounts } from '../describe.js';
import {
  ADDRESS_LIST_NAMES, addressListsOf, checkAddressList, checkImportKind, checkPrepareLimits, ExportWindow, isOwnServer, outside,
  PREPARE_TIMEOUT_MS, PREPARE_WARNING, readExportBody, type ExportResult, type ImportResult, type PrepareResult,
} from '../export.js';
import type { Runtime } from './runtime.js';
import type { UsersService } from './users.js';

/** Export, import and the export window. */
export class ExportService {
  readonly #rt: Runtime;
  readonly #users: UsersService;
  #window: ExportWindow | undefined;

  constructor(rt: Runtime, users: UsersService) {
    this.#rt = rt;
    this.#users = users;
  }

  /** The open export window of a server-client (its prepared selection and end), if any. */
  get window(): ExportWindow | undefined {
    return this.#window?.open ? this.#window : undefined;
  }

  /** Closes the window (a prepared selection belongs to the server-client that prepared it). */
  closeWindow(): void {
    this.#window?.close();
    this.#window = undefined;
  }

  /**
   * Where export and import act, or why they are refused: the group's copy on a server, this machine's
   * store on a standalone machine; while client synchronization runs (client, server-client) only
   * inside an export window, on its selection.
   */
  #access(what: 'export' | 'import'): { store: Store; window?: ExportWindow } {
    const rt = this.#rt;
    const role = rt.role;
    if (role === 'replica') throw new MfpError('WRONG_ROLE', `${what} is not available on a replica`);
    if (role === 'client' || role === 'server-client') {
      const window = this.window;
      if (window) return { store: rt.local, window };
      const how = role === 'server-client'
        ? 'prepare the users first (`mfpsync export prepare`): that opens a 15-minute window for them'
        : 'export or import on the server, or switch this machine to standalone first';
      throw new MfpError('SYNC_RESTRICTED', `${what} of synchronized data is refused while client synchronization runs (role ${role}): ${how}`);
    }
    return { store: rt.dataStore() };
  }

  /**
   * Exports personalized data (users' items, user groups' address lists, Shared buttons) to one file,
   * written atomically: the group's copy on a server, this machine's elsewhere; inside an export window
   * only its selection. Refused with SYNC_RESTRICTED while client synchronization runs.
   */
  async exportData(path: string, options: { addressList?: AddressListKind } = {}): Promise<ExportResult> {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
    const rt = this.#rt;
    const addressList = checkAddressList(options.addressList);
    const { store, window } = this.#access('export');
    const createdAt = rt.clock.now();
    const all = await readExportBody(store, window);
    const body = addressList ? addressListsOf(all, addressList) : all;
    const selection = window ? ('prepared' as const) : ('all' as const);
    const source = { deviceId: rt.identity.deviceId, name: rt.config.name, role: rt.role };
    const bytes = encodeExportFile({ software: SOFTWARE_VERSION, createdAt, source, selection, ...(addressList ? { addressList } : {}) }, body);
    await writeExportFile(path, bytes);
    const counts = countsOf(body);
    rt.log.info('EXPORTED', `exported ${addressList ? `[${ADDRESS_LIST_NAMES[addressList]}]: ` : ''}${describeCounts(counts)} to ${path}`);
    return { path, bytes: bytes.length, createdAt, selection, ...(addressList ? { addressList } : {}), counts, ...(window ? { window: window.describe() } : {}) };
  }

  /**
   * Imports an export file. It is verified whole first (IMPORT_INVALID, nothing applied); then each of
   * its items replaces the item of the same name (items the file lacks are kept) — on a server as
   * administrator changes of the group's copy, which reach the clients holding the users; inside an
   * export window only for the prepared users and groups. Refused with SYNC_RESTRICTED while client
   * synchronization runs.
   */
  async importData(path: string, options: { addressList?: AddressListKind } = {}): Promise<ImportResult> {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
    const rt = this.#rt;
    const addressList = checkAddressList(options.addressList);
    // Checked before the file is read and again after: the role or the window may change meanwhile.
    this.#access('import');
    const file = await readExportFile(path);
    checkImportKind(file.header, addressList);
    const { store, window } = this.#access('import');
    if (window) {
      const others = outside(file.body, window);
      if (others.length > 0) {
        const shown = others.slice(0, 5).join(', ') + (others.length > 5 ? ` and ${others.length - 5} more` : '');
        throw new MfpError('SYNC_RESTRICTED', `the export window allows only the prepared users and groups; the file also holds ${shown}: prepare them too, or import a file of the prepared selection`);
      }
    }
    const changes = changesOf(file.body);
    const applied: typeof changes = [];
    let conflicts = 0;
    const group = rt.group;
    if (group && store === group) {
      const { outcomes } = await group.applyChanges(
        `admin:${rt.identity.deviceId}`,
        changes.map((ch) => ({ c: 0, ...ch, base: group.itemStates(ch.e)?.get(ch.n)?.v ?? 0 })),
      );
      outcomes.forEach((o, i) => {
        if (o.status === 'applied') applied.push(changes[i]!);
        else if (o.status === 'conflict') conflicts++;
        else if (o.status === 'rejected') rt.log.error(o.code, `import: ${changes[i]!.e} ${changes[i]!.n} refused: ${o.message}`);
      });
    } else {
      const role = rt.role;
      const { evicted } = await rt.local.importLocal(rt.identity.deviceId, changes, { queue: role === 'client' || role === 'server-client' });
      applied.push(...changes);
      this.#users.evicted(evicted);
    }
    const { header } = file;
    rt.log.info('IMPORTED', `imported ${describeCounts(header.counts)} from ${path} (exported by ${header.source.name} ${header.source.deviceId} at ${new Date(header.createdAt).toISOString()})`);
    for (const ch of applied) {
      const p = parseEntity(ch.e)!;
      rt.events.emit('item-changed', { kind: p.kind, id: p.id, item: ch.n, source: 'local', applyNow: true });
    }
    return { path, source: header.source, createdAt: header.createdAt, software: header.software, ...(header.addressList ? { addressList: header.addressList } : {}), counts: header.counts, applied: applied.length, conflicts };
  }

  /**
   * Prepare for User Data Export (SPEC §7), on a server-client whose client points at its own server:
   * selects up to 500 users and 50 user groups of the group (none named: all), fetches them through the
   * client until they are current, and opens a 15-minute window in which they may be exported and
   * imported although client synchronization runs. A second preparation replaces the window.
   */
  async prepare(selection: { users?: readonly string[]; groups?: readonly string[] } = {}): Promise<PrepareResult> {
    const rt = this.#rt;
    const group = rt.group;
    const client = rt.client;
    if (rt.role !== 'server-client' || !group || !client || !isOwnServer(client.server, rt.port)) {
      throw new MfpError('WRONG_ROLE', `export prepare is for a server-client whose client points at its own server (localhost and the port it serves); this machine is ${rt.role}`);
    }
    const all = (selection.users ?? []).length === 0 && (selection.groups ?? []).length === 0;
    const listed = all ? this.#users.list('') : [];
    const users = all ? listed.filter((u) => u.kind === 'user').map((u) => u.id) : [...new Set(selection.users ?? [])];
    const groups = all ? listed.filter((u) => u.kind === 'group').map((u) => u.id) : [...new Set(selection.groups ?? [])];
    users.forEach((u) => checkName(u, 'user name'));
    groups.forEach((g) => checkName(g, 'group id'));
    checkPrepareLimits({ users, groups, loggedIn: rt.loggedIn, blank: all });
    const known = new Set(group.users().map((u) => u.name));
    const missing = [
      ...users.filter((u) => !known.has(u) && !group.hasEntity(`u:${u}`)).map((u) => `user ${u}`),
      ...groups.filter((g) => !group.hasEntity(`g:${g}`)).map((g) => `group ${g}`),
    ];
    if (missing.length > 0) throw new MfpError('NOT_FOUND', `not in the group: ${missing.join(', ')}`);
    await this.#bringUpToDate(group, client, users, groups);
    this.#window?.close();
    const window = new ExportWindow(rt.clock, { users, groups }, (w) => {
      if (this.#window !== w) return;
      this.#window = undefined;
      rt.log.info('EXPORT_WINDOW_CLOSED', `the export window for ${w.users.size} users and ${w.groups.size} user groups ended`);
    });
    this.#window = window;
    rt.log.info('EXPORT_PREPARED', `${users.length} users and ${groups.length} user groups may be exported and imported until ${new Date(window.endsAt).toISOString()}; ${PREPARE_WARNING}`);
    return { ...window.describe(), warning: PREPARE_WARNING };
  }

  /**
   * Fetches users through the client's login path (by version; from then on the client holds them) and
   * waits until every selected user and group has, on this machine, the versions the server holds and
   * no change of theirs waits in the queue. Group address lists reach every client by themselves.
   */
  async #bringUpToDate(group: GroupStore, client: SyncClient, users: readonly string[], groups: readonly string[]): Promise<void> {
    const rt = this.#rt;
    const events = rt.events;
    const entities: EntityKey[] = [...users.map((u) => entityKey('user', u)), ...groups.map((g) => entityKey('group', g))];
    // Items newer than the protocol this machine's client speaks never reach it: they are not waited for.
    const protocol = rt.protocol;
    const isCurrent = (e: EntityKey) => {
      if (rt.local.isQueued(e)) return false;
      const mine = rt.local.itemStates(e);
      const kind = parseEntity(e)!.kind;
      return [...(group.itemStates(e) ?? [])].every(([n, s]) => mine?.get(n)?.v === s.v || catalogItem(kind, n).minProtocol > protocol);
    };
    const current = () => entities.every(isCurrent);
    const stuck = () => (client.state === 'refused' || client.state === 'stopped'
      ? new MfpError('PREPARE_INCOMPLETE', `this machine's client is ${client.state}${client.lastError ? ` (${client.lastError.code}: ${client.lastError.message})` : ''}; nothing was prepared`)
      : undefined);
    const early = stuck();
    if (early) throw early;
    for (const u of users) client.login(u);
    if (current()) return;
    await new Promise<void>((resolve, reject) => {
      const finish = (err?: MfpError) => {
        timer.cancel();
        events.off('item-changed', check);
        events.off('changes-acked', check);
        events.off('sync-state', check);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        const err = stuck();
        if (err || current()) finish(err);
      };
      const timer = rt.clock.setTimeout(() => {
        const late = entities.filter((e) => !isCurrent(e)).map((e) => e.slice(2));
        finish(new MfpError('PREPARE_INCOMPLETE', `not current after ${PREPARE_TIMEOUT_MS / 1000} s (client ${client.state}): ${late.slice(0, 5).join(', ')}${late.length > 5 ? ` and ${late.length - 5} more` : ''}; nothing was prepared`));
      }, PREPARE_TIMEOUT_MS);
      events.on('item-changed', check);
      events.on('changes-acked', check);
      events.on('sync-state', check);
    });
  }
}
