/**
 * What the simulated users do: log in on a client (the agent's login: the client fetches the user and
 * holds them), edit items on clients at the fleet's rate, and now and then a client goes to sleep and
 * wakes a few seconds later. It measures propagation: from an edit on one client to the item-changed
 * event of the same item on each other client that holds the user and is synchronized.
 */
import { performance } from 'node:perf_hooks';
import type { ItemChangedEvent } from '../../agent/agent.js';
import { rng, userRecord } from '../bench/records.js';
import { percentile } from '../bench/stats.js';
import type { Fleet, Machine } from './fleet.js';
import type { SimTotals } from './snapshot.js';

/** The driver's step: edits due are issued each step. */
const STEP_MS = 50;
/** Items the simulated users change (their values come from the realistic record generator). */
const EDITED_ITEMS = ['language', 'accessibility', 'screen-after-login', 'home', 'list-order', 'job-defaults', 'personal-buttons', 'previous-settings'];
/** Edits awaiting their acknowledgement, at most: a slow store slows the driver instead of piling up. */
const MAX_IN_FLIGHT = 200;
/** Propagation samples kept (the latest ones). */
const MAX_SAMPLES = 10_000;

interface Pending {
  at: number;
  waiting: Set<Machine>;
}

/** Options of a driver. */
export interface DriverOptions {
  fleet: Fleet;
  users: readonly string[];
  /** Edits per second across the fleet. */
  rate: number;
  seed: number;
}

/** Drives logins, edits and sleep/wake cycles on the fleet's clients. */
export class Driver {
  readonly #o: DriverOptions;
  readonly #random: () => number;
  readonly #pending = new Map<string, Pending>();
  readonly #samples: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #sleepers = new Set<NodeJS.Timeout>();
  #startedAt = 0;
  #due = { edits: 0, logins: 0 };
  #inFlight = 0;
  #nextSleepAt = 0;
  #running = false;
  #editNo = 0;
  readonly totals: SimTotals = { edits: 0, logins: 0, sleeps: 0, propagated: 0, p50Ms: null, p95Ms: null, conflicts: 0, errors: 0 };

  constructor(options: DriverOptions) {
    this.#o = options;
    this.#random = rng(options.seed);
  }

  /** Starts driving. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#startedAt = performance.now();
    this.#nextSleepAt = this.#startedAt + this.#gap();
    for (const c of this.#o.fleet.clients) {
      c.agent?.on('changes-acked', (a) => {
        this.totals.conflicts += a.conflicts;
      });
    }
    this.#timer = setInterval(() => this.#step(), STEP_MS);
  }

  /** Stops driving: no new operation starts; sleeping clients are woken (so they can settle). */
  async stop(): Promise<void> {
    this.#running = false;
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const t of this.#sleepers) clearTimeout(t);
    this.#sleepers.clear();
  }

  /** Wakes every client that sleeps. */
  async wakeAll(): Promise<void> {
    await Promise.allSettled(this.#o.fleet.clients.map((c) => (c.agent && !c.failed && c.agent.power().asleep ? c.agent.wake() : undefined)));
  }

  /** Totals with the current propagation percentiles. */
  snapshot(): SimTotals {
    const sorted = [...this.#samples].sort((a, b) => a - b);
    const round = (x: number) => Math.round(x * 100) / 100;
    return {
      ...this.totals,
      errors: this.#o.fleet.machines.reduce((n, m) => n + m.errors, 0),
      p50Ms: sorted.length > 0 ? round(percentile(sorted, 0.5)) : null,
      p95Ms: sorted.length > 0 ? round(percentile(sorted, 0.95)) : null,
    };
  }

  /** An item-changed event on a machine: a remote one may complete an edit's propagation. */
  onItemChanged(m: Machine, e: ItemChangedEvent): void {
    if (e.source !== 'remote' || e.kind !== 'user') return;
    const key = `${e.id}\u0000${e.item}`;
    const p = this.#pending.get(key);
    if (!p || !p.waiting.delete(m)) return;
    this.totals.propagated++;
    this.#samples.push(performance.now() - p.at);
    if (this.#samples.length > MAX_SAMPLES) this.#samples.splice(0, this.#samples.length - MAX_SAMPLES);
    if (p.waiting.size === 0) this.#pending.delete(key);
  }

  #pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[Math.floor(this.#random() * xs.length)];
  }

  /** Seconds between sleep cycles: 4–10 s. */
  #gap(): number {
    return 4000 + this.#random() * 6000;
  }

  #usable(): Machine[] {
    return this.#o.fleet.clients.filter((c) => c.agent && !c.failed && c.joined);
  }

  #step(): void {
    if (!this.#running) return;
    const now = performance.now();
    const elapsed = (now - this.#startedAt) / 1000;
    // Edits at the rate; logins at a tenth of it (at least one every two seconds).
    const editsDue = Math.floor(elapsed * this.#o.rate) - this.#due.edits;
    for (let i = 0; i < editsDue && this.#inFlight < MAX_IN_FLIGHT; i++) this.#edit();
    this.#due.edits += editsDue;
    const loginsDue = Math.floor(elapsed * Math.max(0.5, this.#o.rate / 10)) - this.#due.logins;
    for (let i = 0; i < loginsDue; i++) this.#login();
    this.#due.logins += loginsDue;
    if (now >= this.#nextSleepAt) {
      this.#nextSleepAt = now + this.#gap();
      this.#sleepCycle();
    }
  }

  #login(): void {
    const m = this.#pick(this.#usable());
    const user = this.#pick(this.#o.users);
    if (!m || !user) return;
    this.totals.logins++;
    m.agent!.login(user).then(
      () => m.hold(user),
      (err) => this.#failed(m, err),
    );
  }

  #edit(): void {
    const m = this.#pick(this.#usable());
    if (!m) return;
    const user = this.#pick(m.heldList) ?? this.#pick(this.#o.users)!;
    const item = this.#pick(EDITED_ITEMS)!;
    const value = userRecord(user, 1000 + this.#editNo++)[item];
    // Expected on every other synchronized client that holds the user (a sleeping one catches up later
    // and would measure its sleep, not propagation).
    const waiting = new Set(this.#usable().filter((c) => c !== m && c.held.has(user) && c.agent!.client?.state === 'live'));
    const key = `${user}\u0000${item}`;
    if (m.agent!.client?.state === 'live' && waiting.size > 0) this.#pending.set(key, { at: performance.now(), waiting });
    else this.#pending.delete(key);
    this.totals.edits++;
    this.#inFlight++;
    m.hold(user);
    m.agent!.setItem('user', user, item, value).then(
      () => this.#inFlight--,
      (err) => {
        this.#inFlight--;
        this.#failed(m, err);
      },
    );
  }

  /** A client goes to sleep for 1.5–4 s, then wakes and resumes by cursor. */
  #sleepCycle(): void {
    const m = this.#pick(this.#usable().filter((c) => c.agent!.client?.state === 'live'));
    if (!m) return;
    const agent = m.agent!;
    this.totals.sleeps++;
    for (const p of this.#pending.values()) p.waiting.delete(m);
    agent.sleep().then(
      () => {
        if (!this.#running) return;
        const t = setTimeout(() => {
          this.#sleepers.delete(t);
          agent.wake().catch((err: unknown) => this.#failed(m, err));
        }, 1500 + this.#random() * 2500);
        this.#sleepers.add(t);
      },
      (err) => this.#failed(m, err),
    );
  }

  #failed(m: Machine, err: unknown): void {
    // Operations cut short by the agents closing at the end are not failures of the run.
    if (!this.#running) return;
    m.fail(err);
  }
}
