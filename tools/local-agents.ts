/**
 * In-process agents on loopback: each on its own data directory (a real LevelDB folder), its server
 * part on 127.0.0.1 and a port the OS picks, with a silent logger. What the simulator opens, and what
 * the tests' in-process helper builds on; clients reach the server over real WebSockets.
 */
import { Agent, type AgentOptions } from '../agent/agent.js';
import { initDataDir, type InitOptions } from '../agent/config.js';
import { createLogger } from '../agent/logger.js';

const silent = createLogger({ level: 'silent' });

/** Options of a local agent: the agent's own, plus `init` to initialize its data directory first. */
export type LocalAgentOptions = Partial<AgentOptions> & {
  dataDir: string;
  /** Initialize the directory with these (`name` required there); leave out for a directory already initialized. */
  init?: InitOptions & { name: string };
};

/** Initializes the data directory if asked, then opens and starts an agent on 127.0.0.1, port 0. */
export async function openLocalAgent(options: LocalAgentOptions): Promise<Agent> {
  const { init, ...rest } = options;
  if (init) initDataDir(options.dataDir, init);
  const agent = await Agent.open({ host: '127.0.0.1', port: 0, logger: silent, ...rest });
  try {
    await agent.start();
  } catch (err) {
    await agent.close();
    throw err;
  }
  return agent;
}

/** Makes `agent` a client of the server on 127.0.0.1:port with its administrator account; resolves when joined. */
export function admitLocal(agent: Agent, port: number, password: string): ReturnType<Agent['setRole']> {
  return agent.setRole('client', { server: `127.0.0.1:${port}`, user: 'admin', password });
}
