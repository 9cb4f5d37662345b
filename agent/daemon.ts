/**
 * The running agent as a process: the Agent plus its control socket, which dispatches every request
 * through the operation table (agent/operations.ts: parameters checked there, a wrong one is
 * INVALID_ARGUMENT).
 */
import { Agent, type AgentOptions } from './agent.js';
import { dataPaths } from './config.js';
import { ControlServer } from './control.js';
import { agentEvents, eventFilter, invoke, OPERATIONS } from './operations.js';

/** Each operation as a function of its parameters (what the control socket had before the table; kept for callers of it). */
export function controlMethods(agent: Agent): Record<string, (params: Record<string, unknown>) => Promise<unknown>> {
  return Object.fromEntries(OPERATIONS.map((op) => [op.name, (params: Record<string, unknown>) => invoke(agent, op.name, params)]));
}

/** A started agent with its control socket. */
export interface Daemon {
  agent: Agent;
  control: ControlServer;
  stop(): Promise<void>;
}

/** Opens the data directory, starts the control socket and the persisted role. */
export async function startDaemon(options: AgentOptions): Promise<Daemon> {
  const agent = await Agent.open(options);
  const control = new ControlServer(dataPaths(options.dataDir).control, (method, params) => invoke(agent, method, params), {
    events: (names, send) => {
      const subscribed = eventFilter(names);
      return { subscribed, unsubscribe: agentEvents(agent, send, subscribed) };
    },
    warn: (code, message) => agent.log.warning(code, message),
  });
  try {
    await control.start();
    await agent.start();
    // Other surfaces over the same operations (the Remote UI) start here.
  } catch (err) {
    await control.stop();
    await agent.close();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    agent,
    control,
    stop: () =>
      (stopping ??= (async () => {
        await control.stop();
        await agent.close();
      })()),
  };
}
