/**
 * What the agent's services share: the machine (its data directory, identity, clock, logs, local
 * store), the components its role runs (server and group store, client part, replica), and the guards
 * several services check (which role serves, which continuity operation is under way). State only: the
 * services (users, devices, sharing, export, power, roles, replication, backup, status) hold the logic.
 */
import type { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { MfpError } from '../../protocol/errors.js';
import { DEFAULT_PORT, PROTOCOL_VERSION } from '../../protocol/limits.js';
import type { GroupStore } from '../../storage/group-store.js';
import type { LevelKv } from '../../storage/level-kv.js';
import type { LocalStore } from '../../storage/local-store.js';
import type { Durability, Store } from '../../storage/store.js';
import type { ServerAddress, SyncClient } from '../client.js';
import type { Clock } from '../clock.js';
import type { Advertiser } from '../discovery.js';
import type { AgentConfig, Role } from '../config.js';
import type { AgentEvents } from '../events.js';
import type { Identity } from '../identity.js';
import type { Logger, SyncLog } from '../logger.js';
import type { ReplicaServer } from '../replication.js';
import type { SyncServer } from '../server.js';

/** SPEC §3.5: a logged-in user's changed language/accessibility applies at once, or at their next login. */
export type ApplyDuringLogin = 'immediate' | 'next-login';

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
  applyDuringLogin?: ApplyDuringLogin;
  /** The user bound (tests lower it). */
  maxUsers?: number;
  /** A server's handshake deadline (default 10 s). */
  handshakeTimeoutMs?: number;
  /** The device backup slot's folder (default DATA/backup): a firmware may put it on another partition. */
  backupDir?: string;
  /**
   * A server answers searches for it on the LAN (SPEC §13). Off unless asked: `mfpsync run` asks
   * (`--no-advertise` does not); an embedding firmware or a test decides for itself.
   */
  advertise?: boolean;
  /** How long a client's search for its server listens (default 3 s). */
  searchMs?: number;
}

/** The persisted role, and a client's server. */
export interface RoleState {
  role: Role;
  server?: ServerAddress;
  /** The client's server was found by a search (SPEC §13): lost, it is searched for again. */
  found?: boolean;
  /** The search's multicast hop limit (1: the same router). */
  searchDepth?: number;
}

/** The machine and the components of its role, as the services see them. */
export class Runtime {
  readonly dataDir: string;
  readonly options: AgentOptions;
  /** The Remote UI while it serves (its port and certificate fingerprint): status shows it. */
  remoteUi: { port: number; fingerprint: string } | undefined;
  readonly config: AgentConfig;
  readonly identity: Identity;
  readonly clock: Clock;
  readonly log: SyncLog;
  readonly local: LocalStore;
  /** The agent: every service emits its events on it. */
  readonly events: EventEmitter<AgentEvents>;
  roleState: RoleState = { role: 'standalone' };
  /** On a server: its group store, listener and group key. */
  group: GroupStore | undefined;
  server: SyncServer | undefined;
  /** A server's answer to searches (SPEC §13), while it advertises. */
  advertiser: Advertiser | undefined;
  groupKey: Identity | undefined;
  groupId = '';
  groupKeyFingerprint = '';
  /** On a client or server-client: its client part. */
  client: SyncClient | undefined;
  /** On a replica: its listener and the mirrored image (the group store's folder, opened raw). */
  replica: ReplicaServer | undefined;
  mirror: LevelKv | undefined;
  /** A backup, restore or recovery under way (they exclude one another and replication runs). */
  continuity: string | undefined;
  /** Users logged in on this machine. */
  readonly loggedIn = new Set<string>();
  closed = false;
  /**
   * SPEC §3.5, [Allow custom settings to be applied during operation]: `immediate` applies a logged-in
   * user's changed language/accessibility at once, `next-login` at their next login. Persisted; the run
   * option, when given, sets it at start.
   */
  applyDuringLogin: ApplyDuringLogin = 'immediate';

  constructor(o: { options: AgentOptions; config: AgentConfig; identity: Identity; clock: Clock; log: SyncLog; local: LocalStore; events: EventEmitter<AgentEvents> }) {
    this.dataDir = o.options.dataDir;
    this.options = o.options;
    this.config = o.config;
    this.identity = o.identity;
    this.clock = o.clock;
    this.log = o.log;
    this.local = o.local;
    this.events = o.events;
  }

  /** The current role. */
  get role(): Role {
    return this.roleState.role;
  }

  /** The port the server listens on (the bound one, once listening). */
  get port(): number {
    return this.server?.port ?? this.options.port ?? DEFAULT_PORT;
  }

  /** The protocol version this machine speaks. */
  get protocol(): number {
    return this.options.protocol ?? PROTOCOL_VERSION;
  }

  /** The device backup slot's folder. */
  get backupDir(): string {
    return this.options.backupDir ?? join(this.dataDir, 'backup');
  }

  /** The group store of a serving machine, or WRONG_ROLE. */
  serving(): GroupStore {
    if (!this.group || !this.server) throw new MfpError('WRONG_ROLE', `this machine is ${this.role}, not a server`);
    return this.group;
  }

  /** The store `user get/set` act on: the group's copy on a pure server, else this machine's. */
  dataStore(): Store {
    return this.role === 'server' && this.group ? this.group : this.local;
  }

  /** Refuses while clients are connected (CLIENTS_ACTIVE), with what to do. */
  refuseActiveClients(todo: string): void {
    const active = this.server?.sessions() ?? [];
    if (active.length > 0) throw new MfpError('CLIENTS_ACTIVE', `${active.length} client(s) are connected (${active.map((s) => s.deviceId).join(', ')}): ${todo}`);
  }

  /** A server with no client connected (its own client part aside), for restore and recovery. */
  quietServer(what: string): GroupStore {
    const group = this.group;
    if (!group || !this.server) throw new MfpError('WRONG_ROLE', `${what} is for a server; this machine is ${this.role} (\`mfpsync role set server\` first)`);
    this.refuseActiveClients(`stop them before a ${what}`);
    return group;
  }
}
