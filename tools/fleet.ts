/**
 * Agents as real child processes, driven the way a technician or a firmware shim drives them: each runs
 * `mfpsync run --json --events` on its own data directory, and its event lines (item-changed,
 * sync-state, changes-acked, …) are awaited instead of sleeping; commands go through the shell or the
 * control socket. Shared by the end-to-end tests (through test/helpers/agents.ts) and the soak. Nothing
 * here knows a test framework: the data directory is explicit, and every process is registered on an
 * explicit cleanup list that kills it when its owner is done.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { callControl } from '../agent/control.js';

/** The compiled shell, next to this file. */
export const MFPSYNC = join(fileURLToPath(import.meta.url), '../mfpsync.cjs');

/** Where started processes are registered for release (the bench's Cleanup, or an ava teardown). */
export interface CleanupList {
  defer(what: string, release: () => Promise<void> | void): void;
}

/** What one shell call returned. */
export interface ShellResult {
  code: number;
  stdout: string;
  stderr: string;
  json: unknown;
}


/** Node flags of the shell commands fleets run (`--no-expose-wasm`: jitless has no WebAssembly, said quietly). */
const SHELL_NODE_FLAGS = ['--no-expose-wasm', '--jitless'];

/** Runs the shell on a data directory with --json. */
export function shell(dataDir: string, ...args: string[]): Promise<ShellResult> {
  return runShell(dataDir, ['--json', ...args]);
}

/** Runs the shell without --json: what the technician reads. */
export function humanShell(dataDir: string, ...args: string[]): Promise<ShellResult> {
  return runShell(dataDir, args);
}

function runShell(dataDir: string, args: string[]): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    // A shell command lives a fraction of a second and computes little (the agent does the work): without
    // V8's optimizing compiler it costs about a fifth less CPU, which the suite's hundreds of them add up.
    const child = spawn(process.execPath, [...SHELL_NODE_FLAGS, MFPSYNC, '--data', dataDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      let json: unknown;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

/** A port that was free a moment ago (for agents that must keep their port across restarts). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** An event line printed by `run --events`. */
export type AgentEvent = Record<string, unknown> & { event: string };

/** Options of a spawned agent. */
export interface SpawnOptions {
  name: string;
  /** The agent's data directory (created by `init`). */
  dataDir: string;
  adminPassword?: string;
  port?: number;
  heartbeat?: number;
  protocol?: number;
  maxUsers?: number;
  /** More `init` flags (e.g. --department-ids) and `run` flags (e.g. --backup-dir DIR, --clock-skew MS). */
  initArgs?: string[];
  runArgs?: string[];
  /** Keep every event line in `events` (tests look back); off, only listeners see them (a long soak). */
  keepEvents?: boolean;
  /** Node's own flags for the agent process (e.g. `--inspect=127.0.0.1:0` for a test that reads its heap). */
  nodeArgs?: string[];
  /** A command the agent runs under, e.g. `['ip', 'netns', 'exec', 'NS']` (it must exec the agent: the pid is the agent's). */
  prefix?: string[];
}

/** At most this much of a child's stderr is kept (its tail): enough to say why it died. */
const STDERR_TAIL = 64 * 1024;

/** One agent process; restartable on the same data directory and port. */
export class AgentProcess {
  readonly dataDir: string;
  readonly options: SpawnOptions;
  child: ChildProcess | undefined;
  ready: AgentEvent | undefined;
  events: AgentEvent[] = [];
  stderr = '';
  /** Called with every event line, of every incarnation. */
  readonly listeners = new Set<(e: AgentEvent) => void>();
  #waiters: { pred: (e: AgentEvent) => boolean; resolve: (e: AgentEvent) => void }[] = [];
  #exited: Promise<number | null> = Promise.resolve(null);

  constructor(options: SpawnOptions) {
    this.dataDir = options.dataDir;
    this.options = options;
  }

  /** Initializes the data directory and starts the agent; the cleanup list kills it (SIGKILL if needed). */
  static async launch<T extends AgentProcess>(this: new (o: SpawnOptions) => T, cleanup: CleanupList, options: SpawnOptions): Promise<T> {
    await AgentProcess.init(options);
    const agent = new this(options);
    cleanup.defer(`agent ${options.name}`, () => agent.kill('SIGKILL'));
    await agent.start();
    return agent;
  }

  /** `mfpsync init` of a spawn's data directory. */
  static async init(options: SpawnOptions): Promise<void> {
    const { name, dataDir } = options;
    // An agent that will run with the Remote UI off needs no certificate now (it would be made at a first start with it on).
    const ui = options.runArgs?.includes('--ui-port') ? [] : ['--no-ui-certificate'];
    const init = await shell(dataDir, 'init', '--name', name, '--admin-password', options.adminPassword ?? 'secret-pw', '--serial', `SN-${name}`, '--location', `floor-${name}`, ...ui, ...(options.initArgs ?? []));
    if (init.code !== 0) throw new Error(`init of ${name} failed: ${init.stderr}`);
  }

  /** The process id of the running incarnation. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** Whether the process is running. */
  get running(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** Starts (or restarts) the process and waits for its ready line. */
  async start(): Promise<AgentEvent> {
    const o = this.options;
    // The Remote UI is off unless a test turns it on (runArgs' --ui-port comes later and wins).
    const args = [...(o.nodeArgs ?? []), MFPSYNC, '--data', this.dataDir, '--json', 'run', '--events', '--host', '127.0.0.1', '--port', String(o.port ?? 0), '--ui-port', '0'];
    if (o.heartbeat !== undefined) args.push('--heartbeat', String(o.heartbeat));
    if (o.protocol !== undefined) args.push('--protocol', String(o.protocol));
    if (o.maxUsers !== undefined) args.push('--max-users', String(o.maxUsers));
    args.push(...(o.runArgs ?? []));
    const [command, ...before] = [...(o.prefix ?? []), process.execPath];
    const child = spawn(command!, [...before, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MFPSYNC_LOG_LEVEL: 'warn' } });
    this.child = child;
    this.events = [];
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      if (this.stderr.length > STDERR_TAIL) this.stderr = this.stderr.slice(-STDERR_TAIL);
    });
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let e: AgentEvent;
      try {
        e = JSON.parse(line) as AgentEvent;
      } catch {
        return;
      }
      if (o.keepEvents !== false) this.events.push(e);
      for (const l of this.listeners) l(e);
      for (const w of [...this.#waiters]) {
        if (w.pred(e)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    });
    const ready = await Promise.race([
      this.waitFor((e) => e.event === 'ready', 20_000),
      this.#exited.then((code) => {
        throw new Error(`agent ${o.name} exited (${code}) before ready: ${this.stderr}`);
      }),
    ]);
    this.ready = ready;
    return ready;
  }

  /** Resolves with the first event (already seen since `since`, or future) matching `pred`. */
  waitFor(pred: (e: AgentEvent) => boolean, timeoutMs = 15_000, since = 0): Promise<AgentEvent> {
    const seen = this.events.slice(since).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (e: AgentEvent) => { clearTimeout(timer); resolve(e); } };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`${this.options.name}: no matching event within ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(-10))}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** Waits for a remote item-changed event of one user's item. */
  waitRemote(id: string, item: string, since = 0): Promise<AgentEvent> {
    return this.waitFor((e) => e.event === 'item-changed' && e.source === 'remote' && e.id === id && e.item === item, 15_000, since);
  }

  /** Runs a shell command against this agent. */
  sh(...args: string[]): Promise<ShellResult> {
    return shell(this.dataDir, ...args);
  }

  /** Calls the agent's control socket directly: for bulk work, where the shell is not what is exercised. */
  control<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return callControl(join(this.dataDir, 'control.sock'), method, params) as Promise<T>;
  }

  /** Runs a shell command that must succeed; returns its JSON. */
  async ok<T = Record<string, unknown>>(...args: string[]): Promise<T> {
    const r = await this.sh(...args);
    if (r.code !== 0) throw new Error(`${this.options.name}: mfpsync ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.json as T;
  }

  /** Reads one item's value. */
  async value(kind: 'user' | 'group', id: string, item: string): Promise<unknown> {
    const r = await this.ok<{ items: Record<string, { value: unknown }> }>(kind, 'get', id, item);
    return r.items[item]!.value;
  }

  /** Stops the process with a signal and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.#exited;
  }
}

/** Makes an agent a client of a server at 127.0.0.1:port with the administrator account. */
export function joinClient(agent: AgentProcess, port: number, password = 'secret-pw'): Promise<Record<string, unknown>> {
  return agent.ok('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'admin', '--password', password);
}
