/**
 * When a server replicates (SPEC §9): when replication is started, at the configured interval, when the
 * changes since the last run exceed the threshold, and when a client starts (connects). The interval
 * is a node-schedule job re-armed after every run, so it does not promise the time of a copy; a target
 * that cannot be reached is simply tried again at the next trigger. Runs never overlap: a trigger during
 * a run asks for one more run after it.
 *
 * The configuration and the outcome of the last runs live in the local store, so a restart keeps the
 * schedule and `replication status` keeps telling the truth.
 */
import type { Job } from 'node-schedule';
import { MfpError, toMfpError } from '../protocol/errors.js';
import type { LocalStore } from '../storage/local-store.js';
import type { SyncLog } from './logger.js';
import type { TransferResult } from './replication.js';

/** What `replication start` configured. */
export interface ReplicationConfig {
  /** HOST:PORT of the target. */
  to: string;
  /** Minutes between scheduled runs. */
  intervalMinutes: number;
  /** A run starts when more changes than this were committed since the last one. */
  threshold: number;
  /** The target's device key and id, paired at the first run. */
  replicaKey: string;
  replicaId: string;
  startedAt: number;
}

/** The outcome of runs so far. */
export interface ReplicationRecord {
  config: ReplicationConfig;
  lastSuccess?: { at: number; seq: number; entries: number; buckets: number; totalBuckets: number; bytes: number };
  lastFailure?: { at: number; code: string; message: string };
  runs: number;
}

/** What `replication status` shows. */
export interface ReplicationStatus {
  state: 'waiting' | 'running' | 'error';
  /** The manual's two messages (SPEC §9). */
  message: string;
  to: string;
  intervalMinutes: number;
  threshold: number;
  changesSinceLastRun: number;
  lastReplication: number | null;
  lastError: { at: number; code: string; message: string } | null;
  runs: number;
  lastRun: ReplicationRecord['lastSuccess'] | null;
}

/** What `replication stop` did. */
export interface StopResult {
  stopped: boolean;
  /** Whether the destination was told, and so can be the destination of another server. */
  released: boolean;
  to?: string;
  message: string;
  error?: { code: string; message: string };
}

/** Default interval and threshold of `replication start`. */
export const DEFAULT_REPLICATION_INTERVAL_MINUTES = 60;
export const DEFAULT_REPLICATION_THRESHOLD = 1000;

/** The manual's status messages (002, "Check whether replication is executed periodically"). */
export function waitingMessage(last: number | null): string {
  return `Waiting for replication... To change the [Destination Device for Replication], first perform [Stop Replication], then change device. Last Replication : ${last === null ? '-' : formatStamp(last)}`;
}
export function failedMessage(since: number): string {
  return `Could not perform replication after ${formatStamp(since)} because an error occurred. Check the settings for [Destination Device for Replication] and the status of the destination device.`;
}

/** The manual's start errors; DEST_UNSUPPORTED's is made where its case is known (agent/replication.ts). */
const START_MESSAGES: Partial<Record<string, string>> = {
  ADDRESS_INCORRECT: 'The [Address] is incorrect.',
  AUTH_INCORRECT: 'The authentication information is incorrect.',
};

/** A start error as the manual words it, the detail beneath. */
export function startError(err: unknown): MfpError {
  const e = toMfpError(err, 'ADDRESS_INCORRECT');
  const words = START_MESSAGES[e.code];
  if (!words || e.message.startsWith(words)) return e;
  return new MfpError(e.code, `${words} — ${e.message}`, { cause: e.cause ?? e });
}

/**
 * The interval and threshold of a `replication start`: those given, else — started again to the same
 * target — the ones it had, else the defaults. Started to another target while one is configured, it
 * is refused as the manual says (STOP_REPLICATION_FIRST): stop first, then change the destination.
 */
export function startSettings(current: ReplicationRecord | undefined, to: string, given: { intervalMinutes?: number; threshold?: number }): { intervalMinutes: number; threshold: number } {
  if (current && current.config.to !== to) {
    throw new MfpError('STOP_REPLICATION_FIRST', `${waitingMessage(current.lastSuccess?.at ?? null)} (replicating to ${current.config.to}; \`mfpsync replication stop\` first, then start to ${to})`);
  }
  const intervalMinutes = given.intervalMinutes ?? current?.config.intervalMinutes ?? DEFAULT_REPLICATION_INTERVAL_MINUTES;
  const threshold = given.threshold ?? current?.config.threshold ?? DEFAULT_REPLICATION_THRESHOLD;
  if (!Number.isFinite(intervalMinutes) || intervalMinutes < 0.01 || intervalMinutes > 7 * 24 * 60) throw new MfpError('INVALID_ARGUMENT', '--interval is in minutes, 0.01 to 10080');
  if (!Number.isInteger(threshold) || threshold < 1) throw new MfpError('INVALID_ARGUMENT', '--threshold is a number of changes, at least 1');
  return { intervalMinutes, threshold };
}

/** yyyy/mm/dd hh:mm in local time, as the status messages show it. */
export function formatStamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Options of the scheduler. */
export interface ReplicatorOptions {
  local: LocalStore;
  log: SyncLog;
  now: () => number;
  /** One run; resolves with what moved, throws a coded error. */
  run: () => Promise<TransferResult>;
  /** Called after every successful run (the device backup slot is deleted then, SPEC §10). */
  afterRun?: () => Promise<void>;
}

/** A server's replication schedule. */
export class Replicator {
  readonly #o: ReplicatorOptions;
  #record: ReplicationRecord | undefined;
  #job: Job | undefined;
  /** Bumped by every (re)arm and stop: a schedule whose module loads late is dropped if it is stale. */
  #armed = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #changes = 0;
  #stopped = true;

  constructor(options: ReplicatorOptions) {
    this.#o = options;
  }

  /** Loads a persisted configuration and resumes its schedule (after an agent restart). */
  async resume(): Promise<void> {
    this.#record = await this.#o.local.getMeta<ReplicationRecord>('replication');
    if (this.#record) {
      this.#stopped = false;
      this.#arm();
    }
  }

  /** Whether a replication is executing now. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Whether replication is configured. */
  get configured(): boolean {
    return this.#record !== undefined;
  }

  /** The persisted configuration. */
  get config(): ReplicationConfig | undefined {
    return this.#record?.config;
  }

  /** The configuration and the outcome of the runs so far. */
  get record(): ReplicationRecord | undefined {
    return this.#record;
  }

  /** Starts (or restarts with new settings) after a first run that paired the target succeeded. */
  async start(config: ReplicationConfig, first: TransferResult): Promise<void> {
    this.#stop();
    // Started again to the same target: the count of runs goes on.
    const runs = this.#record?.config.to === config.to ? this.#record.runs : 0;
    this.#record = { config, runs };
    this.#changes = 0;
    this.#stopped = false;
    await this.#succeeded(first);
    this.#arm();
  }

  /** Stops replicating and forgets the configuration. */
  async stop(): Promise<void> {
    this.#stop();
    this.#record = undefined;
    await this.#o.local.setMeta({ replication: undefined });
    await this.#running?.catch(() => undefined);
  }

  /**
   * `replication stop` (and a server that stops serving): stops and forgets the configuration, then
   * `release` tells the destination it is free for another server. A destination that cannot be told
   * (off, unreachable) does not keep the stop from happening: the result says so and how to free it.
   */
  async stopAndRelease(release: ((config: ReplicationConfig) => Promise<void>) | undefined): Promise<StopResult> {
    const config = this.#record?.config;
    if (!config) return { stopped: false, released: false, message: 'replication was not running' };
    await this.stop();
    if (!release) return { stopped: true, released: false, to: config.to, message: `replication to ${config.to} stopped; the destination was not told` };
    try {
      await release(config);
      this.#o.log.info('REPLICA_RELEASED', `replication to ${config.to} stopped; the destination is released (another server may replicate to it)`);
      return { stopped: true, released: true, to: config.to, message: `replication to ${config.to} stopped; the destination is released: another server may replicate to it` };
    } catch (err) {
      const e = toMfpError(err, 'ADDRESS_INCORRECT');
      const message = `replication to ${config.to} stopped, but the destination could not be told (${e.code}: ${e.message}): it stays tied to this group and refuses other servers until it is released — run \`replication start\` to it and \`replication stop\` again, or on it \`role set server\` then \`role set replica\` (the manual: start synchronization as a server, then stop it)`;
      this.#o.log.warning('REPLICA_NOT_RELEASED', message);
      return { stopped: true, released: false, to: config.to, message, error: { code: e.code, message: e.message } };
    }
  }

  /** Stops timers (agent shutdown); the configuration stays. */
  async close(): Promise<void> {
    this.#stop();
    await this.#running?.catch(() => undefined);
  }

  #stop(): void {
    this.#stopped = true;
    this.#job?.cancel();
    this.#job = undefined;
    this.#armed++;
  }

  /** Committed changes since the last run: past the threshold, a run starts. */
  changed(count: number): void {
    if (this.#stopped || !this.#record) return;
    this.#changes += count;
    if (this.#changes > this.#record.config.threshold) this.trigger('threshold');
  }

  /** Asks for a run now (or right after the one under way). */
  trigger(reason: 'interval' | 'threshold' | 'client' | 'manual'): void {
    if (this.#stopped || !this.#record) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#runOnce(reason).finally(() => {
      this.#running = undefined;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        this.trigger(reason);
      }
    });
  }

  /** Resolves when no run is under way (tests, and backup/restore waiting politely). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running.catch(() => undefined);
  }

  async #runOnce(reason: string): Promise<void> {
    const changesBefore = this.#changes;
    try {
      const result = await this.#o.run();
      this.#changes = Math.max(0, this.#changes - changesBefore);
      await this.#succeeded(result);
      this.#o.log.info('REPLICATED', `replication (${reason}) to ${this.#record?.config.to}: ${result.buckets} of ${result.totalBuckets} buckets, ${result.bytes} bytes, seq ${result.seq}`);
    } catch (err) {
      const e = toMfpError(err, 'ADDRESS_INCORRECT');
      if (this.#record) {
        this.#record.lastFailure = { at: this.#o.now(), code: e.code, message: e.message };
        await this.#o.local.setMeta({ replication: this.#record }).catch(() => undefined);
      }
      this.#o.log.error(e.code, `replication (${reason}) to ${this.#record?.config.to} failed: ${e.message}; retried at the next trigger`);
    } finally {
      this.#arm();
    }
  }

  async #succeeded(r: TransferResult): Promise<void> {
    const rec = this.#record;
    if (!rec) return;
    rec.lastSuccess = { at: r.at, seq: r.seq, entries: r.entries, buckets: r.buckets, totalBuckets: r.totalBuckets, bytes: r.bytes };
    delete rec.lastFailure;
    rec.runs++;
    await this.#o.local.setMeta({ replication: rec });
    await this.#o.afterRun?.();
  }

  /** Schedules the next interval run from now. */
  #arm(): void {
    this.#job?.cancel();
    this.#job = undefined;
    const armed = ++this.#armed;
    if (this.#stopped || !this.#record) return;
    const at = new Date(Date.now() + this.#record.config.intervalMinutes * 60_000);
    void loadSchedule().then((schedule) => {
      if (armed !== this.#armed || this.#stopped || !this.#record) return;
      this.#job = schedule.scheduleJob(at, () => this.trigger('interval')) ?? undefined;
    });
  }

  /** `replication status`. */
  status(): ReplicationStatus {
    const rec = this.#record;
    if (!rec) throw new MfpError('NOT_FOUND', 'replication is not configured on this server: `mfpsync replication start --to HOST[:PORT] --user ID --password PW`');
    const last = rec.lastSuccess?.at ?? null;
    const failed = rec.lastFailure !== undefined;
    const message = failed ? failedMessage(last ?? rec.config.startedAt) : waitingMessage(last);
    return {
      state: this.running ? 'running' : failed ? 'error' : 'waiting',
      message,
      to: rec.config.to,
      intervalMinutes: rec.config.intervalMinutes,
      threshold: rec.config.threshold,
      changesSinceLastRun: this.#changes,
      lastReplication: last,
      lastError: rec.lastFailure ?? null,
      runs: rec.runs,
      lastRun: rec.lastSuccess ?? null,
    };
  }
}

type Schedule = typeof import('node-schedule');
let scheduleModule: Promise<Schedule> | undefined;

/** node-schedule, loaded with the first schedule: a machine that never replicates does not carry it (about 2 MB). */
function loadSchedule(): Promise<Schedule> {
  // A CommonJS module: its exports are the ESM default.
  scheduleModule ??= import('node-schedule').then((m) => (m as unknown as { default?: Schedule }).default ?? m);
  return scheduleModule;
}
