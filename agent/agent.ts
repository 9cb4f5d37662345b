/**
 * The agent: one machine's mfpsync. It owns the local store, and — by role — the group store and the
 * server, and/or a client of a server. This class is the library API firmware embeds (read and write
 * a user's items, login/logout, typed events) and what the control socket dispatches to.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { MfpError } from '../protocol/errors.js';
import { DEFAULT_HEARTBEAT_SECONDS, DEFAULT_PORT, MISSED_HEARTBEATS, PROTOCOL_VERSION } from '../protocol/limits.js';
import { CATALOG, catalogItem, checkName, entityKey, itemsOfKind, parseEntity, type EntityKey, type ItemKind } from '../storage/catalog.js';
import { BACKUP_FORMAT, decodeBackupFile, encodeBackupFile } from '../storage/backup-file.js';
import { changesOf, countsOf, encodeExportFile, readExportFile, writeExportFile, type AddressListKind } from '../storage/export-file.js';
import { imageEntries, installImage } from '../storage/image.js';
import { Keys } from '../storage/keys.js';
import { decodeRecord, encodeRecord } from '../storage/records.js';
import { assertValidChange, GroupStore } from '../storage/group-store.js';
import { LevelKv } from '../storage/level-kv.js';
import { LocalStore, type RemoteItem } from '../storage/local-store.js';
import type { ConflictEntry, Durability, ItemRecord, LogLevel, Store, SyncLogEntry } from '../storage/store.js';
import { PLAUSIBLE_SINCE, systemClock, type Clock } from './clock.js';
import {
  deleteLocalCopies, formatAddress, loginAgainEvent, readPin, SyncClient, type AckSummary, type LoginAgainEvent, type ClientState, type JoinProgress, type ServerAddress, type SyncClientOptions,
} from './client.js';
import { describeCounts } from './describe.js';
import { dataPaths, readConfig, ROLES, SOFTWARE_VERSION, type AgentConfig, type Role } from './config.js';

export { isInitialized, ROLES, type Role } from './config.js';
import {
  ADDRESS_LIST_NAMES, addressListsOf, checkAddressList, checkImportKind, checkPrepareLimits, ExportWindow, isOwnServer, outside,
  PREPARE_TIMEOUT_MS, PREPARE_WARNING,
  readExportBody, type ExportResult, type ImportResult, type PrepareResult,
} from './export.js';
import { createIdentity, fingerprintOf, identityFromSecret, serverKeyOf, type Identity } from './identity.js';
import { assessHealth, type HealthFacts } from './health.js';
import { createLogger, SyncLog, type Logger } from './logger.js';
import type { ClientPower, DeepSleepState, PowerState } from './power.js';
import { LoginLimiter } from './rate-limit.js';
import { SyncServer } from './server.js';
import { BackupLog, clearDeviceSlot, describePlace, loadBackup, parsePlace, placeFailure, storeBackup, type BackupLogEntry } from './backup.js';
import { countImage, pullImage, pushImage, releaseReplica, ReplicaServer, replicationProtocolFor, type ReplicaInfo, type ReplicaRelation, type ReplicatedRecord } from './replication.js';
import {
  formatStamp, Replicator, startError, startSettings, type ReplicationConfig, type ReplicationStatus, type StopResult,
} from './replicator.js';

/** The roles of SPEC §1. */

/** Options of an agent. */
export interface AgentOptions {
  dataDir: string;
  /** Address the server listens on (default all interfaces). */
  host?: string;
  port?: number;
  heartbeatSeconds?: number;
  clock?: Clock;
  logger?: Logger;
  durability?: Durability;
  /** Protocol version the client part speaks (an older one simulates older firmware). */
  protocol?: number;
  /** SPEC §3.5: apply a logged-in user's changed language/accessibility at once, or at the next login. */
  applyDuringLogin?: 'immediate' | 'next-login';
  /** The user bound (tests lower it). */
  maxUsers?: number;
  /** A server's handshake deadline (default 10 s). */
  handshakeTimeoutMs?: number;
  /** The device backup slot's folder (default DATA/backup): a firmware may put it on another partition. */
  backupDir?: string;
}

/** Emitted when an item's value changes on this machine. */
export interface ItemChangedEvent {
  kind: ItemKind;
  id: string;
  item: string;
  /** `local`: written on this machine; `remote`: arrived from the group. */
  source: 'local' | 'remote';
  /** False when the user is logged in and the option defers language/accessibility to the next login. */
  applyNow: boolean;
}

/** Emitted when the synchronization state changes. */
export interface SyncStateEvent {
  role: Role;
  state: ClientState | 'serving' | 'standalone';
  error?: { code: string; message: string };
}

/** Emitted on a client while it joins (or resyncs by checksum): how much of the server's copy arrived. */
export type JoinProgressEvent = JoinProgress;

/** Emitted on a server when whether its deep sleep is blocked, or by which clients, changes (SPEC §5). */
export type DeepSleepEvent = DeepSleepState;

/** Emitted on a server when a client becomes operating, sleeping or offline. */
export interface DeviceStateEvent {
  deviceId: string;
  name: string;
  state: PowerState;
  lastHeartbeat: number | null;
}

/** The agent's events (kebab-case names). */
export interface AgentEvents {
  'item-changed': [ItemChangedEvent];
  /** On a replica: a replication run was installed. */
  replicated: [ReplicatedRecord];
  'entity-deleted': [{ kind: ItemKind; id: string }];
  'sync-state': [SyncStateEvent];
  /** The server acknowledged changes of this machine (`queued`: how many still wait). */
  'changes-acked': [AckSummary];
  /** A join is under way: the plan's entities received so far, of how many, and the bytes. */
  'join-progress': [JoinProgressEvent];
  /** Deep sleep became blocked or released, or the set of clients blocking it changed. */
  'deep-sleep': [DeepSleepEvent];
  /** A client of this server became operating, sleeping or offline. */
  'device-state': [DeviceStateEvent];
  /** On a client: a logging-in user could not be given current data and must log in again, or a login repaired it. */
  'login-again': [LoginAgainEvent];
}

/** One client in `power status` on a server. */
export interface PowerClientEntry {
  deviceId: string;
  name: string;
  /** The server's own client (server-client). */
  self: boolean;
  state: PowerState;
  lastHeartbeat: number | null;
  /** Three of the client's heartbeat intervals; null until it was heard since the server started. */
  timeoutMs: number | null;
  /** While operating: when it stops counting unless heard. */
  expiresAt: number | null;
  skewMs: number | null;
}

/** `power status`: deep sleep (on a server) and this machine's own sleep and client part. */
export interface PowerStatus {
  role: Role;
  /** sleep() was called and wake() not since. */
  asleep: boolean;
  /** On a server: true while a client is operating. Elsewhere always false (nothing here blocks it). */
  deepSleepBlocked: boolean;
  blockedBy: string[];
  /** This machine's heartbeat interval (its client part), and after how long a silent client is offline. */
  heartbeatSeconds: number;
  timeoutMs: number;
  /** On a server: every client of the group (and the own client of a server-client). */
  clients?: PowerClientEntry[];
  /** On a client or server-client: its own client part; `operating` while its session is up. */
  client?: { state: ClientState; operating: boolean; skewMs: number | null };
}

interface RoleState {
  role: Role;
  server?: ServerAddress;
}

/** One entry of `users list`. */
export interface UserEntry {
  kind: 'user' | 'group';
  id: string;
  lastUsed: number | null;
  items: number;
  /** With `checksums`: the content hash of the entity (what a join or resync compares), `null` if it holds no item. */
  checksum?: string | null;
}

/** One entry of `devices list`. */
export interface DeviceEntry {
  id: string;
  name: string;
  serial: string;
  location: string;
  /** SPEC §5: `operating` (heard within its timeout), `sleeping` (said so), `offline`; `server`: the server's own row. */
  state: 'server' | PowerState;
  /** The session, if one is open: still joining, or live. */
  session: 'joining' | 'live' | null;
  lastHeartbeat: number | null;
  version: string;
  protocol: number;
  skewMs: number | null;
  cursorLag: number;
  /** The device's highest change counter the server took, and how many of its changes it decided (exactly once: equal). */
  lastChange: number;
  processedChanges: number;
  /** What the server sent it in its current session: change entries (deltas) and snapshot items (join, resync, login fetch); null without one. */
  sent: { deltas: number; items: number } | null;
}

const LIVE_ITEMS = new Set(['language', 'accessibility']);

/** A machine's mfpsync agent. */
export class Agent extends EventEmitter<AgentEvents> {
  readonly dataDir: string;
  readonly identity: Identity;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly log: SyncLog;
  readonly local: LocalStore;
  #config: AgentConfig;
  #o: AgentOptions;
  #role: RoleState = { role: 'standalone' };
  #group: GroupStore | undefined;
  #groupId = '';
  #groupKeyFingerprint = '';
  #server: SyncServer | undefined;
  #groupKey: Identity | undefined;
  #client: SyncClient | undefined;
  /** On a replica: its listener and the mirrored image (the group store's folder, opened raw). */
  #replica: ReplicaServer | undefined;
  #mirror: LevelKv | undefined;
  readonly #replicator: Replicator;
  /** Failed administrator logins, one limit for every surface that checks the password (server, replica). */
  readonly #logins: LoginLimiter;
  readonly #backupLog: BackupLog;
  /** The port a restarted server binds again (after a restore or recovery). */
  #rebind: number | undefined;
  /** A backup, restore or recovery under way (they exclude one another and replication runs). */
  #continuity: string | undefined;
  #loggedIn = new Set<string>();
  #window: ExportWindow | undefined;
  #closed = false;
  #asleep = false;
  #deepSleep: DeepSleepState = { blocked: false, blockedBy: [] };

  private constructor(options: AgentOptions, config: AgentConfig, identity: Identity, local: LocalStore, logger: Logger, clock: Clock) {
    super();
    this.dataDir = options.dataDir;
    this.#o = options;
    this.#config = config;
    this.identity = identity;
    this.local = local;
    this.logger = logger;
    this.clock = clock;
    this.log = new SyncLog(logger, clock);
    this.log.attach(local);
    this.#backupLog = new BackupLog(local);
    this.#logins = new LoginLimiter({ store: local, clock, log: this.log });
    this.#replicator = new Replicator({
      local,
      log: this.log,
      now: () => clock.now(),
      run: () => this.#push(),
      afterRun: () => clearDeviceSlot(this.backupDir),
    });
  }

  /** The device backup slot's folder. */
  get backupDir(): string {
    return this.#o.backupDir ?? join(this.dataDir, 'backup');
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
    const agent = new Agent(options, config, identity, local, logger.child({ device: identity.deviceId }), clock);
    agent.#role = (await local.getMeta<RoleState>('role')) ?? { role: 'standalone' };
    return agent;
  }

  /** The port the server listens on (the bound one, once listening). */
  get port(): number {
    return this.#server?.port ?? this.#o.port ?? DEFAULT_PORT;
  }

  /** The current role. */
  get role(): Role {
    return this.#role.role;
  }

  /** The group store, on a server. */
  get group(): GroupStore | undefined {
    return this.#group;
  }

  /** The client part, on a client or server-client. */
  get client(): SyncClient | undefined {
    return this.#client;
  }

  /** Starts the persisted role's components. */
  async start(): Promise<void> {
    const { role, server } = this.#role;
    if (role === 'server' || role === 'server-client') await this.#startServer();
    if (role === 'server-client') await this.#startClient({ host: 'localhost', port: this.port }, undefined, false);
    if (role === 'client' && server) await this.#startClient(server, undefined, false);
    if (role === 'replica') await this.#startReplica();
    this.#emitState();
  }

  /** Stops every component and closes the stores. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#window?.close();
    await this.#stopClient();
    await this.#stopServer();
    await this.#stopReplica();
    await this.local.close();
  }

  // ---- power (SPEC §5) -------------------------------------------------------------------------------

  /**
   * The machine goes to sleep. Its client part (client, server-client) tells the server, which stops
   * counting it as operating at once, and then keeps no session, heartbeat or timer until wake(). A
   * server part keeps serving: the firmware deep-sleeps only while `power status` says it is not blocked.
   */
  async sleep(): Promise<PowerStatus> {
    if (!this.#asleep) {
      this.#asleep = true;
      const told = await this.#client?.sleep();
      this.log.info('SLEEP', `this machine goes to sleep${told === undefined ? '' : told ? '; the server was told' : '; the server could not be told'}`);
    }
    return this.power();
  }

  /** The machine woke up: its client part reconnects now and resumes by cursor. */
  async wake(): Promise<PowerStatus> {
    if (this.#asleep) {
      this.#asleep = false;
      this.#client?.wake();
      this.log.info('WAKE', 'this machine woke up');
    }
    return this.power();
  }

  /** Deep sleep and heartbeat state: for a server, its clients; for a client, its own session. */
  power(): PowerStatus {
    const heartbeatSeconds = this.#o.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
    const out: PowerStatus = {
      role: this.#role.role,
      asleep: this.#asleep,
      deepSleepBlocked: false,
      blockedBy: [],
      heartbeatSeconds,
      timeoutMs: heartbeatSeconds * 1000 * MISSED_HEARTBEATS,
    };
    const server = this.#server;
    const group = this.#group;
    if (server && group) {
      const { deepSleep, clients } = server.power();
      out.deepSleepBlocked = deepSleep.blocked;
      out.blockedBy = deepSleep.blockedBy;
      const known = new Map(clients.map((c) => [c.deviceId, c]));
      out.clients = group
        .devices()
        .filter((d) => !d.self || known.has(d.id) || this.#role.role === 'server-client')
        .map((d) => {
          const p = known.get(d.id);
          return {
            deviceId: d.id,
            name: d.name,
            self: d.self === true,
            state: p?.state ?? 'offline',
            lastHeartbeat: p?.lastHeartbeat ?? (d.self ? null : d.lastSeen),
            timeoutMs: p ? p.timeoutMs : null,
            expiresAt: p?.expiresAt ?? null,
            skewMs: p?.skewMs ?? null,
          };
        });
    }
    const client = this.#client;
    if (client) out.client = { state: client.state, operating: client.operating, skewMs: client.skewMs };
    return out;
  }

  /** Emits `deep-sleep` when whether it is blocked, or by whom, changed. */
  #emitDeepSleep(): void {
    const now = this.#server?.power().deepSleep ?? { blocked: false, blockedBy: [] };
    const was = this.#deepSleep;
    if (now.blocked === was.blocked && now.blockedBy.join() === was.blockedBy.join()) return;
    this.#deepSleep = now;
    this.emit('deep-sleep', { blocked: now.blocked, blockedBy: [...now.blockedBy] });
  }

  #onPower(deviceId: string, p: ClientPower): void {
    const name = this.#group?.device(deviceId)?.name ?? '';
    this.emit('device-state', { deviceId, name, state: p.state, lastHeartbeat: p.lastHeartbeat });
    this.#emitDeepSleep();
  }

  // ---- roles ---------------------------------------------------------------------------------------

  /**
   * Switches role (SPEC §1, §11). A server with connected clients refuses to stop serving unless
   * forced (CLIENTS_ACTIVE). Becoming a client admits this machine with the server's administrator
   * account and waits for the join to finish; on any refusal the previous role stays.
   */
  async setRole(role: Role, options: { server?: string; user?: string; password?: string; force?: boolean } = {}): Promise<ReturnType<Agent['status']>> {
    if (!(ROLES as readonly string[]).includes(role)) throw new MfpError('INVALID_ARGUMENT', `unknown role ${JSON.stringify(role)}; one of ${ROLES.join(', ')}`);
    const target: RoleState = { role };
    if (role === 'client') {
      if (!options.server) throw new MfpError('USAGE', 'role set client needs --server HOST[:PORT]');
      target.server = parseAddress(options.server);
    }
    const current = this.#role;
    const sameServer = target.server && current.server && formatAddress(target.server) === formatAddress(current.server);
    // The same role again changes nothing, except that a client part the server refused (or that
    // stopped) is started again: running the command again is how a technician retries.
    const clientDown = this.#client?.state === 'refused' || this.#client?.state === 'stopped';
    if (role === current.role && (role !== 'client' || sameServer) && options.user === undefined && !clientDown) return this.status();
    const serving = current.role === 'server' || current.role === 'server-client';
    const willServe = role === 'server' || role === 'server-client';
    if (serving && !willServe) {
      const active = this.#server?.sessions() ?? [];
      if (active.length > 0 && !options.force) {
        throw new MfpError('CLIENTS_ACTIVE', `${active.length} client(s) are connected (${active.map((s) => s.deviceId).join(', ')}): stop them first, or pass --force`);
      }
    }
    const admission = options.user !== undefined ? { user: options.user, password: options.password ?? '' } : undefined;
    if (role === 'client' && !admission && !(await this.#knowsGroup())) {
      throw new MfpError('USAGE', 'the first connection to a server needs its administrator account: --user ID --password PW');
    }
    if (this.#continuity) throw new MfpError('REPLICATION_RUNNING', `a ${this.#continuity} is under way; change the role when it ends`);
    // A technician switching roles is at an awake machine: the new client part connects at once.
    this.#asleep = false;
    const release = this.#releaser();
    await this.#stopClient();
    const wasReplica = current.role === 'replica';
    try {
      if (wasReplica && role !== 'replica') {
        // Starting a replica in another role cancels its replication relationship (SPEC §9).
        await this.#stopReplica();
        await this.local.setMeta({ replicaOf: undefined });
      }
      if (willServe && !this.#server) await this.#startServer();
      if (!willServe) await this.#stopServer();
      if (role === 'replica' && !this.#replica) await this.#startReplica();
      if (role === 'server-client') await this.#startClient({ host: 'localhost', port: this.port }, undefined, true);
      if (role === 'client') await this.#startClient(target.server!, admission, true);
    } catch (err) {
      // Back to the previous role; the error says why the new one was refused.
      await this.#stopClient();
      if (!serving) await this.#stopServer();
      if (role === 'replica' && !wasReplica) await this.#stopReplica();
      if (wasReplica && !this.#replica && !this.#server) await this.#startReplica().catch(() => undefined);
      if (serving && !this.#server) await this.#startServer().catch(() => undefined);
      if (current.role === 'server-client') await this.#startClient({ host: 'localhost', port: this.port }, undefined, false).catch(() => undefined);
      if (current.role === 'client' && current.server) await this.#startClient(current.server, undefined, false).catch(() => undefined);
      throw err;
    }
    this.#role = target;
    // A server that stops serving stops replicating, forgets the target and releases it.
    if (!willServe) await this.#replicator.stopAndRelease(release);
    // A prepared selection belongs to the server-client that prepared it.
    this.#window?.close();
    this.#window = undefined;
    await this.local.setMeta({ role: target });
    this.log.info('ROLE_CHANGED', `role ${current.role} → ${role}${target.server ? ` (server ${formatAddress(target.server)})` : ''}`);
    this.#emitState();
    return this.status();
  }

  /** Whether a join of this machine completed (it holds a pin): only then may it connect without a password. */
  async #knowsGroup(): Promise<boolean> {
    return (await readPin(this.local)) !== undefined;
  }

  async #startServer(takeOver = false): Promise<void> {
    if (this.clock.now() < PLAUSIBLE_SINCE) {
      throw new MfpError('CLOCK_NOT_SET', `the system clock reads ${new Date(this.clock.now()).toISOString()}: set the time (SNTP) before serving`);
    }
    const group = await GroupStore.open({
      kv: new LevelKv(dataPaths(this.dataDir).group),
      durability: this.#o.durability,
      now: () => this.clock.now(),
      maxUsers: this.#o.maxUsers,
    });
    try {
      let key = await group.getMeta<{ groupId: string; secretKey: string }>('groupKey');
      if (!key) {
        const id = createIdentity();
        key = { groupId: id.deviceId, secretKey: Buffer.from(id.secretKey).toString('base64') };
        await group.setMeta({ groupKey: key });
      }
      const groupKey = identityFromSecret(Buffer.from(key.secretKey, 'base64'));
      // An image that another server made (a promoted replica, a restore, a recovery) is taken over:
      // this machine becomes the group's own device and a new epoch begins.
      const foreign = group.devices().some((d) => d.self && d.id !== this.identity.deviceId) || (await group.getMeta('replicated')) !== undefined;
      if (foreign || takeOver || !group.device(this.identity.deviceId)) {
        const self = {
          id: this.identity.deviceId,
          publicKey: Buffer.from(this.identity.publicKey).toString('base64'),
          name: this.#config.name,
          serial: this.#config.serial,
          location: this.#config.location,
          software: SOFTWARE_VERSION,
          protocol: PROTOCOL_VERSION,
          capabilities: [],
          admittedAt: this.clock.now(),
          lastSeen: this.clock.now(),
          lastCounter: 0,
          cursor: 0,
          self: true as const,
        };
        if (foreign || takeOver) {
          await group.takeOver(self);
          this.log.info('TOOK_OVER', `this machine now serves group ${key.groupId} from its image (seq ${group.seq}); clients resync by checksum (epoch ${group.epoch})`);
        } else await group.putDevice(self);
      }
      const server = new SyncServer({
        store: group,
        identity: this.identity,
        groupKey,
        groupId: key.groupId,
        admin: this.#config.admin,
        limiter: this.#logins,
        settings: this.#config.settings,
        clock: this.clock,
        log: this.log,
        host: this.#o.host ?? '::',
        port: this.#rebind ?? this.#o.port ?? DEFAULT_PORT,
        software: SOFTWARE_VERSION,
        ...(this.#o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.#o.handshakeTimeoutMs } : {}),
        onPower: (id, p) => this.#onPower(id, p),
        onSession: () => this.#replicator.trigger('client'),
      });
      await server.start();
      group.onCommit((entries) => {
        this.#replicator.changed(entries.length);
        const evicted = entries.filter((e) => e.del && e.by === 'bound');
        if (evicted.length > 0) {
          this.log.error('USER_LIMIT_EXCEEDED', `more than ${group.maxUsers} users: deleted the least recently used ${evicted.map((e) => e.e.slice(2)).join(', ')}`);
        }
      });
      this.#group = group;
      this.#groupKey = groupKey;
      this.#groupId = key.groupId;
      this.#groupKeyFingerprint = fingerprintOf(groupKey.publicKey);
      this.#server = server;
      this.log.info('SERVING', `serving group ${key.groupId} on port ${server.port}`);
      await this.#replicator.resume();
    } catch (err) {
      await group.close();
      throw err;
    }
  }

  async #stopServer(): Promise<void> {
    const server = this.#server;
    const group = this.#group;
    this.#server = undefined;
    this.#group = undefined;
    this.#groupKey = undefined;
    await this.#replicator.close();
    await server?.stop();
    await group?.close();
    // No server, nothing blocks deep sleep any more.
    if (!this.#closed) this.#emitDeepSleep();
  }

  /**
   * A client of `address` with this machine's identity, store and settings, not started. The agent's own
   * client part is made here; tools and tests use it to open extra sessions (probes, handshake timing).
   */
  async createClient(address: ServerAddress, callbacks: Pick<SyncClientOptions, 'onRemote' | 'onState' | 'onAcked' | 'onEvicted' | 'onJoinProgress' | 'onLoginAgain'> = {}): Promise<SyncClient> {
    const client = new SyncClient({
      store: this.local,
      identity: this.identity,
      settings: this.#config.settings,
      clock: this.clock,
      log: this.log,
      server: address,
      profile: { name: this.#config.name, serial: this.#config.serial, location: this.#config.location, software: SOFTWARE_VERSION },
      heartbeatSeconds: this.#o.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS,
      protocol: this.#o.protocol,
      // A server-client's own client trusts the group this agent serves, whose key it holds itself.
      ...(this.#groupKey && address.host === 'localhost' && address.port === this.port
        ? { trust: { groupId: this.#groupId, groupKey: this.#groupKey.publicKey } }
        : {}),
      ...callbacks,
    });
    await client.loadPin();
    return client;
  }

  async #startClient(address: ServerAddress, admission: { user: string; password: string } | undefined, wait: boolean): Promise<void> {
    const client = await this.createClient(address, {
      onRemote: (applied, deleted) => this.#onRemote(applied, deleted),
      onState: () => this.#emitState(),
      onAcked: (summary) => this.emit('changes-acked', summary),
      onJoinProgress: (progress) => this.emit('join-progress', progress),
      onEvicted: (users) => this.#evicted(users),
      onLoginAgain: (user, entry) => this.emit('login-again', loginAgainEvent(user, entry)),
    });
    this.#client = client;
    // A queued change is sent while its batch is being written (see LocalStore.onQueued).
    this.local.onQueued = () => client.kick();
    if (wait) await client.admit(admission);
    else client.start();
  }

  async #stopClient(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.local.onQueued = undefined;
    await client?.stop();
  }

  #emitState(): void {
    const role = this.#role.role;
    const error = this.#client?.lastError;
    const state: SyncStateEvent['state'] = this.#client ? this.#client.state : this.#server ? 'serving' : 'standalone';
    this.emit('sync-state', { role, state, ...(error ? { error: { code: error.code, message: error.message } } : {}) });
  }

  #onRemote(applied: readonly RemoteItem[], deleted: readonly EntityKey[]): void {
    for (const it of applied) {
      const parsed = parseEntity(it.e)!;
      const deferred = this.#o.applyDuringLogin === 'next-login' && parsed.kind === 'user' && this.#loggedIn.has(parsed.id) && LIVE_ITEMS.has(it.n);
      this.emit('item-changed', { kind: parsed.kind, id: parsed.id, item: it.n, source: 'remote', applyNow: !deferred });
    }
    for (const e of deleted) {
      const parsed = parseEntity(e)!;
      this.emit('entity-deleted', { kind: parsed.kind, id: parsed.id });
    }
  }

  // ---- data ----------------------------------------------------------------------------------------

  /** The store `user get/set` act on: the group's copy on a pure server, else this machine's. */
  #dataStore(): Store {
    return this.#role.role === 'server' && this.#group ? this.#group : this.local;
  }

  /** A user logged in on this machine: their current data is fetched from the server (SPEC §3.2). */
  async login(user: string): Promise<void> {
    entityKey('user', user);
    this.#loggedIn.add(user);
    if (this.#role.role === 'server' && this.#group) {
      await this.#group.touchUser(user);
      return;
    }
    const evicted = await this.local.touch(user);
    this.#evicted(evicted);
    this.#client?.login(user);
  }

  /** A user logged out. */
  async logout(user: string): Promise<void> {
    entityKey('user', user);
    this.#loggedIn.delete(user);
  }

  #evicted(users: string[]): void {
    if (users.length === 0) return;
    this.log.warning('USER_LIMIT_EXCEEDED', `more than ${this.local.maxUsers} users on this machine: dropped the least recently used ${users.join(', ')}`);
    this.#client?.release(users);
    for (const id of users) this.emit('entity-deleted', { kind: 'user', id });
  }

  /** Reads items of an entity: one (its value) or all (catalog defaults where unset). */
  async getItems(kind: ItemKind, id: string, item?: string): Promise<{ kind: ItemKind; id: string; items: Record<string, { value: unknown; version: number; set: boolean }> }> {
    const e = entityKey(kind, id);
    const names = item !== undefined ? [catalogItem(kind, item).name] : itemsOfKind(kind).map((i) => i.name);
    const store = this.#dataStore();
    if (kind === 'user' && !store.hasEntity(e) && !store.users().some((u) => u.name === id)) {
      throw new MfpError('NOT_FOUND', `no data for user ${JSON.stringify(id)} on this machine`, { user: id });
    }
    // One item is one point read; the whole entity is one scan of its items.
    const records = item !== undefined ? await oneRecord(store, e, names[0]!) : await store.readEntity(e);
    const items: Record<string, { value: unknown; version: number; set: boolean }> = {};
    for (const n of names) {
      const rec = records.get(n);
      items[n] = rec ? { value: rec.val, version: rec.v, set: true } : { value: catalogItem(kind, n).defaultValue, version: 0, set: false };
    }
    return { kind, id, items };
  }

  /** Writes an item on this machine; on a client it is queued durably and sent to the server. */
  async setItem(kind: ItemKind, id: string, item: string, value: unknown): Promise<{ version: number; queued: boolean; change?: number }> {
    const e = entityKey(kind, id);
    catalogItem(kind, item);
    assertValidChange({ e, n: item, val: value });
    const role = this.#role.role;
    if (role === 'replica') throw new MfpError('WRONG_ROLE', 'a replica holds a copy of the server; change data on the server');
    let result: { version: number; queued: boolean; change?: number };
    if (role === 'server' && this.#group) {
      const group = this.#group;
      const base = group.itemStates(e)?.get(item)?.v ?? 0;
      const { outcomes } = await group.applyChanges(`admin:${this.identity.deviceId}`, [{ c: 0, e, n: item, val: value, base }]);
      const o = outcomes[0]!;
      if (o.status === 'rejected') throw new MfpError(o.code, o.message, { item });
      result = { version: o.v, queued: false };
    } else {
      const queue = role === 'client' || role === 'server-client';
      const { counter, evicted } = await this.local.setLocal(this.identity.deviceId, e, item, value, { queue });
      this.#evicted(evicted);
      // `change`: the queued change's counter, which its acknowledgement (changes-acked) names.
      result = { version: this.local.itemStates(e)?.get(item)?.v ?? 0, queued: queue, ...(queue ? { change: counter } : {}) };
    }
    this.emit('item-changed', { kind, id, item, source: 'local', applyNow: true });
    return result;
  }

  /** Users and user groups, filtered by partial, case-insensitive match (blank lists all). */
  listUsers(search = '', options: { checksums?: boolean; local?: boolean } = {}): UserEntry[] {
    const store = options.local || this.#role.role === 'standalone' || this.#role.role === 'client' || !this.#group ? this.local : this.#group;
    const q = search.toLowerCase();
    const out: UserEntry[] = [];
    const seen = new Set<string>();
    for (const u of store.users()) {
      seen.add(u.name);
      if (u.name.toLowerCase().includes(q)) out.push({ kind: 'user', id: u.name, lastUsed: u.lastUsed, items: store.itemStates(`u:${u.name}`)?.size ?? 0 });
    }
    for (const e of store.entities()) {
      const p = parseEntity(e)!;
      if (p.kind === 'user' && !seen.has(p.id) && p.id.toLowerCase().includes(q)) out.push({ kind: 'user', id: p.id, lastUsed: null, items: store.itemStates(e)!.size });
      if (p.kind === 'group' && p.id.toLowerCase().includes(q)) out.push({ kind: 'group', id: p.id, lastUsed: null, items: store.itemStates(e)!.size });
    }
    if (options.checksums) for (const u of out) u.checksum = store.entityHash(entityKey(u.kind, u.id)) ?? null;
    return out;
  }

  /**
   * Delete User Data (SPEC §8): on a server and a server-client, across the group; on a standalone
   * machine, locally; on a client — and on a server-client with `local` — this machine's copy only
   * (the next login fetches it again).
   */
  async deleteUsers(targets: { users?: string[]; groups?: string[]; search?: string; local?: boolean }): Promise<{ deleted: string[] }> {
    const role = this.#role.role;
    if (role === 'replica') throw new MfpError('WRONG_ROLE', 'a replica holds a copy of the server; delete user data on the server');
    const local = role === 'client' || targets.local === true;
    if (local && role === 'server') throw new MfpError('WRONG_ROLE', 'a server has no copy of its own to delete: `users delete` without --local deletes across the group');
    const keys = new Set<EntityKey>();
    for (const u of targets.users ?? []) keys.add(entityKey('user', u));
    for (const g of targets.groups ?? []) keys.add(entityKey('group', g));
    if (targets.search !== undefined) for (const u of this.listUsers(targets.search, { local })) keys.add(entityKey(u.kind, u.id));
    let deleted: EntityKey[];
    if (local && this.#client) {
      deleted = await deleteLocalCopies(this.local, this.#client, [...keys]);
      for (const e of deleted) this.emit('entity-deleted', { kind: parseEntity(e)!.kind as ItemKind, id: e.slice(2) });
    } else if (this.#group) {
      deleted = (await this.#group.deleteEntities([...keys], `admin:${this.identity.deviceId}`)).map((f) => f.e);
    } else {
      deleted = await this.local.deleteLocal([...keys]);
    }
    if (deleted.length > 0) this.log.info('USERS_DELETED', `deleted the data of ${deleted.join(', ')}`);
    return { deleted: deleted.map((e) => e.slice(2)) };
  }

  // ---- import / export (SPEC §7) -------------------------------------------------------------------

  /** The open export window of a server-client (its prepared selection and end), if any. */
  get exportWindow(): ExportWindow | undefined {
    return this.#window?.open ? this.#window : undefined;
  }

  /**
   * Where export and import act, or why they are refused: the group's copy on a server, this machine's
   * store on a standalone machine; while client synchronization runs (client, server-client) only
   * inside an export window, on its selection.
   */
  #exportAccess(what: 'export' | 'import'): { store: Store; window?: ExportWindow } {
    const role = this.#role.role;
    if (role === 'replica') throw new MfpError('WRONG_ROLE', `${what} is not available on a replica`);
    if (role === 'client' || role === 'server-client') {
      const window = this.exportWindow;
      if (window) return { store: this.local, window };
      const how = role === 'server-client'
        ? 'prepare the users first (`mfpsync export prepare`): that opens a 15-minute window for them'
        : 'export or import on the server, or switch this machine to standalone first';
      throw new MfpError('SYNC_RESTRICTED', `${what} of synchronized data is refused while client synchronization runs (role ${role}): ${how}`);
    }
    return { store: this.#dataStore() };
  }

  /**
   * Exports personalized data (users' items, user groups' address lists, Shared buttons) to one file,
   * written atomically: the group's copy on a server, this machine's elsewhere; inside an export window
   * only its selection. Refused with SYNC_RESTRICTED while client synchronization runs.
   */
  async exportData(path: string, options: { addressList?: AddressListKind } = {}): Promise<ExportResult> {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
    const addressList = checkAddressList(options.addressList);
    const { store, window } = this.#exportAccess('export');
    const createdAt = this.clock.now();
    const all = await readExportBody(store, window);
    const body = addressList ? addressListsOf(all, addressList) : all;
    const selection = window ? ('prepared' as const) : ('all' as const);
    const source = { deviceId: this.identity.deviceId, name: this.#config.name, role: this.#role.role };
    const bytes = encodeExportFile({ software: SOFTWARE_VERSION, createdAt, source, selection, ...(addressList ? { addressList } : {}) }, body);
    await writeExportFile(path, bytes);
    const counts = countsOf(body);
    this.log.info('EXPORTED', `exported ${addressList ? `[${ADDRESS_LIST_NAMES[addressList]}]: ` : ''}${describeCounts(counts)} to ${path}`);
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
    const addressList = checkAddressList(options.addressList);
    // Checked before the file is read and again after: the role or the window may change meanwhile.
    this.#exportAccess('import');
    const file = await readExportFile(path);
    checkImportKind(file.header, addressList);
    const { store, window } = this.#exportAccess('import');
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
    const group = this.#group;
    if (group && store === group) {
      const { outcomes } = await group.applyChanges(
        `admin:${this.identity.deviceId}`,
        changes.map((ch) => ({ c: 0, ...ch, base: group.itemStates(ch.e)?.get(ch.n)?.v ?? 0 })),
      );
      outcomes.forEach((o, i) => {
        if (o.status === 'applied') applied.push(changes[i]!);
        else if (o.status === 'conflict') conflicts++;
        else if (o.status === 'rejected') this.log.error(o.code, `import: ${changes[i]!.e} ${changes[i]!.n} refused: ${o.message}`);
      });
    } else {
      const role = this.#role.role;
      const { evicted } = await this.local.importLocal(this.identity.deviceId, changes, { queue: role === 'client' || role === 'server-client' });
      applied.push(...changes);
      this.#evicted(evicted);
    }
    const { header } = file;
    this.log.info('IMPORTED', `imported ${describeCounts(header.counts)} from ${path} (exported by ${header.source.name} ${header.source.deviceId} at ${new Date(header.createdAt).toISOString()})`);
    for (const ch of applied) {
      const p = parseEntity(ch.e)!;
      this.emit('item-changed', { kind: p.kind, id: p.id, item: ch.n, source: 'local', applyNow: true });
    }
    return { path, source: header.source, createdAt: header.createdAt, software: header.software, ...(header.addressList ? { addressList: header.addressList } : {}), counts: header.counts, applied: applied.length, conflicts };
  }

  /**
   * Prepare for User Data Export (SPEC §7), on a server-client whose client points at its own server:
   * selects up to 500 users and 50 user groups of the group (none named: all), fetches them through the
   * client until they are current, and opens a 15-minute window in which they may be exported and
   * imported although client synchronization runs. A second preparation replaces the window.
   */
  async prepareExport(selection: { users?: readonly string[]; groups?: readonly string[] } = {}): Promise<PrepareResult> {
    const group = this.#group;
    const client = this.#client;
    if (this.#role.role !== 'server-client' || !group || !client || !isOwnServer(client.server, this.port)) {
      throw new MfpError('WRONG_ROLE', `export prepare is for a server-client whose client points at its own server (localhost and the port it serves); this machine is ${this.#role.role}`);
    }
    const all = (selection.users ?? []).length === 0 && (selection.groups ?? []).length === 0;
    const listed = all ? this.listUsers('') : [];
    const users = all ? listed.filter((u) => u.kind === 'user').map((u) => u.id) : [...new Set(selection.users ?? [])];
    const groups = all ? listed.filter((u) => u.kind === 'group').map((u) => u.id) : [...new Set(selection.groups ?? [])];
    users.forEach((u) => checkName(u, 'user name'));
    groups.forEach((g) => checkName(g, 'group id'));
    checkPrepareLimits({ users, groups, loggedIn: this.#loggedIn, blank: all });
    const known = new Set(group.users().map((u) => u.name));
    const missing = [
      ...users.filter((u) => !known.has(u) && !group.hasEntity(`u:${u}`)).map((u) => `user ${u}`),
      ...groups.filter((g) => !group.hasEntity(`g:${g}`)).map((g) => `group ${g}`),
    ];
    if (missing.length > 0) throw new MfpError('NOT_FOUND', `not in the group: ${missing.join(', ')}`);
    await this.#bringUpToDate(group, client, users, groups);
    this.#window?.close();
    const window = new ExportWindow(this.clock, { users, groups }, (w) => {
      if (this.#window !== w) return;
      this.#window = undefined;
      this.log.info('EXPORT_WINDOW_CLOSED', `the export window for ${w.users.size} users and ${w.groups.size} user groups ended`);
    });
    this.#window = window;
    this.log.info('EXPORT_PREPARED', `${users.length} users and ${groups.length} user groups may be exported and imported until ${new Date(window.endsAt).toISOString()}; ${PREPARE_WARNING}`);
    return { ...window.describe(), warning: PREPARE_WARNING };
  }

  /**
   * Fetches users through the client's login path (by version; from then on the client holds them) and
   * waits until every selected user and group has, on this machine, the versions the server holds and
   * no change of theirs waits in the queue. Group address lists reach every client by themselves.
   */
  async #bringUpToDate(group: GroupStore, client: SyncClient, users: readonly string[], groups: readonly string[]): Promise<void> {
    const entities: EntityKey[] = [...users.map((u) => entityKey('user', u)), ...groups.map((g) => entityKey('group', g))];
    // Items newer than the protocol this machine's client speaks never reach it: they are not waited for.
    const protocol = this.#o.protocol ?? PROTOCOL_VERSION;
    const isCurrent = (e: EntityKey) => {
      if (this.local.isQueued(e)) return false;
      const mine = this.local.itemStates(e);
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
        this.off('item-changed', check);
        this.off('changes-acked', check);
        this.off('sync-state', check);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        const err = stuck();
        if (err || current()) finish(err);
      };
      const timer = this.clock.setTimeout(() => {
        const late = entities.filter((e) => !isCurrent(e)).map((e) => e.slice(2));
        finish(new MfpError('PREPARE_INCOMPLETE', `not current after ${PREPARE_TIMEOUT_MS / 1000} s (client ${client.state}): ${late.slice(0, 5).join(', ')}${late.length > 5 ? ` and ${late.length - 5} more` : ''}; nothing was prepared`));
      }, PREPARE_TIMEOUT_MS);
      this.on('item-changed', check);
      this.on('changes-acked', check);
      this.on('sync-state', check);
    });
  }

  /** Confirm Device Information (SPEC §8), filtered by partial match on id, name, serial or location. */
  listDevices(filter = ''): DeviceEntry[] {
    const group = this.#serving();
    const sessions = new Map(this.#server!.sessions({ includeSelf: true }).map((s) => [s.deviceId, s]));
    const power = new Map(this.#server!.power().clients.map((p) => [p.deviceId, p]));
    const q = filter.toLowerCase();
    return group
      .devices()
      .filter((d) => [d.id, d.name, d.serial, d.location].some((f) => f.toLowerCase().includes(q)))
      .map((d) => {
        const s = sessions.get(d.id);
        const p = power.get(d.id);
        // The server's own row is `server` unless its own client (server-client) was heard.
        const state: DeviceEntry['state'] = d.self && !s && !p ? 'server' : (p?.state ?? 'offline');
        return {
          id: d.id,
          name: d.name,
          serial: d.serial,
          location: d.location,
          state,
          session: s?.state ?? null,
          lastHeartbeat: p?.lastHeartbeat ?? s?.lastHeartbeat ?? (d.self ? null : d.lastSeen),
          version: d.software,
          protocol: d.protocol,
          skewMs: s?.skewMs ?? p?.skewMs ?? null,
          // The server's own row has no cursor unless its own client (server-client) is connected.
          cursorLag: d.self && !s ? 0 : Math.max(0, group.seq - (s?.cursor ?? d.cursor)),
          lastChange: d.lastCounter,
          processedChanges: d.processed ?? 0,
          sent: s?.sent ?? null,
        };
      });
  }

  /** Removes a client from the group: its slot is freed and it is refused until re-admitted. */
  async removeDevice(id: string): Promise<{ removed: string }> {
    const group = this.#serving();
    if (id === this.identity.deviceId) throw new MfpError('INVALID_ARGUMENT', 'the server cannot remove itself');
    if (!(await group.removeDevice(id))) throw new MfpError('NOT_FOUND', `no device ${JSON.stringify(id)} in this group`, { deviceId: id });
    this.#server?.disconnect(id, 'DEVICE_REMOVED');
    this.log.info('DEVICE_REMOVED', `device ${id} removed from the group`, { deviceId: id });
    return { removed: id };
  }

  #serving(): GroupStore {
    if (!this.#group || !this.#server) throw new MfpError('WRONG_ROLE', `this machine is ${this.#role.role}, not a server`);
    return this.#group;
  }

  /**
   * Data Sharing Details (SPEC §4): the scope of each scope-configurable item. On a server, the group's
   * setting; elsewhere, the scopes this machine last applied (all shared before it ever synchronized).
   */
  async sharingList(): Promise<{ items: { item: string; scope: 'shared' | 'device' }[]; version: number }> {
    const state = this.#group ? await this.#group.sharing() : ((await this.local.getMeta<{ version: number; device: string[] }>('sharing')) ?? { version: 0, device: [] });
    const items = CATALOG.filter((i) => i.scopeConfigurable).map((i) => ({ item: i.name, scope: state.device.includes(i.name) ? ('device' as const) : ('shared' as const) }));
    return { items, version: state.version };
  }

  /**
   * Sets an item's scope (SPEC §4), on a server with no client connected (CLIENTS_ACTIVE otherwise: stop
   * the clients, change, restart them). A server-client's own client goes through the change at once.
   */
  async setSharing(item: string, scope: string): Promise<Awaited<ReturnType<Agent['sharingList']>> & { reset: number }> {
    if (scope !== 'shared' && scope !== 'device') throw new MfpError('INVALID_ARGUMENT', 'the scope is shared or device');
    const cat = catalogItem('user', item);
    if (!cat.scopeConfigurable) {
      const configurable = CATALOG.filter((i) => i.scopeConfigurable).map((i) => i.name).join(', ');
      throw new MfpError('INVALID_ARGUMENT', `${item} is always shared; only ${configurable} can be device-specific`, { item });
    }
    const group = this.#serving();
    const active = this.#server!.sessions();
    if (active.length > 0) {
      throw new MfpError('CLIENTS_ACTIVE', `${active.length} client(s) are connected (${active.map((s) => s.deviceId).join(', ')}): stop them, change the scope, then restart them`);
    }
    const { reset, ...state } = await group.setSharing(item, scope, `admin:${this.identity.deviceId}`, ['job-defaults', 'previous-settings']);
    this.#server!.setSharing(state);
    this.log.info('SHARING_CHANGED', `${item} is now ${scope === 'device' ? 'device-specific' : 'shared'} (${reset} value(s) reset on the server)`);
    if (this.#role.role === 'server-client') {
      await this.#stopClient();
      await this.#startClient({ host: 'localhost', port: this.port }, undefined, true);
    }
    return { ...(await this.sharingList()), reset };
  }

  /** The conflict log: this machine's, and the group's on a server. */
  async conflicts(): Promise<(ConflictEntry & { log: 'local' | 'group' })[]> {
    const local = (await this.local.conflicts()).map((c) => ({ ...c, log: 'local' as const }));
    const group = this.#group ? (await this.#group.conflicts()).map((c) => ({ ...c, log: 'group' as const })) : [];
    return [...local, ...group].sort((a, b) => a.at - b.at);
  }

  /** The sync log at or above a level. */
  syncLog(level: LogLevel = 'info'): Promise<SyncLogEntry[]> {
    return this.local.syncLog(level);
  }

  // ---- replication, backup and restore (SPEC §9, §10) -------------------------------------------------

  async #startReplica(): Promise<void> {
    const mirror = new LevelKv(dataPaths(this.dataDir).group);
    await mirror.open();
    const replica = new ReplicaServer({
      kv: mirror,
      local: this.local,
      identity: this.identity,
      admin: this.#config.admin,
      limiter: this.#logins,
      settings: this.#config.settings,
      clock: this.clock,
      log: this.log,
      host: this.#o.host ?? '::',
      port: this.#o.port ?? DEFAULT_PORT,
      software: SOFTWARE_VERSION,
      ...(this.#o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.#o.handshakeTimeoutMs } : {}),
      onInstalled: (rec) => this.emit('replicated', rec),
      protocol: replicationProtocolFor(this.#o.protocol ?? PROTOCOL_VERSION, PROTOCOL_VERSION),
    });
    try {
      await replica.start();
    } catch (err) {
      await mirror.close();
      throw err;
    }
    this.#mirror = mirror;
    this.#replica = replica;
    this.log.info('REPLICA', `replication target on port ${replica.port}`);
  }

  async #stopReplica(): Promise<void> {
    const replica = this.#replica;
    const mirror = this.#mirror;
    this.#replica = undefined;
    this.#mirror = undefined;
    await replica?.stop();
    await mirror?.close();
  }

  /** One replication run to the configured target. */
  async #push() {
    const config = this.#replicator.config;
    if (!config) throw new MfpError('WRONG_ROLE', 'replication is not configured');
    if (this.#continuity) throw new MfpError('REPLICATION_RUNNING', `a ${this.#continuity} is under way; the replication waits for the next trigger`);
    return pushImage(this.#pushOptions(parseAddress(config.to), { pinnedReplicaKey: config.replicaKey }));
  }

  /** A push of this server's image to `address`, paired (pinned key) or pairing (administrator account). */
  #pushOptions(address: ServerAddress, trust: { pinnedReplicaKey: string } | { admission: { user: string; password: string } }): Parameters<typeof pushImage>[0] {
    const group = this.#group;
    if (!group || !this.#groupKey) throw new MfpError('WRONG_ROLE', `replication runs on a server; this machine is ${this.#role.role}`);
    return {
      address,
      identity: this.identity,
      name: this.#config.name,
      software: SOFTWARE_VERSION,
      ...trust,
      kv: group.kv,
      groupId: this.#groupId,
      groupKey: this.#groupKey,
      now: () => this.clock.now(),
    };
  }

  /**
   * `replication start`: pairs with the target (its administrator account), runs the first copy now —
   * its errors are the command's (ADDRESS_INCORRECT, AUTH_INCORRECT, DEST_UNSUPPORTED) — and schedules
   * the next ones.
   */
  async replicationStart(options: { to: string; user: string; password: string; intervalMinutes?: number; threshold?: number }): Promise<ReplicationStatus> {
    if (!this.#group || !this.#groupKey) throw new MfpError('WRONG_ROLE', `replication runs on a server; this machine is ${this.#role.role}`);
    const address = parseAddress(options.to);
    const { intervalMinutes: interval, threshold } = startSettings(this.#replicator.record, formatAddress(address), options);
    await this.#replicator.idle();
    this.#busy('replication');
    try {
      const first = await pushImage(this.#pushOptions(address, { admission: { user: options.user, password: options.password } })).catch((err: unknown) => {
        throw startError(err);
      });
      await this.#replicator.start(
        {
          to: formatAddress(address),
          intervalMinutes: interval,
          threshold,
          replicaKey: Buffer.from(first.replicaKey).toString('base64'),
          replicaId: first.replicaId,
          startedAt: this.clock.now(),
        },
        first,
      );
      this.log.info('REPLICATION_STARTED', `replicating to ${formatAddress(address)} (${first.replicaId}) every ${interval} min or ${threshold} changes: first copy ${first.bytes} bytes`);
    } finally {
      this.#continuity = undefined;
    }
    return this.#replicator.status();
  }

  /** `replication stop`: stops, forgets the destination and releases it (SPEC §9). */
  async replicationStop(): Promise<StopResult> {
    const r = await this.#replicator.stopAndRelease(this.#releaser());
    if (r.stopped) this.log.info('REPLICATION_STOPPED', r.message);
    return r;
  }

  /** What releases the destination, with the group key as it is now (a role change stops the server first). */
  #releaser(): ((config: ReplicationConfig) => Promise<void>) | undefined {
    if (!this.#group || !this.#groupKey || !this.#replicator.configured) return undefined;
    const o = this.#pushOptions({ host: '', port: 0 }, { pinnedReplicaKey: '' });
    return (config) =>
      releaseReplica({ address: parseAddress(config.to), identity: o.identity, name: o.name, software: o.software, groupId: o.groupId, groupKey: o.groupKey, pinnedReplicaKey: config.replicaKey });
  }

  /** `replication status`: a server's schedule and last run, or what a replica last received. */
  async replicationStatus(): Promise<ReplicationStatus | { role: 'replica'; message: string; relation: ReplicaRelation | null; last: ReplicatedRecord | null }> {
    if (this.#replica) {
      const last = (await this.#replica.last()) ?? null;
      const relation = (await this.#replica.relation()) ?? null;
      const message = last && relation
        ? `Replica of group ${last.groupId} from ${last.source.name} (${last.source.deviceId}). Last Replication : ${formatStamp(last.at)}`
        : last
          ? `Released: holds the last copy of group ${last.groupId} from ${last.source.name} (${last.source.deviceId}), of ${formatStamp(last.at)}; another server may start replication to this machine`
          : relation ? `Waiting for the first replication of group ${relation.groupId}...` : 'Waiting for a server to start replication to this machine...';
      return { role: 'replica', message, relation, last };
    }
    return this.#replicator.status();
  }

  /** Whether a replication run is executing. */
  get replicating(): boolean {
    return this.#replicator.running || this.#replica?.busy === true;
  }

  #busy(what: string): void {
    if (this.#replicator.running || this.#replica?.busy) throw new MfpError('REPLICATION_RUNNING', `a replication is executing; the ${what} waits until it ends`);
    if (this.#continuity) throw new MfpError('REPLICATION_RUNNING', `a ${this.#continuity} is under way; the ${what} waits until it ends`);
    this.#continuity = what;
  }

  /** A server with no client connected (its own client part aside), for restore and recovery. */
  #quietServer(what: string): GroupStore {
    const group = this.#group;
    if (!group || !this.#server) throw new MfpError('WRONG_ROLE', `${what} is for a server; this machine is ${this.#role.role} (\`mfpsync role set server\` first)`);
    const active = this.#server.sessions();
    if (active.length > 0) throw new MfpError('CLIENTS_ACTIVE', `${active.length} client(s) are connected (${active.map((x) => x.deviceId).join(', ')}): stop them before a ${what}`);
    return group;
  }

  /** Replaces the group's image and serves it: the server stops, the image is installed atomically, it starts again. */
  async #installGroup(entries: Iterable<readonly [string, Uint8Array]>): Promise<void> {
    const ownClient = this.#role.role === 'server-client';
    // Serve again on the same port (with port 0 the first bind chose it: clients know that one).
    this.#rebind = this.#server?.port;
    await this.#stopClient();
    await this.#stopServer();
    const kv = new LevelKv(dataPaths(this.dataDir).group);
    let failure: unknown;
    try {
      await kv.open();
      await installImage(kv, entries);
    } catch (err) {
      failure = err;
    } finally {
      await kv.close().catch(() => undefined);
    }
    // Serve again either way: the install is all or nothing, so on failure the previous image is whole.
    await this.#startServer(failure === undefined);
    if (ownClient) await this.#startClient({ host: 'localhost', port: this.port }, undefined, false);
    this.#emitState();
    if (failure !== undefined) throw failure;
  }

  async #logRun(entry: BackupLogEntry): Promise<void> {
    await this.#backupLog.add(entry).catch(() => undefined);
    if (entry.result === 'ok') this.log.info(entry.op.toUpperCase(), `${entry.op} ${entry.place}: ${entry.message}`);
    else this.log.error(entry.result, `${entry.op} ${entry.place} failed: ${entry.message}`);
  }

  /**
   * `backup --to device|smb://…|DIR`: the group's image from one snapshot, in a signed file whose group
   * key is sealed for the administrator account. Refused while a replication executes.
   */
  async backup(options: { to: string; user?: string; password?: string }): Promise<{ destination: string; path?: string; bytes: number; seq: number; counts: { users: number; groups: number; devices: number } }> {
    const group = this.#group;
    const groupKey = this.#groupKey;
    if (!group || !groupKey) throw new MfpError('WRONG_ROLE', `backup is for a server; this machine is ${this.#role.role}`);
    const place = parsePlace(options.to, { deviceDir: this.backupDir, groupId: this.#groupId, ...options });
    this.#busy('backup');
    const at = this.clock.now();
    try {
      const snap = group.kv.snapshot();
      let bytes: Uint8Array;
      let seq = 0;
      let counts;
      try {
        const entries: [string, Uint8Array][] = [];
        let epoch = '';
        let items = 0;
        for await (const [k, v] of imageEntries(snap)) {
          if (k === Keys.meta('groupKey')) continue;
          if (k.startsWith('I\x00')) items++;
          if (k === Keys.meta('seq')) seq = decodeRecord<number>(v, k);
          if (k === Keys.meta('epoch')) epoch = decodeRecord<string>(v, k);
          entries.push([k, v]);
        }
        counts = await countImage(snap);
        bytes = encodeBackupFile({
          software: SOFTWARE_VERSION,
          createdAt: at,
          groupId: this.#groupId,
          groupKey,
          epoch,
          seq,
          counts: { ...counts, items },
          admin: this.#adminKey(),
          entries,
        });
      } catch (err) {
        if (err instanceof MfpError && err.code.startsWith('DBBU')) throw err;
        throw new MfpError('DBBU06', `the backup could not be made from the store: ${(err as Error).message}`, { cause: err });
      } finally {
        await snap.close();
      }
      const opener = this.#backupOpener([groupKey.publicKey]);
      const where = await storeBackup(place, bytes, this.dataDir, (b) => void decodeBackupFile(b, opener));
      // The [Device] slot goes with the next backup to either destination (the device's overwrote it).
      if (place.kind !== 'device') await clearDeviceSlot(this.backupDir);
      await this.#logRun({ at, op: 'backup', place: describePlace(place), result: 'ok', message: `seq ${seq}, ${counts.users} users, ${bytes.length} bytes`, bytes: bytes.length, seq });
      return { destination: where, ...(place.kind !== 'network' ? { path: where } : {}), bytes: bytes.length, seq, counts };
    } catch (err) {
      const e = err instanceof MfpError ? err : new MfpError(placeFailure(place, 'backup'), (err as Error).message, { cause: err });
      await this.#logRun({ at, op: 'backup', place: describePlace(place), result: e.code, message: e.message });
      throw e;
    } finally {
      this.#continuity = undefined;
    }
  }

  /** The group administrator's account as this server keeps it: what a backup's group key is sealed for. */
  #adminKey(): { user: string; salt: Uint8Array; serverKey: Uint8Array } {
    const { user, salt, serverKey } = this.#config.admin;
    return { user, salt: Buffer.from(salt, 'base64'), serverKey: Buffer.from(serverKey, 'base64') };
  }

  /**
   * Who opens a backup here: the administrator account given (its password, with the salt the file
   * names), else this server's own account when the file was sealed for it as it is now; for a
   * format-1 file, this device's key and the group keys it trusts.
   */
  #backupOpener(trustedGroupKeys: Uint8Array[], account?: { user: string; password: string }): Parameters<typeof decodeBackupFile>[1] {
    const own = this.#adminKey();
    return {
      adminKey: (user, salt) => {
        if (account) return account.user === user ? serverKeyOf(account.password, salt) : undefined;
        return own.user === user && Buffer.from(own.salt).equals(salt) ? own.serverKey : undefined;
      },
      deviceId: this.identity.deviceId,
      secretKey: this.identity.secretKey,
      trustedGroupKeys,
    };
  }

  /**
   * `restore --from device|smb://… [--user ID --password PW]`: verifies the whole file (checksum,
   * signature by its group key, the group key opened with the administrator account) before anything
   * changes, then installs it atomically and serves it as a new epoch. For a server with no client
   * connected. `--user/--password` are the group administrator's (as they were at the backup); without
   * them, only the server whose account sealed the file opens it. A network share's credentials are
   * `shareUser/sharePassword`.
   */
  async restore(options: { from: string; user?: string; password?: string; shareUser?: string; sharePassword?: string }): Promise<{ source: string; seq: number; createdAt: number; counts: { users: number; groups: number; devices: number }; format: number; admits: string; sealedFor: string | null }> {
    this.#quietServer('restore');
    // A directory holds one file per group: a machine that was a client of the group restores its file.
    const pin = await readPin(this.local);
    const place = parsePlace(options.from, { deviceDir: this.backupDir, groupId: pin?.groupId ?? this.#groupId, user: options.shareUser, password: options.sharePassword });
    this.#busy('restore');
    const at = this.clock.now();
    try {
      const trusted = [this.#groupKey!.publicKey, ...(pin?.groupKey ? [Buffer.from(pin.groupKey, 'base64')] : [])];
      const account = options.user !== undefined ? { user: options.user, password: options.password ?? '' } : undefined;
      const file = await loadBackup(place, this.dataDir, this.#backupOpener(trusted, account));
      const groupKeyRecord: [string, Uint8Array] = [
        Keys.meta('groupKey'),
        encodeRecord({ groupId: file.header.groupId, secretKey: Buffer.from(file.groupSecretKey).toString('base64') }),
      ];
      try {
        await this.#installGroup([...file.entries, groupKeyRecord]);
      } catch (err) {
        throw new MfpError(placeFailure(place, 'restore'), `the verified backup could not be installed: ${(err as Error).message}; the previous data is unchanged`, { cause: err });
      }
      await clearDeviceSlot(this.backupDir);
      const { header } = file;
      await this.#logRun({ at, op: 'restore', place: describePlace(place), result: 'ok', message: `backup of ${new Date(header.createdAt).toISOString()}, seq ${header.seq}, ${header.counts.users} users`, seq: header.seq });
      if (file.format < BACKUP_FORMAT) {
        this.log.warning('BACKUP_FORMAT_OLD', `the restored backup is of format ${file.format}: its group key is sealed to every member machine, so any of them opens it; make a new backup now and destroy the old files`);
      }
      // New clients are admitted with this machine's administrator account, not the backup's (README).
      return { source: describePlace(place), seq: header.seq, createdAt: header.createdAt, counts: header.counts, format: file.format, admits: this.#config.admin.user, sealedFor: header.admin?.user ?? null };
    } catch (err) {
      const e = err instanceof MfpError ? err : new MfpError(placeFailure(place, 'restore'), (err as Error).message, { cause: err });
      await this.#logRun({ at, op: 'restore', place: describePlace(place), result: e.code, message: e.message });
      throw e;
    } finally {
      this.#continuity = undefined;
    }
  }

  /** `backup log`: every backup, restore and recovery, oldest first. */
  async backupLogList(): Promise<{ runs: BackupLogEntry[] }> {
    return { runs: await this.#backupLog.list() };
  }

  /**
   * `recover --from`: a new server loads a replica's image. Without `confirm` it only shows what the
   * replica holds (its timestamp); with it, the image is pulled, checked against the replica's
   * digest and installed as this server's group (a new epoch).
   */
  async recover(options: { from: string; user: string; password: string; confirm: boolean }): Promise<{ loaded: boolean; replica: ReplicaInfo; bytes?: number }> {
    this.#quietServer('recovery');
    const address = parseAddress(options.from);
    this.#busy('recovery');
    const at = this.clock.now();
    try {
      const pulled = await pullImage({
        address,
        identity: this.identity,
        name: this.#config.name,
        software: SOFTWARE_VERSION,
        admission: { user: options.user, password: options.password },
        confirm: () => options.confirm,
      });
      if ('declined' in pulled) return { loaded: false, replica: pulled.info };
      await this.#installGroup(pulled.entries);
      await clearDeviceSlot(this.backupDir);
      await this.#logRun({ at, op: 'recover', place: formatAddress(address), result: 'ok', message: `replica of ${formatStamp(pulled.info.at)}, seq ${pulled.info.seq}, ${pulled.bytes} bytes`, bytes: pulled.bytes, seq: pulled.info.seq });
      return { loaded: true, replica: pulled.info, bytes: pulled.bytes };
    } catch (err) {
      const e = err instanceof MfpError ? err : new MfpError('ADDRESS_INCORRECT', (err as Error).message, { cause: err });
      if (options.confirm) await this.#logRun({ at, op: 'recover', place: formatAddress(address), result: e.code, message: e.message });
      throw e;
    } finally {
      this.#continuity = undefined;
    }
  }

  /**
   * Checks the administrator account's password under the agent's one limiter of administrator logins
   * (the Remote UI's login); throws AUTH_LOCKED or AUTH_INCORRECT.
   */
  checkAdminPassword(attempt: { address: string; remote: string; user: string; password: string }): Promise<void> {
    return this.#logins.password({ admin: this.#config.admin, ...attempt });
  }

  /** Set by the Remote UI while it serves: its port and certificate fingerprint, which status() shows. */
  remoteUi: { port: number; fingerprint: string } | undefined;

  /** A one-look summary of this machine, with its health (green, yellow, red) and why. */
  status() {
    const client = this.#client;
    const group = this.#group;
    const { health, reasons } = assessHealth(this.#healthFacts());
    return {
      deviceId: this.identity.deviceId,
      name: this.#config.name,
      serial: this.#config.serial,
      location: this.#config.location,
      software: SOFTWARE_VERSION,
      protocol: this.#o.protocol ?? PROTOCOL_VERSION,
      role: this.#role.role,
      ...(this.#server ? { port: this.#server.port } : {}),
      ...(this.#replica ? { port: this.#replica.port } : {}),
      ...(client
        ? {
            client: {
              server: formatAddress(client.server),
              state: client.state,
              cursor: this.local.cursor,
              queued: this.local.queueSize,
              ...(client.pin?.groupKey ? { groupId: client.pin.groupId, groupKey: fingerprintOf(Buffer.from(client.pin.groupKey, 'base64')) } : {}),
              ...(client.lastError ? { error: { code: client.lastError.code, message: client.lastError.message } } : {}),
              ...(client.loginAgain.length > 0 ? { loginAgain: client.loginAgain } : {}),
            },
          }
        : {}),
      ...(group && this.#server
        ? {
            group: {
              groupId: this.#groupId,
              groupKey: this.#groupKeyFingerprint,
              epoch: group.epoch,
              seq: group.seq,
              devices: group.devices().length,
              connected: this.#server.sessions().length,
              users: group.users().length,
            },
          }
        : {}),
      ...(this.remoteUi ? { remoteUi: { ...this.remoteUi } } : {}),
      localUsers: this.local.users().length,
      health,
      healthReasons: reasons,
    };
  }

  #healthFacts(): HealthFacts {
    const client = this.#client;
    const group = this.#group;
    const server = this.#server;
    const facts: HealthFacts = {
      now: this.clock.now(),
      storeErrors: [],
      users: [{ store: 'local', count: this.local.users().length, max: this.local.maxUsers }],
    };
    for (const [store, s] of [['local', this.local], ['group', group]] as const) {
      const e = s?.writeError;
      if (e) facts.storeErrors!.push({ store, code: e.code, message: e.message });
    }
    if (client) {
      const e = client.lastError;
      facts.client = {
        state: client.state,
        server: formatAddress(client.server),
        queued: this.local.queueSize,
        skewMs: client.skewMs,
        ...(e ? { error: { code: e.code, message: e.message } } : {}),
        loginAgain: client.loginAgain,
      };
      const r = client.refusals;
      if (r.error) facts.client.refusals = { count: r.count, code: r.error.code, message: r.error.message };
    }
    if (server && group) {
      facts.users!.push({ store: 'group', count: group.users().length, max: group.maxUsers });
      facts.clients = server.sessions().map((s) => ({ deviceId: s.deviceId, name: group.device(s.deviceId)?.name ?? '', skewMs: s.skewMs }));
      facts.crowdedOut = group.crowdedOut().map((d) => ({ ...d, name: group.device(d.deviceId)?.name ?? '' }));
    }
    return facts;
  }
}

/** Parses HOST[:PORT], [IPv6]:PORT or a bare IPv6 address; the port defaults to 8443. */
export function parseAddress(text: string): ServerAddress {
  const bad = () => new MfpError('INVALID_ARGUMENT', `not an address: ${JSON.stringify(text)} (HOST[:PORT], [IPv6]:PORT)`);
  let host: string;
  let port = DEFAULT_PORT;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text;
  } else {
    const [h, p] = text.split(':');
    host = h ?? '';
    if (p !== undefined) port = Number(p);
  }
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  return { host, port };
}

/** One item's record as `readEntity` lists it (empty when the item is not set): one point read. */
async function oneRecord(store: Store, e: EntityKey, n: string): Promise<Map<string, ItemRecord>> {
  const rec = await store.readItem(e, n);
  return new Map(rec ? [[n, rec]] : []);
}

