/**
 * The Remote UI's way into the agent: the administrator operations and the agent's events, as the
 * daemon hands them over — `invoke` and `agentEvents` of agent/operations.ts, the same the control
 * socket serves. The Remote UI imports neither itself: it can be started over any dispatcher.
 */

/** Runs one administrator operation by name with its parameters (INVALID_ARGUMENT for a bad one). */
export type Invoke = (name: string, params: Record<string, unknown>) => Promise<unknown>;

/** One agent event as `run --events` prints it: its name in `event`, then its payload. */
export type AgentEventLine = Record<string, unknown> & { event: string };

/** Subscribes to the agent's events; returns the unsubscribe. */
export type Subscribe = (onEvent: (e: AgentEventLine) => void) => () => void;
