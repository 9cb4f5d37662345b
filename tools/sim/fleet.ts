/**
 * The simulator's machines: one server and its clients, each a real agent in this process on its own
 * data directory (LevelDB) and its own port on 127.0.0.1; the clients reach the server over real
 * WebSockets. The fleet loads the server's users, gives each client a stale copy of some of them (so
 * its join has something to replace), joins the clients, and counts what each machine sees.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Agent, ItemChangedEvent } from '../../agent/agent.js';
import type { ClientState } from '../../agent/client.js';
import { MfpError, type ErrorCode } from '../../protocol/errors.js';
import { populateGroup, populateLocal } from '../bench/join.js';
import { admitLocal, openLocalAgent } from '../local-agents.js';
import type { SimMachine, SimProgress } from './snapshot.js';

/** Users written per step while loading: the progress bar moves per step. */
const LOAD_STEP = 25;
/** The changes/s window: long enough to smooth the driver's 50 ms steps, short enough to follow a burst. */
const RATE_WINDOW_MS = 2000;

const CLIENT_STATES: Record<ClientState, string> = {
  connecting: 'connecting',
  joining: 'joining',
  live: 'synchronized',
  offline: 'offline',
  refused: 'refused',
  stopped: 'stopped',
  sleeping: 'asleep',
};

/** CODE: message of a coded error, the message of another. */
export function describeError(err: unknown): string {
  if (err instanceof MfpError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Events per second over a sliding window (counted in 250 ms buckets). */
export class RateMeter {
  readonly #buckets = new Map<number, number>();
  readonly #start: number;

  constructor(now = performance.now()) {
    this.#start = now;
  }

  add(n = 1, now = performance.now()): void {
    const b = Math.floor(now / 250);
    this.#buckets.set(b, (this.#buckets.get(b) ?? 0) + n);
  }

  /** Per second over the window (or since the start, if shorter). */
  rate(now = performance.now()): number {
    const from = Math.floor((now - RATE_WINDOW_MS) / 250);
    let sum = 0;
    for (const [b, n] of this.#buckets) {
      if (b <= from) this.#buckets.delete(b);
      else sum += n;
    }
    const span = Math.min(RATE_WINDOW_MS, Math.max(250, now - this.#start));
    return (sum * 1000) / span;
  }
}

/** One simulated machine. */
export class Machine {
  readonly name: string;
  readonly role: 'server' | 'client';
  readonly dataDir: string;
  agent: Agent | undefined;
  /** Users this client holds (its stale copy, logins, its own edits): where an edit is expected to arrive. */
  readonly held = new Set<string>();
  readonly heldList: string[] = [];
  readonly meter = new RateMeter();
  progress: SimProgress | null = null;
  loading = false;
  joined = false;
  failed = false;
  error: string | null = null;
  /** Failures so far. */
  errors = 0;

  constructor(name: string, role: 'server' | 'client', dataDir: string) {
    this.name = name;
    this.role = role;
    this.dataDir = dataDir;
  }

  /** Records that this client holds a user. */
  hold(user: string): void {
    if (this.held.has(user)) return;
    this.held.add(user);
    this.heldList.push(user);
  }

  /** Records a failure: shown in the view and the summary; `fatal` takes the machine out of the run. */
  fail(err: unknown, fatal = false): void {
    this.error = describeError(err);
    this.errors++;
    if (fatal) this.failed = true;
  }

  /** The client part's state, as the view names it. */
  get state(): string {
    if (this.failed) return 'failed';
    const a = this.agent;
    if (!a) return 'starting';
    if (this.loading) return 'loading';
    if (this.role === 'server') return a.group ? 'serving' : 'starting';
    const c = a.client;
    return c ? CLIENT_STATES[c.state] : 'standalone';
  }

  /** Synchronized, nothing queued, cursor at the server's seq. */
  settled(serverSeq: number): boolean {
    const a = this.agent;
    return this.failed || (a !== undefined && a.client?.state === 'live' && a.local.queueSize === 0 && a.local.cursor >= serverSeq);
  }

  /** This machine's row. */
  view(serverSeq: number | null, now: number): SimMachine {
    const a = this.agent;
    const power = a && !this.failed ? a.power() : undefined;
    const server = this.role === 'server';
    const users = a ? (server ? (a.group?.users().length ?? 0) : a.local.users().length) : 0;
    return {
      name: this.name,
      role: this.role,
      state: this.state,
      lag: !server && a && this.joined && serverSeq !== null ? Math.max(0, serverSeq - a.local.cursor) : null,
      changesPerSec: Math.round(this.meter.rate(now) * 10) / 10,
      asleep: power?.asleep ?? false,
      blockedBy: server && power ? power.blockedBy.length : null,
      users,
      progress: this.progress,
      error: this.error,
    };
  }
}

/** Options of a fleet. */
export interface FleetOptions {
  /** The run's own data directory: every machine's folder goes in it. */
  dir: string;
  devices: number;
  users: string[];
  /** A client's stale copy: which of the users it holds before joining. */
  staleCopy: (client: number) => string[];
  onItemChanged: (m: Machine, e: ItemChangedEvent) => void;
}

/** The machines of one simulation. */
export class Fleet {
  readonly server: Machine;
  readonly clients: Machine[];
  readonly #o: FleetOptions;
  readonly #password = randomBytes(12).toString('base64url');
  #closed = false;

  constructor(options: FleetOptions) {
    this.#o = options;
    this.server = new Machine('server', 'server', join(options.dir, 'server'));
    this.clients = Array.from({ length: options.devices - 1 }, (_, i) => new Machine(`client-${i + 1}`, 'client', join(options.dir, `client-${i + 1}`)));
  }

  get machines(): Machine[] {
    return [this.server, ...this.clients];
  }

  /** The group's latest seq, once the server serves. */
  get seq(): number | null {
    return this.server.agent?.group?.seq ?? null;
  }

  async #open(m: Machine): Promise<Agent> {
    const agent = await openLocalAgent({ dataDir: m.dataDir, init: { name: m.name, adminPassword: this.#password } });
    if (this.#closed) {
      await agent.close();
      throw new Error('the simulation is stopping');
    }
    m.agent = agent;
    agent.on('item-changed', (e) => {
      if (m.role === 'client') m.meter.add();
      this.#o.onItemChanged(m, e);
    });
    return agent;
  }

  /** Starts the server and writes the users into the group's copy (the bar moves per step). */
  async loadServer(): Promise<void> {
    const m = this.server;
    const agent = await this.#open(m);
    await agent.setRole('server');
    // The server's changes/s are the changes its group store commits.
    agent.group!.onCommit((entries) => m.meter.add(entries.length));
    await this.#load(m, this.#o.users, (names) => populateGroup(agent, names, 0));
  }

  /** Opens a client (standalone) and writes its stale copy of some users into its own store. */
  async loadClient(index: number): Promise<void> {
    const m = this.clients[index]!;
    const agent = await this.#open(m);
    const names = this.#o.staleCopy(index);
    await this.#load(m, names, (part) => populateLocal(agent, part, index + 1));
    for (const u of names) m.hold(u);
  }

  async #load(m: Machine, names: readonly string[], write: (names: string[]) => Promise<void>): Promise<void> {
    m.loading = true;
    m.progress = { phase: 'loading', done: 0, total: names.length, bytes: 0 };
    for (let i = 0; i < names.length && !this.#closed; i += LOAD_STEP) {
      await write(names.slice(i, i + LOAD_STEP));
      m.progress = { phase: 'loading', done: Math.min(names.length, i + LOAD_STEP), total: names.length, bytes: 0 };
    }
    m.loading = false;
    m.progress = null;
  }

  /** Makes a client join the server; the bar follows its join-progress events. Failures are the machine's, not the run's. */
  async join(index: number): Promise<void> {
    const m = this.clients[index]!;
    const agent = m.agent;
    const port = this.server.agent?.port;
    if (!agent || port === undefined || m.failed) return;
    const onProgress = (p: { phase: SimProgress['phase']; entities: number; total: number; bytes: number }) => {
      m.progress = { phase: p.phase, done: p.entities, total: p.total, bytes: p.bytes };
    };
    agent.on('join-progress', onProgress);
    agent.on('sync-state', (s) => {
      // A refusal after the join (before it, the join's own error says it): synchronization stopped.
      if (s.error && s.state === 'refused' && m.joined && !this.#closed) m.fail(new MfpError(s.error.code as ErrorCode, s.error.message));
    });
    try {
      await admitLocal(agent, port, this.#password);
      m.joined = true;
    } catch (err) {
      if (!this.#closed) m.fail(err, true);
    } finally {
      agent.off('join-progress', onProgress);
    }
  }

  /** Every client synchronized, nothing queued, no cursor lag. */
  settled(): boolean {
    const seq = this.seq;
    return seq !== null && this.clients.every((c) => c.settled(seq));
  }

  /** Closes every agent (clients first, so the server sees them go) and waits for each. */
  async close(): Promise<void> {
    this.#closed = true;
    const closeAll = (ms: Machine[]) => Promise.allSettled(ms.map((m) => m.agent?.close()));
    await closeAll(this.clients);
    await closeAll([this.server]);
  }
}
