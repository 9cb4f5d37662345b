/**
 * In-process agents for the benchmark: real agents on real LevelDB folders and real sockets on
 * 127.0.0.1, opened through the library API exactly as firmware embeds it, with a silent logger.
 * Waiting is always on the agents' own events, never on polling.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import type { Agent, AgentEvents, ItemChangedEvent } from '../../agent/agent.js';
import type { Durability } from '../../storage/store.js';
import { admitLocal, openLocalAgent } from '../local-agents.js';
import type { Cleanup } from './cleanup.js';

/** The administrator password of every benchmark agent. */
export const PASSWORD = 'bench-admin-pw';

/** A hang guard: a wait that never ends is a bug to report, not a slow figure. */
export const HANG_MS = 30_000;

/** Options of a benchmark agent. */
export interface BenchAgentOptions {
  name: string;
  durability?: Durability;
  heartbeatSeconds?: number;
  /** Start from a copy of this closed agent's data folder (same identity and store) instead of a new one. */
  copyOf?: string;
}

/** Initializes a data folder (or copies one) and opens and starts an agent on it; closed by the cleanup. */
export async function openAgent(cleanup: Cleanup, parent: string, o: BenchAgentOptions): Promise<Agent> {
  const dataDir = join(cleanup.tempDir(parent, `${o.name}-`), 'd');
  if (o.copyOf !== undefined) cpSync(o.copyOf, dataDir, { recursive: true });
  const agent = await openLocalAgent({
    dataDir,
    ...(o.copyOf === undefined ? { init: { name: o.name, adminPassword: PASSWORD } } : {}),
    durability: o.durability ?? 'fsync',
    // Heartbeats would add frames to the byte counts; the benchmark's sessions are short.
    heartbeatSeconds: o.heartbeatSeconds ?? 3600,
  });
  cleanup.defer(`agent ${o.name}`, () => agent.close());
  return agent;
}

/** Opens an agent and makes it the server; returns it with its bound port. */
export async function openServer(cleanup: Cleanup, parent: string, o: BenchAgentOptions): Promise<Agent> {
  const agent = await openAgent(cleanup, parent, o);
  await agent.setRole('server');
  return agent;
}

/** Makes an agent a client of `127.0.0.1:port` with the administrator account; resolves when live. */
export async function joinAs(agent: Agent, port: number): Promise<void> {
  await admitLocal(agent, port, PASSWORD);
}

/**
 * Resolves with the first event of `agent` matching `pred`. Register before causing the event.
 * Rejects after HANG_MS so a lost event surfaces as an error rather than a hung benchmark.
 */
export function nextEvent<K extends keyof AgentEvents>(agent: Agent, event: K, pred: (...args: AgentEvents[K]) => boolean, what = String(event)): Promise<AgentEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const listener = (...args: AgentEvents[K]) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      agent.off(event, listener as never);
      resolve(args[0]);
    };
    const timer = setTimeout(() => {
      agent.off(event, listener as never);
      reject(new Error(`no ${what} within ${HANG_MS} ms (agent ${agent.status().name})`));
    }, HANG_MS);
    agent.on(event, listener as never);
  });
}

/** The next remote item-changed of one user's item. */
export function remoteChange(agent: Agent, user: string, item: string): Promise<ItemChangedEvent> {
  return nextEvent(agent, 'item-changed', (e) => e.source === 'remote' && e.kind === 'user' && e.id === user && e.item === item, `remote ${user}/${item}`);
}

/**
 * Resolves once the client's outbound queue is empty (now, or at the acknowledgement that empties it).
 * The queue size drops when the settling batch is built, before that batch is written and before
 * `changes-acked` fires: to wait for one change's acknowledgement to be fully settled, use `nextAck`
 * registered before the change instead.
 */
export async function queueDrained(agent: Agent): Promise<void> {
  if (agent.local.queueSize === 0) return;
  await nextEvent(agent, 'changes-acked', (s) => s.queued === 0, 'changes-acked with an empty queue');
}

/** The next acknowledgement that leaves the client's queue empty. Register before the change. */
export function nextAck(agent: Agent): Promise<unknown> {
  return nextEvent(agent, 'changes-acked', (s) => s.queued === 0, 'changes-acked with an empty queue');
}

/** Waits until a set of users' given item has arrived remotely on `agent` (each at least once). */
export function remoteChanges(agent: Agent, users: readonly string[], item: string): Promise<void> {
  const missing = new Set(users);
  if (missing.size === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const listener = (e: ItemChangedEvent) => {
      if (e.source !== 'remote' || e.item !== item || !missing.delete(e.id) || missing.size > 0) return;
      clearTimeout(timer);
      agent.off('item-changed', listener);
      resolve();
    };
    const timer = setTimeout(() => {
      agent.off('item-changed', listener);
      reject(new Error(`${missing.size} users' ${item} never arrived (agent ${agent.status().name})`));
    }, HANG_MS);
    agent.on('item-changed', listener);
  });
}
