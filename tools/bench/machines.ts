/**
 * Benchmark machines as processes: each agent runs in a child of its own (machine-child.ts), so the
 * server and every client have their own event loop as they would on separate MFPs, and no machine's
 * work delays another's timings. The parent only sends requests and collects stamps; the figures are
 * computed from stamps taken inside the machines with one host-wide monotonic clock.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup.js';
import { HANG_MS } from './agents.js';

/** A request to a machine. */
export type MachineRequest = { id: number } & (
  | { op: 'open'; parent: string; name: string; durability: string }
  | { op: 'server' }
  | { op: 'join'; port: number }
  | { op: 'seed'; users: string[]; items: string[] }
  | { op: 'login'; users: string[]; items: string[] }
  | { op: 'track'; on: boolean }
  | { op: 'write'; users: string[]; items: string[]; rate: number; ms: number }
  | { op: 'drain' }
  | { op: 'values'; users: string[]; items: string[] }
  | { op: 'close' }
);

/** A machine's answer to one request. */
export interface MachineReply {
  id: number;
  result?: unknown;
  error?: string;
}

type Body<T> = T extends unknown ? Omit<T, 'id'> : never;

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'machine-child.js');

/** One agent in a child process. */
export class Machine {
  readonly name: string;
  readonly proc: ChildProcess;
  port = 0;
  #next = 1;
  #calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(name: string, proc: ChildProcess) {
    this.name = name;
    this.proc = proc;
    proc.on('message', (r: MachineReply) => {
      const call = this.#calls.get(r.id);
      if (!call) return;
      this.#calls.delete(r.id);
      if (r.error !== undefined) call.reject(new Error(`machine ${name}: ${r.error}`));
      else call.resolve(r.result);
    });
    proc.once('exit', (code, signal) => {
      for (const c of this.#calls.values()) c.reject(new Error(`machine ${name} exited (${code ?? signal})`));
      this.#calls.clear();
    });
  }

  /** Forks a machine (with extra Node options, e.g. a CPU profile) and opens its agent on a fresh data folder under `parent`. */
  static async start(cleanup: Cleanup, parent: string, o: { name: string; durability?: string; execArgv?: string[] }): Promise<Machine> {
    const proc = fork(CHILD, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'advanced', execArgv: [...process.execArgv, ...(o.execArgv ?? [])] });
    const m = new Machine(o.name, proc);
    cleanup.defer(`machine ${o.name}`, () => m.stop());
    const { port } = await m.call<{ port: number }>({ op: 'open', parent, name: o.name, durability: o.durability ?? 'fsync' });
    m.port = port;
    return m;
  }

  /** Makes the machine the server; its port is then the one clients join. */
  async serve(): Promise<void> {
    this.port = (await this.call<{ port: number }>({ op: 'server' })).port;
  }

  /** Sends a request and resolves with its result; rejects on the machine's error or a hang. */
  call<T = Record<string, unknown>>(body: Body<MachineRequest>, timeoutMs = HANG_MS): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id);
        reject(new Error(`machine ${this.name}: no answer to ${body.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#calls.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ ...body, id });
    });
  }

  /** Closes the agent and ends the process (killed if it does not end within 10 s). */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    try {
      await this.call({ op: 'close' }, 10_000);
    } catch {
      // Killed below.
    }
    proc.disconnect();
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
