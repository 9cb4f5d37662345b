/** In-process agents on real sockets (127.0.0.1, port 0 unless given) and real LevelDB folders. */
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Agent, type AgentOptions } from '../../agent/agent.js';
import { initDataDir, type InitOptions } from '../../agent/config.js';
import { createLogger } from '../../agent/logger.js';
import { tempDir } from './tmp.js';

const quiet = createLogger({ level: 'silent' });

/** Initializes a data directory (admin password `pw` unless given) and opens and starts an agent on it. */
export async function openAgent(
  t: ExecutionContext,
  name: string,
  options: Partial<AgentOptions> & { init?: InitOptions } = {},
): Promise<Agent> {
  const dataDir = options.dataDir ?? join(tempDir(t), name);
  if (!options.dataDir) initDataDir(dataDir, { name, adminPassword: 'pw', ...options.init });
  const agent = await Agent.open({ host: '127.0.0.1', port: 0, logger: quiet, ...options, dataDir });
  t.teardown(() => agent.close());
  await agent.start();
  return agent;
}

/** Makes `agent` a client of a server on 127.0.0.1:port with the administrator account. */
export function admit(agent: Agent, port: number, password = 'pw'): ReturnType<Agent['setRole']> {
  return agent.setRole('client', { server: `127.0.0.1:${port}`, user: 'admin', password });
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
