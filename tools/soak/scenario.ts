/**
 * The soak's scenario: a server, N clients and a replica as real processes (tools/fleet.ts), each client
 * behind its own FaultProxy so faults apply per link; random user activity on every client (seeded
 * choices, shared users so that concurrent and offline edits conflict); the planned faults executed on
 * time; then quiet, convergence and the end checks (checks.ts). Every write is tracked from `item.set`
 * (its change counter) to its acknowledgement (changes-acked names each change's outcome and version).
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryOf } from '../bench/children.js';
import { Cleanup } from '../bench/cleanup.js';
import { rng, userRecord } from '../bench/records.js';
import { AgentProcess, freePort, type AgentEvent } from '../fleet.js';
import { FaultProxy } from '../proxy.js';
import { fillUp, mountTmpfs, unmountTmpfs } from '../tmpfs.js';
import type { FaultKind, PlannedFault } from './plan.js';

const PASSWORD = 'soak-admin-pw';
/**
 * Items the activity writes: the shared per-user items whose value is a map without send destinations
 * (those are blanked on the server). Each write is the item's realistic value with the write's tag as
 * one more field, which the item's schema keeps (maps are open to fields it does not name).
 */
const ITEMS = ['language', 'accessibility', 'home', 'network', 'list-order'];
/** Each client works on this many users of a pool of 2 × clients + 2: neighbours share users. */
const USERS_PER_CLIENT = 6;
const HEARTBEAT_SECONDS = 1;
/**
 * The tmpfs under the server's and the replica's data directories (the replica becomes the server at
 * the switch): far more than a run's store needs, filled up by a filler file for a disk-full fault.
 */
const DATA_TMPFS_BYTES = 128 * 1024 * 1024;
/** Changes acknowledged after a full disk is freed before the server restarts: what check 1 then finds. */
const ACKS_AFTER_FREE = 10;

/** One tracked write. */
export interface Write {
  client: number;
  user: string;
  item: string;
  /** Unique tag inside the value: how the write is recognised on the server and in conflict logs. */
  tag: string;
  /** The change counter item.set returned; undefined when the call failed (the process was killed mid-write). */
  change?: number;
}

/** An acknowledgement outcome of one change. */
export interface Ack {
  status: 'applied' | 'duplicate' | 'conflict' | 'rejected';
  v?: number;
}

/** A client machine of the soak. */
export interface Machine {
  index: number;
  name: string;
  proc: AgentProcess;
  proxy: FaultProxy;
  users: string[];
  /** Serializes the faults of this machine. */
  lock: Promise<void>;
  down: boolean;
  asleep: boolean;
  /** Writes whose item.set is under way. */
  inflight: number;
  acks: Map<number, Ack>;
  maxChange: number;
  reconnects: number;
  /** Skew the server reported while this client ran with --clock-skew (planned, observed). */
  skews: { planned: number; observed: number | null }[];
}

/** One disk-full episode on the server. */
export interface DiskFullEpisode {
  /** ms after the activity started. */
  at: number;
  holdMs: number;
  /** Whether the server showed STORE_WRITE_FAILED (health red) while its disk was full. */
  refused: boolean;
  /** Changes acknowledged `applied` between freeing the space and the restart. */
  ackedAfterFree: number;
  signal: NodeJS.Signals;
}

/** One RSS sample of a process incarnation. */
export interface RssSample {
  process: string;
  pid: number;
  at: number;
  kb: number;
}

/** Options of a run. */
export interface ScenarioOptions {
  seed: number;
  durationMs: number;
  clients: number;
  plan: PlannedFault[];
  /** Whether the server's and the replica's data directories go on a tmpfs (disk-full faults; needs root). */
  diskFull: boolean;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every `everyMs` until it holds or `ms` passed; returns whether it held. */
export async function until(cond: () => Promise<boolean>, ms: number, everyMs = 250): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond().catch(() => false)) return true;
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
}

/** A running soak group. */
export class Scenario {
  readonly o: ScenarioOptions;
  readonly cleanup = new Cleanup();
  readonly dir: string;
  server!: AgentProcess;
  replica!: AgentProcess;
  machines: Machine[] = [];
  writes: Write[] = [];
  /**
   * Tags of writes whose item.set failed (the client was killed mid-write or was restarting). Such a
   * change may still have been queued durably before the kill and reach the server after the restart.
   */
  interrupted: string[] = [];
  faults: Record<string, number> = {};
  skipped: Record<string, number> = {};
  restarts = 0;
  cutsFired = 0;
  switched: { at: number; copySeq: number; serverSeq: number; lastAckBeforeCopy: boolean } | undefined;
  rss: RssSample[] = [];
  diskFull: DiskFullEpisode[] = [];
  /** Data directory name → the tmpfs it is on. */
  #mounts = new Map<string, string>();
  /** Changes acknowledged `applied`, by every client so far. */
  #applied = 0;
  /** When the last fault was healed, ms after the activity started. */
  lastHealAt = 0;
  #stopped = false;
  #paused = false;
  #lastAckAt = 0;
  #t0 = 0;
  #lastReplicated: { seq: number; at: number } | undefined;

  constructor(o: ScenarioOptions) {
    this.o = o;
    this.dir = mkdtempSync(join(tmpdir(), 'mfp-soak-'));
    this.cleanup.defer(`rm ${this.dir}`, async () => {
      const { rm } = await import('node:fs/promises');
      await rm(this.dir, { recursive: true, force: true });
    });
  }

  /** Milliseconds since the activity started. */
  get elapsed(): number {
    return Date.now() - this.#t0;
  }

  /** The server, a replica paired with it, and the clients, each behind its proxy. */
  async setup(): Promise<void> {
    const spawn = async (name: string, port?: number) =>
      AgentProcess.launch(this.cleanup, { name, dataDir: join(this.dir, name), adminPassword: PASSWORD, heartbeat: HEARTBEAT_SECONDS, keepEvents: false, ...(port ? { port } : {}) });
    // Mounted before the agents start, so that they are stopped before the unmount (cleanup is LIFO).
    if (this.o.diskFull) {
      for (const name of ['server', 'replica']) {
        const dir = join(this.dir, name);
        mkdirSync(dir, { mode: 0o700 });
        await mountTmpfs(dir, DATA_TMPFS_BYTES);
        this.cleanup.defer(`umount ${dir}`, () => unmountTmpfs(dir));
        this.#mounts.set(name, dir);
      }
    }
    [this.server, this.replica] = await Promise.all([spawn('server', await freePort()), spawn('replica', await freePort())]);
    await this.server.control('role.set', { role: 'server' });
    await this.replica.control('role.set', { role: 'replica' });
    this.replica.listeners.add((e) => {
      if (e.event === 'replicated') this.#lastReplicated = { seq: e.seq as number, at: Date.now() };
    });
    await this.server.control('replication.start', { to: `127.0.0.1:${this.replica.options.port}`, user: 'admin', password: PASSWORD, threshold: 500 });
    const pool = this.o.clients * 2 + 2;
    const names = Array.from({ length: this.o.clients }, (_, i) => `client-${i + 1}`);
    // Two at a time: nine node processes starting at once on two cores only queue for the CPU.
    for (let i = 0; i < names.length; i += 2) {
      await Promise.all(
        names.slice(i, i + 2).map(async (name, k) => {
          const index = i + k;
          const proc = await spawn(name);
          const proxy = await FaultProxy.start({ targetPort: this.server.options.port! });
          this.cleanup.defer(`proxy ${name}`, () => proxy.close());
          const users = Array.from({ length: USERS_PER_CLIENT }, (_, u) => `user-${String((index * 2 + u) % pool).padStart(2, '0')}`);
          const m: Machine = { index, name, proc, proxy, users, lock: Promise.resolve(), down: false, asleep: false, inflight: 0, acks: new Map(), maxChange: 0, reconnects: 0, skews: [] };
          let live = false;
          proc.listeners.add((e) => this.#onEvent(m, e, () => live, (v) => (live = v)));
          await proc.control('role.set', { role: 'client', server: `127.0.0.1:${proxy.port}`, user: 'admin', password: PASSWORD });
          this.machines[index] = m;
        }),
      );
    }
  }

  #onEvent(m: Machine, e: AgentEvent, wasLive: () => boolean, setLive: (v: boolean) => void): void {
    if (e.event === 'changes-acked') {
      this.#lastAckAt = Date.now();
      for (const ch of e.changes as { c: number; status: Ack['status']; v?: number }[]) {
        if (ch.status === 'applied') this.#applied++;
        const prev = m.acks.get(ch.c);
        // The first outcome is the one that counts; a later duplicate is a re-send of a lost ack.
        if (!prev || prev.status === 'duplicate') m.acks.set(ch.c, ch.status === 'duplicate' && prev ? prev : { status: ch.status, ...(ch.v !== undefined ? { v: ch.v } : {}) });
      }
    }
    if (e.event === 'sync-state') {
      if (e.state === 'live') {
        if (wasLive()) return;
        setLive(true);
        m.reconnects++;
      } else setLive(false);
    }
  }

  /** Runs activity and the fault schedule for the duration, then stops both (faults healed). */
  async run(): Promise<void> {
    this.#t0 = Date.now();
    const sampler = this.#sampleRss();
    const activity = this.machines.map((m) => this.#activity(m));
    const running = new Set<Promise<void>>();
    for (const f of this.o.plan) {
      const wait = this.#t0 + f.at - Date.now();
      if (wait > 0) await sleep(wait);
      if (f.target < 0) {
        // A server fault stops the group: the client faults under way end first.
        await Promise.all(running);
        const t = this.elapsed;
        await this.#serverFault(f);
        this.o.log(`${f.kind} planned at ${(f.at / 1000).toFixed(1)} s: started at ${(t / 1000).toFixed(1)} s, done in ${((this.elapsed - t) / 1000).toFixed(1)} s`);
        continue;
      }
      const m = this.machines[f.target]!;
      const task = m.lock.then(() => this.#clientFault(f, m));
      m.lock = task.catch(() => undefined);
      running.add(task);
      void task.finally(() => running.delete(task));
    }
    const rest = this.#t0 + this.o.durationMs - Date.now();
    if (rest > 0) await sleep(rest);
    await Promise.all(running);
    this.#stopped = true;
    await Promise.all(activity);
    await sampler.stop();
  }

  #count(kind: FaultKind, executed = true): void {
    const t = executed ? this.faults : this.skipped;
    t[kind] = (t[kind] ?? 0) + 1;
  }

  async #activity(m: Machine): Promise<void> {
    const r = rng((this.o.seed ^ Math.imul(m.index + 1, 0x9e3779b1)) >>> 0);
    const loggedIn = new Set<string>();
    let n = 0;
    while (!this.#stopped) {
      await sleep(150 + Math.floor(r() * 350));
      if (this.#paused || m.down || m.asleep || this.#stopped) continue;
      const user = m.users[Math.floor(r() * m.users.length)]!;
      const item = ITEMS[Math.floor(r() * ITEMS.length)]!;
      const w: Write = { client: m.index, user, item, tag: `${m.name}#${++n}` };
      const value = { ...(userRecord(user, Math.floor(r() * 1000))[item] as Record<string, unknown>), soak: w.tag };
      m.inflight++;
      try {
        // A user logs in on the machine before changing their settings: it then holds them (SPEC §3.2).
        if (!loggedIn.has(user)) {
          await m.proc.control('login', { user });
          loggedIn.add(user);
        }
        const res = await m.proc.control<{ change?: number }>('item.set', { kind: 'user', id: user, item, value });
        w.change = res.change;
        if (res.change !== undefined) m.maxChange = Math.max(m.maxChange, res.change);
        this.writes.push(w);
      } catch {
        // Killed mid-write: the change may or may not have been queued; it is not tracked as acknowledged,
        // but its value is one of the soak's if it turns up on the server.
        this.interrupted.push(w.tag);
      } finally {
        m.inflight--;
      }
    }
  }

  async #clientFault(f: PlannedFault, m: Machine): Promise<void> {
    const p = m.proxy;
    switch (f.kind) {
      case 'latency':
        p.delayMs = f.param;
        p.jitterMs = f.param2;
        await sleep(f.holdMs);
        p.delayMs = 0;
        p.jitterMs = 0;
        break;
      case 'bandwidth':
        p.bytesPerSecond = f.param;
        await sleep(f.holdMs);
        p.bytesPerSecond = 0;
        break;
      case 'slice':
        p.sliceBytes = f.param;
        await sleep(f.holdMs);
        p.sliceBytes = 0;
        break;
      case 'stall':
        p.stall();
        await sleep(f.holdMs);
        p.resume();
        break;
      case 'reset':
        p.resetAll();
        break;
      case 'cut': {
        const dir = f.param2 === 1 ? 'down' : 'up';
        p.cutOnceAfter(dir, f.param);
        await sleep(f.holdMs);
        if (!p.cutPending) this.cutsFired++;
        p.cutOnceAfter(dir, undefined);
        break;
      }
      case 'partition':
        p.refusing = true;
        p.cutAll();
        await sleep(f.holdMs);
        p.refusing = false;
        break;
      case 'kill-client':
        await this.#restart(m, 'SIGKILL', f.holdMs);
        break;
      case 'sleep':
        m.asleep = true;
        await this.#quiet(m);
        await m.proc.control('power.sleep');
        await sleep(f.holdMs);
        await m.proc.control('power.wake');
        m.asleep = false;
        break;
      case 'skew': {
        m.proc.options.runArgs = ['--clock-skew', String(f.param)];
        await this.#restart(m, 'SIGTERM', 0);
        const seen = { planned: f.param, observed: null as number | null };
        m.skews.push(seen);
        const deadline = Date.now() + f.holdMs;
        // What the server reports for this client (devices list, skewMs) once its pings carry the skew.
        await until(async () => {
          const { devices } = await this.server.control<{ devices: { name: string; skewMs: number | null }[] }>('devices.list');
          const row = devices.find((d) => d.name === m.name);
          if (row?.skewMs !== null && row?.skewMs !== undefined && Math.abs(row.skewMs - f.param) < 5000) seen.observed = row.skewMs;
          return seen.observed !== null;
        }, f.holdMs, 500);
        const rest = deadline - Date.now();
        if (rest > 0) await sleep(rest);
        m.proc.options.runArgs = [];
        await this.#restart(m, 'SIGTERM', 0);
        break;
      }
      default:
        throw new TypeError(`not a client fault: ${f.kind}`);
    }
    this.#count(f.kind);
    this.lastHealAt = Math.max(this.lastHealAt, this.elapsed);
  }

  /** Waits until no write of the machine is under way. */
  async #quiet(m: Machine): Promise<void> {
    while (m.inflight > 0) await sleep(10);
  }

  async #restart(m: Machine, signal: NodeJS.Signals, downMs: number): Promise<void> {
    m.down = true;
    await m.proc.kill(signal);
    if (downMs > 0) await sleep(downMs);
    await m.proc.start();
    m.down = false;
    this.restarts++;
  }

  async #serverFault(f: PlannedFault): Promise<void> {
    if (f.kind === 'kill-server') {
      await this.server.kill('SIGKILL');
      await sleep(f.holdMs);
      await this.server.start();
      this.restarts++;
      this.#count(f.kind);
      this.lastHealAt = Math.max(this.lastHealAt, this.elapsed);
      return;
    }
    if (f.kind === 'disk-full') {
      await this.#diskFull(f);
      this.#count(f.kind);
      this.lastHealAt = Math.max(this.lastHealAt, this.elapsed);
      return;
    }
    if (this.server === this.replica || this.switched) {
      this.#count(f.kind, false);
      return;
    }
    await this.#switchToReplica();
    this.#count(f.kind);
    this.lastHealAt = Math.max(this.lastHealAt, this.elapsed);
  }

  /**
   * The server's data directory fills up (a filler file on its tmpfs) while the group works: the server
   * refuses what it cannot write. The space is freed, new changes are acknowledged, and the server is
   * restarted (SIGTERM or SIGKILL): check 1 then finds every change acknowledged after the space came back.
   */
  async #diskFull(f: PlannedFault): Promise<void> {
    const server = this.server;
    const mount = this.#mounts.get(server.options.name);
    if (!mount) throw new Error(`disk-full: the data directory of ${server.options.name} is not on a tmpfs`);
    const at = this.elapsed;
    const until0 = Date.now() + f.holdMs;
    const filler = await fillUp(mount);
    const refused = await until(async () => {
      const st = await server.control<{ healthReasons: { code: string }[] }>('status');
      return st.healthReasons.some((r) => r.code === 'STORE_WRITE_FAILED');
    }, f.holdMs + 5000, 100);
    const rest = until0 - Date.now();
    if (rest > 0) await sleep(rest);
    await unlink(filler);
    const before = this.#applied;
    await until(async () => this.#applied >= before + ACKS_AFTER_FREE, 15_000, 50);
    const signal = f.param2 === 1 ? 'SIGKILL' : 'SIGTERM';
    const ackedAfterFree = this.#applied - before;
    await server.kill(signal);
    await server.start();
    this.restarts++;
    this.diskFull.push({ at, holdMs: f.holdMs, refused, ackedAfterFree, signal });
  }

  /**
   * README "Replacing machines", procedure 2: stop the clients' activity and let their queues drain, take
   * a last copy (after the last acknowledgement), kill -9 the server, promote the replica, repoint the
   * clients (each through a fresh proxy to the new server).
   */
  async #switchToReplica(): Promise<void> {
    this.#paused = true;
    for (const m of this.machines) await this.#quiet(m);
    const drained = await until(async () => {
      for (const m of this.machines) {
        const s = await m.proc.control<{ client?: { state: string; queued: number } }>('status');
        if (s.client?.state !== 'live' || s.client.queued > 0) return false;
      }
      return true;
    }, 60_000);
    if (!drained) throw new Error('switch: the clients did not drain their queues within 60 s');
    const lastAck = this.#lastAckAt;
    const serverSeq = (await this.server.control<{ group: { seq: number } }>('status')).group.seq;
    await this.server.control('replication.start', { to: `127.0.0.1:${this.replica.options.port}`, user: 'admin', password: PASSWORD, threshold: 500 });
    const copied = await until(async () => (this.#lastReplicated?.seq ?? -1) >= serverSeq, 30_000, 100);
    if (!copied) throw new Error(`switch: the replica did not receive a copy at seq ${serverSeq}`);
    const copy = this.#lastReplicated!;
    await this.server.kill('SIGKILL');
    await this.replica.control('role.set', { role: 'server' });
    this.server = this.replica;
    await Promise.all(
      this.machines.map(async (m) => {
        const proxy = await FaultProxy.start({ targetPort: this.server.options.port! });
        this.cleanup.defer(`proxy ${m.name} (new server)`, () => proxy.close());
        const previous = m.proxy;
        m.proxy = proxy;
        await m.proc.control('role.set', { role: 'client', server: `127.0.0.1:${proxy.port}` });
        await previous.close();
      }),
    );
    this.switched = { at: this.elapsed, copySeq: copy.seq, serverSeq, lastAckBeforeCopy: lastAck <= copy.at };
    this.#paused = false;
  }

  /** Samples every process's resident set (VmRSS) every 2 s until stopped. */
  #sampleRss(): { stop(): Promise<void> } {
    let done = false;
    const loop = (async () => {
      while (!done) {
        await this.sampleNow();
        await sleep(2000);
      }
    })();
    return {
      stop: async () => {
        done = true;
        await loop;
      },
    };
  }

  /** One RSS sample of every running process. */
  async sampleNow(): Promise<void> {
    // Named by data directory: after the switch the process named `replica` is the server.
    for (const proc of new Set([this.server, this.replica, ...this.machines.map((m) => m.proc)])) {
      const kb = readRss(proc.pid);
      if (kb !== undefined) this.rss.push({ process: proc.options.name, pid: proc.pid!, at: this.elapsed, kb });
    }
  }

  /** Stops every process and proxy and removes the data directories. */
  async close(): Promise<void> {
    const errors = await this.cleanup.run();
    for (const e of errors) this.o.log(`cleanup: ${e.message}`);
  }
}

/** VmRSS of a process in KiB, or undefined if it is not running. */
export function readRss(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = memoryOf(pid).rss / 1024;
    return Number.isFinite(kb) ? kb : undefined;
  } catch {
    return undefined;
  }
}
