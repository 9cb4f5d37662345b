/**
 * Injected time. Heartbeats, timeouts and reconnect backoff take a Clock, so tests can move time by
 * hand and check that no timer is left; the system clock's timers are unref()'ed so an idle agent
 * never keeps a process alive by them alone.
 */

/** A cancellable timer. */
export interface Timer {
  cancel(): void;
}

/** Time and timers. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * A clock `ms` off from `base` (positive: ahead). Only the reading moves: timers still wait real
 * durations. This is how a machine with a badly set clock behaves, which is what the soak and the skew
 * report need to see.
 */
export function offsetClock(base: Clock, ms: number): Clock {
  if (!Number.isFinite(ms)) throw new TypeError(`clock offset must be a finite number of ms, got ${ms}`);
  return { now: () => base.now() + ms, setTimeout: (fn, delay) => base.setTimeout(fn, delay) };
}

/** A clock that moves only when told: for tests. */
export class ManualClock implements Clock {
  #now: number;
  #timers = new Set<{ at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const t = { at: this.#now + Math.max(0, ms), fn };
    this.#timers.add(t);
    return { cancel: () => this.#timers.delete(t) };
  }

  /** Timers still pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: { at: number; fn: () => void } | undefined;
      for (const t of this.#timers) if (t.at <= end && (!next || t.at < next.at)) next = t;
      if (!next) break;
      this.#timers.delete(next);
      this.#now = next.at;
      next.fn();
    }
    this.#now = end;
  }
}

/** Earliest plausible wall-clock time: a clock before this was never set (SPEC §5, CLOCK_NOT_SET). */
export const PLAUSIBLE_SINCE = Date.UTC(2024, 0, 1);
