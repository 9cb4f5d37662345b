/**
 * Agents as real child processes for end-to-end tests, driven through the technician shell. Each
 * agent runs `mfpsync run --json --events` on its own data directory; tests await the events it
 * prints (item-changed, sync-state, …) instead of sleeping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { callControl } from '../../agent/control.js';
import { tempDir } from './tmp.js';

/** The compiled shell. */
export const MFPSYNC = join(fileURLToPath(import.meta.url), '../../../tools/mfpsync.js');

/** What one shell call returned. */
export interface ShellResult {
  code: number;
  stdout: string;
  stderr: string;
  json: unknown;
}

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
    const child = spawn(process.execPath, [MFPSYNC, '--data', dataDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  adminPassword?: string;
  port?: number;
  heartbeat?: number;
  protocol?: number;
  maxUsers?: number;
  dataDir?: string;
  /** More `init` flags (e.g. --department-ids) and `run` flags (e.g. --backup-dir DIR). */
  initArgs?: string[];
  runArgs?: string[];
}

/** One agent process. */
export class AgentProcess {
  readonly dataDir: string;
  readonly options: SpawnOptions;
  child: ChildProcess | undefined;
  ready: AgentEvent | undefined;
  events: AgentEvent[] = [];
  #waiters: { pred: (e: AgentEvent) => boolean; resolve: (e: AgentEvent) => void }[] = [];
  #exited: Promise<number | null> = Promise.resolve(null);
  stderr = '';

  private constructor(dataDir: string, options: SpawnOptions) {
    this.dataDir = dataDir;
    this.options = options;
  }

  /** Initializes a data directory and starts the agent; stopped (SIGKILL if needed) when the test ends. */
  static async spawn(t: ExecutionContext, options: SpawnOptions): Promise<AgentProcess> {
    const dataDir = options.dataDir ?? join(tempDir(t), 'd');
    const init = await shell(dataDir, 'init', '--name', options.name, '--admin-password', options.adminPassword ?? 'secret-pw', '--serial', `SN-${options.name}`, '--location', `floor-${options.name}`, ...(options.initArgs ?? []));
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
    const agent = new AgentProcess(dataDir, options);
    t.teardown(() => agent.kill('SIGKILL'));
    await agent.start();
    return agent;
  }

  /** Starts (or restarts) the process and waits for its ready line. */
  async start(): Promise<AgentEvent> {
    const o = this.options;
    const args = [MFPSYNC, '--data', this.dataDir, '--json', 'run', '--events', '--host', '127.0.0.1', '--port', String(o.port ?? 0)];
    if (o.heartbeat !== undefined) args.push('--heartbeat', String(o.heartbeat));
    if (o.protocol !== undefined) args.push('--protocol', String(o.protocol));
    if (o.maxUsers !== undefined) args.push('--max-users', String(o.maxUsers));
    args.push(...(o.runArgs ?? []));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MFPSYNC_LOG_LEVEL: 'warn' } });
    this.child = child;
    this.events = [];
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let e: AgentEvent;
      try {
        e = JSON.parse(line) as AgentEvent;
      } catch {
        return;
      }
      this.events.push(e);
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

  /** Calls the agent's control socket directly: for bulk setup, where the shell is not what is tested. */
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
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await this.#exited;
  }
}

/** Starts a server agent and returns it with its port. */
export async function startServer(t: ExecutionContext, options: Partial<SpawnOptions> = {}): Promise<{ server: AgentProcess; port: number }> {
  const server = await AgentProcess.spawn(t, { name: 'server', ...options });
  const status = await server.ok<{ port: number }>('role', 'set', 'server');
  return { server, port: status.port };
}

/** Makes an agent a client of a server at 127.0.0.1:port with the administrator account. */
export function joinClient(agent: AgentProcess, port: number, password = 'secret-pw'): Promise<Record<string, unknown>> {
  return agent.ok('role', 'set', 'client', '--server', `127.0.0.1:${port}`, '--user', 'admin', '--password', password);
}
