/** In-process agents on real sockets (127.0.0.1, port 0 unless given) and real LevelDB folders. */
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { Agent, AgentOptions } from '../../agent/agent.js';
import type { InitOptions } from '../../agent/config.js';
import { admitLocal, openLocalAgent } from '../../tools/local-agents.js';
import { tempDir } from './tmp.js';

/** Initializes a data directory (admin password `pw` unless given) and opens and starts an agent on it. */
export async function openAgent(
  t: ExecutionContext,
  name: string,
  options: Partial<AgentOptions> & { init?: InitOptions } = {},
): Promise<Agent> {
  const { init, ...rest } = options;
  const dataDir = options.dataDir ?? join(tempDir(t), name);
  const agent = await openLocalAgent({ ...rest, dataDir, ...(options.dataDir ? {} : { init: { adminPassword: 'pw', ...init, name: init?.name ?? name } }) });
  t.teardown(() => agent.close());
  return agent;
}

/** Opens an agent and makes it a server. */
export async function openServer(t: ExecutionContext, name = 'server', options: Parameters<typeof openAgent>[2] = {}): Promise<Agent> {
  const server = await openAgent(t, name, options);
  await server.setRole('server');
  return server;
}

/** Opens an agent and admits it as a client of `server`. */
export async function openClient(t: ExecutionContext, name: string, server: Agent, options: Parameters<typeof openAgent>[2] = {}): Promise<Agent> {
  const client = await openAgent(t, name, options);
  await admit(client, server.port);
  return client;
}

/** Makes `agent` a client of a server on 127.0.0.1:port with the administrator account. */
export function admit(agent: Agent, port: number, password = 'pw'): ReturnType<Agent['setRole']> {
  return admitLocal(agent, port, password);
}

/** Resolves on the agent's next remote item-changed event for one user's item. */
export function remoteChange(agent: Agent, id: string, item: string, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.off('item-changed', on);
      reject(new Error(`no remote ${item} of ${id} within ${timeoutMs} ms (cursor ${agent.local.cursor}, state ${agent.client?.state})`));
    }, timeoutMs);
    const on = (e: { id: string; item: string; source: string }) => {
      if (e.source === 'remote' && e.id === id && e.item === item) {
        clearTimeout(timer);
        agent.off('item-changed', on);
        resolve();
      }
    };
    agent.on('item-changed', on);
  });
}

/** Resolves when the agent's synchronization state becomes `state`; with its error, if any. */
export function syncState(agent: Agent, state: string, timeoutMs = 10_000): Promise<{ code?: string; message?: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.off('sync-state', on);
      reject(new Error(`state ${state} not reached within ${timeoutMs} ms (now ${agent.client?.state})`));
    }, timeoutMs);
    const on = (s: { state: string; error?: { code: string; message: string } }) => {
      if (s.state === state) {
        clearTimeout(timer);
        agent.off('sync-state', on);
        resolve(s.error ?? {});
      }
    };
    agent.on('sync-state', on);
  });
}
