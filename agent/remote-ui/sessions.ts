/**
 * The Remote UI's login sessions: in memory (a restart logs everyone out), bounded, each a random id
 * (the cookie) with its own CSRF token, ended by logout or after an idle time (30 minutes). Nothing
 * runs on a timer: an expired session is dropped when it is next looked at, or when a new one needs
 * its place. Time comes from the agent's clock.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';

/** How long a session lives without a request (SPEC §12: 30 minutes idle). */
export const SESSION_IDLE_MS = 30 * 60_000;
/** At most this many sessions at once; a new login beyond it ends the one idle the longest. */
export const MAX_SESSIONS = 16;

/** One administrator's login. */
export interface Session {
  readonly id: string;
  /** The token every state-changing request carries in X-CSRF-Token. */
  readonly csrf: string;
  readonly user: string;
  readonly createdAt: number;
  lastSeen: number;
}

/** Options of a session table. */
export interface SessionTableOptions {
  clock: Clock;
  idleMs?: number;
  max?: number;
  /** Told when a session ends (logout, expiry or eviction): its event streams close. */
  onEnd?: (id: string) => void;
}

/** Compares two tokens in constant time (a missing or mis-sized one is simply not equal). */
export function sameToken(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The table of live sessions. */
export class SessionTable {
  readonly idleMs: number;
  readonly #o: SessionTableOptions;
  readonly #max: number;
  /** In order of last use (a Map keeps insertion order; a touched session is moved to the end). */
  readonly #sessions = new Map<string, Session>();

  constructor(options: SessionTableOptions) {
    this.#o = options;
    this.idleMs = options.idleMs ?? SESSION_IDLE_MS;
    this.#max = options.max ?? MAX_SESSIONS;
  }

  /** How many sessions are live now. */
  get size(): number {
    this.#sweep();
    return this.#sessions.size;
  }

  /** Opens a session for a user whose password was checked. */
  create(user: string): Session {
    this.#sweep();
    while (this.#sessions.size >= this.#max) this.end(this.#sessions.keys().next().value!);
    const now = this.#o.clock.now();
    const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), user, createdAt: now, lastSeen: now };
    this.#sessions.set(s.id, s);
    return s;
  }

  /** The live session of a cookie value, marked used now; undefined if unknown or expired. */
  touch(id: string | undefined): Session | undefined {
    const s = this.peek(id);
    if (!s) return undefined;
    s.lastSeen = this.#o.clock.now();
    this.#sessions.delete(s.id);
    this.#sessions.set(s.id, s);
    return s;
  }

  /** The live session of a cookie value without marking it used (an event stream's check). */
  peek(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const s = this.#sessions.get(id);
    if (!s) return undefined;
    if (this.#expired(s)) {
      this.end(s.id);
      return undefined;
    }
    return s;
  }

  /** Ends a session (logout). */
  end(id: string): void {
    if (this.#sessions.delete(id)) this.#o.onEnd?.(id);
  }

  /** Ends every session (the UI stops). */
  clear(): void {
    for (const id of [...this.#sessions.keys()]) this.end(id);
  }

  #expired(s: Session): boolean {
    return this.#o.clock.now() - s.lastSeen >= this.idleMs;
  }

  /** Drops expired sessions: the least recently used come first, so the sweep stops at the first live one. */
  #sweep(): void {
    for (const s of this.#sessions.values()) {
      if (!this.#expired(s)) break;
      this.end(s.id);
    }
  }
}
