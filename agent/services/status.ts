/**
 * What this machine says of itself (SPEC §11): `status` with its health (green, yellow, red) and why,
 * and the logs an administrator reads — the sync log and the conflict log.
 */
import type { ConflictEntry, LogLevel, SyncLogEntry } from '../../storage/store.js';
import { formatAddress } from '../client.js';
import { SOFTWARE_VERSION } from '../config.js';
import { assessHealth, type HealthFacts } from '../health.js';
import { fingerprintOf } from '../identity.js';
import type { Runtime } from './runtime.js';

/** Status, health and logs. */
export class StatusService {
  readonly #rt: Runtime;

  constructor(rt: Runtime) {
    this.#rt = rt;
  }

  /** A one-look summary of this machine, with its health (green, yellow, red) and why. */
  status() {
    const rt = this.#rt;
    const client = rt.client;
    const group = rt.group;
    const { health, reasons } = assessHealth(this.#healthFacts());
    return {
      deviceId: rt.identity.deviceId,
      name: rt.config.name,
      serial: rt.config.serial,
      location: rt.config.location,
      software: SOFTWARE_VERSION,
      protocol: rt.protocol,
      role: rt.role,
      ...(rt.server ? { port: rt.server.port } : {}),
      ...(rt.replica ? { port: rt.replica.port } : {}),
      ...(client
        ? {
            client: {
              server: formatAddress(client.server),
              ...(rt.roleState.found && rt.role === 'client' ? { foundBy: 'search' as const } : {}),
              state: client.state,
              ...(client.session ? { session: client.session } : {}),
              cursor: rt.local.cursor,
              queued: rt.local.queueSize,
              ...(client.pin?.groupKey ? { groupId: client.pin.groupId, groupKey: fingerprintOf(Buffer.from(client.pin.groupKey, 'base64')) } : {}),
              ...(client.lastError ? { error: { code: client.lastError.code, message: client.lastError.message } } : {}),
              ...(client.loginAgain.length > 0 ? { loginAgain: client.loginAgain } : {}),
            },
          }
        : {}),
      ...(group && rt.server
        ? {
            group: {
              groupId: rt.groupId,
              groupKey: rt.groupKeyFingerprint,
              epoch: group.epoch,
              seq: group.seq,
              devices: group.devices().length,
              connected: rt.server.sessions().length,
              users: group.users().length,
            },
          }
        : {}),
      ...(rt.remoteUi ? { remoteUi: { ...rt.remoteUi } } : {}),
      localUsers: rt.local.users().length,
      health,
      healthReasons: reasons,
    };
  }

  #healthFacts(): HealthFacts {
    const rt = this.#rt;
    const client = rt.client;
    const group = rt.group;
    const server = rt.server;
    const facts: HealthFacts = {
      now: rt.clock.now(),
      storeErrors: [],
      users: [{ store: 'local', count: rt.local.users().length, max: rt.local.maxUsers }],
    };
    for (const [store, s] of [['local', rt.local], ['group', group]] as const) {
      const e = s?.writeError;
      if (e) facts.storeErrors!.push({ store, code: e.code, message: e.message });
    }
    if (client) {
      const e = client.lastError;
      facts.client = {
        state: client.state,
        server: formatAddress(client.server),
        queued: rt.local.queueSize,
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

  /** The conflict log: this machine's, and the group's on a server. */
  async conflicts(): Promise<(ConflictEntry & { log: 'local' | 'group' })[]> {
    const rt = this.#rt;
    const local = (await rt.local.conflicts()).map((c) => ({ ...c, log: 'local' as const }));
    const group = rt.group ? (await rt.group.conflicts()).map((c) => ({ ...c, log: 'group' as const })) : [];
    return [...local, ...group].sort((a, b) => a.at - b.at);
  }

  /** The sync log at or above a level. */
  syncLog(level: LogLevel = 'info'): Promise<SyncLogEntry[]> {
    return this.#rt.local.syncLog(level);
  }
}
