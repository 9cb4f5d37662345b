/**
 * Who gets a connection to a listener (SPEC §6: one source address cannot starve the others). Pure
 * bookkeeping over TCP connections, from accept to close; the listener drops what it is told to.
 *
 * - Totals and per-source caps on connections, and on handshakes in progress (a connection from TCP
 *   accept until its role authenticated the peer: idle sockets, upgrades, silent WebSockets, hellos
 *   being checked). A connection over a per-source cap is cut at once.
 * - Two pools of handshakes: sources from which a device has authenticated since the listener started
 *   ("known": the machines of the group) have a reserved share strangers can neither take nor
 *   displace; every other source shares the strangers' pool.
 * - Fair share within a full pool: a new connection displaces the oldest handshake of the source
 *   holding the most in that pool, if that source holds more than the newcomer's; else it is cut.
 *   So a few sources flooding cannot keep out one more, and an authenticated connection is never
 *   displaced.
 *
 * Every place is released exactly once (a state, not a counter decremented on several paths).
 */
import {
  MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE, MAX_KNOWN_SOURCES, MAX_PENDING_HANDSHAKES, MAX_PENDING_HANDSHAKES_PER_SOURCE,
  RESERVED_HANDSHAKES,
} from '../protocol/limits.js';

/** The caps (defaults from protocol/limits.ts). */
export interface SourceLimits {
  connections: number;
  connectionsPerSource: number;
  /** Handshakes in progress from strangers' sources. */
  handshakes: number;
  handshakesPerSource: number;
  /** Handshakes in progress reserved for known sources. */
  reservedHandshakes: number;
  knownSources: number;
}

/** The default caps. */
export const SOURCE_LIMITS: SourceLimits = {
  connections: MAX_CONNECTIONS,
  connectionsPerSource: MAX_CONNECTIONS_PER_SOURCE,
  handshakes: MAX_PENDING_HANDSHAKES,
  handshakesPerSource: MAX_PENDING_HANDSHAKES_PER_SOURCE,
  reservedHandshakes: RESERVED_HANDSHAKES,
  knownSources: MAX_KNOWN_SOURCES,
};

/** A connection's place in the listener, handed to its role. */
export interface Place {
  /** The normalized source address (an IPv4-mapped IPv6 address as IPv4). */
  readonly source: string;
  /** Whether its handshake is still in progress. */
  readonly pending: boolean;
  /**
   * The role authenticated the peer: the connection no longer counts as a handshake in progress, can
   * no longer be displaced, and its source is known from now on. Idempotent; a no-op once closed.
   */
  authenticated(): void;
}

type Pool = 'known' | 'stranger';

class Slot implements Place {
  state: 'pending' | 'authenticated' | 'closed' = 'pending';
  constructor(
    readonly source: string,
    readonly pool: Pool,
    readonly cut: () => void,
    readonly onAuthenticated: (slot: Slot) => void,
  ) {}

  get pending(): boolean {
    return this.state === 'pending';
  }

  authenticated(): void {
    this.onAuthenticated(this);
  }
}

/** A source address as the caps count it: IPv4-mapped IPv6 as IPv4, lower case. */
export function sourceOf(address: string | undefined): string {
  if (!address) return '?';
  const a = address.toLowerCase();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** The connections of a listener, by source. */
export class SourceCaps {
  readonly #limits: SourceLimits;
  #connections = 0;
  readonly #bySource = new Map<string, { connections: number; pending: number }>();
  /** Handshakes in progress per pool, oldest first. */
  readonly #pending: Record<Pool, Set<Slot>> = { known: new Set(), stranger: new Set() };
  /** Sources devices authenticated from, least recent first. */
  readonly #known = new Set<string>();

  constructor(limits: Partial<SourceLimits> = {}) {
    this.#limits = { ...SOURCE_LIMITS, ...limits };
  }

  /** What is held now. */
  stats(): { connections: number; handshakes: number; reserved: number; sources: number } {
    return { connections: this.#connections, handshakes: this.#pending.stranger.size, reserved: this.#pending.known.size, sources: this.#bySource.size };
  }

  /**
   * A new connection from `source`: its place, or undefined if it must be cut at once. `cut` drops
   * the connection later, if a newcomer displaces its handshake (its place is released first).
   */
  admit(source: string, cut: () => void): Place | undefined {
    const L = this.#limits;
    const count = this.#bySource.get(source) ?? { connections: 0, pending: 0 };
    if (this.#connections >= L.connections || count.connections >= L.connectionsPerSource || count.pending >= L.handshakesPerSource) return undefined;
    const pool: Pool = this.#known.has(source) ? 'known' : 'stranger';
    const waiting = this.#pending[pool];
    if (waiting.size >= (pool === 'known' ? L.reservedHandshakes : L.handshakes)) {
      const victim = this.#victim(waiting, source);
      if (!victim) return undefined;
      this.release(victim);
      victim.cut();
    }
    const slot = new Slot(source, pool, cut, (s) => this.#authenticated(s));
    this.#bySource.set(source, count);
    count.connections++;
    count.pending++;
    this.#connections++;
    waiting.add(slot);
    return slot;
  }

  /** The connection closed: its place is freed. Idempotent. */
  release(place: Place): void {
    const slot = place as Slot;
    if (slot.state === 'closed') return;
    const count = this.#bySource.get(slot.source)!;
    if (slot.state === 'pending') {
      this.#pending[slot.pool].delete(slot);
      count.pending--;
    }
    slot.state = 'closed';
    this.#connections--;
    if (--count.connections === 0) this.#bySource.delete(slot.source);
  }

  #authenticated(slot: Slot): void {
    if (slot.state !== 'pending') return;
    slot.state = 'authenticated';
    this.#pending[slot.pool].delete(slot);
    this.#bySource.get(slot.source)!.pending--;
    this.#known.delete(slot.source);
    this.#known.add(slot.source);
    if (this.#known.size > this.#limits.knownSources) this.#known.delete(this.#known.values().next().value!);
  }

  /** The oldest handshake of the source holding the most of `waiting`, if it holds more than `source`. */
  #victim(waiting: Set<Slot>, source: string): Slot | undefined {
    const held = new Map<string, number>();
    for (const s of waiting) held.set(s.source, (held.get(s.source) ?? 0) + 1);
    const most = Math.max(...held.values());
    if (most <= (held.get(source) ?? 0)) return undefined;
    for (const s of waiting) if (held.get(s.source) === most) return s;
    return undefined;
  }
}
