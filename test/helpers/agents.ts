/**
 * Agents as real child processes for end-to-end tests: tools/fleet.ts (shared with the soak) with a
 * temp data directory per agent and an ava teardown that kills it when the test ends.
 */
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { AgentProcess as FleetAgent, type CleanupList, type SpawnOptions as FleetSpawnOptions } from '../../tools/fleet.js';
import { tempDir } from './tmp.js';

export { freePort, humanShell, joinClient, MFPSYNC, shell, type AgentEvent, type ShellResult } from '../../tools/fleet.js';

/** Options of a test agent: the data directory defaults to a fresh temp dir. */
export type SpawnOptions = Omit<FleetSpawnOptions, 'dataDir'> & { dataDir?: string };

/** The test's teardown as a cleanup list. */
function teardowns(t: ExecutionContext): CleanupList {
  return { defer: (_what, release) => t.teardown(release) };
}

/** One agent process of a test. */
export class AgentProcess extends FleetAgent {
  /** Initializes a data directory and starts the agent; stopped (SIGKILL if needed) when the test ends. */
  static spawn(t: ExecutionContext, options: SpawnOptions): Promise<AgentProcess> {
    return AgentProcess.launch(teardowns(t), { ...options, dataDir: options.dataDir ?? join(tempDir(t), 'd') });
  }
}

/** Starts a server agent and returns it with its port. */
export async function startServer(t: ExecutionContext, options: Partial<SpawnOptions> = {}): Promise<{ server: AgentProcess; port: number }> {
  const server = await AgentProcess.spawn(t, { name: 'server', ...options });
  const status = await server.ok<{ port: number }>('role', 'set', 'server');
  return { server, port: status.port };
}

