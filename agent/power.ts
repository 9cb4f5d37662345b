/**
 * Which clients are operating, as the server sees them (SPEC §5), and so whether the server's deep
 * sleep is blocked.
 *
 * A client is *operating* while its last heartbeat (any frame counts) is less than three of its own
 * heartbeat intervals old. The definition is by heartbeat, not by connection: a client whose connection
 * just dropped may be reconnecting this second, so it keeps the server awake until its timeout runs out
 * — including one killed outright. A client that said it goes to sleep is *sleeping* at once and stops
 * counting; its next heartbeat (the hello of its next session) makes it operating again. Anything else
 * is *offline*.
 *
 * Kept in memory on the server: after a restart every client is offline until it is heard again.
 */
import { MISSED_HEARTBEATS } from '../protocol/limits.js';
import type { Clock, Timer } from './clock.js';

/** A client's state for deep sleep and `devices list`. */
export type PowerState = 'operating' | 'sleeping' | 'offline';

/** What the server knows of one client's power state. */
export interface ClientPower {
  deviceId: string;
  state: PowerState;
  /** Time of the last heartbeat (server clock), or null if none since the server started. */
  lastHeartbeat: number | null;
  /** How long after its last heartbeat the client stops counting as operating (3 of its intervals). */
  timeoutMs: number;
  /** While operating: when it stops counting if no heartbeat comes. */
  expiresAt: number | null;
  /** Its clock minus the server's, from its last ping, or null before one arrived. */
  skewMs: number | null;
  /** When it entered its current state. */
  since: number;
}

/** Whether deep sleep is blocked and by which clients (device ids, sorted). */
export interface DeepSleepState {
  blocked: boolean;
  blockedBy: string[];
}

interface Tracked {
  state: PowerState;
  lastHeartbeat: number | null;
  timeoutMs: number;
  skewMs: number | null;
  since: number;
  expiry: Timer | undefined;
}

/** Options of a power monitor. */
export interface PowerMonitorOptions {
  clock: Clock;
  /** A client changed state (operating, sleeping, offline). */
  onChange?: (deviceId: string, power: ClientPower) => void;
}

/** Tracks the clients' heartbeats on the server's clock. One timer per operating client, none otherwise. */
export class PowerMonitor {
  readonly #o: PowerMonitorOptions;
  readonly #clients = new Map<string, Tracked>();
  #stopped = false;

  constructor(options: PowerMonitorOptions) {
    this.#o = options;
  }

  /** A frame from a client: it is operating for another three of its intervals. */
  heartbeat(deviceId: string, heartbeatSeconds: number): void {
    if (this.#stopped) return;
    if (!Number.isFinite(heartbeatSeconds) || heartbeatSeconds <= 0) throw new TypeError('heartbeatSeconds must be a positive number');
    const now = this.#o.clock.now();
    const t = this.#track(deviceId);
    t.lastHeartbeat = now;
    t.timeoutMs = heartbeatSeconds * 1000 * MISSED_HEARTBEATS;
    t.expiry?.cancel();
    t.expiry = this.#o.clock.setTimeout(() => {
      t.expiry = undefined;
      this.#set(deviceId, t, 'offline');
    }, t.timeoutMs);
    this.#set(deviceId, t, 'operating');
  }

  /** The client said it goes to sleep: it stops counting at once. */
  sleeping(deviceId: string): void {
    if (this.#stopped) return;
    const t = this.#track(deviceId);
    t.expiry?.cancel();
    t.expiry = undefined;
    this.#set(deviceId, t, 'sleeping');
  }

  /** Records a client's clock skew (its clock minus the server's). */
  skew(deviceId: string, skewMs: number): void {
    const t = this.#clients.get(deviceId);
    if (t) t.skewMs = skewMs;
  }

  /** The client left the group (removed): it is forgotten. */
  forget(deviceId: string): void {
    const t = this.#clients.get(deviceId);
    if (!t) return;
    t.expiry?.cancel();
    t.expiry = undefined;
    this.#set(deviceId, t, 'offline');
    this.#clients.delete(deviceId);
  }

  /** One client's state, or undefined if it was not heard since the server started. */
  get(deviceId: string): ClientPower | undefined {
    const t = this.#clients.get(deviceId);
    return t && this.#view(deviceId, t);
  }

  /** Every client heard since the server started. */
  all(): ClientPower[] {
    return [...this.#clients].map(([id, t]) => this.#view(id, t));
  }

  /** Deep sleep is blocked while at least one client is operating. */
  deepSleep(): DeepSleepState {
    const blockedBy = [...this.#clients].filter(([, t]) => t.state === 'operating').map(([id]) => id).sort();
    return { blocked: blockedBy.length > 0, blockedBy };
  }

  /** Cancels every timer; the monitor reports nothing after this. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#clients.values()) {
      t.expiry?.cancel();
      t.expiry = undefined;
    }
  }

  #track(deviceId: string): Tracked {
    let t = this.#clients.get(deviceId);
    if (!t) {
      t = { state: 'offline', lastHeartbeat: null, timeoutMs: 0, skewMs: null, since: this.#o.clock.now(), expiry: undefined };
      this.#clients.set(deviceId, t);
    }
    return t;
  }

  #set(deviceId: string, t: Tracked, state: PowerState): void {
    if (t.state === state) return;
    t.state = state;
    t.since = this.#o.clock.now();
    if (!this.#stopped) this.#o.onChange?.(deviceId, this.#view(deviceId, t));
  }

  #view(deviceId: string, t: Tracked): ClientPower {
    return {
      deviceId,
      state: t.state,
      lastHeartbeat: t.lastHeartbeat,
      timeoutMs: t.timeoutMs,
      expiresAt: t.state === 'operating' && t.lastHeartbeat !== null ? t.lastHeartbeat + t.timeoutMs : null,
      skewMs: t.skewMs,
      since: t.since,
    };
  }
}
