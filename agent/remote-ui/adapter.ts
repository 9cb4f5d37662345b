/**
 * The Remote UI's way into the agent: the administrator operations and the agent's events. The HTTP
 * API calls exactly what the control socket calls: the daemon hands the Remote UI its own dispatcher of
 * operations (`Invoke`); the events are the Agent's, as `run --events` prints them.
 */
import type { Agent } from '../agent.js';
import { AGENT_EVENT_NAMES } from '../events.js';

/** Runs one administrator operation by name with its parameters (INVALID_ARGUMENT for a bad one). */
export type Invoke = (name: string, params: Record<string, unknown>) => Promise<unknown>;

/** One agent event as `run --events` prints it: its name in `event`, then its payload. */
export type AgentEventLine = Record<string, unknown> & { event: string };

/** Subscribes to the agent's events; returns the unsubscribe. */
export type Subscribe = (onEvent: (e: AgentEventLine) => void) => () => void;

/** The agent's events as lines. */
export function eventsOf(agent: Agent): Subscribe {
  return (onEvent) => {
    const listeners = AGENT_EVENT_NAMES.map((event) => {
      const l = (e: object) => onEvent({ event, ...e });
      agent.on(event, l);
      return [event, l] as const;
    });
    return () => {
      for (const [event, l] of listeners) agent.off(event, l);
    };
  };
}
