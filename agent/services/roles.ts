/**
 * Roles (SPEC §1, §11): which components this machine runs — a server with its group store, a client
 * part, a replica's listener — starting the persisted role, switching roles (and back when the new one
 * is refused), and installing a new group image (restore, recovery) under a running server.
 */
import { MfpError } from '../../protocol/errors.js';
import { DEFAULT_HEARTBEAT_SECONDS, DEFAULT_PORT, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { GroupStore } from '../../storage/group-store.js';
import { installImage } from '../../storage/image.js';
import { LevelKv } from '../../storage/level-kv.js';
import { isLoopbackHost, parseAddress } from '../address.js';
import { formatAddress, loginAgainEvent, readPin, SyncClient, type ServerAddress, type SyncClientOptions } from '../client.js';
import { PLAUSIBLE_SINCE } from '../clock.js';
import { dataPaths, ROLES, SOFTWARE_VERSION, type Role } from '../config.js';
import type { SyncStateEvent } from '../events.js';
import { createIdentity, fingerprintOf, identityFromSecret } from '../identity.js';
import type { LoginLimiter } from '../rate-limit.js';
import { SyncServer } from '../server.js';
import type { ExportService } from './export.js';
import type { PowerService } from './power.js';
import type { ReplicationService } from './replication.js';
import type { RoleState, Runtime } from './runtime.js';
import type { UsersService } from './users.js';

/** What `role set` takes besides the role. */
export interface RoleOptions {
  server?: string;
  user?: string;
  password?: string;
  force?: boolean;
  /** A search for the server (no `server`): the multicast hop limit, 1 (the same router) by default. */
  searchDepth?: number;
}

/** The services a role change touches. */
export interface RoleDeps {
  logins: LoginLimiter;
  power: PowerService;
  users: UsersService;
  exports: ExportService;
  replication: ReplicationService;
}

/** The components of this machine's role. */
export class RoleService {
  readonly #rt: Runtime;
  readonly #d: RoleDeps;
  /** The port a restarted server binds again (after a restore or recovery). */
  #rebind: number | undefined;

  constructor(rt: Runtime, deps: RoleDeps) {
    this.#rt = rt;
    this.#d = deps;
  }

  /** Starts the persisted role's components. */
  async start(): Promise<void> {
    const { role, server } = this.#rt.roleState;
    if (role === 'server' || role === 'server-client') await this.#startServer();
    if (role === 'server-client') await this.#startOwnClient(false);
    if (role === 'client' && server) await this.#startClient(this.#rt.roleState, undefined, false);
    if (role === 'replica') await this.#d.replication.startReplica();
    this.emitState();
  }

  /** Stops every component. */
  async close(): Promise<void> {
    this.#d.exports.closeWindow();
    await this.#stopClient();
    await this.#stopServer();
    await this.#d.replication.stopReplica();
  }

  /**
   * Switches role (SPEC §1, §11). A server with connected clients refuses to stop serving unless
   * forced (CLIENTS_ACTIVE). Becoming a client admits this machine with the server's administrator
   * account and waits for the join to finish; on any refusal the previous role stays.
   */
  async set(role: Role, options: RoleOptions = {}): Promise<void> {
    const rt = this.#rt;
    const { replication } = this.#d;
    if (!(ROLES as readonly string[]).includes(role)) throw new MfpError('INVALID_ARGUMENT', `unknown role ${JSON.stringify(role)}; one of ${ROLES.join(', ')}`);
    const target: RoleState = { role };
    if (options.searchDepth !== undefined && (role !== 'client' || options.server)) {
      throw new MfpError('USAGE', '--search-depth is for a client that searches for its server: leave out --server');
    }
    if (role === 'client' && options.server) target.server = parseAddress(options.server);
    const current = rt.roleState;
    const sameServer = target.server && current.server && formatAddress(target.server) === formatAddress(current.server);
    // The same role again changes nothing, except that a client part the server refused (or that
    // stopped) is started again: running the command again is how a technician retries.
    const clientDown = rt.client?.state === 'refused' || rt.client?.state === 'stopped';
    if (role === current.role && (role !== 'client' || sameServer) && options.user === undefined && !clientDown) return;
    const serving = current.role === 'server' || current.role === 'server-client';
    const willServe = role === 'server' || role === 'server-client';
    if (serving && !willServe && !options.force) rt.refuseActiveClients('stop them first, or pass --force');
    const admission = options.user !== undefined ? { user: options.user, password: options.password ?? '' } : undefined;
    if (role === 'client' && !admission && (await readPin(rt.local)) === undefined) {
      // Only a machine whose join completed (it holds a pin) may connect without a password.
      throw new MfpError('USAGE', 'the first connection to a server needs its administrator account: --user ID --password PW');
    }
    if (rt.continuity) throw new MfpError('REPLICATION_RUNNING', `a ${rt.continuity} is under way; change the role when it ends`);
    if (role === 'client' && !target.server) {
      // A blank Destination Server Address: the server is searched for (SPEC §13). Without the
      // administrator account only the pinned group's server will do.
      const depth = options.searchDepth ?? 1;
      target.server = await this.#find(depth, admission ? undefined : (await readPin(rt.local))?.groupId);
      target.found = true;
      target.searchDepth = depth;
    }
    // A technician switching roles is at an awake machine: the new client part connects at once.
    this.#d.power.asleep = false;
    const release = replication.releaser();
    await this.#stopClient();
    const wasReplica = current.role === 'replica';
    try {
      if (wasReplica && role !== 'replica') {
        // Starting a replica in another role cancels its replication relationship (SPEC §9).
        await replication.stopReplica();
        await rt.local.setMeta({ replicaOf: undefined });
      }
      if (willServe && !rt.server) await this.#startServer();
      if (!willServe) await this.#stopServer();
      if (role === 'replica' && !rt.replica) await replication.startReplica();
      if (role === 'server-client') await this.#startOwnClient(true);
      if (role === 'client') await this.#startClient(target, admission, true);
    } catch (err) {
      // Back to the previous role; the error says why the new one was refused.
      await this.#stopClient();
      if (!serving) await this.#stopServer();
      if (role === 'replica' && !wasReplica) await replication.stopReplica();
      if (wasReplica && !rt.replica && !rt.server) await replication.startReplica().catch(() => undefined);
      if (serving && !rt.server) await this.#startServer().catch(() => undefined);
      if (current.role === 'server-client') await this.#startOwnClient(false).catch(() => undefined);
      if (current.role === 'client' && current.server) await this.#startClient(current, undefined, false).catch(() => undefined);
      throw err;
    }
    rt.roleState = target;
    // A server that stops serving stops replicating, forgets the target and releases it.
    if (!willServe) await replication.replicator.stopAndRelease(release);
    // A prepared selection belongs to the server-client that prepared it.
    this.#d.exports.closeWindow();
    await rt.local.setMeta({ role: target });
    rt.log.info('ROLE_CHANGED', `role ${current.role} → ${role}${target.server ? ` (server ${formatAddress(target.server)}${target.found ? ', found by search' : ''})` : ''}`);
    this.emitState();
  }

  /**
   * Searches the LAN for the server (SPEC §13): exactly one must answer (this machine's own answer
   * aside), at an address that accepts a connection. What is found is a hint: the admission proof and
   * the pinned group key are checked on it as on a typed address.
   */
  async #find(depth: number, groupId: string | undefined): Promise<ServerAddress> {
    const rt = this.#rt;
    const { search, firstReachable, SEARCH_MS } = await import('../discovery.js');
    const ms = rt.options.searchMs ?? SEARCH_MS;
    const found = (await search({ depth, timeoutMs: ms, ...(groupId !== undefined ? { groupId } : {}) })).filter((f) => f.deviceId !== rt.identity.deviceId);
    const where = (f: (typeof found)[number]) => f.addresses.map((host) => formatAddress({ host, port: f.port })).join(', ');
    if (found.length === 0) {
      throw new MfpError('ADDRESS_INCORRECT', `no server${groupId ? ` of group ${groupId}` : ''} answered the search within ${ms} ms (search depth ${depth}): check that it runs as a server and advertises (not \`run --no-advertise\`) within ${depth} router(s), or enter its address with --server HOST[:PORT]`);
    }
    if (found.length > 1) {
      throw new MfpError('SERVER_AMBIGUOUS', `${found.length} servers answered the search: ${found.map((f) => `${f.name} at ${where(f)} (group ${f.groupId})`).join('; ')}: enter the address of one with --server HOST[:PORT]`);
    }
    const f = found[0]!;
    const host = await firstReachable(f.addresses, f.port);
    if (host !== undefined) return { host, port: f.port };
    if (f.addresses.every((a) => a.includes(':'))) {
      // The manual's known case: a dual-stack server that answers with IPv6, a client with IPv6 off.
      throw new MfpError('ADDRESS_INCORRECT', `the server ${f.name} answered the search with IPv6 addresses only (${where(f)}), which this machine cannot reach (is IPv6 off here?): enter the server's IPv4 address with --server IPV4[:PORT]`);
    }
    throw new MfpError('ADDRESS_INCORRECT', `the server ${f.name} answered the search but accepts no connection at ${where(f)}: check its firewall, or enter its address with --server HOST[:PORT]`);
  }

  async #startServer(takeOver = false): Promise<void> {
    const rt = this.#rt;
    const { replication } = this.#d;
    if (rt.clock.now() < PLAUSIBLE_SINCE) {
      throw new MfpError('CLOCK_NOT_SET', `the system clock reads ${new Date(rt.clock.now()).toISOString()}: set the time (SNTP) before serving`);
    }
    const group = await GroupStore.open({
      kv: new LevelKv(dataPaths(rt.dataDir).group),
      durability: rt.options.durability,
      now: () => rt.clock.now(),
      maxUsers: rt.options.maxUsers,
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
      const foreign = group.devices().some((d) => d.self && d.id !== rt.identity.deviceId) || (await group.getMeta('replicated')) !== undefined;
      if (foreign || takeOver || !group.device(rt.identity.deviceId)) {
        const self = {
          id: rt.identity.deviceId,
          publicKey: Buffer.from(rt.identity.publicKey).toString('base64'),
          name: rt.config.name,
          serial: rt.config.serial,
          location: rt.config.location,
          software: SOFTWARE_VERSION,
          protocol: PROTOCOL_VERSION,
          capabilities: [],
          admittedAt: rt.clock.now(),
          lastSeen: rt.clock.now(),
          lastCounter: 0,
          cursor: 0,
          self: true as const,
        };
        if (foreign || takeOver) {
          await group.takeOver(self);
          rt.log.info('TOOK_OVER', `this machine now serves group ${key.groupId} from its image (seq ${group.seq}); clients resync by checksum (epoch ${group.epoch})`);
        } else await group.putDevice(self);
      }
      const server = new SyncServer({
        store: group,
        identity: rt.identity,
        groupKey,
        groupId: key.groupId,
        admin: rt.config.admin,
        limiter: this.#d.logins,
        settings: rt.config.settings,
        clock: rt.clock,
        log: rt.log,
        host: rt.options.host ?? '::',
        port: this.#rebind ?? rt.options.port ?? DEFAULT_PORT,
        software: SOFTWARE_VERSION,
        ...(rt.options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: rt.options.handshakeTimeoutMs } : {}),
        onPower: (id, p) => this.#d.power.onPower(id, p),
        onSession: () => replication.replicator.trigger('client'),
      });
      await server.start();
      group.onCommit((entries) => {
        replication.replicator.changed(entries.length);
        const evicted = entries.filter((e) => e.del && e.by === 'bound');
        if (evicted.length > 0) {
          rt.log.error('USER_LIMIT_EXCEEDED', `more than ${group.maxUsers} users: deleted the least recently used ${evicted.map((e) => e.e.slice(2)).join(', ')}`);
        }
      });
      rt.group = group;
      rt.groupKey = groupKey;
      rt.groupId = key.groupId;
      rt.groupKeyFingerprint = fingerprintOf(groupKey.publicKey);
      rt.server = server;
      rt.log.info('SERVING', `serving group ${key.groupId} on port ${server.port}`);
      if (rt.options.advertise && !isLoopbackHost(rt.options.host)) {
        // Loaded here: a machine that does not serve (or serves quietly) never loads the mDNS code.
        const { advertise } = await import('../discovery.js');
        rt.advertiser = await advertise({ groupId: key.groupId, deviceId: rt.identity.deviceId, name: rt.config.name, protocol: PROTOCOL_VERSION, port: server.port, ...(rt.options.host !== undefined ? { host: rt.options.host } : {}) }, rt.log);
        rt.log.info('ADVERTISING', `answering searches for _mfpsync._tcp (group ${key.groupId}, port ${server.port})`);
      }
      await replication.replicator.resume();
    } catch (err) {
      await rt.advertiser?.stop();
      rt.advertiser = undefined;
      await group.close();
      throw err;
    }
  }

  async #stopServer(): Promise<void> {
    const rt = this.#rt;
    const server = rt.server;
    const group = rt.group;
    const advertiser = rt.advertiser;
    rt.server = undefined;
    rt.group = undefined;
    rt.groupKey = undefined;
    rt.advertiser = undefined;
    await advertiser?.stop();
    await this.#d.replication.replicator.close();
    await server?.stop();
    await group?.close();
    // No server, nothing blocks deep sleep any more.
    if (!rt.closed) this.#d.power.emitDeepSleep();
  }

  /**
   * A client of `address` with this machine's identity, store and settings, not started. The agent's own
   * client part is made here; tools and tests use it to open extra sessions (probes, handshake timing).
   */
  async createClient(address: ServerAddress, callbacks: Pick<SyncClientOptions, 'onRemote' | 'onState' | 'onAcked' | 'onSent' | 'onEvicted' | 'onJoinProgress' | 'onLoginAgain' | 'rediscover' | 'onServerMoved'> = {}): Promise<SyncClient> {
    const rt = this.#rt;
    const client = new SyncClient({
      store: rt.local,
      identity: rt.identity,
      settings: rt.config.settings,
      clock: rt.clock,
      log: rt.log,
      server: address,
      profile: { name: rt.config.name, serial: rt.config.serial, location: rt.config.location, software: SOFTWARE_VERSION },
      heartbeatSeconds: rt.options.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS,
      protocol: rt.options.protocol,
      // A server-client's own client trusts the group this agent serves, whose key it holds itself.
      ...(rt.groupKey && address.host === 'localhost' && address.port === rt.port
        ? { trust: { groupId: rt.groupId, groupKey: rt.groupKey.publicKey } }
        : {}),
      ...callbacks,
    });
    await client.loadPin();
    return client;
  }

  /** Starts the client part of `to.server`; a server found by search is searched for again when lost. */
  async #startClient(to: RoleState, admission: { user: string; password: string } | undefined, wait: boolean): Promise<void> {
    const rt = this.#rt;
    const { users } = this.#d;
    const depth = to.searchDepth ?? 1;
    const client = await this.createClient(to.server!, {
      ...(to.found
        ? {
            rediscover: async (groupId: string) => {
              const { search } = await import('../discovery.js');
              const found = await search({ depth, groupId, ...(rt.options.searchMs !== undefined ? { timeoutMs: rt.options.searchMs } : {}) });
              return found.flatMap((f) => f.addresses.map((host) => ({ host, port: f.port })));
            },
            onServerMoved: (a: ServerAddress) => void this.#moved(a),
          }
        : {}),
      onRemote: (applied, deleted) => users.onRemote(applied, deleted),
      onState: () => this.emitState(),
      onAcked: (summary) => rt.events.emit('changes-acked', summary),
      onSent: (sent) => rt.events.emit('changes-sent', sent),
      onJoinProgress: (progress) => rt.events.emit('join-progress', progress),
      onEvicted: (evicted) => users.evicted(evicted),
      onLoginAgain: (user, entry) => rt.events.emit('login-again', loginAgainEvent(user, entry)),
    });
    rt.client = client;
    // A queued change is sent while its batch is being written (see LocalStore.onQueued).
    rt.local.onQueued = () => client.kick();
    if (wait) await client.admit(admission);
    else client.start();
  }

  /** The group's server, found again by search, proved the pinned group key at a new address: kept. */
  async #moved(address: ServerAddress): Promise<void> {
    const rt = this.#rt;
    if (rt.role !== 'client') return;
    rt.roleState = { ...rt.roleState, server: address };
    await rt.local.setMeta({ role: rt.roleState });
    rt.log.info('SERVER_FOUND', `the group's server answers at ${formatAddress(address)} now (found by search; it proved the pinned group key)`);
  }

  /** A server-client's own client part, connected to the server this machine runs. */
  #startOwnClient(wait: boolean): Promise<void> {
    return this.#startClient({ role: 'server-client', server: { host: 'localhost', port: this.#rt.port } }, undefined, wait);
  }

  async #stopClient(): Promise<void> {
    const rt = this.#rt;
    const client = rt.client;
    rt.client = undefined;
    rt.local.onQueued = undefined;
    await client?.stop();
  }

  /** A server-client's own client goes through a change of the group's settings at once. */
  async restartOwnClient(): Promise<void> {
    await this.#stopClient();
    await this.#startOwnClient(true);
  }

  /** Emits `sync-state` with the state as it is now. */
  emitState(): void {
    const rt = this.#rt;
    const error = rt.client?.lastError;
    const state: SyncStateEvent['state'] = rt.client ? rt.client.state : rt.server ? 'serving' : 'standalone';
    rt.events.emit('sync-state', { role: rt.role, state, ...(error ? { error: { code: error.code, message: error.message } } : {}) });
  }

  /** Replaces the group's image and serves it: the server stops, the image is installed atomically, it starts again. */
  async installGroup(entries: Iterable<readonly [string, Uint8Array]>): Promise<void> {
    const rt = this.#rt;
    const ownClient = rt.role === 'server-client';
    // Serve again on the same port (with port 0 the first bind chose it: clients know that one).
    this.#rebind = rt.server?.port;
    await this.#stopClient();
    await this.#stopServer();
    const kv = new LevelKv(dataPaths(rt.dataDir).group);
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
    if (ownClient) await this.#startOwnClient(false);
    this.emitState();
    if (failure !== undefined) throw failure;
  }
}
