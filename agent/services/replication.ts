/**
 * Replication (SPEC §9): a server's copies of its image to a replica (start, stop, status, the
 * schedule), a replica's listener, and the rule that a replication run, a backup, a restore and a
 * recovery exclude one another.
 */
import { MfpError } from '../../protocol/errors.js';
import { DEFAULT_PORT } from '../../protocol/limits.js';
import { LevelKv } from '../../storage/level-kv.js';
import { parseAddress } from '../address.js';
import { clearDeviceSlot } from '../backup.js';
import { formatAddress, type ServerAddress } from '../client.js';
import { dataPaths, SOFTWARE_VERSION } from '../config.js';
import type { LoginLimiter } from '../rate-limit.js';
import { pushImage, releaseReplica, ReplicaServer, replicationProtocolFor, type ReplicaRelation, type ReplicatedRecord } from '../replication.js';
import { formatStamp, Replicator, startError, startSettings, type ReplicationConfig, type ReplicationStatus, type StopResult } from '../replicator.js';
import type { Runtime } from './runtime.js';

/** What `replication status` shows on a replica. */
export interface ReplicaStatus {
  role: 'replica';
  message: string;
  relation: ReplicaRelation | null;
  last: ReplicatedRecord | null;
}

/** Replication, and the continuity operations' mutual exclusion. */
export class ReplicationService {
  readonly #rt: Runtime;
  readonly #logins: LoginLimiter;
  /** A server's schedule and runs. */
  readonly replicator: Replicator;

  constructor(rt: Runtime, logins: LoginLimiter) {
    this.#rt = rt;
    this.#logins = logins;
    this.replicator = new Replicator({
      local: rt.local,
      log: rt.log,
      now: () => rt.clock.now(),
      run: () => this.#push(),
      afterRun: () => clearDeviceSlot(rt.backupDir),
    });
  }

  /** Whether a replication run is executing. */
  get replicating(): boolean {
    return this.replicator.running || this.#rt.replica?.busy === true;
  }

  /** Runs a backup, restore, recovery or first replication, refused (REPLICATION_RUNNING) while another one runs. */
  async exclusive<T>(what: string, run: () => Promise<T>): Promise<T> {
    const rt = this.#rt;
    if (this.replicating) throw new MfpError('REPLICATION_RUNNING', `a replication is executing; the ${what} waits until it ends`);
    if (rt.continuity) throw new MfpError('REPLICATION_RUNNING', `a ${rt.continuity} is under way; the ${what} waits until it ends`);
    rt.continuity = what;
    try {
      return await run();
    } finally {
      rt.continuity = undefined;
    }
  }

  /** Starts a replica's listener on the mirrored image. */
  async startReplica(): Promise<void> {
    const rt = this.#rt;
    const mirror = new LevelKv(dataPaths(rt.dataDir).group);
    await mirror.open();
    const replica = new ReplicaServer({
      kv: mirror,
      local: rt.local,
      identity: rt.identity,
      admin: rt.config.admin,
      limiter: this.#logins,
      settings: rt.config.settings,
      clock: rt.clock,
      log: rt.log,
      host: rt.options.host ?? '::',
      port: rt.options.port ?? DEFAULT_PORT,
      software: SOFTWARE_VERSION,
      ...(rt.options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: rt.options.handshakeTimeoutMs } : {}),
      onInstalled: (rec) => rt.events.emit('replicated', rec),
      protocol: replicationProtocolFor(rt.protocol),
    });
    try {
      await replica.start();
    } catch (err) {
      await mirror.close();
      throw err;
    }
    rt.mirror = mirror;
    rt.replica = replica;
    rt.log.info('REPLICA', `replication target on port ${replica.port}`);
  }

  /** Stops a replica's listener. */
  async stopReplica(): Promise<void> {
    const rt = this.#rt;
    const replica = rt.replica;
    const mirror = rt.mirror;
    rt.replica = undefined;
    rt.mirror = undefined;
    await replica?.stop();
    await mirror?.close();
  }

  /** One replication run to the configured target. */
  async #push() {
    const config = this.replicator.config;
    if (!config) throw new MfpError('WRONG_ROLE', 'replication is not configured');
    if (this.#rt.continuity) throw new MfpError('REPLICATION_RUNNING', `a ${this.#rt.continuity} is under way; the replication waits for the next trigger`);
    return pushImage(this.#pushOptions(parseAddress(config.to), { pinnedReplicaKey: config.replicaKey }));
  }

  /** A push of this server's image to `address`, paired (pinned key) or pairing (administrator account). */
  #pushOptions(address: ServerAddress, trust: { pinnedReplicaKey: string } | { admission: { user: string; password: string } }): Parameters<typeof pushImage>[0] {
    const rt = this.#rt;
    const group = rt.group;
    if (!group || !rt.groupKey) throw new MfpError('WRONG_ROLE', `replication runs on a server; this machine is ${rt.role}`);
    return {
      address,
      identity: rt.identity,
      name: rt.config.name,
      software: SOFTWARE_VERSION,
      ...trust,
      kv: group.kv,
      groupId: rt.groupId,
      groupKey: rt.groupKey,
      now: () => rt.clock.now(),
    };
  }

  /**
   * `replication start`: pairs with the target (its administrator account), runs the first copy now —
   * its errors are the command's (ADDRESS_INCORRECT, AUTH_INCORRECT, DEST_UNSUPPORTED) — and schedules
   * the next ones.
   */
  async start(options: { to: string; user: string; password: string; intervalMinutes?: number; threshold?: number }): Promise<ReplicationStatus> {
    const rt = this.#rt;
    if (!rt.group || !rt.groupKey) throw new MfpError('WRONG_ROLE', `replication runs on a server; this machine is ${rt.role}`);
    const address = parseAddress(options.to);
    const { intervalMinutes: interval, threshold } = startSettings(this.replicator.record, formatAddress(address), options);
    await this.replicator.idle();
    await this.exclusive('replication', async () => {
      const first = await pushImage(this.#pushOptions(address, { admission: { user: options.user, password: options.password } })).catch((err: unknown) => {
        throw startError(err);
      });
      await this.replicator.start(
        {
          to: formatAddress(address),
          intervalMinutes: interval,
          threshold,
          replicaKey: Buffer.from(first.replicaKey).toString('base64'),
          replicaId: first.replicaId,
          startedAt: rt.clock.now(),
        },
        first,
      );
      rt.log.info('REPLICATION_STARTED', `replicating to ${formatAddress(address)} (${first.replicaId}) every ${interval} min or ${threshold} changes: first copy ${first.bytes} bytes`);
    });
    return this.replicator.status();
  }

  /** `replication stop`: stops, forgets the destination and releases it (SPEC §9). */
  async stop(): Promise<StopResult> {
    const r = await this.replicator.stopAndRelease(this.releaser());
    if (r.stopped) this.#rt.log.info('REPLICATION_STOPPED', r.message);
    return r;
  }

  /** What releases the destination, with the group key as it is now (a role change stops the server first). */
  releaser(): ((config: ReplicationConfig) => Promise<void>) | undefined {
    if (!this.#rt.group || !this.#rt.groupKey || !this.replicator.configured) return undefined;
    const o = this.#pushOptions({ host: '', port: 0 }, { pinnedReplicaKey: '' });
    return (config) =>
      releaseReplica({ address: parseAddress(config.to), identity: o.identity, name: o.name, software: o.software, groupId: o.groupId, groupKey: o.groupKey, pinnedReplicaKey: config.replicaKey });
  }

  /** `replication status`: a server's schedule and last run, or what a replica last received. */
  async status(): Promise<ReplicationStatus | ReplicaStatus> {
    const replica = this.#rt.replica;
    if (replica) {
      const last = (await replica.last()) ?? null;
      const relation = (await replica.relation()) ?? null;
      const message = last && relation
        ? `Replica of group ${last.groupId} from ${last.source.name} (${last.source.deviceId}). Last Replication : ${formatStamp(last.at)}`
        : last
          ? `Released: holds the last copy of group ${last.groupId} from ${last.source.name} (${last.source.deviceId}), of ${formatStamp(last.at)}; another server may start replication to this machine`
          : relation ? `Waiting for the first replication of group ${relation.groupId}...` : 'Waiting for a server to start replication to this machine...';
      return { role: 'replica', message, relation, last };
    }
    return this.replicator.status();
  }
}
