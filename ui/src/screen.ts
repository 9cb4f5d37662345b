/** What every screen gets: the machine's status, the live events, timers that stop when it is left. */
import type { AgentEvent } from './api.js';

/** The part of the `status` operation the pages read. */
export interface Status {
  deviceId: string;
  name: string;
  serial: string;
  location: string;
  software: string;
  role: 'standalone' | 'server' | 'client' | 'server-client' | 'replica';
  port?: number;
  health: 'green' | 'yellow' | 'red';
  healthReasons: string[];
  client?: { server: string; state: string; queued: number; error?: { code: string; message: string } };
  group?: { groupId: string; devices: number; connected: number; users: number };
}

/** The screen's surroundings, given by the router. */
export interface ScreenContext {
  status: Status;
  /** Calls `f` on each agent event of these names while the screen is shown. */
  on(events: readonly string[], f: (e: AgentEvent) => void): void;
  /** Calls `f` every `ms` while the screen is shown. */
  every(ms: number, f: () => void): void;
}

/** A screen: its title's catalog key and how it draws itself into `main`. */
export interface Screen {
  title: string;
  render(main: HTMLElement, ctx: ScreenContext): Promise<void> | void;
}

/** The server screens need a server; the others say so instead of failing. */
export function isServer(s: Status): boolean {
  return s.role === 'server' || s.role === 'server-client';
}
