/**
 * The agent: one machine's mfpsync. This class is the library API firmware embeds (read and write a
 * user's items, login/logout, typed events) and the composition root of the services the operations
 * act on (agent/services/): roles, power, users, export, devices, sharing, replication, backup and
 * status. Its methods are a line each; the logic is in the services.
 */
import { EventEmitter } from 'node:events';
import type { ItemKind } from '../storage/catalog.js';
import type { AddressListKind } from '../storage/export-file.js';
import type { GroupStore } from '../storage/group-store.js';
import { LevelKv } from '../storage/level-kv.js';
import { LocalStore } from '../storage/local-store.js';
import type { ConflictEntry, LogLevel, SyncLogEntry } from '../storage/store.js';
import type { ServerAddress, SyncClient, SyncClientOptions } from './client.js';
import { systemClock, type Clock } from './clock.js';
import { dataPaths, readConfig, type AgentConfig, type Role } from './config.js';
import type { AgentEvents } from './events.js';
import type { ExportResult, ExportWindow, ImportResult, PrepareResult } from './export.js';
import type { Identity } from './identity.js';
import { createLogger, SyncLog, type Logger } from './logger.js';
import { LoginLimiter } from './rate-limit.js';
import type { ReplicationStatus, StopResult } from './replicator.js';
import { BackupService, type BackupResult, type RecoverResult, type RestoreResult } from './services/backup.js';
import { DevicesService, type DeviceEntry } from './services/devices.js';
import { ExportService } from './services/export.js';
import { PowerService, type PowerStatus } from './services/power.js';
import { ReplicationService, type ReplicaStatus } from './services/replication.js';
import { RoleService, type RoleOptions } from './services/roles.js';
import { Runtime, type AgentOptions, type ApplyDuringLogin, type RoleState } from './services/runtime.js';
import { SharingService, type SharingState } from './services/sharing.js';
import { StatusService } from './services/status.js';
import { UsersService, type DeleteTargets, type ItemsResult, type SetItemResult, type UserEntry } from './services/users.js';

export { parseAddress } from './address.js';
export { isInitialized, ROLES, type Role } from './config.js';
export type { AgentEvents, DeepSleepEvent, DeviceStateEvent, ItemChangedEvent, JoinProgressEvent, SyncStateEvent } from './events.js';
export type { DeviceEntry } from './services/devices.js';
export type { PowerClientEntry, PowerStatus } from './services/power.js';
export type { AgentOptions } from './services/runtime.js';
export type { UserEntry } from './services/users.js';

/** The services of one agent: what each administrator operation acts on. */
export interface AgentServices {
  roles: RoleService;
  power: PowerService;
  users: UsersService;
  export: ExportService;
  devices: DevicesService;
  sharing: SharingService;
  replication: ReplicationService;
  backup: BackupService;
  status: StatusService;
}

/** A machine's mfpsync agent. */
export class Agent extends EventEmitter<AgentEvents> {
  readonly dataDir: string;
  readonly identity: Identity;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly log: SyncLog;
  readonly local: LocalStore;
  /** The services the operations (agent/operations.ts) act on. */
  readonly services: AgentServices;
  readonly #rt: Runtime;
  readonly #logins: LoginLimiter;

  private constructor(options: AgentOptions, config: AgentConfig, identity: Identity, local: LocalStore, logger: Logger, clock: Clock, role: RoleState) {
    super();
    this.dataDir = options.dataDir;
    this.identity = identity;
    this.local = local;
    this.logger = logger;
    this.clock = clock;
    this.log = new SyncLog(logger, clock);
    this.log.attach(local);
    const rt = new Runtime({ options, config, identity, clock, log: this.log, local, events: this });
    rt.roleState = role;
    this.#rt = rt;
    // Failed administrator logins: one limit for every surface that checks the password (server, replica).
    const logins = new LoginLimiter({ store: local, clock, log: this.log });
    this.#logins = logins;
    const power = new PowerService(rt);
    const users = new UsersService(rt);
    const exports = new ExportService(rt, users);
    const replication = new ReplicationService(rt, logins);
    const roles = new RoleService(rt, { logins, power, users, exports, replication });
    this.services = {
      roles,
      power,
      users,
      export: exports,
      devices: new DevicesService(rt),
      sharing: new SharingService(rt, () => roles.restartOwnClient()),
      replication,
      backup: new BackupService(rt, roles, replication),
      status: new StatusService(rt),
    };
  }

  /** Opens an initialized data directory. The role it had is resumed by start(). */
  static async open(options: AgentOptions): Promise<Agent> {
    const { config, identity } = readConfig(options.dataDir);
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? createLogger();
    const local = await LocalStore.open({
      kv: new LevelKv(dataPaths(options.dataDir).local),
      durability: options.durability,
      now: () => clock.now(),
      maxUsers: options.maxUsers,
    });
    const role = (await local.getMeta<RoleState>('role')) ?? { role: 'standalone' };
    const agent = new Agent(options, config, identity, local, logger.child({ device: identity.deviceId }), clock, role);
    await agent.services.users.loadApplyDuringLogin(options.applyDuringLogin);
    return agent;
  }

  /** [Allow custom settings to be applied during operation] (SPEC §3.5): read, or set and persist. */
  applyDuringLogin(value?: ApplyDuringLogin): Promise<{ applyDuringLogin: ApplyDuringLogin }> {
    return this.services.users.applyDuringLogin(value);
  }

  /** The device backup slot's folder. */
  get backupDir(): string {
    return this.#rt.backupDir;
  }

  /** The port the server listens on (the bound one, once listening). */
  get port(): number {
    return this.#rt.port;
  }

  /** The current role. */
  get role(): Role {
    return this.#rt.role;
  }

  /** The group store, on a server. */
  get group(): GroupStore | undefined {
    return this.#rt.group;
  }

  /** The client part, on a client or server-client. */
  get client(): SyncClient | undefined {
    return this.#rt.client;
  }

  /** Starts the persisted role's components. */
  start(): Promise<void> {
    return this.services.roles.start();
  }

  /** Stops every component and closes the stores. */
  async close(): Promise<void> {
    if (this.#rt.closed) return;
    this.#rt.closed = true;
    await this.services.roles.close();
    await this.local.close();
  }

  // ---- power (SPEC §5) -------------------------------------------------------------------------------

  /** The machine goes to sleep (see PowerService.sleep). */
  sleep(): Promise<PowerStatus> {
    return this.services.power.sleep();
  }

  /** The machine woke up: its client part reconnects now and resumes by cursor. */
  wake(): Promise<PowerStatus> {
    return this.services.power.wake();
  }

  /** Deep sleep and heartbeat state: for a server, its clients; for a client, its own session. */
  power(): PowerStatus {
    return this.services.power.status();
  }

  // ---- roles (SPEC §1) -------------------------------------------------------------------------------

  /** Switches role (see RoleService.set) and returns the status after it. */
  async setRole(role: Role, options: RoleOptions = {}): Promise<ReturnType<Agent['status']>> {
    await this.services.roles.set(role, options);
    return this.status();
  }

  /** A client of `address` with this machine's identity, store and settings, not started (tools and tests). */
  createClient(address: ServerAddress, callbacks: Pick<SyncClientOptions, 'onRemote' | 'onState' | 'onAcked' | 'onEvicted' | 'onJoinProgress' | 'onLoginAgain'> = {}): Promise<SyncClient> {
    return this.services.roles.createClient(address, callbacks);
  }

  // ---- users and their data (SPEC §3, §8) ------------------------------------------------------------

  /** A user logged in on this machine: their current data is fetched from the server (SPEC §3.2). */
  login(user: string): Promise<void> {
    return this.services.users.login(user);
  }

  /** A user logged out. */
  logout(user: string): Promise<void> {
    return this.services.users.logout(user);
  }

  /** Reads items of an entity: one (its value) or all (catalog defaults where unset). */
  getItems(kind: ItemKind, id: string, item?: string): Promise<ItemsResult> {
    return this.services.users.getItems(kind, id, item);
  }

  /** Writes an item on this machine; on a client it is queued durably and sent to the server. */
  setItem(kind: ItemKind, id: string, item: string, value: unknown): Promise<SetItemResult> {
    return this.services.users.setItem(kind, id, item, value);
  }

  /** Users and user groups, filtered by partial, case-insensitive match (blank lists all). */
  listUsers(search = '', options: { checksums?: boolean; local?: boolean } = {}): UserEntry[] {
    return this.services.users.list(search, options);
  }

  /** Delete User Data (SPEC §8). */
  deleteUsers(targets: DeleteTargets): Promise<{ deleted: string[] }> {
    return this.services.users.delete(targets);
  }

  // ---- import / export (SPEC §7) -------------------------------------------------------------------

  /** The open export window of a server-client (its prepared selection and end), if any. */
  get exportWindow(): ExportWindow | undefined {
    return this.services.export.window;
  }

  /** Exports personalized data to one file (see ExportService.exportData). */
  exportData(path: string, options: { addressList?: AddressListKind } = {}): Promise<ExportResult> {
    return this.services.export.exportData(path, options);
  }

  /** Imports an export file (see ExportService.importData). */
  importData(path: string, options: { addressList?: AddressListKind } = {}): Promise<ImportResult> {
    return this.services.export.importData(path, options);
  }

  /** Prepare for User Data Export (see ExportService.prepare). */
  prepareExport(selection: { users?: readonly string[]; groups?: readonly string[] } = {}): Promise<PrepareResult> {
    return this.services.export.prepare(selection);
  }

  // ---- devices and sharing (SPEC §4, §8) ---------------------------------------------------------------

  /** Confirm Device Information (SPEC §8), filtered by partial match on id, name, serial or location. */
  listDevices(filter = ''): DeviceEntry[] {
    return this.services.devices.list(filter);
  }

  /** Removes a client from the group: its slot is freed and it is refused until re-admitted. */
  removeDevice(id: string): Promise<{ removed: string }> {
    return this.services.devices.remove(id);
  }

  /** Data Sharing Details (SPEC §4): the scope of each scope-configurable item. */
  sharingList(): Promise<SharingState> {
    return this.services.sharing.list();
  }

  /** Sets an item's scope (SPEC §4), on a server with no client connected. */
  setSharing(item: string, scope: string): Promise<SharingState & { reset: number }> {
    return this.services.sharing.set(item, scope);
  }

  // ---- logs and status -------------------------------------------------------------------------------

  /** The conflict log: this machine's, and the group's on a server. */
  conflicts(): Promise<(ConflictEntry & { log: 'local' | 'group' })[]> {
    return this.services.status.conflicts();
  }

  /** The sync log at or above a level. */
  syncLog(level: LogLevel = 'info'): Promise<SyncLogEntry[]> {
    return this.services.status.syncLog(level);
  }

  /**
   * Checks the administrator account's password under the agent's one limiter of administrator logins
   * (the Remote UI's login); throws AUTH_LOCKED or AUTH_INCORRECT.
   */
  checkAdminPassword(attempt: { address: string; remote: string; user: string; password: string }): Promise<void> {
    return this.#logins.password({ admin: this.#rt.config.admin, ...attempt });
  }

  /** Set by the Remote UI while it serves: its port and certificate fingerprint, which status() shows. */
  get remoteUi(): Runtime['remoteUi'] {
    return this.#rt.remoteUi;
  }

  set remoteUi(ui: Runtime['remoteUi']) {
    this.#rt.remoteUi = ui;
  }

  /** A one-look summary of this machine, with its health (green, yellow, red) and why. */
  status(): ReturnType<StatusService['status']> {
    return this.services.status.status();
  }

  // ---- replication, backup and restore (SPEC §9, §10) -------------------------------------------------

  /** `replication start` (see ReplicationService.start). */
  replicationStart(options: { to: string; user: string; password: string; intervalMinutes?: number; threshold?: number }): Promise<ReplicationStatus> {
    return this.services.replication.start(options);
  }

  /** `replication stop`: stops, forgets the destination and releases it (SPEC §9). */
  replicationStop(): Promise<StopResult> {
    return this.services.replication.stop();
  }

  /** `replication status`: a server's schedule and last run, or what a replica last received. */
  replicationStatus(): Promise<ReplicationStatus | ReplicaStatus> {
    return this.services.replication.status();
  }

  /** Whether a replication run is executing. */
  get replicating(): boolean {
    return this.services.replication.replicating;
  }

  /** `backup --to device|smb://…|DIR` (see BackupService.backup). */
  backup(options: { to: string; user?: string; password?: string }): Promise<BackupResult> {
    return this.services.backup.backup(options);
  }

  /** `restore --from device|smb://…` (see BackupService.restore). */
  restore(options: { from: string; user?: string; password?: string; shareUser?: string; sharePassword?: string }): Promise<RestoreResult> {
    return this.services.backup.restore(options);
  }

  /** `backup log`: every backup, restore and recovery, oldest first. */
  backupLogList(): ReturnType<BackupService['logList']> {
    return this.services.backup.logList();
  }

  /** `recover --from` (see BackupService.recover). */
  recover(options: { from: string; user: string; password: string; confirm: boolean }): Promise<RecoverResult> {
    return this.services.backup.recover(options);
  }
}
