/**
 * Power (SPEC §5): this machine's sleep and wake, and on a server whether its deep sleep is blocked and
 * by which clients (`power status`, the `deep-sleep` and `device-state` events).
 */
import { DEFAULT_HEARTBEAT_SECONDS, MISSED_HEARTBEATS } from '../../protocol/limits.js';
import type { ClientState } from '../client.js';
import type { Role } from '../config.js';
import type { ClientPower, DeepSleepState, PowerState } from '../power.js';
import type { Runtime } from './runtime.js';

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

/** Sleep, wake and deep sleep. */
export class PowerService {
  readonly #rt: Runtime;
  /** sleep() was called and wake() not since. */
  asleep = false;
  #deepSleep: DeepSleepState = { blocked: false, blockedBy: [] };

  constructor(rt: Runtime) {
    this.#rt = rt;
  }

  /**
   * The machine goes to sleep. Its client part (client, server-client) tells the server, which stops
   * counting it as operating at once, and then keeps no session, heartbeat or timer until wake(). A
   * server part keeps serving: the firmware deep-sleeps only while `power status` says it is not blocked.
   */
  async sleep(): Promise<PowerStatus> {
    if (!this.asleep) {
      this.asleep = true;
      const told = await this.#rt.client?.sleep();
      this.#rt.log.info('SLEEP', `this machine goes to sleep${told === undefined ? '' : told ? '; the server was told' : '; the server could not be told'}`);
    }
    return this.status();
  }

  /** The machine woke up: its client part reconnects now and resumes by cursor. */
  async wake(): Promise<PowerStatus> {
    if (this.asleep) {
      this.asleep = false;
      this.#rt.client?.wake();
      this.#rt.log.info('WAKE', 'this machine woke up');
    }
    return this.status();
  }

  /** Deep sleep and heartbeat state: for a server, its clients; for a client, its own session. */
  status(): PowerStatus {
    const rt = this.#rt;
    const heartbeatSeconds = rt.options.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
    const out: PowerStatus = {
      role: rt.role,
      asleep: this.asleep,
      deepSleepBlocked: false,
      blockedBy: [],
      heartbeatSeconds,
      timeoutMs: heartbeatSeconds * 1000 * MISSED_HEARTBEATS,
    };
    const server = rt.server;
    const group = rt.group;
    if (server && group) {
      const { deepSleep, clients } = server.power();
      out.deepSleepBlocked = deepSleep.blocked;
      out.blockedBy = deepSleep.blockedBy;
      const known = new Map(clients.map((c) => [c.deviceId, c]));
      out.clients = group
        .devices()
        .filter((d) => !d.self || known.has(d.id) || rt.role === 'server-client')
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
    const client = rt.client;
    if (client) out.client = { state: client.state, operating: client.operating, skewMs: client.skewMs };
    return out;
  }

  /** Emits `deep-sleep` when whether it is blocked, or by whom, changed. */
  emitDeepSleep(): void {
    const now = this.#rt.server?.power().deepSleep ?? { blocked: false, blockedBy: [] };
    const was = this.#deepSleep;
    if (now.blocked === was.blocked && now.blockedBy.join() === was.blockedBy.join()) return;
    this.#deepSleep = now;
    this.#rt.events.emit('deep-sleep', { blocked: now.blocked, blockedBy: [...now.blockedBy] });
  }

  /** A client of this server changed power state. */
  onPower(deviceId: string, p: ClientPower): void {
    const name = this.#rt.group?.device(deviceId)?.name ?? '';
    this.#rt.events.emit('device-state', { deviceId, name, state: p.state, lastHeartbeat: p.lastHeartbeat });
    this.emitDeepSleep();
  }
}
