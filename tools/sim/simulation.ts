/**
 * One run of the simulator: start the fleet (the server loads the users while each client writes its
 * stale copy), join the clients (all at once; the server takes them one at a time), drive activity
 * for the duration or until stopped, let the clients settle, close every agent and remove the data.
 * A snapshot goes to `onTick` about four times a second and once more at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { rng, userNames } from '../bench/records.js';
import { Driver } from './driver.js';
import { describeError, Fleet } from './fleet.js';
import type { SimOptions, SimPhase, SimSnapshot, SimSummary } from './snapshot.js';

/** Milliseconds between snapshots. */
export const TICK_MS = 250;
/** How long the clients get to settle (synchronized, nothing queued, no lag) after the activity stops. */
const SETTLE_MS = 15_000;

type StopReason = SimSummary['stoppedBy'];

/** A simulation run. */
export class Simulation {
  readonly options: SimOptions;
  readonly dir: string;
  readonly #fleet: Fleet;
  readonly #driver: Driver;
  readonly #users: string[];
  readonly #onTick: (s: SimSnapshot) => void;
  #phase: SimPhase = 'starting';
  #startedAt = performance.now();
  #tick: NodeJS.Timeout | undefined;
  #stopReason: StopReason | undefined;
  #stopped!: () => void;
  readonly #stop = new Promise<void>((resolve) => (this.#stopped = resolve));
  #runError: string | undefined;
  /** A signal arrived (after the duration ended, too): cut the settling short. */
  #interrupted = false;

  /** Creates the run's temporary directory under the parent; nothing starts until run(). */
  constructor(options: SimOptions, onTick: (s: SimSnapshot) => void) {
    this.options = options;
    this.#onTick = onTick;
    this.dir = mkdtempSync(join(options.parentDir, 'mfpsync-sim-'));
    this.#users = userNames(options.users);
    const random = rng(options.seed ^ 0x5eed);
    const users = this.#users;
    this.#fleet = new Fleet({
      dir: this.dir,
      devices: options.devices,
      users,
      // Each client used the group's machines before: it holds an older copy of about half the users.
      staleCopy: (client) => {
        const some = users.filter(() => random() < 0.5);
        return some.length > 0 ? some : [users[client % users.length]!];
      },
      onItemChanged: (m, e) => this.#driver.onItemChanged(m, e),
    });
    this.#driver = new Driver({ fleet: this.#fleet, users, rate: options.rate, seed: options.seed });
  }

  /** Asks the run to stop: it stops driving, closes the agents and resolves run(). */
  stop(reason: StopReason): void {
    this.#stopReason ??= reason;
    if (reason !== 'duration') this.#interrupted = true;
    this.#stopped();
  }

  get stopping(): boolean {
    return this.#stopReason !== undefined;
  }

  /** Runs until the duration ends or stop() is called; resolves with the summary once everything is closed and removed. */
  async run(): Promise<SimSummary> {
    this.#startedAt = performance.now();
    this.#tick = setInterval(() => this.#emit(), TICK_MS);
    this.#emit();
    let settled = false;
    try {
      await this.#until(this.#start());
      if (!this.stopping) {
        this.#phase = 'running';
        this.#driver.start();
        const d = this.options.durationS;
        let timer: NodeJS.Timeout | undefined;
        if (d !== undefined) timer = setTimeout(() => this.stop('duration'), d * 1000);
        await this.#stop;
        clearTimeout(timer);
      }
      await this.#driver.stop();
      if (this.#stopReason === 'duration') {
        this.#phase = 'settling';
        this.#emit();
        await this.#driver.wakeAll();
        settled = await this.#settle();
      }
    } catch (err) {
      this.#runError = describeError(err);
      this.#stopReason ??= 'error';
    }
    await this.#driver.stop();
    this.#phase = 'stopping';
    const maxLag = this.#maxLag();
    settled = settled || (this.#fleet.settled() && maxLag === 0);
    // The machines as they were when the agents were closed: the last frame shows that, not closed stores.
    const last = this.snapshot();
    clearInterval(this.#tick);
    this.#tick = undefined;
    this.#onTick(last);
    await this.#fleet.close();
    const dirRemoved = removeDir(this.dir);
    this.#phase = 'done';
    this.#onTick({ ...last, phase: 'done', elapsedMs: Math.round(performance.now() - this.#startedAt) });
    const errors = this.#fleet.machines.filter((m) => m.error !== null).map((m) => `${m.name}: ${m.error}`);
    if (this.#runError) errors.unshift(`simulator: ${this.#runError}`);
    return {
      type: 'summary',
      elapsedMs: Math.round(performance.now() - this.#startedAt),
      stoppedBy: this.#stopReason ?? 'error',
      devices: this.options.devices,
      users: this.options.users,
      seed: this.options.seed,
      totals: this.#driver.snapshot(),
      settled,
      maxLag,
      errors,
      dir: this.dir,
      dirRemoved,
    };
  }

  /** Removes the temporary data now (a forced exit: the agents may still hold files open). */
  removeNow(): boolean {
    return removeDir(this.dir);
  }

  /** The current snapshot. */
  snapshot(): SimSnapshot {
    const now = performance.now();
    const seq = this.#fleet.seq;
    return {
      type: 'snapshot',
      phase: this.#phase,
      elapsedMs: Math.round(now - this.#startedAt),
      devices: this.options.devices,
      users: this.options.users,
      rate: this.options.rate,
      seed: this.options.seed,
      dir: this.dir,
      machines: this.#fleet.machines.map((m) => m.view(seq, now)),
      totals: this.#driver.snapshot(),
    };
  }

  #emit(): void {
    this.#onTick(this.snapshot());
  }

  /** Resolves when the promise does or when stop() is called, whichever is first; its failure is thrown. */
  async #until(p: Promise<unknown>): Promise<void> {
    p.catch(() => undefined);
    await Promise.race([p, this.#stop]);
  }

  async #start(): Promise<void> {
    this.#phase = 'loading';
    const fleet = this.#fleet;
    // The server loads the users while the clients write their stale copies: independent stores.
    const clientsLoaded = fleet.clients.map((_, i) =>
      fleet.loadClient(i).catch((err: unknown) => {
        if (!this.stopping) fleet.clients[i]!.fail(err, true);
      }),
    );
    try {
      await fleet.loadServer();
    } catch (err) {
      if (this.stopping) return;
      fleet.server.fail(err, true);
      throw err;
    }
    await Promise.all(clientsLoaded);
    if (this.stopping) return;
    this.#phase = 'joining';
    await Promise.all(fleet.clients.map((_, i) => fleet.join(i)));
  }

  /** Waits (tick by tick) until every client is settled, or the settle time is over, or stop(). */
  async #settle(): Promise<boolean> {
    const deadline = performance.now() + SETTLE_MS;
    while (!this.#fleet.settled()) {
      if (this.#interrupted || performance.now() > deadline) return false;
      await new Promise<void>((resolve) => setTimeout(resolve, TICK_MS));
    }
    return true;
  }

  #maxLag(): number {
    const seq = this.#fleet.seq;
    if (seq === null) return 0;
    return Math.max(0, ...this.#fleet.clients.filter((c) => c.joined && c.agent).map((c) => seq - c.agent!.local.cursor));
  }
}

function removeDir(dir: string): boolean {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    return true;
  } catch {
    return false;
  }
}
